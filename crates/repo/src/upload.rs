//! Storing packs: erasure-code, place on peers, put every fragment in
//! parallel, and re-place a fragment whose peer fails. A pack counts as
//! stored only when every one of its `k+m` fragments is acknowledged
//! (fsynced) by some peer.

use crate::error::{RepoError, Result};
use crate::progress::{Event, Progress};
use std::sync::Arc;
use trove_core::erasure;
use trove_core::manifest::{FragmentLocation, PackRecord, PeerRecord, Redundancy};
use trove_core::pack::FinishedPack;
use trove_net::placement::{place, replace_one, Candidate, Placement};
use trove_net::Peer;

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
        }
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
        loop {
            let results: Vec<(usize, Result<(), trove_net::PeerError>)> = std::thread::scope(|s| {
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
            }
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
