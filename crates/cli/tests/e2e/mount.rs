//! `trove mount`: the snapshots as a read-only FUSE filesystem, compared
//! with the source, writes refused, unmounted on SIGTERM (detached when
//! busy). FUSE needs /dev/fuse and root here: without them the test says
//! so plainly and checks the error `mount` gives instead.

use crate::common::*;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn fuse_usable() -> Result<(), String> {
    if !Path::new("/dev/fuse").exists() {
        return Err("/dev/fuse is missing".into());
    }
    if !running_as_root() {
        return Err("not root (mounting without root needs fusermount3 setuid)".into());
    }
    Ok(())
}

fn mounted(at: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let at = at.display().to_string();
    mounts
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(at.as_str()))
}

/// Unmounts (lazily) even if an assertion fails, before the child is killed.
struct Unmount<'a>(&'a Path);

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        if mounted(self.0) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(self.0)
                .status();
        }
    }
}

/// `trove mount data MNT`, once it is mounted; its first line of output.
fn start_mount(t: &Trove, mnt: &Path) -> (ChildGuard, String) {
    let mut cmd = t.command(&["mount", "data", &mnt.display().to_string()]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut guard = ChildGuard(Some(cmd.spawn().expect("spawn trove mount")));
    let mut line = String::new();
    BufReader::new(guard.child().stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !mounted(mnt) {
        assert!(Instant::now() < deadline, "not mounted within 30 s: {line}");
        std::thread::sleep(Duration::from_millis(50));
    }
    (guard, line)
}

/// SIGTERM to the mount; its exit code and stderr.
fn stop_mount(mut guard: ChildGuard) -> (Option<i32>, String) {
    let pid = guard.child().id();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    guard.finish(Duration::from_secs(30))
}

#[test]
fn a_mount_shows_every_snapshot_exactly_and_refuses_writes() {
    let t = Trove::setup(3, "2+1");
    make_small_tree(&t.src, 81);
    let first_state = t.fresh_dir("first-state");
    copy_tree(&t.src, &first_state);
    t.backup();
    // A second snapshot with a change, so `latest` and the older one differ.
    write(
        &t.src.join("docs/letter-00.txt"),
        b"changed after the first snapshot\n",
    );
    write(&t.src.join("new-file.txt"), &Gen::new(82).bytes(3 << 20));
    t.backup();

    let mnt = t.fresh_dir("mnt");
    std::fs::create_dir(&mnt).unwrap();
    if let Err(why) = fuse_usable() {
        eprintln!("SKIPPED: mounting ({why}); checking the error instead");
        let out = t.run(&["mount", "data", &mnt.display().to_string()]);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        assert!(stderr(&out).contains("FUSE"), "{}", describe(&out));
        return;
    }

    // Bad mountpoints first: not empty, not a folder, missing.
    let full = t.fresh_dir("full");
    write(&full.join("x"), b"x");
    for (bad, why) in [
        (full.clone(), "is not empty"),
        (full.join("x"), "is not a folder"),
        (t.fresh_dir("missing"), "does not exist"),
    ] {
        let out = t.run(&["mount", "data", &bad.display().to_string()]);
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        assert!(stderr(&out).contains(why), "{why}: {}", describe(&out));
    }

    let _unmount = Unmount(&mnt);
    let (guard, line) = start_mount(&t, &mnt);
    assert!(line.contains("2 snapshot(s) mounted"), "{line}");

    let snaps = mnt.join("snapshots");
    let mut names: Vec<String> = std::fs::read_dir(&snaps)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "two snapshots and latest: {names:?}");
    assert_eq!(names[2], "latest");
    let latest = std::fs::read_link(snaps.join("latest")).unwrap();
    assert_eq!(
        latest,
        Path::new(&names[1]),
        "latest names the newer snapshot"
    );

    assert_same_tree(&t.src, &snaps.join("latest/src"));
    assert_same_tree(&first_state, &snaps.join(&names[0]).join("src"));

    // A read from the middle of a file, across chunk boundaries.
    let big = std::fs::read(t.src.join("new-file.txt")).unwrap();
    let f = std::fs::File::open(snaps.join("latest/src/new-file.txt")).unwrap();
    let mut part = vec![0u8; 1_500_000];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut part, 1_000_001).unwrap();
    assert!(part == big[1_000_001..2_500_001], "a ranged read matches");
    drop(f);

    // Writes are refused by the read-only filesystem.
    for result in [
        std::fs::write(snaps.join("latest/src/new.txt"), b"no"),
        std::fs::OpenOptions::new()
            .append(true)
            .open(snaps.join("latest/src/top.txt"))
            .map(|_| ()),
        std::fs::remove_file(snaps.join("latest/src/top.txt")),
        std::fs::create_dir(snaps.join("latest/src/new-dir")),
    ] {
        let e = result.expect_err("a write to the mount must fail");
        assert_eq!(e.raw_os_error(), Some(30), "EROFS: {e}");
    }

    // SIGTERM: unmounted, and the process exits 0.
    let (code, err) = stop_mount(guard);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("busy"), "{err}");
    assert!(!mounted(&mnt), "unmounted on SIGTERM");
    assert_eq!(std::fs::read_dir(&mnt).unwrap().count(), 0);

    // A file still open at SIGTERM: the busy mount is detached, not left
    // behind with nobody serving it.
    let (guard, _) = start_mount(&t, &mnt);
    let open = std::fs::File::open(mnt.join("snapshots/latest/src/top.txt")).unwrap();
    let (code, err) = stop_mount(guard);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("busy") && err.contains("detached"), "{err}");
    assert!(!mounted(&mnt), "detached on SIGTERM");
    drop(open);
}
