//! `trove forget` and `trove prune` through the real binary over real
//! folder peers: what only forgotten snapshots held is freed, every kept
//! snapshot restores exactly, and neither a backup running beside a prune
//! nor `kill -9` at any point of a prune loses anything.

use crate::common::*;
use rand::Rng;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime};

const MB: usize = 1 << 20;

/// Fragment bytes on peers `p1..pn`, not counting their trash.
fn fragment_bytes(t: &Trove, n: usize) -> u64 {
    t.all_fragments(n)
        .iter()
        .map(|(_, f)| std::fs::metadata(f).expect("stat fragment").len())
        .sum()
}

/// Files in the trash of peers `p1..pn` (fragments and metadata).
fn trash_files(t: &Trove, n: usize) -> usize {
    (1..=n)
        .map(|i| all_files(&t.peer(i).join("trash")).len())
        .sum()
}

/// A copy of the source as it is now, to compare a restore with.
fn record_state(t: &Trove, name: &str) -> PathBuf {
    let dir = t.tmp.path().join("states").join(name);
    copy_tree(&t.src, &dir);
    dir
}

/// Back up and remember which source state the snapshot holds.
fn backup_state(t: &Trove, states: &mut BTreeMap<String, PathBuf>) -> String {
    let state = record_state(t, &format!("s{}", states.len()));
    let b = t.backup();
    let id = id_of(&b, "snapshot");
    states.insert(id.clone(), state);
    id
}

/// Restore every snapshot that still exists and that `states` knows, and
/// compare it with the source as it was; returns how many were compared.
fn restore_all_known(t: &Trove, states: &BTreeMap<String, PathBuf>) -> usize {
    let mut n = 0;
    for s in t.snapshots() {
        let id = id_of(&s, "id");
        if let Some(state) = states.get(&id) {
            let (r, out) = t.restore(&id);
            assert_same_tree(state, &out);
            assert_eq!(r["fragment_problems"], serde_json::json!([]), "{r}");
            n += 1;
        }
    }
    n
}

fn assert_healthy(t: &Trove) -> Value {
    let c = t.ok_json(&["check", "--read-data"]);
    assert_eq!(c["problems"], serde_json::json!([]), "{c}");
    assert_eq!(c["fragments_ok"], c["fragments"], "{c}");
    c
}

fn replace(t: &Trove, g: &mut Gen, name: &str, len: usize) {
    write(&t.src.join(name), &g.bytes(len));
}

#[test]
fn acceptance_forget_keep_last_2_prune_frees_what_only_forgotten_snapshots_held() {
    let t = Trove::setup(7, "4+2");
    let mut g = Gen::new(101);
    let mut states = BTreeMap::new();
    // Four snapshots of a 40 MB tree of incompressible files, each changing
    // part of it.
    for i in 0..8 {
        replace(&t, &mut g, &format!("f{i}.bin"), 5 * MB);
    }
    let s1 = backup_state(&t, &mut states);
    replace(&t, &mut g, "f0.bin", 5 * MB);
    replace(&t, &mut g, "f1.bin", 5 * MB);
    let s2 = backup_state(&t, &mut states);
    std::fs::remove_file(t.src.join("f2.bin")).unwrap();
    std::fs::remove_file(t.src.join("f3.bin")).unwrap();
    replace(&t, &mut g, "sub/g0.bin", 5 * MB);
    let s3 = backup_state(&t, &mut states);
    replace(&t, &mut g, "f4.bin", 5 * MB);
    replace(&t, &mut g, "sub/g1.bin", 5 * MB);
    let s4 = backup_state(&t, &mut states);
    // Only the forgotten snapshots hold the first f0 and f1, and f2 and f3:
    // 20 MB. The kept ones hold nine 5 MB files: 45 MB.
    let (only_forgotten, kept) = (20 * MB as u64, 45 * MB as u64);
    let packs_before = t.ok_json(&["check"])["packs"].as_u64().unwrap();
    let before = fragment_bytes(&t, 7);

    let started = Instant::now();
    let f = t.ok_json(&["forget", "data", "--keep-last", "2", "--prune"]);
    let took = started.elapsed();
    let forgotten: Vec<String> = f["forget"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| id_of(r, "id"))
        .collect();
    assert_eq!(forgotten, vec![s2.clone(), s1.clone()], "{f}");
    let kept_rows = f["keep"].as_array().unwrap();
    assert_eq!(kept_rows.len(), 2);
    assert_eq!(id_of(&kept_rows[0], "id"), s4);
    assert_eq!(kept_rows[0]["reasons"], serde_json::json!(["last"]));
    assert_eq!(id_of(&kept_rows[1], "id"), s3);
    let p = &f["prune"];
    let after = fragment_bytes(&t, 7);
    let freed = before - after;
    let d = &p["deletions"];
    assert_eq!(d["pending"], serde_json::json!([]), "{p}");
    // The report accounts for every byte that left the peers.
    assert_eq!(
        freed,
        d["fragment_bytes_freed"].as_u64().unwrap()
            - p["fragment_bytes_uploaded"].as_u64().unwrap(),
        "{p}"
    );
    // 4+2 stores 1.5 bytes of fragments per byte of data, plus padding and
    // at most 5% unused space in partly used packs.
    let frag = |data: u64| data * 3 / 2;
    assert!(
        freed >= frag(only_forgotten) * 85 / 100,
        "freed {freed} of {} that only the forgotten snapshots held: {p}",
        frag(only_forgotten)
    );
    assert!(
        after <= frag(kept) * 115 / 100,
        "{after} bytes left for {} of kept data: {p}",
        frag(kept)
    );
    eprintln!(
        "acceptance: {packs_before} packs, fragments {before} → {after} bytes (freed {freed}, \
         {} deleted, {} uploaded by the repack); packs deleted {}, repacked {} into {}, \
         blobs repacked {}; prune {:.1}s, forget --prune {:.1}s",
        d["fragment_bytes_freed"],
        p["fragment_bytes_uploaded"],
        p["packs_deleted"],
        p["packs_repacked"],
        p["packs_written"],
        p["blobs_repacked"],
        p["seconds"].as_f64().unwrap(),
        took.as_secs_f64()
    );

    let snaps: Vec<String> = t.snapshots().iter().map(|s| id_of(s, "id")).collect();
    assert_eq!(snaps, vec![s3, s4]);
    assert_eq!(restore_all_known(&t, &states), 2);
    let c = assert_healthy(&t);
    assert_eq!(
        c["fragments"].as_u64().unwrap() as usize,
        t.all_fragments(7).len(),
        "every fragment on the peers is one the index names: {c}"
    );
    // Pruning again finds nothing to do.
    let again = t.ok_json(&["prune"]);
    assert_eq!(again["packs_deleted"], 0, "{again}");
    assert_eq!(again["packs_repacked"], 0, "{again}");
}

#[test]
fn forget_an_unknown_id_is_a_usage_error_and_forgets_nothing() {
    let t = Trove::setup(3, "2+1");
    make_small_tree(&t.src, 3);
    let b = t.backup();
    let id = id_of(&b, "snapshot");
    t.backup();
    let unknown = if id.starts_with("0000") {
        "ffff0000"
    } else {
        "0000ffff"
    };
    for args in [
        vec!["forget", "data", unknown],
        vec!["forget", "data", &id[..8], unknown],
    ] {
        let out = t.run(&args);
        assert_code(&out, 2, &args);
        assert!(stderr(&out).contains(unknown), "{}", describe(&out));
        assert!(stderr(&out).contains("nothing was forgotten"));
    }
    assert_eq!(t.snapshots().len(), 2, "nothing forgotten");
    for args in [
        vec!["forget", "data"],
        vec!["forget", "data", &id[..8], "--keep-last", "1"],
        vec!["forget", "data", "12"],
    ] {
        assert_code(&t.run(&args), 2, &args);
    }
    assert_eq!(t.snapshots().len(), 2);
    // The right id forgets exactly that one.
    let f = t.ok_json(&["forget", "data", &id[..8]]);
    assert_eq!(f["forget"].as_array().unwrap().len(), 1, "{f}");
    let left: Vec<String> = t.snapshots().iter().map(|s| id_of(s, "id")).collect();
    assert!(left.len() == 1 && left[0] != id, "{left:?}");
}

#[test]
fn a_policy_that_keeps_nothing_keeps_the_latest() {
    let t = Trove::setup(3, "2+1");
    let mut g = Gen::new(7);
    let mut states = BTreeMap::new();
    for round in 0..3 {
        replace(&t, &mut g, &format!("r{round}.bin"), 2 * MB);
        replace(&t, &mut g, "changing.bin", MB);
        backup_state(&t, &mut states);
    }
    let latest = id_of(t.snapshots().last().unwrap(), "id");
    let dry = t.ok_json(&["forget", "data", "--keep-last", "0", "--dry-run"]);
    assert_eq!(dry["forget"].as_array().unwrap().len(), 2, "{dry}");
    assert_eq!(t.snapshots().len(), 3, "a dry run changes nothing");
    let f = t.ok_json(&["forget", "data", "--keep-last", "0", "--prune"]);
    let keep = f["keep"].as_array().unwrap();
    assert_eq!(keep.len(), 1, "{f}");
    assert_eq!(id_of(&keep[0], "id"), latest);
    assert_eq!(keep[0]["reasons"], serde_json::json!(["latest"]));
    assert_eq!(f["forget"].as_array().unwrap().len(), 2);
    assert!(
        f["prune"]["packs_deleted"].as_u64().unwrap()
            + f["prune"]["packs_repacked"].as_u64().unwrap()
            > 0,
        "{f}"
    );
    assert_eq!(restore_all_known(&t, &states), 1);
    assert_healthy(&t);
}

#[test]
fn an_unreachable_peer_gets_its_deletions_at_a_later_backup() {
    // Six peers for 4+2: each holds one fragment of every pack.
    let t = Trove::setup(6, "4+2");
    let mut g = Gen::new(11);
    for i in 0..4 {
        replace(&t, &mut g, &format!("f{i}.bin"), 2 * MB);
    }
    t.backup();
    for i in 0..4 {
        replace(&t, &mut g, &format!("f{i}.bin"), 2 * MB);
    }
    let mut states = BTreeMap::new();
    backup_state(&t, &mut states);
    let away = t.tmp.path().join("p6-away");
    std::fs::rename(t.peer(6), &away).unwrap();

    let f = t.ok_json(&["forget", "data", "--keep-last", "1", "--prune"]);
    let p = &f["prune"];
    let deleted = p["packs_deleted"].as_u64().unwrap();
    assert!(deleted >= 1, "{p}");
    let pending = p["deletions"]["pending"].as_array().unwrap();
    assert_eq!(pending.len(), 1, "{p}");
    assert_eq!(pending[0]["peer"], "p6");
    assert_eq!(pending[0]["fragments"].as_u64(), Some(deleted), "{p}");
    assert!(pending[0]["reason"]
        .as_str()
        .unwrap()
        .contains("does not exist"));

    std::fs::rename(&away, t.peer(6)).unwrap();
    let held = |i| fragment_files(&t.peer(i)).len();
    assert!(
        held(6) > held(1),
        "p6 still holds the deleted packs' fragments"
    );
    // p6 lacks the new index log until a backup brings it (a problem), and
    // its deletions wait (not one).
    let c = t.json_code(1, &["check"]);
    assert!(
        strings(&c["problems"])
            .iter()
            .all(|p| p.starts_with("peer `p6` lacks")),
        "{c}"
    );
    assert_eq!(
        c["leftovers"]["pending_fragments"].as_u64(),
        Some(deleted),
        "{c}"
    );
    let text = t.run(&["check"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("deletions left for later"));

    // The next backup reaches p6 and does them.
    let b = t.backup();
    assert_eq!(b["packs_new"], 0);
    assert_eq!(held(6), held(1), "p6 holds what the others hold");
    let c = assert_healthy(&t);
    assert_eq!(c["leftovers"]["pending_fragments"], 0, "{c}");
    assert_eq!(c["leftovers"]["pending_manifests"], 0, "{c}");
    assert_eq!(restore_all_known(&t, &states), 1);
}

#[derive(Debug, PartialEq, Eq)]
enum Killed {
    /// Killed while it ran.
    Midway,
    /// It ended before the kill point, with this exit code.
    FinishedFirst(Option<i32>),
}

/// Start `trove ARGS`, SIGKILL it once `ready()` holds (or after `delay`).
fn kill_when(t: &Trove, args: &[&str], ready: &dyn Fn() -> bool) -> Killed {
    let mut cmd = t.command(args);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut guard = ChildGuard(Some(cmd.spawn().expect("spawn trove")));
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    loop {
        if let Some(s) = guard.child().try_wait().unwrap() {
            guard.0 = None;
            return Killed::FinishedFirst(s.code());
        }
        if ready() {
            let child = guard.child();
            child.kill().expect("SIGKILL");
            child.wait().expect("reap");
            guard.0 = None;
            return Killed::Midway;
        }
        assert!(
            Instant::now() < deadline,
            "{args:?} never reached its kill point"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn kill_9_at_random_points_of_prune_and_forget_prune_then_prune_check_and_restores_are_exact() {
    let t = Trove::setup(6, "4+2");
    let mut g = Gen::new(33);
    let mut rng = rand::thread_rng();
    let mut states = BTreeMap::new();
    for i in 0..10 {
        replace(&t, &mut g, &format!("f{i}.bin"), MB);
    }
    backup_state(&t, &mut states);
    // How long a prune takes here, to spread the timed kills over it.
    replace(&t, &mut g, "f0.bin", MB);
    backup_state(&t, &mut states);
    let started = Instant::now();
    t.ok_json(&[
        "forget",
        "data",
        "--keep-last",
        "1",
        "--prune",
        "--max-unused",
        "0",
    ]);
    let usual = started.elapsed();
    let mut tally = Vec::new();
    for round in 0..6 {
        for _ in 0..3 {
            let i = g.below(10);
            replace(&t, &mut g, &format!("f{i}.bin"), MB);
        }
        backup_state(&t, &mut states);
        let args: Vec<&str> = if round % 2 == 0 {
            vec!["prune", "--max-unused", "0"]
        } else {
            vec!["forget", "data", "--keep-last", "2", "--prune"]
        };
        let frags = t.all_fragments(6).len();
        let trash = trash_files(&t, 6);
        let delay = usual.mul_f64(rng.gen_range(0.0..0.9));
        let at = Instant::now();
        // The kill point: a random time, the first fragment a repack stores,
        // or the first deletion.
        let killed = match round % 3 {
            0 => kill_when(&t, &args, &|| at.elapsed() >= delay),
            1 => kill_when(&t, &args, &|| t.all_fragments(6).len() > frags),
            _ => kill_when(&t, &args, &|| trash_files(&t, 6) > trash),
        };
        if let Killed::FinishedFirst(code) = killed {
            assert_eq!(code, Some(0), "{args:?} ends well when not killed");
        } else if round % 3 != 0 {
            // Killed after it opened the home: its label stays, stale, and
            // the next command replaces it.
            assert!(t.home.join("lock").exists());
        }
        tally.push((round % 3, killed));
        // Whatever it was doing, the latest snapshot restores exactly.
        let (_, out) = t.restore("data:latest");
        assert_same_tree(&t.src, &out);
    }
    eprintln!("kill points (0 timed, 1 first new fragment, 2 first deletion): {tally:?}");

    let p = t.ok_json(&["prune", "--max-unused", "0"]);
    assert_eq!(p["deletions"]["pending"], serde_json::json!([]), "{p}");
    let c = assert_healthy(&t);
    let l = &c["leftovers"];
    for field in ["fragments", "pending_fragments", "pending_manifests"] {
        assert_eq!(l[field], 0, "{field}: {c}");
    }
    assert_eq!(
        c["fragments"].as_u64().unwrap() as usize,
        t.all_fragments(6).len(),
        "no fragment is left that the index does not name: {c}"
    );
    assert!(restore_all_known(&t, &states) >= 2);
    let (_, out) = t.restore("data:latest");
    assert_same_tree(&t.src, &out);
}

/// Wait for a child and capture its output.
fn finish(child: Child) -> std::process::Output {
    let mut guard = ChildGuard(Some(child));
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    while guard.child().try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "command did not finish");
        std::thread::sleep(Duration::from_millis(10));
    }
    let child = guard.0.take().unwrap();
    child.wait_with_output().expect("output")
}

#[test]
fn prune_racing_a_backup_loses_nothing() {
    let t = Trove::setup(6, "4+2");
    let mut g = Gen::new(55);
    let mut rng = rand::thread_rng();
    let mut states: BTreeMap<String, PathBuf> = BTreeMap::new();
    for i in 0..8 {
        replace(&t, &mut g, &format!("f{i}.bin"), MB + 4096 * i);
    }
    backup_state(&t, &mut states);
    let (mut committed, mut busy, mut waited) = (0, 0, 0);
    for round in 0..8 {
        for _ in 0..2 {
            let i = g.below(8);
            replace(&t, &mut g, &format!("f{i}.bin"), MB);
        }
        replace(&t, &mut g, &format!("new/r{round}.bin"), MB / 2);
        let state = record_state(&t, &format!("race{round}"));
        let spawn = |args: &[&str]| {
            let mut c = t.command(args);
            c.stdout(Stdio::piped()).stderr(Stdio::piped());
            c.spawn().expect("spawn trove")
        };
        let prune_args = ["--json", "forget", "data", "--keep-last", "3", "--prune"];
        let delay = Duration::from_millis(rng.gen_range(0..1500));
        let backup_first = rng.gen_bool(0.5);
        let (b, p) = if backup_first {
            let b = spawn(&["--json", "backup"]);
            std::thread::sleep(delay);
            (b, spawn(&prune_args))
        } else {
            let p = spawn(&prune_args);
            std::thread::sleep(delay);
            (spawn(&["--json", "backup"]), p)
        };
        let (b, p) = (finish(b), finish(p));
        assert_code(&p, 0, &prune_args);
        if stderr(&p).contains("waiting up to") {
            waited += 1;
        }
        match b.status.code() {
            Some(0) => {
                let id = id_of(&parse_json(&b), "snapshot");
                states.insert(id, state);
                committed += 1;
            }
            // The prune held the index: the backup said so and stored nothing.
            Some(1) if stderr(&b).contains("another trove process is using") => busy += 1,
            _ => panic!("backup: {}", describe(&b)),
        }
    }
    eprintln!(
        "race: {committed} backups committed, {busy} found the index busy, {waited} prunes waited"
    );
    assert!(restore_all_known(&t, &states) >= 1);
    let c = assert_healthy(&t);
    assert_eq!(c["leftovers"]["pending_fragments"], 0, "{c}");
}

#[test]
fn killed_backup_leftovers_are_reported_by_check_and_removed_by_prune() {
    let t = Trove::setup(6, "4+2");
    let mut g = Gen::new(77);
    for i in 0..3 {
        replace(&t, &mut g, &format!("big/f{i}.bin"), 14 * MB);
    }
    // Killed in the middle of a pack: some of its fragments are on peers.
    let killed = kill_when(&t, &["backup"], &|| {
        let n = t.all_fragments(6).len();
        n > 0 && !n.is_multiple_of(6)
    });
    eprintln!("backup: {killed:?}");
    // A write killed long ago left a temporary file in a peer folder.
    let stale = t.peer(1).join("tmp").join("0123abcd.tmp");
    write(&stale, &[7u8; 1234]);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(120))
        .unwrap();

    let on_peers = t.all_fragments(6).len() as u64;
    let c = t.ok_json(&["check"]);
    let indexed = c["fragments"].as_u64().unwrap();
    let l = &c["leftovers"];
    assert_eq!(
        l["fragments"].as_u64().unwrap(),
        on_peers - indexed,
        "every fragment the index does not name is a leftover: {c}"
    );
    assert_eq!(l["tmp_files"], 1, "{c}");
    assert_eq!(l["tmp_bytes"], 1234, "{c}");
    let text = t.run(&["check"]);
    if on_peers > indexed {
        assert!(String::from_utf8_lossy(&text.stdout).contains("leftovers of interrupted backups"));
    }

    let p = t.ok_json(&["prune"]);
    assert_eq!(p["tmp_files_removed"], 1, "{p}");
    assert!(!stale.exists());
    if on_peers > indexed {
        assert!(p["abandoned_uploads"].as_u64().unwrap() >= 1, "{p}");
    }
    let c = t.ok_json(&["check"]);
    assert!(
        c["leftovers"].as_object().unwrap().values().all(|v| v == 0),
        "{c}"
    );
    assert_eq!(
        c["fragments"].as_u64().unwrap() as usize,
        t.all_fragments(6).len()
    );
    let b = t.backup();
    assert_eq!(b["unreadable"], serde_json::json!([]));
    let (_, out) = t.restore("data:latest");
    assert_same_tree(&t.src, &out);
    assert_healthy(&t);
}

#[test]
fn a_busy_index_names_its_holder_and_prune_waits_for_it() {
    let t = Trove::setup(3, "2+1");
    make_small_tree(&t.src, 9);
    t.backup();
    let me = format!("pid {}", std::process::id());
    // This test process holds the index, as a running backup would.
    let held = trove_repo::Home::open(&t.home).unwrap();
    let out = t.run(&["snapshots"]);
    assert_code(&out, 1, &["snapshots"]);
    let err = stderr(&out);
    assert!(
        err.contains("another trove process is using") && err.contains(&me),
        "{err}"
    );
    let out = t.run(&["prune", "--wait", "1s"]);
    assert_code(&out, 1, &["prune"]);
    assert!(stderr(&out).contains("waited 1s"), "{}", describe(&out));

    // A prune with time to wait says for whom, and goes on once it ends.
    let mut c = t.command(&["--json", "prune", "--wait", "2m"]);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = ChildGuard(Some(c.spawn().unwrap()));
    let mut lines = BufReader::new(child.child().stderr.take().unwrap()).lines();
    let first = lines.next().expect("a line on stderr").unwrap();
    assert!(
        first.contains("waiting up to 120s") && first.contains(&me),
        "{first}"
    );
    drop(held);
    let out = finish(child.0.take().unwrap());
    assert_code(&out, 0, &["prune"]);
    assert_eq!(parse_json(&out)["packs_deleted"], 0);
    assert!(
        !t.home.join("lock").exists(),
        "a finished command removes its label"
    );
}

/// A folder peer's trash keeps what prune deleted for the grace period
/// (undelete can still bring it back), and prune empties it afterwards.
#[test]
fn folder_trash_is_emptied_after_its_grace_and_not_before() {
    let t = Trove::setup(3, "2+1");
    let mut g = Gen::new(91);
    replace(&t, &mut g, "a.bin", 3 << 20);
    t.backup();
    replace(&t, &mut g, "a.bin", 3 << 20);
    t.backup();
    let f = t.ok_json(&["forget", "data", "--keep-last", "1", "--prune"]);
    assert_eq!(f["prune"]["trash_files_purged"], 0, "{f}");
    let in_trash = trash_files(&t, 3);
    assert!(in_trash >= 3, "{in_trash}");
    // Within the grace period: kept, and undelete still lists the snapshot.
    let p = t.ok_json(&["prune", "data", "--folder-trash-grace", "1h"]);
    assert_eq!(p["trash_files_purged"], 0, "{p}");
    assert_eq!(trash_files(&t, 3), in_trash);
    let listed = t.ok_json(&["undelete", "data"]);
    assert_eq!(listed["snapshots"].as_array().unwrap().len(), 1, "{listed}");
    // Past it: emptied, and what was deleted is gone for good.
    let p = t.ok_json(&["prune", "data", "--folder-trash-grace", "0s"]);
    assert_eq!(
        p["trash_files_purged"].as_u64().unwrap() as usize,
        in_trash,
        "{p}"
    );
    assert_eq!(trash_files(&t, 3), 0);
    let listed = t.ok_json(&["undelete", "data"]);
    assert!(
        listed["snapshots"].as_array().unwrap().is_empty(),
        "{listed}"
    );
    let (_, restored) = t.restore("data:latest");
    assert_same_tree(&t.src, &restored);
    assert_healthy(&t);
}
