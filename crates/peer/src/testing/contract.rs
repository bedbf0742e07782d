//! The behaviour every [`Peer`] must show, one function per property. Each
//! takes a fresh, empty peer and panics with a message on a violation, so
//! a folder peer, a [`MemoryPeer`](super::MemoryPeer) and a node peer run
//! the same checks. Where a check needs to reach behind the trait (damage
//! stored bytes) the caller passes how; where an implementation has more to
//! check (trash files, purges), the function hands back what it stored.
//!
//! The objects are signed by [`owner`](super::owner): a peer that pins its owner's
//! identity (a node) must be new to that owner or already pinned to it.

use crate::peer::{MetaKey, Peer, PeerError};
use crate::MetaRejection;
use trove_core::handover::HandOver;
use trove_core::keys::MasterSecret;
use trove_core::{ContainerId, FragmentId, SegmentId, SnapshotId};

use super::{fragment, signed, signed_by};

/// Put, get, has, list and ranges of fragments, `NotFound` for absent
/// ones, and the counts of `stat` (not its free space, which depends on
/// the implementation).
pub fn put_get_has_list_range(peer: &dyn Peer) {
    let (a, a_bytes) = fragment(1, 10_000);
    let (b, b_bytes) = fragment(2, 3);
    assert!(!peer.has_fragment(&a).unwrap());
    assert!(peer.list_fragments().unwrap().is_empty());

    peer.put_fragment(&a, &a_bytes).unwrap();
    peer.put_fragment(&b, &b_bytes).unwrap();
    // Idempotent.
    peer.put_fragment(&a, &a_bytes).unwrap();

    assert_eq!(peer.get_fragment(&a).unwrap(), a_bytes);
    assert_eq!(peer.get_fragment(&b).unwrap(), b_bytes);
    assert!(peer.has_fragment(&a).unwrap());
    let mut want = vec![a, b];
    want.sort();
    assert_eq!(peer.list_fragments().unwrap(), want);

    assert_eq!(
        peer.get_fragment_range(&a, 100, 50).unwrap(),
        &a_bytes[100..150]
    );
    assert_eq!(
        peer.get_fragment_range(&a, 9_990, 50).unwrap(),
        &a_bytes[9_990..]
    );
    assert!(peer.get_fragment_range(&a, 20_000, 5).unwrap().is_empty());
    // A huge len must not allocate a huge buffer.
    assert_eq!(peer.get_fragment_range(&b, 0, u64::MAX).unwrap(), b_bytes);

    let (c, _) = fragment(3, 10);
    assert!(matches!(
        peer.get_fragment(&c),
        Err(PeerError::NotFound { .. })
    ));
    assert!(matches!(
        peer.get_fragment_range(&c, 0, 1),
        Err(PeerError::NotFound { .. })
    ));

    let stat = peer.stat().unwrap();
    assert_eq!(stat.fragments, 2);
    assert_eq!(stat.fragment_bytes, 10_003);
}

/// Bytes that do not hash to their id are refused with `HashMismatch`,
/// naming the peer, and nothing is stored.
pub fn wrong_hash_is_refused_and_nothing_stored(peer: &dyn Peer) {
    let (a, _) = fragment(1, 100);
    let (_, other) = fragment(2, 100);
    let err = peer.put_fragment(&a, &other).unwrap_err();
    assert!(
        matches!(err, PeerError::HashMismatch { id, .. } if id == a),
        "{err}"
    );
    assert!(err.to_string().contains(&peer.describe()), "{err}");
    assert!(!peer.has_fragment(&a).unwrap());
    assert!(peer.list_fragments().unwrap().is_empty());
}

/// A put of a fragment whose stored copy was damaged (by `damage`, which
/// overwrites the stored bytes of an id) stores it again. Returns it.
///
/// Folder and memory peers keep this; a node does not yet (it answers `Ok`
/// and keeps the file it has), see `node_peer_keeps_the_peer_contract`.
pub fn put_replaces_a_damaged_copy(
    peer: &dyn Peer,
    damage: &dyn Fn(&FragmentId, &[u8]),
) -> (FragmentId, Vec<u8>) {
    let (a, bytes) = fragment(1, 1000);
    peer.put_fragment(&a, &bytes).unwrap();
    damage(&a, b"rot");
    peer.put_fragment(&a, &bytes).unwrap();
    let got = peer.get_fragment(&a).unwrap();
    assert!(
        got == bytes,
        "{}: a put over a damaged copy must store the fragment again, \
         but it serves {} bytes that hash to {}",
        peer.describe(),
        got.len(),
        FragmentId::of(&got).short()
    );
    (a, bytes)
}

/// A truncated stored copy (made by `damage`) is served as it is: reads
/// are unverified, the caller detects the damage.
pub fn truncated_fragment_is_returned_as_is(peer: &dyn Peer, damage: &dyn Fn(&FragmentId, &[u8])) {
    let (a, bytes) = fragment(1, 1000);
    peer.put_fragment(&a, &bytes).unwrap();
    damage(&a, &bytes[..400]);
    let got = peer.get_fragment(&a).unwrap();
    assert_eq!(got, &bytes[..400]);
    assert_ne!(FragmentId::of(&got), a, "the caller detects it");
    assert_eq!(
        peer.get_fragment_range(&a, 300, 200).unwrap(),
        &bytes[300..400]
    );
}

/// What [`deleted_fragment_is_gone_at_once`] left on the peer.
#[derive(Debug)]
pub struct DeletedFragment {
    /// The deleted fragment, in the peer's trash.
    pub deleted: (FragmentId, Vec<u8>),
    /// A fragment still held.
    pub kept: (FragmentId, Vec<u8>),
}

/// A deleted fragment stops being served, listed and counted at once;
/// deleting it again (an interrupted garbage collection re-running) is
/// `Ok`. What the trash does with it is the implementation's to check.
pub fn deleted_fragment_is_gone_at_once(peer: &dyn Peer) -> DeletedFragment {
    let (a, a_bytes) = fragment(1, 100);
    let (b, b_bytes) = fragment(2, 100);
    peer.put_fragment(&a, &a_bytes).unwrap();
    peer.put_fragment(&b, &b_bytes).unwrap();

    peer.delete_fragment(&a).unwrap();
    // Deleting again (an interrupted GC re-running) is fine.
    peer.delete_fragment(&a).unwrap();
    assert!(!peer.has_fragment(&a).unwrap());
    assert!(matches!(
        peer.get_fragment(&a),
        Err(PeerError::NotFound { .. })
    ));
    assert_eq!(peer.list_fragments().unwrap(), vec![b]);
    assert_eq!(peer.stat().unwrap().fragments, 1);
    DeletedFragment {
        deleted: (a, a_bytes),
        kept: (b, b_bytes),
    }
}

/// Metadata objects of several containers: put, get, list per container
/// and in all, atomic replacement by a newer revision, `NotFound`, and
/// metadata is not fragments.
pub fn meta_put_get_list_per_container(peer: &dyn Peer) {
    let c1 = ContainerId::random();
    let c2 = ContainerId::random();
    let s1 = SnapshotId::random();
    let s2 = SnapshotId::random();
    let g1 = SegmentId::random();
    let keys1 = [
        MetaKey::Container(c1),
        MetaKey::Snapshot(c1, s1),
        MetaKey::Snapshot(c1, s2),
        MetaKey::IndexSegment(c1, g1),
    ];
    let objects: Vec<Vec<u8>> = keys1
        .iter()
        .enumerate()
        .map(|(i, k)| signed(k, 1, &[i as u8; 10]))
        .collect();
    for (k, v) in keys1.iter().zip(&objects) {
        peer.put_meta(k, v).unwrap();
    }
    let other = MetaKey::Snapshot(c2, s1);
    peer.put_meta(&other, &signed(&other, 0, b"c2")).unwrap();

    for (k, v) in keys1.iter().zip(&objects) {
        assert_eq!(&peer.get_meta(k).unwrap(), v);
    }
    // Atomic replace by a newer revision.
    let v2 = signed(&MetaKey::Container(c1), 2, b"v2");
    peer.put_meta(&MetaKey::Container(c1), &v2).unwrap();
    assert_eq!(peer.get_meta(&MetaKey::Container(c1)).unwrap(), v2);

    let mut want1 = keys1.to_vec();
    want1.sort();
    assert_eq!(peer.list_meta(Some(&c1)).unwrap(), want1);
    assert_eq!(
        peer.list_meta(Some(&c2)).unwrap(),
        vec![MetaKey::Snapshot(c2, s1)]
    );
    assert!(peer
        .list_meta(Some(&ContainerId::random()))
        .unwrap()
        .is_empty());
    let mut all = want1.clone();
    all.push(MetaKey::Snapshot(c2, s1));
    all.sort();
    assert_eq!(peer.list_meta(None).unwrap(), all);

    let err = peer.get_meta(&MetaKey::Container(c2)).unwrap_err();
    assert!(matches!(err, PeerError::NotFound { .. }), "{err}");
    // Metadata is not fragments.
    assert!(peer.list_fragments().unwrap().is_empty());
}

fn rejected(r: Result<(), PeerError>) -> MetaRejection {
    match r {
        Err(PeerError::MetaRejected { reason, .. }) => *reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// What ransomware holding the peer's credentials tried against a node
/// (issue 8, finding 1): overwrite every metadata object with one byte,
/// roll the container manifest back, sign its own copies, file objects
/// under other keys. Every attempt is refused and the owner's objects stay
/// as they were; the replaced revision waits in the trash.
pub fn stolen_key_cannot_overwrite_or_roll_back_metadata(peer: &dyn Peer) {
    let c = ContainerId::random();
    let manifest = MetaKey::Container(c);
    let snapshot = MetaKey::Snapshot(c, SnapshotId::random());
    let segment = MetaKey::IndexSegment(c, SegmentId::random());
    let r1 = signed(&manifest, 1, b"roster v1");
    let r2 = signed(&manifest, 2, b"roster v2");
    let snap = signed(&snapshot, 0, b"snapshot");
    let seg = signed(&segment, 0, b"segment");
    for (k, v) in [(&manifest, &r1), (&snapshot, &snap), (&segment, &seg)] {
        peer.put_meta(k, v).unwrap();
    }
    peer.put_meta(&manifest, &r2).unwrap();
    // Idempotent.
    peer.put_meta(&manifest, &r2).unwrap();

    for k in [&manifest, &snapshot, &segment] {
        assert!(matches!(
            rejected(peer.put_meta(k, b"x")),
            MetaRejection::Invalid(_)
        ));
    }
    assert_eq!(
        rejected(peer.put_meta(&manifest, &r1)),
        MetaRejection::NotNewer {
            held: 2,
            offered: 1
        }
    );
    let thief = MasterSecret::generate();
    assert!(matches!(
        rejected(peer.put_meta(&manifest, &signed_by(&thief, &manifest, 99, b"mine"))),
        MetaRejection::WrongSigner { .. }
    ));
    // The pin holds for objects new to the container too.
    let new_snapshot = MetaKey::Snapshot(c, SnapshotId::random());
    assert!(matches!(
        rejected(peer.put_meta(&new_snapshot, &signed_by(&thief, &new_snapshot, 0, b"x"))),
        MetaRejection::WrongSigner { .. }
    ));
    assert_eq!(
        rejected(peer.put_meta(&snapshot, &signed(&snapshot, 0, b"another"))),
        MetaRejection::Immutable
    );
    assert_eq!(
        rejected(peer.put_meta(&new_snapshot, &snap)),
        MetaRejection::WrongKey
    );
    assert_eq!(peer.get_meta(&manifest).unwrap(), r2);
    assert_eq!(peer.get_meta(&snapshot).unwrap(), snap);
    assert_eq!(peer.get_meta(&segment).unwrap(), seg);
    // The replaced revision waits in the trash.
    let deleted = peer.list_deleted_meta(Some(&c)).unwrap();
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert_eq!(deleted[0].key, manifest);
    assert_eq!(peer.get_deleted_meta(&manifest).unwrap(), r1);
}

/// What [`deleted_and_replaced_metadata_is_in_the_trash`] left on the peer.
#[derive(Debug)]
pub struct TrashedMeta {
    /// The container both objects belong to.
    pub container: ContainerId,
    /// Its manifest, replaced once (revision 1 is in the trash).
    pub manifest: MetaKey,
    /// A snapshot deleted (one copy in the trash), then put back.
    pub snapshot: MetaKey,
}

/// A deleted metadata object stops being served and listed at once and is
/// readable from the trash, as is a replaced one; deleting twice is `Ok`;
/// a deleted snapshot can be put back. Purging is the implementation's to
/// check: two objects wait in the trash when this returns.
pub fn deleted_and_replaced_metadata_is_in_the_trash(peer: &dyn Peer) -> TrashedMeta {
    let c = ContainerId::random();
    let manifest = MetaKey::Container(c);
    let snapshot = MetaKey::Snapshot(c, SnapshotId::random());
    let snap = signed(&snapshot, 0, b"snapshot");
    peer.put_meta(&snapshot, &snap).unwrap();
    peer.put_meta(&manifest, &signed(&manifest, 1, b"m1"))
        .unwrap();
    peer.put_meta(&manifest, &signed(&manifest, 2, b"m2"))
        .unwrap();

    peer.delete_meta(&snapshot).unwrap();
    peer.delete_meta(&snapshot).unwrap();
    assert!(matches!(
        peer.get_meta(&snapshot).unwrap_err(),
        PeerError::NotFound { .. }
    ));
    assert_eq!(peer.list_meta(Some(&c)).unwrap(), vec![manifest]);
    assert_eq!(peer.get_deleted_meta(&snapshot).unwrap(), snap);
    let keys: Vec<MetaKey> = peer
        .list_deleted_meta(None)
        .unwrap()
        .into_iter()
        .map(|d| d.key)
        .collect();
    let mut want = vec![manifest, snapshot];
    want.sort();
    assert_eq!(keys, want);
    // A deleted snapshot can be put back (by its owner's next backup).
    peer.put_meta(&snapshot, &snap).unwrap();
    assert_eq!(peer.get_meta(&snapshot).unwrap(), snap);
    TrashedMeta {
        container: c,
        manifest,
        snapshot,
    }
}

/// A stored metadata object damaged behind the peer's back (by `damage`,
/// which overwrites its stored bytes) protects nothing: a valid copy
/// replaces it, and the damaged bytes go to the trash.
pub fn a_damaged_meta_copy_is_replaced(peer: &dyn Peer, damage: &dyn Fn(&MetaKey, &[u8])) {
    let c = ContainerId::random();
    let segment = MetaKey::IndexSegment(c, SegmentId::random());
    let seg = signed(&segment, 0, b"segment");
    peer.put_meta(&segment, &seg).unwrap();
    damage(&segment, b"bit rot");
    peer.put_meta(&segment, &seg).unwrap();
    assert_eq!(peer.get_meta(&segment).unwrap(), seg);
    assert_eq!(peer.get_deleted_meta(&segment).unwrap(), b"bit rot");
}

/// A master secret rotation (`docs/design.md` §2a): before the hand-over
/// the new identity's objects are refused; after it they replace the old
/// identity's (which go to the trash), the old identity's are refused, the
/// same certificate is taken again, and another certificate of the old
/// identity is refused. The objects are signed by fresh identities (a peer
/// that pins its owner, a node, is tested on its own).
pub fn a_hand_over_lets_the_new_identity_replace_the_old(peer: &dyn Peer) {
    let (old, new) = (MasterSecret::generate(), MasterSecret::generate());
    let c = ContainerId::random();
    let manifest = MetaKey::Container(c);
    let snapshot = MetaKey::Snapshot(c, SnapshotId::random());
    let old_snap = signed_by(&old, &snapshot, 0, b"snapshot");
    peer.put_meta(&manifest, &signed_by(&old, &manifest, 1, b"v1"))
        .unwrap();
    peer.put_meta(&snapshot, &old_snap).unwrap();
    let moved_snap = trove_core::envelope::resign(&old_snap, &new.identity()).unwrap();
    assert!(matches!(
        rejected(peer.put_meta(&snapshot, &moved_snap)),
        MetaRejection::WrongSigner { .. }
    ));

    let cert = HandOver::sign(&old, &new, 1);
    peer.hand_over(&cert).unwrap();
    peer.hand_over(&cert).unwrap();
    let v2 = signed_by(&new, &manifest, 2, b"v2");
    peer.put_meta(&manifest, &v2).unwrap();
    peer.put_meta(&snapshot, &moved_snap).unwrap();
    assert_eq!(peer.get_meta(&manifest).unwrap(), v2);
    assert_eq!(peer.get_meta(&snapshot).unwrap(), moved_snap);
    assert_eq!(peer.get_deleted_meta(&snapshot).unwrap(), old_snap);
    assert!(matches!(
        rejected(peer.put_meta(&manifest, &signed_by(&old, &manifest, 3, b"v3"))),
        MetaRejection::WrongSigner { .. }
    ));
    let elsewhere = HandOver::sign(&old, &MasterSecret::generate(), 2);
    match peer.hand_over(&elsewhere) {
        Err(PeerError::Refused { reason, .. }) => {
            assert!(reason.contains("hands over only once"), "{reason}")
        }
        other => panic!("a second hand-over of one identity was not refused: {other:?}"),
    }
}
