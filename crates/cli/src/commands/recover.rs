//! `trove recover`: a new home for an existing identity, from the 24-word
//! phrase or from SLIP-39 shares.

use super::recovery::{combine, phrase_from, read_shares};
use crate::context::{home_dir, new_passphrase, Out};
use anyhow::{bail, Result};
use std::path::PathBuf;
use std::process::ExitCode;
use trove_core::keys::MasterSecret;
use trove_repo::{Home, KdfParams};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, conflicts_with_all = ["shares_file", "shares"])]
    phrase_file: Option<PathBuf>,
    /// One share per line.
    #[arg(long)]
    shares_file: Option<PathBuf>,
    /// Read shares from stdin (or the terminal, one by one, until enough).
    #[arg(long)]
    shares: bool,
}

#[derive(serde::Serialize)]
struct Recovered {
    home: PathBuf,
    owner_id: String,
    identity: String,
    fingerprint: String,
}

pub fn run(args: Args, out: Out) -> Result<ExitCode> {
    let dir = home_dir()?;
    if dir.join("keyfile").exists() {
        bail!(
            "{} already holds a Trove identity; refusing to overwrite it (recover into an empty TROVE_HOME)",
            dir.display()
        );
    }
    let master = if args.shares_file.is_some() || args.shares {
        combine(&read_shares(args.shares_file.as_deref())?)?
    } else {
        let phrase = phrase_from(args.phrase_file.as_deref())?;
        MasterSecret::from_bytes(trove_recovery::phrase_to_master(&phrase)?)
    };
    let pass = new_passphrase()?;
    let (_, owner) = Home::init(&dir, master, pass.as_bytes(), KdfParams::default())?;
    let row = Recovered {
        home: dir,
        owner_id: owner.owner_id(),
        identity: owner.public().to_hex(),
        fingerprint: owner.public().fingerprint(),
    };
    out.emit(&row, |r| {
        println!(
            "Recovered identity {} into {}",
            r.fingerprint,
            r.home.display()
        );
        println!(
            "Next: `trove peer add NAME dir:PATH` with any surviving peer, then `trove sync`."
        );
    })?;
    Ok(ExitCode::SUCCESS)
}
