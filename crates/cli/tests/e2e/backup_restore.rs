//! Backups and restores through the real `trove` binary: incremental
//! counts, exact restores of old and new snapshots, listings, `--include`,
//! many packs with streamed big files, and usage errors.

use crate::common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// (files, bytes, dirs) under a folder, the folder itself counted as a dir.
fn census3(root: &Path) -> (u64, u64, u64) {
    let (f, b, d, _) = census(root);
    (f, b, d)
}

fn u(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no number `{field}` in {v}"))
}

/// What `trove ls --json` should list for a snapshot of `state`:
/// path → (kind, size of files, mode, mtime of files).
fn expected_listing(state: &Path) -> BTreeMap<String, (String, u64, u32, Option<i64>)> {
    let mut out = BTreeMap::new();
    let m = std::fs::metadata(state).unwrap();
    out.insert(
        "src".to_owned(),
        ("dir".to_owned(), 0, m.mode() & 0o7777, None),
    );
    for (rel, kind) in entries(state) {
        let m = std::fs::symlink_metadata(state.join(&rel)).unwrap();
        let (size, mtime) = match kind {
            "file" => (m.len(), Some(m.mtime() * 1_000_000_000 + m.mtime_nsec())),
            "symlink" => (
                std::fs::read_link(state.join(&rel))
                    .unwrap()
                    .as_os_str()
                    .len() as u64,
                None,
            ),
            _ => (0, None),
        };
        out.insert(
            format!("src/{}", rel.to_string_lossy()),
            (kind.to_owned(), size, m.mode() & 0o7777, mtime),
        );
    }
    out
}

fn listing(v: &Value) -> BTreeMap<String, (String, u64, u32, Option<i64>)> {
    v.as_array()
        .expect("ls --json is an array")
        .iter()
        .map(|e| {
            let kind = e["kind"].as_str().unwrap().to_owned();
            let mtime = (kind == "file").then(|| e["mtime_ns"].as_i64().unwrap());
            (
                e["path"].as_str().unwrap().to_owned(),
                (
                    kind,
                    e["size"].as_u64().unwrap(),
                    e["mode"].as_u64().unwrap() as u32,
                    mtime,
                ),
            )
        })
        .collect()
}

fn assert_clean_restore(report: &Value, state: &Path) {
    let (files, bytes, dirs) = census3(state);
    assert_eq!(u(report, "files"), files, "{report}");
    assert_eq!(u(report, "bytes"), bytes, "{report}");
    assert_eq!(u(report, "dirs"), dirs, "{report}");
    assert_eq!(u(report, "symlinks"), 2, "{report}");
    assert_eq!(report["lost"], serde_json::json!([]), "{report}");
    assert_eq!(
        report["fragment_problems"],
        serde_json::json!([]),
        "{report}"
    );
}

#[test]
fn incremental_backups_count_changes_and_both_snapshots_restore_exactly() {
    let t = Trove::setup(6, "4+2");
    make_small_tree(&t.src, 1);
    let (files1, bytes1, dirs1) = census3(&t.src);

    let b1 = t.backup();
    let state1 = t.tmp.path().join("state1");
    copy_tree(&t.src, &state1);
    assert_eq!(u(&b1, "files_new"), files1, "{b1}");
    assert_eq!(u(&b1, "files_changed"), 0, "{b1}");
    assert_eq!(u(&b1, "files_unchanged"), 0, "{b1}");
    assert_eq!(u(&b1, "dirs"), dirs1, "{b1}");
    assert_eq!(u(&b1, "bytes_read"), bytes1, "{b1}");
    assert_eq!(u(&b1, "bytes_total"), bytes1, "{b1}");
    assert!(u(&b1, "packs_new") >= 1, "{b1}");
    assert!(u(&b1, "bytes_stored") > 0, "{b1}");
    assert_eq!(b1["unreadable"], serde_json::json!([]), "{b1}");
    assert_eq!(b1["warnings"], serde_json::json!([]), "{b1}");
    assert_eq!(b1["container"], "data");

    // Modify one, change a mode, delete one, add one.
    let mut g = Gen::new(99);
    let modified = t.src.join("docs/letter-03.txt");
    let mut body = std::fs::read(&modified).unwrap();
    body.extend_from_slice(&g.text(7_777));
    body[0] ^= 0x20;
    std::fs::write(&modified, &body).unwrap();
    let rechmod = t.src.join("docs/letter-04.txt");
    chmod(&rechmod, 0o604);
    std::fs::remove_file(t.src.join("bin/blob-1.bin")).unwrap();
    let added = t.src.join("docs/added.txt");
    write(&added, &g.text(12_345));

    let b2 = t.backup();
    let state2 = t.tmp.path().join("state2");
    copy_tree(&t.src, &state2);
    let (files2, bytes2, _) = census3(&t.src);
    assert_eq!(files2, files1);
    assert_eq!(u(&b2, "files_new"), 1, "{b2}");
    // The re-moded file's ctime changed, so it is read again and counts as changed.
    assert_eq!(u(&b2, "files_changed"), 2, "{b2}");
    assert_eq!(u(&b2, "files_unchanged"), files1 - 3, "{b2}");
    let changed_bytes = [&modified, &rechmod, &added]
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum::<u64>();
    assert_eq!(u(&b2, "bytes_read"), changed_bytes, "{b2}");
    assert_eq!(u(&b2, "bytes_total"), bytes2, "{b2}");

    // Listings.
    let snaps = t.snapshots();
    assert_eq!(snaps.len(), 2, "{snaps:?}");
    assert_eq!(snaps[0]["id"], b1["snapshot"]);
    assert_eq!(snaps[1]["id"], b2["snapshot"]);
    assert_eq!(snaps[1]["parent"], b1["snapshot"]);
    assert_eq!(snaps[0]["parent"], Value::Null);
    assert_eq!(u(&snaps[0], "files"), files1);
    assert_eq!(u(&snaps[1], "bytes"), bytes2);
    assert_eq!(snaps[1]["container"], "data");
    let id1 = id_of(&b1, "snapshot");
    let id2 = id_of(&b2, "snapshot");
    assert_eq!(
        snaps[0]["short_id"].as_str().map(|s| id1.starts_with(s)),
        Some(true)
    );

    let ls1 = listing(&t.ok_json(&["ls", &id1[..10]]));
    assert_eq!(ls1, expected_listing(&state1));
    assert!(ls1.contains_key("src/bin/blob-1.bin"));
    let ls2 = listing(&t.ok_json(&["ls", "data:latest"]));
    assert_eq!(ls2, expected_listing(&state2));
    assert!(!ls2.contains_key("src/bin/blob-1.bin"));
    assert!(ls2.contains_key("src/docs/added.txt"));
    let under = listing(&t.ok_json(&["ls", &id2[..10], "src/sub"]));
    assert_eq!(
        under.keys().cloned().collect::<Vec<_>>(),
        [
            "src/sub",
            "src/sub/other.txt",
            "src/sub/path",
            "src/sub/path/inner.txt",
            "src/sub/path/more",
            "src/sub/path/more/inner.bin"
        ]
    );

    // Both snapshots restore exactly as the source was.
    let (r1, out1) = t.restore(&id1[..8]);
    assert_eq!(r1["snapshot"], b1["snapshot"]);
    assert_same_tree(&state1, &out1);
    assert_clean_restore(&r1, &state1);
    let (r2, out2) = t.restore("data:latest");
    assert_eq!(r2["snapshot"], b2["snapshot"]);
    assert_same_tree(&state2, &out2);
    assert_clean_restore(&r2, &state2);
    // The old snapshot is not the new one.
    assert!(!diff_trees(&state1, &out2).is_empty());

    // Nothing changed: nothing read, nothing stored.
    let b3 = t.backup();
    assert_eq!(u(&b3, "bytes_read"), 0, "{b3}");
    assert_eq!(u(&b3, "files_unchanged"), files2, "{b3}");
    assert_eq!(u(&b3, "files_new"), 0, "{b3}");
    assert_eq!(u(&b3, "files_changed"), 0, "{b3}");
    assert_eq!(u(&b3, "packs_new"), 0, "{b3}");
    assert_eq!(u(&b3, "blobs_new"), 0, "{b3}");
    assert_eq!(u(&b3, "bytes_total"), bytes2, "{b3}");
    let snaps = t.snapshots();
    assert_eq!(snaps.len(), 3);
    assert_eq!(snaps[2]["parent"], b2["snapshot"]);
    let (r3, out3) = t.restore(&id_of(&b3, "snapshot")[..12]);
    assert_same_tree(&state2, &out3);
    assert_clean_restore(&r3, &state2);
    // The source was never touched by any of this.
    assert_same_tree(&state2, &t.src);
}

#[test]
fn restore_include_restores_only_the_named_subtree_or_file() {
    let t = Trove::setup(6, "4+2");
    make_small_tree(&t.src, 2);
    let b = t.backup();
    let id = id_of(&b, "snapshot");

    let (r, out) = t.restore_code(0, &id[..8], &["--include", "src/sub/path"]);
    let root = out.parent().unwrap();
    let got: Vec<String> = list_tree(root).into_keys().collect();
    assert_eq!(
        got,
        [
            "src",
            "src/sub",
            "src/sub/path",
            "src/sub/path/inner.txt",
            "src/sub/path/more",
            "src/sub/path/more/inner.bin"
        ]
    );
    assert_same_tree(&t.src.join("sub/path"), &out.join("sub/path"));
    assert_eq!(u(&r, "files"), 2, "{r}");
    assert_eq!(r["lost"], serde_json::json!([]));

    // A single file and a symlink, by two --include.
    let (r, out) = t.restore_code(
        0,
        "data:latest",
        &[
            "--include",
            "src/top.txt",
            "--include",
            "src/link-to-letter",
        ],
    );
    let got: Vec<String> = list_tree(out.parent().unwrap()).into_keys().collect();
    assert_eq!(got, ["src", "src/link-to-letter", "src/top.txt"]);
    assert_eq!(
        std::fs::read(out.join("top.txt")).unwrap(),
        std::fs::read(t.src.join("top.txt")).unwrap()
    );
    assert_eq!(
        std::fs::read_link(out.join("link-to-letter")).unwrap(),
        Path::new("docs/letter-00.txt")
    );
    assert_eq!((u(&r, "files"), u(&r, "symlinks")), (1, 1), "{r}");

    // A path that is not in the snapshot is a usage error.
    let target = t.fresh_dir("restore");
    let out = t.run(&[
        "restore",
        "data:latest",
        "--target",
        target.to_str().unwrap(),
        "--include",
        "nothing-like-this",
    ]);
    assert_code(&out, 2, &["restore --include nothing-like-this"]);
    assert!(stderr(&out).contains("--include"), "{}", describe(&out));
}

#[test]
fn restore_include_of_a_missing_path_under_an_existing_folder_is_a_usage_error() {
    let t = Trove::setup(6, "4+2");
    make_small_tree(&t.src, 2);
    t.backup();
    let target = t.fresh_dir("restore");
    let out = t.run(&[
        "restore",
        "data:latest",
        "--target",
        target.to_str().unwrap(),
        "--include",
        "src/no/such/thing",
    ]);
    assert_code(&out, 2, &["restore --include src/no/such/thing"]);
    assert!(stderr(&out).contains("--include"), "{}", describe(&out));
}

#[test]
fn over_40_mb_incompressible_spans_several_packs_one_fragment_per_peer_and_restores_exactly() {
    let t = Trove::setup(6, "4+2");
    let mut g = Gen::new(3);
    // Two streamed files (> 8 MiB) and smaller ones read whole: 46 MiB in all.
    write(&t.src.join("video/big-1.bin"), &g.bytes(20 << 20));
    write(&t.src.join("video/big-2.bin"), &g.bytes(12 << 20));
    for i in 0..8 {
        write(
            &t.src.join(format!("photos/img-{i}.jpg")),
            &g.bytes(3 << 19),
        );
    }
    write(&t.src.join("notes.txt"), &g.text(50_000));
    // A large file whose second half repeats its first: dedup inside a stream.
    let half = g.bytes(1 << 20);
    let mut twice = half.clone();
    twice.extend_from_slice(&half);
    write(&t.src.join("video/twice.bin"), &twice);

    let b = t.backup();
    let packs = u(&b, "packs_new");
    assert!(
        packs >= 3,
        "46 MiB of noise makes at least three packs (8 MiB each): {b}"
    );
    assert_eq!(u(&b, "bytes_read"), census3(&t.src).1, "{b}");
    // Every pack has k+m = 6 fragments, one on each peer, indices 0..6.
    let mut by_pack: BTreeMap<String, Vec<(usize, u8)>> = BTreeMap::new();
    for (peer, f) in t.all_fragments(6) {
        let h = fragment_header(&f);
        assert_eq!((h.k, h.m), (4, 2));
        by_pack.entry(h.pack).or_default().push((peer, h.index));
    }
    assert_eq!(by_pack.len() as u64, packs);
    for (pack, mut frags) in by_pack {
        frags.sort();
        let peers: Vec<usize> = frags.iter().map(|f| f.0).collect();
        assert_eq!(
            peers,
            [1, 2, 3, 4, 5, 6],
            "pack {pack}: one fragment per peer"
        );
        let mut idx: Vec<u8> = frags.iter().map(|f| f.1).collect();
        idx.sort();
        assert_eq!(idx, [0, 1, 2, 3, 4, 5], "pack {pack}");
    }

    let (r, out) = t.restore("data:latest");
    assert_same_tree(&t.src, &out);
    assert_eq!(r["lost"], serde_json::json!([]));
    assert_eq!(u(&r, "bytes"), census3(&t.src).1);

    let c = t.ok_json(&["check", "--read-data"]);
    assert_eq!(u(&c, "packs"), packs, "{c}");
    assert_eq!(u(&c, "fragments"), packs * 6, "{c}");
    assert_eq!(u(&c, "fragments_ok"), packs * 6, "{c}");
    assert!(u(&c, "blobs_verified") > packs, "{c}");
    assert_eq!(c["problems"], serde_json::json!([]), "{c}");
}

#[test]
fn usage_errors_exit_2() {
    let t = Trove::setup(6, "4+2");
    make_small_tree(&t.src, 4);
    t.backup();
    let target = t.fresh_dir("restore");
    let target = target.to_str().unwrap();
    let cases: &[&[&str]] = &[
        &["backup", "--no-such-flag"],
        &["--frobnicate", "snapshots"],
        &["no-such-command"],
        &["restore", "data:latest"],
        &["restore", "zz", "--target", target],
        &["ls", "zz"],
        &["restore", "data:earliest", "--target", target],
        &["peer", "add", "x", "dir:/tmp/x", "--label", "novalue"],
        &["container", "create", "other", "--redundancy", "4"],
    ];
    for args in cases {
        let out = t.run(args);
        assert_code(&out, 2, args);
        assert!(!stderr(&out).trim().is_empty(), "{}", describe(&out));
    }
    // None of it created anything.
    assert!(!Path::new(target).exists());
    assert_eq!(t.snapshots().len(), 1);
}

/// `trove ls | head`: the reader leaves before the listing is printed.
/// Trove leaves quietly with the status of a tool killed by SIGPIPE (141),
/// as `ls` would, instead of panicking (101).
#[test]
fn a_listing_whose_reader_left_ends_quietly() {
    let t = Trove::setup(3, "2+1");
    make_small_tree(&t.src, 3);
    t.backup();
    let mut c = t.command(&["ls", "data:latest"]);
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    // The reader goes away before anything is printed.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(141), "{err}");
}
