//! `trove backup`: an incremental snapshot of a container.

use crate::context::{open_home, unlock, Out};
use crate::ui;
use anyhow::Result;
use std::process::ExitCode;
use trove_repo::{BackupOptions, BackupReport};

#[derive(clap::Args)]
pub struct Args {
    /// Container name; optional when there is only one.
    name: Option<String>,
    #[command(flatten)]
    opts: BackupOptions,
}

pub fn run(args: Args, out: Out) -> Result<ExitCode> {
    let home = open_home()?;
    let owner = unlock(&home)?;
    let c = home
        .containers()
        .open_or_only(&owner, args.name.as_deref())?;
    let r = out.run_reported(
        |bar| trove_repo::backup(&home, &owner, &c.manifest.name, &args.opts, bar),
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
    for p in &r.skipped {
        eprintln!("  skipped {}: {}", p.path.display(), p.reason);
    }
    for p in &r.unreadable {
        eprintln!("  UNREADABLE {}: {}", p.path.display(), p.error);
    }
}
