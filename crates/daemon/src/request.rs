//! `trove backup` while the daemon runs: the command asks the daemon to
//! back the container up now, instead of walking every source itself. The
//! daemon's watcher knows what changed, so the backup walks only that
//! (docs/design.md §9d.1), and the command needs no passphrase.
//!
//! A request is a file in `TROVE_HOME/requests`, written aside and renamed
//! to `ID.req` (whole when seen). The daemon watches that folder through
//! the same inotify instance as the sources. The kernel queues its events
//! in one queue, in order, so every change made before the request exists
//! reaches the daemon's journal before the request does: the backup that
//! answers it covers them. The answer is `ID.answer`, also renamed into
//! place; the command reads it and removes it.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The folder in `TROVE_HOME` where requests and answers are.
pub const REQUESTS_DIR: &str = "requests";
const REQUEST_EXT: &str = "req";
const ANSWER_EXT: &str = "answer";
/// Version of both files.
const VERSION: u32 = 1;

/// Back up one container now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRequest {
    pub version: u32,
    pub container: String,
}

/// What the daemon did: the backup's report as `trove backup --json`
/// prints it, or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupAnswer {
    pub version: u32,
    pub report: Option<serde_json::Value>,
    pub error: Option<String>,
    /// Why the daemon leaves this backup to the command (a container it
    /// does not look after: made after it started).
    #[serde(default)]
    pub declined: Option<String>,
}

/// Why a request gave no report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unanswered {
    /// The backup failed, or could not start.
    Failed(String),
    /// Not this daemon's to make: the command makes it.
    Declined(String),
}

/// `TROVE_HOME/requests`, made private (`0700`) if it is not there.
pub fn requests_dir(home: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = home.join(REQUESTS_DIR);
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => Ok(dir),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(dir),
        Err(e) => Err(e),
    }
}

/// Whether `path` names a request (for the watcher).
pub fn is_request(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == REQUEST_EXT)
}

/// Write `value` as JSON to `to`, whole or not at all (aside, then renamed;
/// `ID.req.tmp` is not a request).
fn put<T: Serialize>(to: &Path, value: &T) -> std::io::Result<()> {
    let text = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    crate::state::replace_private(to, &text)
}

/// Read and remove the request at `path` (`None`: already taken).
pub(crate) fn take(path: &Path) -> Option<Result<BackupRequest, String>> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => return Some(Err(format!("cannot read {}: {e}", path.display()))),
    };
    let _ = std::fs::remove_file(path);
    Some(
        serde_json::from_slice::<BackupRequest>(&text)
            .map_err(|e| format!("request {} is not understood: {e}", path.display()))
            .and_then(|r| {
                if r.version == VERSION {
                    Ok(r)
                } else {
                    Err(format!(
                        "request version {} (this daemon reads {VERSION}): restart the daemon with the same trove as the command",
                        r.version
                    ))
                }
            }),
    )
}

/// Answer the request that was at `request`.
pub(crate) fn answer(request: &Path, result: Result<serde_json::Value, Unanswered>) {
    let mut a = BackupAnswer {
        version: VERSION,
        report: None,
        error: None,
        declined: None,
    };
    match result {
        Ok(r) => a.report = Some(r),
        Err(Unanswered::Failed(e)) => a.error = Some(e),
        Err(Unanswered::Declined(why)) => a.declined = Some(why),
    }
    if let Err(e) = put(&request.with_extension(ANSWER_EXT), &a) {
        tracing::error!("cannot answer {}: {e}", request.display());
    }
}

/// Requests left by commands that gave up (their daemon died): removed at
/// start, so that a new daemon does not run old ones.
pub(crate) fn clear(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Why asking the daemon gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    #[error("could not write the request in {}: {source}", .dir.display())]
    Write {
        dir: PathBuf,
        source: std::io::Error,
    },
    /// The daemon stopped before it answered.
    #[error("the daemon (pid {pid}) stopped before it answered")]
    Stopped { pid: u32 },
    #[error("the daemon's answer {} is not understood: {why}", .path.display())]
    Answer { path: PathBuf, why: String },
}

/// The daemon that runs on `home` and answers requests, if one does.
pub fn serving(home: &Path) -> Option<u32> {
    let pid = crate::instance::running(home)?;
    crate::state::DaemonState::load(home)
        .filter(|s| s.pid == pid && s.takes_requests)
        .map(|_| pid)
}

/// Ask the daemon `pid` of `home` to back `container` up now, and wait
/// for its answer while it runs (a first backup may take hours).
pub fn ask(home: &Path, pid: u32, container: &str) -> Result<BackupAnswer, AskError> {
    let dir = requests_dir(home).map_err(|source| AskError::Write {
        dir: home.join(REQUESTS_DIR),
        source,
    })?;
    let id = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let request = dir.join(format!("{id}.{REQUEST_EXT}"));
    let req = BackupRequest {
        version: VERSION,
        container: container.to_owned(),
    };
    put(&request, &req).map_err(|source| AskError::Write {
        dir: dir.clone(),
        source,
    })?;
    let answer = request.with_extension(ANSWER_EXT);
    let mut checked = Instant::now();
    loop {
        match std::fs::read(&answer) {
            Ok(text) => {
                let _ = std::fs::remove_file(&answer);
                return serde_json::from_slice(&text).map_err(|e| AskError::Answer {
                    path: answer,
                    why: e.to_string(),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(AskError::Answer {
                    path: answer,
                    why: e.to_string(),
                })
            }
        }
        if checked.elapsed() >= Duration::from_secs(1) {
            checked = Instant::now();
            if crate::instance::running(home) != Some(pid) {
                let _ = std::fs::remove_file(&request);
                return Err(AskError::Stopped { pid });
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_taken_once_and_answered_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let reqs = requests_dir(dir.path()).unwrap();
        let path = reqs.join("1-2.req");
        put(
            &path,
            &BackupRequest {
                version: VERSION,
                container: "docs".into(),
            },
        )
        .unwrap();
        assert!(is_request(&path));
        assert_eq!(take(&path).unwrap().unwrap().container, "docs");
        // Taken: a second event for it finds nothing.
        assert!(take(&path).is_none());
        answer(&path, Err(Unanswered::Declined("not mine".into())));
        let a: BackupAnswer =
            serde_json::from_slice(&std::fs::read(reqs.join("1-2.answer")).unwrap()).unwrap();
        assert_eq!(a.declined.as_deref(), Some("not mine"));
        assert_eq!((a.report, a.error), (None, None));
        assert!(!is_request(&reqs.join("1-2.answer")));

        // A request from another version is refused with the fix.
        std::fs::write(&path, br#"{"version": 9, "container": "docs"}"#).unwrap();
        let err = take(&path).unwrap().unwrap_err();
        assert!(err.contains("restart the daemon"), "{err}");
        clear(&reqs);
        assert_eq!(std::fs::read_dir(&reqs).unwrap().count(), 0);
    }
}
