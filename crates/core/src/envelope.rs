//! Signed envelopes: how manifests and index segments travel to peers.
//! The body is sealed (so peers learn nothing) and the whole envelope is
//! signed with the owner's Ed25519 identity (so a peer cannot forge or alter
//! one, nor pass one object off as another).
//!
//! ```text
//! v2: "TRVM" | 2 | kind u8 | signer [32] | object id [32] | revision u64 LE | body_len u32 LE | sealed body | signature [64]
//! v1: "TRVM" | 1 | kind u8 | signer [32] | object id [32] |                    body_len u32 LE | sealed body | signature [64]
//! ```
//! The signature covers every byte before it. The revision is in the clear
//! (and signed) so that a peer, which cannot open the body, can still refuse
//! to replace a newer container manifest with an older one. Version 1
//! envelopes (no revision field: revision 0) are still read.

use crate::keys::{Identity, PublicIdentity, SealKey};
use crate::seal::{self, BlobKind, Compression, SealError};
use ed25519_dalek::{Signature, Signer};

pub const ENVELOPE_MAGIC: &[u8; 4] = b"TRVM";
/// The version this code writes.
pub const ENVELOPE_VERSION: u8 = 2;
/// Bytes before the sealed body: magic, version, kind, signer, object id,
/// revision (v2 only), body length.
const fn header_len(version: u8) -> usize {
    if version == 1 {
        4 + 1 + 1 + 32 + 32 + 4
    } else {
        4 + 1 + 1 + 32 + 32 + 8 + 4
    }
}
const SIGNATURE_LEN: usize = 64;

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

/// The header of an envelope. From [`peek`] it is unauthenticated; from
/// [`verify`] or [`open_signed`] every field is covered by the signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvelopeHeader {
    pub version: u8,
    pub kind: BlobKind,
    pub signer: PublicIdentity,
    pub object: [u8; 32],
    /// The container manifest's revision; 0 for snapshots and segments, and
    /// for every version-1 envelope.
    pub revision: u64,
}

/// Seal and sign `body` as a version-2 envelope. `revision` is the container
/// manifest's revision (0 for objects that never change).
pub fn seal_signed(
    identity: &Identity,
    key: &SealKey,
    kind: BlobKind,
    object: &[u8; 32],
    revision: u64,
    body: &[u8],
) -> Vec<u8> {
    let sealed = seal::seal(key, kind, object, body, Compression::Zstd(3));
    let mut out = Vec::with_capacity(header_len(ENVELOPE_VERSION) + sealed.len() + SIGNATURE_LEN);
    out.extend_from_slice(ENVELOPE_MAGIC);
    out.push(ENVELOPE_VERSION);
    out.push(kind as u8);
    out.extend_from_slice(&identity.public().0);
    out.extend_from_slice(object);
    out.extend_from_slice(&revision.to_le_bytes());
    out.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
    out.extend_from_slice(&sealed);
    let sig = identity.signing_key().sign(&out);
    out.extend_from_slice(&sig.to_bytes());
    out
}

/// The same envelope signed by `identity` instead: header, revision and
/// sealed body unchanged, the signer field and the signature new (a master
/// secret rotation, `docs/design.md` §2a). The envelope must verify first.
pub fn resign(bytes: &[u8], identity: &Identity) -> Result<Vec<u8>, EnvelopeError> {
    verify(bytes)?;
    let mut out = bytes[..bytes.len() - SIGNATURE_LEN].to_vec();
    out[6..38].copy_from_slice(&identity.public().0);
    let sig = identity.signing_key().sign(&out);
    out.extend_from_slice(&sig.to_bytes());
    Ok(out)
}

/// Read the header without checking the signature.
pub fn peek(bytes: &[u8]) -> Result<EnvelopeHeader, EnvelopeError> {
    if bytes.len() < 6 || &bytes[..4] != ENVELOPE_MAGIC {
        return Err(EnvelopeError::Malformed("bad magic"));
    }
    let version = bytes[4];
    if !(1..=ENVELOPE_VERSION).contains(&version) {
        return Err(EnvelopeError::Malformed("unknown version"));
    }
    if bytes.len() < header_len(version) + SIGNATURE_LEN {
        return Err(EnvelopeError::Malformed("too short"));
    }
    let kind = BlobKind::from_u8(bytes[5]).ok_or(EnvelopeError::Malformed("unknown kind"))?;
    let revision = if version == 1 {
        0
    } else {
        u64::from_le_bytes(bytes[70..78].try_into().expect("8 bytes"))
    };
    Ok(EnvelopeHeader {
        version,
        kind,
        signer: PublicIdentity(bytes[6..38].try_into().expect("32 bytes")),
        object: bytes[38..70].try_into().expect("32 bytes"),
        revision,
    })
}

/// Check the envelope's structure and its signature against the signer its
/// header names, without opening the body: what a peer, which holds no key,
/// can verify. The caller decides whether that signer is the one it expects.
pub fn verify(bytes: &[u8]) -> Result<EnvelopeHeader, EnvelopeError> {
    let h = peek(bytes)?;
    let hl = header_len(h.version);
    let body_len = u32::from_le_bytes(bytes[hl - 4..hl].try_into().expect("4 bytes")) as usize;
    if bytes.len() != hl + body_len + SIGNATURE_LEN {
        return Err(EnvelopeError::Malformed("length differs from its header"));
    }
    let (signed, sig) = bytes.split_at(bytes.len() - SIGNATURE_LEN);
    let vk = h
        .signer
        .verifying_key()
        .ok_or(EnvelopeError::BadSignature)?;
    let sig = Signature::from_bytes(sig.try_into().expect("64 bytes"));
    vk.verify_strict(signed, &sig)
        .map_err(|_| EnvelopeError::BadSignature)?;
    Ok(h)
}

/// Verify the signature against `signer`, check kind and object, and open
/// the body. Returns the authenticated header with the body.
pub fn open_signed(
    signer: &PublicIdentity,
    key: &SealKey,
    kind: BlobKind,
    object: &[u8; 32],
    bytes: &[u8],
) -> Result<(EnvelopeHeader, Vec<u8>), EnvelopeError> {
    open_signed_any(signer, [key], kind, object, bytes)
}

/// [`open_signed`] with the first of `keys` that opens the body (a
/// container's current and retired keys, `ContainerKeys::seals`).
pub fn open_signed_any<'k>(
    signer: &PublicIdentity,
    keys: impl IntoIterator<Item = &'k SealKey>,
    kind: BlobKind,
    object: &[u8; 32],
    bytes: &[u8],
) -> Result<(EnvelopeHeader, Vec<u8>), EnvelopeError> {
    if peek(bytes)?.signer != *signer {
        return Err(EnvelopeError::WrongSigner);
    }
    let h = verify(bytes)?;
    if h.kind != kind {
        return Err(EnvelopeError::WrongKind {
            expected: kind,
            found: h.kind,
        });
    }
    if &h.object != object {
        return Err(EnvelopeError::WrongObject);
    }
    let sealed = &bytes[header_len(h.version)..bytes.len() - SIGNATURE_LEN];
    Ok((h, seal::open_any(keys, kind, object, sealed)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::MasterSecret;

    #[test]
    fn resigned_envelopes_open_under_the_new_signer_only() {
        let (a, b) = (MasterSecret::generate(), MasterSecret::generate());
        let key = a.manifest_key();
        let env = seal_signed(
            &a.identity(),
            &key,
            BlobKind::SnapshotManifest,
            &[5; 32],
            0,
            b"x",
        );
        let moved = resign(&env, &b.identity()).unwrap();
        assert_eq!(moved.len(), env.len());
        let pb = b.identity().public();
        let (h, body) =
            open_signed(&pb, &key, BlobKind::SnapshotManifest, &[5; 32], &moved).unwrap();
        assert_eq!((h.signer, body.as_slice()), (pb, &b"x"[..]));
        assert_eq!(
            open_signed(
                &a.identity().public(),
                &key,
                BlobKind::SnapshotManifest,
                &[5; 32],
                &moved
            )
            .unwrap_err(),
            EnvelopeError::WrongSigner
        );
        let mut bad = env.clone();
        bad[90] ^= 1;
        assert_eq!(
            resign(&bad, &b.identity()),
            Err(EnvelopeError::BadSignature)
        );
    }

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
            7,
            b"body bytes",
        );
        let p = id.public();
        let (h, body) = open_signed(&p, &key, BlobKind::SnapshotManifest, &[5; 32], &env).unwrap();
        assert_eq!(body, b"body bytes");
        assert_eq!((h.version, h.revision, h.signer), (2, 7, p));
        assert_eq!(verify(&env).unwrap(), h);
        for i in 0..env.len() {
            let mut t = env.clone();
            t[i] ^= 0x20;
            assert!(
                open_signed(&p, &key, BlobKind::SnapshotManifest, &[5; 32], &t).is_err(),
                "flip at {i}"
            );
            assert!(verify(&t).is_err(), "verify accepted a flip at {i}");
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

    #[test]
    fn the_revision_cannot_be_changed_without_the_signature_failing() {
        let m = MasterSecret::generate();
        let env = seal_signed(
            &m.identity(),
            &m.manifest_key(),
            BlobKind::ContainerManifest,
            &[1; 32],
            3,
            b"manifest",
        );
        let mut older = env.clone();
        older[70..78].copy_from_slice(&2u64.to_le_bytes());
        assert_eq!(peek(&older).unwrap().revision, 2);
        assert_eq!(verify(&older), Err(EnvelopeError::BadSignature));
    }

    /// A version-1 envelope as written before 2026-11's v2: no revision.
    fn seal_signed_v1(
        identity: &Identity,
        key: &SealKey,
        kind: BlobKind,
        object: &[u8; 32],
        body: &[u8],
    ) -> Vec<u8> {
        let sealed = seal::seal(key, kind, object, body, Compression::Zstd(3));
        let mut out = Vec::new();
        out.extend_from_slice(ENVELOPE_MAGIC);
        out.push(1);
        out.push(kind as u8);
        out.extend_from_slice(&identity.public().0);
        out.extend_from_slice(object);
        out.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        out.extend_from_slice(&sealed);
        let sig = identity.signing_key().sign(&out);
        out.extend_from_slice(&sig.to_bytes());
        out
    }

    #[test]
    fn version_1_envelopes_still_open_with_revision_0() {
        let m = MasterSecret::generate();
        let key = m.manifest_key();
        let v1 = seal_signed_v1(
            &m.identity(),
            &key,
            BlobKind::IndexSegment,
            &[4; 32],
            b"old segment",
        );
        let (h, body) = open_signed(
            &m.identity().public(),
            &key,
            BlobKind::IndexSegment,
            &[4; 32],
            &v1,
        )
        .unwrap();
        assert_eq!((h.version, h.revision), (1, 0));
        assert_eq!(body, b"old segment");
        let mut t = v1.clone();
        t[80] ^= 1;
        assert!(verify(&t).is_err());
        let mut v3 = v1;
        v3[4] = 3;
        assert_eq!(peek(&v3), Err(EnvelopeError::Malformed("unknown version")));
    }
}
