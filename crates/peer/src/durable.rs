//! The one recipe for writing a file durably, used by every writer in Trove
//! (folder peers, the node's files, the keyfile, the transport key): write a
//! temporary file, `fsync` it, rename (or link) it into place, `fsync` the
//! folder. A crash leaves the old file or the new one, never a mix, plus at
//! most a stray temporary file.
//!
//! Everything Trove writes is private to the user that runs it: files are
//! created `0600` and folders `0700`, whatever the umask (the mode is set
//! explicitly after creation), because they hold secrets or metadata (paths,
//! sizes, times, peer locations) or encrypted data that nobody else needs.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of every file Trove writes.
pub const FILE_MODE: u32 = 0o600;
/// Mode of every folder Trove creates.
pub const DIR_MODE: u32 = 0o700;

/// Atomically replace (or create) `target` with `bytes`, durably. The
/// temporary file goes into `tmp_dir` (which must be on the same file
/// system and exist) or beside the target.
pub fn replace(target: &Path, bytes: &[u8], tmp_dir: Option<&Path>) -> io::Result<()> {
    replace_parts(target, &[bytes], tmp_dir)
}

/// [`replace`] with the bytes given as parts written one after the other
/// (a fragment stored from its pack: a header, the pack's bytes, padding).
pub fn replace_parts(target: &Path, parts: &[&[u8]], tmp_dir: Option<&Path>) -> io::Result<()> {
    let tmp = tmp_path(target, tmp_dir);
    let result = write_synced(&tmp, parts).and_then(|()| fs::rename(&tmp, target));
    if let Err(e) = result {
        // Leave no litter behind a failed write.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(parent_of(target))
}

/// Create `target` with `bytes`, durably, refusing to replace an existing
/// file ([`ErrorKind::AlreadyExists`]): the temporary file is hard-linked
/// into place, which fails if the target exists.
pub fn create_new(target: &Path, bytes: &[u8], tmp_dir: Option<&Path>) -> io::Result<()> {
    let tmp = tmp_path(target, tmp_dir);
    let result = write_synced(&tmp, &[bytes]).and_then(|()| fs::hard_link(&tmp, target));
    let _ = fs::remove_file(&tmp);
    result?;
    sync_dir(parent_of(target))
}

/// Put a file written elsewhere (a transfer received piece by piece) in
/// place: `fsync` it, rename it onto `target`, `fsync` the target's folder.
pub fn adopt(written: &Path, target: &Path) -> io::Result<()> {
    File::open(written)?.sync_all()?;
    fs::rename(written, target)?;
    sync_dir(parent_of(target))
}

/// Move an entry and make both folders' entries durable (delayed deletion
/// into a trash, and undoing it).
pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    fs::rename(from, to)?;
    sync_dir(parent_of(from))?;
    if parent_of(from) != parent_of(to) {
        sync_dir(parent_of(to))?;
    }
    Ok(())
}

/// Make a folder's entries (creations, renames, removals) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Create one private folder (`0700`); `Ok(false)` if it already exists.
/// The parent's entry is made durable.
pub fn create_dir(dir: &Path) -> io::Result<bool> {
    match fs::create_dir(dir) {
        Ok(()) => {
            fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))?;
            sync_dir(parent_of(dir))?;
            Ok(true)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Create `dir` and its missing parents as private folders (`0700`);
/// existing folders keep their modes.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_all(parent)?;
    }
    create_dir(dir).map(|_| ())
}

/// Make an existing file or folder private if group or others have any
/// access to it (`mode` is [`FILE_MODE`] or [`DIR_MODE`]); returns the mode
/// it had when it was changed, so the caller can say so. Symlinks are left
/// alone.
pub fn restrict(path: &Path, mode: u32) -> io::Result<Option<u32>> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::symlink_metadata(path)?;
    let had = meta.mode() & 0o7777;
    if had & 0o077 == 0 || meta.file_type().is_symlink() {
        return Ok(None);
    }
    fs::set_permissions(path, Permissions::from_mode(mode))?;
    Ok(Some(had))
}

/// Write a new private file and flush it to stable storage.
fn write_synced(path: &Path, parts: &[&[u8]]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)?;
    // The umask may have taken more bits away; never fewer are set.
    file.set_permissions(Permissions::from_mode(FILE_MODE))?;
    for part in parts {
        file.write_all(part)?;
    }
    file.sync_all()
}

fn tmp_path(target: &Path, tmp_dir: Option<&Path>) -> PathBuf {
    let name = format!(".{}.tmp", hex::encode(rand::random::<[u8; 12]>()));
    tmp_dir.unwrap_or_else(|| parent_of(target)).join(name)
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn replace_is_private_atomic_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("f");
        replace(&target, b"one", None).unwrap();
        assert_eq!(mode(&target), FILE_MODE);
        replace(&target, b"two", None).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"two");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "a temporary file was left"
        );
    }

    #[test]
    fn create_new_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        fs::create_dir(&tmp).unwrap();
        let target = dir.path().join("key");
        create_new(&target, b"first", Some(&tmp)).unwrap();
        let err = create_new(&target, b"second", Some(&tmp)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&target).unwrap(), b"first");
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
        assert_eq!(mode(&target), FILE_MODE);
    }

    #[test]
    fn new_folders_are_private_and_existing_ones_untouched() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), Permissions::from_mode(0o755)).unwrap();
        let deep = dir.path().join("a/b/c");
        create_dir_all(&deep).unwrap();
        for p in [dir.path().join("a"), dir.path().join("a/b"), deep.clone()] {
            assert_eq!(mode(&p), DIR_MODE, "{}", p.display());
        }
        assert_eq!(mode(dir.path()), 0o755);
        assert!(!create_dir(&deep).unwrap());
    }
}
