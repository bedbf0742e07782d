//! Trove's container state and operations: the keyfile and local index
//! under `TROVE_HOME`, and backup, restore and check over a set of peers.
//!
//! Error policy: every public function returns [`RepoError`], whose messages
//! name the object, the cause and the next step; the CLI prints them as is.

mod backup;
mod check;
mod error;
mod fetch;
mod home;
mod index;
mod keyfile;
mod meta;
mod progress;
mod restore;
mod scan;
mod snapshot;
mod sync;
mod upload;

pub(crate) use backup::now_ns;
pub use backup::{backup, BackupOptions, BackupReport};
pub use check::{check, CheckOptions, CheckReport};
pub use error::{RepoError, Result};
pub use fetch::{Fetcher, FragmentProblem};
pub use home::{Container, Home, Owner, PeerSlot};
pub use index::FileEntry;
pub use keyfile::KdfParams;
pub use progress::{Event, Progress, Quiet};
pub use restore::{restore, RestoreOptions, RestoreReport};
pub use snapshot::{list_tree, resolve_snapshot, LsEntry, TreeReader};
pub use sync::{sync, SyncReport};
