//! `trove passphrase change`: the keyfile's master secret re-wrapped under a
//! new local passphrase. Only `TROVE_HOME/keyfile` changes; the identity,
//! the owner id, the 24-word phrase, SLIP-39 shares and everything on peers
//! stay as they are (docs/design.md §2).

use crate::context::{open_home, passphrase_asking, Out};
use anyhow::{bail, ensure, Context, Result};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

/// Where a script gives the new passphrase. Like `TROVE_PASSPHRASE`, an
/// environment variable is visible to other processes of the same user.
const NEW_PASSPHRASE_VAR: &str = "TROVE_NEW_PASSPHRASE";

#[derive(Subcommand)]
pub enum PassphraseCmd {
    /// Change the local passphrase: asks the current one (or
    /// TROVE_PASSPHRASE / TROVE_PASSPHRASE_FILE), then the new one twice
    /// (or TROVE_NEW_PASSPHRASE, which other processes of the same user can
    /// read). The 24-word phrase, shares, identity and peers are unchanged.
    Change,
}

pub fn run(cmd: PassphraseCmd, out: Out) -> Result<ExitCode> {
    match cmd {
        PassphraseCmd::Change => change(out),
    }
}

#[derive(serde::Serialize)]
struct Changed {
    keyfile: PathBuf,
    fingerprint: String,
    identity: String,
    owner_id: String,
}

/// `trove passphrase change`.
fn change(out: Out) -> Result<ExitCode> {
    // Held to the end, as every writing command holds it: no other trove
    // process uses the home meanwhile (a daemon's step under way is waited
    // for, another command is named in the error).
    let home = open_home()?;
    let current = passphrase_asking("current passphrase: ", false)?;
    // A wrong passphrase fails here, as it does for every command, before
    // anything is written.
    let owner = home.unlock(current.as_bytes())?;
    let new = new_passphrase(&current)?;
    home.change_passphrase(&owner, new.as_bytes())?;
    let row = Changed {
        keyfile: home.dir().join("keyfile"),
        fingerprint: owner.public().fingerprint(),
        identity: owner.public().to_hex(),
        owner_id: owner.owner_id(),
    };
    out.emit(&row, |r| {
        println!(
            "Passphrase changed for identity {} ({}).",
            r.fingerprint,
            r.keyfile.display()
        );
        println!(
            "The 24-word phrase, recovery shares, owner id and peers are unchanged. \
             Give the new passphrase to scripts and services that use TROVE_PASSPHRASE \
             or TROVE_PASSPHRASE_FILE; a running daemon keeps working until it restarts."
        );
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The new passphrase: from `TROVE_NEW_PASSPHRASE`, else asked twice on the
/// terminal.
fn new_passphrase(current: &str) -> Result<String> {
    let (first, again) = match std::env::var(NEW_PASSPHRASE_VAR) {
        Ok(p) => (p, None),
        Err(_) => {
            let first = rpassword::prompt_password("new passphrase: ").with_context(|| {
                format!("no {NEW_PASSPHRASE_VAR} set and no terminal to ask for the new passphrase")
            })?;
            let again = rpassword::prompt_password("new passphrase again: ")?;
            (first, Some(again))
        }
    };
    checked(first, again.as_deref(), current)
}

/// A new passphrase is refused when empty, when the two entries differ, or
/// when it is the current one; nothing is changed then.
fn checked(first: String, again: Option<&str>, current: &str) -> Result<String> {
    ensure!(
        !first.is_empty(),
        "an empty passphrase protects nothing; choose one (nothing was changed)"
    );
    if again.is_some_and(|a| a != first) {
        bail!("the two new passphrases differ (nothing was changed)");
    }
    ensure!(
        first != current,
        "the new passphrase is the current one (nothing was changed)"
    );
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::checked;

    #[test]
    fn empty_mismatched_or_unchanged_new_passphrases_are_refused() {
        let err = |first: &str, again: Option<&str>| {
            checked(first.into(), again, "old").unwrap_err().to_string()
        };
        assert!(err("", None).contains("empty"));
        assert!(err("", Some("")).contains("empty"));
        assert!(err("new one", Some("new 0ne")).contains("differ"));
        assert!(err("old", Some("old")).contains("current one"));
        assert_eq!(checked("new".into(), Some("new"), "old").unwrap(), "new");
        assert_eq!(checked("new".into(), None, "old").unwrap(), "new");
    }
}
