//! `trove dump`: a snapshot as a tar stream, extracted by the real `tar`
//! and compared with the source (contents, modes, exact mtimes, symlinks,
//! empty folders, long and non-UTF-8 names); a path in it; a reader that
//! goes away; a path the snapshot lacks; data that cannot be rebuilt.

use crate::common::*;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// `trove dump ARGS | tar -x -C into`: trove's exit code and stderr, and
/// tar's exit code.
fn dump_into(t: &Trove, args: &[&str], into: &Path) -> (Option<i32>, String, Option<i32>) {
    std::fs::create_dir_all(into).unwrap();
    let mut full = vec!["dump"];
    full.extend_from_slice(args);
    let mut trove = t.command(&full);
    trove.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut trove = ChildGuard(Some(trove.spawn().expect("spawn trove")));
    let stdout = trove.child().stdout.take().unwrap();
    let mut tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(into)
        .stdin(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tar");
    let tar_status = tar.wait().unwrap();
    let (code, err) = trove.finish(Duration::from_secs(120));
    (code, err, tar_status.code())
}

#[test]
fn a_dump_extracted_by_tar_is_the_source_exactly() {
    let t = Trove::setup(3, "2+1");
    make_small_tree(&t.src, 71);
    // A path longer than a tar header's 100 bytes, and a link target too.
    let long = "a-rather-long-folder-name-to-pass-the-ustar-limit/".repeat(3);
    write(&t.src.join(&long).join("deep-file.txt"), b"far down\n");
    std::os::unix::fs::symlink(
        t.src.join(&long).join("deep-file.txt"),
        t.src.join("long-link"),
    )
    .unwrap();
    t.backup();

    let out = t.fresh_dir("dump");
    let (code, err, tar) = dump_into(&t, &["data:latest"], &out);
    assert_eq!(
        (code, tar),
        (Some(0), Some(0)),
        "dump | tar -x failed: {err}"
    );
    assert_same_tree(&t.src, &out.join("src"));

    // A folder in the snapshot: only it, under its snapshot path (tar
    // makes the parents).
    let part = t.fresh_dir("dump-part");
    let (code, err, tar) = dump_into(&t, &["data:latest", "src/sub/path"], &part);
    assert_eq!((code, tar), (Some(0), Some(0)), "{err}");
    assert_same_tree(&t.src.join("sub/path"), &part.join("src/sub/path"));
    assert_eq!(
        list_tree(&part).keys().cloned().collect::<Vec<_>>(),
        [
            "src",
            "src/sub",
            "src/sub/path",
            "src/sub/path/inner.txt",
            "src/sub/path/more",
            "src/sub/path/more/inner.bin"
        ]
    );
}

#[test]
fn a_dump_stops_quietly_when_its_reader_goes_away_and_names_what_it_cannot_read() {
    let t = Trove::setup(3, "2+1");
    make_small_tree(&t.src, 72);
    // Enough data for whole packs of file data only (6 MiB; the trees are
    // packed at the end of a backup).
    write(&t.src.join("bin/large.bin"), &Gen::new(73).bytes(20 << 20));
    t.backup();

    // `| head -c 100`: the pipe closes early; no error message.
    let mut trove = t.command(&["dump", "data:latest"]);
    trove.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut trove = ChildGuard(Some(trove.spawn().unwrap()));
    let mut first = [0u8; 100];
    trove
        .child()
        .stdout
        .take()
        .unwrap()
        .read_exact(&mut first)
        .unwrap(); // dropped here: the pipe closes
    let (code, err) = trove.finish(Duration::from_secs(120));
    assert_eq!(code, Some(141), "closed pipe exit code; stderr: {err}");
    assert!(err.is_empty(), "a closed pipe is not an error: {err}");

    // A path the snapshot lacks: a usage error naming it.
    let out = t.run(&["dump", "data:latest", "src/no/such/thing"]);
    assert_code(&out, 2, &["dump", "data:latest", "src/no/such/thing"]);
    assert!(
        stderr(&out).contains("src/no/such/thing"),
        "{}",
        describe(&out)
    );

    // Whole data packs' fragments (over 3 MiB each with 2+1) gone from two
    // of three peers: those files cannot be rebuilt. The dump fails naming
    // the first such file and the cause, not with a short archive that
    // looks complete. Which file comes first depends on how the packs fell.
    let mut deleted = 0;
    for (i, f) in t.all_fragments(3) {
        if i != 3 && std::fs::metadata(&f).unwrap().len() > 3 << 20 {
            std::fs::remove_file(&f).unwrap();
            deleted += 1;
        }
    }
    assert!(deleted >= 2, "whole data packs were found");
    let out = run_bounded(
        t.command(&["dump", "data:latest", "src/bin"]),
        Duration::from_secs(120),
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let e = stderr(&out);
    assert!(
        e.contains("error: src/bin/") && e.contains("cannot be rebuilt"),
        "names the file and the cause: {e}"
    );
    assert!(
        e.contains("incomplete"),
        "says the archive is incomplete: {e}"
    );
}
