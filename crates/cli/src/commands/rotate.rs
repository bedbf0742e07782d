//! `trove recovery rotate`: a new master secret for when the 24-word phrase
//! or too many SLIP-39 shares were exposed (docs/design.md §2a). Peers take
//! a hand-over to the new identity and owner id, containers get a new key,
//! and the new phrase is printed (or written to `--phrase-file`). Run it
//! again to finish a rotation that stopped.

use crate::context::{open_home, passphrase, Out};
use crate::ui::Bar;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(serde::Serialize)]
struct Rotated {
    resumed: bool,
    old_fingerprint: String,
    old_owner_id: String,
    fingerprint: String,
    identity: String,
    owner_id: String,
    /// The new 24-word phrase, unless written to `phrase_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    phrase: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phrase_file: Option<PathBuf>,
    peers: Vec<String>,
    containers: Vec<String>,
    resigned: usize,
    stored: usize,
    /// (container, recipient owner id) pairs that need a new share file.
    reshare: Vec<(String, String)>,
}

pub fn run(phrase_file: Option<&Path>, out: Out) -> Result<ExitCode> {
    let home = open_home()?;
    if let Some(f) = phrase_file {
        anyhow::ensure!(
            !f.exists(),
            "{} already exists; name a new file for the new phrase (nothing was changed)",
            f.display()
        );
    }
    let pass = passphrase(false)?;
    let bar = Bar::new(out.json);
    let r = trove_repo::rotate(&home, pass.as_bytes(), &bar);
    bar.finish();
    let r = r?;
    let phrase = trove_recovery::master_to_phrase(r.new.master.as_bytes());
    if let Some(f) = phrase_file {
        // Private and never over another file: it holds the new secret.
        trove_peer::durable::create_new(f, format!("{phrase}\n").as_bytes(), None).with_context(
            || {
                format!(
                    "the rotation is done, but writing the new phrase to {} failed; \
                     show it with `trove recovery phrase`",
                    f.display()
                )
            },
        )?;
    }
    let row = Rotated {
        resumed: r.resumed,
        old_fingerprint: r.old_identity.fingerprint(),
        old_owner_id: r.old_owner_id,
        fingerprint: r.new.public().fingerprint(),
        identity: r.new.public().to_hex(),
        owner_id: r.new.owner_id(),
        phrase: phrase_file.is_none().then_some(phrase),
        phrase_file: phrase_file.map(Path::to_owned),
        peers: r.peers,
        containers: r.containers,
        resigned: r.resigned,
        stored: r.stored,
        reshare: r.reshare,
    };
    out.emit(&row, print)?;
    Ok(ExitCode::SUCCESS)
}

fn print(r: &Rotated) {
    println!(
        "Master secret rotated{}: identity {} is now {} (owner id {}).",
        if r.resumed {
            " (an earlier rotation finished)"
        } else {
            ""
        },
        r.old_fingerprint,
        r.fingerprint,
        r.owner_id
    );
    println!(
        "  {} peer(s) took the hand-over: {}",
        r.peers.len(),
        r.peers.join(", ")
    );
    println!(
        "  {} container(s) re-keyed, {} envelope(s) signed anew, {} object(s) stored on peers",
        r.containers.len(),
        r.resigned,
        r.stored
    );
    match (&r.phrase, &r.phrase_file) {
        (Some(p), _) => println!("\nNew 24-word phrase (write it down; the old one no longer opens anything new):\n\n{p}\n"),
        (None, Some(f)) => println!("  the new 24-word phrase is in {}", f.display()),
        _ => {}
    }
    println!("Next steps:");
    println!("  - destroy the old phrase; old SLIP-39 shares are useless now: `trove recovery split` makes a new set");
    println!("  - inheritance escrows of the old secret were deleted from the nodes: run `trove inherit setup` again if you had one");
    println!("  - a running daemon stops at its next step (exit 1); start it again (a service manager does); the passphrase is unchanged");
    println!("  - what peers kept in their trash still opens with the old secret until the grace period ends");
    for (c, who) in &r.reshare {
        println!(
            "  - container `{c}` is shared with {who}: give them a new share file (`trove share`)"
        );
    }
}
