//! `trove daemon`: the container that looks after itself (docs/design.md
//! §10). Changes are backed up as they happen ([`watch`], [`schedule`]),
//! peers are audited and lost fragments repaired, and each container's
//! retention policy is applied, one step at a time ([`run`]). One daemon
//! per home ([`instance`]); what it does next is in `daemon.json`
//! ([`state`]) for `trove status`.

mod error;
pub mod instance;
pub mod request;
pub mod run;
pub mod schedule;
pub mod state;
pub mod watch;

pub use error::DaemonError;
pub use instance::Instance;
pub use run::{Daemon, Stopped};
pub use state::DaemonState;

use crossbeam_channel::Sender;
use std::path::PathBuf;
use std::time::Instant;

/// What reaches the daemon's loop from the watcher and from signals.
#[derive(Debug)]
pub enum Msg {
    /// Something under a source of container (index) changed: a path an
    /// event named.
    Changed {
        container: usize,
        at: Instant,
        path: PathBuf,
        /// The path may be a folder that appeared (made, or moved in): the
        /// watcher watches inside it only from a moment later.
        appeared: bool,
    },
    /// Walk the sources of one container (or all): events were lost.
    Rescan {
        container: Option<usize>,
        why: String,
    },
    /// The watcher cannot watch (any more).
    WatchFailed {
        container: Option<usize>,
        why: watch::WatchFailure,
    },
    /// `trove backup` asks for a backup now (the request file, seen by the
    /// watcher after every change made before it).
    Request(PathBuf),
    /// SIGTERM or SIGINT: finish the step under way, then stop.
    Shutdown,
}

/// Turn SIGTERM, SIGINT and SIGHUP into [`Msg::Shutdown`]; a second signal
/// ends the process at once (safe: every step survives a kill).
pub fn forward_signals(tx: Sender<Msg>) -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut seen = 0;
            for sig in signals.forever() {
                seen += 1;
                if seen > 1 {
                    tracing::warn!("second signal: stopping at once");
                    std::process::exit(128 + sig);
                }
                let _ = tx.send(Msg::Shutdown);
            }
        })?;
    Ok(())
}
