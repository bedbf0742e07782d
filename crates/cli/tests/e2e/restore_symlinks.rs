//! Regression tests for issue 8, finding 2: a restore followed symlinks in the
//! middle of a path under its target, so a link planted in the target (or left
//! there by an earlier restore) made it create, write, chmod and re-time files
//! outside the target. A restore must never follow a symlink below its target,
//! and must never delete a user's real folder to make room for a file.

use crate::common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

/// What one entry looks like: kind, permission bits, mtime, ctime (any write,
/// chmod, re-time or link change moves it), and its length and content hash
/// (or link target).
type EntryState = (&'static str, String, (i64, i64), (i64, i64), String);

/// FNV-1a, enough to tell contents apart in a failure message.
fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, x| {
        (h ^ u64::from(*x)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Every entry under `root` (and `root` itself, as ""), without following
/// symlinks: enough to see that nothing there was created, written,
/// chmodded or re-timed.
fn record(root: &Path) -> BTreeMap<PathBuf, EntryState> {
    fn walk(root: &Path, p: &Path, out: &mut BTreeMap<PathBuf, EntryState>) {
        let m = std::fs::symlink_metadata(p).expect("stat");
        let rel = p.strip_prefix(root).expect("under root").to_owned();
        let (kind, body) = if m.file_type().is_symlink() {
            let t = std::fs::read_link(p).expect("readlink");
            ("symlink", format!("-> {}", t.display()))
        } else if m.is_dir() {
            ("dir", String::new())
        } else {
            let b = std::fs::read(p).expect("read");
            ("file", format!("{} bytes, fnv {:016x}", b.len(), fnv(&b)))
        };
        let state = (
            kind,
            format!("{:o}", m.mode() & 0o7777),
            (m.mtime(), m.mtime_nsec()),
            (m.ctime(), m.ctime_nsec()),
            body,
        );
        out.insert(rel, state);
        if kind == "dir" {
            for e in std::fs::read_dir(p).expect("read_dir") {
                walk(root, &e.expect("entry").path(), out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Give a file or folder an old, recognisable mtime.
fn age(p: &Path) {
    std::fs::File::open(p)
        .expect("open")
        .set_modified(UNIX_EPOCH + Duration::from_secs(1_000_000_000))
        .expect("set mtime");
}

/// A folder outside every restore target, with a file and a subfolder: what
/// a planted symlink points at.
fn make_outside(t: &Trove) -> PathBuf {
    let outside = t.tmp.path().join("outside");
    write(
        &outside.join("victim"),
        b"must never be written by a restore\n",
    );
    write(&outside.join("sub/keep.txt"), b"nor this\n");
    chmod(&outside.join("victim"), 0o644);
    chmod(&outside.join("sub"), 0o755);
    chmod(&outside, 0o755);
    for p in [outside.join("victim"), outside.join("sub/keep.txt")] {
        age(&p);
    }
    age(&outside.join("sub"));
    age(&outside);
    outside
}

/// `trove --json restore SPEC --target TARGET`, asserting `code`.
fn restore_into(t: &Trove, code: i32, spec: &str, target: &Path) -> Value {
    t.json_code(
        code,
        &["restore", spec, "--target", target.to_str().unwrap()],
    )
}

/// The (path, error) pairs of a restore report's `lost`.
fn lost(r: &Value) -> Vec<(String, String)> {
    r["lost"]
        .as_array()
        .unwrap_or_else(|| panic!("no `lost` in {r}"))
        .iter()
        .map(|l| {
            (
                l["path"].as_str().unwrap().to_owned(),
                l["error"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[track_caller]
fn assert_untouched(before: &BTreeMap<PathBuf, EntryState>, outside: &Path) {
    let after = record(outside);
    let keys: BTreeSet<&PathBuf> = before.keys().chain(after.keys()).collect();
    let changed: Vec<String> = keys
        .into_iter()
        .filter(|k| before.get(*k) != after.get(*k))
        .map(|k| format!("{:?}: {:?} -> {:?}", k, before.get(k), after.get(k)))
        .collect();
    assert!(
        changed.is_empty(),
        "the restore changed {} outside its target:\n  {}",
        outside.display(),
        changed.join("\n  ")
    );
}

#[test]
fn restore_never_follows_a_symlink_planted_in_the_target() {
    let t = Trove::setup(6, "4+2");
    let mut g = Gen::new(81);
    let s = &t.src;
    write(&s.join("docs/letter.txt"), &g.text(20_000));
    write(&s.join("docs/inner/deep.txt"), &g.text(3_000));
    write(&s.join("a.txt"), &g.text(5_000));
    write(&s.join("nest/mid/leaf/file.bin"), &g.bytes(60_000));
    write(&s.join("nest/mid/note.txt"), &g.text(700));
    symlink("docs/letter.txt", s.join("link")).unwrap();
    chmod(&s.join("docs"), 0o750);
    chmod(&s.join("a.txt"), 0o600);
    chmod(&s.join("nest/mid"), 0o700);
    t.backup();
    let outside = make_outside(&t);
    let before = record(&outside);

    // Symlinks where the snapshot has a folder, a file, a symlink, and a
    // folder deeper down below a real folder.
    let target = t.tmp.path().join("target");
    std::fs::create_dir_all(target.join("src/nest")).unwrap();
    symlink(&outside, target.join("src/docs")).unwrap();
    symlink(outside.join("victim"), target.join("src/a.txt")).unwrap();
    symlink(outside.join("victim"), target.join("src/link")).unwrap();
    symlink(outside.join("sub"), target.join("src/nest/mid")).unwrap();
    let r = restore_into(&t, 0, "data:latest", &target);
    assert_eq!(lost(&r), [], "{r}");
    assert_untouched(&before, &outside);
    assert_same_tree(&t.src, &target.join("src"));

    // A symlink in the place of the snapshot's root folder itself.
    let target = t.tmp.path().join("target-2");
    std::fs::create_dir_all(&target).unwrap();
    symlink(&outside, target.join("src")).unwrap();
    let r = restore_into(&t, 0, "data:latest", &target);
    assert_eq!(lost(&r), [], "{r}");
    assert_untouched(&before, &outside);
    assert_same_tree(&t.src, &target.join("src"));
}

#[test]
fn restore_reports_a_real_folder_in_a_files_place_as_lost_and_leaves_it_intact() {
    let t = Trove::setup(6, "4+2");
    let mut g = Gen::new(82);
    write(&t.src.join("keep.txt"), &g.text(4_000));
    write(&t.src.join("other.txt"), &g.text(4_000));
    write(&t.src.join("dir/x.txt"), &g.text(4_000));
    symlink("other.txt", t.src.join("keep-link")).unwrap();
    t.backup();

    // The user's own folders where the snapshot has a file and a symlink.
    let target = t.tmp.path().join("target");
    let mine = [target.join("src/keep.txt"), target.join("src/keep-link")];
    for m in &mine {
        write(&m.join("mine.txt"), b"the user's data\n");
        age(&m.join("mine.txt"));
        age(m);
    }
    let before: Vec<_> = mine.iter().map(|m| record(m)).collect();

    let r = restore_into(&t, 3, "data:latest", &target);
    let lost = lost(&r);
    let paths: Vec<&str> = lost.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [mine[1].to_str().unwrap(), mine[0].to_str().unwrap()],
        "{r}"
    );
    for (_, why) in &lost {
        assert!(
            why.contains("folder") && why.contains("left untouched") && why.contains("--include"),
            "the reason names the cause and the next step: {why}"
        );
    }
    for (m, before) in mine.iter().zip(&before) {
        assert_untouched(before, m);
    }
    let mut d = diff_trees(&t.src, &target.join("src"));
    d.sort();
    assert_eq!(d, ["kind differs: keep-link", "kind differs: keep.txt"]);
    assert_eq!(r["files"], 2, "{r}");
    assert_eq!(r["symlinks"], 0, "{r}");
}

#[test]
fn restore_never_follows_a_symlink_an_earlier_restore_left_in_the_target() {
    let t = Trove::setup(6, "4+2");
    let outside = make_outside(&t);
    let before = record(&outside);
    let mut g = Gen::new(83);
    // Snapshot 1: a symlink out of the source, next to a folder.
    write(&t.src.join("folder/f1.txt"), &g.text(6_000));
    symlink(&outside, t.src.join("link")).unwrap();
    let b1 = t.backup();
    let state1 = t.tmp.path().join("state1");
    copy_tree(&t.src, &state1);
    // Snapshot 2: the same name is now a real folder with files.
    std::fs::remove_file(t.src.join("link")).unwrap();
    write(&t.src.join("link/inside.txt"), &g.text(6_000));
    write(&t.src.join("link/docs/deeper.txt"), &g.text(2_000));
    chmod(&t.src.join("link"), 0o700);
    let b2 = t.backup();
    let state2 = t.tmp.path().join("state2");
    copy_tree(&t.src, &state2);
    let (id1, id2) = (id_of(&b1, "snapshot"), id_of(&b2, "snapshot"));

    let target = t.tmp.path().join("target");
    for _ in 0..2 {
        let r = restore_into(&t, 0, &id1, &target);
        assert_untouched(&before, &outside);
        assert_eq!(lost(&r), [], "{r}");
        assert_same_tree(&state1, &target.join("src"));
    }
    // The link restored above must be replaced, never written through.
    let r = restore_into(&t, 0, &id2, &target);
    assert_untouched(&before, &outside);
    assert_eq!(lost(&r), [], "{r}");
    assert_same_tree(&state2, &target.join("src"));
    // And back: the folder restored from snapshot 2 is now the user's, in
    // the place of snapshot 1's symlink; it is kept and reported.
    let kept = record(&target.join("src/link"));
    let r = restore_into(&t, 3, &id1, &target);
    let lost = lost(&r);
    assert_eq!(lost.len(), 1, "{r}");
    assert_eq!(Path::new(&lost[0].0), target.join("src/link"), "{r}");
    assert_untouched(&kept, &target.join("src/link"));
    assert_untouched(&before, &outside);
}
