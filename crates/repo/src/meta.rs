//! Replication of the small signed objects (container manifest, snapshot
//! manifests, index segments) to every peer, so that a new machine can
//! rebuild everything from one peer (DESIGN invariant 6).

use crate::error::Result;
use crate::home::{Container, Home, Owner};
use crate::progress::{Event, Progress};
use std::sync::Arc;
use trove_core::envelope::{self, EnvelopeError};
use trove_core::manifest::PeerRecord;
use trove_core::seal::BlobKind;
use trove_net::{MetaKey, Peer};

/// Push every envelope the index holds for the container to each peer that
/// lacks it. With `verify`, also read back the copies a peer has and replace
/// any that differ: silently when the peer's copy is a valid older version,
/// with a warning naming the peer when it fails verification.
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
    for (rec, peer) in peers {
        let present = match peer.list_meta(Some(cid)) {
            Ok(v) => v,
            Err(e) => {
                progress.event(Event::Warning(format!(
                    "peer `{}`: cannot list manifests: {e}",
                    rec.name
                )));
                continue;
            }
        };
        for (key, bytes) in &objects {
            let needs_put = if !present.contains(key) {
                true
            } else if verify {
                match peer.get_meta(key) {
                    Ok(b) if &b == bytes => false,
                    Ok(theirs) => {
                        if let Err(e) = verify_envelope(owner, container, key, &theirs) {
                            progress.event(Event::Warning(format!(
                                "peer `{}` held an invalid copy of {key} ({e}); replaced it",
                                rec.name
                            )));
                        }
                        true
                    }
                    Err(_) => true,
                }
            } else {
                false
            };
            if needs_put {
                if let Err(e) = peer.put_meta(key, bytes) {
                    progress.event(Event::Warning(format!(
                        "peer `{}`: could not store {key}: {e} (it will be retried at the next backup)",
                        rec.name
                    )));
                    break;
                }
            }
        }
    }
    Ok(())
}

/// Verify a signed envelope of `container` as found on a peer.
pub fn verify_envelope(
    owner: &Owner,
    container: &Container,
    key: &MetaKey,
    bytes: &[u8],
) -> Result<(), EnvelopeError> {
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
    envelope::open_signed(&owner.public(), &seal, kind, &object, bytes).map(|_| ())
}
