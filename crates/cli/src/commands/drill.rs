//! `trove drill`: rehearse a recovery from the 24-word phrase or SLIP-39
//! shares in a scratch home, without touching this one (the work is
//! `trove_repo::drill`). Prints no secret; exit 1 when something would
//! block a real recovery.

use super::recovery::WordsArgs;
use crate::context::{home_dir, Out};
use crate::ui;
use anyhow::Result;
use std::process::ExitCode;
use std::time::Duration;
use trove_repo::{parse_duration, DrillOptions, DrillReport};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    words: WordsArgs,
    /// Files restored and verified per container, at most.
    #[arg(long, default_value_t = DrillOptions::DEFAULT_SAMPLE_FILES as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    sample: u32,
    /// How long to wait while another command holds the index [default:
    /// 10m while `trove daemon` runs (for its step under way), else 0].
    #[arg(long, value_parser = parse_duration)]
    wait: Option<Duration>,
}

pub fn run(args: Args, out: Out) -> Result<ExitCode> {
    let dir = home_dir()?;
    // Before asking for any words: a home to compare them with.
    trove_repo::Home::peek_ids(&dir)?;
    let master = args.words.master()?;
    let opts = DrillOptions {
        sample_files: args.sample as usize,
        wait: args
            .wait
            .unwrap_or(match trove_daemon::instance::running(&dir) {
                Some(_) => Duration::from_secs(600),
                None => Duration::ZERO,
            }),
        ..DrillOptions::default()
    };
    let report = out.run_reported(|bar| trove_repo::drill(&dir, master, &opts, bar), print)?;
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print(r: &DrillReport) {
    println!(
        "recovery drill {} in {:.1}s (identity {})",
        if r.ok { "PASSED" } else { "FAILED" },
        r.seconds,
        r.identity
    );
    if !r.peers_tried.is_empty() {
        let tried: Vec<String> = r
            .peers_tried
            .iter()
            .map(|p| match &p.why {
                None => format!("`{}` answered", p.peer),
                Some(why) => format!("`{}` did not ({why})", p.peer),
            })
            .collect();
        println!("  peers tried: {}", tried.join("; "));
    }
    if !r.peers_read.is_empty() {
        let read: Vec<String> = r
            .peers_read
            .iter()
            .filter(|p| p.read)
            .map(|p| format!("`{}`", p.peer))
            .collect();
        println!(
            "  sync from `{}` read {}",
            r.peer_used.as_deref().unwrap_or("?"),
            if read.is_empty() {
                "no peer".to_owned()
            } else {
                read.join(", ")
            }
        );
        for p in r.peers_read.iter().filter(|p| !p.read) {
            println!(
                "  peer `{}` could not be read: {}",
                p.peer,
                p.why.as_deref().unwrap_or("?")
            );
        }
    }
    if r.peer_used.is_some() {
        println!(
            "  containers: {} found of {} in this home; {} snapshot(s) found",
            r.containers_found.len(),
            r.containers_live.len(),
            r.snapshots_found
        );
    }
    for c in &r.containers {
        match &c.snapshot {
            Some(s) => println!(
                "  {}: snapshot {}: {} of {} sampled file(s) verified ({}), {} failed; {} regular file(s) in it",
                c.container,
                &s[..8.min(s.len())],
                c.files_verified,
                c.files_sampled,
                ui::bytes(c.bytes_verified),
                c.files_failed,
                c.files_in_snapshot
            ),
            None if !c.located && c.snapshots_live > 0 => {
                println!("  {}: NOT FOUND", c.container)
            }
            None => println!("  {}: no snapshot to sample", c.container),
        }
    }
    if r.ok {
        println!(
            "  {} file(s), {} verified against this home's index",
            r.files_verified,
            ui::bytes(r.bytes_verified)
        );
    } else {
        println!("blockers:");
        for b in &r.blockers {
            println!("  - {b}");
        }
    }
}
