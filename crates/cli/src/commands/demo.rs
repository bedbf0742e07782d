//! `trove demo`: the whole promise in one command, on a throwaway home:
//! six peers on three sites (four folders and two Trove nodes running as
//! separate processes on 127.0.0.1), a backup, a thief's overwrites refused,
//! a disk destroyed, a node's machine gone and a fragment corrupted, a
//! restore verified byte for byte; then the lost peers replaced and
//! repaired, and ransomware that encrypts files and deletes the history
//! undone by `undelete`; `trove daemon` looks after it by itself; last,
//! the container is shared read-only with a friend's identity, rehearsed
//! for recovery, inherited by that friend; last, the master secret is
//! rotated as if the 24 words had been seen.

mod attacks;
mod daemon;
mod drill;
mod inherit;
mod node;
mod rotate;
mod sample;
mod share;

use crate::context::Out;
use crate::ui;
use anyhow::{bail, Context, Result};
use node::DemoNode;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use trove_core::keys::MasterSecret;
use trove_core::manifest::Redundancy;
use trove_repo::{
    BackupOptions, CheckOptions, ForgetOptions, FragmentProblem, Home, KdfParams, KeepPolicy,
    LostPath, Owner, RepairOptions, RestoreOptions,
};

#[derive(clap::Args)]
pub struct Args {
    /// Back up this folder instead of generated sample data (the demo
    /// never changes it: the ransomware part then runs on sample data only).
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
    repair: RepairSummary,
    /// Absent with `--source`: the demo does not encrypt your files.
    ransomware: Option<RansomwareSummary>,
    /// What `trove daemon` did by itself.
    daemon: daemon::DaemonSummary,
    /// The container shared read-only with a second identity.
    share: share::ShareSummary,
    /// A recovery rehearsed from the 24 words (`trove drill`).
    drill: drill::DrillSummary,
    /// The container inherited by the friend after a vetoed claim and a
    /// released one (`trove inherit`).
    inherit: inherit::InheritSummary,
    /// The master secret rotated (`trove recovery rotate`).
    rotate: rotate::RotateSummary,
    #[serde(skip)]
    seconds: f64,
    #[serde(skip)]
    kept_in: Option<PathBuf>,
}

/// The lost peers replaced and their fragments rebuilt.
#[derive(serde::Serialize)]
struct RepairSummary {
    peers_removed: [&'static str; 2],
    peers_added: [&'static str; 2],
    fragments_rebuilt: u64,
    bytes_read: u64,
    bytes_written: u64,
    seconds: f64,
    full_redundancy: bool,
    /// Problems `check --read-data` found after the repair.
    check_problems: Vec<String>,
}

/// Ransomware with the owner's key, and `undelete`.
#[derive(serde::Serialize)]
struct RansomwareSummary {
    files_encrypted: u64,
    snapshots_forgotten: u64,
    fragment_bytes_pruned: u64,
    fragments_undeleted: u64,
    /// Differences between the snapshot brought back and the verified restore.
    differences: Vec<String>,
}

fn print(r: &DemoReport) {
    let differences = r
        .differences
        .iter()
        .chain(r.ransomware.iter().flat_map(|w| &w.differences))
        .chain(&r.share.differences)
        .chain(&r.inherit.differences)
        .chain(&r.rotate.differences);
    for d in differences.take(20) {
        println!("      DIFFERENCE: {d}");
    }
    for p in &r.repair.check_problems {
        println!("      CHECK PROBLEM: {p}");
    }
    if r.ok {
        println!(
            "\nOK: {} files ({}) restored identical to the source after losing a disk and a node (2 of 6 peers) and a corrupted fragment; full redundancy repaired; the history ransomware deleted brought back; a dead disk repaired by the daemon with no command; shared read-only with a friend, who restored it exactly; a recovery drill from the 24 words passed; inherited by the friend after a vetoed claim; the master secret rotated, the old owner id refused ({:.1}s in all).",
            r.files,
            ui::bytes(r.bytes),
            r.seconds
        );
    } else {
        println!(
            "\nFAILED: {} differences, {} lost paths, {} problems after repair",
            r.differences.len(),
            r.lost.len(),
            r.repair.check_problems.len()
        );
    }
    if let Some(base) = &r.kept_in {
        println!("The demo's folders are kept in {}", base.display());
    }
}

const STEPS: u32 = 16;

/// The demo home's passphrase (the daemon, a separate process, needs it).
const PASSPHRASE: &str = "demo passphrase";
/// The friend's passphrase (steps 13 and 15), also that of the home they
/// inherit.
const FRIEND_PASSPHRASE: &[u8] = b"the friend's own passphrase";

/// The network every home and client of the demo uses: direct, bound to
/// loopback, no relay.
fn loopback() -> trove_node::NetworkConfig {
    trove_node::NetworkConfig {
        mode: trove_node::NetworkMode::Direct,
        relay: None,
        bind: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
    }
}

fn step(json: bool, n: u32, text: &str) {
    if !json {
        println!("[{n}/{STEPS}] {text}");
    }
}

/// An empty folder for the demo: `--dir`, or a temporary one (kept alive
/// by the returned guard).
fn demo_dir(dir: Option<&Path>) -> Result<(PathBuf, Option<tempfile::TempDir>)> {
    match dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            if std::fs::read_dir(d)?.next().is_some() {
                bail!(
                    "{} is not empty; give an empty or new folder to --dir",
                    d.display()
                );
            }
            Ok((d.to_owned(), None))
        }
        None => {
            let tmp = tempfile::Builder::new().prefix("trove-demo-").tempdir()?;
            Ok((tmp.path().to_owned(), Some(tmp)))
        }
    }
}

fn labels(site: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("site".to_owned(), site.to_owned())])
}

/// Six peers: four folders on two sites and two nodes at a friend's.
fn six_peers(home: &Home, owner: &Owner, base: &Path) -> Result<(Vec<PathBuf>, Vec<DemoNode>)> {
    let owner_id = owner.owner_id();
    let mut nodes = Vec::new();
    let mut peer_dirs = Vec::new();
    for i in 1..=6 {
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
    Ok((peer_dirs, nodes))
}

/// Restore `spec` into `target` and compare it with `expected`.
fn restore_and_compare(
    home: &Home,
    owner: &Owner,
    spec: &str,
    target: &Path,
    expected: &Path,
    json: bool,
) -> Result<(trove_repo::RestoreReport, u64, u64, Vec<String>)> {
    let bar = ui::Bar::new(json);
    let r = trove_repo::restore(
        home,
        owner,
        spec,
        &RestoreOptions::into(target.to_owned()),
        &bar,
    );
    bar.finish();
    let r = r?;
    let name = expected.file_name().context("source has no name")?;
    let (files, bytes, diffs) = sample::compare(expected, &target.join(name))?;
    Ok((r, files, bytes, diffs))
}

pub fn run(args: Args, out: Out) -> Result<ExitCode> {
    let (source, json) = (args.source.as_deref(), out.json);
    let (base, _tmp) = demo_dir(args.dir.as_deref())?;
    let started = std::time::Instant::now();
    let sample_dir = base.join("sample");
    let src = match source {
        Some(s) => std::path::absolute(s)?,
        None => {
            std::fs::create_dir_all(&sample_dir)?;
            step(
                json,
                1,
                "making sample data (text, photos, a 40 MiB video, links, odd modes)",
            );
            let n = sample::make_sample(&sample_dir)?;
            if !json {
                println!("      {} in {}", ui::bytes(n), sample_dir.display());
            }
            sample_dir.clone()
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
        PASSPHRASE.as_bytes(),
        KdfParams::default(),
    )?;
    // Loopback only: the demo never touches the internet.
    home.set_network(loopback());
    let (peer_dirs, mut nodes) = six_peers(&home, &owner, &base)?;
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
    let refused = attacks::thief_overwrites(&base.join("home"), &nodes[0].ticket)?;
    if !json {
        println!("      the node refused all {refused} overwrites: it keeps only envelopes signed by your identity");
    }

    step(
        json,
        5,
        "disaster: disk-1 is destroyed, the friend's machine with node friend-2 is gone (killed), and a fragment on disk-3 is silently corrupted",
    );
    std::fs::remove_dir_all(&peer_dirs[0])
        .with_context(|| format!("deleting {}", peer_dirs[0].display()))?;
    nodes[1].kill();
    attacks::corrupt_a_data_shard(&peer_dirs[2])?;

    step(
        json,
        6,
        "restoring from the four survivors (one of them lying) and verifying every byte, mode, time and link against the source",
    );
    let target = base.join("restored");
    let (r, files, bytes_cmp, diffs) =
        restore_and_compare(&home, &owner, "demo:latest", &target, &src, json)?;
    if !json {
        println!(
            "      {} files, {} in {:.1}s; {} differences",
            r.files,
            ui::bytes(r.bytes),
            r.seconds,
            diffs.len()
        );
        for line in ui::summarize(&r.problems) {
            println!("      routed around: {line}");
        }
    }
    // The verified restore stands in for the source from here on.
    let verified = target.join(src.file_name().context("source has no name")?);

    let repair = repair_lost_peers(&home, &owner, &base, json)?;

    let ransomware = match source {
        Some(_) => None,
        None => Some(ransomware_and_undelete(
            &home, &owner, &base, &src, &verified, json,
        )?),
    };
    if source.is_some() && !json {
        println!("[9-11/{STEPS}] skipped: ransomware would encrypt your own folder; run `trove demo` without --source to see undelete");
    }

    step(
        json,
        12,
        "`trove daemon` (a separate process) looks after it: a new file is backed up by itself, walking only what changed; disk-2 dies and is rebuilt on a spare disk, with no command",
    );
    home.peers().add(
        "disk-7",
        &format!("dir:{}", base.join("peers/disk-7").display()),
        labels("spare"),
    )?;
    drop(home);
    let daemon = daemon::look_after_itself(
        &base.join("home"),
        &base,
        source.is_none().then_some(sample_dir.as_path()),
        &base.join("peers/disk-2"),
    )?;
    if !json {
        if let Some(s) = daemon.snapshot_after_write_seconds {
            println!("      a file written into the sample was in a snapshot {s:.1}s later");
            if let Some(w) = &daemon.guided_walk {
                println!("      its backup walked only what the watcher saw change: {w}");
            }
        }
        println!(
            "      disk-2 deleted: declared lost and repaired {:.1}s later: {}",
            daemon.repaired_after_loss_seconds, daemon.repair
        );
    }

    step(
        json,
        13,
        "sharing `demo` read-only with a friend's identity: only they can open the share file; they restore and dump it, and their backup into it is refused",
    );
    let share = share::share_with_a_friend(&base, &src, json)?;
    if !json {
        println!(
            "      {} snapshot(s) readable by the friend; {} files restored, {} differences; a {} tar dump; their backup into it refused: {}",
            share.snapshots,
            share.files_restored,
            share.differences.len(),
            ui::bytes(share.tar_bytes),
            share.backup_refused
        );
    }

    step(
        json,
        14,
        "`trove drill`: a recovery rehearsed from the 24 words in a scratch home, through one peer that answers; a random sample restored and checked against this home's index, which stays untouched",
    );
    let drill = drill::rehearse(&base.join("home"))?;
    if !json {
        println!(
            "      {} in {:.1}s from peer {}: {} of {} sampled files verified{}",
            if drill.ok { "passed" } else { "FAILED" },
            drill.seconds,
            drill.peer.as_deref().unwrap_or("none"),
            drill.files_verified,
            drill.files_sampled,
            drill
                .blockers
                .iter()
                .map(|b| format!("; {b}"))
                .collect::<String>()
        );
    }

    step(
        json,
        15,
        "`trove inherit`: the friend named heir, the master secret escrowed on the node peers; a claim vetoed releases nothing, a second one is released after its wait, and the heir's new home restores `demo`",
    );
    let inherit = inherit::inherit_to_a_friend(&base, &src, json)?;
    if !json {
        println!(
            "      {} of {} custodian(s), wait {}s; vetoed claim released nothing: {}; early collect refused: {}; {} share(s) collected, {} files restored by the heir, {} differences",
            inherit.threshold,
            inherit.custodians,
            inherit.wait_seconds,
            inherit.vetoed_claim_released_nothing,
            inherit.early_collect_refused,
            inherit.shares_collected,
            inherit.files_restored,
            inherit.differences.len()
        );
    }

    step(
        json,
        16,
        "`trove recovery rotate`: as if the 24 words had been seen: dead disk-2 removed, a new master secret; every peer takes a signed hand-over, the node refuses the old owner id, `demo` restores under the new secret",
    );
    let rotate = rotate::rotate_the_secret(&base, &src, "disk-2", json)?;
    if !json {
        println!(
            "      identity {} -> {}; {} peer(s) handed over, {} envelope(s) signed anew; old owner id refused by a node: {}; {} files restored, {} differences",
            rotate.old_fingerprint,
            rotate.new_fingerprint,
            rotate.peers_handed_over,
            rotate.envelopes_resigned,
            rotate.old_owner_refused,
            rotate.files_restored,
            rotate.differences.len()
        );
    }

    let ok = diffs.is_empty()
        && r.lost.is_empty()
        && repair.full_redundancy
        && repair.check_problems.is_empty()
        && ransomware.as_ref().is_none_or(|w| w.differences.is_empty())
        && daemon.full_redundancy
        && share.differences.is_empty()
        && share.backup_refused
        && drill.ok
        && inherit.vetoed_claim_released_nothing
        && inherit.early_collect_refused
        && inherit.differences.is_empty()
        && rotate.old_owner_refused
        && rotate.differences.is_empty();
    let report = DemoReport {
        ok,
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
        repair,
        ransomware,
        daemon,
        share,
        drill,
        inherit,
        rotate,
        seconds: started.elapsed().as_secs_f64(),
        kept_in: args.dir.map(|_| base.clone()),
    };
    out.emit(&report, print)?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Steps 7 and 8: the dead peers removed, two new disks added, `repair`,
/// then `check --read-data`.
fn repair_lost_peers(home: &Home, owner: &Owner, base: &Path, json: bool) -> Result<RepairSummary> {
    step(
        json,
        7,
        "replacing the lost peers: `trove peer remove disk-1 friend-2`, two new disks added, `trove repair` rebuilds what they held",
    );
    for gone in ["disk-1", "friend-2"] {
        home.peers().remove(gone)?;
    }
    for name in ["disk-5", "disk-6"] {
        let dir = base.join("peers").join(name);
        home.peers()
            .add(name, &format!("dir:{}", dir.display()), labels("new"))?;
    }
    let bar = ui::Bar::new(json);
    let rep = trove_repo::repair(home, owner, Some("demo"), &RepairOptions::default(), &bar);
    bar.finish();
    let rep = rep?;
    if !json {
        println!(
            "      {} fragments rebuilt: read {}, wrote {} in {:.1}s; full redundancy: {}",
            rep.fragments_rebuilt,
            ui::bytes(rep.bytes_read),
            ui::bytes(rep.bytes_written),
            rep.seconds,
            if rep.full_redundancy { "yes" } else { "NO" }
        );
    }

    step(
        json,
        8,
        "`trove check --read-data`: every fragment of every pack read and verified",
    );
    let opts = CheckOptions {
        read_data: true,
        ..Default::default()
    };
    let bar = ui::Bar::new(json);
    let c = trove_repo::check(home, owner, Some("demo"), &opts, &bar);
    bar.finish();
    let c = c?;
    let check_problems: Vec<String> = c.problems.iter().map(|p| p.to_string()).collect();
    if !json {
        println!(
            "      {} fragments verified, {} problems",
            c.fragments,
            check_problems.len()
        );
    }
    Ok(RepairSummary {
        peers_removed: ["disk-1", "friend-2"],
        peers_added: ["disk-5", "disk-6"],
        fragments_rebuilt: rep.fragments_rebuilt,
        bytes_read: rep.bytes_read,
        bytes_written: rep.bytes_written,
        seconds: rep.seconds,
        full_redundancy: rep.full_redundancy,
        check_problems,
    })
}

/// Steps 9 to 11: ransomware holding the key encrypts some of the sample,
/// lets a backup take them, forgets the clean snapshot and prunes; the
/// owner brings it back with `undelete` and restores it.
fn ransomware_and_undelete(
    home: &Home,
    owner: &Owner,
    base: &Path,
    sample_dir: &Path,
    verified: &Path,
    json: bool,
) -> Result<RansomwareSummary> {
    step(
        json,
        9,
        "ransomware with your key encrypts the papers and summer photos, lets a backup take them, then forgets the clean snapshot and prunes",
    );
    let clean = home
        .containers()
        .snapshot_rows(Some("demo"))?
        .pop()
        .context("the demo has a snapshot")?;
    let files_encrypted = attacks::encrypt_files(&sample_dir.join("papers"))?
        + attacks::encrypt_files(&sample_dir.join("photos/summer"))?;
    trove_repo::backup(
        home,
        owner,
        "demo",
        &BackupOptions::default(),
        &trove_repo::Quiet,
    )?;
    let forget = ForgetOptions {
        policy: KeepPolicy {
            keep_last: Some(1),
            ..Default::default()
        },
        prune: true,
        ..Default::default()
    };
    let f = trove_repo::forget(home, owner, "demo", &forget, &trove_repo::Quiet)?;
    let pruned = f.prune.as_ref().map_or(0, |p| p.fragment_bytes_removed);
    if !json {
        println!(
            "      {files_encrypted} files encrypted; {} snapshot forgotten; {} of fragments deleted (into the peers' trash)",
            f.forget.len(),
            ui::bytes(pruned)
        );
    }

    step(
        json,
        10,
        &format!(
            "`trove undelete demo {}`: the clean snapshot and its fragments come back from the peers' trash",
            clean.short_id
        ),
    );
    let bar = ui::Bar::new(json);
    let u = trove_repo::undelete(home, owner, "demo", &clean.id.to_hex(), &bar);
    bar.finish();
    let u = u?;
    if !json {
        println!(
            "      {} fragment(s) brought back, {} pack(s) recorded again",
            u.fragments_undeleted, u.packs_restored
        );
    }

    step(
        json,
        11,
        "restoring the snapshot brought back and comparing it with the verified restore",
    );
    let (_, _, _, differences) = restore_and_compare(
        home,
        owner,
        &clean.id.to_hex(),
        &base.join("restored-undeleted"),
        verified,
        json,
    )?;
    if !json {
        println!("      {} differences", differences.len());
    }
    Ok(RansomwareSummary {
        files_encrypted,
        snapshots_forgotten: f.forget.len() as u64,
        fragment_bytes_pruned: pruned,
        fragments_undeleted: u.fragments_undeleted,
        differences,
    })
}
