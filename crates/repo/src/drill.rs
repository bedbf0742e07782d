//! `trove drill`: rehearse a recovery from nothing on this machine, without
//! touching the real home (docs/design.md §9a, "Drills").
//!
//! 1. The words (phrase or shares, turned into the master secret by the
//!    caller) must rebuild *this* home's identity; otherwise that is the
//!    finding, and nothing else is tried.
//! 2. The live home is opened read-only (`Home::open_read_only`: nothing is
//!    written in it, its index included) for its peers, containers,
//!    snapshots and trees.
//! 3. A scratch home is made in a fresh private temporary folder, as `trove
//!    recover` makes one (with a random passphrase never shown), given the
//!    first configured peer that answers, as a user would `peer add` it,
//!    and synced as `trove sync` does: roster peers included.
//! 4. Per container, a random sample of the regular files of the newest
//!    snapshot found (and known to the live home) is restored from the
//!    scratch home, and each restored file checked against the live home's
//!    index: the live snapshot's tree entry for the path must have the same
//!    size, and the restored bytes, cut where the live index's chunks end,
//!    must hash (keyed) to the chunk ids that entry records.
//! 5. The result goes to `TROVE_HOME/drill.json` (the only file the drill
//!    writes in the live home), which `trove status` reads.
//!
//! What would stop a real recovery is a **blocker**, said in a sentence.

use crate::error::{RepoError, Result};
use crate::fetch::Fetcher;
use crate::health::probe;
use crate::home::{Home, Owner};
use crate::keyfile::KdfParams;
use crate::progress::{Event, Progress};
use crate::restore::{restore, LostPath, RestoreOptions};
use crate::snapshot::{rel_path, TreeReader};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use trove_core::keys::MasterSecret;
use trove_core::manifest::{ContainerManifest, SnapshotManifest};
use trove_core::tree::NodeKind;
use trove_core::{BlobId, TreeId};
use trove_peer::durable;

/// The drill's record in `TROVE_HOME`.
pub const DRILL_FILE: &str = "drill.json";
/// The version of [`DrillRecord`]'s format.
pub const DRILL_VERSION: u32 = 1;
/// `trove status` reminds when the last drill that passed is older.
pub const DRILL_REMIND_AFTER_DAYS: i64 = 90;

/// What a drill samples.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    /// Regular files restored and verified per container, at most.
    pub sample_files: usize,
    /// Bytes of those files per container, at most (unless the smallest
    /// file is larger: then that one file).
    pub sample_bytes: u64,
    /// How long to wait for another process (a step of the daemon) to let
    /// go of the live index.
    pub wait: Duration,
    /// How to reach node peers; `None`: as `TROVE_NETWORK` says.
    pub network: Option<trove_node::NetworkConfig>,
}

impl DrillOptions {
    pub const DEFAULT_SAMPLE_FILES: usize = 16;
    pub const DEFAULT_SAMPLE_BYTES: u64 = 64 << 20;
}

impl Default for DrillOptions {
    fn default() -> Self {
        Self {
            sample_files: Self::DEFAULT_SAMPLE_FILES,
            sample_bytes: Self::DEFAULT_SAMPLE_BYTES,
            wait: Duration::from_secs(600),
            network: None,
        }
    }
}

/// What a drill found. It holds no secret: fingerprints, names, counts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DrillReport {
    /// No blocker: a recovery from these words and the peers reached would
    /// bring back what was sampled.
    pub ok: bool,
    pub seconds: f64,
    pub started_unix: i64,
    /// This home's identity fingerprint.
    pub identity: String,
    /// The identity the words rebuild (the same when they are right).
    pub recovers: String,
    /// The configured peers asked, in order, until one answered.
    pub peers_tried: Vec<TriedPeer>,
    /// The peer the scratch home started from.
    pub peer_used: Option<String>,
    /// Every peer the sync read (the one given and the roster peers it led
    /// to), and why one could not be read.
    pub peers_read: Vec<ReadPeer>,
    /// This home's containers, and those the scratch home found.
    pub containers_live: Vec<String>,
    pub containers_found: Vec<String>,
    /// Snapshots the scratch home found, all containers.
    pub snapshots_found: u64,
    pub containers: Vec<DrillContainer>,
    pub files_sampled: u64,
    pub files_verified: u64,
    pub files_failed: u64,
    pub bytes_verified: u64,
    /// What would stop a real recovery, one sentence each.
    pub blockers: Vec<String>,
}

/// A configured peer asked whether it answers.
#[derive(Debug, Clone, Serialize)]
pub struct TriedPeer {
    pub peer: String,
    pub answered: bool,
    /// Why it did not answer.
    pub why: Option<String>,
}

/// A peer the scratch home's sync read.
#[derive(Debug, Clone, Serialize)]
pub struct ReadPeer {
    pub peer: String,
    pub read: bool,
    pub why: Option<String>,
}

/// One container of the live home, as the drill found it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DrillContainer {
    pub container: String,
    /// Whether the scratch home found it on the peers.
    pub located: bool,
    pub snapshots_live: u64,
    pub snapshots_found: u64,
    /// The snapshot sampled (full id).
    pub snapshot: Option<String>,
    pub snapshot_unix: Option<i64>,
    /// Regular files in that snapshot (as far as its folders could be read).
    pub files_in_snapshot: u64,
    pub files_sampled: u64,
    pub files_verified: u64,
    pub files_failed: u64,
    pub bytes_verified: u64,
    pub failures: Vec<FailedFile>,
}

/// A sampled file that did not come back as the live index records it.
#[derive(Debug, Clone, Serialize)]
pub struct FailedFile {
    /// `CONTAINER:PATH`.
    pub at: String,
    pub why: String,
}

/// `TROVE_HOME/drill.json`: the last drill (version [`DRILL_VERSION`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillRecord {
    pub version: u32,
    /// When it ran (its start), seconds since the Unix epoch.
    pub time_unix: i64,
    pub ok: bool,
    pub seconds: f64,
    /// The home's identity fingerprint.
    pub identity: String,
    /// One line: what was verified, or the first blocker.
    pub summary: String,
    pub blockers: Vec<String>,
    pub files_verified: u64,
    pub files_failed: u64,
    /// The last drill that passed (this one, if it did).
    pub last_passed_unix: Option<i64>,
}

impl DrillRecord {
    /// The record in `home`, if there is one of a version this reads.
    pub fn load(home: &Path) -> Option<Self> {
        let bytes = std::fs::read(home.join(DRILL_FILE)).ok()?;
        let r: Self = serde_json::from_slice(&bytes).ok()?;
        (r.version == DRILL_VERSION).then_some(r)
    }

    fn save(&self, home: &Path) -> Result<()> {
        let path = home.join(DRILL_FILE);
        let mut text = serde_json::to_vec_pretty(self).expect("a record serializes");
        text.push(b'\n');
        durable::replace(&path, &text, None).map_err(|e| RepoError::io("write", &path, e))
    }
}

/// The last drill, as `trove status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DrillStatus {
    pub last_unix: Option<i64>,
    pub ok: Option<bool>,
    pub summary: Option<String>,
    pub last_passed_unix: Option<i64>,
    /// When the last drill that passed is older than
    /// [`DRILL_REMIND_AFTER_DAYS`].
    pub reminder: Option<String>,
    /// One line for people.
    pub text: String,
}

/// "3 days ago", "today".
fn days_ago(then: i64, now: i64) -> String {
    match (now - then).max(0) / 86_400 {
        0 => "today".to_owned(),
        1 => "1 day ago".to_owned(),
        d => format!("{d} days ago"),
    }
}

/// What `trove status` says of drills in `home` at `now_unix`.
pub fn drill_status(home: &Path, now_unix: i64) -> DrillStatus {
    let Some(r) = DrillRecord::load(home) else {
        return DrillStatus {
            last_unix: None,
            ok: None,
            summary: None,
            last_passed_unix: None,
            reminder: None,
            text: "no drill yet: run `trove drill --phrase-file …` (or --shares-file) to rehearse a recovery".to_owned(),
        };
    };
    let text = if r.ok {
        format!(
            "last drill passed {}: {}",
            days_ago(r.time_unix, now_unix),
            r.summary
        )
    } else {
        format!(
            "last drill FAILED {}: {}; {}",
            days_ago(r.time_unix, now_unix),
            r.summary,
            match r.last_passed_unix {
                Some(t) => format!("the last one that passed was {}", days_ago(t, now_unix)),
                None => "none has passed yet".to_owned(),
            }
        )
    };
    let reminder = r
        .last_passed_unix
        .filter(|t| now_unix - t > DRILL_REMIND_AFTER_DAYS * 86_400)
        .map(|t| {
            format!(
                "the last recovery drill that passed was {}: run `trove drill` again",
                days_ago(t, now_unix)
            )
        });
    DrillStatus {
        last_unix: Some(r.time_unix),
        ok: Some(r.ok),
        summary: Some(r.summary),
        last_passed_unix: r.last_passed_unix,
        reminder,
        text,
    }
}

/// Rehearse a recovery of the home in `dir` from `master` (what the words
/// rebuild), and record the result in `dir`. Errors are what stops the
/// drill itself (the live home cannot be read, no scratch folder can be
/// made); what would stop a recovery is in the report's `blockers`.
pub fn drill(
    dir: &Path,
    master: MasterSecret,
    opts: &DrillOptions,
    progress: &dyn Progress,
) -> Result<DrillReport> {
    let started = Instant::now();
    let mine = Home::peek_ids(dir)?.identity;
    let owner = Owner::new(master);
    let mut r = DrillReport {
        started_unix: crate::time::now_unix(),
        identity: mine.fingerprint(),
        recovers: owner.public().fingerprint(),
        ..Default::default()
    };
    if owner.public() != mine {
        r.blockers.push(format!(
            "these words recover identity {}, not this home's {}: they are another identity's \
             (or, for shares, the SLIP-39 passphrase in TROVE_SLIP39_PASSPHRASE is wrong), and a \
             recovery with them would find none of this home's data",
            r.recovers, r.identity
        ));
    } else {
        let live = open_live(dir, opts.wait, progress)?;
        if let Some(net) = &opts.network {
            live.set_network(net.clone());
        }
        let scratch = Scratch::new()?;
        rehearse(&live, &owner, &scratch, opts, progress, &mut r)?;
    }
    r.seconds = started.elapsed().as_secs_f64();
    r.ok = r.blockers.is_empty();
    record(dir, &r)?;
    Ok(r)
}

/// One line for the record and for people.
pub fn summary(r: &DrillReport) -> String {
    match r.blockers.first() {
        Some(first) if r.blockers.len() > 1 => {
            format!("{first} (and {} more)", r.blockers.len() - 1)
        }
        Some(first) => first.clone(),
        None => format!(
            "{} container(s), {} snapshot(s) found through peer `{}`; {} of {} sampled file(s) verified ({} bytes)",
            r.containers_found.len(),
            r.snapshots_found,
            r.peer_used.as_deref().unwrap_or("?"),
            r.files_verified,
            r.files_sampled,
            r.bytes_verified
        ),
    }
}

fn record(dir: &Path, r: &DrillReport) -> Result<()> {
    let previous = DrillRecord::load(dir).and_then(|p| p.last_passed_unix);
    DrillRecord {
        version: DRILL_VERSION,
        time_unix: r.started_unix,
        ok: r.ok,
        seconds: r.seconds,
        identity: r.identity.clone(),
        summary: summary(r),
        blockers: r.blockers.clone(),
        files_verified: r.files_verified,
        files_failed: r.files_failed,
        last_passed_unix: if r.ok { Some(r.started_unix) } else { previous },
    }
    .save(dir)
}

/// The live home, read-only, waiting up to `wait` while another process
/// (a step of the daemon) holds its index.
fn open_live(dir: &Path, wait: Duration, progress: &dyn Progress) -> Result<Home> {
    Home::open_read_only_waiting(dir, wait, &|holder| {
        progress.event(Event::Warning(format!(
            "waiting up to {}s for another trove process to let go of the index{}",
            wait.as_secs(),
            holder.map(|h| format!(": {h}")).unwrap_or_default()
        )))
    })
}

/// A private temporary folder (`0700`), removed with everything in it
/// when dropped, whatever happened.
#[derive(Debug)]
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn new() -> Result<Self> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let path = std::env::temp_dir().join(format!(
            "trove-drill-{}",
            hex::encode(rand::random::<[u8; 8]>())
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| RepoError::io("create", &path, e))?;
        let scratch = Self { path };
        std::fs::set_permissions(&scratch.path, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| RepoError::io("restrict the permissions of", &scratch.path, e))?;
        Ok(scratch)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        remove_tree(&self.path);
    }
}

/// Remove `path` and everything in it, as far as possible.
fn remove_tree(path: &Path) {
    if std::fs::remove_dir_all(path).is_err() {
        // A restored folder without write or search permission.
        open_up(path);
        let _ = std::fs::remove_dir_all(path);
    }
}

/// Give the owner full access to every folder under `path` (never
/// following symlinks), so it can be read and removed.
fn open_up(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(m) = std::fs::symlink_metadata(path) else {
        return;
    };
    if !m.is_dir() {
        return;
    }
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700));
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            open_up(&e.path());
        }
    }
}

/// Steps 2–4, recording findings in `r`.
fn rehearse(
    live: &Home,
    owner: &Owner,
    scratch: &Scratch,
    opts: &DrillOptions,
    progress: &dyn Progress,
    r: &mut DrillReport,
) -> Result<()> {
    let manifests = live.containers().manifests()?;
    r.containers_live = manifests.iter().map(|m| m.name.clone()).collect();

    // A peer that answers, in the order they are configured.
    let mut chosen = None;
    for rec in live.peers().records()? {
        let answer = live
            .peers()
            .open(&rec)
            .and_then(|p| probe(p.as_ref()).map(|_| p));
        r.peers_tried.push(TriedPeer {
            peer: rec.name.clone(),
            answered: answer.is_ok(),
            why: answer.as_ref().err().map(|e| e.to_string()),
        });
        if answer.is_ok() {
            chosen = Some(rec);
            break;
        }
    }
    let Some(rec) = chosen else {
        r.blockers.push(if r.peers_tried.is_empty() {
            "this home has no peer configured: a recovery would have nowhere to start".to_owned()
        } else {
            format!(
                "no configured peer answered ({}): a recovery would have nowhere to start",
                r.peers_tried
                    .iter()
                    .map(|p| format!("`{}`: {}", p.peer, p.why.as_deref().unwrap_or("?")))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        });
        return Ok(());
    };
    r.peer_used = Some(rec.name.clone());

    // The scratch home, as `trove recover` makes one.
    let pass = zeroize::Zeroizing::new(hex::encode(rand::random::<[u8; 32]>()));
    let (home, owner) = Home::init(
        &scratch.path.join("home"),
        owner.master.clone(),
        pass.as_bytes(),
        KdfParams::default(),
    )?;
    drop(pass);
    // A bucket's credentials, which a user recovering would give again.
    let creds = live.dir().join(trove_remote::CREDENTIALS_FILE);
    if let Ok(bytes) = std::fs::read(&creds) {
        let to = home.dir().join(trove_remote::CREDENTIALS_FILE);
        durable::replace(&to, &bytes, None).map_err(|e| RepoError::io("write", &to, e))?;
    }
    home.share_network(live);
    if let Err(e) = home
        .peers()
        .add(&rec.name, &rec.location, rec.labels.clone())
    {
        r.blockers.push(format!(
            "peer `{}` answers, but a new home cannot add it: {e}",
            rec.name
        ));
        return Ok(());
    }

    // `trove sync`.
    let synced = match crate::sync::sync(&home, &owner, progress) {
        Ok(s) => s,
        Err(e) => {
            r.blockers.push(format!(
                "`trove sync` from peer `{}` recovers nothing: {e}",
                rec.name
            ));
            return Ok(());
        }
    };
    r.peers_read = synced
        .peers
        .iter()
        .map(|p| ReadPeer {
            peer: p.peer.clone(),
            read: p.error.is_none(),
            why: p.error.clone(),
        })
        .collect();
    // The roster peers the sync added but could not open.
    for slot in home.peers().open_all()?.slots {
        if !r.peers_read.iter().any(|p| p.peer == slot.record.name) {
            r.peers_read.push(ReadPeer {
                peer: slot.record.name.clone(),
                read: false,
                why: Some(
                    slot.peer
                        .err()
                        .map_or("not read".to_owned(), |e| e.to_string()),
                ),
            });
        }
    }
    r.containers_found = synced.containers.clone();
    r.snapshots_found = synced.snapshots;

    // Each container of the live home.
    for (i, m) in manifests.iter().enumerate() {
        let mut c = DrillContainer {
            container: m.name.clone(),
            located: synced.containers.contains(&m.name),
            snapshots_live: live.index.snapshots(&m.id)?.len() as u64,
            ..Default::default()
        };
        if !c.located {
            if c.snapshots_live > 0 {
                r.blockers.push(format!(
                    "container `{}` was not found from peer `{}` (nor from the peers its roster led to): its roster or manifests are not there",
                    m.name, rec.name
                ));
            }
        } else {
            let target = scratch.path.join(format!("restore-{i}"));
            let sample = Sample {
                live,
                home: &home,
                owner: &owner,
                manifest: m,
                target: &target,
                opts,
                progress,
            };
            sample.run(&mut c, &mut r.blockers)?;
        }
        r.files_sampled += c.files_sampled;
        r.files_verified += c.files_verified;
        r.files_failed += c.files_failed;
        r.bytes_verified += c.bytes_verified;
        r.containers.push(c);
    }
    Ok(())
}

/// Sampling one container found by the scratch home.
struct Sample<'a> {
    live: &'a Home,
    home: &'a Home,
    owner: &'a Owner,
    manifest: &'a ContainerManifest,
    target: &'a Path,
    opts: &'a DrillOptions,
    progress: &'a dyn Progress,
}

/// A regular file of a snapshot.
#[derive(Debug, Clone)]
struct Candidate {
    path: Vec<Vec<u8>>,
    size: u64,
}

impl Sample<'_> {
    fn run(&self, c: &mut DrillContainer, blockers: &mut Vec<String>) -> Result<()> {
        let name = &self.manifest.name;
        let live_snaps = self.live.index.snapshots(&self.manifest.id)?;
        let found = self.home.index.snapshots(&self.manifest.id)?;
        c.snapshots_found = found.len() as u64;
        let Some(latest) = live_snaps.last() else {
            return Ok(());
        };
        if !found.iter().any(|s| s.id == latest.id) {
            blockers.push(format!(
                "container `{name}`: its latest snapshot {} ({}) was not found on the peers; a recovery would bring back {}",
                latest.id.short(),
                crate::time::utc(latest.time_unix_ns),
                match found.last() {
                    Some(s) => format!("an older one at best ({})", crate::time::utc(s.time_unix_ns)),
                    None => "no snapshot of it".to_owned(),
                }
            ));
        }
        // The newest snapshot found that the live home knows too.
        let Some(snap) = found
            .iter()
            .rev()
            .find(|s| live_snaps.iter().any(|l| l.id == s.id))
        else {
            return Ok(());
        };
        c.snapshot = Some(snap.id.to_hex());
        c.snapshot_unix = Some(snap.time_unix_ns.div_euclid(1_000_000_000));

        let container = match self.home.containers().open(self.owner, name) {
            Ok(x) => x,
            Err(e) => {
                blockers.push(format!(
                    "container `{name}` was found but does not open: {e}"
                ));
                return Ok(());
            }
        };
        let (files, in_snapshot, unreadable) = {
            let peers = self.home.peers().open_for(&container)?;
            let fetcher = Fetcher::new(&peers.slots);
            let reader = TreeReader {
                home: self.home,
                container: &container,
                fetcher: &fetcher,
            };
            pick(&reader, &snap.root, self.opts)
        };
        c.files_in_snapshot = in_snapshot;
        for (folder, why) in unreadable {
            blockers.push(format!(
                "container `{name}`, snapshot {}: folder `{folder}` cannot be read, so nothing in it can be restored: {why}",
                snap.id.short()
            ));
        }
        if files.is_empty() {
            return Ok(());
        }
        c.files_sampled = files.len() as u64;
        let include: Vec<PathBuf> = files.iter().map(|f| rel_path(&f.path)).collect();
        let restored = restore(
            self.home,
            self.owner,
            &snap.id.to_hex(),
            &RestoreOptions {
                target: self.target.to_owned(),
                include: include.clone(),
                workers: RestoreOptions::DEFAULT_WORKERS,
            },
            self.progress,
        );
        let lost: Vec<LostPath> = match &restored {
            Ok(report) => report.lost.clone(),
            Err(_) => Vec::new(),
        };
        // One network endpoint for both homes, whichever started it.
        self.live.share_network(self.home);
        let live_container = self.live.containers().open(self.owner, name)?;
        let live_peers = self.live.peers().open_for(&live_container)?;
        let live_fetcher = Fetcher::new(&live_peers.slots);
        let live_reader = TreeReader {
            home: self.live,
            container: &live_container,
            fetcher: &live_fetcher,
        };
        for (f, rel) in files.iter().zip(&include) {
            let at = format!("{name}:{}", rel.display());
            let copy = self.target.join(rel);
            let outcome = match &restored {
                Err(e) => Err(format!("the restore failed: {e}")),
                Ok(_) if std::fs::symlink_metadata(&copy).is_err() => Err(why_lost(&copy, &lost)),
                Ok(_) => check(&live_reader, snap, &f.path, self.target, &copy),
            };
            match outcome {
                Ok(bytes) => {
                    c.files_verified += 1;
                    c.bytes_verified += bytes;
                }
                Err(why) => {
                    c.files_failed += 1;
                    blockers.push(format!(
                        "file `{at}` of snapshot {}: {why}",
                        snap.id.short()
                    ));
                    c.failures.push(FailedFile { at, why });
                }
            }
        }
        // The next container's sample needs the room.
        remove_tree(self.target);
        Ok(())
    }
}

/// Why a restore left `copy` out, from its list of lost paths.
fn why_lost(copy: &Path, lost: &[LostPath]) -> String {
    let shown = copy.display().to_string();
    let own = lost.iter().find(|l| l.path == shown).or_else(|| {
        lost.iter().find(|l| {
            l.path
                .strip_suffix("/ (whole folder)")
                .is_some_and(|folder| shown.starts_with(&format!("{folder}/")))
        })
    });
    match own {
        Some(l) => format!("it could not be restored: {}", l.error),
        None => "it was not restored".to_owned(),
    }
}

/// A random sample of the snapshot's regular files (reservoir sampling,
/// then as many as the limits allow), how many regular files it has, and
/// the folders that could not be read (path, why).
fn pick(
    reader: &TreeReader,
    root: &TreeId,
    opts: &DrillOptions,
) -> (Vec<Candidate>, u64, Vec<(String, String)>) {
    use rand::seq::SliceRandom;
    use rand::Rng;
    let mut rng = rand::thread_rng();
    let room = opts.sample_files.saturating_mul(8).max(64);
    let mut pool: Vec<Candidate> = Vec::new();
    let mut eligible = 0u64;
    let mut seen = 0u64;
    let mut smallest: Option<Candidate> = None;
    let mut unreadable = Vec::new();
    let mut stack: Vec<(TreeId, Vec<Vec<u8>>)> = vec![(*root, Vec::new())];
    while let Some((id, at)) = stack.pop() {
        let tree = match reader.load(&id) {
            Ok(t) => t,
            Err(e) => {
                let shown = rel_path(&at).display().to_string();
                unreadable.push((
                    if shown.is_empty() { "/".into() } else { shown },
                    e.to_string(),
                ));
                continue;
            }
        };
        for n in tree.nodes {
            let mut path = at.clone();
            path.push(n.name);
            match n.kind {
                NodeKind::Dir { tree } => stack.push((tree, path)),
                NodeKind::File { size, .. } => {
                    seen += 1;
                    let file = Candidate { path, size };
                    if smallest.as_ref().is_none_or(|s| size < s.size) {
                        smallest = Some(file.clone());
                    }
                    if size > opts.sample_bytes {
                        continue;
                    }
                    eligible += 1;
                    if pool.len() < room {
                        pool.push(file);
                    } else {
                        let j = rng.gen_range(0..eligible);
                        if (j as usize) < room {
                            pool[j as usize] = file;
                        }
                    }
                }
                NodeKind::Symlink { .. } => {}
            }
        }
    }
    pool.shuffle(&mut rng);
    let mut picked = Vec::new();
    let mut bytes = 0u64;
    for f in pool {
        if picked.len() >= opts.sample_files {
            break;
        }
        if bytes + f.size <= opts.sample_bytes {
            bytes += f.size;
            picked.push(f);
        }
    }
    if picked.is_empty() && opts.sample_files > 0 {
        picked.extend(smallest);
    }
    (picked, seen, unreadable)
}

/// Check the restored `copy` of `path` against the live home's index: the
/// live snapshot's entry must be a regular file of the same size whose
/// chunk ids are those of the copy's bytes, cut at the chunk lengths the
/// live index records. The bytes verified, or why not.
fn check(
    live: &TreeReader,
    snap: &SnapshotManifest,
    path: &[Vec<u8>],
    target: &Path,
    copy: &Path,
) -> std::result::Result<u64, String> {
    let node = live
        .node_at(&snap.root, path)
        .map_err(|e| format!("this home's copy of the snapshot cannot be read there: {e}"))?
        .ok_or("this home's index has no such file in that snapshot")?;
    let NodeKind::File { size, chunks } = node.kind else {
        return Err("this home's index records something else than a file there".into());
    };
    readable(target, copy);
    let mut file =
        std::fs::File::open(copy).map_err(|e| format!("the restored copy cannot be read: {e}"))?;
    let len = file
        .metadata()
        .map_err(|e| format!("the restored copy cannot be read: {e}"))?
        .len();
    if len != size {
        return Err(format!(
            "restored with {len} bytes where this home's index records {size}"
        ));
    }
    let cid = live.container.manifest.id;
    let mut buf = Vec::new();
    for (i, id) in chunks.iter().enumerate() {
        let loc = live
            .home
            .index
            .blob(&cid, &BlobId(id.0))
            .map_err(|e| e.to_string())?
            .ok_or_else(|| {
                format!(
                    "chunk {} of {} is not in this home's index",
                    i + 1,
                    chunks.len()
                )
            })?;
        buf.resize(loc.entry.raw_length as usize, 0);
        file.read_exact(&mut buf)
            .map_err(|e| format!("the restored copy is shorter than its chunks ({e})"))?;
        if live.container.keys.chunk_id(&buf) != *id {
            return Err(format!(
                "restored with other content than this home's index records (chunk {} of {} differs)",
                i + 1,
                chunks.len()
            ));
        }
    }
    if file.read(&mut [0u8; 1]).map_err(|e| e.to_string())? != 0 {
        return Err("the restored copy is longer than its chunks".into());
    }
    Ok(size)
}

/// Let the owner read a restored copy whatever modes the snapshot gave it
/// and its folders (only in the scratch target).
fn readable(target: &Path, copy: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut dir = copy.parent();
    while let Some(d) = dir {
        if !d.starts_with(target) {
            break;
        }
        if std::fs::symlink_metadata(d).is_ok_and(|m| m.is_dir()) {
            let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700));
        }
        dir = d.parent();
    }
    if std::fs::symlink_metadata(copy).is_ok_and(|m| m.is_file()) {
        let _ = std::fs::set_permissions(copy, std::fs::Permissions::from_mode(0o600));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn record(ok: bool, time_unix: i64, last_passed_unix: Option<i64>) -> DrillRecord {
        DrillRecord {
            version: DRILL_VERSION,
            time_unix,
            ok,
            seconds: 1.5,
            identity: "1a2b-3c4d-5e6f-7a8b".into(),
            summary: if ok {
                "2 of 2 verified"
            } else {
                "no configured peer answered"
            }
            .into(),
            blockers: Vec::new(),
            files_verified: 2,
            files_failed: 0,
            last_passed_unix,
        }
    }

    #[test]
    fn status_says_passed_failed_none_and_reminds_after_90_days() {
        let dir = tempfile::tempdir().unwrap();
        let now = 1_800_000_000;
        let s = drill_status(dir.path(), now);
        assert!(s.text.starts_with("no drill yet"), "{}", s.text);
        assert_eq!(s.reminder, None);

        record(true, now - 3 * 86_400, Some(now - 3 * 86_400))
            .save(dir.path())
            .unwrap();
        let s = drill_status(dir.path(), now);
        assert_eq!(s.text, "last drill passed 3 days ago: 2 of 2 verified");
        assert_eq!(s.reminder, None);

        record(false, now - 86_400, Some(now - 100 * 86_400))
            .save(dir.path())
            .unwrap();
        let s = drill_status(dir.path(), now);
        assert!(
            s.text
                .starts_with("last drill FAILED 1 day ago: no configured peer answered"),
            "{}",
            s.text
        );
        assert!(s
            .text
            .ends_with("the last one that passed was 100 days ago"));
        assert!(s.reminder.unwrap().contains("100 days ago"));

        // A record of another version is not read.
        let mut other = record(true, now, Some(now));
        other.version = 2;
        other.save(dir.path()).unwrap();
        assert!(drill_status(dir.path(), now)
            .text
            .starts_with("no drill yet"));
    }

    #[test]
    fn the_record_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let r = record(true, 5, Some(5));
        r.save(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(DRILL_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(DrillRecord::load(dir.path()), Some(r));
    }

    /// A home with one folder peer and container `c` (1+0) over `src/`
    /// holding `f.bin`, backed up once; the home is closed.
    fn backed_up(tmp: &Path) -> (PathBuf, Owner, Vec<u8>) {
        use trove_core::manifest::Redundancy;
        let dir = tmp.join("home");
        let (home, owner) = Home::init(
            &dir,
            MasterSecret::generate(),
            b"pass",
            KdfParams {
                m_kib: 64,
                t: 1,
                p: 1,
            },
        )
        .unwrap();
        let peer = format!("dir:{}", tmp.join("p1").display());
        home.peers().add("p1", &peer, Default::default()).unwrap();
        let src = tmp.join("src");
        std::fs::create_dir_all(&src).unwrap();
        let data: Vec<u8> = (0..1_500_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        std::fs::write(src.join("f.bin"), &data).unwrap();
        home.containers()
            .create(&owner, "c", &[src], Some(Redundancy { k: 1, m: 0 }))
            .unwrap();
        crate::backup::backup(
            &home,
            &owner,
            "c",
            &crate::backup::BackupOptions::default(),
            &crate::progress::Quiet,
        )
        .unwrap();
        (dir, owner, data)
    }

    #[test]
    fn a_copy_is_checked_against_the_live_index_chunk_by_chunk() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, owner, data) = backed_up(tmp.path());
        let index_before = std::fs::read(dir.join("index.redb")).unwrap();
        let live = Home::open_read_only(&dir).unwrap();
        // Read-only: no other process may open it meanwhile, nor label it.
        assert!(matches!(Home::open(&dir), Err(RepoError::Busy { .. })));
        assert!(!dir.join(crate::lock::LOCK_FILE).exists());
        let container = live.containers().open(&owner, "c").unwrap();
        let snap = live
            .index
            .snapshots(&container.manifest.id)
            .unwrap()
            .pop()
            .unwrap();
        let peers = live.peers().open_for(&container).unwrap();
        let fetcher = Fetcher::new(&peers.slots);
        let reader = TreeReader {
            home: &live,
            container: &container,
            fetcher: &fetcher,
        };
        let path = vec![b"src".to_vec(), b"f.bin".to_vec()];
        let target = tmp.path().join("target");
        let copy = target.join("src/f.bin");
        std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
        let put = |bytes: &[u8]| std::fs::write(&copy, bytes).unwrap();

        put(&data);
        assert_eq!(
            check(&reader, &snap, &path, &target, &copy),
            Ok(data.len() as u64)
        );
        // One byte changed, deep in the file: a chunk differs.
        let mut changed = data.clone();
        changed[1_200_000] ^= 1;
        put(&changed);
        let why = check(&reader, &snap, &path, &target, &copy).unwrap_err();
        assert!(
            why.contains("other content") && why.contains("differs"),
            "{why}"
        );
        // Shorter or longer.
        put(&data[..data.len() - 1]);
        let why = check(&reader, &snap, &path, &target, &copy).unwrap_err();
        assert!(
            why.contains("bytes where this home's index records 1500000"),
            "{why}"
        );
        // A path the live snapshot does not have.
        let why = check(
            &reader,
            &snap,
            &[b"src".to_vec(), b"g".to_vec()],
            &target,
            &copy,
        )
        .unwrap_err();
        assert!(why.contains("no such file"), "{why}");
        // A copy the snapshot's modes made unreadable is still checked.
        put(&data);
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o000)).unwrap();
        std::fs::set_permissions(
            copy.parent().unwrap(),
            std::fs::Permissions::from_mode(0o300),
        )
        .unwrap();
        assert_eq!(
            check(&reader, &snap, &path, &target, &copy),
            Ok(data.len() as u64)
        );
        drop(live);
        assert_eq!(std::fs::read(dir.join("index.redb")).unwrap(), index_before);
        drop(Home::open(&dir).unwrap());
    }

    #[test]
    fn scratch_is_private_and_removed_even_when_locked_up() {
        let s = Scratch::new().unwrap();
        let path = s.path.clone();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let shut = path.join("a/b");
        std::fs::create_dir_all(&shut).unwrap();
        std::fs::write(shut.join("f"), b"x").unwrap();
        std::fs::set_permissions(&shut, std::fs::Permissions::from_mode(0o000)).unwrap();
        std::fs::set_permissions(path.join("a"), std::fs::Permissions::from_mode(0o500)).unwrap();
        drop(s);
        assert!(!path.exists());
    }
}
