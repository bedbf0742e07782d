//! `trove prune`: delete what no snapshot uses, repack what is mostly unused.

use crate::context::{open_home_waiting, unlock, Out};
use crate::ui;
use anyhow::Result;
use std::process::ExitCode;
use trove_repo::{PruneOptions, PruneReport};

#[derive(clap::Args)]
pub struct Args {
    /// Container name; optional when there is only one.
    name: Option<String>,
    #[command(flatten)]
    opts: PruneOptions,
}

pub fn run(args: Args, out: Out) -> Result<ExitCode> {
    let home = open_home_waiting(args.opts.wait)?;
    let owner = unlock(&home)?;
    out.run_reported(
        |bar| trove_repo::prune(&home, &owner, args.name.as_deref(), &args.opts, bar),
        print,
    )?;
    Ok(ExitCode::SUCCESS)
}

pub fn print(r: &PruneReport) {
    println!("{r}");
    let d = &r.deletions;
    if !r.dry_run {
        println!(
            "  deleted {} fragment(s) ({}) and {} manifest(s) on the peers, {:.1}s",
            d.fragments_deleted,
            ui::bytes(d.fragment_bytes_freed),
            d.manifests_deleted,
            r.seconds
        );
    }
    if r.abandoned_uploads > 0 {
        println!(
            "  {} pack(s) of interrupted uploads {}",
            r.abandoned_uploads,
            if r.dry_run {
                "would be deleted"
            } else {
                "deleted"
            }
        );
    }
    if r.tmp_files_removed > 0 {
        println!(
            "  removed {} stale temporary file(s) ({}) from folder peers",
            r.tmp_files_removed,
            ui::bytes(r.tmp_bytes_removed)
        );
    }
    if r.trash_files_purged > 0 {
        println!(
            "  emptied {} file(s) from folder peers' trash/ (deleted longer ago than --folder-trash-grace)",
            r.trash_files_purged
        );
    }
    for p in &d.pending {
        println!("  later: {p}");
    }
}
