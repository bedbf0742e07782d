//! Placement: which peer gets which fragment of a pack. Pure functions of
//! their inputs, so the same inputs always give the same answer.
//!
//! Rules, in order of priority:
//! 1. no peer gets more than `ceil(count / peers)` fragments of one pack, so
//!    with at least `count` peers every fragment goes to a distinct peer
//!    (invariant 2, docs/design.md §Invariants);
//! 2. the largest number of fragments in any one failure domain (peers
//!    sharing a label value, e.g. `site=home`) is as small as possible, so
//!    losing one site costs as few fragments as possible (invariant 3,
//!    docs/design.md §Invariants);
//! 3. then the least loaded peer within this pack;
//! 4. then more free space, compared coarsely (within a factor of two counts
//!    as equal) so that similar peers still take turns;
//! 5. then a starting point rotated by the pack's sequence number, so load
//!    spreads evenly over many packs.
//!
//! Rule 2 is a greedy water-fill: each fragment goes to the least-filled
//! domain that still has a peer below the cap, which minimises the maximum.

use std::collections::BTreeMap;

use trove_core::PeerId;

/// The label that names a peer's failure domain unless told otherwise.
pub const DEFAULT_DOMAIN_LABEL: &str = "site";

/// A peer that may receive fragments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The peer.
    pub id: PeerId,
    /// The peer's labels, e.g. `site=home`. A peer without the domain label
    /// is its own failure domain.
    pub labels: BTreeMap<String, String>,
    /// Free space, if known. Unknown counts as plenty.
    pub free_bytes: Option<u64>,
}

/// Where the fragments of one pack go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// `peers[i]` is the index into the candidates of fragment `i`'s peer.
    pub peers: Vec<usize>,
    /// Whether every fragment is on a different peer. `false` only when
    /// there were fewer candidates than fragments; the user should be told.
    pub distinct: bool,
}

impl Placement {
    /// The most fragments of this pack on any one peer.
    pub fn max_per_peer(&self) -> usize {
        let mut counts = BTreeMap::new();
        for &p in &self.peers {
            *counts.entry(p).or_insert(0usize) += 1;
        }
        counts.into_values().max().unwrap_or(0)
    }
}

/// Why fragments could not be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlacementError {
    /// There is no peer at all.
    #[error("no peer to place fragments on: add a peer to the container")]
    NoCandidates,
}

/// Assign `count` fragments (k+m) of one pack to candidates, using the
/// [`DEFAULT_DOMAIN_LABEL`] for failure domains. See the module docs for the
/// rules; `pack_seq` is a counter that rotates the starting peer.
pub fn place(
    count: usize,
    candidates: &[Candidate],
    pack_seq: u64,
) -> Result<Placement, PlacementError> {
    place_with(count, candidates, pack_seq, DEFAULT_DOMAIN_LABEL)
}

/// [`place`] with failure domains given by `domain_label`.
pub fn place_with(
    count: usize,
    candidates: &[Candidate],
    pack_seq: u64,
    domain_label: &str,
) -> Result<Placement, PlacementError> {
    let n = candidates.len();
    if n == 0 {
        return Err(PlacementError::NoCandidates);
    }
    let cap = count.div_ceil(n);
    let (domain, domains) = domains(candidates, domain_label);
    let tier = free_tiers(candidates);
    // Lossless: the remainder is below n, which is a usize.
    let start = (pack_seq % n as u64) as usize;

    let mut load = vec![0usize; n];
    let mut domain_load = vec![0usize; domains];
    let mut peers = Vec::with_capacity(count);
    for _ in 0..count {
        let best = (0..n)
            .filter(|&i| load[i] < cap)
            .min_by_key(|&i| {
                (
                    domain_load[domain[i]],
                    load[i],
                    tier[i],
                    (i + n - start) % n,
                )
            })
            // cap * n >= count, so some peer is always below the cap.
            .unwrap_or(start);
        load[best] += 1;
        domain_load[domain[best]] += 1;
        peers.push(best);
    }
    Ok(Placement {
        peers,
        distinct: cap <= 1,
    })
}

/// Pick a substitute peer for fragment `failed_slot`, whose peer failed
/// (that peer is never picked again for it), using [`DEFAULT_DOMAIN_LABEL`].
/// Prefers a candidate holding no other fragment of this pack, then the
/// emptiest failure domain, then the least loaded, then more free space.
/// `None` if every candidate is excluded or `failed_slot` is out of range.
pub fn replace_one(
    current: &Placement,
    failed_slot: usize,
    candidates: &[Candidate],
    excluded: &[usize],
) -> Option<usize> {
    replace_one_with(
        current,
        failed_slot,
        candidates,
        excluded,
        DEFAULT_DOMAIN_LABEL,
    )
}

/// [`replace_one`] with failure domains given by `domain_label`.
pub fn replace_one_with(
    current: &Placement,
    failed_slot: usize,
    candidates: &[Candidate],
    excluded: &[usize],
    domain_label: &str,
) -> Option<usize> {
    let failed_peer = *current.peers.get(failed_slot)?;
    let n = candidates.len();
    let (domain, domains) = domains(candidates, domain_label);
    let tier = free_tiers(candidates);
    let mut load = vec![0usize; n];
    let mut domain_load = vec![0usize; domains];
    for (slot, &p) in current.peers.iter().enumerate() {
        // Indices past the end name peers no longer offered: ignore them.
        if slot != failed_slot && p < n {
            load[p] += 1;
            domain_load[domain[p]] += 1;
        }
    }
    (0..n)
        .filter(|&i| i != failed_peer && !excluded.contains(&i))
        .min_by_key(|&i| (load[i], domain_load[domain[i]], tier[i], i))
}

/// Domain number of each candidate, and the number of domains.
fn domains(candidates: &[Candidate], label: &str) -> (Vec<usize>, usize) {
    let mut by_value: BTreeMap<&str, usize> = BTreeMap::new();
    let mut next = 0;
    let ids = candidates
        .iter()
        .map(|c| {
            let mut fresh = || {
                next += 1;
                next - 1
            };
            match c.labels.get(label) {
                Some(value) => *by_value.entry(value.as_str()).or_insert_with(fresh),
                // Unlabelled: nothing says it shares a fate with anyone.
                None => fresh(),
            }
        })
        .collect();
    (ids, next)
}

/// 0 for the most free space (or unknown), 1 for at most half of it, 2 for
/// at most a quarter, ...: coarse so near-equal peers still rotate.
fn free_tiers(candidates: &[Candidate]) -> Vec<u32> {
    let max = candidates
        .iter()
        .filter_map(|c| c.free_bytes)
        .max()
        .unwrap_or(0);
    candidates
        .iter()
        .map(|c| match c.free_bytes {
            None => 0,
            Some(0) => u32::MAX,
            Some(free) => (max / free).ilog2(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(site: Option<&str>, free: Option<u64>) -> Candidate {
        Candidate {
            id: PeerId::random(),
            labels: site
                .map(|s| [("site".to_owned(), s.to_owned())].into())
                .unwrap_or_default(),
            free_bytes: free,
        }
    }

    #[test]
    fn free_tiers_are_coarse() {
        let c = [
            cand(None, Some(1000)),
            cand(None, Some(600)),
            cand(None, Some(499)),
            cand(None, None),
            cand(None, Some(0)),
        ];
        assert_eq!(free_tiers(&c), vec![0, 0, 1, 0, u32::MAX]);
    }

    #[test]
    fn unlabelled_peers_are_their_own_domains() {
        let c = [
            cand(Some("a"), None),
            cand(None, None),
            cand(Some("a"), None),
            cand(None, None),
        ];
        let (d, n) = domains(&c, "site");
        assert_eq!(n, 3);
        assert_eq!(d[0], d[2]);
        assert_ne!(d[1], d[3]);
    }
}
