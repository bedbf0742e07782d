//! Manifest and index-segment bodies (`docs/design.md` §5):
//! `ContainerManifest::decode`, `SnapshotManifest::decode`, `IndexSegment::decode`.

use std::fmt::Debug;
use trove_core::manifest::{
    ContainerManifest, IndexSegment, ManifestError, SnapshotManifest, MANIFEST_VERSION,
    SEGMENT_VERSION,
};
use trove_core::seal::BlobKind;

/// Manifests read and write version 1; segments read 1 and 2, write 2.
const MANIFEST_READ: &[u8] = &[MANIFEST_VERSION];
const SEGMENT_READ: &[u8] = &[1, SEGMENT_VERSION];

fn check<T: PartialEq + Debug>(
    data: &[u8],
    read: &[u8],
    decode: fn(&[u8]) -> Result<T, ManifestError>,
    encode: fn(&T) -> Vec<u8>,
) {
    let written = *read.last().expect("a version");
    match decode(data) {
        Ok(v) => {
            assert!(read.contains(&data[0]));
            let enc = encode(&v);
            assert_eq!(enc[0], written);
            let back = decode(&enc).expect("a decoded body re-encodes decodably");
            assert_eq!(back, v);
        }
        Err(ManifestError::Version(v)) => {
            assert_eq!(Some(&v), data.first());
            assert!(!read.contains(&v));
        }
        Err(_) => assert!(data.first().is_none_or(|v| read.contains(v))),
    }
}

/// Input: any bytes, as the body of each of the three types.
///
/// Asserts, for each type: a body is refused with `Version(v)` exactly when
/// its first byte `v` is not a version the type reads (1 for manifests, 1
/// and 2 for segments); whatever decodes re-encodes with the version written
/// to bytes that decode to the same value.
pub fn decode(data: &[u8]) {
    check(
        data,
        MANIFEST_READ,
        ContainerManifest::decode,
        ContainerManifest::encode,
    );
    check(
        data,
        MANIFEST_READ,
        SnapshotManifest::decode,
        SnapshotManifest::encode,
    );
    check(
        data,
        SEGMENT_READ,
        IndexSegment::decode,
        IndexSegment::encode,
    );
}

/// The same checks for the type an envelope of `kind` holds.
pub fn decode_as(kind: BlobKind, body: &[u8]) {
    match kind {
        BlobKind::ContainerManifest => check(
            body,
            MANIFEST_READ,
            ContainerManifest::decode,
            ContainerManifest::encode,
        ),
        BlobKind::SnapshotManifest => check(
            body,
            MANIFEST_READ,
            SnapshotManifest::decode,
            SnapshotManifest::encode,
        ),
        BlobKind::IndexSegment => check(
            body,
            SEGMENT_READ,
            IndexSegment::decode,
            IndexSegment::encode,
        ),
        _ => {}
    }
}
