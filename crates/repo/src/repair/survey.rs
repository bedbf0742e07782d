//! Stage 2 of a repair: classify every fragment of a pack. The fragments on
//! online peers are read whole and hashed (or, with `--audit`, proven by
//! random ranges) in parallel; the others are judged by their peer's state.

use super::{Ctx, Holder};
use crate::check::{audit_fragment, fragment_len};
use crate::fetch::{read_verified, FragmentFault};
use std::collections::HashSet;
use trove_core::manifest::{FragmentLocation, PackRecord};
use trove_peer::Peer;

/// Why a fragment must be rebuilt.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Damage {
    /// Its peer answers but does not hold it.
    Missing,
    /// Its peer served bytes that do not hash to its id, or failed its audit.
    Corrupt(String),
    /// Its peer could not read it (an I/O error).
    Unreadable(String),
    /// Its peer is no longer configured (`trove peer remove`).
    PeerRemoved,
    /// Its peer has been unreachable for longer than the threshold.
    PeerLost { since: Option<String> },
    /// Its peer holds another fragment of the same pack: it is moved to a
    /// peer of its own when there is one.
    Doubled,
}

impl Damage {
    /// A short name for the kind of damage, for scripts.
    pub fn kind(&self) -> &'static str {
        match self {
            Damage::Missing => "missing",
            Damage::Corrupt(_) => "corrupt",
            Damage::Unreadable(_) => "unreadable",
            Damage::PeerRemoved => "peer removed",
            Damage::PeerLost { .. } => "peer lost",
            Damage::Doubled => "doubled",
        }
    }

    /// Whether a copy sits on its peer that no record should name once
    /// the fragment lives elsewhere.
    pub(super) fn leaves_a_copy(&self) -> bool {
        matches!(
            self,
            Damage::Corrupt(_) | Damage::Unreadable(_) | Damage::Doubled
        )
    }
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Damage::Missing => f.write_str("missing"),
            Damage::Corrupt(why) => write!(f, "corrupt ({why})"),
            Damage::Unreadable(why) => write!(f, "unreadable ({why})"),
            Damage::PeerRemoved => f.write_str("its peer was removed"),
            Damage::PeerLost { since: Some(t) } => {
                write!(f, "its peer is lost (unreachable since {t} UTC)")
            }
            Damage::PeerLost { since: None } => f.write_str("its peer is lost"),
            Damage::Doubled => f.write_str("its peer holds another fragment of this pack"),
        }
    }
}

/// As a row: the sentence.
impl serde::Serialize for Damage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What became of one fragment location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Read and hashed, or proven by audit.
    Good,
    /// On a peer that does not answer now: it still counts.
    Suspect,
    Damaged(Damage),
}

/// A pack's fragments, classified (`verdicts[i]` is `rec.fragments[i]`'s).
#[derive(Debug)]
pub(super) struct Survey {
    pub rec: PackRecord,
    pub verdicts: Vec<Verdict>,
}

impl Survey {
    /// Nothing to rebuild and every fragment on a peer of its own.
    pub fn is_healthy(&self) -> bool {
        let distinct: HashSet<_> = self.rec.fragments.iter().map(|f| f.peer).collect();
        self.verdicts
            .iter()
            .all(|v| !matches!(v, Verdict::Damaged(_)))
            && distinct.len() == self.rec.fragments.len()
            && self.rec.fragments.len() == self.rec.k as usize + self.rec.m as usize
    }

    /// Fragments that can be read now (a doubled one is intact).
    pub fn readable(&self) -> usize {
        self.verdicts
            .iter()
            .filter(|v| matches!(v, Verdict::Good | Verdict::Damaged(Damage::Doubled)))
            .count()
    }

    /// Fragments on suspect peers.
    pub fn suspect(&self) -> usize {
        self.verdicts
            .iter()
            .filter(|v| **v == Verdict::Suspect)
            .count()
    }

    /// The locations that can be read now.
    pub fn readable_locations(&self) -> Vec<FragmentLocation> {
        self.rec
            .fragments
            .iter()
            .zip(&self.verdicts)
            .filter(|(_, v)| matches!(v, Verdict::Good | Verdict::Damaged(Damage::Doubled)))
            .map(|(l, _)| *l)
            .collect()
    }
}

/// Classify every fragment of `rec` (what was read or audited is counted
/// in the context).
pub(super) fn survey(ctx: &Ctx, rec: PackRecord) -> Survey {
    let len = fragment_len(&rec);
    let audit = ctx.opts.audit;
    let verdicts: Vec<Verdict> = std::thread::scope(|s| {
        let asks: Vec<_> = rec
            .fragments
            .iter()
            .map(|loc| {
                let holder = ctx.holder(&loc.peer);
                s.spawn(move || match holder {
                    Holder::Removed => Verdict::Damaged(Damage::PeerRemoved),
                    Holder::Lost(p) => Verdict::Damaged(Damage::PeerLost {
                        since: p.unreachable_since.clone(),
                    }),
                    Holder::Suspect => Verdict::Suspect,
                    Holder::Online(p) => {
                        let peer = p.peer.as_ref().expect("an online peer is open");
                        judge(ctx, peer.as_ref(), loc, len, audit)
                    }
                })
            })
            .collect();
        asks.into_iter()
            .map(|a| a.join().expect("survey threads do not panic"))
            .collect()
    });
    let mut s = Survey { rec, verdicts };
    // A second intact fragment on one peer is moved off it if it can be.
    let mut seen = HashSet::new();
    for (loc, v) in s.rec.fragments.iter().zip(s.verdicts.iter_mut()) {
        let counts = matches!(v, Verdict::Good | Verdict::Suspect);
        if counts && !seen.insert(loc.peer) && *v == Verdict::Good {
            *v = Verdict::Damaged(Damage::Doubled);
        }
    }
    for (loc, v) in s.rec.fragments.iter().zip(&s.verdicts) {
        if matches!(v, Verdict::Damaged(Damage::Corrupt(_))) {
            ctx.note_bad_data(loc.peer);
        }
    }
    s
}

/// Read (or audit) one fragment on an online peer.
fn judge(ctx: &Ctx, peer: &dyn Peer, loc: &FragmentLocation, len: u64, audit: bool) -> Verdict {
    let verdict = if audit {
        let (_, v) = audit_fragment(peer, &loc.id, len);
        ctx.count_checked(0);
        v
    } else {
        let got = read_verified(peer, &loc.id);
        ctx.count_checked(match &got {
            Ok(b) => b.len() as u64,
            Err(FragmentFault::Corrupt { len }) => *len,
            Err(_) => 0,
        });
        got.map(|_| ())
    };
    match verdict {
        Ok(()) => Verdict::Good,
        Err(FragmentFault::Missing) => Verdict::Damaged(Damage::Missing),
        Err(FragmentFault::Corrupt { len }) => {
            Verdict::Damaged(Damage::Corrupt(format!("{len} bytes, hash mismatch")))
        }
        Err(f @ FragmentFault::AuditFailed(_)) => Verdict::Damaged(Damage::Corrupt(f.to_string())),
        // It stopped answering since the probe: it still counts.
        Err(FragmentFault::Unavailable(_) | FragmentFault::PeerUnavailable) => Verdict::Suspect,
        Err(other) => Verdict::Damaged(Damage::Unreadable(other.to_string())),
    }
}
