//! `trove container create | list`.

use crate::context::{open_home, unlock, Out};
use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;
use trove_core::manifest::Redundancy;

#[derive(Subcommand)]
pub enum ContainerCmd {
    /// Create a container over one or more folders.
    Create {
        name: String,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// K+M: data and parity fragments per pack (default from the peer count, e.g. 4+2 for six).
        #[arg(long)]
        redundancy: Option<Redundancy>,
    },
    List,
}

pub fn run(cmd: ContainerCmd, out: Out) -> Result<ExitCode> {
    let home = open_home()?;
    match cmd {
        ContainerCmd::Create {
            name,
            paths,
            redundancy,
        } => {
            let owner = unlock(&home)?;
            let c = home
                .containers()
                .create(&owner, &name, &paths, redundancy)?;
            let r = c.layout;
            out.emit(&c, |c| {
                println!(
                    "created container `{}` over {} ({r}: any {} of {} fragments rebuild a pack)",
                    c.name,
                    c.sources.join(", "),
                    r.k,
                    r.total()
                )
            })?;
            if c.peers < r.total() {
                eprintln!(
                    "warning: {r} needs {} peers to keep every fragment of a pack on a different peer; {} configured",
                    r.total(),
                    c.peers
                );
            }
        }
        ContainerCmd::List => {
            let rows = home.containers().list()?;
            out.emit(&rows, |rows| {
                if rows.is_empty() {
                    println!(
                        "no containers; create one with `trove container create NAME PATH...`"
                    );
                }
                for r in rows {
                    println!(
                        "{:<16} {:<5} {:>3} snapshots  {}",
                        r.name,
                        r.redundancy,
                        r.snapshots,
                        r.sources.join(", ")
                    );
                }
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
