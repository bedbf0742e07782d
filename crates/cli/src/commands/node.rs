//! `trove node run | ticket | grant | revoke | status`: running and
//! administering a node for others.

use crate::context::Out;
use crate::ui;
use anyhow::{Context, Result};
use clap::Subcommand;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use trove_node::{
    NetworkConfig, NetworkMode, NodeDir, NodeOptions, OwnerId, Reciprocity, Standing,
};

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
        /// Your own owner id (what `trove whoami` prints on your home): owners
        /// learn whom to give space to, and your home's audits prove what they
        /// give. Kept in the data folder for later runs.
        #[arg(long, value_name = "OWNER_ID")]
        operator: Option<String>,
        /// Give space, get space: refuse new fragments of an owner past what
        /// its nodes are proven to store for you plus --allowance (stored data
        /// stays; metadata is always taken).
        #[arg(long)]
        reciprocal: bool,
        /// With --reciprocal: what an owner may store beyond what it gives.
        #[arg(long, value_parser = parse_size, requires = "reciprocal", default_value = "1G")]
        allowance: u64,
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

pub fn run(cmd: NodeCmd, out: Out) -> Result<ExitCode> {
    match cmd {
        NodeCmd::Run {
            data,
            listen,
            capacity,
            grace,
            network,
            relay,
            operator,
            reciprocal,
            allowance,
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
                operator: operator.map(|o| o.parse::<OwnerId>()).transpose()?,
                reciprocity: reciprocal.then_some(Reciprocity { allowance }),
            };
            serve(&opts, out)
        }
        NodeCmd::Ticket { data } => {
            let dir = NodeDir::open(&data.dir)?;
            let row = Ticket {
                ticket: dir.ticket()?,
                node_id: hex::encode(dir.node_id()?),
            };
            out.emit(&row, |r| println!("{}", r.ticket))?;
            Ok(ExitCode::SUCCESS)
        }
        NodeCmd::Grant { owner, quota, data } => {
            let dir = NodeDir::open(&data.dir)?;
            let id: OwnerId = owner.parse()?;
            dir.grant(id, quota)?;
            let row = Granted {
                granted: id.to_hex(),
                quota,
            };
            out.emit(&row, |r| {
                println!(
                    "granted owner {} a quota of {}",
                    id.short(),
                    ui::bytes(r.quota)
                )
            })?;
            Ok(ExitCode::SUCCESS)
        }
        NodeCmd::Revoke { owner, data } => {
            let dir = NodeDir::open(&data.dir)?;
            let id: OwnerId = owner.parse()?;
            let row = Revoked {
                revoked: id.to_hex(),
                was_granted: dir.revoke(&id)?,
            };
            out.emit(&row, |r| {
                if r.was_granted {
                    println!(
                        "revoked owner {}; its data stays in {} until you remove it",
                        id.short(),
                        dir.owner_dir(&id).display()
                    );
                } else {
                    println!("owner {} was not granted", id.short());
                }
            })?;
            Ok(ExitCode::SUCCESS)
        }
        NodeCmd::Status { data } => status(&data.dir, out),
    }
}

#[derive(serde::Serialize)]
struct Ticket {
    ticket: String,
    node_id: String,
}

#[derive(serde::Serialize)]
struct Granted {
    granted: String,
    quota: u64,
}

#[derive(serde::Serialize)]
struct Revoked {
    revoked: String,
    was_granted: bool,
}

#[derive(serde::Serialize)]
struct Running {
    node_id: String,
    ticket: String,
    addrs: Vec<SocketAddr>,
}

fn serve(opts: &NodeOptions, out: Out) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async {
        let node = trove_node::start(opts).await?;
        let row = Running {
            node_id: node.ticket.node_hex(),
            ticket: node.ticket.to_string(),
            addrs: node.ticket.addrs.clone(),
        };
        out.emit(&row, |r| {
            println!("node {} is running", r.node_id);
            println!("ticket: {}", r.ticket);
        })?;
        use std::io::Write;
        let _ = std::io::stdout().flush();
        node.serve(crate::context::shutdown_signal()).await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// One owner of a node, for `node status`.
#[derive(serde::Serialize)]
struct OwnerRow {
    owner: String,
    granted: bool,
    quota: Option<u64>,
    /// Live bytes (fragments and metadata).
    used: u64,
    /// Bytes deleted or replaced, kept for the grace period (they count
    /// against the quota too).
    trash: u64,
    /// The identity key the owner's metadata must be signed by, once pinned.
    identity: Option<String>,
    /// The inheritance escrow this node keeps for the owner (§9f), as of
    /// the node's clock now (the owner's last request is not known here).
    escrow: Option<trove_node::escrow::EscrowView>,
    /// "You give X, you use Y": `you_give` is `used + trash`, `you_use`
    /// what the owner's nodes are proven to store for the operator.
    #[serde(flatten)]
    standing: Standing,
}

#[derive(serde::Serialize)]
struct Status {
    node_id: String,
    ticket: Option<String>,
    free_bytes: Option<u64>,
    /// The operator's own owner id (`--operator`), if named.
    operator: Option<String>,
    /// The rule the node last ran with (`--reciprocal`), if any.
    reciprocity: Option<Reciprocity>,
    owners: Vec<OwnerRow>,
}

fn status(data: &Path, out: Out) -> Result<ExitCode> {
    let dir = NodeDir::open(data)?;
    let grants = dir.grants()?;
    let escrows = dir.escrows()?;
    let mut owners: Vec<OwnerId> = grants.keys().copied().collect();
    for o in dir
        .owners_with_data()
        .into_iter()
        .chain(escrows.iter().map(|e| e.owner))
    {
        if !owners.contains(&o) {
            owners.push(o);
        }
    }
    let ledger = dir.ledger()?;
    let proofs = dir.proofs()?;
    let operator = dir.operator()?;
    let now = u64::try_from(trove_repo::now_unix()).unwrap_or(0);
    // Owners seen but neither granted nor holding data (revoked and purged)
    // are not listed.
    let rows = owners
        .iter()
        .map(|o| {
            let (used, trash) = dir.usage(o);
            Ok(OwnerRow {
                owner: o.to_hex(),
                granted: grants.contains_key(o),
                quota: grants.get(o).map(|g| g.quota),
                used,
                trash,
                identity: dir.owner_identity(o)?.map(|i| i.fingerprint()),
                escrow: escrows
                    .iter()
                    .find(|e| e.owner == *o)
                    .map(|e| e.view(now, None)),
                standing: Standing::of(*o, used + trash, &ledger, &proofs, operator.as_ref(), now),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let row = Status {
        node_id: hex::encode(dir.node_id()?),
        ticket: dir.ticket().ok(),
        free_bytes: trove_node::store::free_space(data),
        operator: operator.map(|o| o.to_hex()),
        reciprocity: ledger.reciprocity,
        owners: rows,
    };
    out.emit(&row, |s| {
        println!("node {}", s.node_id);
        if let Some(t) = &s.ticket {
            println!("ticket: {t}");
        }
        println!("free disk: {}", s.free_bytes.map_or("?".into(), ui::bytes));
        match &s.operator {
            Some(o) => println!("operator: {}", &o[..12.min(o.len())]),
            None => println!(
                "operator: not named (owners cannot give you space back: `trove node run --operator $(trove whoami)`)"
            ),
        }
        match &s.reciprocity {
            Some(r) => println!(
                "reciprocity: on; an owner may store what it gives you plus {}",
                ui::bytes(r.allowance)
            ),
            None => println!("reciprocity: off (`trove node run --reciprocal`)"),
        }
        if s.owners.is_empty() {
            println!(
                "no owners granted yet: `trove node grant OWNER_ID --quota SIZE --data {}`",
                data.display()
            );
        }
        for r in &s.owners {
            println!(
                "owner {}  {}  used {} of {}, {} awaiting deletion{}",
                &r.owner[..12.min(r.owner.len())],
                if r.quota.is_some() {
                    "granted"
                } else {
                    "REVOKED"
                },
                ui::bytes(r.used),
                r.quota.map_or("-".into(), ui::bytes),
                ui::bytes(r.trash),
                r.identity
                    .as_deref()
                    .map(|i| format!(", identity {i}"))
                    .unwrap_or_default()
            );
            println!("    {}", give_take(&r.standing));
            if let Some(e) = &r.escrow {
                println!("    inheritance {}", trove_repo::inherit::describe_escrow(e));
            }
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

/// "you give 1.2 GiB, you use 800 MiB (proven 3h ago); online 5h; new
/// fragments refused (reciprocity)".
fn give_take(s: &Standing) -> String {
    let uses = match (s.you_use, s.proven_unix) {
        (Some(b), Some(t)) => format!(
            "you use {} (proven {}{})",
            ui::bytes(b),
            ui::ago(t),
            if s.proof_stale {
                ", too old to count"
            } else {
                ""
            }
        ),
        _ => "you use: unproven".to_owned(),
    };
    let seen = match s.last_seen_unix {
        Some(t) => format!(
            "online {}, last seen {}",
            ui::span(s.online_secs),
            ui::ago(t)
        ),
        None => "never seen".to_owned(),
    };
    let rule = match (s.limit, s.blocked) {
        (Some(l), true) => format!(
            "; new fragments REFUSED: at its reciprocity limit of {}",
            ui::bytes(l)
        ),
        (Some(l), false) => format!("; reciprocity limit {}", ui::bytes(l)),
        (None, _) => String::new(),
    };
    format!("you give {}, {uses}; {seen}{rule}", ui::bytes(s.you_give))
}
