//! A node's data folder: its key, the owners it grants, and one folder peer
//! per owner (each owner's fragments and metadata in its own namespace).
//!
//! ```text
//! DIR/trove-node       marker and format version
//! DIR/node.key         the node's secret key (32 bytes, mode 0600)
//! DIR/grants.json      granted owners and their quotas (the operator's file)
//! DIR/ticket           the ticket of the last start
//! DIR/operator         the operator's own owner id (`--operator`), if given
//! DIR/ledger.json      the node's reciprocity observations (`ledger`)
//! DIR/proofs.json      what the operator's home proved (`ledger`)
//! DIR/escrow/<owner>.json  an inheritance escrow held for that owner (`escrow`)
//! DIR/owners/<owner>/  a folder peer: fragments/, meta/, tmp/, trash/,
//!                      and `identity`: the owner's pinned identity key
//! ```
//!
//! Everything here is private to the node's user (folders 0700, files 0600).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use trove_core::keys::PublicIdentity;
use trove_peer::{durable, FolderPeer, Peer};

use crate::error::NodeError;

mod handover;
pub use handover::HandOverRefusal;

const MARKER: &str = "trove-node";
const MARKER_BODY: &[u8] = b"trove node data v1\n";
const KEY_FILE: &str = "node.key";
const GRANTS_FILE: &str = "grants.json";
const TICKET_FILE: &str = "ticket";
/// The operator's own owner id, 64 hex digits and a newline.
const OPERATOR_FILE: &str = "operator";
const OWNERS: &str = "owners";
/// In an owner's folder: the identity its metadata must be signed by.
const IDENTITY_FILE: &str = "identity";
const GRANTS_VERSION: u32 = 1;

/// An owner as nodes know it: the public half of its transport key.
///
/// Serialized as 64 hex digits in human-readable formats (JSON: the keys
/// of `ledger.json` and `proofs.json`) and as 32 raw bytes in binary ones
/// (postcard: the node protocol, the owner's index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwnerId(pub [u8; 32]);

impl Serialize for OwnerId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_hex())
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for OwnerId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            text.parse().map_err(serde::de::Error::custom)
        } else {
            <[u8; 32]>::deserialize(d).map(Self)
        }
    }
}

impl OwnerId {
    /// The owner id of a transport key seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(*iroh::SecretKey::from_bytes(seed).public().as_bytes())
    }
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    pub fn short(&self) -> String {
        self.to_hex()[..12].to_owned()
    }
}

impl std::fmt::Display for OwnerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl std::str::FromStr for OwnerId {
    type Err = NodeError;
    fn from_str(s: &str) -> Result<Self, NodeError> {
        let bad = || {
            NodeError::Usage(format!(
                "`{s}` is not an owner id: ask the owner for the 64 hex digits `trove whoami` prints"
            ))
        };
        let bytes = hex::decode(s.trim()).map_err(|_| bad())?;
        let arr: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
        iroh::PublicKey::from_bytes(&arr).map_err(|_| bad())?;
        Ok(Self(arr))
    }
}

/// One owner's grant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Bytes the owner may keep here (fragments and metadata, not counting
    /// deleted fragments in their grace period).
    pub quota: u64,
    pub granted_unix: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct GrantsFile {
    version: u32,
    owners: BTreeMap<String, Grant>,
}

/// Parse sizes like `500M`, `20G`, `1.5T` or a plain byte count (binary units).
pub fn parse_size(s: &str) -> Result<u64, NodeError> {
    let t = s.trim();
    let (num, unit) = t
        .find(|c: char| c.is_ascii_alphabetic())
        .map_or((t, ""), |i| t.split_at(i));
    let mult: u64 = match unit
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => 0,
    };
    let n: f64 = num.trim().parse().unwrap_or(-1.0);
    if mult == 0 || n.is_nan() || n < 0.0 || !n.is_finite() {
        return Err(NodeError::Usage(format!(
            "size `{s}`: use a number with K, M, G or T, e.g. 20G"
        )));
    }
    Ok((n * mult as f64) as u64)
}

/// Free bytes on the file system holding `path`.
pub fn free_space(path: &Path) -> Option<u64> {
    rustix::fs::statvfs(path)
        .ok()
        .map(|v| v.f_bavail.saturating_mul(v.f_frsize))
}

/// Total size of the regular files under `dir` (0 if it does not exist).
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Write `bytes` to `path` atomically, durably and privately.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), NodeError> {
    durable::replace(path, bytes, None).map_err(|e| NodeError::io("write", path, e))
}

/// The node's data folder, for the admin commands (which run while the node
/// may be running: they only touch `grants.json`, atomically).
#[derive(Debug, Clone)]
pub struct NodeDir {
    root: PathBuf,
}

impl NodeDir {
    /// Open a node folder, creating it (and the node key) if it is new.
    pub fn open_or_create(root: &Path) -> Result<Self, NodeError> {
        let marker = root.join(MARKER);
        if !marker.exists() {
            let nonempty = fs::read_dir(root)
                .map(|mut d| d.next().is_some())
                .unwrap_or(false);
            if nonempty {
                return Err(NodeError::Usage(format!(
                    "{} is not empty and is not a node's data folder; choose an empty or new folder",
                    root.display()
                )));
            }
            durable::create_dir_all(&root.join(OWNERS))
                .map_err(|e| NodeError::io("create", root, e))?;
            let key = iroh::SecretKey::generate();
            write_atomic(&root.join(KEY_FILE), &key.to_bytes())?;
            write_atomic(&marker, MARKER_BODY)?;
            tracing::info!(dir = %root.display(), "created a new node");
        }
        Self::open(root)
    }

    /// Open an existing node folder. A data folder that other users can
    /// enter (made by hand, or by an older Trove) is made private, and the
    /// log says so.
    pub fn open(root: &Path) -> Result<Self, NodeError> {
        match fs::read(root.join(MARKER)) {
            Ok(b) if b == MARKER_BODY => {
                let had = durable::restrict(root, durable::DIR_MODE)
                    .map_err(|e| NodeError::io("restrict the permissions of", root, e))?;
                if let Some(had) = had {
                    tracing::warn!(dir = %root.display(), "the node's data folder was open to other users (mode {had:04o}); it is now 0700");
                }
                Ok(Self {
                    root: root.to_owned(),
                })
            }
            Ok(_) => Err(NodeError::Corrupt {
                path: root.to_owned(),
                what: "unknown node data format (made by a newer Trove?)".into(),
            }),
            Err(_) => Err(NodeError::Usage(format!(
                "{} is not a node's data folder; start one with `trove node run --data {}`",
                root.display(),
                root.display()
            ))),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The node's persistent secret key.
    pub fn secret_key(&self) -> Result<iroh::SecretKey, NodeError> {
        let path = self.root.join(KEY_FILE);
        let bytes = fs::read(&path).map_err(|e| NodeError::io("read", &path, e))?;
        let arr: [u8; 32] = bytes.try_into().map_err(|_| NodeError::Corrupt {
            path: path.clone(),
            what: "the node key is not 32 bytes".into(),
        })?;
        Ok(iroh::SecretKey::from_bytes(&arr))
    }

    pub fn node_id(&self) -> Result<[u8; 32], NodeError> {
        Ok(*self.secret_key()?.public().as_bytes())
    }

    fn grants_path(&self) -> PathBuf {
        self.root.join(GRANTS_FILE)
    }

    /// The granted owners.
    pub fn grants(&self) -> Result<BTreeMap<OwnerId, Grant>, NodeError> {
        let path = self.grants_path();
        let file: GrantsFile = match fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| NodeError::Corrupt {
                path: path.clone(),
                what: format!("grants file unreadable: {e}"),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => GrantsFile::default(),
            Err(e) => return Err(NodeError::io("read", &path, e)),
        };
        if file.version > GRANTS_VERSION {
            return Err(NodeError::Corrupt {
                path,
                what: format!(
                    "grants file version {} is newer than this Trove",
                    file.version
                ),
            });
        }
        file.owners
            .into_iter()
            .map(|(k, g)| Ok((k.parse::<OwnerId>()?, g)))
            .collect()
    }

    fn save_grants(&self, grants: &BTreeMap<OwnerId, Grant>) -> Result<(), NodeError> {
        let file = GrantsFile {
            version: GRANTS_VERSION,
            owners: grants
                .iter()
                .map(|(k, g)| (k.to_hex(), g.clone()))
                .collect(),
        };
        let json = serde_json::to_vec_pretty(&file).unwrap_or_default();
        write_atomic(&self.grants_path(), &json)
    }

    /// Grant (or change the quota of) an owner. Takes effect on the running
    /// node at its next request from that owner.
    pub fn grant(&self, owner: OwnerId, quota: u64) -> Result<Grant, NodeError> {
        let mut grants = self.grants()?;
        let granted_unix = grants.get(&owner).map_or_else(now_unix, |g| g.granted_unix);
        let g = Grant {
            quota,
            granted_unix,
        };
        grants.insert(owner, g.clone());
        self.save_grants(&grants)?;
        Ok(g)
    }

    /// Revoke an owner: its requests are refused from now on. Its data stays
    /// until `purge` (the owner may be re-granted).
    pub fn revoke(&self, owner: &OwnerId) -> Result<bool, NodeError> {
        let mut grants = self.grants()?;
        let was = grants.remove(owner).is_some();
        self.save_grants(&grants)?;
        Ok(was)
    }

    pub fn owner_dir(&self, owner: &OwnerId) -> PathBuf {
        self.root.join(OWNERS).join(owner.to_hex())
    }

    /// The identity an owner's metadata must be signed by, once pinned.
    pub fn owner_identity(&self, owner: &OwnerId) -> Result<Option<PublicIdentity>, NodeError> {
        handover::pinned_identity(&self.owner_dir(owner))
    }

    /// Owners with data here (granted or not).
    pub fn owners_with_data(&self) -> Vec<OwnerId> {
        let Ok(rd) = fs::read_dir(self.root.join(OWNERS)) else {
            return Vec::new();
        };
        let mut v: Vec<OwnerId> = rd
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        v.sort();
        v
    }

    /// Live bytes (fragments and metadata) and bytes in the trash of one owner.
    pub fn usage(&self, owner: &OwnerId) -> (u64, u64) {
        let d = self.owner_dir(owner);
        (
            dir_bytes(&d.join("fragments")) + dir_bytes(&d.join("meta")),
            dir_bytes(&d.join("trash")),
        )
    }

    pub fn write_ticket(&self, ticket: &str) -> Result<(), NodeError> {
        write_atomic(
            &self.root.join(TICKET_FILE),
            format!("{ticket}\n").as_bytes(),
        )
    }

    /// The ticket the node wrote when it last started.
    pub fn ticket(&self) -> Result<String, NodeError> {
        let path = self.root.join(TICKET_FILE);
        match fs::read_to_string(&path) {
            Ok(s) => Ok(s.trim().to_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(NodeError::Usage(format!(
                "no ticket yet: start the node with `trove node run --data {}` first",
                self.root.display()
            ))),
            Err(e) => Err(NodeError::io("read", &path, e)),
        }
    }

    /// The operator's own owner id (what `trove whoami` prints on the
    /// operator's home), if `trove node run --operator` ever named it.
    pub fn operator(&self) -> Result<Option<OwnerId>, NodeError> {
        let path = self.root.join(OPERATOR_FILE);
        match fs::read_to_string(&path) {
            Ok(s) => s.trim().parse().map(Some).map_err(|_| NodeError::Corrupt {
                path,
                what: "the operator file is not an owner id (64 hex digits)".into(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(NodeError::io("read", &path, e)),
        }
    }

    /// Name the node's operator (kept for later runs).
    pub fn set_operator(&self, operator: &OwnerId) -> Result<(), NodeError> {
        write_atomic(
            &self.root.join(OPERATOR_FILE),
            format!("{operator}\n").as_bytes(),
        )
    }
}

/// One owner's namespace on a running node.
#[derive(Debug)]
pub struct OwnerSpace {
    pub owner: OwnerId,
    pub folder: FolderPeer,
    /// Bytes charged to the owner's quota: live fragments and metadata, and
    /// what the owner deleted or replaced that waits in the trash, so that
    /// putting and deleting cannot fill the disk past the quota. Includes
    /// reservations of puts in flight, so concurrent puts cannot overrun
    /// the quota together.
    pub used: AtomicU64,
    /// The identity the owner's metadata must be signed by: pinned at the
    /// first metadata object the node accepts from this owner.
    identity: Mutex<Option<PublicIdentity>>,
}

impl OwnerSpace {
    /// The pinned identity, if any.
    pub fn identity(&self) -> Option<PublicIdentity> {
        *self.identity.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Pin the owner's identity (first accepted metadata object); later
    /// objects must be signed by it. Persisted before it takes effect.
    pub fn pin_identity(&self, id: PublicIdentity) -> Result<(), NodeError> {
        let mut pinned = self.identity.lock().unwrap_or_else(|p| p.into_inner());
        if pinned.is_none() {
            let path = self.folder.path().join(IDENTITY_FILE);
            write_atomic(&path, format!("{}\n", id.to_hex()).as_bytes())?;
            *pinned = Some(id);
            tracing::info!(owner = %self.owner.short(), identity = %id.fingerprint(), "pinned the owner's identity");
        }
        Ok(())
    }
}

/// Read an owner's pinned identity; a damaged file is an error, not "none"
/// (which would let the next put pin another identity).
fn read_identity(path: &Path) -> Result<Option<PublicIdentity>, NodeError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(NodeError::io("read", path, e)),
    };
    let corrupt = || NodeError::Corrupt {
        path: path.to_owned(),
        what: "the owner's pinned identity is not 64 hex digits".into(),
    };
    let bytes: [u8; 32] = hex::decode(text.trim())
        .map_err(|_| corrupt())?
        .try_into()
        .map_err(|_| corrupt())?;
    Ok(Some(PublicIdentity(bytes)))
}

/// The storage of a running node: grants (re-read when the operator changes
/// them), per-owner spaces, capacity and grace period.
#[derive(Debug)]
pub struct NodeStore {
    pub dir: NodeDir,
    pub capacity: Option<u64>,
    pub grace: Duration,
    spaces: Mutex<BTreeMap<OwnerId, Arc<OwnerSpace>>>,
    /// Bytes on disk for all owners, live and in the trash.
    pub total: AtomicU64,
}

/// A request the node declines, with the reason for the owner.
#[derive(Debug)]
pub enum Refusal {
    Quota {
        used: u64,
        quota: u64,
    },
    Full {
        detail: String,
    },
    /// A new fragment would take the owner past what it may store under
    /// the node's reciprocity rule (`trove node run --reciprocal`).
    Reciprocity {
        used: u64,
        /// Bytes the operator's home proved the owner's nodes hold for it.
        given: u64,
        allowance: u64,
    },
}

/// Bytes reserved for a put in flight. Dropped without [`Reservation::keep`]
/// (the put failed, was refused, or its request was dropped at a timeout),
/// it gives the bytes back: no exit path leaks a reservation.
#[derive(Debug)]
#[must_use]
pub struct Reservation<'a> {
    store: &'a NodeStore,
    space: &'a OwnerSpace,
    len: u64,
}

impl Reservation<'_> {
    /// The bytes are stored: they stay charged.
    pub fn keep(mut self) {
        self.len = 0;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.len > 0 {
            self.store.release(self.space, self.len);
        }
    }
}

impl NodeStore {
    pub fn open(dir: NodeDir, capacity: Option<u64>, grace: Duration) -> Result<Self, NodeError> {
        // A damaged grants file stops the start, not the first request.
        dir.grants()?;
        let mut total = 0;
        for o in dir.owners_with_data() {
            let (live, trash) = dir.usage(&o);
            total += live + trash;
        }
        Ok(Self {
            dir,
            capacity,
            grace,
            spaces: Mutex::new(BTreeMap::new()),
            total: AtomicU64::new(total),
        })
    }

    /// The owner's grant, from `grants.json` as it is now: the file is
    /// small and re-read at every request, so a grant or revoke applies at
    /// once (a modification time may not change between two quick edits).
    pub fn grant_of(&self, owner: &OwnerId) -> Result<Option<Grant>, NodeError> {
        Ok(self.dir.grants()?.remove(owner))
    }

    /// The owner's space, created on first use.
    pub fn space(&self, owner: &OwnerId) -> Result<Arc<OwnerSpace>, NodeError> {
        let mut spaces = self.spaces.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = spaces.get(owner) {
            return Ok(s.clone());
        }
        let path = self.dir.owner_dir(owner);
        let folder = FolderPeer::create(&format!("owner {}", owner.short()), &path)?;
        let (live, trash) = self.dir.usage(owner);
        let identity = handover::pinned_identity(&path)?;
        let s = Arc::new(OwnerSpace {
            owner: *owner,
            folder,
            used: AtomicU64::new(live + trash),
            identity: Mutex::new(identity),
        });
        spaces.insert(*owner, s.clone());
        Ok(s)
    }

    /// Reserve `len` more bytes for `space` (quota, capacity, disk), or say
    /// why not. The reservation is given back when dropped unless kept.
    pub fn reserve<'a>(
        &'a self,
        space: &'a OwnerSpace,
        quota: u64,
        len: u64,
    ) -> Result<Reservation<'a>, Refusal> {
        let used = space.used.fetch_add(len, Ordering::SeqCst);
        if used.saturating_add(len) > quota {
            space.used.fetch_sub(len, Ordering::SeqCst);
            return Err(Refusal::Quota { used, quota });
        }
        let total = self.total.fetch_add(len, Ordering::SeqCst);
        let refuse = |detail: String| {
            space.used.fetch_sub(len, Ordering::SeqCst);
            self.total.fetch_sub(len, Ordering::SeqCst);
            Err(Refusal::Full { detail })
        };
        if let Some(cap) = self.capacity {
            if total.saturating_add(len) > cap {
                return refuse(format!("its capacity of {cap} bytes is used up"));
            }
        }
        // Keep a little room so the node's own files can still be written.
        const RESERVE: u64 = 16 << 20;
        if let Some(free) = free_space(self.dir.root()) {
            if free < len.saturating_add(RESERVE) {
                return refuse(format!("its disk has only {free} bytes free"));
            }
        }
        Ok(Reservation {
            store: self,
            space,
            len,
        })
    }

    /// Give bytes back (a dropped reservation, purged trash).
    fn release(&self, space: &OwnerSpace, len: u64) {
        space
            .used
            .fetch_sub(len.min(space.used.load(Ordering::SeqCst)), Ordering::SeqCst);
        self.total
            .fetch_sub(len.min(self.total.load(Ordering::SeqCst)), Ordering::SeqCst);
    }

    /// Free room left for this owner: the least of quota, capacity and disk.
    pub fn free_for(&self, space: &OwnerSpace, quota: u64) -> u64 {
        let mut free = quota.saturating_sub(space.used.load(Ordering::SeqCst));
        if let Some(cap) = self.capacity {
            free = free.min(cap.saturating_sub(self.total.load(Ordering::SeqCst)));
        }
        if let Some(disk) = free_space(self.dir.root()) {
            free = free.min(disk);
        }
        free
    }

    /// Free what owners deleted or replaced longer ago than the grace
    /// period, and remove transfers that were dropped and left behind.
    pub fn purge_expired(&self) -> u64 {
        let now = SystemTime::now();
        let mut freed = 0;
        for o in self.dir.owners_with_data() {
            let Ok(space) = self.space(&o) else { continue };
            space.folder.clean_stale_tmp(now);
            let before = self.dir.usage(&o).1;
            match space.folder.purge_expired(self.grace, now) {
                Ok(n) if n > 0 => {
                    let after = self.dir.usage(&o).1;
                    let bytes = before.saturating_sub(after);
                    self.release(&space, bytes);
                    freed += bytes;
                    tracing::info!(owner = %o.short(), files = n, bytes, "freed deleted data after the grace period");
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(owner = %o.short(), error = %e, "purging the trash failed")
                }
            }
        }
        freed
    }

    /// Bytes charged to an owner whose space is open (see
    /// [`OwnerSpace::used`]); `None` before its first request.
    pub fn used_of(&self, owner: &OwnerId) -> Option<u64> {
        let spaces = self.spaces.lock().unwrap_or_else(|p| p.into_inner());
        spaces.get(owner).map(|s| s.used.load(Ordering::SeqCst))
    }

    /// Fragment count and bytes of one owner (a full walk, for `stat`).
    pub fn stat(&self, space: &OwnerSpace) -> Result<trove_peer::PeerStat, trove_peer::PeerError> {
        space.folder.stat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("20G").unwrap(), 20 << 30);
        assert_eq!(parse_size("512m").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5K").unwrap(), 1536);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("ten").is_err());
        assert!(parse_size("-5G").is_err());
        assert!(parse_size("5X").is_err());
    }

    #[test]
    fn grants_persist_and_revoke() {
        let t = tempfile::tempdir().unwrap();
        let dir = NodeDir::open_or_create(&t.path().join("n")).unwrap();
        let key = dir.node_id().unwrap();
        assert_eq!(
            NodeDir::open_or_create(dir.root())
                .unwrap()
                .node_id()
                .unwrap(),
            key
        );
        let owner: OwnerId = hex::encode(iroh::SecretKey::generate().public().as_bytes())
            .parse()
            .unwrap();
        dir.grant(owner, 1000).unwrap();
        assert_eq!(dir.grants().unwrap()[&owner].quota, 1000);
        let store = NodeStore::open(dir.clone(), None, Duration::ZERO).unwrap();
        assert_eq!(store.grant_of(&owner).unwrap().unwrap().quota, 1000);
        assert!(dir.revoke(&owner).unwrap());
        assert!(!dir.revoke(&owner).unwrap());
        assert!(dir.grants().unwrap().is_empty());
        assert!("abc".parse::<OwnerId>().is_err());
        // A folder holding other things is not taken over.
        let other = t.path().join("other");
        fs::create_dir(&other).unwrap();
        fs::write(other.join("photo.jpg"), b"x").unwrap();
        assert!(NodeDir::open_or_create(&other).is_err());
    }

    #[test]
    fn reservations_respect_quota_and_capacity() {
        let t = tempfile::tempdir().unwrap();
        let dir = NodeDir::open_or_create(t.path()).unwrap();
        let store = NodeStore::open(dir, Some(1500), Duration::ZERO).unwrap();
        let owner = OwnerId(*iroh::SecretKey::generate().public().as_bytes());
        let space = store.space(&owner).unwrap();
        store.reserve(&space, 1000, 600).unwrap().keep();
        assert!(matches!(
            store.reserve(&space, 1000, 600),
            Err(Refusal::Quota {
                used: 600,
                quota: 1000
            })
        ));
        let dropped = store.reserve(&space, 1000, 400).unwrap();
        let other = store
            .space(&OwnerId(*iroh::SecretKey::generate().public().as_bytes()))
            .unwrap();
        assert!(matches!(
            store.reserve(&other, 1000, 600),
            Err(Refusal::Full { .. })
        ));
        // A reservation that is not kept is given back, whatever the exit path.
        drop(dropped);
        assert_eq!(space.used.load(Ordering::SeqCst), 600);
        store.reserve(&other, 1000, 400).unwrap().keep();
        assert_eq!(store.free_for(&other, 1000), 500);
    }
}
