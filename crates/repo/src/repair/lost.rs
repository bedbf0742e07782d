//! Naming what lost packs take with them: every file of every snapshot
//! that needs a blob of a lost pack, and every folder whose tree is in one
//! (nothing below it can be named).

use super::LostFile;
use crate::error::Result;
use crate::fetch::Fetcher;
use crate::home::{Container, Home};
use crate::snapshot::TreeReader;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use trove_core::tree::NodeKind;
use trove_core::{BlobId, PackId, TreeId};

/// A path lost below a tree: a file, or a folder that cannot be listed.
#[derive(Debug, Clone)]
enum Gone {
    File(PathBuf),
    Folder(PathBuf),
}

/// The files and unknown folders of every snapshot of `c` that need one
/// of the `lost` packs, each with the snapshots that hold it.
pub(super) fn name_lost(
    home: &Home,
    c: &Container,
    fetcher: &Fetcher,
    lost: &HashSet<PackId>,
) -> Result<(Vec<LostFile>, Vec<LostFile>)> {
    let cid = c.manifest.id;
    // The blobs whose only copy the index knows of is in a lost pack.
    let mut gone = HashSet::new();
    for pack in lost {
        let Some(rec) = home.index.pack(&cid, pack)? else {
            continue;
        };
        for e in &rec.blobs {
            if home
                .index
                .blob(&cid, &e.id)?
                .is_some_and(|l| l.pack == *pack)
            {
                gone.insert(e.id);
            }
        }
    }
    let mut walk = Walk {
        reader: TreeReader {
            home,
            container: c,
            fetcher,
        },
        gone: &gone,
        memo: HashMap::new(),
    };
    let mut files: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut folders: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for snap in home.index.snapshots(&cid)? {
        for g in walk.tree(snap.root).iter() {
            let (map, path) = match g {
                Gone::File(p) => (&mut files, p.to_string_lossy().into_owned()),
                Gone::Folder(p) => (&mut folders, folder_name(p)),
            };
            map.entry(path).or_default().insert(snap.id.short());
        }
    }
    let rows = |m: BTreeMap<String, BTreeSet<String>>| {
        m.into_iter()
            .map(|(path, snaps)| LostFile {
                path,
                snapshots: snaps.into_iter().collect(),
            })
            .collect()
    };
    Ok((rows(files), rows(folders)))
}

/// `a/b/`; the snapshot root is `/`.
fn folder_name(p: &Path) -> String {
    format!("{}/", p.to_string_lossy().trim_end_matches('/'))
}

struct Walk<'a> {
    reader: TreeReader<'a>,
    gone: &'a HashSet<BlobId>,
    /// What each tree loses, relative to it: a tree shared by many
    /// snapshots is read once.
    memo: HashMap<TreeId, Rc<Vec<Gone>>>,
}

impl Walk<'_> {
    fn tree(&mut self, id: TreeId) -> Rc<Vec<Gone>> {
        if let Some(m) = self.memo.get(&id) {
            return m.clone();
        }
        let here = || vec![Gone::Folder(PathBuf::new())];
        let lost = if self.gone.contains(&BlobId(id.0)) {
            here()
        } else {
            match self.reader.load(&id) {
                // Not in a lost pack, but unreadable now all the same.
                Err(_) => here(),
                Ok(tree) => {
                    let mut out = Vec::new();
                    for node in tree.nodes {
                        let name = Path::new(OsStr::from_bytes(&node.name));
                        match node.kind {
                            NodeKind::Dir { tree } => {
                                for g in self.tree(tree).iter() {
                                    out.push(match g {
                                        Gone::File(p) => Gone::File(name.join(p)),
                                        Gone::Folder(p) => Gone::Folder(name.join(p)),
                                    });
                                }
                            }
                            NodeKind::File { chunks, .. } => {
                                if chunks.iter().any(|c| self.gone.contains(&BlobId(c.0))) {
                                    out.push(Gone::File(name.to_owned()));
                                }
                            }
                            NodeKind::Symlink { .. } => {}
                        }
                    }
                    out
                }
            }
        };
        let lost = Rc::new(lost);
        self.memo.insert(id, lost.clone());
        lost
    }
}
