//! Finding snapshots and reading their trees.

use crate::error::{RepoError, Result};
use crate::fetch::Fetcher;
use crate::home::{Container, Home, Owner};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use trove_core::manifest::SnapshotManifest;
use trove_core::tree::{NodeKind, Tree};
use trove_core::{BlobId, TreeId};

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
        let c = home.containers().open(owner, name)?;
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
    for m in home.index.containers()? {
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
            Ok((home.containers().open(owner, &name)?, snap))
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
        let cid = self.container.manifest.id;
        let loc =
            self.home.index.blob(&cid, &BlobId(id.0))?.ok_or_else(|| {
                RepoError::Lost(format!("tree {} is not in the index", id.short()))
            })?;
        let cached = self
            .fetcher
            .records
            .lock()
            .expect("not poisoned")
            .get(&loc.pack)
            .cloned();
        let rec = match cached {
            Some(r) => r,
            None => {
                let r = std::sync::Arc::new(self.home.index.pack(&cid, &loc.pack)?.ok_or_else(
                    || RepoError::Lost(format!("pack {} is not in the index", loc.pack.short())),
                )?);
                self.fetcher
                    .records
                    .lock()
                    .expect("not poisoned")
                    .insert(loc.pack, r.clone());
                r
            }
        };
        let pack = self.fetcher.pack(&rec)?;
        let plain = Fetcher::open_blob_in(&self.container.keys, &pack, &loc)?;
        Tree::decode(&plain).map_err(|e| RepoError::Lost(format!("tree {}: {e}", id.short())))
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

/// One entry listed by `trove ls`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LsEntry {
    pub path: String,
    pub kind: &'static str,
    pub size: u64,
    pub mode: u32,
    pub mtime_ns: i64,
}

/// List snapshot `spec` (as in [`resolve_snapshot`]) recursively, under
/// `under` if given: what `trove ls` shows.
pub fn ls(home: &Home, owner: &Owner, spec: &str, under: Option<&Path>) -> Result<Vec<LsEntry>> {
    crate::pending::finish_all(home, owner, &crate::progress::Quiet)?;
    let (container, snap) = resolve_snapshot(home, owner, spec)?;
    let peers = home.peers().open_all()?;
    let fetcher = Fetcher::new(&peers.slots);
    let reader = TreeReader {
        home,
        container: &container,
        fetcher: &fetcher,
    };
    list_tree(&reader, &snap.root, under)
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
            let (kind, size) = match &n.kind {
                NodeKind::File { size, .. } => ("file", *size),
                NodeKind::Dir { .. } => ("dir", 0),
                NodeKind::Symlink { target } => ("symlink", target.len() as u64),
            };
            out.push(LsEntry {
                path: path.to_string_lossy().into_owned(),
                kind,
                size,
                mode: n.mode,
                mtime_ns: n.mtime_ns,
            });
        }
        if let NodeKind::Dir { tree } = &n.kind {
            walk(reader, tree, path, rest, out)?;
        }
    }
    Ok(())
}
