//! `TROVE_HOME/daemon.json`: what the daemon is doing and will do next,
//! rewritten after every step so that `trove status` can say it without
//! asking the daemon. Advisory: nothing depends on it to be correct, and a
//! killed daemon's file is simply stale (status checks the daemon runs).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The file's name in `TROVE_HOME`.
pub const STATE_FILE: &str = "daemon.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonState {
    pub pid: u32,
    pub started_unix: i64,
    /// The settings it runs with (config.toml and its flags): `trove
    /// status` judges peers by the same threshold.
    pub settings: Option<trove_repo::DaemonSettings>,
    /// When it last changed (it is written only when it does).
    pub updated_unix: i64,
    /// The step under way, if any (`backup docs`, `audit`, ...).
    pub working_on: Option<String>,
    pub last_audit_unix: Option<i64>,
    pub next_audit_unix: Option<i64>,
    pub last_repair_unix: Option<i64>,
    /// The storm guard holds (why, for people).
    pub storm: Option<String>,
    pub containers: BTreeMap<String, ContainerState>,
    /// It answers `trove backup` ([`crate::request`]).
    #[serde(default)]
    pub takes_requests: bool,
}

/// One container, as the daemon sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerState {
    /// Changes are watched (else found by rescans only).
    pub watching: bool,
    /// Why it is not watched, if it should be.
    pub watch_problem: Option<String>,
    /// Changes not yet in a snapshot, seen since.
    pub changes_since_unix: Option<i64>,
    /// The daemon knows every path that changed since the last backup
    /// began: its next backup for changes walks only those (else it walks
    /// everything). Not a count: the file would be rewritten per event.
    #[serde(default)]
    pub knows_changes: bool,
    pub next_backup_unix: Option<i64>,
    pub last_backup_unix: Option<i64>,
    pub last_prune_unix: Option<i64>,
    pub next_prune_unix: Option<i64>,
    /// Why backups are held back (a source that looks gone), if they are.
    pub held: Option<String>,
    /// The last step's failure, until one succeeds.
    pub last_error: Option<String>,
}

impl DaemonState {
    pub fn path(home: &Path) -> PathBuf {
        home.join(STATE_FILE)
    }

    /// The last state written in `home`, if any and readable.
    pub fn load(home: &Path) -> Option<Self> {
        let text = std::fs::read(Self::path(home)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Replace the file (write aside, then rename: never half a file),
    /// private to its user (`0600`) like the rest of `TROVE_HOME`. Not
    /// synced: it is advisory, and rewritten at the next step.
    pub fn save(&self, home: &Path) -> std::io::Result<()> {
        let text = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        replace_private(&Self::path(home), &text)
    }
}

/// Replace the file at `path` with `text`, private to its user (`0600`):
/// written beside it as `NAME.tmp`, then renamed, so that a reader finds
/// the old file or the new one, never half of one.
pub(crate) fn replace_private(path: &Path, text: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let mut file = private_file(Path::new(&tmp), true)?;
    std::io::Write::write_all(&mut file, text)?;
    std::fs::rename(tmp, path)
}

/// Open `path` for writing, created `0600` whatever the umask (and made so
/// if it existed), emptied if `truncate`.
pub(crate) fn private_file(path: &Path, truncate: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(truncate)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_state_file_reads_back_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(DaemonState::load(dir.path()), None);
        // An old, open file is replaced by a private one.
        std::fs::write(DaemonState::path(dir.path()), "{}").unwrap();
        let state = DaemonState {
            pid: 7,
            working_on: Some("audit".into()),
            ..Default::default()
        };
        state.save(dir.path()).unwrap();
        assert_eq!(DaemonState::load(dir.path()), Some(state));
        let mode = std::fs::metadata(DaemonState::path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
