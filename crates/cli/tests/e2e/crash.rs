//! `kill -9` in the middle of a backup leaves nothing that a later backup,
//! `trove check --read-data` or a restore trips over.

use crate::common::*;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// How long to wait for the killed backup to reach its kill point.
const KILL_WAIT: Duration = Duration::from_secs(240);

#[derive(Debug, PartialEq, Eq)]
enum Killed {
    /// Killed mid-way, with this many fragment files on the peers.
    At(usize),
    /// The backup finished before the kill point: nothing was exercised.
    FinishedFirst(Option<i32>),
}

fn fragment_count(t: &Trove) -> usize {
    (1..=6).map(|p| fragment_files(&t.peer(p)).len()).sum()
}

/// Start `trove backup`, SIGKILL it once `ready(fragment files)` holds.
fn kill_backup_when(t: &Trove, ready: impl Fn(usize) -> bool) -> Killed {
    let mut cmd = t.command(&["--json", "backup"]);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut guard = ChildGuard(Some(cmd.spawn().expect("spawn backup")));
    let deadline = Instant::now() + KILL_WAIT;
    loop {
        if let Some(s) = guard.child().try_wait().unwrap() {
            guard.0 = None;
            return Killed::FinishedFirst(s.code());
        }
        let n = fragment_count(t);
        if ready(n) {
            let child = guard.child();
            child.kill().expect("SIGKILL the backup");
            child.wait().expect("reap the backup");
            guard.0 = None;
            return Killed::At(n);
        }
        assert!(
            Instant::now() < deadline,
            "backup made no fragments within {KILL_WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn kill_9_mid_backup_early_and_late_then_backup_check_read_data_and_restore_are_clean() {
    let t = Trove::setup(6, "4+2");
    let mut g = Gen::new(21);
    // About 60 MiB of noise: streamed big files and smaller ones.
    for i in 0..3 {
        write(
            &t.src.join(format!("big/stream-{i}.bin")),
            &g.bytes(14 << 20),
        );
    }
    for i in 0..12 {
        write(
            &t.src.join(format!("small/file-{i:02}.bin")),
            &g.bytes(3 << 19),
        );
    }
    write(&t.src.join("notes.txt"), &g.text(100_000));

    // Early: as soon as the first fragment is on a peer.
    let early = kill_backup_when(&t, |n| n >= 1);
    eprintln!("early kill: {early:?}");
    // Late: after two more packs' worth of fragments (6 per pack).
    let base = fragment_count(&t);
    let late = kill_backup_when(&t, |n| n >= base + 12);
    eprintln!("late kill: {late:?}");
    for k in [&early, &late] {
        if let Killed::FinishedFirst(code) = k {
            assert_eq!(*code, Some(0), "an unkilled backup succeeds");
        }
    }

    let b = t.backup();
    assert_eq!(b["unreadable"], serde_json::json!([]));
    let snaps = t.snapshots();
    assert_eq!(snaps.last().unwrap()["id"], b["snapshot"]);
    // Only runs that got to the end can have committed.
    let finished = [&early, &late]
        .iter()
        .filter(|k| matches!(k, Killed::FinishedFirst(_)))
        .count();
    assert!(snaps.len() <= 3 && snaps.len() > finished, "{snaps:?}");

    let c = t.ok_json(&["check", "--read-data"]);
    assert_eq!(c["problems"], serde_json::json!([]), "{c}");
    assert!(c["blobs_verified"].as_u64().unwrap() > 0, "{c}");
    assert_eq!(c["fragments_ok"], c["fragments"], "{c}");

    let (r, out) = t.restore("data:latest");
    assert_same_tree(&t.src, &out);
    assert_eq!(r["fragment_problems"], serde_json::json!([]));
    // A further backup finds everything already stored.
    let b2 = t.backup();
    assert_eq!(b2["bytes_read"], 0, "{b2}");
    assert_eq!(b2["packs_new"], 0, "{b2}");
}
