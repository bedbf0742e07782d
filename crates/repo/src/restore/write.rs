//! Stage 3 of a restore: fetch each needed pack once (§9.1), open and
//! verify each blob the plan needs, and write it at every offset of every
//! file that uses it. A pack or blob that cannot be read loses exactly the
//! files that need it; the rest goes on.

use super::plan::FilePlan;
use super::target::{Identity, Target};
use crate::error::Result;
use crate::fetch::Fetcher;
use crate::home::{Container, Home};
use crate::index::BlobLocation;
use crate::progress::{Event, Progress};
use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use trove_core::{BlobId, ContainerId, PackId};

/// One place a blob's plaintext goes: file `file` of the plan, at `offset`.
#[derive(Debug, Clone, Copy)]
struct FileWrite {
    file: usize,
    offset: u64,
}

/// A blob of one pack and everywhere it is written.
#[derive(Debug, Clone)]
struct BlobWrites {
    loc: BlobLocation,
    to: Vec<FileWrite>,
}

/// Every write of a restore, grouped by pack so each pack is fetched once.
#[derive(Debug, Default)]
pub(super) struct Writes {
    /// The blobs of each pack, in the order they sit in the pack (which is
    /// mostly file order, so consecutive writes go to the same file).
    packs: HashMap<PackId, Vec<BlobWrites>>,
    /// Files that cannot be completed whatever is fetched, and why.
    lost: HashMap<usize, String>,
}

/// Group the chunk writes of the files the layout made (`made[i]` is
/// `Some`) by pack. Offsets come from the plaintext lengths the index
/// records. A chunk not in the index loses its file; so does a file whose
/// chunks do not add up to its size.
pub(super) fn group(
    home: &Home,
    cid: &ContainerId,
    files: &[FilePlan],
    made: &[Option<Identity>],
) -> Result<Writes> {
    let mut packs: HashMap<PackId, HashMap<BlobId, BlobWrites>> = HashMap::new();
    let mut lost = HashMap::new();
    for (i, f) in files.iter().enumerate() {
        if made[i].is_none() {
            continue;
        }
        let mut offset = 0u64;
        for c in &f.chunks {
            let Some(loc) = home.index.blob(cid, &BlobId(c.0))? else {
                lost.insert(i, format!("chunk {} is not in the index", c.short()));
                break;
            };
            packs
                .entry(loc.pack)
                .or_default()
                .entry(loc.entry.id)
                .or_insert_with(|| BlobWrites {
                    loc,
                    to: Vec::new(),
                })
                .to
                .push(FileWrite { file: i, offset });
            offset += u64::from(loc.entry.raw_length);
        }
        if offset != f.size {
            lost.entry(i).or_insert_with(|| {
                format!("chunks add up to {offset} bytes, the file had {}", f.size)
            });
        }
    }
    let packs = packs
        .into_iter()
        .map(|(pack, blobs)| {
            let mut blobs: Vec<BlobWrites> = blobs.into_values().collect();
            blobs.sort_by_key(|b| b.loc.entry.offset);
            (pack, blobs)
        })
        .collect();
    Ok(Writes { packs, lost })
}

/// What the fetch-and-write stage did.
#[derive(Debug)]
pub(super) struct Written {
    /// Files that could not be completed (plan index → why): the caller
    /// removes them and names them.
    pub lost: HashMap<usize, String>,
    pub bytes: u64,
}

/// Everything the workers share.
pub(super) struct Stage<'a> {
    pub home: &'a Home,
    pub container: &'a Container,
    pub fetcher: &'a Fetcher,
    pub target: &'a Target,
    pub files: &'a [FilePlan],
    pub made: &'a [Option<Identity>],
    pub progress: &'a dyn Progress,
}

/// Files a worker keeps open: blobs come mostly in file order, so a few
/// handles save reopening (and re-walking the target) for each blob.
struct OpenFiles(Vec<(usize, std::fs::File)>);

const OPEN_FILES: usize = 8;

impl OpenFiles {
    fn get(&mut self, stage: &Stage, i: usize) -> Result<&std::fs::File> {
        if let Some(at) = self.0.iter().position(|(f, _)| *f == i) {
            return Ok(&self.0[at].1);
        }
        let id = stage.made[i].expect("only made files have writes");
        let file = stage.target.open_file(&stage.files[i].rel, id)?;
        if self.0.len() >= OPEN_FILES {
            self.0.remove(0);
        }
        self.0.push((i, file));
        Ok(&self.0.last().expect("just pushed").1)
    }
}

/// Fetch every pack of `writes` with `workers` threads and write its blobs.
pub(super) fn fetch_and_write(stage: &Stage, writes: Writes, workers: usize) -> Written {
    let cid = stage.container.manifest.id;
    let total = writes.packs.len() as u64;
    // From here on, pack workers add to the lost files concurrently.
    let lost = Mutex::new(writes.lost);
    let done = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    let (tx, rx) = crossbeam_channel::unbounded();
    for job in writes.packs {
        tx.send(job).expect("receiver alive");
    }
    drop(tx);
    let lose = |to: &[FileWrite], why: &str| {
        let mut l = lost.lock().expect("not poisoned");
        for w in to {
            l.entry(w.file).or_insert_with(|| why.to_owned());
        }
    };
    let lose_all = |blobs: &[BlobWrites], why: &str| {
        for b in blobs {
            lose(&b.to, why);
        }
    };
    std::thread::scope(|s| {
        for _ in 0..workers.max(1) {
            let rx = rx.clone();
            let (lose, lose_all, lost, done, bytes) = (&lose, &lose_all, &lost, &done, &bytes);
            s.spawn(move || {
                let mut open = OpenFiles(Vec::new());
                for (pack, blobs) in rx {
                    let rec = match stage.home.index.pack(&cid, &pack) {
                        Ok(Some(r)) => r,
                        Ok(None) => {
                            lose_all(
                                &blobs,
                                &format!("pack {} is not in the index", pack.short()),
                            );
                            continue;
                        }
                        Err(e) => {
                            lose_all(&blobs, &e.to_string());
                            continue;
                        }
                    };
                    let data = match stage.fetcher.pack_uncached(&rec) {
                        Ok(d) => d,
                        Err(e) => {
                            lose_all(&blobs, &e.to_string());
                            continue;
                        }
                    };
                    for b in &blobs {
                        let plain = match Fetcher::open_blob(&stage.container.keys, &data, &b.loc) {
                            Ok(p) => p,
                            Err(e) => {
                                lose(&b.to, &e.to_string());
                                continue;
                            }
                        };
                        for w in &b.to {
                            let r = match open.get(stage, w.file) {
                                Ok(f) => {
                                    f.write_all_at(&plain, w.offset).map_err(|e| e.to_string())
                                }
                                Err(e) => Err(e.to_string()),
                            };
                            match r {
                                Ok(()) => {
                                    bytes.fetch_add(plain.len() as u64, Ordering::Relaxed);
                                }
                                Err(e) => {
                                    lost.lock()
                                        .expect("not poisoned")
                                        .entry(w.file)
                                        .or_insert_with(|| format!("write: {e}"));
                                }
                            }
                        }
                    }
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    stage.progress.event(Event::Step { done: n, total });
                }
            });
        }
    });
    Written {
        lost: lost.into_inner().expect("not poisoned"),
        bytes: bytes.into_inner(),
    }
}
