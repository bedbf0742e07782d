//! The files the layout has made, as the writes wait for them: each file's
//! identity once it exists, and for a few at a time the handle it was
//! created with, so that the first write needs no second walk to it.

use super::target::Identity;
use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// Handles kept open between the layout and the writes at most: the
/// layout is seldom far ahead of the writes, and past this many it closes
/// what it made (the write then reopens it).
const KEPT_OPEN: usize = 256;

/// Per file of the plan: made (and as what), refused, or not yet reached.
pub(super) struct Made {
    ids: Vec<OnceLock<Option<Identity>>>,
    handles: Vec<Mutex<Option<File>>>,
    kept: AtomicUsize,
    /// The restore stopped: the layout makes nothing more.
    stopped: AtomicBool,
}

impl Made {
    pub fn new(files: usize) -> Self {
        Self {
            ids: (0..files).map(|_| OnceLock::new()).collect(),
            handles: (0..files).map(|_| Mutex::new(None)).collect(),
            kept: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
        }
    }

    /// File `i` was made as `id` (`None`: it was not made), with its handle
    /// if the first write can use it. The first setting of a file stands.
    pub fn set(&self, i: usize, id: Option<Identity>, handle: Option<File>) {
        if let Some(h) = handle {
            if self.kept.fetch_add(1, Ordering::AcqRel) < KEPT_OPEN {
                *self.handles[i].lock().expect("not poisoned") = Some(h);
            } else {
                self.kept.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let _ = self.ids[i].set(id);
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

    /// The handle file `i` was created with, if the layout kept it.
    pub fn take_handle(&self, i: usize) -> Option<File> {
        let h = self.handles[i].lock().expect("not poisoned").take();
        if h.is_some() {
            self.kept.fetch_sub(1, Ordering::AcqRel);
        }
        h
    }

    /// Every file's identity (`None`: not made), by plan index.
    pub fn into_ids(self) -> Vec<Option<Identity>> {
        self.ids
            .into_iter()
            .map(|m| m.into_inner().flatten())
            .collect()
    }
}
