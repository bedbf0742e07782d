//! `trove inherit setup | status | veto | cancel | claim | collect`:
//! inheritance with a waiting period and a veto (`docs/design.md` §9f).

use crate::context::{home_dir, open_home, passphrase_asking, unlock, Out};
use anyhow::Result;
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use trove_node::OwnerId;
use trove_repo::inherit::{self, CustodianRow, Letter, SetupOptions, LETTER_FILE};

#[derive(Subcommand)]
pub enum InheritCmd {
    /// Split the master secret among custodian nodes for an heir: each
    /// share sealed to the heir, released only after a claim has waited
    /// `--wait` unvetoed. Writes the heir's letter (no secret).
    Setup {
        /// The heir's owner id (`trove whoami` on the heir's machine).
        #[arg(long)]
        heir: String,
        /// How long a claim waits for your veto: `20s`, `90m`, `12h`, `30d`, `6mo`, `1y`.
        #[arg(long, value_parser = trove_repo::parse_duration)]
        wait: Duration,
        /// Node peers to hold the escrows, comma-separated (default: every node peer).
        #[arg(long, value_delimiter = ',')]
        custodians: Option<Vec<String>>,
        /// Shares the heir needs (default: a majority, at least 2).
        #[arg(long)]
        threshold: Option<u8>,
        /// Also wait until the custodians have not seen you for this long.
        #[arg(long, value_parser = trove_repo::parse_duration)]
        inactive: Option<Duration>,
        /// Where to write the heir's letter (default TROVE_HOME/inheritance-letter.json).
        #[arg(long)]
        letter: Option<PathBuf>,
    },
    /// Your escrows and any open claim, per custodian; with --owner, the
    /// heir's claim on that owner's escrows.
    Status {
        #[arg(long)]
        owner: Option<String>,
        #[arg(long, requires = "owner")]
        letter: Option<PathBuf>,
    },
    /// Cancel every open claim on every custodian (the heir may claim again later).
    Veto,
    /// Delete your escrows on every custodian.
    Cancel,
    /// (Heir) claim an owner's escrows: each custodian starts the waiting period.
    Claim {
        #[arg(long)]
        owner: String,
        /// The owner's letter (default TROVE_HOME/inheritance-letter.json).
        #[arg(long)]
        letter: Option<PathBuf>,
    },
    /// (Heir) collect released shares and create a home of the owner's
    /// identity at --into, with the custodians as peers.
    Collect {
        #[arg(long)]
        owner: String,
        #[arg(long)]
        letter: Option<PathBuf>,
        /// The new home (an empty or new folder).
        #[arg(long)]
        into: PathBuf,
    },
}

fn owner_id(s: &str) -> Result<OwnerId> {
    Ok(s.parse::<OwnerId>()?)
}

fn letter_path(given: Option<PathBuf>) -> Result<PathBuf> {
    Ok(match given {
        Some(p) => p,
        None => home_dir()?.join(LETTER_FILE),
    })
}

fn read_letter(path: &Path) -> Result<Letter> {
    Ok(Letter::read(path).map_err(trove_repo::RepoError::from)?)
}

fn print_rows(rows: &[CustodianRow]) {
    for r in rows {
        println!("  {:<12} {}", r.custodian, r.describe());
    }
}

pub fn run(cmd: InheritCmd, out: Out) -> Result<ExitCode> {
    match cmd {
        InheritCmd::Setup {
            heir,
            wait,
            custodians,
            threshold,
            inactive,
            letter,
        } => {
            let opts = SetupOptions {
                heir: owner_id(&heir)?,
                wait,
                inactive,
                custodians,
                threshold,
            };
            let path = letter_path(letter)?;
            let home = open_home()?;
            let owner = unlock(&home)?;
            let report = inherit::setup(&home, &owner, &opts, &path)?;
            out.emit(&report, |r| {
                let l = &r.letter;
                println!(
                    "Escrows stored on {} custodian(s) for heir {}: {} of them release after a claim waits {} unvetoed (set {:04x}).",
                    l.custodians.len(),
                    l.heir,
                    l.threshold,
                    trove_repo::format_duration(Duration::from_secs(l.wait_secs)),
                    l.set_id
                );
                println!("The heir's letter (no secret; give it to the heir) is {}:", r.letter_path.display());
                println!("{}", serde_json::to_string_pretty(l).unwrap_or_default());
            })?;
            Ok(ExitCode::SUCCESS)
        }
        InheritCmd::Status {
            owner: Some(owner),
            letter,
        } => {
            let owner = owner_id(&owner)?;
            let path = letter_path(letter)?;
            let l = read_letter(&path)?;
            let home = open_home()?;
            let rows = inherit::heir_status(&home, &owner, &l, &path)?;
            out.emit(&rows, |rows| {
                println!(
                    "Your claim on owner {}… per custodian:",
                    &owner.to_hex()[..12]
                );
                print_rows(rows);
            })?;
            Ok(ExitCode::SUCCESS)
        }
        InheritCmd::Status { owner: None, .. } => {
            let home = open_home()?;
            let rows = inherit::owner_status(&home)?;
            out.emit(&rows, |rows| {
                if rows.iter().any(CustodianRow::open_claim) {
                    println!("AN INHERITANCE CLAIM IS OPEN: if you did not expect it, run `trove inherit veto` now.");
                }
                println!("Your inheritance escrows per custodian:");
                print_rows(rows);
            })?;
            Ok(ExitCode::SUCCESS)
        }
        InheritCmd::Veto => {
            let home = open_home()?;
            let rows = inherit::veto(&home)?;
            out.emit(&rows, |rows| {
                println!("Vetoed every open claim; per custodian:");
                print_rows(rows);
            })?;
            Ok(all_answered(&rows))
        }
        InheritCmd::Cancel => {
            let home = open_home()?;
            let rows = inherit::cancel(&home)?;
            out.emit(&rows, |rows| {
                println!("Deleted the inheritance escrows; per custodian (what it held):");
                print_rows(rows);
            })?;
            Ok(all_answered(&rows))
        }
        InheritCmd::Claim { owner, letter } => {
            let owner = owner_id(&owner)?;
            let path = letter_path(letter)?;
            let l = read_letter(&path)?;
            let home = open_home()?;
            let rows = inherit::claim(&home, &owner, &l, &path)?;
            out.emit(&rows, |rows| {
                println!("Claim recorded; the owner is told and may veto it. Per custodian:");
                print_rows(rows);
                println!(
                    "Then: `trove inherit collect --owner {owner} --letter {} --into NEW_HOME`.",
                    path.display()
                );
            })?;
            Ok(ExitCode::SUCCESS)
        }
        InheritCmd::Collect {
            owner,
            letter,
            into,
        } => {
            let owner = owner_id(&owner)?;
            let path = letter_path(letter)?;
            let l = read_letter(&path)?;
            let home = open_home()?;
            let heir = unlock(&home)?;
            let pass = passphrase_asking("passphrase for the new home: ", true)?;
            anyhow::ensure!(
                !pass.is_empty(),
                "an empty passphrase protects nothing; choose one"
            );
            let done = inherit::collect(&home, &heir, &owner, &l, &path, &into, pass.as_bytes())?;
            out.emit(&done, |d| {
                println!(
                    "Collected {} share(s), {} needed: {} holds identity {} (owner id {}), with peers {}.",
                    d.shares,
                    d.threshold,
                    d.home.display(),
                    d.fingerprint,
                    d.owner_id,
                    d.peers.join(", ")
                );
                println!(
                    "Next: `TROVE_HOME={} trove sync`, then `trove restore`.",
                    d.home.display()
                );
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Exit 1 when some custodian did not answer (the rows say which).
fn all_answered(rows: &[CustodianRow]) -> ExitCode {
    if rows.iter().all(|r| r.error.is_none()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
