//! Doing the deletions the index decided, and finding leftovers.
//!
//! A prune, a forget or an abandoned upload never deletes on a peer
//! directly: it first commits its change of the index log together with
//! the deletions it justifies ([`crate::index::Deletion`], one transaction),
//! and this pass does them afterwards, peer by peer. A peer that cannot be
//! reached keeps its deletions in the index until a later prune, forget or
//! backup reaches it ("deleted later, not forgotten"). A peer is asked to
//! delete only once it holds every index segment of the container's current
//! log, so no peer is left naming deleted packs in a log it alone holds.
//! Peers delete into their trash (invariant 7): a node keeps what was
//! deleted for its operator's grace period, a folder peer until purged.
//!
//! Leftovers: fragments of uploads never recorded (a killed backup, see
//! [`crate::upload`]) and temporary files of killed writes in folder peers'
//! `tmp/`. Only fragments the index knows to be this owner's are ever
//! deleted: a folder peer may hold other containers' or other owners'.

use crate::error::Result;
use crate::home::{Container, Home};
use crate::index::{Deletion, Doomed};
use crate::location::PeerLocation;
use crate::peers::PeerSet;
use crate::progress::{Event, Progress};
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime};
use trove_core::erasure;
use trove_core::manifest::PackRecord;
use trove_core::PeerId;
use trove_peer::{FolderPeer, MetaKey, Peer};

/// Files in a folder peer's `tmp/` untouched this long are leftovers of a
/// killed write: a write in progress touches its file at every step.
pub(crate) const STALE_TMP: Duration = Duration::from_secs(60);

/// The length of each fragment of a pack, from its record.
pub(crate) fn fragment_len(rec: &PackRecord) -> u64 {
    (erasure::FRAGMENT_HEADER_LEN + erasure::shard_len(rec.pack_len as usize, rec.k)) as u64
}

/// What a deletion pass did, and what it left for later.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DeletionReport {
    pub fragments_deleted: u64,
    /// Bytes of those fragments (now in their peers' trash).
    pub fragment_bytes_freed: u64,
    /// Snapshot manifests and index segments deleted, counted per peer.
    pub manifests_deleted: u64,
    /// Deletions left for a later prune, forget or backup, per peer.
    pub pending: Vec<PendingDeletions>,
}

impl DeletionReport {
    fn add(&mut self, other: DeletionReport) {
        self.fragments_deleted += other.fragments_deleted;
        self.fragment_bytes_freed += other.fragment_bytes_freed;
        self.manifests_deleted += other.manifests_deleted;
        self.pending.extend(other.pending);
    }
}

/// Deletions one peer could not take now.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PendingDeletions {
    pub peer: String,
    pub fragments: u64,
    pub fragment_bytes: u64,
    pub manifests: u64,
    /// Why they wait.
    pub reason: String,
}

impl std::fmt::Display for PendingDeletions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "peer `{}`: {} fragment(s) ({} bytes) and {} manifest(s) to delete later: {}",
            self.peer, self.fragments, self.fragment_bytes, self.manifests, self.reason
        )
    }
}

/// Do the pending deletions of `container` on every peer of `peers` that
/// holds the current index log; leave the others pending, and say why.
pub(crate) fn run(
    home: &Home,
    container: &Container,
    peers: &PeerSet,
    progress: &dyn Progress,
) -> Result<DeletionReport> {
    let cid = container.manifest.id;
    let todo = home.index.deletions(&cid)?;
    if todo.is_empty() {
        return Ok(DeletionReport::default());
    }
    let log: Vec<MetaKey> = home
        .index
        .meta(&cid)?
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| matches!(k, MetaKey::IndexSegment(..)))
        .collect();
    let mut by_peer: BTreeMap<PeerId, Vec<Deletion>> = BTreeMap::new();
    for d in todo {
        by_peer.entry(d.peer).or_default().push(d);
    }
    let results: Vec<(Vec<Deletion>, DeletionReport)> = std::thread::scope(|s| {
        let handles: Vec<_> = by_peer
            .iter()
            .map(|(id, list)| {
                let slot = peers.slots.iter().find(|s| s.record.id == *id);
                let log = &log;
                s.spawn(move || match slot {
                    None => (
                        Vec::new(),
                        pending(&id.short(), list, "the peer is no longer configured"),
                    ),
                    Some(slot) => match &slot.peer {
                        Err(e) => (Vec::new(), pending(&slot.record.name, list, &e.to_string())),
                        Ok(p) => on_peer(&slot.record.name, p.as_ref(), list, &cid, log),
                    },
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("deletion thread does not panic"))
            .collect()
    });
    let mut report = DeletionReport::default();
    let mut done = Vec::new();
    for (d, r) in results {
        done.extend(d);
        report.add(r);
    }
    home.index.deletions_done(&done)?;
    for p in &report.pending {
        progress.event(Event::Warning(p.to_string()));
    }
    Ok(report)
}

/// Everything in `list` left for later.
fn pending(peer: &str, list: &[Deletion], reason: &str) -> DeletionReport {
    let mut p = PendingDeletions {
        peer: peer.to_owned(),
        fragments: 0,
        fragment_bytes: 0,
        manifests: 0,
        reason: reason.to_owned(),
    };
    for d in list {
        match d.what {
            Doomed::Fragment(_) => {
                p.fragments += 1;
                p.fragment_bytes += d.bytes;
            }
            Doomed::Meta(_) => p.manifests += 1,
        }
    }
    DeletionReport {
        pending: vec![p],
        ..Default::default()
    }
}

/// Delete `list` on one reachable peer, once it holds the whole log.
fn on_peer(
    name: &str,
    peer: &dyn Peer,
    list: &[Deletion],
    cid: &trove_core::ContainerId,
    log: &[MetaKey],
) -> (Vec<Deletion>, DeletionReport) {
    let held: HashSet<MetaKey> = match peer.list_meta(Some(cid)) {
        Ok(v) => v.into_iter().collect(),
        Err(e) => return (Vec::new(), pending(name, list, &e.to_string())),
    };
    if let Some(missing) = log.iter().find(|k| !held.contains(k)) {
        let why = format!(
            "it does not hold {missing} yet (the next backup or prune copies it there first)"
        );
        return (Vec::new(), pending(name, list, &why));
    }
    let mut done = Vec::new();
    let mut report = DeletionReport::default();
    let mut left = Vec::new();
    let mut why = None;
    for d in list {
        if why.is_some() {
            left.push(*d);
            continue;
        }
        let r = match &d.what {
            Doomed::Fragment(f) => peer.delete_fragment(f),
            Doomed::Meta(k) => peer.delete_meta(k),
        };
        match r {
            Ok(()) => {
                match d.what {
                    Doomed::Fragment(_) => {
                        report.fragments_deleted += 1;
                        report.fragment_bytes_freed += d.bytes;
                    }
                    Doomed::Meta(_) => report.manifests_deleted += 1,
                }
                done.push(*d);
            }
            // The first failure stops this peer: the rest waits with it.
            Err(e) => {
                why = Some(e.to_string());
                left.push(*d);
            }
        }
    }
    if let Some(why) = why {
        report.add(pending(name, &left, &why));
    }
    (done, report)
}

/// The configured folder peers that can be opened, as folder peers.
fn folders(peers: &PeerSet) -> Vec<FolderPeer> {
    peers
        .slots
        .iter()
        .filter(|s| s.available().is_some())
        .filter_map(|s| match s.record.location.parse::<PeerLocation>() {
            Ok(PeerLocation::Folder(path)) => FolderPeer::open(&s.record.name, &path).ok(),
            _ => None,
        })
        .collect()
}

/// Remove stale files from folder peers' `tmp/` (nodes sweep their own);
/// returns how many and their bytes.
pub(crate) fn sweep_tmp(peers: &PeerSet, progress: &dyn Progress) -> (u64, u64) {
    let now = SystemTime::now();
    let (mut files, mut bytes) = (0, 0);
    for f in folders(peers) {
        match f.sweep_tmp(STALE_TMP, now) {
            Ok((n, b)) => {
                files += n;
                bytes += b;
            }
            Err(e) => progress.event(Event::Warning(e.to_string())),
        }
    }
    (files, bytes)
}

/// Empty the trash of folder and bucket peers of what was deleted at least
/// `grace` ago (nodes empty their own, on their operator's grace period).
/// Returns how many objects went; a peer that fails is a warning.
pub(crate) fn empty_owned_trash(peers: &PeerSet, grace: Duration, progress: &dyn Progress) -> u64 {
    let now = SystemTime::now();
    let mut purged = 0;
    for (_, peer) in peers.available() {
        match peer.purge_trash(grace, now) {
            Ok(n) => purged += n.unwrap_or(0),
            Err(e) => progress.event(Event::Warning(e.to_string())),
        }
    }
    purged
}

/// What killed uploads and unfinished deletions left on the peers.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Leftovers {
    /// Fragments of uploads never recorded (a killed backup or prune),
    /// still on their peers.
    pub fragments: u64,
    pub fragment_bytes: u64,
    /// Deletions decided but not done yet (a peer was unreachable, or a
    /// prune was interrupted): fragments and manifests.
    pub pending_fragments: u64,
    pub pending_fragment_bytes: u64,
    pub pending_manifests: u64,
    /// Files in folder peers' `tmp/` older than a minute.
    pub tmp_files: u64,
    pub tmp_bytes: u64,
}

impl Leftovers {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Count the leftovers of one container (uploads, pending deletions) on
/// the reachable peers.
pub(crate) fn count(home: &Home, container: &Container, peers: &PeerSet) -> Result<Leftovers> {
    let cid = container.manifest.id;
    let mut l = Leftovers::default();
    for (_, intent) in home.index.intents(&cid)? {
        for f in &intent.fragments {
            let holds = peers
                .slots
                .iter()
                .find(|s| s.record.id == f.peer)
                .and_then(|s| s.available())
                .is_some_and(|p| p.has_fragment(&f.id).unwrap_or(false));
            if holds {
                l.fragments += 1;
                l.fragment_bytes += intent.fragment_len;
            }
        }
    }
    for d in home.index.deletions(&cid)? {
        match d.what {
            Doomed::Fragment(_) => {
                l.pending_fragments += 1;
                l.pending_fragment_bytes += d.bytes;
            }
            Doomed::Meta(_) => l.pending_manifests += 1,
        }
    }
    Ok(l)
}

/// Count stale files in folder peers' `tmp/`.
pub(crate) fn count_tmp(peers: &PeerSet) -> (u64, u64) {
    let now = SystemTime::now();
    folders(peers)
        .iter()
        .flat_map(|f| f.stale_tmp(STALE_TMP, now))
        .fold((0, 0), |(n, b), (_, len)| (n + 1, b + len))
}
