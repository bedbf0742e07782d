//! Process limits, set once at start.

/// Raise the soft limit on open files to the hard one, as Go programs
/// (restic among them) do at start. A restore keeps the files it has made
/// open for their first write, as many as this limit allows
/// (docs/performance.md, tenth round); with the common soft limit of 1024
/// it closes and reopens most of them. Nothing else changes: the hard
/// limit is the administrator's, and a failure leaves the limit as it was.
pub fn raise_open_files() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        let _ = setrlimit(Resource::Nofile, raised);
    }
}
