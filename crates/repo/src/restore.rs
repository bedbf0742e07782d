//! Restore, in stages:
//!
//! 1. [`plan`]: walk the snapshot's trees into the folders, files and
//!    symlinks to make;
//! 2. layout: make the folders, then each file (empty: its writes give it
//!    its length), in the target ([`target`], the only code that touches
//!    it: it never follows a symlink below the target);
//! 3. [`write`]: fetch each needed pack once (in parallel), verify every
//!    blob and write it at its offsets;
//! 4. finish: remove and name the files that could not be completed, set
//!    file times and modes, create the symlinks, and set folder times and
//!    modes deepest first.
//!
//! A pack that cannot be rebuilt loses only the files that need it, and an
//! entry the target cannot take (a user's folder in a file's place, a name
//! that collides on a case-insensitive filesystem) loses only that path;
//! they are named and the rest goes on.

mod made;
mod plan;
mod target;
mod write;

use crate::error::Result;
use crate::fetch::{Fetcher, FragmentProblem};
use crate::home::{Home, Owner};
use crate::progress::Progress;
use crate::snapshot::{resolve_snapshot, TreeReader};
use made::Made;
use plan::Plan;
use std::path::PathBuf;
use std::time::Instant;
use target::{Identity, LastFolder, Placed, Target};
use trove_core::SnapshotId;

/// Where and what to restore.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct RestoreOptions {
    /// The folder to restore into (made if missing).
    #[cfg_attr(feature = "clap", arg(long))]
    pub target: PathBuf,
    /// Restore only this snapshot-relative path (repeatable); none: everything.
    #[cfg_attr(feature = "clap", arg(long))]
    pub include: Vec<PathBuf>,
    /// Packs held in memory at once: fetched ahead while the blobs of
    /// others are written (a pack is about 8 MiB by default).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = RestoreOptions::DEFAULT_WORKERS))]
    pub workers: usize,
}

impl RestoreOptions {
    /// Packs in flight by default: one being written while the next is
    /// fetched keeps the cores and peers busy without holding many packs.
    pub const DEFAULT_WORKERS: usize = 2;

    /// Everything, into `target`.
    pub fn into(target: PathBuf) -> Self {
        Self {
            target,
            include: Vec::new(),
            workers: Self::DEFAULT_WORKERS,
        }
    }
}

/// A path a restore could not bring back, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct LostPath {
    pub path: String,
    pub error: String,
}

/// What a restore did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreReport {
    pub snapshot: SnapshotId,
    pub target: PathBuf,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    pub seconds: f64,
    /// Paths that could not be restored, and why.
    pub lost: Vec<LostPath>,
    /// Fragments that were missing or corrupt and were routed around.
    #[serde(rename = "fragment_problems")]
    pub problems: Vec<FragmentProblem>,
}

/// Restore a snapshot (`SNAPSHOT` as in [`resolve_snapshot`]).
pub fn restore(
    home: &Home,
    owner: &Owner,
    spec: &str,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreReport> {
    let started = Instant::now();
    crate::pending::finish_all(home, owner, progress)?;
    let (container, snap) = resolve_snapshot(home, owner, spec)?;
    let peers = home.peers().open_for(&container)?;
    peers.warn_unavailable(progress);
    let fetcher = Fetcher::new(&peers.slots);
    let slow = fetcher.probe_peers();
    if !slow.is_empty() {
        tracing::debug!(peers = ?slow, "restore: asked last (no answer to a probe)");
    }
    let reader = TreeReader {
        home,
        container: &container,
        fetcher: &fetcher,
    };
    // Where the time goes, for `TROVE_LOG=debug` (docs/performance.md).
    let t = |stage: &str| {
        let seconds = started.elapsed().as_secs_f64();
        tracing::debug!(stage, seconds, "restore");
    };
    let mut plan = plan::plan(&reader, &snap.root, &opts.include)?;
    t("planned");
    let chunks = std::mem::take(&mut plan.chunks);
    // The tree packs are not needed again: free them for the file data.
    fetcher.forget_cached();
    let mut target = Target::open(&opts.target)?;
    let mut lost: Vec<LostPath> = plan
        .unreadable
        .iter()
        .map(|u| LostPath {
            path: whole_folder(&target, &u.rel),
            error: u.why.clone(),
        })
        .collect();

    let dirs = make_dirs(&mut target, &plan, &mut lost)?;
    t("dirs made");
    // The files are made while the writes are grouped by pack and the packs
    // fetched and written: a write waits until the layout has made its file.
    let made = Made::new(plan.files.len());
    let (files_made, written) = std::thread::scope(|s| {
        let target = &target;
        let making = s.spawn(|| {
            let r = make_files(target, &plan, &dirs, &made);
            t("files made");
            r
        });
        let writes = match write::group(home, &container.manifest.id, &plan.files, chunks) {
            Ok(w) => w,
            Err(e) => {
                made.set_rest_unmade();
                let _ = making.join();
                return Err(e);
            }
        };
        t("grouped");
        let written = write::fetch_and_write(
            &write::Stage {
                home,
                container: &container,
                fetcher: &fetcher,
                target,
                plan: &plan,
                made: &made,
                progress,
            },
            writes,
            opts.workers,
        );
        let files_made = making.join().expect("the layout does not panic");
        Ok((files_made, written))
    })?;
    t("written");
    lost.extend(files_made?);
    let layout = Layout {
        dirs,
        files: made.into_ids(),
    };

    // A file that could not be completed is removed rather than left
    // silently wrong; it is named in the report.
    for (i, why) in &written.lost {
        // A file the layout did not make is named by the layout already.
        let Some(id) = layout.files[*i] else {
            continue;
        };
        let rel = plan.file_rel(*i);
        let _ = target.remove_file(&rel, id);
        lost.push(LostPath {
            path: target.shown(&rel),
            error: why.clone(),
        });
    }
    // Metadata of the files the write stage did not finish (empty ones,
    // mostly): times before the mode (the file is still ours to open;
    // futimens needs ownership, not write access).
    let mut files = 0;
    let mut last = LastFolder::default();
    for (i, (f, id)) in plan.files.iter().zip(&layout.files).enumerate() {
        if let (Some(id), false) = (id, written.lost.contains_key(&i)) {
            if !written.finished[i] {
                let rel = plan.file_rel(i);
                target.set_time_and_mode(&mut last, &rel, *id, f.mtime_ns, f.mode)?;
            }
            files += 1;
        }
    }
    // Symlinks after all data and file metadata, so that no step of this
    // restore can meet a link it made on the way to a file. Folder metadata
    // still comes after them, because making an entry changes the folder's
    // mtime and needs write access to it; that step opens each folder with
    // O_NOFOLLOW and checks it is the one the layout made.
    let mut symlinks = 0;
    for l in &plan.symlinks {
        if !parent_made(l.parent, &layout.dirs) {
            continue;
        }
        match target.make_symlink(&l.rel, &l.to)? {
            Placed::Made(_) => symlinks += 1,
            Placed::Refused(why) => lost.push(LostPath {
                path: target.shown(&l.rel),
                error: why.to_string(),
            }),
        }
    }
    // Folders deepest first: writing into a folder changes its mtime, and
    // its mode may forbid the writing.
    for (d, id) in plan.dirs.iter().zip(&layout.dirs).rev() {
        if let Some(id) = id {
            target.set_time_and_mode(&mut last, &d.rel, *id, d.mtime_ns, d.mode)?;
        }
    }
    t("finished");
    lost.sort();
    Ok(RestoreReport {
        snapshot: snap.id,
        target: opts.target.clone(),
        files,
        dirs: layout.dirs.iter().flatten().count() as u64,
        symlinks,
        bytes: written.bytes,
        lost,
        problems: fetcher.problems(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The folders and files the layout made, by plan index (`None`: not made,
/// and reported lost, or under a folder that was not made).
struct Layout {
    dirs: Vec<Option<Identity>>,
    files: Vec<Option<Identity>>,
}

/// Make the folders, parents first. A folder the target refuses is
/// reported lost, and nothing is made under it (its entry names the whole
/// of it).
fn make_dirs(
    target: &mut Target,
    plan: &Plan,
    lost: &mut Vec<LostPath>,
) -> Result<Vec<Option<Identity>>> {
    let mut dirs = Vec::with_capacity(plan.dirs.len());
    for d in &plan.dirs {
        let id = if parent_made(d.parent, &dirs) {
            match target.make_dir(&d.rel)? {
                Placed::Made(id) => Some(id),
                Placed::Refused(why) => {
                    lost.push(LostPath {
                        path: whole_folder(target, &d.rel),
                        error: why.to_string(),
                    });
                    None
                }
            }
        } else {
            None
        };
        dirs.push(id);
    }
    Ok(dirs)
}

/// Make every file, setting each in `made` (`None`: refused, or under a
/// folder not made); returns the refused. Every file is set whatever
/// happens, for the writes wait on them.
fn make_files(
    target: &Target,
    plan: &Plan,
    dirs: &[Option<Identity>],
    made: &Made,
) -> Result<Vec<LostPath>> {
    // On an error, the files not reached are not made.
    struct Unmade<'m>(&'m Made);
    impl Drop for Unmade<'_> {
        fn drop(&mut self) {
            self.0.set_rest_unmade();
        }
    }
    let _unmade = Unmade(made);
    let mut lost = Vec::new();
    // One thread: making a file is the filesystem's work, and two threads
    // making files in one filesystem were no faster here (ext4 contends on
    // its inode allocator; docs/performance.md). Entries come folder by
    // folder, so the folder of the last one is kept open.
    let mut last = LastFolder::default();
    for (i, f) in plan.files.iter().enumerate() {
        if made.stopped() {
            break;
        }
        if !parent_made(f.parent, dirs) {
            made.set(i, None, None);
            continue;
        }
        let rel = plan.file_rel(i);
        match target.create_file(&mut last, &rel)? {
            (Placed::Made(id), file) => {
                // An empty file gets no write; its handle is not needed.
                made.set(i, Some(id), file.filter(|_| f.size > 0));
            }
            (Placed::Refused(why), _) => {
                lost.push(LostPath {
                    path: target.shown(&rel),
                    error: why.to_string(),
                });
                made.set(i, None, None);
            }
        }
    }
    Ok(lost)
}

/// Whether the folder an entry goes into exists (the target itself does).
fn parent_made(parent: Option<usize>, dirs: &[Option<Identity>]) -> bool {
    parent.is_none_or(|p| dirs[p].is_some())
}

fn whole_folder(target: &Target, rel: &std::path::Path) -> String {
    format!("{}/ (whole folder)", target.shown(rel))
}
