//! Wrappers over any `Arc<dyn Peer>` that make it fail ([`FailingPeer`]),
//! lie ([`LyingPeer`]) or dawdle ([`SlowPeer`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use trove_core::handover::HandOver;
use trove_core::{ContainerId, FragmentId};

use super::{lock, MakeError};
use crate::audit::{self, AuditRange};
use crate::peer::{DeletedMeta, MetaKey, Peer, PeerError, PeerStat};

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
    UndeleteFragment,
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
    pub const ALL: [Op; 15] = [
        Op::PutFragment,
        Op::GetFragment,
        Op::GetFragmentRange,
        Op::AuditFragment,
        Op::HasFragment,
        Op::ListFragments,
        Op::DeleteFragment,
        Op::UndeleteFragment,
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
    fn undelete_fragment(&self, id: &FragmentId) -> Result<bool, PeerError> {
        self.attempt(Op::UndeleteFragment)?;
        self.inner.undelete_fragment(id)
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
    fn hand_over(&self, cert: &HandOver) -> Result<(), PeerError> {
        // A certificate is written where metadata is.
        self.attempt(Op::PutMeta)?;
        self.inner.hand_over(cert)
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
    fn undelete_fragment(&self, id: &FragmentId) -> Result<bool, PeerError> {
        self.inner.undelete_fragment(id)
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
    fn hand_over(&self, cert: &HandOver) -> Result<(), PeerError> {
        self.inner.hand_over(cert)
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
    fn undelete_fragment(&self, id: &FragmentId) -> Result<bool, PeerError> {
        self.wait();
        self.inner.undelete_fragment(id)
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
    fn hand_over(&self, cert: &HandOver) -> Result<(), PeerError> {
        self.wait();
        self.inner.hand_over(cert)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{
        contract, fragment, full, hash_mismatch, io_error, not_found, read_only, signed,
        unavailable, MemoryPeer,
    };
    use crate::FolderPeer;
    use std::time::Instant;

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
