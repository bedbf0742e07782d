//! Finding snapshots and reading their trees.

use crate::error::{RepoError, Result};
use crate::fetch::Fetcher;
use crate::home::{Container, Home, Owner};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use trove_core::manifest::SnapshotManifest;
use trove_core::tree::{Node, NodeKind, Tree};
use trove_core::{BlobId, ChunkId, TreeId};

/// Resolve `SNAPSHOT`: a full id, a unique id prefix, or `CONTAINER:latest`.
pub fn resolve_snapshot(
    home: &Home,
    owner: &Owner,
    spec: &str,
) -> Result<(Container, SnapshotManifest)> {
    if let Some((name, which)) = spec.split_once(':') {
        if which != "latest" {
            return Err(RepoError::OnlyLatest(spec.to_owned()));
        }
        let c = home.containers().open_readable(owner, name)?;
        let snap = home
            .index
            .snapshots(&c.manifest.id)?
            .pop()
            .ok_or_else(|| RepoError::NoSnapshot(spec.into()))?;
        return Ok((c, snap));
    }
    let prefix = spec.to_ascii_lowercase();
    if prefix.len() < 4 || !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(RepoError::BadSnapshotSpec(spec.to_owned()));
    }
    let mut found = Vec::new();
    let shared = crate::share::received_all(home)?
        .into_iter()
        .map(|r| r.manifest);
    for m in home.index.containers()?.into_iter().chain(shared) {
        for s in home.index.snapshots(&m.id)? {
            if s.id.to_hex().starts_with(&prefix) {
                found.push((m.name.clone(), s));
            }
        }
    }
    match found.len() {
        0 => Err(RepoError::NoSnapshot(spec.into())),
        1 => {
            let (name, snap) = found.pop().expect("one");
            Ok((home.containers().open_readable(owner, &name)?, snap))
        }
        _ => Err(RepoError::AmbiguousSnapshot(spec.into())),
    }
}

/// Reads tree blobs through verified pack fetches.
#[derive(Debug)]
pub struct TreeReader<'a> {
    pub home: &'a Home,
    pub container: &'a Container,
    pub fetcher: &'a Fetcher,
}

impl TreeReader<'_> {
    pub fn load(&self, id: &TreeId) -> Result<Tree> {
        let plain = self.blob(&BlobId(id.0), "tree")?;
        Tree::decode(&plain).map_err(|e| RepoError::Lost(format!("tree {}: {e}", id.short())))
    }

    /// A blob's plaintext, fetched through the pack cache and checked
    /// against its id (`what` names it in errors: "tree", "chunk").
    pub fn blob(&self, id: &BlobId, what: &str) -> Result<Vec<u8>> {
        let cid = self.container.manifest.id;
        let loc = match self.fetcher.tree_in_read_pack(id) {
            Some(loc) => loc,
            None => self.home.index.blob(&cid, id)?.ok_or_else(|| {
                RepoError::Lost(format!("{what} {} is not in the index", id.short()))
            })?,
        };
        let cached = self
            .fetcher
            .records
            .lock()
            .expect("not poisoned")
            .get(&loc.pack)
            .cloned();
        let (rec, first_read) = match cached {
            Some(r) => (r, false),
            None => {
                let r = std::sync::Arc::new(self.home.index.pack(&cid, &loc.pack)?.ok_or_else(
                    || RepoError::Lost(format!("pack {} is not in the index", loc.pack.short())),
                )?);
                self.fetcher
                    .records
                    .lock()
                    .expect("not poisoned")
                    .insert(loc.pack, r.clone());
                (r, true)
            }
        };
        let pack = self.fetcher.pack(&rec)?;
        if first_read {
            self.fetcher.learn_trees(&rec);
        }
        Fetcher::open_blob_in(&self.container.keys, &pack, &loc.entry)
    }

    /// The entry at `path` (components below `root`), if there is one.
    pub fn node_at(&self, root: &TreeId, path: &[Vec<u8>]) -> Result<Option<Node>> {
        let mut tree = *root;
        for (i, name) in path.iter().enumerate() {
            let nodes = self.load(&tree)?.nodes;
            let Ok(at) = nodes.binary_search_by(|n| n.name.as_slice().cmp(name)) else {
                return Ok(None);
            };
            let node = nodes.into_iter().nth(at).expect("found");
            if i + 1 == path.len() {
                return Ok(Some(node));
            }
            match node.kind {
                NodeKind::Dir { tree: sub } => tree = sub,
                _ => return Ok(None),
            }
        }
        Ok(None)
    }

    /// A file's contents as a stream, chunk by chunk: memory holds one
    /// chunk and the fetcher's few cached packs, whatever the file's size.
    pub fn file<'r>(&'r self, size: u64, chunks: &'r [ChunkId]) -> FileReader<'r> {
        FileReader {
            reader: self,
            size,
            chunks,
            next: 0,
            buf: Vec::new(),
            at: 0,
            given: 0,
        }
    }
}

/// Reads a snapshot file's chunks in order ([`TreeReader::file`]). Every
/// chunk is verified; chunks that do not add up to the recorded size are
/// an error, so a stream never silently carries a file of the wrong length.
/// Errors come out as `io::Error`s wrapping the [`RepoError`].
#[derive(Debug)]
pub struct FileReader<'r> {
    reader: &'r TreeReader<'r>,
    size: u64,
    chunks: &'r [ChunkId],
    next: usize,
    buf: Vec<u8>,
    at: usize,
    given: u64,
}

impl std::io::Read for FileReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.buf.len() {
            let Some(c) = self.chunks.get(self.next) else {
                if self.given != self.size {
                    return Err(std::io::Error::other(RepoError::Lost(format!(
                        "chunks add up to {} bytes, the file had {}",
                        self.given, self.size
                    ))));
                }
                return Ok(0);
            };
            self.buf = self
                .reader
                .blob(&BlobId(c.0), "chunk")
                .map_err(std::io::Error::other)?;
            self.at = 0;
            self.next += 1;
            self.given += self.buf.len() as u64;
            if self.given > self.size {
                return Err(std::io::Error::other(RepoError::Lost(format!(
                    "chunks add up to more than the file's {} bytes",
                    self.size
                ))));
            }
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Split a snapshot-relative path into safe components.
pub fn path_components(p: &Path) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n.as_bytes().to_vec()),
            Component::RootDir | Component::CurDir => {}
            _ => return Err(RepoError::BadSnapshotPath(p.to_owned())),
        }
    }
    Ok(out)
}

/// The relative path of safe components (see [`path_components`]).
pub(crate) fn rel_path(components: &[Vec<u8>]) -> PathBuf {
    components
        .iter()
        .map(|c| std::ffi::OsStr::from_bytes(c))
        .collect()
}

/// One entry listed by `trove ls`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LsEntry {
    pub path: String,
    pub kind: &'static str,
    pub size: u64,
    pub mode: u32,
    pub mtime_ns: i64,
}

impl LsEntry {
    fn of(path: &Path, n: &Node) -> Self {
        let (kind, size) = match &n.kind {
            NodeKind::File { size, .. } => ("file", *size),
            NodeKind::Dir { .. } => ("dir", 0),
            NodeKind::Symlink { target } => ("symlink", target.len() as u64),
        };
        LsEntry {
            path: path.to_string_lossy().into_owned(),
            kind,
            size,
            mode: n.mode,
            mtime_ns: n.mtime_ns,
        }
    }
}

/// The entries directly in one folder of snapshot `spec` (its root when
/// `folder` is `None`): one tree read, for browsing.
pub fn ls_folder(
    home: &Home,
    owner: &Owner,
    spec: &str,
    folder: Option<&Path>,
) -> Result<Vec<LsEntry>> {
    let path = folder.map(path_components).transpose()?.unwrap_or_default();
    reading(home, owner, spec, |reader, snap| {
        let tree = match path.is_empty() {
            true => snap.root,
            false => match reader.node_at(&snap.root, &path)?.map(|n| n.kind) {
                Some(NodeKind::Dir { tree }) => tree,
                _ => {
                    return Err(RepoError::NotInSnapshot(
                        folder.expect("not empty").to_owned(),
                    ))
                }
            },
        };
        let at = rel_path(&path);
        Ok(reader
            .load(&tree)?
            .nodes
            .iter()
            .map(|n| LsEntry::of(&at.join(std::ffi::OsStr::from_bytes(&n.name)), n))
            .collect())
    })
}

/// List snapshot `spec` (as in [`resolve_snapshot`]) recursively, under
/// `under` if given: what `trove ls` shows.
pub fn ls(home: &Home, owner: &Owner, spec: &str, under: Option<&Path>) -> Result<Vec<LsEntry>> {
    reading(home, owner, spec, |reader, snap| {
        list_tree(reader, &snap.root, under)
    })
}

/// Run `read` over snapshot `spec` (as in [`resolve_snapshot`]), its
/// trees read from the container's peers, once any interrupted commit is
/// finished (as every reading command does first).
pub(crate) fn reading<T>(
    home: &Home,
    owner: &Owner,
    spec: &str,
    read: impl FnOnce(&TreeReader, &SnapshotManifest) -> Result<T>,
) -> Result<T> {
    crate::pending::finish_all(home, owner, &crate::progress::Quiet)?;
    let (container, snap) = resolve_snapshot(home, owner, spec)?;
    let peers = home.peers().open_for(&container)?;
    let fetcher = Fetcher::new(&peers.slots);
    let reader = TreeReader {
        home,
        container: &container,
        fetcher: &fetcher,
    };
    read(&reader, &snap)
}

/// List a tree recursively, under `under` if given.
pub(crate) fn list_tree(
    reader: &TreeReader,
    root: &TreeId,
    under: Option<&Path>,
) -> Result<Vec<LsEntry>> {
    let want = match under {
        Some(p) => path_components(p)?,
        None => Vec::new(),
    };
    let mut out = Vec::new();
    walk(reader, root, PathBuf::new(), &want, &mut out)?;
    match under {
        Some(p) if !want.is_empty() && out.is_empty() => {
            Err(RepoError::NotInSnapshot(p.to_owned()))
        }
        _ => Ok(out),
    }
}

fn walk(
    reader: &TreeReader,
    id: &TreeId,
    at: PathBuf,
    want: &[Vec<u8>],
    out: &mut Vec<LsEntry>,
) -> Result<()> {
    let tree = reader.load(id)?;
    for n in &tree.nodes {
        if let Some(first) = want.first() {
            if &n.name != first {
                continue;
            }
        }
        let path = at.join(std::ffi::OsStr::from_bytes(&n.name));
        let rest = if want.is_empty() { want } else { &want[1..] };
        if rest.is_empty() {
            out.push(LsEntry::of(&path, n));
        }
        if let NodeKind::Dir { tree } = &n.kind {
            walk(reader, tree, path, rest, out)?;
        }
    }
    Ok(())
}

/// A container opened for reading its snapshots over a long time (a mount,
/// the dashboard): it owns the home, the container's keys and one fetcher,
/// whose small pack cache serves consecutive reads.
#[derive(Debug)]
pub struct Browser {
    home: Home,
    container: Container,
    fetcher: Fetcher,
}

impl Browser {
    /// Open container `name` (or the only one), finishing any interrupted
    /// commit first as every reading command does.
    pub fn open(home: Home, owner: &Owner, name: Option<&str>) -> Result<Self> {
        crate::pending::finish_all(&home, owner, &crate::progress::Quiet)?;
        let containers = home.containers();
        let container = containers.open_readable(owner, &containers.name_or_only(name)?)?;
        let peers = home.peers().open_for(&container)?;
        let fetcher = Fetcher::new(&peers.slots);
        Ok(Self {
            home,
            container,
            fetcher,
        })
    }

    pub fn container(&self) -> &Container {
        &self.container
    }

    /// The container's snapshots, oldest first.
    pub fn snapshots(&self) -> Result<Vec<SnapshotManifest>> {
        self.home.index.snapshots(&self.container.manifest.id)
    }

    pub fn reader(&self) -> TreeReader<'_> {
        TreeReader {
            home: &self.home,
            container: &self.container,
            fetcher: &self.fetcher,
        }
    }

    /// Where each chunk of a file starts, and the end: `chunks.len() + 1`
    /// offsets from the plaintext lengths the index records. A chunk the
    /// index lacks, or lengths that do not add up to `size`, are an error.
    pub fn chunk_offsets(&self, size: u64, chunks: &[ChunkId]) -> Result<Vec<u64>> {
        let cid = self.container.manifest.id;
        let mut offsets = Vec::with_capacity(chunks.len() + 1);
        let mut at = 0u64;
        offsets.push(at);
        for c in chunks {
            let loc = self.home.index.blob(&cid, &BlobId(c.0))?.ok_or_else(|| {
                RepoError::Lost(format!("chunk {} is not in the index", c.short()))
            })?;
            at += u64::from(loc.entry.raw_length);
            offsets.push(at);
        }
        if at != size {
            return Err(RepoError::Lost(format!(
                "chunks add up to {at} bytes, the file had {size}"
            )));
        }
        Ok(offsets)
    }
}
