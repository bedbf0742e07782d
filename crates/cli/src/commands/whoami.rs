//! `trove whoami`: the ids to give to node operators and share holders.

use crate::context::{home_dir, open_home, unlock, Out};
use anyhow::Result;
use std::process::ExitCode;
use trove_repo::Home;

#[derive(serde::Serialize)]
struct Ids {
    owner_id: String,
    identity: String,
    fingerprint: String,
}

pub fn run(out: Out) -> Result<ExitCode> {
    let ids = Home::peek_ids(&home_dir()?)?;
    let owner_id = match ids.owner_id {
        Some(id) => id,
        // Homes made before nodes existed: unlocking writes the key.
        None => unlock(&open_home()?)?.owner_id(),
    };
    let row = Ids {
        owner_id,
        identity: ids.identity.to_hex(),
        fingerprint: ids.identity.fingerprint(),
    };
    out.emit(&row, |r| {
        println!("owner id: {}", r.owner_id);
        println!(
            "  give it to a node's operator: trove node grant {} --quota SIZE",
            r.owner_id
        );
        println!("fingerprint: {}", r.fingerprint);
    })?;
    Ok(ExitCode::SUCCESS)
}
