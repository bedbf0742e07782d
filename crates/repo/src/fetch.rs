//! Verified reads (invariant 5, docs/design.md §Invariants): fetch `k`
//! fragments of a pack, preferring data shards (no decoding needed), check
//! each against its fragment id, ask for more when one is missing or wrong,
//! decode, and check the pack against its id. Every problem met on the way is
//! recorded so the user learns which peer lost or corrupted what.

use crate::error::{RepoError, Result};
use crate::index::BlobLocation;
use crate::peers::PeerSlot;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use trove_core::erasure::{self, ErasureError, FRAGMENT_HEADER_LEN};
use trove_core::keys::ContainerKeys;
use trove_core::manifest::{FragmentLocation, PackRecord};
use trove_core::pack::{self, PackEntry};
use trove_core::seal;
use trove_core::{BlobId, FragmentId, PackId, PeerId};
use trove_peer::{Peer, PeerError};

/// What was wrong with one fragment: what restore, check and audits report
/// and decide on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FragmentFault {
    /// The peer does not hold it.
    Missing,
    /// The peer returned bytes that do not hash to the fragment id.
    Corrupt { len: u64 },
    /// The peer could not be reached: says nothing about the fragment, but
    /// about every other fragment on that peer.
    Unavailable(String),
    /// The peer is configured but could not be opened.
    PeerUnavailable,
    /// The roster peer that holds it is no longer configured.
    PeerNotConfigured,
    /// No answer in time: another fragment was read instead.
    Slow { waited: Duration },
    /// An audit proof did not verify.
    AuditFailed(String),
    /// Any other failure of the peer (an I/O error on its disk, say).
    Failed(String),
}

impl FragmentFault {
    /// A short name for the kind of fault, for grouping and for scripts.
    pub fn kind(&self) -> &'static str {
        match self {
            FragmentFault::Missing => "missing",
            FragmentFault::Corrupt { .. } => "corrupt",
            FragmentFault::Unavailable(_) | FragmentFault::PeerUnavailable => "unavailable",
            FragmentFault::PeerNotConfigured => "not configured",
            FragmentFault::Slow { .. } => "slow",
            FragmentFault::AuditFailed(_) => "audit failed",
            FragmentFault::Failed(_) => "failed",
        }
    }

    /// The fault a failed peer call stands for.
    pub(crate) fn of(e: &PeerError) -> Self {
        match e {
            PeerError::NotFound { .. } => FragmentFault::Missing,
            PeerError::Unavailable { .. } => FragmentFault::Unavailable(e.to_string()),
            other => FragmentFault::Failed(other.to_string()),
        }
    }
}

impl std::fmt::Display for FragmentFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FragmentFault::Missing => f.write_str("missing"),
            FragmentFault::Corrupt { len } => write!(f, "corrupt ({len} bytes, hash mismatch)"),
            FragmentFault::Unavailable(why) | FragmentFault::Failed(why) => f.write_str(why),
            FragmentFault::PeerUnavailable => f.write_str("peer unavailable"),
            FragmentFault::PeerNotConfigured => f.write_str("peer no longer configured"),
            FragmentFault::Slow { waited } => write!(
                f,
                "slow (no answer after {:.1}s); read another fragment instead",
                waited.as_secs_f64()
            ),
            FragmentFault::AuditFailed(why) => write!(f, "audit failed: {why}"),
        }
    }
}

/// A problem with one fragment, met and routed around.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentProblem {
    pub pack: PackId,
    pub index: u8,
    pub fragment: FragmentId,
    pub peer: String,
    pub fault: FragmentFault,
}

/// As a row: the ids, the peer, the fault in words (`problem`) and its
/// kind (for scripts).
impl serde::Serialize for FragmentProblem {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut row = s.serialize_struct("FragmentProblem", 6)?;
        row.serialize_field("pack", &self.pack)?;
        row.serialize_field("index", &self.index)?;
        row.serialize_field("fragment", &self.fragment)?;
        row.serialize_field("peer", &self.peer)?;
        row.serialize_field("problem", &self.fault.to_string())?;
        row.serialize_field("kind", self.fault.kind())?;
        row.end()
    }
}

impl FragmentProblem {
    pub(crate) fn new(
        rec: &PackRecord,
        loc: &FragmentLocation,
        peer: &str,
        fault: FragmentFault,
    ) -> Self {
        Self {
            pack: rec.id,
            index: loc.index,
            fragment: loc.id,
            peer: peer.to_owned(),
            fault,
        }
    }
}

impl std::fmt::Display for FragmentProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pack {} fragment {} on peer `{}`: {}",
            self.pack.short(),
            self.index,
            self.peer,
            self.fault
        )
    }
}

/// Read one fragment and check it against its id.
pub(crate) fn read_verified(
    peer: &dyn Peer,
    id: &FragmentId,
) -> std::result::Result<Vec<u8>, FragmentFault> {
    let mut buf = Vec::new();
    read_verified_into(peer, id, &mut buf).map(|()| buf)
}

/// [`read_verified`] into `buf` (its contents replaced).
fn read_verified_into(
    peer: &dyn Peer,
    id: &FragmentId,
    buf: &mut Vec<u8>,
) -> std::result::Result<(), FragmentFault> {
    match peer.get_fragment_into(id, buf) {
        Ok(()) if FragmentId::of(buf) == *id => Ok(()),
        Ok(()) => Err(FragmentFault::Corrupt {
            len: buf.len() as u64,
        }),
        Err(e) => Err(FragmentFault::of(&e)),
    }
}

/// Fragment and shard buffers a [`Fetcher`] reuses: a pack gives its
/// buffers back when it is dropped, and the next fetches read into them.
/// Fresh buffers of about 2 MiB cost a page fault per 4 KiB each time
/// (docs/performance.md, eighth round).
#[derive(Debug, Default)]
struct Buffers(Mutex<Vec<Vec<u8>>>);

impl Buffers {
    /// Buffers kept at most while unused: about two packs' fragments.
    const KEPT: usize = 8;

    fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .expect("not poisoned")
            .pop()
            .unwrap_or_default()
    }

    fn give(&self, buf: Vec<u8>) {
        if buf.capacity() == 0 {
            return;
        }
        let mut kept = self.0.lock().expect("not poisoned");
        if kept.len() < Self::KEPT {
            kept.push(buf);
        }
    }
}

/// Fetches and decodes packs from a set of peers.
#[derive(Debug)]
pub struct Fetcher {
    peers: HashMap<PeerId, (String, Option<Arc<dyn Peer>>)>,
    problems: Mutex<Vec<FragmentProblem>>,
    cache: Mutex<Vec<(PackId, Arc<PackBytes>)>>,
    /// Pack records already read from the index: a tree walk asks for the
    /// same few packs once per folder.
    pub(crate) records: Mutex<HashMap<PackId, Arc<PackRecord>>>,
    /// Where each tree of the packs a tree walk has read is
    /// ([`Fetcher::learn_trees`]).
    trees: Mutex<HashMap<BlobId, BlobLocation>>,
    /// Moving average of how long a fragment fetch takes, in ms.
    usual_fetch_ms: AtomicU64,
    /// Peers that were slow or unreachable: asked last until they answer
    /// well again, so one dead peer costs one hedge delay, not one per pack.
    suspects: Mutex<std::collections::HashSet<PeerId>>,
    /// Answers to [`Fetcher::probe_peers`] that came after it returned: a
    /// peer that answers late is slow, not dead, and stops being a suspect.
    late_probes: Mutex<Option<crossbeam_channel::Receiver<(PeerId, bool)>>>,
    /// Fragment bytes received (good or not), for reports.
    received: Arc<AtomicU64>,
    /// Held while a pack is decoded: decoding needs several times the
    /// pack's size in working memory, so one decode at a time bounds it.
    decoding: Mutex<()>,
    buffers: Arc<Buffers>,
}

const CACHE_PACKS: usize = 3;
/// Bounds of the hedge delay (see [`Fetcher::hedge_delay`]).
const HEDGE_MIN_MS: u64 = 750;
const HEDGE_MAX_MS: u64 = 10_000;
/// How long [`Fetcher::probe_peers`] waits at most: a live peer on a disk or
/// the LAN answers in milliseconds; one that answers later (far away) is a
/// suspect only until its answer comes.
const PROBE_WAIT: Duration = Duration::from_millis(250);
/// Once a peer has answered, the others get this many times as long as the
/// slowest answer so far, and at least [`PROBE_MIN_WAIT`]: peers alike
/// answer alike, and a restore with two nodes gone waited the whole
/// [`PROBE_WAIT`] for them (docs/performance.md, seventh round).
const PROBE_PATIENCE: u32 = 4;
const PROBE_MIN_WAIT: Duration = Duration::from_millis(40);

impl Fetcher {
    pub fn new(slots: &[PeerSlot]) -> Self {
        Self::of(
            slots
                .iter()
                .map(|s| (s.record.id, (s.record.name.clone(), s.available().cloned())))
                .collect(),
        )
    }

    fn of(peers: HashMap<PeerId, (String, Option<Arc<dyn Peer>>)>) -> Self {
        Self {
            peers,
            problems: Mutex::new(Vec::new()),
            cache: Mutex::new(Vec::new()),
            records: Mutex::new(HashMap::new()),
            trees: Mutex::new(HashMap::new()),
            // Start low: the first dead peer then costs the minimum hedge delay.
            usual_fetch_ms: AtomicU64::new(150),
            suspects: Mutex::new(Default::default()),
            late_probes: Mutex::new(None),
            received: Arc::new(AtomicU64::new(0)),
            decoding: Mutex::new(()),
            buffers: Arc::default(),
        }
    }

    /// Ask every peer a trivial question at once (does it hold the zero
    /// fragment id) and wait at most [`PROBE_WAIT`], less once some have
    /// answered ([`PROBE_PATIENCE`]): a peer that has not answered by then
    /// (a node whose process is gone: its connection attempt hangs until
    /// the connect timeout) or that failed starts as a suspect. Without
    /// this, the first pack waits one hedge delay for each dead peer in
    /// turn when its next location is on a dead peer too. Live nodes are
    /// connected by the same question. Returns the suspects.
    pub fn probe_peers(&self) -> Vec<String> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut waiting: HashMap<PeerId, String> = HashMap::new();
        for (id, (name, peer)) in &self.peers {
            let Some(peer) = peer.clone() else { continue };
            waiting.insert(*id, name.clone());
            let (tx, id) = (tx.clone(), *id);
            // Left to finish on its own if it hangs.
            std::thread::spawn(move || {
                let answered = peer.has_fragment(&FragmentId([0; 32])).is_ok();
                let _ = tx.send((id, answered));
            });
        }
        let started = Instant::now();
        let mut deadline = started + PROBE_WAIT;
        let mut failed = Vec::new();
        while !waiting.is_empty() {
            let Ok((id, answered)) = rx.recv_deadline(deadline) else {
                break;
            };
            let seconds = started.elapsed().as_secs_f64();
            tracing::debug!(peer = %id, answered, seconds, "probe answer");
            if answered {
                let patience = (started.elapsed() * PROBE_PATIENCE).max(PROBE_MIN_WAIT);
                deadline = deadline.min(started + patience);
            }
            match waiting.remove(&id) {
                Some(name) if !answered => failed.push((id, name)),
                _ => {}
            }
        }
        failed.extend(waiting);
        self.suspects
            .lock()
            .expect("not poisoned")
            .extend(failed.iter().map(|(id, _)| *id));
        *self.late_probes.lock().expect("not poisoned") = Some(rx);
        let mut names: Vec<String> = failed.into_iter().map(|(_, n)| n).collect();
        names.sort();
        names
    }

    /// Clear the suspicion of peers whose probe was answered late.
    fn take_late_probes(&self) {
        let late = self.late_probes.lock().expect("not poisoned");
        let Some(rx) = late.as_ref() else { return };
        let mut suspects = self.suspects.lock().expect("not poisoned");
        for (id, answered) in rx.try_iter() {
            if answered {
                suspects.remove(&id);
            }
        }
    }

    /// Fragment bytes received from peers so far, good or not (a straggler
    /// of a hedged fetch counts when it arrives).
    pub fn bytes_received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    pub fn problems(&self) -> Vec<FragmentProblem> {
        self.problems.lock().expect("not poisoned").clone()
    }

    fn note(&self, rec: &PackRecord, loc: &FragmentLocation, peer: &str, fault: FragmentFault) {
        self.problems
            .lock()
            .expect("not poisoned")
            .push(FragmentProblem::new(rec, loc, peer, fault));
    }

    /// The peer holding a fragment, or why it cannot be asked.
    pub(crate) fn peer_of(
        &self,
        loc: &FragmentLocation,
    ) -> std::result::Result<(String, Arc<dyn Peer>), (String, FragmentFault)> {
        match self.peers.get(&loc.peer) {
            Some((name, Some(p))) => Ok((name.clone(), p.clone())),
            Some((name, None)) => Err((name.clone(), FragmentFault::PeerUnavailable)),
            None => Err((loc.peer.short(), FragmentFault::PeerNotConfigured)),
        }
    }

    /// How long to wait for a fragment before also asking another peer:
    /// a few times the usual fetch time, so a slow or vanished peer costs
    /// little more than one fetch.
    fn hedge_delay(&self) -> Duration {
        let usual = self.usual_fetch_ms.load(Ordering::Relaxed);
        Duration::from_millis((usual * 4).clamp(HEDGE_MIN_MS, HEDGE_MAX_MS))
    }

    fn record_fetch_time(&self, took: Duration) {
        let ms = took.as_millis() as u64;
        let old = self.usual_fetch_ms.load(Ordering::Relaxed);
        // A moving average: recent fetches count most.
        self.usual_fetch_ms
            .store((old * 7 + ms) / 8, Ordering::Relaxed);
    }

    /// Fetch, verify and decode a pack, keeping the last few in a small
    /// cache (tree blobs cluster in few packs and are read one by one).
    pub fn pack(&self, rec: &PackRecord) -> Result<Arc<PackBytes>> {
        if let Some((_, p)) = self
            .cache
            .lock()
            .expect("not poisoned")
            .iter()
            .find(|(id, _)| *id == rec.id)
        {
            return Ok(p.clone());
        }
        let bytes = Arc::new(self.pack_bytes(rec)?);
        let mut cache = self.cache.lock().expect("not poisoned");
        if cache.len() >= CACHE_PACKS {
            cache.remove(0);
        }
        cache.push((rec.id, bytes.clone()));
        Ok(bytes)
    }

    /// Empty the cache of [`Fetcher::pack`]: once the trees are read, its
    /// packs would only hold memory.
    pub fn forget_cached(&self) {
        self.cache.lock().expect("not poisoned").clear();
        self.trees.lock().expect("not poisoned").clear();
    }

    /// Remember where the trees of `rec` are, a pack that was just fetched
    /// and verified. A backup stores its new trees together, after its
    /// files, so a walk that has read one of them finds most of the others
    /// here, and asks the index about one tree per pack, not one per
    /// folder: on a cold cache those lookups, page by page across the
    /// index, were two thirds of a restore's planning (docs/performance.md,
    /// sixteenth round).
    pub(crate) fn learn_trees(&self, rec: &PackRecord) {
        let mut trees = self.trees.lock().expect("not poisoned");
        for entry in rec.blobs.iter().filter(|e| e.kind == seal::BlobKind::Tree) {
            trees.entry(entry.id).or_insert(BlobLocation {
                pack: rec.id,
                entry: *entry,
            });
        }
    }

    /// Where tree `id` is, if it is in a pack [`Fetcher::learn_trees`] was
    /// given.
    pub(crate) fn tree_in_read_pack(&self, id: &BlobId) -> Option<BlobLocation> {
        self.trees.lock().expect("not poisoned").get(id).copied()
    }

    /// Fetch, verify and decode a pack that will be read once.
    pub fn pack_uncached(&self, rec: &PackRecord) -> Result<Vec<u8>> {
        Ok(self.pack_bytes(rec)?.into_vec())
    }

    /// Fetch, verify and decode a pack that will be read once, without
    /// copying it into one buffer when its data fragments were all read.
    pub fn pack_bytes(&self, rec: &PackRecord) -> Result<PackBytes> {
        let got = self.fragments(rec)?;
        PackBytes::rebuild(got, &self.decoding, &self.buffers)
            .map_err(|e| RepoError::Lost(format!("pack {} does not decode: {e}", rec.id.short())))
    }

    /// Fetch `k` verified fragments of a pack, data shards first.
    fn fragments(&self, rec: &PackRecord) -> Result<Vec<Vec<u8>>> {
        let k = rec.k as usize;
        // Data shards first: with all of them, decoding is a concatenation.
        let mut order: Vec<&FragmentLocation> = rec.fragments.iter().collect();
        self.take_late_probes();
        let suspects = self.suspects.lock().expect("not poisoned").clone();
        order.sort_by_key(|l| (suspects.contains(&l.peer), l.index >= rec.k, l.index));
        let suspect = |peer: PeerId, yes: bool| {
            let mut s = self.suspects.lock().expect("not poisoned");
            if yes {
                s.insert(peer);
            } else {
                s.remove(&peer);
            }
        };
        let mut got: Vec<Vec<u8>> = Vec::with_capacity(k);
        // Ask k peers at once; when one fails, ask the next; when one is
        // slow, also ask the next (hedging). A straggler's thread is left to
        // finish on its own: its answer is no longer needed.
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut next = 0;
        let mut in_flight: HashMap<usize, (String, Instant)> = HashMap::new();
        let launch = |i: usize, in_flight: &mut HashMap<usize, (String, Instant)>| {
            let loc = order[i];
            match self.peer_of(loc) {
                Ok((name, peer)) => {
                    let tx = tx.clone();
                    let id = loc.id;
                    let received = self.received.clone();
                    let buffers = self.buffers.clone();
                    in_flight.insert(i, (name, Instant::now()));
                    std::thread::spawn(move || {
                        let mut buf = buffers.take();
                        let got = read_verified_into(peer.as_ref(), &id, &mut buf);
                        let len = match &got {
                            Ok(()) => buf.len() as u64,
                            Err(FragmentFault::Corrupt { len }) => *len,
                            Err(_) => 0,
                        };
                        received.fetch_add(len, Ordering::Relaxed);
                        let got = got.map(|()| buf);
                        let _ = tx.send((i, got));
                    });
                }
                Err((name, problem)) => self.note(rec, loc, &name, problem),
            }
        };
        while next < order.len() && in_flight.len() < k {
            launch(next, &mut in_flight);
            next += 1;
        }
        while got.len() < k && !in_flight.is_empty() {
            if let Ok((i, result)) = rx.recv_timeout(self.hedge_delay()) {
                let Some((name, started)) = in_flight.remove(&i) else {
                    continue;
                };
                match result {
                    Ok(bytes) => {
                        self.record_fetch_time(started.elapsed());
                        suspect(order[i].peer, false);
                        got.push(bytes);
                    }
                    Err(fault) => {
                        // Missing or corrupt says nothing about the peer's
                        // other fragments; unreachable does.
                        if matches!(fault, FragmentFault::Unavailable(_)) {
                            suspect(order[i].peer, true);
                        }
                        self.note(rec, order[i], &name, fault)
                    }
                }
            }
            // Keep k requests going (replacing failures), plus one more
            // for every peer slower than the hedge delay.
            let slow = in_flight
                .values()
                .filter(|(_, t)| t.elapsed() >= self.hedge_delay())
                .count();
            while next < order.len() && in_flight.len() < (k - got.len()) + slow {
                launch(next, &mut in_flight);
                next += 1;
            }
        }
        for (i, (name, started)) in in_flight {
            suspect(order[i].peer, true);
            self.note(
                rec,
                order[i],
                &name,
                FragmentFault::Slow {
                    waited: started.elapsed(),
                },
            );
        }
        if got.len() < k {
            return Err(RepoError::Lost(format!(
                "pack {} cannot be rebuilt: {} of the {} fragments it needs are readable",
                rec.id.short(),
                got.len(),
                k
            )));
        }
        Ok(got)
    }

    /// Open one blob of a fetched pack and check it against its id.
    pub fn open_blob(
        keys: &ContainerKeys,
        pack_bytes: &[u8],
        loc: &BlobLocation,
    ) -> Result<Vec<u8>> {
        let sealed = pack::blob_bytes(pack_bytes, &loc.entry)
            .map_err(|e| RepoError::Lost(format!("blob {}: {e}", loc.entry.id.short())))?;
        let mut plain = Vec::new();
        Self::open_sealed_into(keys, sealed, &loc.entry, &mut plain)?;
        Ok(plain)
    }

    /// [`Fetcher::open_blob`] of a pack kept as [`PackBytes`].
    pub fn open_blob_in(
        keys: &ContainerKeys,
        pack: &PackBytes,
        entry: &PackEntry,
    ) -> Result<Vec<u8>> {
        let mut plain = Vec::new();
        Self::open_blob_into(keys, pack, entry, &mut plain)?;
        Ok(plain)
    }

    /// [`Fetcher::open_blob_in`] into `plain` (its contents replaced), so
    /// that a caller opening many blobs reuses one buffer.
    pub fn open_blob_into(
        keys: &ContainerKeys,
        pack: &PackBytes,
        entry: &PackEntry,
        plain: &mut Vec<u8>,
    ) -> Result<()> {
        let start = entry.offset as usize;
        let sealed = pack
            .range(start, start + entry.length as usize)
            .ok_or_else(|| {
                RepoError::Lost(format!(
                    "blob {}: {}",
                    entry.id.short(),
                    pack::PackError::Malformed("entry outside the pack")
                ))
            })?;
        Self::open_sealed_into(keys, &sealed, entry, plain)
    }

    fn open_sealed_into(
        keys: &ContainerKeys,
        sealed: &[u8],
        entry: &PackEntry,
        plain: &mut Vec<u8>,
    ) -> Result<()> {
        seal::open_any_into(keys.seals(), entry.kind, &entry.id.0, sealed, plain)
            .map_err(|e| RepoError::Lost(format!("blob {}: {e}", entry.id.short())))?;
        if plain.len() != entry.raw_length as usize || BlobId(keys.chunk_id(plain).0) != entry.id {
            return Err(RepoError::Lost(format!(
                "blob {} does not match its id after opening",
                entry.id.short()
            )));
        }
        Ok(())
    }
}

/// A rebuilt pack, checked against its id, kept in the buffers it was
/// rebuilt in: the data fragments themselves when all of them were read (a
/// pack is their shards end to end, so nothing is copied), else the one
/// buffer decoding made.
#[derive(Debug)]
pub struct PackBytes {
    /// The pack's parts in order: part `i` is `parts[i][skip..skip + part_len]`,
    /// the last one cut at `len`.
    parts: Vec<Vec<u8>>,
    skip: usize,
    part_len: usize,
    len: usize,
    /// Where the parts go back when the pack is dropped.
    buffers: Option<Arc<Buffers>>,
}

impl Drop for PackBytes {
    fn drop(&mut self) {
        if let Some(b) = &self.buffers {
            self.parts.drain(..).for_each(|p| b.give(p));
        }
    }
}

impl PackBytes {
    /// A pack in one buffer.
    pub fn whole(bytes: Vec<u8>) -> Self {
        Self {
            len: bytes.len(),
            part_len: bytes.len().max(1),
            skip: 0,
            parts: vec![bytes],
            buffers: None,
        }
    }

    /// Rebuild a pack from fragments whose ids were checked, as
    /// [`erasure::decode`] does, but without a copy of the pack: the data
    /// fragments that are there are its parts as they are, and only the
    /// missing data shards are rebuilt, each over a parity fragment's buffer
    /// (with two of six peers lost, a copy of every decoded pack held 15-18
    /// MiB more at a restore's peak, and a buffer per rebuilt shard 4-6 MiB:
    /// docs/performance.md, fourteenth round).
    fn rebuild(
        mut fragments: Vec<Vec<u8>>,
        decoding: &Mutex<()>,
        buffers: &Arc<Buffers>,
    ) -> std::result::Result<Self, ErasureError> {
        let (h, mut data) = erasure::data_positions(&fragments)?;
        if data.iter().any(Option::is_none) {
            let _one = decoding.lock().expect("not poisoned");
            for (i, at) in erasure::rebuild_missing_in_place(&mut fragments)? {
                data[i as usize] = Some(at);
            }
        }
        let mut fragments: Vec<Option<Vec<u8>>> = fragments.into_iter().map(Some).collect();
        let parts = data
            .into_iter()
            .map(|at| {
                let at = at.expect("every missing data shard is rebuilt");
                fragments[at].take().expect("each fragment taken once")
            })
            .collect();
        // Parity fragments not rebuilt over, and copies of a data fragment.
        fragments
            .into_iter()
            .flatten()
            .for_each(|f| buffers.give(f));
        let bytes = Self {
            parts,
            skip: FRAGMENT_HEADER_LEN,
            part_len: h.shard_len as usize,
            len: h.pack_len as usize,
            buffers: Some(buffers.clone()),
        };
        let mut hasher = blake3::Hasher::new();
        for i in 0..bytes.parts.len() {
            hasher.update(bytes.part(i));
        }
        if PackId(*hasher.finalize().as_bytes()) != h.pack {
            return Err(ErasureError::PackHash);
        }
        Ok(bytes)
    }

    /// Part `i`, cut at the pack's length.
    fn part(&self, i: usize) -> &[u8] {
        let n = self
            .len
            .saturating_sub(i * self.part_len)
            .min(self.part_len);
        &self.parts[i][self.skip..self.skip + n]
    }

    /// Bytes `start..end` of the pack: borrowed, unless they straddle two
    /// parts. `None` if they are not all in the pack.
    pub fn range(&self, start: usize, end: usize) -> Option<Cow<'_, [u8]>> {
        if start > end || end > self.len {
            return None;
        }
        if start == end {
            return Some(Cow::Borrowed(&[]));
        }
        let (first, last) = (start / self.part_len, (end - 1) / self.part_len);
        let base = first * self.part_len;
        if first == last {
            return Some(Cow::Borrowed(&self.part(first)[start - base..end - base]));
        }
        let mut out = Vec::with_capacity(end - start);
        for i in first..=last {
            let at = i * self.part_len;
            let p = self.part(i);
            out.extend_from_slice(&p[start.saturating_sub(at)..(end - at).min(p.len())]);
        }
        Some(Cow::Owned(out))
    }

    /// The pack in one buffer.
    pub fn into_vec(mut self) -> Vec<u8> {
        if self.skip == 0 && self.parts.len() == 1 {
            let mut v = self.parts.pop().expect("one part");
            v.truncate(self.len);
            return v;
        }
        let mut out = Vec::with_capacity(self.len);
        for i in 0..self.parts.len() {
            out.extend_from_slice(self.part(i));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fragments(len: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
        let bytes: Vec<u8> = (0..len as u32).map(|i| (i * 7 % 251) as u8).collect();
        let frags = erasure::encode(&PackId::of(&bytes), &bytes, 4, 2).unwrap();
        (bytes, frags.into_iter().map(|f| f.bytes).collect())
    }

    #[test]
    fn a_rebuild_needs_no_buffer_of_its_own_and_a_dropped_pack_gives_its_buffers_back() {
        let lock = Mutex::new(());
        let buffers = Arc::new(Buffers::default());
        let kept = |b: &Buffers| b.0.lock().unwrap().len();
        let (bytes, frags) = fragments(100_003);
        // Data shards 2 and 3 and both parity shards: 0 and 1 are rebuilt
        // over the parity fragments.
        let first = PackBytes::rebuild(frags[2..6].to_vec(), &lock, &buffers).unwrap();
        assert_eq!(kept(&buffers), 0, "no buffer taken, none left over");
        assert_eq!(first.into_vec(), bytes);
        assert_eq!(
            kept(&buffers),
            4,
            "the pack's four parts are given back when it is dropped"
        );
        // One parity fragment more than needed: it is given back at once.
        let again = PackBytes::rebuild(frags[1..6].to_vec(), &lock, &buffers).unwrap();
        assert_eq!(kept(&buffers), 5, "the parity fragment not rebuilt over");
        assert_eq!(again.range(0, bytes.len()).unwrap().as_ref(), &bytes[..]);
        drop(again);
        assert_eq!(kept(&buffers), Buffers::KEPT, "no more than KEPT are kept");
    }

    #[test]
    fn a_pack_from_its_data_fragments_or_decoded_reads_the_same() {
        let lock = Mutex::new(());
        let (bytes, frags) = fragments(100_003);
        // Data fragments, out of order: kept as they are.
        let shards = vec![
            frags[2].clone(),
            frags[0].clone(),
            frags[3].clone(),
            frags[1].clone(),
        ];
        let kept = PackBytes::rebuild(shards, &lock, &Arc::default()).unwrap();
        assert_eq!(kept.parts.len(), 4);
        // One data fragment missing: decoded.
        let decoded = PackBytes::rebuild(frags[1..5].to_vec(), &lock, &Arc::default()).unwrap();
        // Two missing: both rebuilt, each over a parity fragment, the two
        // data fragments there kept as they are (no copy of the pack).
        let two = PackBytes::rebuild(frags[2..6].to_vec(), &lock, &Arc::default()).unwrap();
        assert_eq!(two.parts.len(), 4);
        for p in [&kept, &decoded, &two] {
            for (a, b) in [
                (0, 0),
                (0, 10),
                (25_000, 25_010),
                (24_990, 50_010),
                (99_000, 100_003),
            ] {
                assert_eq!(&p.range(a, b).unwrap()[..], &bytes[a..b], "{a}..{b}");
            }
            assert!(p.range(0, 100_004).is_none());
            assert!(p.range(10, 5).is_none());
        }
        assert_eq!(kept.into_vec(), bytes);
        assert_eq!(decoded.into_vec(), bytes);
        assert_eq!(two.into_vec(), bytes);
        // A flipped byte in a parity shard: what it rebuilds fails the hash.
        let mut bad = frags[2..6].to_vec();
        bad[3][FRAGMENT_HEADER_LEN + 5] ^= 1;
        assert!(matches!(
            PackBytes::rebuild(bad, &lock, &Arc::default()),
            Err(ErasureError::PackHash)
        ));
        // Fragments of another pack among them, or too few: refused.
        let (_, other) = fragments(100_001);
        let mixed = vec![
            frags[0].clone(),
            frags[1].clone(),
            frags[2].clone(),
            other[3].clone(),
        ];
        assert!(matches!(
            PackBytes::rebuild(mixed, &lock, &Arc::default()),
            Err(ErasureError::Mismatch(_))
        ));
        assert!(matches!(
            PackBytes::rebuild(frags[..3].to_vec(), &lock, &Arc::default()),
            Err(ErasureError::TooFew { have: 3, need: 4 })
        ));
        assert!(matches!(
            PackBytes::rebuild(Vec::new(), &lock, &Arc::default()),
            Err(ErasureError::TooFew { have: 0, need: 1 })
        ));
    }

    #[test]
    fn peers_that_do_not_answer_a_probe_in_time_start_as_suspects() {
        use trove_peer::testing::{MemoryPeer, SlowPeer};
        let live: Arc<dyn Peer> = Arc::new(MemoryPeer::new("live"));
        let stuck: Arc<dyn Peer> = Arc::new(SlowPeer::new(
            Arc::new(MemoryPeer::new("stuck")),
            Duration::from_secs(30),
        ));
        let (a, b, c) = (PeerId([1; 32]), PeerId([2; 32]), PeerId([3; 32]));
        let f = Fetcher::of(HashMap::from([
            (a, ("live".to_owned(), Some(live))),
            (b, ("stuck".to_owned(), Some(stuck))),
            (c, ("gone".to_owned(), None)),
        ]));
        assert_eq!(f.probe_peers(), ["stuck"]);
        let suspects = f.suspects.lock().unwrap().clone();
        assert!(
            suspects.contains(&b) && !suspects.contains(&a),
            "{suspects:?}"
        );
        // Its answer comes late: slow, not dead, it is no longer a suspect.
        let (tx, rx) = crossbeam_channel::unbounded();
        tx.send((b, true)).unwrap();
        *f.late_probes.lock().unwrap() = Some(rx);
        f.take_late_probes();
        assert!(f.suspects.lock().unwrap().is_empty());
    }

    #[test]
    fn once_a_peer_answers_a_probe_the_others_get_a_few_times_as_long() {
        use trove_peer::testing::{MemoryPeer, SlowPeer};
        let live: Arc<dyn Peer> = Arc::new(MemoryPeer::new("live"));
        // Within the most a probe waits, but many times slower than the
        // live peer's answer: a suspect, until it answers.
        let slow: Arc<dyn Peer> = Arc::new(SlowPeer::new(
            Arc::new(MemoryPeer::new("slow")),
            PROBE_WAIT * 4 / 5,
        ));
        let (a, b) = (PeerId([1; 32]), PeerId([2; 32]));
        let f = Fetcher::of(HashMap::from([
            (a, ("live".to_owned(), Some(live))),
            (b, ("slow".to_owned(), Some(slow))),
        ]));
        assert_eq!(f.probe_peers(), ["slow"]);
        std::thread::sleep(PROBE_WAIT);
        f.take_late_probes();
        assert!(f.suspects.lock().unwrap().is_empty());
    }

    /// The trees of a pack read are found without the index; its data
    /// blobs are not, and nothing is once the walk is over.
    #[test]
    fn trees_of_packs_read_are_found_until_the_cache_is_forgotten() {
        let f = Fetcher::of(HashMap::new());
        let entry = |n: u8, kind| PackEntry {
            kind,
            id: BlobId([n; 32]),
            offset: u32::from(n) * 100,
            length: 100,
            raw_length: 90,
        };
        let rec = PackRecord {
            id: PackId([9; 32]),
            k: 4,
            m: 2,
            pack_len: 1000,
            fragments: Vec::new(),
            blobs: vec![
                entry(1, seal::BlobKind::Data),
                entry(2, seal::BlobKind::Tree),
                entry(3, seal::BlobKind::Tree),
            ],
        };
        assert_eq!(f.tree_in_read_pack(&BlobId([2; 32])), None);
        f.learn_trees(&rec);
        let at = f.tree_in_read_pack(&BlobId([3; 32])).unwrap();
        assert_eq!((at.pack, at.entry), (rec.id, rec.blobs[2]));
        assert_eq!(f.tree_in_read_pack(&BlobId([1; 32])), None);
        f.forget_cached();
        assert_eq!(f.tree_in_read_pack(&BlobId([3; 32])), None);
    }

    #[test]
    fn a_pack_whose_shards_do_not_hash_to_its_id_is_refused() {
        let lock = Mutex::new(());
        let (_, mut frags) = fragments(10_000);
        let last = frags[3].len() - 1;
        frags[3][last] ^= 1;
        assert_eq!(
            PackBytes::rebuild(frags[..4].to_vec(), &lock, &Arc::default()).unwrap_err(),
            ErasureError::PackHash
        );
    }
}
