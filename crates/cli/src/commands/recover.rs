//! `trove recover`: a new home for an existing identity, from the 24-word
//! phrase or from SLIP-39 shares.

use super::recovery::WordsArgs;
use crate::context::{home_dir, new_passphrase, Out};
use anyhow::{bail, Result};
use std::path::PathBuf;
use std::process::ExitCode;
use trove_repo::{Home, KdfParams};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    words: WordsArgs,
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
    let master = args.words.master()?;
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
            "Next: `trove peer add NAME LOCATION` with any surviving peer (dir:PATH, a node's ticket, s3://BUCKET/PREFIX?endpoint=URL), then `trove sync`."
        );
    })?;
    Ok(ExitCode::SUCCESS)
}
