//! What changed under a container's sources since its last backup began,
//! as a file watcher saw it: the paths it named. A backup given these
//! walks only the folders they touch and keeps the last snapshot's tree of
//! every other folder (docs/design.md §Backup, "guided walks").
//!
//! One path `p` stands for: `p` itself and everything under it changed
//! (a folder created, moved in or deleted is taken whole), and its
//! folder's listing changed. So a folder is walked whole when it or one of
//! its ancestors was named, listed (its own entries only) when something
//! below it was named, and otherwise left untouched.

use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Paths a watcher named since a backup began.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// The sources the watcher watched: a walk of other sources is not
    /// guided (a source added since has no events to say it changed).
    sources: Vec<PathBuf>,
    /// Path bytes, ordered so that everything under a folder is one range.
    paths: BTreeSet<Vec<u8>>,
}

/// What a guided walk does with one folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FolderChange {
    /// It, or a folder above it, was named: walked without guidance.
    Whole,
    /// Something below it was named: its own entries are listed again,
    /// and each sub-folder is asked in turn.
    Listed,
    /// Nothing in it changed: its last tree stands.
    Untouched,
}

impl Changes {
    /// No change yet under `sources`, which a watcher watches.
    pub fn watching(sources: Vec<PathBuf>) -> Self {
        Self {
            sources,
            paths: BTreeSet::new(),
        }
    }

    /// Whether these are the changes of exactly `sources`.
    pub(crate) fn covers(&self, sources: &[PathBuf]) -> bool {
        self.sources == sources
    }

    /// `path` (a file or folder, there or gone) changed.
    pub fn add(&mut self, path: &Path) {
        let bytes = path.as_os_str().as_bytes();
        // `a/b/` names the same folder as `a/b`.
        let bytes = match bytes {
            [rest @ .., b'/'] if !rest.is_empty() => rest,
            b => b,
        };
        self.paths.insert(bytes.to_vec());
    }

    /// Take in the changes of `other` (a backup that failed gives back
    /// what it was to cover).
    pub fn merge(&mut self, other: Changes) {
        self.paths.extend(other.paths);
    }

    /// How many distinct paths were named.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// What a guided walk does with the folder at `dir`.
    pub(crate) fn folder(&self, dir: &Path) -> FolderChange {
        let dir = dir.as_os_str().as_bytes();
        // Named itself, or below a named path.
        let mut at = dir;
        loop {
            if self.paths.contains(at) {
                return FolderChange::Whole;
            }
            match at.iter().rposition(|&b| b == b'/') {
                Some(0) if at.len() > 1 => at = b"/",
                Some(0) | None => break,
                Some(i) => at = &at[..i],
            }
        }
        // Something named under it: `dir/` up to (not including) `dir0`,
        // `0` being the byte after `/`.
        let mut from = dir.to_vec();
        if from.last() != Some(&b'/') {
            from.push(b'/');
        }
        let mut to = from.clone();
        *to.last_mut().expect("not empty") = b'/' + 1;
        if self.paths.range(from..to).next().is_some() {
            FolderChange::Listed
        } else {
            FolderChange::Untouched
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(paths: &[&str]) -> Changes {
        let mut c = Changes::default();
        for p in paths {
            c.add(Path::new(p));
        }
        c
    }

    #[test]
    fn a_named_path_takes_its_folder_listed_and_itself_whole() {
        let c = changes(&["/src/a/b/file.txt", "/src/new/"]);
        let at = |p: &str| c.folder(Path::new(p));
        // The folders on the way down are listed.
        assert_eq!(at("/src"), FolderChange::Listed);
        assert_eq!(at("/src/a"), FolderChange::Listed);
        assert_eq!(at("/src/a/b"), FolderChange::Listed);
        // A named folder, and everything under it, is walked whole.
        assert_eq!(at("/src/new"), FolderChange::Whole);
        assert_eq!(at("/src/new/deep/er"), FolderChange::Whole);
        // A named file, taken for a folder (it may have become one).
        assert_eq!(at("/src/a/b/file.txt"), FolderChange::Whole);
        // Neighbours stay untouched, names that only share a prefix too.
        assert_eq!(at("/src/a/c"), FolderChange::Untouched);
        assert_eq!(at("/src/a/b2"), FolderChange::Untouched);
        assert_eq!(at("/src/ne"), FolderChange::Untouched);
        assert_eq!(at("/src/new0"), FolderChange::Untouched);
        assert_eq!(at("/other"), FolderChange::Untouched);
    }

    #[test]
    fn merged_changes_cover_both_and_the_root_is_handled() {
        let mut c = changes(&["/x/y"]);
        c.merge(changes(&["/z"]));
        assert_eq!(c.len(), 2);
        assert_eq!(c.folder(Path::new("/")), FolderChange::Listed);
        assert_eq!(c.folder(Path::new("/z/q")), FolderChange::Whole);
        assert_eq!(c.folder(Path::new("/x")), FolderChange::Listed);
        assert!(Changes::default().is_empty());
        assert_eq!(
            changes(&["/"]).folder(Path::new("/any/thing")),
            FolderChange::Whole
        );
    }
}
