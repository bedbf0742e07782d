//! The objects that must be findable without the local index, replicated
//! whole to every peer inside signed envelopes (see [`crate::envelope`]):
//! container manifests, snapshot manifests and index segments. Each body is a
//! version byte followed by its postcard encoding.

use crate::chunk::ChunkerParams;
use crate::ids::{ContainerId, FragmentId, PackId, PeerId, SegmentId, SnapshotId, TreeId};
use crate::pack::PackEntry;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version byte of manifest and segment bodies.
pub const MANIFEST_VERSION: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    #[error("unknown manifest version {0}")]
    Version(u8),
    #[error("manifest is malformed: {0}")]
    Malformed(String),
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = vec![MANIFEST_VERSION];
    out.extend_from_slice(&postcard::to_stdvec(v).expect("manifest serializes"));
    out
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ManifestError> {
    match bytes.first() {
        Some(&MANIFEST_VERSION) => {}
        Some(&v) => return Err(ManifestError::Version(v)),
        None => return Err(ManifestError::Malformed("empty".into())),
    }
    postcard::from_bytes(&bytes[1..]).map_err(|e| ManifestError::Malformed(e.to_string()))
}

/// `k` data + `m` parity fragments per pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redundancy {
    pub k: u8,
    pub m: u8,
}

impl Redundancy {
    /// The default for `peers` peers: about a third of them parity, e.g.
    /// 4+2 for six, 2+1 for three, 1+1 for two, 1+0 for one.
    pub fn for_peers(peers: usize) -> Self {
        let n = peers.clamp(1, 255);
        let m = if n < 2 { 0 } else { n.div_ceil(3).max(1) };
        let m = if n - m < 1 { n - 1 } else { m };
        Self {
            k: (n - m) as u8,
            m: m as u8,
        }
    }
    pub fn total(&self) -> usize {
        self.k as usize + self.m as usize
    }
}

impl std::fmt::Display for Redundancy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}+{}", self.k, self.m)
    }
}

impl std::str::FromStr for Redundancy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (k, m) = s
            .split_once('+')
            .ok_or_else(|| format!("redundancy `{s}` is not K+M, e.g. 4+2"))?;
        let k: u8 = k
            .trim()
            .parse()
            .map_err(|_| format!("`{k}` is not a number"))?;
        let m: u8 = m
            .trim()
            .parse()
            .map_err(|_| format!("`{m}` is not a number"))?;
        if k == 0 || k as usize + m as usize > 255 {
            return Err(format!("redundancy {k}+{m}: need k >= 1 and k+m <= 255"));
        }
        Ok(Self { k, m })
    }
}

/// How to reach one peer of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRecord {
    pub id: PeerId,
    pub name: String,
    /// Where it is: `dir:/path` for a folder peer.
    pub location: String,
    pub labels: BTreeMap<String, String>,
}

/// Everything needed to use a container, given the master secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerManifest {
    pub id: ContainerId,
    pub name: String,
    /// Incremented on every change, so the newest signed copy wins when a
    /// new machine reads manifests from several peers.
    pub revision: u64,
    pub created_unix: i64,
    pub redundancy: Redundancy,
    pub chunker: ChunkerParams,
    pub pack_target: u32,
    /// Source paths on the owner's machine, as given at creation.
    pub sources: Vec<String>,
    pub roster: Vec<PeerRecord>,
    /// The container key wrapped by the master secret (see `keys::MasterSecret::wrap`).
    pub wrapped_key: Vec<u8>,
}

/// Counts of one backup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSummary {
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unchanged: u64,
    pub dirs: u64,
    pub bytes_read: u64,
    pub bytes_total: u64,
    pub bytes_stored: u64,
    pub blobs_new: u64,
    pub packs_new: u64,
    pub unreadable: u64,
}

/// One committed snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotManifest {
    pub id: SnapshotId,
    pub container: ContainerId,
    pub time_unix_ns: i64,
    pub host: String,
    pub sources: Vec<String>,
    pub root: TreeId,
    pub parent: Option<SnapshotId>,
    pub summary: SnapshotSummary,
}

/// Where one fragment of a pack lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FragmentLocation {
    pub index: u8,
    pub id: FragmentId,
    pub peer: PeerId,
}

/// One pack: its fragments and its blob table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackRecord {
    pub id: PackId,
    pub k: u8,
    pub m: u8,
    pub pack_len: u64,
    pub fragments: Vec<FragmentLocation>,
    pub blobs: Vec<PackEntry>,
}

/// A batch of packs, written by one backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexSegment {
    pub id: SegmentId,
    pub container: ContainerId,
    pub packs: Vec<PackRecord>,
}

macro_rules! body_codec {
    ($t:ty) => {
        impl $t {
            pub fn encode(&self) -> Vec<u8> {
                encode(self)
            }
            pub fn decode(bytes: &[u8]) -> Result<Self, ManifestError> {
                decode(bytes)
            }
        }
    };
}
body_codec!(ContainerManifest);
body_codec!(SnapshotManifest);
body_codec!(IndexSegment);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_redundancy() {
        let r = |n| Redundancy::for_peers(n).to_string();
        assert_eq!(r(1), "1+0");
        assert_eq!(r(2), "1+1");
        assert_eq!(r(3), "2+1");
        assert_eq!(r(6), "4+2");
        assert_eq!(r(9), "6+3");
        assert_eq!(
            "4+2".parse::<Redundancy>().unwrap(),
            Redundancy { k: 4, m: 2 }
        );
        assert!("0+2".parse::<Redundancy>().is_err());
        assert!("4-2".parse::<Redundancy>().is_err());
    }

    #[test]
    fn snapshot_round_trip_and_version() {
        let s = SnapshotManifest {
            id: SnapshotId([1; 32]),
            container: ContainerId([2; 32]),
            time_unix_ns: 5,
            host: "h".into(),
            sources: vec!["/x".into()],
            root: TreeId([3; 32]),
            parent: None,
            summary: SnapshotSummary::default(),
        };
        let bytes = s.encode();
        assert_eq!(SnapshotManifest::decode(&bytes).unwrap(), s);
        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert_eq!(
            SnapshotManifest::decode(&v2),
            Err(ManifestError::Version(2))
        );
    }
}
