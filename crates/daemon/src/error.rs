//! Errors that stop the daemon (at start: anything later is logged and
//! retried, because a daemon that exits on a full disk protects nothing).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// Another daemon holds this home.
    #[error(
        "a trove daemon already runs on {} ({holder}); stop it first (`kill PID`, or `systemctl --user stop trove-daemon`)",
        .home.display()
    )]
    AlreadyRunning { home: PathBuf, holder: String },
    #[error("could not {op} {}: {source}", .path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The home has no container to look after.
    #[error("{} has no container to look after: create one with `trove container create NAME PATH...`", .0.display())]
    NoContainers(PathBuf),
    #[error(transparent)]
    Repo(#[from] trove_repo::RepoError),
}
