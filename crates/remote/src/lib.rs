//! Remote peers: an S3-compatible bucket or a WebDAV server as one more
//! peer, beside folders and nodes. Trove does not write S3 or WebDAV
//! clients: Apache OpenDAL does ([`opendal`], pinned to one minor version).
//!
//! - [`RemoteLocation`]: `s3://BUCKET/PREFIX?endpoint=URL&region=R` and
//!   `webdav://HOST[:PORT]/PATH` (`webdav+http://` for plain HTTP), the
//!   form a roster records. Never a secret.
//! - [`Credentials`]: what signs the requests, taken from
//!   `TROVE_HOME/credentials.toml` (0600) or the environment, never written
//!   anywhere else (docs/design.md §6b.2).
//! - [`RemotePeer`]: the [`trove_peer::Peer`] over a bucket, with the
//!   folder peer's layout ([`trove_peer::layout`]) and promises: fragments
//!   checked against their ids before upload, metadata admitted by
//!   [`mod@trove_peer::admit`], delayed deletion into `trash/`.

mod credentials;
mod location;
mod peer;
mod runtime;
#[cfg(feature = "testing")]
pub mod testing;

pub use credentials::{Credentials, CredentialsError, CREDENTIALS_FILE};
pub use location::{RemoteLocation, RemoteLocationError};
pub use peer::{RemotePeer, MARKER_FILE, REMOTE_FORMAT_VERSION};
