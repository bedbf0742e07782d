//! `trove repair`: rebuild missing, corrupt and lost fragments so every
//! pack is back at `k+m` fragments on distinct peers.

use crate::context::{open_home, unlock, Out};
use crate::ui;
use anyhow::Result;
use std::process::ExitCode;
use trove_repo::{PeerState, RepairOptions, RepairReport};

#[derive(clap::Args)]
pub struct Args {
    /// Container name; all containers when omitted.
    name: Option<String>,
    #[command(flatten)]
    opts: RepairOptions,
}

pub fn run(args: Args, out: Out) -> Result<ExitCode> {
    let home = open_home()?;
    let owner = unlock(&home)?;
    let r = out.run_reported(
        |bar| trove_repo::repair(&home, &owner, args.name.as_deref(), &args.opts, bar),
        print,
    )?;
    // 3: finished, but some pack is not back at full redundancy (or lost).
    Ok(if r.full_redundancy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

fn print(r: &RepairReport) {
    let (rebuilt, repaired) = if r.dry_run {
        ("would rebuild", "would be repaired")
    } else {
        ("rebuilt", "repaired")
    };
    for h in r.peers.iter().filter(|h| h.state != PeerState::Online) {
        let counts = if h.state == PeerState::Suspect {
            "its fragments still count"
        } else {
            "its fragments are rebuilt elsewhere"
        };
        println!("peer `{}`: {} ({counts})", h.peer, h.describe());
    }
    for c in &r.containers {
        println!(
            "container `{}`: {} packs, {} healthy, {} damaged, {} lost{}",
            c.container,
            c.packs,
            c.healthy,
            c.repaired.len(),
            c.lost.len(),
            if c.roster_updated {
                "; roster updated"
            } else {
                ""
            }
        );
        for p in &c.repaired {
            println!(
                "  pack {}: {} — read {}, wrote {}, {:.2}s",
                p.pack.short(),
                if p.complete {
                    repaired
                } else {
                    "NOT back at full redundancy"
                },
                ui::bytes(p.bytes_read),
                ui::bytes(p.bytes_written),
                p.seconds
            );
            for f in &p.fragments {
                println!(
                    "    fragment {} on `{}`: {} → {}",
                    f.index,
                    f.from,
                    f.damage,
                    f.to.as_deref()
                        .map_or("nowhere".to_owned(), |t| format!("`{t}`"))
                );
            }
            if let Some(s) = &p.shortfall {
                println!("    {s}");
            }
        }
        for l in &c.lost {
            println!(
                "  pack {} is LOST: {} fragment(s) readable, {} on unreachable peers, {} needed",
                l.pack.short(),
                l.readable,
                l.on_suspect_peers,
                l.needed
            );
        }
        for f in &c.lost_files {
            println!(
                "  LOST file {} (snapshot(s) {})",
                f.path,
                f.snapshots.join(", ")
            );
        }
        for f in &c.unknown_folders {
            println!(
                "  LOST folder {} — its listing is in a lost pack, nothing below it can be named (snapshot(s) {})",
                f.path,
                f.snapshots.join(", ")
            );
        }
        if let Some(seg) = &c.segment {
            println!("  new locations recorded in index segment {}", seg.short());
        }
        if c.copies_deleted > 0 {
            println!(
                "  {} old cop(ies) deleted (into the peers' trash)",
                c.copies_deleted
            );
        }
    }
    for (peer, n) in &r.bad_data {
        println!("peer `{peer}` served {n} fragment(s) that do not match their ids");
    }
    for peer in &r.liars {
        println!("peer `{peer}` served a fragment wrong right after storing it: no fragment was left on it; check or remove it");
    }
    println!(
        "checked {} fragments ({} read); {} {} fragment(s) of {} pack(s): read {}, wrote {}; {:.1}s",
        r.fragments_checked,
        ui::bytes(r.bytes_checked),
        rebuilt,
        r.fragments_rebuilt,
        r.packs_repaired + r.packs_short,
        ui::bytes(r.bytes_read),
        ui::bytes(r.bytes_written),
        r.seconds
    );
    if r.full_redundancy {
        println!(
            "every pack {} at k+m fragments on distinct peers",
            if r.dry_run { "would be" } else { "is" }
        );
    }
    if r.packs_short > 0 {
        let add = if r.peers_needed > 0 {
            format!(
                ": add {} more peer(s) (`trove peer add`) and run `trove repair` again",
                r.peers_needed
            )
        } else {
            String::new()
        };
        println!("{} pack(s) not back at full redundancy{add}", r.packs_short);
    }
    if r.packs_lost > 0 {
        println!(
            "{} pack(s) lost: the files above cannot be restored from any snapshot that needs them",
            r.packs_lost
        );
    }
}
