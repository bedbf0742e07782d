//! Typed 32-byte identifiers. Every id in Trove is 32 bytes on disk and on the
//! wire; the type says what it names so that a pack id can never be passed
//! where a fragment id is expected.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Ids serialize as 32 raw bytes in binary formats (postcard: every on-disk
/// and wire format) and as 64 hex digits in human-readable ones (JSON: the
/// CLI's `--json` rows), so a typed id can sit in a report as it is.
fn serialize_id<S: Serializer>(name: &'static str, id: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        s.serialize_str(&hex::encode(id))
    } else {
        s.serialize_newtype_struct(name, id)
    }
}

fn deserialize_id<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
    if d.is_human_readable() {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&s, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    } else {
        /// The derived form: a newtype around the bytes.
        #[derive(Deserialize)]
        struct Raw([u8; 32]);
        Ok(Raw::deserialize(d)?.0)
    }
}

/// An id string that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an id (64 hex digits)")]
pub struct ParseIdError(pub String);

macro_rules! define_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 32]);

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                serialize_id(stringify!($name), &self.0, s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                deserialize_id(d).map(Self)
            }
        }

        impl $name {
            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
            /// Full lower-case hex (64 digits).
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
            /// The first 8 hex digits, for humans.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }
            /// A fresh random id.
            pub fn random() -> Self {
                Self(rand::random())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let mut out = [0u8; 32];
                hex::decode_to_slice(s, &mut out).map_err(|_| ParseIdError(s.to_owned()))?;
                Ok(Self(out))
            }
        }
    };
}

define_id!(
    /// Keyed BLAKE3 of a plaintext chunk (key derived from the container key),
    /// so equal chunks dedup inside a container but cannot be matched against
    /// known files by anyone without the key.
    ChunkId
);
define_id!(
    /// Keyed BLAKE3 of a serialized directory tree.
    TreeId
);
define_id!(
    /// The id of any blob in a pack: a [`ChunkId`] for data, a [`TreeId`] for trees.
    BlobId
);
define_id!(
    /// Plain BLAKE3 of the whole pack (ciphertext), so it names the bytes.
    PackId
);
define_id!(
    /// Plain BLAKE3 of a fragment's bytes (header and shard): any holder can verify it.
    FragmentId
);
define_id!(
    /// Random id of a data container.
    ContainerId
);
define_id!(
    /// Random id of a snapshot.
    SnapshotId
);
define_id!(
    /// Random id of an index segment.
    SegmentId
);
define_id!(
    /// Random id of a peer in a container's roster.
    PeerId
);

impl From<ChunkId> for BlobId {
    fn from(id: ChunkId) -> Self {
        Self(id.0)
    }
}

impl From<TreeId> for BlobId {
    fn from(id: TreeId) -> Self {
        Self(id.0)
    }
}

impl FragmentId {
    /// The id of a fragment's bytes.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    /// The id of the fragment made of `parts` end to end.
    pub fn of_parts(parts: &[&[u8]]) -> Self {
        let mut h = blake3::Hasher::new();
        for part in parts {
            h.update(part);
        }
        Self(*h.finalize().as_bytes())
    }
}

impl PackId {
    /// The id of a pack's bytes.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects_garbage() {
        let id = PackId::random();
        assert_eq!(id.to_hex().parse::<PackId>().unwrap(), id);
        assert!("abc".parse::<PackId>().is_err());
        assert!("zz".repeat(32).parse::<PackId>().is_err());
        assert_eq!(id.short().len(), 8);
    }

    /// Binary formats keep the derived encoding (32 raw bytes: the formats
    /// of docs/design.md), JSON shows hex.
    #[test]
    fn ids_are_raw_bytes_in_postcard_and_hex_in_json() {
        #[derive(Serialize, Deserialize)]
        struct Derived([u8; 32]);
        let id = SnapshotId([7; 32]);
        let bytes = postcard::to_stdvec(&id).unwrap();
        assert_eq!(bytes, postcard::to_stdvec(&Derived([7; 32])).unwrap());
        assert_eq!(bytes, vec![7; 32]);
        assert_eq!(postcard::from_bytes::<SnapshotId>(&bytes).unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{}\"", "07".repeat(32)));
        assert_eq!(serde_json::from_str::<SnapshotId>(&json).unwrap(), id);
    }
}
