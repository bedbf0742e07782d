//! `trove mount`: a container's snapshots as a read-only filesystem, until
//! SIGINT or SIGTERM (or an `umount` from outside).

use crate::context::{open_home, unlock, Out};
use anyhow::Result;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// The container (optional when there is only one).
    #[arg(value_name = "CONTAINER")]
    first: String,
    /// An existing empty folder.
    #[arg(value_name = "MOUNTPOINT")]
    second: Option<PathBuf>,
}

#[derive(Serialize)]
struct Mounted<'a> {
    mountpoint: &'a std::path::Path,
    snapshots: usize,
}

pub fn run(args: Args, out: Out) -> Result<ExitCode> {
    // `trove mount MOUNTPOINT` or `trove mount CONTAINER MOUNTPOINT`.
    let (container, mountpoint) = match args.second {
        Some(m) => (Some(args.first), m),
        None => (None, PathBuf::from(args.first)),
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let home = open_home()?;
    let owner = unlock(&home)?;
    let mounted = trove_mount::mount(home, &owner, container.as_deref(), &mountpoint)?;
    out.emit(
        &Mounted {
            mountpoint: &mountpoint,
            snapshots: mounted.snapshots,
        },
        |m| {
            println!(
                "{} snapshot(s) mounted read-only at {}/snapshots; Ctrl-C or `umount {}` to stop",
                m.snapshots,
                mountpoint.display(),
                mountpoint.display()
            )
        },
    )?;
    while !stop.load(Ordering::Relaxed) && !mounted.ended() {
        std::thread::sleep(Duration::from_millis(100));
    }
    if mounted.unmount()? == trove_mount::Unmounted::Detached {
        eprintln!(
            "{} was busy (a file or folder open there): detached; what was open there now fails",
            mountpoint.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
