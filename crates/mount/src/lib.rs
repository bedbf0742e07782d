//! `trove mount`: a container's snapshots as a read-only FUSE filesystem,
//! `MOUNTPOINT/snapshots/<time>/...` and `MOUNTPOINT/snapshots/latest`.
//!
//! Lazy: mounting reads the snapshot list from the local index and nothing
//! from the peers; listing a folder fetches its tree, reading a file fetches
//! only the packs of the chunks it covers, each verified as a restore
//! verifies it ([`trove_repo::TreeReader`]). The mount is read-only (the
//! kernel answers writes with EROFS) and shows the snapshots that existed
//! when it was made.

mod fs;
mod inodes;

use std::path::{Path, PathBuf};
use trove_repo::{Browser, Home, Owner, RepoError};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MountError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("mountpoint {}: {why}", .path.display())]
    Mountpoint { path: PathBuf, why: &'static str },
    #[error("FUSE is not available here: {why}")]
    FuseUnavailable { why: String },
    #[error("mounting {}: {source}", .path.display())]
    Mount {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A mounted container: unmounted when dropped or by [`Mounted::unmount`].
#[derive(Debug)]
pub struct Mounted {
    session: fuser::BackgroundSession,
    mountpoint: PathBuf,
    pub snapshots: usize,
}

/// How a mount ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmounted {
    Clean,
    /// Something had a file or folder open there: the mount was detached
    /// from the tree, and the open files fail from now on.
    Detached,
}

impl Mounted {
    /// Whether the filesystem ended by itself (`umount` from outside).
    pub fn ended(&self) -> bool {
        self.session.guard.is_finished()
    }

    /// Unmount; when busy (a shell inside it, an open file), detach it
    /// lazily rather than leave it mounted with nobody serving it.
    pub fn unmount(self) -> std::io::Result<Unmounted> {
        if self.ended() {
            return self.session.join().map(|()| Unmounted::Clean);
        }
        let at = self.mountpoint;
        match self.session.umount_and_join() {
            Ok(()) => Ok(Unmounted::Clean),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) => {
                rustix::mount::unmount(&at, rustix::mount::UnmountFlags::DETACH)?;
                Ok(Unmounted::Detached)
            }
            Err(e) => Err(e),
        }
    }
}

/// Mount container `name` (or the only one) of `home` at `mountpoint`, an
/// existing empty folder.
pub fn mount(
    home: Home,
    owner: &Owner,
    name: Option<&str>,
    mountpoint: &Path,
) -> Result<Mounted, MountError> {
    check_mountpoint(mountpoint)?;
    check_fuse()?;
    let browser = Browser::open(home, owner, name)?;
    let fs = fs::SnapshotFs::new(browser)?;
    let snapshots = fs.snapshot_count();
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::RO,
        fuser::MountOption::FSName(format!("trove:{}", fs.container_name())),
        fuser::MountOption::Subtype("trove".into()),
        // The kernel checks the stored permission bits.
        fuser::MountOption::DefaultPermissions,
    ];
    // Two request threads: one slow fetch does not stall a listing.
    config.n_threads = Some(2);
    let session =
        fuser::spawn_mount(fs, mountpoint, &config).map_err(|source| MountError::Mount {
            path: mountpoint.to_owned(),
            source,
        })?;
    Ok(Mounted {
        session,
        mountpoint: mountpoint.to_owned(),
        snapshots,
    })
}

fn check_mountpoint(p: &Path) -> Result<(), MountError> {
    let bad = |why| MountError::Mountpoint {
        path: p.to_owned(),
        why,
    };
    let meta = std::fs::metadata(p).map_err(|_| bad("does not exist; make it with mkdir"))?;
    if !meta.is_dir() {
        return Err(bad("is not a folder"));
    }
    let mut entries = std::fs::read_dir(p).map_err(|_| bad("cannot be read"))?;
    if entries.next().is_some() {
        return Err(bad(
            "is not empty; mount on an empty folder so nothing is hidden",
        ));
    }
    Ok(())
}

/// FUSE needs the kernel's device, and, for anyone but root, the setuid
/// `fusermount3` helper.
fn check_fuse() -> Result<(), MountError> {
    if !Path::new("/dev/fuse").exists() {
        return Err(MountError::FuseUnavailable {
            why: "/dev/fuse is missing: load the module (`modprobe fuse`), or in a container \
                  pass the device (`--device /dev/fuse --cap-add SYS_ADMIN`)"
                .into(),
        });
    }
    let root = rustix::process::geteuid().is_root();
    if !root && !on_path("fusermount3") && !on_path("fusermount") {
        return Err(MountError::FuseUnavailable {
            why: "fusermount3 is not installed: install fuse3 (`apt-get install fuse3`)".into(),
        });
    }
    Ok(())
}

fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(bin).is_file()))
}
