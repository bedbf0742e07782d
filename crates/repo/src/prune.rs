//! `trove prune`: free what no snapshot uses.
//!
//! 1. **What is used** ([`plan`]): every blob the snapshots' trees reach. A
//!    prune that cannot know it (a tree unreadable, a chunk not indexed, a
//!    peer holding a snapshot this machine does not know) changes nothing.
//! 2. **Leftovers of killed uploads**: upload intents whose pack was never
//!    recorded become deletions of their fragments.
//! 3. **Plan** ([`plan`]): a pack none of whose blobs is used is deleted, a
//!    partly used pack is repacked when the unused space would otherwise
//!    exceed `--max-unused`, the rest are kept.
//! 4. **Repack** ([`repack`]): the used blobs of those packs into new
//!    packs, stored like a backup's and recorded in the index (their blobs'
//!    entries move to them) before anything else changes.
//! 5. **Compact**: one index segment holding the record of every pack that
//!    stays (the new ones included), listing the deleted and repacked packs
//!    as removed and superseding every older segment; applied locally in
//!    one transaction together with the deletions it justifies.
//! 6. **Replicate** the new segment to every reachable peer, then
//!    **delete** ([`crate::deletions`]): fragments of removed packs and the
//!    superseded segments, on each peer that holds the new log; the others
//!    later. Stale `tmp/` files of folder peers go too.
//!
//! Why a crash never loses anything: until step 5 commits, the index log is
//! the old one and every old pack is intact (new packs are only extra
//! copies); step 5 is one transaction; nothing is deleted before it is
//! committed and replicated, and what it decides stays scheduled in the
//! index until done. A kill at any point leaves the old state or the new
//! one, plus garbage the next prune removes. Why a backup never loses
//! anything: prune holds the index alone, so no backup runs meanwhile (see
//! `lock.rs`); a backup started later loads its dedup set from the pruned
//! index.

mod plan;
mod repack;

pub use plan::MaxUnused;

use crate::deletions::{self, fragment_len, DeletionReport};
use crate::error::{RepoError, Result};
use crate::fetch::Fetcher;
use crate::home::{Container, Home, Owner};
use crate::index::{Deletion, Doomed};
use crate::meta::sync_meta;
use crate::progress::Progress;
use crate::snapshot::TreeReader;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};
use trove_core::manifest::{replay, PackRecord};
use trove_core::{BlobId, PackId, SegmentId};
use trove_peer::MetaKey;

/// How to prune.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct PruneOptions {
    /// Unused space partly used packs may keep, as a percentage of what the
    /// container stores (0: repack every partly used pack; `unlimited`: never repack).
    #[cfg_attr(
        feature = "clap",
        arg(long, value_name = "PCT", default_value = "5", value_parser = MaxUnused::parse)
    )]
    pub max_unused: MaxUnused,
    /// Say what would be deleted and repacked; change nothing.
    #[cfg_attr(feature = "clap", arg(long))]
    pub dry_run: bool,
    /// How long to wait for a running backup (`30s`, `5m`, `1h`).
    #[cfg_attr(
        feature = "clap",
        arg(long, value_name = "DURATION", default_value = "5m", value_parser = crate::lock::parse_wait)
    )]
    pub wait: Duration,
    /// Empty from folder and bucket peers' `trash/` what was deleted at least this
    /// long ago (`0s` empties it). Nodes keep their operator's grace period
    /// whatever this says.
    #[cfg_attr(
        feature = "clap",
        arg(long, value_name = "DURATION", default_value = "30d", value_parser = crate::health::parse_duration)
    )]
    pub folder_trash_grace: Duration,
}

/// How long a folder peer's trash keeps what prune and forget deleted
/// unless told otherwise: a node's default grace period.
pub const DEFAULT_FOLDER_TRASH_GRACE: Duration = Duration::from_secs(30 * 86_400);

impl Default for PruneOptions {
    fn default() -> Self {
        Self {
            max_unused: MaxUnused::default(),
            dry_run: false,
            wait: Duration::from_secs(300),
            folder_trash_grace: DEFAULT_FOLDER_TRASH_GRACE,
        }
    }
}

/// What a prune did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PruneReport {
    pub container: String,
    pub dry_run: bool,
    pub snapshots: u64,
    /// Packs before the prune, and their fate.
    pub packs: u64,
    pub packs_kept: u64,
    pub packs_deleted: u64,
    pub packs_repacked: u64,
    /// New packs the repack wrote.
    pub packs_written: u64,
    /// Blobs the snapshots use, blobs copied into new packs, and blobs no
    /// snapshot uses (they leave the index with their pack; those in kept
    /// packs stay, and a later backup may use them again).
    pub blobs_used: u64,
    pub blobs_repacked: u64,
    pub blobs_unused: u64,
    /// Sealed bytes no snapshot uses, before and after.
    pub unused_bytes_before: u64,
    pub unused_bytes_after: u64,
    /// Fragment bytes of the deleted and repacked packs (what a dry run
    /// would free), and fragment bytes the repack uploaded.
    pub fragment_bytes_removed: u64,
    pub fragment_bytes_uploaded: u64,
    /// The compacting segment written, and how many it superseded.
    pub segment: Option<SegmentId>,
    pub segments_superseded: u64,
    /// Packs of killed uploads whose fragments are scheduled for deletion.
    pub abandoned_uploads: u64,
    /// Packs that could not be read and were kept instead of repacked.
    pub unreadable_packs: Vec<PackId>,
    /// The deletions done now, and those left for later.
    pub deletions: DeletionReport,
    /// Stale files removed from folder peers' `tmp/`.
    pub tmp_files_removed: u64,
    pub tmp_bytes_removed: u64,
    /// Files emptied from folder peers' `trash/` (older than the grace).
    pub trash_files_purged: u64,
    pub seconds: f64,
}

/// Prune one container (or the only one), holding the in-process lease
/// alone (see `lock.rs`).
pub fn prune(
    home: &Home,
    owner: &Owner,
    name: Option<&str>,
    opts: &PruneOptions,
    progress: &dyn Progress,
) -> Result<PruneReport> {
    let _lease = home.lease().exclusive(opts.wait)?;
    let container = home.containers().open_or_only(owner, name)?;
    prune_locked(home, owner, &container, opts, progress)
}

/// The prune itself; the caller holds the exclusive lease.
pub(crate) fn prune_locked(
    home: &Home,
    owner: &Owner,
    container: &Container,
    opts: &PruneOptions,
    progress: &dyn Progress,
) -> Result<PruneReport> {
    let started = Instant::now();
    let cid = container.manifest.id;
    let mut report = PruneReport {
        container: container.manifest.name.clone(),
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let peers = home.peers().open_all()?;
    peers.warn_unavailable(progress);
    let unsafe_ = |reason: String| RepoError::PruneUnsafe {
        container: container.manifest.name.clone(),
        reason,
    };

    // 0. A snapshot still being committed uses packs no committed snapshot
    // names: finish it first, or change nothing.
    crate::pending::finish_interrupted(home, container, &peers.available(), progress)?;
    if let Some(p) = home.index.pending(&cid)? {
        return Err(RepoError::CommitPending {
            container: container.manifest.name.clone(),
            snapshot: p.snapshot().id.short(),
        });
    }

    // 1. What the snapshots use.
    let snapshots = home.index.snapshots(&cid)?;
    report.snapshots = snapshots.len() as u64;
    unknown_snapshots(home, owner, container, &snapshots, &peers).map_err(unsafe_)?;
    let indexed: HashMap<BlobId, PackId> = home.index.blob_packs(&cid)?;
    let fetcher = Fetcher::new(&peers.slots);
    let reader = TreeReader {
        home,
        container,
        fetcher: &fetcher,
    };
    let used = plan::used_blobs(&reader, &snapshots, &indexed).map_err(unsafe_)?;

    // 2. Killed uploads.
    report.abandoned_uploads = if opts.dry_run {
        home.index.intents(&cid)?.len() as u64
    } else {
        home.index.abandon_intents(&cid)?.len() as u64
    };

    // 3. Each pack's fate.
    let packs = home.index.packs(&cid)?;
    report.packs = packs.len() as u64;
    report.blobs_used = used.len() as u64;
    let plan = plan::plan(packs, &indexed, &used, opts.max_unused);
    report.unused_bytes_before = plan.unused_before;
    report.unused_bytes_after = plan.unused_after;
    report.packs_kept = plan.keep.len() as u64;
    report.packs_deleted = plan.delete.len() as u64;
    report.packs_repacked = plan.repack.len() as u64;
    report.blobs_unused = (indexed.len() as u64).saturating_sub(report.blobs_used);
    report.fragment_bytes_removed = plan
        .delete
        .iter()
        .chain(&plan.repack)
        .map(|u| fragment_len(&u.rec) * u.rec.fragments.len() as u64)
        .sum();
    if opts.dry_run {
        report.blobs_repacked = plan.repack.iter().map(|u| u.live.len() as u64).sum();
        report.deletions = DeletionReport::default();
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    }

    // 4. Repack.
    let mut removed: Vec<PackRecord> = plan.delete.iter().map(|u| u.rec.clone()).collect();
    if !plan.repack.is_empty() {
        let r = repack::repack(
            home,
            container,
            &fetcher,
            peers.available(),
            &plan.repack,
            progress,
        )?;
        report.packs_written = r.written.len() as u64;
        report.blobs_repacked = r.blobs;
        report.fragment_bytes_uploaded = r.fragment_bytes;
        let emptied: HashSet<PackId> = r.emptied.iter().copied().collect();
        removed.extend(
            plan.repack
                .iter()
                .filter(|u| emptied.contains(&u.rec.id))
                .map(|u| u.rec.clone()),
        );
        report.packs_repacked = emptied.len() as u64;
        report.packs_kept += r.unreadable.len() as u64;
        for id in &r.unreadable {
            let u = plan.repack.iter().find(|u| u.rec.id == *id);
            report.fragment_bytes_removed -=
                u.map_or(0, |u| fragment_len(&u.rec) * u.rec.fragments.len() as u64);
        }
        report.unreadable_packs = r.unreadable;
    }

    // 5. Compact: one segment, applied with the deletions it justifies.
    if !removed.is_empty() {
        let (seg, superseded) = compact(home, owner, container, &removed)?;
        report.segment = Some(seg);
        report.segments_superseded = superseded;
    }

    // 6. Replicate, then delete what the log no longer names.
    let replicate = report.segment.is_some();
    finish_deletions(
        home,
        owner,
        container,
        replicate,
        &mut report.deletions,
        progress,
    )?;
    let (files, bytes) = deletions::sweep_tmp(&peers, progress);
    report.tmp_files_removed = files;
    report.tmp_bytes_removed = bytes;
    report.trash_files_purged =
        deletions::empty_owned_trash(&peers, opts.folder_trash_grace, progress);
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Refuse to prune when a reachable peer holds a snapshot of the container
/// that this machine does not know and did not forget (made on another
/// machine, say): its packs would look unused.
fn unknown_snapshots(
    home: &Home,
    owner: &Owner,
    container: &Container,
    snapshots: &[trove_core::manifest::SnapshotManifest],
    peers: &crate::peers::PeerSet,
) -> std::result::Result<(), String> {
    let cid = container.manifest.id;
    let log = crate::sync::local_segments(home, owner, &cid, &container.keys)
        .map_err(|e| e.to_string())?;
    let forgotten = replay(log.values().map(|(s, _)| s)).forgotten;
    let known: HashSet<_> = snapshots.iter().map(|s| s.id).collect();
    for (rec, peer) in peers.available() {
        // An unreadable peer is no evidence either way; its snapshots
        // would be found by `sync` once it answers.
        let Ok(keys) = peer.list_meta(Some(&cid)) else {
            continue;
        };
        for k in keys {
            if let MetaKey::Snapshot(_, id) = k {
                if !known.contains(&id) && !forgotten.contains(&id) {
                    return Err(format!(
                        "peer `{}` holds snapshot {} that this machine does not know \
                         (made on another machine?); run `trove sync` first",
                        rec.name,
                        id.short()
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Push the container's log to every reachable peer (always after a new
/// segment, `replicate`; else only when there is something to delete),
/// then do the pending deletions each of them can take (see
/// [`crate::deletions`]). Used by prune, forget and backup.
pub(crate) fn finish_deletions(
    home: &Home,
    owner: &Owner,
    container: &Container,
    replicate: bool,
    report: &mut DeletionReport,
    progress: &dyn Progress,
) -> Result<()> {
    if !replicate && home.index.deletions(&container.manifest.id)?.is_empty() {
        return Ok(());
    }
    let peers = home.peers().open_all()?;
    sync_meta(home, owner, container, &peers.available(), false, progress)?;
    *report = deletions::run(home, container, &peers, progress)?;
    Ok(())
}

/// Write and apply the compacting segment: every pack that stays, the
/// removed ones, the forgotten snapshots carried forward, every older
/// segment superseded; with the deletions of the removed packs' fragments
/// and of the superseded segments on every configured peer. Returns the
/// segment and how many segments it newly supersedes.
fn compact(
    home: &Home,
    owner: &Owner,
    container: &Container,
    removed: &[PackRecord],
) -> Result<(SegmentId, u64)> {
    let cid = container.manifest.id;
    let log = crate::sync::local_segments(home, owner, &cid, &container.keys)?;
    let state = replay(log.values().map(|(s, _)| s));
    let gone: HashSet<PackId> = removed.iter().map(|r| r.id).collect();
    let packs: Vec<PackRecord> = home
        .index
        .packs(&cid)?
        .into_iter()
        .filter(|p| !gone.contains(&p.id))
        .collect();
    let supersedes: BTreeSet<SegmentId> = log
        .keys()
        .copied()
        .chain(state.superseded.iter().copied())
        .collect();
    let mut seg = crate::meta::next_segment(home, cid, packs)?;
    seg.removed = removed.iter().map(|r| r.id).collect();
    seg.forgotten = state.forgotten.iter().copied().collect();
    seg.supersedes = supersedes.into_iter().collect();
    let env = crate::meta::seal_segment(owner, container, &seg);
    let mut doomed = Vec::new();
    for rec in removed {
        for f in &rec.fragments {
            doomed.push(Deletion {
                peer: f.peer,
                what: Doomed::Fragment(f.id),
                container: cid,
                bytes: fragment_len(rec),
            });
        }
    }
    let peer_ids: Vec<_> = home.peers().records()?.into_iter().map(|r| r.id).collect();
    for old in log.keys() {
        for p in &peer_ids {
            doomed.push(Deletion {
                peer: *p,
                what: Doomed::Meta(MetaKey::IndexSegment(cid, *old)),
                container: cid,
                bytes: 0,
            });
        }
    }
    home.index.apply_segment_deleting(&seg, &env, &doomed)?;
    Ok((seg.id, log.len() as u64))
}

impl std::fmt::Display for PruneReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verb = if self.dry_run { "would " } else { "" };
        writeln!(
            f,
            "`{}`: {} snapshot(s) use {} blob(s) in {} pack(s)",
            self.container, self.snapshots, self.blobs_used, self.packs
        )?;
        writeln!(
            f,
            "  {verb}delete {} pack(s), {verb}repack {} ({} blob(s) into {} new pack(s)), keep {}",
            self.packs_deleted,
            self.packs_repacked,
            self.blobs_repacked,
            self.packs_written,
            self.packs_kept
        )?;
        write!(
            f,
            "  unused: {} → {} bytes; fragments removed: {} bytes, uploaded: {} bytes",
            self.unused_bytes_before,
            self.unused_bytes_after,
            self.fragment_bytes_removed,
            self.fragment_bytes_uploaded
        )
    }
}
