//! Stage 1 of a backup: the container, its peers, an up-to-date roster and
//! replicated metadata, and the walk of the sources.

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
use trove_core::manifest::PeerRecord;
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

pub(super) fn prepare(
    home: &Home,
    owner: &Owner,
    name: &str,
    profiler: &Profiler,
    progress: &dyn Progress,
) -> Result<Prepared> {
    profiler
        .time_alone(Stage::Prepare, || open(home, owner, name, progress))
        .and_then(|(container, peers, lookups)| {
            walk(name, container, peers, lookups, profiler, progress)
        })
}

/// The container and its peers, brought up to date, with the dedup set
/// and the file cache.
fn open(
    home: &Home,
    owner: &Owner,
    name: &str,
    progress: &dyn Progress,
) -> Result<(Container, OpenPeers, Lookups)> {
    let mut container = home.containers().open(owner, name)?;
    let cid = container.manifest.id;
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

    let lookups = home.index.lookups(&cid)?;
    Ok((container, available, lookups))
}

/// Walk the sources against the file cache.
fn walk(
    name: &str,
    container: Container,
    peers: OpenPeers,
    lookups: Lookups,
    profiler: &Profiler,
    progress: &dyn Progress,
) -> Result<Prepared> {
    let sources: Vec<PathBuf> = container
        .manifest
        .sources
        .iter()
        .map(PathBuf::from)
        .collect();
    let scan = profiler.time_alone(Stage::Scan, || scan::scan(&sources, &lookups));
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
        files: scan.files.len() as u64,
        bytes: scan.files.iter().map(|f| f.stat.size).sum(),
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
