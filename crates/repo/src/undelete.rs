//! `trove undelete`: snapshots deleted within the peers' grace period come
//! back, with everything they reference. Forget and prune (by the owner, or
//! by ransomware holding the unlocked key) only ever move snapshot
//! manifests, index segments and fragments into the peers' trash, where the
//! peer's operator keeps them for the grace period; no client command can
//! empty a trash early. Undelete reads the trash back:
//!
//! 1. **list**: the snapshot manifests in the peers' trash (or live on a
//!    peer but forgotten) that this identity signed and the index does not
//!    hold;
//! 2. **bring back** one: every pack record the index log ever held (its
//!    live and trashed segments) that is not current is a candidate; each
//!    candidate's fragments are undeleted on their peers, and the packs
//!    readable again (at least `k` fragments present) are recorded in a new
//!    segment that also says the snapshot is restored; the manifest goes
//!    back on the peers and into the index;
//! 3. **verify**: the snapshot's trees are walked and every chunk they name
//!    must be in the index again.
//!
//! Packs brought back that the snapshot does not need are harmless: the
//! next prune removes them.

use crate::error::{RepoError, Result};
use crate::fetch::Fetcher;
use crate::home::{Container, Home, Owner};
use crate::meta::sync_meta;
use crate::progress::{Event, Progress};
use crate::snapshot::TreeReader;
use crate::sync::{collect, open_object, Found, Opened};
use std::collections::{BTreeMap, HashSet};
use trove_core::manifest::{IndexSegment, PackRecord, SnapshotManifest};
use trove_core::tree::NodeKind;
use trove_core::{BlobId, PackId, SegmentId, SnapshotId, TreeId};

/// A snapshot that can be brought back.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeletedSnapshot {
    pub id: SnapshotId,
    pub short_id: String,
    /// When it was taken (UTC), and in ns.
    pub time: String,
    pub time_unix_ns: i64,
    pub host: String,
    pub files: u64,
    pub bytes: u64,
    /// When the newest copy was deleted on a peer (ns), if it is in a trash.
    pub deleted_unix_ns: Option<u64>,
    /// The peers holding a copy of its manifest.
    pub peers: Vec<String>,
}

/// What `undelete` did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct UndeleteReport {
    pub container: String,
    /// The snapshots that can be brought back (listing), or the one brought back.
    pub snapshots: Vec<DeletedSnapshot>,
    pub restored: Option<SnapshotId>,
    /// Packs recorded again, and their fragments brought back from trashes.
    pub packs_restored: u64,
    pub fragments_undeleted: u64,
    /// Packs the log knew that stay gone (too few fragments left: purged).
    pub packs_unrecoverable: u64,
    /// Chunks the restored snapshot names that are still not stored, with
    /// the file they belong to: the part of it that is lost for good.
    pub missing: Vec<String>,
}

/// What the peers hold of one container, verified.
struct Gathered {
    snapshots: BTreeMap<SnapshotId, (SnapshotManifest, Found, Vec<String>)>,
    segments: BTreeMap<SegmentId, IndexSegment>,
}

fn gather(home: &Home, owner: &Owner, c: &Container, progress: &dyn Progress) -> Result<Gathered> {
    let cid = c.manifest.id;
    let mut out = Gathered {
        snapshots: BTreeMap::new(),
        segments: BTreeMap::new(),
    };
    for (id, (seg, _)) in crate::sync::local_segments(home, owner, &cid, &c.keys)? {
        out.segments.insert(id, seg);
    }
    let peers = home.peers().open_all()?;
    peers.warn_unavailable(progress);
    for (rec, peer) in peers.available() {
        let found = match collect(peer.as_ref(), &rec.name, owner) {
            Ok(f) => f.found,
            Err(e) => {
                progress.event(Event::Warning(e.to_string()));
                continue;
            }
        };
        for f in found.into_iter().filter(|f| *f.key.container() == cid) {
            match open_object(owner, Some(&c.keys), &f) {
                Some(Ok(Opened::Segment(seg))) => {
                    out.segments.entry(seg.id).or_insert(seg);
                }
                Some(Ok(Opened::Snapshot(snap))) => {
                    let entry = out
                        .snapshots
                        .entry(snap.id)
                        .or_insert_with(|| (snap, f.clone(), Vec::new()));
                    if !entry.2.contains(&rec.name) {
                        entry.2.push(rec.name.clone());
                    }
                    // The newest deletion is the one to show.
                    if f.deleted_unix_ns > entry.1.deleted_unix_ns {
                        entry.1 = f;
                    }
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

/// The snapshots of `name` that can be brought back.
pub fn list_deleted(
    home: &Home,
    owner: &Owner,
    name: &str,
    progress: &dyn Progress,
) -> Result<UndeleteReport> {
    let c = home.containers().open(owner, name)?;
    let live: HashSet<SnapshotId> = home
        .containers()
        .snapshots_of(&c.manifest.id)?
        .into_iter()
        .map(|s| s.id)
        .collect();
    let gathered = gather(home, owner, &c, progress)?;
    let snapshots = gathered
        .snapshots
        .into_values()
        .filter(|(s, _, _)| !live.contains(&s.id))
        .map(|(s, f, peers)| row(&s, &f, peers))
        .collect();
    Ok(UndeleteReport {
        container: name.to_owned(),
        snapshots,
        ..Default::default()
    })
}

fn row(s: &SnapshotManifest, f: &Found, peers: Vec<String>) -> DeletedSnapshot {
    let sum = &s.summary;
    DeletedSnapshot {
        id: s.id,
        short_id: s.id.short(),
        time: crate::time::utc(s.time_unix_ns),
        time_unix_ns: s.time_unix_ns,
        host: s.host.clone(),
        files: sum.files_new + sum.files_changed + sum.files_unchanged,
        bytes: sum.bytes_total,
        deleted_unix_ns: f.deleted_unix_ns,
        peers,
    }
}

/// Bring snapshot `spec` (an id prefix of 4+ hex digits) of `name` back.
pub fn undelete(
    home: &Home,
    owner: &Owner,
    name: &str,
    spec: &str,
    progress: &dyn Progress,
) -> Result<UndeleteReport> {
    let c = home.containers().open(owner, name)?;
    let cid = c.manifest.id;
    let prefix = spec.to_ascii_lowercase();
    if prefix.len() < 4 || !prefix.chars().all(|ch| ch.is_ascii_hexdigit()) {
        return Err(RepoError::BadSnapshotSpec(spec.to_owned()));
    }
    let live: HashSet<SnapshotId> = home
        .containers()
        .snapshots_of(&cid)?
        .into_iter()
        .map(|s| s.id)
        .collect();
    let gathered = gather(home, owner, &c, progress)?;
    let mut matches: Vec<_> = gathered
        .snapshots
        .values()
        .filter(|(s, _, _)| s.id.to_hex().starts_with(&prefix))
        .collect();
    let (snap, found, peers) = match matches.len() {
        0 => return Err(RepoError::NoSnapshot(spec.to_owned())),
        1 => matches.remove(0).clone(),
        _ => return Err(RepoError::AmbiguousSnapshot(spec.to_owned())),
    };
    // A snapshot still listed (its manifest came back with `sync`) may
    // still miss fragments a thief deleted: they are brought back all the same.
    let listed = live.contains(&snap.id);

    // Every pack record the log ever held that is not current.
    let mut ordered: Vec<&IndexSegment> = gathered.segments.values().collect();
    ordered.sort_by_key(|s| (s.seq, s.id));
    let mut ever: BTreeMap<PackId, PackRecord> = BTreeMap::new();
    for s in ordered {
        for p in &s.packs {
            ever.insert(p.id, p.clone());
        }
    }
    let current = home.containers().packs(&cid)?;
    let current_ids: HashSet<PackId> = current.iter().map(|p| p.id).collect();
    let peers_now = home.peers().open_all()?;
    let fetcher = Fetcher::new(&peers_now.slots);
    let mut report = UndeleteReport {
        container: name.to_owned(),
        ..Default::default()
    };
    // Fragments deleted from under current packs come back too (a thief
    // with the transport key can delete fragments without touching the log).
    for rec in &current {
        undelete_fragments(&fetcher, rec, &mut report);
    }
    let mut back = Vec::new();
    for rec in ever.into_values().filter(|r| !current_ids.contains(&r.id)) {
        if undelete_fragments(&fetcher, &rec, &mut report) >= rec.k as usize {
            back.push(rec);
        } else {
            report.packs_unrecoverable += 1;
        }
    }
    report.packs_restored = back.len() as u64;

    // One segment: the packs again, and the snapshot restored.
    let mut seg = crate::meta::next_segment(home, cid, back)?;
    if !listed {
        seg.restored.push(snap.id);
    }
    let env = crate::meta::seal_segment(owner, &c, &seg);
    home.index.apply_segment(&seg, &env)?;
    if !listed {
        home.index.insert_snapshot(&snap, &found.bytes)?;
    }
    // Segment before snapshot on every peer (sync_meta's order).
    sync_meta(home, owner, &c, &peers_now.available(), false, progress)?;

    report.missing = missing_chunks(home, &c, &fetcher, &snap)?;
    report.restored = Some(snap.id);
    report.snapshots = vec![row(&snap, &found, peers)];
    Ok(report)
}

/// Bring back whatever fragments of a pack its peers hold only in their
/// trash; how many of its fragments are present afterwards.
fn undelete_fragments(fetcher: &Fetcher, rec: &PackRecord, report: &mut UndeleteReport) -> usize {
    let mut present = 0;
    for loc in &rec.fragments {
        let Ok((_, peer)) = fetcher.peer_of(loc) else {
            continue;
        };
        let here = match peer.has_fragment(&loc.id) {
            Ok(true) => true,
            _ => match peer.undelete_fragment(&loc.id) {
                Ok(true) => {
                    report.fragments_undeleted += 1;
                    true
                }
                _ => false,
            },
        };
        present += usize::from(here);
    }
    present
}

/// Walk a snapshot's trees: the chunks (with their files) and the trees
/// it names that the index does not hold.
fn missing_chunks(
    home: &Home,
    c: &Container,
    fetcher: &Fetcher,
    snap: &SnapshotManifest,
) -> Result<Vec<String>> {
    let cid = c.manifest.id;
    let reader = TreeReader {
        home,
        container: c,
        fetcher,
    };
    let mut missing = Vec::new();
    let mut stack: Vec<(TreeId, String)> = vec![(snap.root, String::new())];
    let mut seen = HashSet::new();
    while let Some((t, path)) = stack.pop() {
        if !seen.insert(t) {
            continue;
        }
        let tree = match reader.load(&t) {
            Ok(tree) => tree,
            Err(e) => {
                missing.push(format!("{path}/ (whole folder): {e}"));
                continue;
            }
        };
        for node in tree.nodes {
            let child = format!("{path}/{}", String::from_utf8_lossy(&node.name));
            match node.kind {
                NodeKind::Dir { tree } => stack.push((tree, child)),
                NodeKind::File { chunks, .. } => {
                    for ch in chunks {
                        if home.index.blob(&cid, &BlobId(ch.0))?.is_none() {
                            missing.push(format!("{child}: chunk {} is not stored", ch.short()));
                            break;
                        }
                    }
                }
                NodeKind::Symlink { .. } => {}
            }
        }
    }
    missing.sort();
    Ok(missing)
}
