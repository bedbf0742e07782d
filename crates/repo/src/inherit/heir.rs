//! The heir's side: claim the owner's escrows, see where the claims stand,
//! and collect the released shares into a new home of the owner's identity.

use super::{CustodianRow, InheritError, Letter};
use crate::home::{Home, Owner};
use crate::keyfile::KdfParams;
use crate::location::PeerLocation;
use crate::Result;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use trove_core::escrow::open_escrow_share;
use trove_core::keys::MasterSecret;
use trove_node::escrow::ClaimPhase;
use trove_node::{HeirCallError, NodePeer, OwnerId};

/// The custodians of `letter`, reached with the heir's own key.
fn custodians(home: &Home, letter: &Letter) -> Vec<(String, Result<NodePeer>)> {
    letter
        .custodians
        .iter()
        .map(|c| {
            let peer = (|| -> Result<NodePeer> {
                let PeerLocation::Node(ticket) = PeerLocation::from_user(&c.ticket)? else {
                    return Err(InheritError::NotANode(c.name.clone()).into());
                };
                let client = home.node_client()?;
                client
                    .peer(&c.name, &ticket)
                    .map_err(|e| crate::LocationError::BadTicket(e.to_string()).into())
            })();
            (c.name.clone(), peer)
        })
        .collect()
}

/// A row from an heir's call.
/// Ask every custodian of the letter the heir's question `ask`: one row
/// each, a custodian that cannot be reached included.
fn ask_each(
    home: &Home,
    letter: &Letter,
    ask: impl Fn(&NodePeer) -> std::result::Result<trove_node::escrow::EscrowView, HeirCallError>,
) -> Vec<CustodianRow> {
    custodians(home, letter)
        .into_iter()
        .map(|(name, peer)| match peer {
            Err(e) => CustodianRow::failed(&name, e),
            Ok(p) => heir_row(&name, ask(&p)),
        })
        .collect()
}

fn heir_row(
    name: &str,
    r: std::result::Result<trove_node::escrow::EscrowView, HeirCallError>,
) -> CustodianRow {
    match r {
        Ok(v) => CustodianRow::answered(name, Some(v)),
        Err(HeirCallError::NotHeir { node, message }) => CustodianRow {
            not_heir: true,
            ..CustodianRow::failed(name, format!("{node}: {message}"))
        },
        Err(e) => CustodianRow::failed(name, e),
    }
}

fn check_owner(letter: &Letter, path: &Path, owner: &OwnerId) -> Result<()> {
    if &letter.owner_id != owner {
        return Err(InheritError::LetterForAnother {
            path: path.to_owned(),
            letter_owner: letter.owner_id.to_hex(),
            asked: owner.to_hex(),
        }
        .into());
    }
    Ok(())
}

/// Claim `owner`'s escrow on every custodian of the letter. Fails when no
/// custodian recorded it (each row says why).
pub fn claim(
    home: &Home,
    owner: &OwnerId,
    letter: &Letter,
    letter_path: &Path,
) -> Result<Vec<CustodianRow>> {
    check_owner(letter, letter_path, owner)?;
    let rows = ask_each(home, letter, |p| p.inherit_claim(*owner));
    if !rows.iter().any(CustodianRow::open_claim) {
        let why: Vec<String> = rows
            .iter()
            .map(|r| format!("{}: {}", r.custodian, r.describe()))
            .collect();
        return Err(InheritError::NoClaimRecorded(why.join("; ")).into());
    }
    Ok(rows)
}

/// Where the heir's claim stands on each custodian.
pub fn heir_status(
    home: &Home,
    owner: &OwnerId,
    letter: &Letter,
    letter_path: &Path,
) -> Result<Vec<CustodianRow>> {
    check_owner(letter, letter_path, owner)?;
    Ok(ask_each(home, letter, |p| p.inherit_status(*owner)))
}

/// What collect made.
#[derive(Debug, Clone, Serialize)]
pub struct Collected {
    /// The new home, of the owner's identity.
    pub home: PathBuf,
    pub owner_id: String,
    pub fingerprint: String,
    /// Shares released and used, of those needed.
    pub shares: usize,
    pub threshold: u8,
    /// The custodian nodes added as peers of the new home.
    pub peers: Vec<String>,
    pub custodians: Vec<CustodianRow>,
}

/// Collect the released shares of `owner`'s escrows, combine them and
/// create a home of the owner's identity at `into` with the custodians as
/// node peers. `heir` is the unlocked heir (its key opens the shares).
pub fn collect(
    home: &Home,
    heir: &Owner,
    owner: &OwnerId,
    letter: &Letter,
    letter_path: &Path,
    into: &Path,
    passphrase: &[u8],
) -> Result<Collected> {
    check_owner(letter, letter_path, owner)?;
    if into.join("keyfile").exists() {
        return Err(InheritError::IntoNotEmpty(into.to_owned()).into());
    }
    let seed = zeroize::Zeroizing::new(heir.master.transport_seed());
    let mut rows = Vec::new();
    let mut words: Vec<zeroize::Zeroizing<String>> = Vec::new();
    for (name, peer) in custodians(home, letter) {
        let peer = match peer {
            Ok(p) => p,
            Err(e) => {
                rows.push(CustodianRow::failed(&name, e));
                continue;
            }
        };
        match peer.inherit_collect(*owner) {
            Ok(trove_node::Collected::Released { view, sealed_share }) => {
                match open_escrow_share(&sealed_share, &owner.0, &seed) {
                    Ok((h, w)) if h.set_id == letter.set_id => {
                        words.push(w);
                        rows.push(CustodianRow {
                            released: true,
                            ..CustodianRow::answered(&name, Some(view))
                        });
                    }
                    Ok((h, _)) => rows.push(CustodianRow::failed(
                        &name,
                        format!(
                            "released a share of set {:04x}, not of the letter's set {:04x} (an older setup?)",
                            h.set_id, letter.set_id
                        ),
                    )),
                    Err(e) => rows.push(CustodianRow::failed(&name, e)),
                }
            }
            Ok(trove_node::Collected::Withheld(view)) => {
                rows.push(CustodianRow::answered(&name, Some(view)))
            }
            Err(e) => rows.push(heir_row(&name, Err(e))),
        }
    }
    // With threshold 1 every custodian holds the same share.
    words.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    words.dedup_by(|a, b| a.as_str() == b.as_str());
    let need = usize::from(letter.threshold);
    if words.len() < need {
        let details: Vec<String> = rows
            .iter()
            .map(|r| format!("{}: {}", r.custodian, withheld_reason(r)))
            .collect();
        return Err(InheritError::NotReleased {
            have: words.len(),
            need,
            need_more: need - words.len(),
            details: details.join("; "),
        }
        .into());
    }
    let word_refs: Vec<&str> = words.iter().map(|w| w.as_str()).collect();
    let master =
        trove_recovery::combine_master(&word_refs, b"").map_err(|e| InheritError::WrongSecret {
            owner: owner.to_hex(),
            reason: e.to_string(),
        })?;
    let master = MasterSecret::from_bytes(master);
    if &OwnerId::from_seed(&master.transport_seed()) != owner {
        return Err(InheritError::WrongSecret {
            owner: owner.to_hex(),
            reason: "they combine to another identity".into(),
        }
        .into());
    }
    let (new_home, new_owner) = Home::init(into, master, passphrase, KdfParams::default())?;
    let mut peers = Vec::new();
    for c in &letter.custodians {
        new_home.peers().add(&c.name, &c.ticket, BTreeMap::new())?;
        peers.push(c.name.clone());
    }
    Ok(Collected {
        home: into.to_owned(),
        owner_id: new_owner.owner_id(),
        fingerprint: new_owner.public().fingerprint(),
        shares: words.len(),
        threshold: letter.threshold,
        peers,
        custodians: rows,
    })
}

/// Why a custodian did not release, for the collect refusal.
fn withheld_reason(r: &CustodianRow) -> String {
    if r.released {
        return "released".into();
    }
    match r.phase() {
        Some(ClaimPhase::Vetoed { .. }) => {
            "the claim was vetoed by the owner: claim again to start a new wait".into()
        }
        Some(ClaimPhase::Waiting { left_secs, .. }) => format!(
            "too early: {} left by its clock",
            crate::health::format_duration(std::time::Duration::from_secs(left_secs))
        ),
        None if r.escrow.is_some() => "no claim yet: run `trove inherit claim` first".into(),
        _ => r.describe(),
    }
}
