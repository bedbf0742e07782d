//! [`MemoryPeer`]: a complete peer in memory.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use trove_core::handover::HandOver;
use trove_core::keys::PublicIdentity;
use trove_core::{ContainerId, FragmentId};

use super::{lock, unix_ns};
use crate::admit::{self, Admission};
use crate::folder::MetaStored;
use crate::peer::{DeletedMeta, MetaKey, Peer, PeerError, PeerStat};

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
    /// Hand-over certificates, by the identity that made them.
    handovers: BTreeMap<[u8; 32], Vec<u8>>,
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
        let others = || -> Result<Vec<MetaKey>, std::convert::Infallible> {
            Ok(self
                .meta
                .keys()
                .filter(|k| k.container() == container)
                .copied()
                .collect())
        };
        let held = admit::held_signer(
            container,
            others,
            |k| self.meta.get(k).cloned(),
            |old| self.handovers.get(&old.0).cloned(),
        );
        match held {
            Ok(s) => s,
            Err(never) => match never {},
        }
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
        PeerError::check_fragment(&self.label, id, bytes)?;
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

    fn undelete_fragment(&self, id: &FragmentId) -> Result<bool, PeerError> {
        Ok(self.restore_deleted(id))
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

    fn purge_trash(&self, grace: Duration, now: SystemTime) -> Result<Option<u64>, PeerError> {
        Ok(Some(self.purge_expired(grace, now)))
    }

    fn stat(&self) -> Result<PeerStat, PeerError> {
        let state = lock(&self.state);
        Ok(PeerStat {
            fragments: state.fragments.len() as u64,
            fragment_bytes: state.fragments.values().map(|b| b.len() as u64).sum(),
            free_bytes: self.capacity.map(|c| c.saturating_sub(state.used())),
        })
    }

    fn hand_over(&self, cert: &HandOver) -> Result<(), PeerError> {
        let mut state = lock(&self.state);
        let held = state.handovers.get(&cert.old_identity.0);
        if admit::admit_handover(&self.label, cert, held.map(Vec::as_slice))? {
            state.handovers.insert(cert.old_identity.0, cert.encode());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{self, AuditRange};
    use crate::testing::{contract, fragment, signed_by};
    use trove_core::keys::MasterSecret;
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
    fn memory_a_hand_over_lets_the_new_identity_replace_the_old() {
        contract::a_hand_over_lets_the_new_identity_replace_the_old(&MemoryPeer::new("m"));
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
}
