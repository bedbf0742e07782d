//! Inheritance with a waiting period and a veto (`docs/design.md` §9f).
//!
//! The owner's master secret is split SLIP-39 T-of-N among custodian
//! nodes, each share sealed to the heir's owner id and signed by the
//! owner's. The heir claims; each custodian starts the waiting period by
//! its own clock; the owner sees the claim and can veto it; once the wait
//! has passed without a veto, the heir collects T shares and gets a home
//! of the owner's identity, from which `sync` and `restore` work.
//!
//! - this file: the owner's side (`setup`, `veto`, `cancel`, status).
//! - `heir`: the heir's side (`claim`, status, `collect`).
//! - `letter`: the non-secret letter the heir needs.

mod error;
mod heir;
mod letter;

pub use error::InheritError;
pub use heir::{claim, collect, heir_status, Collected};
pub use letter::{Letter, LetterCustodian, LETTER_VERSION};

use crate::home::{Home, Owner};
use crate::location::PeerLocation;
use crate::Result;
use serde::Serialize;
use std::path::Path;
use std::time::Duration;
use trove_core::escrow::seal_escrow_share;
use trove_core::manifest::PeerRecord;
use trove_node::escrow::{ClaimPhase, EscrowSpec, EscrowView};
use trove_node::{NodePeer, OwnerId};
use trove_recovery::GroupSpec;

/// SLIP-39's largest set.
const MAX_CUSTODIANS: usize = 16;
/// The file name of the letter in a home, by default.
pub const LETTER_FILE: &str = "inheritance-letter.json";

/// What `trove inherit setup` is asked.
#[derive(Debug, Clone)]
pub struct SetupOptions {
    pub heir: OwnerId,
    pub wait: Duration,
    /// Also wait until the owner has not been seen this long.
    pub inactive: Option<Duration>,
    /// Node peers by name (default: every node peer).
    pub custodians: Option<Vec<String>>,
    /// Shares needed (default: a majority, at least 2 when N ≥ 2).
    pub threshold: Option<u8>,
}

/// One custodian's answer, for status, claim, veto, cancel and collect.
#[derive(Debug, Clone, Serialize)]
pub struct CustodianRow {
    /// The owner's peer name for the node.
    pub custodian: String,
    /// The escrow as the node sees it (`None`: it holds none).
    pub escrow: Option<EscrowView>,
    /// Why the node gave no answer about the escrow, if it did not.
    pub error: Option<String>,
    /// The node refused: it holds no escrow naming the caller as heir.
    pub not_heir: bool,
    /// Collect: the node released its share.
    pub released: bool,
}

impl CustodianRow {
    fn answered(custodian: &str, escrow: Option<EscrowView>) -> Self {
        Self {
            custodian: custodian.to_owned(),
            escrow,
            error: None,
            not_heir: false,
            released: false,
        }
    }

    fn failed(custodian: &str, error: impl std::fmt::Display) -> Self {
        Self {
            custodian: custodian.to_owned(),
            escrow: None,
            error: Some(error.to_string()),
            not_heir: false,
            released: false,
        }
    }

    /// The latest claim's phase, if the node has a claim.
    pub fn phase(&self) -> Option<ClaimPhase> {
        self.escrow.as_ref()?.claim.map(|c| c.phase)
    }

    /// Whether the node reports an open claim (waiting or releasable).
    pub fn open_claim(&self) -> bool {
        matches!(
            self.phase(),
            Some(ClaimPhase::Waiting { .. } | ClaimPhase::Releasable)
        )
    }

    /// One line for people: where this custodian stands.
    pub fn describe(&self) -> String {
        if let Some(e) = &self.error {
            return if self.not_heir {
                format!("refused, not the named heir: {e}")
            } else {
                format!("unreachable or refused: {e}")
            };
        }
        if self.released {
            return "released its share".into();
        }
        match &self.escrow {
            Some(v) => describe_escrow(v),
            None => "holds no escrow".into(),
        }
    }
}

/// One line for people about an escrow: its set, heir, wait and claim.
pub fn describe_escrow(v: &EscrowView) -> String {
    let claim = match v.claim {
        None => "no claim".to_owned(),
        Some(c) => match c.phase {
            ClaimPhase::Waiting { left_secs, .. } => format!(
                "claim #{} OPEN, releases in {} by its clock unless vetoed",
                c.id,
                crate::health::format_duration(Duration::from_secs(left_secs))
            ),
            ClaimPhase::Releasable => {
                format!("claim #{} OPEN, its wait has passed: it releases now", c.id)
            }
            ClaimPhase::Vetoed { .. } => format!("claim #{} vetoed", c.id),
        },
    };
    format!(
        "escrow of set {:04x} for heir {}…, wait {}: {claim}",
        v.set_id,
        &v.heir.to_hex()[..12],
        crate::health::format_duration(Duration::from_secs(v.wait_secs))
    )
}

/// What setup did.
#[derive(Debug, Clone, Serialize)]
pub struct SetupReport {
    pub letter: Letter,
    pub letter_path: std::path::PathBuf,
}

/// The node peers of this home, or those named (each must be one).
fn custodian_records(home: &Home, named: Option<&[String]>) -> Result<Vec<PeerRecord>> {
    let records = home.peers().records()?;
    let is_node = |r: &PeerRecord| matches!(r.location.parse(), Ok(PeerLocation::Node(_)));
    let chosen: Vec<PeerRecord> = match named {
        None => records.into_iter().filter(is_node).collect(),
        Some(names) => names
            .iter()
            .map(|n| {
                let r = records
                    .iter()
                    .find(|r| &r.name == n)
                    .ok_or_else(|| crate::RepoError::NoPeer(n.clone()))?;
                if is_node(r) {
                    Ok(r.clone())
                } else {
                    Err(InheritError::NotANode(n.clone()).into())
                }
            })
            .collect::<Result<_>>()?,
    };
    if chosen.is_empty() {
        return Err(InheritError::NoCustodians.into());
    }
    Ok(chosen)
}

/// The default threshold of `n` custodians: a majority, at least 2 when
/// there are 2 or more.
pub fn default_threshold(n: usize) -> u8 {
    match n {
        0 | 1 => 1,
        n => (n / 2 + 1).max(2) as u8,
    }
}

fn node_of(home: &Home, rec: &PeerRecord) -> Result<NodePeer> {
    home.peers()
        .node(rec)?
        .ok_or_else(|| InheritError::NotANode(rec.name.clone()).into())
}

/// Split the master secret among the custodians, seal each share to the
/// heir, store one escrow per custodian (replacing earlier ones) and write
/// the heir's letter to `letter_path`.
pub fn setup(
    home: &Home,
    owner: &Owner,
    opts: &SetupOptions,
    letter_path: &Path,
) -> Result<SetupReport> {
    let seed = zeroize::Zeroizing::new(owner.master.transport_seed());
    let me = OwnerId::from_seed(&seed);
    if opts.heir == me {
        return Err(InheritError::HeirIsSelf.into());
    }
    let records = custodian_records(home, opts.custodians.as_deref())?;
    let n = records.len();
    if n > MAX_CUSTODIANS {
        return Err(InheritError::TooManyCustodians(n).into());
    }
    let threshold = opts.threshold.unwrap_or_else(|| default_threshold(n));
    if threshold == 0 || usize::from(threshold) > n {
        return Err(InheritError::BadThreshold {
            threshold,
            custodians: n,
        }
        .into());
    }
    // SLIP-39 makes a 1-of-N set only as 1-of-1: with threshold 1 every
    // custodian holds the same share.
    let (t, count) = if threshold == 1 {
        (1, 1)
    } else {
        (threshold, n as u8)
    };
    let groups = trove_recovery::split(
        owner.master.as_bytes(),
        b"",
        1,
        &[GroupSpec {
            member_threshold: t,
            member_count: count,
        }],
        false,
        1,
    )
    .map_err(InheritError::from)?;
    let shares = groups.into_iter().next().unwrap_or_default();
    let set_id = shares
        .first()
        .map(|s| s.set_id().value())
        .ok_or(InheritError::NoCustodians)?;
    let mut failed = Vec::new();
    let mut custodians = Vec::new();
    for (i, rec) in records.iter().enumerate() {
        let share = &shares[i % shares.len()];
        let words = zeroize::Zeroizing::new(share.to_mnemonic());
        let sealed =
            seal_escrow_share(&seed, &opts.heir.0, set_id, &words).map_err(InheritError::from)?;
        let spec = EscrowSpec {
            heir: opts.heir,
            wait_secs: opts.wait.as_secs(),
            inactive_secs: opts.inactive.map(|d| d.as_secs()),
            set_id,
            threshold,
            sealed_share: sealed,
        };
        match node_of(home, rec).and_then(|node| Ok(node.escrow_put(spec)?)) {
            Ok(()) => custodians.push(LetterCustodian {
                name: rec.name.clone(),
                ticket: rec.location.clone(),
            }),
            Err(e) => failed.push(format!("{}: {e}", rec.name)),
        }
    }
    if !failed.is_empty() {
        // An incomplete set is of no use to the heir (no letter names it):
        // what the others stored is deleted again.
        let left_behind = custodians
            .iter()
            .filter_map(|c| {
                let rec = records.iter().find(|r| r.name == c.name)?;
                let undone = node_of(home, rec).and_then(|node| Ok(node.escrow_delete()?));
                undone.err().map(|e| format!("{}: {e}", c.name))
            })
            .collect();
        return Err(InheritError::SetupIncomplete {
            failed: failed.len(),
            total: n,
            details: failed.join("; "),
            left_behind,
        }
        .into());
    }
    let letter = Letter {
        version: LETTER_VERSION,
        owner_id: me,
        owner_fingerprint: owner.public().fingerprint(),
        heir: opts.heir,
        threshold,
        wait_secs: opts.wait.as_secs(),
        inactive_secs: opts.inactive.map(|d| d.as_secs()),
        set_id,
        created: crate::time::utc(crate::time::now_ns()),
        custodians,
        how: format!(
            "For the heir: from your own Trove home (the one whose `trove whoami` is the heir id), run `trove inherit claim --owner {me} --letter THIS_FILE`; the owner is told and may veto; after the waiting period run `trove inherit collect --owner {me} --letter THIS_FILE --into NEW_HOME`, then `TROVE_HOME=NEW_HOME trove sync` and `trove restore`."
        ),
    };
    letter.write(letter_path)?;
    Ok(SetupReport {
        letter,
        letter_path: letter_path.to_owned(),
    })
}

/// Ask every node peer `call`, one row each.
fn each_node(
    home: &Home,
    call: impl Fn(&NodePeer) -> std::result::Result<Option<EscrowView>, trove_peer::PeerError>,
) -> Result<Vec<CustodianRow>> {
    let records = custodian_records(home, None)?;
    Ok(records
        .iter()
        .map(|rec| match node_of(home, rec) {
            Err(e) => CustodianRow::failed(&rec.name, e),
            Ok(node) => match call(&node) {
                Ok(v) => CustodianRow::answered(&rec.name, v),
                Err(e) => CustodianRow::failed(&rec.name, e),
            },
        })
        .collect())
}

/// The owner's escrows, custodian by custodian, with any open claim.
pub fn owner_status(home: &Home) -> Result<Vec<CustodianRow>> {
    each_node(home, NodePeer::escrow_status)
}

/// The custodians reporting an open claim (for `trove status` and the
/// daemon's round); custodians that do not answer are left out (the
/// peers' own state says so).
/// Node peers named in `skip` (found unreachable a moment ago) are not
/// asked, so a dead node costs no second timeout.
pub fn open_claims(home: &Home, skip: &[String]) -> Vec<CustodianRow> {
    let Ok(records) = custodian_records(home, None) else {
        return Vec::new();
    };
    records
        .iter()
        .filter(|r| !skip.contains(&r.name))
        .filter_map(|rec| {
            let view = node_of(home, rec).ok()?.escrow_status().ok()?;
            Some(CustodianRow::answered(&rec.name, view))
        })
        .filter(CustodianRow::open_claim)
        .collect()
}

/// Veto every open claim on every custodian.
pub fn veto(home: &Home) -> Result<Vec<CustodianRow>> {
    each_node(home, NodePeer::escrow_veto)
}

/// Delete the escrows on every custodian (rows show what each held).
pub fn cancel(home: &Home) -> Result<Vec<CustodianRow>> {
    each_node(home, NodePeer::escrow_delete)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_threshold_is_a_majority_of_at_least_two() {
        let got: Vec<u8> = (1..=6).map(default_threshold).collect();
        assert_eq!(got, [1, 2, 2, 3, 3, 4]);
    }
}
