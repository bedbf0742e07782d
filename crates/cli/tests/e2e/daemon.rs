//! `trove daemon` as a real process: changes backed up as they happen, a
//! lost peer repaired with no command, a brief outage left alone, kill -9
//! mid-backup, a source that vanishes, one daemon per home, SIGTERM.
//! Every wait is bounded; every daemon is killed by its guard on failure.

use crate::common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Longest wait for anything the daemon should do within seconds.
const SOON: Duration = Duration::from_secs(90);

/// A running `trove daemon`, its log in a file.
struct Daemon {
    guard: ChildGuard,
    log: PathBuf,
}

impl Daemon {
    fn start(t: &Trove, args: &[&str]) -> Self {
        let dir = t.fresh_dir("daemon-log");
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("daemon.log");
        let mut all = vec!["daemon"];
        all.extend_from_slice(args);
        let mut cmd = t.command(&all);
        cmd.env("TROVE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let d = Self {
            guard: ChildGuard(Some(cmd.spawn().expect("spawn trove daemon"))),
            log,
        };
        // Started once it says so (or died: the log says why).
        d.wait_log("trove daemon started");
        d
    }

    fn pid(&mut self) -> u32 {
        self.guard.child().id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_log(&self, text: &str) {
        wait_for(&format!("`{text}` in the daemon's log"), || {
            self.log().contains(text).then_some(())
        });
    }

    /// SIGTERM, and its exit status (bounded).
    fn terminate(mut self) -> ExitStatus {
        let pid = self.pid();
        sigterm(pid);
        let deadline = Instant::now() + SOON;
        loop {
            if let Some(s) = self.guard.child().try_wait().unwrap() {
                self.guard.0 = None;
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "daemon ignored SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill_9(mut self) {
        let child = self.guard.child();
        child.kill().unwrap();
        child.wait().unwrap();
        self.guard.0 = None;
    }
}

fn sigterm(pid: u32) {
    let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
}

/// Poll `f` until it gives a value, for at most [`SOON`].
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + SOON;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "no {what} within {SOON:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Paths in the latest snapshot of `data`.
fn latest_paths(t: &Trove) -> Vec<String> {
    let v = t.ok_json(&["ls", "data:latest"]);
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_owned())
        .collect()
}

/// A daemon started with `args`, once its first snapshot (the start's
/// rescan) is committed.
fn started(t: &Trove, args: &[&str]) -> Daemon {
    let before = t.snapshots().len();
    let d = Daemon::start(t, args);
    wait_for("the start's snapshot", || {
        (t.snapshots().len() > before).then_some(())
    });
    d
}

/// Nothing is damaged: `check --read-data` finds no problem and the latest
/// snapshot restores exactly.
fn assert_intact(t: &Trove) {
    let v = t.ok_json(&["check", "--read-data"]);
    assert_eq!(v["problems"], serde_json::json!([]), "{v}");
    let (_, out) = t.restore("data:latest");
    assert_same_tree(&t.src, &out);
}

/// Wait until the latest snapshot of `data` has a path ending in `suffix`.
fn wait_in_latest(t: &Trove, suffix: &str) {
    wait_for(&format!("{suffix} in data:latest"), || {
        latest_paths(t)
            .iter()
            .any(|p| p.ends_with(suffix))
            .then_some(())
    });
}

fn status(t: &Trove) -> Value {
    let out = t.run(&["--json", "status"]);
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "status: {}",
        describe(&out)
    );
    parse_json(&out)
}

fn peer_state(s: &Value, name: &str) -> String {
    s["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .map(|p| p["state"].as_str().unwrap().to_owned())
        .unwrap()
}

/// Seconds the daemon logged between the first change and its backup.
fn logged_delays(log: &str) -> Vec<f64> {
    log.lines()
        .filter_map(|l| l.split_once("s after the first change"))
        .filter_map(|(head, _)| head.rsplit(", ").next()?.parse().ok())
        .collect()
}

#[test]
fn changes_are_backed_up_within_max_delay_status_reports_and_sigterm_stops_cleanly() {
    let t = Trove::setup(7, "4+2");
    make_small_tree(&t.src, 31);
    // The first backup is a rescan at start.
    let mut d = started(
        &t,
        &[
            "--debounce",
            "1s",
            "--max-delay",
            "3s",
            "--audit-every",
            "2s",
        ],
    );

    // One daemon per home: a second one says which process holds it.
    let pid = d.pid();
    let out = t.run(&["daemon"]);
    assert_code(&out, 1, &["daemon"]);
    let err = stderr(&out);
    assert!(
        err.contains("already runs") && err.contains(&format!("pid={pid}")),
        "{err}"
    );

    // A new file is in a snapshot within seconds, with no command.
    write(
        &t.src.join("new/hello.txt"),
        b"written while the daemon runs",
    );
    wait_in_latest(&t, "new/hello.txt");

    // A file that never stops changing is still backed up, by max-delay.
    let busy = t.src.join("busy.log");
    let before = t.snapshots().len();
    let writer = {
        let busy = busy.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed() < Duration::from_secs(8) {
                n += 1;
                let line = format!("line {n}\n");
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&busy)
                    .unwrap();
                std::io::Write::write_all(&mut f, line.as_bytes()).unwrap();
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    };
    writer.join().unwrap();
    let during = t.snapshots().len() - before;
    // Then quiet: its last state is backed up after the debounce.
    let final_len = std::fs::metadata(&busy).unwrap().len();
    wait_for("busy.log's last state in data:latest", || {
        let v = t.ok_json(&["ls", "data:latest"]);
        v.as_array()
            .unwrap()
            .iter()
            .any(|e| e["path"] == "src/busy.log" && e["size"] == final_len)
            .then_some(())
    });
    assert!(
        during >= 1,
        "no snapshot while busy.log kept changing for 8s (max-delay 3s):\n{}",
        d.log()
    );
    // The scheduler kept its promise: no backup started later than
    // max-delay after the first change (plus scheduling slack).
    let delays = logged_delays(&d.log());
    assert!(!delays.is_empty(), "{}", d.log());
    assert!(
        delays.iter().all(|s| *s <= 3.0 + 1.0),
        "delays {delays:?}:\n{}",
        d.log()
    );

    // Status: the container, redundancy, the estimate, every peer, the daemon.
    wait_for("an audit round", || {
        d.log().contains("audit: ").then_some(())
    });
    let s = status(&t);
    let c = &s["containers"][0];
    assert_eq!(c["name"], "data");
    assert!(c["last_snapshot_unix"].as_i64().unwrap() > 0);
    assert!(c["packs_total"].as_u64().unwrap() > 0);
    assert_eq!(c["packs_degraded"], 0, "{s}");
    let p = c["loss_probability_year"].as_f64().unwrap();
    assert!(p > 0.0 && p < 1e-3, "{s}");
    let peers = s["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 7);
    for peer in peers {
        assert_eq!(peer["state"], "online", "{s}");
        assert!(peer["last_seen_unix"].as_i64().is_some());
    }
    assert!(
        peers
            .iter()
            .any(|p| p["audit_rounds_passed"].as_u64().unwrap() > 0),
        "{s}"
    );
    assert_eq!(s["daemon"]["running"], true);
    assert_eq!(s["daemon"]["pid"], pid);

    // SIGTERM: clean exit, and the home is free for the next daemon.
    let log_before = d.log.clone();
    let st = d.terminate();
    assert!(st.success(), "{st:?}");
    let log = std::fs::read_to_string(log_before).unwrap();
    assert!(log.contains("trove daemon stopped"), "{log}");
    let s = status(&t);
    assert_eq!(s["daemon"]["running"], false);
    // Nothing it wrote is damaged.
    assert_intact(&t);
}

#[test]
fn a_lost_peer_is_repaired_with_no_command_and_a_brief_outage_is_not() {
    let t = Trove::setup(7, "4+2");
    let mut g = Gen::new(32);
    for i in 0..6 {
        write(&t.src.join(format!("f{i}.bin")), &g.bytes(3 << 20));
    }
    make_small_tree(&t.src.join("tree"), 33);
    let d = started(
        &t,
        &[
            "--debounce",
            "1s",
            "--max-delay",
            "3s",
            "--audit-every",
            "1s",
            "--peer-lost-after",
            "10s",
        ],
    );
    wait_for("an audit round", || {
        d.log().contains("audit: ").then_some(())
    });

    // p2 away for less than the threshold (a disk unplugged and back).
    let away = t.peers_dir.join("p2.away");
    std::fs::rename(t.peer(2), &away).unwrap();
    wait_for("p2 suspect", || {
        d.log().contains("peer p2 is suspect").then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    std::fs::rename(&away, t.peer(2)).unwrap();
    wait_for("p2 online again", || {
        (peer_state(&status(&t), "p2") == "online").then_some(())
    });
    std::thread::sleep(Duration::from_secs(12));
    assert!(
        !d.log().contains("repair:"),
        "a brief outage caused a repair:\n{}",
        d.log()
    );

    // A peer folder is deleted: lost after 10s, then repaired, unasked.
    // A peer that holds fragments (placement picks 6 of the 7 per pack).
    let doomed = (3..=7)
        .find(|i| !fragment_files(&t.peer(*i)).is_empty())
        .unwrap();
    let name = format!("p{doomed}");
    std::fs::remove_dir_all(t.peer(doomed)).unwrap();
    let gone = Instant::now();
    let s = wait_for("the peer lost and every pack at full redundancy", || {
        let s = status(&t);
        let c = &s["containers"][0];
        (peer_state(&s, &name) == "lost" && c["packs_degraded"] == 0 && c["packs_to_repair"] == 0)
            .then_some(s)
    });
    eprintln!(
        "peer loss to full redundancy: {:.1}s",
        gone.elapsed().as_secs_f64()
    );
    assert!(d.log().contains("repair: "), "{}", d.log());
    assert!(s["containers"][0]["packs_total"].as_u64().unwrap() > 0);
    d.terminate();
    // Two more peers vanish: 4 of the 6 fragments of every pack are left.
    std::fs::remove_dir_all(t.peer(1)).unwrap();
    std::fs::remove_dir_all(t.peer(2)).unwrap();
    let (_, out) = t.restore("data:latest");
    assert_same_tree(&t.src, &out);
}

/// The guided walks the daemon logged: (paths seen, folders walked,
/// folders kept).
fn guided_walks(log: &str) -> Vec<(u64, u64, u64)> {
    log.lines()
        .filter_map(|l| {
            let (_, tail) = l.split_once("; ")?;
            let (seen, tail) = tail.split_once(" changed path(s) seen: ")?;
            let (walked, tail) = tail.split_once(" folder(s) walked, ")?;
            let (kept, _) = tail.split_once(" kept")?;
            Some((seen.parse().ok()?, walked.parse().ok()?, kept.parse().ok()?))
        })
        .collect()
}

#[test]
fn the_daemon_walks_only_what_changed_and_its_snapshots_stay_exact() {
    let t = Trove::setup(3, "2+1");
    make_small_tree(&t.src, 37);
    let d = started(&t, &["--debounce", "1s", "--max-delay", "2s"]);
    // The start's backup walked everything.
    assert!(guided_walks(&d.log()).is_empty(), "{}", d.log());

    // One file changed deep down: the folders above it are walked, its
    // neighbours kept.
    write(&t.src.join("nested/a/b/c/deep.txt"), b"changed deep down");
    wait_for("the change in a snapshot", || {
        guided_walks(&d.log()).first().copied()
    });
    let (_, walked, kept) = guided_walks(&d.log())[0];
    assert_eq!(walked, 5, "src, nested, a, b, c:\n{}", d.log());
    // docs, bin, sub, dup, empty-dir and nested/empty-inner.
    assert_eq!(kept, 6, "{}", d.log());
    // Status says the daemon knows what changed.
    assert_eq!(status(&t)["containers"][0]["daemon"]["knows_changes"], true);
    let text = t.run(&["status"]);
    assert!(
        String::from_utf8_lossy(&text.stdout)
            .contains("a backup for changes walks only the folders that changed"),
        "{}",
        describe(&text)
    );

    // A folder made with files inside, a folder moved, a folder deleted,
    // a mode changed: each is in the next snapshots.
    std::fs::create_dir_all(t.src.join("made/inner")).unwrap();
    write(&t.src.join("made/inner/new.txt"), b"made while watched");
    std::fs::rename(t.src.join("sub/path"), t.src.join("docs/path-moved")).unwrap();
    std::fs::remove_dir_all(t.src.join("dup")).unwrap();
    chmod(&t.src.join("docs/letter-03.txt"), 0o600);
    wait_in_latest(&t, "made/inner/new.txt");
    wait_for("every change in data:latest", || {
        let paths = latest_paths(&t);
        (paths
            .iter()
            .any(|p| p.ends_with("docs/path-moved/more/inner.bin"))
            && !paths
                .iter()
                .any(|p| p.contains("/dup") || p.contains("sub/path")))
        .then_some(())
    });
    // Quiet again: the source and the latest snapshot agree exactly.
    std::thread::sleep(Duration::from_secs(3));
    let walks = guided_walks(&d.log());
    assert!(walks.iter().all(|w| w.2 > 0), "{walks:?}");
    assert!(d.terminate().success());
    assert_intact(&t);
}

#[test]
fn trove_backup_asks_the_running_daemon_which_covers_a_change_made_just_before() {
    let t = Trove::setup(3, "2+1");
    make_small_tree(&t.src, 38);
    // Long quiet times: only the command makes the daemon back up.
    let mut d = started(&t, &["--debounce", "10m", "--max-delay", "20m"]);
    let pid = d.pid();
    wait_for("the daemon to take requests", || {
        status(&t)["daemon"]["running"].as_bool().filter(|r| *r)
    });
    // No passphrase needed: the daemon holds the keys.
    let backup = |args: &[&str]| {
        let mut cmd = t.command(args);
        cmd.env_remove("TROVE_PASSPHRASE");
        run_bounded(cmd, SOON)
    };
    for i in 0..5 {
        // Written, then backed up at once: the request comes after the
        // change's events, so the snapshot has it.
        let name = format!("docs/made-{i}.txt");
        write(&t.src.join(&name), format!("change {i}").as_bytes());
        let out = backup(&["--json", "backup"]);
        assert_code(&out, 0, &["backup"]);
        let v = parse_json(&out);
        assert_eq!(v["by_daemon"], pid, "{v}");
        assert_eq!(v["files_new"], 1, "{v}");
        assert!(v["guided_walk"]["kept"].as_u64().unwrap() > 0, "{v}");
        assert!(latest_paths(&t).iter().any(|p| p.ends_with(&name)));
    }
    // For people: says who made it.
    write(&t.src.join("top.txt"), b"changed for the text output");
    let out = backup(&["backup", "data"]);
    assert_code(&out, 0, &["backup"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("committed by trove daemon (pid {pid})"))
            && text.contains("1 changed"),
        "{text}"
    );
    // A container made after the daemon started is not its own: the
    // command backs it up itself.
    let other = t.tmp.path().join("other-src");
    write(&other.join("note.txt"), b"a second container");
    t.ok_json(&["container", "create", "other", other.to_str().unwrap()]);
    let out = t.run(&["--json", "backup", "other"]);
    assert_code(&out, 0, &["backup", "other"]);
    assert!(
        stderr(&out).contains("looks after no container `other`")
            && stderr(&out).contains("backing up here"),
        "{}",
        describe(&out)
    );
    assert_eq!(parse_json(&out)["files_new"], 1);
    // `--no-daemon` walks here (and needs the passphrase).
    let v = t.ok_json(&["backup", "data", "--no-daemon"]);
    assert!(v.get("by_daemon").is_none(), "{v}");
    // 28 files made, 5 added: all in the daemon's last snapshot.
    assert_eq!(
        (&v["files_unchanged"], &v["files_changed"], &v["files_new"]),
        (&33.into(), &0.into(), &0.into()),
        "{v}"
    );
    assert_intact(&t);
    // With no daemon, `trove backup` is as before.
    d.kill_9();
    write(&t.src.join("after.txt"), b"no daemon now");
    let v = t.ok_json(&["backup", "data"]);
    assert!(v.get("by_daemon").is_none(), "{v}");
    assert_eq!(v["files_new"], 1, "{v}");
    assert_intact(&t);
}

#[test]
fn a_daemon_killed_while_it_answers_trove_backup_leaves_the_command_to_back_up_itself() {
    let t = Trove::setup(3, "2+1");
    make_small_tree(&t.src, 39);
    let d = started(&t, &["--debounce", "10m", "--max-delay", "20m"]);
    wait_for("the daemon to take requests", || {
        std::fs::read_to_string(t.home.join("daemon.json"))
            .ok()
            .filter(|s| s.contains("\"takes_requests\": true"))
    });
    // Enough new data that the daemon's backup takes a while.
    let fragments = || t.all_fragments(3).len();
    let before = fragments();
    let mut g = Gen::new(40);
    for i in 0..4 {
        write(&t.src.join(format!("big/{i}.bin")), &g.bytes(12 << 20));
    }
    let command = {
        let mut cmd = t.command(&["--json", "backup"]);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.spawn().unwrap()
    };
    let command = ChildGuard(Some(command));
    // Killed once its backup has stored some, not all, of its packs.
    wait_for("the daemon's backup under way", || {
        (fragments() >= before + 6).then_some(())
    });
    d.kill_9();
    let out = finish_bounded(command, SOON, "trove backup");
    assert_code(&out, 0, &["backup"]);
    assert!(
        stderr(&out).contains("stopped before it answered; backing up here"),
        "{}",
        describe(&out)
    );
    let v = parse_json(&out);
    assert!(v.get("by_daemon").is_none(), "{v}");
    let paths = latest_paths(&t);
    assert!((0..4).all(|i| paths.iter().any(|p| p.ends_with(&format!("big/{i}.bin")))));
    assert_intact(&t);
}

#[test]
fn kill_9_of_the_daemon_mid_backup_then_restart_loses_nothing() {
    let t = Trove::setup(7, "4+2");
    make_small_tree(&t.src, 34);
    let d = started(&t, &["--debounce", "1s", "--max-delay", "2s"]);
    let fragments = || t.all_fragments(7).len();
    let before = fragments();
    let mut g = Gen::new(35);
    for i in 0..4 {
        write(&t.src.join(format!("big/{i}.bin")), &g.bytes(20 << 20));
    }
    // Killed once the big backup has stored some, not all, of its packs.
    wait_for("the big backup under way", || {
        (fragments() >= before + 12).then_some(())
    });
    d.kill_9();
    let d = Daemon::start(&t, &["--debounce", "1s", "--max-delay", "2s"]);
    wait_for("every big file in data:latest", || {
        let paths = latest_paths(&t);
        (0..4)
            .all(|i| paths.iter().any(|p| p.ends_with(&format!("big/{i}.bin"))))
            .then_some(())
    });
    assert!(d.terminate().success());
    assert_intact(&t);
}

#[test]
fn a_vanished_source_is_not_backed_up_as_empty_until_a_rescan_confirms_it() {
    let t = Trove::setup(3, "2+1");
    make_small_tree(&t.src, 36);
    let d = started(&t, &["--debounce", "1s", "--max-delay", "2s"]);
    // The disk "unmounts": the source folder is gone.
    let aside = t.tmp.path().join("src.aside");
    std::fs::rename(&t.src, &aside).unwrap();
    d.wait_log("the last snapshot is kept");
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(t.snapshots().len(), 1, "{}", d.log());
    let s = status(&t);
    assert!(
        s["containers"][0]["daemon"]["held"]
            .as_str()
            .is_some_and(|h| h.contains("empty or missing")),
        "{s}"
    );
    // It comes back with a change: backed up, and watched again.
    std::fs::rename(&aside, &t.src).unwrap();
    write(&t.src.join("after.txt"), b"back");
    wait_in_latest(&t, "after.txt");
    write(&t.src.join("watched.txt"), b"watched again");
    wait_in_latest(&t, "watched.txt");
    assert!(d.terminate().success());

    // With a short rescan, a source emptied for good is confirmed, and
    // then backed up as it is.
    let d = Daemon::start(
        &t,
        &["--debounce", "1s", "--max-delay", "2s", "--rescan", "4s"],
    );
    for e in std::fs::read_dir(&t.src).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            std::fs::remove_dir_all(p).unwrap();
        } else {
            std::fs::remove_file(p).unwrap();
        }
    }
    d.wait_log("backing it up as it is");
    wait_for("an empty snapshot", || {
        latest_paths(&t).iter().all(|p| p == "src").then_some(())
    });
    assert!(d.terminate().success());
}

#[test]
fn a_wrong_passphrase_stops_the_daemon_at_start_and_frees_the_home() {
    let t = Trove::setup(3, "2+1");
    make_small_tree(&t.src, 37);
    let out = t.run_with_pass("not the passphrase", &["daemon"]);
    assert_code(&out, 1, &["daemon"]);
    assert!(
        stderr(&out).contains("wrong passphrase"),
        "{}",
        describe(&out)
    );
    // Nothing holds the home: a daemon with the right one starts.
    let d = started(&t, &["--debounce", "1s", "--max-delay", "2s"]);
    assert!(d.terminate().success());
}

/// A tmpfs mounted on a path for a test, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` when this machine does not let the tests mount (not root, no
    /// CAP_SYS_ADMIN): the caller says so and skips.
    fn mount(path: &std::path::Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(path).unwrap();
        let st = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(path)
            .stderr(Stdio::null())
            .status()
            .ok()?;
        st.success().then(|| Self(path.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_full_trove_home_disk_is_retried_and_nothing_is_lost() {
    let t = Trove::new();
    let Some(_disk) = Tmpfs::mount(&t.home, "64m") else {
        eprintln!(
            "SKIPPED a_full_trove_home_disk_is_retried_and_nothing_is_lost: cannot mount a tmpfs here (needs root)"
        );
        return;
    };
    t.setup_in_place(3, "2+1");
    make_small_tree(&t.src, 38);
    // A short rescan caps the retry backoff, so the test need not wait 30s.
    let d = started(
        &t,
        &["--debounce", "1s", "--max-delay", "2s", "--rescan", "3s"],
    );
    // Fill TROVE_HOME's disk.
    let filler = t.home.join("filler");
    {
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0xA5u8; 1 << 20];
        while std::io::Write::write_all(&mut f, &block).is_ok() {}
    }
    let mut g = Gen::new(39);
    write(&t.src.join("while-full.bin"), &g.bytes(3 << 20));
    let failure = wait_for("a step failing for want of space", || {
        d.log()
            .lines()
            .find(|l| l.contains("No space left on device") && l.contains("backup"))
            .map(str::to_owned)
    });
    eprintln!("the daemon said: {failure}");
    assert!(d.guard.0.is_some(), "the daemon is still running");
    // Space again: the retry backs the file up.
    std::fs::remove_file(&filler).unwrap();
    wait_in_latest(&t, "while-full.bin");
    assert!(d.terminate().success());
    assert_intact(&t);
}

#[test]
fn the_daemon_applies_a_containers_retention_on_its_schedule() {
    let t = Trove::setup(3, "2+1");
    make_small_tree(&t.src, 40);
    let v = t.ok_json(&[
        "container",
        "set",
        "data",
        "--keep-last",
        "2",
        "--prune-every",
        "3s",
    ]);
    assert_eq!(
        (v["keep_last"].as_u64(), v["changed"].as_bool()),
        (Some(2), Some(true)),
        "{v}"
    );
    let c = t.ok_json(&["config", "show"]);
    assert_eq!(c["exists"], true, "{c}");
    assert_eq!(c["config"]["containers"]["data"]["keep_last"], 2, "{c}");
    assert_eq!(
        c["config"]["containers"]["data"]["prune_every"], "3s",
        "{c}"
    );
    let out = t.run(&["container", "set", "nope", "--keep-last", "1"]);
    assert!(
        !out.status.success() && stderr(&out).contains("nope"),
        "{}",
        describe(&out)
    );
    for i in 0..4 {
        write(
            &t.src.join(format!("gen-{i}.txt")),
            format!("generation {i}").as_bytes(),
        );
        t.backup();
    }
    assert_eq!(t.snapshots().len(), 4);
    // The start's rescan makes a fifth; the retention step keeps two.
    let d = Daemon::start(&t, &["--debounce", "1s", "--max-delay", "2s"]);
    d.wait_log("retention of data");
    let kept = t.snapshots();
    assert_eq!(kept.len(), 2, "{kept:?}\n{}", d.log());
    assert!(
        d.log().contains("2 snapshot(s) kept, 3 forgotten"),
        "{}",
        d.log()
    );
    // A new schedule while it runs is taken in without a restart.
    t.ok_json(&["container", "set", "data", "--keep-last", "1"]);
    d.wait_log("new schedule from config.toml");
    wait_for("one snapshot kept", || {
        (t.snapshots().len() == 1).then_some(())
    });
    assert!(d.terminate().success());
    assert_intact(&t);
}

#[test]
fn a_file_rewritten_during_its_backup_is_never_stored_torn() {
    let t = Trove::setup(3, "2+1");
    let big = t.src.join("busy.bin");
    let mut g = Gen::new(41);
    write(&big, &g.bytes(24 << 20));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (big, stop) = (big.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut g = Gen::new(42);
            let mut rounds = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Rewrite a slice in place: the size stays, mtime moves.
                let mut f = std::fs::OpenOptions::new().write(true).open(&big).unwrap();
                let at = g.below(23 << 20);
                std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(at)).unwrap();
                std::io::Write::write_all(&mut f, &g.bytes(64 << 10)).unwrap();
                rounds += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            rounds
        })
    };
    let during = t.backup();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let rounds = writer.join().unwrap();
    assert!(rounds > 0);
    eprintln!(
        "rewrites during the backup: {rounds}; warnings: {}",
        during["warnings"]
    );
    stored_whole_then_caught_up(&t, &during);
}

/// After `during`, a backup made while one file changed: its only warnings
/// are that the file kept changing, whatever it stored restores as a whole,
/// verified (sizes and chunks agree), and the next backup takes the final
/// bytes.
fn stored_whole_then_caught_up(t: &Trove, during: &Value) {
    for w in during["warnings"].as_array().unwrap() {
        assert!(
            w.as_str()
                .unwrap()
                .contains("kept changing while it was read"),
            "{during}"
        );
    }
    t.restore("data:latest");
    let after = t.backup();
    assert_eq!(after["files_changed"], 1, "{after}");
    let (_, out) = t.restore("data:latest");
    assert_same_tree(&t.src, &out);
}

/// A file that grows while it is backed up (a log being written) is read
/// to the size the walk saw, found changed, and read again; whatever is
/// stored is one whole read of it, and the next backup takes the rest.
#[test]
fn a_file_growing_during_its_backup_is_stored_as_one_read() {
    let t = Trove::setup(3, "2+1");
    let log = t.src.join("growing.log");
    let mut g = Gen::new(43);
    write(&log, &g.bytes(16 << 20));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (log, stop) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut g = Gen::new(44);
            let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
            let mut rounds = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::io::Write::write_all(&mut f, &g.bytes(16 << 10)).unwrap();
                rounds += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            rounds
        })
    };
    let during = t.backup();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(writer.join().unwrap() > 0);
    stored_whole_then_caught_up(&t, &during);
}

/// A daemon holds the master secret it unlocked at its start. After
/// `trove recovery rotate` the peers refuse that secret, so the daemon's
/// next step stops it with a message, and a new daemon (new secret) backs
/// up what changed.
#[test]
fn a_rotated_master_secret_stops_the_daemon_that_holds_the_old_one() {
    let t = Trove::setup(3, "2+1");
    make_small_tree(&t.src, 38);
    let mut d = started(&t, &["--debounce", "1s", "--max-delay", "2s"]);
    t.ok_json(&["recovery", "rotate"]);
    write(&t.src.join("docs/after-rotation.txt"), b"new");
    let exit = wait_for("the daemon to stop", || d.guard.child().try_wait().unwrap());
    d.guard.0 = None;
    assert!(
        d.log().contains("master secret of this home was rotated"),
        "{}",
        d.log()
    );
    assert_eq!(
        exit.code(),
        Some(1),
        "a service manager restarts it: {exit}"
    );
    let d = started(&t, &["--debounce", "1s", "--max-delay", "2s"]);
    wait_in_latest(&t, "after-rotation.txt");
    assert!(d.terminate().success());
    assert_intact(&t);
}

/// An heir's open claim reaches the owner through the daemon: every audit
/// round logs it, with the command that vetoes it.
#[test]
fn the_daemon_logs_an_open_inheritance_claim() {
    let t = Trove::new();
    t.init();
    let escrow = crate::inherit::Escrowed::set_up(&t);
    t.create_container("1+1");
    make_small_tree(&t.src, 39);
    t.backup();
    escrow.claim();
    let d = started(
        &t,
        &[
            "--debounce",
            "1s",
            "--max-delay",
            "2s",
            "--audit-every",
            "1s",
        ],
    );
    d.wait_log("INHERITANCE CLAIM open on custodian");
    assert!(d.log().contains("trove inherit veto"), "{}", d.log());
    assert!(d.terminate().success());
}
