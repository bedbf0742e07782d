//! Folder peers on real files in temporary directories.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use trove_core::envelope;
use trove_core::keys::MasterSecret;
use trove_core::seal::BlobKind;
use trove_core::{ContainerId, FragmentId, SegmentId, SnapshotId};
use trove_peer::folder::MARKER_FILE;
use trove_peer::{FolderPeer, MetaKey, MetaRejection, Peer, PeerError};

/// The owner whose signed objects these tests store.
fn owner() -> &'static MasterSecret {
    static OWNER: std::sync::OnceLock<MasterSecret> = std::sync::OnceLock::new();
    OWNER.get_or_init(MasterSecret::generate)
}

/// A signed envelope of `key` by `by`, as a backup would write it (the
/// body's content is irrelevant to a peer).
fn signed_by(by: &MasterSecret, key: &MetaKey, revision: u64, body: &[u8]) -> Vec<u8> {
    let (kind, object) = match key {
        MetaKey::Container(c) => (BlobKind::ContainerManifest, c.0),
        MetaKey::Snapshot(_, s) => (BlobKind::SnapshotManifest, s.0),
        MetaKey::IndexSegment(_, g) => (BlobKind::IndexSegment, g.0),
    };
    envelope::seal_signed(
        &by.identity(),
        &by.manifest_key(),
        kind,
        &object,
        revision,
        body,
    )
}

fn signed(key: &MetaKey, revision: u64, body: &[u8]) -> Vec<u8> {
    signed_by(owner(), key, revision, body)
}

fn fragment(seed: u8, len: usize) -> (FragmentId, Vec<u8>) {
    let bytes: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect();
    (FragmentId::of(&bytes), bytes)
}

fn new_peer() -> (tempfile::TempDir, FolderPeer) {
    let dir = tempfile::tempdir().unwrap();
    let peer = FolderPeer::create("usb-1", &dir.path().join("peer")).unwrap();
    (dir, peer)
}

/// Every regular file under `dir`, relative paths.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(
                    e.path()
                        .strip_prefix(dir)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    out.sort();
    out
}

#[test]
fn put_get_has_list_range() {
    let (_dir, peer) = new_peer();
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
    assert!(stat.free_bytes.is_some_and(|f| f > 0));
}

#[test]
fn layout_is_sharded_and_holds_no_plaintext() {
    let (dir, peer) = new_peer();
    let (a, a_bytes) = fragment(1, 100);
    peer.put_fragment(&a, &a_bytes).unwrap();
    let c = ContainerId::random();
    let s = SnapshotId::random();
    let snapshot = MetaKey::Snapshot(c, s);
    peer.put_meta(&snapshot, &signed(&snapshot, 0, b"sealed"))
        .unwrap();
    let hex = a.to_hex();
    let files = files_under(&dir.path().join("peer"));
    assert_eq!(
        files,
        vec![
            format!("fragments/{}/{hex}", &hex[..2]),
            format!("meta/{}/snapshots/{}", c.to_hex(), s.to_hex()),
            MARKER_FILE.to_owned(),
        ]
    );
    let marker = fs::read_to_string(dir.path().join("peer").join(MARKER_FILE)).unwrap();
    assert_eq!(marker, "trove folder peer v1\n");
    assert!(
        !marker.contains("usb-1"),
        "the peer name must not be written"
    );
}

#[test]
fn wrong_hash_is_refused_and_nothing_stored() {
    let (_dir, peer) = new_peer();
    let (a, _) = fragment(1, 100);
    let (_, other) = fragment(2, 100);
    let err = peer.put_fragment(&a, &other).unwrap_err();
    assert!(
        matches!(err, PeerError::HashMismatch { id, .. } if id == a),
        "{err}"
    );
    assert!(err.to_string().contains("usb-1"));
    assert!(!peer.has_fragment(&a).unwrap());
    assert!(peer.list_fragments().unwrap().is_empty());
}

#[test]
fn put_replaces_a_damaged_copy() {
    let (dir, peer) = new_peer();
    let (a, bytes) = fragment(1, 1000);
    peer.put_fragment(&a, &bytes).unwrap();
    let hex = a.to_hex();
    let path = dir.path().join("peer/fragments").join(&hex[..2]).join(&hex);
    fs::write(&path, b"rot").unwrap();
    peer.put_fragment(&a, &bytes).unwrap();
    assert_eq!(fs::read(&path).unwrap(), bytes);
}

#[test]
fn truncated_fragment_is_returned_as_is() {
    let (dir, peer) = new_peer();
    let (a, bytes) = fragment(1, 1000);
    peer.put_fragment(&a, &bytes).unwrap();
    let hex = a.to_hex();
    let path = dir.path().join("peer/fragments").join(&hex[..2]).join(&hex);
    fs::write(&path, &bytes[..400]).unwrap();
    let got = peer.get_fragment(&a).unwrap();
    assert_eq!(got, &bytes[..400]);
    assert_ne!(FragmentId::of(&got), a, "the caller detects it");
    assert_eq!(
        peer.get_fragment_range(&a, 300, 200).unwrap(),
        &bytes[300..400]
    );
}

#[test]
fn delete_moves_to_trash_and_purge_respects_grace() {
    let (dir, peer) = new_peer();
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

    let trash = files_under(&dir.path().join("peer/trash"));
    assert_eq!(trash.len(), 1);
    assert!(trash[0].ends_with(&a.to_hex()), "{trash:?}");

    let grace = Duration::from_secs(7 * 24 * 3600);
    let now = SystemTime::now();
    assert_eq!(peer.purge_expired(grace, now).unwrap(), 0);
    assert_eq!(files_under(&dir.path().join("peer/trash")).len(), 1);
    // Still recoverable within the grace period.
    assert!(peer.restore_deleted(&a).unwrap());
    assert_eq!(peer.get_fragment(&a).unwrap(), a_bytes);
    assert!(!peer.restore_deleted(&a).unwrap());

    peer.delete_fragment(&a).unwrap();
    assert_eq!(
        peer.purge_expired(grace, now + grace + Duration::from_secs(1))
            .unwrap(),
        1
    );
    assert!(files_under(&dir.path().join("peer/trash")).is_empty());
    assert!(!peer.restore_deleted(&a).unwrap());
    assert_eq!(peer.get_fragment(&b).unwrap(), b_bytes);
}

#[test]
fn meta_put_get_list_per_container() {
    let (_dir, peer) = new_peer();
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

#[test]
fn reopen_persists() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peer");
    let (a, bytes) = fragment(7, 500);
    let c = ContainerId::random();
    let manifest = signed(&MetaKey::Container(c), 1, b"manifest");
    {
        let peer = FolderPeer::create("p", &path).unwrap();
        peer.put_fragment(&a, &bytes).unwrap();
        peer.put_meta(&MetaKey::Container(c), &manifest).unwrap();
    }
    let peer = FolderPeer::open("p", &path).unwrap();
    assert_eq!(peer.get_fragment(&a).unwrap(), bytes);
    assert_eq!(peer.get_meta(&MetaKey::Container(c)).unwrap(), manifest);
    // Creating an existing peer folder just opens it.
    let again = FolderPeer::create("p", &path).unwrap();
    assert_eq!(again.list_fragments().unwrap(), vec![a]);
    // Shareable as a trait object.
    let shared: Arc<dyn Peer> = Arc::new(peer);
    assert!(shared.describe().contains("p (dir:"));
}

#[test]
fn open_missing_folder_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let err = FolderPeer::open("usb", &dir.path().join("nope")).unwrap_err();
    assert!(matches!(err, PeerError::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains("is the disk mounted?"), "{err}");
    assert!(err.is_retryable_elsewhere());
}

#[test]
fn open_without_marker_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = FolderPeer::open("usb", dir.path()).unwrap_err();
    assert!(matches!(err, PeerError::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains(MARKER_FILE), "{err}");

    fs::write(dir.path().join(MARKER_FILE), "something else\n").unwrap();
    let err = FolderPeer::open("usb", dir.path()).unwrap_err();
    assert!(matches!(err, PeerError::Corrupt { .. }), "{err}");

    fs::write(dir.path().join(MARKER_FILE), "trove folder peer v99\n").unwrap();
    let err = FolderPeer::open("usb", dir.path()).unwrap_err();
    assert!(err.to_string().contains("upgrade"), "{err}");
}

#[test]
fn create_refuses_a_foreign_non_empty_folder() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("holiday.jpg"), b"x").unwrap();
    let err = FolderPeer::create("usb", dir.path()).unwrap_err();
    assert!(matches!(err, PeerError::Refused { .. }), "{err}");
    assert!(!dir.path().join(MARKER_FILE).exists());
}

#[test]
fn unmounted_disk_is_unavailable_not_empty() {
    let (dir, peer) = new_peer();
    let (a, bytes) = fragment(1, 100);
    peer.put_fragment(&a, &bytes).unwrap();
    // Simulate an unmount: the mount point stays, its contents vanish.
    let root = dir.path().join("peer");
    fs::rename(&root, dir.path().join("elsewhere")).unwrap();
    fs::create_dir(&root).unwrap();

    let unavailable = |r: Result<(), PeerError>| {
        let e = r.unwrap_err();
        assert!(matches!(e, PeerError::Unavailable { .. }), "{e}");
    };
    unavailable(peer.list_fragments().map(drop));
    unavailable(peer.has_fragment(&a).map(drop));
    unavailable(peer.get_fragment(&a).map(drop));
    unavailable(peer.list_meta(None).map(drop));
    unavailable(peer.stat().map(drop));
    unavailable(peer.put_fragment(&a, &bytes));
    unavailable(peer.put_meta(&MetaKey::Container(ContainerId::random()), b"x"));
    unavailable(peer.delete_fragment(&a));
    // Nothing was written into the bare mount point.
    assert!(files_under(&root).is_empty());
    assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
}

#[test]
fn stale_tmp_files_are_never_fragments_and_are_cleaned_on_open() {
    let (dir, peer) = new_peer();
    let root = dir.path().join("peer");
    let (a, bytes) = fragment(1, 100);
    // What a process killed mid-write leaves: a partial file in tmp/, named
    // anything (here even like a fragment).
    let fresh = root.join("tmp").join(a.to_hex());
    let stale = root.join("tmp").join("0123.tmp");
    fs::write(&fresh, &bytes[..50]).unwrap();
    fs::write(&stale, b"partial").unwrap();
    let old = SystemTime::now() - Duration::from_secs(2 * 3600);
    fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(old)
        .unwrap();

    assert!(peer.list_fragments().unwrap().is_empty());
    assert!(!peer.has_fragment(&a).unwrap());
    assert_eq!(peer.stat().unwrap().fragments, 0);

    let peer = FolderPeer::open("usb-1", &root).unwrap();
    assert!(!stale.exists(), "stale tmp file should be cleaned");
    assert!(
        fresh.exists(),
        "a recent tmp file may be a write in progress"
    );
    assert!(peer.list_fragments().unwrap().is_empty());

    // Writes leave nothing behind in tmp/.
    fs::remove_file(&fresh).unwrap();
    peer.put_fragment(&a, &bytes).unwrap();
    let key = MetaKey::Container(ContainerId::random());
    peer.put_meta(&key, &signed(&key, 1, b"m")).unwrap();
    assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
}

#[test]
fn stray_files_under_fragments_are_not_listed() {
    let (dir, peer) = new_peer();
    let frags = dir.path().join("peer/fragments");
    let (a, _) = fragment(1, 10);
    let hex = a.to_hex();
    // Wrong shard, bad names.
    let wrong = if &hex[..2] == "00" { "01" } else { "00" };
    fs::create_dir_all(frags.join(wrong)).unwrap();
    fs::write(frags.join(wrong).join(&hex), b"x").unwrap();
    fs::write(frags.join("notes.txt"), b"x").unwrap();
    fs::create_dir_all(frags.join(&hex[..2])).unwrap();
    fs::write(frags.join(&hex[..2]).join("junk"), b"x").unwrap();
    assert!(peer.list_fragments().unwrap().is_empty());
    assert_eq!(peer.stat().unwrap().fragments, 0);
    // Something that is not a file where the fragment would be.
    let (b, _) = fragment(2, 10);
    let hex = b.to_hex();
    fs::create_dir_all(frags.join(&hex[..2]).join(&hex)).unwrap();
    assert!(!peer.has_fragment(&b).unwrap());
    assert!(peer.list_fragments().unwrap().is_empty());
}

/// Makes a directory unwritable even for root by setting the immutable
/// inode flag; cleared on drop so the temp dir can be removed.
struct Immutable(std::path::PathBuf);

impl Immutable {
    fn set(path: &Path) -> std::io::Result<Immutable> {
        use rustix::fs::{ioctl_getflags, ioctl_setflags, IFlags};
        let dir = fs::File::open(path)?;
        let flags = ioctl_getflags(&dir)?;
        ioctl_setflags(&dir, flags | IFlags::IMMUTABLE)?;
        Ok(Immutable(path.to_owned()))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        use rustix::fs::{ioctl_getflags, ioctl_setflags, IFlags};
        if let Ok(dir) = fs::File::open(&self.0) {
            if let Ok(flags) = ioctl_getflags(&dir) {
                let _ = ioctl_setflags(&dir, flags - IFlags::IMMUTABLE);
            }
        }
    }
}

fn writable(dir: &Path) -> bool {
    let probe = dir.join("probe");
    let ok = fs::write(&probe, b"x").is_ok();
    let _ = fs::remove_file(&probe);
    ok
}

#[test]
fn read_only_fragments_dir_is_read_only() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, peer) = new_peer();
    let (a, a_bytes) = fragment(1, 100);
    peer.put_fragment(&a, &a_bytes).unwrap();
    let frags = dir.path().join("peer/fragments");
    fs::set_permissions(&frags, fs::Permissions::from_mode(0o555)).unwrap();
    // Root ignores permission bits; fall back to the immutable flag, which
    // binds root too.
    let _guard = if writable(&frags) {
        match Immutable::set(&frags) {
            Ok(g) if !writable(&frags) => Some(g),
            other => {
                drop(other);
                fs::set_permissions(&frags, fs::Permissions::from_mode(0o755)).unwrap();
                println!("note: skipping read-only test: cannot make a directory read-only here");
                return;
            }
        }
    } else {
        None
    };

    // A fragment whose shard dir does not exist yet, so the write needs
    // `fragments/` itself.
    let (b, b_bytes) = (2..)
        .map(|seed| fragment(seed, 100))
        .find(|(id, _)| id.to_hex()[..2] != a.to_hex()[..2])
        .unwrap();
    let err = peer.put_fragment(&b, &b_bytes).unwrap_err();
    assert!(matches!(err, PeerError::ReadOnly { .. }), "{err}");
    assert!(err.is_retryable_elsewhere());
    // Reads still work, and the failed write left nothing in tmp/.
    assert_eq!(peer.get_fragment(&a).unwrap(), a_bytes);
    assert_eq!(peer.list_fragments().unwrap(), vec![a]);
    assert_eq!(
        fs::read_dir(dir.path().join("peer/tmp")).unwrap().count(),
        0
    );

    drop(_guard);
    fs::set_permissions(&frags, fs::Permissions::from_mode(0o755)).unwrap();
    peer.put_fragment(&b, &b_bytes).unwrap();
}

// ---------------------------------------------------------------------------
// Metadata a stolen key cannot wipe (issue 8, finding 1)
// ---------------------------------------------------------------------------

fn rejected(r: Result<(), PeerError>) -> MetaRejection {
    match r {
        Err(PeerError::MetaRejected { reason, .. }) => *reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// What ransomware holding the peer's credentials tried against a node:
/// overwrite every metadata object with one byte, roll the container
/// manifest back, sign its own copies, file objects under other keys. Every
/// attempt is refused and the owner's objects stay as they were.
#[test]
fn stolen_key_cannot_overwrite_or_roll_back_metadata() {
    let (_dir, peer) = new_peer();
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

#[test]
fn deleted_and_replaced_metadata_stays_in_the_trash_for_the_grace_period() {
    let (dir, peer) = new_peer();
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

    let root = dir.path().join("peer");
    let now = SystemTime::now();
    assert_eq!(
        peer.purge_expired(Duration::from_secs(3600), now).unwrap(),
        0
    );
    assert_eq!(files_under(&root.join("trash")).len(), 2);
    assert_eq!(
        peer.purge_expired(Duration::from_secs(3600), now + Duration::from_secs(7200))
            .unwrap(),
        2
    );
    assert!(files_under(&root.join("trash")).is_empty());
    assert!(peer.list_deleted_meta(None).unwrap().is_empty());
}

#[test]
fn a_damaged_copy_on_disk_is_replaced() {
    let (dir, peer) = new_peer();
    let c = ContainerId::random();
    let segment = MetaKey::IndexSegment(c, SegmentId::random());
    let seg = signed(&segment, 0, b"segment");
    peer.put_meta(&segment, &seg).unwrap();
    let path = dir
        .path()
        .join("peer/meta")
        .join(c.to_hex())
        .join("index")
        .join(match segment {
            MetaKey::IndexSegment(_, g) => g.to_hex(),
            _ => unreachable!(),
        });
    fs::write(&path, b"bit rot").unwrap();
    peer.put_meta(&segment, &seg).unwrap();
    assert_eq!(peer.get_meta(&segment).unwrap(), seg);
    assert_eq!(peer.get_deleted_meta(&segment).unwrap(), b"bit rot");
}

/// The process umask, from /proc.
fn umask() -> u32 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).unwrap()
}

#[test]
fn peer_folders_are_private_whatever_the_umask() {
    use std::os::unix::fs::MetadataExt;
    // Under a umask that lets group and others read, default modes would be
    // 0644/0755: the test can only fail if the code forgets to restrict.
    assert_eq!(
        umask() & 0o044,
        0,
        "run the tests under umask 022 or looser"
    );
    let (dir, peer) = new_peer();
    let (a, bytes) = fragment(3, 100);
    peer.put_fragment(&a, &bytes).unwrap();
    let key = MetaKey::Container(ContainerId::random());
    peer.put_meta(&key, &signed(&key, 1, b"m")).unwrap();
    peer.delete_fragment(&a).unwrap();
    let root = dir.path().join("peer");
    let mut stack = vec![root.clone()];
    let mut seen = 0;
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            let want = if m.is_dir() { 0o700 } else { 0o600 };
            assert_eq!(m.mode() & 0o777, want, "{}", e.path().display());
            if m.is_dir() {
                stack.push(e.path());
            }
            seen += 1;
        }
    }
    assert!(seen >= 8, "only {seen} entries");
    assert_eq!(fs::metadata(&root).unwrap().mode() & 0o777, 0o700);
}
