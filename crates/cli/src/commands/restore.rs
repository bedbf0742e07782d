//! `trove restore`: a snapshot, or part of it, into a folder.

use crate::context::{open_home, unlock, Out};
use crate::ui::{self, Bar};
use anyhow::Result;
use std::process::ExitCode;
use trove_repo::{RestoreOptions, RestoreReport};

#[derive(clap::Args)]
pub struct Args {
    /// An id, a unique id prefix (4+ hex digits) or CONTAINER:latest.
    snapshot: String,
    #[command(flatten)]
    opts: RestoreOptions,
}

pub fn run(args: Args, out: Out) -> Result<ExitCode> {
    let home = open_home()?;
    let owner = unlock(&home)?;
    let bar = Bar::new(out.json);
    let r = trove_repo::restore(&home, &owner, &args.snapshot, &args.opts, &bar);
    bar.finish();
    let r = r?;
    out.emit(&r, print)?;
    if !r.lost.is_empty() {
        eprintln!(
            "{} path(s) could not be restored; everything else was",
            r.lost.len()
        );
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

fn print(r: &RestoreReport) {
    println!(
        "restored {} files, {} folders, {} symlinks ({}) into {} in {:.1}s",
        r.files,
        r.dirs,
        r.symlinks,
        ui::bytes(r.bytes),
        r.target.display(),
        r.seconds
    );
    if !r.problems.is_empty() {
        println!("fragment problems routed around (run `trove check`):");
        for line in ui::summarize(&r.problems) {
            println!("  {line}");
        }
    }
    for l in &r.lost {
        eprintln!("  LOST {}: {}", l.path, l.error);
    }
}
