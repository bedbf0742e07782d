//! `trove daemon`: look after every container of the home until stopped.

use crate::context::{home_dir, open_home_waiting, unlock};
use anyhow::Result;
use std::process::ExitCode;
use std::time::Duration;
use trove_daemon::{forward_signals, Daemon, Instance, Stopped};
use trove_repo::{parse_duration, Config, RepoError};

/// Settings given here override `config.toml` (`trove config show`).
#[derive(clap::Args)]
pub struct Args {
    /// Back up once the sources have been quiet this long [config: 10s].
    #[arg(long, value_parser = parse_duration)]
    debounce: Option<Duration>,
    /// ... but no later than this after the first change [config: 60s].
    #[arg(long, value_parser = parse_duration)]
    max_delay: Option<Duration>,
    /// Walk every source this often whatever the watcher says [config: 1h].
    #[arg(long, value_parser = parse_duration)]
    rescan: Option<Duration>,
    /// Audit a sample of every peer's fragments this often [config: 1h].
    #[arg(long, value_parser = parse_duration)]
    audit_every: Option<Duration>,
    /// Fragments audited per peer and round [config: 16].
    #[arg(long, value_name = "N")]
    audit_sample: Option<u32>,
    /// A peer unreachable this long is lost and its fragments are repaired
    /// elsewhere [config: 72h].
    #[arg(long, value_parser = parse_duration)]
    peer_lost_after: Option<Duration>,
    /// MiB a repair round may read plus write [config: 4096].
    #[arg(long, value_name = "MIB")]
    repair_budget: Option<u64>,
    /// Do not repair (audits still run and report).
    #[arg(long)]
    no_repair: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let dir = home_dir()?;
    let mut config = Config::load(&dir)?;
    let d = &mut config.daemon;
    d.debounce = args.debounce.unwrap_or(d.debounce);
    d.max_delay = args.max_delay.unwrap_or(d.max_delay);
    d.rescan = args.rescan.unwrap_or(d.rescan);
    d.audit_every = args.audit_every.unwrap_or(d.audit_every);
    d.audit_sample = args.audit_sample.unwrap_or(d.audit_sample);
    d.peer_lost_after = args.peer_lost_after.unwrap_or(d.peer_lost_after);
    d.repair_budget_mib = args.repair_budget.unwrap_or(d.repair_budget_mib);
    d.repair &= !args.no_repair;
    let text = toml::to_string(&config)?;
    Config::parse(&text).map_err(|reason| RepoError::Config {
        path: "the command line".into(),
        reason,
    })?;
    // Refused before the passphrase is asked for.
    let _instance = Instance::acquire(&dir)?;
    let owner = {
        let home = open_home_waiting(Duration::from_secs(300))?;
        unlock(&home)?
    };
    let (tx, rx) = crossbeam_channel::unbounded();
    forward_signals(tx.clone())?;
    match Daemon::new(&dir, owner, &config, tx, rx)?.run() {
        Stopped::Asked => Ok(ExitCode::SUCCESS),
        // A service manager restarts it, unlocking the new secret.
        Stopped::SecretRotated => Ok(ExitCode::FAILURE),
    }
}
