//! Errors of the repository layer.
//!
//! Policy: every public function returns [`RepoError`]; each variant names
//! the object, the cause and, where there is one, the next step, because the
//! CLI prints these messages unchanged. Callers decide on the variant, never
//! on the text: [`RepoError::is_usage`] says which ones are the user's input
//! (the CLI's exit code 2).

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
    /// A master secret rotation was started in this home and not finished.
    #[error("a master secret rotation was started in {0} and is not finished; run `trove recovery rotate` to finish it (nothing is lost meanwhile)")]
    RotationUnderway(PathBuf),
    /// A rotation could not reach or update every peer; it can be resumed.
    #[error("the master secret rotation is not finished: {}; nothing is lost: fix or remove (`trove peer remove NAME`) those peers and run `trove recovery rotate` again", .failed.join("; "))]
    RotationIncomplete { failed: Vec<String> },
    /// The passphrase does not unlock the keyfile.
    #[error("wrong passphrase for {0}")]
    WrongPassphrase(PathBuf),
    /// The keyfile is damaged or of an unknown version.
    #[error("keyfile {path} is unreadable: {reason}")]
    Keyfile { path: PathBuf, reason: String },
    /// Another process holds the index: `holder` names it when its `lock`
    /// label is there (none while it is starting).
    #[error(
        "another trove process is using {}{}; wait for it to finish{}",
        .home.display(),
        .holder.as_ref().map(|h| format!(": {h}")).unwrap_or_default(),
        .waited.map(|w| format!(" (waited {}s)", w.as_secs())).unwrap_or_default()
    )]
    Busy {
        home: PathBuf,
        holder: Option<crate::lock::LockHolder>,
        /// How long this command waited for it, if it did.
        waited: Option<std::time::Duration>,
    },
    /// A prune or forget in a process that also runs backups waited for
    /// them (the in-process lease, see `lock.rs`) longer than it may.
    #[error("{backups} backup(s) in this process still running after {}s; try again later", .waited.as_secs())]
    LeaseTimeout {
        waited: std::time::Duration,
        backups: usize,
    },
    /// `TROVE_HOME/config.toml` does not parse or holds a bad value.
    #[error("{}: {reason}; fix it, or remove it to use the defaults (`trove config show` prints them)", .path.display())]
    Config { path: PathBuf, reason: String },
    /// `forget` named a snapshot the container does not have.
    #[error("container `{container}` has no snapshot `{spec}` (see `trove snapshots {container}`); nothing was forgotten")]
    UnknownSnapshot { container: String, spec: String },
    /// `forget` without snapshots and without a policy.
    #[error("forget needs snapshot ids or a policy (--keep-last N, --keep-daily N, --keep-within 30d, ...); nothing was forgotten")]
    NoForgetPolicy,
    /// `forget` with both snapshot ids and a policy.
    #[error("give either snapshot ids or a --keep-* policy, not both; nothing was forgotten")]
    IdsAndPolicy,
    /// A `--keep-within` duration that is not understood.
    #[error("{0}")]
    BadDuration(String),
    /// Prune cannot tell what the snapshots use, so it deletes nothing.
    #[error("prune of `{container}` stopped before changing anything: {reason}; run `trove check --read-data {container}`")]
    PruneUnsafe { container: String, reason: String },
    /// A prune would delete the data of a snapshot still being committed.
    #[error("prune of `{container}` stopped before changing anything: snapshot {snapshot} of an interrupted backup is not yet on enough peers; make more peers reachable, run `trove check`, then prune again")]
    CommitPending { container: String, snapshot: String },
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
    /// A peer or container name with characters Trove does not allow.
    #[error("{kind} name `{name}`: use 1-64 letters, digits, `-`, `_` or `.`")]
    BadName { kind: &'static str, name: String },
    /// A peer location that cannot be used.
    #[error("{0}")]
    BadLocation(#[from] crate::location::LocationError),
    /// `TROVE_HOME/credentials.toml` cannot be used (never quoted).
    #[error("{0}")]
    Credentials(#[from] trove_remote::CredentialsError),
    #[error("no snapshot matches `{0}` (see `trove snapshots`)")]
    NoSnapshot(String),
    #[error("`{0}` matches several snapshots; give more digits")]
    AmbiguousSnapshot(String),
    /// A SNAPSHOT argument that is not an id prefix or `CONTAINER:latest`.
    #[error("`{0}` is not a snapshot: give at least 4 hex digits of its id, or CONTAINER:latest")]
    BadSnapshotSpec(String),
    /// `CONTAINER:` followed by anything but `latest`.
    #[error("`{0}`: after `CONTAINER:` only `latest` is understood")]
    OnlyLatest(String),
    /// A path that must be relative to the snapshot root.
    #[error("path `{}` must be relative to the snapshot root, without `..`", .0.display())]
    BadSnapshotPath(PathBuf),
    /// A path `ls` was asked for that the snapshot lacks.
    #[error("`{}` is not in this snapshot", .0.display())]
    NotInSnapshot(PathBuf),
    /// A `restore --include` path that names nothing in the snapshot.
    #[error("--include {}: nothing in the snapshot matches (see `trove ls SNAPSHOT`)", .0.display())]
    IncludeMatchesNothing(PathBuf),
    /// `container create` without sources.
    #[error("a container needs at least one source folder")]
    NoSources,
    /// A source that cannot be named in a snapshot (`/`).
    #[error("source {0} has no name (is it `/`?)")]
    SourceWithoutName(PathBuf),
    /// Two sources with the same last component.
    #[error("two sources are named {0:?}; snapshots store each source under its own name")]
    DuplicateSource(std::ffi::OsString),
    /// A command that needs a container name when there is not exactly one.
    #[error("no containers yet: create one with `trove container create NAME PATH...`")]
    NoContainers,
    #[error("several containers ({}): name one", .0.join(", "))]
    SeveralContainers(Vec<String>),
    /// A backup with no peer configured at all.
    #[error("no peers configured: add one with `trove peer add NAME dir:PATH`")]
    NoPeers,
    /// None of a container's sources could be read.
    #[error("none of the sources of `{container}` could be read: {}", .details.join("; "))]
    SourcesUnreadable {
        container: String,
        details: Vec<String>,
    },
    /// Not one configured peer could be reached.
    #[error("no reachable peer: add one with `trove peer add NAME LOCATION`")]
    NoReachablePeer,
    /// `sync` found only another identity's data.
    #[error(
        "peer(s) {} hold data of another identity only, none of this one (fingerprint {fingerprint}): wrong phrase or shares?",
        .peers.join(", ")
    )]
    ForeignData {
        peers: Vec<String>,
        fingerprint: String,
    },
    /// `sync` found container manifests of this identity, none valid.
    #[error("no container manifest on {} could be verified: {}", .peers.join(", "), .refused.join("; "))]
    NoValidManifest {
        peers: Vec<String>,
        refused: Vec<String>,
    },
    /// `sync` found nothing of this identity.
    #[error(
        "peer(s) {} hold no Trove data of this identity: add another surviving peer \
         (`trove peer add NAME LOCATION`) and run `trove sync` again",
        .0.join(", ")
    )]
    NoDataOnPeers(Vec<String>),
    /// A snapshot's manifest reached too few peers to count as committed.
    #[error(
        "snapshot {} reached only {reached} of the {needed} peers it needs to survive the loss of the others; \
         it stays pending, and the next command finishes it once enough peers are reachable",
        .snapshot.short()
    )]
    NotReplicated {
        snapshot: trove_core::SnapshotId,
        reached: usize,
        needed: usize,
    },
    /// Fewer peers can take data than a pack needs to be stored at all.
    #[error("cannot store pack: {reason}")]
    Placement { reason: String },
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// The network endpoint for node peers could not be started.
    #[error(transparent)]
    Network(#[from] crate::peers::NetworkError),
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
    /// A share file that is not well formed, altered, or not openable.
    #[error("share file: {0}")]
    Share(#[from] trove_core::share::ShareError),
    /// A share file sealed to another identity.
    #[error("this share file is for owner id {}…, not for this identity ({}…): the owner must share to the id `trove whoami` prints here", &.recipient[..16], &.you[..16])]
    ShareNotForYou { recipient: String, you: String },
    /// Sharing with oneself.
    #[error("that is this identity's own owner id: share with the id `trove whoami` prints on the other person's machine")]
    ShareWithSelf,
    /// Not an owner id.
    #[error("`{0}` is not an owner id: give the 64 hex digits `trove whoami` prints on the recipient's machine")]
    BadOwnerId(String),
    /// A command that writes, on a container shared with this identity.
    #[error("container `{container}` is shared with you read-only by {owner}: backup, forget, prune and repair are its owner's; snapshots, ls, restore, dump and mount work")]
    SharedReadOnly { container: String, owner: String },
    /// Inheritance: setup, claim, veto, collect.
    #[error(transparent)]
    Inherit(#[from] crate::inherit::InheritError),
    /// Writing a stream (`dump`) to its output failed; a closed pipe is
    /// [`RepoError::is_closed_output`].
    #[error("writing the output: {0}")]
    Output(std::io::Error),
}

impl RepoError {
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Whether the reader of a stream went away (`dump | head`): not a
    /// failure to report.
    pub fn is_closed_output(&self) -> bool {
        matches!(self, RepoError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// Whether the user's input is at fault (a name, a path, a snapshot
    /// argument, a missing setup step) rather than the data or a peer: the
    /// CLI exits with 2 for these.
    pub fn is_usage(&self) -> bool {
        if let RepoError::Inherit(e) = self {
            return e.is_usage();
        }
        matches!(
            self,
            RepoError::BadName { .. }
                | RepoError::BadSnapshotSpec(_)
                | RepoError::OnlyLatest(_)
                | RepoError::BadSnapshotPath(_)
                | RepoError::NotInSnapshot(_)
                | RepoError::IncludeMatchesNothing(_)
                | RepoError::NoSources
                | RepoError::SourceWithoutName(_)
                | RepoError::DuplicateSource(_)
                | RepoError::NoContainers
                | RepoError::SeveralContainers(_)
                | RepoError::NoPeers
                | RepoError::SourcesUnreadable { .. }
                | RepoError::NoReachablePeer
                | RepoError::ForeignData { .. }
                | RepoError::NoValidManifest { .. }
                | RepoError::NoDataOnPeers(_)
                | RepoError::UnknownSnapshot { .. }
                | RepoError::NoForgetPolicy
                | RepoError::IdsAndPolicy
                | RepoError::BadDuration(_)
                | RepoError::Config { .. }
                | RepoError::ShareNotForYou { .. }
                | RepoError::ShareWithSelf
                | RepoError::BadOwnerId(_)
                | RepoError::SharedReadOnly { .. }
        )
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
