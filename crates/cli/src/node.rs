//! `trove node …` (running and administering a node for others), `trove
//! whoami` and `trove peer discover`.

use crate::{home_dir, print_json, ui};
use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::json;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use trove_node::{NetworkConfig, NetworkMode, NodeDir, NodeOptions, OwnerId};
use trove_repo::Home;

#[derive(Subcommand)]
pub enum NodeCmd {
    /// Run a node: store encrypted fragments for the owners you grant.
    Run {
        #[command(flatten)]
        data: DataArg,
        /// UDP address to listen on, e.g. 0.0.0.0:7420 (default: all interfaces, random port).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Most bytes to store for all owners together, e.g. 500G (default: the disk).
        #[arg(long, value_parser = parse_size)]
        capacity: Option<u64>,
        /// Days to keep deleted fragments before freeing them (protects owners
        /// against mistakes and ransomware).
        #[arg(long, default_value_t = 30.0)]
        grace: f64,
        /// internet (relays, address lookup, LAN), lan (LAN discovery and
        /// tickets only) or direct (tickets only).
        #[arg(long, env = "TROVE_NETWORK", default_value = "internet")]
        network: NetworkMode,
        /// Your own relay server instead of the public ones.
        #[arg(long, env = "TROVE_RELAY")]
        relay: Option<String>,
    },
    /// Print the ticket to give to owners (`trove peer add NAME TICKET`).
    Ticket {
        #[command(flatten)]
        data: DataArg,
    },
    /// Let an owner store data here (OWNER_ID: what `trove whoami` prints on their side).
    Grant {
        owner: String,
        /// e.g. 100G
        #[arg(long, value_parser = parse_size)]
        quota: u64,
        #[command(flatten)]
        data: DataArg,
    },
    /// Refuse an owner from now on (its data stays until you delete it).
    Revoke {
        owner: String,
        #[command(flatten)]
        data: DataArg,
    },
    /// Owners, their quotas and usage, and free space.
    Status {
        #[command(flatten)]
        data: DataArg,
    },
}

#[derive(clap::Args)]
pub struct DataArg {
    /// The node's data folder.
    #[arg(long = "data", env = "TROVE_NODE_DATA")]
    dir: PathBuf,
}

fn parse_size(s: &str) -> Result<u64, String> {
    trove_node::parse_size(s).map_err(|e| e.to_string())
}

pub fn run(cmd: NodeCmd, json: bool) -> Result<ExitCode> {
    match cmd {
        NodeCmd::Run {
            data,
            listen,
            capacity,
            grace,
            network,
            relay,
        } => {
            anyhow::ensure!(
                grace >= 0.0 && grace.is_finite(),
                "--grace must be 0 or more days"
            );
            let opts = NodeOptions {
                data: data.dir,
                listen,
                capacity,
                grace: Duration::from_secs_f64(grace * 86400.0),
                network: NetworkConfig {
                    mode: network,
                    relay,
                    bind: None,
                },
                request_limit: trove_node::DEFAULT_REQUEST_LIMIT,
            };
            serve(&opts, json)
        }
        NodeCmd::Ticket { data } => {
            let dir = NodeDir::open(&data.dir)?;
            let ticket = dir.ticket()?;
            if json {
                print_json(&json!({"ticket": ticket, "node_id": hex::encode(dir.node_id()?)}));
            } else {
                println!("{ticket}");
            }
            Ok(ExitCode::SUCCESS)
        }
        NodeCmd::Grant { owner, quota, data } => {
            let dir = NodeDir::open(&data.dir)?;
            let id: OwnerId = owner.parse()?;
            dir.grant(id, quota)?;
            if json {
                print_json(&json!({"granted": id.to_hex(), "quota": quota}));
            } else {
                println!(
                    "granted owner {} a quota of {}",
                    id.short(),
                    ui::bytes(quota)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        NodeCmd::Revoke { owner, data } => {
            let dir = NodeDir::open(&data.dir)?;
            let id: OwnerId = owner.parse()?;
            let was = dir.revoke(&id)?;
            if json {
                print_json(&json!({"revoked": id.to_hex(), "was_granted": was}));
            } else if was {
                println!(
                    "revoked owner {}; its data stays in {} until you remove it",
                    id.short(),
                    dir.owner_dir(&id).display()
                );
            } else {
                println!("owner {} was not granted", id.short());
            }
            Ok(ExitCode::SUCCESS)
        }
        NodeCmd::Status { data } => status(&data.dir, json),
    }
}

fn serve(opts: &NodeOptions, json: bool) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async {
        let node = trove_node::start(opts).await?;
        if json {
            print_json(&json!({
                "node_id": node.ticket.node_hex(),
                "ticket": node.ticket.to_string(),
                "addrs": node.ticket.addrs,
            }));
        } else {
            println!("node {} is running", node.ticket.node_hex());
            println!("ticket: {}", node.ticket);
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
        node.serve(shutdown_signal()).await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn status(data: &Path, json: bool) -> Result<ExitCode> {
    let dir = NodeDir::open(data)?;
    let grants = dir.grants()?;
    let mut owners: Vec<OwnerId> = grants.keys().copied().collect();
    for o in dir.owners_with_data() {
        if !grants.contains_key(&o) {
            owners.push(o);
        }
    }
    let rows: Vec<serde_json::Value> = owners
        .iter()
        .map(|o| {
            let (live, trash) = dir.usage(o);
            json!({
                "owner": o.to_hex(),
                "granted": grants.contains_key(o),
                "quota": grants.get(o).map(|g| g.quota),
                "used": live,
                "trash": trash,
            })
        })
        .collect();
    let free = trove_node::store::free_space(data);
    let ticket = dir.ticket().ok();
    if json {
        print_json(&json!({
            "node_id": hex::encode(dir.node_id()?),
            "ticket": ticket,
            "free_bytes": free,
            "owners": rows,
        }));
        return Ok(ExitCode::SUCCESS);
    }
    println!("node {}", hex::encode(dir.node_id()?));
    if let Some(t) = ticket {
        println!("ticket: {t}");
    }
    println!("free disk: {}", free.map_or("?".into(), ui::bytes));
    if rows.is_empty() {
        println!(
            "no owners granted yet: `trove node grant OWNER_ID --quota SIZE --data {}`",
            data.display()
        );
    }
    for r in &rows {
        let owner = r["owner"].as_str().unwrap_or("");
        let quota = r["quota"].as_u64();
        println!(
            "owner {}  {}  used {} of {}, {} awaiting deletion",
            &owner[..12.min(owner.len())],
            if quota.is_some() {
                "granted"
            } else {
                "REVOKED"
            },
            ui::bytes(r["used"].as_u64().unwrap_or(0)),
            quota.map_or("-".into(), ui::bytes),
            ui::bytes(r["trash"].as_u64().unwrap_or(0)),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `trove whoami`: the ids to give to node operators and share holders.
pub fn whoami(json: bool) -> Result<ExitCode> {
    let dir = home_dir()?;
    let (identity, owner_id) = Home::peek_ids(&dir)?;
    let owner_id = match owner_id {
        Some(id) => id,
        None => {
            // Homes made before nodes existed: unlocking writes the key.
            let home = crate::open_home()?;
            Home::owner_id(&crate::unlock(&home)?)
        }
    };
    if json {
        print_json(&json!({
            "owner_id": owner_id,
            "identity": identity.to_hex(),
            "fingerprint": identity.fingerprint(),
        }));
    } else {
        println!("owner id: {owner_id}");
        println!("  give it to a node's operator: trove node grant {owner_id} --quota SIZE");
        println!("fingerprint: {}", identity.fingerprint());
    }
    Ok(ExitCode::SUCCESS)
}

/// `trove peer discover`: Trove nodes announcing themselves on the LAN.
pub fn discover(wait: f64, json: bool) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let found = rt.block_on(trove_node::discover(Duration::from_secs_f64(wait.max(0.5))))?;
    if json {
        let rows: Vec<_> = found
            .iter()
            .map(|t| json!({"node_id": t.node_hex(), "addrs": t.addrs, "ticket": t.to_string()}))
            .collect();
        print_json(&json!(rows));
    } else if found.is_empty() {
        println!("no Trove nodes found on the local network (waited {wait}s)");
    } else {
        for t in &found {
            let addrs: Vec<String> = t.addrs.iter().map(|a| a.to_string()).collect();
            println!("node {}  {}", &t.node_hex()[..12], addrs.join(", "));
            println!("  trove peer add NAME {t}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
