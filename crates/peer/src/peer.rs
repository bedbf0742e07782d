//! The [`Peer`] trait: the handful of blocking operations every kind of peer
//! (folder, node, later object stores) offers, and the errors they return.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use trove_core::handover::HandOver;
use trove_core::{ContainerId, FragmentId, SegmentId, SnapshotId};

use crate::admit::MetaRejection;
use crate::audit::{self, AuditRange};

/// A place that stores a container's fragments and its replicated metadata.
///
/// Blocking and object-safe so callers can hold `Arc<dyn Peer>`; peers that
/// talk over the network wrap their own async runtime. A peer only ever sees
/// ids and bytes that the caller has already encrypted (invariant 1,
/// docs/design.md §Invariants).
pub trait Peer: Send + Sync + fmt::Debug {
    /// Human label for messages, e.g. "usb-1 (dir:/mnt/usb/trove)".
    fn describe(&self) -> String;

    /// Store a fragment durably: when this returns `Ok` the bytes are on
    /// stable storage (file and directory entry). Idempotent: putting an id
    /// the peer already holds intact is `Ok`. Refuses bytes that do not hash
    /// to `id` with [`PeerError::HashMismatch`].
    fn put_fragment(&self, id: &FragmentId, bytes: &[u8]) -> Result<(), PeerError>;

    /// [`Peer::put_fragment`] of the fragment made of `parts` end to end.
    /// A backup stores data fragments this way, straight from the pack's
    /// bytes; a peer that cannot write parts as they are joins them.
    fn put_fragment_parts(&self, id: &FragmentId, parts: &[&[u8]]) -> Result<(), PeerError> {
        self.put_fragment(id, &parts.concat())
    }

    /// The stored bytes of a fragment, unverified: the caller checks them
    /// against `id` (a lying peer is the caller's concern). An absent
    /// fragment is [`PeerError::NotFound`].
    fn get_fragment(&self, id: &FragmentId) -> Result<Vec<u8>, PeerError>;

    /// [`Peer::get_fragment`] into `buf` (its contents replaced), so that a
    /// caller reading many fragments can reuse its buffers. Default: a new
    /// buffer from `get_fragment`.
    fn get_fragment_into(&self, id: &FragmentId, buf: &mut Vec<u8>) -> Result<(), PeerError> {
        *buf = self.get_fragment(id)?;
        Ok(())
    }

    /// Up to `len` bytes of a fragment starting at `offset`, unverified. A
    /// range past the end of the stored bytes comes back short (possibly
    /// empty) rather than as an error, so the caller sees what the peer has.
    fn get_fragment_range(
        &self,
        id: &FragmentId,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, PeerError>;

    /// Bao proofs for byte ranges of a fragment (see [`crate::audit`]): the
    /// owner checks them against the fragment id alone. Default: read the
    /// fragment and prove from memory.
    fn audit_fragment(
        &self,
        id: &FragmentId,
        ranges: &[AuditRange],
    ) -> Result<Vec<Vec<u8>>, PeerError> {
        let bytes = self.get_fragment(id)?;
        audit::prove(std::io::Cursor::new(bytes), ranges).map_err(|source| PeerError::Io {
            peer: self.describe(),
            op: "proving fragment ranges",
            source,
        })
    }

    /// Whether the peer holds a fragment (without reading it).
    fn has_fragment(&self, id: &FragmentId) -> Result<bool, PeerError>;

    /// Every fragment the peer holds (not those awaiting deletion), sorted.
    fn list_fragments(&self) -> Result<Vec<FragmentId>, PeerError>;

    /// Delayed deletion (invariant 7, docs/design.md §Invariants): the
    /// fragment stops being listed or served at once, but the peer keeps it
    /// for a grace period chosen by the peer's owner before freeing the
    /// space. Deleting an absent fragment is `Ok`, so an interrupted garbage
    /// collection can simply run again.
    fn delete_fragment(&self, id: &FragmentId) -> Result<(), PeerError>;

    /// Undo a delayed deletion: the most recently deleted copy of a
    /// fragment comes back from the trash. `Ok(false)` when the trash holds
    /// none (never deleted, or purged after the grace period). The bytes are
    /// not verified here; readers verify them as always.
    fn undelete_fragment(&self, id: &FragmentId) -> Result<bool, PeerError>;

    /// Store a small metadata object durably, atomically replacing the copy
    /// held: a reader sees the old bytes or the new ones, never a mix. The
    /// peer accepts only what [`crate::admit::admit`] admits (a validly
    /// signed envelope of that object, by the pinned signer, never rolling a
    /// container manifest back) and refuses anything else with
    /// [`PeerError::MetaRejected`]; a replaced copy goes to the trash.
    fn put_meta(&self, key: &MetaKey, bytes: &[u8]) -> Result<(), PeerError>;

    /// Delayed deletion of a metadata object: it stops being listed or
    /// served at once, and the peer keeps it in its trash for the grace
    /// period, readable with [`Peer::get_deleted_meta`]. Deleting an absent
    /// object is `Ok`.
    fn delete_meta(&self, key: &MetaKey) -> Result<(), PeerError>;

    /// Metadata objects in the trash (replaced or deleted, within the grace
    /// period), of one container or of all; sorted by key, then time.
    fn list_deleted_meta(
        &self,
        container: Option<&ContainerId>,
    ) -> Result<Vec<DeletedMeta>, PeerError>;

    /// The most recently trashed copy of a metadata object, or
    /// [`PeerError::NotFound`].
    fn get_deleted_meta(&self, key: &MetaKey) -> Result<Vec<u8>, PeerError>;

    /// The stored bytes of a metadata object, or [`PeerError::NotFound`].
    fn get_meta(&self, key: &MetaKey) -> Result<Vec<u8>, PeerError>;

    /// The metadata keys of one container, or of every container on the peer
    /// when `container` is `None`; sorted.
    fn list_meta(&self, container: Option<&ContainerId>) -> Result<Vec<MetaKey>, PeerError>;

    /// Counts and free space, for placement and status.
    fn stat(&self) -> Result<PeerStat, PeerError>;

    /// Keep a hand-over certificate (master secret rotation): from now on
    /// the containers pinned to its old identity accept objects signed by
    /// its new one, which replace the old identity's copies. A node also
    /// moves the owner's namespace and grant to the new owner id. Storing
    /// the same certificate again is `Ok`.
    fn hand_over(&self, cert: &HandOver) -> Result<(), PeerError>;

    /// Free the trash of what was deleted or replaced at least `grace`
    /// before `now`, for a peer whose trash its owner empties (a folder, a
    /// bucket); returns how many objects went. `Ok(None)`: the peer empties
    /// its own trash (a node, on its operator's grace period).
    fn purge_trash(&self, grace: Duration, now: SystemTime) -> Result<Option<u64>, PeerError> {
        let _ = (grace, now);
        Ok(None)
    }
}

/// Names one of the small sealed, signed metadata objects that are replicated
/// whole to every peer of a container (encrypted by the caller).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MetaKey {
    /// The container manifest.
    Container(ContainerId),
    /// One snapshot manifest of a container.
    Snapshot(ContainerId, SnapshotId),
    /// One index segment of a container.
    IndexSegment(ContainerId, SegmentId),
}

impl MetaKey {
    /// The container the object belongs to.
    pub fn container(&self) -> &ContainerId {
        match self {
            MetaKey::Container(c) | MetaKey::Snapshot(c, _) | MetaKey::IndexSegment(c, _) => c,
        }
    }
}

impl fmt::Display for MetaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetaKey::Container(c) => write!(f, "container manifest {}", c.short()),
            MetaKey::Snapshot(c, s) => {
                write!(f, "snapshot {} of container {}", s.short(), c.short())
            }
            MetaKey::IndexSegment(c, g) => {
                write!(f, "index segment {} of container {}", g.short(), c.short())
            }
        }
    }
}

/// A metadata object in a peer's trash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DeletedMeta {
    pub key: MetaKey,
    /// When it was replaced or deleted, in nanoseconds since the Unix epoch.
    pub deleted_unix_ns: u64,
}

/// What a peer holds and how much room it has left.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerStat {
    /// Fragments held (not counting those awaiting deletion).
    pub fragments: u64,
    /// Bytes used by those fragments.
    pub fragment_bytes: u64,
    /// Bytes still available to this peer, if known.
    pub free_bytes: Option<u64>,
}

/// Why a peer operation failed. `peer` is the peer's [`Peer::describe`] label.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// The peer is reachable but does not hold the named fragment or object.
    #[error("{what} is not on peer {peer}")]
    NotFound {
        /// The peer.
        peer: String,
        /// What was looked for, e.g. "fragment 1a2b3c4d".
        what: String,
    },
    /// The peer cannot be reached at all: folder missing or not mounted,
    /// node offline.
    #[error("peer {peer} is unavailable: {reason}")]
    Unavailable {
        /// The peer.
        peer: String,
        /// Why, with a hint on what to check.
        reason: String,
    },
    /// The peer refuses writes (read-only mount, no write permission).
    #[error(
        "peer {peer} is read-only: check its mount options and folder permissions, \
         or let the data go to another peer"
    )]
    ReadOnly {
        /// The peer.
        peer: String,
    },
    /// The peer has no space or quota left.
    #[error("peer {peer} is full (no space or quota left): free some space on it or add a peer")]
    Full {
        /// The peer.
        peer: String,
    },
    /// Bytes given to `put_fragment` do not hash to the fragment id: a bug or
    /// memory corruption on the caller's side; nothing was stored.
    #[error(
        "refused to store fragment {id} on peer {peer}: the bytes do not hash to the id \
         (nothing was stored; this is a bug or memory corruption on this machine)"
    )]
    HashMismatch {
        /// The peer.
        peer: String,
        /// The id the caller claimed.
        id: FragmentId,
    },
    /// Any other I/O failure.
    #[error("peer {peer}: I/O error while {op}: {source} (check the disk or connection)")]
    Io {
        /// The peer.
        peer: String,
        /// What was being done, e.g. "writing a fragment".
        op: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The peer's storage is damaged or in a format this version of Trove
    /// does not understand.
    #[error("peer {peer} is damaged or unreadable: {what}")]
    Corrupt {
        /// The peer.
        peer: String,
        /// What is wrong and what to do about it.
        what: String,
    },
    /// The peer refused a metadata object (see [`mod@crate::admit`]): it is not
    /// a valid signed envelope of that object, is signed by another
    /// identity, or would roll a container manifest back.
    #[error("peer {peer} refused to store {key}: {reason}")]
    MetaRejected {
        /// The peer.
        peer: String,
        /// The object.
        key: MetaKey,
        /// Why (boxed: keeps every `Result<_, PeerError>` small).
        reason: Box<MetaRejection>,
    },
    /// The peer declined the request (e.g. a folder that is not empty and not
    /// a peer, a node that has not granted this owner).
    #[error("peer {peer} refused: {reason}")]
    Refused {
        /// The peer.
        peer: String,
        /// Why, and what to do.
        reason: String,
    },
}

impl PeerError {
    /// `Ok` when `bytes` hash to `id`, else [`PeerError::HashMismatch`]
    /// for `peer`: what every peer checks before it stores a fragment.
    pub fn check_fragment(peer: &str, id: &FragmentId, bytes: &[u8]) -> Result<(), PeerError> {
        Self::check_fragment_parts(peer, id, &[bytes])
    }

    /// [`PeerError::check_fragment`] of the fragment made of `parts`.
    pub fn check_fragment_parts(
        peer: &str,
        id: &FragmentId,
        parts: &[&[u8]],
    ) -> Result<(), PeerError> {
        if FragmentId::of_parts(parts) == *id {
            Ok(())
        } else {
            Err(PeerError::HashMismatch {
                peer: peer.to_owned(),
                id: *id,
            })
        }
    }

    /// Whether the data should go to another peer instead: the failure is
    /// about this peer (unreachable, read-only, full, broken), not about the
    /// request. `NotFound` and `HashMismatch` are not: another peer would not
    /// help.
    pub fn is_retryable_elsewhere(&self) -> bool {
        match self {
            PeerError::Unavailable { .. }
            | PeerError::ReadOnly { .. }
            | PeerError::Full { .. }
            | PeerError::Io { .. }
            | PeerError::Corrupt { .. }
            | PeerError::Refused { .. } => true,
            PeerError::NotFound { .. }
            | PeerError::HashMismatch { .. }
            | PeerError::MetaRejected { .. } => false,
        }
    }

    /// Whether this is [`PeerError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, PeerError::NotFound { .. })
    }

    /// The label of the peer that failed.
    pub fn peer(&self) -> &str {
        match self {
            PeerError::NotFound { peer, .. }
            | PeerError::Unavailable { peer, .. }
            | PeerError::ReadOnly { peer }
            | PeerError::Full { peer }
            | PeerError::HashMismatch { peer, .. }
            | PeerError::Io { peer, .. }
            | PeerError::Corrupt { peer, .. }
            | PeerError::MetaRejected { peer, .. }
            | PeerError::Refused { peer, .. } => peer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn trait_is_object_safe_and_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Arc<dyn Peer>>();
    }

    #[test]
    fn retryable_classification() {
        let p = || "p".to_owned();
        assert!(PeerError::Full { peer: p() }.is_retryable_elsewhere());
        assert!(PeerError::ReadOnly { peer: p() }.is_retryable_elsewhere());
        assert!(PeerError::Unavailable {
            peer: p(),
            reason: "x".into()
        }
        .is_retryable_elsewhere());
        assert!(PeerError::Io {
            peer: p(),
            op: "x",
            source: std::io::Error::other("x")
        }
        .is_retryable_elsewhere());
        assert!(!PeerError::NotFound {
            peer: p(),
            what: "x".into()
        }
        .is_retryable_elsewhere());
        assert!(!PeerError::HashMismatch {
            peer: p(),
            id: FragmentId([0; 32])
        }
        .is_retryable_elsewhere());
    }

    #[test]
    fn default_audit_proves_from_the_fragment_bytes() {
        let bytes = vec![5u8; 3_000];
        let id = FragmentId::of(&bytes);
        // A memory peer keeps the trait's default audit.
        let peer = crate::testing::MemoryPeer::new("one");
        peer.put_fragment(&id, &bytes).unwrap();
        let range = AuditRange {
            offset: 1_000,
            len: 100,
        };
        let proofs = peer.audit_fragment(&id, &[range, range]).unwrap();
        assert_eq!(proofs.len(), 2);
        assert_eq!(
            audit::verify(&id, range, &proofs[0]).unwrap(),
            vec![5u8; 100]
        );
        assert!(peer
            .audit_fragment(&FragmentId([0; 32]), &[range])
            .unwrap_err()
            .is_not_found());
        let empty = AuditRange { offset: 0, len: 0 };
        assert!(matches!(
            peer.audit_fragment(&id, &[empty]),
            Err(PeerError::Io { op: "proving fragment ranges", ref source, .. })
                if source.kind() == std::io::ErrorKind::InvalidInput
        ));
    }

    #[test]
    fn messages_name_the_peer() {
        let e = PeerError::Full {
            peer: "usb-1 (dir:/mnt/usb)".into(),
        };
        assert!(e.to_string().contains("usb-1 (dir:/mnt/usb)"));
        assert_eq!(e.peer(), "usb-1 (dir:/mnt/usb)");
        let c = ContainerId([1; 32]);
        assert_eq!(*MetaKey::Snapshot(c, SnapshotId([2; 32])).container(), c);
    }
}
