//! Restore, in stages:
//!
//! 1. [`plan`]: walk the snapshot's trees into the folders, files and
//!    symlinks to make;
//! 2. layout: make the folders, then each file (empty: its writes give it
//!    its length), then, once every file exists, the symlinks, in the target
//!    ([`target`], the only code that touches it: it never follows a
//!    symlink below the target);
//! 3. [`write`], beside the layout: fetch each needed pack once (in
//!    parallel), verify every blob and write it at its offsets, and set
//!    the times and mode of each file its last write completes;
//! 4. finish: remove and name the files that could not be completed, set
//!    the times and modes of the other files, and those of the folders,
//!    deepest first (the folders of one depth on every core).
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
    let (written, made_by_layout) = std::thread::scope(|s| {
        let making = s.spawn(|| {
            make_files(&maker)?;
            t("files made");
            let links = make_symlinks(&maker);
            t("symlinks made");
            links
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
    let (symlinks, refused_links) = made_by_layout?;
    t("written");
    let (files, refused) = made.into_parts();
    lost.extend(refused);
    lost.extend(refused_links);
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
    let mut unfinished = Vec::new();
    for (i, id) in layout.files.iter().enumerate() {
        if let (Some(id), false) = (id, written.lost.contains_key(&i)) {
            if !written.finished[i] {
                unfinished.push((i, *id));
            }
            files += 1;
        }
    }
    on_every_core(&unfinished, |last, &(i, id)| {
        let f = &plan.files[i];
        target.set_time_and_mode(last, &plan.file_rel(i), id, f.mtime_ns, f.mode)
    })?;
    t("files finished");
    // Folders deepest first: making an entry in a folder changes its mtime
    // (the symlinks were made before, by the layout), and a folder's mode
    // may forbid reaching what is in it, so each depth waits for the one
    // below. Each folder is opened with O_NOFOLLOW and checked to be the
    // one the layout made.
    for level in dirs_by_depth(&plan, &layout.dirs).iter().rev() {
        on_every_core(level, |last, &(i, id)| {
            let d = &plan.dirs[i];
            target.set_time_and_mode(last, &d.rel, id, d.mtime_ns, d.mode)
        })?;
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

/// Make the symlinks once every file is made (by the layout or a write).
/// A link never takes the place of a folder the restore made (it is
/// refused), so no walk to a file meets one; and a link and a file that
/// are one entry on this filesystem are met in turn, as a collision. The
/// folders' times and modes are set after the links, which change them.
fn make_symlinks(maker: &Maker) -> Result<(u64, Vec<LostPath>)> {
    maker.made.wait_all();
    let (mut made, mut refused) = (0, Vec::new());
    let mut last = LastFolder::default();
    for l in &maker.plan.symlinks {
        if !parent_made(l.parent, maker.dirs) {
            continue;
        }
        match maker.target.make_symlink(&mut last, &l.rel, &l.to)? {
            Placed::Made(_) => made += 1,
            Placed::Refused(why) => refused.push(LostPath {
                path: maker.target.shown(&l.rel),
                error: why.to_string(),
            }),
        }
    }
    Ok((made, refused))
}

/// Fewer entries than this are finished on one thread: threads would cost
/// more than they save.
const ONE_THREAD_BELOW: usize = 256;

/// Run `f` on every item, cut into one run per core in order (neighbours,
/// mostly of one folder, share a thread and its open folder). The first
/// error, if any; the other runs go to their end.
fn on_every_core<T: Sync>(
    items: &[T],
    f: impl Fn(&mut LastFolder, &T) -> Result<()> + Sync,
) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if items.len() < ONE_THREAD_BELOW || cores == 1 {
        let mut last = LastFolder::default();
        return items.iter().try_for_each(|x| f(&mut last, x));
    }
    let f = &f;
    std::thread::scope(|s| {
        let runs: Vec<_> = items
            .chunks(items.len().div_ceil(cores))
            .map(|run| {
                s.spawn(move || {
                    let mut last = LastFolder::default();
                    run.iter().try_for_each(|x| f(&mut last, x))
                })
            })
            .collect();
        runs.into_iter()
            .try_for_each(|r| r.join().expect("finishing entries does not panic"))
    })
}

/// The folders made (plan index and identity), by depth below the target.
fn dirs_by_depth<T: Copy>(plan: &Plan, dirs: &[Option<T>]) -> Vec<Vec<(usize, T)>> {
    let mut depths = Vec::with_capacity(plan.dirs.len());
    let mut levels: Vec<Vec<(usize, T)>> = Vec::new();
    for (i, d) in plan.dirs.iter().enumerate() {
        // A folder comes after its parent in the plan.
        let depth = d.parent.map_or(0, |p| depths[p] + 1);
        depths.push(depth);
        if let Some(id) = dirs[i] {
            if levels.len() <= depth {
                levels.resize_with(depth + 1, Vec::new);
            }
            levels[depth].push((i, id));
        }
    }
    levels
}

/// Whether the folder an entry goes into exists (the target itself does).
fn parent_made(parent: Option<usize>, dirs: &[Option<Identity>]) -> bool {
    parent.is_none_or(|p| dirs[p].is_some())
}

fn whole_folder(target: &Target, rel: &std::path::Path) -> String {
    format!("{}/ (whole folder)", target.shown(rel))
}

#[cfg(test)]
mod tests {
    use super::*;
    use plan::DirPlan;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_item_is_finished_once_on_every_core_and_the_error_comes_back() {
        let items: Vec<usize> = (0..3 * ONE_THREAD_BELOW).collect();
        let seen: Vec<AtomicUsize> = items.iter().map(|_| AtomicUsize::new(0)).collect();
        on_every_core(&items, |_, &i| {
            seen[i].fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
        assert!(seen.iter().all(|n| n.load(Ordering::Relaxed) == 1));
        let failed = on_every_core(&items, |_, &i| match i {
            500 => Err(crate::error::RepoError::Lost("item 500".into())),
            _ => Ok(()),
        });
        assert!(matches!(failed, Err(crate::error::RepoError::Lost(w)) if w == "item 500"));
    }

    #[test]
    fn folders_are_listed_by_depth_and_those_not_made_are_left_out() {
        let dir = |rel: &str, parent| DirPlan {
            rel: rel.into(),
            parent,
            mode: 0o755,
            mtime_ns: 0,
        };
        let mut plan = Plan::default();
        plan.dirs = vec![
            dir("a", None),
            dir("a/b", Some(0)),
            dir("a/b/c", Some(1)),
            dir("d", None),
            dir("d/e", Some(3)),
            dir("a/f", Some(0)),
        ];
        let made = [Some('a'), Some('b'), Some('c'), Some('d'), None, Some('f')];
        assert_eq!(
            dirs_by_depth(&plan, &made),
            vec![
                vec![(0, 'a'), (3, 'd')],
                vec![(1, 'b'), (5, 'f')],
                vec![(2, 'c')],
            ]
        );
    }
}
