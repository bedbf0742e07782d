//! Forget and prune in one process, over peers that live in memory and fail
//! on demand (`trove_peer::testing`, attached with `Peers::attach`): what
//! only forgotten snapshots used is freed, a peer out of reach gets its
//! deletions later, a prune waits for a backup of the same process, and a
//! new machine's `sync` does not bring back what was forgotten or deleted.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{RngCore, SeedableRng};
use trove_core::keys::MasterSecret;
use trove_core::manifest::Redundancy;
use trove_core::FragmentId;
use trove_peer::testing::{self, FailingPeer, MemoryPeer, Op};
use trove_peer::{MetaKey, Peer};
use trove_repo::{
    backup, check, forget, prune, restore, sync, BackupOptions, CheckOptions, Event, ForgetOptions,
    Home, KdfParams, Owner, Progress, PruneOptions, Quiet, RestoreOptions,
};

const FAST_KDF: KdfParams = KdfParams {
    m_kib: 64,
    t: 1,
    p: 1,
};

fn home_with(
    tmp: &Path,
    dir: &str,
    master: MasterSecret,
    peers: &[Arc<dyn Peer>],
) -> (Home, Owner) {
    let (home, owner) = Home::init(&tmp.join(dir), master, b"pass", FAST_KDF).unwrap();
    for (i, p) in peers.iter().enumerate() {
        let labels = BTreeMap::from([("site".to_owned(), format!("s{i}"))]);
        home.peers()
            .attach(&format!("m{i}"), p.clone(), labels)
            .unwrap();
    }
    (home, owner)
}

/// A home with three memory peers and a container `c` (2+1) over `src/`,
/// filled by [`fill`] with seed 1.
fn three_peer_world(tmp: &Path, files: usize, len: usize) -> (Home, Owner, std::path::PathBuf) {
    let peers: Vec<Arc<dyn Peer>> = (0..3)
        .map(|i| Arc::new(MemoryPeer::new(&format!("m{i}"))) as Arc<dyn Peer>)
        .collect();
    let (home, owner) = home_with(tmp, "home", MasterSecret::generate(), &peers);
    let src = tmp.join("src");
    fill(&src, 1, files, len);
    home.containers()
        .create(
            &owner,
            "c",
            std::slice::from_ref(&src),
            Some(Redundancy { k: 2, m: 1 }),
        )
        .unwrap();
    (home, owner, src)
}

/// Write `files` files of random bytes named `f0..` under `src/`, from `seed`.
fn fill(src: &Path, seed: u64, files: usize, len: usize) {
    let _ = std::fs::remove_dir_all(src);
    std::fs::create_dir_all(src).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for i in 0..files {
        let mut b = vec![0; len];
        rng.fill_bytes(&mut b);
        std::fs::write(src.join(format!("f{i}")), b).unwrap();
    }
}

fn same_files(a: &Path, b: &Path) {
    let names = |p: &Path| -> BTreeSet<_> {
        std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect()
    };
    assert_eq!(names(a), names(b));
    for n in names(a) {
        assert_eq!(
            std::fs::read(a.join(&n)).unwrap(),
            std::fs::read(b.join(&n)).unwrap(),
            "{n:?}"
        );
    }
}

fn restore_into(home: &Home, owner: &Owner, spec: &str, target: &Path) {
    let _ = std::fs::remove_dir_all(target);
    let r = restore(
        home,
        owner,
        spec,
        &RestoreOptions::into(target.to_owned()),
        &Quiet,
    )
    .unwrap();
    assert!(r.lost.is_empty(), "{:?}", r.lost);
}

fn healthy(home: &Home, owner: &Owner) {
    let c = check(
        home,
        owner,
        None,
        &CheckOptions {
            read_data: true,
            audit: false,
            peer_lost_after: trove_repo::DEFAULT_PEER_LOST_AFTER,
        },
        &Quiet,
    )
    .unwrap();
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    assert!(c.blobs_verified > 0);
}

/// The fragment ids the index names on each peer.
fn indexed_fragments(home: &Home, owner: &Owner) -> BTreeMap<String, HashSet<FragmentId>> {
    let c = home.containers().open(owner, "c").unwrap();
    let names: BTreeMap<_, _> = home
        .peers()
        .records()
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.name))
        .collect();
    let mut out: BTreeMap<String, HashSet<FragmentId>> = BTreeMap::new();
    for p in home.containers().packs(&c.manifest.id).unwrap() {
        for f in p.fragments {
            out.entry(names[&f.peer].clone()).or_default().insert(f.id);
        }
    }
    out
}

#[test]
fn forget_and_prune_free_what_only_the_forgotten_used_and_an_unreachable_peer_deletes_later() {
    let tmp = tempfile::tempdir().unwrap();
    // Six peers for 4+2: each holds one fragment of every pack.
    let mem: Vec<Arc<MemoryPeer>> = (0..6)
        .map(|i| Arc::new(MemoryPeer::new(&format!("m{i}"))))
        .collect();
    let flaky = Arc::new(FailingPeer::new(mem[5].clone()));
    let mut peers: Vec<Arc<dyn Peer>> = mem[..5]
        .iter()
        .map(|p| p.clone() as Arc<dyn Peer>)
        .collect();
    peers.push(flaky.clone());
    let (home, owner) = home_with(tmp.path(), "home", MasterSecret::generate(), &peers);
    let src = tmp.path().join("src");
    fill(&src, 1, 12, 300_000);
    home.containers()
        .create(
            &owner,
            "c",
            std::slice::from_ref(&src),
            Some(Redundancy { k: 4, m: 2 }),
        )
        .unwrap();
    let opts = BackupOptions::default();
    let first = backup(&home, &owner, "c", &opts, &Quiet).unwrap();
    // Every file replaced: the first snapshot's data is used by it alone.
    fill(&src, 2, 12, 300_000);
    backup(&home, &owner, "c", &opts, &Quiet).unwrap();
    let before: u64 = mem.iter().map(|p| p.stat().unwrap().fragment_bytes).sum();

    // m5 cannot be reached for deletions.
    flaky.fail(Op::DeleteFragment, testing::unavailable);
    flaky.fail(Op::DeleteMeta, testing::unavailable);
    let report = forget(
        &home,
        &owner,
        "c",
        &ForgetOptions {
            snapshots: vec![first.snapshot.id.to_hex()[..8].to_owned()],
            prune: true,
            ..Default::default()
        },
        &Quiet,
    )
    .unwrap();
    assert_eq!(report.forget.len(), 1);
    assert_eq!(report.forget[0].id, first.snapshot.id);
    let p = report.prune.expect("pruned");
    assert_eq!(p.packs_deleted, first.snapshot.summary.packs_new, "{p:?}");
    assert!(p.segment.is_some());
    let pending: Vec<_> = p
        .deletions
        .pending
        .iter()
        .map(|d| d.peer.as_str())
        .collect();
    assert_eq!(pending, vec!["m5"], "{p:?}");
    let after: u64 = mem.iter().map(|p| p.stat().unwrap().fragment_bytes).sum();
    let freed = before - after;
    assert_eq!(
        freed + p.deletions.pending[0].fragment_bytes,
        p.fragment_bytes_removed,
        "every removed fragment is freed now or pending"
    );
    assert_eq!(freed, p.deletions.fragment_bytes_freed);
    // m5 still holds the removed packs' fragments; the others do not.
    let named = indexed_fragments(&home, &owner);
    for (i, m) in mem.iter().enumerate() {
        let held: HashSet<FragmentId> = m.list_fragments().unwrap().into_iter().collect();
        let want = named.get(&format!("m{i}")).cloned().unwrap_or_default();
        if i == 5 {
            assert!(held.len() > want.len() && held.is_superset(&want));
        } else {
            assert_eq!(held, want, "m{i}");
        }
    }
    let trashed: usize = mem[..5].iter().map(|m| m.trashed_fragments()).sum();
    assert_eq!(
        trashed as u64, p.deletions.fragments_deleted,
        "into the trash"
    );
    assert!(
        mem[0]
            .list_meta(None)
            .unwrap()
            .iter()
            .all(|k| *k != MetaKey::Snapshot(first.snapshot.container, first.snapshot.id)),
        "the forgotten manifest is gone from reachable peers"
    );
    healthy(&home, &owner);
    restore_into(&home, &owner, "c:latest", &tmp.path().join("r1"));
    same_files(&src, &tmp.path().join("r1/src"));

    // m5 answers again: the next backup does its deletions.
    flaky.heal_all();
    backup(&home, &owner, "c", &opts, &Quiet).unwrap();
    let held: HashSet<FragmentId> = mem[5].list_fragments().unwrap().into_iter().collect();
    assert_eq!(held, indexed_fragments(&home, &owner)["m5"]);
    let c = check(&home, &owner, None, &CheckOptions::default(), &Quiet).unwrap();
    assert!(c.leftovers.is_empty(), "{:?}", c.leftovers);
}

/// Blocks the backup right after it loaded its dedup set (the `Scanned`
/// event) until told, so a forget can be started while it runs.
struct Gate {
    scanned: Mutex<Option<mpsc::Sender<()>>>,
    go: Mutex<mpsc::Receiver<()>>,
}

impl Progress for Gate {
    fn event(&self, e: Event) {
        if let Event::Scanned { .. } = e {
            if let Some(tx) = self.scanned.lock().unwrap().take() {
                tx.send(()).unwrap();
                // Wait until the forget is under way, then some more.
                let _ = self.go.lock().unwrap().recv();
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}

#[test]
fn a_prune_in_the_same_process_waits_for_a_running_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let (home, owner, src) = three_peer_world(tmp.path(), 6, 200_000);
    let opts = BackupOptions::default();
    let a = backup(&home, &owner, "c", &opts, &Quiet).unwrap();
    fill(&src, 2, 6, 200_000);
    backup(&home, &owner, "c", &opts, &Quiet).unwrap();
    // The first state again: the backup finds its chunks in the dedup set
    // and references the first snapshot's packs without storing them.
    fill(&src, 1, 6, 200_000);
    let (scanned_tx, scanned_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel();
    let gate = Gate {
        scanned: Mutex::new(Some(scanned_tx)),
        go: Mutex::new(go_rx),
    };
    let third = std::thread::scope(|s| {
        let b = s.spawn(|| backup(&home, &owner, "c", &opts, &gate).unwrap());
        scanned_rx.recv().unwrap();
        go_tx.send(()).unwrap();
        // Forget the first snapshot and prune: without the lease this would
        // delete its packs under the running backup.
        let f = forget(
            &home,
            &owner,
            "c",
            &ForgetOptions {
                snapshots: vec![a.snapshot.id.to_hex()],
                prune: true,
                ..Default::default()
            },
            &Quiet,
        )
        .unwrap();
        let third = b.join().unwrap();
        assert_eq!(
            third.snapshot.summary.blobs_new, 2,
            "only its trees are new (the root and the source's)"
        );
        let p = f.prune.unwrap();
        assert_eq!(
            p.packs_deleted, 0,
            "the running backup's snapshot uses them: {p:?}"
        );
        third
    });
    healthy(&home, &owner);
    restore_into(
        &home,
        &owner,
        &third.snapshot.id.to_hex(),
        &tmp.path().join("r"),
    );
    same_files(&src, &tmp.path().join("r/src"));
    let p = prune(&home, &owner, Some("c"), &PruneOptions::default(), &Quiet).unwrap();
    assert_eq!(
        p.packs_deleted, 0,
        "both remaining snapshots use their packs"
    );
}

#[test]
fn sync_on_a_new_machine_leaves_out_forgotten_snapshots_and_superseded_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let mem: Vec<Arc<MemoryPeer>> = (0..3)
        .map(|i| Arc::new(MemoryPeer::new(&format!("m{i}"))))
        .collect();
    let peers: Vec<Arc<dyn Peer>> = mem.iter().map(|p| p.clone() as Arc<dyn Peer>).collect();
    let master = MasterSecret::generate();
    let (home, owner) = home_with(tmp.path(), "home", master.clone(), &peers);
    let src = tmp.path().join("src");
    fill(&src, 1, 4, 200_000);
    home.containers()
        .create(
            &owner,
            "c",
            std::slice::from_ref(&src),
            Some(Redundancy { k: 2, m: 1 }),
        )
        .unwrap();
    let opts = BackupOptions::default();
    let first = backup(&home, &owner, "c", &opts, &Quiet).unwrap();
    fill(&src, 2, 4, 200_000);
    backup(&home, &owner, "c", &opts, &Quiet).unwrap();
    // Keep the first segments' envelopes, to put one back later.
    let old: Vec<(MetaKey, Vec<u8>)> = mem[0]
        .list_meta(None)
        .unwrap()
        .into_iter()
        .filter(|k| matches!(k, MetaKey::IndexSegment(..)))
        .map(|k| (k, mem[0].get_meta(&k).unwrap()))
        .collect();
    assert_eq!(old.len(), 2);
    let f = forget(
        &home,
        &owner,
        "c",
        &ForgetOptions {
            policy: trove_repo::KeepPolicy {
                keep_last: Some(1),
                ..Default::default()
            },
            prune: true,
            ..Default::default()
        },
        &Quiet,
    )
    .unwrap();
    assert_eq!(f.forget.len(), 1);
    let p = f.prune.unwrap();
    assert_eq!(p.segments_superseded, 3, "two backups and the forget");
    // A lingering superseded segment (say, a peer's stale copy) naming the
    // deleted packs.
    for (k, bytes) in &old {
        mem[1].put_meta(k, bytes).unwrap();
    }
    let snaps = home.containers().snapshot_rows(Some("c")).unwrap();
    drop(home);

    let (fresh, owner2) = home_with(tmp.path(), "home2", master, &peers);
    let r = sync(&fresh, &owner2, &Quiet).unwrap();
    assert!(r.from_trash.is_empty(), "{:?}", r.from_trash);
    let again = fresh.containers().snapshot_rows(Some("c")).unwrap();
    assert_eq!(
        again.iter().map(|s| s.id).collect::<Vec<_>>(),
        snaps.iter().map(|s| s.id).collect::<Vec<_>>()
    );
    assert!(again.iter().all(|s| s.id != first.snapshot.id));
    // No pack of the first snapshot came back: every pack is whole.
    healthy(&fresh, &owner2);
    restore_into(&fresh, &owner2, "c:latest", &tmp.path().join("r"));
    same_files(&src, &tmp.path().join("r/src"));
}

/// The file cache names chunks; when a prune removes some of them (here:
/// the newest snapshot forgotten, so the changed file's new chunks go), a
/// file whose stat still matches the cache is read again, not trusted.
#[test]
fn a_file_whose_cached_chunks_were_pruned_is_read_again() {
    let tmp = tempfile::tempdir().unwrap();
    let (home, owner, src) = three_peer_world(tmp.path(), 4, 100_000);
    let opts = BackupOptions::default();
    backup(&home, &owner, "c", &opts, &Quiet).unwrap();
    let mut b = vec![0; 100_000];
    rand::rngs::StdRng::seed_from_u64(9).fill_bytes(&mut b);
    std::fs::write(src.join("f0"), &b).unwrap();
    let second = backup(&home, &owner, "c", &opts, &Quiet).unwrap();
    assert_eq!(second.snapshot.summary.files_changed, 1);
    let report = forget(
        &home,
        &owner,
        "c",
        &ForgetOptions {
            snapshots: vec![second.snapshot.id.to_hex()[..8].to_owned()],
            prune: true,
            ..Default::default()
        },
        &Quiet,
    )
    .unwrap();
    assert!(report.prune.expect("pruned").packs_deleted > 0);

    let third = backup(&home, &owner, "c", &opts, &Quiet).unwrap();
    let s = &third.snapshot.summary;
    assert_eq!((s.files_changed, s.files_unchanged), (1, 3), "{s:?}");
    assert!(s.bytes_read >= 100_000, "{s:?}");
    let target = tmp.path().join("back");
    restore_into(&home, &owner, "c:latest", &target);
    same_files(&src, &target.join("src"));
}
