//! `trove peer add | list | remove | discover`.

use crate::context::{open_home, Out};
use crate::ui;
use anyhow::{Context, Result};
use clap::Subcommand;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;
use trove_repo::{NodeWelcome, PeerState};

#[derive(Subcommand)]
pub enum PeerCmd {
    /// Add a peer: `dir:PATH` for a folder (second disk, USB drive, NAS
    /// mount), a node's ticket (`trove node ticket` on the node), an S3
    /// bucket `s3://BUCKET/PREFIX?endpoint=URL&region=R` or a WebDAV folder
    /// `webdav://HOST[:PORT]/PATH` (`webdav+http://` without TLS). A
    /// bucket's credentials come from TROVE_HOME/credentials.toml
    /// ([peers.NAME]) or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, never
    /// from the location.
    Add {
        name: String,
        location: String,
        /// Failure-domain labels, e.g. `--label site=home` (repeatable).
        #[arg(long = "label", value_parser = parse_label)]
        labels: Vec<(String, String)>,
    },
    /// Every peer with its state: online, suspect (unreachable, its
    /// fragments still count) or lost (unreachable for longer than
    /// --peer-lost-after).
    List {
        /// A peer unreachable for this long is lost (`30s`, `15m`, `72h`, `30d`).
        #[arg(long, default_value = "72h", value_parser = trove_repo::parse_duration)]
        peer_lost_after: std::time::Duration,
    },
    /// Take a peer off the configuration (a dead disk, a node that is
    /// gone): its fragments count as lost; `trove repair` rebuilds them.
    Remove { name: String },
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
            let removed = home.peers().remove(&name)?;
            out.emit(&removed, |r| {
                println!(
                    "removed peer `{}`; its {} fragment(s) of {} pack(s) now count as lost: {}",
                    r.removed, r.fragments_lost, r.packs_affected, r.next
                )
            })?;
        }
        PeerCmd::List { peer_lost_after } => {
            let rows = home.peers().list(peer_lost_after)?;
            out.emit(&rows, |rows| {
                if rows.is_empty() {
                    println!("no peers; add one with `trove peer add NAME dir:PATH`");
                }
                for r in rows {
                    let labels: Vec<String> =
                        r.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    let since = |what: &str| {
                        format!(
                            "{what} (unreachable since {} UTC, last seen {})",
                            r.unreachable_since.as_deref().unwrap_or("?"),
                            r.last_seen
                                .as_deref()
                                .map_or("never".to_owned(), |t| format!("{t} UTC"))
                        )
                    };
                    let state = match (&r.error, r.state) {
                        (None, _) => format!(
                            "online, {} fragments, {} used, {}",
                            r.fragments.unwrap_or(0),
                            ui::bytes(r.fragment_bytes.unwrap_or(0)),
                            // A bucket states no free space.
                            r.free_bytes.map_or("free space not stated".into(), |b| {
                                format!("{} free", ui::bytes(b))
                            })
                        ),
                        (Some(e), PeerState::Online) => format!("online, but: {e}"),
                        (Some(e), PeerState::Suspect) => format!("{}: {e}", since("SUSPECT")),
                        (Some(e), PeerState::Lost) => format!(
                            "{}: {e} — run `trove repair` to rebuild its fragments, or `trove peer remove {}`",
                            since("LOST"),
                            r.name
                        ),
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
