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
use crate::progress::{Event, Progress};
use std::sync::Arc;
use trove_core::erasure;
use trove_core::manifest::{FragmentLocation, PackRecord, PeerRecord, Redundancy};
use trove_core::pack::FinishedPack;
use trove_core::ContainerId;
use trove_peer::placement::{place, replace_one, Candidate, Placement};
use trove_peer::Peer;

/// Places and uploads packs for one backup.
pub struct Uploader<'a> {
    peers: Vec<(PeerRecord, Arc<dyn Peer>)>,
    candidates: Vec<Candidate>,
    /// Peers that failed a put during this backup; not used again.
    broken: Vec<bool>,
    redundancy: Redundancy,
    seq: u64,
    warned_not_distinct: bool,
    pub fragment_bytes: u64,
    progress: &'a dyn Progress,
    /// Where to announce puts before they happen.
    intents: Option<(&'a Index, ContainerId)>,
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
        let broken = vec![false; peers.len()];
        Self {
            peers,
            candidates,
            broken,
            redundancy,
            // A random start, so small backups do not all favour the same peers.
            seq: rand::random::<u32>() as u64,
            warned_not_distinct: false,
            fragment_bytes: 0,
            progress,
            intents: None,
        }
    }

    /// Announce each pack's fragments and peers in `index` before putting
    /// them (see the module doc); recording the pack ends the intent.
    pub(crate) fn recording_intents(mut self, index: &'a Index, cid: ContainerId) -> Self {
        self.intents = Some((index, cid));
        self
    }

    /// Write the intent: every fragment with every peer it was given so far.
    fn announce(&self, pack: &FinishedPack, tried: &[FragmentLocation], len: u64) -> Result<()> {
        let Some((index, cid)) = self.intents else {
            return Ok(());
        };
        index.put_intent(
            &cid,
            &pack.id,
            &UploadIntent {
                fragment_len: len,
                fragments: tried.to_vec(),
            },
        )
    }

    fn excluded(&self) -> Vec<usize> {
        (0..self.broken.len()).filter(|i| self.broken[*i]).collect()
    }

    /// Encode, place and upload one pack; returns its record once every
    /// fragment is durably stored.
    pub fn store(&mut self, pack: &FinishedPack) -> Result<PackRecord> {
        let r = self.redundancy;
        let frags = erasure::encode(&pack.id, &pack.bytes, r.k, r.m)
            .map_err(|e| RepoError::Format(e.to_string()))?;
        let live: Vec<usize> = (0..self.peers.len()).filter(|i| !self.broken[*i]).collect();
        let live_cands: Vec<Candidate> = live.iter().map(|i| self.candidates[*i].clone()).collect();
        let p = place(frags.len(), &live_cands, self.seq).map_err(|_| RepoError::Placement {
            reason: "no peer is left that accepts data".into(),
        })?;
        self.seq += 1;
        if !p.distinct && !self.warned_not_distinct {
            self.warned_not_distinct = true;
            self.progress.event(Event::Warning(format!(
                "only {} peer(s) can take data for {} fragments per pack ({}): some peers hold more than one fragment of a pack, so losing one peer costs more",
                live.len(),
                frags.len(),
                r
            )));
        }
        let mut assign: Vec<usize> = p.peers.iter().map(|i| live[*i]).collect();
        let mut done = vec![false; frags.len()];
        let frag_len = frags.first().map_or(0, |f| f.bytes.len() as u64);
        let at = |i: usize, slot: usize| FragmentLocation {
            index: frags[i].index,
            id: frags[i].id,
            peer: self.peers[slot].0.id,
        };
        let mut tried: Vec<FragmentLocation> = (0..frags.len()).map(|i| at(i, assign[i])).collect();
        self.announce(pack, &tried, frag_len)?;
        loop {
            let results: Vec<(usize, Result<(), trove_peer::PeerError>)> =
                std::thread::scope(|s| {
                    let handles: Vec<_> = (0..frags.len())
                        .filter(|i| !done[*i])
                        .map(|i| {
                            let peer = &self.peers[assign[i]].1;
                            let f = &frags[i];
                            s.spawn(move || (i, peer.put_fragment(&f.id, &f.bytes)))
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
                        let slot = assign[i];
                        if !self.broken[slot] {
                            self.broken[slot] = true;
                            self.progress.event(Event::Warning(format!(
                                "peer `{}` failed: {e} — its fragments go to other peers for the rest of this backup",
                                self.peers[slot].0.name
                            )));
                        }
                        failed.push(i);
                    }
                }
            }
            if failed.is_empty() {
                break;
            }
            let excluded = self.excluded();
            for i in failed {
                let current = Placement {
                    peers: assign.clone(),
                    distinct: false,
                };
                let sub = replace_one(&current, i, &self.candidates, &excluded).ok_or_else(|| {
                    RepoError::Placement {
                        reason: format!(
                            "fragment {i} of pack {} could not be stored: every peer failed (the snapshot is not committed; nothing already backed up is affected)",
                            pack.id.short()
                        ),
                    }
                })?;
                assign[i] = sub;
                tried.push(at(i, sub));
            }
            self.announce(pack, &tried, frag_len)?;
        }
        let bytes: u64 = frags.iter().map(|f| f.bytes.len() as u64).sum();
        self.fragment_bytes += bytes;
        self.progress.event(Event::PackStored { bytes });
        Ok(PackRecord {
            id: pack.id,
            k: r.k,
            m: r.m,
            pack_len: pack.bytes.len() as u64,
            fragments: frags
                .iter()
                .zip(&assign)
                .map(|(f, slot)| FragmentLocation {
                    index: f.index,
                    id: f.id,
                    peer: self.peers[*slot].0.id,
                })
                .collect(),
            blobs: pack.entries.clone(),
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
        let mut up = Uploader::new(ps.clone(), Redundancy { k: 4, m: 2 }, &Quiet);
        for _ in 0..5 {
            let rec = up.store(&a_pack()).unwrap();
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
        let mut up = Uploader::new(ps, Redundancy { k: 2, m: 1 }, &Quiet);
        assert!(matches!(
            up.store(&a_pack()),
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
        let mut up = Uploader::new(ps, Redundancy { k: 2, m: 1 }, &Quiet);
        assert!(matches!(
            up.store(&a_pack()),
            Err(RepoError::Peer(PeerError::HashMismatch { .. }))
        ));
    }
}
