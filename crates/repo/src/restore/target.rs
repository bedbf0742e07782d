//! The restore target: the only code that touches the folder a restore
//! writes into.
//!
//! The user chose the target, so its own path is opened once, following
//! symlinks like any path the user types. Everything below it is reached
//! from that folder's descriptor, one name at a time, with
//! `openat(O_NOFOLLOW | O_DIRECTORY)`: a symlink anywhere below the target
//! (planted before the restore, swapped in while it runs, or restored from
//! the snapshot) is never followed. Files are created with
//! `O_CREAT | O_EXCL | O_NOFOLLOW`, and times and modes are set with
//! `futimens` and `fchmod` on a descriptor, never through a path.
//!
//! Every entry the restore creates, or takes over (an existing real folder),
//! is remembered by device and inode ([`Identity`]). Before an existing
//! entry is replaced it is looked at with `fstatat(AT_SYMLINK_NOFOLLOW)`:
//! one of ours means that the filesystem maps two snapshot names onto one
//! entry (case-insensitive or Unicode-normalising), and the later one is
//! refused rather than allowed to replace or go through the earlier one.
//! A descriptor reopened later is checked against the identity recorded
//! when the entry was made, so an entry replaced behind the restore's back
//! (even by a hard link to a file elsewhere) is never written, chmodded or
//! re-timed.

use crate::error::{RepoError, Result};
use rustix::fs::{openat, AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

/// An entry on disk by device and inode: the same whatever name reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Identity {
    dev: u64,
    ino: u64,
}

impl Identity {
    // `dev_t` and `ino_t` are not `u64` on every platform.
    #[allow(clippy::unnecessary_cast)]
    fn of(st: &rustix::fs::Stat) -> Self {
        Self {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
        }
    }
}

/// Why the target did not take one entry of the snapshot. The restore
/// reports the path as lost for this reason and goes on; nothing on disk
/// was changed for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    /// A real folder that this restore did not create holds the place of a
    /// file or symlink. A user's folder is never deleted to make room.
    #[error(
        "the snapshot has a {kind} here but the target holds a folder, which was left untouched; \
         move or rename that folder and restore this path again (--include)"
    )]
    FolderInTheWay { kind: &'static str },
    /// The name reaches an entry that this restore created for another
    /// snapshot path: the filesystem treats the two names as one.
    #[error(
        "collides with {with} on a case-insensitive filesystem (the two names are one entry \
         there, and that one was restored first); restore this path into another folder \
         (--include PATH --target OTHER)"
    )]
    Collision { with: String },
}

/// What became of one entry the restore asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Placed {
    /// Made (or, for a folder, an existing real folder taken over).
    Made(Identity),
    Refused(Refusal),
}

/// What holds a name before the restore makes its entry there.
enum Occupant {
    Nothing,
    /// An entry this restore made, for another path (shown to the user).
    Ours(String),
    /// A real folder the restore did not make.
    Folder,
    /// A file, symlink or anything else the restore did not make.
    Other,
}

/// A folder of the target opened by a walk: the target itself or below it.
enum Folder<'a> {
    Root(BorrowedFd<'a>),
    Below(OwnedFd),
}

impl AsFd for Folder<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Folder::Root(fd) => *fd,
            Folder::Below(fd) => fd.as_fd(),
        }
    }
}

/// The folder of the entry one thread made or reopened last, kept open:
/// a restore meets its entries folder by folder, so most of them then need
/// no walk to their folder. It was reached like any folder (never through a
/// symlink), so what is made through it is below the target as when it was
/// opened.
#[derive(Default)]
pub(crate) struct LastFolder(Option<(PathBuf, OwnedFd)>);

/// Folders are opened only to reach what is in them. On Linux that is
/// `O_PATH`, which, like a path walk, needs search permission on the folder
/// but not read permission.
#[cfg(any(target_os = "linux", target_os = "android"))]
const FOLDER: OFlags = OFlags::PATH.union(OFlags::DIRECTORY).union(OFlags::CLOEXEC);
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const FOLDER: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC);
/// Folders below the target are opened only as real folders: a symlink
/// fails the open (`O_NOFOLLOW`, and `O_DIRECTORY` since a link is not one).
const WALK: OFlags = FOLDER.union(OFlags::NOFOLLOW);
/// Reopening an entry the restore made: never through a symlink, and never
/// waiting on a FIFO swapped in for a file.
const REOPEN: OFlags = OFlags::NOFOLLOW
    .union(OFlags::NONBLOCK)
    .union(OFlags::CLOEXEC);
/// Folders and files are private while the restore fills them; their
/// modes from the snapshot are set last.
const NEW_DIR_MODE: u32 = 0o700;
const NEW_FILE_MODE: u32 = 0o600;

/// The folder a restore writes into.
#[derive(Debug)]
pub(crate) struct Target {
    path: PathBuf,
    root: OwnedFd,
    /// Every entry this restore made or took over. (Files are made from
    /// several threads.) Identities only: with a path each, this record was
    /// the largest part of a 200,000-file restore's peak; the name a
    /// colliding entry holds is looked up in its folder when it happens.
    ours: Mutex<HashSet<Identity>>,
}

fn io_err(e: Errno) -> std::io::Error {
    std::io::Error::from(e)
}

/// Set the mtime, then the mode, through `fd`; on failure, the step that
/// failed and why.
fn stamp(
    fd: BorrowedFd,
    mtime_ns: i64,
    mode: u32,
) -> std::result::Result<(), (&'static str, Errno)> {
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        },
        last_modification: timespec(mtime_ns),
    };
    rustix::fs::futimens(fd, &times).map_err(|e| ("set time", e))?;
    rustix::fs::fchmod(fd, Mode::from_raw_mode(mode & 0o7777)).map_err(|e| ("chmod", e))
}

impl Target {
    /// Open the target folder, creating it (and its parents) if missing.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        std::fs::create_dir_all(path).map_err(|e| RepoError::io("create", path, e))?;
        let root = rustix::fs::open(path, FOLDER, Mode::empty())
            .map_err(|e| RepoError::io("open", path, io_err(e)))?;
        Ok(Self {
            path: path.to_owned(),
            root,
            ours: Mutex::new(HashSet::new()),
        })
    }

    /// `rel` under the target, as shown to the user.
    pub(crate) fn shown(&self, rel: &Path) -> String {
        super::plan::shown(&self.path, rel)
    }

    fn err(&self, op: &'static str, rel: &Path, e: impl Into<std::io::Error>) -> RepoError {
        RepoError::io(op, self.path.join(rel), e.into())
    }

    /// Open the folder that holds `rel`, one name at a time from the
    /// target, never following a symlink; return it with `rel`'s last name.
    fn parent_of<'p>(&self, rel: &'p Path) -> Result<(Folder<'_>, &'p OsStr)> {
        let mut names = Vec::new();
        for c in rel.components() {
            match c {
                Component::Normal(n) => names.push(n),
                _ => {
                    return Err(self.err(
                        "restore",
                        rel,
                        std::io::Error::new(
                            std::io::ErrorKind::InvalidInput,
                            "not a plain path below the target",
                        ),
                    ))
                }
            }
        }
        let Some((last, folders)) = names.split_last() else {
            return Err(self.err(
                "restore",
                rel,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty path"),
            ));
        };
        if let Some(fd) = rel.parent().and_then(|p| self.open_beneath(p)) {
            return Ok((Folder::Below(fd), last));
        }
        let mut at = Folder::Root(self.root.as_fd());
        let mut walked = PathBuf::new();
        for name in folders {
            walked.push(name);
            let fd = rustix::fs::openat(&at, *name, WALK, Mode::empty()).map_err(|e| {
                match e {
                    // O_NOFOLLOW on a symlink (ELOOP; EMLINK on some BSDs),
                    // or O_DIRECTORY on something else.
                    Errno::LOOP | Errno::MLINK | Errno::NOTDIR => self.err(
                        "open folder",
                        &walked,
                        std::io::Error::other(
                            "is not a real folder (symlinks below the target are never followed)",
                        ),
                    ),
                    e => self.err("open folder", &walked, io_err(e)),
                }
            })?;
            at = Folder::Below(fd);
        }
        Ok((at, last))
    }

    /// [`Target::parent_of`], through `last` when `rel` is in the same
    /// folder as the entry before it.
    fn parent_in<'c, 'p>(
        &'c self,
        last: &'c mut LastFolder,
        rel: &'p Path,
    ) -> Result<(BorrowedFd<'c>, &'p OsStr)> {
        let parent = rel.parent().unwrap_or(Path::new(""));
        let same = matches!(&last.0, Some((p, _)) if p == parent);
        let name = match rel.components().next_back() {
            Some(Component::Normal(name)) if same => name,
            _ => match self.parent_of(rel)? {
                (Folder::Root(fd), name) => return Ok((fd, name)),
                (Folder::Below(fd), name) => {
                    last.0 = Some((parent.to_owned(), fd));
                    name
                }
            },
        };
        let (_, fd) = last.0.as_ref().expect("just checked or set");
        Ok((fd.as_fd(), name))
    }

    /// The folder `folders` (plain names only) below the target in one
    /// `openat2` that, like the walk, follows no symlink and leaves no
    /// folder, instead of one `openat` per name. `None` (an older kernel,
    /// a rename racing the lookup, or something wrong on the way): walk it
    /// name by name, which also names what is wrong.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn open_beneath(&self, folders: &Path) -> Option<OwnedFd> {
        use rustix::fs::ResolveFlags;
        if folders.as_os_str().is_empty() {
            return None;
        }
        let resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        rustix::fs::openat2(&self.root, folders, WALK, Mode::empty(), resolve).ok()
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn open_beneath(&self, _folders: &Path) -> Option<OwnedFd> {
        None
    }

    /// What is at `name` in `folder` now, without following it.
    fn occupant(&self, folder: impl AsFd, name: &OsStr, rel: &Path) -> Result<Occupant> {
        match rustix::fs::statat(&folder, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => Ok(Occupant::Nothing),
            Err(e) => Err(self.err("look at", rel, io_err(e))),
            Ok(st) if self.ours().contains(&Identity::of(&st)) => {
                Ok(Occupant::Ours(self.name_held(folder, &st, rel)))
            }
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                Ok(Occupant::Folder)
            }
            Ok(_) => Ok(Occupant::Other),
        }
    }

    /// The path, as shown, of the entry `st` of `folder`, which this restore
    /// made for another path of the snapshot: the names that a filesystem
    /// treats as one (`A` and `a`) are in one folder, and the folder lists
    /// the entry under the name it was made with.
    fn name_held(&self, folder: impl AsFd, st: &rustix::fs::Stat, rel: &Path) -> String {
        let parent = rel.parent().unwrap_or(Path::new(""));
        let ino = Identity::of(st).ino;
        let listed = openat(
            &folder,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .and_then(rustix::fs::Dir::new)
        .ok()
        .and_then(|dir| {
            dir.filter_map(|e| e.ok())
                .find(|e| e.ino() == ino)
                .map(|e| OsStr::from_bytes(e.file_name().to_bytes()).to_owned())
        });
        match listed {
            Some(name) => self.shown(&parent.join(name)),
            // Renamed or removed since: the folder is all there is to show.
            None => format!("an entry of another name in {}", self.shown(parent)),
        }
    }

    fn collision(&self, with: String) -> Placed {
        Placed::Refused(Refusal::Collision { with })
    }

    /// Remove a non-folder the restore did not make; the name is unlinked,
    /// never followed.
    fn unlink(&self, folder: impl AsFd, name: &OsStr, rel: &Path) -> Result<()> {
        rustix::fs::unlinkat(folder, name, AtFlags::empty())
            .map_err(|e| self.err("replace", rel, io_err(e)))
    }

    fn ours(&self) -> std::sync::MutexGuard<'_, HashSet<Identity>> {
        self.ours.lock().expect("not poisoned")
    }

    fn claim(&self, st: &rustix::fs::Stat) -> Identity {
        let id = Identity::of(st);
        self.ours().insert(id);
        id
    }

    /// Make the folder `rel` (its parent already made). An existing real
    /// folder is taken over; a file or symlink there is replaced.
    pub(crate) fn make_dir(&mut self, rel: &Path) -> Result<Placed> {
        let (folder, name) = self.parent_of(rel)?;
        let create = match self.occupant(&folder, name, rel)? {
            Occupant::Ours(with) => return Ok(self.collision(with)),
            Occupant::Folder => false,
            Occupant::Nothing => true,
            Occupant::Other => {
                self.unlink(&folder, name, rel)?;
                true
            }
        };
        if create {
            rustix::fs::mkdirat(&folder, name, Mode::from_raw_mode(NEW_DIR_MODE))
                .map_err(|e| self.err("create folder", rel, io_err(e)))?;
        }
        let fd = rustix::fs::openat(&folder, name, WALK, Mode::empty())
            .map_err(|e| self.err("open folder", rel, io_err(e)))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| self.err("open folder", rel, io_err(e)))?;
        drop(folder);
        Ok(Placed::Made(self.claim(&st)))
    }

    /// Create the empty file `rel`, replacing a file or symlink that is in
    /// the way; with it, its handle, open for writing. (Its writes give it
    /// its length: a file whose writes do not all succeed is removed.)
    /// Files may be made from several threads, as long as the files of one
    /// folder are made by one thread (two names that are one entry are then
    /// met in turn, as a collision).
    pub(crate) fn create_file(
        &self,
        last: &mut LastFolder,
        rel: &Path,
    ) -> Result<(Placed, Option<std::fs::File>)> {
        let (folder, name) = self.parent_in(last, rel)?;
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | REOPEN;
        let create = || openat(folder, name, flags, Mode::from_raw_mode(NEW_FILE_MODE));
        // Most names are free: create first, and look at what holds the
        // name only when it is taken (O_EXCL never follows a symlink).
        let fd = match create() {
            Err(Errno::EXIST) => {
                match self.occupant(folder, name, rel)? {
                    Occupant::Ours(with) => return Ok((self.collision(with), None)),
                    Occupant::Folder => {
                        let refused = Refusal::FolderInTheWay { kind: "file" };
                        return Ok((Placed::Refused(refused), None));
                    }
                    Occupant::Nothing => {}
                    Occupant::Other => self.unlink(folder, name, rel)?,
                }
                create()
            }
            made => made,
        }
        .map_err(|e| self.err("create", rel, io_err(e)))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| self.err("create", rel, io_err(e)))?;
        Ok((Placed::Made(self.claim(&st)), Some(fd.into())))
    }

    /// Create the symlink `rel` pointing at `to` (raw bytes, not looked
    /// at), replacing a file or symlink that is in the way. Symlinks may be
    /// made from several threads under the rule of [`Target::create_file`].
    pub(crate) fn make_symlink(
        &self,
        last: &mut LastFolder,
        rel: &Path,
        to: &[u8],
    ) -> Result<Placed> {
        let (folder, name) = self.parent_in(last, rel)?;
        match self.occupant(folder, name, rel)? {
            Occupant::Ours(with) => return Ok(self.collision(with)),
            Occupant::Folder => {
                return Ok(Placed::Refused(Refusal::FolderInTheWay { kind: "symlink" }))
            }
            Occupant::Nothing => {}
            Occupant::Other => self.unlink(folder, name, rel)?,
        }
        rustix::fs::symlinkat(OsStr::from_bytes(to), folder, name)
            .map_err(|e| self.err("symlink", rel, io_err(e)))?;
        let st = rustix::fs::statat(folder, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| self.err("symlink", rel, io_err(e)))?;
        Ok(Placed::Made(self.claim(&st)))
    }

    /// Reopen an entry this restore made, checking that it still is that
    /// entry.
    fn reopen(
        &self,
        last: &mut LastFolder,
        rel: &Path,
        id: Identity,
        flags: OFlags,
    ) -> Result<OwnedFd> {
        let (folder, name) = self.parent_in(last, rel)?;
        let fd = rustix::fs::openat(folder, name, flags | REOPEN, Mode::empty())
            .map_err(|e| self.err("open", rel, io_err(e)))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| self.err("open", rel, io_err(e)))?;
        if Identity::of(&st) != id {
            return Err(self.err(
                "open",
                rel,
                std::io::Error::other(
                    "was replaced by something else while the restore ran, and was left alone",
                ),
            ));
        }
        Ok(fd)
    }

    /// Open a file this restore created, for writing its data.
    pub(crate) fn open_file(
        &self,
        last: &mut LastFolder,
        rel: &Path,
        id: Identity,
    ) -> Result<std::fs::File> {
        Ok(std::fs::File::from(self.reopen(
            last,
            rel,
            id,
            OFlags::WRONLY,
        )?))
    }

    /// Set the mtime, then the mode, of a file or folder this restore made:
    /// times first, because `futimens` needs ownership, not write access.
    pub(crate) fn set_time_and_mode(
        &self,
        last: &mut LastFolder,
        rel: &Path,
        id: Identity,
        mtime_ns: i64,
        mode: u32,
    ) -> Result<()> {
        let fd = self.reopen(last, rel, id, OFlags::RDONLY)?;
        self.stamp(rel, fd.as_fd(), mtime_ns, mode)
    }

    /// [`Target::set_time_and_mode`] of a file still open from
    /// [`Target::open_file`] (so already checked to be the one made). A
    /// failure is not named here: the caller leaves the file to the final
    /// pass, which tries again through its path and reports it.
    pub(crate) fn finish_file(file: &std::fs::File, mtime_ns: i64, mode: u32) -> bool {
        stamp(file.as_fd(), mtime_ns, mode).is_ok()
    }

    fn stamp(&self, rel: &Path, fd: BorrowedFd, mtime_ns: i64, mode: u32) -> Result<()> {
        stamp(fd, mtime_ns, mode).map_err(|(op, e)| self.err(op, rel, io_err(e)))
    }

    /// Remove a file this restore created (one it could not complete);
    /// whatever else may be at its name now is left alone.
    pub(crate) fn remove_file(&mut self, rel: &Path, id: Identity) -> Result<()> {
        let (folder, name) = self.parent_of(rel)?;
        let st = rustix::fs::statat(&folder, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| self.err("remove", rel, io_err(e)))?;
        if Identity::of(&st) == id {
            rustix::fs::unlinkat(&folder, name, AtFlags::empty())
                .map_err(|e| self.err("remove", rel, io_err(e)))?;
            self.ours().remove(&id);
        }
        Ok(())
    }
}

/// Nanoseconds since the epoch (negative before 1970) as a `timespec`,
/// whose nanoseconds are always in `0..1e9`.
fn timespec(ns: i64) -> Timespec {
    const NS: i64 = 1_000_000_000;
    Timespec {
        tv_sec: ns.div_euclid(NS),
        tv_nsec: ns.rem_euclid(NS) as rustix::fs::Nsecs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, FileExt, MetadataExt};

    /// A temp dir with a `target` folder (not yet opened) and an `outside`
    /// folder holding a file, `victim`.
    struct World {
        _tmp: tempfile::TempDir,
        target: PathBuf,
        outside: PathBuf,
    }

    fn world() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("target");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&target).unwrap();
        std::fs::create_dir_all(outside.join("sub")).unwrap();
        std::fs::write(outside.join("victim"), b"untouched").unwrap();
        World {
            _tmp: tmp,
            target,
            outside,
        }
    }

    /// One entry as seen from outside: any write, chmod, re-time or link
    /// change shows in it (ctime moves with all of them).
    #[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
    struct Seen {
        path: PathBuf,
        mode: u32,
        mtime: (i64, i64),
        ctime: (i64, i64),
        bytes: Vec<u8>,
    }

    /// Everything under `root`, and `root` itself, without following links.
    fn record(root: &Path) -> Vec<Seen> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(p) = stack.pop() {
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                for e in std::fs::read_dir(&p).unwrap() {
                    stack.push(e.unwrap().path());
                }
            }
            out.push(Seen {
                bytes: if m.is_file() {
                    std::fs::read(&p).unwrap()
                } else {
                    Vec::new()
                },
                path: p,
                mode: m.mode(),
                mtime: (m.mtime(), m.mtime_nsec()),
                ctime: (m.ctime(), m.ctime_nsec()),
            });
        }
        out.sort();
        out
    }

    fn made(p: Placed) -> Identity {
        match p {
            Placed::Made(id) => id,
            Placed::Refused(r) => panic!("refused: {r}"),
        }
    }

    fn kind(p: &Path) -> &'static str {
        let ft = std::fs::symlink_metadata(p).unwrap().file_type();
        if ft.is_symlink() {
            "symlink"
        } else if ft.is_dir() {
            "dir"
        } else {
            "file"
        }
    }

    #[test]
    fn a_symlink_in_a_folders_place_is_replaced_by_a_real_folder_not_followed() {
        let w = world();
        let before = record(&w.outside);
        symlink(&w.outside, w.target.join("src")).unwrap();
        std::fs::create_dir_all(w.target.join("real")).unwrap();
        symlink(w.outside.join("sub"), w.target.join("real/deep")).unwrap();
        let mut t = Target::open(&w.target).unwrap();
        let src = made(t.make_dir(Path::new("src")).unwrap());
        let f = made(
            t.create_file(&mut LastFolder::default(), Path::new("src/a.txt"))
                .unwrap()
                .0,
        );
        made(t.make_dir(Path::new("real")).unwrap());
        let deep = made(t.make_dir(Path::new("real/deep")).unwrap());
        made(t.make_dir(Path::new("real/deep/er")).unwrap());
        t.open_file(&mut LastFolder::default(), Path::new("src/a.txt"), f)
            .unwrap()
            .write_all_at(b"abc", 0)
            .unwrap();
        t.set_time_and_mode(
            &mut LastFolder::default(),
            Path::new("src/a.txt"),
            f,
            5,
            0o640,
        )
        .unwrap();
        t.set_time_and_mode(
            &mut LastFolder::default(),
            Path::new("real/deep"),
            deep,
            7,
            0o750,
        )
        .unwrap();
        t.set_time_and_mode(&mut LastFolder::default(), Path::new("src"), src, 9, 0o700)
            .unwrap();
        assert_eq!(kind(&w.target.join("src")), "dir");
        assert_eq!(kind(&w.target.join("real/deep")), "dir");
        assert_eq!(kind(&w.target.join("real/deep/er")), "dir");
        assert_eq!(std::fs::read(w.target.join("src/a.txt")).unwrap(), b"abc");
        assert_eq!(record(&w.outside), before, "nothing outside was touched");
    }

    #[test]
    fn a_file_in_a_folders_place_is_replaced() {
        let w = world();
        std::fs::write(w.target.join("d"), b"in the way").unwrap();
        let mut t = Target::open(&w.target).unwrap();
        made(t.make_dir(Path::new("d")).unwrap());
        assert_eq!(kind(&w.target.join("d")), "dir");
    }

    #[test]
    fn a_symlink_in_a_files_place_is_replaced_never_written_through() {
        let w = world();
        let before = record(&w.outside);
        symlink(w.outside.join("victim"), w.target.join("a.txt")).unwrap();
        symlink(w.outside.join("victim"), w.target.join("l")).unwrap();
        std::fs::write(w.target.join("old.txt"), b"old").unwrap();
        let t = Target::open(&w.target).unwrap();
        let f = made(
            t.create_file(&mut LastFolder::default(), Path::new("a.txt"))
                .unwrap()
                .0,
        );
        made(
            t.create_file(&mut LastFolder::default(), Path::new("old.txt"))
                .unwrap()
                .0,
        );
        made(
            t.make_symlink(&mut LastFolder::default(), Path::new("l"), b"elsewhere")
                .unwrap(),
        );
        t.open_file(&mut LastFolder::default(), Path::new("a.txt"), f)
            .unwrap()
            .write_all_at(b"mine", 0)
            .unwrap();
        t.set_time_and_mode(&mut LastFolder::default(), Path::new("a.txt"), f, 1, 0o600)
            .unwrap();
        assert_eq!(kind(&w.target.join("a.txt")), "file");
        assert_eq!(std::fs::read(w.target.join("a.txt")).unwrap(), b"mine");
        assert_eq!(std::fs::read(w.target.join("old.txt")).unwrap(), b"");
        assert_eq!(
            std::fs::read_link(w.target.join("l")).unwrap(),
            Path::new("elsewhere")
        );
        assert_eq!(record(&w.outside), before);
    }

    #[test]
    fn a_real_folder_in_a_files_or_symlinks_place_is_refused_and_kept() {
        let w = world();
        std::fs::create_dir_all(w.target.join("x")).unwrap();
        std::fs::write(w.target.join("x/mine.txt"), b"user data").unwrap();
        let before = record(&w.target);
        let t = Target::open(&w.target).unwrap();
        assert_eq!(
            t.create_file(&mut LastFolder::default(), Path::new("x"))
                .unwrap()
                .0,
            Placed::Refused(Refusal::FolderInTheWay { kind: "file" })
        );
        assert_eq!(
            t.make_symlink(&mut LastFolder::default(), Path::new("x"), b"y")
                .unwrap(),
            Placed::Refused(Refusal::FolderInTheWay { kind: "symlink" })
        );
        assert_eq!(record(&w.target), before);
        let why = Refusal::FolderInTheWay { kind: "file" }.to_string();
        assert!(
            why.contains("left untouched") && why.contains("--include"),
            "{why}"
        );
    }

    /// On a case-insensitive filesystem `A` and `a` are one entry; here the
    /// same name twice stands for that.
    #[test]
    fn an_entry_this_restore_made_is_never_replaced_nor_followed_by_a_later_one() {
        let w = world();
        let before = record(&w.outside);
        let mut t = Target::open(&w.target).unwrap();
        made(
            t.make_symlink(
                &mut LastFolder::default(),
                Path::new("L"),
                w.outside.as_os_str().as_bytes(),
            )
            .unwrap(),
        );
        let shown_l = t.shown(Path::new("L"));
        for placed in [
            t.make_dir(Path::new("L")).unwrap(),
            t.create_file(&mut LastFolder::default(), Path::new("L"))
                .unwrap()
                .0,
            t.make_symlink(&mut LastFolder::default(), Path::new("L"), b"other")
                .unwrap(),
        ] {
            assert_eq!(
                placed,
                Placed::Refused(Refusal::Collision {
                    with: shown_l.clone()
                })
            );
        }
        // A folder and a file this restore made are not replaced either.
        made(t.make_dir(Path::new("d")).unwrap());
        made(
            t.create_file(&mut LastFolder::default(), Path::new("f"))
                .unwrap()
                .0,
        );
        for (rel, placed) in [
            (
                "d",
                t.create_file(&mut LastFolder::default(), Path::new("d"))
                    .unwrap()
                    .0,
            ),
            ("d", t.make_dir(Path::new("d")).unwrap()),
            ("f", t.make_dir(Path::new("f")).unwrap()),
            (
                "f",
                t.make_symlink(&mut LastFolder::default(), Path::new("f"), b"x")
                    .unwrap(),
            ),
        ] {
            assert!(
                matches!(&placed, Placed::Refused(Refusal::Collision { with }) if *with == t.shown(Path::new(rel))),
                "{rel}: {placed:?}"
            );
        }
        assert_eq!(kind(&w.target.join("L")), "symlink");
        assert_eq!(kind(&w.target.join("d")), "dir");
        assert_eq!(kind(&w.target.join("f")), "file");
        assert_eq!(record(&w.outside), before);
        let why = Refusal::Collision {
            with: "/t/src/A".into(),
        }
        .to_string();
        assert!(
            why.starts_with("collides with /t/src/A on a case-insensitive filesystem"),
            "{why}"
        );
    }

    #[test]
    fn a_folder_swapped_for_a_symlink_after_it_was_made_is_not_walked_through() {
        let w = world();
        std::fs::write(w.outside.join("f"), b"outside").unwrap();
        let before = record(&w.outside);
        let mut t = Target::open(&w.target).unwrap();
        let d = made(t.make_dir(Path::new("d")).unwrap());
        let f = made(
            t.create_file(&mut LastFolder::default(), Path::new("d/f"))
                .unwrap()
                .0,
        );
        std::fs::rename(w.target.join("d"), w.target.join("moved")).unwrap();
        symlink(&w.outside, w.target.join("d")).unwrap();
        let e = t
            .open_file(&mut LastFolder::default(), Path::new("d/f"), f)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a real folder"), "{e}");
        assert!(t
            .set_time_and_mode(&mut LastFolder::default(), Path::new("d/f"), f, 1, 0o777)
            .is_err());
        // The folder itself: its name now holds a symlink, which is not it.
        assert!(t
            .set_time_and_mode(&mut LastFolder::default(), Path::new("d"), d, 1, 0o777)
            .is_err());
        assert!(t.make_dir(Path::new("d/g")).is_err());
        assert!(t
            .create_file(&mut LastFolder::default(), Path::new("d/g"))
            .is_err());
        assert!(t
            .make_symlink(&mut LastFolder::default(), Path::new("d/g"), b"x")
            .is_err());
        t.remove_file(Path::new("d/f"), f).unwrap_err();
        assert_eq!(record(&w.outside), before);
    }

    #[test]
    fn a_file_swapped_for_another_or_for_a_hard_link_is_left_alone() {
        let w = world();
        let mut t = Target::open(&w.target).unwrap();
        let f = made(
            t.create_file(&mut LastFolder::default(), Path::new("f"))
                .unwrap()
                .0,
        );
        std::fs::remove_file(w.target.join("f")).unwrap();
        // (Linking changes the victim's ctime: record it after.)
        std::fs::hard_link(w.outside.join("victim"), w.target.join("f")).unwrap();
        let before = record(&w.outside);
        let e = t
            .open_file(&mut LastFolder::default(), Path::new("f"), f)
            .unwrap_err()
            .to_string();
        assert!(e.contains("was replaced"), "{e}");
        assert!(t
            .set_time_and_mode(&mut LastFolder::default(), Path::new("f"), f, 1, 0o777)
            .is_err());
        t.remove_file(Path::new("f"), f).unwrap();
        assert!(w.target.join("f").exists(), "not ours: not removed");
        assert_eq!(record(&w.outside), before);
    }

    #[test]
    fn times_and_modes_are_set_on_the_entry_itself() {
        let w = world();
        let mut t = Target::open(&w.target).unwrap();
        let d = made(t.make_dir(Path::new("d")).unwrap());
        let f = made(
            t.create_file(&mut LastFolder::default(), Path::new("d/f"))
                .unwrap()
                .0,
        );
        let l = made(
            t.make_symlink(&mut LastFolder::default(), Path::new("d/l"), b"f")
                .unwrap(),
        );
        t.set_time_and_mode(
            &mut LastFolder::default(),
            Path::new("d/f"),
            f,
            -1_500_000_000,
            0o4751,
        )
        .unwrap();
        // A symlink is never opened, so never re-timed through.
        assert!(t
            .set_time_and_mode(&mut LastFolder::default(), Path::new("d/l"), l, 1, 0o777)
            .is_err());
        t.set_time_and_mode(
            &mut LastFolder::default(),
            Path::new("d"),
            d,
            1_234_567_890_123_456_789,
            0o500,
        )
        .unwrap();
        let m = std::fs::symlink_metadata(w.target.join("d/f")).unwrap();
        assert_eq!((m.mtime(), m.mtime_nsec()), (-2, 500_000_000));
        assert_eq!(m.mode() & 0o7777, 0o4751);
        let m = std::fs::symlink_metadata(w.target.join("d")).unwrap();
        assert_eq!((m.mtime(), m.mtime_nsec()), (1_234_567_890, 123_456_789));
        assert_eq!(m.mode() & 0o7777, 0o500);
        std::fs::set_permissions(
            w.target.join("d"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
    }

    #[test]
    fn remove_file_removes_the_file_this_restore_made() {
        let w = world();
        let mut t = Target::open(&w.target).unwrap();
        let f = made(
            t.create_file(&mut LastFolder::default(), Path::new("f"))
                .unwrap()
                .0,
        );
        assert!(w.target.join("f").is_file());
        t.remove_file(Path::new("f"), f).unwrap();
        assert!(!w.target.join("f").exists());
        // Its name is free again for a later entry.
        made(
            t.create_file(&mut LastFolder::default(), Path::new("f"))
                .unwrap()
                .0,
        );
    }

    #[test]
    fn the_target_itself_is_created_and_may_be_reached_through_a_symlink() {
        let w = world();
        let link = w.target.join("to-outside");
        symlink(&w.outside, &link).unwrap();
        let t = Target::open(&link).unwrap();
        made(
            t.create_file(&mut LastFolder::default(), Path::new("new"))
                .unwrap()
                .0,
        );
        assert!(w.outside.join("new").is_file());
        let fresh = w.target.join("a/b/c");
        let mut t = Target::open(&fresh).unwrap();
        made(t.make_dir(Path::new("x")).unwrap());
        assert!(fresh.join("x").is_dir());
    }

    #[test]
    fn paths_that_are_not_plain_names_below_the_target_are_refused() {
        let w = world();
        let mut t = Target::open(&w.target).unwrap();
        for bad in ["", "../x", "/etc/x", "a/../../x"] {
            assert!(t.make_dir(Path::new(bad)).is_err(), "{bad}");
            assert!(
                t.create_file(&mut LastFolder::default(), Path::new(bad))
                    .is_err(),
                "{bad}"
            );
        }
    }
}
