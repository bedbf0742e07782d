//! A backup, in three stages:
//!
//! 1. [`prepare`]: open the container and its peers, bring the roster and
//!    the replicated metadata up to date, and walk the sources (a walk
//!    begun while the passphrase was stretched goes on while the pipeline
//!    reads the files it has found);
//! 2. [`pipeline`]: read, chunk, dedup and seal on worker threads, pack,
//!    erasure-code and upload, recording each pack once every fragment of
//!    it is acknowledged;
//! 3. [`commit`]: the index segment and the snapshot, committed locally in
//!    one transaction only once every fragment they need is durable
//!    (invariant 4, docs/design.md §Invariants), then replicated.
//!
//! ```text
//! scan ─▶ opener ─▶ workers (read, chunk, id, dedup, seal) ─▶ packer ─▶ uploader ─▶ peers
//!       trees (after the workers) ─────────────────────────────────┘
//! ```
//! Channels are bounded, so memory stays at a few packs whatever the input.

mod commit;
mod pipeline;
mod prepare;
mod seen;

use crate::error::Result;
use crate::home::{Home, Owner};
use crate::profile::{Profiler, Stage, StageProfile};
use crate::progress::Progress;
use std::sync::Arc;
use std::time::Instant;
use trove_core::manifest::SnapshotManifest;
use trove_core::seal::Compression;

pub use crate::scan::{SkippedPath, UnreadablePath};

/// How to back up.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct BackupOptions {
    /// `zstd:LEVEL` (where it pays; default zstd:1) or `off`.
    #[cfg_attr(
        feature = "clap",
        arg(long, default_value = "zstd:1", value_parser = parse_compression)
    )]
    pub compression: Compression,
    /// Reader/sealer threads (default: twice the number of cores).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = default_workers()))]
    pub workers: usize,
    /// Time each stage (scan, read, chunk, id, compress, encrypt, pack,
    /// encode, write+fsync, index...) and report the pipeline limit.
    #[cfg_attr(feature = "clap", arg(long))]
    pub profile: bool,
    /// What changed since the container's last backup began, as a file
    /// watcher saw it (the daemon's): the walk enters only the folders
    /// these touch. `None` walks everything.
    #[cfg_attr(feature = "clap", arg(skip))]
    pub changes: Option<std::sync::Arc<crate::Changes>>,
}

impl Default for BackupOptions {
    fn default() -> Self {
        Self {
            compression: Compression::default(),
            workers: default_workers(),
            profile: false,
            changes: None,
        }
    }
}

/// Two per core: a worker waiting for the disk (a cold cache, many small
/// files) leaves its core to another. On 200,000 small files with a cold
/// cache, 6 workers on 2 cores backed up in 9.8-11.8 s against 11.2-16.3 s
/// for 2 (docs/performance.md).
fn default_workers() -> usize {
    2 * std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// `off`, `zstd` or `zstd:LEVEL` (1-22).
pub fn parse_compression(s: &str) -> std::result::Result<Compression, String> {
    let bad = || format!("compression `{s}`: use `off`, `zstd` or `zstd:LEVEL` (1-22)");
    match s.split_once(':') {
        None if s == "off" => Ok(Compression::Off),
        None if s == "zstd" => Ok(Compression::default()),
        Some(("zstd", level)) => match level.parse::<i32>() {
            Ok(l) if (1..=22).contains(&l) => Ok(Compression::Zstd(l)),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

/// What a backup did.
#[derive(Debug, Clone)]
pub struct BackupReport {
    pub container: String,
    pub snapshot: SnapshotManifest,
    pub unreadable: Vec<UnreadablePath>,
    pub skipped: Vec<SkippedPath>,
    pub seconds: f64,
    /// Where the time went, with `--profile`.
    pub profile: Option<StageProfile>,
    /// What a guided walk ([`BackupOptions::changes`]) entered and kept.
    pub walk: Option<GuidedWalk>,
}

/// The folders a guided walk entered, and those whose last tree it kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct GuidedWalk {
    pub walked: u64,
    pub kept: u64,
}

/// As a row: the snapshot id, the container, the summary's counts, the
/// time taken and the paths left out.
impl serde::Serialize for BackupReport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let sum = &self.snapshot.summary;
        let mut row = s.serialize_struct("BackupReport", 17)?;
        row.serialize_field("snapshot", &self.snapshot.id)?;
        row.serialize_field("container", &self.container)?;
        row.serialize_field("files_new", &sum.files_new)?;
        row.serialize_field("files_changed", &sum.files_changed)?;
        row.serialize_field("files_unchanged", &sum.files_unchanged)?;
        row.serialize_field("dirs", &sum.dirs)?;
        row.serialize_field("bytes_read", &sum.bytes_read)?;
        row.serialize_field("bytes_total", &sum.bytes_total)?;
        row.serialize_field("bytes_stored", &sum.bytes_stored)?;
        row.serialize_field("blobs_new", &sum.blobs_new)?;
        row.serialize_field("packs_new", &sum.packs_new)?;
        row.serialize_field("seconds", &self.seconds)?;
        row.serialize_field("unreadable", &self.unreadable)?;
        row.serialize_field("skipped", &self.skipped)?;
        if let Some(p) = &self.profile {
            row.serialize_field("profile", p)?;
        } else {
            row.skip_field("profile")?;
        }
        if let Some(w) = &self.walk {
            row.serialize_field("guided_walk", w)?;
        } else {
            row.skip_field("guided_walk")?;
        }
        row.end()
    }
}

/// Back up one container and commit a snapshot.
pub fn backup(
    home: &Home,
    owner: &Owner,
    name: &str,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupReport> {
    let begun = Begun {
        started: Instant::now(),
        profiler: &Profiler::new(opts.profile),
        walking: None,
    };
    run(home, owner, name, begun, opts, progress)
}

/// [`backup`] for a process that has yet to unlock the owner's keys: the
/// sources are walked while the passphrase is stretched (Argon2, a quarter
/// of a second on one core), which needs no key, and the walk goes on
/// while the pipeline starts on the files it has found.
pub fn backup_unlocking(
    home: &Home,
    passphrase: &[u8],
    name: &str,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<(Owner, BackupReport)> {
    let started = Instant::now();
    let profiler = Profiler::new(opts.profile);
    let manifest = home.containers().manifest(name)?;
    let changes = opts.changes.as_deref();
    std::thread::scope(|s| {
        let walking = prepare::Walking::start(s, home, &manifest, changes, &profiler)?;
        let owner = home.unlock(passphrase)?;
        let begun = Begun {
            started,
            profiler: &profiler,
            walking: Some(walking),
        };
        let report = run(home, &owner, name, begun, opts, progress)?;
        Ok((owner, report))
    })
}

/// A backup under way: its clock, its profiler, and the walk if it began
/// before the container was opened.
struct Begun<'a, 's> {
    started: Instant,
    profiler: &'a Profiler,
    walking: Option<prepare::Walking<'s>>,
}

fn run(
    home: &Home,
    owner: &Owner,
    name: &str,
    begun: Begun,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupReport> {
    let Begun {
        started,
        profiler,
        walking,
    } = begun;
    // No prune or forget of this process runs until the snapshot is
    // committed (another process cannot: this one holds the index).
    let lease = home.lease().shared();
    let changes = opts.changes.as_deref();
    let opened = prepare::open_container(home, owner, name, profiler, progress)?;
    let (lookups, walk) = match walking {
        Some(w) if w.stands(home, &opened.container)? => (
            w.lookups,
            pipeline::Walk::Under {
                early: w.early,
                walking: w.handle,
            },
        ),
        // A walk that does not stand is left to end on its own: nothing
        // takes its files any more.
        _ => {
            let walked =
                prepare::walk_sources(home, &opened.container.manifest, changes, profiler)?;
            prepare::check_found(name, &walked.scan)?;
            prepare::announce(&walked.scan, progress);
            (
                Arc::new(walked.lookups),
                pipeline::Walk::Done(Box::new(walked.scan)),
            )
        }
    };
    let (stored, scan) = pipeline::run(home, &opened, &lookups, walk, opts, profiler, progress)?;
    prepare::check_found(name, &scan)?;
    let walk = scan.guided.then_some(GuidedWalk {
        walked: scan.dirs,
        kept: scan.kept.folders,
    });
    let container = opened.container.clone();
    let prepared = prepare::Prepared {
        container: opened.container,
        peers: opened.peers,
        lookups,
        scan,
    };
    let committed = profiler.time_alone(Stage::Commit, || {
        commit::commit(home, owner, prepared, stored, progress)
    })?;
    drop(lease);
    // Deletions an earlier prune or forget left for peers it could not
    // reach; a failure here is only a warning.
    let mut done = crate::deletions::DeletionReport::default();
    if let Err(e) =
        crate::prune::finish_deletions(home, owner, &container, false, &mut done, progress)
    {
        progress.event(crate::progress::Event::Warning(format!(
            "deletions left by an earlier prune or forget wait for the next one: {e}"
        )));
    }
    Ok(BackupReport {
        container: name.to_owned(),
        snapshot: committed.snapshot,
        unreadable: committed.unreadable,
        skipped: committed.skipped,
        seconds: started.elapsed().as_secs_f64(),
        profile: profiler.report(),
        walk,
    })
}
