//! Recovery from nothing, through the real binary: two containers on six
//! folder peers, TROVE_HOME destroyed, recovered once from the 24-word
//! phrase and once from 3-of-5 SLIP-39 shares with one peer added by hand;
//! every file restored byte for byte, and a further backup stores only new data.
//! Also: each split makes a new share set, and `verify` names the set of
//! each share and refuses shares of several sets.

use crate::common::Turn;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Env {
    dir: tempfile::TempDir,
    /// This test's turn, held as long as the world.
    _turn: Turn,
}

impl Env {
    fn new() -> Self {
        Self {
            _turn: Turn::shared(),
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_trove"))
            .args(args)
            .env("TROVE_HOME", self.p("home"))
            .env("TROVE_PASSPHRASE", "local pass")
            .env_remove("TROVE_SLIP39_PASSPHRASE")
            .output()
            .unwrap()
    }
    fn ok(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        assert!(
            out.status.success(),
            "trove {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }
}

fn write_data(root: &Path, seed: u64, n: usize) {
    let mut x = seed | 1;
    for i in 0..n {
        let dir = root.join(format!("d{}", i % 3));
        std::fs::create_dir_all(&dir).unwrap();
        let len = 1000 + (i * 7919) % 300_000;
        let data: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(dir.join(format!("f{i}.bin")), data).unwrap();
    }
}

fn same_tree(a: &Path, b: &Path) {
    for e in std::fs::read_dir(a).unwrap() {
        let e = e.unwrap();
        let other = b.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            same_tree(&e.path(), &other);
        } else {
            assert_eq!(
                std::fs::read(e.path()).unwrap(),
                std::fs::read(&other).unwrap_or_default(),
                "{} differs",
                other.display()
            );
        }
    }
}

fn setup() -> (Env, String, Vec<String>) {
    let env = Env::new();
    write_data(&env.p("photos"), 1, 30);
    write_data(&env.p("papers"), 2, 20);
    let init = env.ok(&["init"]);
    let phrase = init["phrase"].as_str().unwrap().to_owned();
    assert_eq!(phrase.split(' ').count(), 24);
    for i in 1..=6 {
        let loc = format!("dir:{}", env.p(&format!("peers/p{i}")).display());
        env.ok(&[
            "peer",
            "add",
            &format!("p{i}"),
            &loc,
            "--label",
            &format!("site=s{}", i % 3),
        ]);
    }
    env.ok(&[
        "container",
        "create",
        "photos",
        env.p("photos").to_str().unwrap(),
    ]);
    env.ok(&[
        "container",
        "create",
        "papers",
        env.p("papers").to_str().unwrap(),
    ]);
    env.ok(&["backup", "photos"]);
    env.ok(&["backup", "papers"]);
    let split = env.ok(&["recovery", "split", "--threshold", "3", "--shares", "5"]);
    let shares: Vec<String> = split["shares"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["mnemonic"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(shares.len(), 5);
    (env, phrase, shares)
}

/// Destroy the home, recover with `recover_args`, add only peer p4 by hand,
/// sync, restore both containers and back up again.
fn recover_and_restore(env: &Env, recover_args: &[&str]) {
    std::fs::remove_dir_all(env.p("home")).unwrap();
    env.ok(recover_args);
    let loc = format!("dir:{}", env.p("peers/p4").display());
    env.ok(&["peer", "add", "only-one", &loc]);
    let sync = env.ok(&["sync"]);
    assert_eq!(sync["containers"], serde_json::json!(["papers", "photos"]));
    assert_eq!(sync["snapshots"], 2);
    assert_eq!(sync["peers_added"].as_array().unwrap().len(), 5, "{sync}");
    assert!(sync["refused"].as_array().unwrap().is_empty());
    let snaps = env.ok(&["snapshots"]);
    assert_eq!(snaps.as_array().unwrap().len(), 2);
    for c in ["photos", "papers"] {
        let target = env.p(&format!("restored-{c}"));
        let _ = std::fs::remove_dir_all(&target);
        let r = env.ok(&[
            "restore",
            &format!("{c}:latest"),
            "--target",
            target.to_str().unwrap(),
        ]);
        assert!(r["lost"].as_array().unwrap().is_empty());
        same_tree(&env.p(c), &target.join(c));
    }
    // The next backup continues the container: only the new file is stored.
    std::fs::write(env.p("photos/new.txt"), b"a new file after recovery").unwrap();
    let b = env.ok(&["backup", "photos"]);
    assert_eq!(
        b["blobs_new"], 3,
        "the new file's chunk and the two changed trees: {b}"
    );
    assert!(b["bytes_stored"].as_u64().unwrap() < 100_000, "{b}");
    std::fs::remove_file(env.p("photos/new.txt")).unwrap();
    let check = env.run(&["check", "--read-data"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}

#[test]
fn recover_from_the_phrase_and_one_peer() {
    let (env, phrase, _) = setup();
    std::fs::write(env.p("phrase.txt"), format!("{}\n", phrase.to_uppercase())).unwrap();
    let pf = env.p("phrase.txt");
    recover_and_restore(&env, &["recover", "--phrase-file", pf.to_str().unwrap()]);
}

#[test]
fn recover_from_three_of_five_shares_and_one_peer() {
    let (env, _, shares) = setup();
    // Any three: the 2nd, 4th and 5th.
    let picked = [&shares[1], &shares[3], &shares[4]];
    std::fs::write(
        env.p("three.txt"),
        picked.iter().map(|s| format!("{s}\n")).collect::<String>(),
    )
    .unwrap();
    let drill = env.ok(&[
        "recovery",
        "verify",
        "--shares-file",
        env.p("three.txt").to_str().unwrap(),
    ]);
    assert_eq!(drill["ok"], true);
    let sf = env.p("three.txt");
    recover_and_restore(&env, &["recover", "--shares-file", sf.to_str().unwrap()]);
}

#[test]
fn bad_recovery_input_is_refused_clearly() {
    let (env, phrase, shares) = setup();
    // Too few shares: says how many more.
    std::fs::write(env.p("two.txt"), format!("{}\n{}\n", shares[0], shares[1])).unwrap();
    let out = env.run(&[
        "recovery",
        "verify",
        "--shares-file",
        env.p("two.txt").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1 more share"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A misspelt word is named by position.
    let mut words: Vec<&str> = phrase.split(' ').collect();
    words[6] = "notaword";
    std::fs::write(env.p("bad.txt"), words.join(" ")).unwrap();
    // The home still holds an identity: refused before anything is read.
    let out = env.run(&[
        "recover",
        "--phrase-file",
        env.p("bad.txt").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds"));
    let keyfile = std::fs::read(env.p("home/keyfile")).unwrap();
    std::fs::remove_dir_all(env.p("home")).unwrap();
    let out = env.run(&[
        "recover",
        "--phrase-file",
        env.p("bad.txt").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("word 7"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Shares with a wrong SLIP-39 passphrase reconstruct another identity: the drill says so.
    let other = Env::new();
    other.ok(&["init"]);
    let o = other.ok(&["recovery", "split", "--threshold", "2", "--shares", "3"]);
    let foreign: Vec<String> = o["shares"]
        .as_array()
        .unwrap()
        .iter()
        .take(2)
        .map(|s| s["mnemonic"].as_str().unwrap().to_owned())
        .collect();
    std::fs::write(env.p("foreign.txt"), foreign.join("\n")).unwrap();
    // A peer that holds none of this identity's data.
    std::fs::write(env.p("phrase.txt"), &phrase).unwrap();
    env.ok(&[
        "recover",
        "--phrase-file",
        env.p("phrase.txt").to_str().unwrap(),
    ]);
    assert_ne!(
        std::fs::read(env.p("home/keyfile")).unwrap(),
        keyfile,
        "a new keyfile with a new local salt"
    );
    let drill = env.run(&[
        "--json",
        "recovery",
        "verify",
        "--shares-file",
        env.p("foreign.txt").to_str().unwrap(),
    ]);
    assert_eq!(drill.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&drill.stdout).unwrap();
    assert_eq!(v["ok"], false);
    other.ok(&[
        "peer",
        "add",
        "theirs",
        &format!("dir:{}", other.p("peer").display()),
    ]);
    other.ok(&[
        "container",
        "create",
        "x",
        env.p("papers").to_str().unwrap(),
    ]);
    other.ok(&["backup", "x"]);
    env.ok(&[
        "peer",
        "add",
        "theirs",
        &format!("dir:{}", other.p("peer").display()),
    ]);
    let out = env.run(&["sync"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("another identity"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mnemonics(split: &Value) -> Vec<String> {
    split["shares"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["mnemonic"].as_str().unwrap().to_owned())
        .collect()
}

fn is_set_id(s: &str) -> bool {
    s.len() == 4 && u16::from_str_radix(s, 16).is_ok_and(|v| v <= 0x7fff)
}

#[test]
fn each_split_is_a_new_set_and_verify_names_the_sets() {
    let env = Env::new();
    env.ok(&["init"]);
    let a = env.ok(&["recovery", "split", "--threshold", "2", "--shares", "3"]);
    let set_a = a["set"].as_str().unwrap().to_owned();
    assert!(is_set_id(&set_a), "{a}");
    // A new random identifier each time (two draws collide with chance
    // 1/32768; a split that reuses its identifier fails all three).
    let b = (0..3)
        .map(|_| env.ok(&["recovery", "split", "--threshold", "3", "--shares", "5"]))
        .find(|b| b["set"] != a["set"])
        .expect("split makes a new set identifier");
    let set_b = b["set"].as_str().unwrap().to_owned();
    assert!(is_set_id(&set_b), "{b}");
    let (sa, sb) = (mnemonics(&a), mnemonics(&b));
    // Same secret, new shares.
    assert!(sb.iter().all(|s| !sa.contains(s)));

    // One set's shares: each share named by set, group and member.
    let one = env.p("one-set.txt");
    std::fs::write(&one, format!("{}\n{}\n", sa[0], sa[2])).unwrap();
    let v = env.ok(&["recovery", "verify", "--shares-file", one.to_str().unwrap()]);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(
        v["sets"],
        serde_json::json!([{"set": set_a, "shares": 2, "enough": true}])
    );
    let info = v["share_info"].as_array().unwrap();
    assert_eq!(info.len(), 2);
    for (i, member) in [(0, 1), (1, 3)] {
        assert_eq!(info[i]["share"], i + 1, "{v}");
        assert_eq!(info[i]["set"], set_a.as_str(), "{v}");
        assert_eq!(info[i]["group"], 1, "{v}");
        assert_eq!(info[i]["member"], member, "{v}");
        assert_eq!(info[i]["member_threshold"], 2, "{v}");
        assert_eq!(info[i]["iteration_exponent"], 1, "{v}");
    }
    let out = env.run(&["recovery", "verify", "--shares-file", one.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("share 2: set {set_a}, group 1 of 1, member 3")),
        "{text}"
    );
    assert!(
        text.contains(&format!("OK: these 2 shares of set {set_a}")),
        "{text}"
    );

    // Shares of both sets, enough of each: named, counted, refused.
    let mixed = env.p("mixed.txt");
    let lines = [&sa[0], &sb[0], &sa[1], &sb[1], &sb[2]];
    std::fs::write(&mixed, lines.map(|s| format!("{s}\n")).concat()).unwrap();
    let summary = format!("shares from 2 different sets: {set_a} (2 shares), {set_b} (3 shares)");
    let out = env.run(&[
        "--json",
        "recovery",
        "verify",
        "--shares-file",
        mixed.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["reconstructs"], Value::Null);
    assert_eq!(
        v["sets"],
        serde_json::json!([
            {"set": set_a, "shares": 2, "enough": true},
            {"set": set_b, "shares": 3, "enough": true},
        ])
    );
    let sets: Vec<&str> = v["share_info"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["set"].as_str().unwrap())
        .collect();
    assert_eq!(sets, [&set_a, &set_b, &set_a, &set_b, &set_b]);
    assert!(v["problem"].as_str().unwrap().contains(&summary), "{v}");
    let out = env.run(&[
        "recovery",
        "verify",
        "--shares-file",
        mixed.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&summary), "{text}");
    assert!(
        text.contains(&format!("set {set_b} (shares 2, 4, 5): needs 3 shares")),
        "{text}"
    );

    // Recovering from mixed shares says the same, and writes no keyfile.
    let out = Command::new(env!("CARGO_BIN_EXE_trove"))
        .args(["recover", "--shares-file", mixed.to_str().unwrap()])
        .env("TROVE_HOME", env.p("elsewhere"))
        .env("TROVE_PASSPHRASE", "local pass")
        .env_remove("TROVE_SLIP39_PASSPHRASE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&summary),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!env.p("elsewhere/keyfile").exists());

    // Share files name their set.
    let dir = env.p("holders");
    let c = env.ok(&[
        "recovery",
        "split",
        "--threshold",
        "2",
        "--shares",
        "2",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let set_c = c["set"].as_str().unwrap();
    let file = std::fs::read_to_string(dir.join("shares-1.txt")).unwrap();
    assert!(file.contains(&format!("set {set_c} ")), "{file}");
}
