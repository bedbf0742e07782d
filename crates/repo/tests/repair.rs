//! Repair in one process, over peers that live in memory and fail or lie
//! on cue (`trove_peer::testing`, attached with `Peers::attach`): what is
//! rebuilt where, what a suspect peer keeps, what a liar is denied, what a
//! lost pack names, and that a new machine syncing from the peers sees the
//! repaired locations.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, RngCore, SeedableRng};
use trove_core::keys::MasterSecret;
use trove_core::manifest::{PackRecord, Redundancy};
use trove_core::PeerId;
use trove_peer::testing::{self, FailingPeer, LyingPeer, MemoryPeer, Op};
use trove_peer::{MetaKey, Peer};
use trove_repo::{
    audit_round, backup, check, redundancy, repair, restore, sync, AuditOptions, BackupOptions,
    CheckOptions, Home, KdfParams, Owner, PeerState, Quiet, RepairOptions, RepairReport,
    RestoreOptions,
};

const FAST_KDF: KdfParams = KdfParams {
    m_kib: 64,
    t: 1,
    p: 1,
};

fn home(dir: &Path, master: MasterSecret) -> (Home, Owner) {
    Home::init(dir, master, b"pass", FAST_KDF).unwrap()
}

fn attach(home: &Home, name: &str, peer: Arc<dyn Peer>) -> PeerId {
    let labels = BTreeMap::from([("site".to_owned(), format!("site-{name}"))]);
    home.peers().attach(name, peer, labels).unwrap().id
}

/// A generated tree of `files` files (a few MB: one pack), container `c`
/// over it at 4+2, backed up over `peers`.
fn backed_up(tmp: &Path, peers: &[(&str, Arc<dyn Peer>)], files: usize) -> (Home, Owner) {
    backed_up_as(tmp, peers, files, Redundancy { k: 4, m: 2 })
}

fn backed_up_as(
    tmp: &Path,
    peers: &[(&str, Arc<dyn Peer>)],
    files: usize,
    redundancy: Redundancy,
) -> (Home, Owner) {
    let (home, owner) = home(&tmp.join("home"), MasterSecret::generate());
    for (name, p) in peers {
        attach(&home, name, p.clone());
    }
    let src = tmp.join("src");
    let mut rng = rand::rngs::StdRng::seed_from_u64(files as u64);
    for i in 0..files {
        let dir = src.join(format!("d{}", i % 3));
        std::fs::create_dir_all(&dir).unwrap();
        let mut bytes = vec![0; rng.gen_range(1..300_000)];
        rng.fill_bytes(&mut bytes);
        std::fs::write(dir.join(format!("f{i}")), bytes).unwrap();
    }
    home.containers()
        .create(&owner, "c", &[src], Some(redundancy))
        .unwrap();
    backup(&home, &owner, "c", &BackupOptions::default(), &Quiet).unwrap();
    (home, owner)
}

fn memory(names: &[&str]) -> Vec<Arc<MemoryPeer>> {
    names.iter().map(|n| Arc::new(MemoryPeer::new(n))).collect()
}

fn packs(home: &Home) -> Vec<PackRecord> {
    let c = home.containers().manifest("c").unwrap();
    home.containers().packs(&c.id).unwrap()
}

fn run(home: &Home, owner: &Owner, opts: RepairOptions) -> RepairReport {
    repair(home, owner, None, &opts, &Quiet).unwrap()
}

/// Every pack at its 6 fragments on distinct peers, none of them in `not_on`.
#[track_caller]
fn assert_full(home: &Home, not_on: &[PeerId]) {
    for p in packs(home) {
        let holders: HashSet<PeerId> = p.fragments.iter().map(|f| f.peer).collect();
        assert_eq!(p.fragments.len(), 6, "{}", p.id.short());
        assert_eq!(holders.len(), 6, "pack {} doubles up", p.id.short());
        for bad in not_on {
            assert!(
                !holders.contains(bad),
                "pack {} still on {bad:?}",
                p.id.short()
            );
        }
    }
}

#[track_caller]
fn assert_restores(home: &Home, owner: &Owner, tmp: &Path) {
    let target = tmp.join("restored");
    let _ = std::fs::remove_dir_all(&target);
    let r = restore(
        home,
        owner,
        "c:latest",
        &RestoreOptions::into(target.clone()),
        &Quiet,
    )
    .unwrap();
    assert!(r.lost.is_empty(), "{:?}", r.lost);
    for d in std::fs::read_dir(tmp.join("src")).unwrap() {
        let d = d.unwrap().path();
        for f in std::fs::read_dir(&d).unwrap() {
            let f = f.unwrap().path();
            let rel = f.strip_prefix(tmp).unwrap();
            assert_eq!(
                std::fs::read(&f).unwrap(),
                std::fs::read(target.join(rel)).unwrap(),
                "{}",
                rel.display()
            );
        }
    }
}

#[track_caller]
fn assert_check_clean(home: &Home, owner: &Owner) {
    let opts = CheckOptions {
        read_data: true,
        ..CheckOptions::default()
    };
    let c = check(home, owner, None, &opts, &Quiet).unwrap();
    assert!(c.problems.is_empty(), "{:#?}", c.problems);
    assert_eq!(c.fragments_ok, c.fragments);
}

/// A removed peer, a corrupt fragment and a missing one, all in one pack
/// (3+3, so three are left), and two spare peers: every fragment is rebuilt on a peer holding nothing
/// of the pack, the corrupt copy goes to its peer's trash, the new segment
/// reaches every peer, and a new machine syncing from one peer sees the
/// repaired locations.
#[test]
fn removed_missing_and_corrupt_fragments_are_rebuilt_and_a_new_machine_sees_it() {
    let tmp = tempfile::tempdir().unwrap();
    let mem = memory(&["m0", "m1", "m2", "m3", "m4", "m5"]);
    let as_peers: Vec<(&str, Arc<dyn Peer>)> = mem
        .iter()
        .map(|p| (p.name(), p.clone() as Arc<dyn Peer>))
        .collect();
    let (home, owner) = backed_up_as(tmp.path(), &as_peers, 20, Redundancy { k: 3, m: 3 });
    let spares = memory(&["s6", "s7"]);
    for s in &spares {
        attach(&home, s.name(), s.clone());
    }
    let before = packs(&home);
    assert_eq!(before.len(), 1);
    let pack = &before[0];
    let holder = |name: &str| {
        let rec = home
            .peers()
            .records()
            .unwrap()
            .into_iter()
            .find(|r| r.name == name)
            .unwrap();
        pack.fragments
            .iter()
            .find(|f| f.peer == rec.id)
            .copied()
            .unwrap()
    };
    let (gone, rotten, missing) = (holder("m0"), holder("m1"), holder("m2"));
    home.peers().remove("m0").unwrap();
    mem[1].damage_fragment(&rotten.id, b"bit rot");
    mem[2].delete_fragment(&missing.id).unwrap();

    // A dry run says what it would do and writes nothing.
    let dry = run(
        &home,
        &owner,
        RepairOptions {
            dry_run: true,
            ..RepairOptions::default()
        },
    );
    assert!(dry.dry_run && dry.full_redundancy, "{dry:#?}");
    assert_eq!(dry.fragments_rebuilt, 3, "{dry:#?}");
    assert_eq!(packs(&home), before, "a dry run changes no record");
    assert!(spares.iter().all(|s| s.stat().unwrap().fragments == 0));
    assert_eq!(mem[1].trashed_fragments(), 0);

    let r = run(&home, &owner, RepairOptions::default());
    assert!(r.full_redundancy, "{r:#?}");
    assert_eq!((r.packs_repaired, r.fragments_rebuilt), (1, 3), "{r:#?}");
    let moved = &r.containers[0].repaired[0];
    let kinds: HashSet<&str> = moved.fragments.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, HashSet::from(["peer removed", "corrupt", "missing"]));
    assert!(
        moved.bytes_read >= 4 * 1000 && moved.bytes_written > 0,
        "{moved:?}"
    );
    assert_eq!(r.bad_data.get("m1"), Some(&1), "{r:#?}");
    assert!(r.liars.is_empty(), "bit rot is not a lie: {r:#?}");
    assert_full(&home, &[gone.peer]);
    assert_eq!(
        mem[1].trashed_fragments(),
        1,
        "the corrupt copy is in the trash"
    );
    assert_check_clean(&home, &owner);
    assert_restores(&home, &owner, tmp.path());

    // The new segment is on every peer, and the roster no longer names m0.
    let cid = home.containers().manifest("c").unwrap().id;
    let seg = r.containers[0].segment.expect("a segment was written");
    for p in mem[1..].iter().chain(&spares) {
        assert!(p
            .list_meta(Some(&cid))
            .unwrap()
            .contains(&MetaKey::IndexSegment(cid, seg)));
    }
    let roster = home.containers().manifest("c").unwrap().roster;
    assert!(roster.iter().all(|r| r.id != gone.peer));

    // A new machine with the same secret reads the log from the peers.
    let (fresh, fresh_owner) = home_like(&tmp.path().join("fresh"), &owner);
    attach(&fresh, "s7", spares[1].clone());
    sync(&fresh, &fresh_owner, &Quiet).unwrap();
    assert_eq!(
        packs(&fresh),
        packs(&home),
        "sync replays the repair segment"
    );

    // Repairing again finds nothing to do and reads no more than the survey.
    let again = run(&home, &owner, RepairOptions::default());
    assert!(
        again.full_redundancy && again.fragments_rebuilt == 0,
        "{again:#?}"
    );
    assert_eq!(again.bytes_read, 0);
    assert!(again.containers[0].segment.is_none());
}

fn home_like(dir: &Path, owner: &Owner) -> (Home, Owner) {
    home(dir, owner.master.clone())
}

/// A peer that serves every fragment damaged: its fragment is rebuilt from
/// the other peers; put back on it, it lies again, so the fragment goes to
/// the spare and the liar is named.
#[test]
fn a_lying_peer_is_routed_around_and_named() {
    let tmp = tempfile::tempdir().unwrap();
    let mem = memory(&["liar", "m1", "m2", "m3", "m4", "m5"]);
    let liar = Arc::new(LyingPeer::new(mem[0].clone()).corrupting_reads());
    let mut as_peers: Vec<(&str, Arc<dyn Peer>)> = vec![("liar", liar.clone())];
    as_peers.extend(
        mem[1..]
            .iter()
            .map(|p| (p.name(), p.clone() as Arc<dyn Peer>)),
    );
    let (home, owner) = backed_up(tmp.path(), &as_peers, 12);
    let spare = Arc::new(MemoryPeer::new("z-spare"));
    attach(&home, "z-spare", spare.clone());
    let liar_id = home
        .peers()
        .records()
        .unwrap()
        .into_iter()
        .find(|r| r.name == "liar")
        .unwrap()
        .id;

    let r = run(&home, &owner, RepairOptions::default());
    assert!(r.full_redundancy, "{r:#?}");
    assert_eq!(r.fragments_rebuilt, 1, "{r:#?}");
    // Its own fragment was put back on it first (it holds nothing else of
    // the pack), and it lied about it right away.
    assert_eq!(r.liars, ["liar"], "{r:#?}");
    assert!(r.bad_data.get("liar").is_some_and(|n| *n >= 2), "{r:#?}");
    assert_eq!(
        r.containers[0].repaired[0].fragments[0].to.as_deref(),
        Some("z-spare")
    );
    assert_full(&home, &[liar_id]);
    assert_eq!(spare.stat().unwrap().fragments, 1);
    assert!(liar.lies_told() >= 2);
    // Nothing on the liar is named any more: it was asked to delete what
    // it holds of the pack.
    assert_eq!(mem[0].stat().unwrap().fragments, 0);
    assert_restores(&home, &owner, tmp.path());
}

/// An unreachable peer is suspect: its fragments count and nothing is
/// moved off it. Once it has been unreachable for longer than the
/// threshold it is lost, and its fragments are rebuilt on the spare.
#[test]
fn a_suspect_peer_is_not_repaired_away_until_it_is_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let mem = memory(&["m0", "m1", "m2", "m3", "m4", "m5"]);
    let away = Arc::new(FailingPeer::new(mem[3].clone()));
    let as_peers: Vec<(&str, Arc<dyn Peer>)> = mem
        .iter()
        .map(|p| {
            let peer: Arc<dyn Peer> = if p.name() == "m3" {
                away.clone()
            } else {
                p.clone()
            };
            (p.name(), peer)
        })
        .collect();
    let (home, owner) = backed_up(tmp.path(), &as_peers, 12);
    let spare = Arc::new(MemoryPeer::new("s6"));
    attach(&home, "s6", spare.clone());
    let before = packs(&home);
    for op in Op::ALL {
        away.fail(op, testing::unavailable);
    }

    let r = run(&home, &owner, RepairOptions::default());
    assert!(r.full_redundancy, "{r:#?}");
    assert_eq!((r.fragments_rebuilt, r.bytes_written), (0, 0), "{r:#?}");
    let m3 = r.peers.iter().find(|p| p.peer == "m3").unwrap();
    assert_eq!(m3.state, PeerState::Suspect, "{m3:?}");
    assert!(m3.unreachable_since.is_some() && m3.last_seen.is_some());
    assert_eq!(packs(&home), before);
    assert_eq!(spare.stat().unwrap().fragments, 0);

    // A dry run with a zero threshold would move it, and writes nothing.
    let lost_now = RepairOptions {
        peer_lost_after: Duration::ZERO,
        ..RepairOptions::default()
    };
    let dry = run(
        &home,
        &owner,
        RepairOptions {
            dry_run: true,
            ..lost_now
        },
    );
    assert_eq!(dry.fragments_rebuilt, 1, "{dry:#?}");
    assert_eq!(spare.stat().unwrap().fragments, 0);
    assert_eq!(packs(&home), before);

    let r = run(&home, &owner, lost_now);
    assert!(r.full_redundancy, "{r:#?}");
    assert_eq!(r.fragments_rebuilt, 1, "{r:#?}");
    assert_eq!(
        r.containers[0].repaired[0].fragments[0].kind, "peer lost",
        "{r:#?}"
    );
    assert_eq!(spare.stat().unwrap().fragments, 1);
    let m3_id = home.peers().records().unwrap()[3].id;
    assert_full(&home, &[m3_id]);
    assert_restores(&home, &owner, tmp.path());
}

/// With nowhere to put a rebuilt fragment (every peer already holds one of
/// the pack), repair says how many peers to add and repairs what it can.
#[test]
fn without_a_spare_peer_repair_says_how_many_peers_to_add() {
    let tmp = tempfile::tempdir().unwrap();
    let mem = memory(&["m0", "m1", "m2", "m3", "m4", "m5"]);
    let as_peers: Vec<(&str, Arc<dyn Peer>)> = mem
        .iter()
        .map(|p| (p.name(), p.clone() as Arc<dyn Peer>))
        .collect();
    let (home, owner) = backed_up(tmp.path(), &as_peers, 12);
    let m0 = home.peers().records().unwrap()[0].id;
    let missing = *packs(&home)[0]
        .fragments
        .iter()
        .find(|f| f.peer != m0)
        .unwrap();
    home.peers().remove("m0").unwrap();
    mem.iter()
        .for_each(|p| drop(p.delete_fragment(&missing.id)));

    let r = run(&home, &owner, RepairOptions::default());
    assert!(!r.full_redundancy, "{r:#?}");
    assert_eq!((r.packs_short, r.peers_needed), (1, 1), "{r:#?}");
    let p = &r.containers[0].repaired[0];
    let kinds: Vec<(&str, bool)> = p
        .fragments
        .iter()
        .map(|f| (f.kind, f.to.is_some()))
        .collect();
    assert!(
        kinds.contains(&("missing", true)),
        "the missing one is rebuilt in place: {kinds:?}"
    );
    assert!(kinds.contains(&("peer removed", false)), "{kinds:?}");
    assert!(
        p.shortfall.as_deref().unwrap().contains("add 1 more peer"),
        "{p:?}"
    );

    attach(&home, "m6", Arc::new(MemoryPeer::new("m6")));
    let r = run(&home, &owner, RepairOptions::default());
    assert!(r.full_redundancy, "{r:#?}");
    assert_eq!(r.fragments_rebuilt, 1);
    assert_restores(&home, &owner, tmp.path());
}

/// A pack with fewer than k fragments anywhere is lost: its trees are in
/// it, so the whole snapshot is an unknown folder; nothing is written.
#[test]
fn a_pack_below_k_is_lost_and_its_unknown_folders_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let mem = memory(&["m0", "m1", "m2", "m3", "m4", "m5"]);
    let as_peers: Vec<(&str, Arc<dyn Peer>)> = mem
        .iter()
        .map(|p| (p.name(), p.clone() as Arc<dyn Peer>))
        .collect();
    let (home, owner) = backed_up(tmp.path(), &as_peers, 6);
    for p in &mem[..3] {
        for id in p.list_fragments().unwrap() {
            p.damage_fragment(&id, b"gone");
        }
    }
    let r = run(&home, &owner, RepairOptions::default());
    assert!(!r.full_redundancy);
    assert_eq!((r.packs_lost, r.fragments_rebuilt), (1, 0), "{r:#?}");
    let c = &r.containers[0];
    assert_eq!(c.lost[0].readable, 3);
    assert_eq!(c.unknown_folders.len(), 1, "{c:#?}");
    assert_eq!(c.unknown_folders[0].path, "/");
    assert!(c.segment.is_none());
}

/// With no peer answering there is nothing to judge by: an error, not a
/// report that all is well.
#[test]
fn no_peer_answering_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mem = memory(&["m0", "m1"]);
    let dead: Vec<Arc<FailingPeer>> = mem
        .iter()
        .map(|p| Arc::new(FailingPeer::new(p.clone())))
        .collect();
    let (home, owner) = home(&tmp.path().join("home"), MasterSecret::generate());
    for (p, d) in mem.iter().zip(&dead) {
        attach(&home, p.name(), d.clone());
        d.fail(Op::HasFragment, testing::unavailable);
    }
    let err = repair(&home, &owner, None, &RepairOptions::default(), &Quiet).unwrap_err();
    assert!(err.to_string().contains("no reachable peer"), "{err}");
}

/// Six peers at 4+2, so that each holds a fragment of every pack, with
/// `wrap` applied to each; then a seventh, the spare.
fn six_and_a_spare(tmp: &Path, wrap: impl Fn(Arc<MemoryPeer>) -> Arc<dyn Peer>) -> (Home, Owner) {
    let mem = memory(&["m0", "m1", "m2", "m3", "m4", "m5"]);
    let as_peers: Vec<(&str, Arc<dyn Peer>)> =
        mem.iter().map(|p| (p.name(), wrap(p.clone()))).collect();
    let (home, owner) = backed_up(tmp, &as_peers, 12);
    attach(&home, "m6", Arc::new(MemoryPeer::new("m6")));
    (home, owner)
}

fn audit_opts(lost_after: Duration) -> AuditOptions {
    AuditOptions {
        per_peer: 16,
        peer_lost_after: lost_after,
        storm_guard: true,
    }
}

fn to_repair(home: &Home, health: &[trove_repo::PeerHealth]) -> u64 {
    redundancy(home, health)
        .unwrap()
        .iter()
        .map(|r| r.packs_to_repair)
        .sum()
}

#[test]
fn a_peer_failing_its_audit_is_lost_its_fragments_are_rebuilt_and_its_record_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let (home, owner) = six_and_a_spare(tmp.path(), |p| {
        if p.name() == "m3" {
            Arc::new(LyingPeer::new(p).corrupting_reads())
        } else {
            p
        }
    });
    let round = audit_round(&home, &audit_opts(Duration::from_secs(3600)), &Quiet).unwrap();
    let m3 = round.peers.iter().find(|p| p.health.peer == "m3").unwrap();
    assert!(m3.fragments_held > 0 && !m3.failed.is_empty(), "{m3:#?}");
    assert_eq!(m3.health.state, PeerState::Lost, "{m3:#?}");
    assert!(m3.health.failed_audits());
    assert_eq!(m3.health.audits.rounds_failed, 1);
    assert!(m3.health.audits.failing_since_ns.is_some());
    for p in round.peers.iter().filter(|p| p.health.peer != "m3") {
        assert_eq!(p.health.state, PeerState::Online, "{p:#?}");
        assert_eq!(p.failed.len(), 0);
        if p.fragments_held > 0 {
            assert_eq!(p.health.audits.rounds_passed, 1, "{p:#?}");
        }
    }
    assert_eq!(round.lost(), vec!["m3"]);
    let health: Vec<_> = round.peers.iter().map(|p| p.health.clone()).collect();
    assert!(to_repair(&home, &health) > 0);

    // The daemon's repair: proofs, storm guard, a budget.
    let r = run(
        &home,
        &owner,
        RepairOptions {
            audit: true,
            storm_guard: true,
            budget_mib: Some(1024),
            ..RepairOptions::default()
        },
    );
    assert!(r.full_redundancy, "{r:#?}");
    assert!(r.fragments_rebuilt > 0);
    let m3_id = home.peers().records().unwrap()[3].id;
    assert_full(&home, &[m3_id]);
    // Still lost (it proved nothing since), and nothing left to repair.
    let again = audit_round(&home, &audit_opts(Duration::from_secs(3600)), &Quiet).unwrap();
    let m3 = again.peers.iter().find(|p| p.health.peer == "m3").unwrap();
    assert_eq!((m3.fragments_held, m3.health.state), (0, PeerState::Lost));
    let health: Vec<_> = again.peers.iter().map(|p| p.health.clone()).collect();
    assert_eq!(to_repair(&home, &health), 0);
    assert_restores(&home, &owner, tmp.path());
}

#[test]
fn the_storm_guard_declares_none_lost_when_a_quarter_vanish_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let failing: std::sync::Mutex<Vec<Arc<FailingPeer>>> = Default::default();
    let (home, owner) = six_and_a_spare(tmp.path(), |p| {
        let f = Arc::new(FailingPeer::new(p));
        failing.lock().unwrap().push(f.clone());
        f
    });
    let failing = failing.into_inner().unwrap();
    let before = packs(&home);
    for gone in [&failing[1], &failing[4]] {
        for op in Op::ALL {
            gone.fail(op, testing::unavailable);
        }
    }
    let lost_now = RepairOptions {
        peer_lost_after: Duration::ZERO,
        storm_guard: true,
        ..RepairOptions::default()
    };
    let r = run(&home, &owner, lost_now);
    let storm = r.storm.expect("2 of 7 is a storm");
    assert_eq!((storm.unreachable, storm.peers), (2, 7));
    assert_eq!(r.fragments_rebuilt, 0, "{r:#?}");
    assert_eq!(packs(&home), before);
    for p in r.peers.iter().filter(|p| p.peer == "m1" || p.peer == "m4") {
        assert_eq!(p.state, PeerState::Suspect, "{p:?}");
    }
    let round = audit_round(&home, &audit_opts(Duration::ZERO), &Quiet).unwrap();
    assert!(round.storm.is_some());
    assert!(round.lost().is_empty(), "{:?}", round.lost());
    // Without the guard (a person running `trove repair`), they are lost.
    let r = run(
        &home,
        &owner,
        RepairOptions {
            storm_guard: false,
            ..lost_now
        },
    );
    assert!(r.storm.is_none());
    assert!(r.fragments_rebuilt > 0, "{r:#?}");
}

#[test]
fn a_repair_budget_defers_what_it_cannot_afford() {
    let tmp = tempfile::tempdir().unwrap();
    let (home, owner) = six_and_a_spare(tmp.path(), |p| p);
    let on_m2 = packs(&home)
        .iter()
        .filter(|p| {
            p.fragments
                .iter()
                .any(|f| f.peer == home.peers().records().unwrap()[2].id)
        })
        .count() as u64;
    assert!(on_m2 > 0);
    home.peers().remove("m2").unwrap();
    let broke = run(
        &home,
        &owner,
        RepairOptions {
            budget_mib: Some(0),
            ..RepairOptions::default()
        },
    );
    assert_eq!(broke.packs_deferred, on_m2, "{broke:#?}");
    assert_eq!(broke.fragments_rebuilt, 0);
    assert!(!broke.full_redundancy);
    let r = run(&home, &owner, RepairOptions::default());
    assert!(r.full_redundancy, "{r:#?}");
    assert_eq!(r.packs_deferred, 0);
}
