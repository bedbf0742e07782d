//! `trove peer add | list | remove | discover`.

use crate::context::{open_home, Out};
use crate::ui;
use anyhow::{Context, Result};
use clap::Subcommand;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;
use trove_repo::NodeWelcome;

#[derive(Subcommand)]
pub enum PeerCmd {
    /// Add a peer: `dir:PATH` for a folder (second disk, USB drive, NAS
    /// mount), or a node's ticket (`trove node ticket` on the node).
    Add {
        name: String,
        location: String,
        /// Failure-domain labels, e.g. `--label site=home` (repeatable).
        #[arg(long = "label", value_parser = parse_label)]
        labels: Vec<(String, String)>,
    },
    List,
    Remove {
        name: String,
    },
    /// List Trove nodes announcing themselves on the local network (mDNS).
    Discover {
        /// Seconds to listen.
        #[arg(long, default_value_t = 3.0)]
        wait: f64,
    },
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("label `{s}` is not KEY=VALUE"))?;
    if k.is_empty() {
        return Err(format!("label `{s}` has an empty key"));
    }
    Ok((k.to_owned(), v.to_owned()))
}

#[derive(serde::Serialize)]
struct Removed {
    removed: String,
}

pub fn run(cmd: PeerCmd, out: Out) -> Result<ExitCode> {
    if let PeerCmd::Discover { wait } = cmd {
        // Needs no identity: it only listens.
        return discover(wait, out);
    }
    let home = open_home()?;
    match cmd {
        PeerCmd::Add {
            name,
            location,
            labels,
        } => {
            let labels: BTreeMap<_, _> = labels.into_iter().collect();
            let added = home.peers().add(&name, &location, labels)?;
            out.emit(&added, |a| {
                println!("added peer `{}` ({})", a.name, a.location);
                match &a.node {
                    Some(NodeWelcome::Granted { quota, used, .. }) => println!(
                        "the node lets you in: quota {}, {} used",
                        ui::bytes(*quota),
                        ui::bytes(*used)
                    ),
                    Some(NodeWelcome::Refused { error, .. }) => eprintln!("warning: {error}"),
                    None => {}
                }
            })?;
        }
        PeerCmd::Remove { name } => {
            let rec = home.peers().remove(&name)?;
            out.emit(&Removed { removed: rec.name }, |r| {
                println!(
                    "removed peer `{}`; fragments it holds are no longer used (run `trove check`: packs it held a fragment of now have less redundancy)",
                    r.removed
                )
            })?;
        }
        PeerCmd::List => {
            let rows = home.peers().list()?;
            out.emit(&rows, |rows| {
                if rows.is_empty() {
                    println!("no peers; add one with `trove peer add NAME dir:PATH`");
                }
                for r in rows {
                    let labels: Vec<String> =
                        r.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    let state = match &r.error {
                        None => format!(
                            "ok, {} fragments, {} used, {} free",
                            r.fragments.unwrap_or(0),
                            ui::bytes(r.fragment_bytes.unwrap_or(0)),
                            r.free_bytes.map_or("?".into(), ui::bytes)
                        ),
                        Some(e) => format!("UNAVAILABLE: {e}"),
                    };
                    println!(
                        "{:<12} {:<40} {:<16} {state}",
                        r.name,
                        r.location,
                        labels.join(",")
                    );
                }
            })?;
        }
        PeerCmd::Discover { .. } => unreachable!("handled above"),
    }
    Ok(ExitCode::SUCCESS)
}

/// A node found on the LAN.
#[derive(serde::Serialize)]
struct Found {
    node_id: String,
    addrs: Vec<std::net::SocketAddr>,
    ticket: String,
}

/// `trove peer discover`: Trove nodes announcing themselves on the LAN.
fn discover(wait: f64, out: Out) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let found = rt.block_on(trove_node::discover(Duration::from_secs_f64(wait.max(0.5))))?;
    let rows: Vec<Found> = found
        .iter()
        .map(|t| Found {
            node_id: t.node_hex(),
            addrs: t.addrs.clone(),
            ticket: t.to_string(),
        })
        .collect();
    out.emit(&rows, |rows| {
        if rows.is_empty() {
            println!("no Trove nodes found on the local network (waited {wait}s)");
        }
        for r in rows {
            let addrs: Vec<String> = r.addrs.iter().map(|a| a.to_string()).collect();
            println!("node {}  {}", &r.node_id[..12], addrs.join(", "));
            println!("  trove peer add NAME {}", r.ticket);
        }
    })?;
    Ok(ExitCode::SUCCESS)
}
