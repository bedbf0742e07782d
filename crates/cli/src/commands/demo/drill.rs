//! Step 14 of the demo: a recovery rehearsed from the 24 words in a
//! scratch home (`trove drill`), while the demo's home stays untouched.

use super::PASSPHRASE;
use anyhow::Result;
use std::path::Path;
use trove_core::keys::MasterSecret;
use trove_repo::{DrillOptions, Home, Quiet};

/// What the drill showed.
#[derive(serde::Serialize)]
pub struct DrillSummary {
    pub ok: bool,
    pub seconds: f64,
    /// The peer the scratch home started from.
    pub peer: Option<String>,
    pub files_verified: u64,
    pub files_sampled: u64,
    pub blockers: Vec<String>,
}

pub fn rehearse(home_dir: &Path) -> Result<DrillSummary> {
    // The words as the owner keeps them on paper; the home is closed
    // before the drill reads it.
    let words = {
        let home = Home::open(home_dir)?;
        let owner = home.unlock(PASSPHRASE.as_bytes())?;
        trove_recovery::master_to_phrase(owner.master.as_bytes())
    };
    let master = MasterSecret::from_bytes(trove_recovery::phrase_to_master(&words)?);
    let opts = DrillOptions {
        network: Some(super::loopback()),
        ..DrillOptions::default()
    };
    let r = trove_repo::drill(home_dir, master, &opts, &Quiet)?;
    Ok(DrillSummary {
        ok: r.ok,
        seconds: r.seconds,
        peer: r.peer_used,
        files_verified: r.files_verified,
        files_sampled: r.files_sampled,
        blockers: r.blockers,
    })
}
