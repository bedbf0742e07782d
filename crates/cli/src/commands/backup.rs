//! `trove backup`: an incremental snapshot of a container.

use crate::context::{home_dir, open_home, passphrase, Out};
use crate::ui;
use anyhow::{Context, Result};
use serde_json::Value;
use std::path::Path;
use std::process::ExitCode;
use trove_repo::{BackupOptions, BackupReport, StageProfile};

#[derive(clap::Args)]
pub struct Args {
    /// Container name; optional when there is only one.
    name: Option<String>,
    #[command(flatten)]
    opts: BackupOptions,
    /// Walk the sources here even when `trove daemon` runs (by default the
    /// daemon, whose watcher knows what changed, does the backup).
    #[arg(long)]
    no_daemon: bool,
}

pub fn run(args: Args, out: Out) -> Result<ExitCode> {
    let home = open_home()?;
    let name = home.containers().name_or_only(args.name.as_deref())?;
    let dir = home_dir()?;
    if let Some(pid) = trove_daemon::request::serving(&dir).filter(|_| asks_daemon(&args)) {
        // The daemon needs the index for the backup.
        drop(home);
        match ask_daemon(&dir, pid, &name, out)? {
            Some(code) => return Ok(code),
            None => return run_here(&name, &args, open_home()?, out),
        }
    }
    run_here(&name, &args, home, out)
}

/// Whether the backup asked for is one the daemon makes: default settings.
fn asks_daemon(args: &Args) -> bool {
    let default = BackupOptions::default();
    !args.no_daemon
        && !args.opts.profile
        && args.opts.compression == default.compression
        && args.opts.workers == default.workers
}

/// Let the daemon `pid` back `name` up; `None` if it stopped before it
/// answered or does not look after `name` (the backup is then made here).
fn ask_daemon(dir: &Path, pid: u32, name: &str, out: Out) -> Result<Option<ExitCode>> {
    if !out.json {
        eprintln!(
            "asking trove daemon (pid {pid}), which watches the sources, to back up `{name}`..."
        );
    }
    let answer = match trove_daemon::request::ask(dir, pid, name) {
        Ok(a) => a,
        Err(e @ trove_daemon::request::AskError::Stopped { .. }) => {
            eprintln!("warning: {e}; backing up here");
            return Ok(None);
        }
        Err(e) => {
            return Err(e).context("asking the daemon for a backup (`--no-daemon` backs up here)")
        }
    };
    if let Some(why) = answer.declined {
        eprintln!("warning: {why}; backing up here");
        return Ok(None);
    }
    let Some(mut report) = answer.report else {
        anyhow::bail!(
            "trove daemon (pid {pid}) could not back up `{name}`: {}",
            answer.error.as_deref().unwrap_or("no reason given")
        );
    };
    if let Some(row) = report.as_object_mut() {
        // Its warnings are in the daemon's log.
        row.insert("warnings".into(), Value::Array(Vec::new()));
        row.insert("by_daemon".into(), Value::from(pid));
    }
    out.emit(&report, print_answer)?;
    let unreadable = report["unreadable"].as_array().map_or(0, Vec::len);
    if unreadable > 0 {
        eprintln!(
            "{unreadable} file(s) or folder(s) could not be read; the snapshot has everything else"
        );
        return Ok(Some(ExitCode::from(3)));
    }
    Ok(Some(ExitCode::SUCCESS))
}

/// The daemon's report (`trove backup --json`'s row), for people.
fn print_answer(r: &Value) {
    let n = |k: &str| r[k].as_u64().unwrap_or(0);
    let snapshot = r["snapshot"].as_str().unwrap_or("?");
    println!(
        "snapshot {} of `{}` committed by trove daemon (pid {})",
        snapshot.get(..8).unwrap_or(snapshot),
        r["container"].as_str().unwrap_or("?"),
        n("by_daemon")
    );
    println!(
        "  files: {} new, {} changed, {} unchanged; {} folders",
        n("files_new"),
        n("files_changed"),
        n("files_unchanged"),
        n("dirs")
    );
    let walk = &r["guided_walk"];
    let how = if walk.is_object() {
        format!(
            "; the watcher's changes: {} folder(s) walked, {} kept as they were",
            walk["walked"], walk["kept"]
        )
    } else {
        "; every folder walked".to_owned()
    };
    println!(
        "  read {} of {}, stored {} in {} new packs, {:.2}s{how}",
        ui::bytes(n("bytes_read")),
        ui::bytes(n("bytes_total")),
        ui::bytes(n("bytes_stored")),
        n("packs_new"),
        r["seconds"].as_f64().unwrap_or(0.0),
    );
    for p in r["skipped"].as_array().into_iter().flatten() {
        eprintln!("  skipped {}: {}", p["path"], p["reason"]);
    }
    for p in r["unreadable"].as_array().into_iter().flatten() {
        eprintln!("  UNREADABLE {}: {}", p["path"], p["error"]);
    }
}

/// The backup made by this process: the sources walked here.
fn run_here(name: &str, args: &Args, home: trove_repo::Home, out: Out) -> Result<ExitCode> {
    // The passphrase is stretched while the sources are walked.
    let pass = passphrase(false)?;
    let r = out.run_reported(
        |bar| {
            trove_repo::backup_unlocking(&home, pass.as_bytes(), name, &args.opts, bar)
                .map(|(_owner, report)| report)
        },
        print,
    )?;
    if !r.unreadable.is_empty() {
        eprintln!(
            "{} file(s) or folder(s) could not be read; the snapshot has everything else",
            r.unreadable.len()
        );
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

fn print(r: &BackupReport) {
    let s = &r.snapshot.summary;
    println!(
        "snapshot {} of `{}` committed",
        r.snapshot.id.short(),
        r.container
    );
    println!(
        "  files: {} new, {} changed, {} unchanged; {} folders",
        s.files_new, s.files_changed, s.files_unchanged, s.dirs
    );
    println!(
        "  read {} of {}, stored {} in {} new packs, {:.1}s ({}/s)",
        ui::bytes(s.bytes_read),
        ui::bytes(s.bytes_total),
        ui::bytes(s.bytes_stored),
        s.packs_new,
        r.seconds,
        ui::bytes((s.bytes_read as f64 / r.seconds.max(1e-3)) as u64)
    );
    if let Some(p) = &r.profile {
        print_profile(p, s.bytes_read);
    }
    for p in &r.skipped {
        eprintln!("  skipped {}: {}", p.path.display(), p.reason);
    }
    for p in &r.unreadable {
        eprintln!("  UNREADABLE {}: {}", p.path.display(), p.error);
    }
}

/// The `--profile` table: each stage's CPU and thread time, its speed on
/// one core, and the pipeline limit (trove_repo's profile module).
fn print_profile(p: &StageProfile, bytes_read: u64) {
    println!("  stage          CPU s   thread s   MB/s per core (of its input)");
    for row in &p.stages {
        let speed = if row.cpu_seconds > 0.0 && row.bytes > 0 {
            format!("{:.0}", row.bytes as f64 / 1e6 / row.cpu_seconds)
        } else {
            "-".into()
        };
        println!(
            "  {:<12} {:>7.2} {:>10.2}   {speed}",
            row.stage, row.cpu_seconds, row.wall_seconds
        );
    }
    println!(
        "  whole backup: {:.2} s, {:.2} CPU s on {} cores; pipeline limit {:.2} s ({:.0} MB/s): {:.0}% of the limit",
        p.wall_seconds,
        p.cpu_seconds,
        p.cores,
        p.limit_seconds,
        bytes_read as f64 / 1e6 / p.limit_seconds.max(1e-9),
        p.limit_fraction * 100.0
    );
    if p.early_files > 0 {
        println!("  files read while the walk went on: {}", p.early_files);
    }
    if !p.peers.is_empty() {
        println!("  peer         fragments        MB   put s   MB/s (one stream)");
        for w in &p.peers {
            println!(
                "  {:<12} {:>9} {:>9.1} {:>7.2}   {:.1}",
                w.peer,
                w.fragments,
                w.bytes as f64 / 1e6,
                w.seconds,
                w.bytes as f64 / 1e6 / w.seconds.max(1e-9)
            );
        }
    }
}
