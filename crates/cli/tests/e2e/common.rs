//! Shared helpers of the end-to-end tests: they drive the real `trove`
//! binary in a throwaway directory (its own `TROVE_HOME`, source folder and
//! folder peers) and compare trees on disk.

use serde_json::Value;
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

/// The passphrase every test home is created with.
pub const PASS: &str = "correct horse battery staple";

/// No single command of these tests may take longer than this.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

/// The uid/gid the unprivileged tests run the binary as when the tests run as root.
pub const NOBODY: u32 = 65534;

/// Taken for reading by every test (through [`Trove`], or [`Turn::shared`])
/// and for writing by a test that must run alone ([`Turn::alone`]).
static TURNS: RwLock<()> = RwLock::new(());

thread_local! {
    /// Turns this test's thread holds: only the first one takes the lock,
    /// so a test may make several worlds.
    static TURNS_HELD: Cell<usize> = const { Cell::new(0) };
}

/// A test's turn to run. These tests share one binary and run side by side,
/// except those that take [`Turn::alone`]: `trove demo` reports which peer
/// was slow and which fragment corrupt, which depends on timing, and it ran
/// alone in its own binary before the tests were one.
#[derive(Debug)]
pub struct Turn {
    _shared: Option<RwLockReadGuard<'static, ()>>,
    _alone: Option<RwLockWriteGuard<'static, ()>>,
}

impl Turn {
    /// Run beside the other tests (but never beside one that runs alone).
    pub fn shared() -> Turn {
        Turn::take(false)
    }

    /// Wait for the tests running now, then run with no other test; to be
    /// taken before anything else in the test.
    pub fn alone() -> Turn {
        Turn::take(true)
    }

    fn take(alone: bool) -> Turn {
        let held = TURNS_HELD.with(|h| h.replace(h.get() + 1));
        let mut turn = Turn {
            _shared: None,
            _alone: None,
        };
        if held > 0 {
            assert!(!alone, "Turn::alone must be taken first in its test");
        } else if alone {
            // A test that failed holding its turn does not stop the others.
            turn._alone = Some(TURNS.write().unwrap_or_else(PoisonError::into_inner));
        } else {
            turn._shared = Some(TURNS.read().unwrap_or_else(PoisonError::into_inner));
        }
        turn
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        TURNS_HELD.with(|h| h.set(h.get() - 1));
    }
}

/// One throwaway Trove world: a home, a source folder and a folder for peers,
/// all under one temporary directory that is removed on drop.
#[derive(Debug)]
pub struct Trove {
    pub tmp: tempfile::TempDir,
    /// `TROVE_HOME`.
    pub home: PathBuf,
    /// The folder the container backs up (its snapshot name is `src`).
    pub src: PathBuf,
    /// Parent of the peer folders `p1`, `p2`, ...
    pub peers_dir: PathBuf,
    /// When set, the binary runs through `setpriv` as `nobody` (a copy of it
    /// inside the temporary directory, so that `nobody` can execute it).
    unprivileged_bin: Option<PathBuf>,
    /// This test's turn, held as long as the world.
    _turn: Turn,
}

/// Whether this test process runs as root (where permission bits do not
/// stop reads).
pub fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

impl Trove {
    /// A fresh world with an empty source folder; nothing is initialised.
    pub fn new() -> Self {
        let turn = Turn::shared();
        let tmp = tempfile::Builder::new()
            .prefix("trove-e2e-")
            .tempdir()
            .expect("create temp dir");
        let home = tmp.path().join("home");
        let src = tmp.path().join("src");
        let peers_dir = tmp.path().join("peers");
        std::fs::create_dir_all(&src).expect("create src");
        std::fs::create_dir_all(&peers_dir).expect("create peers dir");
        Self {
            tmp,
            home,
            src,
            peers_dir,
            unprivileged_bin: None,
            _turn: turn,
        }
    }

    /// A world whose commands run without the power to read unreadable
    /// files: as `nobody` through `setpriv` when the tests run as root,
    /// directly otherwise. `Err` says why this is impossible here.
    pub fn new_unprivileged() -> Result<Self, String> {
        let mut t = Self::new();
        if !running_as_root() {
            return Ok(t);
        }
        let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .ok_or("running as root and util-linux `setpriv` is not installed")?;
        // Everything nobody must reach is made world-accessible.
        for d in [t.tmp.path(), &t.src, &t.peers_dir] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777))
                .map_err(|e| format!("chmod {}: {e}", d.display()))?;
        }
        let bin = t.tmp.path().join("trove-bin");
        std::fs::copy(env!("CARGO_BIN_EXE_trove"), &bin)
            .map_err(|e| format!("copy the binary: {e}"))?;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("chmod the binary: {e}"))?;
        let probe = Command::new(setpriv)
            .args(setpriv_args())
            .arg(&bin)
            .arg("--version")
            .output()
            .map_err(|e| format!("running setpriv: {e}"))?;
        if !probe.status.success() {
            return Err(format!(
                "setpriv cannot run the binary as nobody: {}",
                String::from_utf8_lossy(&probe.stderr)
            ));
        }
        let who = Command::new(setpriv)
            .args(setpriv_args())
            .arg("id")
            .arg("-u")
            .output()
            .map_err(|e| format!("running setpriv id: {e}"))?;
        if String::from_utf8_lossy(&who.stdout).trim() != NOBODY.to_string() {
            return Err("setpriv did not switch to nobody".into());
        }
        t.unprivileged_bin = Some(bin);
        Ok(t)
    }

    /// When the binary runs as `nobody`, make `nobody` own the source tree,
    /// as a user owns their files (modes are kept).
    pub fn give_src_to_runner(&self) {
        fn walk(p: &Path) {
            std::os::unix::fs::lchown(p, Some(NOBODY), Some(NOBODY))
                .unwrap_or_else(|e| panic!("chown {}: {e}", p.display()));
            let m = std::fs::symlink_metadata(p).expect("stat");
            if m.is_dir() {
                for e in std::fs::read_dir(p).expect("read_dir") {
                    walk(&e.expect("entry").path());
                }
            }
        }
        if self.unprivileged_bin.is_some() {
            walk(&self.src);
        }
    }

    /// The command for `trove ARGS` with this world's home and passphrase.
    pub fn command_with_pass(&self, pass: &str, args: &[&str]) -> Command {
        let mut c = match &self.unprivileged_bin {
            Some(bin) => {
                let mut c = Command::new("setpriv");
                c.args(setpriv_args()).arg(bin);
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_trove")),
        };
        c.args(args)
            .current_dir(self.tmp.path())
            .env("TROVE_HOME", &self.home)
            .env("TROVE_PASSPHRASE", pass)
            // Node peers: loopback only, no relays, no lookups, no multicast.
            .env("TROVE_NETWORK", "direct")
            .env("TROVE_BIND", "127.0.0.1:0")
            .env_remove("TROVE_RELAY")
            .env_remove("TROVE_LOG")
            .env_remove("XDG_DATA_HOME")
            .stdin(Stdio::null());
        c
    }

    pub fn command(&self, args: &[&str]) -> Command {
        self.command_with_pass(PASS, args)
    }

    /// Run `trove ARGS` to completion (bounded by [`COMMAND_TIMEOUT`]).
    pub fn run(&self, args: &[&str]) -> Output {
        run_bounded(self.command(args), COMMAND_TIMEOUT)
    }

    pub fn run_with_pass(&self, pass: &str, args: &[&str]) -> Output {
        run_bounded(self.command_with_pass(pass, args), COMMAND_TIMEOUT)
    }

    /// `trove --json ARGS`, asserting exit code `code`; the parsed stdout.
    pub fn json_code(&self, code: i32, args: &[&str]) -> Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = self.run(&full);
        assert_code(&out, code, &full);
        parse_json(&out)
    }

    /// `trove --json ARGS`, asserting success; the parsed stdout.
    pub fn ok_json(&self, args: &[&str]) -> Value {
        self.json_code(0, args)
    }

    pub fn init(&self) -> Value {
        let v = self.ok_json(&["init"]);
        assert_eq!(
            v["phrase"].as_str().map(|p| p.split(' ').count()),
            Some(24),
            "init prints a 24-word phrase: {v}"
        );
        v
    }

    /// Path of peer folder `p{i}` (1-based).
    pub fn peer(&self, i: usize) -> PathBuf {
        self.peers_dir.join(format!("p{i}"))
    }

    /// Add `n` folder peers `p1..pn`, each on its own site.
    pub fn add_folder_peers(&self, n: usize) -> Vec<PathBuf> {
        (1..=n)
            .map(|i| {
                let p = self.peer(i);
                let loc = format!("dir:{}", p.display());
                let name = format!("p{i}");
                let label = format!("site=site-{i}");
                let v = self.ok_json(&["peer", "add", &name, &loc, "--label", &label]);
                assert_eq!(v["name"], name.as_str());
                assert_eq!(v["labels"]["site"], format!("site-{i}").as_str());
                assert!(p.join("trove-peer").is_file(), "peer folder marker made");
                p
            })
            .collect()
    }

    /// Create container `data` over the source folder.
    pub fn create_container(&self, redundancy: &str) -> Value {
        let src = self.src.display().to_string();
        let v = self.ok_json(&[
            "container",
            "create",
            "data",
            &src,
            "--redundancy",
            redundancy,
        ]);
        assert_eq!(v["redundancy"], redundancy);
        v
    }

    /// init + `peers` folder peers + container `data` with `redundancy`.
    pub fn setup(peers: usize, redundancy: &str) -> Self {
        let t = Self::new();
        t.setup_in_place(peers, redundancy);
        t
    }

    pub fn setup_in_place(&self, peers: usize, redundancy: &str) {
        self.init();
        self.add_folder_peers(peers);
        self.create_container(redundancy);
    }

    /// The owner's machine is gone: destroy the home and recover it from
    /// the 24-word `phrase` (`recover --phrase-file`).
    pub fn lose_home_and_recover(&self, phrase: &str) {
        std::fs::remove_dir_all(&self.home).unwrap();
        let pf = self.tmp.path().join("phrase.txt");
        std::fs::write(&pf, phrase).unwrap();
        self.ok_json(&["recover", "--phrase-file", &pf.display().to_string()]);
    }

    /// `trove --json backup`, asserting success.
    pub fn backup(&self) -> Value {
        self.ok_json(&["backup"])
    }

    /// Restore `spec` into a new folder under the temp dir, asserting
    /// `code`; returns the report and the restored source folder.
    pub fn restore_code(&self, code: i32, spec: &str, extra: &[&str]) -> (Value, PathBuf) {
        let target = self.fresh_dir("restore");
        let t = target.display().to_string();
        let mut args = vec!["restore", spec, "--target", &t];
        args.extend_from_slice(extra);
        let v = self.json_code(code, &args);
        (v, target.join("src"))
    }

    pub fn restore(&self, spec: &str) -> (Value, PathBuf) {
        self.restore_code(0, spec, &[])
    }

    /// A new, not yet existing path under the temp dir.
    pub fn fresh_dir(&self, prefix: &str) -> PathBuf {
        for n in 0.. {
            let p = self.tmp.path().join(format!("{prefix}-{n}"));
            if !p.exists() {
                return p;
            }
        }
        unreachable!()
    }

    /// `trove --json snapshots`.
    pub fn snapshots(&self) -> Vec<Value> {
        self.ok_json(&["snapshots"])
            .as_array()
            .expect("snapshots is a JSON array")
            .clone()
    }

    /// Every fragment file of every peer folder `p1..pn`.
    pub fn all_fragments(&self, n: usize) -> Vec<(usize, PathBuf)> {
        (1..=n)
            .flat_map(|i| {
                fragment_files(&self.peer(i))
                    .into_iter()
                    .map(move |f| (i, f))
            })
            .collect()
    }
}

fn setpriv_args() -> [String; 3] {
    [
        format!("--reuid={NOBODY}"),
        format!("--regid={NOBODY}"),
        "--clear-groups".into(),
    ]
}

/// Kills and reaps a child on drop, so a failing test leaves no process.
#[derive(Debug)]
pub struct ChildGuard(pub Option<Child>);

impl ChildGuard {
    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("child not yet taken")
    }

    /// Wait up to `timeout` for the child to exit (it is killed if it does
    /// not); its exit code and its piped stderr (small: it is read after
    /// the exit).
    pub fn finish(mut self, timeout: Duration) -> (Option<i32>, String) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.child().try_wait().expect("wait for child") {
                break s;
            }
            assert!(Instant::now() < deadline, "did not exit within {timeout:?}");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        if let Some(mut e) = self.child().stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        self.0 = None;
        (status.code(), err)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Run a command with its output captured; kill it after `timeout`.
pub fn run_bounded(mut cmd: Command, timeout: Duration) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let guard = ChildGuard(Some(cmd.spawn().expect("spawn trove")));
    finish_bounded(guard, timeout, &format!("{cmd:?}"))
}

/// Wait, at most `timeout`, for a child spawned with its stdout and stderr
/// piped (`what` names it), and collect its output.
pub fn finish_bounded(mut guard: ChildGuard, timeout: Duration, what: &str) -> Output {
    let child = guard.child();
    let mut so = child.stdout.take().expect("stdout piped");
    let mut se = child.stderr.take().expect("stderr piped");
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for trove") {
            break s;
        }
        if Instant::now() > deadline {
            // The guard kills and reaps it.
            drop(guard);
            panic!("{what} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    guard.0 = None;
    Output {
        status,
        stdout: out_t.join().expect("stdout reader"),
        stderr: err_t.join().expect("stderr reader"),
    }
}

pub fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn assert_code(out: &Output, code: i32, args: &[&str]) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "trove {args:?}: expected exit {code}, got {}",
        describe(out)
    );
}

pub fn parse_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", describe(out)))
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The `n`th snapshot id of a backup report or snapshot row.
pub fn id_of(v: &Value, field: &str) -> String {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no string `{field}` in {v}"))
        .to_owned()
}

// ---- deterministic data -----------------------------------------------------

/// xorshift64: the same seed always gives the same bytes.
#[derive(Debug, Clone)]
pub struct Gen(u64);

impl Gen {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Incompressible bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(len);
        v
    }

    /// Compressible text.
    pub fn text(&mut self, len: usize) -> Vec<u8> {
        const WORDS: &[&str] = &[
            "river", "stone", "lamp", "orchard", "window", "paper", "winter", "harbour", "violin",
            "ledger", "copper", "meadow", "signal", "basket", "candle", "thread",
        ];
        let mut s = Vec::with_capacity(len + 16);
        while s.len() < len {
            s.extend_from_slice(WORDS[self.below(WORDS.len() as u64) as usize].as_bytes());
            s.push(if self.below(11) == 0 { b'\n' } else { b' ' });
        }
        s.truncate(len);
        s
    }
}

pub fn write(path: &Path, bytes: &[u8]) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).expect("create parent");
    }
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

pub fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// A small mixed tree (about 2 MB): text and binary files, nested and empty
/// folders, an empty file, symlinks (one dangling), unusual modes, and a
/// `sub/path` subtree for `--include`.
pub fn make_small_tree(root: &Path, seed: u64) {
    let mut g = Gen::new(seed);
    for i in 0..12 {
        let len = 100 + g.below(40_000) as usize;
        let t = g.text(len);
        write(&root.join(format!("docs/letter-{i:02}.txt")), &t);
    }
    for i in 0..6 {
        let len = 10_000 + g.below(250_000) as usize;
        let b = g.bytes(len);
        write(&root.join(format!("bin/blob-{i}.bin")), &b);
    }
    let t = g.text(5_000);
    write(&root.join("nested/a/b/c/deep.txt"), &t);
    let t = g.text(3_000);
    write(&root.join("sub/path/inner.txt"), &t);
    let b = g.bytes(70_000);
    write(&root.join("sub/path/more/inner.bin"), &b);
    let t = g.text(2_000);
    write(&root.join("sub/other.txt"), &t);
    let t = g.text(1_000);
    write(&root.join("top.txt"), &t);
    // The same bytes twice: dedup within a snapshot.
    let b = g.bytes(120_000);
    write(&root.join("dup/one.bin"), &b);
    write(&root.join("dup/two.bin"), &b);
    write(&root.join("empty-file"), b"");
    // Names that are not plain ASCII, or not UTF-8 at all.
    let t = g.text(900);
    write(&root.join("docs/naïve café – notes.txt"), &t);
    let odd = std::ffi::OsStr::from_bytes(b"bin/odd-\xff\xfe-name.bin");
    let b = g.bytes(4_000);
    write(&root.join(odd), &b);
    std::fs::create_dir_all(root.join("empty-dir")).expect("empty dir");
    std::fs::create_dir_all(root.join("nested/empty-inner")).expect("empty dir");
    std::os::unix::fs::symlink("docs/letter-00.txt", root.join("link-to-letter")).expect("symlink");
    std::os::unix::fs::symlink("does/not/exist", root.join("dangling-link")).expect("symlink");
    chmod(&root.join("docs/letter-01.txt"), 0o600);
    chmod(&root.join("bin/blob-0.bin"), 0o755);
    chmod(&root.join("docs/letter-02.txt"), 0o640);
    chmod(&root.join("nested/a"), 0o700);
}

// ---- trees ------------------------------------------------------------------

/// Copy a tree keeping contents, modes, symlink targets and file and folder
/// mtimes: a record of a source's state at one time.
pub fn copy_tree(src: &Path, dst: &Path) {
    let m = std::fs::symlink_metadata(src).expect("stat copy source");
    let ft = m.file_type();
    if ft.is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(src).expect("readlink"), dst)
            .expect("symlink");
    } else if ft.is_dir() {
        std::fs::create_dir_all(dst).expect("mkdir");
        let mut names: Vec<_> = std::fs::read_dir(src)
            .expect("read_dir")
            .map(|e| e.expect("dir entry").file_name())
            .collect();
        names.sort();
        for n in names {
            copy_tree(&src.join(&n), &dst.join(&n));
        }
        chmod(dst, m.mode() & 0o7777);
        set_mtime(dst, &m);
    } else {
        std::fs::copy(src, dst).expect("copy file");
        chmod(dst, m.mode() & 0o7777);
        set_mtime(dst, &m);
    }
}

fn set_mtime(p: &Path, m: &std::fs::Metadata) {
    let f = std::fs::File::open(p).expect("open for set_modified");
    f.set_modified(m.modified().expect("mtime"))
        .expect("set mtime");
}

/// Every difference between `expected` and `actual`: entries missing or
/// extra, kinds, contents, permission bits, symlink targets, file and folder
/// mtimes. Paths are given relative to the roots.
pub fn diff_trees(expected: &Path, actual: &Path) -> Vec<String> {
    let mut d = Vec::new();
    diff_into(expected, actual, Path::new(""), &mut d);
    d
}

fn mtime(m: &std::fs::Metadata) -> (i64, i64) {
    (m.mtime(), m.mtime_nsec())
}

fn diff_into(a: &Path, b: &Path, rel: &Path, d: &mut Vec<String>) {
    let ma = std::fs::symlink_metadata(a).expect("stat expected");
    let mb = match std::fs::symlink_metadata(b) {
        Ok(m) => m,
        Err(_) => {
            d.push(format!("missing: {}", rel.display()));
            return;
        }
    };
    if ma.file_type() != mb.file_type() {
        d.push(format!("kind differs: {}", rel.display()));
        return;
    }
    if ma.file_type().is_symlink() {
        let (ta, tb) = (std::fs::read_link(a).ok(), std::fs::read_link(b).ok());
        if ta != tb {
            d.push(format!(
                "symlink target differs: {} ({ta:?} vs {tb:?})",
                rel.display()
            ));
        }
        return;
    }
    if ma.mode() & 0o7777 != mb.mode() & 0o7777 {
        d.push(format!(
            "mode differs: {} ({:o} vs {:o})",
            rel.display(),
            ma.mode() & 0o7777,
            mb.mode() & 0o7777
        ));
    }
    if mtime(&ma) != mtime(&mb) {
        d.push(format!(
            "mtime differs: {} ({:?} vs {:?})",
            rel.display(),
            mtime(&ma),
            mtime(&mb)
        ));
    }
    if ma.is_dir() {
        let names = |p: &Path| -> BTreeSet<std::ffi::OsString> {
            std::fs::read_dir(p)
                .expect("read_dir")
                .map(|e| e.expect("entry").file_name())
                .collect()
        };
        let (na, nb) = (names(a), names(b));
        for extra in nb.difference(&na) {
            d.push(format!("unexpected: {}", rel.join(extra).display()));
        }
        for n in &na {
            diff_into(&a.join(n), &b.join(n), &rel.join(n), d);
        }
        return;
    }
    if ma.len() != mb.len() {
        d.push(format!(
            "size differs: {} ({} vs {})",
            rel.display(),
            ma.len(),
            mb.len()
        ));
    } else if std::fs::read(a).expect("read expected") != std::fs::read(b).expect("read actual") {
        d.push(format!("content differs: {}", rel.display()));
    }
}

#[track_caller]
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    let d = diff_trees(expected, actual);
    assert!(
        d.is_empty(),
        "{} differs from {}:\n  {}",
        actual.display(),
        expected.display(),
        d.join("\n  ")
    );
}

/// Every entry under `root`: its path relative to `root` and its kind
/// (`file`, `dir`, `symlink`), in path order.
pub fn entries(root: &Path) -> Vec<(PathBuf, &'static str)> {
    fn walk(root: &Path, p: &Path, out: &mut Vec<(PathBuf, &'static str)>) {
        for e in std::fs::read_dir(p).expect("read_dir") {
            let e = e.expect("entry");
            let ft = e.file_type().expect("file type");
            let rel = e.path().strip_prefix(root).expect("under root").to_owned();
            if ft.is_dir() {
                out.push((rel, "dir"));
                walk(root, &e.path(), out);
            } else if ft.is_symlink() {
                out.push((rel, "symlink"));
            } else {
                out.push((rel, "file"));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// [`entries`] keyed by the (lossily converted) relative path.
pub fn list_tree(root: &Path) -> BTreeMap<String, &'static str> {
    entries(root)
        .into_iter()
        .map(|(p, k)| (p.to_string_lossy().into_owned(), k))
        .collect()
}

/// (files, bytes of files, folders including `root` itself, symlinks).
pub fn census(root: &Path) -> (u64, u64, u64, u64) {
    let (mut files, mut bytes, mut dirs, mut links) = (0, 0, 1, 0);
    for (rel, kind) in entries(root) {
        match kind {
            "file" => {
                files += 1;
                bytes += std::fs::metadata(root.join(rel)).expect("stat").len();
            }
            "dir" => dirs += 1,
            _ => links += 1,
        }
    }
    (files, bytes, dirs, links)
}

/// Every regular file under `root` (not following symlinks).
pub fn all_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if !root.exists() {
        return out;
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let e = e.expect("entry");
            let ft = e.file_type().expect("file type");
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

// ---- peer folders -----------------------------------------------------------

/// The fragment files of one peer folder (`fragments/<2hex>/<64hex>`).
pub fn fragment_files(peer: &Path) -> Vec<PathBuf> {
    all_files(&peer.join("fragments"))
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        })
        .collect()
}

/// A fragment's header (documented in `trove_core::erasure`):
/// `"TRVF" | version | k | m | index | pack id [32] | pack_len u64 LE | shard_len u32 LE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragHeader {
    pub k: u8,
    pub m: u8,
    pub index: u8,
    pub pack: String,
    pub pack_len: u64,
}

pub fn fragment_header(path: &Path) -> FragHeader {
    let b = std::fs::read(path).expect("read fragment");
    assert!(b.len() >= 52 && &b[..4] == b"TRVF", "fragment header");
    FragHeader {
        k: b[5],
        m: b[6],
        index: b[7],
        pack: b[8..40].iter().map(|x| format!("{x:02x}")).collect(),
        pack_len: u64::from_le_bytes(b[40..48].try_into().expect("8 bytes")),
    }
}

/// The fragment id a fragment file is named by.
pub fn file_name(p: &Path) -> String {
    p.file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned()
}

/// Flip one byte of a file (the last one: deep in the payload).
pub fn flip_last_byte(p: &Path) {
    let mut b = std::fs::read(p).expect("read");
    let n = b.len() - 1;
    b[n] ^= 0x5a;
    make_writable(p);
    std::fs::write(p, &b).expect("write flipped");
}

pub fn make_writable(p: &Path) {
    let m = std::fs::metadata(p).expect("stat");
    chmod(p, (m.mode() & 0o7777) | 0o200);
}

/// Find the first needle that occurs in `hay`; a two-byte prefilter keeps
/// this fast in unoptimised test builds.
pub fn find_any<'n>(hay: &[u8], needles: &'n [Vec<u8>]) -> Option<(usize, &'n [u8])> {
    let mut first = vec![false; 65536];
    for n in needles {
        assert!(n.len() >= 2, "needles are at least two bytes");
        first[usize::from(n[0]) << 8 | usize::from(n[1])] = true;
    }
    if hay.len() < 2 {
        return None;
    }
    for i in 0..hay.len() - 1 {
        if first[usize::from(hay[i]) << 8 | usize::from(hay[i + 1])] {
            for n in needles {
                if hay[i..].starts_with(n) {
                    return Some((i, n.as_slice()));
                }
            }
        }
    }
    None
}

/// The strings of a JSON array field, e.g. the `warnings` of a backup report.
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| match s.as_str() {
            Some(s) => s.to_owned(),
            None => s.to_string(),
        })
        .collect()
}
