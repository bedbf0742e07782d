//! Test seams (feature `testing`, off by default): peers that live in
//! memory, fail, lie or dawdle on demand, so that every caller of [`Peer`](crate::Peer)
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
mod memory;
mod wrappers;

pub use memory::MemoryPeer;
pub use wrappers::{FailingPeer, LyingPeer, Op, SlowPeer};

use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use trove_core::envelope;
use trove_core::keys::MasterSecret;
use trove_core::seal::BlobKind;
use trove_core::FragmentId;

use crate::peer::{MetaKey, PeerError};

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
