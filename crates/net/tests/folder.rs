//! Folder peers on real files in temporary directories.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use trove_core::{ContainerId, FragmentId, SegmentId, SnapshotId};
use trove_net::folder::MARKER_FILE;
use trove_net::{FolderPeer, MetaKey, Peer, PeerError};

fn fragment(seed: u8, len: usize) -> (FragmentId, Vec<u8>) {
    let bytes: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect();
    (FragmentId::of(&bytes), bytes)
}

fn new_peer() -> (tempfile::TempDir, FolderPeer) {
    let dir = tempfile::tempdir().unwrap();
    let peer = FolderPeer::create("usb-1", &dir.path().join("peer")).unwrap();
    (dir, peer)
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
    let (a, a_bytes) = fragment(1, 10_000);
    let (b, b_bytes) = fragment(2, 3);
    assert!(!peer.has_fragment(&a).unwrap());
    assert!(peer.list_fragments().unwrap().is_empty());

    peer.put_fragment(&a, &a_bytes).unwrap();
    peer.put_fragment(&b, &b_bytes).unwrap();
    // Idempotent.
    peer.put_fragment(&a, &a_bytes).unwrap();

    assert_eq!(peer.get_fragment(&a).unwrap(), a_bytes);
    assert_eq!(peer.get_fragment(&b).unwrap(), b_bytes);
    assert!(peer.has_fragment(&a).unwrap());
    let mut want = vec![a, b];
    want.sort();
    assert_eq!(peer.list_fragments().unwrap(), want);

    assert_eq!(
        peer.get_fragment_range(&a, 100, 50).unwrap(),
        &a_bytes[100..150]
    );
    assert_eq!(
        peer.get_fragment_range(&a, 9_990, 50).unwrap(),
        &a_bytes[9_990..]
    );
    assert!(peer.get_fragment_range(&a, 20_000, 5).unwrap().is_empty());
    // A huge len must not allocate a huge buffer.
    assert_eq!(peer.get_fragment_range(&b, 0, u64::MAX).unwrap(), b_bytes);

    let (c, _) = fragment(3, 10);
    assert!(matches!(
        peer.get_fragment(&c),
        Err(PeerError::NotFound { .. })
    ));
    assert!(matches!(
        peer.get_fragment_range(&c, 0, 1),
        Err(PeerError::NotFound { .. })
    ));

    let stat = peer.stat().unwrap();
    assert_eq!(stat.fragments, 2);
    assert_eq!(stat.fragment_bytes, 10_003);
    assert!(stat.free_bytes.is_some_and(|f| f > 0));
}

#[test]
fn layout_is_sharded_and_holds_no_plaintext() {
    let (dir, peer) = new_peer();
    let (a, a_bytes) = fragment(1, 100);
    peer.put_fragment(&a, &a_bytes).unwrap();
    let c = ContainerId::random();
    let s = SnapshotId::random();
    peer.put_meta(&MetaKey::Snapshot(c, s), b"sealed").unwrap();
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
    let (a, _) = fragment(1, 100);
    let (_, other) = fragment(2, 100);
    let err = peer.put_fragment(&a, &other).unwrap_err();
    assert!(
        matches!(err, PeerError::HashMismatch { id, .. } if id == a),
        "{err}"
    );
    assert!(err.to_string().contains("usb-1"));
    assert!(!peer.has_fragment(&a).unwrap());
    assert!(peer.list_fragments().unwrap().is_empty());
}

#[test]
fn put_replaces_a_damaged_copy() {
    let (dir, peer) = new_peer();
    let (a, bytes) = fragment(1, 1000);
    peer.put_fragment(&a, &bytes).unwrap();
    let hex = a.to_hex();
    let path = dir.path().join("peer/fragments").join(&hex[..2]).join(&hex);
    fs::write(&path, b"rot").unwrap();
    peer.put_fragment(&a, &bytes).unwrap();
    assert_eq!(fs::read(&path).unwrap(), bytes);
}

#[test]
fn truncated_fragment_is_returned_as_is() {
    let (dir, peer) = new_peer();
    let (a, bytes) = fragment(1, 1000);
    peer.put_fragment(&a, &bytes).unwrap();
    let hex = a.to_hex();
    let path = dir.path().join("peer/fragments").join(&hex[..2]).join(&hex);
    fs::write(&path, &bytes[..400]).unwrap();
    let got = peer.get_fragment(&a).unwrap();
    assert_eq!(got, &bytes[..400]);
    assert_ne!(FragmentId::of(&got), a, "the caller detects it");
    assert_eq!(
        peer.get_fragment_range(&a, 300, 200).unwrap(),
        &bytes[300..400]
    );
}

#[test]
fn delete_moves_to_trash_and_purge_respects_grace() {
    let (dir, peer) = new_peer();
    let (a, a_bytes) = fragment(1, 100);
    let (b, b_bytes) = fragment(2, 100);
    peer.put_fragment(&a, &a_bytes).unwrap();
    peer.put_fragment(&b, &b_bytes).unwrap();

    peer.delete_fragment(&a).unwrap();
    // Deleting again (an interrupted GC re-running) is fine.
    peer.delete_fragment(&a).unwrap();
    assert!(!peer.has_fragment(&a).unwrap());
    assert!(matches!(
        peer.get_fragment(&a),
        Err(PeerError::NotFound { .. })
    ));
    assert_eq!(peer.list_fragments().unwrap(), vec![b]);
    assert_eq!(peer.stat().unwrap().fragments, 1);

    let trash = files_under(&dir.path().join("peer/trash"));
    assert_eq!(trash.len(), 1);
    assert!(trash[0].ends_with(&a.to_hex()), "{trash:?}");

    let grace = Duration::from_secs(7 * 24 * 3600);
    let now = SystemTime::now();
    assert_eq!(peer.purge_expired(grace, now).unwrap(), 0);
    assert_eq!(files_under(&dir.path().join("peer/trash")).len(), 1);
    // Still recoverable within the grace period.
    assert!(peer.restore_deleted(&a).unwrap());
    assert_eq!(peer.get_fragment(&a).unwrap(), a_bytes);
    assert!(!peer.restore_deleted(&a).unwrap());

    peer.delete_fragment(&a).unwrap();
    assert_eq!(
        peer.purge_expired(grace, now + grace + Duration::from_secs(1))
            .unwrap(),
        1
    );
    assert!(files_under(&dir.path().join("peer/trash")).is_empty());
    assert!(!peer.restore_deleted(&a).unwrap());
    assert_eq!(peer.get_fragment(&b).unwrap(), b_bytes);
}

#[test]
fn meta_put_get_list_per_container() {
    let (_dir, peer) = new_peer();
    let c1 = ContainerId::random();
    let c2 = ContainerId::random();
    let s1 = SnapshotId::random();
    let s2 = SnapshotId::random();
    let g1 = SegmentId::random();
    let keys1 = [
        MetaKey::Container(c1),
        MetaKey::Snapshot(c1, s1),
        MetaKey::Snapshot(c1, s2),
        MetaKey::IndexSegment(c1, g1),
    ];
    for (i, k) in keys1.iter().enumerate() {
        peer.put_meta(k, &[i as u8; 10]).unwrap();
    }
    peer.put_meta(&MetaKey::Snapshot(c2, s1), b"c2").unwrap();

    for (i, k) in keys1.iter().enumerate() {
        assert_eq!(peer.get_meta(k).unwrap(), vec![i as u8; 10]);
    }
    // Atomic replace.
    peer.put_meta(&MetaKey::Container(c1), b"v2").unwrap();
    assert_eq!(peer.get_meta(&MetaKey::Container(c1)).unwrap(), b"v2");

    let mut want1 = keys1.to_vec();
    want1.sort();
    assert_eq!(peer.list_meta(Some(&c1)).unwrap(), want1);
    assert_eq!(
        peer.list_meta(Some(&c2)).unwrap(),
        vec![MetaKey::Snapshot(c2, s1)]
    );
    assert!(peer
        .list_meta(Some(&ContainerId::random()))
        .unwrap()
        .is_empty());
    let mut all = want1.clone();
    all.push(MetaKey::Snapshot(c2, s1));
    all.sort();
    assert_eq!(peer.list_meta(None).unwrap(), all);

    let err = peer.get_meta(&MetaKey::Container(c2)).unwrap_err();
    assert!(matches!(err, PeerError::NotFound { .. }), "{err}");
    // Metadata is not fragments.
    assert!(peer.list_fragments().unwrap().is_empty());
}

#[test]
fn reopen_persists() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peer");
    let (a, bytes) = fragment(7, 500);
    let c = ContainerId::random();
    {
        let peer = FolderPeer::create("p", &path).unwrap();
        peer.put_fragment(&a, &bytes).unwrap();
        peer.put_meta(&MetaKey::Container(c), b"manifest").unwrap();
    }
    let peer = FolderPeer::open("p", &path).unwrap();
    assert_eq!(peer.get_fragment(&a).unwrap(), bytes);
    assert_eq!(peer.get_meta(&MetaKey::Container(c)).unwrap(), b"manifest");
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
    peer.put_meta(&MetaKey::Container(ContainerId::random()), b"m")
        .unwrap();
    assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
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
