//! Faults through the real `trove` binary: lost and damaged peers and
//! fragments, tampered manifests, wrong passphrases, unreadable sources and
//! peers that go away during a backup.

use crate::common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn u(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no number `{field}` in {v}"))
}

/// The problems of a restore report: (peer, fragment id, problem).
fn fragment_problems(r: &Value) -> Vec<(String, String, String)> {
    r["fragment_problems"]
        .as_array()
        .unwrap_or_else(|| panic!("no fragment_problems in {r}"))
        .iter()
        .map(|p| {
            (
                p["peer"].as_str().unwrap().to_owned(),
                p["fragment"].as_str().unwrap().to_owned(),
                p["problem"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Data-shard fragments (index < k), which a restore always reads first:
/// (peer number, path), one per peer, in peer order.
fn data_shards_one_per_peer(t: &Trove, peers: usize) -> Vec<(usize, PathBuf)> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (peer, f) in t.all_fragments(peers) {
        let h = fragment_header(&f);
        if h.index < h.k && seen.insert(peer) {
            out.push((peer, f));
        }
    }
    out
}

fn problems(c: &Value) -> Vec<String> {
    strings(&c["problems"])
}

/// Whether a message names peer `p{n}`: as `` `pN` `` or as a peer error's
/// label `peer pN (dir:...)`.
fn names_peer(s: &str, n: usize) -> bool {
    s.contains(&format!("`p{n}`")) || s.contains(&format!("peer p{n} ("))
}

#[track_caller]
fn assert_problem(c: &Value, needles: &[&str]) {
    let p = problems(c);
    assert!(
        p.iter().any(|s| needles.iter().all(|n| s.contains(n))),
        "no problem containing all of {needles:?} in {p:#?}"
    );
}

#[test]
fn two_of_six_peers_deleted_restore_exactly_and_name_the_missing_peers() {
    let t = Trove::setup(6, "4+2");
    make_small_tree(&t.src, 10);
    t.backup();
    let victims: Vec<usize> = data_shards_one_per_peer(&t, 6)
        .into_iter()
        .map(|(p, _)| p)
        .take(2)
        .collect();
    assert_eq!(victims.len(), 2);
    for v in &victims {
        std::fs::remove_dir_all(t.peer(*v)).unwrap();
    }
    let victim_names: BTreeSet<String> = victims.iter().map(|v| format!("p{v}")).collect();

    let (r, out) = t.restore("data:latest");
    assert_same_tree(&t.src, &out);
    assert_eq!(r["lost"], serde_json::json!([]));
    let named: BTreeSet<String> = fragment_problems(&r).into_iter().map(|p| p.0).collect();
    assert_eq!(named, victim_names, "{r}");
    for (_, _, why) in fragment_problems(&r) {
        assert!(why.contains("unavailable"), "{why}");
    }

    let c = t.json_code(1, &["check"]);
    for v in &victims {
        let p = problems(&c);
        assert!(
            p.iter()
                .any(|s| names_peer(s, *v) && s.contains("unavailable")),
            "p{v} not named unavailable in {p:#?}"
        );
    }
    assert_eq!(u(&c, "packs_unrecoverable"), 0, "{c}");
    assert_eq!(
        u(&c, "fragments_ok"),
        u(&c, "fragments") - 2 * u(&c, "packs"),
        "{c}"
    );
    // The human output says the same.
    let out = t.run(&["check"]);
    assert_code(&out, 1, &["check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for v in &victims {
        assert!(names_peer(&text, *v), "{text}");
    }
}

#[test]
fn corrupt_truncated_and_deleted_fragments_are_routed_around_and_reported() {
    let t = Trove::setup(6, "4+2");
    make_small_tree(&t.src, 11);
    t.backup();
    let shards = data_shards_one_per_peer(&t, 6);
    assert!(shards.len() >= 2);
    let (pa, fa) = shards[0].clone();
    let (pb, fb) = shards[1].clone();
    assert_ne!(pa, pb);
    let orig_a = std::fs::read(&fa).unwrap();
    let orig_b = std::fs::read(&fb).unwrap();
    let repair = || {
        for (f, orig) in [(&fa, &orig_a), (&fb, &orig_b)] {
            if f.exists() {
                make_writable(f);
            }
            std::fs::write(f, orig).unwrap();
        }
    };

    // A flipped byte on each of two peers.
    flip_last_byte(&fa);
    flip_last_byte(&fb);
    let (r, out) = t.restore("data:latest");
    assert_same_tree(&t.src, &out);
    let got: BTreeSet<_> = fragment_problems(&r)
        .into_iter()
        .map(|(peer, frag, why)| (peer, frag, why.starts_with("corrupt")))
        .collect();
    let want: BTreeSet<_> = [(pa, &fa), (pb, &fb)]
        .into_iter()
        .map(|(p, f)| (format!("p{p}"), file_name(f), true))
        .collect();
    assert_eq!(got, want, "{r}");
    let c = t.json_code(1, &["check"]);
    assert_problem(&c, &[&format!("on peer `p{pa}`: corrupt")]);
    assert_problem(&c, &[&format!("on peer `p{pb}`: corrupt")]);
    assert_eq!(problems(&c).len(), 2, "{c}");
    repair();
    t.ok_json(&["check"]);

    // A truncated fragment.
    make_writable(&fa);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&fa)
        .unwrap()
        .set_len(orig_a.len() as u64 / 2)
        .unwrap();
    let (r, out) = t.restore("data:latest");
    assert_same_tree(&t.src, &out);
    let got: BTreeSet<_> = fragment_problems(&r)
        .into_iter()
        .map(|(peer, frag, why)| (peer, frag, why.starts_with("corrupt")))
        .collect();
    assert_eq!(
        got,
        [(format!("p{pa}"), file_name(&fa), true)].into(),
        "{r}"
    );
    let c = t.json_code(1, &["check"]);
    assert_problem(&c, &[&format!("on peer `p{pa}`: corrupt")]);
    assert_eq!(problems(&c).len(), 1, "{c}");
    repair();
    t.ok_json(&["check"]);

    // A deleted fragment.
    std::fs::remove_file(&fb).unwrap();
    let (r, out) = t.restore("data:latest");
    assert_same_tree(&t.src, &out);
    let got: BTreeSet<_> = fragment_problems(&r).into_iter().collect();
    assert_eq!(
        got,
        [(format!("p{pb}"), file_name(&fb), "missing".to_owned())].into(),
        "{r}"
    );
    let c = t.json_code(1, &["check"]);
    assert_problem(&c, &[&format!("on peer `p{pb}`: missing")]);
    assert_eq!(problems(&c).len(), 1, "{c}");
    repair();

    // Healthy again, down to every blob.
    let c = t.ok_json(&["check", "--read-data"]);
    assert!(u(&c, "blobs_verified") > 0, "{c}");
    assert_eq!(u(&c, "fragments_ok"), u(&c, "fragments"), "{c}");
    assert_eq!(u(&c, "snapshots"), 1, "{c}");
    assert_eq!(c["problems"], serde_json::json!([]));
}

#[test]
fn three_of_six_peers_deleted_restore_exits_3_and_writes_no_files() {
    let t = Trove::setup(6, "4+2");
    make_small_tree(&t.src, 12);
    t.backup();
    for v in [1, 3, 5] {
        std::fs::remove_dir_all(t.peer(v)).unwrap();
    }
    let (r, out) = t.restore_code(3, "data:latest", &[]);
    // The snapshot's trees were in the lost packs too: the whole source
    // folder is reported lost, as one entry, since its files cannot be named.
    let lost = r["lost"].as_array().unwrap();
    assert_eq!(lost.len(), 1, "{r}");
    for l in lost {
        assert!(
            l["error"].as_str().unwrap().contains("cannot be rebuilt"),
            "{r}"
        );
    }
    assert_eq!(u(&r, "files"), 0, "{r}");
    // Every pack had one fragment on each peer, so nothing can come back, and
    // nothing half-written is left.
    let target = out.parent().unwrap();
    assert_eq!(all_files(target), Vec::<PathBuf>::new());
    let c = t.json_code(1, &["check"]);
    assert!(u(&c, "packs_unrecoverable") >= 1, "{c}");
    assert_eq!(u(&c, "packs_unrecoverable"), u(&c, "packs"), "{c}");
    assert_problem(&c, &["its data is lost"]);
}

#[test]
fn pack_beyond_parity_loses_exactly_its_files_and_the_rest_restores() {
    let t = Trove::setup(6, "4+2");
    make_small_tree(&t.src, 13);
    t.backup();
    let before: BTreeSet<PathBuf> = t.all_fragments(6).into_iter().map(|f| f.1).collect();
    // A streamed big file: its first pack holds nothing else (trees come last).
    let big = t.src.join("video/big.bin");
    write(&big, &Gen::new(14).bytes(24 << 20));
    let b = t.backup();
    assert!(u(&b, "packs_new") >= 2, "{b}");
    let new: Vec<(usize, PathBuf)> = t
        .all_fragments(6)
        .into_iter()
        .filter(|f| !before.contains(&f.1))
        .collect();
    let biggest = new
        .iter()
        .map(|f| fragment_header(&f.1))
        .max_by_key(|h| h.pack_len)
        .unwrap();
    assert!(
        biggest.pack_len >= trove_core::pack::DEFAULT_PACK_TARGET as u64,
        "a full pack: {biggest:?}"
    );
    let doomed: Vec<&(usize, PathBuf)> = new
        .iter()
        .filter(|f| fragment_header(&f.1).pack == biggest.pack)
        .collect();
    assert_eq!(doomed.len(), 6);
    for (_, f) in doomed.iter().take(3) {
        std::fs::remove_file(f).unwrap();
    }

    let (r, out) = t.restore_code(3, "data:latest", &[]);
    let lost: Vec<PathBuf> = r["lost"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| PathBuf::from(l["path"].as_str().unwrap()))
        .collect();
    assert_eq!(lost.len(), 1, "{r}");
    assert!(
        lost[0].ends_with("src/video/big.bin"),
        "lost names the big file: {r}"
    );
    assert_eq!(
        diff_trees(&t.src, &out),
        ["missing: video/big.bin"],
        "only the lost file differs, and it is not left half-written"
    );
    assert!(!out.join("video/big.bin").exists());
    let c = t.json_code(1, &["check"]);
    assert_eq!(u(&c, "packs_unrecoverable"), 1, "{c}");
    assert_problem(&c, &[&biggest.pack[..8], "its data is lost"]);
}

#[test]
fn tampered_manifests_are_refused_by_check_naming_the_peer_and_replaced_by_next_backup() {
    let t = Trove::setup(6, "4+2");
    make_small_tree(&t.src, 15);
    let b = t.backup();
    let snap = id_of(&b, "snapshot");
    let containers = t.ok_json(&["container", "list"]);
    let cid = containers[0]["id"].as_str().unwrap().to_owned();
    let snap_file = |p: usize| t.peer(p).join(format!("meta/{cid}/snapshots/{snap}"));
    let cont_file = |p: usize| t.peer(p).join(format!("meta/{cid}/container"));
    assert!(snap_file(3).is_file() && cont_file(5).is_file());
    t.ok_json(&["check"]);

    for f in [snap_file(3), cont_file(5)] {
        let mut bytes = std::fs::read(&f).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 1;
        make_writable(&f);
        std::fs::write(&f, bytes).unwrap();
    }
    let c = t.json_code(1, &["check"]);
    let p = problems(&c);
    let names = |s: &String, n: usize, what: &str| {
        names_peer(s, n) && s.contains(what) && s.contains("invalid") && s.contains("refused")
    };
    assert!(p.iter().any(|s| names(s, 3, &snap[..8])), "{p:#?}");
    assert!(
        p.iter().any(|s| names(s, 5, "container manifest")),
        "{p:#?}"
    );
    assert_eq!(problems(&c).len(), 2, "{c}");

    let b2 = t.backup();
    let w = strings(&b2["warnings"]);
    assert!(
        w.iter().any(|w| names_peer(w, 3) && w.contains("altered")),
        "{w:?}"
    );
    assert!(
        w.iter().any(|w| names_peer(w, 5) && w.contains("altered")),
        "{w:?}"
    );
    t.ok_json(&["check"]);
    assert_eq!(
        std::fs::read(snap_file(3)).unwrap(),
        std::fs::read(snap_file(1)).unwrap()
    );
    assert_eq!(
        std::fs::read(cont_file(5)).unwrap(),
        std::fs::read(cont_file(1)).unwrap()
    );
}

/// Every file under `root` with its bytes.
fn snapshot_of_files(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    all_files(root)
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

#[test]
fn wrong_passphrase_exits_1_says_so_and_changes_nothing() {
    let t = Trove::setup(6, "4+2");
    make_small_tree(&t.src, 16);
    t.backup();
    write(&t.src.join("new-since.txt"), b"changed source");
    let keyfile = std::fs::read(t.home.join("keyfile")).unwrap();
    let peers = snapshot_of_files(&t.peers_dir);
    let target = t.fresh_dir("restore");
    let target_s = target.display().to_string();
    let cases: &[&[&str]] = &[
        &["backup"],
        &["--json", "backup"],
        &["check"],
        &["restore", "data:latest", "--target", &target_s],
        &["ls", "data:latest"],
    ];
    for args in cases {
        let out = t.run_with_pass("not the passphrase", args);
        assert_code(&out, 1, args);
        assert!(
            stderr(&out).contains("wrong passphrase"),
            "{}",
            describe(&out)
        );
    }
    assert!(!target.exists(), "a refused restore creates nothing");
    assert_eq!(std::fs::read(t.home.join("keyfile")).unwrap(), keyfile);
    assert_eq!(snapshot_of_files(&t.peers_dir), peers);
    assert_eq!(t.snapshots().len(), 1);
}

#[test]
fn init_twice_is_refused_and_leaves_the_keyfile_unchanged() {
    let t = Trove::new();
    let first = t.init();
    let keyfile = std::fs::read(t.home.join("keyfile")).unwrap();
    for pass in [PASS, "another passphrase"] {
        for args in [&["init"][..], &["--json", "init"][..]] {
            let out = t.run_with_pass(pass, args);
            assert_code(&out, 1, args);
            assert!(
                stderr(&out).contains("already holds a Trove identity"),
                "{}",
                describe(&out)
            );
            assert!(!String::from_utf8_lossy(&out.stdout).contains("phrase"));
        }
    }
    assert_eq!(std::fs::read(t.home.join("keyfile")).unwrap(), keyfile);
    // The first identity still unlocks with the first passphrase.
    t.add_folder_peers(1);
    let c = t.ok_json(&["container", "create", "data", t.src.to_str().unwrap()]);
    assert!(c["id"].is_string());
    assert!(first["fingerprint"].is_string());
}

#[test]
fn commands_without_init_say_to_run_trove_init_and_create_nothing() {
    let t = Trove::new();
    let target = t.fresh_dir("restore");
    let target_s = target.display().to_string();
    let src = t.src.display().to_string();
    let cases: &[&[&str]] = &[
        &["backup"],
        &["snapshots"],
        &["--json", "snapshots"],
        &["peer", "list"],
        &["peer", "add", "p1", "dir:/nonexistent/p1"],
        &["container", "list"],
        &["container", "create", "data", &src],
        &["check"],
        &["ls", "data:latest"],
        &["restore", "data:latest", "--target", &target_s],
    ];
    for args in cases {
        let out = t.run(args);
        assert_code(&out, 1, args);
        assert!(stderr(&out).contains("trove init"), "{}", describe(&out));
    }
    assert!(!t.home.exists(), "no command but init creates the home");
    assert!(!target.exists());
}

#[test]
fn unreadable_source_file_exits_3_is_listed_and_the_rest_is_committed() {
    let t = match Trove::new_unprivileged() {
        Ok(t) => t,
        Err(why) => {
            eprintln!("SKIPPED unreadable_source_file...: {why}");
            return;
        }
    };
    t.setup_in_place(6, "4+2");
    let mut g = Gen::new(17);
    for i in 0..5 {
        write(&t.src.join(format!("ok/file-{i}.txt")), &g.text(20_000));
    }
    write(&t.src.join("ok/noise.bin"), &g.bytes(300_000));
    let locked = t.src.join("locked.txt");
    write(&locked, b"you cannot read me");
    chmod(&locked, 0o000);
    let locked_dir = t.src.join("locked-dir");
    write(&locked_dir.join("inside.txt"), b"nor me");
    chmod(&locked_dir, 0o000);
    t.give_src_to_runner();
    let out = t.run(&["--json", "backup"]);
    assert_code(&out, 3, &["backup"]);
    let b = parse_json(&out);
    let unreadable: BTreeSet<PathBuf> = b["unreadable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| PathBuf::from(u["path"].as_str().unwrap()))
        .collect();
    assert_eq!(
        unreadable,
        [locked.clone(), locked_dir.clone()].into(),
        "{b}"
    );
    assert_eq!(u(&b, "files_new"), 6, "{b}");
    assert!(
        stderr(&out).contains("could not be read"),
        "{}",
        describe(&out)
    );
    let snaps = t.snapshots();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["id"], b["snapshot"]);
    // Human output names it too.
    let out = t.run(&["backup"]);
    assert_code(&out, 3, &["backup"]);
    assert!(stderr(&out).contains("locked.txt"), "{}", describe(&out));

    let (r, restored) = t.restore("data:latest");
    assert_eq!(r["lost"], serde_json::json!([]));
    // The unreadable folder is kept, empty, with its mode.
    let m = std::fs::metadata(restored.join("locked-dir")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777,
        0
    );
    chmod(&restored.join("locked-dir"), 0o755);
    chmod(&locked_dir, 0o755);
    let mut d = diff_trees(&t.src, &restored);
    d.sort();
    assert_eq!(d, ["missing: locked-dir/inside.txt", "missing: locked.txt"]);
}

#[test]
fn peer_folder_missing_during_backup_is_a_warning_and_restore_is_exact() {
    let t = Trove::setup(7, "4+2");
    make_small_tree(&t.src, 18);
    let away = t.peers_dir.join("p7-away");
    std::fs::rename(t.peer(7), &away).unwrap();
    let b = t.backup();
    let w = strings(&b["warnings"]);
    assert!(
        w.iter()
            .any(|w| names_peer(w, 7) && w.contains("unavailable")),
        "{w:?}"
    );
    assert!(
        !w.iter().any(|w| w.contains("more than one fragment")),
        "{w:?}"
    );
    assert!(
        !t.peer(7).exists(),
        "an absent peer folder is not recreated"
    );
    assert!(fragment_files(&away).is_empty());
    // Six live peers: one fragment of each pack on each.
    for p in 1..=6 {
        assert_eq!(fragment_files(&t.peer(p)).len() as u64, u(&b, "packs_new"));
    }
    let (r, out) = t.restore("data:latest");
    assert_same_tree(&t.src, &out);
    assert_eq!(r["fragment_problems"], serde_json::json!([]));
}

#[test]
fn read_only_peer_folder_during_backup_is_a_warning_and_its_fragments_go_elsewhere() {
    let t = match Trove::new_unprivileged() {
        Ok(t) => t,
        Err(why) => {
            eprintln!("SKIPPED read_only_peer_folder...: {why}");
            return;
        }
    };
    t.setup_in_place(7, "4+2");
    make_small_tree(&t.src, 19);
    t.give_src_to_runner();
    let ro = t.peer(2);
    let mut dirs: Vec<PathBuf> = vec![ro.clone()];
    for d in ["fragments", "meta", "tmp", "trash"] {
        if ro.join(d).is_dir() {
            dirs.push(ro.join(d));
        }
    }
    for d in &dirs {
        chmod(d, 0o555);
    }
    let b = t.backup();
    let w = strings(&b["warnings"]);
    assert!(
        w.iter()
            .any(|w| names_peer(w, 2) && w.contains("read-only")),
        "{w:?}"
    );
    assert!(fragment_files(&ro).is_empty());
    let packs = u(&b, "packs_new");
    let total: usize = (1..=7).map(|p| fragment_files(&t.peer(p)).len()).sum();
    assert_eq!(total as u64, packs * 6);
    for d in &dirs {
        chmod(d, 0o755);
    }
    let (_, out) = t.restore("data:latest");
    assert_same_tree(&t.src, &out);
}

#[test]
fn only_three_of_six_peers_left_backup_doubles_up_with_a_warning_or_commits_nothing() {
    let t = Trove::setup(6, "4+2");
    make_small_tree(&t.src, 20);
    for p in 4..=6 {
        std::fs::rename(t.peer(p), t.peers_dir.join(format!("p{p}-away"))).unwrap();
    }
    let out = t.run(&["--json", "backup"]);
    if out.status.success() {
        let b = parse_json(&out);
        let w = strings(&b["warnings"]);
        assert!(
            w.iter().any(|w| w.contains("more than one fragment")),
            "{w:?}"
        );
        for p in 4..=6 {
            assert!(w.iter().any(|w| names_peer(w, p)), "{w:?}");
        }
        assert_eq!(t.snapshots().len(), 1);
        let packs = u(&b, "packs_new") as usize;
        for p in 1..=3 {
            assert_eq!(fragment_files(&t.peer(p)).len(), 2 * packs);
        }
        let (_, restored) = t.restore("data:latest");
        assert_same_tree(&t.src, &restored);
    } else {
        assert_code(&out, 1, &["backup"]);
        assert_eq!(t.snapshots().len(), 0);
    }
}
