//! `trove repair`: bring every pack back to `k+m` fragments on distinct
//! peers (invariant 3, docs/design.md §Invariants and §9b).
//!
//! 1. **Peers**: each configured peer is asked whether it answers and gets
//!    a state ([`crate::health`]): online, suspect (unreachable for less
//!    than `--peer-lost-after`: its fragments still count and are never
//!    repaired away) or lost (unreachable for longer). A peer no longer
//!    configured (`trove peer remove`) is lost.
//! 2. [`survey`]: every fragment of every published pack is classified:
//!    good (read whole and hashed, or with `--audit` proven by ranges),
//!    on a suspect peer, or damaged: missing, corrupt, unreadable, on a
//!    lost or removed peer, or a second fragment on one peer. A pack with
//!    no damage is healthy and nothing more of it is read.
//! 3. [`rebuild`]: a damaged pack with at least `k` readable fragments is
//!    fetched (verified, [`Fetcher`]), decoded, re-encoded (the same
//!    fragments, byte for byte) and each damaged fragment is put on an
//!    online peer that holds nothing of the pack, spread over failure
//!    domains by [`trove_peer::placement`]. A pack with fewer is lost: its
//!    files are named ([`lost`]).
//! 4. **Commit**: one index segment with the new records of the repaired
//!    packs, applied locally in one transaction, then replicated (segment
//!    first). Only then are the corrupt copies deleted from their peers
//!    (into the peers' trash). A kill at any point leaves the old records
//!    (and orphan fragments) or the new ones; the next repair or check is
//!    right either way (docs/design.md §9b.4).

mod lost;
mod rebuild;
mod survey;

use crate::error::{RepoError, Result};
use crate::fetch::Fetcher;
use crate::health::{PeerHealth, PeerState, DEFAULT_PEER_LOST_AFTER};
use crate::home::{Container, Home, Owner};
use crate::meta::sync_meta;
use crate::peers::PeerSet;
use crate::progress::{Event, Progress};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use trove_core::manifest::PeerRecord;
use trove_core::{FragmentId, PackId, PeerId, SegmentId};
use trove_peer::Peer;

pub use survey::Damage;

/// How to repair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct RepairOptions {
    /// Say what would be repaired and where it would go; write nothing
    /// (not even the peers' last-seen times).
    #[cfg_attr(feature = "clap", arg(long))]
    pub dry_run: bool,
    /// Have each peer prove random ranges of its fragments instead of
    /// downloading them all; only damaged packs are then read.
    #[cfg_attr(feature = "clap", arg(long))]
    pub audit: bool,
    /// A peer unreachable for this long is lost and its fragments are
    /// rebuilt elsewhere; before that it is suspect and they still count
    /// (`30s`, `15m`, `72h`, `30d`).
    #[cfg_attr(
        feature = "clap",
        arg(long, default_value = "72h", value_parser = crate::health::parse_duration)
    )]
    pub peer_lost_after: Duration,
    /// Stop rebuilding once this many MiB were read plus written; the
    /// least healthy packs go first, the rest wait for the next run.
    #[cfg_attr(feature = "clap", arg(long, value_name = "MIB"))]
    pub budget_mib: Option<u64>,
    /// The storm guard ([`crate::Storm`]): with more than a quarter of the
    /// peers unreachable at once, declare none lost. The daemon sets it; a
    /// person who runs `trove repair` decides for themselves.
    #[cfg_attr(feature = "clap", arg(skip))]
    pub storm_guard: bool,
}

impl Default for RepairOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            audit: false,
            peer_lost_after: DEFAULT_PEER_LOST_AFTER,
            budget_mib: None,
            storm_guard: false,
        }
    }
}

/// What a repair found and did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RepairReport {
    /// Nothing was written: the moves are what a repair would do.
    pub dry_run: bool,
    /// Every pack is at `k+m` fragments on distinct peers (fragments on
    /// suspect peers count): the exit code is 0, else 3.
    pub full_redundancy: bool,
    /// Every configured peer's state.
    pub peers: Vec<PeerHealth>,
    pub containers: Vec<ContainerRepair>,
    pub packs: u64,
    pub packs_healthy: u64,
    /// Packs brought back to full redundancy.
    pub packs_repaired: u64,
    /// Packs that are not back at full redundancy but not lost.
    pub packs_short: u64,
    /// Packs with fewer than `k` fragments left anywhere.
    pub packs_lost: u64,
    /// Fragments read or audited to classify them.
    pub fragments_checked: u64,
    /// Bytes read to classify them (0 with `--audit`).
    pub bytes_checked: u64,
    /// Fragments rebuilt and stored.
    pub fragments_rebuilt: u64,
    /// Bytes read to rebuild the damaged packs.
    pub bytes_read: u64,
    /// Bytes of fragments stored.
    pub bytes_written: u64,
    /// Peers to add (each holding nothing yet) for every pack to be back
    /// at full redundancy.
    pub peers_needed: u64,
    /// Peers that served fragments that do not match their ids, and how
    /// many: corrupt copies, or lies.
    pub bad_data: BTreeMap<String, u64>,
    /// Peers that served a fragment wrong right after storing it: no
    /// fragment was left on them.
    pub liars: Vec<String>,
    /// Damaged packs left for the next run because the budget was spent.
    pub packs_deferred: u64,
    /// The storm guard held: these peers were not declared lost.
    pub storm: Option<crate::health::Storm>,
    pub seconds: f64,
}

/// One container's repair.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ContainerRepair {
    pub container: String,
    pub packs: u64,
    pub healthy: u64,
    /// Damaged packs: what was (or would be) rebuilt where.
    pub repaired: Vec<PackRepair>,
    /// Packs with fewer than `k` fragments left anywhere.
    pub lost: Vec<LostPack>,
    /// Damaged packs not rebuilt in this run: the budget was spent.
    pub deferred: u64,
    /// Files that need a lost pack, with the snapshots that hold them.
    pub lost_files: Vec<LostFile>,
    /// Folders whose tree is in a lost pack: nothing below them can be
    /// named (`/` is a whole snapshot).
    pub unknown_folders: Vec<LostFile>,
    /// The index segment that records the new locations.
    pub segment: Option<SegmentId>,
    /// The roster dropped removed peers (or took in new ones).
    pub roster_updated: bool,
    /// Corrupt or moved copies deleted from their peers (into the trash).
    pub copies_deleted: u64,
}

/// One damaged pack.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PackRepair {
    pub pack: PackId,
    /// Back at `k+m` fragments on distinct peers.
    pub complete: bool,
    /// Each damaged fragment and where it went (`to: null`: nowhere).
    pub fragments: Vec<FragmentMove>,
    /// Bytes read to rebuild it (with `--dry-run`: what would be read).
    pub bytes_read: u64,
    /// Bytes stored (with `--dry-run`: what would be stored).
    pub bytes_written: u64,
    pub seconds: f64,
    /// Why it is not complete.
    pub shortfall: Option<String>,
}

/// One damaged fragment of a pack.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FragmentMove {
    pub index: u8,
    pub fragment: FragmentId,
    /// The peer the index placed it on.
    pub from: String,
    /// What is wrong, in words.
    pub damage: Damage,
    /// The kind of damage, for scripts: `missing`, `corrupt`, `unreadable`,
    /// `peer removed`, `peer lost`, `doubled`.
    pub kind: &'static str,
    /// The peer it was rebuilt on, if any.
    pub to: Option<String>,
}

/// A pack that cannot be rebuilt.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LostPack {
    pub pack: PackId,
    /// Fragments read intact.
    pub readable: u64,
    /// Fragments on suspect peers (not readable now).
    pub on_suspect_peers: u64,
    pub needed: u8,
}

/// A path that needs a lost pack.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LostFile {
    /// Relative to the snapshot root, e.g. `src/video/big.bin`; a folder
    /// ends with `/`.
    pub path: String,
    /// Short ids of the snapshots that hold it.
    pub snapshots: Vec<String>,
}

/// Repair one container, or all when `name` is `None`.
pub fn repair(
    home: &Home,
    owner: &Owner,
    name: Option<&str>,
    opts: &RepairOptions,
    progress: &dyn Progress,
) -> Result<RepairReport> {
    let started = Instant::now();
    let names: Vec<String> = match name {
        Some(n) => vec![n.to_owned()],
        None => home
            .containers()
            .manifests()?
            .into_iter()
            .map(|c| c.name)
            .collect(),
    };
    if !opts.dry_run {
        crate::pending::finish_all(home, owner, progress)?;
    }
    let mut set = home.peers().open_all()?;
    if set.is_empty() {
        return Err(RepoError::NoPeers);
    }
    set.record_health(home, opts.peer_lost_after, !opts.dry_run)?;
    let storm = set.storm_guard(opts.storm_guard, progress);
    // With no peer answering, every fragment would be "on a suspect peer"
    // and count: that is no reason to say all is well.
    if set
        .slots
        .iter()
        .all(|s| s.state() != Some(PeerState::Online))
    {
        set.warn_unavailable(progress);
        return Err(RepoError::NoReachablePeer);
    }
    let ctx = Ctx::new(home, owner, opts, &set, progress);
    let mut report = RepairReport {
        dry_run: opts.dry_run,
        storm,
        peers: set.health(),
        ..Default::default()
    };
    for n in names {
        let c = home.containers().open(owner, &n)?;
        let done = ctx.container(c, &set)?;
        report.add(done);
    }
    report.fragments_checked = ctx.checked.load(Ordering::Relaxed);
    report.bytes_checked = ctx.checked_bytes.load(Ordering::Relaxed);
    report.bad_data = ctx.bad_data();
    report.liars = ctx.liars();
    report.full_redundancy =
        report.packs_short == 0 && report.packs_lost == 0 && report.packs_deferred == 0;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

impl RepairReport {
    fn add(&mut self, c: ContainerRepair) {
        self.packs += c.packs;
        self.packs_healthy += c.healthy;
        self.packs_lost += c.lost.len() as u64;
        self.packs_deferred += c.deferred;
        for p in &c.repaired {
            if p.complete {
                self.packs_repaired += 1;
            } else {
                self.packs_short += 1;
            }
            self.bytes_read += p.bytes_read;
            self.bytes_written += p.bytes_written;
            let unplaced = p.fragments.iter().filter(|f| f.to.is_none()).count() as u64;
            self.fragments_rebuilt += p.fragments.len() as u64 - unplaced;
            self.peers_needed = self.peers_needed.max(unplaced);
        }
        self.containers.push(c);
    }
}

/// A configured peer as a repair sees it.
#[derive(Debug)]
struct PeerInfo {
    record: PeerRecord,
    /// Opened, if it could be.
    peer: Option<Arc<dyn Peer>>,
    state: PeerState,
    unreachable_since: Option<String>,
}

impl PeerInfo {
    fn online(&self) -> Option<&Arc<dyn Peer>> {
        self.peer
            .as_ref()
            .filter(|_| self.state == PeerState::Online)
    }
}

/// Where a fragment's peer stands.
#[derive(Debug, Clone, Copy)]
enum Holder<'a> {
    /// Online: its fragments are read, and it may take new ones.
    Online(&'a PeerInfo),
    /// Unreachable for less than the threshold: its fragments count.
    Suspect,
    /// Unreachable for longer: its fragments are lost.
    Lost(&'a PeerInfo),
    /// No longer configured: its fragments are lost.
    Removed,
}

/// What one repair run shares across containers and packs.
struct Ctx<'a> {
    home: &'a Home,
    owner: &'a Owner,
    opts: &'a RepairOptions,
    progress: &'a dyn Progress,
    /// Every configured peer, in configuration order.
    peers: Vec<PeerInfo>,
    by_id: HashMap<PeerId, usize>,
    fetcher: Fetcher,
    /// Peers that served a fragment that does not match its id, and how
    /// many times: what is put on them is read back.
    served_bad: Mutex<HashMap<PeerId, u64>>,
    /// Peers that served a fragment wrong right after storing it.
    liars: Mutex<BTreeSet<PeerId>>,
    /// Peers a put failed on (full, read-only, gone): not asked again.
    broken: Mutex<HashSet<PeerId>>,
    /// Free space of each peer, read once when first needed.
    free: OnceLock<Vec<Option<u64>>>,
    /// Names of removed peers, from the rosters they were in.
    removed: Mutex<HashMap<PeerId, String>>,
    /// Fragments read or audited by the survey, and the bytes read.
    checked: AtomicU64,
    checked_bytes: AtomicU64,
}

impl<'a> Ctx<'a> {
    fn new(
        home: &'a Home,
        owner: &'a Owner,
        opts: &'a RepairOptions,
        set: &PeerSet,
        progress: &'a dyn Progress,
    ) -> Self {
        let peers: Vec<PeerInfo> = set
            .slots
            .iter()
            .map(|s| {
                let health = s.health.as_ref();
                PeerInfo {
                    record: s.record.clone(),
                    peer: s.available().cloned(),
                    state: health.map_or(PeerState::Suspect, |h| h.state),
                    unreachable_since: health.and_then(|h| h.unreachable_since.clone()),
                }
            })
            .collect();
        let by_id = peers
            .iter()
            .enumerate()
            .map(|(i, p)| (p.record.id, i))
            .collect();
        Self {
            home,
            owner,
            opts,
            progress,
            peers,
            by_id,
            fetcher: Fetcher::new(&set.slots),
            served_bad: Mutex::default(),
            liars: Mutex::default(),
            broken: Mutex::default(),
            free: OnceLock::new(),
            removed: Mutex::default(),
            checked: AtomicU64::new(0),
            checked_bytes: AtomicU64::new(0),
        }
    }

    fn count_checked(&self, bytes: u64) {
        self.checked.fetch_add(1, Ordering::Relaxed);
        self.checked_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    fn holder(&self, id: &PeerId) -> Holder<'_> {
        let Some(p) = self.by_id.get(id).map(|i| &self.peers[*i]) else {
            return Holder::Removed;
        };
        match p.state {
            PeerState::Online if p.peer.is_some() => Holder::Online(p),
            PeerState::Online | PeerState::Suspect => Holder::Suspect,
            PeerState::Lost => Holder::Lost(p),
        }
    }

    /// A peer's name; for one no longer configured, its roster name (or
    /// short id) and "(removed)".
    fn name_of(&self, id: &PeerId) -> String {
        match self.by_id.get(id) {
            Some(i) => self.peers[*i].record.name.clone(),
            None => match lock(&self.removed).get(id) {
                Some(name) => format!("{name} (removed)"),
                None => format!("{} (removed)", id.short()),
            },
        }
    }

    fn note_bad_data(&self, peer: PeerId) {
        *lock(&self.served_bad).entry(peer).or_default() += 1;
    }

    fn served_bad(&self, peer: &PeerId) -> bool {
        lock(&self.served_bad).contains_key(peer)
    }

    fn bad_data(&self) -> BTreeMap<String, u64> {
        lock(&self.served_bad)
            .iter()
            .map(|(id, n)| (self.name_of(id), *n))
            .collect()
    }

    fn liars(&self) -> Vec<String> {
        lock(&self.liars)
            .iter()
            .map(|id| self.name_of(id))
            .collect()
    }

    /// Peers that must not take fragments now: not online, failed a put,
    /// or lied.
    fn unusable(&self, id: &PeerId) -> bool {
        !matches!(self.holder(id), Holder::Online(_))
            || lock(&self.broken).contains(id)
            || lock(&self.liars).contains(id)
    }

    fn free_bytes(&self) -> &[Option<u64>] {
        self.free.get_or_init(|| {
            self.peers
                .iter()
                .map(|p| p.online().and_then(|p| p.stat().ok()?.free_bytes))
                .collect()
        })
    }

    fn warn(&self, w: String) {
        self.progress.event(Event::Warning(w));
    }

    /// Survey, rebuild, commit and clean up one container.
    fn container(&self, mut c: Container, set: &PeerSet) -> Result<ContainerRepair> {
        let cid = c.manifest.id;
        let mut out = ContainerRepair {
            container: c.manifest.name.clone(),
            ..Default::default()
        };
        for r in &c.manifest.roster {
            if !self.by_id.contains_key(&r.id) {
                lock(&self.removed).insert(r.id, r.name.clone());
            }
        }
        if !self.opts.dry_run {
            // A removed peer leaves the roster (a new one joins it), as at
            // a backup's start.
            out.roster_updated =
                self.home
                    .containers()
                    .update_roster(self.owner, &mut c, set.records())?;
        }
        // Packs of an interrupted backup are not published yet: the next
        // backup names them, and a later repair sees them.
        let packs = self.home.index.published_packs(&cid)?;
        out.packs = packs.len() as u64;
        let total = out.packs;
        let mut records = Vec::new();
        let mut deletions: Vec<(PeerId, FragmentId)> = Vec::new();
        let mut lost_packs = HashSet::new();
        let mut damaged = Vec::new();
        for (n, rec) in packs.into_iter().enumerate() {
            let s = survey::survey(self, rec);
            self.progress.event(Event::Step {
                done: n as u64 + 1,
                total,
            });
            if s.is_healthy() {
                out.healthy += 1;
                continue;
            }
            if s.readable() + s.suspect() < s.rec.k as usize {
                lost_packs.insert(s.rec.id);
                out.lost.push(LostPack {
                    pack: s.rec.id,
                    readable: s.readable() as u64,
                    on_suspect_peers: s.suspect() as u64,
                    needed: s.rec.k,
                });
                continue;
            }
            damaged.push(s);
        }
        // The least healthy first: the fewest fragments beyond `k` left.
        damaged.sort_by_key(|s| s.readable() + s.suspect() - s.rec.k as usize);
        let budget = self.opts.budget_mib.map(|m| m.saturating_mul(1 << 20));
        let mut spent = 0u64;
        for s in damaged {
            if budget.is_some_and(|b| spent >= b) {
                out.deferred += 1;
                continue;
            }
            let done = rebuild::rebuild(self, s);
            spent += done.repair.bytes_read + done.repair.bytes_written;
            if let Some(r) = done.record {
                records.push(r);
            }
            deletions.extend(done.deletions);
            out.repaired.push(done.repair);
        }
        if !self.opts.dry_run {
            out.segment = self.commit(&c, records)?;
            out.copies_deleted = self.delete_copies(&cid, &deletions);
        }
        if !lost_packs.is_empty() {
            let (files, folders) = lost::name_lost(self.home, &c, &self.fetcher, &lost_packs)?;
            out.lost_files = files;
            out.unknown_folders = folders;
        }
        Ok(out)
    }

    /// One segment with the new records, applied locally (the commit
    /// point), then every envelope a reachable peer lacks or holds an older
    /// version of is pushed to it, segments first: this one, the new
    /// roster, and any a killed run left unreplicated.
    fn commit(
        &self,
        c: &Container,
        records: Vec<trove_core::manifest::PackRecord>,
    ) -> Result<Option<SegmentId>> {
        let cid = c.manifest.id;
        let segment = if records.is_empty() {
            None
        } else {
            let seg = crate::meta::next_segment(self.home, cid, records)?;
            let env = crate::meta::seal_segment(self.owner, c, &seg);
            self.home.index.apply_segment(&seg, &env)?;
            Some(seg.id)
        };
        let online: Vec<(PeerRecord, Arc<dyn Peer>)> = self
            .peers
            .iter()
            .filter_map(|p| p.online().map(|peer| (p.record.clone(), peer.clone())))
            .collect();
        sync_meta(self.home, self.owner, c, &online, true, self.progress)?;
        Ok(segment)
    }

    /// Delete the copies no record names any more (corrupt ones, moved
    /// ones) into their peers' trash; returns how many went. A copy that
    /// cannot be deleted now is an orphan, harmless.
    fn delete_copies(&self, cid: &trove_core::ContainerId, copies: &[(PeerId, FragmentId)]) -> u64 {
        // Never one that a record names (a rewrite in place keeps its id).
        let named: HashSet<(PeerId, FragmentId)> = match self.home.index.packs(cid) {
            Ok(packs) => packs
                .iter()
                .flat_map(|p| p.fragments.iter().map(|f| (f.peer, f.id)))
                .collect(),
            Err(e) => {
                self.warn(format!("corrupt copies left in place: {e}"));
                return 0;
            }
        };
        let mut deleted = 0;
        for (peer, id) in copies {
            if named.contains(&(*peer, *id)) {
                continue;
            }
            let Some(p) = self
                .by_id
                .get(peer)
                .and_then(|i| self.peers[*i].peer.as_ref())
            else {
                continue;
            };
            match p.delete_fragment(id) {
                Ok(()) => deleted += 1,
                Err(e) => self.warn(format!(
                    "could not delete the old copy of fragment {} from peer `{}`: {e} (an orphan, harmless)",
                    id.short(),
                    self.name_of(peer)
                )),
            }
        }
        deleted
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
