//! `trove dump`: a snapshot, or a path in it, as a tar stream on stdout.

use crate::context::{open_home, unlock};
use anyhow::{bail, Result};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// An id, a unique id prefix (4+ hex digits) or CONTAINER:latest.
    snapshot: String,
    /// Only this snapshot-relative path (a folder, a file or a symlink).
    path: Option<PathBuf>,
    /// The archive format (tar only, for now).
    #[arg(long, value_enum, default_value_t = Format::Tar)]
    format: Format,
}

#[derive(clap::ValueEnum, Clone, Copy)]
enum Format {
    Tar,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let stdout = std::io::stdout();
    if stdout.is_terminal() {
        bail!("refusing to write a tar archive to a terminal: pipe it (`trove dump {} | tar -x`) or redirect it to a file", args.snapshot);
    }
    let home = open_home()?;
    let owner = unlock(&home)?;
    let Format::Tar = args.format;
    // A buffered lock: tar writes 512-byte headers and padding.
    let out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    match trove_repo::dump(&home, &owner, &args.snapshot, args.path.as_deref(), out) {
        Ok(_) => Ok(ExitCode::SUCCESS),
        // The reader went away (`| head`): nothing to report, as `cat` does.
        Err(e) if e.is_closed_output() => Ok(ExitCode::from(141)),
        Err(e) => Err(e.into()),
    }
}
