//! Replication of the small signed objects (container manifest, snapshot
//! manifests, index segments) to every peer, so that a new machine can
//! rebuild everything from one peer (DESIGN invariant 6).

use crate::error::Result;
use crate::home::Home;
use crate::progress::{Event, Progress};
use std::sync::Arc;
use trove_core::manifest::PeerRecord;
use trove_core::ContainerId;
use trove_net::{MetaKey, Peer};

/// Push every envelope the index holds for `cid` to each peer that lacks it.
/// With `verify`, also read back the copies a peer has and replace any that
/// differ (a damaged or tampered copy), with a warning naming the peer.
pub fn sync_meta(
    home: &Home,
    cid: &ContainerId,
    peers: &[(PeerRecord, Arc<dyn Peer>)],
    verify: bool,
    progress: &dyn Progress,
) -> Result<()> {
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
                    Ok(_) => {
                        progress.event(Event::Warning(format!(
                            "peer `{}` held an altered copy of {key}; replaced it",
                            rec.name
                        )));
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
