//! What a peer accepts as a metadata object. Container manifests, snapshot
//! manifests and index segments are the only record of what the fragments
//! are, so a peer must not let anyone who can merely talk to it (a stolen
//! transport key, a buggy client) replace them with garbage or roll them
//! back. A peer holds no key to open them, but it can check the envelope's
//! signature against the signer its header names, pin that signer, and read
//! the signed revision in the clear (see `docs/design.md`, "Metadata on
//! peers"):
//!
//! - the bytes must be a well-formed envelope whose signature verifies, of
//!   the kind and object id its key names;
//! - its signer must be the pinned identity (the owner's on a node; the
//!   signer of the container's objects already held, on a folder peer);
//! - a container manifest replaces a valid held copy only with a higher
//!   revision; a snapshot or index segment, whose bytes never change, never
//!   replaces a valid held copy;
//! - a held copy that does not verify (damaged on disk) may be replaced.
//!
//! Whatever is replaced goes to the trash for the grace period.

use serde::{Deserialize, Serialize};
use trove_core::envelope::{self, EnvelopeHeader};
use trove_core::handover::{self, HandOver};
use trove_core::keys::PublicIdentity;
use trove_core::seal::BlobKind;

use crate::peer::{MetaKey, PeerError};

/// Why a peer refused to store a metadata object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum MetaRejection {
    /// Not a signed envelope, or one whose signature does not verify.
    #[error("it is not a validly signed envelope ({0})")]
    Invalid(String),
    /// A valid envelope stored under the key of another object.
    #[error("its envelope names another object or kind than the key it was sent under")]
    WrongKey,
    /// Signed by an identity other than the one this peer keeps objects for.
    #[error(
        "it is signed by identity {found}, but this peer keeps these objects for identity {expected}"
    )]
    WrongSigner {
        /// Fingerprint of the pinned identity.
        expected: String,
        /// Fingerprint of the envelope's signer.
        found: String,
    },
    /// A container manifest that is not newer than the valid copy held.
    #[error(
        "it is revision {offered} and the peer holds revision {held}: a container manifest \
         is only ever replaced by a newer revision"
    )]
    NotNewer {
        /// Revision of the copy the peer holds.
        held: u64,
        /// Revision of the copy offered.
        offered: u64,
    },
    /// A different valid copy of an object that never changes.
    #[error("the peer holds a different validly signed copy, and snapshots and index segments never change")]
    Immutable,
}

/// What storing an admitted object means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The same bytes are already held: nothing to write.
    Unchanged,
    /// Store it; `replaces` says whether a held copy goes to the trash.
    Store { replaces: bool },
}

/// Decide whether `offered` may be stored under `key`, given the copy the
/// peer holds (if any) and the identity it is pinned to (if any).
pub fn admit(
    key: &MetaKey,
    offered: &[u8],
    held: Option<&[u8]>,
    pinned: Option<&PublicIdentity>,
) -> Result<Admission, MetaRejection> {
    if held == Some(offered) {
        return Ok(Admission::Unchanged);
    }
    let new = envelope::verify(offered).map_err(|e| MetaRejection::Invalid(e.to_string()))?;
    if !names(key, &new) {
        return Err(MetaRejection::WrongKey);
    }
    let signer = pinned.copied().unwrap_or(new.signer);
    if new.signer != signer {
        return Err(MetaRejection::WrongSigner {
            expected: signer.fingerprint(),
            found: new.signer.fingerprint(),
        });
    }
    let Some(held) = held else {
        return Ok(Admission::Store { replaces: false });
    };
    // A held copy that is damaged, or is not a valid object of this key and
    // signer, protects nothing: replace it.
    let old = match envelope::verify(held) {
        Ok(h) if names(key, &h) && h.signer == signer => h,
        _ => return Ok(Admission::Store { replaces: true }),
    };
    match key {
        MetaKey::Container(_) if new.revision > old.revision => {
            Ok(Admission::Store { replaces: true })
        }
        MetaKey::Container(_) => Err(MetaRejection::NotNewer {
            held: old.revision,
            offered: new.revision,
        }),
        MetaKey::Snapshot(..) | MetaKey::IndexSegment(..) => Err(MetaRejection::Immutable),
    }
}

/// Whether an envelope header is the object `key` names.
fn names(key: &MetaKey, h: &EnvelopeHeader) -> bool {
    match key {
        MetaKey::Container(c) => h.kind == BlobKind::ContainerManifest && h.object == c.0,
        MetaKey::Snapshot(_, s) => h.kind == BlobKind::SnapshotManifest && h.object == s.0,
        MetaKey::IndexSegment(_, g) => h.kind == BlobKind::IndexSegment && h.object == g.0,
    }
}

/// The signer of a held object, if it is a valid envelope of `key`: what a
/// folder peer pins a container to.
pub fn valid_signer(key: &MetaKey, held: &[u8]) -> Option<PublicIdentity> {
    envelope::verify(held)
        .ok()
        .filter(|h| names(key, h))
        .map(|h| h.signer)
}

/// The identity a peer pins a container to: the signer of its held
/// container manifest, else of the first of its other objects (snapshots
/// and segments) that verifies, followed through the hand-over
/// certificates the peer holds (a master secret rotation). `others` lists
/// those objects, and is called only when the manifest does not name the
/// signer; a listing that fails fails the question (a pin is never skipped
/// because a listing broke). `read` fetches a held copy, `None` when absent
/// or unreadable; `handed` the certificate an identity made, if held.
pub fn held_signer<E>(
    container: &trove_core::ContainerId,
    others: impl FnOnce() -> Result<Vec<MetaKey>, E>,
    read: impl Fn(&MetaKey) -> Option<Vec<u8>>,
    handed: impl Fn(&PublicIdentity) -> Option<Vec<u8>>,
) -> Result<Option<PublicIdentity>, E> {
    let signer = |key: &MetaKey| valid_signer(key, &read(key)?);
    let held = match signer(&MetaKey::Container(*container)) {
        Some(s) => Some(s),
        None => others()?.iter().find_map(signer),
    };
    Ok(held.map(|s| handover::successor(s, handed)))
}

/// Whether peer `peer` (its label) may keep `offered` as the hand-over
/// certificate of its old identity, given the one it holds: the same bytes
/// are `Ok(false)` (nothing to write), another valid certificate of that
/// identity is refused (an identity hands over once), anything else
/// `Ok(true)`.
pub fn admit_handover(
    peer: &str,
    offered: &HandOver,
    held: Option<&[u8]>,
) -> Result<bool, PeerError> {
    let Some(held) = held else { return Ok(true) };
    let refused = |reason: String| PeerError::Refused {
        peer: peer.to_owned(),
        reason,
    };
    match HandOver::decode(held) {
        Ok(h) if h == *offered => Ok(false),
        Ok(h) if h.old_identity == offered.old_identity => Err(refused(format!(
            "identity {} already handed over to identity {} here, and an identity hands over \
             only once; finish the rotation that made it (`trove recovery rotate` on the home \
             that started it)",
            h.old_identity.fingerprint(),
            h.new_identity.fingerprint()
        ))),
        _ => Ok(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trove_core::keys::MasterSecret;
    use trove_core::{ContainerId, SnapshotId};

    fn manifest(m: &MasterSecret, c: ContainerId, revision: u64) -> Vec<u8> {
        envelope::seal_signed(
            &m.identity(),
            &m.manifest_key(),
            BlobKind::ContainerManifest,
            &c.0,
            revision,
            b"body",
        )
    }

    #[test]
    fn container_manifests_only_move_forward() {
        let m = MasterSecret::generate();
        let c = ContainerId([1; 32]);
        let key = MetaKey::Container(c);
        let (r1, r2) = (manifest(&m, c, 1), manifest(&m, c, 2));
        assert_eq!(
            admit(&key, &r1, None, None),
            Ok(Admission::Store { replaces: false })
        );
        assert_eq!(admit(&key, &r1, Some(&r1), None), Ok(Admission::Unchanged));
        assert_eq!(
            admit(&key, &r2, Some(&r1), None),
            Ok(Admission::Store { replaces: true })
        );
        assert_eq!(
            admit(&key, &r1, Some(&r2), None),
            Err(MetaRejection::NotNewer {
                held: 2,
                offered: 1
            })
        );
        // Same revision, resealed: not newer either.
        let r2b = manifest(&m, c, 2);
        assert!(matches!(
            admit(&key, &r2b, Some(&r2), None),
            Err(MetaRejection::NotNewer { .. })
        ));
    }

    #[test]
    fn garbage_foreign_signers_and_misfiled_objects_are_refused() {
        let m = MasterSecret::generate();
        let c = ContainerId([1; 32]);
        let key = MetaKey::Container(c);
        let good = manifest(&m, c, 5);
        assert!(matches!(
            admit(&key, b"x", Some(&good), None),
            Err(MetaRejection::Invalid(_))
        ));
        let mut flipped = good.clone();
        flipped[100] ^= 1;
        assert!(matches!(
            admit(&key, &flipped, None, None),
            Err(MetaRejection::Invalid(_))
        ));
        let thief = MasterSecret::generate();
        let pin = m.identity().public();
        assert!(matches!(
            admit(&key, &manifest(&thief, c, 9), Some(&good), Some(&pin)),
            Err(MetaRejection::WrongSigner { .. })
        ));
        // Without a held copy the pin still applies.
        assert!(matches!(
            admit(&key, &manifest(&thief, c, 9), None, Some(&pin)),
            Err(MetaRejection::WrongSigner { .. })
        ));
        let other = MetaKey::Container(ContainerId([2; 32]));
        assert_eq!(
            admit(&other, &good, None, None),
            Err(MetaRejection::WrongKey)
        );
        assert_eq!(
            admit(&MetaKey::Snapshot(c, SnapshotId(c.0)), &good, None, None),
            Err(MetaRejection::WrongKey)
        );
    }

    #[test]
    fn snapshots_never_change_but_a_damaged_copy_is_replaced() {
        let m = MasterSecret::generate();
        let c = ContainerId([1; 32]);
        let s = SnapshotId([3; 32]);
        let key = MetaKey::Snapshot(c, s);
        let seal = |body: &[u8]| {
            envelope::seal_signed(
                &m.identity(),
                &m.manifest_key(),
                BlobKind::SnapshotManifest,
                &s.0,
                0,
                body,
            )
        };
        let (a, b) = (seal(b"a"), seal(b"b"));
        assert_eq!(
            admit(&key, &b, Some(&a), None),
            Err(MetaRejection::Immutable)
        );
        assert_eq!(
            admit(&key, &a, Some(b"damaged"), None),
            Ok(Admission::Store { replaces: true })
        );
        assert_eq!(valid_signer(&key, &a), Some(m.identity().public()));
        assert_eq!(valid_signer(&key, b"damaged"), None);
    }
}
