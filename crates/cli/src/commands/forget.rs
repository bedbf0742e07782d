//! `trove forget`: forget snapshots by id or by a `--keep-*` policy.

use crate::context::{open_home_waiting, unlock, Out};
use anyhow::Result;
use std::process::ExitCode;
use trove_repo::{ForgetOptions, ForgetReport, ForgetRow};

#[derive(clap::Args)]
pub struct Args {
    /// Container name.
    container: String,
    #[command(flatten)]
    opts: ForgetOptions,
}

pub fn run(args: Args, out: Out) -> Result<ExitCode> {
    let home = open_home_waiting(args.opts.wait)?;
    let owner = unlock(&home)?;
    out.run_reported(
        |bar| trove_repo::forget(&home, &owner, &args.container, &args.opts, bar),
        print,
    )?;
    Ok(ExitCode::SUCCESS)
}

fn line(r: &ForgetRow) -> String {
    format!("{:<10} {:<20} {:<12}", r.short_id, r.time, r.host)
}

fn print(r: &ForgetReport) {
    let verb = if r.dry_run { "would keep" } else { "keep" };
    println!("`{}`: {verb} {} snapshot(s)", r.container, r.keep.len());
    for k in &r.keep {
        let why: Vec<String> = k.reasons.iter().map(|x| x.to_string()).collect();
        println!("  {}  {}", line(k), why.join(", "));
    }
    let verb = if r.dry_run { "would forget" } else { "forgot" };
    println!("{verb} {} snapshot(s)", r.forget.len());
    for f in &r.forget {
        println!("  {}", line(f));
    }
    for p in &r.deletions.pending {
        println!("  later: {p}");
    }
    if let Some(p) = &r.prune {
        super::prune::print(p);
    }
}
