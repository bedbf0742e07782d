//! Sealing bytes to an owner id: the one recipe behind share files
//! ([`crate::share`]) and inheritance escrows ([`crate::escrow`]).
//!
//! An owner id is the Ed25519 public key of its owner's transport key (the
//! key nodes grant). A sender seals with X25519 from a fresh ephemeral key
//! to the Montgomery form of that key; the recipient's X25519 secret is the
//! scalar of their Ed25519 transport key (as libsodium's
//! `crypto_sign_ed25519_sk_to_curve25519`). The AEAD key is
//! `BLAKE3-derive_key(context, shared ‖ ephemeral public ‖ recipient
//! Montgomery)`, and the cipher XChaCha20-Poly1305 with the caller's
//! nonce and associated data (its header), so each format keeps its own
//! byte layout and binds its header to the ciphertext.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use curve25519_dalek::montgomery::MontgomeryPoint;
use ed25519_dalek::{SigningKey, VerifyingKey};
use zeroize::Zeroizing;

/// The owner id is not an Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{}` is not an owner id (64 hex digits of an Ed25519 key)", hex::encode(.0))]
pub struct BadRecipient(pub [u8; 32]);

/// The AEAD key of one sealed message, on either side.
pub struct SealedTo {
    /// The sender's ephemeral X25519 public key, written into the header.
    pub ephemeral_public: [u8; 32],
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for SealedTo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedTo")
            .field("ephemeral_public", &hex::encode(self.ephemeral_public))
            .finish_non_exhaustive()
    }
}

impl SealedTo {
    /// The sender's side: a fresh ephemeral key and the key it shares with
    /// the owner of `recipient`, for the format named by `context`.
    pub fn to(context: &str, recipient: &[u8; 32]) -> Result<Self, BadRecipient> {
        let their = VerifyingKey::from_bytes(recipient)
            .map_err(|_| BadRecipient(*recipient))?
            .to_montgomery();
        let ephemeral = Zeroizing::new(rand::random::<[u8; 32]>());
        let ephemeral_public = MontgomeryPoint::mul_base_clamped(*ephemeral);
        let shared = Zeroizing::new(their.mul_clamped(*ephemeral).to_bytes());
        Ok(Self {
            ephemeral_public: ephemeral_public.to_bytes(),
            key: Zeroizing::new(aead_key(context, &shared, &ephemeral_public, &their)),
        })
    }

    /// The recipient's side: the key from their transport seed (whose
    /// public key is their owner id) and the header's ephemeral key.
    pub fn open_with(context: &str, transport_seed: &[u8; 32], ephemeral_public: [u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(transport_seed);
        let mine = signing.verifying_key().to_montgomery();
        let scalar = Zeroizing::new(signing.to_scalar_bytes());
        let ephemeral = MontgomeryPoint(ephemeral_public);
        let shared = Zeroizing::new(ephemeral.mul_clamped(*scalar).to_bytes());
        Self {
            ephemeral_public,
            key: Zeroizing::new(aead_key(context, &shared, &ephemeral, &mine)),
        }
    }

    /// Encrypt `plain`, binding `aad`.
    pub fn encrypt(&self, nonce: &[u8; 24], plain: &[u8], aad: &[u8]) -> Vec<u8> {
        XChaCha20Poly1305::new(self.key.as_ref().into())
            .encrypt(XNonce::from_slice(nonce), Payload { msg: plain, aad })
            .expect("encryption cannot fail")
    }

    /// Decrypt `sealed`; `None` when it does not open with this key (not
    /// the recipient, or altered).
    pub fn decrypt(
        &self,
        nonce: &[u8; 24],
        sealed: &[u8],
        aad: &[u8],
    ) -> Option<Zeroizing<Vec<u8>>> {
        XChaCha20Poly1305::new(self.key.as_ref().into())
            .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad })
            .ok()
            .map(Zeroizing::new)
    }
}

/// The AEAD key: the X25519 secret bound to both public keys.
fn aead_key(
    context: &str,
    shared: &[u8; 32],
    ephemeral: &MontgomeryPoint,
    recipient: &MontgomeryPoint,
) -> [u8; 32] {
    let mut input = Zeroizing::new(Vec::with_capacity(96));
    input.extend_from_slice(shared);
    input.extend_from_slice(ephemeral.as_bytes());
    input.extend_from_slice(recipient.as_bytes());
    blake3::derive_key(context, &input)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id_of(seed: &[u8; 32]) -> [u8; 32] {
        SigningKey::from_bytes(seed).verifying_key().to_bytes()
    }

    #[test]
    fn only_the_recipient_with_the_same_context_opens() {
        let (alice, bob) = (rand::random::<[u8; 32]>(), rand::random::<[u8; 32]>());
        let s = SealedTo::to("ctx a", &id_of(&alice)).unwrap();
        let nonce = [7; 24];
        let sealed = s.encrypt(&nonce, b"hello", b"hdr");
        let open = |seed: &[u8; 32], ctx: &str, aad: &[u8]| {
            SealedTo::open_with(ctx, seed, s.ephemeral_public).decrypt(&nonce, &sealed, aad)
        };
        assert_eq!(open(&alice, "ctx a", b"hdr").unwrap().as_slice(), b"hello");
        assert!(open(&bob, "ctx a", b"hdr").is_none());
        assert!(open(&alice, "ctx b", b"hdr").is_none());
        assert!(open(&alice, "ctx a", b"other").is_none());
        // Not every 32 bytes are a point.
        let bad = (0u8..=255)
            .map(|b| [b; 32])
            .find(|k| VerifyingKey::from_bytes(k).is_err())
            .expect("some byte pattern is no Ed25519 point");
        assert_eq!(SealedTo::to("ctx a", &bad).unwrap_err(), BadRecipient(bad));
    }
}
