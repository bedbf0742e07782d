//! Errors of the repository layer. Every variant names the object, the cause
//! and, where there is one, the next step, because these messages reach the
//! user unchanged.

use std::path::PathBuf;
use trove_peer::PeerError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepoError {
    /// No `trove init` has been run in this home.
    #[error("no Trove identity in {0} — run `trove init` first (or set TROVE_HOME)")]
    NoIdentity(PathBuf),
    /// `trove init` on a home that already has an identity.
    #[error("{0} already holds a Trove identity; refusing to overwrite it")]
    IdentityExists(PathBuf),
    /// The passphrase does not unlock the keyfile.
    #[error("wrong passphrase for {0}")]
    WrongPassphrase(PathBuf),
    /// The keyfile is damaged or of an unknown version.
    #[error("keyfile {path} is unreadable: {reason}")]
    Keyfile { path: PathBuf, reason: String },
    /// Another process holds the index.
    #[error("another trove process is using {0}; wait for it to finish")]
    Busy(PathBuf),
    #[error("index database: {0}")]
    Db(String),
    #[error("no container named `{0}` (see `trove container list`)")]
    NoContainer(String),
    #[error("a container named `{0}` already exists")]
    ContainerExists(String),
    #[error("no peer named `{0}` (see `trove peer list`)")]
    NoPeer(String),
    #[error("a peer named `{0}` already exists")]
    PeerExists(String),
    #[error("{0}")]
    BadLocation(String),
    #[error("no snapshot matches `{0}` (see `trove snapshots`)")]
    NoSnapshot(String),
    #[error("`{0}` matches several snapshots; give more digits")]
    AmbiguousSnapshot(String),
    #[error("{0}")]
    Usage(String),
    /// Fewer peers can take data than a pack needs to be stored at all.
    #[error("cannot store pack: {reason}")]
    Placement { reason: String },
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// A manifest failed its signature or seal.
    #[error("{what} from peer `{peer}` is invalid and was refused: {reason}")]
    Tampered {
        what: String,
        peer: String,
        reason: String,
    },
    /// A blob could not be read back from any combination of fragments.
    #[error("{0}")]
    Lost(String),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("format: {0}")]
    Format(String),
}

impl RepoError {
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

macro_rules! from_db {
    ($($t:ty),*) => {$(
        impl From<$t> for RepoError {
            fn from(e: $t) -> Self {
                RepoError::Db(e.to_string())
            }
        }
    )*};
}
from_db!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

pub type Result<T, E = RepoError> = std::result::Result<T, E>;
