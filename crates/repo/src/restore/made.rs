//! The files the layout has made, as the writes wait for them: each file's
//! identity once it exists, and for a few at a time the handle it was
//! created with, so that the first write needs no second walk to it. Each
//! file is made by whoever takes it first: the layout, or a write that
//! reached it before the layout did.

use super::target::Identity;
use super::LostPath;
use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// Handles kept open between the layout and the writes at most. The
/// layout makes files faster than the packs are fetched, and past this
/// many it closes what it made: the first write then opens the file again
/// (`openat`, `fstat` to check it is the one made, `close`). With 256 that
/// was 65,000 of the 88,000 files of the 1 GB tree of docs/performance.md
/// (tenth round). As many as the open-file limit allows, keeping
/// [`FDS_SPARE`] for everything else, within these bounds.
const KEPT_OPEN_MIN: usize = 256;
const KEPT_OPEN_MAX: usize = 32_768;
const FDS_SPARE: u64 = 1024;

/// How many handles the layout may keep for the writes under the process's
/// open-file limit (`None`: unlimited). `trove` raises its soft limit to
/// the hard one at start, as Go programs (restic) do.
fn handles_to_keep(open_files: Option<u64>) -> usize {
    open_files.map_or(KEPT_OPEN_MAX, |n| {
        usize::try_from(n.saturating_sub(FDS_SPARE))
            .unwrap_or(KEPT_OPEN_MAX)
            .clamp(KEPT_OPEN_MIN, KEPT_OPEN_MAX)
    })
}

/// A write leaves a file this close ahead of the layout to the layout, and
/// waits: two threads creating files in one folder take turns on its lock
/// (ext4), and the one waiting spins (a node restore, where the writes ran
/// just ahead of the layout, spent 6% of its CPU in `rwsem_spin_on_owner`).
/// The layout makes about 60,000 files a second, so this is a wait of
/// at most about 15 ms.
const LAYOUT_NEAR: usize = 1024;

/// Per file of the plan: made (and as what), refused, or not yet reached.
pub(super) struct Made {
    ids: Vec<OnceLock<Option<Identity>>>,
    /// Whether the layout or a write has taken the file to make it.
    taken: Vec<AtomicBool>,
    /// The files the target refused, whoever tried to make them.
    refused: Mutex<Vec<LostPath>>,
    handles: Vec<Mutex<Option<File>>>,
    kept: AtomicUsize,
    /// At most this many in `handles`.
    keep: usize,
    /// The file the layout is at.
    reached: AtomicUsize,
    /// The restore stopped: the layout makes nothing more.
    stopped: AtomicBool,
}

impl Made {
    pub fn new(files: usize) -> Self {
        Self {
            ids: (0..files).map(|_| OnceLock::new()).collect(),
            taken: (0..files).map(|_| AtomicBool::new(false)).collect(),
            refused: Mutex::new(Vec::new()),
            handles: (0..files).map(|_| Mutex::new(None)).collect(),
            kept: AtomicUsize::new(0),
            keep: handles_to_keep(
                rustix::process::getrlimit(rustix::process::Resource::Nofile).current,
            ),
            reached: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
        }
    }

    /// File `i` was made as `id` (`None`: it was not made), with its handle
    /// if the first write can use it. The first setting of a file stands.
    pub fn set(&self, i: usize, id: Option<Identity>, handle: Option<File>) {
        if let Some(h) = handle {
            if self.kept.fetch_add(1, Ordering::AcqRel) < self.keep {
                *self.handles[i].lock().expect("not poisoned") = Some(h);
            } else {
                self.kept.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let _ = self.ids[i].set(id);
    }

    /// Take file `i` to make it: false if the layout or a write took it
    /// first (wait for it then), or the restore stopped.
    pub fn take(&self, i: usize) -> bool {
        !self.stopped() && !self.taken[i].swap(true, Ordering::AcqRel)
    }

    /// The layout is at file `i`, about to take it.
    pub fn reach(&self, i: usize) {
        self.reached.store(i, Ordering::Relaxed);
    }

    /// [`Made::take`] for a write: also false when the layout is about to
    /// reach file `i` ([`LAYOUT_NEAR`]), which then makes it.
    pub fn take_ahead(&self, i: usize) -> bool {
        let at = self.reached.load(Ordering::Relaxed);
        !(at..at.saturating_add(LAYOUT_NEAR)).contains(&i) && self.take(i)
    }

    /// File `i` was refused by the target (it is not made), for `lost`.
    pub fn refuse(&self, i: usize, lost: LostPath) {
        self.refused.lock().expect("not poisoned").push(lost);
        self.set(i, None, None);
    }

    /// Mark every file not reached as not made, and stop the layout (it
    /// stopped, or the restore did).
    pub fn set_rest_unmade(&self) {
        self.stopped.store(true, Ordering::Release);
        for id in &self.ids {
            let _ = id.set(None);
        }
    }

    /// Whether the layout should stop making files.
    pub fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// What file `i` was made as, once the layout has reached it.
    pub fn wait(&self, i: usize) -> Option<Identity> {
        *self.ids[i].wait()
    }

    /// Wait until every file is made, or known not to be. (A write that
    /// takes a file makes it at once.)
    pub fn wait_all(&self) {
        for id in &self.ids {
            id.wait();
        }
    }

    /// The handle file `i` was created with, if the layout kept it.
    pub fn take_handle(&self, i: usize) -> Option<File> {
        let h = self.handles[i].lock().expect("not poisoned").take();
        if h.is_some() {
            self.kept.fetch_sub(1, Ordering::AcqRel);
        }
        h
    }

    /// Every file's identity (`None`: not made), by plan index, and the
    /// refused files.
    pub fn into_parts(self) -> (Vec<Option<Identity>>, Vec<LostPath>) {
        let ids = self
            .ids
            .into_iter()
            .map(|m| m.into_inner().flatten())
            .collect();
        (ids, self.refused.into_inner().expect("not poisoned"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lost(path: &str) -> LostPath {
        LostPath {
            path: path.into(),
            error: "refused".into(),
        }
    }

    #[test]
    fn each_file_is_taken_once_however_many_threads_race_for_it() {
        let made = Made::new(64);
        let takes: Vec<AtomicUsize> = (0..64).map(|_| AtomicUsize::new(0)).collect();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for (i, n) in takes.iter().enumerate() {
                        if made.take(i) {
                            n.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert!(takes.iter().all(|n| n.load(Ordering::Relaxed) == 1));
    }

    #[test]
    fn a_write_leaves_the_files_just_ahead_of_the_layout_to_it() {
        let made = Made::new(3 * LAYOUT_NEAR);
        made.reach(LAYOUT_NEAR);
        assert!(!made.take_ahead(LAYOUT_NEAR), "the file the layout is at");
        assert!(
            !made.take_ahead(2 * LAYOUT_NEAR - 1),
            "one the layout is about to reach"
        );
        assert!(made.take_ahead(2 * LAYOUT_NEAR), "one far ahead");
        assert!(made.take(LAYOUT_NEAR), "the layout takes its own");
        // Behind the layout, a file is taken already, by the layout or a write.
        assert!(made.take_ahead(0), "nobody took this one");
        assert!(!made.take_ahead(0));
    }

    #[test]
    fn a_refused_file_is_not_made_and_is_kept_for_the_report() {
        let made = Made::new(3);
        assert!(made.take(1));
        made.refuse(1, lost("b"));
        assert_eq!(made.wait(1), None, "a write waiting for it goes on");
        // Once the restore stops, nothing more is taken, and whatever was
        // not set is not made.
        made.set_rest_unmade();
        assert!(!made.take(0) && !made.take(2));
        let (ids, refused) = made.into_parts();
        assert_eq!(ids, vec![None; 3]);
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].path, "b");
    }

    #[test]
    fn handles_kept_follow_the_open_file_limit_and_leave_room_for_the_rest() {
        assert_eq!(handles_to_keep(Some(1024)), KEPT_OPEN_MIN);
        assert_eq!(handles_to_keep(Some(0)), KEPT_OPEN_MIN);
        assert_eq!(handles_to_keep(Some(20_000)), 20_000 - 1024);
        assert_eq!(handles_to_keep(Some(1 << 40)), KEPT_OPEN_MAX);
        assert_eq!(handles_to_keep(None), KEPT_OPEN_MAX);
    }

    #[test]
    fn past_the_handles_it_may_keep_a_made_file_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let mut made = Made::new(3);
        made.keep = 1;
        let file = |n: &str| Some(File::create(dir.path().join(n)).unwrap());
        made.set(0, None, file("a"));
        made.set(1, None, file("b"));
        assert!(made.take_handle(1).is_none(), "closed: one is kept at most");
        assert!(made.take_handle(0).is_some());
        made.set(2, None, file("c"));
        assert!(
            made.take_handle(2).is_some(),
            "room again once one was taken"
        );
    }
}
