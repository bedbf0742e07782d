//! `trove check`: every fragment present on its peer with the right hash,
//! every manifest replicated and correctly signed; with `read_data`, every
//! pack decoded and every blob opened and verified, every snapshot's trees
//! walked and every referenced blob found; with `audit`, each fragment is
//! checked by its peer proving a few random ranges of it (see
//! [`trove_peer::audit`]) instead of being downloaded whole.

use crate::error::Result;
use crate::fetch::Fetcher;
use crate::home::{Container, Home, Owner};
use crate::progress::{Event, Progress};
use crate::snapshot::TreeReader;
use std::collections::HashSet;
use trove_core::erasure;
use trove_core::manifest::PackRecord;
use trove_core::tree::NodeKind;
use trove_core::{BlobId, FragmentId, TreeId};
use trove_peer::audit;
use trove_peer::Peer;

/// Ranges asked of each fragment in an audit. A peer that kept the hash tree
/// but dropped a fraction `f` of a fragment's chunks passes one audit of it
/// with probability at most about `(1 - f)^4`; a peer whose copy is damaged
/// anywhere fails every range, as its tree no longer leads to the id.
const AUDIT_RANGES_PER_FRAGMENT: usize = 4;
/// One BLAKE3 chunk: the unit a proof verifies anyway.
const AUDIT_RANGE_LEN: u64 = 1024;

/// What `check` verifies beyond the manifests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckOptions {
    /// Also decode every pack and verify every blob and tree.
    pub read_data: bool,
    /// Verify fragments with audit proofs of a few random ranges instead of
    /// downloading each whole: far less traffic from remote peers, yet any
    /// damage to the copy a peer proves from fails its audit (see
    /// [`trove_peer::audit`]).
    pub audit: bool,
}

/// What `check` found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CheckReport {
    pub containers: u64,
    pub snapshots: u64,
    pub packs: u64,
    pub fragments: u64,
    pub fragments_ok: u64,
    /// Packs with fewer than `k` good fragments: data is lost.
    pub packs_unrecoverable: u64,
    pub blobs_verified: u64,
    /// Fragments whose peer was asked for audit proofs (0 unless auditing).
    pub audited_fragments: u64,
    /// Ranges asked for in those audits.
    pub audited_ranges: u64,
    /// Human-readable problems; empty means healthy.
    pub problems: Vec<String>,
}

/// Check one container, or all when `name` is `None`.
pub fn check(
    home: &Home,
    owner: &Owner,
    name: Option<&str>,
    opts: &CheckOptions,
    progress: &dyn Progress,
) -> Result<CheckReport> {
    let names: Vec<String> = match name {
        Some(n) => vec![n.to_owned()],
        None => home
            .index
            .containers()?
            .into_iter()
            .map(|c| c.name)
            .collect(),
    };
    let slots = home.open_peers()?;
    let mut report = CheckReport::default();
    for s in &slots {
        if let Err(e) = &s.peer {
            report.problems.push(e.to_string());
        }
    }
    let fetcher = Fetcher::new(&slots);
    for n in names {
        let c = home.container(owner, &n)?;
        report.containers += 1;
        check_meta(home, owner, &c, &slots, &mut report);
        check_fragments(home, &c, &slots, opts.audit, &mut report, progress)?;
        if opts.read_data {
            check_data(home, &c, &fetcher, &mut report, progress)?;
        }
    }
    for p in fetcher.problems() {
        report.problems.push(p.to_string());
    }
    Ok(report)
}

fn check_meta(
    home: &Home,
    owner: &Owner,
    c: &Container,
    slots: &[crate::home::PeerSlot],
    report: &mut CheckReport,
) {
    let cid = c.manifest.id;
    let objects = match home.index.meta(&cid) {
        Ok(o) => o,
        Err(e) => {
            report.problems.push(e.to_string());
            return;
        }
    };
    for s in slots {
        let Some(peer) = s.available() else { continue };
        for (key, local) in &objects {
            match peer.get_meta(key) {
                Ok(b) if &b == local => {}
                Ok(b) => match crate::meta::verify_envelope(owner, c, key, &b) {
                    Err(e) => report.problems.push(format!(
                        "peer `{}`: {key} is invalid and was refused ({e}); the next backup replaces it",
                        s.record.name
                    )),
                    Ok(theirs) => {
                        let mine = trove_core::envelope::peek(local).map_or(0, |h| h.revision);
                        report.problems.push(if theirs.revision > mine {
                            format!(
                                "peer `{}`: {key} is a newer signed version (revision {}, this machine has {mine}): run `trove sync`",
                                s.record.name, theirs.revision
                            )
                        } else if theirs.revision < mine {
                            format!(
                                "peer `{}`: {key} is an older signed version (revision {}, this machine has {mine}); the next backup replaces it",
                                s.record.name, theirs.revision
                            )
                        } else {
                            format!(
                                "peer `{}`: {key} is another signed copy of the same revision {mine}; the peer keeps its own",
                                s.record.name
                            )
                        })
                    }
                },
                Err(e) if e.is_not_found() => report.problems.push(format!(
                    "peer `{}` lacks {key}; the next backup copies it",
                    s.record.name
                )),
                Err(e) => report.problems.push(format!("peer `{}`: {key}: {e}", s.record.name)),
            }
        }
    }
}

fn check_fragments(
    home: &Home,
    c: &Container,
    slots: &[crate::home::PeerSlot],
    audit: bool,
    report: &mut CheckReport,
    progress: &dyn Progress,
) -> Result<()> {
    let mut rng = rand::thread_rng();
    let packs = home.index.packs(&c.manifest.id)?;
    let total = packs.len() as u64;
    for (n, rec) in packs.iter().enumerate() {
        report.packs += 1;
        let mut good = 0;
        for loc in &rec.fragments {
            report.fragments += 1;
            let slot = slots.iter().find(|s| s.record.id == loc.peer);
            let verdict = match slot.map(|s| (s, s.available())) {
                None => Err("its peer is no longer configured".to_owned()),
                Some((_, None)) => Err("its peer is unavailable".to_owned()),
                Some((_, Some(p))) if audit => {
                    audit_fragment(p.as_ref(), &loc.id, fragment_len(rec), &mut rng, report)
                }
                Some((_, Some(p))) => crate::fetch::read_verified(p.as_ref(), &loc.id).map(|_| ()),
            };
            match verdict {
                Ok(()) => {
                    good += 1;
                    report.fragments_ok += 1;
                }
                Err(why) => report.problems.push(format!(
                    "pack {} fragment {} on peer `{}`: {why}",
                    rec.id.short(),
                    loc.index,
                    slot.map_or_else(|| loc.peer.short(), |s| s.record.name.clone())
                )),
            }
        }
        if good < rec.k as usize {
            report.packs_unrecoverable += 1;
            report.problems.push(format!(
                "pack {} has {good} good fragments of the {} it needs: its data is lost",
                rec.id.short(),
                rec.k
            ));
        }
        progress.event(Event::Step {
            done: n as u64 + 1,
            total,
        });
    }
    Ok(())
}

/// The length of each fragment of a pack, known from the index alone.
fn fragment_len(rec: &PackRecord) -> u64 {
    (erasure::FRAGMENT_HEADER_LEN + erasure::shard_len(rec.pack_len as usize, rec.k)) as u64
}

/// Ask `peer` to prove random ranges of fragment `id` and check every proof
/// against the id; the error is the problem to report.
fn audit_fragment(
    peer: &dyn Peer,
    id: &FragmentId,
    fragment_len: u64,
    rng: &mut impl rand::Rng,
    report: &mut CheckReport,
) -> std::result::Result<(), String> {
    let ranges = audit::pick_ranges(
        fragment_len,
        AUDIT_RANGES_PER_FRAGMENT,
        AUDIT_RANGE_LEN,
        rng,
    );
    report.audited_fragments += 1;
    report.audited_ranges += ranges.len() as u64;
    let proofs = match peer.audit_fragment(id, &ranges) {
        Ok(p) => p,
        Err(e) if e.is_not_found() => return Err("missing".into()),
        Err(e) => return Err(e.to_string()),
    };
    if proofs.len() != ranges.len() {
        return Err(format!(
            "audit failed: the peer answered {} of {} ranges",
            proofs.len(),
            ranges.len()
        ));
    }
    for (range, proof) in ranges.iter().zip(&proofs) {
        audit::verify(id, *range, proof).map_err(|e| format!("audit failed: {e}"))?;
    }
    Ok(())
}

fn check_data(
    home: &Home,
    c: &Container,
    fetcher: &Fetcher,
    report: &mut CheckReport,
    progress: &dyn Progress,
) -> Result<()> {
    let cid = c.manifest.id;
    let packs = home.index.packs(&cid)?;
    let total = packs.len() as u64;
    for (n, rec) in packs.iter().enumerate() {
        match fetcher.pack_uncached(rec) {
            Ok(data) => {
                for entry in &rec.blobs {
                    let loc = crate::index::BlobLocation {
                        pack: rec.id,
                        entry: *entry,
                    };
                    match Fetcher::open_blob(&c.keys, &data, &loc) {
                        Ok(_) => report.blobs_verified += 1,
                        Err(e) => report
                            .problems
                            .push(format!("pack {}: {e}", rec.id.short())),
                    }
                }
            }
            Err(e) => report.problems.push(e.to_string()),
        }
        progress.event(Event::Step {
            done: n as u64 + 1,
            total,
        });
    }
    // Every snapshot's trees readable and every blob they name indexed.
    let reader = TreeReader {
        home,
        container: c,
        fetcher,
    };
    let mut seen: HashSet<TreeId> = HashSet::new();
    for snap in home.index.snapshots(&cid)? {
        report.snapshots += 1;
        let mut stack = vec![snap.root];
        while let Some(t) = stack.pop() {
            if !seen.insert(t) {
                continue;
            }
            match reader.load(&t) {
                Ok(tree) => {
                    for node in tree.nodes {
                        match node.kind {
                            NodeKind::Dir { tree } => stack.push(tree),
                            NodeKind::File { chunks, .. } => {
                                for ch in chunks {
                                    if home.index.blob(&cid, &BlobId(ch.0))?.is_none() {
                                        report.problems.push(format!(
                                            "snapshot {}: chunk {} of {:?} is not stored",
                                            snap.id.short(),
                                            ch.short(),
                                            String::from_utf8_lossy(&node.name)
                                        ));
                                    }
                                }
                            }
                            NodeKind::Symlink { .. } => {}
                        }
                    }
                }
                Err(e) => report
                    .problems
                    .push(format!("snapshot {}: {e}", snap.id.short())),
            }
        }
    }
    Ok(())
}
