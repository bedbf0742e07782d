//! `trove status`: containers (last snapshot, redundancy, durability
//! estimate, what the daemon does next), peers (state, last seen, audits,
//! bytes held), and whether a daemon runs.

use crate::context::{home_dir, open_home_waiting, Out};
use crate::ui::bytes;
use anyhow::Result;
use serde::Serialize;
use std::process::ExitCode;
use std::time::Duration;
use trove_daemon::state::ContainerState;
use trove_daemon::DaemonState;
use trove_repo::{
    now_unix, parse_duration, Config, ContainerStatus, DrillStatus, PeerReciprocity, PeerState,
    PeerStatus, Storm,
};

#[derive(clap::Args)]
pub struct Args {
    /// A peer unreachable this long counts as lost [default: the running
    /// daemon's, else config.toml's daemon.peer_lost_after].
    #[arg(long, value_parser = parse_duration)]
    peer_lost_after: Option<Duration>,
    /// How long to wait while the daemon or another command holds the index.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    wait: Duration,
}

/// What `--json` prints.
#[derive(Serialize)]
struct Status<'a> {
    containers: Vec<ContainerRow<'a>>,
    peers: &'a [PeerStatus],
    storm: Option<Storm>,
    daemon: DaemonRow,
    /// The last recovery drill.
    drill: &'a DrillStatus,
    /// Custodians with an open inheritance claim.
    inheritance_claims: &'a [trove_repo::inherit::CustodianRow],
    /// A master secret rotation was started and not finished.
    rotation_under_way: bool,
}

#[derive(Serialize)]
struct ContainerRow<'a> {
    #[serde(flatten)]
    status: &'a ContainerStatus,
    /// What the daemon will do next for it (when one runs).
    daemon: Option<ContainerState>,
}

#[derive(Serialize)]
struct DaemonRow {
    running: bool,
    pid: Option<u32>,
    /// Its last state file (stale when it does not run).
    state: Option<DaemonState>,
}

pub fn run(args: Args, out: Out) -> Result<ExitCode> {
    let dir = home_dir()?;
    let mut config = Config::load(&dir)?;
    let pid = trove_daemon::instance::running(&dir);
    let state = DaemonState::load(&dir);
    // Peers are judged as the running daemon judges them (its flags may
    // override the file).
    if let Some(settings) = state
        .as_ref()
        .filter(|_| pid.is_some())
        .and_then(|s| s.settings)
    {
        config.daemon = settings;
    }
    if let Some(d) = args.peer_lost_after {
        config.daemon.peer_lost_after = d;
    }
    let (report, rotation_under_way) = {
        let home = open_home_waiting(args.wait)?;
        (
            trove_repo::status(&home, &config)?,
            home.rotation_under_way(),
        )
    };
    let live = state.as_ref().filter(|_| pid.is_some());
    let row = Status {
        containers: report
            .containers
            .iter()
            .map(|c| ContainerRow {
                status: c,
                daemon: live.and_then(|s| s.containers.get(&c.redundancy.name).cloned()),
            })
            .collect(),
        peers: &report.peers,
        storm: report.storm,
        daemon: DaemonRow {
            running: pid.is_some(),
            pid,
            state: state.clone(),
        },
        drill: &report.drill,
        inheritance_claims: &report.inheritance_claims,
        rotation_under_way,
    };
    out.emit(&row, |row| print_text(row))?;
    let degraded = report
        .containers
        .iter()
        .any(|c| c.redundancy.packs_degraded > 0 || c.redundancy.packs_unreadable > 0);
    Ok(if degraded {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

/// `3m ago`, `in 2h`.
fn when(t: Option<i64>) -> String {
    let Some(t) = t else {
        return "never".to_owned();
    };
    let d = now_unix() - t;
    let span = |s: i64| {
        let s = s.unsigned_abs();
        match s {
            0..60 => format!("{s}s"),
            60..3600 => format!("{}m", s / 60),
            3600..172_800 => format!("{}h", s / 3600),
            _ => format!("{}d", s / 86_400),
        }
    };
    if d >= 0 {
        format!("{} ago", span(d))
    } else {
        format!("in {}", span(d))
    }
}

fn print_text(s: &Status) {
    if s.rotation_under_way {
        println!(
            "!! A MASTER SECRET ROTATION IS NOT FINISHED: peers may already refuse the old secret; run `trove recovery rotate` to finish it."
        );
    }
    if !s.inheritance_claims.is_empty() {
        println!(
            "!! INHERITANCE CLAIM OPEN on {} custodian(s): your heir asked for your escrowed master secret. If you did not expect it, run `trove inherit veto` now.",
            s.inheritance_claims.len()
        );
        for r in s.inheritance_claims {
            println!("   {:<12} {}", r.custodian, r.describe());
        }
    }
    println!("containers:");
    for row in &s.containers {
        let c = &row.status.redundancy;
        let st = row.status;
        let last = match st.last_snapshot_unix {
            Some(t) => format!("last snapshot {} ({} in all)", when(Some(t)), st.snapshots),
            None => "no snapshot yet".to_owned(),
        };
        println!("  {}: {last}", c.name);
        let mut health = format!(
            "{}+{} over {} failure domain(s), {} pack(s), {} degraded",
            c.k, c.m, c.failure_domains, c.packs_total, c.packs_degraded
        );
        if c.packs_to_repair > 0 {
            health.push_str(&format!(", {} to repair", c.packs_to_repair));
        }
        if c.packs_unreadable > 0 {
            health.push_str(&format!(
                ", {} UNREADABLE until a peer comes back",
                c.packs_unreadable
            ));
        }
        println!("    {health}; {} stored", bytes(c.bytes_stored));
        println!("    retention: {}", st.retention);
        println!("    durability: {}", st.durability_text);
        if let Some(d) = &row.daemon {
            let mut next = vec![format!("backup {}", when(d.next_backup_unix))];
            if d.next_prune_unix.is_some() {
                next.push(format!("retention {}", when(d.next_prune_unix)));
            }
            let walk = match (d.watching, d.knows_changes) {
                (true, true) => " (a backup for changes walks only the folders that changed)",
                (true, false) => " (the next backup walks every folder)",
                (false, _) => "",
            };
            println!(
                "    daemon: {}; next {}{walk}",
                if d.watching {
                    "watching for changes"
                } else {
                    "rescans only"
                },
                next.join(", ")
            );
            for note in [&d.held, &d.watch_problem, &d.last_error]
                .into_iter()
                .flatten()
            {
                println!("    note: {note}");
            }
        }
    }
    println!("peers:");
    for p in s.peers {
        let seen = match p.state {
            PeerState::Online => String::new(),
            _ => format!(", last seen {}", when(p.last_seen_unix)),
        };
        let audits = if p.last_audit_unix.is_some() {
            format!(
                "audits: {} passed, {} failed, last {}",
                p.audit_rounds_passed,
                p.audit_rounds_failed,
                when(p.last_audit_unix)
            )
        } else {
            "never audited".to_owned()
        };
        println!(
            "  {}: {}{seen}; {audits}; holds {} in {} fragment(s)",
            p.name,
            p.state,
            bytes(p.bytes_held),
            p.fragments_held
        );
        if let Some(r) = &p.reciprocity {
            println!("    {}", give_take(r));
        }
        if let Some(e) = &p.error {
            println!("    {e}");
        }
    }
    if let Some(storm) = &s.storm {
        println!("storm guard: {storm}");
    }
    println!("drill: {}", s.drill.text);
    if let Some(r) = &s.drill.reminder {
        println!("reminder: {r}");
    }
    match (&s.daemon.pid, &s.daemon.state) {
        (Some(pid), Some(st)) => println!(
            "daemon: running (pid {pid}, since {}){}; last audit {}, next {}",
            when(Some(st.started_unix)),
            st.working_on
                .as_ref()
                .map(|w| format!(", now: {w}"))
                .unwrap_or_default(),
            when(st.last_audit_unix),
            when(st.next_audit_unix)
        ),
        (Some(pid), None) => println!("daemon: running (pid {pid})"),
        (None, _) => println!(
            "daemon: not running: changes are backed up only when you run `trove backup` (start `trove daemon`, or install the service: see the README)"
        ),
    }
}

/// "operator 1a2b3c4d5e6f: you give 1.2 GiB, you use 800 MiB (proven 3h
/// ago)", and why a figure is missing.
fn give_take(r: &PeerReciprocity) -> String {
    let op = r
        .operator
        .as_deref()
        .map_or("operator unknown".to_owned(), |o| {
            format!("operator {}", &o[..12.min(o.len())])
        });
    let gives = r.you_give.map_or("?".to_owned(), bytes);
    let uses = match (r.you_use, r.proven_unix) {
        (Some(b), t) => format!("{} (proven {})", bytes(b), when(t)),
        (None, _) => "unproven".to_owned(),
    };
    let note = r
        .note
        .as_deref()
        .map(|n| format!(" — {n}"))
        .unwrap_or_default();
    format!("{op}: you give {gives}, you use {uses}{note}")
}
