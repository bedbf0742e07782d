//! The owner's side of the reciprocity ledger, "give space, get space"
//! (docs/design.md §6a.5).
//!
//! Per node peer the index keeps ([`PeerLedger`], table `peer_ledger`) the
//! node's operator, as its `Hello` named it, and what the last passing
//! audit round proved the node holds: the bytes of this owner's fragments
//! the index places on it. Nothing here is taken from the node's word
//! except whom to credit.
//!
//! - "you use Y" (a node peer stores Y for me): the proven bytes, or
//!   unproven while its audits fail or none has passed yet.
//! - "you give X" (my node stores X for that peer's operator): read from
//!   this owner's own node's data folder (`node_data` in `config.toml`, or
//!   `TROVE_NODE_DATA`).
//!
//! After each audit round the proven bytes are written, per operator, into
//! that node's `proofs.json`, which a node run with `--reciprocal` reads to
//! decide how much more it takes from each owner.

use crate::config::Config;
use crate::error::Result;
use crate::health::PeerState;
use crate::home::Home;
use crate::location::PeerLocation;
use crate::peers::PeerSet;
use crate::progress::{Event, Progress};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use trove_core::manifest::PeerRecord;
use trove_core::PeerId;
use trove_node::{NodeDir, OwnerId, Proof, Proofs};

/// What the index remembers of a node peer for the ledger (table
/// `peer_ledger`, keyed by peer id, postcard).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerLedger {
    /// The node's operator, as its latest `Hello` named it.
    pub operator: Option<OwnerId>,
    /// Bytes and fragments the index placed on it when an audit round
    /// last proved every fragment it asked of it.
    pub proven_bytes: u64,
    pub proven_fragments: u64,
    /// When that round ran (ns since the Unix epoch); `None`: never.
    pub proven_ns: Option<i64>,
}

/// One node peer's give and take, for `trove status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PeerReciprocity {
    /// The node's operator (owner id, hex), if its `Hello` named one.
    pub operator: Option<String>,
    /// Bytes this owner's own node stores for that operator; `None` when
    /// the operator or this owner's node is unknown (see `note`).
    pub you_give: Option<u64>,
    /// Bytes of this owner's fragments on that node as of its last passing
    /// audit; `None`: unproven (see `note`).
    pub you_use: Option<u64>,
    pub proven_unix: Option<i64>,
    /// Why a figure is missing, and what to do.
    pub note: Option<String>,
}

fn is_node(rec: &PeerRecord) -> bool {
    matches!(
        rec.location.parse::<PeerLocation>(),
        Ok(PeerLocation::Node(_))
    )
}

/// Ask the node peers that answer (after [`PeerSet::record_health`]) who
/// operates them, all at once, and keep it. With `only_unknown`, only
/// those whose operator is not known yet. A node that does not answer or
/// does not grant this owner is skipped.
pub(crate) fn learn_operators(home: &Home, set: &PeerSet, only_unknown: bool) -> Result<()> {
    let known = home.index.ledgers()?;
    let mut asks = Vec::new();
    for s in &set.slots {
        let online = s.state() == Some(PeerState::Online) || s.health.is_none();
        let id = s.record.id;
        if !online || s.available().is_none() || !is_node(&s.record) {
            continue;
        }
        if only_unknown && known.get(&id).is_some_and(|l| l.operator.is_some()) {
            continue;
        }
        if let Ok(Some(node)) = home.peers().node(&s.record) {
            asks.push((id, node));
        }
    }
    if asks.is_empty() {
        return Ok(());
    }
    let answers: Vec<(PeerId, Option<OwnerId>)> = std::thread::scope(|scope| {
        let running: Vec<_> = asks
            .iter()
            .map(|(id, node)| scope.spawn(move || node.greet().ok().map(|h| (*id, h.operator))))
            .collect();
        running
            .into_iter()
            .filter_map(|r| r.join().ok().flatten())
            .collect()
    });
    let changed: Vec<(PeerId, PeerLedger)> = answers
        .into_iter()
        .filter_map(|(id, operator)| {
            let mut l = known.get(&id).cloned().unwrap_or_default();
            (l.operator != operator).then(|| {
                l.operator = operator;
                (id, l)
            })
        })
        .collect();
    if !changed.is_empty() {
        home.index.record_ledgers(&changed)?;
    }
    Ok(())
}

/// Record what an audit round proved: `(peer, bytes, fragments)` placed on
/// each peer whose round proved every fragment asked, at `now` (ns).
pub(crate) fn record_proven(home: &Home, proven: &[(PeerId, u64, u64)], now: i64) -> Result<()> {
    let known = home.index.ledgers()?;
    let records: Vec<(PeerId, PeerLedger)> = proven
        .iter()
        .map(|&(id, bytes, fragments)| {
            let mut l = known.get(&id).cloned().unwrap_or_default();
            l.proven_bytes = bytes;
            l.proven_fragments = fragments;
            l.proven_ns = Some(now);
            (id, l)
        })
        .collect();
    home.index.record_ledgers(&records)
}

/// This owner's own node's data folder, opened, if the home is linked to
/// one (`node_data`, `TROVE_NODE_DATA`) and it can be opened.
fn own_node(config: &Config) -> Option<std::result::Result<NodeDir, String>> {
    let path = config.node_data()?;
    Some(NodeDir::open(&path).map_err(|e| format!("{}: {e}", path.display())))
}

/// What each operator is proven to give, from the index and the peers'
/// states after a round (`set`, after [`PeerSet::record_health`]): per
/// operator, its node peers that are not lost and do not fail audits.
pub(crate) fn proofs_by_operator(home: &Home, set: &PeerSet) -> Result<BTreeMap<OwnerId, Proof>> {
    let ledgers = home.index.ledgers()?;
    let mut out: BTreeMap<OwnerId, Proof> = BTreeMap::new();
    for s in &set.slots {
        let (Some(l), Some(h)) = (ledgers.get(&s.record.id), &s.health) else {
            continue;
        };
        let (Some(op), Some(ns)) = (l.operator, l.proven_ns) else {
            continue;
        };
        if h.state == PeerState::Lost || h.audits.failing_since_ns.is_some() {
            continue;
        }
        let unix = u64::try_from(ns.div_euclid(1_000_000_000)).unwrap_or(0);
        let p = out.entry(op).or_insert(Proof {
            proven_unix: unix,
            ..Proof::default()
        });
        p.proven_bytes += l.proven_bytes;
        p.proven_fragments += l.proven_fragments;
        p.proven_unix = p.proven_unix.min(unix);
        p.peers.push(s.record.name.clone());
    }
    Ok(out)
}

/// Write what this owner's audits proved into its own node's
/// `proofs.json` (after a round), if the home is linked to a node this
/// owner operates. Problems are told to `progress`, never fatal: the
/// audit round itself went fine.
pub(crate) fn write_proofs(home: &Home, set: &PeerSet, progress: &dyn Progress) -> Result<()> {
    let warn = |m: String| progress.event(Event::Warning(m));
    let config = match Config::load(home.dir()) {
        Ok(c) => c,
        Err(e) => {
            warn(format!("reciprocity proofs not written: {e}"));
            return Ok(());
        }
    };
    let dir = match own_node(&config) {
        None => return Ok(()),
        Some(Ok(d)) => d,
        Some(Err(e)) => {
            warn(format!(
                "reciprocity proofs not written: your node's data folder {e}"
            ));
            return Ok(());
        }
    };
    let Some(me) = Home::peek_ids(home.dir())?
        .owner_id
        .and_then(|h| h.parse::<OwnerId>().ok())
    else {
        return Ok(());
    };
    match dir.operator() {
        Ok(Some(op)) if op == me => {}
        Ok(Some(op)) => {
            warn(format!(
                "reciprocity proofs not written: the node at {} is operated by {}, not by this home ({})",
                dir.root().display(),
                op.short(),
                me.short()
            ));
            return Ok(());
        }
        Ok(None) => {
            warn(format!(
                "reciprocity proofs not written: the node at {} names no operator; restart it with `trove node run --operator {me}`",
                dir.root().display()
            ));
            return Ok(());
        }
        Err(e) => {
            warn(format!("reciprocity proofs not written: {e}"));
            return Ok(());
        }
    }
    let proofs = Proofs {
        by: Some(me),
        written_unix: u64::try_from(crate::time::now_unix()).unwrap_or(0),
        owners: proofs_by_operator(home, set)?,
        ..Proofs::default()
    };
    if let Err(e) = dir.write_proofs(&proofs) {
        warn(format!("reciprocity proofs not written: {e}"));
    }
    Ok(())
}

/// Each node peer's give and take (`set` after
/// [`PeerSet::record_health`]), by peer id.
pub(crate) fn peer_reciprocity(
    home: &Home,
    config: &Config,
    set: &PeerSet,
) -> Result<HashMap<PeerId, PeerReciprocity>> {
    let ledgers = home.index.ledgers()?;
    let node = own_node(config);
    let mut out = HashMap::new();
    for s in set.slots.iter().filter(|s| is_node(&s.record)) {
        let l = ledgers.get(&s.record.id).cloned().unwrap_or_default();
        let failing = s
            .health
            .as_ref()
            .is_some_and(|h| h.audits.failing_since_ns.is_some());
        let mut notes = Vec::new();
        let (you_use, proven_unix) = match l.proven_ns {
            _ if failing => {
                notes.push("it fails its audits".to_owned());
                (None, None)
            }
            None => {
                notes.push(
                    "no audit of it has passed yet (run `trove audit`; `trove daemon` audits hourly)".to_owned(),
                );
                (None, None)
            }
            Some(ns) => (Some(l.proven_bytes), Some(ns.div_euclid(1_000_000_000))),
        };
        let you_give = match (&l.operator, &node) {
            (None, _) => {
                notes.push(
                    "its operator is unknown (a node run without --operator, or not reached yet)"
                        .to_owned(),
                );
                None
            }
            (Some(_), None) => {
                notes.push("what you give is unknown: set `node_data` in config.toml (or TROVE_NODE_DATA) to your node's data folder".to_owned());
                None
            }
            (Some(_), Some(Err(e))) => {
                notes.push(format!(
                    "what you give is unknown: your node's data folder {e}"
                ));
                None
            }
            (Some(op), Some(Ok(dir))) => Some(dir.usage(op).0),
        };
        out.insert(
            s.record.id,
            PeerReciprocity {
                operator: l.operator.map(|o| o.to_hex()),
                you_give,
                you_use,
                proven_unix,
                note: (!notes.is_empty()).then(|| notes.join("; ")),
            },
        );
    }
    Ok(out)
}
