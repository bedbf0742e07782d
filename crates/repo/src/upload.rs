//! Storing packs: erasure-code, place on peers, put every fragment in
//! parallel, and re-place a fragment whose peer fails. A pack counts as
//! stored only when every one of its `k+m` fragments is acknowledged
//! (fsynced) by some peer.
//!
//! With [`Uploader::recording_intents`], every put is announced first in
//! the index (an upload intent: the pack, its fragments and their peers),
//! so fragments of a pack that is never recorded — the backup was killed —
//! are known to be this owner's, and `prune` deletes them.

use crate::error::{RepoError, Result};
use crate::index::{Index, UploadIntent};
use crate::profile::{Profiler, Stage};
use crate::progress::{Event, Progress};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use trove_core::erasure;
use trove_core::manifest::{FragmentLocation, PackRecord, PeerRecord, Redundancy};
use trove_core::pack::FinishedPack;
use trove_core::{ContainerId, PackId};
use trove_peer::placement::{place, replace_one, Candidate, Placement};
use trove_peer::Peer;

/// Places and uploads packs for one backup. [`Uploader::store`] takes
/// `&self`, so several threads can have packs in flight at once.
pub struct Uploader<'a> {
    peers: Vec<(PeerRecord, Arc<dyn Peer>)>,
    candidates: Vec<Candidate>,
    redundancy: Redundancy,
    placing: Mutex<Placing>,
    fragment_bytes: AtomicU64,
    progress: &'a dyn Progress,
    profiler: Option<&'a Profiler>,
    /// Where to announce puts before they happen.
    intents: Option<(&'a Index, ContainerId)>,
    /// The last stored pack's parity buffers, for the next one.
    spare_parity: Mutex<Vec<Vec<u8>>>,
    /// With [`Uploader::recycling_packs`], the last stored pack's buffer,
    /// until [`Uploader::spare_pack`] takes it.
    spare_pack: Option<Mutex<Option<Vec<u8>>>>,
}

/// What placement learns during a backup, shared by the upload threads.
struct Placing {
    /// Peers that failed a put during this backup; not used again.
    broken: Vec<bool>,
    seq: u64,
    warned_not_distinct: bool,
}

impl<'a> Uploader<'a> {
    pub fn new(
        peers: Vec<(PeerRecord, Arc<dyn Peer>)>,
        redundancy: Redundancy,
        progress: &'a dyn Progress,
    ) -> Self {
        let candidates = peers
            .iter()
            .map(|(rec, p)| Candidate {
                id: rec.id,
                labels: rec.labels.clone(),
                free_bytes: p.stat().ok().and_then(|s| s.free_bytes),
            })
            .collect();
        let placing = Placing {
            broken: vec![false; peers.len()],
            // A random start, so small backups do not all favour the same peers.
            seq: rand::random::<u32>() as u64,
            warned_not_distinct: false,
        };
        Self {
            peers,
            candidates,
            redundancy,
            placing: Mutex::new(placing),
            fragment_bytes: AtomicU64::new(0),
            progress,
            profiler: None,
            intents: None,
            spare_parity: Mutex::new(Vec::new()),
            spare_pack: None,
        }
    }

    /// Announce each pack's fragments and peers in `index` before putting
    /// them (see the module doc); recording the pack ends the intent.
    pub(crate) fn recording_intents(mut self, index: &'a Index, cid: ContainerId) -> Self {
        self.intents = Some((index, cid));
        self
    }

    /// Keep each stored pack's buffer for [`Uploader::spare_pack`]: a pack
    /// built in fresh memory faults in every page of it, and zeroing them
    /// alone was 3% of a first backup's CPU (docs/performance.md, sixteenth
    /// round).
    pub(crate) fn recycling_packs(mut self) -> Self {
        self.spare_pack = Some(Mutex::new(None));
        self
    }

    /// The buffer of the last pack stored, if not taken yet, to build the
    /// next pack in.
    pub(crate) fn spare_pack(&self) -> Option<Vec<u8>> {
        let spare = self.spare_pack.as_ref()?;
        spare.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Time encoding, writes and index updates as stages of `profiler`.
    pub(crate) fn profiled(mut self, profiler: &'a Profiler) -> Self {
        self.profiler = Some(profiler);
        self
    }

    /// Fragment bytes stored so far, parity included.
    pub fn fragment_bytes(&self) -> u64 {
        self.fragment_bytes.load(Ordering::Relaxed)
    }

    fn time<T>(&self, stage: Stage, bytes: u64, f: impl FnOnce() -> T) -> T {
        match self.profiler {
            Some(p) => p.time(stage, bytes, f),
            None => f(),
        }
    }

    fn placing(&self) -> std::sync::MutexGuard<'_, Placing> {
        self.placing.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Write the intent: every fragment with every peer it was given so far.
    fn announce(&self, pack: &PackId, tried: &[FragmentLocation], len: u64) -> Result<()> {
        let Some((index, cid)) = self.intents else {
            return Ok(());
        };
        self.time(Stage::Index, 0, || {
            index.put_intent(
                &cid,
                pack,
                &UploadIntent {
                    fragment_len: len,
                    fragments: tried.to_vec(),
                },
            )
        })
    }

    /// Where the fragments of the next pack go: indices into `self.peers`.
    fn place(&self, fragments: usize) -> Result<Vec<usize>> {
        let mut st = self.placing();
        let live: Vec<usize> = (0..self.peers.len()).filter(|i| !st.broken[*i]).collect();
        let live_cands: Vec<Candidate> = live.iter().map(|i| self.candidates[*i].clone()).collect();
        let p = place(fragments, &live_cands, st.seq).map_err(|_| RepoError::Placement {
            reason: "no peer is left that accepts data".into(),
        })?;
        st.seq += 1;
        if !p.distinct && !st.warned_not_distinct {
            st.warned_not_distinct = true;
            self.progress.event(Event::Warning(format!(
                "only {} peer(s) can take data for {} fragments per pack ({}): some peers hold more than one fragment of a pack, so losing one peer costs more",
                live.len(),
                fragments,
                self.redundancy
            )));
        }
        Ok(p.peers.iter().map(|i| live[*i]).collect())
    }

    /// Mark the peer in `slot` broken for the rest of the backup (saying so
    /// once) after a put to it failed with `e`.
    fn mark_broken(&self, slot: usize, e: &trove_peer::PeerError) {
        let mut st = self.placing();
        if !st.broken[slot] {
            st.broken[slot] = true;
            self.progress.event(Event::Warning(format!(
                "peer `{}` failed: {e} — its fragments go to other peers for the rest of this backup",
                self.peers[slot].0.name
            )));
        }
    }

    /// Encode, place and upload one pack; returns its record once every
    /// fragment is durably stored. Data fragments are stored from the
    /// pack's own bytes and the parity shards into the buffers of the pack
    /// stored before, so a pack in flight costs the pack and its parity.
    pub fn store(&self, pack: FinishedPack) -> Result<PackRecord> {
        let r = self.redundancy;
        let FinishedPack { id, bytes, entries } = pack;
        let pack_len = bytes.len() as u64;
        let spare =
            std::mem::take(&mut *self.spare_parity.lock().unwrap_or_else(|p| p.into_inner()));
        let frags = self
            .time(Stage::Encode, pack_len, || {
                erasure::EncodedPack::reusing(&id, &bytes, r.k, r.m, spare)
            })
            .map_err(|e| RepoError::Format(e.to_string()))?;
        let count = frags.count();
        let mut assign = self.place(count)?;
        let mut done = vec![false; count];
        let frag_len = frags.fragment_len() as u64;
        let at = |i: usize, slot: usize| FragmentLocation {
            index: i as u8,
            id: frags.ids[i],
            peer: self.peers[slot].0.id,
        };
        let mut tried: Vec<FragmentLocation> = (0..count).map(|i| at(i, assign[i])).collect();
        self.announce(&id, &tried, frag_len)?;
        loop {
            let results: Vec<(usize, Result<(), trove_peer::PeerError>)> =
                std::thread::scope(|s| {
                    let handles: Vec<_> = (0..count)
                        .filter(|i| !done[*i])
                        .map(|i| {
                            let (rec, peer) = &self.peers[assign[i]];
                            let (id, parts) = (&frags.ids[i], frags.parts(i));
                            s.spawn(move || {
                                let put = || peer.put_fragment_parts(id, &parts);
                                let put = match self.profiler {
                                    Some(p) => p.time_put(&rec.name, frag_len, put),
                                    None => put(),
                                };
                                (i, put)
                            })
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| h.join().expect("upload thread does not panic"))
                        .collect()
                });
            let mut failed = Vec::new();
            for (i, res) in results {
                match res {
                    Ok(()) => done[i] = true,
                    // An error that another peer would not have (say, a hash
                    // mismatch: a bug here) fails the pack instead of knocking
                    // out every peer in turn.
                    Err(e) if !e.is_retryable_elsewhere() => {
                        return Err(RepoError::Peer(e));
                    }
                    Err(e) => {
                        self.mark_broken(assign[i], &e);
                        failed.push(i);
                    }
                }
            }
            if failed.is_empty() {
                break;
            }
            let excluded: Vec<usize> = {
                let st = self.placing();
                (0..st.broken.len()).filter(|i| st.broken[*i]).collect()
            };
            for i in failed {
                let current = Placement {
                    peers: assign.clone(),
                    distinct: false,
                };
                let sub = replace_one(&current, i, &self.candidates, &excluded).ok_or_else(|| {
                    RepoError::Placement {
                        reason: format!(
                            "fragment {i} of pack {} could not be stored: every peer failed (the snapshot is not committed; nothing already backed up is affected)",
                            id.short()
                        ),
                    }
                })?;
                assign[i] = sub;
                tried.push(at(i, sub));
            }
            self.announce(&id, &tried, frag_len)?;
        }
        let fragments = (0..count).map(|i| at(i, assign[i])).collect();
        *self.spare_parity.lock().unwrap_or_else(|p| p.into_inner()) = frags.into_spare();
        if let Some(spare) = &self.spare_pack {
            *spare.lock().unwrap_or_else(|p| p.into_inner()) = Some(bytes);
        }
        let stored = frag_len * count as u64;
        self.fragment_bytes.fetch_add(stored, Ordering::Relaxed);
        self.progress.event(Event::PackStored { bytes: stored });
        Ok(PackRecord {
            id,
            k: r.k,
            m: r.m,
            pack_len,
            fragments,
            blobs: entries,
        })
    }
}

#[cfg(test)]
mod tests {
    //! Real folder peers, some wrapped to fail, under the uploader.
    use super::*;
    use crate::progress::Quiet;
    use trove_core::keys::SealKey;
    use trove_core::pack::PackBuilder;
    use trove_core::seal::BlobKind;
    use trove_core::{BlobId, FragmentId, PeerId};
    use trove_peer::testing::{full, hash_mismatch, FailingPeer, MakeError, Op};
    use trove_peer::{FolderPeer, PeerError};

    type Peers = Vec<(PeerRecord, Arc<dyn Peer>)>;

    /// `n` folder peers, those named in `failing` failing every put with
    /// the given error; and those failing peers, to count their attempts.
    fn peers(
        dir: &std::path::Path,
        n: usize,
        failing: &[(usize, MakeError)],
    ) -> (Peers, Vec<Arc<FailingPeer>>) {
        let mut failing_peers = Vec::new();
        let peers = (0..n)
            .map(|i| {
                let name = format!("p{i}");
                let folder = FolderPeer::create(&name, &dir.join(&name)).unwrap();
                let rec = PeerRecord {
                    id: PeerId::random(),
                    name,
                    location: String::new(),
                    labels: Default::default(),
                };
                let peer: Arc<dyn Peer> = match failing.iter().find(|(j, _)| *j == i) {
                    Some((_, f)) => {
                        let failing = Arc::new(
                            FailingPeer::new(Arc::new(folder)).failing(Op::PutFragment, *f),
                        );
                        failing_peers.push(failing.clone());
                        failing
                    }
                    None => Arc::new(folder),
                };
                (rec, peer)
            })
            .collect();
        (peers, failing_peers)
    }

    fn a_pack() -> trove_core::pack::FinishedPack {
        let mut b = PackBuilder::default();
        b.add(BlobKind::Data, BlobId([1; 32]), &[7u8; 10_000], 10_000);
        b.finish(&SealKey::from_bytes([3; 32]))
    }

    #[test]
    fn a_full_peer_is_routed_around_and_every_fragment_lands() {
        let dir = tempfile::tempdir().unwrap();
        let (ps, failing) = peers(dir.path(), 7, &[(2, full)]);
        let up = Uploader::new(ps.clone(), Redundancy { k: 4, m: 2 }, &Quiet);
        for _ in 0..5 {
            let rec = up.store(a_pack()).unwrap();
            assert_eq!(rec.fragments.len(), 6);
            let mut holders: Vec<_> = rec.fragments.iter().map(|f| f.peer).collect();
            holders.sort();
            holders.dedup();
            assert_eq!(
                holders.len(),
                6,
                "six distinct peers still hold the six fragments"
            );
            assert!(
                !holders.contains(&ps[2].0.id),
                "the full peer holds nothing"
            );
            for f in &rec.fragments {
                let (_, p) = ps.iter().find(|(r, _)| r.id == f.peer).unwrap();
                assert_eq!(FragmentId::of(&p.get_fragment(&f.id).unwrap()), f.id);
            }
        }
        assert!(
            failing[0].attempts(Op::PutFragment) <= 1,
            "a peer that failed is not tried again in the same backup"
        );
    }

    #[test]
    fn every_peer_failing_refuses_the_pack() {
        let dir = tempfile::tempdir().unwrap();
        let (ps, _) = peers(dir.path(), 3, &[(0, full), (1, full), (2, full)]);
        let up = Uploader::new(ps, Redundancy { k: 2, m: 1 }, &Quiet);
        assert!(matches!(
            up.store(a_pack()),
            Err(RepoError::Placement { .. })
        ));
    }

    #[test]
    fn a_local_bug_fails_at_once_instead_of_excluding_peers() {
        let dir = tempfile::tempdir().unwrap();
        let (ps, _) = peers(
            dir.path(),
            3,
            &[(0, hash_mismatch), (1, hash_mismatch), (2, hash_mismatch)],
        );
        let up = Uploader::new(ps, Redundancy { k: 2, m: 1 }, &Quiet);
        assert!(matches!(
            up.store(a_pack()),
            Err(RepoError::Peer(PeerError::HashMismatch { .. }))
        ));
    }
}
