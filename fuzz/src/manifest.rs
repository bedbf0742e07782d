//! Manifest and index-segment bodies (`docs/design.md` §5):
//! `ContainerManifest::decode`, `SnapshotManifest::decode`, `IndexSegment::decode`.

use std::fmt::Debug;
use trove_core::manifest::{
    ContainerManifest, IndexSegment, ManifestError, SnapshotManifest, MANIFEST_VERSION,
};
use trove_core::seal::BlobKind;

fn check<T: PartialEq + Debug>(
    data: &[u8],
    decode: fn(&[u8]) -> Result<T, ManifestError>,
    encode: fn(&T) -> Vec<u8>,
) {
    match decode(data) {
        Ok(v) => {
            assert_eq!(data[0], MANIFEST_VERSION);
            let enc = encode(&v);
            assert_eq!(enc[0], MANIFEST_VERSION);
            let back = decode(&enc).expect("a decoded body re-encodes decodably");
            assert_eq!(back, v);
        }
        Err(ManifestError::Version(v)) => {
            assert_eq!(Some(&v), data.first());
            assert_ne!(v, MANIFEST_VERSION);
        }
        Err(_) => assert!(data.first().is_none_or(|&v| v == MANIFEST_VERSION)),
    }
}

/// Input: any bytes, as the body of each of the three types.
///
/// Asserts, for each type: a body is refused with `Version(v)` exactly when
/// its first byte `v` is not 1; whatever decodes re-encodes with version 1
/// to bytes that decode to the same value.
pub fn decode(data: &[u8]) {
    check(data, ContainerManifest::decode, ContainerManifest::encode);
    check(data, SnapshotManifest::decode, SnapshotManifest::encode);
    check(data, IndexSegment::decode, IndexSegment::encode);
}

/// The same checks for the type an envelope of `kind` holds.
pub fn decode_as(kind: BlobKind, body: &[u8]) {
    match kind {
        BlobKind::ContainerManifest => {
            check(body, ContainerManifest::decode, ContainerManifest::encode)
        }
        BlobKind::SnapshotManifest => {
            check(body, SnapshotManifest::decode, SnapshotManifest::encode)
        }
        BlobKind::IndexSegment => check(body, IndexSegment::decode, IndexSegment::encode),
        _ => {}
    }
}
