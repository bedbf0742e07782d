//! Regression tests of the security review (issue 8), through the real
//! binary: recovery through stale and lying peers, and what Trove leaves
//! readable to other local users.

use crate::common::*;
use serde_json::Value;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn add_peer(t: &Trove, name: &str, dir: &Path) -> Value {
    t.ok_json(&["peer", "add", name, &format!("dir:{}", dir.display())])
}

/// The configured peers: name → (id, location).
fn peers(t: &Trove) -> Vec<(String, String, String)> {
    t.ok_json(&["peer", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["id"].as_str().unwrap().to_owned(),
                p["location"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Finding 3: a peer that missed the last backups holds an old container
/// manifest whose roster lacks the peer that holds the newer snapshots. One
/// `trove sync` must still find them all: it reads the peers each round
/// finds until no new peer turns up.
#[test]
fn sync_through_a_stale_peer_finds_every_newer_snapshot_in_one_run() {
    let t = Trove::setup(3, "2+1");
    let init_phrase = {
        // `setup` ran init; its phrase is what recovery needs.
        let out = t.ok_json(&["recovery", "phrase"]);
        out["phrase"].as_str().unwrap().to_owned()
    };
    make_small_tree(&t.src, 3);
    t.backup();
    // p1 goes offline (an unplugged disk); p4 joins; two more backups.
    let away = t.tmp.path().join("p1-unplugged");
    std::fs::rename(t.peer(1), &away).unwrap();
    let p4 = t.peer(4);
    add_peer(&t, "p4", &p4);
    write(&t.src.join("later/one.txt"), b"after p1 left");
    t.backup();
    write(&t.src.join("later/two.txt"), b"and again");
    t.backup();
    assert_eq!(t.snapshots().len(), 3);
    std::fs::rename(&away, t.peer(1)).unwrap();

    t.lose_home_and_recover(&init_phrase);
    add_peer(&t, "stale", &t.peer(1));
    let s = t.ok_json(&["sync"]);
    assert_eq!(s["snapshots"], 3, "one sync must find every snapshot: {s}");
    assert!(s["rounds"].as_u64().unwrap() >= 3, "{s}");
    let read: Vec<&str> = s["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["peer"].as_str().unwrap())
        .collect();
    assert_eq!(read.len(), 4, "every peer is read once: {s}");
    let stale = &s["peers"][0];
    assert_eq!(stale["peer"], "stale");
    assert_eq!(
        stale["snapshots"], 1,
        "the stale peer holds the first snapshot only: {s}"
    );
    let locations: Vec<String> = peers(&t).into_iter().map(|p| p.2).collect();
    assert!(
        locations.contains(&format!("dir:{}", p4.display())),
        "p4 was not found: {locations:?}"
    );
    let (_, restored) = t.restore("data:latest");
    assert_same_tree(&t.src, &restored);
}

/// A peer folder that claims to hold another peer's fragments: the same
/// file names, garbage inside (so `has` says yes to all of them).
fn plant_liar(t: &Trove, honest: &Path) -> PathBuf {
    let liar = t.tmp.path().join("liar");
    copy_tree(honest, &liar);
    for f in fragment_files(&liar) {
        make_writable(&f);
        std::fs::write(&f, b"not the fragment you are looking for").unwrap();
    }
    liar
}

/// Finding 4: a lying peer must not take an honest peer's place in the
/// roster. It cannot while the honest peer answers at its recorded
/// location, nor, when that location is gone, without handing over
/// fragments whose bytes hash to their ids; a genuinely moved disk is still
/// recognised by its fragments.
#[test]
fn a_lying_peer_never_takes_an_honest_peers_place() {
    let t = Trove::setup(3, "2+1");
    let phrase = t.ok_json(&["recovery", "phrase"])["phrase"]
        .as_str()
        .unwrap()
        .to_owned();
    make_small_tree(&t.src, 5);
    t.backup();
    let p1_id = peers(&t).into_iter().find(|p| p.0 == "p1").unwrap().1;
    let liar = plant_liar(&t, &t.peer(1));

    // p1 still answers at its recorded location.
    t.lose_home_and_recover(&phrase);
    add_peer(&t, "liar", &liar);
    let s = t.ok_json(&["sync"]);
    let now = peers(&t);
    let liar_rec = now.iter().find(|p| p.0 == "liar").unwrap();
    assert_ne!(liar_rec.1, p1_id, "the liar took p1's place: {s}");
    let p1_rec = now
        .iter()
        .find(|p| p.2 == format!("dir:{}", t.peer(1).display()))
        .unwrap_or_else(|| panic!("p1 was dropped from the peers: {now:?}"));
    assert_eq!(p1_rec.1, p1_id);

    // p1's disk moves; the liar is tried first, then the disk at its new place.
    t.lose_home_and_recover(&phrase);
    let moved = t.tmp.path().join("p1-moved");
    std::fs::rename(t.peer(1), &moved).unwrap();
    add_peer(&t, "liar", &liar);
    add_peer(&t, "moved", &moved);
    let s = t.ok_json(&["sync"]);
    let now = peers(&t);
    let id_of_peer = |name: &str| now.iter().find(|p| p.0 == name).unwrap().1.clone();
    assert_ne!(id_of_peer("liar"), p1_id, "the liar took p1's place: {s}");
    assert_eq!(id_of_peer("moved"), p1_id, "the moved disk is p1: {s}");
    let (_, restored) = t.restore("data:latest");
    assert_same_tree(&t.src, &restored);
}

/// `trove ARGS` under `umask 000`, so that any file or folder Trove does
/// not make private explicitly would come out world-readable.
fn umask0(inner: &Command) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg("umask 000; exec \"$@\"")
        .arg("sh")
        .arg(inner.get_program())
        .args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    if let Some(dir) = inner.get_current_dir() {
        c.current_dir(dir);
    }
    c
}

fn run_umask0(t: &Trove, args: &[&str]) -> Value {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    let out = run_bounded(umask0(&t.command(&full)), COMMAND_TIMEOUT);
    assert_code(&out, 0, &full);
    parse_json(&out)
}

/// Every file and folder under `root` that is open to group or others.
fn open_entries(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.file_type().is_symlink() {
            continue;
        }
        if m.mode() & 0o077 != 0 {
            out.push(format!("{:04o} {}", m.mode() & 0o7777, p.display()));
        }
        if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    out.sort();
    out
}

/// Finding 6: the home, its keyfile, index and transport key, peer folders,
/// a node's data folder, share files and the recovery kit are private to the
/// user whatever the umask; an existing home that is more open is made
/// private, with a warning.
#[test]
fn files_trove_writes_are_private_whatever_the_umask() {
    let t = Trove::new();
    run_umask0(&t, &["init"]);
    for i in 1..=2 {
        let loc = format!("dir:{}", t.peer(i).display());
        run_umask0(&t, &["peer", "add", &format!("p{i}"), &loc]);
    }
    // A node, started under umask 000 too.
    let node_data = t.tmp.path().join("node");
    let mut run = t.command(&["node", "run", "--data"]);
    run.arg(&node_data)
        .args(["--listen", "127.0.0.1:0", "--network", "direct"]);
    let mut under_umask0 = umask0(&run);
    under_umask0
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let _node = ChildGuard(Some(under_umask0.spawn().unwrap()));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !node_data.join("ticket").is_file() {
        assert!(
            std::time::Instant::now() < deadline,
            "the node did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let data = node_data.display().to_string();
    let owner = t.ok_json(&["whoami"])["owner_id"]
        .as_str()
        .unwrap()
        .to_owned();
    run_umask0(
        &t,
        &["node", "grant", &owner, "--quota", "1G", "--data", &data],
    );
    let ticket = t.ok_json(&["node", "ticket", "--data", &data])["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    run_umask0(&t, &["peer", "add", "n1", &ticket]);
    let src = t.src.display().to_string();
    run_umask0(
        &t,
        &["container", "create", "data", &src, "--redundancy", "2+1"],
    );
    make_small_tree(&t.src, 9);
    run_umask0(&t, &["backup"]);
    let shares = t.tmp.path().join("shares");
    let kit = t.tmp.path().join("kit.txt");
    let shares_s = shares.display().to_string();
    run_umask0(
        &t,
        &[
            "recovery",
            "split",
            "--threshold",
            "2",
            "--shares",
            "3",
            "--out",
            &shares_s,
        ],
    );
    run_umask0(
        &t,
        &["recovery", "kit", "--out", &kit.display().to_string()],
    );
    let mut open = Vec::new();
    for root in [t.home.clone(), shares, kit] {
        open.extend(open_entries(&root));
    }
    for i in 1..=2 {
        open.extend(open_entries(&t.peer(i)));
    }
    open.extend(open_entries(&node_data));
    assert!(open.is_empty(), "open to other users:\n{}", open.join("\n"));
    let owner_dir = node_data.join("owners").join(&owner);
    assert!(
        owner_dir.join("identity").is_file(),
        "the node stored nothing"
    );
    for f in ["keyfile", "index.redb", "transport.key"] {
        assert!(t.home.join(f).is_file(), "{f} was not written");
    }

    // A home left open (made by hand, or by an older Trove) is closed again.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&t.home, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        t.home.join("keyfile"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = t.run(&["snapshots"]);
    assert_code(&out, 0, &["snapshots"]);
    let err = stderr(&out);
    assert!(
        err.contains("readable by other users") && err.contains("keyfile"),
        "{err}"
    );
    assert_eq!(open_entries(&t.home), Vec::<String>::new());
}
