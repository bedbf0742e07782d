//! Share files: a container's key and manifest sealed to one recipient, so
//! that only they can open it, and signed by the owner's identity, so that
//! they know whose data it is (`docs/design.md` §9e).
//!
//! The recipient is named by their owner id (the Ed25519 public key nodes
//! grant); the file is sealed to it with [`crate::sealed_to`].

use crate::ids::ContainerId;
use crate::keys::{ContainerKey, Identity, PublicIdentity};
use crate::manifest::ContainerManifest;
use crate::sealed_to::SealedTo;
use ed25519_dalek::{Signature, Signer, Verifier};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

pub const SHARE_MAGIC: &[u8; 4] = b"TRVS";
pub const SHARE_VERSION: u8 = 1;
/// Version byte in front of the sealed body.
const BODY_VERSION: u8 = 1;
const CTX_SHARE: &str = "trove 2026-11 share seal v1";
/// magic, version, sharer, recipient, container, ephemeral key, nonce, body length.
const HEADER_LEN: usize = 4 + 1 + 32 + 32 + 32 + 32 + 24 + 4;
const SIG_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShareError {
    #[error("not a Trove share file ({0})")]
    Malformed(&'static str),
    #[error("share file version {0} is not known to this Trove")]
    UnknownVersion(u8),
    #[error("the share file's signature does not verify: it was altered or damaged")]
    BadSignature,
    #[error("the recipient `{0}` is not an owner id (64 hex digits of an Ed25519 key)")]
    BadRecipient(String),
    #[error("the share file does not open with this identity's key")]
    Undecryptable,
}

/// What anyone can read of a share file (its signature checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareHeader {
    /// The owner's identity, which signs the file and the container's
    /// snapshots and segments.
    pub sharer: PublicIdentity,
    /// The recipient's owner id.
    pub recipient: [u8; 32],
    pub container: ContainerId,
}

/// What the recipient opens.
#[derive(Debug)]
pub struct ShareContents {
    /// The container manifest (its wrapped keys left out: they are the
    /// owner's).
    pub manifest: ContainerManifest,
    /// The container key and the keys that replaced it, oldest first
    /// (`ContainerKeys::of`).
    pub keys: Vec<ContainerKey>,
    pub created_unix: i64,
}

#[derive(Serialize, Deserialize)]
struct Body {
    manifest: ContainerManifest,
    keys: Vec<[u8; 32]>,
    created_unix: i64,
}

/// Seal `manifest` and its `keys` (oldest first) to the recipient with
/// owner id `recipient`, signed by `identity`.
pub fn seal_share(
    identity: &Identity,
    recipient: &[u8; 32],
    manifest: &ContainerManifest,
    keys: &[ContainerKey],
    created_unix: i64,
) -> Result<Vec<u8>, ShareError> {
    let seal = SealedTo::to(CTX_SHARE, recipient)
        .map_err(|_| ShareError::BadRecipient(hex::encode(recipient)))?;
    let nonce: [u8; 24] = rand::random();
    let mut plain = Zeroizing::new(vec![BODY_VERSION]);
    let mut manifest = manifest.clone();
    manifest.wrapped_key.clear();
    manifest.later_keys.clear();
    let body = Body {
        manifest,
        keys: keys.iter().map(|k| *k.as_bytes()).collect(),
        created_unix,
    };
    plain.extend_from_slice(&postcard::to_stdvec(&body).expect("a share body serializes"));
    let mut out = Vec::with_capacity(HEADER_LEN + plain.len() + 16 + SIG_LEN);
    out.extend_from_slice(SHARE_MAGIC);
    out.push(SHARE_VERSION);
    out.extend_from_slice(&identity.public().0);
    out.extend_from_slice(recipient);
    out.extend_from_slice(body.manifest.id.as_bytes());
    out.extend_from_slice(&seal.ephemeral_public);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&((plain.len() + 16) as u32).to_le_bytes());
    let sealed = seal.encrypt(&nonce, &plain, &out);
    out.extend_from_slice(&sealed);
    let sig = identity.signing_key().sign(&out);
    out.extend_from_slice(&sig.to_bytes());
    Ok(out)
}

/// Check a share file's form and signature; read its header.
pub fn peek_share(bytes: &[u8]) -> Result<ShareHeader, ShareError> {
    if bytes.len() < HEADER_LEN + 16 + SIG_LEN || &bytes[..4] != SHARE_MAGIC {
        return Err(ShareError::Malformed("too short or no TRVS magic"));
    }
    if bytes[4] != SHARE_VERSION {
        return Err(ShareError::UnknownVersion(bytes[4]));
    }
    let body_len = u32::from_le_bytes(bytes[157..161].try_into().expect("4 bytes")) as usize;
    if bytes.len() != HEADER_LEN + body_len + SIG_LEN {
        return Err(ShareError::Malformed(
            "its length does not match its header",
        ));
    }
    let header = ShareHeader {
        sharer: PublicIdentity(bytes[5..37].try_into().expect("32 bytes")),
        recipient: bytes[37..69].try_into().expect("32 bytes"),
        container: ContainerId(bytes[69..101].try_into().expect("32 bytes")),
    };
    let (signed, sig) = bytes.split_at(bytes.len() - SIG_LEN);
    let key = header
        .sharer
        .verifying_key()
        .ok_or(ShareError::BadSignature)?;
    let sig = Signature::from_bytes(sig.try_into().expect("64 bytes"));
    key.verify(signed, &sig)
        .map_err(|_| ShareError::BadSignature)?;
    Ok(header)
}

/// Open a share file with the recipient's transport seed (whose public
/// key is their owner id). The caller checks [`ShareHeader::recipient`]
/// first, to say plainly when a file is someone else's.
pub fn open_share(
    bytes: &[u8],
    transport_seed: &[u8; 32],
) -> Result<(ShareHeader, ShareContents), ShareError> {
    let header = peek_share(bytes)?;
    let ephemeral_public = bytes[101..133].try_into().expect("32 bytes");
    let plain = SealedTo::open_with(CTX_SHARE, transport_seed, ephemeral_public)
        .decrypt(
            bytes[133..157].try_into().expect("24 bytes"),
            &bytes[HEADER_LEN..bytes.len() - SIG_LEN],
            &bytes[..HEADER_LEN],
        )
        .ok_or(ShareError::Undecryptable)?;
    if plain.first() != Some(&BODY_VERSION) {
        return Err(ShareError::UnknownVersion(
            plain.first().copied().unwrap_or(0),
        ));
    }
    let mut body: Body =
        postcard::from_bytes(&plain[1..]).map_err(|_| ShareError::Malformed("body"))?;
    if body.manifest.id != header.container {
        return Err(ShareError::Malformed("the body names another container"));
    }
    if body.keys.is_empty() {
        return Err(ShareError::Malformed("no container key"));
    }
    let keys = body
        .keys
        .iter()
        .map(|k| ContainerKey::from_bytes(*k))
        .collect();
    body.keys.zeroize();
    Ok((
        header,
        ShareContents {
            manifest: body.manifest,
            keys,
            created_unix: body.created_unix,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::ChunkerParams;
    use crate::keys::MasterSecret;
    use crate::manifest::Redundancy;
    use ed25519_dalek::SigningKey;

    fn manifest() -> ContainerManifest {
        ContainerManifest {
            id: ContainerId(rand::random()),
            name: "photos".into(),
            revision: 3,
            created_unix: 1,
            redundancy: Redundancy { k: 2, m: 1 },
            chunker: ChunkerParams::default(),
            pack_target: 8 << 20,
            sources: vec!["/home/a/photos".into()],
            roster: Vec::new(),
            wrapped_key: vec![1; 73],
            later_keys: Vec::new(),
        }
    }

    fn owner_id(m: &MasterSecret) -> [u8; 32] {
        SigningKey::from_bytes(&m.transport_seed())
            .verifying_key()
            .to_bytes()
    }

    /// A share file written by the code before sealing moved to
    /// `sealed_to` (fixed keys, so this can be checked): it still opens,
    /// so share files keep their bytes.
    #[test]
    fn a_share_file_sealed_before_sealed_to_still_opens() {
        let file = include_bytes!("../tests/fixtures/share_v1.trvs");
        let owner = MasterSecret::from_bytes([5; 32]);
        let friend = MasterSecret::from_bytes([7; 32]);
        let (h, got) = open_share(file, &friend.transport_seed()).unwrap();
        assert_eq!(h.sharer, owner.identity().public());
        assert_eq!(h.recipient, owner_id(&friend));
        assert_eq!(h.container, ContainerId([9; 32]));
        let keys: Vec<_> = got.keys.iter().map(|k| *k.as_bytes()).collect();
        assert_eq!(keys, [[3; 32], [4; 32]]);
        assert_eq!(
            (got.manifest.name.as_str(), got.created_unix),
            ("photos", 42)
        );
        assert!(open_share(file, &owner.transport_seed()).is_err());
    }

    #[test]
    fn only_the_recipient_opens_a_share_and_any_change_is_refused() {
        let (owner, friend, stranger) = (
            MasterSecret::generate(),
            MasterSecret::generate(),
            MasterSecret::generate(),
        );
        let m = manifest();
        let keys = [ContainerKey::generate(), ContainerKey::generate()];
        let file = seal_share(&owner.identity(), &owner_id(&friend), &m, &keys, 42).unwrap();

        let (h, got) = open_share(&file, &friend.transport_seed()).unwrap();
        assert_eq!(h.sharer, owner.identity().public());
        assert_eq!(h.recipient, owner_id(&friend));
        let got_keys: Vec<_> = got.keys.iter().map(|k| *k.as_bytes()).collect();
        assert_eq!(got_keys, [*keys[0].as_bytes(), *keys[1].as_bytes()]);
        assert_eq!(got.manifest.name, "photos");
        assert!(
            got.manifest.wrapped_key.is_empty(),
            "the owner's wrap stays home"
        );
        assert_eq!(got.created_unix, 42);

        assert_eq!(
            open_share(&file, &stranger.transport_seed()).unwrap_err(),
            ShareError::Undecryptable
        );
        for at in [0, 4, 10, 40, 80, 120, 140, 170, file.len() - 1] {
            let mut bad = file.clone();
            bad[at] ^= 1;
            assert!(
                open_share(&bad, &friend.transport_seed()).is_err(),
                "byte {at}"
            );
        }
        for len in [0, 100, file.len() - 1] {
            assert!(open_share(&file[..len], &friend.transport_seed()).is_err());
        }
    }
}
