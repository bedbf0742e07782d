//! `trove status`: every container's last snapshot, redundancy and
//! estimated durability, and every peer's state, audit record and the
//! bytes it holds. Peers are asked whether they answer (as `peer list`
//! does) and their sightings recorded; nothing else is read from them.

use crate::audit::held_by_peer;
use crate::config::Config;
use crate::drill::{drill_status, DrillStatus};
use crate::durability::{estimate_loss, observed_loss_rate, repair_window, Durability};
use crate::error::Result;
use crate::health::{PeerHealth, PeerState, Storm};
use crate::home::Home;
use crate::reciprocity::{self, PeerReciprocity};
use crate::redundancy::{redundancy, ContainerRedundancy};
use serde::Serialize;
use std::time::Duration;

/// Repair speed assumed for the durability estimate: rebuilding a lost
/// peer's data reads `k` times it and writes it once, over home links and
/// USB disks; 10 MiB/s is a deliberately modest figure.
const ASSUMED_REPAIR_BYTES_PER_SEC: u64 = 10 << 20;
const SECS_PER_YEAR: f64 = 365.25 * 86_400.0;

/// Everything `trove status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub containers: Vec<ContainerStatus>,
    pub peers: Vec<PeerStatus>,
    /// The storm guard holds: unreachable peers are not declared lost.
    pub storm: Option<Storm>,
    /// The last recovery drill (`TROVE_HOME/drill.json`).
    pub drill: DrillStatus,
    /// Custodians reporting an open inheritance claim (waiting or due):
    /// the owner should see it at once, and veto it if unexpected.
    pub inheritance_claims: Vec<crate::inherit::CustodianRow>,
}

/// One container: its redundancy (flattened: `name`, `k`, `m`,
/// `packs_total`, `packs_degraded`, ...), snapshots and durability.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerStatus {
    #[serde(flatten)]
    pub redundancy: ContainerRedundancy,
    pub snapshots: u64,
    pub last_snapshot_unix: Option<i64>,
    pub last_snapshot_age_secs: Option<u64>,
    /// The retention policy (`--keep-daily 7 ...` or `keep everything`).
    pub retention: String,
    /// The estimated probability of losing data within a year (see
    /// `durability`).
    pub loss_probability_year: f64,
    pub durability: Durability,
    pub durability_text: String,
}

/// One configured peer.
#[derive(Debug, Clone, Serialize)]
pub struct PeerStatus {
    pub name: String,
    pub location: String,
    /// `online`, `suspect` or `lost`.
    pub state: PeerState,
    pub last_seen_unix: Option<i64>,
    pub unreachable_since_unix: Option<i64>,
    /// Why it does not answer, or why it is lost although it answers.
    pub error: Option<String>,
    pub audit_rounds_passed: u64,
    pub audit_rounds_failed: u64,
    pub fragments_proven: u64,
    pub fragments_failed: u64,
    pub last_audit_unix: Option<i64>,
    pub fragments_held: u64,
    pub bytes_held: u64,
    /// For a node peer: "you give X, you use Y" (docs/design.md §6a.5).
    pub reciprocity: Option<PeerReciprocity>,
}

fn secs(ns: Option<i64>) -> Option<i64> {
    ns.map(|n| n.div_euclid(1_000_000_000))
}

/// Gather the status of the home, with the daemon's settings of `config`
/// (the threshold for lost peers, and the repair window of the estimate).
pub fn status(home: &Home, config: &Config) -> Result<StatusReport> {
    let settings = &config.daemon;
    let mut set = home.peers().open_all()?;
    set.record_health(home, settings.peer_lost_after, true)?;
    let storm = set.storm_guard(true, &crate::progress::Quiet);
    reciprocity::learn_operators(home, &set, true)?;
    let mut give_take = reciprocity::peer_reciprocity(home, config, &set)?;
    let health: Vec<PeerHealth> = set.health();
    let held = held_by_peer(home)?;
    let now_ns = crate::time::now_ns();
    let mut peers = Vec::new();
    for slot in &set.slots {
        let Some(h) = &slot.health else { continue };
        let mine = held.get(&slot.record.id).map_or(&[][..], Vec::as_slice);
        peers.push(PeerStatus {
            name: h.peer.clone(),
            location: slot.record.location.clone(),
            state: h.state,
            last_seen_unix: secs(h.sightings.last_seen_ns),
            unreachable_since_unix: secs(h.sightings.unreachable_since_ns),
            error: h.error.clone(),
            audit_rounds_passed: h.audits.rounds_passed,
            audit_rounds_failed: h.audits.rounds_failed,
            fragments_proven: h.audits.fragments_passed,
            fragments_failed: h.audits.fragments_failed,
            last_audit_unix: secs(h.audits.last_audit_ns),
            fragments_held: mine.len() as u64,
            bytes_held: mine.iter().map(|f| f.len).sum(),
            reciprocity: give_take.remove(&slot.record.id),
        });
    }
    // The observed loss rate: peers lost now, over the peer-years since
    // the oldest container was created (removed peers are not remembered,
    // so this undercounts; the prior keeps it from reading as zero).
    let manifests = home.containers().manifests()?;
    let oldest = manifests.iter().map(|m| m.created_unix).min();
    let years = oldest.map_or(0.0, |t| {
        ((now_ns / 1_000_000_000 - t).max(0) as f64) / SECS_PER_YEAR
    });
    let lost_now = peers.iter().filter(|p| p.state == PeerState::Lost).count() as u32;
    let lambda = observed_loss_rate(lost_now, years * peers.len() as f64);
    let biggest = peers.iter().map(|p| p.bytes_held).max().unwrap_or(0);
    let window = repair_window(
        settings,
        Duration::from_secs(biggest / ASSUMED_REPAIR_BYTES_PER_SEC),
    );
    let rows = home.containers().snapshot_rows(None)?;
    let mut containers = Vec::new();
    for r in redundancy(home, &health)? {
        let snaps: Vec<_> = rows.iter().filter(|s| s.container == r.name).collect();
        let last = snaps.iter().map(|s| s.time_unix_ns).max();
        let durability = estimate_loss(r.failure_domains, u32::from(r.m), lambda, window);
        containers.push(ContainerStatus {
            snapshots: snaps.len() as u64,
            last_snapshot_unix: secs(last),
            last_snapshot_age_secs: last
                .map(|t| (now_ns.saturating_sub(t) / 1_000_000_000).max(0) as u64),
            retention: config.container(&r.name).retention.describe(),
            loss_probability_year: durability.annual_loss_probability,
            durability_text: durability.describe(),
            durability,
            redundancy: r,
        });
    }
    let unreachable: Vec<String> = peers
        .iter()
        .filter(|p| p.error.is_some())
        .map(|p| p.name.clone())
        .collect();
    Ok(StatusReport {
        containers,
        peers,
        storm,
        drill: drill_status(home.dir(), now_ns.div_euclid(1_000_000_000)),
        inheritance_claims: crate::inherit::open_claims(home, &unreachable),
    })
}
