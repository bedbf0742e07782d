//! The objects that must be findable without the local index, replicated
//! whole to every peer inside signed envelopes (see [`crate::envelope`]):
//! container manifests, snapshot manifests and index segments. Each body is a
//! version byte followed by its postcard encoding.

use crate::chunk::ChunkerParams;
use crate::ids::{ContainerId, FragmentId, PackId, PeerId, SegmentId, SnapshotId, TreeId};
use crate::keys::{ContainerKey, ContainerKeys, KeyError, MasterSecret};
use crate::pack::PackEntry;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Version byte of container and snapshot manifest bodies.
pub const MANIFEST_VERSION: u8 = 1;
/// Version byte of index segment bodies: 2 made segments an ordered log
/// (`seq`, removed packs, forgotten and restored snapshots, compaction);
/// version 1 segments are still read (as `seq` 0 with nothing else).
pub const SEGMENT_VERSION: u8 = 2;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    #[error("unknown manifest version {0}")]
    Version(u8),
    #[error("manifest is malformed: {0}")]
    Malformed(String),
}

fn encode<T: Serialize>(version: u8, v: &T) -> Vec<u8> {
    let mut out = vec![version];
    out.extend_from_slice(&postcard::to_stdvec(v).expect("manifest serializes"));
    out
}

/// The version byte and the postcard bytes after it.
fn split(bytes: &[u8]) -> Result<(u8, &[u8]), ManifestError> {
    match bytes.split_first() {
        Some((&v, rest)) => Ok((v, rest)),
        None => Err(ManifestError::Malformed("empty".into())),
    }
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ManifestError> {
    match split(bytes)? {
        (MANIFEST_VERSION, rest) => from_postcard(rest),
        (v, _) => Err(ManifestError::Version(v)),
    }
}

fn from_postcard<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ManifestError> {
    postcard::from_bytes(bytes).map_err(|e| ManifestError::Malformed(e.to_string()))
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
    /// Keys that replaced it (a share revoked), oldest first, wrapped the
    /// same way: new data is sealed with the last (`ContainerKeys::of`).
    /// Body version 2; a manifest without any is written as version 1.
    pub later_keys: Vec<Vec<u8>>,
}

/// A version-1 container manifest body: no `later_keys`.
#[derive(Serialize, Deserialize)]
struct ContainerManifestV1 {
    id: ContainerId,
    name: String,
    revision: u64,
    created_unix: i64,
    redundancy: Redundancy,
    chunker: ChunkerParams,
    pack_target: u32,
    sources: Vec<String>,
    roster: Vec<PeerRecord>,
    wrapped_key: Vec<u8>,
}

/// Body version of a container manifest with `later_keys`.
pub const CONTAINER_MANIFEST_V2: u8 = 2;

impl ContainerManifest {
    /// Version 1 while the container has its first key (readable by every
    /// Trove), version 2 once a key was replaced.
    pub fn encode(&self) -> Vec<u8> {
        if self.later_keys.is_empty() {
            let m = self.clone();
            let v1 = ContainerManifestV1 {
                id: m.id,
                name: m.name,
                revision: m.revision,
                created_unix: m.created_unix,
                redundancy: m.redundancy,
                chunker: m.chunker,
                pack_target: m.pack_target,
                sources: m.sources,
                roster: m.roster,
                wrapped_key: m.wrapped_key,
            };
            encode(MANIFEST_VERSION, &v1)
        } else {
            encode(CONTAINER_MANIFEST_V2, self)
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, ManifestError> {
        match split(bytes)? {
            (CONTAINER_MANIFEST_V2, rest) => from_postcard(rest),
            (MANIFEST_VERSION, rest) => {
                let v1: ContainerManifestV1 = from_postcard(rest)?;
                Ok(Self {
                    id: v1.id,
                    name: v1.name,
                    revision: v1.revision,
                    created_unix: v1.created_unix,
                    redundancy: v1.redundancy,
                    chunker: v1.chunker,
                    pack_target: v1.pack_target,
                    sources: v1.sources,
                    roster: v1.roster,
                    wrapped_key: v1.wrapped_key,
                    later_keys: Vec::new(),
                })
            }
            (v, _) => Err(ManifestError::Version(v)),
        }
    }

    /// Unwrap the container's keys with the owner's master secret.
    pub fn keys(&self, master: &MasterSecret) -> Result<ContainerKeys, KeyError> {
        let all = self.raw_keys(master)?;
        Ok(ContainerKeys::of(&all[0], &all[1..]))
    }

    /// The container key and the keys that replaced it, oldest first.
    pub fn raw_keys(&self, master: &MasterSecret) -> Result<Vec<ContainerKey>, KeyError> {
        std::iter::once(&self.wrapped_key)
            .chain(&self.later_keys)
            .map(|w| master.unwrap(&self.id, w))
            .collect()
    }
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

/// One entry of a container's index log: segments apply in `(seq, id)`
/// order, and a later one wins. A backup adds the records of its packs; a
/// repair replaces records (new fragment locations); a prune removes packs
/// and may compact (repeat the records of older segments, which it then
/// supersedes); forget and undelete record which snapshots are gone and
/// which came back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexSegment {
    pub id: SegmentId,
    pub container: ContainerId,
    /// Position in the container's log (one more than the highest known
    /// when it was written; version-1 segments are 0).
    pub seq: u64,
    /// Pack records added or replaced.
    pub packs: Vec<PackRecord>,
    /// Packs deleted: no snapshot references them any more.
    pub removed: Vec<PackId>,
    /// Snapshots forgotten (their manifests deleted on purpose).
    pub forgotten: Vec<SnapshotId>,
    /// Snapshots brought back by undelete.
    pub restored: Vec<SnapshotId>,
    /// Older segments whose records this one repeats; they may be deleted.
    pub supersedes: Vec<SegmentId>,
}

/// The version-1 segment body: a backup's packs.
#[derive(Deserialize)]
struct IndexSegmentV1 {
    id: SegmentId,
    container: ContainerId,
    packs: Vec<PackRecord>,
}

impl IndexSegment {
    /// A segment that only adds pack records (what a backup writes).
    pub fn adding(id: SegmentId, container: ContainerId, seq: u64, packs: Vec<PackRecord>) -> Self {
        Self {
            id,
            container,
            seq,
            packs,
            removed: Vec::new(),
            forgotten: Vec::new(),
            restored: Vec::new(),
            supersedes: Vec::new(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        encode(SEGMENT_VERSION, self)
    }

    /// Decode a version-2 body, or a version-1 body as `seq` 0.
    pub fn decode(bytes: &[u8]) -> Result<Self, ManifestError> {
        match split(bytes)? {
            (SEGMENT_VERSION, rest) => from_postcard(rest),
            (1, rest) => {
                let v1: IndexSegmentV1 = from_postcard(rest)?;
                Ok(Self::adding(v1.id, v1.container, 0, v1.packs))
            }
            (v, _) => Err(ManifestError::Version(v)),
        }
    }
}

/// What a container's index log says once every segment is applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexState {
    /// The current record of every pack not removed.
    pub packs: BTreeMap<PackId, PackRecord>,
    /// Snapshots forgotten and not restored since.
    pub forgotten: BTreeSet<SnapshotId>,
    /// Segments that a later segment repeats (compaction).
    pub superseded: BTreeSet<SegmentId>,
}

/// Apply segments in log order, `(seq, id)`: a later record of a pack
/// replaces an earlier one, a removal deletes it, and the last of forget
/// and restore decides a snapshot.
///
/// A segment that some segment supersedes is skipped: the superseding one
/// repeats every record of it that still holds (a compaction writes the
/// whole live state, and carries forward the forgotten snapshots and every
/// segment superseded before). So a superseded segment that lingers on a
/// peer, live or in its trash, never brings back a pack that was deleted.
pub fn replay<'a>(segments: impl IntoIterator<Item = &'a IndexSegment>) -> IndexState {
    let mut ordered: Vec<&IndexSegment> = segments.into_iter().collect();
    ordered.sort_by_key(|s| (s.seq, s.id));
    let mut state = IndexState::default();
    for s in &ordered {
        state.superseded.extend(s.supersedes.iter().copied());
    }
    for s in ordered {
        if state.superseded.contains(&s.id) {
            continue;
        }
        for p in &s.packs {
            state.packs.insert(p.id, p.clone());
        }
        for p in &s.removed {
            state.packs.remove(p);
        }
        for id in &s.forgotten {
            state.forgotten.insert(*id);
        }
        for id in &s.restored {
            state.forgotten.remove(id);
        }
    }
    state
}

macro_rules! body_codec {
    ($t:ty) => {
        impl $t {
            pub fn encode(&self) -> Vec<u8> {
                encode(MANIFEST_VERSION, self)
            }
            pub fn decode(bytes: &[u8]) -> Result<Self, ManifestError> {
                decode(bytes)
            }
        }
    };
}
body_codec!(SnapshotManifest);

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
    fn a_container_manifest_is_version_1_until_a_key_is_replaced() {
        let master = MasterSecret::generate();
        let id = ContainerId([4; 32]);
        let first = ContainerKey::generate();
        let mut m = ContainerManifest {
            id,
            name: "c".into(),
            revision: 1,
            created_unix: 2,
            redundancy: Redundancy { k: 2, m: 1 },
            chunker: ChunkerParams::default(),
            pack_target: 8 << 20,
            sources: vec!["/s".into()],
            roster: Vec::new(),
            wrapped_key: master.wrap(&id, &first),
            later_keys: Vec::new(),
        };
        let v1 = m.encode();
        assert_eq!(v1[0], MANIFEST_VERSION, "readable by every Trove");
        assert_eq!(ContainerManifest::decode(&v1).unwrap(), m);
        let k1 = m.keys(&master).unwrap();

        let second = ContainerKey::generate();
        m.later_keys.push(master.wrap(&id, &second));
        let v2 = m.encode();
        assert_eq!(v2[0], CONTAINER_MANIFEST_V2);
        assert_eq!(ContainerManifest::decode(&v2).unwrap(), m);
        let k2 = m.keys(&master).unwrap();
        // Ids and cuts stay the first key's, so data keeps deduplicating;
        // sealing moves to the new key; the old one still opens.
        assert_eq!(k1.chunk_id(b"x"), k2.chunk_id(b"x"));
        assert_eq!(k1.chunker_seed, k2.chunker_seed);
        let sealed_before = crate::seal::seal(
            &k1.seal,
            crate::seal::BlobKind::Data,
            &[9; 32],
            b"old data",
            crate::seal::Compression::Off,
        );
        assert!(crate::seal::open(
            &k2.seal,
            crate::seal::BlobKind::Data,
            &[9; 32],
            &sealed_before
        )
        .is_err());
        assert_eq!(
            crate::seal::open_any(
                k2.seals(),
                crate::seal::BlobKind::Data,
                &[9; 32],
                &sealed_before
            )
            .unwrap(),
            b"old data"
        );
        assert_eq!(k2.seals().count(), 2);
        // Another master secret opens neither.
        assert!(m.keys(&MasterSecret::generate()).is_err());
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

    fn a_pack() -> PackRecord {
        PackRecord {
            id: PackId([4; 32]),
            k: 2,
            m: 1,
            pack_len: 100,
            fragments: vec![FragmentLocation {
                index: 0,
                id: FragmentId([5; 32]),
                peer: PeerId([6; 32]),
            }],
            blobs: Vec::new(),
        }
    }

    #[test]
    fn segments_round_trip_and_version_1_reads_as_seq_0() {
        let mut seg =
            IndexSegment::adding(SegmentId([1; 32]), ContainerId([2; 32]), 7, vec![a_pack()]);
        seg.removed.push(PackId([8; 32]));
        seg.forgotten.push(SnapshotId([9; 32]));
        seg.supersedes.push(SegmentId([3; 32]));
        let bytes = seg.encode();
        assert_eq!(bytes[0], SEGMENT_VERSION);
        assert_eq!(IndexSegment::decode(&bytes).unwrap(), seg);
        // What a version-1 writer produced: id, container, packs.
        #[derive(Serialize)]
        struct V1<'a> {
            id: SegmentId,
            container: ContainerId,
            packs: &'a [PackRecord],
        }
        let mut v1 = vec![1u8];
        v1.extend(
            postcard::to_stdvec(&V1 {
                id: seg.id,
                container: seg.container,
                packs: &seg.packs,
            })
            .unwrap(),
        );
        assert_eq!(
            IndexSegment::decode(&v1).unwrap(),
            IndexSegment::adding(seg.id, seg.container, 0, seg.packs.clone())
        );
        let mut v3 = bytes;
        v3[0] = 3;
        assert_eq!(IndexSegment::decode(&v3), Err(ManifestError::Version(3)));
    }

    #[test]
    fn replay_applies_the_log_in_order() {
        let c = ContainerId([2; 32]);
        let p = a_pack();
        let mut moved = p.clone();
        moved.fragments[0].peer = PeerId([7; 32]);
        let backup = IndexSegment::adding(SegmentId([9; 32]), c, 1, vec![p.clone()]);
        let repair = IndexSegment::adding(SegmentId([1; 32]), c, 2, vec![moved.clone()]);
        let mut forget = IndexSegment::adding(SegmentId([5; 32]), c, 3, Vec::new());
        forget.forgotten.push(SnapshotId([1; 32]));
        forget.removed.push(p.id);
        let mut undelete = IndexSegment::adding(SegmentId([0; 32]), c, 4, vec![moved.clone()]);
        undelete.restored.push(SnapshotId([1; 32]));
        // Whatever order they arrive in.
        let s = replay([&forget, &repair, &backup]);
        assert!(s.packs.is_empty());
        assert!(s.forgotten.contains(&SnapshotId([1; 32])));
        let s = replay([&undelete, &forget, &backup, &repair]);
        assert_eq!(s.packs.get(&p.id), Some(&moved));
        assert!(s.forgotten.is_empty());
        let s = replay([&repair, &backup]);
        assert_eq!(s.packs.get(&p.id), Some(&moved), "the later record wins");
    }

    #[test]
    fn superseded_segments_are_skipped_even_when_they_linger() {
        let c = ContainerId([2; 32]);
        let p = a_pack();
        let mut q = a_pack();
        q.id = PackId([5; 32]);
        let first = IndexSegment::adding(SegmentId([1; 32]), c, 1, vec![p.clone()]);
        let second = IndexSegment::adding(SegmentId([2; 32]), c, 2, vec![q.clone()]);
        let mut forget = IndexSegment::adding(SegmentId([3; 32]), c, 3, Vec::new());
        forget.forgotten.push(SnapshotId([7; 32]));
        // A prune: p deleted, q kept; everything before it superseded.
        let mut compact = IndexSegment::adding(SegmentId([4; 32]), c, 4, vec![q.clone()]);
        compact.removed.push(p.id);
        compact.forgotten.push(SnapshotId([7; 32]));
        compact.supersedes = vec![first.id, second.id, forget.id];
        // A later prune deletes q and supersedes the first compaction, and
        // carries forward what that one superseded.
        let mut again = IndexSegment::adding(SegmentId([0; 32]), c, 5, Vec::new());
        again.removed.push(q.id);
        again.forgotten.push(SnapshotId([7; 32]));
        again.supersedes = vec![compact.id, first.id, second.id, forget.id];
        let s = replay([&first, &second, &forget, &compact]);
        assert_eq!(s.packs.keys().collect::<Vec<_>>(), vec![&q.id]);
        assert!(s.forgotten.contains(&SnapshotId([7; 32])));
        // The first compaction is gone (its peer deleted it), but the
        // first segment lingers in a trash: p does not come back.
        let s = replay([&first, &again]);
        assert!(s.packs.is_empty(), "{:?}", s.packs.keys());
        assert!(s.forgotten.contains(&SnapshotId([7; 32])));
        assert!(s.superseded.contains(&first.id) && s.superseded.contains(&compact.id));
        // Without any compaction, segments apply as before.
        let s = replay([&first, &second]);
        assert_eq!(s.packs.len(), 2);
    }
}
