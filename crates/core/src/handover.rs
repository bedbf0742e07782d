//! Hand-over certificates: how an owner who rotates the master secret tells
//! its peers that objects signed by the new identity replace those of the
//! old one (`docs/design.md` §2a).
//!
//! Peers pin the identity that signs a container's objects (§6.1), so a
//! new master secret, whose identity is new, would be refused everywhere.
//! A certificate signed by the old identity names the new identity and the
//! new owner id (the node grant moves to it); it is also signed by the new
//! identity, which proves its holder took part. Peers keep it, follow it
//! when they decide which signer a container is pinned to, and a node moves
//! the old owner's namespace and grant to the new owner id.
//!
//! ```text
//! "TRVH" | 1 | old identity [32] | old owner id [32] | new identity [32] | new owner id [32]
//!        | made_unix u64 LE | signature of the old identity [64] | signature of the new identity [64]
//! ```
//! Both signatures cover the 141 bytes before the first one.

use crate::keys::{MasterSecret, PublicIdentity};
use ed25519_dalek::{Signature, Signer};

pub const HANDOVER_MAGIC: &[u8; 4] = b"TRVH";
/// The version this code writes and reads.
pub const HANDOVER_VERSION: u8 = 1;
/// Bytes covered by the signatures.
const SIGNED_LEN: usize = 4 + 1 + 4 * 32 + 8;
/// Length of a certificate.
pub const HANDOVER_LEN: usize = SIGNED_LEN + 2 * 64;

/// A certificate that does not parse or verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandOverError {
    #[error("hand-over certificate is malformed: {0}")]
    Malformed(&'static str),
    #[error("hand-over certificate version {0} is newer than this Trove")]
    Version(u8),
    #[error("hand-over certificate's {0} signature does not verify")]
    BadSignature(&'static str),
    #[error("hand-over certificate names the same identity on both sides")]
    SameIdentity,
}

/// A verified hand-over from one identity (and owner id) to another.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HandOver {
    pub old_identity: PublicIdentity,
    /// The owner id (transport public key) nodes granted the old owner.
    pub old_owner: [u8; 32],
    pub new_identity: PublicIdentity,
    /// The owner id the grant moves to.
    pub new_owner: [u8; 32],
    /// When the owner made it (its own clock; informative only).
    pub made_unix: u64,
    signatures: [[u8; 64]; 2],
}

impl std::fmt::Debug for HandOver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandOver")
            .field("old", &self.old_identity.fingerprint())
            .field("new", &self.new_identity.fingerprint())
            .field("made_unix", &self.made_unix)
            .finish_non_exhaustive()
    }
}

impl HandOver {
    /// Sign the hand-over from `old` to `new` with both identities.
    pub fn sign(old: &MasterSecret, new: &MasterSecret, made_unix: u64) -> Self {
        let mut h = HandOver {
            old_identity: old.identity().public(),
            old_owner: old.owner_id(),
            new_identity: new.identity().public(),
            new_owner: new.owner_id(),
            made_unix,
            signatures: [[0; 64]; 2],
        };
        let signed = h.signed_bytes();
        h.signatures = [
            old.identity().signing_key().sign(&signed).to_bytes(),
            new.identity().signing_key().sign(&signed).to_bytes(),
        ];
        h
    }

    fn signed_bytes(&self) -> [u8; SIGNED_LEN] {
        let mut out = [0u8; SIGNED_LEN];
        out[..4].copy_from_slice(HANDOVER_MAGIC);
        out[4] = HANDOVER_VERSION;
        out[5..37].copy_from_slice(&self.old_identity.0);
        out[37..69].copy_from_slice(&self.old_owner);
        out[69..101].copy_from_slice(&self.new_identity.0);
        out[101..133].copy_from_slice(&self.new_owner);
        out[133..141].copy_from_slice(&self.made_unix.to_le_bytes());
        out
    }

    /// The certificate's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HANDOVER_LEN);
        out.extend_from_slice(&self.signed_bytes());
        out.extend_from_slice(&self.signatures[0]);
        out.extend_from_slice(&self.signatures[1]);
        out
    }

    /// Parse and verify a certificate: both signatures must verify.
    pub fn decode(bytes: &[u8]) -> Result<Self, HandOverError> {
        if bytes.len() < 5 || &bytes[..4] != HANDOVER_MAGIC {
            return Err(HandOverError::Malformed("bad magic"));
        }
        if bytes[4] != HANDOVER_VERSION {
            return Err(HandOverError::Version(bytes[4]));
        }
        if bytes.len() != HANDOVER_LEN {
            return Err(HandOverError::Malformed("wrong length"));
        }
        let at = |o: usize| -> [u8; 32] { bytes[o..o + 32].try_into().expect("32 bytes") };
        let sig = |o: usize| -> [u8; 64] { bytes[o..o + 64].try_into().expect("64 bytes") };
        let h = HandOver {
            old_identity: PublicIdentity(at(5)),
            old_owner: at(37),
            new_identity: PublicIdentity(at(69)),
            new_owner: at(101),
            made_unix: u64::from_le_bytes(bytes[133..141].try_into().expect("8 bytes")),
            signatures: [sig(SIGNED_LEN), sig(SIGNED_LEN + 64)],
        };
        if h.old_identity == h.new_identity {
            return Err(HandOverError::SameIdentity);
        }
        let signed = &bytes[..SIGNED_LEN];
        for (who, key, s) in [
            ("old identity's", h.old_identity, h.signatures[0]),
            ("new identity's", h.new_identity, h.signatures[1]),
        ] {
            let vk = key
                .verifying_key()
                .ok_or(HandOverError::BadSignature(who))?;
            vk.verify_strict(signed, &Signature::from_bytes(&s))
                .map_err(|_| HandOverError::BadSignature(who))?;
        }
        Ok(h)
    }
}

/// Follow hand-overs from `pinned`: the identity that signs for it now.
/// `read` returns the certificate `pinned` signed, if one is held; a
/// certificate that does not verify or was not made by the identity it is
/// filed under is ignored. At most 64 steps (a loop ends there).
pub fn successor(
    pinned: PublicIdentity,
    read: impl Fn(&PublicIdentity) -> Option<Vec<u8>>,
) -> PublicIdentity {
    let mut now = pinned;
    for _ in 0..64 {
        match read(&now).and_then(|b| HandOver::decode(&b).ok()) {
            Some(h) if h.old_identity == now => now = h.new_identity,
            _ => break,
        }
    }
    now
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_verifies_and_refuses_any_change() {
        let (a, b) = (MasterSecret::generate(), MasterSecret::generate());
        let h = HandOver::sign(&a, &b, 1_790_000_000);
        let bytes = h.encode();
        assert_eq!(bytes.len(), HANDOVER_LEN);
        let back = HandOver::decode(&bytes).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.old_identity, a.identity().public());
        assert_eq!(back.new_owner, b.owner_id());
        for i in 0..bytes.len() {
            let mut t = bytes.clone();
            t[i] ^= 0x04;
            assert!(
                HandOver::decode(&t).is_err(),
                "byte {i} flipped still verifies"
            );
        }
        assert_eq!(
            HandOver::decode(&bytes[..200]),
            Err(HandOverError::Malformed("wrong length"))
        );
        let same = HandOver::sign(&a, &a, 1);
        assert_eq!(
            HandOver::decode(&same.encode()),
            Err(HandOverError::SameIdentity)
        );
    }

    #[test]
    fn successor_follows_a_chain_and_ignores_misfiled_certificates() {
        let (a, b, c) = (
            MasterSecret::generate(),
            MasterSecret::generate(),
            MasterSecret::generate(),
        );
        let ab = HandOver::sign(&a, &b, 1).encode();
        let bc = HandOver::sign(&b, &c, 2).encode();
        let (pa, pb, pc) = (
            a.identity().public(),
            b.identity().public(),
            c.identity().public(),
        );
        let chain = |id: &PublicIdentity| match id {
            x if *x == pa => Some(ab.clone()),
            x if *x == pb => Some(bc.clone()),
            _ => None,
        };
        assert_eq!(successor(pa, chain), pc);
        assert_eq!(successor(pc, chain), pc);
        // b's certificate filed under a: not a's hand-over.
        let misfiled = |id: &PublicIdentity| (*id == pa).then(|| bc.clone());
        assert_eq!(successor(pa, misfiled), pa);
    }
}
