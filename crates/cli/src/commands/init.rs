//! `trove init`: a new identity, and its recovery phrase shown once.

use crate::context::{home_dir, new_passphrase, Out};
use anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;
use trove_core::keys::MasterSecret;
use trove_repo::{Home, KdfParams, RepoError};

/// What `init` made.
#[derive(serde::Serialize)]
struct Created {
    home: PathBuf,
    owner_id: String,
    identity: String,
    fingerprint: String,
    phrase: String,
}

pub fn run(out: Out) -> Result<ExitCode> {
    let dir = home_dir()?;
    if dir.join("keyfile").exists() {
        return Err(RepoError::IdentityExists(dir).into());
    }
    let pass = new_passphrase()?;
    let (_, owner) = Home::init(
        &dir,
        MasterSecret::generate(),
        pass.as_bytes(),
        KdfParams::default(),
    )?;
    let row = Created {
        home: dir,
        owner_id: owner.owner_id(),
        identity: owner.public().to_hex(),
        fingerprint: owner.public().fingerprint(),
        phrase: trove_recovery::master_to_phrase(owner.master.as_bytes()),
    };
    out.emit(&row, |r| {
        println!("Created a Trove identity in {}", r.home.display());
        println!("fingerprint: {}", r.fingerprint);
        println!();
        println!("Your recovery phrase. Write it down and keep it safe: with it and one peer,");
        println!("everything can be restored; without it, a lost machine means lost backups.");
        println!("It is shown only this once.");
        println!();
        for (i, w) in r.phrase.split(' ').enumerate() {
            print!("{:>2}. {w:<10}", i + 1);
            if i % 6 == 5 {
                println!();
            }
        }
    })?;
    Ok(ExitCode::SUCCESS)
}
