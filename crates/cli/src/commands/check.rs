//! `trove check`: are the fragments and manifests where they should be?

use crate::context::{open_home, unlock, Out};
use crate::ui::Bar;
use anyhow::Result;
use std::process::ExitCode;
use trove_repo::{CheckOptions, CheckReport};

#[derive(clap::Args)]
pub struct Args {
    /// Container name; all containers when omitted.
    name: Option<String>,
    #[command(flatten)]
    opts: CheckOptions,
}

pub fn run(args: Args, out: Out) -> Result<ExitCode> {
    let home = open_home()?;
    let owner = unlock(&home)?;
    let bar = Bar::new(out.json);
    let r = trove_repo::check(&home, &owner, args.name.as_deref(), &args.opts, &bar);
    bar.finish();
    let r = r?;
    out.emit(&r, |r| print(r, &args.opts))?;
    Ok(if r.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print(r: &CheckReport, opts: &CheckOptions) {
    let mut line = format!(
        "{} container(s), {} packs, {}/{} fragments good",
        r.containers, r.packs, r.fragments_ok, r.fragments
    );
    if opts.read_data {
        line += &format!(
            ", {} blobs verified, {} snapshots walked",
            r.blobs_verified, r.snapshots
        );
    }
    if opts.audit {
        line += &format!(
            ", {} fragments audited ({} ranges proved)",
            r.audited_fragments, r.audited_ranges
        );
    }
    println!("{line}");
    for h in &r.peers {
        println!("  peer `{}`: {}", h.peer, h.describe());
    }
    let l = &r.leftovers;
    if l.fragments + l.tmp_files > 0 {
        println!(
            "leftovers of interrupted backups: {} fragment(s) ({}), {} temporary file(s) ({}); `trove prune` removes them",
            l.fragments,
            crate::ui::bytes(l.fragment_bytes),
            l.tmp_files,
            crate::ui::bytes(l.tmp_bytes)
        );
    }
    if l.pending_fragments + l.pending_manifests > 0 {
        println!(
            "deletions left for later: {} fragment(s) ({}), {} manifest(s); the next prune, forget or backup that reaches their peers does them",
            l.pending_fragments,
            crate::ui::bytes(l.pending_fragment_bytes),
            l.pending_manifests
        );
    }
    for p in &r.problems {
        println!("  problem: {p}");
    }
    if r.problems.is_empty() {
        println!("no problems found");
    }
}
