//! Rebuilding the local index from peers (invariant 6, docs/design.md
//! §Invariants): with the master secret and one reachable peer, read every
//! container manifest, snapshot manifest and index segment signed by this
//! identity, verify each, find the other peers again from the container
//! rosters, and fill the index so that snapshots, restore and dedup work as
//! before.
//!
//! Stages:
//! 1. **collect** the signed objects of every reachable peer, live and in
//!    its trash (replaced or deleted there: a thief holding the transport
//!    key can delete metadata, never destroy it), and
//! 2. **resolve** them: the newest valid container manifest of each
//!    container, the union of its valid segments and snapshots;
//! 3. **recognise** configured peers as roster peers and add the roster peers
//!    not configured yet; their objects are collected in the next round, until
//!    no new peer is reachable (a stale peer's old roster leads to the peers
//!    that hold the newer objects);
//! 4. **fill** the index.
//!
//! What the owner deleted on purpose is recorded in the signed index log:
//! snapshots forgotten (`forget`) and segments superseded (`prune`); sync
//! leaves those out even when it finds them in a trash. Anything else found
//! only in a trash is something a thief deleted, and sync restores it.

use crate::error::{RepoError, Result};
use crate::health::{probe, DEFAULT_PEER_LOST_AFTER};
use crate::home::{Home, Owner};
use crate::meta::open_container_manifest;
use crate::progress::{Event, Progress};
use std::collections::{BTreeMap, HashMap, HashSet};
use trove_core::envelope;
use trove_core::keys::{ContainerKeys, PublicIdentity};
use trove_core::manifest::{
    replay, ContainerManifest, IndexSegment, IndexState, PeerRecord, SnapshotManifest,
};
use trove_core::seal::BlobKind;
use trove_core::{ContainerId, FragmentId, PeerId, SegmentId, SnapshotId};
use trove_peer::{MetaKey, Peer};

/// Reading more rounds than this means something keeps adding peers.
const MAX_ROUNDS: u32 = 16;
/// Fragments of a roster peer fetched to recognise it at a new location.
const RECOGNITION_SAMPLE: usize = 3;

/// What a sync found and did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SyncReport {
    pub containers: Vec<String>,
    pub snapshots: u64,
    pub segments: u64,
    pub packs: u64,
    /// Configured peers recognised as a roster peer: (local name, roster name).
    pub peers_recognised: Vec<(String, String)>,
    /// Roster peers added to the configuration.
    pub peers_added: Vec<String>,
    /// Objects that failed verification and were ignored.
    pub refused: Vec<String>,
    /// What each peer that was read held of this identity.
    pub peers: Vec<PeerContribution>,
    /// Objects found only in a peer's trash (deleted or replaced there) and
    /// restored from it.
    pub from_trash: Vec<String>,
    /// Rounds of reading: a round reads the peers found by the one before.
    pub rounds: u32,
}

/// What one peer held.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PeerContribution {
    pub peer: String,
    /// Valid container manifests, snapshots and segments of this identity.
    pub manifests: u64,
    pub snapshots: u64,
    pub segments: u64,
    /// Of those, how many were read from its trash (replaced or deleted there).
    pub in_trash: u64,
    /// Why it could not be read, if it could not.
    pub error: Option<String>,
}

/// One signed object as read from a peer.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub key: MetaKey,
    pub bytes: Vec<u8>,
    /// BLAKE3 of `bytes`: a copy held by several peers is verified once.
    pub hash: [u8; 32],
    pub peer: String,
    /// Read from the peer's trash, deleted (or replaced) at this time (ns).
    pub deleted_unix_ns: Option<u64>,
}

impl Found {
    pub fn in_trash(&self) -> bool {
        self.deleted_unix_ns.is_some()
    }
}

/// A verified object, decoded.
#[derive(Debug, Clone)]
pub(crate) enum Opened {
    Manifest(ContainerManifest),
    Segment(IndexSegment),
    Snapshot(SnapshotManifest),
}

/// What verifying each distinct object gave, by key and content hash.
type Verdicts = HashMap<(MetaKey, [u8; 32]), std::result::Result<Opened, String>>;

/// A container as resolved from what was collected.
#[derive(Debug)]
struct Resolved {
    manifest: ContainerManifest,
    envelope: Vec<u8>,
    keys: ContainerKeys,
    segments: BTreeMap<SegmentId, (IndexSegment, Found)>,
    snapshots: BTreeMap<SnapshotId, (SnapshotManifest, Found)>,
}

/// Read everything this identity stored on the reachable peers into the index.
pub fn sync(home: &Home, owner: &Owner, progress: &dyn Progress) -> Result<SyncReport> {
    crate::pending::finish_all(home, owner, progress)?;
    let mut report = SyncReport::default();
    let mut found: Vec<Found> = Vec::new();
    let mut verdicts = Verdicts::new();
    let mut read: HashSet<(String, String)> = HashSet::new();
    let mut warned: HashSet<String> = HashSet::new();
    let mut foreign = 0usize;
    let mut resolved;
    loop {
        report.rounds += 1;
        let mut new_peers = 0;
        let mut set = home.peers().open_all()?;
        set.record_health(home, DEFAULT_PEER_LOST_AFTER, true)?;
        for slot in set.slots {
            let id = (slot.record.name.clone(), slot.record.location.clone());
            let peer = match &slot.peer {
                Ok(p) if !read.contains(&id) => p.clone(),
                Ok(_) => continue,
                Err(e) => {
                    if warned.insert(slot.record.name.clone()) {
                        progress.event(Event::Warning(e.to_string()));
                    }
                    continue;
                }
            };
            read.insert(id);
            new_peers += 1;
            let mut c = PeerContribution {
                peer: slot.record.name.clone(),
                ..Default::default()
            };
            match collect(peer.as_ref(), &slot.record.name, owner) {
                Ok(objects) => {
                    found.extend(objects.found);
                    foreign += objects.foreign;
                }
                Err(e) => {
                    progress.event(Event::Warning(e.to_string()));
                    c.error = Some(e.to_string());
                }
            }
            report.peers.push(c);
        }
        resolved = resolve(owner, &found, &mut verdicts)?;
        if new_peers == 0 || report.rounds >= MAX_ROUNDS {
            break;
        }
        recognise(home, &resolved, &mut report)?;
    }
    if report.peers.iter().all(|p| p.error.is_some()) {
        return Err(RepoError::NoReachablePeer);
    }
    for f in &found {
        if let Some(Err(why)) = verdicts.get(&(f.key, f.hash)) {
            report
                .refused
                .push(format!("peer `{}`: {} refused: {why}", f.peer, f.key));
        }
    }
    if resolved.is_empty() {
        return Err(nothing_found(owner, &report, &found, foreign));
    }
    count_contributions(&resolved, &found, &verdicts, &mut report);
    fill(home, owner, resolved, &mut report)?;
    report.containers.sort();
    report.refused.sort();
    report.refused.dedup();
    Ok(report)
}

/// The objects of one peer, live and in its trash.
pub(crate) struct Collected {
    pub found: Vec<Found>,
    /// Container manifests signed by another identity.
    pub foreign: usize,
}

pub(crate) fn collect(peer: &dyn Peer, name: &str, owner: &Owner) -> Result<Collected> {
    let me = owner.public();
    let mut out = Collected {
        found: Vec::new(),
        foreign: 0,
    };
    let live = peer.list_meta(None)?;
    // The newest trashed copy of each key (what `get_deleted_meta` returns).
    let mut trashed: BTreeMap<MetaKey, u64> = BTreeMap::new();
    for d in peer.list_deleted_meta(None)? {
        let at = trashed.entry(d.key).or_default();
        *at = (*at).max(d.deleted_unix_ns);
    }
    let reads = live
        .into_iter()
        .map(|k| (k, None))
        .chain(trashed.into_iter().map(|(k, at)| (k, Some(at))));
    for (key, deleted_unix_ns) in reads {
        let in_trash = deleted_unix_ns.is_some();
        let got = if in_trash {
            peer.get_deleted_meta(&key)
        } else {
            peer.get_meta(&key)
        };
        // Gone since it was listed, or unreadable: the other peers' copies count.
        let Ok(bytes) = got else { continue };
        match envelope::peek(&bytes) {
            Ok(h) if h.signer != me => {
                if matches!(key, MetaKey::Container(_)) && !in_trash {
                    out.foreign += 1;
                }
                continue;
            }
            _ => {}
        }
        out.found.push(Found {
            key,
            hash: *blake3::hash(&bytes).as_bytes(),
            bytes,
            peer: name.to_owned(),
            deleted_unix_ns,
        });
    }
    Ok(out)
}

/// Verify one object of a container whose keys are known (or a container
/// manifest, which needs only the master secret).
pub(crate) fn open_object(
    owner: &Owner,
    keys: Option<&ContainerKeys>,
    f: &Found,
) -> Option<std::result::Result<Opened, String>> {
    match f.key {
        MetaKey::Container(cid) => Some(
            open_container_manifest(owner, &cid, &f.bytes)
                .map(Opened::Manifest)
                .map_err(|e| e.to_string()),
        ),
        key => Some(open_signed_object(&owner.public(), keys?, key, &f.bytes)),
    }
}

/// Verify and open an index segment or snapshot manifest envelope signed
/// by `signer` (this identity, or the owner of a container shared with
/// it), checking that it names the object its key names.
pub(crate) fn open_signed_object(
    signer: &PublicIdentity,
    keys: &ContainerKeys,
    key: MetaKey,
    bytes: &[u8],
) -> std::result::Result<Opened, String> {
    let cid = *key.container();
    match key {
        MetaKey::Container(_) => Err("a container manifest opens with the master secret".into()),
        MetaKey::IndexSegment(_, s) => {
            envelope::open_signed_any(signer, keys.seals(), BlobKind::IndexSegment, &s.0, bytes)
                .map_err(|e| e.to_string())
                .and_then(|(_, b)| IndexSegment::decode(&b).map_err(|e| e.to_string()))
                .and_then(|seg| match seg.container == cid && seg.id == s {
                    true => Ok(Opened::Segment(seg)),
                    false => Err("it names another object".into()),
                })
        }
        MetaKey::Snapshot(_, s) => envelope::open_signed_any(
            signer,
            keys.seals(),
            BlobKind::SnapshotManifest,
            &s.0,
            bytes,
        )
        .map_err(|e| e.to_string())
        .and_then(|(_, b)| SnapshotManifest::decode(&b).map_err(|e| e.to_string()))
        .and_then(|snap| match snap.container == cid && snap.id == s {
            true => Ok(Opened::Snapshot(snap)),
            false => Err("it names another object".into()),
        }),
    }
}

/// Verify what was collected (each distinct object once, remembered in
/// `verdicts`): per container the newest valid manifest (a live copy wins
/// over a trashed one of the same revision) and every valid segment and
/// snapshot, live copies preferred.
fn resolve(
    owner: &Owner,
    found: &[Found],
    verdicts: &mut Verdicts,
) -> Result<BTreeMap<ContainerId, Resolved>> {
    let mut manifests: BTreeMap<ContainerId, (ContainerManifest, &Found)> = BTreeMap::new();
    for f in found
        .iter()
        .filter(|f| matches!(f.key, MetaKey::Container(_)))
    {
        let verdict = verdicts
            .entry((f.key, f.hash))
            .or_insert_with(|| open_object(owner, None, f).expect("a manifest needs no keys"));
        let Ok(Opened::Manifest(m)) = verdict else {
            continue;
        };
        let cid = m.id;
        let better = manifests
            .get(&cid)
            .is_none_or(|(old, of)| (m.revision, !f.in_trash()) > (old.revision, !of.in_trash()));
        if better {
            manifests.insert(cid, (m.clone(), f));
        }
    }
    let mut out = BTreeMap::new();
    for (cid, (manifest, f)) in manifests {
        let keys = manifest
            .keys(&owner.master)
            .map_err(|e| RepoError::Format(format!("container `{}`: {e}", manifest.name)))?;
        out.insert(
            cid,
            Resolved {
                envelope: f.bytes.clone(),
                manifest,
                keys,
                segments: BTreeMap::new(),
                snapshots: BTreeMap::new(),
            },
        );
    }
    // Live copies first, so what is kept came from a trash only if no
    // peer holds it live.
    let mut rest: Vec<&Found> = found
        .iter()
        .filter(|f| !matches!(f.key, MetaKey::Container(_)))
        .collect();
    rest.sort_by_key(|f| f.in_trash());
    for f in rest {
        let Some(c) = out.get_mut(f.key.container()) else {
            continue;
        };
        let verdict = match verdicts.get(&(f.key, f.hash)) {
            Some(v) => v,
            None => {
                let v = open_object(owner, Some(&c.keys), f).expect("keys are known");
                verdicts.entry((f.key, f.hash)).or_insert(v)
            }
        };
        match (f.key, verdict) {
            (MetaKey::IndexSegment(_, s), Ok(Opened::Segment(seg))) => {
                c.segments
                    .entry(s)
                    .or_insert_with(|| (seg.clone(), f.clone()));
            }
            (MetaKey::Snapshot(_, s), Ok(Opened::Snapshot(snap))) => {
                c.snapshots
                    .entry(s)
                    .or_insert_with(|| (snap.clone(), f.clone()));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Recognise configured peers as roster peers, and configure the roster
/// peers that are not, so the next round reads them.
///
/// A configured peer takes a roster peer's place only if it is at the
/// roster peer's recorded location, or if that location cannot be reached
/// and the peer hands over fragments the segments place on the roster peer
/// whose bytes hash to their ids: a peer that merely claims to hold them
/// (answering "yes" to every question) never displaces anyone.
fn recognise(
    home: &Home,
    resolved: &BTreeMap<ContainerId, Resolved>,
    report: &mut SyncReport,
) -> Result<()> {
    let mut rosters: Vec<PeerRecord> = Vec::new();
    for c in resolved.values() {
        for r in &c.manifest.roster {
            if !rosters.iter().any(|x| x.id == r.id) {
                rosters.push(r.clone());
            }
        }
    }
    let mut placed: HashMap<PeerId, Vec<FragmentId>> = HashMap::new();
    for c in resolved.values() {
        for (seg, _) in c.segments.values() {
            for f in seg.packs.iter().flat_map(|p| &p.fragments) {
                let v = placed.entry(f.peer).or_default();
                if v.len() < 8 {
                    v.push(f.id);
                }
            }
        }
    }
    let roster_ids: HashSet<PeerId> = rosters.iter().map(|r| r.id).collect();
    let slots = home.peers().open_all()?.slots;
    let mut matched: HashSet<PeerId> = slots
        .iter()
        .map(|s| s.record.id)
        .filter(|id| roster_ids.contains(id))
        .collect();
    for slot in &slots {
        let Ok(peer) = &slot.peer else { continue };
        if roster_ids.contains(&slot.record.id) {
            continue;
        }
        let mut candidates = rosters.iter().filter(|r| !matched.contains(&r.id));
        let found = candidates.find(|r| {
            r.location == slot.record.location
                || (!reachable(home, r) && holds_fragments_of(peer.as_ref(), placed.get(&r.id)))
        });
        let Some(r) = found else { continue };
        let updated = PeerRecord {
            id: r.id,
            name: slot.record.name.clone(),
            location: slot.record.location.clone(),
            labels: if slot.record.labels.is_empty() {
                r.labels.clone()
            } else {
                slot.record.labels.clone()
            },
        };
        home.peers().replace(&slot.record.name, &updated)?;
        matched.insert(r.id);
        report
            .peers_recognised
            .push((slot.record.name.clone(), r.name.clone()));
    }
    let mut configured = home.peers().records()?;
    for r in &rosters {
        if matched.contains(&r.id)
            || configured
                .iter()
                .any(|c| c.id == r.id || c.location == r.location)
        {
            continue;
        }
        let mut rec = r.clone();
        if configured.iter().any(|c| c.name == rec.name) {
            rec.name = format!("{}-{}", rec.name, rec.id.short());
        }
        home.peers().insert(&rec)?;
        report
            .peers_added
            .push(format!("{} ({})", rec.name, rec.location));
        configured.push(rec);
    }
    Ok(())
}

/// Whether a roster peer answers at its recorded location. Opening a node
/// peer does not connect, so a cheap question is asked too.
fn reachable(home: &Home, rec: &PeerRecord) -> bool {
    home.peers()
        .open(rec)
        .is_ok_and(|p| probe(p.as_ref()).is_ok())
}

/// Whether `peer` hands over fragments from `sample` that hash to their
/// ids: a few, picked at random; at least one must verify and none may be
/// wrong.
fn holds_fragments_of(peer: &dyn Peer, sample: Option<&Vec<FragmentId>>) -> bool {
    use rand::seq::SliceRandom;
    let Some(sample) = sample else { return false };
    let mut ids = sample.clone();
    ids.shuffle(&mut rand::thread_rng());
    let mut verified = 0;
    for id in ids.iter().take(RECOGNITION_SAMPLE) {
        match peer.get_fragment(id) {
            Ok(bytes) if FragmentId::of(&bytes) == *id => verified += 1,
            Ok(_) => return false,
            Err(_) => {}
        }
    }
    verified > 0
}

/// Per peer, the valid objects of this identity it held.
fn count_contributions(
    resolved: &BTreeMap<ContainerId, Resolved>,
    found: &[Found],
    verdicts: &Verdicts,
    report: &mut SyncReport,
) {
    for f in found {
        let valid = resolved.contains_key(f.key.container())
            && matches!(verdicts.get(&(f.key, f.hash)), Some(Ok(_)));
        let Some(p) = report.peers.iter_mut().find(|p| p.peer == f.peer) else {
            continue;
        };
        if !valid {
            continue;
        }
        match f.key {
            MetaKey::Container(_) => p.manifests += 1,
            MetaKey::IndexSegment(..) => p.segments += 1,
            MetaKey::Snapshot(..) => p.snapshots += 1,
        }
        if f.in_trash() {
            p.in_trash += 1;
        }
    }
}

/// The error when no container of this identity could be resolved.
fn nothing_found(owner: &Owner, report: &SyncReport, found: &[Found], foreign: usize) -> RepoError {
    let peers: Vec<_> = report
        .peers
        .iter()
        .filter(|p| p.error.is_none())
        .map(|p| format!("`{}`", p.peer))
        .collect();
    let seen_any = found.iter().any(|f| matches!(f.key, MetaKey::Container(_)));
    if foreign > 0 && !seen_any {
        RepoError::ForeignData {
            peers,
            fingerprint: owner.public().fingerprint(),
        }
    } else if seen_any {
        RepoError::NoValidManifest {
            peers,
            refused: report.refused.clone(),
        }
    } else {
        RepoError::NoDataOnPeers(peers)
    }
}

/// Write what was resolved into the index. A container manifest never goes
/// back to a lower revision than the one this machine has.
fn fill(
    home: &Home,
    owner: &Owner,
    resolved: BTreeMap<ContainerId, Resolved>,
    report: &mut SyncReport,
) -> Result<()> {
    for c in resolved.into_values() {
        let m = &c.manifest;
        let local = home.index.container(&m.name).ok();
        if let Some(local) = &local {
            if local.id != m.id {
                return Err(RepoError::ContainerExists(m.name.clone()));
            }
        }
        if local.as_ref().is_none_or(|l| m.revision > l.revision) {
            home.index.put_container(m, false)?;
            home.index
                .put_meta(&MetaKey::Container(m.id), &c.envelope)?;
        }
        // The index log: the segments found and those this machine already
        // applied, replayed in order.
        let mut log: BTreeMap<SegmentId, (IndexSegment, Vec<u8>)> =
            local_segments(home, owner, &m.id, &c.keys)?;
        for (seg, f) in c.segments.values() {
            log.entry(seg.id)
                .or_insert_with(|| (seg.clone(), f.bytes.clone()));
        }
        let state = replay(log.values().map(|(s, _)| s));
        // A superseded segment in a trash was deleted on purpose (prune).
        for (seg, f) in c.segments.values() {
            if state.superseded.contains(&seg.id) {
                continue;
            }
            report.segments += 1;
            if f.in_trash() {
                report
                    .from_trash
                    .push(format!("{} (from the trash of peer `{}`)", f.key, f.peer));
            }
        }
        apply_log(home, &m.id, &state, &log)?;
        report.packs += state.packs.len() as u64;
        for (snap, f) in c.snapshots.values() {
            if state.forgotten.contains(&snap.id) {
                continue;
            }
            home.index.insert_snapshot(snap, &f.bytes)?;
            report.snapshots += 1;
            if f.in_trash() {
                report
                    .from_trash
                    .push(format!("{} (from the trash of peer `{}`)", f.key, f.peer));
            }
        }
        report.containers.push(m.name.clone());
    }
    Ok(())
}

/// Make the index what a container's replayed index log says: its packs,
/// the log's segments recorded, the snapshots it forgot gone (`sync`, and
/// a shared container's refresh).
pub(crate) fn apply_log(
    home: &Home,
    cid: &ContainerId,
    state: &IndexState,
    log: &BTreeMap<SegmentId, (IndexSegment, Vec<u8>)>,
) -> Result<()> {
    let entries: Vec<(&IndexSegment, &[u8])> =
        log.values().map(|(s, e)| (s, e.as_slice())).collect();
    home.index.rebuild_packs(cid, state, &entries)?;
    let forgotten: Vec<SnapshotId> = state.forgotten.iter().copied().collect();
    home.index.forget_snapshots(cid, &forgotten)
}

/// The segments of a container's index log this machine holds, verified.
pub(crate) fn local_segments(
    home: &Home,
    owner: &Owner,
    cid: &ContainerId,
    keys: &ContainerKeys,
) -> Result<BTreeMap<SegmentId, (IndexSegment, Vec<u8>)>> {
    let mut out = BTreeMap::new();
    for (key, bytes) in home.index.meta(cid)? {
        let MetaKey::IndexSegment(_, id) = key else {
            continue;
        };
        let opened = envelope::open_signed_any(
            &owner.public(),
            keys.seals(),
            BlobKind::IndexSegment,
            &id.0,
            &bytes,
        );
        if let Ok(seg) = opened
            .map_err(|e| e.to_string())
            .and_then(|(_, b)| IndexSegment::decode(&b).map_err(|e| e.to_string()))
        {
            out.insert(id, (seg, bytes));
        }
    }
    Ok(out)
}
