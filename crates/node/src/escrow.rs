//! Inheritance escrows a node holds as a custodian (`docs/design.md` §9f):
//! one sealed share of an owner's master secret, the heir it is for, the
//! waiting period, and the heir's claims with their vetoes.
//!
//! ```text
//! DIR/escrow/<owner hex>.json   one escrow per owner (0600, atomic writes)
//! ```
//!
//! Every time here is the node's own clock (seconds since the Unix epoch):
//! a claim opens when this node receives it and releases when this node
//! has seen the waiting period pass, whatever the owner's or the heir's
//! clocks say. The logic is pure (the caller passes `now`), so tests can
//! walk through a waiting period without sleeping.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use trove_peer::durable;

use crate::error::NodeError;
use crate::store::{NodeDir, OwnerId};

/// The escrow file's format version (1: 2026-11).
pub const ESCROW_VERSION: u32 = 1;
/// Largest sealed share a node keeps (a SLIP-39 share sealed is ~350 bytes).
pub const MAX_SEALED_SHARE: usize = 8 * 1024;
const ESCROW_DIR: &str = "escrow";

/// What an owner sends to set up (or replace) its escrow on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscrowSpec {
    /// The only owner id that may claim and collect.
    pub heir: OwnerId,
    /// A claim releases after this many seconds without a veto.
    pub wait_secs: u64,
    /// If set, also only once the owner has not been seen by this node
    /// (no authenticated request) for this many seconds.
    pub inactive_secs: Option<u64>,
    /// The SLIP-39 set the share belongs to (a new one per setup).
    pub set_id: u16,
    /// Shares the heir needs (for the heir's and owner's status).
    pub threshold: u8,
    /// The share, sealed to the heir (`trove_core::escrow`): the node
    /// cannot open it.
    #[serde(with = "hex_bytes")]
    pub sealed_share: Vec<u8>,
}

/// The state of one claim; a vetoed claim never releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ClaimState {
    /// Waiting for the period to pass (or released once it has).
    Open,
    /// The owner vetoed it at this time (node clock).
    Vetoed { at_unix: u64 },
}

/// A claim the heir made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// Numbered from 1 per escrow, never reused: a veto names what it
    /// cancelled, and a new claim after a veto is a new number.
    pub id: u64,
    /// When this node received the claim (its own clock).
    pub opened_unix: u64,
    #[serde(flatten)]
    pub state: ClaimState,
}

/// `DIR/escrow/<owner>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escrow {
    pub version: u32,
    pub owner: OwnerId,
    #[serde(flatten)]
    pub spec: EscrowSpec,
    /// When this node stored it.
    pub created_unix: u64,
    /// The id the next claim gets.
    pub next_claim: u64,
    /// Every claim, oldest first (at most one open).
    pub claims: Vec<Claim>,
}

/// Where a claim stands, as a node reports it. (Wire types are plain
/// serde: postcard cannot read tagged or flattened forms.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimPhase {
    /// The waiting period (and inactivity, if asked) has not passed yet.
    Waiting {
        /// When it releases by this node's clock, if the owner stays away.
        release_unix: u64,
        left_secs: u64,
    },
    /// Collect now gets the share.
    Releasable,
    Vetoed {
        at_unix: u64,
    },
}

/// One claim as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimView {
    pub id: u64,
    pub opened_unix: u64,
    pub phase: ClaimPhase,
}

/// An escrow as a node reports it to the owner or the heir (no share).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscrowView {
    pub owner: OwnerId,
    pub heir: OwnerId,
    pub wait_secs: u64,
    pub inactive_secs: Option<u64>,
    pub set_id: u16,
    pub threshold: u8,
    pub created_unix: u64,
    /// The node's clock when it answered.
    pub now_unix: u64,
    /// The owner's last authenticated request here, as the node knows it.
    pub owner_seen_unix: Option<u64>,
    /// The latest claim, if any.
    pub claim: Option<ClaimView>,
    /// Claims the owner vetoed, in all.
    pub vetoed: u64,
}

/// Why a share is not released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withheld {
    NoClaim,
    Waiting { left_secs: u64 },
    Vetoed { at_unix: u64 },
}

impl Escrow {
    pub fn new(owner: OwnerId, spec: EscrowSpec, now: u64) -> Self {
        Self {
            version: ESCROW_VERSION,
            owner,
            spec,
            created_unix: now,
            next_claim: 1,
            claims: Vec::new(),
        }
    }

    fn open_claim(&self) -> Option<&Claim> {
        self.claims.iter().find(|c| c.state == ClaimState::Open)
    }

    /// Record a claim at `now`: the open one if there is one (a repeated
    /// claim does not restart the wait), else a new one with a new id.
    pub fn claim(&mut self, now: u64) -> Claim {
        if let Some(c) = self.open_claim() {
            return *c;
        }
        let c = Claim {
            id: self.next_claim,
            opened_unix: now,
            state: ClaimState::Open,
        };
        self.next_claim += 1;
        self.claims.push(c);
        c
    }

    /// Veto every open claim at `now`; how many there were.
    pub fn veto(&mut self, now: u64) -> usize {
        let mut n = 0;
        for c in &mut self.claims {
            if c.state == ClaimState::Open {
                c.state = ClaimState::Vetoed { at_unix: now };
                n += 1;
            }
        }
        n
    }

    /// When the open claim `c` releases: its wait passed, and the owner
    /// unseen for the inactivity period if one is set.
    fn release_unix(&self, c: &Claim, owner_seen: Option<u64>) -> u64 {
        let by_wait = c.opened_unix.saturating_add(self.spec.wait_secs);
        match self.spec.inactive_secs {
            Some(idle) => {
                let seen = owner_seen
                    .unwrap_or(self.created_unix)
                    .max(self.created_unix);
                by_wait.max(seen.saturating_add(idle))
            }
            None => by_wait,
        }
    }

    fn phase(&self, c: &Claim, now: u64, owner_seen: Option<u64>) -> ClaimPhase {
        match c.state {
            ClaimState::Vetoed { at_unix } => ClaimPhase::Vetoed { at_unix },
            ClaimState::Open => {
                let release_unix = self.release_unix(c, owner_seen);
                if now >= release_unix {
                    ClaimPhase::Releasable
                } else {
                    ClaimPhase::Waiting {
                        release_unix,
                        left_secs: release_unix - now,
                    }
                }
            }
        }
    }

    /// The report for the owner or the heir.
    pub fn view(&self, now: u64, owner_seen: Option<u64>) -> EscrowView {
        let claim = self.claims.last().map(|c| ClaimView {
            id: c.id,
            opened_unix: c.opened_unix,
            phase: self.phase(c, now, owner_seen),
        });
        EscrowView {
            owner: self.owner,
            heir: self.spec.heir,
            wait_secs: self.spec.wait_secs,
            inactive_secs: self.spec.inactive_secs,
            set_id: self.spec.set_id,
            threshold: self.spec.threshold,
            created_unix: self.created_unix,
            now_unix: now,
            owner_seen_unix: owner_seen,
            claim,
            vetoed: self
                .claims
                .iter()
                .filter(|c| matches!(c.state, ClaimState::Vetoed { .. }))
                .count() as u64,
        }
    }

    /// The sealed share, if the latest claim is open and its time has come.
    pub fn release(&self, now: u64, owner_seen: Option<u64>) -> Result<&[u8], Withheld> {
        let Some(c) = self.claims.last() else {
            return Err(Withheld::NoClaim);
        };
        match self.phase(c, now, owner_seen) {
            ClaimPhase::Releasable => Ok(&self.spec.sealed_share),
            ClaimPhase::Waiting { left_secs, .. } => Err(Withheld::Waiting { left_secs }),
            ClaimPhase::Vetoed { at_unix } => Err(Withheld::Vetoed { at_unix }),
        }
    }
}

impl NodeDir {
    fn escrow_path(&self, owner: &OwnerId) -> PathBuf {
        self.root()
            .join(ESCROW_DIR)
            .join(format!("{}.json", owner.to_hex()))
    }

    /// The escrow this node holds for `owner`, if any.
    pub fn escrow(&self, owner: &OwnerId) -> Result<Option<Escrow>, NodeError> {
        let path = self.escrow_path(owner);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(NodeError::io("read", &path, e)),
        };
        decode_escrow(&bytes, &path).map(Some)
    }

    /// Write (create or replace) an escrow, atomically and privately.
    pub fn save_escrow(&self, escrow: &Escrow) -> Result<(), NodeError> {
        let path = self.escrow_path(&escrow.owner);
        let dir = self.root().join(ESCROW_DIR);
        durable::create_dir_all(&dir).map_err(|e| NodeError::io("create", &dir, e))?;
        let json = serde_json::to_vec_pretty(escrow).unwrap_or_default();
        durable::replace(&path, &json, None).map_err(|e| NodeError::io("write", &path, e))
    }

    /// Delete `owner`'s escrow; whether there was one.
    pub fn delete_escrow(&self, owner: &OwnerId) -> Result<bool, NodeError> {
        let path = self.escrow_path(owner);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(NodeError::io("delete", &path, e)),
        }
    }

    /// Every escrow held here (for `trove node status` and the log).
    pub fn escrows(&self) -> Result<Vec<Escrow>, NodeError> {
        let dir = self.root().join(ESCROW_DIR);
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(NodeError::io("list", &dir, e)),
        };
        let mut out = Vec::new();
        for entry in rd.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|x| x == "json") {
                let bytes = fs::read(&path).map_err(|e| NodeError::io("read", &path, e))?;
                out.push(decode_escrow(&bytes, &path)?);
            }
        }
        Ok(out)
    }
}

/// Parse an escrow file, refusing a newer version than this Trove reads.
pub fn decode_escrow(bytes: &[u8], path: &Path) -> Result<Escrow, NodeError> {
    #[derive(Deserialize)]
    struct Version {
        version: u32,
    }
    let corrupt = |what: String| NodeError::Corrupt {
        path: path.to_owned(),
        what,
    };
    let v: Version =
        serde_json::from_slice(bytes).map_err(|e| corrupt(format!("unreadable escrow: {e}")))?;
    if v.version != ESCROW_VERSION {
        return Err(corrupt(format!(
            "escrow version {} is not the one this Trove reads ({ESCROW_VERSION}): upgrade trove",
            v.version
        )));
    }
    serde_json::from_slice(bytes).map_err(|e| corrupt(format!("unreadable escrow: {e}")))
}

/// Bytes as hex in JSON, raw in postcard.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(b))
        } else {
            s.serialize_bytes(b)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        if d.is_human_readable() {
            hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
        } else {
            <Vec<u8>>::deserialize(d)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(inactive: Option<u64>) -> EscrowSpec {
        EscrowSpec {
            heir: OwnerId::from_seed(&[2; 32]),
            wait_secs: 100,
            inactive_secs: inactive,
            set_id: 77,
            threshold: 2,
            sealed_share: vec![1, 2, 3, 250],
        }
    }

    #[test]
    fn escrow_file_round_trips_with_its_version_and_refuses_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let nd = NodeDir::open_or_create(dir.path()).unwrap();
        let owner = OwnerId::from_seed(&[1; 32]);
        assert_eq!(nd.escrow(&owner).unwrap(), None);
        let mut e = Escrow::new(owner, spec(Some(50)), 1000);
        e.claim(1010);
        e.veto(1020);
        e.claim(1030);
        nd.save_escrow(&e).unwrap();
        assert_eq!(nd.escrow(&owner).unwrap(), Some(e.clone()));
        assert_eq!(nd.escrows().unwrap(), vec![e.clone()]);
        let path = nd.escrow_path(&owner);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"version\": 1"), "{text}");
        assert!(text.contains("010203fa"), "the share is hex: {text}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // Postcard (the wire) carries the same spec and views.
        let wire = postcard::to_stdvec(&e.spec).unwrap();
        assert_eq!(postcard::from_bytes::<EscrowSpec>(&wire).unwrap(), e.spec);
        for now in [1031, 9999] {
            let v = e.view(now, Some(1000));
            let wire = postcard::to_stdvec(&v).unwrap();
            assert_eq!(postcard::from_bytes::<EscrowView>(&wire).unwrap(), v);
        }

        fs::write(&path, text.replace("\"version\": 1", "\"version\": 2")).unwrap();
        assert!(matches!(nd.escrow(&owner), Err(NodeError::Corrupt { .. })));
        assert!(nd.delete_escrow(&owner).unwrap());
        assert!(!nd.delete_escrow(&owner).unwrap());
    }

    #[test]
    fn a_claim_releases_after_the_wait_unless_vetoed_and_a_new_claim_waits_again() {
        let mut e = Escrow::new(OwnerId::from_seed(&[1; 32]), spec(None), 1000);
        assert_eq!(e.release(5000, None), Err(Withheld::NoClaim));
        let c = e.claim(1000);
        assert_eq!(c.id, 1);
        assert_eq!(
            e.claim(1050).opened_unix,
            1000,
            "a repeated claim keeps its start"
        );
        assert_eq!(
            e.release(1099, None),
            Err(Withheld::Waiting { left_secs: 1 })
        );
        assert_eq!(e.veto(1099), 1);
        assert_eq!(
            e.release(9999, None),
            Err(Withheld::Vetoed { at_unix: 1099 })
        );
        let c2 = e.claim(2000);
        assert_eq!(c2.id, 2, "a new claim after a veto");
        assert_eq!(
            e.release(2050, None),
            Err(Withheld::Waiting { left_secs: 50 })
        );
        assert_eq!(e.release(2100, None), Ok(&[1u8, 2, 3, 250][..]));
        let v = e.view(2100, None);
        assert_eq!(v.vetoed, 1);
        assert_eq!(v.claim.unwrap().phase, ClaimPhase::Releasable);
    }

    #[test]
    fn with_inactivity_the_owner_being_seen_holds_the_release() {
        let mut e = Escrow::new(OwnerId::from_seed(&[1; 32]), spec(Some(500)), 1000);
        e.claim(1000);
        // Wait passed at 1100, but the owner was seen at 1200: 1700.
        assert_eq!(
            e.release(1150, Some(1200)),
            Err(Withheld::Waiting { left_secs: 550 })
        );
        assert!(e.release(1700, Some(1200)).is_ok());
        // Never seen: counts from the escrow's creation.
        assert_eq!(
            e.release(1400, None),
            Err(Withheld::Waiting { left_secs: 100 })
        );
    }
}
