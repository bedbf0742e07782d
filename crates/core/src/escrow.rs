//! Escrowed inheritance shares: one SLIP-39 share of an owner's master
//! secret, sealed to the heir's owner id ([`crate::sealed_to`]) and signed
//! by the owner's transport key, for a custodian node to hold
//! (`docs/design.md` §9f).
//!
//! ```text
//! magic "TRVI" | u8 version (1) | owner id 32 | heir id 32 | u16 LE set id
//! | ephemeral X25519 key 32 | nonce 24 | u32 LE sealed length
//! | sealed (XChaCha20-Poly1305 of: u8 body version 1 | share words, UTF-8;
//!           associated data: every byte before it)
//! | Ed25519 signature 64 (by the owner id's key, over every byte before it)
//! ```
//!
//! The custodian can read the header (whose escrow, for whom, which set)
//! and nothing else; the heir checks the signature against the owner id
//! in their letter, so a custodian cannot hand over a share of its own.

use crate::sealed_to::SealedTo;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use zeroize::Zeroizing;

pub const ESCROW_SHARE_MAGIC: &[u8; 4] = b"TRVI";
pub const ESCROW_SHARE_VERSION: u8 = 1;
const BODY_VERSION: u8 = 1;
const CTX_ESCROW: &str = "trove 2026-11 inheritance escrow share v1";
/// magic, version, owner, heir, set id, ephemeral key, nonce, sealed length.
const HEADER_LEN: usize = 4 + 1 + 32 + 32 + 2 + 32 + 24 + 4;
const SIG_LEN: usize = 64;
/// Largest sealed body accepted (a SLIP-39 share of 32 bytes is 33 words).
const MAX_SEALED: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EscrowShareError {
    #[error("not a Trove escrow share ({0})")]
    Malformed(&'static str),
    #[error("escrow share version {0} is not known to this Trove")]
    UnknownVersion(u8),
    #[error(
        "the escrow share is not signed by owner {0}: a custodian altered it or sent another's"
    )]
    BadSignature(String),
    #[error("`{0}` is not an owner id (64 hex digits of an Ed25519 key)")]
    BadOwnerId(String),
    #[error(
        "the escrow share does not open with this identity's key: it is sealed to another heir"
    )]
    Undecryptable,
}

/// What anyone can read of an escrow share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EscrowShareHeader {
    pub owner: [u8; 32],
    pub heir: [u8; 32],
    pub set_id: u16,
}

/// Seal the share `words` to `heir`, signed with the owner's transport key.
pub fn seal_escrow_share(
    owner_transport_seed: &[u8; 32],
    heir: &[u8; 32],
    set_id: u16,
    words: &str,
) -> Result<Vec<u8>, EscrowShareError> {
    let seal = SealedTo::to(CTX_ESCROW, heir)
        .map_err(|_| EscrowShareError::BadOwnerId(hex::encode(heir)))?;
    let signing = SigningKey::from_bytes(owner_transport_seed);
    let nonce: [u8; 24] = rand::random();
    let mut plain = Zeroizing::new(vec![BODY_VERSION]);
    plain.extend_from_slice(words.as_bytes());
    let mut out = Vec::with_capacity(HEADER_LEN + plain.len() + 16 + SIG_LEN);
    out.extend_from_slice(ESCROW_SHARE_MAGIC);
    out.push(ESCROW_SHARE_VERSION);
    out.extend_from_slice(signing.verifying_key().as_bytes());
    out.extend_from_slice(heir);
    out.extend_from_slice(&set_id.to_le_bytes());
    out.extend_from_slice(&seal.ephemeral_public);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&((plain.len() + 16) as u32).to_le_bytes());
    let sealed = seal.encrypt(&nonce, &plain, &out);
    out.extend_from_slice(&sealed);
    let sig = signing.sign(&out);
    out.extend_from_slice(&sig.to_bytes());
    Ok(out)
}

/// Check an escrow share's form and signature; read its header.
pub fn peek_escrow_share(bytes: &[u8]) -> Result<EscrowShareHeader, EscrowShareError> {
    if bytes.len() < HEADER_LEN + 16 + SIG_LEN || &bytes[..4] != ESCROW_SHARE_MAGIC {
        return Err(EscrowShareError::Malformed("too short or no TRVI magic"));
    }
    if bytes[4] != ESCROW_SHARE_VERSION {
        return Err(EscrowShareError::UnknownVersion(bytes[4]));
    }
    let sealed_len =
        u32::from_le_bytes(bytes[HEADER_LEN - 4..HEADER_LEN].try_into().expect("4")) as usize;
    if sealed_len > MAX_SEALED || bytes.len() != HEADER_LEN + sealed_len + SIG_LEN {
        return Err(EscrowShareError::Malformed(
            "its length does not match its header",
        ));
    }
    let header = EscrowShareHeader {
        owner: bytes[5..37].try_into().expect("32 bytes"),
        heir: bytes[37..69].try_into().expect("32 bytes"),
        set_id: u16::from_le_bytes(bytes[69..71].try_into().expect("2 bytes")),
    };
    let owner_hex = hex::encode(header.owner);
    let key = VerifyingKey::from_bytes(&header.owner)
        .map_err(|_| EscrowShareError::BadSignature(owner_hex.clone()))?;
    let (signed, sig) = bytes.split_at(bytes.len() - SIG_LEN);
    let sig = Signature::from_bytes(sig.try_into().expect("64 bytes"));
    key.verify(signed, &sig)
        .map_err(|_| EscrowShareError::BadSignature(owner_hex))?;
    Ok(header)
}

/// Open an escrow share with the heir's transport seed, checking that it
/// is signed by `owner` (the owner id in the heir's letter). Returns the
/// header and the share's words.
pub fn open_escrow_share(
    bytes: &[u8],
    owner: &[u8; 32],
    heir_transport_seed: &[u8; 32],
) -> Result<(EscrowShareHeader, Zeroizing<String>), EscrowShareError> {
    let header = peek_escrow_share(bytes)?;
    if &header.owner != owner {
        return Err(EscrowShareError::BadSignature(hex::encode(owner)));
    }
    let ephemeral = bytes[71..103].try_into().expect("32 bytes");
    let plain = SealedTo::open_with(CTX_ESCROW, heir_transport_seed, ephemeral)
        .decrypt(
            bytes[103..127].try_into().expect("24 bytes"),
            &bytes[HEADER_LEN..bytes.len() - SIG_LEN],
            &bytes[..HEADER_LEN],
        )
        .ok_or(EscrowShareError::Undecryptable)?;
    match plain.split_first() {
        Some((&BODY_VERSION, words)) => {
            let words = std::str::from_utf8(words)
                .map_err(|_| EscrowShareError::Malformed("the share is not UTF-8"))?;
            Ok((header, Zeroizing::new(words.to_owned())))
        }
        Some((&v, _)) => Err(EscrowShareError::UnknownVersion(v)),
        None => Err(EscrowShareError::Malformed("empty body")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id_of(seed: &[u8; 32]) -> [u8; 32] {
        SigningKey::from_bytes(seed).verifying_key().to_bytes()
    }

    #[test]
    fn only_the_heir_opens_and_only_the_owners_signature_counts() {
        let (owner, heir, other) = (
            rand::random::<[u8; 32]>(),
            rand::random::<[u8; 32]>(),
            rand::random::<[u8; 32]>(),
        );
        let words = "academic acid acrobat romp chubby";
        let b = seal_escrow_share(&owner, &id_of(&heir), 0x1234, words).unwrap();
        let (h, got) = open_escrow_share(&b, &id_of(&owner), &heir).unwrap();
        assert_eq!(got.as_str(), words);
        assert_eq!(
            h,
            EscrowShareHeader {
                owner: id_of(&owner),
                heir: id_of(&heir),
                set_id: 0x1234
            }
        );
        assert_eq!(
            open_escrow_share(&b, &id_of(&owner), &other).unwrap_err(),
            EscrowShareError::Undecryptable
        );
        // A share a custodian made itself, sealed to the heir: not the owner's.
        let forged = seal_escrow_share(&other, &id_of(&heir), 0x1234, words).unwrap();
        assert!(matches!(
            open_escrow_share(&forged, &id_of(&owner), &heir),
            Err(EscrowShareError::BadSignature(_))
        ));
        for at in [0, 4, 6, 40, 70, 80, 110, 125, 140, b.len() - 1] {
            let mut bad = b.clone();
            bad[at] ^= 1;
            assert!(
                open_escrow_share(&bad, &id_of(&owner), &heir).is_err(),
                "byte {at}"
            );
        }
        for len in [0, 50, b.len() - 1] {
            assert!(peek_escrow_share(&b[..len]).is_err());
        }
    }
}
