//! Directory trees: one tree blob per directory, listing its entries sorted
//! by name. A file entry lists its chunk ids in order; a directory entry
//! names its subtree. Unchanged directories produce identical tree blobs, so
//! they dedup like data.

use crate::ids::{ChunkId, TreeId};
use serde::{Deserialize, Serialize};

/// Version byte in front of a serialized tree.
pub const TREE_VERSION: u8 = 1;

/// One directory's entries, sorted by name, names unique.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

/// One entry of a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The raw file name (Unix bytes); never empty, `.`, `..`, or containing `/` or NUL.
    pub name: Vec<u8>,
    /// Permission bits (st_mode & 0o7777).
    pub mode: u32,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    pub kind: NodeKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeKind {
    File { size: u64, chunks: Vec<ChunkId> },
    Dir { tree: TreeId },
    Symlink { target: Vec<u8> },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TreeError {
    #[error("tree is malformed: {0}")]
    Malformed(String),
    #[error("tree has an unsafe entry name {0:?}")]
    UnsafeName(String),
}

/// Whether a name is safe to join onto a restore target.
pub fn is_safe_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

impl Tree {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![TREE_VERSION];
        out.extend_from_slice(&postcard::to_stdvec(self).expect("tree serializes"));
        out
    }

    /// Decode and validate: names safe, sorted and unique, so a tampered or
    /// buggy tree can never make a restore write outside its target.
    pub fn decode(bytes: &[u8]) -> Result<Self, TreeError> {
        match bytes.first() {
            Some(&TREE_VERSION) => {}
            _ => return Err(TreeError::Malformed("unknown tree version".into())),
        }
        let tree: Tree =
            postcard::from_bytes(&bytes[1..]).map_err(|e| TreeError::Malformed(e.to_string()))?;
        for (i, n) in tree.nodes.iter().enumerate() {
            if !is_safe_name(&n.name) {
                return Err(TreeError::UnsafeName(
                    String::from_utf8_lossy(&n.name).into(),
                ));
            }
            if i > 0 && tree.nodes[i - 1].name >= n.name {
                return Err(TreeError::Malformed("names not sorted and unique".into()));
            }
        }
        Ok(tree)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> Node {
        Node {
            name: name.as_bytes().to_vec(),
            mode: 0o644,
            mtime_ns: 1_700_000_000_000_000_000,
            kind: NodeKind::File {
                size: 3,
                chunks: vec![ChunkId([1; 32])],
            },
        }
    }

    #[test]
    fn round_trip_and_validation() {
        let t = Tree {
            nodes: vec![node("a"), node("b")],
        };
        assert_eq!(Tree::decode(&t.encode()).unwrap(), t);
        for bad in [
            vec![node("b"), node("a")],
            vec![node("a"), node("a")],
            vec![node("..")],
            vec![node("x/y")],
        ] {
            assert!(Tree::decode(&Tree { nodes: bad }.encode()).is_err());
        }
        assert!(Tree::decode(&[9, 0]).is_err());
        assert!(Tree::decode(&[]).is_err());
    }
}
