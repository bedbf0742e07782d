//! Stage 3 of a restore: fetch each needed pack once (§9.1), open and
//! verify each blob the plan needs, and write it at every offset of every
//! file that uses it. A pack or blob that cannot be read loses exactly the
//! files that need it; the rest goes on.

use super::plan::FilePlan;
use super::target::{LastFolder, Target};
use super::Maker;
use crate::error::Result;
use crate::fetch::{Fetcher, PackBytes};
use crate::home::{Container, Home};
use crate::index::BlobPlace;
use crate::progress::{Event, Progress};
use std::collections::HashMap;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use trove_core::pack::PackEntry;
use trove_core::{BlobId, ChunkId, ContainerId, PackId};

/// One place a blob's plaintext goes: file `file` of the plan, at `offset`.
#[derive(Debug, Clone, Copy)]
struct FileWrite {
    file: usize,
    offset: u64,
}

/// One write as listed before grouping: the blob (as the index's answer
/// holds it), where it is, and where it goes.
type Write<'a> = (&'a BlobId, &'a BlobPlace, FileWrite);

/// A blob of one pack (whose id its group holds) and everywhere it is
/// written. Most blobs are written once: the first write is held inline,
/// and only a blob several files share has a list (on 200,000 small files
/// a list per blob, and the pack id per blob, were 13 MB of the restore's
/// peak).
#[derive(Debug, Clone)]
struct BlobWrites {
    entry: PackEntry,
    first: FileWrite,
    more: Vec<FileWrite>,
}

impl BlobWrites {
    fn writes(&self) -> impl Iterator<Item = &FileWrite> {
        std::iter::once(&self.first).chain(&self.more)
    }
}

/// Every write of a restore, grouped by pack so each pack is fetched once.
#[derive(Debug, Default)]
pub(super) struct Writes {
    /// The blobs of each pack, in the order they sit in the pack (which is
    /// mostly file order, so consecutive writes go to the same file); the
    /// packs in the order of the first file each writes, which is the order
    /// the layout makes the files in.
    packs: Vec<(PackId, Vec<BlobWrites>)>,
    /// Files that cannot be completed whatever is fetched, and why.
    lost: HashMap<usize, String>,
    /// How many writes each file of the plan gets.
    writes_per_file: Vec<u32>,
}

/// Group the chunk writes of the plan's files by pack. Offsets come from
/// the plaintext lengths the index records. A chunk not in the index loses
/// its file; so does a file whose chunks do not add up to its size.
///
/// Every write is listed once (a file, an offset and the blob's location
/// in the index's answer), then sorted by pack and place in the pack and
/// cut into runs: a map per pack of maps per blob cost about three times as
/// much (on 200,000 small files, 64 MB against 22 for the list and the
/// result, at the restore's peak).
///
/// `chunks` is the plan's list of every file's chunks, dropped here once
/// the writes are listed.
pub(super) fn group(
    home: &Home,
    cid: &ContainerId,
    files: &[FilePlan],
    chunks: Vec<ChunkId>,
) -> Result<Writes> {
    let mut lost = HashMap::new();
    let mut writes_per_file = vec![0u32; files.len()];
    let locations = home
        .index
        .blobs_in_order(cid, chunks.iter().map(|c| BlobId(c.0)))?;
    let mut all: Vec<Write> = Vec::with_capacity(chunks.len());
    for (i, f) in files.iter().enumerate() {
        let mut offset = 0u64;
        for c in &chunks[f.chunks()] {
            let Some((id, place)) = locations.get(&BlobId(c.0)) else {
                lost.insert(i, format!("chunk {} is not in the index", c.short()));
                break;
            };
            all.push((id, place, FileWrite { file: i, offset }));
            writes_per_file[i] += 1;
            offset += u64::from(place.raw_length);
        }
        if offset != f.size {
            lost.entry(i).or_insert_with(|| {
                format!("chunks add up to {offset} bytes, the file had {}", f.size)
            });
        }
    }
    drop(chunks);
    // A blob's writes stay in file order (the sort is stable).
    all.sort_by_key(|(_, place, _)| (place.pack, place.offset));
    let mut packs = by_pack(&all, &locations.packs);
    let first_file =
        |blobs: &[BlobWrites]| blobs.iter().flat_map(|b| b.writes()).map(|w| w.file).min();
    packs.sort_by_cached_key(|(_, blobs)| first_file(blobs));
    Ok(Writes {
        packs,
        lost,
        writes_per_file,
    })
}

/// Cut writes sorted by (pack, offset in the pack) into packs, each with
/// its blobs in pack order and every write of each blob.
fn by_pack(sorted: &[Write], packs: &[PackId]) -> Vec<(PackId, Vec<BlobWrites>)> {
    let same_blob = |a: &Write, b: &Write| a.1.offset == b.1.offset;
    sorted
        .chunk_by(|a, b| a.1.pack == b.1.pack)
        .map(|in_pack| {
            // Counted first: lists grown by doubling held up to twice
            // their size, and shrinking them copied each.
            let mut blobs = Vec::with_capacity(in_pack.chunk_by(same_blob).count());
            blobs.extend(in_pack.chunk_by(same_blob).map(|run| BlobWrites {
                entry: run[0].1.entry(run[0].0),
                first: run[0].2,
                more: run[1..].iter().map(|(_, _, w)| *w).collect(),
            }));
            (packs[in_pack[0].1.pack as usize], blobs)
        })
        .collect()
}

/// What the fetch-and-write stage did.
#[derive(Debug)]
pub(super) struct Written {
    /// Files that could not be completed (plan index → why): the caller
    /// removes them and names them.
    pub lost: HashMap<usize, String>,
    /// Files whose times and modes are set already (by plan index).
    pub finished: Vec<bool>,
    pub bytes: u64,
}

/// Everything the workers share.
pub(super) struct Stage<'a> {
    pub home: &'a Home,
    pub container: &'a Container,
    pub fetcher: &'a Fetcher,
    /// Makes the files, and holds each as made (`None`: not made, and
    /// reported), set while the writes run: a write waits for its file, or
    /// makes it if nobody has taken it and the layout is not about to.
    pub maker: &'a Maker<'a>,
    pub progress: &'a dyn Progress,
}

/// Files a worker keeps open: blobs come mostly in file order, so a few
/// handles save reopening (and re-walking the target) for each blob.
struct OpenFiles {
    files: Vec<(usize, std::fs::File)>,
    /// The folder of the file opened last.
    last: LastFolder,
}

const OPEN_FILES: usize = 8;

impl OpenFiles {
    /// Stop keeping file `i` open.
    fn close(&mut self, i: usize) {
        self.files.retain(|(f, _)| *f != i);
    }

    /// File `i`, open for writing; `None` when it was not made (and the
    /// reason is kept), after waiting for whoever is making it, or making
    /// it here if nobody has taken it yet.
    fn get(&mut self, stage: &Stage, i: usize) -> Option<Result<&std::fs::File>> {
        if let Some(at) = self.files.iter().position(|(f, _)| *f == i) {
            return Some(Ok(&self.files[at].1));
        }
        let Maker {
            made, target, plan, ..
        } = stage.maker;
        let file = if made.take_ahead(i) {
            let (id, file) = stage.maker.make_here(&mut self.last, i)?;
            made.set(i, Some(id), None);
            file
        } else {
            let id = made.wait(i)?;
            match made.take_handle(i) {
                Some(f) => f,
                None => match target.open_file(&mut self.last, &plan.file_rel(i), id) {
                    Ok(f) => f,
                    Err(e) => return Some(Err(e)),
                },
            }
        };
        if self.files.len() >= OPEN_FILES {
            self.files.remove(0);
        }
        self.files.push((i, file));
        Some(Ok(&self.files.last().expect("just pushed").1))
    }
}

/// A blob worker keeps its buffer for opened blobs up to this size between
/// groups: a buffer kept at the largest chunk's size (4 MiB) held that much
/// per worker through all the smaller ones (docs/performance.md, fourteenth
/// round).
const PLAIN_KEPT: usize = 2 << 20;

/// Sealed bytes of one unit of work for the blob workers: small enough
/// that the workers share a pack evenly, large enough to cost little to
/// hand over.
const GROUP_BYTES: u64 = 256 << 10;

/// A fetched pack, held until the last of its blobs is written; dropping
/// it gives its place back to the fetchers.
struct Loaded {
    data: PackBytes,
    blobs: Vec<BlobWrites>,
    /// Groups of blobs not yet written.
    left: AtomicUsize,
    _permit: Permit,
}

/// One place among the packs held in memory at once.
struct Permit(crossbeam_channel::Sender<()>);

impl Drop for Permit {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

/// Blobs `range` of a fetched pack, for one blob worker.
struct Group {
    pack: Arc<Loaded>,
    range: Range<usize>,
}

/// What the fetchers and blob workers share: the lost files and counts.
struct Shared<'s, 'a> {
    stage: &'s Stage<'a>,
    lost: Mutex<HashMap<usize, String>>,
    done: AtomicU64,
    total: u64,
    bytes: AtomicU64,
    /// Writes not yet made, by file: at zero the file is complete.
    pending: Vec<AtomicU32>,
    finished: Vec<AtomicBool>,
}

impl Shared<'_, '_> {
    fn lose(&self, blob: &BlobWrites, why: &str) {
        let mut l = self.lost.lock().expect("not poisoned");
        for w in blob.writes() {
            l.entry(w.file).or_insert_with(|| why.to_owned());
        }
    }

    fn lose_all(&self, blobs: &[BlobWrites], why: &str) {
        for b in blobs {
            self.lose(b, why);
        }
    }

    /// Fetch one pack: `None` (its files lost) if it cannot be rebuilt.
    fn fetch(&self, pack: &PackId, blobs: &[BlobWrites]) -> Option<PackBytes> {
        let cid = self.stage.container.manifest.id;
        let rec = match self.stage.home.index.pack(&cid, pack) {
            Ok(Some(r)) => r,
            Ok(None) => {
                let why = format!("pack {} is not in the index", pack.short());
                self.lose_all(blobs, &why);
                return None;
            }
            Err(e) => {
                self.lose_all(blobs, &e.to_string());
                return None;
            }
        };
        match self.stage.fetcher.pack_bytes(&rec) {
            Ok(d) => Some(d),
            Err(e) => {
                self.lose_all(blobs, &e.to_string());
                None
            }
        }
    }

    /// Open, verify and write the blobs of one group, each opened into
    /// `plain` (the worker's one buffer).
    fn write(&self, g: &Group, open: &mut OpenFiles, plain: &mut Vec<u8>) {
        let keys = &self.stage.container.keys;
        for b in &g.pack.blobs[g.range.clone()] {
            if let Err(e) = Fetcher::open_blob_into(keys, &g.pack.data, &b.entry, plain) {
                self.lose(b, &e.to_string());
                continue;
            }
            for w in b.writes() {
                let r = match open.get(self.stage, w.file) {
                    None => Ok(false),
                    Some(Ok(f)) => f
                        .write_all_at(plain, w.offset)
                        .map(|()| true)
                        .map_err(|e| e.to_string()),
                    Some(Err(e)) => Err(e.to_string()),
                };
                match r {
                    Ok(false) => {}
                    Ok(true) => {
                        self.bytes.fetch_add(plain.len() as u64, Ordering::Relaxed);
                    }
                    Err(e) => {
                        self.lost
                            .lock()
                            .expect("not poisoned")
                            .entry(w.file)
                            .or_insert_with(|| format!("write: {e}"));
                    }
                }
                if self.pending[w.file].fetch_sub(1, Ordering::AcqRel) == 1 {
                    self.finish(w.file, open);
                }
            }
        }
        if g.pack.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            let n = self.done.fetch_add(1, Ordering::Relaxed) + 1;
            self.stage.progress.event(Event::Step {
                done: n,
                total: self.total,
            });
        }
    }
}

impl Shared<'_, '_> {
    /// Set the times and mode of a file whose last write was just made,
    /// through the handle that wrote it: the final pass then need not walk
    /// to it again. A file that is lost, or that fails here, is left to the
    /// final pass (which removes or reports it).
    fn finish(&self, i: usize, open: &mut OpenFiles) {
        if self.lost.lock().expect("not poisoned").contains_key(&i) {
            return;
        }
        let f = &self.stage.maker.plan.files[i];
        let Some(Ok(file)) = open.get(self.stage, i) else {
            return;
        };
        if Target::finish_file(file, f.mtime_ns, f.mode) {
            self.finished[i].store(true, Ordering::Release);
        }
        open.close(i);
    }
}

/// Split a pack's blobs into groups of about [`GROUP_BYTES`].
fn groups(blobs: &[BlobWrites]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut size) = (0, 0u64);
    for (i, b) in blobs.iter().enumerate() {
        size += u64::from(b.entry.length);
        if size >= GROUP_BYTES || i + 1 == blobs.len() {
            out.push(start..i + 1);
            (start, size) = (i + 1, 0);
        }
    }
    out
}

/// Fetch every pack of `writes` and write its blobs. `in_flight` packs are
/// fetched at once and held until written, which bounds memory to about
/// that many packs; one worker per core opens (decrypts, decompresses,
/// verifies) and writes their blobs meanwhile.
pub(super) fn fetch_and_write(stage: &Stage, writes: Writes, in_flight: usize) -> Written {
    let in_flight = in_flight.max(1);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let shared = Shared {
        stage,
        total: writes.packs.len() as u64,
        // From here on, fetchers and workers add to the lost files.
        lost: Mutex::new(writes.lost),
        done: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        pending: writes
            .writes_per_file
            .iter()
            .map(|n| AtomicU32::new(*n))
            .collect(),
        finished: writes
            .writes_per_file
            .iter()
            .map(|_| AtomicBool::new(false))
            .collect(),
    };
    let (job_tx, job_rx) = crossbeam_channel::unbounded();
    for job in writes.packs {
        job_tx.send(job).expect("receiver alive");
    }
    drop(job_tx);
    let (permit_tx, permit_rx) = crossbeam_channel::bounded(in_flight);
    for _ in 0..in_flight {
        permit_tx.send(()).expect("room for every permit");
    }
    let (work_tx, work_rx) = crossbeam_channel::unbounded::<Group>();
    std::thread::scope(|s| {
        for _ in 0..in_flight {
            let (job_rx, permit_rx, permit_tx, work_tx) = (
                job_rx.clone(),
                permit_rx.clone(),
                permit_tx.clone(),
                work_tx.clone(),
            );
            let shared = &shared;
            s.spawn(move || {
                // Take a place before a pack, so at most `in_flight` are held.
                while permit_rx.recv().is_ok() {
                    let permit = Permit(permit_tx.clone());
                    let Ok((pack, blobs)) = job_rx.recv() else {
                        break;
                    };
                    let Some(data) = shared.fetch(&pack, &blobs) else {
                        continue;
                    };
                    let ranges = groups(&blobs);
                    let loaded = Arc::new(Loaded {
                        data,
                        blobs,
                        left: AtomicUsize::new(ranges.len()),
                        _permit: permit,
                    });
                    for range in ranges {
                        let pack = loaded.clone();
                        work_tx.send(Group { pack, range }).expect("workers alive");
                    }
                }
            });
        }
        drop(work_tx);
        for _ in 0..workers {
            let (work_rx, shared) = (work_rx.clone(), &shared);
            s.spawn(move || {
                let mut open = OpenFiles {
                    files: Vec::new(),
                    last: LastFolder::default(),
                };
                let mut plain = Vec::new();
                for g in work_rx {
                    shared.write(&g, &mut open, &mut plain);
                    if plain.capacity() > PLAIN_KEPT {
                        plain = Vec::new();
                    }
                }
            });
        }
    });
    Written {
        lost: shared.lost.into_inner().expect("not poisoned"),
        finished: shared
            .finished
            .into_iter()
            .map(|f| f.into_inner())
            .collect(),
        bytes: shared.bytes.into_inner(),
    }
}
