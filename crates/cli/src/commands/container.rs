//! `trove container create | list | set`.

use crate::context::{open_home, unlock, Out};
use anyhow::Result;
use clap::Subcommand;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use trove_core::manifest::Redundancy;
use trove_repo::{format_duration, Config, ContainerSchedule, KeepPolicy, Retention};

#[derive(Subcommand)]
pub enum ContainerCmd {
    /// Create a container over one or more folders.
    Create {
        name: String,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// K+M: data and parity fragments per pack (default from the peer count, e.g. 4+2 for six).
        #[arg(long)]
        redundancy: Option<Redundancy>,
    },
    /// List containers: redundancy, snapshots, sources.
    List,
    /// Set a container's schedule and retention for `trove daemon` (config.toml).
    ///
    /// The retention is what the daemon keeps when it forgets and prunes,
    /// `--prune-every` how often it does, `--watch` whether it backs up
    /// changes as they happen. Flags not given keep their value; with none,
    /// prints the schedule.
    Set(SetArgs),
}

#[derive(clap::Args)]
pub struct SetArgs {
    /// Container name.
    name: String,
    /// The new retention rules (they replace the same rules; the others stay).
    #[command(flatten)]
    keep: KeepPolicy,
    /// Remove every retention rule first (none left: keep every snapshot).
    #[arg(long)]
    clear_retention: bool,
    /// Apply the retention (forget, then prune) this often, e.g. 12h, 1d.
    #[arg(long, value_name = "DURATION", value_parser = parse_interval)]
    prune_every: Option<Duration>,
    /// Back up changes as they happen.
    #[arg(long, conflicts_with = "no_watch")]
    watch: bool,
    /// Back up only at each rescan (`daemon.rescan` in config.toml).
    #[arg(long)]
    no_watch: bool,
}

/// A `--prune-every` duration: [`trove_repo::parse_duration`], not zero.
fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = trove_repo::parse_duration(s)?;
    if d.is_zero() {
        return Err("must be longer than 0s".into());
    }
    Ok(d)
}

pub fn run(cmd: ContainerCmd, out: Out) -> Result<ExitCode> {
    match cmd {
        ContainerCmd::Create {
            name,
            paths,
            redundancy,
        } => {
            let home = open_home()?;
            let owner = unlock(&home)?;
            let c = home
                .containers()
                .create(&owner, &name, &paths, redundancy)?;
            let r = c.layout;
            out.emit(&c, |c| {
                println!(
                    "created container `{}` over {} ({r}: any {} of {} fragments rebuild a pack)",
                    c.name,
                    c.sources.join(", "),
                    r.k,
                    r.total()
                )
            })?;
            if c.peers < r.total() {
                eprintln!(
                    "warning: {r} needs {} peers to keep every fragment of a pack on a different peer; {} configured",
                    r.total(),
                    c.peers
                );
            }
        }
        ContainerCmd::List => {
            let home = open_home()?;
            let rows = home.containers().list()?;
            out.emit(&rows, |rows| {
                if rows.is_empty() {
                    println!(
                        "no containers; create one with `trove container create NAME PATH...`"
                    );
                }
                for r in rows {
                    println!(
                        "{:<16} {:<5} {:>3} snapshots  {}",
                        r.name,
                        r.redundancy,
                        r.snapshots,
                        r.sources.join(", ")
                    );
                }
            })?;
        }
        ContainerCmd::Set(args) => return set(args, out),
    }
    Ok(ExitCode::SUCCESS)
}

/// What `container set` prints: the container's schedule now.
#[derive(Serialize)]
struct ScheduleRow {
    container: String,
    #[serde(flatten)]
    schedule: ContainerSchedule,
    /// The retention in `trove forget` flags, or `keep everything`.
    keeps: String,
    /// Whether config.toml was written (false: no flag was given).
    changed: bool,
    config_file: PathBuf,
}

fn set(args: SetArgs, out: Out) -> Result<ExitCode> {
    // Holding the home (its index) while the file is read and written also
    // keeps two `container set` from losing each other's change.
    let home = open_home()?;
    home.containers().manifest(&args.name)?;
    let dir = home.dir();
    let mut config = Config::load(dir)?;
    let watch = match (args.watch, args.no_watch) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    let changed = args.clear_retention
        || !args.keep.is_empty()
        || args.prune_every.is_some()
        || watch.is_some();
    let schedule = if changed {
        let entry = config.containers.entry(args.name.clone()).or_default();
        if args.clear_retention {
            entry.retention = Retention::default();
        }
        replace_rules(&mut entry.retention, Retention::from_policy(&args.keep));
        if let Some(every) = args.prune_every {
            entry.prune_every = every;
        }
        if let Some(w) = watch {
            entry.watch = w;
        }
        let schedule = entry.clone();
        config.save(dir)?;
        schedule
    } else {
        config.container(&args.name)
    };
    let row = ScheduleRow {
        container: args.name,
        keeps: schedule.retention.describe(),
        schedule,
        changed,
        config_file: Config::path(dir),
    };
    out.emit(&row, print_schedule)?;
    Ok(ExitCode::SUCCESS)
}

/// Each rule `given` sets replaces the same rule in `into`.
fn replace_rules(into: &mut Retention, given: Retention) {
    // Taken apart field by field so that a new rule cannot be forgotten here.
    let Retention {
        keep_last,
        keep_hourly,
        keep_daily,
        keep_weekly,
        keep_monthly,
        keep_yearly,
        keep_within,
    } = given;
    into.keep_last = keep_last.or(into.keep_last);
    into.keep_hourly = keep_hourly.or(into.keep_hourly);
    into.keep_daily = keep_daily.or(into.keep_daily);
    into.keep_weekly = keep_weekly.or(into.keep_weekly);
    into.keep_monthly = keep_monthly.or(into.keep_monthly);
    into.keep_yearly = keep_yearly.or(into.keep_yearly);
    into.keep_within = keep_within.or(into.keep_within.take());
}

fn print_schedule(r: &ScheduleRow) {
    let s = &r.schedule;
    println!("container `{}`:", r.container);
    if s.retention.is_empty() {
        println!("  retention    none: every snapshot is kept, nothing is forgotten");
    } else {
        println!("  retention    {}", r.keeps);
    }
    println!(
        "  prune every  {} (forget by the retention, then prune)",
        format_duration(s.prune_every)
    );
    if s.watch {
        println!("  watch        on: changes are backed up as they happen");
    } else {
        println!("  watch        off: backed up at each rescan only");
    }
    if r.changed {
        println!(
            "saved in {}; a running `trove daemon` takes it in within 10 seconds",
            r.config_file.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_rules_replace_theirs_and_leave_the_others() {
        let mut r = Retention {
            keep_daily: Some(7),
            keep_weekly: Some(4),
            keep_within: Some("30d".into()),
            ..Default::default()
        };
        replace_rules(
            &mut r,
            Retention {
                keep_daily: Some(14),
                keep_last: Some(3),
                ..Default::default()
            },
        );
        assert_eq!(
            r.describe(),
            "--keep-last 3 --keep-daily 14 --keep-weekly 4 --keep-within 30d"
        );
        replace_rules(&mut r, Retention::default());
        assert_eq!(r.keep_daily, Some(14));
        assert_eq!(r.keep_within.as_deref(), Some("30d"));
    }

    #[test]
    fn prune_every_is_a_duration_longer_than_zero() {
        assert_eq!(parse_interval("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("daily").is_err());
    }
}
