//! An audit round (what `trove daemon` runs every `audit_every`): every
//! peer is asked whether it answers, then made to show a random sample of
//! the fragments the index places on it. A folder peer's fragment is read
//! whole and hashed (a local disk: reading is cheap and proves every byte);
//! a node proves random ranges against the fragment's BLAKE3 tree
//! ([`trove_peer::audit`]), so a round costs kilobytes, not the fragments.
//!
//! Each peer's record (rounds and fragments passed and failed, when it was
//! last audited, since when it fails) is kept in the index. A peer whose
//! round fails is lost ([`crate::PeerHealth`]) until a later round proves
//! at least one fragment and fails none: its fragments are rebuilt
//! elsewhere by the next repair. A peer that stops answering in the middle
//! of a round is not failed for it: reachability is what its sightings
//! and `peer_lost_after` judge.
//!
//! The round also feeds the reciprocity ledger ([`crate::reciprocity`]):
//! it asks each node who operates it, records the bytes a passing round
//! proved, and writes them into this owner's own node's `proofs.json`.

use crate::check::{audit_fragment, fragment_len};
use crate::error::Result;
use crate::fetch::{read_verified, FragmentFault};
use crate::health::{PeerHealth, PeerState, Storm};
use crate::home::Home;
use crate::location::PeerLocation;
use crate::progress::Progress;
use crate::reciprocity;
use rand::seq::SliceRandom;
use serde::Serialize;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use trove_core::{FragmentId, PackId, PeerId};
use trove_peer::Peer;

/// How to audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditOptions {
    /// Fragments asked of each peer.
    pub per_peer: u32,
    /// A peer unreachable this long is lost.
    pub peer_lost_after: Duration,
    /// Apply the storm guard ([`Storm`]).
    pub storm_guard: bool,
}

/// What one round found.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRound {
    pub peers: Vec<PeerAudit>,
    /// The storm guard held: unreachable peers were not declared lost.
    pub storm: Option<Storm>,
    /// Fragments proven and failed, over every peer.
    pub passed: u64,
    pub failed: u64,
    pub seconds: f64,
}

/// One peer's part of a round.
#[derive(Debug, Clone, Serialize)]
pub struct PeerAudit {
    /// Its state after the round.
    pub health: PeerHealth,
    /// Fragments and bytes the index places on it.
    pub fragments_held: u64,
    pub bytes_held: u64,
    /// `hash` (read whole) or `proof` (ranges proven), or none if it was
    /// not asked (unreachable, or holds nothing).
    pub method: Option<&'static str>,
    pub passed: u64,
    pub failed: Vec<AuditFailure>,
}

/// A fragment a peer did not show intact.
#[derive(Debug, Clone, Serialize)]
pub struct AuditFailure {
    pub pack: PackId,
    pub fragment: FragmentId,
    /// `missing`, `corrupt`, `audit failed`, `failed`.
    pub kind: &'static str,
    pub detail: String,
}

/// A fragment the index places on a peer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Held {
    pub pack: PackId,
    pub id: FragmentId,
    pub len: u64,
}

/// Every fragment of every published pack, by the peer holding it.
pub(crate) fn held_by_peer(home: &Home) -> Result<HashMap<PeerId, Vec<Held>>> {
    let mut held: HashMap<PeerId, Vec<Held>> = HashMap::new();
    for c in home.index.containers()? {
        for p in home.index.published_packs(&c.id)? {
            let len = fragment_len(&p);
            for f in &p.fragments {
                held.entry(f.peer).or_default().push(Held {
                    pack: p.id,
                    id: f.id,
                    len,
                });
            }
        }
    }
    Ok(held)
}

/// What asking one peer gave: proven, failed, or cut short because the
/// peer stopped answering (then nothing is held against it).
#[derive(Debug, Default)]
struct Asked {
    method: Option<&'static str>,
    passed: u64,
    failed: Vec<AuditFailure>,
    cut_short: bool,
}

fn ask(peer: &dyn Peer, by_hash: bool, sample: &[Held]) -> Asked {
    let mut asked = Asked {
        method: Some(if by_hash { "hash" } else { "proof" }),
        ..Default::default()
    };
    for h in sample {
        let verdict = if by_hash {
            read_verified(peer, &h.id).map(|_| ())
        } else {
            audit_fragment(peer, &h.id, h.len).1
        };
        match verdict {
            Ok(()) => asked.passed += 1,
            Err(
                FragmentFault::Unavailable(_)
                | FragmentFault::PeerUnavailable
                | FragmentFault::Slow { .. },
            ) => {
                asked.cut_short = true;
                break;
            }
            Err(fault) => asked.failed.push(AuditFailure {
                pack: h.pack,
                fragment: h.id,
                kind: fault.kind(),
                detail: fault.to_string(),
            }),
        }
    }
    asked
}

/// Run one audit round over every configured peer, record what it found
/// in the index, and return it.
pub fn audit_round(
    home: &Home,
    opts: &AuditOptions,
    progress: &dyn Progress,
) -> Result<AuditRound> {
    let started = Instant::now();
    let mut set = home.peers().open_all()?;
    set.record_health(home, opts.peer_lost_after, true)?;
    reciprocity::learn_operators(home, &set, false)?;
    let held = held_by_peer(home)?;
    let mut rng = rand::thread_rng();
    // Peers that answer are asked, lost-by-audit ones too: passing is how
    // they are trusted again.
    let jobs: Vec<(usize, bool, Vec<Held>)> = set
        .slots
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            s.available().is_some()
                && s.health
                    .as_ref()
                    .is_some_and(|h| h.sightings.unreachable_since_ns.is_none())
        })
        .map(|(i, s)| {
            let all = held.get(&s.record.id).map_or(&[][..], Vec::as_slice);
            let sample = all
                .choose_multiple(&mut rng, opts.per_peer as usize)
                .copied()
                .collect();
            let by_hash = s
                .record
                .location
                .parse::<PeerLocation>()
                .is_ok_and(|l| l.folder().is_some());
            (i, by_hash, sample)
        })
        .collect();
    let answers: HashMap<usize, Asked> = std::thread::scope(|scope| {
        let running: Vec<_> = jobs
            .iter()
            .map(|(i, by_hash, sample)| {
                let peer = set.slots[*i].available().cloned();
                scope.spawn(move || {
                    let asked = match peer {
                        Some(p) if !sample.is_empty() => ask(p.as_ref(), *by_hash, sample),
                        _ => Asked::default(),
                    };
                    (*i, asked)
                })
            })
            .collect();
        running.into_iter().filter_map(|r| r.join().ok()).collect()
    });
    let now = crate::time::now_ns();
    let known = home.index.audits()?;
    let mut records = Vec::new();
    let mut proven = Vec::new();
    for (i, asked) in &answers {
        if asked.cut_short {
            continue;
        }
        let id = set.slots[*i].record.id;
        if asked.passed > 0 && asked.failed.is_empty() {
            let all = held.get(&id).map_or(&[][..], Vec::as_slice);
            let bytes = all.iter().map(|h| h.len).sum();
            proven.push((id, bytes, all.len() as u64));
        }
        let failure = asked.failed.first().map(|f| {
            format!(
                "fragment {} of pack {}: {}",
                f.fragment.short(),
                f.pack.short(),
                f.detail
            )
        });
        let rec = known.get(&id).cloned().unwrap_or_default().after_round(
            asked.passed,
            asked.failed.len() as u64,
            failure,
            now,
        );
        records.push((id, rec));
    }
    home.index.record_audits(&records)?;
    reciprocity::record_proven(home, &proven, now)?;
    // The states again, with the new audit records (the peers answered a
    // moment ago: asking is cheap).
    set.record_health(home, opts.peer_lost_after, false)?;
    let storm = set.storm_guard(opts.storm_guard, progress);
    reciprocity::write_proofs(home, &set, progress)?;
    let mut round = AuditRound {
        peers: Vec::new(),
        storm,
        passed: 0,
        failed: 0,
        seconds: 0.0,
    };
    for (i, slot) in set.slots.iter().enumerate() {
        let Some(health) = slot.health.clone() else {
            continue;
        };
        let all = held.get(&slot.record.id).map_or(&[][..], Vec::as_slice);
        let asked = answers.get(&i);
        let peer = PeerAudit {
            fragments_held: all.len() as u64,
            bytes_held: all.iter().map(|h| h.len).sum(),
            method: asked.and_then(|a| a.method),
            passed: asked.map_or(0, |a| a.passed),
            failed: asked.map(|a| a.failed.clone()).unwrap_or_default(),
            health,
        };
        round.passed += peer.passed;
        round.failed += peer.failed.len() as u64;
        round.peers.push(peer);
    }
    round.seconds = started.elapsed().as_secs_f64();
    Ok(round)
}

impl AuditRound {
    /// Peers now lost (by time, by audit), by name.
    pub fn lost(&self) -> Vec<&str> {
        self.peers
            .iter()
            .filter(|p| p.health.state == PeerState::Lost)
            .map(|p| p.health.peer.as_str())
            .collect()
    }
}
