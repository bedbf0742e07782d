//! `dump`: a snapshot (or a path in it) as a tar stream. Entries are
//! written as the trees are walked and each file's chunks as they are
//! fetched, so output starts at once and memory stays flat whatever the
//! size: one tree per level of depth, one chunk, and the fetcher's few
//! cached packs.

use crate::error::{RepoError, Result};
use crate::home::{Home, Owner};
use crate::snapshot::{path_components, rel_path, TreeReader};
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use tar::{EntryType, Header};
use trove_core::tree::{Node, NodeKind};
use trove_core::TreeId;

/// What a dump wrote.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DumpReport {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
}

/// Write snapshot `spec` (as in [`resolve_snapshot`](crate::resolve_snapshot)), or only `under` in
/// it, to `out` as a tar archive. Paths in the archive are
/// snapshot-relative. A chunk that cannot be read ends the dump with an
/// error naming the file: a tar stream cannot skip a file it has begun.
pub fn dump(
    home: &Home,
    owner: &Owner,
    spec: &str,
    under: Option<&Path>,
    out: impl Write,
) -> Result<DumpReport> {
    crate::snapshot::reading(home, owner, spec, |reader, snap| {
        let mut dump = Dump {
            reader,
            tar: tar::Builder::new(out),
            report: DumpReport::default(),
        };
        match under.map(path_components).transpose()? {
            Some(path) if !path.is_empty() => {
                let at = under.expect("some");
                let node = reader
                    .node_at(&snap.root, &path)
                    .map_err(|e| stopped_at(at, e))?
                    .ok_or_else(|| RepoError::NotInSnapshot(at.to_owned()))?;
                dump.node(&rel_path(&path), &node)?;
            }
            _ => dump.tree(&snap.root, &PathBuf::new())?,
        }
        dump.tar.finish().map_err(RepoError::Output)?;
        Ok(dump.report)
    })
}

struct Dump<'r, W: Write> {
    reader: &'r TreeReader<'r>,
    tar: tar::Builder<W>,
    report: DumpReport,
}

impl<W: Write> Dump<'_, W> {
    fn tree(&mut self, id: &TreeId, at: &Path) -> Result<()> {
        let tree = self
            .reader
            .load(id)
            .map_err(|e| stopped_at(&at.join(""), e))?;
        for n in tree.nodes {
            self.node(&at.join(OsStr::from_bytes(&n.name)), &n)?;
        }
        Ok(())
    }

    fn node(&mut self, rel: &Path, n: &Node) -> Result<()> {
        let mut h = Header::new_gnu();
        h.set_mode(n.mode);
        // The header keeps whole seconds (before 1970: the epoch); a pax
        // record carries the nanoseconds, which GNU tar and bsdtar restore.
        let (secs, nanos) = (
            n.mtime_ns.div_euclid(1_000_000_000),
            n.mtime_ns.rem_euclid(1_000_000_000),
        );
        h.set_mtime(u64::try_from(secs).unwrap_or(0));
        if secs >= 0 && nanos != 0 {
            let exact = format!("{secs}.{nanos:09}");
            self.tar
                .append_pax_extensions([("mtime", exact.as_bytes())])
                .map_err(RepoError::Output)?;
        }
        h.set_uid(0);
        h.set_gid(0);
        match &n.kind {
            NodeKind::Dir { tree } => {
                h.set_entry_type(EntryType::Directory);
                h.set_size(0);
                self.tar
                    .append_data(&mut h, rel, std::io::empty())
                    .map_err(RepoError::Output)?;
                self.report.dirs += 1;
                self.tree(tree, rel)
            }
            NodeKind::Symlink { target } => {
                h.set_entry_type(EntryType::Symlink);
                h.set_size(0);
                self.tar
                    .append_link(&mut h, rel, OsStr::from_bytes(target))
                    .map_err(RepoError::Output)?;
                self.report.symlinks += 1;
                Ok(())
            }
            NodeKind::File { size, chunks } => {
                h.set_entry_type(EntryType::Regular);
                h.set_size(*size);
                let data = self.reader.file(*size, chunks);
                self.tar
                    .append_data(&mut h, rel, data)
                    .map_err(|e| file_error(rel, e))?;
                self.report.files += 1;
                self.report.bytes += size;
                Ok(())
            }
        }
    }
}

/// A failed file: the reading side's error names the file; anything else
/// is the output's.
fn file_error(rel: &Path, e: std::io::Error) -> RepoError {
    if e.get_ref().is_some_and(|inner| inner.is::<RepoError>()) {
        let inner = e.into_inner().expect("checked").downcast::<RepoError>();
        return stopped_at(rel, *inner.expect("checked"));
    }
    RepoError::Output(e)
}

/// What could not be read, where: a tar stream cannot skip an entry it has
/// begun, so the dump ends there.
fn stopped_at(rel: &Path, e: RepoError) -> RepoError {
    let at = match rel.as_os_str().is_empty() {
        true => "the snapshot's root".into(),
        false => rel.display().to_string(),
    };
    RepoError::Lost(format!(
        "{at}: {e}; the dump stopped there (the archive is incomplete)"
    ))
}
