//! Stage 2 of a backup: read, chunk, dedup and seal on worker threads; pack;
//! erasure-code, place and upload; record each pack in the index once all
//! its fragments are acknowledged. Trees are built bottom-up after the
//! workers and go through the same packer.

use super::prepare::Opened;
use super::seen::{Seen, SeenId};
use super::BackupOptions;
use crate::error::Result;
use crate::home::Container;
use crate::home::Home;
use crate::index::Lookups;
use crate::profile::{Profiler, Stage};
use crate::progress::{Event, Progress};
use crate::scan::{EarlyFile, FileStat, Scan, ScanFile, ScanNode};
use crate::upload::Uploader;
use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread::ScopedJoinHandle;
use trove_core::chunk::Chunker;
use trove_core::keys::SealKey;
use trove_core::manifest::PackRecord;
use trove_core::pack::{FinishedPack, PackBuilder};
use trove_core::seal::{self, BlobKind, Compression};
use trove_core::tree::{Node, NodeKind, Tree};
use trove_core::{BlobId, PackId, TreeId};

/// Files are read in windows of this size: a smaller file in one read, a
/// larger one streamed, so a worker holds at most one window. Twice the
/// chunker's average (1 MiB), so most windows end past a final cut; what
/// follows the last one (less than a chunk) is kept for the next. A window
/// with no final cut in it (a chunk longer than the window) grows, up to
/// the chunker's maximum and a quarter ([`Shared::read_open`]): windows of
/// that size throughout held 5 MiB for every large file read
/// (docs/performance.md, fifteenth round).
const READ_WINDOW: usize = 2 * 1024 * 1024;

/// A file up to this size is read into its worker's own buffer; a larger
/// one into one of [`large_windows`] shared windows. Workers are twice the
/// cores so that small files keep both cores busy while some wait for the
/// disk; a window for every worker held 32 MiB where fewer do as well
/// (docs/performance.md, fifth round).
const SMALL_FILE: u64 = 1024 * 1024;

/// A worker keeps its buffer for small files up to this size between files.
const SMALL_BUFFER_KEPT: usize = 256 * 1024;

/// Read windows for files larger than [`SMALL_FILE`]: one per two cores.
/// A large file keeps two threads busy, its worker cutting and a helper
/// sealing, so a second window on two cores only held 8 MiB more
/// (docs/performance.md, thirteenth round).
fn large_windows() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// How far ahead of the workers, in file bytes, the kernel is asked to
/// start reading (`posix_fadvise(WILLNEED)`): with a cold cache the disk
/// then serves many files at once, not one per worker at a time. Page
/// cache, not this process's memory.
const PREFETCH_AHEAD: u64 = 32 << 20;

/// Files opened ahead of the workers, at most: each holds a descriptor
/// (the soft limit is often 1,024), and on a cold cache this many reads
/// in flight keep the disk busy with files of a few KiB.
const OPENED_AHEAD: usize = 256;

/// Batches of sealed blobs queued between the workers and the packer.
const BLOBS_QUEUED: usize = 2;

/// Packs stored are recorded in the index together, one transaction for
/// those acknowledged within this long (or this many): the blob table's
/// keys are random, so each transaction rewrites most of its leaf pages,
/// and one per pack made recording grow with the square of the backup's
/// size (docs/performance.md). A kill loses at most the records of one
/// batch, whose packs are then garbage like any pack with an intent left.
const RECORD_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
const RECORD_PACKS: usize = 16;

/// Reads of a file that keeps changing before it is kept as last read.
const READ_ATTEMPTS: u32 = 3;

/// A file as read: its chunk ids and length, or why it could not be read.
pub(super) type FileResult = std::result::Result<ReadFile, String>;

/// A file read and queued.
#[derive(Debug, Clone)]
pub(super) struct ReadFile {
    pub chunks: FileChunks,
    pub len: u64,
}

/// A read file's chunks, by their numbers in the backup's [`Seen`], held
/// until the commit. Most files have one, held inline: a list per file cost
/// 48 bytes more a file (10 MB of a 200,000-file backup's peak).
#[derive(Debug, Clone)]
pub(super) enum FileChunks {
    One(SeenId),
    Many(Box<[SeenId]>),
}

impl FileChunks {
    fn new(chunks: Vec<SeenId>) -> Self {
        match chunks[..] {
            [one] => Self::One(one),
            _ => Self::Many(chunks.into_boxed_slice()),
        }
    }

    pub fn as_slice(&self) -> &[SeenId] {
        match self {
            Self::One(c) => std::slice::from_ref(c),
            Self::Many(cs) => cs,
        }
    }
}

/// What a tree holds, at every depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TreeSum {
    pub files: u64,
    pub bytes: u64,
    pub dirs: u64,
    /// Nothing in it was left out (unreadable).
    pub whole: bool,
}

impl Default for TreeSum {
    fn default() -> Self {
        Self {
            files: 0,
            bytes: 0,
            dirs: 0,
            whole: true,
        }
    }
}

impl TreeSum {
    fn add(&mut self, other: TreeSum) {
        self.files += other.files;
        self.bytes += other.bytes;
        self.dirs += other.dirs;
        self.whole &= other.whole;
    }
}

/// Each walked folder (by its place in the walk) with its new tree, or
/// none where something in it was left out.
pub(super) type FolderTrees = Vec<(u32, Option<(TreeId, TreeSum)>)>;

/// What the pipeline stored.
pub(super) struct Stored {
    /// The snapshot's root tree.
    pub root: TreeId,
    /// The tree of every folder walked (none if the backup aborted).
    pub trees: FolderTrees,
    /// Packs this backup stored (all recorded in the index).
    pub packs: Vec<PackId>,
    /// Per scanned file (slot order): read, unreadable, or not read (cached,
    /// or the backup was aborted).
    pub files: Vec<Option<FileResult>>,
    /// The ids the files' chunk lists are numbers of.
    pub seen: Seen,
    pub blobs_new: u64,
    /// Fragment bytes of the new packs, parity included.
    pub fragment_bytes: u64,
}

struct SealedBlob {
    kind: BlobKind,
    id: BlobId,
    raw_len: u32,
    bytes: Vec<u8>,
}

/// Unused room a sealed blob may keep on its way to the packer.
const SPARE_KEPT: usize = 4096;

/// A batch is sent once it holds this many bytes or blobs.
const BATCH_BYTES: usize = 128 * 1024;
const BATCH_BLOBS: usize = 64;

/// One worker's sealed blobs on their way to the packer, sent in batches:
/// a channel operation per blob (waking the packer, spinning while the
/// channel was full) cost about a tenth of a 200,000-file backup's CPU
/// (docs/performance.md, seventh round). What is left is sent when the
/// worker drops it.
struct BlobOut {
    tx: Sender<Vec<SealedBlob>>,
    batch: Vec<SealedBlob>,
    bytes: usize,
}

impl BlobOut {
    fn new(tx: Sender<Vec<SealedBlob>>) -> Self {
        Self {
            tx,
            batch: Vec::new(),
            bytes: 0,
        }
    }

    fn push(&mut self, blob: SealedBlob) {
        self.bytes += blob.bytes.len();
        self.batch.push(blob);
        if self.bytes >= BATCH_BYTES || self.batch.len() >= BATCH_BLOBS {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        self.bytes = 0;
        // A closed channel means the backup is aborting; the error is
        // reported there.
        let _ = self.tx.send(std::mem::take(&mut self.batch));
    }
}

impl Drop for BlobOut {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Sealed blobs into packs of about a target size.
struct Packer<'k> {
    builder: PackBuilder,
    target: usize,
    key: &'k SealKey,
    /// A pack was finished: the next starts with room for a full one.
    finished_one: bool,
    /// A stored pack's buffer to build the next in, if one is free.
    spare: &'k (dyn Fn() -> Option<Vec<u8>> + Sync),
}

impl<'k> Packer<'k> {
    fn new(
        target: usize,
        key: &'k SealKey,
        spare: &'k (dyn Fn() -> Option<Vec<u8>> + Sync),
    ) -> Self {
        Self {
            // The first pack grows as blobs arrive, so a re-run that stores
            // nothing takes no room for one; later packs start with room
            // for a full pack.
            builder: PackBuilder::default(),
            target,
            key,
            finished_one: false,
            spare,
        }
    }

    /// A pack is at most an eighth over its target, unless one blob alone
    /// is larger.
    fn most(&self) -> usize {
        self.target + self.target / 8
    }

    /// Finish the pack being built. The next one is started by the next
    /// blob, in the buffer of a pack stored by then: one started here,
    /// while this one waits to be handed over and the one before it is
    /// stored, would be a third pack in memory.
    fn take(&mut self) -> FinishedPack {
        self.finished_one = true;
        std::mem::take(&mut self.builder).finish(self.key)
    }

    /// Add a blob; the packs it finished, in order. A pack is finished
    /// before a blob that would take it past [`Packer::most`] (a pack that
    /// a last 4 MiB chunk took to 12 MiB was held at that size twice over,
    /// while the packer waited with it and while it was stored:
    /// docs/performance.md, fourteenth round), and once it reaches the
    /// target.
    fn add(&mut self, blob: SealedBlob) -> [Option<FinishedPack>; 2] {
        let before = (!self.builder.is_empty()
            && self.builder.len() + blob.bytes.len() > self.most())
        .then(|| self.take());
        if self.builder.is_empty() && self.finished_one {
            let buf = (self.spare)().unwrap_or_default();
            self.builder = PackBuilder::reusing(buf, self.most());
        }
        self.builder
            .add(blob.kind, blob.id, &blob.bytes, blob.raw_len);
        drop(blob);
        let after = (self.builder.len() >= self.target).then(|| self.take());
        [before, after]
    }

    /// The last pack, if it holds anything.
    fn finish(self) -> Option<FinishedPack> {
        (!self.builder.is_empty()).then(|| self.builder.finish(self.key))
    }
}

/// What worker threads share.
struct Shared<'a> {
    container: &'a Container,
    chunker: Chunker,
    compression: Compression,
    /// Blobs stored before this backup.
    lookups: &'a Lookups,
    /// Blobs this backup has met (queued, or stored before), numbered.
    seen: Mutex<Seen>,
    abort: &'a AtomicBool,
    progress: &'a dyn Progress,
    profiler: &'a Profiler,
    blobs_new: AtomicU64,
    /// The read windows for large files.
    windows: Windows,
}

/// Read windows, each taken by one worker at a time: a worker blocks until
/// one is free. A window is allocated for each large file and freed after
/// it: one kept between large files held 8 MiB through all the small ones
/// (docs/performance.md, fourteenth round).
struct Windows {
    tx: Sender<()>,
    rx: crossbeam_channel::Receiver<()>,
}

impl Windows {
    fn new(n: usize) -> Self {
        let (tx, rx) = bounded(n);
        for _ in 0..n {
            tx.send(()).expect("room for every window");
        }
        Self { tx, rx }
    }

    /// Wait for a free window, then run `f` with one.
    fn with<T>(&self, f: impl FnOnce(&mut Vec<u8>) -> T) -> T {
        self.rx.recv().expect("the pool holds its own sender");
        let done = f(&mut Vec::new());
        self.tx.send(()).expect("a window taken has its place free");
        done
    }
}

impl Shared<'_> {
    /// Dedup and, if new, seal and queue one blob; its number.
    fn emit(&self, out: &mut BlobOut, kind: BlobKind, id: BlobId, data: &[u8]) -> SeenId {
        let p = self.profiler;
        let (n, new) = p.time(Stage::Dedup, 0, || {
            let stored = self.lookups.has_blob(&id);
            let (n, first) = self.seen.lock().expect("not poisoned").intern(id);
            (n, first && !stored)
        });
        if !new {
            return n;
        }
        let len = data.len() as u64;
        // Compressed straight into the buffer it is sealed in.
        let mut bytes = Vec::new();
        p.time(Stage::Compress, len, || {
            seal::seal_begin(data, self.compression, &mut bytes)
        });
        p.time(Stage::Encrypt, len, || {
            seal::seal_finish(&self.container.keys.seal, kind, &id.0, &mut bytes)
        });
        // The room zstd's worst case needed, given back (in place): the blob
        // waits in the queue and the packer, and a chunk of up to 4 MiB held
        // its whole size however well it compressed.
        if bytes.capacity() - bytes.len() > SPARE_KEPT {
            bytes.shrink_to_fit();
        }
        self.blobs_new.fetch_add(1, Ordering::Relaxed);
        let raw_len = data.len() as u32;
        out.push(SealedBlob {
            kind,
            id,
            raw_len,
            bytes,
        });
        n
    }

    fn chunk(&self, out: &mut BlobOut, data: &[u8]) -> SeenId {
        let id = self.profiler.time(Stage::Id, data.len() as u64, || {
            self.container.keys.chunk_id(data)
        });
        let n = self.emit(out, BlobKind::Data, id.into(), data);
        self.progress.event(Event::Read(data.len() as u64));
        n
    }

    /// Cut `buf` into chunks (those whose cut is final, all of them at
    /// `eof`: [`Chunker::cut_is_final`]), and [`Self::chunk`] each,
    /// their ids appended to `chunks` in order; how many bytes of `buf`
    /// they took. With `share`, a helper thread seals the chunks as they
    /// are cut and both seal what is left once the cutting is done: a large
    /// file is read by one worker, which alone sealed a 300 MB file on one
    /// core of two (docs/performance.md, twelfth round).
    fn cut_and_seal(
        &self,
        out: &mut BlobOut,
        buf: &[u8],
        eof: bool,
        share: bool,
        chunks: &mut Vec<SeenId>,
    ) -> usize {
        let mut cuts = self.chunker.cuts(buf);
        let mut next_cut = || {
            let (off, n) = self.profiler.time(Stage::Chunk, 0, || cuts.next())?;
            (eof || self.chunker.cut_is_final((off, n), buf.len())).then_some((off, n))
        };
        let mut used = 0;
        if !share {
            while let Some((off, n)) = next_cut() {
                chunks.push(self.chunk(out, &buf[off..off + n]));
                used = off + n;
            }
            return used;
        }
        let (cut_tx, cut_rx) = unbounded::<(usize, usize, usize)>();
        let seal = |out: &mut BlobOut, cut_rx: crossbeam_channel::Receiver<_>| {
            cut_rx
                .into_iter()
                .map(|(i, off, n)| (i, self.chunk(out, &buf[off..off + n])))
                .collect::<Vec<_>>()
        };
        let mut ids = std::thread::scope(|s| {
            let (seal, blob_tx, rx) = (&seal, out.tx.clone(), cut_rx.clone());
            let helper = s.spawn(move || seal(&mut BlobOut::new(blob_tx), rx));
            let mut i = 0;
            while let Some((off, n)) = next_cut() {
                // Cannot fail: this thread holds a receiver.
                let _ = cut_tx.send((i, off, n));
                i += 1;
                used = off + n;
            }
            drop(cut_tx);
            let mut ids = seal(out, cut_rx);
            ids.extend(helper.join().expect("helper does not panic"));
            ids
        });
        ids.sort_unstable_by_key(|&(i, _)| i);
        chunks.extend(ids.into_iter().map(|(_, id)| id));
        used
    }

    /// Read, chunk and queue one file. A file that changes while it is read
    /// (its size, mtime, ctime or inode differ before and after, on the
    /// same open descriptor) is read again, up to [`READ_ATTEMPTS`] times;
    /// after that it is kept as last read, with a warning. Either way the
    /// chunk list is exactly the bytes read, and the node keeps the scan's
    /// mtime, so the next backup sees a changed file and reads it again.
    /// The first read is measured against the scan's stat, `before` (one
    /// `statx` fewer per file): a file changed since the walk differs from
    /// it after the read and is read again. The first read is of `opened`,
    /// the file as [`open_ahead`] opened it; a read again opens `path`.
    fn file(
        &self,
        out: &mut BlobOut,
        path: &std::path::Path,
        opened: std::io::Result<std::fs::File>,
        mut before: FileStat,
        buf: &mut Vec<u8>,
    ) -> std::io::Result<ReadFile> {
        let mut attempt = 1;
        let mut opened = Some(opened);
        loop {
            let mut f = match opened.take() {
                Some(first) => first?,
                None => std::fs::File::open(path)?,
            };
            if attempt > 1 {
                before = FileStat::of(&f.metadata()?);
            }
            let read = if before.size > SMALL_FILE {
                self.windows
                    .with(|window| self.read_open(out, &mut f, before.size, window))?
            } else {
                let read = self.read_open(out, &mut f, before.size, buf);
                // Kept small between files: four workers each keeping room
                // for the largest small file held 4 MiB through the tens of
                // thousands of files of a few KiB (a file that grew while it
                // was read may even have grown it to a whole window).
                buf.shrink_to(SMALL_BUFFER_KEPT);
                read?
            };
            let after = FileStat::of(&f.metadata()?);
            if before == after && read.len == before.size {
                return Ok(read);
            }
            if attempt == READ_ATTEMPTS || self.abort.load(Ordering::Relaxed) {
                self.progress.event(Event::Warning(format!(
                    "{} kept changing while it was read ({attempt} tries): backed up as last read; the next backup reads it again",
                    path.display()
                )));
                return Ok(read);
            }
            attempt += 1;
        }
    }

    /// Read `f` in windows of [`READ_WINDOW`] and chunk each: only final
    /// cuts are taken before the file ends, so the cuts are those of one
    /// pass over the whole file. A window without a final cut doubles, up
    /// to a quarter more than the chunker's maximum, where a final cut is
    /// sure (a chunk ends inside it or is the maximum).
    fn read_open(
        &self,
        out: &mut BlobOut,
        f: &mut std::fs::File,
        len: u64,
        buf: &mut Vec<u8>,
    ) -> std::io::Result<ReadFile> {
        let p = self.profiler;
        let max = self.chunker.params().max as usize;
        let largest = READ_WINDOW.max(max + max / 4);
        let mut window = READ_WINDOW;
        buf.clear();
        // Exact: `reserve` would double a buffer grown by smaller files,
        // and each buffer is kept for the whole backup.
        buf.reserve_exact((len as usize).min(window));
        let mut chunks = Vec::new();
        let mut total = 0u64;
        loop {
            let before = buf.len();
            // A file the walk saw empty may not be (a file in /proc): it
            // is read to its end.
            let left = if len == 0 {
                u64::MAX
            } else {
                len.saturating_sub(total)
            };
            let eof = p.time(Stage::Read, 0, || fill(f, buf, window, left))?;
            total += (buf.len() - before) as u64;
            let used = self.cut_and_seal(out, buf, eof, len > SMALL_FILE, &mut chunks);
            if eof || self.abort.load(Ordering::Relaxed) {
                break;
            }
            buf.drain(..used);
            if used == 0 {
                window = (window * 2).min(largest);
                // Exactly: `read_to_end` would double the buffer (8 MiB for a
                // window of 5, in huge pages where it was touched).
                buf.reserve_exact(window - buf.len());
            }
        }
        Ok(ReadFile {
            chunks: FileChunks::new(chunks),
            len: total,
        })
    }

    /// Build the tree of a scanned directory, queueing tree blobs; what it
    /// holds is added to `sum`, and each folder's tree to `trees`.
    fn tree(
        &self,
        out: &mut BlobOut,
        children: &[ScanNode],
        files: &Outcomes,
        sum: &mut TreeSum,
        trees: &mut FolderTrees,
    ) -> TreeId {
        let mut nodes: Vec<Node> = children
            .iter()
            .filter_map(|c| self.node(out, c, files, sum, trees))
            .collect();
        let (bytes, id) = self.profiler.time(Stage::Trees, 0, || {
            nodes.sort_by(|a, b| a.name.cmp(&b.name));
            let bytes = Tree { nodes }.encode();
            let id = self.container.keys.tree_id(&bytes);
            (bytes, id)
        });
        self.emit(out, BlobKind::Tree, id.into(), &bytes);
        id
    }

    fn node(
        &self,
        out: &mut BlobOut,
        n: &ScanNode,
        files: &Outcomes,
        sum: &mut TreeSum,
        trees: &mut FolderTrees,
    ) -> Option<Node> {
        Some(match n {
            ScanNode::File(f) => {
                let node = file_node(f, files);
                match &node {
                    Some(Node {
                        kind: NodeKind::File { size, .. },
                        ..
                    }) => {
                        sum.files += 1;
                        sum.bytes += size;
                    }
                    // Left out: the tree cannot stand for the folder.
                    _ => sum.whole = false,
                }
                node?
            }
            ScanNode::Dir(d) => {
                let mut mine = TreeSum {
                    dirs: 1,
                    whole: d.whole,
                    ..TreeSum::default()
                };
                let tree = self.tree(out, &d.children, files, &mut mine, trees);
                trees.push((d.place, mine.whole.then_some((tree, mine))));
                sum.add(mine);
                Node {
                    name: d.name.clone(),
                    mode: d.mode,
                    mtime_ns: d.mtime_ns,
                    kind: NodeKind::Dir { tree },
                }
            }
            ScanNode::Kept(k) => {
                sum.add(TreeSum {
                    files: k.tree.files,
                    bytes: k.tree.bytes,
                    dirs: k.tree.dirs,
                    whole: true,
                });
                Node {
                    name: k.name.clone(),
                    mode: k.mode,
                    mtime_ns: k.mtime_ns,
                    kind: NodeKind::Dir { tree: k.tree.tree },
                }
            }
            ScanNode::Symlink(l) => Node {
                name: l.name.clone(),
                mode: l.mode,
                mtime_ns: l.mtime_ns,
                kind: NodeKind::Symlink {
                    target: l.target.clone(),
                },
            },
        })
    }
}

/// Read from `f` until `buf` holds `window` bytes, `left` more bytes are
/// read, or the file ends; true at the end of the file, which is where
/// `left` says it is. The size the walk saw is trusted for that: a `read`
/// to find the end after the last byte was a second one for every small
/// file (docs/performance.md, sixteenth round). A file that grew since is
/// read to the old size, and read again because its size differs after.
fn fill(
    f: &mut std::fs::File,
    buf: &mut Vec<u8>,
    window: usize,
    left: u64,
) -> std::io::Result<bool> {
    let want = (window.saturating_sub(buf.len()) as u64).min(left);
    let got = f.by_ref().take(want).read_to_end(buf)? as u64;
    Ok(got < want || got == left)
}

/// Every file of the walk with what reading it gave.
struct Outcomes<'a> {
    scan: &'a Scan,
    read: &'a [Option<FileResult>],
    /// What the read files' chunk numbers stand for.
    seen: &'a Mutex<Seen>,
}

/// The tree node of a file: from the cache, or as read; none if unreadable.
fn file_node(f: &ScanFile, files: &Outcomes) -> Option<Node> {
    let slot = f.slot as usize;
    let scanned = &files.scan.files[slot];
    let (chunks, size) = if scanned.cached {
        (files.scan.cached_chunks(slot).to_vec(), scanned.stat.size)
    } else {
        match files.read[slot].as_ref()? {
            Ok(read) => {
                let seen = files.seen.lock().expect("not poisoned");
                (seen.chunks(read.chunks.as_slice()), read.len)
            }
            Err(_) => return None,
        }
    };
    Some(Node {
        name: files.scan.name(slot).to_vec(),
        mode: f.mode,
        mtime_ns: scanned.stat.mtime_ns,
        kind: NodeKind::File { size, chunks },
    })
}

/// Where the pipeline's files come from.
pub(super) enum Walk<'s> {
    /// A walk that is done.
    Done(Box<Scan>),
    /// A walk under way on another thread: the files it finds to read
    /// arrive on `early` until it ends; its scan is `walking`'s result.
    Under {
        early: Receiver<EarlyFile>,
        walking: ScopedJoinHandle<'s, Scan>,
    },
}

/// Which file a worker's result is for.
#[derive(Clone, Copy)]
enum ResultKey {
    /// A file of the scan, by its slot.
    Slot(u32),
    /// A file a walk under way handed over ([`EarlyFile::id`]).
    Early(u32),
}

/// A file opened for a worker: what it is, its path, its metadata as the
/// walk saw it, and the open file or the error opening it gave.
struct ToRead {
    key: ResultKey,
    path: PathBuf,
    stat: FileStat,
    file: std::io::Result<std::fs::File>,
}

/// The workers' results, by slot. A file a walk under way handed over is
/// known by its early id until the walk's end says its slot: its result
/// waits in `early` until then, and goes to its slot at once after.
#[derive(Default)]
struct Results {
    slots: Vec<Option<FileResult>>,
    /// By early id, while the walk goes on.
    early: Vec<Option<FileResult>>,
    /// Early id to slot, from the walk's end.
    early_slots: Vec<u32>,
}

impl Results {
    fn put(&mut self, key: ResultKey, r: FileResult) {
        let slot = match key {
            ResultKey::Slot(slot) => slot,
            ResultKey::Early(id) => match self.early_slots.get(id as usize) {
                Some(&slot) => slot,
                None => {
                    let id = id as usize;
                    if self.early.len() <= id {
                        self.early.resize_with(id + 1, || None);
                    }
                    self.early[id] = Some(r);
                    return;
                }
            },
        };
        self.slots[slot as usize] = Some(r);
    }

    /// The walk is done: room for each of its `files`, and the results of
    /// files handed over so far moved to their slots (`Scan::early`).
    fn walk_done(&mut self, files: usize, early: &[(u32, u32)]) {
        self.slots = vec![None; files];
        // Ids taken for files the queue then refused have no slot: u32::MAX.
        let ids = early
            .iter()
            .map(|&(_, id)| id as usize + 1)
            .max()
            .unwrap_or(0);
        self.early_slots = vec![u32::MAX; ids];
        for &(slot, id) in early {
            self.early_slots[id as usize] = slot;
        }
        for (id, r) in std::mem::take(&mut self.early).into_iter().enumerate() {
            if let Some(r) = r {
                self.slots[self.early_slots[id] as usize] = Some(r);
            }
        }
    }
}

/// Opens the files to read for the workers, in their order, and asks the
/// kernel to start reading each (`posix_fadvise(WILLNEED)`), staying
/// [`PREFETCH_AHEAD`] bytes ahead of what the workers have `taken` and at
/// most [`OPENED_AHEAD`] files ahead (the channel's bound). Each file goes
/// to the workers open, or with the error opening it gave, which the
/// worker reports. Opened once: a prefetcher that opened each file to
/// advise, and a worker that opened it again to read, spent 8% of a first
/// backup's CPU in `openat` and `close` (docs/performance.md, sixteenth
/// round). Its work counts as reading: the kernel allocates the page cache
/// and starts the reads here that `read` would otherwise.
struct OpenAhead<'a> {
    taken: &'a AtomicU64,
    abort: &'a AtomicBool,
    profiler: &'a Profiler,
    opened: Sender<ToRead>,
    advised: u64,
}

impl OpenAhead<'_> {
    /// Open `path` and hand it over; false once the workers stopped (the
    /// backup is aborting).
    fn offer(&mut self, key: ResultKey, path: PathBuf, stat: FileStat) -> bool {
        while self.advised > self.taken.load(Ordering::Relaxed) + PREFETCH_AHEAD {
            if self.abort.load(Ordering::Relaxed) {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let file = self.profiler.time(Stage::Read, 0, || {
            let f = std::fs::File::open(&path)?;
            let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::WillNeed);
            Ok(f)
        });
        self.advised += stat.size;
        // Closed: the workers stopped.
        self.opened
            .send(ToRead {
                key,
                path,
                stat,
                file,
            })
            .is_ok()
    }

    /// Hand over the files of `walk` to read: first those a walk under way
    /// finds, as it finds them; then, the walk done, the others in slot
    /// order. The scan, once the walk is done, and whether every file was
    /// handed over (not if the backup is aborting).
    fn all(
        mut self,
        walk: Walk,
        results: &Mutex<Results>,
        progress: &dyn Progress,
    ) -> (Scan, bool) {
        let (scan, going) = match walk {
            Walk::Done(scan) => (*scan, true),
            Walk::Under { early, walking } => {
                let mut going = true;
                for f in early {
                    if going {
                        going = self.offer(ResultKey::Early(f.id), f.path, f.stat);
                    }
                }
                let scan = walking.join().expect("the walk does not panic");
                super::prepare::announce(&scan, progress);
                self.profiler.early_files(scan.early.len() as u64);
                (scan, going)
            }
        };
        results
            .lock()
            .expect("not poisoned")
            .walk_done(scan.files.len(), &scan.early);
        if !going {
            return (scan, false);
        }
        let mut early = vec![false; scan.files.len()];
        for &(slot, _) in &scan.early {
            early[slot as usize] = true;
        }
        for (slot, file) in scan.files.iter().enumerate() {
            if file.cached || early[slot] {
                continue;
            }
            let key = ResultKey::Slot(slot as u32);
            if !self.offer(key, scan.path(slot), file.stat) {
                return (scan, false);
            }
        }
        (scan, true)
    }
}

/// Run the pipeline over the files the walk says must be read; what it
/// stored, and the walk's scan.
pub(super) fn run(
    home: &Home,
    opened: &Opened,
    lookups: &Lookups,
    walk: Walk,
    opts: &BackupOptions,
    profiler: &Profiler,
    progress: &dyn Progress,
) -> Result<(Stored, Scan)> {
    let container = &opened.container;
    let cid = container.manifest.id;
    let abort = AtomicBool::new(false);
    // File bytes the workers have taken up, for the prefetcher.
    let taken = AtomicU64::new(0);
    let (blob_tx, blob_rx) = bounded::<Vec<SealedBlob>>(BLOBS_QUEUED);
    // Rendezvous: one uploader keeps up with two cores' worth of reading and
    // sealing (docs/performance.md), and packs in memory stay at three:
    // being filled, being handed over, being stored.
    let (pack_tx, pack_rx) = bounded(0);
    let shared = Shared {
        container,
        chunker: Chunker::new(container.manifest.chunker, container.keys.chunker_seed),
        compression: opts.compression,
        lookups,
        seen: Mutex::new(Seen::default()),
        abort: &abort,
        progress,
        profiler,
        blobs_new: AtomicU64::new(0),
        windows: Windows::new(large_windows()),
    };
    let results = Mutex::new(Results::default());
    let pack_target = container.manifest.pack_target as usize;
    let uploader = Uploader::new(
        opened.peers.clone(),
        container.manifest.redundancy,
        progress,
    )
    .recording_intents(&home.index, cid)
    .recycling_packs()
    .profiled(profiler);
    let spare_pack = &|| uploader.spare_pack();
    let (root, trees, packs, files, blobs_new, scan) = std::thread::scope(|s| -> Result<_> {
        // Packer: sealed blobs in, finished packs out.
        let seal_key = &container.keys.seal;
        let packer = s.spawn(move || {
            let mut packer = Packer::new(pack_target, seal_key, spare_pack);
            for blob in blob_rx.into_iter().flatten() {
                let len = blob.bytes.len() as u64;
                let full = profiler.time(Stage::Pack, len, || packer.add(blob));
                for pack in full.into_iter().flatten() {
                    if pack_tx.send(pack).is_err() {
                        return;
                    }
                }
            }
            if let Some(last) = profiler.time(Stage::Pack, 0, || packer.finish()) {
                let _ = pack_tx.send(last);
            }
        });
        // Uploader: packs in, records into the index as each is fully
        // stored. After the first error it drains, so the packer never blocks.
        let (uploader, abort_ref, index) = (&uploader, &abort, &home.index);
        let upload = s.spawn(move || -> Result<Vec<PackId>> {
            let mut stored = Vec::new();
            let mut first_err = None;
            let mut batch = Vec::new();
            let mut since = std::time::Instant::now();
            let record = |batch: &mut Vec<PackRecord>| {
                if batch.is_empty() {
                    return Ok(());
                }
                let r = profiler.time(Stage::Index, 0, || index.record_packs(&cid, batch));
                batch.clear();
                r
            };
            for pack in pack_rx {
                if first_err.is_some() {
                    continue;
                }
                let recorded = uploader.store(pack).and_then(|rec| {
                    if batch.is_empty() {
                        since = std::time::Instant::now();
                    }
                    stored.push(rec.id);
                    batch.push(rec);
                    if batch.len() >= RECORD_PACKS || since.elapsed() >= RECORD_EVERY {
                        record(&mut batch)
                    } else {
                        Ok(())
                    }
                });
                if let Err(e) = recorded {
                    abort_ref.store(true, Ordering::Relaxed);
                    first_err = Some(e);
                }
            }
            // The packs stored so far are recorded even after an error:
            // what is recorded need not be stored again.
            let last = record(&mut batch);
            match first_err {
                Some(e) => Err(e),
                None => last.map(|()| stored),
            }
        });
        // Workers: read, chunk, seal, the files opened ahead of them.
        let (opened_tx, opened_rx) = bounded(OPENED_AHEAD);
        let opener = OpenAhead {
            taken: &taken,
            abort: abort_ref,
            profiler,
            opened: opened_tx,
            advised: 0,
        };
        let results_ref = &results;
        let opening = s.spawn(move || opener.all(walk, results_ref, progress));
        let taken = &taken;
        let workers: Vec<_> = (0..opts.workers.max(1))
            .map(|_| {
                let opened_rx = opened_rx.clone();
                let mut out = BlobOut::new(blob_tx.clone());
                let (shared, results) = (&shared, &results);
                s.spawn(move || {
                    // This worker's buffer for small files, reused for each.
                    let mut buf = Vec::new();
                    for f in opened_rx {
                        taken.fetch_add(f.stat.size, Ordering::Relaxed);
                        if shared.abort.load(Ordering::Relaxed) {
                            break;
                        }
                        let r = shared
                            .file(&mut out, &f.path, f.file, f.stat, &mut buf)
                            .map_err(|e| e.to_string());
                        results.lock().expect("not poisoned").put(f.key, r);
                    }
                })
            })
            .collect();
        // Only the workers hold the receiver: once they stop (at the end,
        // or aborting), a file opened ahead has nowhere to go and
        // `open_ahead` returns instead of waiting for room.
        drop(opened_rx);
        for w in workers {
            w.join().expect("worker does not panic");
        }
        let (scan, handed_over) = opening.join().expect("the opener does not panic");
        let files = std::mem::take(&mut results.lock().expect("not poisoned").slots);
        let scanned = &scan;
        // Trees, bottom-up; the root lists one entry per source. None for a
        // walk that found nothing: the backup fails without storing one.
        let mut trees = FolderTrees::new();
        let root = if !handed_over || abort.load(Ordering::Relaxed) || scanned.roots.is_empty() {
            TreeId([0; 32])
        } else {
            let outcomes = Outcomes {
                scan: scanned,
                read: &files,
                seen: &shared.seen,
            };
            shared.tree(
                &mut BlobOut::new(blob_tx.clone()),
                &scanned.roots,
                &outcomes,
                &mut TreeSum::default(),
                &mut trees,
            )
        };
        let blobs_new = shared.blobs_new.load(Ordering::Relaxed);
        drop(blob_tx); // closes the blob channel: the packer flushes its last pack
        packer.join().expect("packer does not panic");
        let packs = upload.join().expect("uploader does not panic")?;
        Ok((root, trees, packs, files, blobs_new, scan))
    })?;
    let stored = Stored {
        root,
        trees,
        packs,
        files,
        seen: shared.seen.into_inner().expect("not poisoned"),
        blobs_new,
        fragment_bytes: uploader.fragment_bytes(),
    };
    Ok((stored, scan))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(n: u8, len: usize) -> SealedBlob {
        SealedBlob {
            kind: BlobKind::Data,
            id: BlobId([n; 32]),
            raw_len: len as u32,
            bytes: vec![n; len],
        }
    }

    /// Packs end at their target or before a blob that would take them more
    /// than an eighth past it; a blob larger than that alone makes a pack of
    /// its own; every blob is packed once, in order.
    #[test]
    fn packs_stay_within_an_eighth_of_their_target() {
        let key = SealKey::from_bytes([7; 32]);
        let mut packer = Packer::new(800, &key, &|| None);
        let sizes = [300, 300, 150, 500, 80, 1000, 40, 790, 10, 895, 60];
        let mut packs = Vec::new();
        for (i, len) in sizes.iter().enumerate() {
            packs.extend(packer.add(blob(i as u8, *len)).into_iter().flatten());
        }
        packs.extend(packer.finish());
        let lens: Vec<Vec<u32>> = packs
            .iter()
            .map(|p| p.entries.iter().map(|e| e.raw_length).collect())
            .collect();
        assert_eq!(
            lens,
            [
                vec![300, 300, 150],
                vec![500, 80],
                vec![1000],
                vec![40, 790],
                vec![10],
                vec![895],
                vec![60],
            ]
        );
        let ids: Vec<u8> = packs
            .iter()
            .flat_map(|p| p.entries.iter().map(|e| e.id.0[0]))
            .collect();
        assert_eq!(ids, (0..sizes.len() as u8).collect::<Vec<_>>());
    }
}
