//! A backup: scan, then read/chunk/dedup/seal on worker threads, pack,
//! erasure-code and upload, and commit the snapshot only once every
//! fragment it needs is acknowledged (DESIGN invariant 4).
//!
//! ```text
//! main: scan ─▶ jobs ─▶ workers (read, chunk, id, dedup, seal) ─▶ packer ─▶ uploader ─▶ peers
//!       trees (after the workers) ─────────────────────────────────┘
//! ```
//! Channels are bounded, so memory stays at a few packs whatever the input.

use crate::error::{RepoError, Result};
use crate::home::{Container, Home, Owner};
use crate::index::FileEntry;
use crate::meta::sync_meta;
use crate::progress::{Event, Progress};
use crate::scan::{self, ScanNode};
use crate::upload::Uploader;
use crossbeam_channel::{bounded, unbounded, Sender};
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;
use trove_core::chunk::Chunker;
use trove_core::envelope;
use trove_core::manifest::{IndexSegment, SnapshotManifest, SnapshotSummary};
use trove_core::pack::PackBuilder;
use trove_core::seal::{self, BlobKind, Compression};
use trove_core::tree::{Node, NodeKind, Tree};
use trove_core::{BlobId, ChunkId, SegmentId, SnapshotId, TreeId};
use trove_peer::MetaKey;

/// How to back up.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    pub compression: Compression,
    /// Reader/sealer threads; default: the number of cores.
    pub workers: usize,
}

impl Default for BackupOptions {
    fn default() -> Self {
        Self {
            compression: Compression::default(),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// What a backup did.
#[derive(Debug, Clone)]
pub struct BackupReport {
    pub snapshot: SnapshotManifest,
    /// Files and folders that could not be read (the backup went on).
    pub unreadable: Vec<(PathBuf, String)>,
    /// Special files (sockets, devices, fifos) that were not backed up.
    pub skipped: Vec<(PathBuf, String)>,
    pub seconds: f64,
}

/// Files up to this size are read whole; larger ones are streamed.
const WHOLE_FILE_MAX: u64 = 8 * 1024 * 1024;

struct SealedBlob {
    kind: BlobKind,
    id: BlobId,
    raw_len: u32,
    bytes: Vec<u8>,
}

/// What worker threads share.
struct Shared<'a> {
    container: &'a Container,
    chunker: Chunker,
    compression: Compression,
    known: Mutex<HashSet<BlobId>>,
    abort: &'a AtomicBool,
    progress: &'a dyn Progress,
    blobs_new: AtomicU64,
}

impl Shared<'_> {
    /// Dedup and, if new, seal and queue one blob.
    fn emit(&self, tx: &Sender<SealedBlob>, kind: BlobKind, id: BlobId, data: &[u8]) {
        if !self.known.lock().expect("not poisoned").insert(id) {
            return;
        }
        let bytes = seal::seal(
            &self.container.keys.seal,
            kind,
            &id.0,
            data,
            self.compression,
        );
        self.blobs_new.fetch_add(1, Ordering::Relaxed);
        // A closed channel means the backup is aborting; the error is reported there.
        let raw_len = data.len() as u32;
        let _ = tx.send(SealedBlob {
            kind,
            id,
            raw_len,
            bytes,
        });
    }

    fn chunk(&self, tx: &Sender<SealedBlob>, data: &[u8], chunks: &mut Vec<ChunkId>) {
        let id = self.container.keys.chunk_id(data);
        chunks.push(id);
        self.emit(tx, BlobKind::Data, id.into(), data);
        self.progress.event(Event::Read(data.len() as u64));
    }

    /// Read, chunk and queue one file; returns its chunk ids and length.
    fn file(
        &self,
        tx: &Sender<SealedBlob>,
        path: &std::path::Path,
    ) -> std::io::Result<(Vec<ChunkId>, u64)> {
        let mut f = std::fs::File::open(path)?;
        let len = f.metadata()?.len();
        let mut chunks = Vec::new();
        let mut total = 0u64;
        if len <= WHOLE_FILE_MAX {
            let mut buf = Vec::with_capacity(len as usize);
            f.read_to_end(&mut buf)?;
            for (off, n) in self.chunker.cuts(&buf) {
                self.chunk(tx, &buf[off..off + n], &mut chunks);
            }
            total = buf.len() as u64;
        } else {
            for c in self.chunker.stream(f) {
                if self.abort.load(Ordering::Relaxed) {
                    break;
                }
                let c = c?;
                total += c.len() as u64;
                self.chunk(tx, &c, &mut chunks);
            }
        }
        Ok((chunks, total))
    }

    /// Build the tree of a scanned directory, queueing tree blobs.
    fn tree(
        &self,
        tx: &Sender<SealedBlob>,
        children: &[ScanNode],
        results: &[Option<FileResult>],
    ) -> TreeId {
        let mut nodes: Vec<Node> = children
            .iter()
            .filter_map(|c| self.node(tx, c, results))
            .collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let bytes = Tree { nodes }.encode();
        let id = self.container.keys.tree_id(&bytes);
        self.emit(tx, BlobKind::Tree, id.into(), &bytes);
        id
    }

    fn node(
        &self,
        tx: &Sender<SealedBlob>,
        n: &ScanNode,
        results: &[Option<FileResult>],
    ) -> Option<Node> {
        Some(match n {
            ScanNode::File(f) => {
                let (chunks, size) = if f.cached {
                    (f.stat.chunks.clone(), f.stat.size)
                } else {
                    match results[f.slot].as_ref()? {
                        Ok((c, s)) => (c.clone(), *s),
                        Err(_) => return None,
                    }
                };
                Node {
                    name: f.name.clone(),
                    mode: f.mode,
                    mtime_ns: f.mtime_ns,
                    kind: NodeKind::File { size, chunks },
                }
            }
            ScanNode::Dir(d) => Node {
                name: d.name.clone(),
                mode: d.mode,
                mtime_ns: d.mtime_ns,
                kind: NodeKind::Dir {
                    tree: self.tree(tx, &d.children, results),
                },
            },
            ScanNode::Symlink {
                name,
                mode,
                mtime_ns,
                target,
            } => Node {
                name: name.clone(),
                mode: *mode,
                mtime_ns: *mtime_ns,
                kind: NodeKind::Symlink {
                    target: target.clone(),
                },
            },
        })
    }
}

type FileResult = std::result::Result<(Vec<ChunkId>, u64), String>;

pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// Back up one container and commit a snapshot.
pub fn backup(
    home: &Home,
    owner: &Owner,
    name: &str,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupReport> {
    let started = Instant::now();
    let mut container = home.container(owner, name)?;
    let cid = container.manifest.id;
    let slots = home.open_peers()?;
    if slots.is_empty() {
        return Err(RepoError::Usage(
            "no peers configured: add one with `trove peer add NAME dir:PATH`".into(),
        ));
    }
    for s in &slots {
        if let Err(e) = &s.peer {
            progress.event(Event::Warning(e.to_string()));
        }
    }
    let available: Vec<_> = slots
        .iter()
        .filter_map(|s| s.available().map(|p| (s.record.clone(), p.clone())))
        .collect();
    if available.is_empty() {
        return Err(RepoError::Placement {
            reason: "no configured peer is reachable; nothing was stored".into(),
        });
    }

    // The roster is every configured peer, so a new machine finds them all.
    let roster: Vec<_> = slots.iter().map(|s| s.record.clone()).collect();
    if container.manifest.roster != roster {
        container.manifest.roster = roster;
        container.manifest.revision += 1;
        home.index.put_container(&container.manifest, false)?;
        home.refresh_container_envelope(owner, &container.manifest)?;
    }
    sync_meta(home, owner, &container, &available, true, progress)?;

    let known = home.index.blob_ids(&cid)?;
    let cache = home.index.file_cache(&cid)?;
    let sources: Vec<PathBuf> = container
        .manifest
        .sources
        .iter()
        .map(PathBuf::from)
        .collect();
    let scanned = scan::scan(&sources, &cache, &known);
    if scanned.roots.is_empty() {
        return Err(RepoError::Usage(format!(
            "none of the sources of `{name}` could be read: {}",
            scanned
                .unreadable
                .iter()
                .map(|(p, e)| format!("{}: {e}", p.display()))
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    let to_read: Vec<usize> = (0..scanned.files.len())
        .filter(|i| !scanned.files[*i].2)
        .collect();
    progress.event(Event::Scanned {
        files: scanned.files.len() as u64,
        bytes: scanned.files.iter().map(|f| f.1.size).sum(),
        to_read: to_read.len() as u64,
        to_read_bytes: to_read.iter().map(|i| scanned.files[*i].1.size).sum(),
    });

    let abort = AtomicBool::new(false);
    let (blob_tx, blob_rx) = bounded::<SealedBlob>(16);
    let (pack_tx, pack_rx) = bounded(1);
    let shared = Shared {
        container: &container,
        chunker: Chunker::new(container.manifest.chunker, container.keys.chunker_seed),
        compression: opts.compression,
        known: Mutex::new(known),
        abort: &abort,
        progress,
        blobs_new: AtomicU64::new(0),
    };
    let results: Mutex<Vec<Option<FileResult>>> = Mutex::new(vec![None; scanned.files.len()]);
    let pack_target = container.manifest.pack_target as usize;
    let mut uploader = Uploader::new(available.clone(), container.manifest.redundancy, progress);

    type ScopeOut = (
        TreeId,
        Vec<trove_core::PackId>,
        Vec<Option<FileResult>>,
        u64,
    );
    let (root, stored, results, blobs_new) = std::thread::scope(|s| -> Result<ScopeOut> {
        // Packer: sealed blobs in, finished packs out.
        let seal_key = &container.keys.seal;
        let packer = s.spawn(move || {
            let mut b = PackBuilder::with_capacity(pack_target + 4 * 1024 * 1024);
            for blob in blob_rx {
                b.add(blob.kind, blob.id, &blob.bytes, blob.raw_len);
                if b.len() >= pack_target {
                    let full = std::mem::replace(
                        &mut b,
                        PackBuilder::with_capacity(pack_target + 4 * 1024 * 1024),
                    );
                    if pack_tx.send(full.finish(seal_key)).is_err() {
                        return;
                    }
                }
            }
            if !b.is_empty() {
                let _ = pack_tx.send(b.finish(seal_key));
            }
        });
        // Uploader: packs in, records into the index as each is fully stored.
        let abort_ref = &abort;
        let index = &home.index;
        let uploader_ref = &mut uploader;
        let upload = s.spawn(move || -> Result<Vec<trove_core::PackId>> {
            let mut stored = Vec::new();
            let mut first_err = None;
            for pack in pack_rx {
                if first_err.is_some() {
                    continue; // drain so the packer never blocks
                }
                match uploader_ref
                    .store(&pack)
                    .and_then(|rec| index.record_packs(&cid, std::slice::from_ref(&rec), false))
                {
                    Ok(()) => stored.push(pack.id),
                    Err(e) => {
                        abort_ref.store(true, Ordering::Relaxed);
                        first_err = Some(e);
                    }
                }
            }
            match first_err {
                Some(e) => Err(e),
                None => Ok(stored),
            }
        });
        // Workers: read, chunk, seal.
        let (job_tx, job_rx) = unbounded::<usize>();
        for i in &to_read {
            job_tx.send(*i).expect("receiver alive");
        }
        drop(job_tx);
        let workers: Vec<_> = (0..opts.workers.max(1))
            .map(|_| {
                let job_rx = job_rx.clone();
                let tx = blob_tx.clone();
                let shared = &shared;
                let files = &scanned.files;
                let results = &results;
                s.spawn(move || {
                    for slot in job_rx {
                        if shared.abort.load(Ordering::Relaxed) {
                            break;
                        }
                        let r = shared.file(&tx, &files[slot].0).map_err(|e| e.to_string());
                        results.lock().expect("not poisoned")[slot] = Some(r);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("worker does not panic");
        }
        let results = std::mem::take(&mut *results.lock().expect("not poisoned"));
        // Trees, bottom-up; the root lists one entry per source.
        let root = if abort.load(Ordering::Relaxed) {
            TreeId([0; 32])
        } else {
            shared.tree(&blob_tx, &scanned.roots, &results)
        };
        let blobs_new = shared.blobs_new.load(Ordering::Relaxed);
        drop(blob_tx); // closes the blob channel: the packer flushes its last pack
        packer.join().expect("packer does not panic");
        let stored = upload.join().expect("uploader does not panic")?;
        Ok((root, stored, results, blobs_new))
    })?;

    // Every fragment is acknowledged: publish the index segment and commit.
    let mut unreadable = scanned.unreadable;
    let mut files_cache = HashMap::new();
    let mut summary = SnapshotSummary {
        dirs: scanned.dirs,
        blobs_new,
        packs_new: stored.len() as u64,
        bytes_stored: uploader.fragment_bytes,
        ..Default::default()
    };
    for (slot, (path, stat, cached)) in scanned.files.into_iter().enumerate() {
        let key = path.as_os_str().as_bytes().to_vec();
        let (chunks, size) = if cached {
            summary.files_unchanged += 1;
            (stat.chunks, stat.size)
        } else {
            match &results[slot] {
                Some(Ok((c, n))) => {
                    if cache.contains_key(&key) {
                        summary.files_changed += 1;
                    } else {
                        summary.files_new += 1;
                    }
                    summary.bytes_read += n;
                    (c.clone(), *n)
                }
                Some(Err(e)) => {
                    unreadable.push((path, e.clone()));
                    continue;
                }
                None => continue,
            }
        };
        summary.bytes_total += size;
        files_cache.insert(
            key,
            FileEntry {
                size: stat.size,
                mtime_ns: stat.mtime_ns,
                ctime_ns: stat.ctime_ns,
                inode: stat.inode,
                chunks,
            },
        );
    }
    summary.unreadable = unreadable.len() as u64;

    let mut envelopes = Vec::new();
    let unpublished = home.index.unpublished_packs(&cid)?;
    let published: Vec<_> = unpublished.iter().map(|p| p.id).collect();
    if !unpublished.is_empty() {
        let seg = IndexSegment {
            id: SegmentId::random(),
            container: cid,
            packs: unpublished,
        };
        let env = envelope::seal_signed(
            &owner.identity,
            &container.keys.seal,
            BlobKind::IndexSegment,
            &seg.id.0,
            0,
            &seg.encode(),
        );
        envelopes.push((MetaKey::IndexSegment(cid, seg.id), env));
    }
    let parent = home.index.snapshots(&cid)?.last().map(|s| s.id);
    let snapshot = SnapshotManifest {
        id: SnapshotId::random(),
        container: cid,
        time_unix_ns: now_ns(),
        host: hostname(),
        sources: container.manifest.sources.clone(),
        root,
        parent,
        summary,
    };
    let env = envelope::seal_signed(
        &owner.identity,
        &container.keys.seal,
        BlobKind::SnapshotManifest,
        &snapshot.id.0,
        0,
        &snapshot.encode(),
    );
    envelopes.push((MetaKey::Snapshot(cid, snapshot.id), env));
    home.index
        .commit_snapshot(&snapshot, &envelopes, &published, &files_cache, &cache)?;
    // Replicate the new manifests; a peer that misses them now gets them at
    // the next backup (sync_meta), and `trove check` reports it meanwhile.
    sync_meta(home, owner, &container, &available, false, progress)?;
    Ok(BackupReport {
        snapshot,
        unreadable,
        skipped: scanned.skipped,
        seconds: started.elapsed().as_secs_f64(),
    })
}
