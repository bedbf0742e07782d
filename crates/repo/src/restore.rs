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
use std::fs::File;
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
    /// others are written (a pack is about 6 MiB by default).
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
    // Where the time goes, for `TROVE_LOG=debug` (docs/performance.md).
    let t = |stage: &str| {
        let seconds = started.elapsed().as_secs_f64();
        tracing::debug!(stage, seconds, "restore");
    };
    crate::pending::finish_all(home, owner, progress)?;
    let (container, snap) = resolve_snapshot(home, owner, spec)?;
    let peers = home.peers().open_for(&container)?;
    peers.warn_unavailable(progress);
    let fetcher = Fetcher::new(&peers.slots);
    let slow = fetcher.probe_peers();
    if !slow.is_empty() {
        tracing::debug!(peers = ?slow, "restore: asked last (no answer to a probe)");
    }
    t("peers probed");
    let reader = TreeReader {
        home,
        container: &container,
        fetcher: &fetcher,
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

    // The folders are made while the writes are grouped by pack (the
    // filesystem's work beside ours); then the files are made while the
    // packs are fetched and written: a write waits until the layout has
    // made its file, or makes it itself if the layout is not about to.
    let (dirs, writes) = std::thread::scope(|s| {
        let grouping = s.spawn(|| write::group(home, &container.manifest.id, &plan.files, chunks));
        let dirs = make_dirs(&mut target, &plan, &mut lost);
        t("dirs made");
        let writes = grouping.join().expect("grouping does not panic");
        t("grouped");
        Ok::<_, crate::error::RepoError>((dirs?, writes?))
    })?;
    let made = Made::new(plan.files.len());
    let maker = Maker {
        target: &target,
        plan: &plan,
        dirs: &dirs,
        made: &made,
    };
    let (written, files_made) = std::thread::scope(|s| {
        let making = s.spawn(|| {
            let r = make_files(&maker);
            t("files made");
            r
        });
        let written = write::fetch_and_write(
            &write::Stage {
                home,
                container: &container,
                fetcher: &fetcher,
                maker: &maker,
                progress,
            },
            writes,
            opts.workers,
        );
        (written, making.join().expect("the layout does not panic"))
    });
    files_made?;
    t("written");
    let (files, refused) = made.into_parts();
    lost.extend(refused);
    let layout = Layout { dirs, files };

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

/// What making a file takes. The layout thread makes the files in plan
/// order; a write that reaches a file the layout has not taken, and is
/// not about to, makes it itself: a blob stored once for many equal files sits in an early
/// pack but is written to files far ahead of the layout (on the 1 GB tree
/// of docs/performance.md, the first pack reached file 44,429 of 88,163,
/// and every write waited for it).
struct Maker<'a> {
    target: &'a Target,
    plan: &'a Plan,
    dirs: &'a [Option<Identity>],
    made: &'a Made,
}

impl Maker<'_> {
    /// Make file `i`, which the caller has taken ([`Made::take`]): its
    /// identity and handle, not yet set in `made`. `None` (set in `made`)
    /// when its folder was not made or the target refused it, the refusal
    /// kept in `made` to be reported.
    fn make(&self, last: &mut LastFolder, i: usize) -> Result<Option<(Identity, File)>> {
        if !parent_made(self.plan.files[i].parent(), self.dirs) {
            self.made.set(i, None, None);
            return Ok(None);
        }
        let rel = self.plan.file_rel(i);
        match self.target.create_file(last, &rel)? {
            (Placed::Made(id), Some(file)) => Ok(Some((id, file))),
            (Placed::Made(_), None) => unreachable!("a file made comes with its handle"),
            (Placed::Refused(why), _) => {
                self.refuse(i, &rel, why.to_string());
                Ok(None)
            }
        }
    }

    /// [`Maker::make`] for a write: where the layout would stop the
    /// restore on an error, a write loses only this file (kept in `made`
    /// to be reported, as a refusal is).
    fn make_here(&self, last: &mut LastFolder, i: usize) -> Option<(Identity, File)> {
        self.make(last, i).unwrap_or_else(|e| {
            self.refuse(i, &self.plan.file_rel(i), e.to_string());
            None
        })
    }

    /// File `i` (at `rel`) is not made, for `error`: kept in `made` to be
    /// reported.
    fn refuse(&self, i: usize, rel: &std::path::Path, error: String) {
        let path = self.target.shown(rel);
        self.made.refuse(i, LostPath { path, error });
    }
}

/// Make every file no write has taken, setting each in `made` (`None`:
/// refused, or under a folder not made). On an error, every file not yet
/// set is set as not made, for the writes wait on them.
fn make_files(maker: &Maker) -> Result<()> {
    // On an error, the files not reached are not made.
    struct Unmade<'m>(Option<&'m Made>);
    impl Drop for Unmade<'_> {
        fn drop(&mut self) {
            if let Some(made) = self.0 {
                made.set_rest_unmade();
            }
        }
    }
    let made = maker.made;
    let mut unmade = Unmade(Some(made));
    // One thread: making a file is the filesystem's work, and two threads
    // making files in one filesystem were no faster here (ext4 contends on
    // its inode allocator; docs/performance.md). Entries come folder by
    // folder, so the folder of the last one is kept open.
    let mut last = LastFolder::default();
    for (i, f) in maker.plan.files.iter().enumerate() {
        if made.stopped() {
            return Ok(());
        }
        made.reach(i);
        if !made.take(i) {
            continue;
        }
        if let Some((id, file)) = maker.make(&mut last, i)? {
            // An empty file gets no write; its handle is not needed.
            made.set(i, Some(id), Some(file).filter(|_| f.size > 0));
        }
    }
    // Every file is taken: those the writes took, they set themselves.
    unmade.0 = None;
    Ok(())
}

/// Whether the folder an entry goes into exists (the target itself does).
fn parent_made(parent: Option<usize>, dirs: &[Option<Identity>]) -> bool {
    parent.is_none_or(|p| dirs[p].is_some())
}

fn whole_folder(target: &Target, rel: &std::path::Path) -> String {
    format!("{}/ (whole folder)", target.shown(rel))
}
