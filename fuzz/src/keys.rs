//! The fixed keys every oracle uses. Fixed so that a crashing input replays.

use std::sync::OnceLock;
use trove_core::keys::{Identity, MasterSecret, PublicIdentity, SealKey};

/// Seal key of blobs, pack headers, snapshots and segments.
pub const SEAL_KEY: [u8; 32] = [0x5e; 32];
/// The owner's master secret (identity and manifest key derive from it).
pub const MASTER: [u8; 32] = [0x11; 32];

pub fn seal_key() -> SealKey {
    SealKey::from_bytes(SEAL_KEY)
}

pub fn master() -> MasterSecret {
    MasterSecret::from_bytes(MASTER)
}

/// The owner's signing identity (derived once: Ed25519 key setup is not free).
pub fn identity() -> &'static Identity {
    static ID: OnceLock<Identity> = OnceLock::new();
    ID.get_or_init(|| master().identity())
}

pub fn public() -> PublicIdentity {
    identity().public()
}

/// An identity that is not the owner's.
pub fn stranger() -> &'static Identity {
    static ID: OnceLock<Identity> = OnceLock::new();
    ID.get_or_init(|| MasterSecret::from_bytes([0x22; 32]).identity())
}
