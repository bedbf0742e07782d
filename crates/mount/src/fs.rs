//! The FUSE operations over a [`Browser`]: lookups and listings from the
//! snapshots' trees, reads from their verified chunks.

use crate::inodes::{Inode, Inodes, Kind, Listing, ROOT, SNAPSHOTS};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, Generation, INodeNo, LockOwner, OpenFlags,
    ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, Request,
};
use std::collections::{HashMap, VecDeque};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use trove_core::tree::NodeKind;
use trove_core::{BlobId, ChunkId};
use trove_repo::{Browser, RepoError};

/// Snapshots do not change: the kernel may cache what it learns.
const TTL: Duration = Duration::from_secs(300);
/// Decrypted chunks kept for the next read (a file is read in 128 KiB
/// requests; chunks average 1 MiB).
const CACHED_CHUNKS: usize = 8;

pub(crate) struct SnapshotFs {
    browser: Browser,
    inodes: Mutex<Inodes>,
    /// Chunk start offsets of files being read, by inode.
    offsets: Mutex<HashMap<u64, Arc<Vec<u64>>>>,
    chunks: Mutex<VecDeque<(ChunkId, Arc<Vec<u8>>)>>,
    snapshots: usize,
    uid: u32,
    gid: u32,
}

impl SnapshotFs {
    pub fn new(browser: Browser) -> Result<Self, RepoError> {
        let snaps = browser.snapshots()?;
        let newest = snaps.last().map_or(0, |s| s.time_unix_ns);
        let mut inodes = Inodes::new(newest);
        let mut entries: Vec<(Vec<u8>, Inode)> = Vec::new();
        let mut names = std::collections::HashSet::new();
        for s in &snaps {
            let mut name = trove_repo::utc(s.time_unix_ns).replace(' ', "T") + "Z";
            // Two snapshots in one second: the later one carries its id.
            if !names.insert(name.clone()) {
                name = format!("{name}-{}", s.id.short());
                names.insert(name.clone());
            }
            entries.push((
                name.clone().into_bytes(),
                Inode {
                    kind: Kind::Dir(s.root),
                    mode: 0o555,
                    mtime_ns: s.time_unix_ns,
                    path: format!("snapshots/{name}"),
                },
            ));
        }
        if let Some((name, _)) = entries.last() {
            let target = name.clone();
            entries.push((
                b"latest".to_vec(),
                Inode {
                    kind: Kind::Symlink(target),
                    mode: 0o777,
                    mtime_ns: newest,
                    path: "snapshots/latest".into(),
                },
            ));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        inodes.list(SNAPSHOTS, entries);
        Ok(Self {
            browser,
            inodes: Mutex::new(inodes),
            offsets: Mutex::new(HashMap::new()),
            chunks: Mutex::new(VecDeque::new()),
            snapshots: snaps.len(),
            uid: rustix::process::getuid().as_raw(),
            gid: rustix::process::getgid().as_raw(),
        })
    }

    pub fn snapshot_count(&self) -> usize {
        self.snapshots
    }

    pub fn container_name(&self) -> &str {
        &self.browser.container().manifest.name
    }

    fn inode(&self, ino: INodeNo) -> Result<Arc<Inode>, Errno> {
        self.inodes
            .lock()
            .expect("not poisoned")
            .get(ino.0)
            .ok_or(Errno::ENOENT)
    }

    /// A folder's entries, reading its tree the first time. The tree is
    /// fetched without holding the table, so other requests go on.
    fn listing(&self, ino: u64, dir: &Inode) -> Result<Listing, Errno> {
        if let Some(l) = self.inodes.lock().expect("not poisoned").listing(ino) {
            return Ok(l);
        }
        let Kind::Dir(tree) = &dir.kind else {
            return Err(Errno::ENOTDIR);
        };
        let tree = self
            .browser
            .reader()
            .load(tree)
            .map_err(|e| self.failed(&dir.path, &e))?;
        let entries = tree
            .nodes
            .into_iter()
            .map(|n| {
                let kind = match n.kind {
                    NodeKind::Dir { tree } => Kind::Dir(tree),
                    NodeKind::File { size, chunks } => Kind::File { size, chunks },
                    NodeKind::Symlink { target } => Kind::Symlink(target),
                };
                let path = format!("{}/{}", dir.path, String::from_utf8_lossy(&n.name));
                let node = Inode {
                    kind,
                    mode: n.mode,
                    mtime_ns: n.mtime_ns,
                    path,
                };
                (n.name, node)
            })
            .collect();
        Ok(self.inodes.lock().expect("not poisoned").list(ino, entries))
    }

    /// Say what could not be read (the caller gets EIO).
    fn failed(&self, path: &str, e: &RepoError) -> Errno {
        eprintln!("trove mount: {path}: {e}");
        Errno::EIO
    }

    fn attr(&self, ino: u64, node: &Inode) -> FileAttr {
        let kind = file_type(&node.kind);
        let (size, nlink) = match &node.kind {
            Kind::Root | Kind::Snapshots | Kind::Dir(_) => (0, 2),
            Kind::File { size, .. } => (*size, 1),
            Kind::Symlink(t) => (t.len() as u64, 1),
        };
        let mtime = system_time(node.mtime_ns);
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: mtime,
            mtime,
            ctime: mtime,
            crtime: mtime,
            kind,
            perm: (node.mode & 0o7777) as u16,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    /// A chunk's verified plaintext, from the small cache or the peers.
    fn chunk(&self, id: &ChunkId) -> Result<Arc<Vec<u8>>, RepoError> {
        if let Some((_, c)) = self
            .chunks
            .lock()
            .expect("not poisoned")
            .iter()
            .find(|(c, _)| c == id)
        {
            return Ok(c.clone());
        }
        let plain = Arc::new(self.browser.reader().blob(&BlobId(id.0), "chunk")?);
        let mut cache = self.chunks.lock().expect("not poisoned");
        if cache.len() >= CACHED_CHUNKS {
            cache.pop_front();
        }
        cache.push_back((*id, plain.clone()));
        Ok(plain)
    }

    /// `len` bytes of a file from `offset` (fewer at its end).
    fn read_file(
        &self,
        ino: u64,
        size: u64,
        chunks: &[ChunkId],
        offset: u64,
        len: u32,
    ) -> Result<Vec<u8>, RepoError> {
        let end = size.min(offset.saturating_add(u64::from(len)));
        if offset >= end {
            return Ok(Vec::new());
        }
        let cached = self
            .offsets
            .lock()
            .expect("not poisoned")
            .get(&ino)
            .cloned();
        let starts = match cached {
            Some(s) => s,
            None => {
                let s = Arc::new(self.browser.chunk_offsets(size, chunks)?);
                self.offsets
                    .lock()
                    .expect("not poisoned")
                    .insert(ino, s.clone());
                s
            }
        };
        // The chunk holding `offset`: the last one starting at or before it.
        let mut i = starts.partition_point(|&s| s <= offset) - 1;
        let mut out = Vec::with_capacity((end - offset) as usize);
        let mut at = offset;
        while at < end {
            let plain = self.chunk(&chunks[i])?;
            let from = (at - starts[i]) as usize;
            let to = (end.min(starts[i + 1]) - starts[i]) as usize;
            out.extend_from_slice(&plain[from..to]);
            at = starts[i + 1].min(end);
            i += 1;
        }
        Ok(out)
    }
}

fn file_type(kind: &Kind) -> FileType {
    match kind {
        Kind::Root | Kind::Snapshots | Kind::Dir(_) => FileType::Directory,
        Kind::File { .. } => FileType::RegularFile,
        Kind::Symlink(_) => FileType::Symlink,
    }
}

fn system_time(ns: i64) -> SystemTime {
    match u64::try_from(ns) {
        Ok(ns) => UNIX_EPOCH + Duration::from_nanos(ns),
        Err(_) => UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs()),
    }
}

impl Filesystem for SnapshotFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let found = (|| {
            let dir = self.inode(parent)?;
            let listing = self.listing(parent.0, &dir)?;
            let at = listing
                .binary_search_by(|(n, _)| n.as_slice().cmp(name.as_bytes()))
                .map_err(|_| Errno::ENOENT)?;
            let ino = listing[at].1;
            Ok::<_, Errno>((ino, self.inode(INodeNo(ino))?))
        })();
        match found {
            Ok((ino, node)) => reply.entry(&TTL, &self.attr(ino, &node), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.inode(ino) {
            Ok(node) => reply.attr(&TTL, &self.attr(ino.0, &node)),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.inode(ino).map(|n| match &n.kind {
            Kind::Symlink(t) => Ok(t.clone()),
            _ => Err(Errno::EINVAL),
        }) {
            Ok(Ok(t)) => reply.data(&t),
            Ok(Err(e)) | Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let node = match self.inode(ino) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        let Kind::File { size: len, chunks } = &node.kind else {
            return reply.error(Errno::EISDIR);
        };
        match self.read_file(ino.0, *len, chunks, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(self.failed(&node.path, &e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        // The root and `snapshots/` were listed when the table was made.
        let listed = self.inode(ino).and_then(|dir| self.listing(ino.0, &dir));
        let listing = match listed {
            Ok(l) => l,
            Err(e) => return reply.error(e),
        };
        let dots = [(ino.0, b".".to_vec()), (ROOT, b"..".to_vec())];
        let entries = dots
            .into_iter()
            .map(|(i, n)| (n, i))
            .chain(listing.iter().map(|(n, i)| (n.clone(), *i)));
        for (k, (name, child)) in entries.enumerate().skip(offset as usize) {
            let kind = match self.inode(INodeNo(child)) {
                Ok(n) => file_type(&n.kind),
                Err(_) => FileType::Directory,
            };
            if reply.add(
                INodeNo(child),
                (k + 1) as u64,
                kind,
                OsStr::from_bytes(&name),
            ) {
                break;
            }
        }
        reply.ok();
    }
}
