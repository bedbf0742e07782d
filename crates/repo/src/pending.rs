//! Committing a snapshot peers first (invariant 4, docs/design.md
//! §Invariants). A backup records its snapshot as *pending* in the local
//! index, copies the index segment and the snapshot manifest to the peers,
//! and only when enough peers hold them durably — enough to survive `m`
//! losses — does the local index call the snapshot committed. A process
//! killed in between leaves the pending record; the next command that opens
//! the container finishes the replication and the commit, so no snapshot
//! ever exists on this machine only.

use crate::error::{RepoError, Result};
use crate::home::{Container, Home, Owner};
use crate::index::FileCacheUpdate;
use crate::progress::{Event, Progress};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use trove_core::manifest::{IndexSegment, PeerRecord, SnapshotManifest};
use trove_peer::{MetaKey, Peer};

/// A snapshot whose manifest (and segment) may not be on the peers yet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PendingCommit {
    pub snapshot: SnapshotManifest,
    pub snapshot_envelope: Vec<u8>,
    /// The segment publishing its packs, with its envelope.
    pub segment: Option<(IndexSegment, Vec<u8>)>,
}

impl PendingCommit {
    /// The objects to copy, segment first: a peer never holds a snapshot
    /// whose packs it cannot find.
    fn objects(&self) -> Vec<(MetaKey, &[u8])> {
        let cid = self.snapshot.container;
        let mut out = Vec::new();
        if let Some((seg, env)) = &self.segment {
            out.push((MetaKey::IndexSegment(cid, seg.id), env.as_slice()));
        }
        out.push((
            MetaKey::Snapshot(cid, self.snapshot.id),
            self.snapshot_envelope.as_slice(),
        ));
        out
    }
}

/// How many peers must hold a snapshot's manifest before it counts: `m + 1`
/// survive `m` losses; fewer peers reachable, all of them (at least one).
fn needed(m: u8, reachable: usize) -> usize {
    (m as usize + 1).min(reachable).max(1)
}

/// Copy a pending commit's objects to the peers; how many hold them all.
fn replicate(
    pending: &PendingCommit,
    peers: &[(PeerRecord, Arc<dyn Peer>)],
    progress: &dyn Progress,
) -> usize {
    let objects = pending.objects();
    // Peers in parallel: each put is a few fsyncs on that peer.
    std::thread::scope(|s| {
        let holds: Vec<_> = peers
            .iter()
            .map(|(rec, peer)| {
                let objects = &objects;
                s.spawn(move || {
                    objects
                        .iter()
                        .all(|(key, bytes)| match peer.put_meta(key, bytes) {
                            Ok(()) => true,
                            Err(e) => {
                                progress.event(Event::Warning(format!(
                                    "peer `{}`: could not store {key}: {e}",
                                    rec.name
                                )));
                                false
                            }
                        })
                })
            })
            .collect();
        holds
            .into_iter()
            .map(|h| h.join())
            .filter(|held| matches!(held, Ok(true)))
            .count()
    })
}

/// Commit a snapshot peers first: record it pending, replicate, then commit
/// it locally with the new file cache. If too few peers take it, it stays
/// pending (the next command retries) and the error says so.
pub(crate) fn commit(
    home: &Home,
    container: &Container,
    pending: PendingCommit,
    peers: &[(PeerRecord, Arc<dyn Peer>)],
    files: &FileCacheUpdate,
    progress: &dyn Progress,
) -> Result<()> {
    let cid = container.manifest.id;
    home.index.set_pending(&cid, Some(&pending))?;
    let reached = replicate(&pending, peers, progress);
    let needed = needed(container.manifest.redundancy.m, peers.len());
    if reached < needed {
        return Err(RepoError::NotReplicated {
            snapshot: pending.snapshot.id,
            reached,
            needed,
        });
    }
    home.index.commit_snapshot(
        &pending.snapshot,
        &pending.snapshot_envelope,
        pending.segment.as_ref().map(|(s, e)| (s, e.as_slice())),
        files,
    )
}

/// Finish every commit killed processes left pending, in every container
/// (a no-op costing one index read when there is none).
pub(crate) fn finish_all(home: &Home, owner: &Owner, progress: &dyn Progress) -> Result<()> {
    let pending = home.index.pending_containers()?;
    if pending.is_empty() {
        return Ok(());
    }
    let peers = home.peers().open_all()?.available();
    for m in home.containers().manifests()? {
        if pending.contains(&m.id) {
            let c = home.containers().open(owner, &m.name)?;
            finish_interrupted(home, &c, &peers, progress)?;
        }
    }
    Ok(())
}

/// Finish a commit a killed process left pending: replicate it and commit
/// it locally (the file cache is not updated: the next backup reads the
/// changed files again, and dedup stores nothing twice). Returns the
/// snapshot committed, if there was one and enough peers took it.
pub(crate) fn finish_interrupted(
    home: &Home,
    container: &Container,
    peers: &[(PeerRecord, Arc<dyn Peer>)],
    progress: &dyn Progress,
) -> Result<Option<trove_core::SnapshotId>> {
    let cid = container.manifest.id;
    let Some(pending) = home.index.pending(&cid)? else {
        return Ok(None);
    };
    let reached = replicate(&pending, peers, progress);
    if reached < needed(container.manifest.redundancy.m, peers.len()) {
        progress.event(Event::Warning(format!(
            "snapshot {} of an interrupted backup reached only {reached} peer(s); it stays pending until more peers are reachable",
            pending.snapshot.id.short()
        )));
        return Ok(None);
    }
    home.index.commit_snapshot(
        &pending.snapshot,
        &pending.snapshot_envelope,
        pending.segment.as_ref().map(|(s, e)| (s, e.as_slice())),
        &FileCacheUpdate::default(),
    )?;
    progress.event(Event::Warning(format!(
        "finished committing snapshot {} of an interrupted backup",
        pending.snapshot.id.short()
    )));
    Ok(Some(pending.snapshot.id))
}
