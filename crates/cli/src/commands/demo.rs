//! `trove demo`: the whole promise in one command, on a throwaway home:
//! six peers on three sites (four folders and two Trove nodes running as
//! separate processes on 127.0.0.1), a backup, a disk destroyed, a node's
//! machine gone and a fragment corrupted on a third peer, then a restore
//! verified byte for byte against the source.

use crate::context::Out;
use crate::ui;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use trove_core::keys::MasterSecret;
use trove_core::manifest::Redundancy;
use trove_repo::{BackupOptions, FragmentProblem, Home, KdfParams, LostPath, RestoreOptions};

#[derive(clap::Args)]
pub struct Args {
    /// Back up this folder instead of generated sample data.
    #[arg(long)]
    source: Option<PathBuf>,
    /// Keep the demo's folders here instead of a temporary directory.
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// What the demo showed.
#[derive(serde::Serialize)]
struct DemoReport {
    ok: bool,
    files: u64,
    bytes: u64,
    snapshot: trove_core::SnapshotId,
    bytes_stored: u64,
    backup_seconds: f64,
    restore_seconds: f64,
    peers_destroyed: [&'static str; 2],
    /// Overwrites of the node's metadata by a thief holding the transport key.
    metadata_overwrites_refused: u64,
    fragment_problems: Vec<FragmentProblem>,
    differences: Vec<String>,
    lost: Vec<LostPath>,
    #[serde(skip)]
    seconds: f64,
    #[serde(skip)]
    kept_in: Option<PathBuf>,
}

/// A `trove node run` child process on loopback, killed on drop.
struct DemoNode {
    data: PathBuf,
    ticket: String,
    child: Option<std::process::Child>,
}

impl DemoNode {
    fn start(data: &Path) -> Result<Self> {
        std::fs::create_dir_all(data.parent().context("node folder has a parent")?)?;
        let log = std::fs::File::create(data.with_extension("log"))?;
        let child = std::process::Command::new(std::env::current_exe()?)
            .args([
                "node",
                "run",
                "--network",
                "direct",
                "--listen",
                "127.0.0.1:0",
                "--data",
            ])
            .arg(data)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting a demo node")?;
        let mut node = DemoNode {
            data: data.to_owned(),
            ticket: String::new(),
            child: Some(child),
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Ok(t) = trove_node::NodeDir::open(data).and_then(|d| d.ticket()) {
                node.ticket = t;
                return Ok(node);
            }
            if let Some(c) = node.child.as_mut() {
                if let Some(st) = c.try_wait()? {
                    bail!(
                        "the demo node exited ({st}); see {}",
                        data.with_extension("log").display()
                    );
                }
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "the demo node did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for DemoNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Deterministic sample data: text, binary noise, a large file, duplicates,
/// nested and empty folders, a symlink and unusual modes.
fn make_sample(root: &Path) -> Result<u64> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    const WORDS: &[&str] = &[
        "backup", "photo", "letter", "tax", "family", "garden", "holiday", "invoice", "recipe",
        "poem", "draft", "meeting", "budget", "school", "music", "travel", "notes", "health",
        "house", "car",
    ];
    let mut total = 0u64;
    for d in [
        "papers/2024",
        "papers/2025",
        "photos/summer",
        "photos/winter",
        "code/src",
        "empty-folder",
    ] {
        std::fs::create_dir_all(root.join(d))?;
    }
    for i in 0..120 {
        let dir = ["papers/2024", "papers/2025", "code/src"][i % 3];
        let len = 200 + (next() % 60_000) as usize;
        let mut text = String::with_capacity(len);
        while text.len() < len {
            text.push_str(WORDS[(next() % WORDS.len() as u64) as usize]);
            text.push(if next() % 12 == 0 { '\n' } else { ' ' });
        }
        std::fs::write(root.join(format!("{dir}/doc-{i:03}.txt")), &text)?;
        total += text.len() as u64;
    }
    for i in 0..24 {
        let dir = ["photos/summer", "photos/winter"][i % 2];
        let len = 100_000 + (next() % 3_000_000) as usize;
        let data: Vec<u8> = (0..len.div_ceil(8))
            .flat_map(|_| next().to_le_bytes())
            .take(len)
            .collect();
        std::fs::write(root.join(format!("{dir}/img-{i:02}.jpg")), &data)?;
        total += len as u64;
    }
    // A large file, streamed by the chunker rather than read whole.
    let mut big = std::fs::File::create(root.join("photos/video.mp4"))?;
    for _ in 0..(40 * 1024 * 1024 / 65536) {
        let block: Vec<u8> = (0..8192).flat_map(|_| next().to_le_bytes()).collect();
        big.write_all(&block)?;
        total += block.len() as u64;
    }
    std::fs::copy(
        root.join("papers/2024/doc-000.txt"),
        root.join("papers/copy-of-doc-000.txt"),
    )?;
    std::fs::write(root.join("empty-file"), b"")?;
    std::os::unix::fs::symlink("papers/2025", root.join("latest-papers"))?;
    std::fs::set_permissions(
        root.join("code/src/doc-002.txt"),
        std::fs::Permissions::from_mode(0o755),
    )?;
    std::fs::set_permissions(
        root.join("papers/2025/doc-001.txt"),
        std::fs::Permissions::from_mode(0o600),
    )?;
    Ok(total)
}

/// Compare two trees: content, kind, permission bits, symlink targets and
/// file mtimes. Returns every difference found.
pub fn compare(a: &Path, b: &Path) -> Result<(u64, u64, Vec<String>)> {
    let mut diffs = Vec::new();
    let (mut files, mut bytes) = (0u64, 0u64);
    compare_into(a, b, &mut files, &mut bytes, &mut diffs)?;
    Ok((files, bytes, diffs))
}

fn compare_into(
    a: &Path,
    b: &Path,
    files: &mut u64,
    bytes: &mut u64,
    diffs: &mut Vec<String>,
) -> Result<()> {
    let ma = std::fs::symlink_metadata(a)?;
    let mb = match std::fs::symlink_metadata(b) {
        Ok(m) => m,
        Err(_) => {
            diffs.push(format!("missing: {}", b.display()));
            return Ok(());
        }
    };
    if ma.file_type() != mb.file_type() {
        diffs.push(format!("kind differs: {}", b.display()));
        return Ok(());
    }
    if ma.file_type().is_symlink() {
        if std::fs::read_link(a)? != std::fs::read_link(b)? {
            diffs.push(format!("symlink target differs: {}", b.display()));
        }
        return Ok(());
    }
    if ma.mode() & 0o7777 != mb.mode() & 0o7777 {
        diffs.push(format!(
            "mode differs: {} ({:o} vs {:o})",
            b.display(),
            ma.mode() & 0o7777,
            mb.mode() & 0o7777
        ));
    }
    if ma.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(a)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort();
        let extra = std::fs::read_dir(b)?
            .filter_map(|e| e.ok())
            .filter(|e| !names.contains(&e.file_name()))
            .count();
        if extra > 0 {
            diffs.push(format!("{extra} unexpected entries in {}", b.display()));
        }
        for n in names {
            compare_into(&a.join(&n), &b.join(&n), files, bytes, diffs)?;
        }
        return Ok(());
    }
    *files += 1;
    *bytes += ma.len();
    if (ma.mtime(), ma.mtime_nsec()) != (mb.mtime(), mb.mtime_nsec()) {
        diffs.push(format!("mtime differs: {}", b.display()));
    }
    if std::fs::read(a)? != std::fs::read(b)? {
        diffs.push(format!("content differs: {}", b.display()));
    }
    Ok(())
}

/// What a thief holding `transport.key` can try against a node: overwrite
/// every metadata object of the owner with one byte. Returns how many
/// attempts the node refused; any accepted one is an error.
fn thief_overwrites(home: &Path, ticket: &str) -> Result<u64> {
    use trove_peer::{Peer, PeerError};
    let seed: [u8; 32] = std::fs::read(home.join("transport.key"))?
        .try_into()
        .map_err(|_| anyhow::anyhow!("transport.key is not 32 bytes"))?;
    let net = trove_node::NetworkConfig {
        mode: trove_node::NetworkMode::Direct,
        relay: None,
        bind: Some("127.0.0.1:0".parse()?),
    };
    let client = trove_node::NodeClient::start(seed, &net)?;
    let node = client.peer("friend-1", &ticket.parse()?)?;
    let mut refused = 0;
    for key in node.list_meta(None)? {
        match node.put_meta(&key, b"x") {
            Err(PeerError::MetaRejected { .. }) => refused += 1,
            Ok(()) => bail!("the node let {key} be overwritten"),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(refused)
}

/// Whether a fragment file holds a data shard: its header's index (byte 7)
/// is below `k` (byte 5), see docs/design.md §3.6.
fn is_data_shard(path: &Path) -> bool {
    use std::io::Read;
    let mut header = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .is_ok_and(|()| &header[..4] == b"TRVF" && header[7] < header[5])
}

fn print(r: &DemoReport) {
    for d in r.differences.iter().take(20) {
        println!("      DIFFERENCE: {d}");
    }
    if r.ok {
        println!(
            "\nOK: {} files ({}) restored identical to the source after losing a disk and a node (2 of 6 peers) and a corrupted fragment ({:.1}s in all).",
            r.files,
            ui::bytes(r.bytes),
            r.seconds
        );
    } else {
        println!(
            "\nFAILED: {} differences, {} lost paths",
            r.differences.len(),
            r.lost.len()
        );
    }
    if let Some(base) = &r.kept_in {
        println!("The demo's folders are kept in {}", base.display());
    }
}

fn step(json: bool, n: u32, text: &str) {
    if !json {
        println!("[{n}/8] {text}");
    }
}

pub fn run(args: Args, out: Out) -> Result<ExitCode> {
    let (source, dir, json) = (args.source.as_deref(), args.dir.as_deref(), out.json);
    let tmp;
    let base: PathBuf = match dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            if std::fs::read_dir(d)?.next().is_some() {
                bail!(
                    "{} is not empty; give an empty or new folder to --dir",
                    d.display()
                );
            }
            d.to_owned()
        }
        None => {
            tmp = tempfile::Builder::new().prefix("trove-demo-").tempdir()?;
            tmp.path().to_owned()
        }
    };
    let started = std::time::Instant::now();
    let src = match source {
        Some(s) => std::path::absolute(s)?,
        None => {
            let s = base.join("sample");
            std::fs::create_dir_all(&s)?;
            step(
                json,
                1,
                "making sample data (text, photos, a 40 MiB video, links, odd modes)",
            );
            let n = make_sample(&s)?;
            if !json {
                println!("      {} in {}", ui::bytes(n), s.display());
            }
            s
        }
    };
    anyhow::ensure!(src.is_dir(), "--source {} is not a folder", src.display());
    if source.is_some() {
        step(
            json,
            1,
            &format!("backing up your folder {}", src.display()),
        );
    }

    step(
        json,
        2,
        "creating an identity and six peers on three sites: four folders, and two Trove nodes at a friend's (separate processes on 127.0.0.1)",
    );
    let (home, owner) = Home::init(
        &base.join("home"),
        MasterSecret::generate(),
        b"demo passphrase",
        KdfParams::default(),
    )?;
    // Loopback only: the demo never touches the internet.
    home.set_network(trove_node::NetworkConfig {
        mode: trove_node::NetworkMode::Direct,
        relay: None,
        bind: Some("127.0.0.1:0".parse()?),
    });
    let owner_id = owner.owner_id();
    let mut nodes = Vec::new();
    let mut peer_dirs = Vec::new();
    for i in 1..=6 {
        let labels = |site: &str| BTreeMap::from([("site".to_owned(), site.to_owned())]);
        if i <= 4 {
            let dir = base.join(format!("peers/disk-{i}"));
            let site = if i <= 2 { "home" } else { "office" };
            home.peers().add(
                &format!("disk-{i}"),
                &format!("dir:{}", dir.display()),
                labels(site),
            )?;
            peer_dirs.push(dir);
        } else {
            let node = DemoNode::start(&base.join(format!("nodes/friend-{}", i - 4)))?;
            trove_node::NodeDir::open(&node.data)?.grant(owner_id.parse()?, 1 << 30)?;
            home.peers()
                .add(&format!("friend-{}", i - 4), &node.ticket, labels("friend"))?;
            nodes.push(node);
        }
    }
    // Two destroyed peers plus a corrupt fragment is three losses for that
    // fragment's pack: 3+3 survives any three, 4+2 only two.
    home.containers().create(
        &owner,
        "demo",
        std::slice::from_ref(&src),
        Some(Redundancy { k: 3, m: 3 }),
    )?;

    step(
        json,
        3,
        "backing up (encrypt, compress, dedup, 3+3 erasure code: any 3 of 6 peers may fail)",
    );
    let bar = ui::Bar::new(json);
    let b = trove_repo::backup(&home, &owner, "demo", &BackupOptions::default(), &bar);
    bar.finish();
    let b = b?;
    let s = &b.snapshot.summary;
    if !json {
        println!(
            "      snapshot {}: {} files, {} read, {} stored on peers in {:.1}s",
            b.snapshot.id.short(),
            s.files_new,
            ui::bytes(s.bytes_read),
            ui::bytes(s.bytes_stored),
            b.seconds
        );
    }

    step(
        json,
        4,
        "ransomware that stole your transport key attacks node friend-1: it tries to overwrite every manifest with garbage",
    );
    let refused = thief_overwrites(&base.join("home"), &nodes[0].ticket)?;
    if !json {
        println!("      the node refused all {refused} overwrites: it keeps only envelopes signed by your identity");
    }

    step(
        json,
        5,
        "disaster: disk-1 is destroyed, and the friend's machine with node friend-2 is gone (killed)",
    );
    std::fs::remove_dir_all(&peer_dirs[0])
        .with_context(|| format!("deleting {}", peer_dirs[0].display()))?;
    nodes[1].kill();
    step(
        json,
        6,
        "disaster: a fragment on disk-3 is silently corrupted",
    );
    let frag_dir = peer_dirs[2].join("fragments");
    let victim = std::fs::read_dir(&frag_dir)?
        .filter_map(|e| e.ok())
        .flat_map(|shard| {
            std::fs::read_dir(shard.path())
                .into_iter()
                .flatten()
                .filter_map(|e| e.ok())
        })
        .map(|e| e.path())
        // A data shard (header byte 7, the index, below byte 5, k): restore
        // reads data shards first, so it meets this one for sure.
        .filter(|p| is_data_shard(p))
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .context("disk-3 holds no data fragment")?;
    let mut bytes = std::fs::read(&victim)?;
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    std::fs::write(&victim, &bytes)?;

    step(
        json,
        7,
        "restoring from the four survivors (one of them lying)",
    );
    let target = base.join("restored");
    let bar = ui::Bar::new(json);
    let r = trove_repo::restore(
        &home,
        &owner,
        "demo:latest",
        &RestoreOptions::into(target.clone()),
        &bar,
    );
    bar.finish();
    let r = r?;
    if !json {
        println!(
            "      {} files, {} in {:.1}s",
            r.files,
            ui::bytes(r.bytes),
            r.seconds
        );
        for line in ui::summarize(&r.problems) {
            println!("      routed around: {line}");
        }
    }

    step(
        json,
        8,
        "verifying every byte, mode, time and link against the source",
    );
    let name = src.file_name().context("source has no name")?;
    let (files, bytes_cmp, diffs) = compare(&src, &target.join(name))?;
    let report = DemoReport {
        ok: diffs.is_empty() && r.lost.is_empty(),
        files,
        bytes: bytes_cmp,
        snapshot: b.snapshot.id,
        bytes_stored: s.bytes_stored,
        backup_seconds: b.seconds,
        restore_seconds: r.seconds,
        peers_destroyed: ["disk-1", "friend-2"],
        metadata_overwrites_refused: refused,
        fragment_problems: r.problems,
        differences: diffs,
        lost: r.lost,
        seconds: started.elapsed().as_secs_f64(),
        kept_in: dir.map(|_| base.clone()),
    };
    out.emit(&report, print)?;
    let ok = report.ok;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
