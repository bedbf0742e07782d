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
use trove_core::envelope;
use trove_core::manifest::{IndexSegment, PeerRecord, SnapshotManifest};
use trove_core::SegmentId;
use trove_peer::{MetaKey, Peer};

/// A snapshot whose manifest (and segment) may not be on the peers yet.
/// Version 1 of the index's pending record (table `pending`), still read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PendingCommit {
    pub snapshot: SnapshotManifest,
    pub snapshot_envelope: Vec<u8>,
    /// The segment publishing its packs, with its envelope.
    pub segment: Option<(IndexSegment, Vec<u8>)>,
}

/// The pending record as the index keeps it, version 2 (table
/// `pending_commits`): the segment only as its envelope, opened again by
/// whichever process finishes the commit. Version 1 held the segment twice
/// (about 17 MB for 200,000 new blobs), and redb holds a value being
/// written or removed twice more: 33 MiB above the commit's baseline.
/// Generic over the bytes so a record is written from borrowed envelopes
/// (`&[u8]`) and read into owned ones (`Vec<u8>`): postcard encodes both
/// as a length and the bytes.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StoredPending<B> {
    pub snapshot: SnapshotManifest,
    pub snapshot_envelope: B,
    pub segment: Option<(SegmentId, B)>,
}

impl PendingCommit {
    /// What the index stores of it (version 2).
    pub(crate) fn stored(&self) -> StoredPending<&[u8]> {
        StoredPending {
            snapshot: self.snapshot.clone(),
            snapshot_envelope: &self.snapshot_envelope,
            segment: self.segment.as_ref().map(|(s, e)| (s.id, e.as_slice())),
        }
    }
}

/// A pending record read back from the index, either version.
#[derive(Debug)]
pub(crate) enum StoredCommit {
    V1(PendingCommit),
    V2(StoredPending<Vec<u8>>),
}

impl StoredCommit {
    pub(crate) fn snapshot(&self) -> &SnapshotManifest {
        match self {
            Self::V1(p) => &p.snapshot,
            Self::V2(p) => &p.snapshot,
        }
    }

    /// The commit, its segment opened from its envelope.
    fn open(self, container: &Container) -> Result<PendingCommit> {
        let p = match self {
            Self::V1(p) => return Ok(p),
            Self::V2(p) => p,
        };
        let segment = match p.segment {
            None => None,
            Some((id, env)) => {
                // Signed by the identity its header names (this machine's,
                // when it was written), sealed under this container's keys,
                // and naming the segment the record names.
                let key = MetaKey::IndexSegment(p.snapshot.container, id);
                let seg = envelope::peek(&env)
                    .map_err(|e| e.to_string())
                    .and_then(|h| {
                        crate::sync::open_signed_object(&h.signer, &container.keys, key, &env)
                    })
                    .and_then(|opened| match opened {
                        crate::sync::Opened::Segment(seg) => Ok(seg),
                        _ => Err("it is not an index segment".to_owned()),
                    })
                    .map_err(|e| {
                        RepoError::Db(format!(
                            "the pending commit's index segment {} does not open: {e}",
                            id.short()
                        ))
                    })?;
                Some((seg, env))
            }
        };
        Ok(PendingCommit {
            snapshot: p.snapshot,
            snapshot_envelope: p.snapshot_envelope,
            segment,
        })
    }
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
    let pending = pending.open(container)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{backup, BackupOptions, KdfParams, Quiet};
    use std::collections::BTreeMap;
    use trove_core::keys::MasterSecret;
    use trove_core::manifest::Redundancy;
    use trove_peer::testing::{self, FailingPeer, MemoryPeer, Op};

    /// A backup that reached too few peers leaves a version-2 record: the
    /// segment as its envelope only. Finished by a later command, either
    /// version of the record commits the same snapshot and clears itself.
    #[test]
    fn pending_records_of_both_versions_are_finished() {
        for version in [2, 1] {
            let tmp = tempfile::tempdir().unwrap();
            let kdf = KdfParams {
                m_kib: 64,
                t: 1,
                p: 1,
            };
            let (home, owner) = Home::init(
                &tmp.path().join("home"),
                MasterSecret::generate(),
                b"pw",
                kdf,
            )
            .unwrap();
            let gated: Vec<Arc<FailingPeer>> = (0..3)
                .map(|i| {
                    Arc::new(FailingPeer::new(Arc::new(MemoryPeer::new(&format!(
                        "m{i}"
                    )))))
                })
                .collect();
            for (i, p) in gated.iter().enumerate() {
                let labels = BTreeMap::from([("site".to_owned(), format!("s{i}"))]);
                home.peers()
                    .attach(&format!("m{i}"), p.clone() as Arc<dyn Peer>, labels)
                    .unwrap();
            }
            let src = tmp.path().join("src");
            std::fs::create_dir_all(&src).unwrap();
            for i in 0..20 {
                std::fs::write(src.join(format!("f{i}")), vec![i as u8; 5000 * i]).unwrap();
            }
            home.containers()
                .create(&owner, "c", &[src], Some(Redundancy { k: 2, m: 1 }))
                .unwrap();
            for g in &gated[1..] {
                g.fail(Op::PutMeta, testing::unavailable);
            }
            let opts = BackupOptions::default();
            assert!(backup(&home, &owner, "c", &opts, &Quiet).is_err());
            let container = home.containers().open(&owner, "c").unwrap();
            let cid = container.manifest.id;
            let stored = home.index.pending(&cid).unwrap().expect("left pending");
            assert!(matches!(stored, StoredCommit::V2(_)), "{stored:?}");
            let pending = stored.open(&container).unwrap();
            let (seg, _) = pending.segment.as_ref().expect("a segment names the packs");
            assert!(!seg.packs.is_empty());
            if version == 1 {
                home.index.set_pending_v1(&cid, &pending).unwrap();
                let v1 = home.index.pending(&cid).unwrap();
                assert!(matches!(v1, Some(StoredCommit::V1(_))), "{v1:?}");
            }
            for g in &gated {
                g.heal_all();
            }
            let peers = home.peers().open_all().unwrap().available();
            let done = finish_interrupted(&home, &container, &peers, &Quiet).unwrap();
            assert_eq!(done, Some(pending.snapshot.id), "version {version}");
            assert!(home.index.pending_containers().unwrap().is_empty());
            assert_eq!(home.index.snapshots(&cid).unwrap().len(), 1);
            // The segment was applied: its packs are published.
            assert!(home.index.unpublished_packs(&cid).unwrap().is_empty());
        }
    }
}
