//! `trove ls`: the files of a snapshot.

use crate::context::{open_home, unlock, Out};
use crate::ui;
use anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// An id, a unique id prefix (4+ hex digits) or CONTAINER:latest.
    snapshot: String,
    /// Only this snapshot-relative path.
    path: Option<PathBuf>,
}

pub fn run(args: Args, out: Out) -> Result<ExitCode> {
    let home = open_home()?;
    let owner = unlock(&home)?;
    let entries = trove_repo::ls(&home, &owner, &args.snapshot, args.path.as_deref())?;
    out.emit(&entries, |entries| {
        for e in entries {
            let size = if e.kind == "file" {
                ui::bytes(e.size)
            } else {
                String::new()
            };
            println!(
                "{:<7} {:o} {:>10} {}  {}",
                e.kind,
                e.mode,
                size,
                trove_repo::utc(e.mtime_ns),
                e.path
            );
        }
    })?;
    Ok(ExitCode::SUCCESS)
}
