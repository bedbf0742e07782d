//! Signed envelopes: how manifests and index segments travel to peers.
//! The body is sealed (so peers learn nothing) and the whole envelope is
//! signed with the owner's Ed25519 identity (so a peer cannot forge or alter
//! one, nor pass one object off as another).
//!
//! ```text
//! "TRVM" | version u8 | kind u8 | signer [32] | object id [32] | body_len u32 LE | sealed body | signature [64]
//! ```
//! The signature covers every byte before it.

use crate::keys::{Identity, PublicIdentity, SealKey};
use crate::seal::{self, BlobKind, Compression, SealError};
use ed25519_dalek::{Signature, Signer};

pub const ENVELOPE_MAGIC: &[u8; 4] = b"TRVM";
pub const ENVELOPE_VERSION: u8 = 1;
const HEADER_LEN: usize = 4 + 1 + 1 + 32 + 32 + 4;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    #[error("envelope is malformed: {0}")]
    Malformed(&'static str),
    #[error("envelope is signed by another identity")]
    WrongSigner,
    #[error("envelope signature does not verify: the object was altered")]
    BadSignature,
    #[error("envelope holds a {found:?}, expected a {expected:?}")]
    WrongKind { expected: BlobKind, found: BlobKind },
    #[error("envelope names another object")]
    WrongObject,
    #[error("envelope body: {0}")]
    Body(#[from] SealError),
}

/// The unauthenticated header of an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvelopeHeader {
    pub kind: BlobKind,
    pub signer: PublicIdentity,
    pub object: [u8; 32],
}

/// Seal and sign `body`.
pub fn seal_signed(
    identity: &Identity,
    key: &SealKey,
    kind: BlobKind,
    object: &[u8; 32],
    body: &[u8],
) -> Vec<u8> {
    let sealed = seal::seal(key, kind, object, body, Compression::Zstd(3));
    let mut out = Vec::with_capacity(HEADER_LEN + sealed.len() + 64);
    out.extend_from_slice(ENVELOPE_MAGIC);
    out.push(ENVELOPE_VERSION);
    out.push(kind as u8);
    out.extend_from_slice(&identity.public().0);
    out.extend_from_slice(object);
    out.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
    out.extend_from_slice(&sealed);
    let sig = identity.signing_key().sign(&out);
    out.extend_from_slice(&sig.to_bytes());
    out
}

/// Read the header without checking anything.
pub fn peek(bytes: &[u8]) -> Result<EnvelopeHeader, EnvelopeError> {
    if bytes.len() < HEADER_LEN + 64 {
        return Err(EnvelopeError::Malformed("too short"));
    }
    if &bytes[..4] != ENVELOPE_MAGIC {
        return Err(EnvelopeError::Malformed("bad magic"));
    }
    if bytes[4] != ENVELOPE_VERSION {
        return Err(EnvelopeError::Malformed("unknown version"));
    }
    let kind = BlobKind::from_u8(bytes[5]).ok_or(EnvelopeError::Malformed("unknown kind"))?;
    Ok(EnvelopeHeader {
        kind,
        signer: PublicIdentity(bytes[6..38].try_into().expect("32 bytes")),
        object: bytes[38..70].try_into().expect("32 bytes"),
    })
}

/// Verify the signature against `signer`, check kind and object, and open the body.
pub fn open_signed(
    signer: &PublicIdentity,
    key: &SealKey,
    kind: BlobKind,
    object: &[u8; 32],
    bytes: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    let h = peek(bytes)?;
    if h.signer != *signer {
        return Err(EnvelopeError::WrongSigner);
    }
    let body_len = u32::from_le_bytes(bytes[70..74].try_into().expect("4 bytes")) as usize;
    if bytes.len() != HEADER_LEN + body_len + 64 {
        return Err(EnvelopeError::Malformed("length differs from its header"));
    }
    let (signed, sig) = bytes.split_at(bytes.len() - 64);
    let vk = signer.verifying_key().ok_or(EnvelopeError::WrongSigner)?;
    let sig = Signature::from_bytes(sig.try_into().expect("64 bytes"));
    vk.verify_strict(signed, &sig)
        .map_err(|_| EnvelopeError::BadSignature)?;
    if h.kind != kind {
        return Err(EnvelopeError::WrongKind {
            expected: kind,
            found: h.kind,
        });
    }
    if &h.object != object {
        return Err(EnvelopeError::WrongObject);
    }
    Ok(seal::open(key, kind, object, &signed[HEADER_LEN..])?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::MasterSecret;

    #[test]
    fn sign_open_and_tamper() {
        let m = MasterSecret::generate();
        let id = m.identity();
        let key = m.manifest_key();
        let env = seal_signed(
            &id,
            &key,
            BlobKind::SnapshotManifest,
            &[5; 32],
            b"body bytes",
        );
        let p = id.public();
        assert_eq!(
            open_signed(&p, &key, BlobKind::SnapshotManifest, &[5; 32], &env).unwrap(),
            b"body bytes"
        );
        for i in 0..env.len() {
            let mut t = env.clone();
            t[i] ^= 0x20;
            assert!(
                open_signed(&p, &key, BlobKind::SnapshotManifest, &[5; 32], &t).is_err(),
                "flip at {i}"
            );
        }
        let other = MasterSecret::generate().identity().public();
        assert_eq!(
            open_signed(&other, &key, BlobKind::SnapshotManifest, &[5; 32], &env),
            Err(EnvelopeError::WrongSigner)
        );
        assert!(matches!(
            open_signed(&p, &key, BlobKind::IndexSegment, &[5; 32], &env),
            Err(EnvelopeError::WrongKind { .. })
        ));
        assert_eq!(
            open_signed(&p, &key, BlobKind::SnapshotManifest, &[6; 32], &env),
            Err(EnvelopeError::WrongObject)
        );
    }
}
