//! Step 15 of the demo: inheritance. The friend of step 13 is named heir,
//! and the demo's node peers keep the escrow. A first claim is vetoed and
//! releases nothing; a second one is refused before its wait and released
//! after it, and the heir's new home syncs and restores the container
//! exactly.

use super::{loopback, restore_and_compare, FRIEND_PASSPHRASE, PASSPHRASE};
use anyhow::Result;
use std::path::Path;
use std::time::Duration;
use trove_node::OwnerId;
use trove_repo::inherit::{self, SetupOptions};
use trove_repo::{Home, Quiet};

/// The waiting period of the demo's escrow (the nodes' clocks keep it).
const WAIT: Duration = Duration::from_secs(3);

/// What inheritance showed.
#[derive(serde::Serialize)]
pub struct InheritSummary {
    pub custodians: usize,
    pub threshold: u8,
    pub wait_seconds: u64,
    /// A collect after the vetoed claim's wait released nothing.
    pub vetoed_claim_released_nothing: bool,
    /// A collect before the second claim's wait was refused.
    pub early_collect_refused: bool,
    pub shares_collected: usize,
    pub files_restored: u64,
    /// Differences between the heir's restore and the source.
    pub differences: Vec<String>,
}

pub fn inherit_to_a_friend(base: &Path, src: &Path, json: bool) -> Result<InheritSummary> {
    let home = Home::open(&base.join("home"))?;
    home.set_network(loopback());
    let owner = home.unlock(PASSPHRASE.as_bytes())?;
    let friend = Home::open(&base.join("friend-home"))?;
    friend.set_network(loopback());
    let heir = friend.unlock(FRIEND_PASSPHRASE)?;
    let owner_id: OwnerId = owner.owner_id().parse()?;
    let letter_path = base.join("inheritance-letter.json");
    let opts = SetupOptions {
        heir: heir.owner_id().parse()?,
        wait: WAIT,
        inactive: None,
        custodians: None,
        threshold: None,
    };
    let set = inherit::setup(&home, &owner, &opts, &letter_path)?;
    let letter = &set.letter;
    let into = base.join("heir-home");
    let collect = || {
        inherit::collect(
            &friend,
            &heir,
            &owner_id,
            letter,
            &letter_path,
            &into,
            FRIEND_PASSPHRASE,
        )
    };

    inherit::claim(&friend, &owner_id, letter, &letter_path)?;
    inherit::veto(&home)?;
    std::thread::sleep(WAIT + Duration::from_millis(500));
    let vetoed_claim_released_nothing = collect().is_err() && !into.exists();

    inherit::claim(&friend, &owner_id, letter, &letter_path)?;
    let early_collect_refused = collect().is_err();
    std::thread::sleep(WAIT + Duration::from_millis(500));
    let got = collect()?;

    let inherited = Home::open(&into)?;
    inherited.set_network(loopback());
    let o = inherited.unlock(FRIEND_PASSPHRASE)?;
    trove_repo::sync(&inherited, &o, &Quiet)?;
    let target = base.join("heir-restored");
    let (r, _, _, differences) =
        restore_and_compare(&inherited, &o, "demo:latest", &target, src, json)?;
    Ok(InheritSummary {
        custodians: letter.custodians.len(),
        threshold: letter.threshold,
        wait_seconds: WAIT.as_secs(),
        vetoed_claim_released_nothing,
        early_collect_refused,
        shares_collected: got.shares,
        files_restored: r.files,
        differences,
    })
}
