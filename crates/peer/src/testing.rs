//! Test seams (feature `testing`, off by default): peers that live in
//! memory, fail, lie or dawdle on demand, so that every caller of [`Peer`]
//! can be tested against the failures it must survive without a disk, a
//! network or a fault injector.
//!
//! - [`MemoryPeer`]: a complete peer in memory. It keeps the same promises
//!   as [`FolderPeer`](crate::FolderPeer): fragments are checked against
//!   their ids, metadata is admitted by [`crate::admit::admit`] with the
//!   container pinned to the signer of what it holds, replaced and deleted
//!   objects wait in a trash until [`MemoryPeer::purge_expired`].
//! - Wrappers over any `Arc<dyn Peer>`: [`FailingPeer`] (chosen operations
//!   fail with a chosen error, attempts are counted), [`LyingPeer`] (claims
//!   to hold everything, serves damaged bytes), [`SlowPeer`] (sleeps before
//!   each call).
//! - [`contract`]: the behaviour every peer must show, as functions over
//!   `&dyn Peer` that panic on a violation, so each implementation runs the
//!   same checks.
//! - Fixtures: [`owner`], [`signed`], [`signed_by`], [`fragment`] and the
//!   error makers ([`full`], [`unavailable`], ...) for [`FailingPeer`].
//!
//! Crates enable it for their own tests only:
//! `trove-peer = { workspace = true, features = ["testing"] }` under
//! `[dev-dependencies]`.

pub mod contract;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use trove_core::envelope;
use trove_core::keys::{MasterSecret, PublicIdentity};
use trove_core::seal::BlobKind;
use trove_core::{ContainerId, FragmentId};

use crate::admit::{self, Admission};
use crate::audit::{self, AuditRange};
use crate::folder::MetaStored;
use crate::peer::{DeletedMeta, MetaKey, Peer, PeerError, PeerStat};

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// One owner for a whole test process, whose identity signs [`signed`]
/// objects (a peer pins a container to its first signer, so tests that
/// share a peer must share a signer).
pub fn owner() -> &'static MasterSecret {
    static OWNER: OnceLock<MasterSecret> = OnceLock::new();
    OWNER.get_or_init(MasterSecret::generate)
}

/// A signed envelope of `key` by `by`, as a backup writes it. A peer never
/// sees inside, so the body's content does not matter.
pub fn signed_by(by: &MasterSecret, key: &MetaKey, revision: u64, body: &[u8]) -> Vec<u8> {
    let (kind, object) = match key {
        MetaKey::Container(c) => (BlobKind::ContainerManifest, c.0),
        MetaKey::Snapshot(_, s) => (BlobKind::SnapshotManifest, s.0),
        MetaKey::IndexSegment(_, g) => (BlobKind::IndexSegment, g.0),
    };
    envelope::seal_signed(
        &by.identity(),
        &by.manifest_key(),
        kind,
        &object,
        revision,
        body,
    )
}

/// [`signed_by`] the process's [`owner`].
pub fn signed(key: &MetaKey, revision: u64, body: &[u8]) -> Vec<u8> {
    signed_by(owner(), key, revision, body)
}

/// `len` deterministic bytes that differ by `seed`, and their fragment id.
pub fn fragment(seed: u8, len: usize) -> (FragmentId, Vec<u8>) {
    let bytes: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect();
    (FragmentId::of(&bytes), bytes)
}

/// How a [`FailingPeer`] makes its error, given the peer's label.
pub type MakeError = fn(&str) -> PeerError;

/// [`PeerError::Full`].
pub fn full(peer: &str) -> PeerError {
    PeerError::Full { peer: peer.into() }
}

/// [`PeerError::Unavailable`], as an unplugged disk or an offline node.
pub fn unavailable(peer: &str) -> PeerError {
    PeerError::Unavailable {
        peer: peer.into(),
        reason: "unplugged by the test".into(),
    }
}

/// [`PeerError::ReadOnly`].
pub fn read_only(peer: &str) -> PeerError {
    PeerError::ReadOnly { peer: peer.into() }
}

/// [`PeerError::Io`], as a failing disk.
pub fn io_error(peer: &str) -> PeerError {
    PeerError::Io {
        peer: peer.into(),
        op: "doing what the test made fail",
        source: std::io::Error::other("injected by the test"),
    }
}

/// [`PeerError::NotFound`], as a peer that lost what it was asked for.
pub fn not_found(peer: &str) -> PeerError {
    PeerError::NotFound {
        peer: peer.into(),
        what: "what the test asked for".into(),
    }
}

/// [`PeerError::HashMismatch`] for the all-zero id: what a peer answers
/// when the caller's bytes do not match their id (a local bug).
pub fn hash_mismatch(peer: &str) -> PeerError {
    PeerError::HashMismatch {
        peer: peer.into(),
        id: FragmentId([0; 32]),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding the lock must not hide its own
    // failure behind a poisoned lock in the next call.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn unix_ns(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

// ---------------------------------------------------------------------------
// MemoryPeer
// ---------------------------------------------------------------------------

/// A complete [`Peer`] in memory, with the promises of a folder peer:
/// fragments are refused unless they hash to their id; metadata is admitted
/// by [`admit::admit`], each container pinned to the signer of the objects
/// held for it; a replaced or deleted object, and a deleted fragment, stops
/// being listed or served at once and waits in a trash until
/// [`MemoryPeer::purge_expired`]. Durable by definition while it lives.
///
/// [`Peer::audit_fragment`] is the trait's default (proofs from the bytes
/// [`Peer::get_fragment`] returns).
#[derive(Debug)]
pub struct MemoryPeer {
    name: String,
    label: String,
    capacity: Option<u64>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    fragments: BTreeMap<FragmentId, Vec<u8>>,
    /// Deleted fragments: (when, id, bytes).
    trash: Vec<(SystemTime, FragmentId, Vec<u8>)>,
    meta: BTreeMap<MetaKey, Vec<u8>>,
    /// Replaced or deleted metadata: (when, key, bytes).
    meta_trash: Vec<(SystemTime, MetaKey, Vec<u8>)>,
}

impl State {
    /// Bytes counted against the capacity: fragments, trash included (as a
    /// node counts them against a quota).
    fn used(&self) -> u64 {
        let held: usize = self.fragments.values().map(Vec::len).sum();
        let trashed: usize = self.trash.iter().map(|(_, _, b)| b.len()).sum();
        (held + trashed) as u64
    }

    /// The signer the objects of `container` held here are pinned to: the
    /// container manifest's, else that of any snapshot or segment.
    fn container_signer(&self, container: &ContainerId) -> Option<PublicIdentity> {
        let manifest = MetaKey::Container(*container);
        let from_manifest = self
            .meta
            .get(&manifest)
            .and_then(|b| admit::valid_signer(&manifest, b));
        from_manifest.or_else(|| {
            self.meta
                .iter()
                .filter(|(k, _)| k.container() == container && **k != manifest)
                .find_map(|(k, b)| admit::valid_signer(k, b))
        })
    }
}

impl MemoryPeer {
    /// An empty peer without a size limit.
    pub fn new(name: &str) -> MemoryPeer {
        MemoryPeer {
            name: name.to_owned(),
            label: format!("{name} (memory)"),
            capacity: None,
            state: Mutex::new(State::default()),
        }
    }

    /// An empty peer that holds at most `bytes` of fragments (trash
    /// included) and refuses more with [`PeerError::Full`].
    pub fn with_capacity(name: &str, bytes: u64) -> MemoryPeer {
        MemoryPeer {
            capacity: Some(bytes),
            ..MemoryPeer::new(name)
        }
    }

    /// The name given to `new`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Store a metadata object if [`admit::admit`] admits it, pinned to
    /// `owner` when given (as a node pins its owner), else to the signer
    /// of the container's objects already held; as
    /// [`FolderPeer::put_meta_as`](crate::FolderPeer::put_meta_as).
    pub fn put_meta_as(
        &self,
        key: &MetaKey,
        bytes: &[u8],
        owner: Option<&PublicIdentity>,
    ) -> Result<MetaStored, PeerError> {
        let mut state = lock(&self.state);
        let pinned = match owner {
            Some(o) => Some(*o),
            None => state.container_signer(key.container()),
        };
        let held = state.meta.get(key).map(Vec::as_slice);
        match admit::admit(key, bytes, held, pinned.as_ref()) {
            Err(reason) => Err(PeerError::MetaRejected {
                peer: self.label.clone(),
                key: *key,
                reason: Box::new(reason),
            }),
            Ok(Admission::Unchanged) => Ok(MetaStored::Unchanged),
            Ok(Admission::Store { replaces }) => {
                let old = state.meta.insert(*key, bytes.to_vec());
                match old.filter(|_| replaces) {
                    Some(old) => {
                        state.meta_trash.push((SystemTime::now(), *key, old));
                        Ok(MetaStored::Replaced)
                    }
                    None => Ok(MetaStored::New),
                }
            }
        }
    }

    /// Free what was deleted or replaced at least `grace` before `now`;
    /// returns how many objects (fragments and metadata) were dropped.
    pub fn purge_expired(&self, grace: Duration, now: SystemTime) -> u64 {
        let expired = |at: &SystemTime| now.duration_since(*at).is_ok_and(|age| age >= grace);
        let mut state = lock(&self.state);
        let before = state.trash.len() + state.meta_trash.len();
        state.trash.retain(|(at, _, _)| !expired(at));
        state.meta_trash.retain(|(at, _, _)| !expired(at));
        (before - state.trash.len() - state.meta_trash.len()) as u64
    }

    /// Undo a delete: put the most recently deleted copy of `id` back.
    /// Returns whether there was one.
    pub fn restore_deleted(&self, id: &FragmentId) -> bool {
        let mut state = lock(&self.state);
        let newest = state
            .trash
            .iter()
            .enumerate()
            .filter(|(_, (_, tid, _))| tid == id)
            .max_by_key(|(_, (at, _, _))| *at)
            .map(|(i, _)| i);
        let Some(i) = newest else {
            return false;
        };
        let (_, id, bytes) = state.trash.remove(i);
        state.fragments.insert(id, bytes);
        true
    }

    /// Replace the stored bytes of a fragment behind the peer's back, as
    /// bit rot or a truncating disk would (inserting them if absent).
    pub fn damage_fragment(&self, id: &FragmentId, bytes: &[u8]) {
        lock(&self.state).fragments.insert(*id, bytes.to_vec());
    }

    /// Replace the stored bytes of a metadata object behind the peer's
    /// back, without admission (inserting them if absent).
    pub fn damage_meta(&self, key: &MetaKey, bytes: &[u8]) {
        lock(&self.state).meta.insert(*key, bytes.to_vec());
    }

    /// How many deleted fragments wait in the trash.
    pub fn trashed_fragments(&self) -> usize {
        lock(&self.state).trash.len()
    }

    fn not_found(&self, what: String) -> PeerError {
        PeerError::NotFound {
            peer: self.label.clone(),
            what,
        }
    }
}

impl Peer for MemoryPeer {
    fn describe(&self) -> String {
        self.label.clone()
    }

    fn put_fragment(&self, id: &FragmentId, bytes: &[u8]) -> Result<(), PeerError> {
        if FragmentId::of(bytes) != *id {
            return Err(PeerError::HashMismatch {
                peer: self.label.clone(),
                id: *id,
            });
        }
        let mut state = lock(&self.state);
        let held = state.fragments.get(id);
        if held.is_some_and(|b| FragmentId::of(b) == *id) {
            return Ok(());
        }
        // A damaged copy is replaced; its bytes no longer count.
        let freed = held.map_or(0, |b| b.len() as u64);
        if let Some(cap) = self.capacity {
            if state.used() - freed + bytes.len() as u64 > cap {
                return Err(PeerError::Full {
                    peer: self.label.clone(),
                });
            }
        }
        state.fragments.insert(*id, bytes.to_vec());
        Ok(())
    }

    fn get_fragment(&self, id: &FragmentId) -> Result<Vec<u8>, PeerError> {
        lock(&self.state)
            .fragments
            .get(id)
            .cloned()
            .ok_or_else(|| self.not_found(format!("fragment {}", id.short())))
    }

    fn get_fragment_range(
        &self,
        id: &FragmentId,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, PeerError> {
        let state = lock(&self.state);
        let bytes = state
            .fragments
            .get(id)
            .ok_or_else(|| self.not_found(format!("fragment {}", id.short())))?;
        let size = bytes.len() as u64;
        let start = offset.min(size);
        let end = offset.saturating_add(len).min(size);
        Ok(bytes[start as usize..end as usize].to_vec())
    }

    fn has_fragment(&self, id: &FragmentId) -> Result<bool, PeerError> {
        Ok(lock(&self.state).fragments.contains_key(id))
    }

    fn list_fragments(&self) -> Result<Vec<FragmentId>, PeerError> {
        Ok(lock(&self.state).fragments.keys().copied().collect())
    }

    fn delete_fragment(&self, id: &FragmentId) -> Result<(), PeerError> {
        let mut state = lock(&self.state);
        if let Some(bytes) = state.fragments.remove(id) {
            state.trash.push((SystemTime::now(), *id, bytes));
        }
        Ok(())
    }

    fn put_meta(&self, key: &MetaKey, bytes: &[u8]) -> Result<(), PeerError> {
        self.put_meta_as(key, bytes, None).map(|_| ())
    }

    fn delete_meta(&self, key: &MetaKey) -> Result<(), PeerError> {
        let mut state = lock(&self.state);
        if let Some(bytes) = state.meta.remove(key) {
            state.meta_trash.push((SystemTime::now(), *key, bytes));
        }
        Ok(())
    }

    fn list_deleted_meta(
        &self,
        container: Option<&ContainerId>,
    ) -> Result<Vec<DeletedMeta>, PeerError> {
        let mut out: Vec<DeletedMeta> = lock(&self.state)
            .meta_trash
            .iter()
            .filter(|(_, key, _)| container.is_none_or(|c| key.container() == c))
            .map(|(at, key, _)| DeletedMeta {
                key: *key,
                deleted_unix_ns: unix_ns(*at),
            })
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    fn get_deleted_meta(&self, key: &MetaKey) -> Result<Vec<u8>, PeerError> {
        lock(&self.state)
            .meta_trash
            .iter()
            .filter(|(_, k, _)| k == key)
            .max_by_key(|(at, _, _)| *at)
            .map(|(_, _, bytes)| bytes.clone())
            .ok_or_else(|| self.not_found(format!("a deleted copy of {key}")))
    }

    fn get_meta(&self, key: &MetaKey) -> Result<Vec<u8>, PeerError> {
        lock(&self.state)
            .meta
            .get(key)
            .cloned()
            .ok_or_else(|| self.not_found(key.to_string()))
    }

    fn list_meta(&self, container: Option<&ContainerId>) -> Result<Vec<MetaKey>, PeerError> {
        Ok(lock(&self.state)
            .meta
            .keys()
            .filter(|k| container.is_none_or(|c| k.container() == c))
            .copied()
            .collect())
    }

    fn stat(&self) -> Result<PeerStat, PeerError> {
        let state = lock(&self.state);
        Ok(PeerStat {
            fragments: state.fragments.len() as u64,
            fragment_bytes: state.fragments.values().map(|b| b.len() as u64).sum(),
            free_bytes: self.capacity.map(|c| c.saturating_sub(state.used())),
        })
    }
}

// ---------------------------------------------------------------------------
// FailingPeer
// ---------------------------------------------------------------------------

/// One operation of the [`Peer`] trait (every method but `describe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    PutFragment,
    GetFragment,
    GetFragmentRange,
    AuditFragment,
    HasFragment,
    ListFragments,
    DeleteFragment,
    PutMeta,
    DeleteMeta,
    ListDeletedMeta,
    GetDeletedMeta,
    GetMeta,
    ListMeta,
    Stat,
}

impl Op {
    /// Every operation.
    pub const ALL: [Op; 14] = [
        Op::PutFragment,
        Op::GetFragment,
        Op::GetFragmentRange,
        Op::AuditFragment,
        Op::HasFragment,
        Op::ListFragments,
        Op::DeleteFragment,
        Op::PutMeta,
        Op::DeleteMeta,
        Op::ListDeletedMeta,
        Op::GetDeletedMeta,
        Op::GetMeta,
        Op::ListMeta,
        Op::Stat,
    ];
    /// The operations that read fragments.
    pub const FRAGMENT_READS: [Op; 3] = [Op::GetFragment, Op::GetFragmentRange, Op::AuditFragment];
}

/// When an operation of a [`FailingPeer`] fails.
#[derive(Debug, Clone, Copy)]
struct Rule {
    /// Attempts that still succeed before the failures start.
    after: u64,
    make: MakeError,
}

/// Wraps a peer so that chosen operations fail with a chosen error (from
/// the start, or after some successful attempts), and counts the attempts
/// of every operation, failed or not. Operations not chosen go to the
/// inner peer. Rules can change while the peer is in use (a disk
/// unplugged in the middle of a backup).
#[derive(Debug)]
pub struct FailingPeer {
    inner: Arc<dyn Peer>,
    rules: Mutex<BTreeMap<Op, Rule>>,
    attempts: [AtomicU64; Op::ALL.len()],
}

impl FailingPeer {
    /// A wrapper that fails nothing until told to.
    pub fn new(inner: Arc<dyn Peer>) -> FailingPeer {
        FailingPeer {
            inner,
            rules: Mutex::new(BTreeMap::new()),
            attempts: Default::default(),
        }
    }

    /// Builder: every attempt of `op` fails with `make(label)`.
    pub fn failing(self, op: Op, make: MakeError) -> FailingPeer {
        self.fail(op, make);
        self
    }

    /// Builder: every attempt of each of `ops` fails with `make(label)`.
    pub fn failing_all(self, ops: &[Op], make: MakeError) -> FailingPeer {
        for op in ops {
            self.fail(*op, make);
        }
        self
    }

    /// From now on, every attempt of `op` fails with `make(label)`.
    pub fn fail(&self, op: Op, make: MakeError) {
        self.fail_after(op, 0, make);
    }

    /// From now on, the next `successes` attempts of `op` go through and
    /// every later one fails with `make(label)`.
    pub fn fail_after(&self, op: Op, successes: u64, make: MakeError) {
        lock(&self.rules).insert(
            op,
            Rule {
                after: successes,
                make,
            },
        );
    }

    /// `op` goes through again.
    pub fn heal(&self, op: Op) {
        lock(&self.rules).remove(&op);
    }

    /// Every operation goes through again.
    pub fn heal_all(&self) {
        lock(&self.rules).clear();
    }

    /// How many times `op` was attempted, whether it failed or not.
    pub fn attempts(&self, op: Op) -> u64 {
        self.attempts[op as usize].load(Ordering::SeqCst)
    }

    /// The wrapped peer.
    pub fn inner(&self) -> &Arc<dyn Peer> {
        &self.inner
    }

    /// Count an attempt of `op`; `Err` if it is to fail.
    fn attempt(&self, op: Op) -> Result<(), PeerError> {
        self.attempts[op as usize].fetch_add(1, Ordering::SeqCst);
        let mut rules = lock(&self.rules);
        let Some(rule) = rules.get_mut(&op) else {
            return Ok(());
        };
        if rule.after > 0 {
            rule.after -= 1;
            return Ok(());
        }
        Err((rule.make)(&self.inner.describe()))
    }
}

impl Peer for FailingPeer {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn put_fragment(&self, id: &FragmentId, bytes: &[u8]) -> Result<(), PeerError> {
        self.attempt(Op::PutFragment)?;
        self.inner.put_fragment(id, bytes)
    }
    fn get_fragment(&self, id: &FragmentId) -> Result<Vec<u8>, PeerError> {
        self.attempt(Op::GetFragment)?;
        self.inner.get_fragment(id)
    }
    fn get_fragment_range(
        &self,
        id: &FragmentId,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, PeerError> {
        self.attempt(Op::GetFragmentRange)?;
        self.inner.get_fragment_range(id, offset, len)
    }
    fn audit_fragment(
        &self,
        id: &FragmentId,
        ranges: &[AuditRange],
    ) -> Result<Vec<Vec<u8>>, PeerError> {
        self.attempt(Op::AuditFragment)?;
        self.inner.audit_fragment(id, ranges)
    }
    fn has_fragment(&self, id: &FragmentId) -> Result<bool, PeerError> {
        self.attempt(Op::HasFragment)?;
        self.inner.has_fragment(id)
    }
    fn list_fragments(&self) -> Result<Vec<FragmentId>, PeerError> {
        self.attempt(Op::ListFragments)?;
        self.inner.list_fragments()
    }
    fn delete_fragment(&self, id: &FragmentId) -> Result<(), PeerError> {
        self.attempt(Op::DeleteFragment)?;
        self.inner.delete_fragment(id)
    }
    fn put_meta(&self, key: &MetaKey, bytes: &[u8]) -> Result<(), PeerError> {
        self.attempt(Op::PutMeta)?;
        self.inner.put_meta(key, bytes)
    }
    fn delete_meta(&self, key: &MetaKey) -> Result<(), PeerError> {
        self.attempt(Op::DeleteMeta)?;
        self.inner.delete_meta(key)
    }
    fn list_deleted_meta(
        &self,
        container: Option<&ContainerId>,
    ) -> Result<Vec<DeletedMeta>, PeerError> {
        self.attempt(Op::ListDeletedMeta)?;
        self.inner.list_deleted_meta(container)
    }
    fn get_deleted_meta(&self, key: &MetaKey) -> Result<Vec<u8>, PeerError> {
        self.attempt(Op::GetDeletedMeta)?;
        self.inner.get_deleted_meta(key)
    }
    fn get_meta(&self, key: &MetaKey) -> Result<Vec<u8>, PeerError> {
        self.attempt(Op::GetMeta)?;
        self.inner.get_meta(key)
    }
    fn list_meta(&self, container: Option<&ContainerId>) -> Result<Vec<MetaKey>, PeerError> {
        self.attempt(Op::ListMeta)?;
        self.inner.list_meta(container)
    }
    fn stat(&self) -> Result<PeerStat, PeerError> {
        self.attempt(Op::Stat)?;
        self.inner.stat()
    }
}

// ---------------------------------------------------------------------------
// LyingPeer
// ---------------------------------------------------------------------------

/// Wraps a peer to lie: it may claim to hold every fragment
/// ([`LyingPeer::claiming_everything`]) and may serve damaged bytes
/// ([`LyingPeer::corrupting_reads`]: the last byte of whatever a fragment
/// read returns is flipped, so lengths and headers still look right).
/// Audits of a corrupting liar are proven from the damaged bytes. Writes
/// and metadata go to the inner peer unchanged.
#[derive(Debug)]
pub struct LyingPeer {
    inner: Arc<dyn Peer>,
    claims_everything: bool,
    corrupts_reads: bool,
    lies: AtomicU64,
}

impl LyingPeer {
    /// A wrapper that does not lie yet (see the builders).
    pub fn new(inner: Arc<dyn Peer>) -> LyingPeer {
        LyingPeer {
            inner,
            claims_everything: false,
            corrupts_reads: false,
            lies: AtomicU64::new(0),
        }
    }

    /// Builder: `has_fragment` answers `true` for every id.
    pub fn claiming_everything(mut self) -> LyingPeer {
        self.claims_everything = true;
        self
    }

    /// Builder: fragment reads (whole, ranges and audits) come back damaged.
    pub fn corrupting_reads(mut self) -> LyingPeer {
        self.corrupts_reads = true;
        self
    }

    /// How many answers were lies (a `has_fragment` that should have been
    /// `false`, a read that was damaged).
    pub fn lies_told(&self) -> u64 {
        self.lies.load(Ordering::SeqCst)
    }

    fn corrupt(&self, mut bytes: Vec<u8>) -> Vec<u8> {
        if self.corrupts_reads {
            if let Some(last) = bytes.last_mut() {
                *last ^= 0x01;
                self.lies.fetch_add(1, Ordering::SeqCst);
            }
        }
        bytes
    }
}

impl Peer for LyingPeer {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn put_fragment(&self, id: &FragmentId, bytes: &[u8]) -> Result<(), PeerError> {
        self.inner.put_fragment(id, bytes)
    }
    fn get_fragment(&self, id: &FragmentId) -> Result<Vec<u8>, PeerError> {
        self.inner.get_fragment(id).map(|b| self.corrupt(b))
    }
    fn get_fragment_range(
        &self,
        id: &FragmentId,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, PeerError> {
        self.inner
            .get_fragment_range(id, offset, len)
            .map(|b| self.corrupt(b))
    }
    fn audit_fragment(
        &self,
        id: &FragmentId,
        ranges: &[AuditRange],
    ) -> Result<Vec<Vec<u8>>, PeerError> {
        if !self.corrupts_reads {
            return self.inner.audit_fragment(id, ranges);
        }
        let bytes = self.get_fragment(id)?;
        audit::prove(std::io::Cursor::new(bytes), ranges).map_err(|source| PeerError::Io {
            peer: self.describe(),
            op: "proving fragment ranges",
            source,
        })
    }
    fn has_fragment(&self, id: &FragmentId) -> Result<bool, PeerError> {
        let has = self.inner.has_fragment(id)?;
        if self.claims_everything && !has {
            self.lies.fetch_add(1, Ordering::SeqCst);
            return Ok(true);
        }
        Ok(has)
    }
    fn list_fragments(&self) -> Result<Vec<FragmentId>, PeerError> {
        self.inner.list_fragments()
    }
    fn delete_fragment(&self, id: &FragmentId) -> Result<(), PeerError> {
        self.inner.delete_fragment(id)
    }
    fn put_meta(&self, key: &MetaKey, bytes: &[u8]) -> Result<(), PeerError> {
        self.inner.put_meta(key, bytes)
    }
    fn delete_meta(&self, key: &MetaKey) -> Result<(), PeerError> {
        self.inner.delete_meta(key)
    }
    fn list_deleted_meta(
        &self,
        container: Option<&ContainerId>,
    ) -> Result<Vec<DeletedMeta>, PeerError> {
        self.inner.list_deleted_meta(container)
    }
    fn get_deleted_meta(&self, key: &MetaKey) -> Result<Vec<u8>, PeerError> {
        self.inner.get_deleted_meta(key)
    }
    fn get_meta(&self, key: &MetaKey) -> Result<Vec<u8>, PeerError> {
        self.inner.get_meta(key)
    }
    fn list_meta(&self, container: Option<&ContainerId>) -> Result<Vec<MetaKey>, PeerError> {
        self.inner.list_meta(container)
    }
    fn stat(&self) -> Result<PeerStat, PeerError> {
        self.inner.stat()
    }
}

// ---------------------------------------------------------------------------
// SlowPeer
// ---------------------------------------------------------------------------

/// Wraps a peer so that every call sleeps `delay` first (a slow disk, a
/// far-away node), then goes to the inner peer.
#[derive(Debug)]
pub struct SlowPeer {
    inner: Arc<dyn Peer>,
    delay: Duration,
    calls: AtomicU64,
}

impl SlowPeer {
    /// A wrapper that sleeps `delay` before each call.
    pub fn new(inner: Arc<dyn Peer>, delay: Duration) -> SlowPeer {
        SlowPeer {
            inner,
            delay,
            calls: AtomicU64::new(0),
        }
    }

    /// How many calls were made (`describe` aside).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    fn wait(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(self.delay);
    }
}

impl Peer for SlowPeer {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn put_fragment(&self, id: &FragmentId, bytes: &[u8]) -> Result<(), PeerError> {
        self.wait();
        self.inner.put_fragment(id, bytes)
    }
    fn get_fragment(&self, id: &FragmentId) -> Result<Vec<u8>, PeerError> {
        self.wait();
        self.inner.get_fragment(id)
    }
    fn get_fragment_range(
        &self,
        id: &FragmentId,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, PeerError> {
        self.wait();
        self.inner.get_fragment_range(id, offset, len)
    }
    fn audit_fragment(
        &self,
        id: &FragmentId,
        ranges: &[AuditRange],
    ) -> Result<Vec<Vec<u8>>, PeerError> {
        self.wait();
        self.inner.audit_fragment(id, ranges)
    }
    fn has_fragment(&self, id: &FragmentId) -> Result<bool, PeerError> {
        self.wait();
        self.inner.has_fragment(id)
    }
    fn list_fragments(&self) -> Result<Vec<FragmentId>, PeerError> {
        self.wait();
        self.inner.list_fragments()
    }
    fn delete_fragment(&self, id: &FragmentId) -> Result<(), PeerError> {
        self.wait();
        self.inner.delete_fragment(id)
    }
    fn put_meta(&self, key: &MetaKey, bytes: &[u8]) -> Result<(), PeerError> {
        self.wait();
        self.inner.put_meta(key, bytes)
    }
    fn delete_meta(&self, key: &MetaKey) -> Result<(), PeerError> {
        self.wait();
        self.inner.delete_meta(key)
    }
    fn list_deleted_meta(
        &self,
        container: Option<&ContainerId>,
    ) -> Result<Vec<DeletedMeta>, PeerError> {
        self.wait();
        self.inner.list_deleted_meta(container)
    }
    fn get_deleted_meta(&self, key: &MetaKey) -> Result<Vec<u8>, PeerError> {
        self.wait();
        self.inner.get_deleted_meta(key)
    }
    fn get_meta(&self, key: &MetaKey) -> Result<Vec<u8>, PeerError> {
        self.wait();
        self.inner.get_meta(key)
    }
    fn list_meta(&self, container: Option<&ContainerId>) -> Result<Vec<MetaKey>, PeerError> {
        self.wait();
        self.inner.list_meta(container)
    }
    fn stat(&self) -> Result<PeerStat, PeerError> {
        self.wait();
        self.inner.stat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FolderPeer;
    use std::time::Instant;
    use trove_core::SnapshotId;

    // The peer contract, against a MemoryPeer (tests/folder.rs runs it
    // against a FolderPeer).

    #[test]
    fn memory_put_get_has_list_range() {
        let peer = MemoryPeer::new("m");
        contract::put_get_has_list_range(&peer);
        assert_eq!(peer.stat().unwrap().free_bytes, None);
    }

    #[test]
    fn memory_wrong_hash_is_refused_and_nothing_stored() {
        contract::wrong_hash_is_refused_and_nothing_stored(&MemoryPeer::new("m"));
    }

    #[test]
    fn memory_put_replaces_a_damaged_copy() {
        let peer = MemoryPeer::new("m");
        contract::put_replaces_a_damaged_copy(&peer, &|id, b| peer.damage_fragment(id, b));
    }

    #[test]
    fn memory_truncated_fragment_is_returned_as_is() {
        let peer = MemoryPeer::new("m");
        contract::truncated_fragment_is_returned_as_is(&peer, &|id, b| peer.damage_fragment(id, b));
    }

    #[test]
    fn memory_delete_moves_to_trash_and_purge_respects_grace() {
        let peer = MemoryPeer::new("m");
        let contract::DeletedFragment {
            deleted: (a, a_bytes),
            kept: (b, b_bytes),
        } = contract::deleted_fragment_is_gone_at_once(&peer);
        assert_eq!(peer.trashed_fragments(), 1);

        let grace = Duration::from_secs(7 * 24 * 3600);
        let now = SystemTime::now();
        assert_eq!(peer.purge_expired(grace, now), 0);
        assert_eq!(peer.trashed_fragments(), 1);
        // Still recoverable within the grace period.
        assert!(peer.restore_deleted(&a));
        assert_eq!(peer.get_fragment(&a).unwrap(), a_bytes);
        assert!(!peer.restore_deleted(&a));

        peer.delete_fragment(&a).unwrap();
        assert_eq!(
            peer.purge_expired(grace, now + grace + Duration::from_secs(1)),
            1
        );
        assert_eq!(peer.trashed_fragments(), 0);
        assert!(!peer.restore_deleted(&a));
        assert_eq!(peer.get_fragment(&b).unwrap(), b_bytes);
    }

    #[test]
    fn memory_meta_put_get_list_per_container() {
        contract::meta_put_get_list_per_container(&MemoryPeer::new("m"));
    }

    #[test]
    fn memory_stolen_key_cannot_overwrite_or_roll_back_metadata() {
        contract::stolen_key_cannot_overwrite_or_roll_back_metadata(&MemoryPeer::new("m"));
    }

    #[test]
    fn memory_deleted_and_replaced_metadata_stays_in_the_trash_for_the_grace_period() {
        let peer = MemoryPeer::new("m");
        contract::deleted_and_replaced_metadata_is_in_the_trash(&peer);
        let now = SystemTime::now();
        assert_eq!(peer.purge_expired(Duration::from_secs(3600), now), 0);
        assert_eq!(peer.list_deleted_meta(None).unwrap().len(), 2);
        assert_eq!(
            peer.purge_expired(Duration::from_secs(3600), now + Duration::from_secs(7200)),
            2
        );
        assert!(peer.list_deleted_meta(None).unwrap().is_empty());
    }

    #[test]
    fn memory_a_damaged_copy_is_replaced() {
        let peer = MemoryPeer::new("m");
        contract::a_damaged_meta_copy_is_replaced(&peer, &|k, b| peer.damage_meta(k, b));
    }

    // MemoryPeer beyond the contract.

    #[test]
    fn memory_peer_pins_each_container_to_its_own_signer() {
        let peer = MemoryPeer::new("m");
        let (alice, bob) = (MasterSecret::generate(), MasterSecret::generate());
        let (c1, c2) = (ContainerId::random(), ContainerId::random());
        let s1 = MetaKey::Snapshot(c1, SnapshotId::random());
        let s2 = MetaKey::Snapshot(c2, SnapshotId::random());
        // Pinned by a snapshot alone (no manifest held yet).
        peer.put_meta(&s1, &signed_by(&alice, &s1, 0, b"a"))
            .unwrap();
        peer.put_meta(&s2, &signed_by(&bob, &s2, 0, b"b")).unwrap();
        let m1 = MetaKey::Container(c1);
        let err = peer
            .put_meta(&m1, &signed_by(&bob, &m1, 1, b"bob's"))
            .unwrap_err();
        assert!(
            matches!(&err, PeerError::MetaRejected { reason, .. }
                if matches!(**reason, crate::MetaRejection::WrongSigner { .. })),
            "{err}"
        );
        assert!(err.to_string().contains("m (memory)"), "{err}");
        peer.put_meta(&m1, &signed_by(&alice, &m1, 1, b"alice's"))
            .unwrap();
        // A caller-given pin (a node's owner) wins over what is held.
        let m2 = MetaKey::Container(c2);
        let alice_pin = alice.identity().public();
        assert!(peer
            .put_meta_as(&m2, &signed_by(&bob, &m2, 1, b"x"), Some(&alice_pin))
            .is_err());
        assert_eq!(
            peer.put_meta_as(&m2, &signed_by(&bob, &m2, 1, b"x"), None)
                .unwrap(),
            MetaStored::New
        );
        let again = peer.get_meta(&m2).unwrap();
        assert_eq!(
            peer.put_meta_as(&m2, &again, None).unwrap(),
            MetaStored::Unchanged
        );
        assert_eq!(
            peer.put_meta_as(&m2, &signed_by(&bob, &m2, 2, b"y"), None)
                .unwrap(),
            MetaStored::Replaced
        );
    }

    #[test]
    fn memory_peer_with_capacity_is_full_and_counts_its_trash() {
        let peer = MemoryPeer::with_capacity("small", 250);
        let (a, a_bytes) = fragment(1, 100);
        let (b, b_bytes) = fragment(2, 100);
        let (c, c_bytes) = fragment(3, 100);
        peer.put_fragment(&a, &a_bytes).unwrap();
        peer.put_fragment(&b, &b_bytes).unwrap();
        assert_eq!(peer.stat().unwrap().free_bytes, Some(50));
        let err = peer.put_fragment(&c, &c_bytes).unwrap_err();
        assert!(matches!(err, PeerError::Full { .. }), "{err}");
        assert!(err.is_retryable_elsewhere());
        // A deleted fragment still takes room until it is purged.
        peer.delete_fragment(&a).unwrap();
        assert!(matches!(
            peer.put_fragment(&c, &c_bytes),
            Err(PeerError::Full { .. })
        ));
        assert_eq!(
            peer.purge_expired(Duration::ZERO, SystemTime::now() + Duration::from_secs(1)),
            1
        );
        peer.put_fragment(&c, &c_bytes).unwrap();
        // Replacing a damaged copy frees the damaged bytes first.
        peer.damage_fragment(&c, &[0; 100]);
        peer.put_fragment(&c, &c_bytes).unwrap();
        assert_eq!(peer.stat().unwrap().fragment_bytes, 200);
    }

    #[test]
    fn memory_peer_default_audit_proves_what_it_holds() {
        let peer = MemoryPeer::new("m");
        let (a, bytes) = fragment(9, 5_000);
        peer.put_fragment(&a, &bytes).unwrap();
        let r = AuditRange {
            offset: 1_024,
            len: 1_024,
        };
        let proofs = peer.audit_fragment(&a, &[r]).unwrap();
        assert_eq!(
            audit::verify(&a, r, &proofs[0]).unwrap(),
            &bytes[1_024..2_048]
        );
    }

    // The wrappers, over a MemoryPeer and over a FolderPeer.

    fn memory_with(n: u8) -> (Arc<dyn Peer>, Vec<FragmentId>) {
        let peer = MemoryPeer::new("inner");
        let ids = (0..n)
            .map(|i| {
                let (id, bytes) = fragment(i, 1_000);
                peer.put_fragment(&id, &bytes).unwrap();
                id
            })
            .collect();
        (Arc::new(peer), ids)
    }

    #[test]
    fn failing_peer_fails_the_chosen_operations_and_counts_attempts() {
        let (inner, ids) = memory_with(2);
        let peer = FailingPeer::new(inner.clone())
            .failing(Op::PutFragment, full)
            .failing_all(&Op::FRAGMENT_READS, unavailable);
        let (c, c_bytes) = fragment(7, 10);
        for _ in 0..3 {
            let err = peer.put_fragment(&c, &c_bytes).unwrap_err();
            assert!(matches!(err, PeerError::Full { ref peer } if peer == "inner (memory)"));
        }
        assert_eq!(peer.attempts(Op::PutFragment), 3);
        assert!(!inner.has_fragment(&c).unwrap(), "nothing reached the peer");
        assert!(matches!(
            peer.get_fragment(&ids[0]),
            Err(PeerError::Unavailable { .. })
        ));
        assert!(matches!(
            peer.get_fragment_range(&ids[0], 0, 1),
            Err(PeerError::Unavailable { .. })
        ));
        assert!(matches!(
            peer.audit_fragment(&ids[0], &[AuditRange { offset: 0, len: 1 }]),
            Err(PeerError::Unavailable { .. })
        ));
        // Operations not chosen go through, and are counted too.
        assert!(peer.has_fragment(&ids[1]).unwrap());
        assert_eq!(peer.list_fragments().unwrap().len(), 2);
        assert_eq!(peer.attempts(Op::HasFragment), 1);
        assert_eq!(peer.attempts(Op::Stat), 0);
        assert_eq!(peer.describe(), "inner (memory)");

        // Healed at run time.
        peer.heal(Op::PutFragment);
        peer.put_fragment(&c, &c_bytes).unwrap();
        assert!(inner.has_fragment(&c).unwrap());
        peer.heal_all();
        assert_eq!(peer.get_fragment(&c).unwrap(), c_bytes);
        assert_eq!(peer.attempts(Op::PutFragment), 4);
    }

    #[test]
    fn failing_peer_can_fail_after_some_successes() {
        let dir = tempfile::tempdir().unwrap();
        let folder = FolderPeer::create("disk", &dir.path().join("p")).unwrap();
        let peer = FailingPeer::new(Arc::new(folder));
        // The disk goes away after two fragments, as in mid-backup.
        peer.fail_after(Op::PutFragment, 2, unavailable);
        let results: Vec<bool> = (0..4)
            .map(|i| {
                let (id, bytes) = fragment(i, 100);
                peer.put_fragment(&id, &bytes).is_ok()
            })
            .collect();
        assert_eq!(results, [true, true, false, false]);
        assert_eq!(peer.inner().list_fragments().unwrap().len(), 2);
        assert_eq!(peer.attempts(Op::PutFragment), 4);
        for (op, make) in [
            (Op::Stat, read_only as MakeError),
            (Op::ListMeta, io_error),
            (Op::GetMeta, not_found),
            (Op::PutMeta, hash_mismatch),
        ] {
            peer.fail(op, make);
        }
        assert!(matches!(peer.stat(), Err(PeerError::ReadOnly { .. })));
        assert!(matches!(peer.list_meta(None), Err(PeerError::Io { .. })));
        let key = MetaKey::Container(ContainerId::random());
        assert!(peer.get_meta(&key).unwrap_err().is_not_found());
        assert!(matches!(
            peer.put_meta(&key, &signed(&key, 1, b"m")),
            Err(PeerError::HashMismatch { .. })
        ));
        // The error names the peer as the inner peer describes itself.
        assert!(peer
            .stat()
            .unwrap_err()
            .to_string()
            .contains(&peer.describe()));
    }

    #[test]
    fn lying_peer_claims_everything_and_damages_reads() {
        let (inner, ids) = memory_with(1);
        let honest = LyingPeer::new(inner.clone());
        let absent = FragmentId::of(b"never stored");
        assert!(!honest.has_fragment(&absent).unwrap());
        assert_eq!(
            FragmentId::of(&honest.get_fragment(&ids[0]).unwrap()),
            ids[0]
        );
        assert_eq!(honest.lies_told(), 0);

        let liar = LyingPeer::new(inner.clone())
            .claiming_everything()
            .corrupting_reads();
        assert!(liar.has_fragment(&absent).unwrap());
        assert!(liar.has_fragment(&ids[0]).unwrap());
        assert_eq!(liar.lies_told(), 1, "only the absent fragment is a lie");
        // Claims are not bytes: a read of what it does not hold fails.
        assert!(liar.get_fragment(&absent).unwrap_err().is_not_found());

        let got = liar.get_fragment(&ids[0]).unwrap();
        let (_, want) = fragment(0, 1_000);
        assert_eq!(got.len(), want.len());
        assert_ne!(got, want);
        assert_ne!(FragmentId::of(&got), ids[0], "the caller detects it");
        assert_ne!(
            liar.get_fragment_range(&ids[0], 10, 20).unwrap(),
            &want[10..30]
        );
        // Its audit proofs do not verify against the fragment id.
        let r = AuditRange {
            offset: 0,
            len: 1_000,
        };
        let proofs = liar.audit_fragment(&ids[0], &[r]).unwrap();
        assert!(audit::verify(&ids[0], r, &proofs[0]).is_err());
        // The honest audit of the same fragment verifies.
        let proofs = honest.audit_fragment(&ids[0], &[r]).unwrap();
        assert_eq!(audit::verify(&ids[0], r, &proofs[0]).unwrap(), want);
        // Nothing it held was changed.
        assert_eq!(inner.get_fragment(&ids[0]).unwrap(), want);
    }

    #[test]
    fn slow_peer_sleeps_before_each_call() {
        let (inner, ids) = memory_with(1);
        let delay = Duration::from_millis(30);
        let peer = SlowPeer::new(inner, delay);
        let start = Instant::now();
        assert!(peer.has_fragment(&ids[0]).unwrap());
        peer.get_fragment(&ids[0]).unwrap();
        peer.stat().unwrap();
        assert!(start.elapsed() >= delay * 3, "{:?}", start.elapsed());
        assert_eq!(peer.calls(), 3);
        assert_eq!(peer.describe(), "inner (memory)");
    }

    #[test]
    fn wrappers_keep_the_peer_contract_when_they_do_not_interfere() {
        let wrapped = |which: usize| -> Box<dyn Peer> {
            let p: Arc<dyn Peer> = Arc::new(MemoryPeer::new("m"));
            match which {
                0 => Box::new(FailingPeer::new(p)),
                1 => Box::new(LyingPeer::new(p)),
                _ => Box::new(SlowPeer::new(p, Duration::ZERO)),
            }
        };
        for which in 0..3 {
            contract::put_get_has_list_range(&*wrapped(which));
            contract::meta_put_get_list_per_container(&*wrapped(which));
            contract::stolen_key_cannot_overwrite_or_roll_back_metadata(&*wrapped(which));
        }
    }
}
