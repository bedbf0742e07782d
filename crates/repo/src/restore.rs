//! Restore: walk the snapshot's trees, create the layout, then fetch each
//! needed pack once (in parallel), verify every blob and write it at its
//! offsets, and finally set modes and times. A pack that cannot be rebuilt
//! loses only the files that need it; they are named and the rest goes on.

use crate::error::{RepoError, Result};
use crate::fetch::{Fetcher, FragmentProblem};
use crate::home::{Home, Owner};
use crate::index::BlobLocation;
use crate::progress::{Event, Progress};
use crate::snapshot::{path_components, resolve_snapshot, TreeReader};
use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, UNIX_EPOCH};
use trove_core::tree::NodeKind;
use trove_core::{BlobId, ChunkId, PackId, SnapshotId, TreeId};

/// Where and what to restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub target: PathBuf,
    /// Snapshot-relative paths; empty means everything.
    pub include: Vec<PathBuf>,
    pub workers: usize,
}

/// What a restore did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreReport {
    pub snapshot: SnapshotId,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    /// Paths that could not be restored, and why.
    pub lost: Vec<(String, String)>,
    /// Fragments that were missing or corrupt and were routed around.
    pub problems: Vec<FragmentProblem>,
    pub seconds: f64,
}

struct FilePlan {
    path: PathBuf,
    mode: u32,
    mtime_ns: i64,
    size: u64,
    chunks: Vec<ChunkId>,
}

#[derive(Default)]
struct Plan {
    dirs: Vec<(PathBuf, u32, i64)>,
    files: Vec<FilePlan>,
    symlinks: Vec<(PathBuf, Vec<u8>)>,
    lost: Vec<(String, String)>,
}

fn included(path: &[Vec<u8>], include: &[Vec<Vec<u8>>]) -> (bool, bool) {
    // (restore this node, descend into it)
    if include.is_empty() {
        return (true, true);
    }
    let mut take = false;
    let mut descend = false;
    for inc in include {
        if path.len() >= inc.len() && path[..inc.len()] == inc[..] {
            take = true;
            descend = true;
        } else if inc.len() > path.len() && inc[..path.len()] == path[..] {
            descend = true;
        }
    }
    (take, descend)
}

fn plan_tree(
    reader: &TreeReader,
    id: &TreeId,
    target: &Path,
    rel: &mut Vec<Vec<u8>>,
    include: &[Vec<Vec<u8>>],
    plan: &mut Plan,
) {
    let tree = match reader.load(id) {
        Ok(t) => t,
        Err(e) => {
            let p = rel.iter().fold(target.to_path_buf(), |p, c| {
                p.join(std::ffi::OsStr::from_bytes(c))
            });
            plan.lost
                .push((format!("{}/ (whole folder)", p.display()), e.to_string()));
            return;
        }
    };
    for n in tree.nodes {
        rel.push(n.name.clone());
        let (take, descend) = included(rel, include);
        let path = rel.iter().fold(target.to_path_buf(), |p, c| {
            p.join(std::ffi::OsStr::from_bytes(c))
        });
        match n.kind {
            NodeKind::Dir { tree } if descend => {
                plan.dirs.push((path, n.mode, n.mtime_ns));
                plan_tree(reader, &tree, target, rel, include, plan);
            }
            NodeKind::File { size, chunks } if take => plan.files.push(FilePlan {
                path,
                mode: n.mode,
                mtime_ns: n.mtime_ns,
                size,
                chunks,
            }),
            NodeKind::Symlink { target: t } if take => plan.symlinks.push((path, t)),
            _ => {}
        }
        rel.pop();
    }
}

fn io<'a>(op: &'static str, p: &'a Path) -> impl FnOnce(std::io::Error) -> RepoError + 'a {
    move |e| RepoError::io(op, p, e)
}

fn to_time(ns: i64) -> std::time::SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
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
    let (container, snap) = resolve_snapshot(home, owner, spec)?;
    let cid = container.manifest.id;
    let slots = home.open_peers()?;
    for s in &slots {
        if let Err(e) = &s.peer {
            progress.event(Event::Warning(e.to_string()));
        }
    }
    let fetcher = Fetcher::new(&slots);
    let reader = TreeReader {
        home,
        container: &container,
        fetcher: &fetcher,
    };
    let include: Vec<Vec<Vec<u8>>> = opts
        .include
        .iter()
        .map(|p| path_components(p))
        .collect::<Result<_>>()?;
    std::fs::create_dir_all(&opts.target).map_err(io("create", &opts.target))?;
    let mut plan = Plan::default();
    plan_tree(
        &reader,
        &snap.root,
        &opts.target,
        &mut Vec::new(),
        &include,
        &mut plan,
    );
    // Every --include must name something in the snapshot.
    for (inc, path) in include.iter().zip(&opts.include) {
        let at = inc.iter().fold(opts.target.clone(), |p, c| {
            p.join(std::ffi::OsStr::from_bytes(c))
        });
        let found = plan.files.iter().any(|f| f.path.starts_with(&at))
            || plan.dirs.iter().any(|(d, _, _)| d.starts_with(&at))
            || plan.symlinks.iter().any(|(l, _)| l.starts_with(&at))
            || plan.lost.iter().any(|(l, _)| Path::new(l).starts_with(&at));
        if !found {
            return Err(RepoError::Usage(format!(
                "--include {}: nothing in the snapshot matches (see `trove ls SNAPSHOT`)",
                path.display()
            )));
        }
    }

    // Layout first: folders, empty files of the right length, symlinks.
    for (d, _, _) in &plan.dirs {
        std::fs::create_dir_all(d).map_err(io("create folder", d))?;
    }
    for f in &plan.files {
        if let Some(parent) = f.path.parent() {
            std::fs::create_dir_all(parent).map_err(io("create folder", parent))?;
        }
        if std::fs::symlink_metadata(&f.path).is_ok() {
            std::fs::remove_file(&f.path).map_err(io("replace", &f.path))?;
        }
        let file = std::fs::File::create(&f.path).map_err(io("create", &f.path))?;
        file.set_len(f.size).map_err(io("size", &f.path))?;
    }
    for (p, t) in &plan.symlinks {
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(io("create folder", parent))?;
        }
        if std::fs::symlink_metadata(p).is_ok() {
            std::fs::remove_file(p).map_err(io("replace", p))?;
        }
        std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(t), p).map_err(io("symlink", p))?;
    }

    // Group the writes by pack so each pack is fetched once; offsets come
    // from the plaintext lengths the index records.
    type Targets = Vec<(usize, u64)>;
    let mut by_pack: HashMap<PackId, HashMap<BlobId, (BlobLocation, Targets)>> = HashMap::new();
    let mut unplanned: HashMap<usize, String> = HashMap::new();
    for (i, f) in plan.files.iter().enumerate() {
        let mut off = 0u64;
        for c in &f.chunks {
            let Some(loc) = home.index.blob(&cid, &BlobId(c.0))? else {
                unplanned.insert(i, format!("chunk {} is not in the index", c.short()));
                break;
            };
            let slot = by_pack
                .entry(loc.pack)
                .or_default()
                .entry(loc.entry.id)
                .or_insert((loc, Vec::new()));
            slot.1.push((i, off));
            off += loc.entry.raw_length as u64;
        }
        if off != f.size {
            unplanned.entry(i).or_insert_with(|| {
                format!("chunks add up to {off} bytes, the file had {}", f.size)
            });
        }
    }
    // From here on, pack workers add to the lost files concurrently.
    let lost_files = Mutex::new(unplanned);

    let total = by_pack.len() as u64;
    let done = std::sync::atomic::AtomicU64::new(0);
    let bytes = std::sync::atomic::AtomicU64::new(0);
    let (tx, rx) = crossbeam_channel::unbounded();
    for (pack, blobs) in by_pack {
        tx.send((pack, blobs)).expect("receiver alive");
    }
    drop(tx);
    let lose = |blobs: &HashMap<BlobId, (BlobLocation, Targets)>, why: &str| {
        let mut l = lost_files.lock().expect("not poisoned");
        for (_, targets) in blobs.values() {
            for (i, _) in targets {
                l.entry(*i).or_insert_with(|| why.to_owned());
            }
        }
    };
    std::thread::scope(|s| {
        for _ in 0..opts.workers.max(1) {
            let rx = rx.clone();
            let (home, fetcher, plan, container) = (&home, &fetcher, &plan, &container);
            let (done, bytes, lose, lost_files) = (&done, &bytes, &lose, &lost_files);
            s.spawn(move || {
                for (pack, blobs) in rx {
                    let rec = match home.index.pack(&cid, &pack) {
                        Ok(Some(r)) => r,
                        Ok(None) => {
                            lose(
                                &blobs,
                                &format!("pack {} is not in the index", pack.short()),
                            );
                            continue;
                        }
                        Err(e) => {
                            lose(&blobs, &e.to_string());
                            continue;
                        }
                    };
                    let data = match fetcher.pack_uncached(&rec) {
                        Ok(d) => d,
                        Err(e) => {
                            lose(&blobs, &e.to_string());
                            continue;
                        }
                    };
                    for (loc, targets) in blobs.values() {
                        let plain = match Fetcher::open_blob(&container.keys, &data, loc) {
                            Ok(p) => p,
                            Err(e) => {
                                let one: HashMap<_, _> =
                                    [(loc.entry.id, (*loc, targets.clone()))].into();
                                lose(&one, &e.to_string());
                                continue;
                            }
                        };
                        for (i, off) in targets {
                            let path = &plan.files[*i].path;
                            let r = std::fs::OpenOptions::new()
                                .write(true)
                                .open(path)
                                .and_then(|f| f.write_all_at(&plain, *off));
                            match r {
                                Ok(()) => {
                                    bytes.fetch_add(
                                        plain.len() as u64,
                                        std::sync::atomic::Ordering::Relaxed,
                                    );
                                }
                                Err(e) => {
                                    lost_files
                                        .lock()
                                        .expect("not poisoned")
                                        .entry(*i)
                                        .or_insert_with(|| format!("write: {e}"));
                                }
                            }
                        }
                    }
                    let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    progress.event(Event::Step { done: n, total });
                }
            });
        }
    });

    // A file that could not be completed is removed rather than left
    // silently wrong; it is named in the report.
    let lost_files = lost_files.into_inner().expect("not poisoned");
    let mut lost = plan.lost;
    for (i, why) in &lost_files {
        let f = &plan.files[*i];
        let _ = std::fs::remove_file(&f.path);
        lost.push((f.path.display().to_string(), why.clone()));
    }
    lost.sort();
    // Metadata last: file modes and times, then folders deepest first (writing
    // into a folder changes its mtime).
    for (i, f) in plan.files.iter().enumerate() {
        if lost_files.contains_key(&i) {
            continue;
        }
        // Times before the mode: the file is still ours to open (futimens
        // needs ownership, not write access).
        let h = std::fs::File::open(&f.path).map_err(io("open", &f.path))?;
        h.set_modified(to_time(f.mtime_ns))
            .map_err(io("set time", &f.path))?;
        std::fs::set_permissions(&f.path, std::fs::Permissions::from_mode(f.mode))
            .map_err(io("chmod", &f.path))?;
    }
    for (d, mode, mtime) in plan.dirs.iter().rev() {
        let h = std::fs::File::open(d).map_err(io("open folder", d))?;
        h.set_modified(to_time(*mtime)).map_err(io("set time", d))?;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(*mode))
            .map_err(io("chmod", d))?;
    }
    Ok(RestoreReport {
        snapshot: snap.id,
        files: (plan.files.len() - lost_files.len()) as u64,
        dirs: plan.dirs.len() as u64,
        symlinks: plan.symlinks.len() as u64,
        bytes: bytes.into_inner(),
        lost,
        problems: fetcher.problems(),
        seconds: started.elapsed().as_secs_f64(),
    })
}
