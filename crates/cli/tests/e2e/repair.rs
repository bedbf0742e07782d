//! `trove repair` through the real binary: folder peers that die, rot, lose
//! fragments or are unmounted for a while, a node killed and removed, a
//! pack beyond repair, no spare peer, and `kill -9` at random points of a
//! repair. After a repair, full redundancy is checked on the peers' disks
//! (every pack at k+m fragments on distinct peers) and by losing `m` more
//! peers before restoring.

use crate::common::*;
use crate::nodes::{make_data, nodes_for, owner_id};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn u(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no number `{field}` in {v}"))
}

/// One fragment file on a peer folder.
#[derive(Debug, Clone)]
struct OnDisk {
    peer: usize,
    index: u8,
    path: PathBuf,
}

/// The fragment files of peers `peers`, by pack id (hex).
fn packs_on_disk(t: &Trove, peers: &[usize]) -> BTreeMap<String, Vec<OnDisk>> {
    let mut out: BTreeMap<String, Vec<OnDisk>> = BTreeMap::new();
    for &p in peers {
        for f in fragment_files(&t.peer(p)) {
            let h = fragment_header(&f);
            out.entry(h.pack).or_default().push(OnDisk {
                peer: p,
                index: h.index,
                path: f,
            });
        }
    }
    out
}

/// Every pack on the peers' disks has its 6 fragments (indices 0..6), on
/// 6 distinct peers, each intact (its bytes hash to its name).
#[track_caller]
fn assert_full_redundancy_on_disk(t: &Trove, peers: &[usize], packs: usize) {
    let on_disk = packs_on_disk(t, peers);
    assert_eq!(on_disk.len(), packs, "packs on the peers: {on_disk:#?}");
    for (pack, frags) in &on_disk {
        let indices: BTreeSet<u8> = frags.iter().map(|f| f.index).collect();
        let holders: BTreeSet<usize> = frags.iter().map(|f| f.peer).collect();
        assert_eq!(frags.len(), 6, "pack {pack}: {frags:#?}");
        assert_eq!(indices, (0..6).collect(), "pack {pack}: {frags:#?}");
        assert_eq!(holders.len(), 6, "pack {pack} doubles up: {frags:#?}");
        for f in frags {
            let bytes = std::fs::read(&f.path).unwrap();
            assert_eq!(
                blake3::hash(&bytes).to_hex().to_string(),
                file_name(&f.path),
                "{}",
                f.path.display()
            );
        }
    }
}

/// Incompressible files, `n` of `mib` MiB each (9 MiB × 5 ≈ 45 MB: three packs).
fn noise(t: &Trove, seed: u64, n: usize, mib: usize) {
    let mut g = Gen::new(seed);
    for i in 0..n {
        write(&t.src.join(format!("noise/n{i}.bin")), &g.bytes(mib << 20));
    }
    write(&t.src.join("notes.txt"), &g.text(20_000));
}

/// Print what a repair reported of each pack (for the record of a run).
fn log_repair(what: &str, r: &Value) {
    eprintln!(
        "{what}: {} packs, {} repaired, {} short, {} lost; {} fragments rebuilt; checked {} fragments ({} B); read {} B, wrote {} B; {:.2}s",
        r["packs"], r["packs_repaired"], r["packs_short"], r["packs_lost"], r["fragments_rebuilt"],
        r["fragments_checked"], r["bytes_checked"], r["bytes_read"], r["bytes_written"],
        r["seconds"].as_f64().unwrap_or(0.0)
    );
    for c in r["containers"].as_array().into_iter().flatten() {
        for p in c["repaired"].as_array().into_iter().flatten() {
            let moves: Vec<String> = p["fragments"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    format!(
                        "{} {} on {} -> {}",
                        f["index"], f["kind"], f["from"], f["to"]
                    )
                })
                .collect();
            eprintln!(
                "  pack {}: complete {}, read {} B, wrote {} B, {:.3}s: {}",
                &p["pack"].as_str().unwrap()[..8],
                p["complete"],
                p["bytes_read"],
                p["bytes_written"],
                p["seconds"].as_f64().unwrap_or(0.0),
                moves.join("; ")
            );
        }
    }
}

/// The acceptance scenario: seven folder peers, 4+2, three packs. A dead
/// disk is removed with `peer remove`, a fragment is flipped on another
/// peer and one deleted on a third. `repair` exits 0, `check --read-data`
/// passes, every pack is at six fragments on six peers on disk, and with
/// two more peers gone the restore is still exact.
#[test]
fn dead_disk_flipped_and_deleted_fragments_repaired_then_two_more_peers_lost_restore_is_exact() {
    let t = Trove::setup(7, "4+2");
    noise(&t, 100, 5, 9);
    let b = t.backup();
    let packs = u(&b, "packs_new") as usize;
    assert!(packs >= 3, "{b}");

    // A dead disk: gone, then taken off the configuration.
    let held_by_p7 = fragment_files(&t.peer(7)).len() as u64;
    std::fs::remove_dir_all(t.peer(7)).unwrap();
    let removed = t.ok_json(&["peer", "remove", "p7"]);
    assert_eq!(removed["removed"], "p7", "{removed}");
    assert_eq!(u(&removed, "fragments_lost"), held_by_p7, "{removed}");
    assert!(
        removed["next"].as_str().unwrap().contains("trove repair"),
        "{removed}"
    );
    // A flipped fragment on p2, a deleted one on p3, in two other packs
    // (no pack loses more than its two parity fragments).
    let on_disk = packs_on_disk(&t, &[1, 2, 3, 4, 5, 6]);
    let (flip_pack, flipped) = on_disk
        .iter()
        .find_map(|(pack, f)| f.iter().find(|f| f.peer == 2).map(|f| (pack, f.clone())))
        .unwrap();
    let deleted = on_disk
        .iter()
        .filter(|(pack, _)| *pack != flip_pack)
        .find_map(|(_, f)| f.iter().find(|f| f.peer == 3).cloned())
        .unwrap();
    flip_last_byte(&flipped.path);
    std::fs::remove_file(&deleted.path).unwrap();
    let c = t.json_code(1, &["check"]);
    assert!(u(&c, "fragments_ok") < u(&c, "fragments"), "{c}");

    let r = t.ok_json(&["repair"]);
    log_repair("acceptance repair", &r);
    assert_eq!(r["full_redundancy"], true, "{r}");
    assert_eq!(r["liars"], serde_json::json!([]), "{r}");
    assert_eq!(u(&r, "packs_lost") + u(&r, "packs_short"), 0, "{r}");
    assert_eq!(
        u(&r, "fragments_rebuilt"),
        held_by_p7 + 2,
        "p7's fragments, the flipped and the deleted one: {r}"
    );
    assert_eq!(r["bad_data"]["p2"], 1, "{r}");
    let kinds: BTreeSet<String> = r["containers"][0]["repaired"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["fragments"].as_array().unwrap().clone())
        .map(|f| f["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["corrupt".into(), "missing".into(), "peer removed".into()]),
        "{r}"
    );
    for p in r["containers"][0]["repaired"].as_array().unwrap() {
        assert!(u(p, "bytes_read") > 0 && u(p, "bytes_written") > 0, "{p}");
    }
    assert_eq!(r["containers"][0]["roster_updated"], true, "{r}");
    let from: BTreeSet<&str> = r["containers"][0]["repaired"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["fragments"].as_array().unwrap())
        .map(|f| f["from"].as_str().unwrap())
        .collect();
    assert!(
        from.contains("p7 (removed)"),
        "named from the roster: {from:?}"
    );
    // The flipped fragment went back to p2 (it holds nothing else of the
    // pack), its corrupt copy into p2's trash; the deleted one back to p3.
    assert!(
        !all_files(&t.peer(2).join("trash")).is_empty(),
        "the corrupt copy is in the trash"
    );
    assert!(flipped.path.exists() && deleted.path.exists());

    let c = t.ok_json(&["check", "--read-data"]);
    assert_eq!(c["problems"], serde_json::json!([]), "{c}");
    assert_eq!(c["fragments_ok"], c["fragments"], "{c}");
    assert_eq!(u(&c, "fragments"), 6 * packs as u64, "{c}");
    assert_full_redundancy_on_disk(&t, &[1, 2, 3, 4, 5, 6], packs);

    // A second repair has nothing to do.
    let again = t.ok_json(&["repair"]);
    assert_eq!(u(&again, "fragments_rebuilt"), 0, "{again}");
    assert_eq!(u(&again, "bytes_written"), 0, "{again}");

    // Full redundancy really is back: lose two more peers, restore exactly.
    for p in [1, 4] {
        std::fs::remove_dir_all(t.peer(p)).unwrap();
    }
    let (r, out) = t.restore("data:latest");
    assert_same_tree(&t.src, &out);
    assert_eq!(r["lost"], serde_json::json!([]), "{r}");
}

/// Six peers, 4+2, one of them dead and removed: every peer left holds a
/// fragment of every pack, so the removed peer's fragments have nowhere to
/// go. Repair rebuilds the fragment deleted on another peer, exits 3 and
/// says to add one peer; with one added, it exits 0.
#[test]
fn no_spare_peer_exits_3_says_how_many_peers_to_add_and_repairs_the_rest() {
    let t = Trove::setup(6, "4+2");
    make_small_tree(&t.src, 31);
    t.backup();
    std::fs::remove_dir_all(t.peer(6)).unwrap();
    t.ok_json(&["peer", "remove", "p6"]);
    let victim = fragment_files(&t.peer(1))[0].clone();
    std::fs::remove_file(&victim).unwrap();

    let r = t.json_code(3, &["repair"]);
    log_repair("no spare", &r);
    assert_eq!(r["full_redundancy"], false, "{r}");
    assert_eq!(u(&r, "peers_needed"), 1, "{r}");
    assert!(u(&r, "packs_short") >= 1, "{r}");
    assert!(u(&r, "fragments_rebuilt") >= 1, "the rest is repaired: {r}");
    assert!(victim.exists(), "the deleted fragment is back on its peer");
    let out = t.run(&["repair"]);
    assert_code(&out, 3, &["repair"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("add 1 more peer"), "{text}");

    let p7 = t.peer(7);
    t.ok_json(&[
        "peer",
        "add",
        "p7",
        &format!("dir:{}", p7.display()),
        "--label",
        "site=site-7",
    ]);
    let r = t.ok_json(&["repair"]);
    assert_eq!(r["full_redundancy"], true, "{r}");
    let c = t.ok_json(&["check", "--read-data"]);
    assert_eq!(c["problems"], serde_json::json!([]), "{c}");
    let (_, out) = t.restore("data:latest");
    assert_same_tree(&t.src, &out);
}

/// A pack with three of its six fragments deleted (4+2) is lost: repair
/// names the file it held and the snapshot, repairs the other damaged pack
/// and exits 3; check then finds only the lost pack wrong.
#[test]
fn pack_below_k_names_its_lost_files_repairs_the_rest_and_exits_3() {
    let t = Trove::setup(6, "4+2");
    make_small_tree(&t.src, 32);
    t.backup();
    let first: BTreeSet<String> = packs_on_disk(&t, &[1, 2, 3, 4, 5, 6]).into_keys().collect();
    // A streamed big file: its first pack holds nothing else.
    write(&t.src.join("video/big.bin"), &Gen::new(33).bytes(20 << 20));
    let b = t.backup();
    let snap = b["snapshot"].as_str().unwrap()[..8].to_owned();
    let on_disk = packs_on_disk(&t, &[1, 2, 3, 4, 5, 6]);
    let (big, frags) = on_disk
        .iter()
        .filter(|(p, _)| !first.contains(*p))
        .max_by_key(|(_, f)| std::fs::metadata(&f[0].path).unwrap().len())
        .unwrap();
    for f in &frags[..3] {
        std::fs::remove_file(&f.path).unwrap();
    }
    // And one fragment of a pack of the first backup, which can be rebuilt.
    let small = &on_disk[first.iter().next().unwrap()][0];
    std::fs::remove_file(&small.path).unwrap();

    let r = t.json_code(3, &["repair"]);
    log_repair("pack below k", &r);
    assert_eq!(u(&r, "packs_lost"), 1, "{r}");
    let c = &r["containers"][0];
    assert_eq!(c["lost"][0]["pack"].as_str().unwrap(), big, "{r}");
    assert_eq!(c["lost"][0]["readable"], 3, "{r}");
    let lost: Vec<&str> = c["lost_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(lost, ["src/video/big.bin"], "{r}");
    assert_eq!(c["lost_files"][0]["snapshots"][0], snap.as_str(), "{r}");
    assert_eq!(c["unknown_folders"], serde_json::json!([]), "{r}");
    assert_eq!(u(&r, "fragments_rebuilt"), 1, "{r}");
    assert!(small.path.exists(), "the other pack is repaired");
    let text = String::from_utf8_lossy(&t.run(&["repair"]).stdout).into_owned();
    assert!(text.contains("LOST file src/video/big.bin"), "{text}");

    let c = t.json_code(1, &["check"]);
    assert_eq!(u(&c, "packs_unrecoverable"), 1, "{c}");
    for p in strings(&c["problems"]) {
        assert!(p.contains(&big[..8]), "only the lost pack is wrong: {p}");
    }
}

/// A peer folder renamed away (an unmounted USB disk) is suspect: repair
/// moves nothing off it and exits 0, check and peer list call it suspect;
/// only a threshold of 0s would make it lost (a dry run shows that, and
/// writes nothing). Back in place, it is online and check passes.
#[test]
fn briefly_unmounted_peer_is_suspect_and_not_repaired_away() {
    let t = Trove::setup(7, "4+2");
    make_small_tree(&t.src, 34);
    t.backup();
    // One that holds a fragment (placement takes 6 of the 7 per pack).
    let n = (1..=7)
        .find(|i| !fragment_files(&t.peer(*i)).is_empty())
        .unwrap();
    let name = format!("p{n}");
    let held = fragment_files(&t.peer(n)).len();
    let all = |t: &Trove| t.all_fragments(7).len();
    let before = all(&t);
    let away = t.peers_dir.join(format!("{name}-unmounted"));
    std::fs::rename(t.peer(n), &away).unwrap();

    let r = t.ok_json(&["repair"]);
    assert_eq!(r["full_redundancy"], true, "{r}");
    assert_eq!(u(&r, "fragments_rebuilt"), 0, "{r}");
    let gone = r["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["peer"] == name.as_str())
        .unwrap();
    assert_eq!(gone["state"], "suspect", "{r}");
    assert!(
        gone["unreachable_since"].is_string() && gone["last_seen"].is_string(),
        "{gone}"
    );
    assert_eq!(all(&t), before - held, "nothing was rebuilt");

    let c = t.json_code(1, &["check"]);
    let problems = strings(&c["problems"]);
    assert!(
        problems
            .iter()
            .any(|p| p.contains(&format!("peer {name} ("))
                && p.contains("unavailable")
                && p.contains("suspect")),
        "{problems:#?}"
    );
    let list = t.ok_json(&["peer", "list"]);
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name.as_str())
        .unwrap();
    assert_eq!(row["state"], "suspect", "{list}");
    assert!(row["last_seen"].is_string(), "{row}");

    let dry = t.ok_json(&["repair", "--dry-run", "--peer-lost-after", "0s"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(u(&dry, "fragments_rebuilt"), held as u64, "{dry}");
    assert_eq!(all(&t), before - held, "a dry run writes nothing");

    std::fs::rename(&away, t.peer(n)).unwrap();
    let r = t.ok_json(&["repair"]);
    assert_eq!(u(&r, "fragments_rebuilt"), 0, "{r}");
    let back = r["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["peer"] == name.as_str())
        .unwrap();
    assert_eq!(back["state"], "online", "{r}");
    assert_eq!(all(&t), before);
    let c = t.ok_json(&["check"]);
    assert_eq!(c["problems"], serde_json::json!([]), "{c}");
}

/// Five folder peers and two `trove node run` processes, 4+2: a node that
/// holds a fragment is killed and removed; repair rebuilds its fragments
/// (on the folder peers or the other node) without ever calling the dead
/// one, and check and restore are clean.
#[test]
fn repair_with_node_peers_one_node_killed_and_removed() {
    let t = Trove::new();
    t.init();
    t.add_folder_peers(5);
    let mut nodes = nodes_for(&t, 2, "1G");
    t.create_container("4+2");
    make_data(&t, 35, 6 << 20);
    t.backup();
    let owner = owner_id(&t);
    let held: Vec<usize> = nodes
        .iter()
        .map(|n| fragment_files(&n.owner_dir(&owner)).len())
        .collect();
    // Each pack skips one of the seven peers: some node holds a fragment.
    let victim = (0..2).max_by_key(|i| held[*i]).unwrap();
    assert!(held[victim] > 0, "{held:?}");
    nodes[victim].kill();
    let name = nodes[victim].name.clone();
    let removed = t.ok_json(&["peer", "remove", &name]);
    assert_eq!(
        u(&removed, "fragments_lost"),
        held[victim] as u64,
        "{removed}"
    );

    let r = t.ok_json(&["repair"]);
    log_repair("nodes", &r);
    assert_eq!(r["full_redundancy"], true, "{r}");
    assert_eq!(u(&r, "fragments_rebuilt"), held[victim] as u64, "{r}");
    let other = &r["peers"].as_array().unwrap();
    assert!(
        other.iter().all(|p| p["state"] == "online"),
        "the live node and the folders answer: {r}"
    );
    let c = t.ok_json(&["check", "--read-data"]);
    assert_eq!(c["problems"], serde_json::json!([]), "{c}");
    let (_, out) = t.restore("data:latest");
    assert_same_tree(&t.src, &out);
}

/// Every file a repair may write on the peers: fragments, trash, metadata.
fn footprint(t: &Trove) -> Vec<PathBuf> {
    (1..=6)
        .flat_map(|p| {
            ["fragments", "trash", "meta"]
                .into_iter()
                .flat_map(move |d| all_files(&t.peer(p).join(d)))
        })
        .collect()
}

#[derive(Debug)]
enum Killed {
    /// Killed after this long.
    After(Duration),
    /// The repair finished first, with this exit code.
    Finished(Option<i32>),
}

/// Start `trove repair`; SIGKILL it after `wait`, or (with `on_write`) once
/// it has changed a file on a peer and `wait` more has passed.
fn kill_repair(t: &Trove, wait: Duration, on_write: bool) -> Killed {
    let start_state = footprint(t);
    let mut cmd = t.command(&["--json", "repair"]);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut guard = ChildGuard(Some(cmd.spawn().expect("spawn repair")));
    let started = Instant::now();
    let mut wrote_at = None;
    loop {
        if let Some(s) = guard.child().try_wait().unwrap() {
            guard.0 = None;
            return Killed::Finished(s.code());
        }
        if on_write && wrote_at.is_none() && footprint(t) != start_state {
            wrote_at = Some(Instant::now());
        }
        let due = match (on_write, wrote_at) {
            (false, _) => started.elapsed() >= wait,
            (true, Some(at)) => at.elapsed() >= wait,
            (true, None) => false,
        };
        if due {
            let child = guard.child();
            child.kill().expect("SIGKILL the repair");
            child.wait().expect("reap the repair");
            guard.0 = None;
            return Killed::After(started.elapsed());
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "repair neither finished nor wrote within 120s"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `kill -9` at random points of repairs (by time, or right after its
/// first write on a peer), with fresh damage before each: the next repair
/// finishes the work, `check --read-data` passes, every pack is at full
/// redundancy on disk and a restore is exact.
#[test]
fn kill_9_at_random_points_of_repair_then_repair_check_and_restore_are_clean() {
    let t = Trove::setup(7, "4+2");
    noise(&t, 200, 5, 9);
    let b = t.backup();
    let packs = u(&b, "packs_new") as usize;
    std::fs::remove_dir_all(t.peer(7)).unwrap();
    t.ok_json(&["peer", "remove", "p7"]);
    let mut g = Gen::new(201);
    let mut log = Vec::new();
    let mut killed = 0;
    for round in 0..6 {
        if round > 0 {
            // Finish what the killed run left, then damage one more
            // fragment, so that every killed run has work to do.
            let r = t.ok_json(&["repair"]);
            assert_eq!(r["full_redundancy"], true, "round {round}: {r}");
            let frags = t.all_fragments(6);
            let (_, victim) = &frags[g.below(frags.len() as u64) as usize];
            if round % 2 == 0 {
                flip_last_byte(victim);
            } else {
                std::fs::remove_file(victim).unwrap();
            }
        }
        let on_write = round % 2 == 1;
        let wait = Duration::from_millis(if on_write {
            g.below(15)
        } else {
            200 + g.below(1800)
        });
        let outcome = match kill_repair(&t, wait, on_write) {
            Killed::After(at) => {
                killed += 1;
                format!("killed after {at:?}")
            }
            Killed::Finished(code) => {
                assert_eq!(code, Some(0), "round {round}: an unkilled repair succeeds");
                "finished first".to_owned()
            }
        };
        let how = if on_write {
            "after its first write on a peer +"
        } else {
            "after"
        };
        log.push(format!("round {round}: kill {how} {wait:?}: {outcome}"));
    }
    eprintln!("{}", log.join("\n"));
    assert!(
        killed > 0,
        "at least one repair was killed mid-way: {log:#?}"
    );

    let r = t.ok_json(&["repair"]);
    log_repair("after the kills", &r);
    assert_eq!(r["full_redundancy"], true, "{r}");
    let c = t.ok_json(&["check", "--read-data"]);
    assert_eq!(c["problems"], serde_json::json!([]), "{c}");
    assert_eq!(c["fragments_ok"], c["fragments"], "{c}");
    // Orphans a killed run left (fragments stored, never recorded) may
    // sit beside the recorded ones; every pack's recorded six are there.
    let on_disk = packs_on_disk(&t, &[1, 2, 3, 4, 5, 6]);
    assert_eq!(on_disk.len(), packs);
    for (pack, frags) in &on_disk {
        let indices: BTreeSet<u8> = frags.iter().map(|f| f.index).collect();
        assert_eq!(indices, (0..6).collect(), "pack {pack}");
    }
    for p in [2, 5] {
        std::fs::remove_dir_all(t.peer(p)).unwrap();
    }
    let (_, out) = t.restore("data:latest");
    assert_same_tree(&t.src, &out);
}
