//! Key hierarchy. The 32-byte master secret is the root; everything else is
//! derived from it or wrapped by it, so the master secret alone (as a BIP-39
//! phrase or SLIP-39 shares) recovers everything.
//!
//! ```text
//! master secret ──derive_key──▶ identity key (Ed25519 seed)
//!               ──derive_key──▶ wrap key   (wraps container keys)
//!               ──derive_key──▶ manifest key (seals container manifests)
//!               ──derive_key──▶ transport key (Ed25519 seed: the owner's id
//!                               to nodes, authenticated by QUIC's handshake)
//! container key (random) ──derive_key──▶ chunk-id key, seal key, chunker seed
//! ```
//! Derivation uses BLAKE3 `derive_key` with distinct, versioned context
//! strings, so no two uses of a key can collide.

use crate::ids::ContainerId;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::{SigningKey, VerifyingKey};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

const CTX_IDENTITY: &str = "trove 2026-11 identity signing key v1";
const CTX_WRAP: &str = "trove 2026-11 container key wrap v1";
const CTX_MANIFEST: &str = "trove 2026-11 container manifest seal v1";
const CTX_CHUNK_ID: &str = "trove 2026-11 chunk id v1";
const CTX_SEAL: &str = "trove 2026-11 blob seal v1";
const CTX_CHUNKER: &str = "trove 2026-11 chunker seed v1";
const CTX_TRANSPORT: &str = "trove 2026-11 owner transport key v1";

/// Version byte of a wrapped container key.
pub const WRAPPED_KEY_VERSION: u8 = 1;
/// Length of a wrapped container key: version, nonce, key, tag.
pub const WRAPPED_KEY_LEN: usize = 1 + 24 + 32 + 16;

/// A container key failed to unwrap: wrong master secret or damaged bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The AEAD tag did not verify: the key was wrapped by another master secret, or altered.
    #[error("container key does not unwrap: it belongs to another master secret or was altered")]
    Unwrap,
    /// Wrong length or unknown version.
    #[error("wrapped container key is malformed (version {version}, {len} bytes)")]
    Malformed { version: u8, len: usize },
}

/// The 32-byte root secret of an owner.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterSecret([u8; 32]);

impl std::fmt::Debug for MasterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterSecret(..)")
    }
}

impl MasterSecret {
    /// A fresh random master secret from the OS RNG.
    pub fn generate() -> Self {
        Self(rand::random())
    }
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    /// The Ed25519 identity: signs manifests, names the owner to nodes.
    pub fn identity(&self) -> Identity {
        Identity(SigningKey::from_bytes(&blake3::derive_key(
            CTX_IDENTITY,
            &self.0,
        )))
    }
    /// Seed of the owner's network key. Nodes know the owner by its public
    /// half (the owner id), which the QUIC handshake authenticates; it is
    /// separate from the identity key so that no key signs in two protocols,
    /// and derived so that recovery from the phrase keeps every grant valid.
    pub fn transport_seed(&self) -> [u8; 32] {
        blake3::derive_key(CTX_TRANSPORT, &self.0)
    }
    /// The owner id: the Ed25519 public key of the transport seed (what
    /// iroh's `SecretKey::public` gives for it).
    pub fn owner_id(&self) -> [u8; 32] {
        SigningKey::from_bytes(&self.transport_seed())
            .verifying_key()
            .to_bytes()
    }
    fn wrap_key(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(blake3::derive_key(CTX_WRAP, &self.0))
    }
    /// Key that seals container manifests, so a new machine can read them
    /// knowing nothing but the master secret.
    pub fn manifest_key(&self) -> SealKey {
        SealKey(blake3::derive_key(CTX_MANIFEST, &self.0))
    }
    /// Wrap a container key (XChaCha20-Poly1305, the container id as associated data).
    pub fn wrap(&self, container: &ContainerId, key: &ContainerKey) -> Vec<u8> {
        let nonce: [u8; 24] = rand::random();
        let cipher = XChaCha20Poly1305::new((&*self.wrap_key()).into());
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &key.0,
                    aad: container.as_bytes(),
                },
            )
            .expect("encryption of 32 bytes cannot fail");
        let mut out = Vec::with_capacity(WRAPPED_KEY_LEN);
        out.push(WRAPPED_KEY_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }
    /// Unwrap a container key wrapped by [`MasterSecret::wrap`].
    pub fn unwrap(
        &self,
        container: &ContainerId,
        wrapped: &[u8],
    ) -> Result<ContainerKey, KeyError> {
        if wrapped.len() != WRAPPED_KEY_LEN || wrapped[0] != WRAPPED_KEY_VERSION {
            return Err(KeyError::Malformed {
                version: wrapped.first().copied().unwrap_or(0),
                len: wrapped.len(),
            });
        }
        let cipher = XChaCha20Poly1305::new((&*self.wrap_key()).into());
        let pt = Zeroizing::new(
            cipher
                .decrypt(
                    XNonce::from_slice(&wrapped[1..25]),
                    Payload {
                        msg: &wrapped[25..],
                        aad: container.as_bytes(),
                    },
                )
                .map_err(|_| KeyError::Unwrap)?,
        );
        let mut key = ContainerKey([0u8; 32]);
        key.0.copy_from_slice(&pt);
        Ok(key)
    }
}

/// The owner's Ed25519 signing identity.
#[derive(Clone)]
pub struct Identity(SigningKey);

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({})", self.public().fingerprint())
    }
}

impl Identity {
    pub fn public(&self) -> PublicIdentity {
        PublicIdentity(self.0.verifying_key().to_bytes())
    }
    pub fn signing_key(&self) -> &SigningKey {
        &self.0
    }
}

/// The public half of an owner's identity: 32 bytes of Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct PublicIdentity(pub [u8; 32]);

impl std::fmt::Debug for PublicIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicIdentity({})", self.fingerprint())
    }
}

impl PublicIdentity {
    /// Hex of the public key: the owner id given to node operators.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    /// A short human-comparable fingerprint: the first 16 hex digits of the
    /// BLAKE3 hash of the key, grouped by four.
    pub fn fingerprint(&self) -> String {
        let h = blake3::hash(&self.0).to_hex();
        let s = &h.as_str()[..16];
        format!("{}-{}-{}-{}", &s[0..4], &s[4..8], &s[8..12], &s[12..16])
    }
    pub fn verifying_key(&self) -> Option<VerifyingKey> {
        VerifyingKey::from_bytes(&self.0).ok()
    }
}

/// A container's random 32-byte key.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ContainerKey([u8; 32]);

impl std::fmt::Debug for ContainerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContainerKey(..)")
    }
}

impl ContainerKey {
    pub fn generate() -> Self {
        Self(rand::random())
    }
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
    /// The key itself, for sealing it to someone ([`crate::share`]).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    /// The sub-keys used by the data path.
    pub fn derive(&self) -> ContainerKeys {
        ContainerKeys::of(self, &[])
    }
}

/// A 32-byte XChaCha20-Poly1305 key.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SealKey(pub(crate) [u8; 32]);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

impl SealKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

/// The keys of one container's data path, wiped from memory when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ContainerKeys {
    chunk_id_key: [u8; 32],
    /// Seals blobs, pack headers, snapshot manifests and index segments.
    pub seal: SealKey,
    /// The seal keys of keys the container had before (a revoked share
    /// replaced them), newest first: what was sealed then opens with them.
    retired: Vec<SealKey>,
    /// Seeds FastCDC's gear table so chunk boundaries depend on the key.
    pub chunker_seed: u64,
}

impl std::fmt::Debug for ContainerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContainerKeys(..)")
    }
}

impl ContainerKeys {
    /// The keys of a container whose key was replaced by `later` keys
    /// (oldest first): chunk ids and cuts stay those of the `first` key, so
    /// data keeps deduplicating; new data is sealed with the newest key;
    /// what was sealed before opens with the key of its time.
    pub fn of(first: &ContainerKey, later: &[ContainerKey]) -> Self {
        let seed = Zeroizing::new(blake3::derive_key(CTX_CHUNKER, &first.0));
        let seal_of = |k: &ContainerKey| SealKey(blake3::derive_key(CTX_SEAL, &k.0));
        let mut seals: Vec<SealKey> = std::iter::once(first)
            .chain(later)
            .map(seal_of)
            .rev()
            .collect();
        let seal = seals.remove(0);
        Self {
            chunk_id_key: blake3::derive_key(CTX_CHUNK_ID, &first.0),
            seal,
            retired: seals,
            chunker_seed: u64::from_le_bytes(seed[..8].try_into().expect("8 bytes")),
        }
    }

    /// Every seal key of the container, the current one first.
    pub fn seals(&self) -> impl Iterator<Item = &SealKey> + Clone {
        std::iter::once(&self.seal).chain(&self.retired)
    }

    /// Keyed BLAKE3 of a plaintext chunk.
    pub fn chunk_id(&self, data: &[u8]) -> crate::ChunkId {
        crate::ChunkId(*blake3::keyed_hash(&self.chunk_id_key, data).as_bytes())
    }
    /// Keyed BLAKE3 of a serialized tree. Trees and chunks share the key: a
    /// tree blob and a data blob with equal bytes are the same blob.
    pub fn tree_id(&self, data: &[u8]) -> crate::TreeId {
        crate::TreeId(*blake3::keyed_hash(&self.chunk_id_key, data).as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_unwrap_and_wrong_master() {
        let m = MasterSecret::generate();
        let c = ContainerId::random();
        let k = ContainerKey::generate();
        let w = m.wrap(&c, &k);
        assert_eq!(w.len(), WRAPPED_KEY_LEN);
        assert_eq!(m.unwrap(&c, &w).unwrap().0, k.0);
        assert_eq!(
            MasterSecret::generate().unwrap(&c, &w).unwrap_err(),
            KeyError::Unwrap
        );
        assert_eq!(
            m.unwrap(&ContainerId::random(), &w).unwrap_err(),
            KeyError::Unwrap
        );
        assert!(matches!(
            m.unwrap(&c, &w[1..]),
            Err(KeyError::Malformed { .. })
        ));
    }

    #[test]
    fn derivations_are_stable_and_distinct() {
        let m = MasterSecret::from_bytes([7; 32]);
        assert_eq!(m.identity().public(), m.clone().identity().public());
        let k = ContainerKey::from_bytes([9; 32]).derive();
        assert_ne!(k.chunk_id(b"a"), k.chunk_id(b"b"));
        assert_eq!(m.transport_seed(), m.clone().transport_seed());
        assert_ne!(&m.transport_seed(), m.identity().signing_key().as_bytes());
        assert_ne!(
            m.transport_seed(),
            MasterSecret::from_bytes([8; 32]).transport_seed()
        );
        let other = ContainerKey::from_bytes([10; 32]).derive();
        assert_ne!(k.chunk_id(b"a"), other.chunk_id(b"a"));
        assert_ne!(k.chunker_seed, other.chunker_seed);
        assert_ne!(k.seal.0, m.manifest_key().0);
    }
}
