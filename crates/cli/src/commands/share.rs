//! `trove share`: give another identity read-only access to a container
//! (a share file sealed to them), accept one, list both.

use crate::context::{open_home, unlock, Out};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    #[command(subcommand)]
    cmd: Option<ShareCmd>,
    /// The container to share.
    #[arg(required = true)]
    container: Option<String>,
    /// The recipient's owner id (`trove whoami` on their machine).
    #[arg(long, value_name = "OWNER_ID", required = true)]
    with: Option<String>,
    /// Where to write the share file [default: CONTAINER.trove-share].
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
enum ShareCmd {
    /// Add the container of a share file made for you, read-only.
    Accept { file: PathBuf },
    /// Shares you gave and received.
    List,
    /// Read the new snapshots of every container shared with you.
    Sync,
    /// Stop someone reading what the container stores from now on: a new
    /// container key for new data (what they could read before, they keep).
    Revoke {
        container: String,
        /// Their owner id.
        #[arg(long, value_name = "OWNER_ID")]
        with: String,
    },
}

pub fn run(args: Args, out: Out) -> Result<ExitCode> {
    let home = open_home()?;
    match args.cmd {
        Some(ShareCmd::List) => {
            let list = trove_repo::list_shares(&home)?;
            out.emit(&list, |l| {
                for g in &l.given {
                    let revoked = g
                        .revoked_unix
                        .map(|t| format!("  revoked {}", trove_repo::utc(t * 1_000_000_000)))
                        .unwrap_or_default();
                    println!(
                        "gave      {:<20} to {}  {}{revoked}",
                        g.container,
                        g.recipient,
                        trove_repo::utc(g.shared_unix * 1_000_000_000)
                    );
                }
                for r in &l.received {
                    println!(
                        "received  {:<20} from {}  {} snapshot(s)",
                        r.container, r.owner, r.snapshots
                    );
                }
                if l.given.is_empty() && l.received.is_empty() {
                    println!("no shares");
                }
            })?;
        }
        Some(ShareCmd::Revoke { container, with }) => {
            let owner = unlock(&home)?;
            out.run_reported(
                |bar| trove_repo::revoke_share(&home, &owner, &container, &with, bar),
                |r| {
                    println!(
                        "`{}`: new data is sealed with a new key (manifest revision {}), which {}… does not have; what they could read before, they can still read",
                        r.container,
                        r.revision,
                        &r.recipient[..16]
                    );
                    println!("peers holding the new key's manifest: {}", r.peers_updated.join(", "));
                    if !r.peers_not_updated.is_empty() {
                        println!(
                            "not yet (the next backup replicates it): {}",
                            r.peers_not_updated.join(", ")
                        );
                    }
                    for other in &r.reshare {
                        println!("give {}… a new share file to keep reading new snapshots: trove share {} --with {other}", &other[..16], r.container);
                    }
                },
            )?;
        }
        Some(ShareCmd::Sync) => {
            let owner = unlock(&home)?;
            let all = trove_repo::sync_shares(&home, &owner)?;
            out.emit(&all, |all| {
                if all.is_empty() {
                    println!("no containers are shared with you");
                }
                all.iter().for_each(print_accepted)
            })?;
        }
        Some(ShareCmd::Accept { file }) => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let owner = unlock(&home)?;
            let r = trove_repo::accept_share(&home, &owner, &bytes)?;
            out.emit(&r, print_accepted)?;
        }
        None => {
            let (name, with) = (
                args.container.expect("required"),
                args.with.expect("required"),
            );
            let owner = unlock(&home)?;
            let (bytes, given) = trove_repo::share_container(&home, &owner, &name, &with)?;
            let path = args
                .out
                .unwrap_or_else(|| PathBuf::from(format!("{name}.trove-share")));
            // Private (0600) whatever the umask: it names the container and both
            // identities.
            trove_peer::durable::replace(&path, &bytes, None)
                .with_context(|| format!("writing the share file {}", path.display()))?;
            #[derive(serde::Serialize)]
            struct Row<'a> {
                #[serde(flatten)]
                given: &'a trove_repo::GivenShare,
                file: &'a std::path::Path,
            }
            out.emit(&Row { given: &given, file: &path }, |r| {
                println!(
                    "wrote {}: `{}` readable by owner id {}… only; send it to them (`trove share accept {}`)",
                    r.file.display(),
                    r.given.container,
                    &r.given.recipient[..16],
                    r.file.display()
                )
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_accepted(r: &trove_repo::AcceptReport) {
    println!(
        "`{}`, read-only, shared by {}: {} snapshot(s), {} pack(s), read from {}",
        r.container,
        r.owner,
        r.snapshots,
        r.packs,
        r.peers_read.join(", ")
    );
    if r.unreadable > 0 {
        println!(
            "{} snapshot(s) or segment(s) on the peers do not open with the keys shared \
             (made after the owner revoked this share, or not the owner's)",
            r.unreadable
        );
    }
    if !r.peers_unreachable.is_empty() {
        println!("unreachable: {}", r.peers_unreachable.join(", "));
    }
}
