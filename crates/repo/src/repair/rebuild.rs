//! Stage 3 of a repair: rebuild a damaged pack. Its readable fragments are
//! fetched and verified ([`crate::fetch::Fetcher`]), the pack decoded and
//! checked against its id, and re-encoded with the same `k+m`: the very
//! fragments (byte for byte, so the same ids) the index lists. Each damaged
//! one goes to an online peer that holds nothing of the pack, the emptiest
//! failure domain first ([`trove_peer::placement::replace_one`]).

use super::survey::{Damage, Survey, Verdict};
use super::{lock, Ctx, FragmentMove, PackRepair};
use crate::check::fragment_len;
use crate::fetch::{read_verified, FragmentFault};
use std::collections::{BTreeMap, HashSet};
use std::time::Instant;
use trove_core::erasure::{self, Fragment};
use trove_core::manifest::PackRecord;
use trove_core::{FragmentId, PeerId};
use trove_peer::placement::{replace_one, Candidate, Placement};
use trove_peer::PeerError;

/// What rebuilding one pack gave.
#[derive(Debug)]
pub(super) struct Rebuilt {
    /// The pack's new record, if a fragment moved.
    pub record: Option<PackRecord>,
    /// Copies that no record names once `record` is committed.
    pub deletions: Vec<(PeerId, FragmentId)>,
    pub repair: PackRepair,
}

/// A slot whose fragment is on no candidate (damaged, lost).
const NOWHERE: usize = usize::MAX;

/// Where each fragment of a pack is (as candidate numbers: every
/// configured peer, in order) and where the damaged ones go.
struct Plan {
    candidates: Vec<Candidate>,
    current: Placement,
    /// Damaged slots, each with the candidate it goes to, if any.
    targets: Vec<(usize, Option<usize>)>,
}

/// Why a put did not leave a good copy.
enum PutError {
    /// The peer failed (full, read-only, gone): try another.
    Failed(String),
    /// It served the fragment wrong right after storing it.
    Lied,
    /// An error no other peer would avoid (a local bug): stop.
    Bug(PeerError),
}

pub(super) fn rebuild(ctx: &Ctx, mut s: Survey) -> Rebuilt {
    let started = Instant::now();
    let rec = s.rec.clone();
    let len = fragment_len(&rec);
    let mut bytes_read = 0;
    let mut bytes_written = 0;
    let mut shortfall = None;
    let mut placed: BTreeMap<usize, usize> = BTreeMap::new();
    let mut deletions = Vec::new();
    let mut aborted = false;

    let mut plan = make_plan(ctx, &s);
    let readable = s.readable();
    if readable < rec.k as usize {
        shortfall = Some(waiting(ctx, &s));
    } else if plan.targets.iter().all(|(_, t)| t.is_none()) {
        // Nowhere to put anything: nothing is read.
    } else if ctx.opts.dry_run {
        bytes_read = len * rec.k as u64;
        for (slot, t) in &plan.targets {
            if let Some(c) = t {
                placed.insert(*slot, *c);
                bytes_written += len;
            }
        }
    } else {
        match fetch_and_encode(ctx, &mut s) {
            Err(why) => shortfall = Some(why),
            Ok((frags, read)) => {
                bytes_read += read;
                // The fetch may have found more damage.
                plan = make_plan(ctx, &s);
                let put = put_all(ctx, &s, &mut plan, &frags);
                bytes_read += put.read;
                bytes_written += put.written;
                placed = put.placed;
                deletions = put.lied;
                if let Some(e) = put.bug {
                    shortfall = Some(format!("stopped: {e}"));
                    aborted = true;
                    placed.clear();
                }
            }
        }
    }

    // The pack as it stands now.
    let mut record = rec.clone();
    for (slot, c) in &placed {
        record.fragments[*slot].peer = ctx.peers[*c].record.id;
    }
    let mut holders = HashSet::new();
    let mut counted = 0;
    let mut moves = Vec::new();
    for (slot, (loc, v)) in rec.fragments.iter().zip(&s.verdicts).enumerate() {
        let now_on = record.fragments[slot].peer;
        match v {
            Verdict::Good | Verdict::Suspect => {
                counted += 1;
                holders.insert(now_on);
            }
            Verdict::Damaged(d) => {
                let to = placed.get(&slot).map(|c| ctx.peers[*c].record.name.clone());
                if to.is_some() {
                    counted += 1;
                    holders.insert(now_on);
                    if d.leaves_a_copy() && now_on != loc.peer {
                        deletions.push((loc.peer, loc.id));
                    }
                }
                moves.push(FragmentMove {
                    index: loc.index,
                    fragment: loc.id,
                    from: ctx.name_of(&loc.peer),
                    kind: d.kind(),
                    damage: d.clone(),
                    to,
                });
            }
        }
    }
    let unplaced = moves.iter().filter(|m| m.to.is_none()).count();
    let full = rec.k as usize + rec.m as usize;
    let complete = !aborted && counted == full && holders.len() == full;
    if !complete && shortfall.is_none() {
        shortfall = Some(if unplaced > 0 {
            format!(
                "{unplaced} fragment(s) have no peer to go to: every peer that can take data holds a fragment of this pack already; add {unplaced} more peer(s)"
            )
        } else {
            format!(
                "{} of its {full} fragments are on distinct peers",
                holders.len()
            )
        });
    }
    Rebuilt {
        record: (!placed.is_empty() && !ctx.opts.dry_run).then_some(record),
        deletions,
        repair: PackRepair {
            pack: rec.id,
            complete,
            fragments: moves,
            bytes_read,
            bytes_written,
            seconds: started.elapsed().as_secs_f64(),
            shortfall,
        },
    }
}

/// Why a pack with enough fragments, some on suspect peers, cannot be
/// rebuilt now.
fn waiting(ctx: &Ctx, s: &Survey) -> String {
    let mut away: Vec<String> = s
        .rec
        .fragments
        .iter()
        .zip(&s.verdicts)
        .filter(|(_, v)| **v == Verdict::Suspect)
        .map(|(l, _)| format!("`{}`", ctx.name_of(&l.peer)))
        .collect();
    away.sort();
    away.dedup();
    format!(
        "only {} of the {} fragments it needs can be read while peer(s) {} do not answer: run `trove repair` again once they are back",
        s.readable(),
        s.rec.k,
        away.join(", ")
    )
}

/// Where every fragment is, and a peer for each damaged one that holds
/// nothing of the pack: a fresh peer in the emptiest failure domain.
fn make_plan(ctx: &Ctx, s: &Survey) -> Plan {
    let free = ctx.free_bytes();
    let candidates: Vec<Candidate> = ctx
        .peers
        .iter()
        .zip(free)
        .map(|(p, free)| Candidate {
            id: p.record.id,
            labels: p.record.labels.clone(),
            free_bytes: *free,
        })
        .collect();
    let at = |peer: &PeerId| ctx.by_id.get(peer).copied().unwrap_or(NOWHERE);
    let peers = s
        .rec
        .fragments
        .iter()
        .zip(&s.verdicts)
        .map(|(l, v)| match v {
            Verdict::Good | Verdict::Suspect => at(&l.peer),
            Verdict::Damaged(_) => NOWHERE,
        })
        .collect();
    let mut plan = Plan {
        candidates,
        current: Placement {
            peers,
            distinct: false,
        },
        targets: Vec::new(),
    };
    // A fragment whose own peer still answers and holds nothing else of
    // the pack goes back there (the layout stays as it was); the others
    // take the fresh peers left.
    let back_home = |d: &Damage| {
        matches!(
            d,
            Damage::Missing | Damage::Corrupt(_) | Damage::Unreadable(_)
        )
    };
    let (own, elsewhere): (Vec<(usize, &Damage)>, Vec<_>) = s
        .verdicts
        .iter()
        .enumerate()
        .filter_map(|(slot, v)| match v {
            Verdict::Damaged(d) => Some((slot, d)),
            _ => None,
        })
        .partition(|(_, d)| back_home(d));
    for (slot, d) in own.into_iter().chain(elsewhere) {
        let home_peer = s.rec.fragments[slot].peer;
        let home = ctx.by_id.get(&home_peer).copied().filter(|i| {
            back_home(d) && !ctx.unusable(&home_peer) && !plan.current.peers.contains(i)
        });
        let target = match home {
            Some(i) => {
                plan.current.peers[slot] = i;
                Some(i)
            }
            None => place_slot(ctx, &mut plan, slot),
        };
        if target.is_none() && d.leaves_a_copy() {
            // The copy stays where it is, and its peer counts as holding
            // one: no other fragment of the pack goes there.
            plan.current.peers[slot] = at(&s.rec.fragments[slot].peer);
        }
        plan.targets.push((slot, target));
    }
    plan
}

/// A usable peer holding nothing of the pack for `slot`, if there is one.
fn place_slot(ctx: &Ctx, plan: &mut Plan, slot: usize) -> Option<usize> {
    let excluded: Vec<usize> = (0..ctx.peers.len())
        .filter(|i| ctx.unusable(&ctx.peers[*i].record.id))
        .collect();
    plan.current.peers[slot] = NOWHERE;
    let pick = replace_one(&plan.current, slot, &plan.candidates, &excluded)?;
    let load = plan
        .current
        .peers
        .iter()
        .enumerate()
        .filter(|(j, p)| *j != slot && **p == pick)
        .count();
    if load > 0 {
        return None;
    }
    plan.current.peers[slot] = pick;
    Some(pick)
}

/// Fetch `k` verified fragments, decode (checked against the pack id) and
/// re-encode; the fragments must be the ones the index lists. A fragment
/// the fetch finds corrupt or gone is marked so in the survey. Returns the
/// fragments (by index) and the bytes received.
fn fetch_and_encode(ctx: &Ctx, s: &mut Survey) -> Result<(Vec<Fragment>, u64), String> {
    let rec = &s.rec;
    let readable = PackRecord {
        fragments: s.readable_locations(),
        ..rec.clone()
    };
    let seen = ctx.fetcher.problems().len();
    let before = ctx.fetcher.bytes_received();
    let got = ctx.fetcher.pack_uncached(&readable);
    let read = ctx.fetcher.bytes_received() - before;
    for p in ctx.fetcher.problems().into_iter().skip(seen) {
        let Some(slot) = rec.fragments.iter().position(|l| l.id == p.fragment) else {
            continue;
        };
        let peer = rec.fragments[slot].peer;
        match &p.fault {
            FragmentFault::Corrupt { len } => {
                ctx.note_bad_data(peer);
                ctx.warn(format!(
                    "{p}: it read intact a moment ago; rebuilt from the other fragments"
                ));
                s.verdicts[slot] =
                    Verdict::Damaged(Damage::Corrupt(format!("{len} bytes, hash mismatch")));
            }
            FragmentFault::Missing => s.verdicts[slot] = Verdict::Damaged(Damage::Missing),
            FragmentFault::Unavailable(_) => s.verdicts[slot] = Verdict::Suspect,
            _ => {}
        }
    }
    let bytes = got.map_err(|e| format!("could not be rebuilt: {e}"))?;
    let frags = erasure::encode(&rec.id, &bytes, rec.k, rec.m)
        .map_err(|e| format!("could not be re-encoded: {e}"))?;
    for loc in &rec.fragments {
        if frags.get(loc.index as usize).map(|f| f.id) != Some(loc.id) {
            return Err(format!(
                "re-encoding does not give fragment {} as the index lists it; left as it is",
                loc.index
            ));
        }
    }
    Ok((frags, read))
}

/// What the puts of one pack did.
#[derive(Default)]
struct Puts {
    /// Slot → candidate that holds a good copy now.
    placed: BTreeMap<usize, usize>,
    written: u64,
    /// Bytes read back to check a put.
    read: u64,
    /// Copies a liar holds that no record will name.
    lied: Vec<(PeerId, FragmentId)>,
    bug: Option<PeerError>,
}

/// Put every placed fragment (in parallel), re-placing those whose peer
/// fails or lies, until each is stored or has nowhere left to go.
fn put_all(ctx: &Ctx, s: &Survey, plan: &mut Plan, frags: &[Fragment]) -> Puts {
    let mut out = Puts::default();
    let mut pending: Vec<(usize, usize)> = plan
        .targets
        .iter()
        .filter_map(|(slot, t)| t.map(|c| (*slot, c)))
        .collect();
    while !pending.is_empty() {
        let results: Vec<(usize, usize, u64, Result<(), PutError>)> = std::thread::scope(|sc| {
            let puts: Vec<_> = pending
                .iter()
                .map(|&(slot, c)| {
                    let loc = &s.rec.fragments[slot];
                    let frag = &frags[loc.index as usize];
                    // The peer held a damaged copy of this very fragment:
                    // it goes to the trash first (a node keeps a copy it
                    // holds instead of replacing it).
                    let in_place = ctx.peers[c].record.id == loc.peer
                        && matches!(
                            &s.verdicts[slot],
                            Verdict::Damaged(Damage::Corrupt(_) | Damage::Unreadable(_))
                        );
                    sc.spawn(move || {
                        let (read, r) = put_one(ctx, c, in_place, frag);
                        (slot, c, read, r)
                    })
                })
                .collect();
            puts.into_iter()
                .map(|p| p.join().expect("put threads do not panic"))
                .collect()
        });
        pending.clear();
        let mut retry = Vec::new();
        for (slot, c, read, r) in results {
            out.read += read;
            let peer = &ctx.peers[c].record;
            match r {
                Ok(()) => {
                    out.placed.insert(slot, c);
                    out.written += frags[s.rec.fragments[slot].index as usize].bytes.len() as u64;
                }
                Err(PutError::Bug(e)) => out.bug = Some(e),
                Err(PutError::Failed(e)) => {
                    if lock(&ctx.broken).insert(peer.id) {
                        ctx.warn(format!(
                            "peer `{}` failed: {e} — no more fragments go to it in this repair",
                            peer.name
                        ));
                    }
                    retry.push(slot);
                }
                Err(PutError::Lied) => {
                    if lock(&ctx.liars).insert(peer.id) {
                        ctx.warn(format!(
                            "peer `{}` served a fragment that does not match its id right after storing it: it lies or its storage is broken; no fragment is left on it",
                            peer.name
                        ));
                    }
                    out.lied.push((peer.id, s.rec.fragments[slot].id));
                    retry.push(slot);
                }
            }
        }
        if out.bug.is_some() {
            break;
        }
        for slot in retry {
            match place_slot(ctx, plan, slot) {
                Some(c) => pending.push((slot, c)),
                None => {
                    if let Some(t) = plan.targets.iter_mut().find(|(s, _)| *s == slot) {
                        t.1 = None;
                    }
                }
            }
        }
    }
    out
}

/// Store one fragment on candidate `c`; read it back when the peer held a
/// damaged copy of it or served bad data in this repair. Returns the bytes
/// read back.
fn put_one(ctx: &Ctx, c: usize, in_place: bool, frag: &Fragment) -> (u64, Result<(), PutError>) {
    let info = &ctx.peers[c];
    let Some(peer) = info.online() else {
        return (0, Err(PutError::Failed("it does not answer".into())));
    };
    let failed = |e: PeerError| {
        if e.is_retryable_elsewhere() {
            PutError::Failed(e.to_string())
        } else {
            PutError::Bug(e)
        }
    };
    if in_place {
        if let Err(e) = peer.delete_fragment(&frag.id) {
            return (0, Err(failed(e)));
        }
    }
    if let Err(e) = peer.put_fragment(&frag.id, &frag.bytes) {
        return (0, Err(failed(e)));
    }
    if !(in_place || ctx.served_bad(&info.record.id)) {
        return (0, Ok(()));
    }
    match read_verified(peer.as_ref(), &frag.id) {
        Ok(b) => (b.len() as u64, Ok(())),
        Err(FragmentFault::Corrupt { len }) => {
            ctx.note_bad_data(info.record.id);
            (len, Err(PutError::Lied))
        }
        Err(f) => (0, Err(PutError::Failed(f.to_string()))),
    }
}
