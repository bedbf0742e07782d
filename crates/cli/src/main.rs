//! `trove`: thin commands over `trove-repo`. Human output by default,
//! `--json` for scripts, progress bars on a terminal.
//!
//! Exit codes: 0 ok, 1 error, 2 usage, 3 finished but some files were
//! unreadable (backup) or lost (restore), listed.

mod demo;
mod node;
mod recover;
mod ui;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use trove_core::keys::MasterSecret;
use trove_core::manifest::Redundancy;
use trove_repo::{BackupOptions, Home, KdfParams, Owner, RepoError, RestoreOptions};

#[derive(Parser)]
#[command(
    name = "trove",
    version,
    about = "Encrypted, erasure-coded backups spread over your own and your friends' disks"
)]
struct Cli {
    /// Machine-readable output on stdout.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create the master secret and print its 24-word recovery phrase.
    Init,
    /// Manage peers (where fragments are stored).
    #[command(subcommand)]
    Peer(PeerCmd),
    /// Run a node for others (friends, family, your other devices) and manage who may use it.
    #[command(subcommand)]
    Node(node::NodeCmd),
    /// Print your owner id (for node operators) and identity fingerprint.
    Whoami,
    /// Manage data containers (named backups of folders).
    #[command(subcommand)]
    Container(ContainerCmd),
    /// Back up a container (incremental); prints the snapshot id.
    Backup {
        /// Container name; optional when there is only one.
        name: Option<String>,
    },
    /// List snapshots.
    Snapshots { name: Option<String> },
    /// List the files of a snapshot (SNAPSHOT: id, id prefix, or CONTAINER:latest).
    Ls {
        snapshot: String,
        path: Option<PathBuf>,
    },
    /// Restore a snapshot into a folder.
    Restore {
        snapshot: String,
        #[arg(long)]
        target: PathBuf,
        /// Restore only this snapshot-relative path (repeatable).
        #[arg(long)]
        include: Vec<PathBuf>,
    },
    /// Verify fragments and manifests on every peer.
    Check {
        name: Option<String>,
        /// Also decode every pack and verify every blob and tree.
        #[arg(long)]
        read_data: bool,
        /// Have each peer prove random byte ranges of its fragments (BLAKE3
        /// verified streaming) instead of downloading them.
        #[arg(long)]
        audit: bool,
    },
    /// Recreate an identity in an empty TROVE_HOME from the 24-word phrase
    /// (prompt, --phrase-file, or stdin) or from SLIP-39 shares.
    Recover {
        #[arg(long, conflicts_with_all = ["shares_file", "shares"])]
        phrase_file: Option<PathBuf>,
        /// One share per line.
        #[arg(long)]
        shares_file: Option<PathBuf>,
        /// Read shares from stdin (or the terminal, one by one, until enough).
        #[arg(long)]
        shares: bool,
    },
    /// Rebuild the local index from the peers: containers, snapshots, peer rosters.
    Sync,
    /// Social recovery: SLIP-39 shares of the master secret, and the recovery kit.
    #[command(subcommand)]
    Recovery(RecoveryCmd),
    /// Show the whole path on sample data: back up to six folder peers, lose
    /// two, corrupt a fragment on a third, restore and verify every byte.
    Demo {
        /// Back up this folder instead of generated sample data.
        #[arg(long)]
        source: Option<PathBuf>,
        /// Keep the demo's folders here instead of a temporary directory.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum RecoveryCmd {
    /// Split the master secret into SLIP-39 shares (SLIP-39 passphrase: TROVE_SLIP39_PASSPHRASE).
    Split {
        #[arg(long, requires = "shares")]
        threshold: Option<u8>,
        #[arg(long, requires = "threshold")]
        shares: Option<u8>,
        /// e.g. "2 of: family 2-of-3, friends 3-of-5, my safe 1-of-1"
        #[arg(long, conflicts_with_all = ["threshold", "shares"])]
        groups: Option<String>,
        /// Write one file per share holder into this folder instead of printing.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Combine shares and print the 24-word phrase (on the owner's own device).
    Combine {
        #[arg(long)]
        shares_file: Option<PathBuf>,
    },
    /// Drill: check that shares reach the threshold and rebuild this identity; prints no secret.
    Verify {
        #[arg(long)]
        shares_file: Option<PathBuf>,
    },
    /// Show the 24-word phrase again (asks the passphrase).
    Phrase,
    /// Write the recovery kit: fingerprint and how to reach each peer; no secrets.
    Kit {
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum PeerCmd {
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

#[derive(Subcommand)]
enum ContainerCmd {
    /// Create a container over one or more folders.
    Create {
        name: String,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// K+M: data and parity fragments per pack (default from the peer count, e.g. 4+2 for six).
        #[arg(long)]
        redundancy: Option<Redundancy>,
    },
    List,
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

fn home_dir() -> Result<PathBuf> {
    if let Some(h) = std::env::var_os("TROVE_HOME") {
        return Ok(PathBuf::from(h));
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME") {
        return Ok(PathBuf::from(x).join("trove"));
    }
    let home = std::env::var_os("HOME").context("neither TROVE_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".local/share/trove"))
}

/// Open `TROVE_HOME`, telling the user about permissions that had to be
/// restricted (a home readable by other users).
fn open_home() -> Result<Home> {
    let home = Home::open(&home_dir()?)?;
    for line in &home.made_private {
        eprintln!("warning: {line}");
    }
    Ok(home)
}

/// The passphrase from `TROVE_PASSPHRASE`, or asked on the terminal.
fn passphrase(confirm: bool) -> Result<String> {
    if let Ok(p) = std::env::var("TROVE_PASSPHRASE") {
        return Ok(p);
    }
    let p = rpassword::prompt_password("passphrase: ")
        .context("no TROVE_PASSPHRASE set and no terminal to ask for a passphrase")?;
    if confirm {
        let again = rpassword::prompt_password("again: ")?;
        anyhow::ensure!(p == again, "the two passphrases differ");
    }
    Ok(p)
}

fn unlock(home: &Home) -> Result<Owner> {
    Ok(home.unlock(passphrase(false)?.as_bytes())?)
}

fn print_json(v: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).expect("json serializes")
    );
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A node logs what it does by default; other commands only errors.
    let default = if matches!(cli.cmd, Cmd::Node(node::NodeCmd::Run { .. })) {
        "info,iroh=warn,noq=warn,noq_proto=warn,iroh_mdns_address_lookup=warn,swarm_discovery=warn"
    } else {
        // iroh reports a peer that vanished mid-connection as an error;
        // Trove reports it in its own words.
        "error,iroh=off"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TROVE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            match e.downcast_ref::<RepoError>() {
                Some(RepoError::Usage(_)) => ExitCode::from(2),
                _ => ExitCode::from(1),
            }
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let json = cli.json;
    match cli.cmd {
        Cmd::Init => init(json),
        Cmd::Demo { source, dir } => demo::run(source.as_deref(), dir.as_deref(), json),
        Cmd::Peer(p) => peer(p, json),
        Cmd::Node(n) => node::run(n, json),
        Cmd::Whoami => node::whoami(json),
        Cmd::Container(c) => container(c, json),
        Cmd::Backup { name } => backup(name, json),
        Cmd::Snapshots { name } => snapshots(name, json),
        Cmd::Ls { snapshot, path } => ls(&snapshot, path.as_deref(), json),
        Cmd::Restore {
            snapshot,
            target,
            include,
        } => restore(&snapshot, target, include, json),
        Cmd::Check {
            name,
            read_data,
            audit,
        } => check(name, read_data, audit, json),
        Cmd::Recover {
            phrase_file,
            shares_file,
            shares,
        } => recover::recover(phrase_file.as_deref(), shares_file.as_deref(), shares, json),
        Cmd::Sync => recover::sync(json),
        Cmd::Recovery(r) => match r {
            RecoveryCmd::Split {
                threshold,
                shares,
                groups,
                out,
            } => recover::split(threshold, shares, groups.as_deref(), out.as_deref(), json),
            RecoveryCmd::Combine { shares_file } => {
                recover::combine_cmd(shares_file.as_deref(), json)
            }
            RecoveryCmd::Verify { shares_file } => recover::verify(shares_file.as_deref(), json),
            RecoveryCmd::Phrase => recover::phrase(json),
            RecoveryCmd::Kit { out } => recover::kit(&out, json),
        },
    }
}

fn init(json: bool) -> Result<ExitCode> {
    let dir = home_dir()?;
    if dir.join("keyfile").exists() {
        return Err(RepoError::IdentityExists(dir).into());
    }
    let pass = passphrase(true)?;
    anyhow::ensure!(
        !pass.is_empty(),
        "an empty passphrase protects nothing; choose one"
    );
    let (_, owner) = Home::init(
        &dir,
        MasterSecret::generate(),
        pass.as_bytes(),
        KdfParams::default(),
    )?;
    let phrase = trove_recovery::master_to_phrase(owner.master.as_bytes());
    if json {
        print_json(&json!({
            "home": dir,
            "owner_id": Home::owner_id(&owner),
            "identity": owner.public().to_hex(),
            "fingerprint": owner.public().fingerprint(),
            "phrase": phrase,
        }));
    } else {
        println!("Created a Trove identity in {}", dir.display());
        println!("fingerprint: {}", owner.public().fingerprint());
        println!();
        println!("Your recovery phrase. Write it down and keep it safe: with it and one peer,");
        println!("everything can be restored; without it, a lost machine means lost backups.");
        println!("It is shown only this once.");
        println!();
        for (i, w) in phrase.split(' ').enumerate() {
            print!("{:>2}. {w:<10}", i + 1);
            if i % 6 == 5 {
                println!();
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn peer(cmd: PeerCmd, json: bool) -> Result<ExitCode> {
    if let PeerCmd::Discover { wait } = cmd {
        // Needs no identity: it only listens.
        return node::discover(wait, json);
    }
    let home = open_home()?;
    match cmd {
        PeerCmd::Add {
            name,
            location,
            labels,
        } => {
            let labels: BTreeMap<_, _> = labels.into_iter().collect();
            let rec = home.add_peer(&name, &location, labels)?;
            // A node: say at once whether it lets us in.
            let node = home.open_node(&rec)?.map(|n| n.hello());
            let node_json = match &node {
                Some(Ok((quota, used))) => json!({"granted": true, "quota": quota, "used": used}),
                Some(Err(e)) => json!({"granted": false, "error": e.to_string()}),
                None => serde_json::Value::Null,
            };
            if json {
                print_json(
                    &json!({"name": rec.name, "id": rec.id.to_hex(), "location": rec.location, "labels": rec.labels, "node": node_json}),
                );
            } else {
                println!("added peer `{}` ({})", rec.name, rec.location);
                match node {
                    Some(Ok((quota, used))) => println!(
                        "the node lets you in: quota {}, {} used",
                        ui::bytes(quota),
                        ui::bytes(used)
                    ),
                    Some(Err(e)) => eprintln!("warning: {e}"),
                    None => {}
                }
            }
        }
        PeerCmd::Remove { name } => {
            let rec = home.index.remove_peer(&name)?;
            if json {
                print_json(&json!({"removed": rec.name}));
            } else {
                println!(
                    "removed peer `{}`; fragments it holds are no longer used (run `trove check`: packs it held a fragment of now have less redundancy)",
                    rec.name
                );
            }
        }
        PeerCmd::Discover { .. } => unreachable!("handled above"),
        PeerCmd::List => {
            let slots = home.open_peers()?;
            let rows: Vec<_> = slots
                .iter()
                .map(|s| {
                    let stat = s.available().map(|p| p.stat());
                    let error = match (&s.peer, &stat) {
                        (Err(e), _) | (_, Some(Err(e))) => Some(e.to_string()),
                        _ => None,
                    };
                    json!({
                        "name": s.record.name,
                        "id": s.record.id.to_hex(),
                        "location": s.record.location,
                        "labels": s.record.labels,
                        "available": error.is_none(),
                        "error": error,
                        "fragments": stat.as_ref().and_then(|r| r.as_ref().ok()).map(|st| st.fragments),
                        "fragment_bytes": stat.as_ref().and_then(|r| r.as_ref().ok()).map(|st| st.fragment_bytes),
                        "free_bytes": stat.as_ref().and_then(|r| r.as_ref().ok()).and_then(|st| st.free_bytes),
                    })
                })
                .collect();
            if json {
                print_json(&json!(rows));
            } else if rows.is_empty() {
                println!("no peers; add one with `trove peer add NAME dir:PATH`");
            } else {
                for (s, r) in slots.iter().zip(&rows) {
                    let labels: Vec<String> = s
                        .record
                        .labels
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    let state = match r["error"].as_str() {
                        None => format!(
                            "ok, {} fragments, {} used, {} free",
                            r["fragments"].as_u64().unwrap_or(0),
                            ui::bytes(r["fragment_bytes"].as_u64().unwrap_or(0)),
                            r["free_bytes"].as_u64().map_or("?".into(), ui::bytes)
                        ),
                        Some(e) => format!("UNAVAILABLE: {e}"),
                    };
                    println!(
                        "{:<12} {:<40} {:<16} {state}",
                        s.record.name,
                        s.record.location,
                        labels.join(",")
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn container(cmd: ContainerCmd, json: bool) -> Result<ExitCode> {
    let home = open_home()?;
    match cmd {
        ContainerCmd::Create {
            name,
            paths,
            redundancy,
        } => {
            let owner = unlock(&home)?;
            let peers = home.index.peers()?.len();
            let c = home.create_container(&owner, &name, &paths, redundancy)?;
            let r = c.manifest.redundancy;
            if json {
                print_json(
                    &json!({"name": c.manifest.name, "id": c.manifest.id.to_hex(), "redundancy": r.to_string(), "sources": c.manifest.sources}),
                );
            } else {
                println!(
                    "created container `{}` over {} ({r}: any {} of {} fragments rebuild a pack)",
                    name,
                    c.manifest.sources.join(", "),
                    r.k,
                    r.total()
                );
            }
            if peers < r.total() {
                eprintln!(
                    "warning: {r} needs {} peers to keep every fragment of a pack on a different peer; {peers} configured",
                    r.total()
                );
            }
        }
        ContainerCmd::List => {
            let rows: Vec<_> = home
                .index
                .containers()?
                .into_iter()
                .map(|m| {
                    let snaps = home.index.snapshots(&m.id).map(|s| s.len()).unwrap_or(0);
                    json!({"name": m.name, "id": m.id.to_hex(), "redundancy": m.redundancy.to_string(), "sources": m.sources, "snapshots": snaps, "peers": m.roster.len()})
                })
                .collect();
            if json {
                print_json(&json!(rows));
            } else if rows.is_empty() {
                println!("no containers; create one with `trove container create NAME PATH...`");
            } else {
                for r in rows {
                    println!(
                        "{:<16} {:<5} {:>3} snapshots  {}",
                        r["name"].as_str().unwrap_or(""),
                        r["redundancy"].as_str().unwrap_or(""),
                        r["snapshots"],
                        r["sources"]
                            .as_array()
                            .map(|a| a
                                .iter()
                                .filter_map(|s| s.as_str())
                                .collect::<Vec<_>>()
                                .join(", "))
                            .unwrap_or_default()
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn backup(name: Option<String>, json: bool) -> Result<ExitCode> {
    let home = open_home()?;
    let owner = unlock(&home)?;
    let c = home.container_or_only(&owner, name.as_deref())?;
    let bar = ui::Bar::new(json);
    let r = trove_repo::backup(
        &home,
        &owner,
        &c.manifest.name,
        &BackupOptions::default(),
        &bar,
    );
    bar.finish();
    let r = r?;
    let s = &r.snapshot.summary;
    if json {
        print_json(&json!({
            "snapshot": r.snapshot.id.to_hex(),
            "container": c.manifest.name,
            "files_new": s.files_new,
            "files_changed": s.files_changed,
            "files_unchanged": s.files_unchanged,
            "dirs": s.dirs,
            "bytes_read": s.bytes_read,
            "bytes_total": s.bytes_total,
            "bytes_stored": s.bytes_stored,
            "blobs_new": s.blobs_new,
            "packs_new": s.packs_new,
            "seconds": r.seconds,
            "unreadable": r.unreadable.iter().map(|(p, e)| json!({"path": p, "error": e})).collect::<Vec<_>>(),
            "skipped": r.skipped.iter().map(|(p, e)| json!({"path": p, "reason": e})).collect::<Vec<_>>(),
            "warnings": bar.warnings(),
        }));
    } else {
        println!(
            "snapshot {} of `{}` committed",
            r.snapshot.id.short(),
            c.manifest.name
        );
        println!(
            "  files: {} new, {} changed, {} unchanged; {} folders",
            s.files_new, s.files_changed, s.files_unchanged, s.dirs
        );
        println!(
            "  read {} of {}, stored {} in {} new packs, {:.1}s ({}/s)",
            ui::bytes(s.bytes_read),
            ui::bytes(s.bytes_total),
            ui::bytes(s.bytes_stored),
            s.packs_new,
            r.seconds,
            ui::bytes((s.bytes_read as f64 / r.seconds.max(1e-3)) as u64)
        );
        for (p, e) in &r.skipped {
            eprintln!("  skipped {}: {e}", p.display());
        }
        for (p, e) in &r.unreadable {
            eprintln!("  UNREADABLE {}: {e}", p.display());
        }
    }
    if !r.unreadable.is_empty() {
        eprintln!(
            "{} file(s) or folder(s) could not be read; the snapshot has everything else",
            r.unreadable.len()
        );
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

fn snapshots(name: Option<String>, json: bool) -> Result<ExitCode> {
    let home = open_home()?;
    let containers = match &name {
        Some(n) => vec![home.index.container(n)?],
        None => home.index.containers()?,
    };
    let mut rows = Vec::new();
    for m in &containers {
        for s in home.index.snapshots(&m.id)? {
            rows.push(json!({
                "id": s.id.to_hex(),
                "short_id": s.id.short(),
                "container": m.name,
                "time": ui::utc(s.time_unix_ns),
                "time_unix_ns": s.time_unix_ns,
                "host": s.host,
                "files": s.summary.files_new + s.summary.files_changed + s.summary.files_unchanged,
                "bytes": s.summary.bytes_total,
                "parent": s.parent.map(|p| p.to_hex()),
            }));
        }
    }
    if json {
        print_json(&json!(rows));
    } else if rows.is_empty() {
        println!("no snapshots yet; run `trove backup`");
    } else {
        println!(
            "{:<10} {:<16} {:<20} {:>8} {:>10}  host",
            "id", "container", "time (UTC)", "files", "size"
        );
        for r in rows {
            println!(
                "{:<10} {:<16} {:<20} {:>8} {:>10}  {}",
                r["short_id"].as_str().unwrap_or(""),
                r["container"].as_str().unwrap_or(""),
                r["time"].as_str().unwrap_or(""),
                r["files"],
                ui::bytes(r["bytes"].as_u64().unwrap_or(0)),
                r["host"].as_str().unwrap_or("")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn ls(spec: &str, path: Option<&Path>, json: bool) -> Result<ExitCode> {
    let home = open_home()?;
    let owner = unlock(&home)?;
    let (c, snap) = trove_repo::resolve_snapshot(&home, &owner, spec)?;
    let slots = home.open_peers()?;
    let fetcher = trove_repo::Fetcher::new(&slots);
    let reader = trove_repo::TreeReader {
        home: &home,
        container: &c,
        fetcher: &fetcher,
    };
    let entries = trove_repo::list_tree(&reader, &snap.root, path)?;
    if json {
        print_json(&json!(entries));
    } else {
        for e in entries {
            let size = if e.kind == "file" {
                ui::bytes(e.size)
            } else {
                String::new()
            };
            println!(
                "{:<7} {:o} {:>10} {}  {}",
                e.kind,
                e.mode,
                size,
                ui::utc(e.mtime_ns),
                e.path
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn restore(spec: &str, target: PathBuf, include: Vec<PathBuf>, json: bool) -> Result<ExitCode> {
    let home = open_home()?;
    let owner = unlock(&home)?;
    let bar = ui::Bar::new(json);
    let opts = RestoreOptions {
        target,
        include,
        workers: 2,
    };
    let r = trove_repo::restore(&home, &owner, spec, &opts, &bar);
    bar.finish();
    let r = r?;
    if json {
        print_json(&json!({
            "snapshot": r.snapshot.to_hex(),
            "target": opts.target,
            "files": r.files,
            "dirs": r.dirs,
            "symlinks": r.symlinks,
            "bytes": r.bytes,
            "seconds": r.seconds,
            "lost": r.lost.iter().map(|(p, e)| json!({"path": p, "error": e})).collect::<Vec<_>>(),
            "fragment_problems": r.problems,
        }));
    } else {
        println!(
            "restored {} files, {} folders, {} symlinks ({}) into {} in {:.1}s",
            r.files,
            r.dirs,
            r.symlinks,
            ui::bytes(r.bytes),
            opts.target.display(),
            r.seconds
        );
        if !r.problems.is_empty() {
            println!("fragment problems routed around (run `trove check`):");
            for line in ui::summarize(&r.problems) {
                println!("  {line}");
            }
        }
        for (p, e) in &r.lost {
            eprintln!("  LOST {p}: {e}");
        }
    }
    if !r.lost.is_empty() {
        eprintln!(
            "{} path(s) could not be restored; everything else was",
            r.lost.len()
        );
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

fn check(name: Option<String>, read_data: bool, audit: bool, json: bool) -> Result<ExitCode> {
    let home = open_home()?;
    let owner = unlock(&home)?;
    let bar = ui::Bar::new(json);
    let opts = trove_repo::CheckOptions { read_data, audit };
    let r = trove_repo::check(&home, &owner, name.as_deref(), &opts, &bar);
    bar.finish();
    let r = r?;
    if json {
        print_json(&serde_json::to_value(&r).expect("report serializes"));
    } else {
        println!(
            "{} container(s), {} packs, {}/{} fragments good{}",
            r.containers,
            r.packs,
            r.fragments_ok,
            r.fragments,
            if read_data {
                format!(
                    ", {} blobs verified, {} snapshots walked",
                    r.blobs_verified, r.snapshots
                )
            } else {
                String::new()
            } + &if audit {
                format!(
                    ", {} fragments audited ({} ranges proved)",
                    r.audited_fragments, r.audited_ranges
                )
            } else {
                String::new()
            }
        );
        for p in &r.problems {
            println!("  problem: {p}");
        }
        if r.problems.is_empty() {
            println!("no problems found");
        }
    }
    Ok(if r.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
