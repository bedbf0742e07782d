//! One daemon per home: `TROVE_HOME/daemon.lock`, held with an OS file lock
//! for the daemon's whole life (released by the kernel when the process
//! dies, even by kill -9), and naming the process that holds it.
//!
//! The index's own lock cannot do this job: the daemon opens the index only
//! while it works, so that `trove status`, `ls` and `restore` can run
//! between its steps.

use crate::error::DaemonError;
use std::fs::{File, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The lock file's name in `TROVE_HOME`.
pub const LOCK_FILE: &str = "daemon.lock";

/// The daemon's hold on a home; dropping it (or dying) lets another start.
#[derive(Debug)]
pub struct Instance {
    _file: File,
    path: PathBuf,
}

impl Instance {
    /// Take the home for this process, or say which process has it.
    pub fn acquire(home: &Path) -> Result<Self, DaemonError> {
        let path = home.join(LOCK_FILE);
        let io = |e| DaemonError::Io {
            op: "open",
            path: path.clone(),
            source: e,
        };
        // Not emptied before the lock is ours: it names the holder.
        let mut file = crate::state::private_file(&path, false).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(DaemonError::AlreadyRunning {
                    home: home.to_owned(),
                    holder: holder.trim().replace('\n', ", "),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let me = format!(
            "pid={}\nsince_unix={}\n",
            std::process::id(),
            trove_repo::now_unix()
        );
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(me.as_bytes()))
            .and_then(|()| file.sync_all())
            .map_err(|e| DaemonError::Io {
                op: "write",
                path: path.clone(),
                source: e,
            })?;
        Ok(Self { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The pid of the daemon that holds `home`, if one runs (for `trove
/// status`). Reading does not disturb it.
pub fn running(home: &Path) -> Option<u32> {
    let mut file = File::open(home.join(LOCK_FILE)).ok()?;
    match file.try_lock_shared() {
        // Nobody holds it: no daemon.
        Ok(()) => None,
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            file.read_to_string(&mut text).ok()?;
            text.lines()
                .find_map(|l| l.strip_prefix("pid="))
                .and_then(|p| p.parse().ok())
        }
        Err(TryLockError::Error(_)) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_instance_is_refused_and_named_until_the_first_ends() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(running(dir.path()), None);
        let first = Instance::acquire(dir.path()).unwrap();
        let mode = std::fs::metadata(first.path()).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        let err = Instance::acquire(dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("pid={}", std::process::id())),
            "{text}"
        );
        assert_eq!(running(dir.path()), Some(std::process::id()));
        drop(first);
        assert_eq!(running(dir.path()), None);
        Instance::acquire(dir.path()).unwrap();
    }
}
