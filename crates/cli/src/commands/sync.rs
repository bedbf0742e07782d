//! `trove sync`: rebuild the local index from the peers.

use crate::context::{open_home, unlock, Out};
use crate::ui::Bar;
use anyhow::Result;
use std::process::ExitCode;
use trove_repo::SyncReport;

pub fn run(out: Out) -> Result<ExitCode> {
    let home = open_home()?;
    let owner = unlock(&home)?;
    let bar = Bar::new(out.json);
    let r = trove_repo::sync(&home, &owner, &bar);
    bar.finish();
    out.emit(&r?, print)?;
    Ok(ExitCode::SUCCESS)
}

fn print(r: &SyncReport) {
    println!(
        "synced {} container(s) ({}): {} snapshots, {} index segments, {} packs ({} round(s) of reading peers)",
        r.containers.len(),
        r.containers.join(", "),
        r.snapshots,
        r.segments,
        r.packs,
        r.rounds
    );
    for p in &r.peers {
        match &p.error {
            Some(e) => println!("  peer `{}`: could not be read: {e}", p.peer),
            None => println!(
                "  peer `{}`: {} container manifest(s), {} snapshot(s), {} segment(s){}",
                p.peer,
                p.manifests,
                p.snapshots,
                p.segments,
                if p.in_trash > 0 {
                    format!(" ({} of them in its trash)", p.in_trash)
                } else {
                    String::new()
                }
            ),
        }
    }
    for o in &r.from_trash {
        println!("  restored {o}");
    }
    for (local, roster) in &r.peers_recognised {
        println!("  peer `{local}` is roster peer `{roster}`");
    }
    for p in &r.peers_added {
        println!("  found peer {p}");
    }
    for p in &r.refused {
        println!("  REFUSED {p}");
    }
}
