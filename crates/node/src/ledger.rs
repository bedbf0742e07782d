//! The reciprocity ledger ("give space, get space", docs/design.md §6a.5).
//!
//! Two files in the node's data folder, each with one writer, so the node
//! and its operator's home never race on a file:
//!
//! - `ledger.json` ([`Ledger`]), written by the node only: per owner, what
//!   the node observed (first and last request, time online, bytes it
//!   stores for the owner) and the reciprocity rule it runs with.
//! - `proofs.json` ([`Proofs`]), written by the operator's home only,
//!   after each audit round: per owner, the bytes that owner's nodes were
//!   proven (by the operator's own audits) to hold for the operator. The
//!   node only reads it.
//!
//! Both are JSON with a `version`; a newer version is refused. The node
//! enforces [`Reciprocity`] softly: a *new* fragment that would take an
//! owner past `proven given + allowance` is refused (the owner places it
//! elsewhere); nothing stored is ever dropped or refused for reading, and
//! metadata is always accepted so owners can commit.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use trove_peer::durable;

use crate::error::NodeError;
use crate::store::{NodeDir, OwnerId};

/// The node's observations, in the data folder.
pub const LEDGER_FILE: &str = "ledger.json";
/// What the operator's home proved, in the data folder.
pub const PROOFS_FILE: &str = "proofs.json";
/// The `version` of `ledger.json` this build writes and the newest it reads.
pub const LEDGER_VERSION: u32 = 1;
/// The `version` of `proofs.json` this build writes and the newest it reads.
pub const PROOFS_VERSION: u32 = 1;
/// Two requests of an owner closer than this count the time between them
/// as online.
pub const ONLINE_GAP: Duration = Duration::from_secs(600);
/// A proof older than this counts for nothing: the operator's home (its
/// daemon audits hourly) has stopped proving what the owner gives.
pub const PROOF_TTL: Duration = Duration::from_secs(7 * 86_400);
/// What an owner may store beyond what it gives, unless told otherwise.
pub const DEFAULT_ALLOWANCE: u64 = 1 << 30;

/// A node's reciprocity rule (`trove node run --reciprocal --allowance`):
/// an owner may store at most what it is proven to give the operator plus
/// `allowance`. The operator's own data is never limited by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reciprocity {
    pub allowance: u64,
}

impl Reciprocity {
    /// The most an owner proven to give `given` bytes may store here.
    pub fn limit(&self, given: u64) -> u64 {
        given.saturating_add(self.allowance)
    }
}

/// What the node observed of one owner.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerRecord {
    /// Its first and latest request (seconds since the Unix epoch).
    pub first_seen_unix: u64,
    pub last_seen_unix: u64,
    /// Time between requests less than [`ONLINE_GAP`] apart: a lower bound
    /// of its time online, as this node saw it.
    pub online_secs: u64,
    pub requests: u64,
    /// Bytes charged to it here (live and awaiting deletion) when the
    /// file was written.
    pub stored_bytes: u64,
}

/// `ledger.json`: written by the node only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    pub version: u32,
    /// The rule the node last ran with (`None`: no reciprocity).
    #[serde(default)]
    pub reciprocity: Option<Reciprocity>,
    #[serde(default)]
    pub owners: BTreeMap<OwnerId, OwnerRecord>,
}

impl Default for Ledger {
    fn default() -> Self {
        Self {
            version: LEDGER_VERSION,
            reciprocity: None,
            owners: BTreeMap::new(),
        }
    }
}

impl Ledger {
    /// Count a request of `owner` at `now` (seconds since the epoch).
    pub fn observe(&mut self, owner: OwnerId, now: u64) {
        let r = self.owners.entry(owner).or_insert_with(|| OwnerRecord {
            first_seen_unix: now,
            last_seen_unix: now,
            ..OwnerRecord::default()
        });
        let gap = now.saturating_sub(r.last_seen_unix);
        if r.requests > 0 && gap < ONLINE_GAP.as_secs() {
            r.online_secs += gap;
        }
        r.last_seen_unix = r.last_seen_unix.max(now);
        r.requests += 1;
    }
}

/// One owner's proof, as the operator's home wrote it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// Bytes of the operator's fragments on that owner's nodes, as of each
    /// node's last passing audit (summed over its nodes).
    pub proven_bytes: u64,
    pub proven_fragments: u64,
    /// The oldest of those audits (seconds since the epoch).
    pub proven_unix: u64,
    /// The operator's peer names of those nodes, for people.
    #[serde(default)]
    pub peers: Vec<String>,
}

impl Proof {
    /// Whether it is too old to count ([`PROOF_TTL`]).
    pub fn stale(&self, now: u64) -> bool {
        now.saturating_sub(self.proven_unix) > PROOF_TTL.as_secs()
    }
}

/// `proofs.json`: written by the operator's home only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proofs {
    pub version: u32,
    /// The home that wrote it: the node's operator.
    pub by: Option<OwnerId>,
    pub written_unix: u64,
    #[serde(default)]
    pub owners: BTreeMap<OwnerId, Proof>,
}

impl Default for Proofs {
    fn default() -> Self {
        Self {
            version: PROOFS_VERSION,
            by: None,
            written_unix: 0,
            owners: BTreeMap::new(),
        }
    }
}

impl Proofs {
    /// Bytes `owner` is proven to give the operator now (0 without a
    /// proof, or with a stale one).
    pub fn given(&self, owner: &OwnerId, now: u64) -> u64 {
        self.owners
            .get(owner)
            .filter(|p| !p.stale(now))
            .map_or(0, |p| p.proven_bytes)
    }
}

/// One owner's standing on a node: what `trove node status` shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Standing {
    /// Bytes this node stores for the owner (live and awaiting deletion).
    pub you_give: u64,
    /// Bytes the owner's nodes are proven to store for the operator;
    /// `None`: unproven (no proof yet).
    pub you_use: Option<u64>,
    /// When that was proven (seconds since the epoch).
    pub proven_unix: Option<u64>,
    /// The proof is older than [`PROOF_TTL`] and counts for nothing.
    pub proof_stale: bool,
    pub online_secs: u64,
    pub first_seen_unix: Option<u64>,
    pub last_seen_unix: Option<u64>,
    /// Under reciprocity: the most the owner may store here (else `None`).
    pub limit: Option<u64>,
    /// New fragments of this owner are refused now.
    pub blocked: bool,
}

impl Standing {
    /// The standing of `owner`, who has `stored` bytes here, at `now`.
    pub fn of(
        owner: OwnerId,
        stored: u64,
        ledger: &Ledger,
        proofs: &Proofs,
        operator: Option<&OwnerId>,
        now: u64,
    ) -> Self {
        let seen = ledger.owners.get(&owner);
        let proof = proofs.owners.get(&owner);
        let limit = ledger
            .reciprocity
            .filter(|_| operator != Some(&owner))
            .map(|r| r.limit(proofs.given(&owner, now)));
        Self {
            you_give: stored,
            you_use: proof.map(|p| p.proven_bytes),
            proven_unix: proof.map(|p| p.proven_unix),
            proof_stale: proof.is_some_and(|p| p.stale(now)),
            online_secs: seen.map_or(0, |s| s.online_secs),
            first_seen_unix: seen.map(|s| s.first_seen_unix),
            last_seen_unix: seen.map(|s| s.last_seen_unix),
            limit,
            blocked: limit.is_some_and(|l| stored >= l),
        }
    }
}

/// Read a versioned JSON file; the default when it does not exist.
fn read_json<T>(path: &Path, version_of: impl Fn(&T) -> u32, newest: u32) -> Result<T, NodeError>
where
    T: for<'de> Deserialize<'de> + Default,
{
    let value: T = match fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| NodeError::Corrupt {
            path: path.to_owned(),
            what: format!("unreadable: {e}"),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(T::default()),
        Err(e) => return Err(NodeError::io("read", path, e)),
    };
    let v = version_of(&value);
    if v > newest {
        return Err(NodeError::Corrupt {
            path: path.to_owned(),
            what: format!("version {v} is newer than this Trove reads ({newest}): upgrade trove"),
        });
    }
    Ok(value)
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), NodeError> {
    let json = serde_json::to_vec_pretty(value).unwrap_or_default();
    durable::replace(path, &json, None).map_err(|e| NodeError::io("write", path, e))
}

impl NodeDir {
    pub fn ledger_path(&self) -> PathBuf {
        self.root().join(LEDGER_FILE)
    }

    pub fn proofs_path(&self) -> PathBuf {
        self.root().join(PROOFS_FILE)
    }

    /// `ledger.json` (empty if the node never wrote one).
    pub fn ledger(&self) -> Result<Ledger, NodeError> {
        read_json(&self.ledger_path(), |l: &Ledger| l.version, LEDGER_VERSION)
    }

    /// Replace `ledger.json` (the running node only).
    pub fn save_ledger(&self, ledger: &Ledger) -> Result<(), NodeError> {
        write_json(&self.ledger_path(), ledger)
    }

    /// `proofs.json` (empty if the operator's home never wrote one).
    pub fn proofs(&self) -> Result<Proofs, NodeError> {
        read_json(&self.proofs_path(), |p: &Proofs| p.version, PROOFS_VERSION)
    }

    /// Replace `proofs.json` (the operator's home only).
    pub fn write_proofs(&self, proofs: &Proofs) -> Result<(), NodeError> {
        write_json(&self.proofs_path(), proofs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn owner(n: u8) -> OwnerId {
        OwnerId::from_seed(&[n; 32])
    }

    #[test]
    fn online_time_counts_gaps_shorter_than_ten_minutes_only() {
        let mut l = Ledger::default();
        let o = owner(1);
        l.observe(o, 1000);
        l.observe(o, 1100); // +100
        l.observe(o, 1100 + 599); // +599
        l.observe(o, 1699 + 600); // a gap of 10 minutes: offline
        l.observe(o, 2299 + 30); // +30
        let r = &l.owners[&o];
        assert_eq!(r.online_secs, 100 + 599 + 30);
        assert_eq!((r.first_seen_unix, r.last_seen_unix), (1000, 2329));
        assert_eq!(r.requests, 5);
        // A clock stepping back neither adds time nor moves last_seen back.
        l.observe(o, 500);
        assert_eq!(l.owners[&o].online_secs, 729);
        assert_eq!(l.owners[&o].last_seen_unix, 2329);
    }

    #[test]
    fn files_round_trip_privately_and_newer_versions_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let dir = NodeDir::open_or_create(&t.path().join("n")).unwrap();
        assert_eq!(dir.ledger().unwrap(), Ledger::default());
        assert_eq!(dir.proofs().unwrap(), Proofs::default());

        let mut l = Ledger {
            reciprocity: Some(Reciprocity { allowance: 7 }),
            ..Ledger::default()
        };
        l.observe(owner(1), 10);
        dir.save_ledger(&l).unwrap();
        assert_eq!(dir.ledger().unwrap(), l);
        let text = fs::read_to_string(dir.ledger_path()).unwrap();
        assert!(
            text.contains(&owner(1).to_hex()),
            "owners keyed by hex: {text}"
        );

        let mut p = Proofs {
            by: Some(owner(9)),
            written_unix: 5,
            ..Proofs::default()
        };
        p.owners.insert(
            owner(2),
            Proof {
                proven_bytes: 123,
                proven_fragments: 3,
                proven_unix: 5,
                peers: vec!["nas".into()],
            },
        );
        dir.write_proofs(&p).unwrap();
        assert_eq!(dir.proofs().unwrap(), p);
        for f in [dir.ledger_path(), dir.proofs_path()] {
            let mode = fs::metadata(&f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", f.display());
        }

        fs::write(
            dir.proofs_path(),
            br#"{"version":2,"by":null,"written_unix":0}"#,
        )
        .unwrap();
        let err = dir.proofs().unwrap_err().to_string();
        assert!(err.contains("version 2 is newer"), "{err}");
        fs::write(dir.ledger_path(), b"{not json").unwrap();
        assert!(dir.ledger().is_err());
    }

    #[test]
    fn standing_applies_the_allowance_stale_proofs_and_spares_the_operator() {
        let (o, op) = (owner(1), owner(2));
        let ledger = Ledger {
            reciprocity: Some(Reciprocity { allowance: 100 }),
            ..Ledger::default()
        };
        let mut proofs = Proofs::default();
        let now = 10 * 86_400;
        // Unproven: the allowance only.
        let s = Standing::of(o, 100, &ledger, &proofs, Some(&op), now);
        assert_eq!((s.you_use, s.limit, s.blocked), (None, Some(100), true));
        let s = Standing::of(o, 99, &ledger, &proofs, Some(&op), now);
        assert!(!s.blocked);
        // Proven: what it gives plus the allowance.
        proofs.owners.insert(
            o,
            Proof {
                proven_bytes: 1000,
                proven_unix: now - 60,
                ..Proof::default()
            },
        );
        let s = Standing::of(o, 1050, &ledger, &proofs, Some(&op), now);
        assert_eq!(
            (s.you_use, s.limit, s.blocked),
            (Some(1000), Some(1100), false)
        );
        // A proof older than the TTL counts for nothing.
        proofs.owners.get_mut(&o).unwrap().proven_unix = now - PROOF_TTL.as_secs() - 1;
        let s = Standing::of(o, 1050, &ledger, &proofs, Some(&op), now);
        assert!(s.proof_stale && s.blocked, "{s:?}");
        // The operator itself is never limited; without the rule, no one is.
        let s = Standing::of(op, 1 << 40, &ledger, &proofs, Some(&op), now);
        assert_eq!((s.limit, s.blocked), (None, false));
        let s = Standing::of(o, 1 << 40, &Ledger::default(), &proofs, Some(&op), now);
        assert_eq!((s.limit, s.blocked), (None, false));
    }
}
