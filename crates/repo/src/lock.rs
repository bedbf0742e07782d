//! Who may change a home's index, and when.
//!
//! **Between processes** redb's file lock lets one process at a time open
//! `index.redb`; a second one gets [`RepoError::Busy`]. The process holding
//! it writes `TROVE_HOME/lock` (pid, command, host, start time) right after
//! opening the index, so the error can say who holds it and since when. The
//! file is only a label: the OS releases redb's lock when a process dies, so
//! a `lock` file left by a killed process is stale and the next process to
//! open the index simply replaces it.
//!
//! A whole backup runs inside one process that holds the index from start to
//! commit, so a prune in another process cannot run beside it: it waits for
//! the backup to end ([`crate::Home::open_waiting`]).
//!
//! **Inside one process** (a daemon that runs backups and prunes) the redb
//! lock no longer separates them, so the [`Lease`] does: a backup holds a
//! shared lease from before it loads its dedup set until its snapshot is
//! committed, and prune and forget hold the exclusive lease for their whole
//! run. A waiting exclusive lease stops new shared ones, so a stream of
//! backups cannot starve a prune.

use crate::error::{RepoError, Result};
use std::path::Path;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The file naming the process that holds a home's index.
pub(crate) const LOCK_FILE: &str = "lock";

/// The process that holds a home's index, as its `lock` file says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LockHolder {
    pub pid: u32,
    /// Its command line (`trove backup data`).
    pub command: String,
    pub host: String,
    /// When it opened the index, seconds since the Unix epoch.
    pub since_unix: i64,
}

impl LockHolder {
    /// This process.
    pub(crate) fn me() -> Self {
        let mut args = std::env::args();
        let bin = args
            .next()
            .and_then(|a| {
                Path::new(&a)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "trove".into());
        let mut command = std::iter::once(bin)
            .chain(args)
            .collect::<Vec<_>>()
            .join(" ")
            .replace('\n', " ");
        if command.len() > 200 {
            let mut end = 200;
            while !command.is_char_boundary(end) {
                end -= 1;
            }
            command.truncate(end);
        }
        Self {
            pid: std::process::id(),
            command,
            host: hostname(),
            since_unix: crate::time::now_unix(),
        }
    }

    fn encode(&self) -> String {
        format!(
            "pid={}\ncommand={}\nhost={}\nsince={}\n",
            self.pid, self.command, self.host, self.since_unix
        )
    }

    fn decode(text: &str) -> Option<Self> {
        let mut pid = None;
        let mut command = None;
        let mut host = None;
        let mut since = None;
        for line in text.lines() {
            match line.split_once('=') {
                Some(("pid", v)) => pid = v.parse().ok(),
                Some(("command", v)) => command = Some(v.to_owned()),
                Some(("host", v)) => host = Some(v.to_owned()),
                Some(("since", v)) => since = v.parse().ok(),
                _ => {}
            }
        }
        Some(Self {
            pid: pid?,
            command: command?,
            host: host?,
            since_unix: since?,
        })
    }

    /// Whether the process named still runs (on this host, as far as
    /// `/proc` tells; a holder on another host is taken at its word).
    fn alive(&self) -> bool {
        self.host != hostname()
            || !Path::new("/proc").exists()
            || Path::new("/proc").join(self.pid.to_string()).exists()
    }
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} (`{}`) on {}, since {} UTC",
            self.pid,
            self.command,
            self.host,
            crate::time::utc(self.since_unix.saturating_mul(1_000_000_000))
        )
    }
}

/// This machine's name, as snapshots and lock labels record it.
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// Label the home as held by this process (after the index opened).
pub(crate) fn write(home: &Path) -> Result<LockHolder> {
    let me = LockHolder::me();
    let path = home.join(LOCK_FILE);
    trove_peer::durable::replace(&path, me.encode().as_bytes(), None)
        .map_err(|e| RepoError::io("write", &path, e))?;
    Ok(me)
}

/// Who holds the home's index, if the `lock` file names a live process
/// (none: the holder is starting and has not written it yet).
pub(crate) fn read(home: &Path) -> Option<LockHolder> {
    let text = std::fs::read_to_string(home.join(LOCK_FILE)).ok()?;
    LockHolder::decode(&text).filter(LockHolder::alive)
}

/// Remove the label if it is still this process's (called while the index
/// is still open, so no other process can have written its own yet).
pub(crate) fn release(home: &Path, me: &LockHolder) {
    if read(home).is_some_and(|h| h.pid == me.pid && h.since_unix == me.since_unix) {
        let _ = std::fs::remove_file(home.join(LOCK_FILE));
    }
}

/// The in-process lease: backups share it, prune and forget take it alone.
#[derive(Debug, Default)]
pub struct Lease {
    state: Mutex<LeaseState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct LeaseState {
    shared: usize,
    exclusive: bool,
    waiting_exclusive: usize,
}

/// Held by a backup: no prune or forget runs meanwhile (in this process).
#[derive(Debug)]
pub struct SharedLease<'a> {
    lease: &'a Lease,
}

/// Held by a prune or forget: nothing else that changes the index log runs
/// meanwhile (in this process).
#[derive(Debug)]
pub struct ExclusiveLease<'a> {
    lease: &'a Lease,
}

impl Lease {
    fn lock(&self) -> MutexGuard<'_, LeaseState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wait until no exclusive lease is held or waited for, then share.
    pub fn shared(&self) -> SharedLease<'_> {
        let mut s = self.lock();
        while s.exclusive || s.waiting_exclusive > 0 {
            s = self.changed.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        s.shared += 1;
        SharedLease { lease: self }
    }

    /// Wait up to `wait` for every other lease to end, then hold it alone;
    /// [`RepoError::LeaseTimeout`] if they do not end in time.
    pub fn exclusive(&self, wait: Duration) -> Result<ExclusiveLease<'_>> {
        let deadline = Instant::now() + wait;
        let mut s = self.lock();
        s.waiting_exclusive += 1;
        while s.exclusive || s.shared > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                s.waiting_exclusive -= 1;
                self.changed.notify_all();
                return Err(RepoError::LeaseTimeout {
                    waited: wait,
                    backups: s.shared,
                });
            }
            s = self
                .changed
                .wait_timeout(s, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        s.waiting_exclusive -= 1;
        s.exclusive = true;
        Ok(ExclusiveLease { lease: self })
    }
}

impl Drop for SharedLease<'_> {
    fn drop(&mut self) {
        let mut s = self.lease.lock();
        s.shared -= 1;
        self.lease.changed.notify_all();
    }
}

impl Drop for ExclusiveLease<'_> {
    fn drop(&mut self) {
        let mut s = self.lease.lock();
        s.exclusive = false;
        self.lease.changed.notify_all();
    }
}

/// `30s`, `5m`, `2h`, `1h30m` or plain seconds: how long to wait.
pub fn parse_wait(s: &str) -> std::result::Result<Duration, String> {
    let bad = || format!("`{s}` is not a duration: use e.g. 30s, 5m, 1h30m or seconds");
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = 0u64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().map_err(|_| bad())?;
        num.clear();
        total += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
    }
    if !num.is_empty() || s.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn holder_round_trips_and_a_dead_one_is_stale() {
        let me = LockHolder::me();
        assert_eq!(LockHolder::decode(&me.encode()), Some(me.clone()));
        assert!(me.alive());
        let dir = tempfile::tempdir().unwrap();
        write(dir.path()).unwrap();
        assert_eq!(read(dir.path()).map(|h| h.pid), Some(me.pid));
        // A pid that cannot be running (above the kernel's maximum).
        let dead = LockHolder {
            pid: 4_194_304 + 1,
            ..me.clone()
        };
        std::fs::write(dir.path().join(LOCK_FILE), dead.encode()).unwrap();
        assert_eq!(read(dir.path()), None, "a killed holder's label is stale");
        release(dir.path(), &me);
        assert!(dir.path().join(LOCK_FILE).exists(), "not ours: left alone");
    }

    #[test]
    fn waits_parse() {
        assert_eq!(parse_wait("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_wait("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_wait("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_wait("5x").is_err());
        assert!(parse_wait("m").is_err());
        assert!(parse_wait("").is_err());
    }

    #[test]
    fn exclusive_waits_for_shared_and_blocks_new_shared() {
        let lease = Arc::new(Lease::default());
        let shared = lease.shared();
        assert!(matches!(
            lease.exclusive(Duration::from_millis(20)),
            Err(RepoError::LeaseTimeout { backups: 1, .. })
        ));
        let l2 = lease.clone();
        let pruner = std::thread::spawn(move || {
            let _x = l2.exclusive(Duration::from_secs(60)).unwrap();
        });
        // The waiting prune holds new backups back; the running one ends.
        while lease.lock().waiting_exclusive == 0 {
            std::thread::yield_now();
        }
        drop(shared);
        pruner.join().unwrap();
        let _again = lease.shared();
    }
}
