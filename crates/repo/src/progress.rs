//! Progress reporting: the library emits events, the CLI draws them.

/// What a long operation reports as it goes.
#[derive(Debug, Clone)]
pub enum Event {
    /// The metadata walk finished: this many files and bytes, of which
    /// `to_read` files / `to_read_bytes` must be read (the rest are unchanged).
    Scanned {
        files: u64,
        bytes: u64,
        to_read: u64,
        to_read_bytes: u64,
    },
    /// Bytes of file content read and processed.
    Read(u64),
    /// A pack was stored on its peers.
    PackStored { bytes: u64 },
    /// Restore/check: a unit of work (a pack) done, of `total`.
    Step { done: u64, total: u64 },
    /// Something the user should know that does not stop the operation.
    Warning(String),
}

/// Receives [`Event`]s, from several threads at once.
pub trait Progress: Send + Sync {
    fn event(&self, e: Event);
}

/// Ignores everything.
#[derive(Debug, Default)]
pub struct Quiet;

impl Progress for Quiet {
    fn event(&self, _: Event) {}
}
