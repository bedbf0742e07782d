//! What every command shares: where the home is, opening and unlocking it,
//! the passphrase, logging, and printing rows as text or `--json`.

use crate::ui::Bar;
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::PathBuf;
use trove_repo::{Home, Owner};

/// How output is printed: `--json` rows for scripts, or text for people.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    pub json: bool,
}

impl Out {
    /// Print `row` as pretty JSON, or let `text` print it for people.
    pub fn emit<T: Serialize + ?Sized>(&self, row: &T, text: impl FnOnce(&T)) -> Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(row)?);
        } else {
            text(row);
        }
        Ok(())
    }

    /// Run a long operation under a progress bar, then print its report
    /// (text, or `--json` with the warnings the bar collected, so that a
    /// script sees them too). Returns the report for the exit code.
    pub fn run_reported<T: Serialize>(
        &self,
        op: impl FnOnce(&Bar) -> trove_repo::Result<T>,
        text: impl FnOnce(&T),
    ) -> Result<T> {
        let bar = Bar::new(self.json);
        let r = op(&bar);
        bar.finish();
        let report = r?;
        let row = WithWarnings {
            report: &report,
            warnings: bar.warnings(),
        };
        self.emit(&row, |row| text(row.report))?;
        Ok(report)
    }
}

/// A report and the warnings met on the way, as `--json` prints them.
#[derive(Serialize)]
struct WithWarnings<'a, T> {
    #[serde(flatten)]
    report: &'a T,
    warnings: Vec<String>,
}

/// `trove ls | head`: once the reader of stdout has gone, printing fails
/// and `println!` panics. Leave quietly instead, with the status a Unix
/// tool killed by SIGPIPE has (128 + 13), as `ls` or `grep` would. Any
/// other panic is reported as before.
pub fn quiet_when_stdout_reader_leaves() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if stdout_reader_gone() {
            std::process::exit(141);
        }
        report(info)
    }));
}

/// Whether stdout is a pipe or socket whose reading end is closed: the
/// kernel then reports an error condition on it.
fn stdout_reader_gone() -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let out = std::io::stdout();
    let mut fds = [PollFd::new(&out, PollFlags::OUT)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    poll(&mut fds, Some(&now)).is_ok() && fds[0].revents().contains(PollFlags::ERR)
}

/// Log what a node does (info) when running one; otherwise only errors,
/// which Trove reports in its own words anyway. `TROVE_LOG` overrides.
pub fn init_logging(node: bool) {
    let default = if node {
        "info,iroh=warn,noq=warn,noq_proto=warn,iroh_mdns_address_lookup=warn,swarm_discovery=warn"
    } else {
        // iroh reports a peer that vanished mid-connection as an error.
        "error,iroh=off"
    };
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_env("TROVE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // The S3 request signer logs the credentials it loads at debug level:
    // whatever TROVE_LOG asks, it says nothing below a warning, so no
    // secret reaches a log (docs/design.md §6b.2).
    let no_secrets = tracing_subscriber::filter::filter_fn(|m| {
        !(m.target().starts_with("reqsign") && *m.level() > tracing::Level::WARN)
    });
    // Global filters, not per-layer ones: with per-layer filters the
    // registry kept every span of the QUIC stack (disabled or not), about
    // 3% of a restore from node peers (docs/performance.md, seventh round).
    tracing_subscriber::registry()
        .with(filter)
        .with(no_secrets)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .init();
}

/// `TROVE_HOME`, else `$XDG_DATA_HOME/trove`, else `~/.local/share/trove`.
pub fn home_dir() -> Result<PathBuf> {
    if let Some(h) = std::env::var_os("TROVE_HOME") {
        return Ok(PathBuf::from(h));
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME") {
        return Ok(PathBuf::from(x).join("trove"));
    }
    let home = std::env::var_os("HOME").context("neither TROVE_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".local/share/trove"))
}

/// How long a command waits for a step of `trove daemon` (a backup, an
/// audit, a repair) to let go of the index.
const DAEMON_STEP_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// Open `TROVE_HOME`, telling the user about permissions that had to be
/// restricted (a home readable by other users). When `trove daemon` runs
/// on the home, wait for its step under way; otherwise a busy index is an
/// error at once (naming its holder).
pub fn open_home() -> Result<Home> {
    let dir = home_dir()?;
    if trove_daemon::instance::running(&dir).is_some() {
        return open_home_waiting(DAEMON_STEP_WAIT);
    }
    let home = Home::open(&dir)?;
    for line in &home.made_private {
        eprintln!("warning: {line}");
    }
    Ok(home)
}

/// [`open_home`], waiting up to `wait` for another process that holds the
/// index (a backup), and saying whom it waits for.
pub fn open_home_waiting(wait: std::time::Duration) -> Result<Home> {
    let home = Home::open_waiting(&home_dir()?, wait, &|holder| {
        if let Some(h) = holder {
            eprintln!(
                "waiting up to {}s for another trove process to finish: {h}",
                wait.as_secs()
            );
        }
    })?;
    for line in &home.made_private {
        eprintln!("warning: {line}");
    }
    Ok(home)
}

/// The passphrase from `TROVE_PASSPHRASE`, from the file
/// `TROVE_PASSPHRASE_FILE` names (for a service: private to its user), or
/// asked on the terminal (twice when `confirm`).
pub fn passphrase(confirm: bool) -> Result<String> {
    passphrase_asking("passphrase: ", confirm)
}

/// [`passphrase`], asking with `prompt` on a terminal.
pub fn passphrase_asking(prompt: &str, confirm: bool) -> Result<String> {
    if let Ok(p) = std::env::var("TROVE_PASSPHRASE") {
        return Ok(p);
    }
    if let Some(path) = std::env::var_os("TROVE_PASSPHRASE_FILE") {
        return passphrase_file(std::path::Path::new(&path));
    }
    let p = rpassword::prompt_password(prompt)
        .context("no TROVE_PASSPHRASE set and no terminal to ask for a passphrase")?;
    if confirm {
        let again = rpassword::prompt_password("again: ")?;
        anyhow::ensure!(p == again, "the two passphrases differ");
    }
    Ok(p)
}

/// The passphrase in `path` (its first line), refused if other users may
/// read the file.
fn passphrase_file(path: &std::path::Path) -> Result<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).with_context(|| {
        format!(
            "TROVE_PASSPHRASE_FILE names {}, which cannot be read",
            path.display()
        )
    })?;
    anyhow::ensure!(
        meta.mode() & 0o077 == 0,
        "{} holds the passphrase but other users may read it (mode {:04o}); run `chmod 600 {}`",
        path.display(),
        meta.mode() & 0o777,
        path.display()
    );
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the passphrase from {}", path.display()))?;
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

/// A passphrase for a new keyfile: asked twice, never empty.
pub fn new_passphrase() -> Result<String> {
    let pass = passphrase(true)?;
    anyhow::ensure!(
        !pass.is_empty(),
        "an empty passphrase protects nothing; choose one"
    );
    Ok(pass)
}

pub fn unlock(home: &Home) -> Result<Owner> {
    Ok(home.unlock(passphrase(false)?.as_bytes())?)
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM: how `node run` and `ui` stop.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
