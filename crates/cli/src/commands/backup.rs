//! `trove backup`: an incremental snapshot of a container.

use crate::context::{open_home, passphrase, Out};
use crate::ui;
use anyhow::Result;
use std::process::ExitCode;
use trove_repo::{BackupOptions, BackupReport, StageProfile};

#[derive(clap::Args)]
pub struct Args {
    /// Container name; optional when there is only one.
    name: Option<String>,
    #[command(flatten)]
    opts: BackupOptions,
}

pub fn run(args: Args, out: Out) -> Result<ExitCode> {
    let home = open_home()?;
    let name = home.containers().name_or_only(args.name.as_deref())?;
    // The passphrase is stretched while the sources are walked.
    let pass = passphrase(false)?;
    let r = out.run_reported(
        |bar| {
            trove_repo::backup_unlocking(&home, pass.as_bytes(), &name, &args.opts, bar)
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
