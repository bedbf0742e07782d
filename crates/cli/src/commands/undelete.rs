//! `trove undelete`: snapshots deleted within the peers' grace period, and
//! bringing one back with everything it references.

use crate::context::{open_home, unlock, Out};
use crate::ui::{self, Bar};
use anyhow::Result;
use std::process::ExitCode;
use trove_repo::UndeleteReport;

#[derive(clap::Args)]
pub struct Args {
    /// The container.
    container: String,
    /// The snapshot to bring back (4+ hex digits of its id); without it,
    /// list what can be brought back.
    snapshot: Option<String>,
}

pub fn run(args: Args, out: Out) -> Result<ExitCode> {
    let home = open_home()?;
    let owner = unlock(&home)?;
    let bar = Bar::new(out.json);
    let r = match &args.snapshot {
        None => trove_repo::list_deleted(&home, &owner, &args.container, &bar),
        Some(s) => trove_repo::undelete(&home, &owner, &args.container, s, &bar),
    };
    bar.finish();
    let r = r?;
    out.emit(&r, print)?;
    Ok(if r.missing.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

fn print(r: &UndeleteReport) {
    match r.restored {
        None if r.snapshots.is_empty() => println!(
            "no deleted snapshot of `{}` is left in the peers' trash",
            r.container
        ),
        None => {
            println!(
                "deleted snapshots of `{}` that can be brought back (`trove undelete {} ID`):",
                r.container, r.container
            );
            for s in &r.snapshots {
                println!(
                    "  {}  {}  {:>8} files  {:>10}  {}  deleted {}  on {}",
                    s.short_id,
                    s.time,
                    s.files,
                    ui::bytes(s.bytes),
                    s.host,
                    s.deleted_unix_ns
                        .map_or("? (forgotten, still live on a peer)".into(), |ns| {
                            trove_repo::utc(ns as i64)
                        }),
                    s.peers.join(", ")
                );
            }
        }
        Some(id) => {
            println!(
                "snapshot {} of `{}` is back: {} pack(s) recorded again, {} fragment(s) brought back from the peers' trash",
                id.short(),
                r.container,
                r.packs_restored,
                r.fragments_undeleted
            );
            if r.packs_unrecoverable > 0 {
                println!(
                    "  {} pack(s) the log knew are gone for good (their trash was emptied)",
                    r.packs_unrecoverable
                );
            }
            for m in &r.missing {
                eprintln!("  MISSING {m}");
            }
            if r.missing.is_empty() {
                println!(
                    "  every file of the snapshot can be restored: `trove restore {}`",
                    id.short()
                );
            }
        }
    }
}
