//! The mount's inode table: numbers handed out as the kernel meets entries
//! (a lookup or a listing), stable for the mount's life, so the same path
//! always has the same inode.

use std::collections::HashMap;
use std::sync::Arc;
use trove_core::{ChunkId, TreeId};

pub(crate) const ROOT: u64 = 1;
pub(crate) const SNAPSHOTS: u64 = 2;

/// What an inode is.
#[derive(Debug)]
pub(crate) enum Kind {
    /// The mount's root, holding `snapshots`.
    Root,
    /// `snapshots/`: one folder per snapshot, and `latest`.
    Snapshots,
    /// A folder of a snapshot (a snapshot's own folder is its root tree).
    Dir(TreeId),
    File {
        size: u64,
        chunks: Vec<ChunkId>,
    },
    /// A symlink: a snapshot's, or `latest` (its target, raw bytes).
    Symlink(Vec<u8>),
}

#[derive(Debug)]
pub(crate) struct Inode {
    pub kind: Kind,
    /// Permission bits.
    pub mode: u32,
    pub mtime_ns: i64,
    /// Its path below the mountpoint, for messages.
    pub path: String,
}

/// A folder's entries once listed: name and inode, in name order.
pub(crate) type Listing = Arc<Vec<(Vec<u8>, u64)>>;

#[derive(Debug, Default)]
pub(crate) struct Inodes {
    /// Inode `n` is `nodes[n - 1]`.
    nodes: Vec<Arc<Inode>>,
    listings: HashMap<u64, Listing>,
}

impl Inodes {
    /// A table holding the root and `snapshots/`.
    pub fn new(mtime_ns: i64) -> Self {
        let mut t = Self::default();
        for (kind, path) in [(Kind::Root, ""), (Kind::Snapshots, "snapshots")] {
            t.nodes.push(Arc::new(Inode {
                kind,
                mode: 0o555,
                mtime_ns,
                path: path.into(),
            }));
        }
        t.listings
            .insert(ROOT, Arc::new(vec![(b"snapshots".to_vec(), SNAPSHOTS)]));
        t
    }

    pub fn get(&self, ino: u64) -> Option<Arc<Inode>> {
        let i = usize::try_from(ino.checked_sub(1)?).ok()?;
        self.nodes.get(i).cloned()
    }

    pub fn listing(&self, dir: u64) -> Option<Listing> {
        self.listings.get(&dir).cloned()
    }

    /// Record a folder's entries, giving each an inode. A folder listed by
    /// two threads at once keeps the first listing.
    pub fn list(&mut self, dir: u64, entries: Vec<(Vec<u8>, Inode)>) -> Listing {
        if let Some(l) = self.listings.get(&dir) {
            return l.clone();
        }
        let listing: Vec<(Vec<u8>, u64)> = entries
            .into_iter()
            .map(|(name, node)| {
                self.nodes.push(Arc::new(node));
                (name, self.nodes.len() as u64)
            })
            .collect();
        let listing = Arc::new(listing);
        self.listings.insert(dir, listing.clone());
        listing
    }
}
