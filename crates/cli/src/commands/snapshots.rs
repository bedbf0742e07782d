//! `trove snapshots`: the snapshots of one container or all.

use crate::context::{open_home, Out};
use crate::ui;
use anyhow::Result;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Container name; all containers when omitted.
    name: Option<String>,
}

pub fn run(args: Args, out: Out) -> Result<ExitCode> {
    let rows = open_home()?
        .containers()
        .snapshot_rows(args.name.as_deref())?;
    out.emit(&rows, |rows| {
        if rows.is_empty() {
            println!("no snapshots yet; run `trove backup`");
            return;
        }
        println!(
            "{:<10} {:<16} {:<20} {:>8} {:>10}  host",
            "id", "container", "time (UTC)", "files", "size"
        );
        for r in rows {
            println!(
                "{:<10} {:<16} {:<20} {:>8} {:>10}  {}",
                r.short_id,
                r.container,
                r.time,
                r.files,
                ui::bytes(r.bytes),
                r.host
            );
        }
    })?;
    Ok(ExitCode::SUCCESS)
}
