//! Stage 1 of a restore: walk the snapshot's trees, filtered by `--include`,
//! into a plan of folders, files and symlinks. Paths are relative to the
//! target and made of names that `Tree::decode` has checked (non-empty, no
//! `/`, not `.` or `..`), so each component is one entry below the target.

use crate::error::{RepoError, Result};
use crate::snapshot::{path_components, rel_path, TreeReader};
use std::ffi::OsStr;
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use trove_core::tree::NodeKind;
use trove_core::{ChunkId, TreeId};

/// A folder to restore.
#[derive(Debug)]
pub(super) struct DirPlan {
    pub rel: PathBuf,
    /// Its folder in [`Plan::dirs`]; `None` directly under the target.
    pub parent: Option<usize>,
    pub mode: u32,
    pub mtime_ns: i64,
}

/// A file to restore. Its path is its folder's and its name
/// ([`Plan::file_rel`]): a path per file was 11 MB of a 200,000-file
/// restore's peak. Held for every file through the whole restore, in 48
/// bytes (72 with ranges and an optional folder of `usize`s).
#[derive(Debug)]
pub(super) struct FilePlan {
    /// Its name, in [`Plan::names`]: from here, `name_len` bytes.
    name_at: usize,
    name_len: u32,
    /// Its folder in [`Plan::dirs`], or [`NO_FOLDER`] directly under the
    /// target.
    folder: u32,
    pub mode: u32,
    pub mtime_ns: i64,
    pub size: u64,
    /// Its chunks in [`Plan::chunks`]: from here, `chunks_len` of them.
    chunks_at: usize,
    chunks_len: u32,
}

const _: () = assert!(std::mem::size_of::<FilePlan>() <= 48);

/// [`FilePlan::folder`] of a file directly under the target.
const NO_FOLDER: u32 = u32::MAX;

impl FilePlan {
    /// Its folder in [`Plan::dirs`]; `None` directly under the target.
    pub fn parent(&self) -> Option<usize> {
        (self.folder != NO_FOLDER).then_some(self.folder as usize)
    }

    /// Its chunks' place in [`Plan::chunks`].
    pub fn chunks(&self) -> Range<usize> {
        self.chunks_at..self.chunks_at + self.chunks_len as usize
    }
}

/// A symlink to restore (its times and mode are not).
#[derive(Debug)]
pub(super) struct SymlinkPlan {
    pub rel: PathBuf,
    pub parent: Option<usize>,
    /// The link's raw target bytes, never interpreted nor followed.
    pub to: Vec<u8>,
}

/// A folder whose tree could not be read: the folder is restored, but
/// nothing in it can even be named.
#[derive(Debug)]
pub(super) struct UnreadableDir {
    pub rel: PathBuf,
    pub why: String,
}

/// Everything a restore will make. `dirs` is in walk order: a folder comes
/// before everything in it, so creating in this order and finishing in the
/// reverse order visits parents first and last respectively.
#[derive(Debug, Default)]
pub(super) struct Plan {
    pub dirs: Vec<DirPlan>,
    pub files: Vec<FilePlan>,
    pub symlinks: Vec<SymlinkPlan>,
    pub unreadable: Vec<UnreadableDir>,
    /// The names of every file, end to end.
    names: Vec<u8>,
    /// The chunks of every file, file after file: one list, which the
    /// restore frees once it has grouped the writes, where a list per file
    /// cost 48 bytes more a file and stayed until the end.
    pub chunks: Vec<ChunkId>,
}

/// Walk the snapshot from `root`. Every `--include` path (relative, without
/// `..`) must name something in the snapshot.
pub(super) fn plan(reader: &TreeReader, root: &TreeId, include: &[PathBuf]) -> Result<Plan> {
    let wanted: Vec<Vec<Vec<u8>>> = include
        .iter()
        .map(|p| path_components(p))
        .collect::<Result<_>>()?;
    let mut walk = Walk {
        reader,
        include: &wanted,
        rel: Vec::new(),
        plan: Plan::default(),
    };
    walk.tree(root, None);
    let mut plan = walk.plan;
    // Grown by doubling; held for the whole restore.
    plan.files.shrink_to_fit();
    plan.dirs.shrink_to_fit();
    plan.chunks.shrink_to_fit();
    plan.names.shrink_to_fit();
    for (inc, path) in wanted.iter().zip(include) {
        let at = rel_path(inc);
        let found = (0..plan.files.len()).any(|i| plan.file_rel(i).starts_with(&at))
            || plan.dirs.iter().any(|d| d.rel.starts_with(&at))
            || plan.symlinks.iter().any(|l| l.rel.starts_with(&at))
            || plan.unreadable.iter().any(|u| u.rel.starts_with(&at));
        if !found {
            return Err(RepoError::IncludeMatchesNothing(path.clone()));
        }
    }
    Ok(plan)
}

/// Whether a node at `path` is restored itself, and whether the walk goes
/// into it (it is, or leads to, an included path).
fn included(path: &[Vec<u8>], include: &[Vec<Vec<u8>>]) -> (bool, bool) {
    if include.is_empty() {
        return (true, true);
    }
    let mut take = false;
    let mut descend = false;
    for inc in include {
        if path.len() >= inc.len() && path[..inc.len()] == inc[..] {
            take = true;
            descend = true;
        } else if inc.len() > path.len() && inc[..path.len()] == path[..] {
            descend = true;
        }
    }
    (take, descend)
}

struct Walk<'a, 'r> {
    reader: &'a TreeReader<'r>,
    include: &'a [Vec<Vec<u8>>],
    /// Components of the folder being walked.
    rel: Vec<Vec<u8>>,
    plan: Plan,
}

impl Walk<'_, '_> {
    fn tree(&mut self, id: &TreeId, parent: Option<usize>) {
        let tree = match self.reader.load(id) {
            Ok(t) => t,
            Err(e) => {
                self.plan.unreadable.push(UnreadableDir {
                    rel: rel_path(&self.rel),
                    why: e.to_string(),
                });
                return;
            }
        };
        for n in tree.nodes {
            self.rel.push(n.name);
            let (take, descend) = included(&self.rel, self.include);
            match n.kind {
                NodeKind::Dir { tree } if descend => {
                    self.plan.dirs.push(DirPlan {
                        rel: rel_path(&self.rel),
                        parent,
                        mode: n.mode,
                        mtime_ns: n.mtime_ns,
                    });
                    let me = self.plan.dirs.len() - 1;
                    self.tree(&tree, Some(me));
                }
                NodeKind::File { size, chunks } if take => {
                    let name = self.rel.last().expect("pushed above");
                    let (Ok(name_len), Ok(chunks_len), Ok(folder)) = (
                        u32::try_from(name.len()),
                        u32::try_from(chunks.len()),
                        parent.map_or(Ok(NO_FOLDER), u32::try_from),
                    ) else {
                        self.plan.unreadable.push(UnreadableDir {
                            rel: rel_path(&self.rel),
                            why: "more names, chunks or folders than a restore can hold".into(),
                        });
                        self.rel.pop();
                        continue;
                    };
                    self.plan.files.push(FilePlan {
                        name_at: self.plan.names.len(),
                        name_len,
                        folder,
                        mode: n.mode,
                        mtime_ns: n.mtime_ns,
                        size,
                        chunks_at: self.plan.chunks.len(),
                        chunks_len,
                    });
                    self.plan.names.extend_from_slice(name);
                    self.plan.chunks.extend(chunks);
                }
                NodeKind::Symlink { target } if take => self.plan.symlinks.push(SymlinkPlan {
                    rel: rel_path(&self.rel),
                    parent,
                    to: target,
                }),
                _ => {}
            }
            self.rel.pop();
        }
    }
}

impl Plan {
    /// The path of file `i` below the target.
    pub fn file_rel(&self, i: usize) -> PathBuf {
        let f = &self.files[i];
        let name = OsStr::from_bytes(&self.names[f.name_at..f.name_at + f.name_len as usize]);
        match f.parent() {
            Some(dir) => self.dirs[dir].rel.join(name),
            None => PathBuf::from(name),
        }
    }
}

/// `rel` under `target`, as shown to the user (`target` itself when `rel`
/// is empty).
pub(super) fn shown(target: &Path, rel: &Path) -> String {
    if rel.as_os_str().is_empty() {
        target.display().to_string()
    } else {
        target.join(rel).display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(p: &str) -> Vec<Vec<u8>> {
        p.split('/').map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn included_takes_the_named_subtree_and_descends_only_towards_it() {
        let inc = [c("src/sub")];
        assert_eq!(included(&c("src"), &inc), (false, true));
        assert_eq!(included(&c("src/sub"), &inc), (true, true));
        assert_eq!(included(&c("src/sub/x"), &inc), (true, true));
        assert_eq!(included(&c("src/other"), &inc), (false, false));
        assert_eq!(included(&c("src/subway"), &inc), (false, false));
        assert_eq!(included(&c("anything"), &[]), (true, true));
    }

    #[test]
    fn shown_is_the_target_itself_for_the_empty_path() {
        let t = Path::new("/restore/here");
        assert_eq!(shown(t, Path::new("")), "/restore/here");
        assert_eq!(shown(t, Path::new("src/a")), "/restore/here/src/a");
    }
}
