//! The metadata walk of a backup: builds the shape of the snapshot's trees
//! and decides, from the file cache, which files must be read at all.

use crate::index::FileEntry;
use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use trove_core::BlobId;

/// One entry of the walked tree.
#[derive(Debug)]
pub enum ScanNode {
    File(ScanFile),
    Dir(ScanDir),
    Symlink {
        name: Vec<u8>,
        mode: u32,
        mtime_ns: i64,
        target: Vec<u8>,
    },
}

#[derive(Debug)]
pub struct ScanDir {
    pub name: Vec<u8>,
    pub mode: u32,
    pub mtime_ns: i64,
    pub children: Vec<ScanNode>,
}

#[derive(Debug)]
pub struct ScanFile {
    pub name: Vec<u8>,
    pub mode: u32,
    pub mtime_ns: i64,
    pub stat: FileEntry,
    /// Index into the backup's file results.
    pub slot: usize,
    /// The cache says it is unchanged: its chunks are known.
    pub cached: bool,
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

/// One regular file the walk found, in slot order.
#[derive(Debug)]
pub struct ScannedFile {
    pub path: PathBuf,
    pub stat: FileEntry,
    /// The cache says it is unchanged: it is not read.
    pub cached: bool,
}

/// Result of the walk.
#[derive(Debug, Default)]
pub struct Scan {
    pub roots: Vec<ScanNode>,
    /// Every file in slot order.
    pub files: Vec<ScannedFile>,
    pub unreadable: Vec<UnreadablePath>,
    pub skipped: Vec<SkippedPath>,
    pub dirs: u64,
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

struct Walker<'a> {
    cache: &'a HashMap<Vec<u8>, FileEntry>,
    known: &'a std::collections::HashSet<BlobId>,
    out: Scan,
}

impl Walker<'_> {
    fn unreadable(&mut self, path: &Path, e: impl std::fmt::Display) {
        self.out.unreadable.push(UnreadablePath {
            path: path.to_owned(),
            error: e.to_string(),
        });
    }

    fn node(&mut self, path: &Path, name: Vec<u8>) -> Option<ScanNode> {
        let meta = match std::fs::symlink_metadata(path) {
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
                Ok(t) => Some(ScanNode::Symlink {
                    name,
                    mode,
                    mtime_ns: mtime,
                    target: t.as_os_str().as_bytes().to_vec(),
                }),
                Err(e) => {
                    self.unreadable(path, e);
                    None
                }
            };
        }
        if ft.is_dir() {
            self.out.dirs += 1;
            let mut entries: Vec<(Vec<u8>, PathBuf)> = match std::fs::read_dir(path) {
                Ok(rd) => rd
                    .filter_map(|e| match e {
                        Ok(e) => Some((e.file_name().as_bytes().to_vec(), e.path())),
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
            entries.sort();
            let children = entries
                .into_iter()
                .filter_map(|(n, p)| self.node(&p, n))
                .collect();
            return Some(ScanNode::Dir(ScanDir {
                name,
                mode,
                mtime_ns: mtime,
                children,
            }));
        }
        if !ft.is_file() {
            self.out.skipped.push(SkippedPath {
                path: path.to_owned(),
                reason: "not a regular file, directory or symlink".into(),
            });
            return None;
        }
        let key = path.as_os_str().as_bytes().to_vec();
        let mut stat = FileEntry {
            size: meta.len(),
            mtime_ns: mtime,
            ctime_ns: ctime_ns(&meta),
            inode: meta.ino(),
            chunks: Vec::new(),
        };
        let cached = match self.cache.get(&key) {
            Some(c)
                if (c.size, c.mtime_ns, c.ctime_ns, c.inode)
                    == (stat.size, stat.mtime_ns, stat.ctime_ns, stat.inode)
                    && c.chunks.iter().all(|id| self.known.contains(&BlobId(id.0))) =>
            {
                stat.chunks = c.chunks.clone();
                true
            }
            _ => false,
        };
        let slot = self.out.files.len();
        self.out.files.push(ScannedFile {
            path: path.to_owned(),
            stat: stat.clone(),
            cached,
        });
        Some(ScanNode::File(ScanFile {
            name,
            mode,
            mtime_ns: mtime,
            stat,
            slot,
            cached,
        }))
    }
}

/// Walk `sources`; each becomes a root entry named by its last component.
pub fn scan(
    sources: &[PathBuf],
    cache: &HashMap<Vec<u8>, FileEntry>,
    known: &std::collections::HashSet<BlobId>,
) -> Scan {
    let mut w = Walker {
        cache,
        known,
        out: Scan::default(),
    };
    for src in sources {
        let name = src
            .file_name()
            .map(|n| n.as_bytes().to_vec())
            .unwrap_or_else(|| b"root".to_vec());
        if let Some(n) = w.node(src, name) {
            w.out.roots.push(n);
        }
    }
    w.out
}
