//! What a prune does with each pack: which blobs the snapshots use, and
//! which packs to keep, repack or delete (the pure part, tested alone).

use crate::snapshot::TreeReader;
use std::collections::{HashMap, HashSet};
use trove_core::manifest::{PackRecord, SnapshotManifest};
use trove_core::pack::PackEntry;
use trove_core::tree::NodeKind;
use trove_core::{BlobId, PackId, TreeId};

/// How much unused space partly used packs may keep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxUnused {
    /// At most this percentage of what the container stores after the prune.
    Percent(f64),
    /// Never repack.
    Unlimited,
}

impl Default for MaxUnused {
    fn default() -> Self {
        MaxUnused::Percent(5.0)
    }
}

impl std::fmt::Display for MaxUnused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MaxUnused::Percent(p) => write!(f, "{p}%"),
            MaxUnused::Unlimited => f.write_str("unlimited"),
        }
    }
}

impl MaxUnused {
    /// `5`, `5%`, `0` (repack every partly used pack) or `unlimited`.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        if s == "unlimited" {
            return Ok(MaxUnused::Unlimited);
        }
        let n: f64 = s
            .trim_end_matches('%')
            .parse()
            .map_err(|_| format!("`{s}`: give a percentage (e.g. 5, 5%, 0) or `unlimited`"))?;
        if !(0.0..=100.0).contains(&n) {
            return Err(format!("`{s}`: a percentage is between 0 and 100"));
        }
        Ok(if n >= 100.0 {
            MaxUnused::Unlimited
        } else {
            MaxUnused::Percent(n)
        })
    }

    /// Unused bytes allowed beside `live` used bytes: `unused ≤ p% of
    /// (live + unused)`.
    fn allowed(&self, live: u64) -> u64 {
        match *self {
            MaxUnused::Unlimited => u64::MAX,
            MaxUnused::Percent(p) => (live as f64 * p / (100.0 - p)) as u64,
        }
    }
}

/// One pack and what of it is used.
#[derive(Debug, Clone)]
pub(crate) struct PackUse {
    pub rec: PackRecord,
    /// Blobs a snapshot uses whose index entry points at this pack (a copy
    /// in another pack is not counted twice).
    pub live: Vec<PackEntry>,
    /// Sealed bytes of those blobs, and of the others.
    pub live_bytes: u64,
    pub dead_bytes: u64,
}

/// What to do with every pack.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub keep: Vec<PackUse>,
    pub repack: Vec<PackUse>,
    pub delete: Vec<PackUse>,
    /// Sealed bytes the snapshots use, in all packs.
    pub live_bytes: u64,
    /// Sealed bytes no snapshot uses, before and after the plan.
    pub unused_before: u64,
    pub unused_after: u64,
}

/// Every blob the snapshots use (their trees and the chunks of their
/// files), reading the trees through `reader`. A tree that cannot be read,
/// or a chunk the index does not hold, stops the prune: what it uses could
/// not be known.
pub(crate) fn used_blobs(
    reader: &TreeReader,
    snapshots: &[SnapshotManifest],
    indexed: &HashMap<BlobId, PackId>,
) -> std::result::Result<HashSet<BlobId>, String> {
    let mut used = HashSet::new();
    let mut seen: HashSet<TreeId> = HashSet::new();
    for snap in snapshots {
        let mut stack = vec![snap.root];
        while let Some(t) = stack.pop() {
            if !seen.insert(t) {
                continue;
            }
            used.insert(BlobId(t.0));
            let tree = reader.load(&t).map_err(|e| {
                format!(
                    "snapshot {}: tree {} cannot be read ({e})",
                    snap.id.short(),
                    t.short()
                )
            })?;
            for node in tree.nodes {
                match node.kind {
                    NodeKind::Dir { tree } => stack.push(tree),
                    NodeKind::File { chunks, .. } => {
                        for c in chunks {
                            let b = BlobId(c.0);
                            if !indexed.contains_key(&b) {
                                return Err(format!(
                                    "snapshot {} uses chunk {} (of {:?}), which the index does not hold",
                                    snap.id.short(),
                                    c.short(),
                                    String::from_utf8_lossy(&node.name)
                                ));
                            }
                            used.insert(b);
                        }
                    }
                    NodeKind::Symlink { .. } => {}
                }
            }
        }
    }
    Ok(used)
}

/// Decide each pack's fate: no used blob → delete; all used → keep;
/// partly used → repack the most wasteful ones first until the unused bytes
/// left are within `max_unused`, keep the rest.
pub(crate) fn plan(
    packs: Vec<PackRecord>,
    indexed: &HashMap<BlobId, PackId>,
    used: &HashSet<BlobId>,
    max_unused: MaxUnused,
) -> Plan {
    let mut out = Plan::default();
    let mut partly = Vec::new();
    for rec in packs {
        let mut counted = HashSet::new();
        let (mut live, mut live_bytes, mut dead_bytes) = (Vec::new(), 0, 0);
        for e in &rec.blobs {
            let here = indexed.get(&e.id) == Some(&rec.id);
            if here && used.contains(&e.id) && counted.insert(e.id) {
                live.push(*e);
                live_bytes += u64::from(e.length);
            } else {
                dead_bytes += u64::from(e.length);
            }
        }
        out.live_bytes += live_bytes;
        out.unused_before += dead_bytes;
        let u = PackUse {
            rec,
            live,
            live_bytes,
            dead_bytes,
        };
        if u.live.is_empty() {
            out.delete.push(u);
        } else if u.dead_bytes == 0 {
            out.keep.push(u);
        } else {
            partly.push(u);
        }
    }
    // The most wasteful first (unused share, then unused bytes).
    partly.sort_by(|a, b| {
        let share = |u: &PackUse| u.dead_bytes as f64 / (u.dead_bytes + u.live_bytes) as f64;
        share(b)
            .total_cmp(&share(a))
            .then(b.dead_bytes.cmp(&a.dead_bytes))
            .then(a.rec.id.cmp(&b.rec.id))
    });
    let allowed = max_unused.allowed(out.live_bytes);
    let mut unused: u64 = partly.iter().map(|u| u.dead_bytes).sum();
    for u in partly {
        if unused > allowed {
            unused -= u.dead_bytes;
            out.repack.push(u);
        } else {
            out.keep.push(u);
        }
    }
    out.unused_after = unused;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use trove_core::seal::BlobKind;

    fn pack(n: u8, blobs: &[(u8, u32)]) -> PackRecord {
        PackRecord {
            id: PackId([n; 32]),
            k: 1,
            m: 0,
            pack_len: 1000,
            fragments: Vec::new(),
            blobs: blobs
                .iter()
                .map(|(b, len)| PackEntry {
                    kind: BlobKind::Data,
                    id: BlobId([*b; 32]),
                    offset: 0,
                    length: *len,
                    raw_length: *len,
                })
                .collect(),
        }
    }

    fn ids(v: &[PackUse]) -> Vec<u8> {
        v.iter().map(|u| u.rec.id.0[0]).collect()
    }

    #[test]
    fn unused_packs_go_partly_used_ones_repack_by_waste_duplicates_count_once() {
        let packs = vec![
            pack(1, &[(10, 100), (11, 100)]), // all used
            pack(2, &[(20, 100), (21, 100)]), // nothing used
            pack(3, &[(30, 100), (31, 900)]), // 90% unused
            pack(4, &[(40, 900), (41, 100)]), // 10% unused
            pack(5, &[(10, 100), (50, 100)]), // 10 is a copy (lives in 1)
        ];
        let mut indexed = HashMap::new();
        for p in &packs {
            for e in &p.blobs {
                indexed.entry(e.id).or_insert(p.id);
            }
        }
        let used: HashSet<BlobId> = [10, 11, 30, 40, 50].map(|b| BlobId([b; 32])).into();
        // Live: 200 + 100 + 900 + 100 = 1300; unused in partly used packs:
        // 900 (3) + 100 (4) + 100 (5).
        let p = plan(packs.clone(), &indexed, &used, MaxUnused::Percent(10.0));
        assert_eq!(ids(&p.repack), vec![3, 5], "10% allows 144: one more");
        assert_eq!(p.unused_after, 100);
        // 15% allows 1300 × 15/85 = 229 unused bytes.
        let p = plan(packs.clone(), &indexed, &used, MaxUnused::Percent(15.0));
        assert_eq!(ids(&p.delete), vec![2]);
        assert_eq!(
            ids(&p.repack),
            vec![3],
            "the most wasteful first, until within 15%"
        );
        let mut kept = ids(&p.keep);
        kept.sort();
        assert_eq!(kept, vec![1, 4, 5]);
        assert_eq!(p.live_bytes, 1300);
        assert_eq!(p.unused_after, 200);
        assert_eq!(p.repack[0].live.len(), 1);

        let p = plan(packs.clone(), &indexed, &used, MaxUnused::Percent(0.0));
        assert_eq!(ids(&p.repack).len(), 3, "0%: every partly used pack");
        let p = plan(packs, &indexed, &used, MaxUnused::Unlimited);
        assert!(p.repack.is_empty());
        assert_eq!(ids(&p.delete), vec![2]);
    }

    #[test]
    fn max_unused_parses() {
        assert_eq!(MaxUnused::parse("5"), Ok(MaxUnused::Percent(5.0)));
        assert_eq!(MaxUnused::parse("12.5%"), Ok(MaxUnused::Percent(12.5)));
        assert_eq!(MaxUnused::parse("100"), Ok(MaxUnused::Unlimited));
        assert_eq!(MaxUnused::parse("unlimited"), Ok(MaxUnused::Unlimited));
        assert!(MaxUnused::parse("-1").is_err());
        assert!(MaxUnused::parse("lots").is_err());
    }
}
