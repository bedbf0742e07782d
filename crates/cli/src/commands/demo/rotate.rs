//! Step 16 of the demo: the 24 words were seen by someone else, so the
//! owner rotates the master secret. The disk that died in step 12 is
//! removed first (a rotation needs every configured peer); every other
//! peer takes the hand-over, the node refuses the old owner id from then
//! on, and `demo` restores exactly under the new secret.

use super::{loopback, restore_and_compare, PASSPHRASE};
use anyhow::{Context, Result};
use std::path::Path;
use trove_core::FragmentId;
use trove_node::NodeClient;
use trove_peer::Peer;
use trove_repo::{Home, PeerLocation, Quiet};

/// What the rotation showed.
#[derive(serde::Serialize)]
pub struct RotateSummary {
    pub old_fingerprint: String,
    pub new_fingerprint: String,
    pub peers_handed_over: usize,
    pub envelopes_resigned: usize,
    /// A node asked as the old owner id refused it.
    pub old_owner_refused: bool,
    pub files_restored: u64,
    /// Differences between the restore under the new secret and the source.
    pub differences: Vec<String>,
}

pub fn rotate_the_secret(base: &Path, src: &Path, dead: &str, json: bool) -> Result<RotateSummary> {
    let home = Home::open(&base.join("home"))?;
    home.set_network(loopback());
    home.peers().remove(dead)?;
    let old = home.unlock(PASSPHRASE.as_bytes())?;
    let r = trove_repo::rotate(&home, PASSPHRASE.as_bytes(), &Quiet)?;

    // A node, asked as the old owner id (what a thief with the old phrase
    // would be), refuses.
    let ticket = home
        .peers()
        .records()?
        .into_iter()
        .find_map(|rec| match rec.location.parse() {
            Ok(PeerLocation::Node(t)) => Some(t),
            _ => None,
        })
        .context("the demo has a node peer")?;
    let thief = NodeClient::start(old.master.transport_seed(), &loopback())?;
    let old_owner_refused = thief
        .peer("thief", &ticket)?
        .has_fragment(&FragmentId([0; 32]))
        .is_err();

    let new = home.unlock(PASSPHRASE.as_bytes())?;
    let (restore, _, _, differences) = restore_and_compare(
        &home,
        &new,
        "demo:latest",
        &base.join("restored-after-rotation"),
        src,
        json,
    )?;
    Ok(RotateSummary {
        old_fingerprint: r.old_identity.fingerprint(),
        new_fingerprint: new.public().fingerprint(),
        peers_handed_over: r.peers.len(),
        envelopes_resigned: r.resigned,
        old_owner_refused,
        files_restored: restore.files,
        differences,
    })
}
