//! The heir's letter: what the heir needs to reach the custodians, and
//! nothing secret (`docs/design.md` §9f.2). `trove inherit setup` writes
//! it; the owner hands it to the heir with the will, a notary, a drawer.

use super::InheritError;
use serde::{Deserialize, Serialize};
use std::path::Path;
use trove_node::OwnerId;

/// The letter's format version (1: 2026-11).
pub const LETTER_VERSION: u32 = 1;

/// One custodian node: the owner's peer name and the node's ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LetterCustodian {
    pub name: String,
    pub ticket: String,
}

/// `inheritance-letter.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Letter {
    pub version: u32,
    /// The owner id the escrows are under (and the shares signed by).
    pub owner_id: OwnerId,
    /// The owner's identity fingerprint, for people.
    pub owner_fingerprint: String,
    pub heir: OwnerId,
    pub threshold: u8,
    pub wait_secs: u64,
    pub inactive_secs: Option<u64>,
    /// The SLIP-39 set of this setup (a new one each time).
    pub set_id: u16,
    pub created: String,
    pub custodians: Vec<LetterCustodian>,
    /// What to do with it, for the heir.
    pub how: String,
}

impl Letter {
    /// Read a letter.
    pub fn read(path: &Path) -> Result<Self, InheritError> {
        let bad = |reason: String| InheritError::Letter {
            path: path.to_owned(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot be read: {e}")))?;
        let letter: Letter =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("not a letter: {e}")))?;
        if letter.version != LETTER_VERSION {
            return Err(bad(format!(
                "version {} is not the one this Trove reads ({LETTER_VERSION})",
                letter.version
            )));
        }
        Ok(letter)
    }

    /// Write it (replacing an older one), durably.
    pub fn write(&self, path: &Path) -> crate::Result<()> {
        let json = serde_json::to_vec_pretty(self).unwrap_or_default();
        trove_peer::durable::replace(path, &json, None)
            .map_err(|e| crate::RepoError::io("write", path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_letter_round_trips_and_a_newer_one_is_refused() {
        let l = Letter {
            version: LETTER_VERSION,
            owner_id: OwnerId::from_seed(&[1; 32]),
            owner_fingerprint: "ab".into(),
            heir: OwnerId::from_seed(&[2; 32]),
            threshold: 2,
            wait_secs: 20,
            inactive_secs: None,
            set_id: 9,
            created: "2026-11-29 20:00:00".into(),
            custodians: vec![LetterCustodian {
                name: "n1".into(),
                ticket: "trovenode1x".into(),
            }],
            how: "h".into(),
        };
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.json");
        l.write(&p).unwrap();
        assert_eq!(Letter::read(&p).unwrap(), l);
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, text.replace("\"version\": 1", "\"version\": 2")).unwrap();
        assert!(matches!(Letter::read(&p), Err(InheritError::Letter { .. })));
    }
}
