//! The local index: an embedded redb database under `TROVE_HOME`. It is a
//! cache of what the peers hold (invariant 6, docs/design.md §Invariants),
//! plus the local configuration (peers, containers) and the file cache that
//! makes unchanged files free. Tables and their key/value layouts are listed
//! in `docs/design.md`.

use crate::error::{RepoError, Result};
use crate::health::{AuditRecord, Sightings};
use crate::reciprocity::PeerLedger;
use redb::{Database, ReadableTable, TableDefinition, TableHandle};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::ops::Bound;
use std::path::Path;
use trove_core::manifest::{
    ContainerManifest, FragmentLocation, IndexSegment, IndexState, PackRecord, PeerRecord,
    SnapshotManifest,
};
use trove_core::pack::PackEntry;
use trove_core::seal::BlobKind;
use trove_core::{BlobId, ChunkId, ContainerId, FragmentId, PackId, PeerId, SnapshotId, TreeId};
use trove_peer::MetaKey;

type Bytes = &'static [u8];
/// redb's page cache. Its default (1 GiB) would make the index, not the
/// data, the largest user of memory. Backups and restores look files and
/// blobs up one by one (a restore in key order), which a small cache serves
/// as well as a large: a restore of 88,000 files peaked 11 MiB lower with
/// 4 MiB than with 16 and took as long (docs/performance.md, fifth round),
/// and 4-6 MiB lower again with 1 MiB (fourteenth round).
const INDEX_CACHE: usize = 1024 * 1024;

const PEERS: TableDefinition<&str, Bytes> = TableDefinition::new("peers");
const CONTAINERS: TableDefinition<&str, Bytes> = TableDefinition::new("containers");
/// container id ‖ blob id → pack id ‖ kind u8 ‖ offset u32 LE ‖ length u32 LE ‖ raw length u32 LE
const BLOBS: TableDefinition<Bytes, Bytes> = TableDefinition::new("blobs");
/// container id ‖ pack id → PackRecord
const PACKS: TableDefinition<Bytes, Bytes> = TableDefinition::new("packs");
/// container id ‖ pack id → (): packs stored but not yet in a published index segment
const UNPUBLISHED: TableDefinition<Bytes, Bytes> = TableDefinition::new("unpublished");
/// container id ‖ snapshot id → SnapshotManifest
const SNAPSHOTS: TableDefinition<Bytes, Bytes> = TableDefinition::new("snapshots");
/// container id ‖ kind u8 ‖ object id → signed envelope, as replicated to peers
const META: TableDefinition<Bytes, Bytes> = TableDefinition::new("meta");
/// The file cache before version 2 (one entry per file); dropped on open.
const FILES_V1: &str = "files";
/// container id ‖ folder path bytes → FolderCache: the file cache, version 2
const FILES: TableDefinition<Bytes, Bytes> = TableDefinition::new("folder_files");
/// container id ‖ folder path bytes → FolderTree: each folder's tree as last backed up, version 1
const FOLDER_TREES: TableDefinition<Bytes, Bytes> = TableDefinition::new("folder_trees");
/// container id → u64 LE: raised whenever blobs of the container leave `blobs`
const BLOB_EPOCHS: TableDefinition<Bytes, Bytes> = TableDefinition::new("blob_epochs");
/// container id → u64 LE: how many `folder_files` records the container has
const FOLDER_COUNTS: TableDefinition<Bytes, Bytes> = TableDefinition::new("folder_counts");
/// container id ‖ segment id → seq u64 LE: the index log's segments applied here
const SEGMENTS: TableDefinition<Bytes, Bytes> = TableDefinition::new("segments");
/// container id → postcard PendingCommit: a snapshot not yet on enough peers
const PENDING: TableDefinition<Bytes, Bytes> = TableDefinition::new("pending");
/// Version 2 of the pending record (`pending::StoredPending`); version 1,
/// in `pending`, is still read and cleared.
const PENDING_COMMITS: TableDefinition<Bytes, Bytes> = TableDefinition::new("pending_commits");
/// peer id → Sightings: when each peer was last seen, since when it is unreachable
const PEER_HEALTH: TableDefinition<Bytes, Bytes> = TableDefinition::new("peer_health");
/// container id ‖ pack id → UploadIntent: fragments being put, not yet recorded
/// peer id -> AuditRecord (postcard): what the daemon's audits found.
const PEER_AUDITS: TableDefinition<Bytes, Bytes> = TableDefinition::new("peer_audits");
/// peer id -> PeerLedger (postcard): a node peer's operator and what audits proved it holds.
const PEER_LEDGER: TableDefinition<Bytes, Bytes> = TableDefinition::new("peer_ledger");
const INTENTS: TableDefinition<Bytes, Bytes> = TableDefinition::new("intents");
/// peer id ‖ 0 ‖ fragment id, or peer id ‖ 1 ‖ meta key (65 B) → DeletionValue:
/// deletions decided (committed) but not yet done on that peer
const DELETIONS: TableDefinition<Bytes, Bytes> = TableDefinition::new("deletions");
/// Containers others shared with this identity: container id → `ReceivedShare`.
const SHARES_RECEIVED: TableDefinition<Bytes, Bytes> = TableDefinition::new("shares_received");
/// Shares this identity gave: container id ‖ recipient owner id → `GivenShare`.
const SHARES_GIVEN: TableDefinition<Bytes, Bytes> = TableDefinition::new("shares_given");

/// What an upload is about to put: the fragments of one pack and the peers
/// they go to (every peer tried, when a fragment is re-placed). Written
/// before the first put and removed in the transaction that records the
/// pack, so fragments of a pack that was never recorded (a killed backup)
/// are known to be this owner's, and where they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadIntent {
    /// Bytes of each fragment.
    pub fragment_len: u64,
    pub fragments: Vec<FragmentLocation>,
}

/// What a deletion removes from a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Doomed {
    Fragment(FragmentId),
    Meta(MetaKey),
}

/// A deletion decided by a committed change of the index (a prune, a
/// forget, an abandoned upload) and not yet done on its peer: done by the
/// next prune, forget or backup that reaches the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deletion {
    pub peer: PeerId,
    pub what: Doomed,
    pub container: ContainerId,
    /// Bytes it frees on the peer (fragments; 0 for metadata).
    pub bytes: u64,
}

#[derive(Serialize, Deserialize)]
struct DeletionValue {
    container: ContainerId,
    bytes: u64,
}

fn deletion_key(peer: &PeerId, what: &Doomed) -> Vec<u8> {
    let mut k = peer.0.to_vec();
    match what {
        Doomed::Fragment(f) => {
            k.push(0);
            k.extend_from_slice(&f.0);
        }
        Doomed::Meta(m) => {
            k.push(1);
            k.extend_from_slice(&meta_key(m));
        }
    }
    k
}

fn parse_deletion(k: &[u8], v: &[u8]) -> Result<Deletion> {
    let bad = || RepoError::Db("corrupt deletion entry".into());
    let peer = PeerId(k.get(..32).ok_or_else(bad)?.try_into().map_err(|_| bad())?);
    let what = match (k.get(32), k.get(33..)) {
        (Some(0), Some(f)) => Doomed::Fragment(FragmentId(f.try_into().map_err(|_| bad())?)),
        (Some(1), Some(m)) => Doomed::Meta(parse_meta_key(m).ok_or_else(bad)?),
        _ => return Err(bad()),
    };
    let v: DeletionValue = de(v)?;
    Ok(Deletion {
        peer,
        what,
        container: v.container,
        bytes: v.bytes,
    })
}

fn schedule(t: &mut Table, d: &Deletion) -> Result<()> {
    t.insert(
        deletion_key(&d.peer, &d.what).as_slice(),
        ser(&DeletionValue {
            container: d.container,
            bytes: d.bytes,
        })
        .as_slice(),
    )?;
    Ok(())
}

/// What the file cache remembers of a file, so that an unchanged file is not read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
    pub chunks: Vec<ChunkId>,
}

/// The file cache of one folder: its regular files, sorted by name.
/// Written with the blob epoch then current: while the epoch has not moved,
/// no blob has left the dedup set, so the cached chunks are all still there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderCache {
    pub epoch: u64,
    pub files: Vec<(Vec<u8>, FileEntry)>,
}

impl FolderCache {
    /// The entry of the file named `name`.
    pub fn file(&self, name: &[u8]) -> Option<&FileEntry> {
        self.files
            .binary_search_by(|(n, _)| n.as_slice().cmp(name))
            .ok()
            .map(|i| &self.files[i].1)
    }
}

/// A folder's tree as the last backup that walked it stored it, with what
/// the tree holds: a guided backup ([`crate::Changes`]) that finds nothing
/// changed in the folder puts this tree in its snapshot without walking
/// it. Written with the blob epoch then current: while the epoch has not
/// moved, the tree and every blob under it are still stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderTree {
    pub epoch: u64,
    pub tree: TreeId,
    /// Regular files in the tree, at every depth.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Folders in the tree, itself included.
    pub dirs: u64,
}

/// What a backup changes in the file cache: the records of folders whose
/// files changed, and folders it no longer has. Folders where nothing
/// changed are left as they are.
#[derive(Debug, Default)]
pub(crate) struct FileCacheUpdate {
    /// Folder keys and their records, serialized as each record is made:
    /// about 65 bytes a file, where the records as structs (a name and a
    /// chunk list allocated per file) held 160 at the commit's peak.
    upsert: Vec<(Vec<u8>, Vec<u8>)>,
    pub remove: Vec<Vec<u8>>,
    /// Folder trees to write (or replace).
    pub trees: Vec<(Vec<u8>, FolderTree)>,
    /// Folders whose tree must not be taken again (gone, or with a part
    /// that could not be read).
    pub forget_trees: Vec<Vec<u8>>,
}

impl FileCacheUpdate {
    /// Write (or replace) the record of the folder `key`.
    pub fn upsert(&mut self, key: Vec<u8>, record: &FolderCache) {
        self.upsert.push((key, ser(record)));
    }
}

/// A read-only view of one container's file cache and blobs, shared by the
/// threads of a backup. A lookup that fails counts as a miss: the file is
/// read again, the blob stored again; neither loses anything.
pub(crate) struct Lookups {
    cid: ContainerId,
    /// The container's blob epoch when the view was taken.
    pub epoch: u64,
    /// Folder records the container has in the file cache.
    pub folders: u64,
    files: redb::ReadOnlyTable<Bytes, Bytes>,
    trees: redb::ReadOnlyTable<Bytes, Bytes>,
    blobs: redb::ReadOnlyTable<Bytes, Bytes>,
}

impl Lookups {
    /// The cache record of the folder at `path` (`b""`: the sources that
    /// are files, by name).
    pub fn folder(&self, path: &[u8]) -> Option<FolderCache> {
        let v = self.files.get(key2(&self.cid.0, path).as_slice()).ok()??;
        de(v.value()).ok()
    }

    /// The tree of the folder at `path` as last backed up, if it was
    /// written at the current blob epoch (so all it refers to is stored).
    pub fn current_tree(&self, path: &[u8]) -> Option<FolderTree> {
        self.stored_tree(path).filter(|t| t.epoch == self.epoch)
    }

    /// The folder-tree record of `path` as stored, whatever its epoch.
    pub fn stored_tree(&self, path: &[u8]) -> Option<FolderTree> {
        let v = self.trees.get(key2(&self.cid.0, path).as_slice()).ok()??;
        de(v.value()).ok()
    }

    /// Folders with a tree record that are not in `seen`.
    pub fn trees_not_in(&self, seen: &HashSet<&[u8]>) -> Result<Vec<Vec<u8>>> {
        paths_not_in(&self.cid, &self.trees, seen)
    }

    /// Whether the container holds blob `id`.
    pub fn has_blob(&self, id: &BlobId) -> bool {
        matches!(
            self.blobs.get(key2(&self.cid.0, &id.0).as_slice()),
            Ok(Some(_))
        )
    }

    /// Folders in the file cache that are not in `seen`.
    pub fn folders_not_in(&self, seen: &HashSet<&[u8]>) -> Result<Vec<Vec<u8>>> {
        paths_not_in(&self.cid, &self.files, seen)
    }
}

/// The paths `table` holds a record of for container `cid` (keys `cid ‖
/// path`) that are not in `seen`.
fn paths_not_in(
    cid: &ContainerId,
    table: &redb::ReadOnlyTable<Bytes, Bytes>,
    seen: &HashSet<&[u8]>,
) -> Result<Vec<Vec<u8>>> {
    let p = Prefix::new(cid);
    let mut out = Vec::new();
    for r in table.range::<&[u8]>(p.bounds())? {
        let (k, _) = r?;
        let path = &k.value()[32..];
        if !seen.contains(path) {
            out.push(path.to_vec());
        }
    }
    Ok(out)
}

/// Raise the container's blob epoch: blobs are leaving the dedup set, so
/// file-cache records written before must have their chunks checked again.
fn bump_blob_epoch(tx: &redb::WriteTransaction, cid: &ContainerId) -> Result<()> {
    let mut t = tx.open_table(BLOB_EPOCHS)?;
    let now = u64_of(&t, cid)?;
    t.insert(cid.0.as_slice(), (now + 1).to_le_bytes().as_slice())?;
    Ok(())
}

/// A container's `u64 LE` value in `t` (an epoch, a count); 0 when absent.
fn u64_of(t: &impl ReadableTable<Bytes, Bytes>, cid: &ContainerId) -> Result<u64> {
    Ok(t.get(cid.0.as_slice())?
        .and_then(|v| v.value().try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0))
}

/// Where a blob is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    pub pack: PackId,
    pub entry: PackEntry,
}

/// A `BLOBS` value: pack id (32), kind (1), offset, length and plaintext
/// length (u32 LE each).
fn blob_location(id: &BlobId, v: &[u8]) -> Result<BlobLocation> {
    if v.len() != 45 {
        return Err(RepoError::Db("corrupt blob entry".into()));
    }
    Ok(BlobLocation {
        pack: PackId(v[..32].try_into().expect("32 bytes")),
        entry: PackEntry {
            kind: BlobKind::from_u8(v[32]).ok_or_else(|| RepoError::Db("bad blob kind".into()))?,
            id: *id,
            offset: u32::from_le_bytes(v[33..37].try_into().expect("4 bytes")),
            length: u32::from_le_bytes(v[37..41].try_into().expect("4 bytes")),
            raw_length: u32::from_le_bytes(v[41..45].try_into().expect("4 bytes")),
        },
    })
}

/// Where each of many blobs is, for a restore: the packs named once each,
/// and per blob its place without its id or pack id (kept as the map's key
/// and an index into `packs`). With a [`BlobLocation`] per blob, the map
/// was 30 MB of a 200,000-file restore's peak; this one is 14.
#[derive(Debug, Default)]
pub(crate) struct BlobPlaces {
    pub packs: Vec<PackId>,
    places: HashMap<BlobId, BlobPlace>,
}

/// Where one blob of [`BlobPlaces`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlobPlace {
    /// Its pack, as an index into [`BlobPlaces::packs`].
    pub pack: u32,
    kind: BlobKind,
    pub offset: u32,
    length: u32,
    pub raw_length: u32,
}

impl BlobPlace {
    /// The pack entry of the blob `id` placed here.
    pub fn entry(&self, id: &BlobId) -> PackEntry {
        PackEntry {
            kind: self.kind,
            id: *id,
            offset: self.offset,
            length: self.length,
            raw_length: self.raw_length,
        }
    }
}

impl BlobPlaces {
    fn insert(&mut self, loc: BlobLocation, pack_index: &mut HashMap<PackId, u32>) {
        let pack = *pack_index.entry(loc.pack).or_insert_with(|| {
            self.packs.push(loc.pack);
            (self.packs.len() - 1) as u32
        });
        let e = loc.entry;
        self.places.insert(
            e.id,
            BlobPlace {
                pack,
                kind: e.kind,
                offset: e.offset,
                length: e.length,
                raw_length: e.raw_length,
            },
        );
    }

    /// The blob `id` (as held here) and its place.
    pub fn get(&self, id: &BlobId) -> Option<(&BlobId, &BlobPlace)> {
        self.places.get_key_value(id)
    }
}

fn ser<T: Serialize>(v: &T) -> Vec<u8> {
    postcard::to_stdvec(v).expect("index values serialize")
}

/// Insert `v` serialized straight into the table's pages, not first into a
/// buffer of its own: a pending commit holds the segment naming every new
/// blob (about 17 MB for 200,000 files), which was otherwise held twice.
fn insert_ser<T: Serialize>(t: &mut Table, key: &[u8], v: &T) -> Result<()> {
    let len = postcard::experimental::serialized_size(v).expect("index values serialize");
    let len = u32::try_from(len)
        .map_err(|_| RepoError::Db(format!("an index value of {len} bytes is too large")))?;
    let mut slot = t.insert_reserve(key, len)?;
    postcard::to_slice(v, slot.as_mut()).expect("the slot has the serialized size");
    Ok(())
}

fn de<T: DeserializeOwned>(b: &[u8]) -> Result<T> {
    postcard::from_bytes(b).map_err(|e| RepoError::Db(format!("corrupt index value: {e}")))
}

fn key2(a: &[u8; 32], b: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(32 + b.len());
    k.extend_from_slice(a);
    k.extend_from_slice(b);
    k
}

/// All keys that start with one container id.
struct Prefix {
    start: Vec<u8>,
    /// The id plus one, or none when the id is all 0xff.
    end: Option<Vec<u8>>,
}

impl Prefix {
    fn new(cid: &ContainerId) -> Self {
        let mut end = cid.0.to_vec();
        let bumped = loop {
            match end.pop() {
                None => break false,
                Some(0xff) => continue,
                Some(b) => {
                    end.push(b + 1);
                    break true;
                }
            }
        };
        Self {
            start: cid.0.to_vec(),
            end: bumped.then_some(end),
        }
    }

    fn bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        (
            Bound::Included(self.start.as_slice()),
            self.end
                .as_deref()
                .map_or(Bound::Unbounded, Bound::Excluded),
        )
    }
}

fn meta_key(key: &MetaKey) -> Vec<u8> {
    let (cid, kind, oid) = match key {
        MetaKey::Container(c) => (c, 0u8, [0u8; 32]),
        MetaKey::Snapshot(c, s) => (c, 1, s.0),
        MetaKey::IndexSegment(c, s) => (c, 2, s.0),
    };
    let mut k = cid.0.to_vec();
    k.push(kind);
    k.extend_from_slice(&oid);
    k
}

fn parse_meta_key(k: &[u8]) -> Option<MetaKey> {
    if k.len() != 65 {
        return None;
    }
    let cid = ContainerId(k[..32].try_into().ok()?);
    let oid: [u8; 32] = k[33..].try_into().ok()?;
    Some(match k[32] {
        0 => MetaKey::Container(cid),
        1 => MetaKey::Snapshot(cid, SnapshotId(oid)),
        2 => MetaKey::IndexSegment(cid, trove_core::SegmentId(oid)),
        _ => return None,
    })
}

fn seq_of(v: &[u8]) -> Result<u64> {
    v.try_into()
        .map(u64::from_le_bytes)
        .map_err(|_| RepoError::Db("corrupt segment entry".into()))
}

fn blob_value(pack: &PackId, e: &PackEntry) -> Vec<u8> {
    let mut v = Vec::with_capacity(45);
    v.extend_from_slice(&pack.0);
    v.push(e.kind as u8);
    v.extend_from_slice(&e.offset.to_le_bytes());
    v.extend_from_slice(&e.length.to_le_bytes());
    v.extend_from_slice(&e.raw_length.to_le_bytes());
    v
}

type Table<'t> = redb::Table<'t, Bytes, Bytes>;

/// Record a pack and point its blobs at it.
/// Record packs and their blobs. The blobs go in in key order, up to
/// [`SORTED_BLOBS`] at a time: their ids are random, and inserting them
/// sorted walks the table's leaves in order instead of at random
/// (docs/performance.md, seventh round).
fn put_packs<'a>(
    pt: &mut Table,
    bt: &mut Table,
    cid: &ContainerId,
    recs: impl IntoIterator<Item = &'a PackRecord>,
) -> Result<()> {
    const SORTED_BLOBS: usize = 1 << 16;
    let mut blobs: Vec<(&PackId, &PackEntry)> = Vec::new();
    let mut insert = |blobs: &mut Vec<(&PackId, &PackEntry)>| -> Result<()> {
        // Stable: a blob in two packs keeps the later one, as before.
        blobs.sort_by_key(|(_, e)| e.id.0);
        for (pack, e) in blobs.drain(..) {
            bt.insert(
                key2(&cid.0, &e.id.0).as_slice(),
                blob_value(pack, e).as_slice(),
            )?;
        }
        Ok(())
    };
    for rec in recs {
        pt.insert(key2(&cid.0, &rec.id.0).as_slice(), ser(rec).as_slice())?;
        for e in &rec.blobs {
            blobs.push((&rec.id, e));
            if blobs.len() == SORTED_BLOBS {
                insert(&mut blobs)?;
            }
        }
    }
    insert(&mut blobs)
}

/// Forget a pack and the blob entries that still point at it (a blob
/// repacked elsewhere keeps its new entry).
fn remove_pack(pt: &mut Table, bt: &mut Table, cid: &ContainerId, id: &PackId) -> Result<()> {
    let Some(rec) = pt.remove(key2(&cid.0, &id.0).as_slice())? else {
        return Ok(());
    };
    let rec: PackRecord = de(rec.value())?;
    for e in &rec.blobs {
        let key = key2(&cid.0, &e.id.0);
        let here = bt
            .get(key.as_slice())?
            .is_some_and(|v| v.value().get(..32) == Some(&id.0[..]));
        if here {
            bt.remove(key.as_slice())?;
        }
    }
    Ok(())
}

/// Apply a segment inside a write transaction: its envelope and place in
/// the log, its pack records (published), removals and forgotten snapshots;
/// the segments it supersedes leave the log here (their envelopes are no
/// longer replicated).
fn apply_in(tx: &redb::WriteTransaction, seg: &IndexSegment, envelope: &[u8]) -> Result<()> {
    let cid = seg.container;
    {
        let mut mt = tx.open_table(META)?;
        let mut gt = tx.open_table(SEGMENTS)?;
        for old in &seg.supersedes {
            mt.remove(meta_key(&MetaKey::IndexSegment(cid, *old)).as_slice())?;
            gt.remove(key2(&cid.0, &old.0).as_slice())?;
        }
        mt.insert(
            meta_key(&MetaKey::IndexSegment(cid, seg.id)).as_slice(),
            envelope,
        )?;
        gt.insert(
            key2(&cid.0, &seg.id.0).as_slice(),
            seg.seq.to_le_bytes().as_slice(),
        )?;
    }
    let mut pt = tx.open_table(PACKS)?;
    let mut bt = tx.open_table(BLOBS)?;
    let mut ut = tx.open_table(UNPUBLISHED)?;
    let mut changed = Vec::new();
    for rec in &seg.packs {
        // A pack this machine stored is recorded already, exactly so:
        // writing its blobs again would only cost time. (A repaired pack's
        // record differs, in where its fragments are, and is written.)
        let same = pt
            .get(key2(&cid.0, &rec.id.0).as_slice())?
            .is_some_and(|v| v.value() == ser(rec).as_slice());
        if !same {
            changed.push(rec);
        }
        ut.remove(key2(&cid.0, &rec.id.0).as_slice())?;
    }
    put_packs(&mut pt, &mut bt, &cid, changed)?;
    if !seg.removed.is_empty() {
        bump_blob_epoch(tx, &cid)?;
    }
    for id in &seg.removed {
        remove_pack(&mut pt, &mut bt, &cid, id)?;
        ut.remove(key2(&cid.0, &id.0).as_slice())?;
    }
    let mut st = tx.open_table(SNAPSHOTS)?;
    let mut mt = tx.open_table(META)?;
    for id in &seg.forgotten {
        st.remove(key2(&cid.0, &id.0).as_slice())?;
        mt.remove(meta_key(&MetaKey::Snapshot(cid, *id)).as_slice())?;
    }
    Ok(())
}

/// Another process holds the database at `path`.
fn busy(path: &Path) -> RepoError {
    RepoError::Busy {
        home: path.parent().unwrap_or(path).to_owned(),
        holder: None,
        waited: None,
    }
}

/// The local index database.
#[derive(Debug)]
pub struct Index {
    db: Database,
}

impl Index {
    /// Open (or create) the database; a second process gets [`RepoError::Busy`].
    /// A new database file is private (`0600`): it holds every path, size
    /// and time of the backed-up files.
    pub fn open(path: &Path) -> Result<Self> {
        if !path.exists() {
            // redb initialises an empty file as a new database.
            trove_peer::durable::create_new(path, &[], None)
                .or_else(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => Ok(()),
                    _ => Err(e),
                })
                .map_err(|e| RepoError::io("create", path, e))?;
        }
        let db = Database::builder()
            .set_cache_size(INDEX_CACHE)
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => busy(path),
                other => RepoError::Db(format!("{}: {other}", path.display())),
            })?;
        Self::with_tables(db)
    }

    /// Open an existing database to read it only (`trove drill` reading
    /// the live home): the file is never written (see `readonly.rs`), and
    /// a process holding it makes this [`RepoError::Busy`].
    pub fn open_read_only(path: &Path) -> Result<Self> {
        let file = crate::readonly::ReadOnlyFile::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock => busy(path),
            _ => RepoError::io("open", path, e),
        })?;
        let db = Database::builder()
            .set_cache_size(INDEX_CACHE)
            .create_with_backend(file)
            .map_err(|e| RepoError::Db(format!("{}: {e}", path.display())))?;
        Self::with_tables(db)
    }

    /// Make sure every table exists (and the old file cache is gone).
    fn with_tables(db: Database) -> Result<Self> {
        let tx = db.begin_write()?;
        {
            tx.open_table(PEERS)?;
            tx.open_table(CONTAINERS)?;
            for t in [
                BLOBS,
                PACKS,
                UNPUBLISHED,
                SNAPSHOTS,
                META,
                FILES,
                FOLDER_TREES,
                BLOB_EPOCHS,
                FOLDER_COUNTS,
                SEGMENTS,
                PENDING,
                PENDING_COMMITS,
                PEER_HEALTH,
                PEER_AUDITS,
                PEER_LEDGER,
                INTENTS,
                DELETIONS,
                SHARES_RECEIVED,
                SHARES_GIVEN,
            ] {
                tx.open_table(t)?;
            }
            // The per-file cache of version 1 is not read any more: the
            // first backup after the upgrade reads every file once (its
            // chunks deduplicate) and fills the per-folder one.
            tx.delete_table(TableDefinition::<Bytes, Bytes>::new(FILES_V1))?;
        }
        tx.commit()?;
        Ok(Self { db })
    }

    // ---- peers -------------------------------------------------------------

    pub fn add_peer(&self, rec: &PeerRecord) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(PEERS)?;
            if t.get(rec.name.as_str())?.is_some() {
                return Err(RepoError::PeerExists(rec.name.clone()));
            }
            t.insert(rec.name.as_str(), ser(rec).as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Take a peer off the configuration, and forget its sightings.
    pub fn remove_peer(&self, name: &str) -> Result<PeerRecord> {
        let tx = self.db.begin_write()?;
        let rec: PeerRecord = {
            let mut t = tx.open_table(PEERS)?;
            let v = t
                .remove(name)?
                .ok_or_else(|| RepoError::NoPeer(name.into()))?;
            de(v.value())?
        };
        tx.open_table(PEER_HEALTH)?.remove(rec.id.0.as_slice())?;
        tx.open_table(PEER_AUDITS)?.remove(rec.id.0.as_slice())?;
        tx.open_table(PEER_LEDGER)?.remove(rec.id.0.as_slice())?;
        tx.commit()?;
        Ok(rec)
    }

    /// What is remembered of each peer's reachability.
    pub fn sightings(&self) -> Result<HashMap<PeerId, Sightings>> {
        self.by_peer(PEER_HEALTH)
    }

    /// What is remembered of each peer's audits.
    pub fn audits(&self) -> Result<HashMap<PeerId, AuditRecord>> {
        self.by_peer(PEER_AUDITS)
    }

    /// Every value of a table keyed by peer id.
    fn by_peer<T: DeserializeOwned>(
        &self,
        table: TableDefinition<Bytes, Bytes>,
    ) -> Result<HashMap<PeerId, T>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(table)?;
        let mut out = HashMap::new();
        for r in t.iter()? {
            let (k, v) = r?;
            let id = PeerId(k.value().try_into().map_err(|_| {
                RepoError::Db(format!("corrupt peer id key in table `{}`", table.name()))
            })?);
            out.insert(id, de(v.value())?);
        }
        Ok(out)
    }

    /// Record audit results, in one transaction.
    pub fn record_audits(&self, records: &[(PeerId, AuditRecord)]) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(PEER_AUDITS)?;
            for (id, r) in records {
                t.insert(id.0.as_slice(), ser(r).as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// What is remembered of each node peer for the reciprocity ledger.
    pub fn ledgers(&self) -> Result<HashMap<PeerId, PeerLedger>> {
        self.by_peer(PEER_LEDGER)
    }

    /// Record node peers' ledger entries, in one transaction.
    pub fn record_ledgers(&self, records: &[(PeerId, PeerLedger)]) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(PEER_LEDGER)?;
            for (id, r) in records {
                t.insert(id.0.as_slice(), ser(r).as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Record peers' reachability, in one transaction.
    pub fn record_sightings(&self, seen: &[(PeerId, Sightings)]) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(PEER_HEALTH)?;
            for (id, s) in seen {
                t.insert(id.0.as_slice(), ser(s).as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Replace the record stored under `old_name` (rename and/or re-id).
    pub fn replace_peer(&self, old_name: &str, rec: &PeerRecord) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(PEERS)?;
            t.remove(old_name)?;
            if t.get(rec.name.as_str())?.is_some() {
                return Err(RepoError::PeerExists(rec.name.clone()));
            }
            t.insert(rec.name.as_str(), ser(rec).as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn peers(&self) -> Result<Vec<PeerRecord>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(PEERS)?;
        t.iter()?.map(|r| de(r?.1.value())).collect()
    }

    // ---- containers --------------------------------------------------------

    pub fn put_container(&self, m: &ContainerManifest, must_be_new: bool) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(CONTAINERS)?;
            if must_be_new && t.get(m.name.as_str())?.is_some() {
                return Err(RepoError::ContainerExists(m.name.clone()));
            }
            t.insert(m.name.as_str(), ser(m).as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Replace a container's manifest and its signed envelope together, so
    /// a crash never leaves the manifest without the envelope peers get.
    pub fn put_container_sealed(&self, m: &ContainerManifest, envelope: &[u8]) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            tx.open_table(CONTAINERS)?
                .insert(m.name.as_str(), ser(m).as_slice())?;
            tx.open_table(META)?
                .insert(meta_key(&MetaKey::Container(m.id)).as_slice(), envelope)?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn containers(&self) -> Result<Vec<ContainerManifest>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(CONTAINERS)?;
        t.iter()?.map(|r| de(r?.1.value())).collect()
    }

    pub fn container(&self, name: &str) -> Result<ContainerManifest> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(CONTAINERS)?;
        let v = t
            .get(name)?
            .ok_or_else(|| RepoError::NoContainer(name.into()))?;
        de(v.value())
    }

    // ---- shares ------------------------------------------------------------

    /// Record a container shared with this identity (replacing an earlier
    /// record of it).
    pub fn put_received_share<T: Serialize>(&self, cid: &ContainerId, share: &T) -> Result<()> {
        self.put(SHARES_RECEIVED, cid.as_bytes(), share)
    }

    pub fn received_shares<T: DeserializeOwned>(&self) -> Result<Vec<T>> {
        self.values(SHARES_RECEIVED)
    }

    pub fn put_given_share<T: Serialize>(
        &self,
        cid: &ContainerId,
        recipient: &[u8; 32],
        share: &T,
    ) -> Result<()> {
        let mut key = cid.as_bytes().to_vec();
        key.extend_from_slice(recipient);
        self.put(SHARES_GIVEN, &key, share)
    }

    pub fn given_shares<T: DeserializeOwned>(&self) -> Result<Vec<T>> {
        self.values(SHARES_GIVEN)
    }

    fn put<T: Serialize>(
        &self,
        table: TableDefinition<Bytes, Bytes>,
        key: &[u8],
        v: &T,
    ) -> Result<()> {
        let tx = self.db.begin_write()?;
        tx.open_table(table)?.insert(key, ser(v).as_slice())?;
        tx.commit()?;
        Ok(())
    }

    fn values<T: DeserializeOwned>(&self, table: TableDefinition<Bytes, Bytes>) -> Result<Vec<T>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(table)?;
        t.iter()?.map(|r| de(r?.1.value())).collect()
    }

    // ---- blobs and packs ---------------------------------------------------

    /// Every blob of a container with the pack its entry points at.
    pub fn blob_packs(&self, cid: &ContainerId) -> Result<HashMap<BlobId, PackId>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(BLOBS)?;
        let p = Prefix::new(cid);
        let mut out = HashMap::new();
        for r in t.range::<&[u8]>(p.bounds())? {
            let (k, v) = r?;
            let pack = v
                .value()
                .get(..32)
                .ok_or_else(|| RepoError::Db("corrupt blob entry".into()))?;
            out.insert(
                BlobId(k.value()[32..64].try_into().expect("32 bytes")),
                PackId(pack.try_into().expect("32 bytes")),
            );
        }
        Ok(out)
    }

    pub fn blob(&self, cid: &ContainerId, id: &BlobId) -> Result<Option<BlobLocation>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(BLOBS)?;
        let Some(v) = t.get(key2(&cid.0, &id.0).as_slice())? else {
            return Ok(None);
        };
        blob_location(id, v.value()).map(Some)
    }

    /// Where each of `ids` is (absent: not in the index), looked up in key
    /// order in one read transaction: on a cold cache the B-tree's pages
    /// are then read once each and mostly in file order, not once per id
    /// at random (a restore's plan names every chunk of the snapshot).
    pub fn blobs_in_order(
        &self,
        cid: &ContainerId,
        ids: impl IntoIterator<Item = BlobId>,
    ) -> Result<BlobPlaces> {
        let mut ids: Vec<BlobId> = ids.into_iter().collect();
        ids.sort_unstable_by_key(|id| id.0);
        ids.dedup();
        let tx = self.db.begin_read()?;
        let t = tx.open_table(BLOBS)?;
        let mut key = key2(&cid.0, &[0; 32]);
        let mut out = BlobPlaces {
            packs: Vec::new(),
            places: HashMap::with_capacity(ids.len()),
        };
        let mut pack_index = HashMap::new();
        for id in ids {
            key[32..].copy_from_slice(&id.0);
            if let Some(v) = t.get(key.as_slice())? {
                out.insert(blob_location(&id, v.value())?, &mut pack_index);
            }
        }
        Ok(out)
    }

    pub fn pack(&self, cid: &ContainerId, id: &PackId) -> Result<Option<PackRecord>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(PACKS)?;
        t.get(key2(&cid.0, &id.0).as_slice())?
            .map(|v| de(v.value()))
            .transpose()
    }

    pub fn packs(&self, cid: &ContainerId) -> Result<Vec<PackRecord>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(PACKS)?;
        let p = Prefix::new(cid);
        t.range::<&[u8]>(p.bounds())?
            .map(|r| de(r?.1.value()))
            .collect()
    }

    /// Record packs whose fragments are all acknowledged. They stay
    /// "unpublished" until a committed snapshot's index segment names them
    /// (the segment then reaches the peers through `sync_meta`). Their
    /// upload intents end here; a fragment the intent placed on a peer that
    /// failed and the record does not name is scheduled for deletion there.
    pub fn record_packs(&self, cid: &ContainerId, packs: &[PackRecord]) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut pt = tx.open_table(PACKS)?;
            let mut bt = tx.open_table(BLOBS)?;
            let mut ut = tx.open_table(UNPUBLISHED)?;
            let mut it = tx.open_table(INTENTS)?;
            let mut dt = tx.open_table(DELETIONS)?;
            put_packs(&mut pt, &mut bt, cid, packs)?;
            for rec in packs {
                ut.insert(key2(&cid.0, &rec.id.0).as_slice(), [].as_slice())?;
                let intent = it.remove(key2(&cid.0, &rec.id.0).as_slice())?;
                let Some(intent) = intent.map(|v| de::<UploadIntent>(v.value())).transpose()?
                else {
                    continue;
                };
                for tried in &intent.fragments {
                    let kept = rec
                        .fragments
                        .iter()
                        .any(|f| f.id == tried.id && f.peer == tried.peer);
                    if !kept {
                        let d = Deletion {
                            peer: tried.peer,
                            what: Doomed::Fragment(tried.id),
                            container: *cid,
                            bytes: intent.fragment_len,
                        };
                        schedule(&mut dt, &d)?;
                    }
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Write (or extend) the upload intent of a pack, before its fragments
    /// are put.
    pub fn put_intent(
        &self,
        cid: &ContainerId,
        pack: &PackId,
        intent: &UploadIntent,
    ) -> Result<()> {
        let tx = self.db.begin_write()?;
        tx.open_table(INTENTS)?
            .insert(key2(&cid.0, &pack.0).as_slice(), ser(intent).as_slice())?;
        tx.commit()?;
        Ok(())
    }

    /// The upload intents of a container: packs whose fragments were being
    /// put and that were never recorded (once no upload runs).
    pub fn intents(&self, cid: &ContainerId) -> Result<Vec<(PackId, UploadIntent)>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(INTENTS)?;
        let p = Prefix::new(cid);
        let mut out = Vec::new();
        for r in t.range::<&[u8]>(p.bounds())? {
            let (k, v) = r?;
            let pack = PackId(k.value()[32..64].try_into().expect("32 bytes"));
            out.push((pack, de(v.value())?));
        }
        Ok(out)
    }

    /// Turn every upload intent of the container into deletions of its
    /// fragments (only when no upload runs: a killed one's leftovers), in one
    /// transaction. Returns what was abandoned.
    pub fn abandon_intents(&self, cid: &ContainerId) -> Result<Vec<(PackId, UploadIntent)>> {
        let tx = self.db.begin_write()?;
        let mut out = Vec::new();
        {
            let mut it = tx.open_table(INTENTS)?;
            let pt = tx.open_table(PACKS)?;
            let mut dt = tx.open_table(DELETIONS)?;
            let p = Prefix::new(cid);
            let all: Vec<(Vec<u8>, UploadIntent)> = it
                .range::<&[u8]>(p.bounds())?
                .map(|r| {
                    let (k, v) = r?;
                    Ok((k.value().to_vec(), de(v.value())?))
                })
                .collect::<Result<_>>()?;
            for (key, intent) in all {
                it.remove(key.as_slice())?;
                // Recorded after all (cannot happen: recording clears it).
                if pt.get(key.as_slice())?.is_some() {
                    continue;
                }
                for f in &intent.fragments {
                    let d = Deletion {
                        peer: f.peer,
                        what: Doomed::Fragment(f.id),
                        container: *cid,
                        bytes: intent.fragment_len,
                    };
                    schedule(&mut dt, &d)?;
                }
                out.push((PackId(key[32..64].try_into().expect("32 bytes")), intent));
            }
        }
        tx.commit()?;
        Ok(out)
    }

    /// Deletions decided and not yet done, of one container.
    pub fn deletions(&self, cid: &ContainerId) -> Result<Vec<Deletion>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(DELETIONS)?;
        let mut out = Vec::new();
        for r in t.iter()? {
            let (k, v) = r?;
            let d = parse_deletion(k.value(), v.value())?;
            if d.container == *cid {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Forget deletions that were done.
    pub fn deletions_done(&self, done: &[Deletion]) -> Result<()> {
        if done.is_empty() {
            return Ok(());
        }
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(DELETIONS)?;
            for d in done {
                t.remove(deletion_key(&d.peer, &d.what).as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The next position in a container's index log.
    pub fn next_segment_seq(&self, cid: &ContainerId) -> Result<u64> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(SEGMENTS)?;
        let p = Prefix::new(cid);
        let mut max = 0;
        for r in t.range::<&[u8]>(p.bounds())? {
            max = max.max(seq_of(r?.1.value())?);
        }
        Ok(max + 1)
    }

    /// Apply one new segment of the index log (a repair, prune, forget or
    /// undelete) with its envelope, in one transaction.
    // Prune and forget apply theirs with the deletions they justify
    // (`apply_segment_deleting`).
    pub fn apply_segment(&self, seg: &IndexSegment, envelope: &[u8]) -> Result<()> {
        let tx = self.db.begin_write()?;
        apply_in(&tx, seg, envelope)?;
        tx.commit()?;
        Ok(())
    }

    /// Apply one new segment and schedule the deletions it decides (on
    /// peers, done later), in one transaction: a crash leaves neither or
    /// both, so no deletion is ever done that the log does not justify, and
    /// none it justifies is forgotten.
    pub fn apply_segment_deleting(
        &self,
        seg: &IndexSegment,
        envelope: &[u8],
        deletions: &[Deletion],
    ) -> Result<()> {
        let tx = self.db.begin_write()?;
        apply_in(&tx, seg, envelope)?;
        {
            let mut dt = tx.open_table(DELETIONS)?;
            for d in deletions {
                schedule(&mut dt, d)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Make the container's published packs what the index log says
    /// (`state`, from every segment known: `sync`), keeping packs not yet
    /// published, and record the segments and their envelopes.
    pub fn rebuild_packs(
        &self,
        cid: &ContainerId,
        state: &IndexState,
        segments: &[(&IndexSegment, &[u8])],
    ) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut pt = tx.open_table(PACKS)?;
            let mut bt = tx.open_table(BLOBS)?;
            let ut = tx.open_table(UNPUBLISHED)?;
            let p = Prefix::new(cid);
            let unpublished: Vec<PackRecord> = {
                let mut v = Vec::new();
                for r in ut.range::<&[u8]>(p.bounds())? {
                    if let Some(rec) = pt.get(r?.0.value())? {
                        v.push(de(rec.value())?);
                    }
                }
                v
            };
            pt.retain_in::<&[u8], _>(p.bounds(), |_, _| false)?;
            bt.retain_in::<&[u8], _>(p.bounds(), |_, _| false)?;
            bump_blob_epoch(&tx, cid)?;
            put_packs(
                &mut pt,
                &mut bt,
                cid,
                state.packs.values().chain(&unpublished),
            )?;
            let mut mt = tx.open_table(META)?;
            let mut gt = tx.open_table(SEGMENTS)?;
            for (seg, env) in segments {
                let mkey = meta_key(&MetaKey::IndexSegment(*cid, seg.id));
                let gkey = key2(&cid.0, &seg.id.0);
                // A superseded segment (found in a trash, or held here
                // before a compaction made elsewhere) is not replicated again.
                if state.superseded.contains(&seg.id) {
                    mt.remove(mkey.as_slice())?;
                    gt.remove(gkey.as_slice())?;
                    continue;
                }
                mt.insert(mkey.as_slice(), *env)?;
                gt.insert(gkey.as_slice(), seg.seq.to_le_bytes().as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The container's published packs: every pack but those of an
    /// interrupted backup, which the next backup names (one read).
    pub fn published_packs(&self, cid: &ContainerId) -> Result<Vec<PackRecord>> {
        let tx = self.db.begin_read()?;
        let ut = tx.open_table(UNPUBLISHED)?;
        let pt = tx.open_table(PACKS)?;
        let p = Prefix::new(cid);
        let mut out = Vec::new();
        for r in pt.range::<&[u8]>(p.bounds())? {
            let (k, v) = r?;
            if ut.get(k.value())?.is_none() {
                out.push(de(v.value())?);
            }
        }
        Ok(out)
    }

    /// Packs stored by this or an interrupted earlier backup but not yet
    /// named by any published index segment.
    pub fn unpublished_packs(&self, cid: &ContainerId) -> Result<Vec<PackRecord>> {
        let tx = self.db.begin_read()?;
        let ut = tx.open_table(UNPUBLISHED)?;
        let pt = tx.open_table(PACKS)?;
        let p = Prefix::new(cid);
        let mut out = Vec::new();
        for r in ut.range::<&[u8]>(p.bounds())? {
            let (k, _) = r?;
            if let Some(v) = pt.get(k.value())? {
                out.push(de(v.value())?);
            }
        }
        Ok(out)
    }

    // ---- snapshots, meta objects, file cache --------------------------------

    /// Commit a snapshot locally in one transaction: its manifest and
    /// envelope, the segment publishing its packs (if any) and the new file
    /// cache. Only the file-cache entries that differ from `old_files` are
    /// written, so an unchanged re-run writes almost nothing.
    pub fn commit_snapshot(
        &self,
        snap: &SnapshotManifest,
        envelope: &[u8],
        segment: Option<(&IndexSegment, &[u8])>,
        files: &FileCacheUpdate,
    ) -> Result<()> {
        let cid = snap.container;
        let tx = self.db.begin_write()?;
        {
            let mut st = tx.open_table(SNAPSHOTS)?;
            st.insert(key2(&cid.0, &snap.id.0).as_slice(), ser(snap).as_slice())?;
            tx.open_table(META)?.insert(
                meta_key(&MetaKey::Snapshot(cid, snap.id)).as_slice(),
                envelope,
            )?;
        }
        if let Some((seg, env)) = segment {
            apply_in(&tx, seg, env)?;
        }
        for table in [PENDING, PENDING_COMMITS] {
            tx.open_table(table)?.remove(cid.0.as_slice())?;
        }
        {
            let mut ft = tx.open_table(FILES)?;
            let mut ct = tx.open_table(FOLDER_COUNTS)?;
            let mut count = u64_of(&ct, &cid)?;
            for path in &files.remove {
                if ft.remove(key2(&cid.0, path).as_slice())?.is_some() {
                    count = count.saturating_sub(1);
                }
            }
            for (path, record) in &files.upsert {
                if ft
                    .insert(key2(&cid.0, path).as_slice(), record.as_slice())?
                    .is_none()
                {
                    count += 1;
                }
            }
            ct.insert(cid.0.as_slice(), count.to_le_bytes().as_slice())?;
            let mut tt = tx.open_table(FOLDER_TREES)?;
            for path in &files.forget_trees {
                tt.remove(key2(&cid.0, path).as_slice())?;
            }
            for (path, tree) in &files.trees {
                tt.insert(key2(&cid.0, path).as_slice(), ser(tree).as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Record (or clear) the snapshot a backup is committing peers first.
    pub(crate) fn set_pending(
        &self,
        cid: &ContainerId,
        pending: Option<&crate::pending::PendingCommit>,
    ) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(PENDING_COMMITS)?;
            match pending {
                Some(p) => insert_ser(&mut t, cid.0.as_slice(), &p.stored())?,
                None => {
                    t.remove(cid.0.as_slice())?;
                }
            };
        }
        tx.commit()?;
        Ok(())
    }

    /// The containers with a pending commit.
    pub(crate) fn pending_containers(&self) -> Result<Vec<ContainerId>> {
        let tx = self.db.begin_read()?;
        let mut out = Vec::new();
        for table in [PENDING_COMMITS, PENDING] {
            for r in tx.open_table(table)?.iter()? {
                let id =
                    r?.0.value()
                        .try_into()
                        .map(ContainerId)
                        .map_err(|_| RepoError::Db("corrupt pending entry".into()))?;
                if !out.contains(&id) {
                    out.push(id);
                }
            }
        }
        Ok(out)
    }

    /// Write `pending` as version 1 did, for the test that older records
    /// are still finished.
    #[cfg(test)]
    pub(crate) fn set_pending_v1(
        &self,
        cid: &ContainerId,
        pending: &crate::pending::PendingCommit,
    ) -> Result<()> {
        let tx = self.db.begin_write()?;
        tx.open_table(PENDING)?
            .insert(cid.0.as_slice(), ser(pending).as_slice())?;
        tx.open_table(PENDING_COMMITS)?.remove(cid.0.as_slice())?;
        tx.commit()?;
        Ok(())
    }

    /// The snapshot an interrupted backup left pending, if any, in either
    /// version of the record.
    pub(crate) fn pending(
        &self,
        cid: &ContainerId,
    ) -> Result<Option<crate::pending::StoredCommit>> {
        use crate::pending::StoredCommit;
        let tx = self.db.begin_read()?;
        if let Some(v) = tx.open_table(PENDING_COMMITS)?.get(cid.0.as_slice())? {
            return de(v.value()).map(|p| Some(StoredCommit::V2(p)));
        }
        let v1 = tx.open_table(PENDING)?.get(cid.0.as_slice())?;
        v1.map(|v| de(v.value()).map(StoredCommit::V1)).transpose()
    }

    /// Drop snapshots the index log says were forgotten.
    pub fn forget_snapshots(&self, cid: &ContainerId, ids: &[SnapshotId]) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            let mut st = tx.open_table(SNAPSHOTS)?;
            let mut mt = tx.open_table(META)?;
            for id in ids {
                st.remove(key2(&cid.0, &id.0).as_slice())?;
                mt.remove(meta_key(&MetaKey::Snapshot(*cid, *id)).as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Record a snapshot read from a peer (its envelope verified by the caller).
    pub fn insert_snapshot(&self, snap: &SnapshotManifest, envelope: &[u8]) -> Result<()> {
        let tx = self.db.begin_write()?;
        {
            tx.open_table(SNAPSHOTS)?.insert(
                key2(&snap.container.0, &snap.id.0).as_slice(),
                ser(snap).as_slice(),
            )?;
            tx.open_table(META)?.insert(
                meta_key(&MetaKey::Snapshot(snap.container, snap.id)).as_slice(),
                envelope,
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn put_meta(&self, key: &MetaKey, envelope: &[u8]) -> Result<()> {
        let tx = self.db.begin_write()?;
        tx.open_table(META)?
            .insert(meta_key(key).as_slice(), envelope)?;
        tx.commit()?;
        Ok(())
    }

    /// The keys of every signed envelope of a container (the envelopes
    /// themselves are not copied out).
    pub fn meta_keys(&self, cid: &ContainerId) -> Result<Vec<MetaKey>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(META)?;
        let p = Prefix::new(cid);
        let mut out = Vec::new();
        for r in t.range::<&[u8]>(p.bounds())? {
            out.extend(parse_meta_key(r?.0.value()));
        }
        Ok(out)
    }

    /// One signed envelope, if the index holds it.
    pub fn meta_envelope(&self, key: &MetaKey) -> Result<Option<Vec<u8>>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(META)?;
        Ok(t.get(meta_key(key).as_slice())?.map(|v| v.value().to_vec()))
    }

    /// Every signed envelope of a container that its peers should hold.
    pub fn meta(&self, cid: &ContainerId) -> Result<Vec<(MetaKey, Vec<u8>)>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(META)?;
        let p = Prefix::new(cid);
        let mut out = Vec::new();
        for r in t.range::<&[u8]>(p.bounds())? {
            let (k, v) = r?;
            if let Some(key) = parse_meta_key(k.value()) {
                out.push((key, v.value().to_vec()));
            }
        }
        Ok(out)
    }

    pub fn snapshots(&self, cid: &ContainerId) -> Result<Vec<SnapshotManifest>> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(SNAPSHOTS)?;
        let p = Prefix::new(cid);
        let mut v: Vec<SnapshotManifest> = t
            .range::<&[u8]>(p.bounds())?
            .map(|r| de(r?.1.value()))
            .collect::<Result<_>>()?;
        v.sort_by_key(|s| s.time_unix_ns);
        Ok(v)
    }

    /// The container's blob epoch (see [`Lookups::epoch`]).
    pub(crate) fn blob_epoch(&self, cid: &ContainerId) -> Result<u64> {
        let tx = self.db.begin_read()?;
        u64_of(&tx.open_table(BLOB_EPOCHS)?, cid)
    }

    /// The file cache and the dedup set of a container as of now, looked up
    /// one key at a time (a backup never loads either whole).
    pub(crate) fn lookups(&self, cid: &ContainerId) -> Result<Lookups> {
        let tx = self.db.begin_read()?;
        let epoch = u64_of(&tx.open_table(BLOB_EPOCHS)?, cid)?;
        let folders = u64_of(&tx.open_table(FOLDER_COUNTS)?, cid)?;
        Ok(Lookups {
            cid: *cid,
            epoch,
            folders,
            files: tx.open_table(FILES)?,
            trees: tx.open_table(FOLDER_TREES)?,
            blobs: tx.open_table(BLOBS)?,
        })
    }
}
