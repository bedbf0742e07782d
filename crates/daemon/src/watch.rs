//! The filesystem watcher: every container's sources, watched recursively
//! (inotify on Linux, through `notify`), turned into messages for the
//! daemon's loop. Reads (our own backup opens every file) are not changes;
//! paths under `TROVE_HOME` or a folder peer are ignored, so that a peer
//! or a home kept inside a source does not make every backup trigger the
//! next.

use crate::Msg;
use crossbeam_channel::Sender;
use notify::event::{AccessKind, AccessMode, Flag};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What a user reads when the kernel's watch limit is reached.
pub const WATCH_LIMIT_FIX: &str = "the system's limit on inotify watches is reached; raise it with \
`sudo sysctl fs.inotify.max_user_watches=1048576` (and a line `fs.inotify.max_user_watches=1048576` \
in /etc/sysctl.d/90-trove.conf to keep it after a reboot), then restart the daemon";

/// The watcher and which container each source belongs to.
pub struct Watches {
    watcher: RecommendedWatcher,
    /// (container, source): every source of every watched container.
    sources: Vec<(usize, PathBuf)>,
    /// The requests folder is watched: `trove backup` may ask.
    pub takes_requests: bool,
}

impl std::fmt::Debug for Watches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watches")
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

/// Why a source is not watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchFailure {
    /// The kernel's watch limit: nothing will be watched until it is raised.
    Limit,
    /// The source is not there (deleted, or a disk not mounted).
    Missing,
    Other(String),
}

impl std::fmt::Display for WatchFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WatchFailure::Limit => f.write_str(WATCH_LIMIT_FIX),
            WatchFailure::Missing => {
                f.write_str("it does not exist (deleted, or a disk not mounted)")
            }
            WatchFailure::Other(e) => f.write_str(e),
        }
    }
}

fn failure(e: &notify::Error) -> WatchFailure {
    match &e.kind {
        notify::ErrorKind::MaxFilesWatch => WatchFailure::Limit,
        notify::ErrorKind::PathNotFound => WatchFailure::Missing,
        notify::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
            WatchFailure::Missing
        }
        _ => WatchFailure::Other(e.to_string()),
    }
}

/// Whether an event says something changed (not a read, not metadata
/// access).
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Any => true,
        EventKind::Other => false,
    }
}

/// Whether an event may name a folder that appeared: made, or renamed
/// or moved in (a rename does not say whether it moved a folder). The
/// watcher adds its watches on such a folder only after handling the
/// event, so a change inside it just then is not seen.
fn may_have_appeared(kind: &EventKind) -> bool {
    use notify::event::{CreateKind, ModifyKind, RenameMode};
    matches!(
        kind,
        EventKind::Create(CreateKind::Folder | CreateKind::Any | CreateKind::Other)
            | EventKind::Modify(ModifyKind::Name(
                RenameMode::To | RenameMode::Both | RenameMode::Any | RenameMode::Other
            ))
            | EventKind::Any
    )
}

impl Watches {
    /// Start the watcher; sources are added with [`Watches::watch`].
    /// Events go to `tx` as [`Msg::Changed`] (or [`Msg::Rescan`] when the
    /// kernel's queue overflowed and events were lost).
    /// `requests` is the folder `trove backup` puts its requests in
    /// ([`crate::request`]): watched by the same inotify instance, so a
    /// request comes after the events of every change made before it.
    pub fn start(
        tx: Sender<Msg>,
        sources: Vec<(usize, PathBuf)>,
        ignore: Vec<PathBuf>,
        requests: Option<PathBuf>,
    ) -> Result<Self, WatchFailure> {
        let owners = sources.clone();
        let asked = requests.clone();
        let handler = move |res: notify::Result<Event>| match res {
            Ok(ev) if ev.flag() == Some(Flag::Rescan) => {
                let _ = tx.send(Msg::Rescan {
                    container: None,
                    why: "the kernel's event queue overflowed, so changes may have been missed"
                        .into(),
                });
            }
            Ok(ev) if is_change(&ev.kind) => {
                let at = Instant::now();
                let appeared = may_have_appeared(&ev.kind);
                for path in ev.paths {
                    if asked.is_some() && path.parent() == asked.as_deref() {
                        if crate::request::is_request(&path) {
                            let _ = tx.send(Msg::Request(path));
                        }
                        continue;
                    }
                    if ignore.iter().any(|i| path.starts_with(i)) {
                        continue;
                    }
                    // Every container with this path in a source.
                    for (c, _) in owners.iter().filter(|(_, src)| path.starts_with(src)) {
                        let _ = tx.send(Msg::Changed {
                            container: *c,
                            at,
                            path: path.clone(),
                            appeared,
                        });
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                let container = e
                    .paths
                    .iter()
                    .find_map(|p| owners.iter().find(|(_, s)| p.starts_with(s)).map(|o| o.0));
                let _ = tx.send(Msg::WatchFailed {
                    container,
                    why: failure(&e),
                });
            }
        };
        let config = notify::Config::default().with_follow_symlinks(false);
        let mut watcher = RecommendedWatcher::new(handler, config).map_err(|e| failure(&e))?;
        let takes_requests = requests.as_ref().is_some_and(|dir| {
            watcher
                .watch(dir, RecursiveMode::NonRecursive)
                .inspect_err(|e| {
                    tracing::warn!(
                        "cannot watch {} ({e}): `trove backup` walks the sources itself",
                        dir.display()
                    )
                })
                .is_ok()
        });
        Ok(Self {
            watcher,
            sources,
            takes_requests,
        })
    }

    /// Watch (again) every source of `container`; each one that cannot be
    /// watched is returned with the reason.
    pub fn watch(&mut self, container: usize) -> Vec<(PathBuf, WatchFailure)> {
        let mut failed = Vec::new();
        let mine: Vec<PathBuf> = self
            .sources
            .iter()
            .filter(|(c, _)| *c == container)
            .map(|(_, s)| s.clone())
            .collect();
        for src in mine {
            // A source deleted and made again needs a new watch.
            let _ = self.watcher.unwatch(&src);
            if let Err(e) = self.watcher.watch(&src, RecursiveMode::Recursive) {
                failed.push((src, failure(&e)));
            }
        }
        failed
    }

    /// Stop watching a container's sources (rescans only from now on).
    pub fn unwatch(&mut self, container: usize) {
        for (_, src) in self.sources.iter().filter(|(c, _)| *c == container) {
            let _ = self.watcher.unwatch(src);
        }
    }
}

/// Whether `path` is a folder with nothing in it, or not there at all: a
/// source that looks like this may be an unmounted disk, not a user who
/// deleted everything.
pub fn looks_gone(path: &Path) -> bool {
    match std::fs::read_dir(path) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watch_limit_is_told_with_its_fix() {
        let e = notify::Error::new(notify::ErrorKind::MaxFilesWatch);
        let f = failure(&e);
        assert_eq!(f, WatchFailure::Limit);
        let text = f.to_string();
        assert!(
            text.contains("sysctl fs.inotify.max_user_watches="),
            "{text}"
        );
        assert!(text.contains("/etc/sysctl.d/"), "{text}");
        assert_eq!(
            failure(&notify::Error::path_not_found()),
            WatchFailure::Missing
        );
    }

    #[test]
    fn folders_made_or_moved_in_may_have_appeared_and_writes_did_not() {
        use notify::event::{CreateKind, DataChange, ModifyKind, RemoveKind, RenameMode};
        assert!(may_have_appeared(&EventKind::Create(CreateKind::Folder)));
        assert!(may_have_appeared(&EventKind::Modify(ModifyKind::Name(
            RenameMode::To
        ))));
        assert!(may_have_appeared(&EventKind::Modify(ModifyKind::Name(
            RenameMode::Both
        ))));
        assert!(!may_have_appeared(&EventKind::Create(CreateKind::File)));
        assert!(!may_have_appeared(&EventKind::Modify(ModifyKind::Name(
            RenameMode::From
        ))));
        assert!(!may_have_appeared(&EventKind::Modify(ModifyKind::Data(
            DataChange::Any
        ))));
        assert!(!may_have_appeared(&EventKind::Remove(RemoveKind::Folder)));
    }

    #[test]
    fn reads_are_not_changes_and_writes_are() {
        use notify::event::{CreateKind, ModifyKind};
        assert!(!is_change(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(is_change(&EventKind::Create(CreateKind::File)));
        assert!(is_change(&EventKind::Modify(ModifyKind::Any)));
    }

    #[test]
    fn an_empty_or_missing_folder_looks_gone_and_a_file_does_not() {
        let dir = tempfile::tempdir().unwrap();
        assert!(looks_gone(dir.path()));
        assert!(looks_gone(&dir.path().join("nowhere")));
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        assert!(!looks_gone(dir.path()));
        assert!(!looks_gone(&dir.path().join("f")));
    }
}
