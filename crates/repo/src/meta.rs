//! Replication of the small signed objects (container manifest, snapshot
//! manifests, index segments) to every peer, so that a new machine can
//! rebuild everything from one peer (invariant 6, docs/design.md
//! §Invariants), and their verification.

use crate::error::Result;
use crate::home::{Container, Home, Owner};
use crate::progress::{Event, Progress};
use rand::seq::SliceRandom;
use std::collections::HashSet;
use std::sync::Arc;
use trove_core::envelope::{self, EnvelopeError, EnvelopeHeader};
use trove_core::manifest::{
    ContainerManifest, IndexSegment, ManifestError, PackRecord, PeerRecord,
};
use trove_core::seal::BlobKind;
use trove_core::{ContainerId, SegmentId};
use trove_peer::{MetaKey, MetaRejection, Peer, PeerError};

/// Why a signed object read from a peer is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ObjectError {
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error("its body does not decode: {0}")]
    Decode(#[from] ManifestError),
    #[error("it names another object")]
    WrongObject,
    /// The revision a peer reads in the clear must be the one inside.
    #[error("its signed revision {header} differs from the revision {body} inside")]
    RevisionMismatch { header: u64, body: u64 },
}

/// The next segment of container `cid`'s index log: a random id, `seq` one
/// past the highest this index knows (§5), adding `packs`.
pub(crate) fn next_segment(
    home: &Home,
    cid: ContainerId,
    packs: Vec<PackRecord>,
) -> Result<IndexSegment> {
    Ok(IndexSegment::adding(
        SegmentId::random(),
        cid,
        home.index.next_segment_seq(&cid)?,
        packs,
    ))
}

/// A segment sealed under the container's key and signed, as it travels
/// to the peers.
pub(crate) fn seal_segment(owner: &Owner, container: &Container, seg: &IndexSegment) -> Vec<u8> {
    envelope::seal_signed(
        &owner.identity,
        &container.keys.seal,
        BlobKind::IndexSegment,
        &seg.id.0,
        0,
        &seg.encode(),
    )
}

/// Open and decode a container manifest envelope of container `cid`.
pub fn open_container_manifest(
    owner: &Owner,
    cid: &ContainerId,
    bytes: &[u8],
) -> Result<ContainerManifest, ObjectError> {
    let (header, body) = envelope::open_signed(
        &owner.public(),
        &owner.master.manifest_key(),
        BlobKind::ContainerManifest,
        &cid.0,
        bytes,
    )?;
    let m = ContainerManifest::decode(&body)?;
    if m.id != *cid {
        return Err(ObjectError::WrongObject);
    }
    // Version-1 envelopes carry no revision in the clear.
    if header.version >= 2 && header.revision != m.revision {
        return Err(ObjectError::RevisionMismatch {
            header: header.revision,
            body: m.revision,
        });
    }
    Ok(m)
}

/// Copies `sync_meta` reads back from each peer besides the container
/// manifest: a random few, so a damaged or rolled-back copy is found within
/// a few runs while the cost stays bounded however long the history grows
/// (`trove check` reads every copy).
const VERIFY_SAMPLE: usize = 8;

/// Push every envelope the index holds for the container to each peer that
/// lacks it. With `verify`, also read back the peer's copy of the container
/// manifest and of [`VERIFY_SAMPLE`] other objects chosen at random, and
/// replace any that differ: silently when the peer's copy is a valid older
/// version, with a warning naming the peer when it fails verification. A peer that
/// holds a newer container manifest than this machine keeps it, and the
/// warning says to run `trove sync`.
pub fn sync_meta(
    home: &Home,
    owner: &Owner,
    container: &Container,
    peers: &[(PeerRecord, Arc<dyn Peer>)],
    verify: bool,
    progress: &dyn Progress,
) -> Result<()> {
    let cid = &container.manifest.id;
    let mut objects = home.index.meta(cid)?;
    // Segments before the snapshots that rely on them, so a peer never holds
    // a snapshot whose packs it cannot find, even if replication stops midway.
    objects.sort_by_key(|(k, _)| match k {
        MetaKey::IndexSegment(..) => 0,
        MetaKey::Container(_) => 1,
        MetaKey::Snapshot(..) => 2,
    });
    // Peers in parallel: each costs a few fsyncs per object, and a slow one
    // should not hold up the rest.
    std::thread::scope(|s| {
        for (rec, peer) in peers {
            let objects = &objects;
            s.spawn(move || {
                sync_peer(
                    owner,
                    container,
                    rec,
                    peer.as_ref(),
                    objects,
                    verify,
                    progress,
                )
            });
        }
    });
    Ok(())
}

/// [`sync_meta`] for one peer.
fn sync_peer(
    owner: &Owner,
    container: &Container,
    rec: &PeerRecord,
    peer: &dyn Peer,
    objects: &[(MetaKey, Vec<u8>)],
    verify: bool,
    progress: &dyn Progress,
) {
    let cid = &container.manifest.id;
    let present: HashSet<MetaKey> = match peer.list_meta(Some(cid)) {
        Ok(v) => v.into_iter().collect(),
        Err(e) => {
            progress.event(Event::Warning(format!(
                "peer `{}`: cannot list manifests: {e}",
                rec.name
            )));
            return;
        }
    };
    let sampled: HashSet<usize> = if verify {
        let others: Vec<usize> = (0..objects.len())
            .filter(|&i| !matches!(objects[i].0, MetaKey::Container(_)))
            .collect();
        others
            .choose_multiple(&mut rand::thread_rng(), VERIFY_SAMPLE)
            .copied()
            .collect()
    } else {
        HashSet::new()
    };
    for (i, (key, bytes)) in objects.iter().enumerate() {
        let read_back = verify && (matches!(key, MetaKey::Container(_)) || sampled.contains(&i));
        let needs_put = if !present.contains(key) {
            true
        } else if read_back {
            match peer.get_meta(key) {
                Ok(b) if &b == bytes => false,
                Ok(theirs) => match verify_envelope(owner, container, key, &theirs) {
                    Err(e) => {
                        progress.event(Event::Warning(format!(
                            "peer `{}` held an invalid copy of {key} ({e}); replaced it",
                            rec.name
                        )));
                        true
                    }
                    Ok(h) => h.revision < revision_of(bytes),
                },
                Err(_) => true,
            }
        } else {
            false
        };
        if !needs_put {
            continue;
        }
        match peer.put_meta(key, bytes) {
            Ok(()) => {}
            Err(PeerError::MetaRejected { reason, .. })
                if matches!(*reason, MetaRejection::NotNewer { .. }) =>
            {
                progress.event(Event::Warning(format!(
                    "peer `{}` holds a newer revision of {key} than this machine ({reason}): \
                     run `trove sync` to bring this machine up to date",
                    rec.name
                )))
            }
            Err(e @ PeerError::MetaRejected { .. }) => {
                progress.event(Event::Warning(e.to_string()))
            }
            Err(e) => {
                progress.event(Event::Warning(format!(
                    "peer `{}`: could not store {key}: {e} (it will be retried at the next backup)",
                    rec.name
                )));
                return;
            }
        }
    }
}

/// The revision an envelope carries (0 if it is unreadable).
fn revision_of(bytes: &[u8]) -> u64 {
    envelope::peek(bytes).map_or(0, |h| h.revision)
}

/// Verify a signed envelope of `container` as found on a peer.
pub fn verify_envelope(
    owner: &Owner,
    container: &Container,
    key: &MetaKey,
    bytes: &[u8],
) -> Result<EnvelopeHeader, EnvelopeError> {
    let (kind, object, seal) = match key {
        MetaKey::Container(c) => (
            BlobKind::ContainerManifest,
            c.0,
            owner.master.manifest_key(),
        ),
        MetaKey::Snapshot(_, id) => (
            BlobKind::SnapshotManifest,
            id.0,
            container.keys.seal.clone(),
        ),
        MetaKey::IndexSegment(_, id) => (BlobKind::IndexSegment, id.0, container.keys.seal.clone()),
    };
    envelope::open_signed(&owner.public(), &seal, kind, &object, bytes).map(|(h, _)| h)
}
