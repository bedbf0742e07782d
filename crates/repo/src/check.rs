//! `trove check`: every fragment present on its peer with the right hash,
//! every manifest replicated and correctly signed; with `read_data`, every
//! pack decoded and every blob opened and verified, every snapshot's trees
//! walked and every referenced blob found.

use crate::error::Result;
use crate::fetch::Fetcher;
use crate::home::{Container, Home, Owner};
use crate::progress::{Event, Progress};
use crate::snapshot::TreeReader;
use std::collections::HashSet;
use trove_core::tree::NodeKind;
use trove_core::{BlobId, TreeId};

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
    /// Human-readable problems; empty means healthy.
    pub problems: Vec<String>,
}

/// Check one container, or all when `name` is `None`.
pub fn check(
    home: &Home,
    owner: &Owner,
    name: Option<&str>,
    read_data: bool,
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
        check_fragments(home, &c, &slots, &mut report, progress)?;
        if read_data {
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
                    Ok(_) => report.problems.push(format!(
                        "peer `{}`: {key} is an older signed version; the next backup replaces it",
                        s.record.name
                    )),
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
    report: &mut CheckReport,
    progress: &dyn Progress,
) -> Result<()> {
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
