//! The metadata walk of a backup: builds the shape of the snapshot's trees
//! and decides, from the file cache, which files must be read at all.

use crate::changes::{Changes, FolderChange};
use crate::index::{FolderCache, FolderTree, Lookups};
use crate::profile::{Profiler, Stage};
use crossbeam_channel::Sender;
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use trove_core::{BlobId, ChunkId};

/// One entry of the walked tree. Folders and symlinks are boxed so that
/// the node of a file, by far the most common, takes 16 bytes, not 72.
#[derive(Debug)]
pub enum ScanNode {
    File(ScanFile),
    Dir(Box<ScanDir>),
    Symlink(Box<ScanSymlink>),
    /// A folder a guided walk did not enter: its last tree stands.
    Kept(Box<KeptDir>),
}

/// A folder where nothing changed, with the tree it had.
#[derive(Debug)]
pub struct KeptDir {
    pub name: Vec<u8>,
    pub mode: u32,
    pub mtime_ns: i64,
    pub tree: FolderTree,
}

// A walk of 200,000 files holds 200,000 of these for the whole backup.
const _: () = assert!(std::mem::size_of::<ScanNode>() <= 16);

/// A symlink in the tree, with its target as stored.
#[derive(Debug)]
pub struct ScanSymlink {
    pub name: Vec<u8>,
    pub mode: u32,
    pub mtime_ns: i64,
    pub target: Vec<u8>,
}

#[derive(Debug)]
pub struct ScanDir {
    pub name: Vec<u8>,
    pub mode: u32,
    pub mtime_ns: i64,
    pub children: Vec<ScanNode>,
    /// Its path's index in [`Scan::places`] (its key in the file cache).
    pub place: u32,
    /// Nothing in or under it was unreadable: its tree may be kept.
    pub whole: bool,
}

/// A regular file in the tree; its name and mtime are those of its
/// [`ScannedFile`] (not held twice).
#[derive(Debug)]
pub struct ScanFile {
    pub mode: u32,
    /// Index into [`Scan::files`] (its stat and cache state) and the
    /// backup's file results.
    pub slot: u32,
}

/// A file or folder the backup could not read (it went on without it).
#[derive(Debug, Clone, serde::Serialize)]
pub struct UnreadablePath {
    pub path: PathBuf,
    pub error: String,
}

/// A special file (socket, device, FIFO) that is not backed up.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SkippedPath {
    pub path: PathBuf,
    pub reason: String,
}

/// One regular file the walk found, in slot order. Its path is not held
/// whole: a walk of 200,000 files held 200,000 copies of their folders'
/// paths for the whole backup (see [`Scan::path`]).
#[derive(Debug)]
pub struct ScannedFile {
    /// Index into [`Scan::places`]: its folder, or for a source that is a
    /// file ([`ScannedFile::source`]) its own path.
    place: u32,
    /// Its name in its folder (the walk names a source the same way):
    /// `name_len` bytes at `name_at` in [`Scan::names`]. A name of its own
    /// took about 40 bytes more a file (a pointer, a length, an allocation).
    name_at: u32,
    name_len: u16,
    /// A source itself: `place` is its whole path.
    source: bool,
    /// The cache says it is unchanged: it is not read.
    pub cached: bool,
    /// The cache had an entry for this path (changed or not).
    pub in_cache: bool,
    pub stat: FileStat,
    /// A cached file's chunks, in [`Scan::cached_chunks`]'s list.
    chunks: Range<u32>,
}

// 200,000 of these are held for the whole backup of as many files.
const _: () = assert!(std::mem::size_of::<ScannedFile>() <= 56);

/// A file's metadata as the walk saw it: what the file cache compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
}

impl FileStat {
    /// What `m` says of a file.
    pub(crate) fn of(m: &std::fs::Metadata) -> Self {
        Self {
            size: m.len(),
            mtime_ns: mtime_ns(m),
            ctime_ns: ctime_ns(m),
            inode: m.ino(),
        }
    }
}

/// The name of a walked path in its folder's tree.
fn source_name(path: &Path) -> &[u8] {
    path.file_name().map_or(b"root", |n| n.as_bytes())
}

/// One folder the walk found, for the file cache: a record is written only
/// for folders that are not `clean`.
#[derive(Debug)]
pub struct ScannedFolder {
    /// The folder's path bytes (`b""`: the sources that are files).
    pub key: Vec<u8>,
    /// Slots of its regular files, in name order.
    pub slots: Vec<u32>,
    /// Its record holds exactly these files, all unchanged, at the current
    /// blob epoch: there is nothing to write.
    pub clean: bool,
    /// It had a record (changed or not).
    pub had_record: bool,
}

/// Result of the walk.
#[derive(Debug, Default)]
pub struct Scan {
    pub roots: Vec<ScanNode>,
    /// Every file in slot order.
    pub files: Vec<ScannedFile>,
    /// The folders files were found in, and the sources that are files.
    places: Vec<PathBuf>,
    /// The names of the files, one after another ([`ScannedFile::name_at`]).
    names: Vec<u8>,
    /// The chunks of every cached file, file after file: one list, where a
    /// list per file cost 40 bytes more a file (on a re-run of 200,000
    /// files, 8 MB of its peak).
    chunks: Vec<ChunkId>,
    /// Every folder walked, in no particular order.
    pub folders: Vec<ScannedFolder>,
    pub unreadable: Vec<UnreadablePath>,
    pub skipped: Vec<SkippedPath>,
    pub dirs: u64,
    /// What the folders a guided walk kept hold.
    pub kept: Kept,
    /// The walk was guided ([`Changes`]): folders it did not walk are not
    /// gone.
    pub guided: bool,
    /// The files handed to the backup's readers while the walk went on
    /// ([`Early`]): (slot, early id).
    pub early: Vec<(u32, u32)>,
}

/// Where a walk hands the files it finds to read while it goes on, so the
/// backup's readers need not wait for its end: listing a large folder on a
/// cold cache reads its blocks one by one, which left a core idle at the
/// end of a 1 GB first backup's walk (docs/performance.md, eighteenth and
/// nineteenth rounds). A file is handed over only while the queue has room;
/// the rest are read after the walk, in slot order.
pub(crate) struct Early {
    next: AtomicU32,
    tx: Sender<EarlyFile>,
}

impl Early {
    pub fn new(tx: Sender<EarlyFile>) -> Self {
        Self {
            next: AtomicU32::new(0),
            tx,
        }
    }

    /// Hand `path` over; its early id if the queue took it.
    fn offer(&self, path: &Path, stat: FileStat) -> Option<u32> {
        if self.tx.is_full() {
            return None;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let file = EarlyFile {
            id,
            path: path.to_owned(),
            stat,
        };
        self.tx.try_send(file).ok().map(|()| id)
    }
}

/// A file to read, found by a walk still under way.
#[derive(Debug)]
pub(crate) struct EarlyFile {
    /// Its number among the files handed over (not its slot, which is
    /// known only at the walk's end: [`Scan::early`] maps one to the other).
    pub id: u32,
    pub path: PathBuf,
    pub stat: FileStat,
}

/// The sum of the folders a guided walk kept as they were.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Kept {
    pub folders: u64,
    pub files: u64,
    pub bytes: u64,
    /// Folders in them, at every depth.
    pub dirs: u64,
}

impl Kept {
    fn add(&mut self, other: Kept) {
        self.folders += other.folders;
        self.files += other.files;
        self.bytes += other.bytes;
        self.dirs += other.dirs;
    }
}

/// A folder being walked: its cache record and the slots of its files.
struct FolderWalk {
    key: Vec<u8>,
    /// Its path's index in [`Scan::places`].
    place: u32,
    record: Option<FolderCache>,
    /// The record was written at the current blob epoch: its chunks are
    /// all still in the dedup set.
    current: bool,
    slots: Vec<u32>,
    /// No file so far was new, changed or checked against a stale epoch.
    unchanged: bool,
}

impl FolderWalk {
    fn new(key: Vec<u8>, place: u32, lookups: &Lookups) -> Self {
        let record = lookups.folder(&key);
        let current = record.as_ref().is_some_and(|r| r.epoch == lookups.epoch);
        Self {
            key,
            place,
            record,
            current,
            slots: Vec::new(),
            unchanged: current,
        }
    }

    fn finish(self) -> ScannedFolder {
        let had_record = self.record.is_some();
        // Same files in the same number: none was added or removed.
        let clean = self.unchanged
            && self
                .record
                .is_some_and(|r| r.files.len() == self.slots.len());
        ScannedFolder {
            key: self.key,
            slots: self.slots,
            clean,
            had_record,
        }
    }
}

fn mtime_ns(m: &std::fs::Metadata) -> i64 {
    m.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(m.mtime_nsec())
}

fn ctime_ns(m: &std::fs::Metadata) -> i64 {
    m.ctime()
        .saturating_mul(1_000_000_000)
        .saturating_add(m.ctime_nsec())
}

/// Threads the walk may run at once. A walk is mostly waiting for the
/// disk (an inode, a directory block) when the cache is cold, so more
/// threads than cores pay; warm, they cost little.
const WALK_THREADS: usize = 8;

struct Walker<'a> {
    lookups: &'a Lookups,
    /// What changed, for a guided walk.
    changes: Option<&'a Changes>,
    /// Threads still free to take a sub-folder, shared by every walker.
    spare: &'a AtomicUsize,
    /// Where files to read go while the walk goes on.
    early: Option<&'a Early>,
    profiler: &'a Profiler,
    out: Scan,
}

/// A child of a folder: walked here, or by a thread of its own with its
/// own [`Scan`], merged in afterwards.
enum Child<'s> {
    Here(Option<ScanNode>),
    Thread(std::thread::ScopedJoinHandle<'s, (Option<ScanNode>, Scan)>),
}

impl Walker<'_> {
    /// Keep `path` as a place files are found in; its index.
    fn place(&mut self, path: &Path) -> u32 {
        self.out.places.push(path.to_owned());
        u32::try_from(self.out.places.len() - 1).expect("fewer than 4 billion folders")
    }

    fn unreadable(&mut self, path: &Path, e: impl std::fmt::Display) {
        self.out.unreadable.push(UnreadablePath {
            path: path.to_owned(),
            error: e.to_string(),
        });
    }

    fn node(
        &mut self,
        path: &Path,
        name: Vec<u8>,
        meta: std::io::Result<std::fs::Metadata>,
        folder: &mut FolderWalk,
    ) -> Option<ScanNode> {
        let meta = match meta {
            Ok(m) => m,
            Err(e) => {
                self.unreadable(path, e);
                return None;
            }
        };
        let mode = meta.mode() & 0o7777;
        let mtime = mtime_ns(&meta);
        let ft = meta.file_type();
        if ft.is_symlink() {
            return match std::fs::read_link(path) {
                Ok(t) => Some(ScanNode::Symlink(Box::new(ScanSymlink {
                    name,
                    mode,
                    mtime_ns: mtime,
                    target: t.as_os_str().as_bytes().to_vec(),
                }))),
                Err(e) => {
                    self.unreadable(path, e);
                    None
                }
            };
        }
        if ft.is_dir() {
            return Some(
                self.kept(path, &name, mode, mtime)
                    .unwrap_or_else(|| ScanNode::Dir(Box::new(self.dir(path, name, mode, mtime)))),
            );
        }
        if !ft.is_file() {
            self.out.skipped.push(SkippedPath {
                path: path.to_owned(),
                reason: "not a regular file, directory or symlink".into(),
            });
            return None;
        }
        let stat = FileStat::of(&meta);
        let entry = folder.record.as_ref().and_then(|r| r.file(&name));
        let in_cache = entry.is_some();
        let at = self.out.chunks.len();
        let cached = match entry {
            Some(c)
                if (c.size, c.mtime_ns, c.ctime_ns, c.inode)
                    == (stat.size, stat.mtime_ns, stat.ctime_ns, stat.inode)
                    && (folder.current
                        || c.chunks
                            .iter()
                            .all(|id| self.lookups.has_blob(&BlobId(id.0))))
                    // Past 4 billion chunk ids the file is read instead.
                    && u32::try_from(at + c.chunks.len()).is_ok() =>
            {
                self.out.chunks.extend_from_slice(&c.chunks);
                true
            }
            _ => false,
        };
        let chunks = at as u32..self.out.chunks.len() as u32;
        folder.unchanged &= cached;
        let slot = u32::try_from(self.out.files.len()).expect("fewer than 4 billion files");
        folder.slots.push(slot);
        if let Some(id) = self
            .early
            .filter(|_| !cached)
            .and_then(|e| e.offer(path, stat))
        {
            self.out.early.push((slot, id));
        }
        // The sources that are files share no folder: each is its own place.
        let source = folder.key.is_empty();
        let place = if source {
            self.place(path)
        } else {
            folder.place
        };
        let name_at = u32::try_from(self.out.names.len()).expect("less than 4 GiB of names");
        self.out.names.extend_from_slice(&name);
        self.out.files.push(ScannedFile {
            place,
            name_at,
            // A name is at most 255 bytes on the systems Trove runs on.
            name_len: u16::try_from(name.len()).expect("a file name under 64 KiB"),
            source,
            cached,
            in_cache,
            stat,
            chunks,
        });
        Some(ScanNode::File(ScanFile { mode, slot }))
    }

    /// The folder at `path` as the last backup stored it, if the walk is
    /// guided, nothing in it changed, and its tree is still stored.
    fn kept(&mut self, path: &Path, name: &[u8], mode: u32, mtime: i64) -> Option<ScanNode> {
        let changes = self.changes?;
        if changes.folder(path) != FolderChange::Untouched {
            return None;
        }
        let tree = self.lookups.current_tree(path.as_os_str().as_bytes())?;
        self.out.kept.add(Kept {
            folders: 1,
            files: tree.files,
            bytes: tree.bytes,
            dirs: tree.dirs,
        });
        Some(ScanNode::Kept(Box::new(KeptDir {
            name: name.to_vec(),
            mode,
            mtime_ns: mtime,
            tree,
        })))
    }

    /// A folder: its entries, each stat-ed through the open folder (no
    /// walk of the whole path per file), walked in name order.
    fn dir(&mut self, path: &Path, name: Vec<u8>, mode: u32, mtime: i64) -> ScanDir {
        self.out.dirs += 1;
        let unreadable_before = self.out.unreadable.len();
        let mut entries: Vec<Entry> = match std::fs::read_dir(path) {
            Ok(rd) => rd
                .filter_map(|e| match e {
                    Ok(e) => Some(Entry {
                        name: e.file_name().as_bytes().to_vec(),
                        path: e.path(),
                        meta: e.metadata(),
                    }),
                    Err(err) => {
                        self.unreadable(path, err);
                        None
                    }
                })
                .collect(),
            Err(e) => {
                // The directory itself is kept (empty), its contents reported.
                self.unreadable(path, e);
                Vec::new()
            }
        };
        entries.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        let place = self.place(path);
        let mut folder = FolderWalk::new(path.as_os_str().as_bytes().to_vec(), place, self.lookups);
        let children = self.children(entries, &mut folder);
        self.out.folders.push(folder.finish());
        ScanDir {
            name,
            mode,
            mtime_ns: mtime,
            children,
            place,
            // Counted with what its sub-folders could not read.
            whole: self.out.unreadable.len() == unreadable_before,
        }
    }
}

/// A folder entry as listed, with its metadata.
struct Entry {
    name: Vec<u8>,
    path: PathBuf,
    meta: std::io::Result<std::fs::Metadata>,
}

impl Walker<'_> {
    /// Walk a folder's entries in order, sub-folders on threads of their
    /// own while [`WALK_THREADS`] allows.
    fn children(&mut self, entries: Vec<Entry>, folder: &mut FolderWalk) -> Vec<ScanNode> {
        let (lookups, spare, changes) = (self.lookups, self.spare, self.changes);
        let (early, profiler) = (self.early, self.profiler);
        std::thread::scope(|s| {
            let parts: Vec<Child> = entries
                .into_iter()
                .map(|Entry { name, path, meta }| {
                    let dir = match &meta {
                        Ok(m) if m.is_dir() => Some((m.mode() & 0o7777, mtime_ns(m))),
                        _ => None,
                    };
                    let Some((mode, mtime)) = dir else {
                        return Child::Here(self.node(&path, name, meta, folder));
                    };
                    if let Some(kept) = self.kept(&path, &name, mode, mtime) {
                        return Child::Here(Some(kept));
                    }
                    let claimed = spare
                        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                        .is_ok();
                    if !claimed {
                        let d = self.dir(&path, name, mode, mtime);
                        return Child::Here(Some(ScanNode::Dir(Box::new(d))));
                    }
                    Child::Thread(s.spawn(move || {
                        let mut w = Walker {
                            lookups,
                            spare,
                            changes,
                            early,
                            profiler,
                            out: Scan::default(),
                        };
                        let dir = profiler.time(Stage::Scan, 0, || w.dir(&path, name, mode, mtime));
                        spare.fetch_add(1, Ordering::AcqRel);
                        (Some(ScanNode::Dir(Box::new(dir))), w.out)
                    }))
                })
                .collect();
            let mut nodes: Vec<ScanNode> = parts
                .into_iter()
                .filter_map(|c| match c {
                    Child::Here(n) => n,
                    Child::Thread(h) => {
                        let (node, scan) = h.join().expect("walker does not panic");
                        self.merge(node, scan)
                    }
                })
                .collect();
            // Collected in place, the nodes keep the allocation of the
            // listed entries, which are about three times their size; the
            // tree is held for the whole backup (a massif profile of a
            // 87,000-file walk: 32 MB instead of about 8).
            nodes.shrink_to_fit();
            nodes
        })
    }

    /// Take in a sub-walk: its files get the next slots.
    fn merge(&mut self, mut node: Option<ScanNode>, scan: Scan) -> Option<ScanNode> {
        let offset = u32::try_from(self.out.files.len()).expect("fewer than 4 billion files");
        let places = self.out.places.len() as u32;
        let names = u32::try_from(self.out.names.len()).expect("less than 4 GiB of names");
        if let Some(n) = node.as_mut() {
            shift(n, offset, places);
        }
        self.out.places.extend(scan.places);
        self.out.names.extend(scan.names);
        let chunks = self.out.chunks.len() as u32;
        self.out.chunks.extend(scan.chunks);
        self.out.files.extend(scan.files.into_iter().map(|mut f| {
            f.place += places;
            f.name_at += names;
            f.chunks = f.chunks.start + chunks..f.chunks.end + chunks;
            f
        }));
        self.out
            .folders
            .extend(scan.folders.into_iter().map(|mut f| {
                f.slots.iter_mut().for_each(|s| *s += offset);
                f
            }));
        self.out
            .early
            .extend(scan.early.into_iter().map(|(slot, id)| (slot + offset, id)));
        self.out.unreadable.extend(scan.unreadable);
        self.out.skipped.extend(scan.skipped);
        self.out.dirs += scan.dirs;
        self.out.kept.add(scan.kept);
        node
    }
}

/// Renumber a sub-walk's node: its files' slots and its folders' places
/// come after those already merged.
fn shift(n: &mut ScanNode, slots: u32, places: u32) {
    match n {
        ScanNode::File(f) => f.slot += slots,
        ScanNode::Dir(d) => {
            d.place += places;
            d.children.iter_mut().for_each(|c| shift(c, slots, places));
        }
        ScanNode::Symlink(_) | ScanNode::Kept(_) => {}
    }
}

/// Walk `sources`; each becomes a root entry named by its last component.
/// With `changes`, the walk is guided: only the folders they touch are
/// walked, the others keep their last tree where it is still stored.
/// With `early`, files to read are handed over as they are found. Each
/// walking thread's time counts as [`Stage::Scan`].
pub(crate) fn scan(
    sources: &[PathBuf],
    lookups: &Lookups,
    changes: Option<&Changes>,
    early: Option<&Early>,
    profiler: &Profiler,
) -> Scan {
    profiler.time(Stage::Scan, 0, || {
        walk(sources, lookups, changes, early, profiler)
    })
}

fn walk(
    sources: &[PathBuf],
    lookups: &Lookups,
    changes: Option<&Changes>,
    early: Option<&Early>,
    profiler: &Profiler,
) -> Scan {
    let changes = changes.filter(|c| c.covers(sources));
    let spare = AtomicUsize::new(WALK_THREADS - 1);
    let mut w = Walker {
        lookups,
        spare: &spare,
        changes,
        early,
        profiler,
        out: Scan {
            guided: changes.is_some(),
            ..Scan::default()
        },
    };
    // Sources that are files are cached as one folder, by name (names of
    // sources are unique).
    let mut files = FolderWalk::new(Vec::new(), 0, lookups);
    for src in sources {
        let name = source_name(src).to_vec();
        if let Some(n) = w.node(src, name, std::fs::symlink_metadata(src), &mut files) {
            w.out.roots.push(n);
        }
    }
    let files = files.finish();
    if files.had_record || !files.slots.is_empty() {
        w.out.folders.push(files);
    }
    // Grown by doubling as sub-walks were merged; held for the whole backup.
    w.out.files.shrink_to_fit();
    w.out.folders.shrink_to_fit();
    w.out.places.shrink_to_fit();
    w.out.names.shrink_to_fit();
    w.out.chunks.shrink_to_fit();
    w.out.early.shrink_to_fit();
    w.out
}

impl Scan {
    /// The chunks of the cached file in `slot` (none for a file to read).
    pub fn cached_chunks(&self, slot: usize) -> &[ChunkId] {
        let r = &self.files[slot].chunks;
        &self.chunks[r.start as usize..r.end as usize]
    }

    /// The file-cache key of the folder walked at `place` (its path).
    pub fn place_key(&self, place: u32) -> &[u8] {
        self.places[place as usize].as_os_str().as_bytes()
    }

    /// The name of the file in `slot` in its folder: the last component
    /// of its path.
    pub fn name(&self, slot: usize) -> &[u8] {
        let f = &self.files[slot];
        let at = f.name_at as usize;
        &self.names[at..at + usize::from(f.name_len)]
    }

    /// The path of the file in `slot`.
    pub fn path(&self, slot: usize) -> PathBuf {
        let f = &self.files[slot];
        let place = &self.places[f.place as usize];
        if f.source {
            place.clone()
        } else {
            place.join(std::ffi::OsStr::from_bytes(self.name(slot)))
        }
    }
}
