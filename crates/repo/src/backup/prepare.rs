//! Stage 1 of a backup: the container, its peers, an up-to-date roster and
//! replicated metadata, and the walk of the sources.

use crate::changes::Changes;
use crate::error::{RepoError, Result};
use crate::health::DEFAULT_PEER_LOST_AFTER;
use crate::home::{Container, Home, Owner};
use crate::index::Lookups;
use crate::meta::sync_meta;
use crate::profile::{Profiler, Stage};
use crate::progress::{Event, Progress};
use crate::scan::{self, Scan};
use std::path::PathBuf;
use std::sync::Arc;
use trove_core::manifest::{ContainerManifest, PeerRecord};
use trove_core::PeerId;
use trove_peer::Peer;

/// The peers of a container that could be opened.
type OpenPeers = Vec<(PeerRecord, Arc<dyn Peer>)>;

/// What the pipeline and the commit start from.
pub(super) struct Prepared {
    pub container: Container,
    /// The peers that could be opened.
    pub peers: OpenPeers,
    /// The file cache and the dedup set as they were before this backup.
    pub lookups: Lookups,
    pub scan: Scan,
}

/// A walk of a container's sources against the file cache, possibly done
/// before the container was opened (while the passphrase was stretched).
pub(super) struct Walked {
    sources: Vec<String>,
    lookups: Lookups,
    scan: Scan,
}

/// Walk `manifest`'s sources against its file cache as of now (guided by
/// `changes` when a watcher said what changed).
pub(super) fn walk_sources(
    home: &Home,
    manifest: &ContainerManifest,
    changes: Option<&Changes>,
    profiler: &Profiler,
) -> Result<Walked> {
    let lookups = home.index.lookups(&manifest.id)?;
    let paths: Vec<PathBuf> = manifest.sources.iter().map(PathBuf::from).collect();
    let scan = profiler.time_alone(Stage::Scan, || scan::scan(&paths, &lookups, changes));
    Ok(Walked {
        sources: manifest.sources.clone(),
        lookups,
        scan,
    })
}

pub(super) fn prepare(
    home: &Home,
    owner: &Owner,
    name: &str,
    early: Option<Walked>,
    changes: Option<&Changes>,
    profiler: &Profiler,
    progress: &dyn Progress,
) -> Result<Prepared> {
    let (container, peers) =
        profiler.time_alone(Stage::Prepare, || open(home, owner, name, progress))?;
    // An early walk stands if opening changed neither the sources nor the
    // blobs the file cache may count on (a segment that removed packs,
    // brought in by the meta sync, raises the epoch): else walk again.
    let walked = match early {
        Some(w)
            if w.sources == container.manifest.sources
                && w.lookups.epoch == home.index.blob_epoch(&container.manifest.id)? =>
        {
            w
        }
        _ => walk_sources(home, &container.manifest, changes, profiler)?,
    };
    finish(name, container, peers, walked, progress)
}

/// The container and its peers, brought up to date.
fn open(
    home: &Home,
    owner: &Owner,
    name: &str,
    progress: &dyn Progress,
) -> Result<(Container, OpenPeers)> {
    let mut container = home.containers().open(owner, name)?;
    let mut peers = home.peers().open_all()?;
    if peers.is_empty() {
        return Err(RepoError::NoPeers);
    }
    peers.record_health(home, DEFAULT_PEER_LOST_AFTER, true)?;
    peers.warn_unavailable(progress);
    // A peer failing its audits is lost: what it holds is being rebuilt
    // elsewhere, and it gets nothing new.
    let distrusted: Vec<PeerId> = peers
        .slots
        .iter()
        .filter_map(|s| s.health.as_ref())
        .filter(|h| h.failed_audits())
        .map(|h| {
            progress.event(Event::Warning(format!(
                "peer {} {}; it gets no new data",
                h.peer,
                h.describe()
            )));
            h.id
        })
        .collect();
    let available: Vec<_> = peers
        .available()
        .into_iter()
        .filter(|(rec, _)| !distrusted.contains(&rec.id))
        .collect();
    if available.is_empty() {
        return Err(RepoError::Placement {
            reason: "no configured peer is reachable; nothing was stored".into(),
        });
    }

    // The roster is every configured peer, so a new machine finds them all.
    home.containers()
        .update_roster(owner, &mut container, peers.records())?;
    crate::pending::finish_interrupted(home, &container, &available, progress)?;
    sync_meta(home, owner, &container, &available, true, progress)?;
    Ok((container, available))
}

/// Check the walk found something, and say what is to be read.
fn finish(
    name: &str,
    container: Container,
    peers: OpenPeers,
    walked: Walked,
    progress: &dyn Progress,
) -> Result<Prepared> {
    let Walked { lookups, scan, .. } = walked;
    if scan.roots.is_empty() {
        return Err(RepoError::SourcesUnreadable {
            container: name.to_owned(),
            details: scan
                .unreadable
                .iter()
                .map(|u| format!("{}: {}", u.path.display(), u.error))
                .collect(),
        });
    }
    let to_read = scan.files.iter().filter(|f| !f.cached);
    progress.event(Event::Scanned {
        files: scan.files.len() as u64 + scan.kept.files,
        bytes: scan.files.iter().map(|f| f.stat.size).sum::<u64>() + scan.kept.bytes,
        to_read: to_read.clone().count() as u64,
        to_read_bytes: to_read.map(|f| f.stat.size).sum(),
    });
    Ok(Prepared {
        container,
        peers,
        lookups,
        scan,
    })
}
