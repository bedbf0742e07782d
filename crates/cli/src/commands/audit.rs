//! `trove audit`: one audit round now, as `trove daemon` runs every
//! `audit_every`: each peer proves random fragments (BLAKE3/bao ranges),
//! peer states are updated, and what passed is recorded for the
//! reciprocity ledger (and written to a linked node's `proofs.json`).

use crate::context::{open_home, Out};
use anyhow::Result;
use std::process::ExitCode;
use std::time::Duration;
use trove_repo::{audit_round, AuditOptions, AuditRound, Config};

#[derive(clap::Args)]
pub struct Args {
    /// Fragments asked of each peer [default: the daemon's `audit_sample`].
    #[arg(long)]
    sample: Option<u32>,
    /// A peer unreachable this long is lost (`30s`, `72h`) [default: the
    /// daemon's `peer_lost_after`].
    #[arg(long, value_parser = trove_repo::parse_duration)]
    peer_lost_after: Option<Duration>,
}

pub fn run(args: Args, out: Out) -> Result<ExitCode> {
    let home = open_home()?;
    let settings = Config::load(home.dir())?.daemon;
    let opts = AuditOptions {
        per_peer: args.sample.unwrap_or(settings.audit_sample),
        peer_lost_after: args.peer_lost_after.unwrap_or(settings.peer_lost_after),
        storm_guard: true,
    };
    let round = out.run_reported(|bar| audit_round(&home, &opts, bar), print)?;
    // Exit 1 when a peer failed to show a fragment intact, as `check` does.
    Ok(if round.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print(r: &AuditRound) {
    println!(
        "audit: {} fragment(s) proven, {} failed, {:.1}s",
        r.passed, r.failed, r.seconds
    );
    for p in &r.peers {
        let how = p.method.unwrap_or("not asked");
        println!(
            "  peer `{}`: {}, {} of {} fragment(s) proven ({how})",
            p.health.peer, p.health.state, p.passed, p.fragments_held
        );
        for f in &p.failed {
            println!(
                "    fragment {} of pack {}: {} ({})",
                f.fragment.short(),
                f.pack.short(),
                f.kind,
                f.detail
            );
        }
    }
    if let Some(storm) = &r.storm {
        println!("  {storm}");
    }
}
