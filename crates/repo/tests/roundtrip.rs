//! Backup → restore in one process, over peers that live in memory and
//! fail on demand (`trove_peer::testing`, attached with
//! `Peers::attach`): the whole data path, fast, with faults no disk or
//! network would produce on cue.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use rand::{Rng, RngCore, SeedableRng};
use trove_core::keys::MasterSecret;
use trove_core::manifest::Redundancy;
use trove_peer::testing::{self, FailingPeer, LyingPeer, MemoryPeer, Op};
use trove_peer::Peer;
use trove_repo::{backup, restore, BackupOptions, Home, KdfParams, Owner, Quiet, RestoreOptions};

const FAST_KDF: KdfParams = KdfParams {
    m_kib: 64,
    t: 1,
    p: 1,
};

/// A home whose peers are `peers` (attached as `m0`, `m1`, ...), each its
/// own site, and a container `c` over a generated tree of `files` files.
fn world(
    tmp: &Path,
    peers: Vec<Arc<dyn Peer>>,
    redundancy: Redundancy,
    files: usize,
) -> (Home, Owner) {
    let (home, owner) = home_with(tmp, peers);
    let src = tmp.join("src");
    let mut rng = rand::rngs::StdRng::seed_from_u64(files as u64);
    for i in 0..files {
        let dir = src.join(format!("d{}", i % 4));
        std::fs::create_dir_all(&dir).unwrap();
        let mut bytes = vec![0; rng.gen_range(0..400_000)];
        rng.fill_bytes(&mut bytes);
        let f = dir.join(format!("f{i}"));
        std::fs::write(&f, bytes).unwrap();
        std::fs::set_permissions(
            &f,
            std::fs::Permissions::from_mode(0o600 + (i as u32 % 3) * 0o40),
        )
        .unwrap();
    }
    std::os::unix::fs::symlink("d0/f0", src.join("link")).unwrap();
    home.containers()
        .create(&owner, "c", &[src], Some(redundancy))
        .unwrap();
    (home, owner)
}

fn memory_peers(n: usize) -> Vec<Arc<MemoryPeer>> {
    (0..n)
        .map(|i| Arc::new(MemoryPeer::new(&format!("m{i}"))))
        .collect()
}

/// A new home in `tmp` whose peers are `peers` (attached as `m0`, `m1`,
/// ...), each its own site.
fn home_with(tmp: &Path, peers: Vec<Arc<dyn Peer>>) -> (Home, Owner) {
    let (home, owner) = Home::init(
        &tmp.join("home"),
        MasterSecret::generate(),
        b"pass",
        FAST_KDF,
    )
    .unwrap();
    for (i, p) in peers.into_iter().enumerate() {
        let labels = BTreeMap::from([("site".to_owned(), format!("s{i}"))]);
        home.peers().attach(&format!("m{i}"), p, labels).unwrap();
    }
    (home, owner)
}

/// [`home_with`] the peers `mem`.
fn home_over(tmp: &Path, mem: &[Arc<MemoryPeer>]) -> (Home, Owner) {
    home_with(
        tmp,
        mem.iter().map(|p| p.clone() as Arc<dyn Peer>).collect(),
    )
}

/// Every file and link under `a` is under `b` with the same bytes, mode and target.
fn assert_same_tree(a: &Path, b: &Path) {
    for e in std::fs::read_dir(a).unwrap() {
        let e = e.unwrap();
        let (pa, pb) = (e.path(), b.join(e.file_name()));
        let (ma, mb) = (
            std::fs::symlink_metadata(&pa).unwrap(),
            std::fs::symlink_metadata(&pb).unwrap_or_else(|_| panic!("{} missing", pb.display())),
        );
        if ma.is_dir() {
            assert_same_tree(&pa, &pb);
        } else if ma.file_type().is_symlink() {
            assert_eq!(
                std::fs::read_link(&pa).unwrap(),
                std::fs::read_link(&pb).unwrap()
            );
        } else {
            assert_eq!(
                std::fs::read(&pa).unwrap(),
                std::fs::read(&pb).unwrap(),
                "{}",
                pb.display()
            );
            assert_eq!(
                ma.permissions().mode(),
                mb.permissions().mode(),
                "{}",
                pb.display()
            );
        }
    }
}

/// Add `bytes` at the end of the file at `path`.
fn append(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    std::io::Write::write_all(&mut f, bytes).unwrap();
}

fn restore_all(home: &Home, owner: &Owner, tmp: &Path) -> trove_repo::RestoreReport {
    let target = tmp.join("restored");
    let _ = std::fs::remove_dir_all(&target);
    restore(
        home,
        owner,
        "c:latest",
        &RestoreOptions::into(target),
        &Quiet,
    )
    .unwrap()
}

#[test]
fn backup_and_restore_round_trip_over_memory_peers() {
    let tmp = tempfile::tempdir().unwrap();
    let mem = memory_peers(6);
    let peers = mem.iter().map(|p| p.clone() as Arc<dyn Peer>).collect();
    let (home, owner) = world(tmp.path(), peers, Redundancy { k: 4, m: 2 }, 40);
    let b = backup(&home, &owner, "c", &BackupOptions::default(), &Quiet).unwrap();
    assert_eq!(b.snapshot.summary.files_new, 40);
    // One fragment of each pack on every peer, and the metadata on all.
    let packs = b.snapshot.summary.packs_new;
    for p in &mem {
        assert_eq!(p.stat().unwrap().fragments, packs, "{}", p.name());
        assert!(!p.list_meta(None).unwrap().is_empty());
    }
    let r = restore_all(&home, &owner, tmp.path());
    assert!(r.lost.is_empty() && r.problems.is_empty(), "{r:?}");
    assert_same_tree(&tmp.path().join("src"), &tmp.path().join("restored/src"));

    // An unchanged re-run stores nothing new.
    let again = backup(&home, &owner, "c", &BackupOptions::default(), &Quiet).unwrap();
    assert_eq!(again.snapshot.summary.files_unchanged, 40);
    assert_eq!(
        (
            again.snapshot.summary.blobs_new,
            again.snapshot.summary.packs_new
        ),
        (0, 0)
    );
}

/// A full peer during the backup; at restore one peer unreachable and one
/// serving damaged bytes: every byte still comes back, and the report says
/// what was wrong where, by kind.
#[test]
fn faults_on_cue_are_routed_around_and_named() {
    let tmp = tempfile::tempdir().unwrap();
    // The full peer claims by far the most free space, so placement always
    // tries it first (a full disk that says it has room is the case to meet).
    let mem: Vec<Arc<MemoryPeer>> = (0..7)
        .map(|i| {
            let capacity = if i == 0 { 1 << 40 } else { 1 << 30 };
            Arc::new(MemoryPeer::with_capacity(&format!("m{i}"), capacity))
        })
        .collect();
    let full = Arc::new(FailingPeer::new(mem[0].clone()).failing(Op::PutFragment, testing::full));
    let dead = Arc::new(FailingPeer::new(mem[1].clone()));
    let liar = Arc::new(LyingPeer::new(mem[2].clone()).corrupting_reads());
    let mut peers: Vec<Arc<dyn Peer>> = vec![full.clone(), dead.clone(), liar.clone()];
    peers.extend(mem[3..].iter().map(|p| p.clone() as Arc<dyn Peer>));
    let (home, owner) = world(tmp.path(), peers, Redundancy { k: 4, m: 2 }, 30);

    let b = backup(&home, &owner, "c", &BackupOptions::default(), &Quiet).unwrap();
    assert!(full.attempts(Op::PutFragment) >= 1);
    assert_eq!(
        mem[0].stat().unwrap().fragments,
        0,
        "the full peer holds nothing"
    );
    for p in &mem[1..] {
        assert_eq!(p.stat().unwrap().fragments, b.snapshot.summary.packs_new);
    }

    // Restore with m1 gone and m2 lying about every byte it serves: the
    // four honest peers are exactly the k = 4 a pack needs.
    dead.fail(Op::GetFragment, testing::unavailable);
    let r = restore_all(&home, &owner, tmp.path());
    assert!(r.lost.is_empty(), "{:?}", r.lost);
    assert_same_tree(&tmp.path().join("src"), &tmp.path().join("restored/src"));
    // Restore reads data shards first, so which faults it meets depends on
    // placement; check reads every fragment and names both, by kind.
    let c = trove_repo::check(&home, &owner, Some("c"), &Default::default(), &Quiet).unwrap();
    let named = |peer: &str, kind: &str| {
        c.problems.iter().any(|p| {
            matches!(p, trove_repo::CheckProblem::Fragment(f) if f.peer == peer && f.fault.kind() == kind)
        })
    };
    assert!(named("m1", "unavailable"), "{:?}", c.problems);
    assert!(named("m2", "corrupt"), "{:?}", c.problems);
    assert!(liar.lies_told() >= 1);
    assert!(
        r.problems.iter().all(|p| p.peer == "m1" || p.peer == "m2"),
        "{:?}",
        r.problems
    );

    // One more fault than the parity covers: the files of that pack are
    // named as lost, nothing is written wrong.
    for id in mem[3].list_fragments().unwrap() {
        mem[3].damage_fragment(&id, b"bit rot");
    }
    let r = restore_all(&home, &owner, tmp.path());
    assert!(!r.lost.is_empty());
    assert!(
        r.lost.iter().all(|l| l.error.contains("cannot be rebuilt")),
        "{:?}",
        r.lost
    );
}

/// Issue 10, crash window 6a: a snapshot counts as committed only once
/// enough peers hold its manifest and segment to survive `m` losses. Until
/// then it stays pending; the next command that opens the container
/// finishes it.
#[test]
fn a_snapshot_is_committed_only_once_enough_peers_hold_it() {
    let tmp = tempfile::tempdir().unwrap();
    let mem = memory_peers(3);
    let gated: Vec<Arc<FailingPeer>> = mem
        .iter()
        .map(|p| Arc::new(FailingPeer::new(p.clone())))
        .collect();
    let peers = gated.iter().map(|p| p.clone() as Arc<dyn Peer>).collect();
    let (home, owner) = world(tmp.path(), peers, Redundancy { k: 2, m: 1 }, 10);
    // Two of three peers refuse metadata: one peer is not enough for m = 1.
    for g in &gated[1..] {
        g.fail(Op::PutMeta, testing::unavailable);
    }
    let err = backup(&home, &owner, "c", &BackupOptions::default(), &Quiet).unwrap_err();
    assert!(
        matches!(
            err,
            trove_repo::RepoError::NotReplicated {
                reached: 1,
                needed: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(home
        .containers()
        .snapshot_rows(Some("c"))
        .unwrap()
        .is_empty());
    // A prune now would see packs no committed snapshot names: it refuses.
    let err = trove_repo::prune(
        &home,
        &owner,
        Some("c"),
        &trove_repo::PruneOptions::default(),
        &Quiet,
    )
    .unwrap_err();
    assert!(
        matches!(err, trove_repo::RepoError::CommitPending { .. }),
        "{err}"
    );

    // The peers are back: the next command (here check) finishes the commit.
    for g in &gated {
        g.heal_all();
    }
    let r = trove_repo::check(&home, &owner, Some("c"), &Default::default(), &Quiet).unwrap();
    let snaps = home.containers().snapshot_rows(Some("c")).unwrap();
    assert_eq!(snaps.len(), 1, "{:?}", r.problems);
    for p in &mem {
        assert!(p
            .list_meta(None)
            .unwrap()
            .iter()
            .any(|k| matches!(k, trove_peer::MetaKey::Snapshot(_, s) if *s == snaps[0].id)));
    }
    let restored = restore_all(&home, &owner, tmp.path());
    assert!(restored.lost.is_empty());
    assert_same_tree(&tmp.path().join("src"), &tmp.path().join("restored/src"));
}

/// Issue 10, item 5: ransomware holding the transport key deletes every
/// snapshot manifest and fragment on the peers (into their trash), and
/// the home is wiped. Recovered from the master secret, `sync` brings the
/// manifests back from the trash; `undelete` brings the fragments back;
/// the restore is exact.
#[test]
fn undelete_brings_back_what_a_thief_deleted_on_every_peer() {
    let tmp = tempfile::tempdir().unwrap();
    let mem = memory_peers(3);
    let peers = mem.iter().map(|p| p.clone() as Arc<dyn Peer>).collect();
    let (home, owner) = world(tmp.path(), peers, Redundancy { k: 2, m: 1 }, 12);
    let b = backup(&home, &owner, "c", &BackupOptions::default(), &Quiet).unwrap();
    drop(home);

    for p in &mem {
        for id in p.list_fragments().unwrap() {
            p.delete_fragment(&id).unwrap();
        }
        for key in p.list_meta(None).unwrap() {
            p.delete_meta(&key).unwrap();
        }
    }
    // A new machine, from the master secret and the same peers.
    let (home, owner) = Home::init(
        &tmp.path().join("home2"),
        owner.master.clone(),
        b"p",
        FAST_KDF,
    )
    .unwrap();
    for (i, p) in mem.iter().enumerate() {
        home.peers()
            .attach(&format!("m{i}"), p.clone(), BTreeMap::new())
            .unwrap();
    }
    let s = trove_repo::sync(&home, &owner, &Quiet).unwrap();
    assert_eq!(s.snapshots, 1, "{s:?}");
    assert!(!s.from_trash.is_empty());
    // Every fragment is still in a trash: nothing restores yet.
    let r = restore_all(&home, &owner, tmp.path());
    assert!(!r.lost.is_empty(), "the thief's deletions should show");

    let short = b.snapshot.id.short();
    let u = trove_repo::undelete(&home, &owner, "c", &short, &Quiet).unwrap();
    assert_eq!(
        u.fragments_undeleted as usize,
        3 * b.snapshot.summary.packs_new as usize
    );
    assert!(u.missing.is_empty(), "{:?}", u.missing);
    let r = restore_all(&home, &owner, tmp.path());
    assert!(r.lost.is_empty(), "{:?}", r.lost);
    assert_same_tree(&tmp.path().join("src"), &tmp.path().join("restored/src"));
}

/// The file cache is kept per folder: a change, a new file, a removed file
/// and a new folder are each seen, and the next run finds all unchanged.
#[test]
fn the_file_cache_sees_changes_in_any_folder_and_forgets_removed_files() {
    let tmp = tempfile::tempdir().unwrap();
    let mem = memory_peers(3);
    let peers = mem.iter().map(|p| p.clone() as Arc<dyn Peer>).collect();
    let (home, owner) = world(tmp.path(), peers, Redundancy { k: 2, m: 1 }, 40);
    let opts = BackupOptions::default();
    let summary = |home: &Home| {
        backup(home, &owner, "c", &opts, &Quiet)
            .unwrap()
            .snapshot
            .summary
    };
    assert_eq!(summary(&home).files_new, 40);
    let src = tmp.path().join("src");
    append(&src.join("d1/f1"), b"one more line");
    std::fs::remove_file(src.join("d2/f2")).unwrap();
    std::fs::write(src.join("d3/new"), b"a new file").unwrap();
    std::fs::create_dir(src.join("d4")).unwrap();
    std::fs::write(src.join("d4/x"), b"in a new folder").unwrap();
    let s = summary(&home);
    assert_eq!(
        (s.files_changed, s.files_new, s.files_unchanged),
        (1, 2, 38),
        "{s:?}"
    );
    let r = restore_all(&home, &owner, tmp.path());
    assert!(r.lost.is_empty() && r.problems.is_empty(), "{r:?}");
    assert_same_tree(&src, &tmp.path().join("restored/src"));
    assert!(!tmp.path().join("restored/src/d2/f2").exists());

    let s = summary(&home);
    assert_eq!(
        (s.files_changed, s.files_new, s.files_unchanged),
        (0, 0, 41)
    );
    // A folder removed whole: its files are gone from the next snapshot,
    // and brought back they are new again.
    std::fs::rename(src.join("d4"), tmp.path().join("d4-away")).unwrap();
    assert_eq!(summary(&home).files_unchanged, 40);
    std::fs::rename(tmp.path().join("d4-away"), src.join("d4")).unwrap();
    let s = summary(&home);
    assert_eq!((s.files_new, s.files_unchanged), (1, 40), "{s:?}");
}

/// Sources that are files, in two folders, beside a folder: each is
/// restored under its name and cached by it. Files above the small-file
/// size (read through the shared windows) and above one read window
/// (streamed) come back byte for byte, and so do copies whose chunks are
/// written to several files from one blob.
#[test]
fn sources_that_are_files_and_large_files_round_trip_and_are_cached() {
    let tmp = tempfile::tempdir().unwrap();
    let mem = memory_peers(3);
    let (home, owner) = home_over(tmp.path(), &mem);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut random = |n: usize| {
        let mut b = vec![0; n];
        rng.fill_bytes(&mut b);
        b
    };
    let (a, b, dir) = (
        tmp.path().join("one/notes.txt"),
        tmp.path().join("two/photo.raw"),
        tmp.path().join("folder"),
    );
    for p in [&a, &b] {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(&a, b"a source that is a file").unwrap();
    std::fs::write(&b, random(3 << 20)).unwrap();
    let (big, small) = (random(19 << 20), random(1000));
    for (name, bytes) in [
        ("big", &big),
        ("big-copy", &big),
        ("small", &small),
        ("small-copy", &small),
    ] {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    home.containers()
        .create(
            &owner,
            "c",
            &[a.clone(), b.clone(), dir.clone()],
            Some(Redundancy { k: 2, m: 1 }),
        )
        .unwrap();
    let opts = BackupOptions::default();
    let s = backup(&home, &owner, "c", &opts, &Quiet)
        .unwrap()
        .snapshot
        .summary;
    assert_eq!((s.files_new, s.files_unchanged), (6, 0), "{s:?}");
    let r = restore_all(&home, &owner, tmp.path());
    assert!(r.lost.is_empty() && r.problems.is_empty(), "{r:?}");
    let restored = tmp.path().join("restored");
    assert_eq!(
        std::fs::read(restored.join("notes.txt")).unwrap(),
        std::fs::read(&a).unwrap()
    );
    assert_eq!(
        std::fs::read(restored.join("photo.raw")).unwrap(),
        std::fs::read(&b).unwrap()
    );
    assert_same_tree(&dir, &restored.join("folder"));
    // Unchanged, all six come from the cache; a changed source file is read.
    let s = backup(&home, &owner, "c", &opts, &Quiet)
        .unwrap()
        .snapshot
        .summary;
    assert_eq!((s.files_unchanged, s.bytes_read), (6, 0), "{s:?}");
    std::fs::write(&a, b"changed, and longer than it was").unwrap();
    let s = backup(&home, &owner, "c", &opts, &Quiet)
        .unwrap()
        .snapshot
        .summary;
    assert_eq!((s.files_changed, s.files_unchanged), (1, 5), "{s:?}");
}

/// A backup guided by what a watcher saw walks only the folders it
/// touched, keeps the others' trees, and commits exactly the snapshot a
/// whole walk would; a guide that leaves a change out is trusted (so the
/// daemon must not lose events), and one for other sources is ignored.
#[test]
fn a_guided_backup_keeps_untouched_folders_and_equals_a_whole_walk() {
    let tmp = tempfile::tempdir().unwrap();
    let mem = memory_peers(3);
    let peers = mem.iter().map(|p| p.clone() as Arc<dyn Peer>).collect();
    let (home, owner) = world(tmp.path(), peers, Redundancy { k: 2, m: 1 }, 40);
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("d0/deep/er")).unwrap();
    std::fs::write(src.join("d0/deep/er/low"), b"far down").unwrap();
    let whole = |home: &Home| backup(home, &owner, "c", &BackupOptions::default(), &Quiet).unwrap();
    let guided = |home: &Home, changes: trove_repo::Changes| {
        let opts = BackupOptions {
            changes: Some(Arc::new(changes)),
            ..BackupOptions::default()
        };
        backup(home, &owner, "c", &opts, &Quiet).unwrap()
    };
    let first = whole(&home);
    assert_eq!(first.walk, None);

    // Nothing changed: every source is kept as it was, nothing walked.
    let same = guided(&home, trove_repo::Changes::watching(vec![src.clone()]));
    assert_eq!(same.snapshot.root, first.snapshot.root);
    assert_eq!(same.walk.map(|w| (w.walked, w.kept)), Some((0, 1)));
    let (a, b) = (&first.snapshot.summary, &same.snapshot.summary);
    assert_eq!(
        (b.files_unchanged, b.bytes_total, b.dirs),
        (a.files_new, a.bytes_total, a.dirs)
    );

    // A change in d1, a file removed from d2, one added deep in d0.
    append(&src.join("d1/f1"), b"one more line");
    std::fs::remove_file(src.join("d2/f2")).unwrap();
    std::fs::write(src.join("d0/deep/er/new"), b"a new file").unwrap();

    // A guide that misses them is believed: the old trees stand.
    let blind = guided(&home, trove_repo::Changes::watching(vec![src.clone()]));
    assert_eq!(blind.snapshot.root, first.snapshot.root);
    // A guide for other sources is not used.
    let other = guided(
        &home,
        trove_repo::Changes::watching(vec![tmp.path().into()]),
    );
    assert_eq!(other.walk, None);
    assert_ne!(other.snapshot.root, first.snapshot.root);

    // The watcher's paths: the walk enters src, d0, d0/deep, d0/deep/er,
    // d1 and d2, and keeps d3.
    let mut seen = trove_repo::Changes::watching(vec![src.clone()]);
    for p in ["d1/f1", "d2/f2", "d0/deep/er/new"] {
        seen.add(&src.join(p));
    }
    let g = guided(&home, seen);
    assert_eq!(g.walk.map(|w| (w.walked, w.kept)), Some((6, 1)));
    // The same snapshot a whole walk makes: same trees, same summary.
    let w = whole(&home);
    assert_eq!(g.snapshot.root, w.snapshot.root);
    assert_eq!(g.snapshot.root, other.snapshot.root);
    let (gs, ws) = (&g.snapshot.summary, &w.snapshot.summary);
    assert_eq!(
        (
            gs.files_unchanged + gs.files_changed + gs.files_new,
            gs.bytes_total,
            gs.dirs
        ),
        (ws.files_unchanged, ws.bytes_total, ws.dirs)
    );
    let r = restore_all(&home, &owner, tmp.path());
    assert!(r.lost.is_empty() && r.problems.is_empty(), "{r:?}");
    assert_same_tree(&src, &tmp.path().join("restored/src"));

    // A folder created, with files: walked whole.
    std::fs::create_dir_all(src.join("d3/made/sub")).unwrap();
    std::fs::write(src.join("d3/made/sub/x"), b"in a new folder").unwrap();
    let mut seen = trove_repo::Changes::watching(vec![src.clone()]);
    seen.add(&src.join("d3/made"));
    let g = guided(&home, seen);
    assert_eq!(g.snapshot.summary.files_new, 1);
    assert_eq!(g.snapshot.root, whole(&home).snapshot.root);

    // Every older snapshot forgotten and their data pruned: the kept trees
    // may name blobs that are gone, so none is taken until walked again.
    let mut rows = home.containers().snapshot_rows(None).unwrap();
    rows.sort_by_key(|r| r.time_unix_ns);
    rows.pop();
    let older: Vec<String> = rows.iter().map(|r| r.id.to_hex()).collect();
    let f = trove_repo::forget(
        &home,
        &owner,
        "c",
        &trove_repo::ForgetOptions {
            snapshots: older,
            prune: true,
            max_unused: trove_repo::MaxUnused::Percent(0.0),
            ..Default::default()
        },
        &Quiet,
    )
    .unwrap();
    // Which blobs share a pack depends on the order the workers finish in,
    // so a pack wholly unused is not certain; with `max_unused` at 0% a pack
    // partly unused is repacked instead.
    let pruned = f.prune.unwrap();
    assert!(
        pruned.packs_deleted + pruned.packs_repacked > 0,
        "{pruned:?}"
    );
    assert!(pruned.blobs_unused > 0, "{pruned:?}");
    let after = guided(&home, trove_repo::Changes::watching(vec![src.clone()]));
    assert_eq!(after.walk.map(|w| w.kept), Some(0));
    assert_eq!(after.snapshot.root, g.snapshot.root);
    // Walked again, they are kept again.
    let again = guided(&home, trove_repo::Changes::watching(vec![src.clone()]));
    assert_eq!(again.walk.map(|w| (w.walked, w.kept)), Some((0, 1)));
    let r = restore_all(&home, &owner, tmp.path());
    assert!(r.lost.is_empty() && r.problems.is_empty(), "{r:?}");
    assert_same_tree(&src, &tmp.path().join("restored/src"));
}

/// `trove backup`'s path: the walk goes on while the pipeline reads the
/// files it has handed over, more files than its queue holds, so that
/// files come both early and after the walk in slot order. Every file
/// restores to its own bytes, and the file cache the results made holds:
/// a re-run reads nothing.
#[test]
fn a_walk_under_way_hands_over_files_that_restore_to_their_own_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let mem = memory_peers(3);
    let (home, owner) = home_over(tmp.path(), &mem);
    let src = tmp.path().join("src");
    let files = 6_000u64;
    for i in 0..files {
        let dir = src.join(format!("d{}", i % 30));
        std::fs::create_dir_all(&dir).unwrap();
        // Each file names itself: one read under another's slot shows.
        std::fs::write(
            dir.join(format!("f{i}")),
            format!("file {i} ").repeat(1 + i as usize % 7),
        )
        .unwrap();
    }
    home.containers()
        .create(
            &owner,
            "c",
            std::slice::from_ref(&src),
            Some(Redundancy { k: 2, m: 1 }),
        )
        .unwrap();
    drop(owner);
    let opts = BackupOptions {
        profile: true,
        ..BackupOptions::default()
    };
    let (owner, b) = trove_repo::backup_unlocking(&home, b"pass", "c", &opts, &Quiet).unwrap();
    assert_eq!(b.snapshot.summary.files_new, files);
    // The queue starts empty and holds 4,096: at least that many went early.
    let early = b.profile.as_ref().unwrap().early_files;
    assert!((4_096..=files).contains(&early), "{early} early");
    let r = restore_all(&home, &owner, tmp.path());
    assert!(r.lost.is_empty() && r.problems.is_empty(), "{r:?}");
    assert_same_tree(&src, &tmp.path().join("restored/src"));

    let (_, again) = trove_repo::backup_unlocking(&home, b"pass", "c", &opts, &Quiet).unwrap();
    assert_eq!(again.snapshot.summary.files_unchanged, files);
    assert_eq!(again.snapshot.summary.blobs_new, 0);
    assert_eq!(again.profile.unwrap().early_files, 0);
}
