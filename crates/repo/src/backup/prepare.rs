//! Stage 1 of a backup: the container, its peers, an up-to-date roster and
//! replicated metadata, and the walk of the sources (which may go on while
//! the pipeline starts reading: [`Walking`]).

use crate::changes::Changes;
use crate::error::{RepoError, Result};
use crate::health::DEFAULT_PEER_LOST_AFTER;
use crate::home::{Container, Home, Owner};
use crate::index::Lookups;
use crate::meta::sync_meta;
use crate::profile::{Profiler, Stage};
use crate::progress::{Event, Progress};
use crate::scan::{self, Early, EarlyFile, Scan};
use crossbeam_channel::{bounded, Receiver};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::{Scope, ScopedJoinHandle};
use trove_core::manifest::{ContainerManifest, PeerRecord};
use trove_core::PeerId;
use trove_peer::Peer;

/// The peers of a container that could be opened.
type OpenPeers = Vec<(PeerRecord, Arc<dyn Peer>)>;

/// The container and the peers of it that could be opened.
pub(super) struct Opened {
    pub container: Container,
    pub peers: OpenPeers,
}

/// What the commit starts from.
pub(super) struct Prepared {
    pub container: Container,
    /// The peers that could be opened.
    pub peers: OpenPeers,
    /// The file cache and the dedup set as they were before this backup.
    pub lookups: Arc<Lookups>,
    pub scan: Scan,
}

/// A walk of a container's sources against its file cache.
pub(super) struct Walked {
    pub lookups: Lookups,
    pub scan: Scan,
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
    let scan = scan::scan(&paths, &lookups, changes, None, profiler);
    Ok(Walked { lookups, scan })
}

/// Files to read queued by a walk under way, at most: each holds its path.
/// Enough for the readers to start on while the walk goes on, and a few
/// hundred kilobytes.
const EARLY_QUEUED: usize = 4096;

/// A walk of a container's sources under way on a thread of `s`, begun
/// before the container was opened (while the passphrase was stretched).
pub(super) struct Walking<'s> {
    sources: Vec<String>,
    pub lookups: Arc<Lookups>,
    /// The files to read it finds, as it finds them.
    pub early: Receiver<EarlyFile>,
    pub handle: ScopedJoinHandle<'s, Scan>,
}

impl<'s> Walking<'s> {
    /// Start walking `manifest`'s sources on a thread of `s`.
    pub fn start<'e: 's>(
        s: &'s Scope<'s, 'e>,
        home: &Home,
        manifest: &ContainerManifest,
        changes: Option<&'e Changes>,
        profiler: &'e Profiler,
    ) -> Result<Self> {
        let lookups = Arc::new(home.index.lookups(&manifest.id)?);
        let paths: Vec<PathBuf> = manifest.sources.iter().map(PathBuf::from).collect();
        let (tx, early) = bounded(EARLY_QUEUED);
        let walk_lookups = lookups.clone();
        let handle = s.spawn(move || {
            // The queue closes when `tx` goes, at the walk's end.
            let early = Early::new(tx);
            scan::scan(&paths, &walk_lookups, changes, Some(&early), profiler)
        });
        Ok(Self {
            sources: manifest.sources.clone(),
            lookups,
            early,
            handle,
        })
    }

    /// The walk stands if opening the container changed neither its
    /// sources nor the blobs the file cache may count on (a segment that
    /// removed packs, brought in by the meta sync, raises the epoch).
    pub fn stands(&self, home: &Home, container: &Container) -> Result<bool> {
        Ok(self.sources == container.manifest.sources
            && self.lookups.epoch == home.index.blob_epoch(&container.manifest.id)?)
    }
}

/// Open the container and its peers.
pub(super) fn open_container(
    home: &Home,
    owner: &Owner,
    name: &str,
    profiler: &Profiler,
    progress: &dyn Progress,
) -> Result<Opened> {
    let (container, peers) =
        profiler.time_alone(Stage::Prepare, || open(home, owner, name, progress))?;
    Ok(Opened { container, peers })
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

/// The walk found something to back up, or the error that says why not.
pub(super) fn check_found(name: &str, scan: &Scan) -> Result<()> {
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
    Ok(())
}

/// Say what the walk found and what is to be read.
pub(super) fn announce(scan: &Scan, progress: &dyn Progress) {
    let to_read = scan.files.iter().filter(|f| !f.cached);
    progress.event(Event::Scanned {
        files: scan.files.len() as u64 + scan.kept.files,
        bytes: scan.files.iter().map(|f| f.stat.size).sum::<u64>() + scan.kept.bytes,
        to_read: to_read.clone().count() as u64,
        to_read_bytes: to_read.map(|f| f.stat.size).sum(),
    });
}
