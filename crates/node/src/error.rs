//! Errors of node operation and of the node admin commands.

use std::path::PathBuf;

/// What went wrong running or administering a node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// Bad input from the user: the message says what to type instead.
    #[error("{0}")]
    Usage(String),
    /// The network endpoint could not be opened or used.
    #[error("{0}")]
    Network(String),
    /// A file of the node's data folder could not be read or written.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The node's data folder holds something this version cannot read.
    #[error("node data {}: {what}", path.display())]
    Corrupt { path: PathBuf, what: String },
    /// Storage of one owner failed.
    #[error(transparent)]
    Peer(#[from] trove_peer::PeerError),
}

impl NodeError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
