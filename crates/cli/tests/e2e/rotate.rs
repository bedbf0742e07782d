//! Master secret rotation end to end (issue 15, `trove recovery rotate`):
//! an owner with two real node processes and two folder peers rotates; the
//! nodes move its data to the new owner id, the old phrase opens nothing
//! any more, the new phrase recovers every snapshot (old and new) on a new
//! machine. A rotation that cannot reach a peer stops, blocks every other
//! command until it is finished, and finishes when run again; one killed
//! with SIGKILL at a random moment finishes the same way.

use crate::common::*;
use crate::nodes::{nodes_for, owner_id};
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;

fn phrase_of(v: &Value) -> String {
    v["phrase"].as_str().expect("phrase").to_owned()
}

#[test]
fn a_rotation_moves_every_peer_to_the_new_secret_and_only_the_new_phrase_recovers() {
    let t = Trove::new();
    let old_phrase = phrase_of(&t.init());
    let mut nodes = nodes_for(&t, 2, "1G");
    t.add_folder_peers(2);
    t.create_container("2+2");
    make_small_tree(&t.src, 41);
    t.backup();
    let (old_owner, old_id) = (owner_id(&t), t.ok_json(&["whoami"])["identity"].clone());

    // A node that cannot be reached stops the rotation, which then blocks
    // every command that unlocks, and finishes when run again.
    nodes[1].kill();
    let out = t.run(&["recovery", "rotate"]);
    assert_code(&out, 1, &["recovery", "rotate (node down)"]);
    assert!(stderr(&out).contains("node2"), "{}", describe(&out));
    assert!(
        stderr(&out).contains("run `trove recovery rotate` again"),
        "{}",
        describe(&out)
    );
    let out = t.run(&["backup"]);
    assert_code(&out, 1, &["backup (rotation under way)"]);
    assert!(stderr(&out).contains("rotation"), "{}", describe(&out));
    let out = t.run(&["status"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ROTATION IS NOT FINISHED"),
        "{}",
        describe(&out)
    );
    nodes[1].restart();
    let v = t.ok_json(&["recovery", "rotate"]);
    assert_eq!(v["resumed"], true, "{v}");
    assert_eq!(v["peers"].as_array().unwrap().len(), 4, "{v}");
    assert_eq!(v["containers"].as_array().unwrap().len(), 1, "{v}");
    let new_phrase = phrase_of(&v);
    assert_ne!(new_phrase, old_phrase);
    let new_owner = owner_id(&t);
    assert_ne!(new_owner, old_owner);
    assert_ne!(t.ok_json(&["whoami"])["identity"], old_id);
    assert_eq!(v["owner_id"], new_owner.as_str());
    for n in &nodes {
        assert!(
            !n.owner_dir(&old_owner).exists(),
            "{} kept the old owner's folder",
            n.name
        );
        assert!(
            n.owner_dir(&new_owner).is_dir(),
            "{} has no folder for the new owner",
            n.name
        );
    }
    assert_eq!(
        t.ok_json(&["recovery", "phrase"])["phrase"],
        new_phrase.as_str()
    );

    // Backups go on; everything reads back.
    make_small_tree(&t.src.join("after"), 42);
    t.backup();
    assert_clean(&t.ok_json(&["check", "--read-data"]));

    // The old phrase reaches nothing stored since: the nodes no longer know
    // its owner id, and the folder peers' live objects are the new
    // identity's. Only the copies the rotation replaced, waiting in the
    // folder peers' trash for the grace period, still open with it: the
    // snapshot made before the rotation (design §2a).
    let stale = Trove::new();
    let pf = stale.tmp.path().join("old-phrase.txt");
    std::fs::write(&pf, &old_phrase).unwrap();
    stale.ok_json(&["recover", "--phrase-file", &pf.display().to_string()]);
    add_survivors(&stale, &t, &nodes[0].ticket(&t));
    let out = stale.run(&["--json", "sync"]);
    assert!(
        stderr(&out).contains("has not granted owner"),
        "{}",
        describe(&out)
    );
    let s = parse_json(&out);
    assert_eq!(s["snapshots"], 1, "only the snapshot from before: {s}");
    let (_, dir) = stale.restore("data:latest");
    assert!(
        dir.join("docs/letter-00.txt").is_file(),
        "the snapshot from before restores"
    );
    assert!(
        !dir.join("after").exists(),
        "the old phrase opened data stored after the rotation"
    );

    // The new phrase recovers both snapshots exactly.
    let first = t.snapshots()[0]["id"].as_str().unwrap().to_owned();
    let ticket = nodes[0].ticket(&t);
    t.lose_home_and_recover(&new_phrase);
    add_survivors(&t, &t, &ticket);
    let s = t.ok_json(&["sync"]);
    assert_eq!(s["snapshots"], 2, "{s}");
    let (_, dir) = t.restore("data:latest");
    assert_same_tree(&t.src, &dir);
    let (_, old_dir) = t.restore(&first[..8]);
    assert!(
        old_dir.join("after").symlink_metadata().is_err(),
        "the first snapshot is the old tree"
    );
}

/// A `check --read-data` that read every blob and found nothing wrong.
fn assert_clean(check: &Value) {
    assert_eq!(
        check["problems"].as_array().map(Vec::len),
        Some(0),
        "{check}"
    );
    assert_eq!(check["packs_unrecoverable"], 0, "{check}");
    assert!(check["blobs_verified"].as_u64().unwrap() > 0, "{check}");
}

/// On `home`'s machine: add the first node (by `ticket`) and `owner`'s
/// first folder peer, as after losing a machine.
fn add_survivors(home: &Trove, owner: &Trove, ticket: &str) {
    home.ok_json(&["peer", "add", "found", ticket]);
    let loc = format!("dir:{}", owner.peer(1).display());
    home.ok_json(&["peer", "add", "disk", &loc]);
}

#[test]
fn a_rotation_killed_at_a_random_moment_finishes_when_run_again() {
    let t = Trove::new();
    t.init();
    let nodes = nodes_for(&t, 1, "1G");
    t.add_folder_peers(3);
    t.create_container("2+2");
    make_small_tree(&t.src, 43);
    t.backup();
    t.backup();
    // Kill it at later and later moments (a random start, then 40 ms
    // steps) until a run finishes before its kill: each run resumes what
    // the killed ones left.
    let mut g = Gen::new(std::process::id() as u64);
    let mut delay = Duration::from_millis(10 + g.below(30));
    let mut killed = 0;
    loop {
        let mut c = t.command(&["recovery", "rotate"]);
        c.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = ChildGuard(Some(c.spawn().unwrap()));
        std::thread::sleep(delay);
        let done = child.child().try_wait().unwrap().is_some();
        let _ = child.child().kill();
        let (code, err) = child.finish(Duration::from_secs(30));
        if done {
            assert_eq!(
                code,
                Some(0),
                "a rotation after {killed} kills failed: {err}"
            );
            break;
        }
        killed += 1;
        assert!(killed < 200, "the rotation never finished");
        delay += Duration::from_millis(40);
    }
    eprintln!("rotation finished after {killed} kills (last delay {delay:?})");
    assert!(killed > 0, "no run was killed");
    // Every command works again.
    make_small_tree(&t.src.join("after"), 44);
    t.backup();
    assert_clean(&t.ok_json(&["check", "--read-data"]));
    let phrase = t.ok_json(&["recovery", "phrase"])["phrase"]
        .as_str()
        .unwrap()
        .to_owned();
    let ticket = nodes[0].ticket(&t);
    t.lose_home_and_recover(&phrase);
    add_survivors(&t, &t, &ticket);
    t.ok_json(&["sync"]);
    let (_, dir) = t.restore("data:latest");
    assert_same_tree(&t.src, &dir);
}
