//! `trove forget`: drop snapshots, named or by a `--keep-*` policy
//! ([`policy`], restic's rules), and optionally prune what they alone used.
//!
//! Forgetting writes ONE index segment (the next in the container's log)
//! listing the forgotten snapshots — the signed record that they were
//! deleted on purpose, which `sync` honours even when it finds their
//! manifests in a peer's trash — applied locally in one transaction with
//! the deletions of their manifests on every configured peer. Then the
//! segment is replicated, and only then are the manifests deleted (into
//! the peers' trash), on each peer that holds it; a peer out of reach gets
//! its deletions at a later prune, forget or backup.

mod policy;

pub use policy::{KeepPolicy, KeepReason, KeepWithin};

use crate::deletions::DeletionReport;
use crate::error::{RepoError, Result};
use crate::home::{Home, Owner};
use crate::index::{Deletion, Doomed};
use crate::progress::Progress;
use crate::prune::{finish_deletions, prune_locked, MaxUnused, PruneOptions, PruneReport};
use std::collections::BTreeSet;
use std::time::Duration;
use trove_core::manifest::SnapshotManifest;
use trove_core::{SegmentId, SnapshotId};
use trove_peer::MetaKey;

/// What to forget.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct ForgetOptions {
    /// Snapshots to forget: ids or unique id prefixes of at least 4 hex
    /// digits (instead of a policy).
    #[cfg_attr(feature = "clap", arg(value_name = "SNAPSHOT"))]
    pub snapshots: Vec<String>,
    #[cfg_attr(feature = "clap", command(flatten))]
    pub policy: KeepPolicy,
    /// Say what would be kept and forgotten; change nothing.
    #[cfg_attr(feature = "clap", arg(long))]
    pub dry_run: bool,
    /// Prune afterwards.
    #[cfg_attr(feature = "clap", arg(long))]
    pub prune: bool,
    /// With --prune: unused space partly used packs may keep, as a
    /// percentage of what the container stores (see `trove prune`).
    #[cfg_attr(
        feature = "clap",
        arg(long, value_name = "PCT", default_value = "5", value_parser = MaxUnused::parse)
    )]
    pub max_unused: MaxUnused,
    /// How long to wait for a running backup (`30s`, `5m`, `1h`).
    #[cfg_attr(
        feature = "clap",
        arg(long, value_name = "DURATION", default_value = "5m", value_parser = crate::lock::parse_wait)
    )]
    pub wait: Duration,
}

impl Default for ForgetOptions {
    fn default() -> Self {
        Self {
            snapshots: Vec::new(),
            policy: KeepPolicy::default(),
            dry_run: false,
            prune: false,
            max_unused: MaxUnused::default(),
            wait: Duration::from_secs(300),
        }
    }
}

/// One snapshot kept or forgotten.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ForgetRow {
    pub id: SnapshotId,
    pub short_id: String,
    /// UTC, `YYYY-MM-DD HH:MM:SS`.
    pub time: String,
    pub host: String,
    /// Why it is kept (empty for a forgotten one).
    pub reasons: Vec<KeepReason>,
}

impl ForgetRow {
    fn new(s: &SnapshotManifest, reasons: Vec<KeepReason>) -> Self {
        Self {
            id: s.id,
            short_id: s.id.short(),
            time: crate::time::utc(s.time_unix_ns),
            host: s.host.clone(),
            reasons,
        }
    }
}

/// What a forget did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ForgetReport {
    pub container: String,
    pub dry_run: bool,
    /// Snapshots kept, newest first, each with its reasons.
    pub keep: Vec<ForgetRow>,
    /// Snapshots forgotten, newest first.
    pub forget: Vec<ForgetRow>,
    /// The segment recording the forget.
    pub segment: Option<SegmentId>,
    /// Manifests deleted on peers now, and deletions left for later.
    pub deletions: DeletionReport,
    /// The prune that followed (`--prune`).
    pub prune: Option<PruneReport>,
}

/// Forget snapshots of container `name`, holding the in-process lease alone.
pub fn forget(
    home: &Home,
    owner: &Owner,
    name: &str,
    opts: &ForgetOptions,
    progress: &dyn Progress,
) -> Result<ForgetReport> {
    let _lease = home.lease().exclusive(opts.wait)?;
    let container = home.containers().open(owner, name)?;
    let cid = container.manifest.id;
    // A snapshot still being committed counts for the policy once it is.
    crate::pending::finish_all(home, owner, progress)?;
    let snaps = home.index.snapshots(&cid)?;
    let decided = match (opts.snapshots.is_empty(), opts.policy.is_empty()) {
        (true, true) => return Err(RepoError::NoForgetPolicy),
        (false, false) => return Err(RepoError::IdsAndPolicy),
        (false, true) => named(name, &snaps, &opts.snapshots)?,
        (true, false) => policy::decide(&snaps, &opts.policy),
    };
    let mut report = ForgetReport {
        container: name.to_owned(),
        dry_run: opts.dry_run,
        ..Default::default()
    };
    for (id, reasons) in decided {
        let s = snaps
            .iter()
            .find(|s| s.id == id)
            .expect("decided among them");
        if reasons.is_empty() {
            report.forget.push(ForgetRow::new(s, reasons));
        } else {
            report.keep.push(ForgetRow::new(s, reasons));
        }
    }
    if opts.dry_run {
        return Ok(report);
    }
    if !report.forget.is_empty() {
        let mut seg = crate::meta::next_segment(home, cid, Vec::new())?;
        seg.forgotten = report.forget.iter().map(|r| r.id).collect();
        let env = crate::meta::seal_segment(owner, &container, &seg);
        let mut doomed = Vec::new();
        for peer in home.peers().records()? {
            for id in &seg.forgotten {
                doomed.push(Deletion {
                    peer: peer.id,
                    what: Doomed::Meta(MetaKey::Snapshot(cid, *id)),
                    container: cid,
                    bytes: 0,
                });
            }
        }
        home.index.apply_segment_deleting(&seg, &env, &doomed)?;
        report.segment = Some(seg.id);
    }
    let replicate = report.segment.is_some();
    finish_deletions(
        home,
        owner,
        &container,
        replicate,
        &mut report.deletions,
        progress,
    )?;
    if opts.prune {
        let p = PruneOptions {
            max_unused: opts.max_unused,
            dry_run: false,
            wait: opts.wait,
            ..Default::default()
        };
        report.prune = Some(prune_locked(home, owner, &container, &p, progress)?);
    }
    Ok(report)
}

/// Snapshots named by id or unique prefix: those are forgotten, every
/// other one kept. An unknown or ambiguous name forgets nothing.
fn named(
    container: &str,
    snaps: &[SnapshotManifest],
    specs: &[String],
) -> Result<Vec<(SnapshotId, Vec<KeepReason>)>> {
    let mut chosen = BTreeSet::new();
    for spec in specs {
        let prefix = spec.to_ascii_lowercase();
        if prefix.len() < 4 || !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(RepoError::BadSnapshotSpec(spec.clone()));
        }
        let mut found = snaps.iter().filter(|s| s.id.to_hex().starts_with(&prefix));
        match (found.next(), found.next()) {
            (None, _) => {
                return Err(RepoError::UnknownSnapshot {
                    container: container.to_owned(),
                    spec: spec.clone(),
                })
            }
            (Some(_), Some(_)) => return Err(RepoError::AmbiguousSnapshot(spec.clone())),
            (Some(s), None) => {
                chosen.insert(s.id);
            }
        }
    }
    let mut order: Vec<&SnapshotManifest> = snaps.iter().collect();
    order.sort_by_key(|s| std::cmp::Reverse((s.time_unix_ns, s.id)));
    Ok(order
        .into_iter()
        .map(|s| {
            let reasons = if chosen.contains(&s.id) {
                Vec::new()
            } else {
                vec![KeepReason::NotNamed]
            };
            (s.id, reasons)
        })
        .collect())
}
