//! Folder peers on real files in temporary directories: the peer contract
//! (`trove_peer::testing::contract`, which `MemoryPeer` runs too), then what
//! only a folder has (its layout, trash files, marker, mounts, permissions).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use trove_core::{ContainerId, FragmentId, SnapshotId};
use trove_peer::folder::MARKER_FILE;
use trove_peer::testing::{contract, fragment, signed};
use trove_peer::{FolderPeer, MetaKey, Peer, PeerError};

fn new_peer() -> (tempfile::TempDir, FolderPeer) {
    let dir = tempfile::tempdir().unwrap();
    let peer = FolderPeer::create("usb-1", &dir.path().join("peer")).unwrap();
    (dir, peer)
}

/// Where a folder peer rooted at `root` keeps fragment `id`.
fn fragment_file(root: &Path, id: &FragmentId) -> PathBuf {
    let hex = id.to_hex();
    root.join("fragments").join(&hex[..2]).join(hex)
}

/// Every regular file under `dir`, relative paths.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(
                    e.path()
                        .strip_prefix(dir)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    out.sort();
    out
}

#[test]
fn put_get_has_list_range() {
    let (_dir, peer) = new_peer();
    contract::put_get_has_list_range(&peer);
    assert!(peer.stat().unwrap().free_bytes.is_some_and(|f| f > 0));
}

#[test]
fn layout_is_sharded_and_holds_no_plaintext() {
    let (dir, peer) = new_peer();
    let (a, a_bytes) = fragment(1, 100);
    peer.put_fragment(&a, &a_bytes).unwrap();
    let c = ContainerId::random();
    let s = SnapshotId::random();
    let snapshot = MetaKey::Snapshot(c, s);
    peer.put_meta(&snapshot, &signed(&snapshot, 0, b"sealed"))
        .unwrap();
    let hex = a.to_hex();
    let files = files_under(&dir.path().join("peer"));
    assert_eq!(
        files,
        vec![
            format!("fragments/{}/{hex}", &hex[..2]),
            format!("meta/{}/snapshots/{}", c.to_hex(), s.to_hex()),
            MARKER_FILE.to_owned(),
        ]
    );
    let marker = fs::read_to_string(dir.path().join("peer").join(MARKER_FILE)).unwrap();
    assert_eq!(marker, "trove folder peer v1\n");
    assert!(
        !marker.contains("usb-1"),
        "the peer name must not be written"
    );
}

#[test]
fn wrong_hash_is_refused_and_nothing_stored() {
    let (_dir, peer) = new_peer();
    // The contract checks that the error names the peer by its label,
    // "usb-1 (dir:…)".
    assert!(peer.describe().starts_with("usb-1 "));
    contract::wrong_hash_is_refused_and_nothing_stored(&peer);
}

#[test]
fn put_replaces_a_damaged_copy() {
    let (dir, peer) = new_peer();
    let root = dir.path().join("peer");
    let damage =
        |id: &FragmentId, bytes: &[u8]| fs::write(fragment_file(&root, id), bytes).unwrap();
    let (a, bytes) = contract::put_replaces_a_damaged_copy(&peer, &damage);
    assert_eq!(fs::read(fragment_file(&root, &a)).unwrap(), bytes);
}

#[test]
fn truncated_fragment_is_returned_as_is() {
    let (dir, peer) = new_peer();
    let root = dir.path().join("peer");
    let damage =
        |id: &FragmentId, bytes: &[u8]| fs::write(fragment_file(&root, id), bytes).unwrap();
    contract::truncated_fragment_is_returned_as_is(&peer, &damage);
}

#[test]
fn delete_moves_to_trash_and_purge_respects_grace() {
    let (dir, peer) = new_peer();
    let contract::DeletedFragment {
        deleted: (a, a_bytes),
        kept: (b, b_bytes),
    } = contract::deleted_fragment_is_gone_at_once(&peer);

    let trash = files_under(&dir.path().join("peer/trash"));
    assert_eq!(trash.len(), 1);
    assert!(trash[0].ends_with(&a.to_hex()), "{trash:?}");

    let grace = Duration::from_secs(7 * 24 * 3600);
    let now = SystemTime::now();
    assert_eq!(peer.purge_expired(grace, now).unwrap(), 0);
    assert_eq!(files_under(&dir.path().join("peer/trash")).len(), 1);
    // Still recoverable within the grace period.
    assert!(peer.undelete_fragment(&a).unwrap());
    assert_eq!(peer.get_fragment(&a).unwrap(), a_bytes);
    assert!(!peer.undelete_fragment(&a).unwrap());

    peer.delete_fragment(&a).unwrap();
    assert_eq!(
        peer.purge_expired(grace, now + grace + Duration::from_secs(1))
            .unwrap(),
        1
    );
    assert!(files_under(&dir.path().join("peer/trash")).is_empty());
    assert!(!peer.undelete_fragment(&a).unwrap());
    assert_eq!(peer.get_fragment(&b).unwrap(), b_bytes);
}

#[test]
fn meta_put_get_list_per_container() {
    let (_dir, peer) = new_peer();
    contract::meta_put_get_list_per_container(&peer);
}

#[test]
fn reopen_persists() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peer");
    let (a, bytes) = fragment(7, 500);
    let c = ContainerId::random();
    let manifest = signed(&MetaKey::Container(c), 1, b"manifest");
    {
        let peer = FolderPeer::create("p", &path).unwrap();
        peer.put_fragment(&a, &bytes).unwrap();
        peer.put_meta(&MetaKey::Container(c), &manifest).unwrap();
    }
    let peer = FolderPeer::open("p", &path).unwrap();
    assert_eq!(peer.get_fragment(&a).unwrap(), bytes);
    assert_eq!(peer.get_meta(&MetaKey::Container(c)).unwrap(), manifest);
    // Creating an existing peer folder just opens it.
    let again = FolderPeer::create("p", &path).unwrap();
    assert_eq!(again.list_fragments().unwrap(), vec![a]);
    // Shareable as a trait object.
    let shared: Arc<dyn Peer> = Arc::new(peer);
    assert!(shared.describe().contains("p (dir:"));
}

#[test]
fn open_missing_folder_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let err = FolderPeer::open("usb", &dir.path().join("nope")).unwrap_err();
    assert!(matches!(err, PeerError::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains("is the disk mounted?"), "{err}");
    assert!(err.is_retryable_elsewhere());
}

#[test]
fn open_without_marker_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = FolderPeer::open("usb", dir.path()).unwrap_err();
    assert!(matches!(err, PeerError::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains(MARKER_FILE), "{err}");

    fs::write(dir.path().join(MARKER_FILE), "something else\n").unwrap();
    let err = FolderPeer::open("usb", dir.path()).unwrap_err();
    assert!(matches!(err, PeerError::Corrupt { .. }), "{err}");

    fs::write(dir.path().join(MARKER_FILE), "trove folder peer v99\n").unwrap();
    let err = FolderPeer::open("usb", dir.path()).unwrap_err();
    assert!(err.to_string().contains("upgrade"), "{err}");
}

#[test]
fn create_refuses_a_foreign_non_empty_folder() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("holiday.jpg"), b"x").unwrap();
    let err = FolderPeer::create("usb", dir.path()).unwrap_err();
    assert!(matches!(err, PeerError::Refused { .. }), "{err}");
    assert!(!dir.path().join(MARKER_FILE).exists());
}

#[test]
fn unmounted_disk_is_unavailable_not_empty() {
    let (dir, peer) = new_peer();
    let (a, bytes) = fragment(1, 100);
    peer.put_fragment(&a, &bytes).unwrap();
    // Simulate an unmount: the mount point stays, its contents vanish.
    let root = dir.path().join("peer");
    fs::rename(&root, dir.path().join("elsewhere")).unwrap();
    fs::create_dir(&root).unwrap();

    let unavailable = |r: Result<(), PeerError>| {
        let e = r.unwrap_err();
        assert!(matches!(e, PeerError::Unavailable { .. }), "{e}");
    };
    unavailable(peer.list_fragments().map(drop));
    unavailable(peer.has_fragment(&a).map(drop));
    unavailable(peer.get_fragment(&a).map(drop));
    unavailable(peer.list_meta(None).map(drop));
    unavailable(peer.stat().map(drop));
    unavailable(peer.put_fragment(&a, &bytes));
    unavailable(peer.put_meta(&MetaKey::Container(ContainerId::random()), b"x"));
    unavailable(peer.delete_fragment(&a));
    // Nothing was written into the bare mount point.
    assert!(files_under(&root).is_empty());
    assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
}

#[test]
fn stale_tmp_files_are_never_fragments_and_are_cleaned_on_open() {
    let (dir, peer) = new_peer();
    let root = dir.path().join("peer");
    let (a, bytes) = fragment(1, 100);
    // What a process killed mid-write leaves: a partial file in tmp/, named
    // anything (here even like a fragment).
    let fresh = root.join("tmp").join(a.to_hex());
    let stale = root.join("tmp").join("0123.tmp");
    fs::write(&fresh, &bytes[..50]).unwrap();
    fs::write(&stale, b"partial").unwrap();
    let old = SystemTime::now() - Duration::from_secs(2 * 3600);
    fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(old)
        .unwrap();

    assert!(peer.list_fragments().unwrap().is_empty());
    assert!(!peer.has_fragment(&a).unwrap());
    assert_eq!(peer.stat().unwrap().fragments, 0);

    let peer = FolderPeer::open("usb-1", &root).unwrap();
    assert!(!stale.exists(), "stale tmp file should be cleaned");
    assert!(
        fresh.exists(),
        "a recent tmp file may be a write in progress"
    );
    assert!(peer.list_fragments().unwrap().is_empty());

    // Writes leave nothing behind in tmp/.
    fs::remove_file(&fresh).unwrap();
    peer.put_fragment(&a, &bytes).unwrap();
    let key = MetaKey::Container(ContainerId::random());
    peer.put_meta(&key, &signed(&key, 1, b"m")).unwrap();
    assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
}

#[test]
fn sweep_tmp_removes_only_files_older_than_the_age_given() {
    let (dir, peer) = new_peer();
    let root = dir.path().join("peer");
    let old = root.join("tmp").join("old.tmp");
    let new = root.join("tmp").join("new.tmp");
    fs::write(&old, vec![1u8; 700]).unwrap();
    fs::write(&new, vec![2u8; 300]).unwrap();
    let two_minutes_ago = SystemTime::now() - Duration::from_secs(120);
    fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(two_minutes_ago)
        .unwrap();
    let minute = Duration::from_secs(60);
    let now = SystemTime::now();
    assert_eq!(peer.stale_tmp(minute, now), vec![(old.clone(), 700)]);
    assert!(old.exists(), "counting removes nothing");
    assert_eq!(peer.sweep_tmp(minute, now).unwrap(), (1, 700));
    assert!(!old.exists());
    assert!(new.exists(), "a recent file may be a write in progress");
    assert_eq!(peer.sweep_tmp(minute, now).unwrap(), (0, 0));
}

#[test]
fn stray_files_under_fragments_are_not_listed() {
    let (dir, peer) = new_peer();
    let frags = dir.path().join("peer/fragments");
    let (a, _) = fragment(1, 10);
    let hex = a.to_hex();
    // Wrong shard, bad names.
    let wrong = if &hex[..2] == "00" { "01" } else { "00" };
    fs::create_dir_all(frags.join(wrong)).unwrap();
    fs::write(frags.join(wrong).join(&hex), b"x").unwrap();
    fs::write(frags.join("notes.txt"), b"x").unwrap();
    fs::create_dir_all(frags.join(&hex[..2])).unwrap();
    fs::write(frags.join(&hex[..2]).join("junk"), b"x").unwrap();
    assert!(peer.list_fragments().unwrap().is_empty());
    assert_eq!(peer.stat().unwrap().fragments, 0);
    // Something that is not a file where the fragment would be.
    let (b, _) = fragment(2, 10);
    let hex = b.to_hex();
    fs::create_dir_all(frags.join(&hex[..2]).join(&hex)).unwrap();
    assert!(!peer.has_fragment(&b).unwrap());
    assert!(peer.list_fragments().unwrap().is_empty());
}

/// Makes a directory unwritable even for root by setting the immutable
/// inode flag; cleared on drop so the temp dir can be removed.
struct Immutable(std::path::PathBuf);

impl Immutable {
    fn set(path: &Path) -> std::io::Result<Immutable> {
        use rustix::fs::{ioctl_getflags, ioctl_setflags, IFlags};
        let dir = fs::File::open(path)?;
        let flags = ioctl_getflags(&dir)?;
        ioctl_setflags(&dir, flags | IFlags::IMMUTABLE)?;
        Ok(Immutable(path.to_owned()))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        use rustix::fs::{ioctl_getflags, ioctl_setflags, IFlags};
        if let Ok(dir) = fs::File::open(&self.0) {
            if let Ok(flags) = ioctl_getflags(&dir) {
                let _ = ioctl_setflags(&dir, flags - IFlags::IMMUTABLE);
            }
        }
    }
}

fn writable(dir: &Path) -> bool {
    let probe = dir.join("probe");
    let ok = fs::write(&probe, b"x").is_ok();
    let _ = fs::remove_file(&probe);
    ok
}

#[test]
fn read_only_fragments_dir_is_read_only() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, peer) = new_peer();
    let (a, a_bytes) = fragment(1, 100);
    peer.put_fragment(&a, &a_bytes).unwrap();
    let frags = dir.path().join("peer/fragments");
    fs::set_permissions(&frags, fs::Permissions::from_mode(0o555)).unwrap();
    // Root ignores permission bits; fall back to the immutable flag, which
    // binds root too.
    let _guard = if writable(&frags) {
        match Immutable::set(&frags) {
            Ok(g) if !writable(&frags) => Some(g),
            other => {
                drop(other);
                fs::set_permissions(&frags, fs::Permissions::from_mode(0o755)).unwrap();
                println!("note: skipping read-only test: cannot make a directory read-only here");
                return;
            }
        }
    } else {
        None
    };

    // A fragment whose shard dir does not exist yet, so the write needs
    // `fragments/` itself.
    let (b, b_bytes) = (2..)
        .map(|seed| fragment(seed, 100))
        .find(|(id, _)| id.to_hex()[..2] != a.to_hex()[..2])
        .unwrap();
    let err = peer.put_fragment(&b, &b_bytes).unwrap_err();
    assert!(matches!(err, PeerError::ReadOnly { .. }), "{err}");
    assert!(err.is_retryable_elsewhere());
    // Reads still work, and the failed write left nothing in tmp/.
    assert_eq!(peer.get_fragment(&a).unwrap(), a_bytes);
    assert_eq!(peer.list_fragments().unwrap(), vec![a]);
    assert_eq!(
        fs::read_dir(dir.path().join("peer/tmp")).unwrap().count(),
        0
    );

    drop(_guard);
    fs::set_permissions(&frags, fs::Permissions::from_mode(0o755)).unwrap();
    peer.put_fragment(&b, &b_bytes).unwrap();
}

// ---------------------------------------------------------------------------
// Metadata a stolen key cannot wipe (issue 8, finding 1)
// ---------------------------------------------------------------------------

/// What ransomware holding the peer's credentials tried against a node:
/// overwrite every metadata object with one byte, roll the container
/// manifest back, sign its own copies, file objects under other keys. Every
/// attempt is refused and the owner's objects stay as they were.
#[test]
fn a_hand_over_lets_the_new_identity_replace_the_old() {
    let (_dir, peer) = new_peer();
    contract::a_hand_over_lets_the_new_identity_replace_the_old(&peer);
}

#[test]
fn stolen_key_cannot_overwrite_or_roll_back_metadata() {
    let (_dir, peer) = new_peer();
    contract::stolen_key_cannot_overwrite_or_roll_back_metadata(&peer);
}

#[test]
fn deleted_and_replaced_metadata_stays_in_the_trash_for_the_grace_period() {
    let (dir, peer) = new_peer();
    contract::deleted_and_replaced_metadata_is_in_the_trash(&peer);

    let root = dir.path().join("peer");
    let now = SystemTime::now();
    assert_eq!(
        peer.purge_expired(Duration::from_secs(3600), now).unwrap(),
        0
    );
    assert_eq!(files_under(&root.join("trash")).len(), 2);
    assert_eq!(
        peer.purge_expired(Duration::from_secs(3600), now + Duration::from_secs(7200))
            .unwrap(),
        2
    );
    assert!(files_under(&root.join("trash")).is_empty());
    assert!(peer.list_deleted_meta(None).unwrap().is_empty());
}

#[test]
fn a_damaged_copy_on_disk_is_replaced() {
    let (dir, peer) = new_peer();
    let meta = dir.path().join("peer/meta");
    let damage = |key: &MetaKey, bytes: &[u8]| {
        let MetaKey::IndexSegment(c, g) = key else {
            unreachable!("the contract damages an index segment")
        };
        let path = meta.join(c.to_hex()).join("index").join(g.to_hex());
        fs::write(path, bytes).unwrap();
    };
    contract::a_damaged_meta_copy_is_replaced(&peer, &damage);
}

/// The process umask, from /proc.
fn umask() -> u32 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).unwrap()
}

#[test]
fn peer_folders_are_private_whatever_the_umask() {
    use std::os::unix::fs::MetadataExt;
    // Under a umask that lets group and others read, default modes would be
    // 0644/0755: the test can only fail if the code forgets to restrict.
    assert_eq!(
        umask() & 0o044,
        0,
        "run the tests under umask 022 or looser"
    );
    let (dir, peer) = new_peer();
    let (a, bytes) = fragment(3, 100);
    peer.put_fragment(&a, &bytes).unwrap();
    let key = MetaKey::Container(ContainerId::random());
    peer.put_meta(&key, &signed(&key, 1, b"m")).unwrap();
    peer.delete_fragment(&a).unwrap();
    let root = dir.path().join("peer");
    let mut stack = vec![root.clone()];
    let mut seen = 0;
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            let want = if m.is_dir() { 0o700 } else { 0o600 };
            assert_eq!(m.mode() & 0o777, want, "{}", e.path().display());
            if m.is_dir() {
                stack.push(e.path());
            }
            seen += 1;
        }
    }
    assert!(seen >= 8, "only {seen} entries");
    assert_eq!(fs::metadata(&root).unwrap().mode() & 0o777, 0o700);
}
