//! The demo's last step: `trove daemon` as a separate process looks after
//! the container by itself: a new file is backed up within seconds, a disk
//! that dies is declared lost and its fragments rebuilt on a spare, with no
//! command.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest the demo waits for the daemon to do something.
const PATIENCE: Duration = Duration::from_secs(120);

/// What the daemon did by itself.
#[derive(Debug, serde::Serialize)]
pub struct DaemonSummary {
    /// From writing a file to the daemon's snapshot of it (none with
    /// `--source`: the demo does not write into your folder).
    pub snapshot_after_write_seconds: Option<f64>,
    /// How that backup walked: only the folders the watcher saw change
    /// (`N changed path(s) seen: W folder(s) walked, K kept (S s)`).
    pub guided_walk: Option<String>,
    /// From a disk's deletion to the daemon's repair finishing.
    pub repaired_after_loss_seconds: f64,
    /// The repair's log line.
    pub repair: String,
    /// Every pack back at full redundancy.
    pub full_redundancy: bool,
}

/// A `trove daemon` child process on the demo's home, stopped on drop.
struct DemoDaemon {
    child: Option<Child>,
    log: PathBuf,
}

impl DemoDaemon {
    fn start(home: &Path, log: &Path) -> Result<Self> {
        let child = Command::new(std::env::current_exe()?)
            .args([
                "daemon",
                "--debounce",
                "1s",
                "--max-delay",
                "3s",
                "--audit-every",
                "1s",
                "--peer-lost-after",
                "4s",
            ])
            .env("TROVE_HOME", home)
            .env("TROVE_PASSPHRASE", super::PASSPHRASE)
            .env("TROVE_NETWORK", "direct")
            .env("TROVE_BIND", "127.0.0.1:0")
            .env("TROVE_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .context("starting the demo's daemon")?;
        let mut d = Self {
            child: Some(child),
            log: log.to_owned(),
        };
        d.wait_for("trove daemon started", 0)?;
        Ok(d)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until the log has a line with `text` after byte `from`; the line.
    fn wait_for(&mut self, text: &str, from: usize) -> Result<String> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let log = self.log();
            if let Some(line) = log
                .get(from..)
                .and_then(|tail| tail.lines().find(|l| l.contains(text)))
            {
                return Ok(line.to_owned());
            }
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "the demo's daemon exited ({st}); see {}",
                    self.log.display()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "the demo's daemon did not log `{text}` within {PATIENCE:?}; see {}",
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, and wait for it to finish its step and exit.
    fn stop(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            crate::ui::terminate(&c)?;
            c.wait()?;
        }
        Ok(())
    }
}

impl Drop for DemoDaemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Run the daemon on `home`; write a file into `sample` (if given), then
/// delete the peer folder `doomed` and wait for the repair.
pub fn look_after_itself(
    home: &Path,
    base: &Path,
    sample: Option<&Path>,
    doomed: &Path,
) -> Result<DaemonSummary> {
    let mut d = DemoDaemon::start(home, &base.join("daemon.log"))?;
    // Its first backup is the start's rescan.
    d.wait_for("(rescan", 0)?;
    let mut guided_walk = None;
    let snapshot_after_write_seconds = match sample {
        Some(dir) => {
            let from = d.log().len();
            let t = Instant::now();
            std::fs::write(
                dir.join("papers/written-while-the-daemon-runs.txt"),
                "a new idea, backed up without asking\n",
            )?;
            let line = d.wait_for("(changes", from)?;
            guided_walk = line
                .split_once("; ")
                .and_then(|(_, tail)| tail.find("changed path(s) seen").map(|_| tail))
                .map(str::to_owned);
            Some(t.elapsed().as_secs_f64())
        }
        None => None,
    };
    let from = d.log().len();
    let t = Instant::now();
    std::fs::remove_dir_all(doomed).with_context(|| format!("deleting {}", doomed.display()))?;
    let repair = d.wait_for("pack(s) repaired", from)?;
    let repaired_after_loss_seconds = t.elapsed().as_secs_f64();
    d.stop()?;
    let repair = repair
        .split_once("repair: ")
        .map_or(repair.as_str(), |(_, r)| r)
        .to_owned();
    Ok(DaemonSummary {
        snapshot_after_write_seconds,
        guided_walk,
        repaired_after_loss_seconds,
        full_redundancy: repair.contains("every pack is at full redundancy"),
        repair,
    })
}
