//! Read-only sharing (design §9e): the owner seals a container's key and
//! manifest to another identity (`trove share`); the recipient adds the
//! container read-only (`trove share accept`), reading its snapshots and
//! index segments from the peers of its roster and trusting only what the
//! owner's identity signed. The recipient's commands that read (snapshots,
//! ls, restore, dump, mount) work on it; those that write refuse
//! ([`RepoError::SharedReadOnly`]).

use crate::error::{RepoError, Result};
use crate::home::{Container, Home, Owner};
use crate::sync::{apply_log, open_signed_object, Opened};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use trove_core::keys::PublicIdentity;
use trove_core::manifest::{replay, ContainerManifest, IndexSegment, SnapshotManifest};
use trove_core::share::{open_share, peek_share, seal_share};
use trove_core::{ContainerId, SegmentId, SnapshotId};
use trove_peer::MetaKey;

/// A container someone shared with this identity, as the index keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReceivedShare {
    /// The container's manifest, its keys (`wrapped_key`, `later_keys`)
    /// wrapped by this identity's master secret, so it opens as one of
    /// this identity's own does.
    pub manifest: ContainerManifest,
    /// The owner, who alone signs its snapshots and segments.
    pub sharer: PublicIdentity,
    pub accepted_unix: i64,
}

impl ReceivedShare {
    pub fn open(&self, owner: &Owner) -> Result<Container> {
        let keys = self.manifest.keys(&owner.master).map_err(|e| {
            RepoError::Format(format!("shared container `{}`: {e}", self.manifest.name))
        })?;
        Ok(Container {
            keys,
            manifest: self.manifest.clone(),
        })
    }
}

/// A share this identity gave, for `trove share list`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GivenShare {
    pub container: String,
    pub container_id: ContainerId,
    /// The recipient's owner id (hex).
    pub recipient: String,
    pub shared_unix: i64,
    /// When `trove share revoke` replaced the container key for it.
    pub revoked_unix: Option<i64>,
}

/// `trove share list`.
#[derive(Debug, Clone, Serialize)]
pub struct ShareList {
    pub given: Vec<GivenShare>,
    pub received: Vec<ReceivedRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReceivedRow {
    pub container: String,
    pub container_id: ContainerId,
    /// The owner's identity fingerprint.
    pub owner: String,
    pub accepted_unix: i64,
    pub snapshots: usize,
}

/// What `trove share accept` did.
#[derive(Debug, Clone, Serialize)]
pub struct AcceptReport {
    pub container: String,
    pub owner: String,
    pub peers_read: Vec<String>,
    pub peers_unreachable: Vec<String>,
    pub snapshots: usize,
    pub packs: usize,
    /// Snapshots and segments on the peers that the keys shared do not
    /// open: made after a revocation (or not the owner's).
    pub unreadable: usize,
}

/// What `trove share revoke` did.
#[derive(Debug, Clone, Serialize)]
pub struct RevokeReport {
    pub container: String,
    pub recipient: String,
    /// The container manifest's revision carrying the new key.
    pub revision: u64,
    /// Peers that hold that revision now.
    pub peers_updated: Vec<String>,
    /// Peers that do not yet (the next backup replicates it).
    pub peers_not_updated: Vec<String>,
    /// Other recipients of this container: the new data is not readable
    /// for them either until they get a new share file.
    pub reshare: Vec<String>,
}

/// Stop `recipient` reading what the container stores from now on: a new
/// container key seals new data, snapshots and segments (design §9e.4).
/// What was readable before stays readable for anyone who kept the key.
pub fn revoke_share(
    home: &Home,
    owner: &Owner,
    name: &str,
    recipient: &str,
    progress: &dyn crate::progress::Progress,
) -> Result<RevokeReport> {
    let rid = parse_owner_id(recipient)?;
    crate::pending::finish_all(home, owner, progress)?;
    let containers = home.containers();
    let mut manifest = containers.open(owner, name)?.manifest;
    let cid = manifest.id;
    let key = trove_core::keys::ContainerKey::generate();
    manifest.later_keys.push(owner.master.wrap(&cid, &key));
    manifest.revision += 1;
    containers.update_manifest(owner, &manifest)?;
    let container = containers.open(owner, name)?;

    // Replicate the manifest with the new key before any data is sealed
    // with it (every backup does this again first).
    let peers = home.peers().open_all()?;
    let available = peers.available();
    crate::meta::sync_meta(home, owner, &container, &available, true, progress)?;
    let (mut peers_updated, mut peers_not_updated) = (Vec::new(), Vec::new());
    for (rec, peer) in &available {
        let revision = peer
            .get_meta(&MetaKey::Container(cid))
            .ok()
            .and_then(|b| trove_core::envelope::peek(&b).ok())
            .map(|h| h.revision);
        match revision == Some(manifest.revision) {
            true => peers_updated.push(rec.name.clone()),
            false => peers_not_updated.push(rec.name.clone()),
        }
    }
    for s in peers.slots.iter().filter(|s| s.available().is_none()) {
        peers_not_updated.push(s.record.name.clone());
    }

    let now = crate::time::now_unix();
    let mut reshare = Vec::new();
    let mut revoked = GivenShare {
        container: manifest.name.clone(),
        container_id: cid,
        recipient: hex::encode(rid),
        shared_unix: now,
        revoked_unix: Some(now),
    };
    for g in home.index.given_shares::<GivenShare>()? {
        if g.container_id != cid {
            continue;
        }
        if g.recipient == revoked.recipient {
            revoked.shared_unix = g.shared_unix;
        } else if g.revoked_unix.is_none() {
            reshare.push(g.recipient);
        }
    }
    home.index.put_given_share(&cid, &rid, &revoked)?;
    Ok(RevokeReport {
        container: manifest.name,
        recipient: revoked.recipient,
        revision: manifest.revision,
        peers_updated,
        peers_not_updated,
        reshare,
    })
}

fn parse_owner_id(s: &str) -> Result<[u8; 32]> {
    hex::decode(s.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| RepoError::BadOwnerId(s.to_owned()))
}

/// Seal container `name` to the identity whose owner id is `recipient`
/// (64 hex digits): the share file's bytes.
pub fn share_container(
    home: &Home,
    owner: &Owner,
    name: &str,
    recipient: &str,
) -> Result<(Vec<u8>, GivenShare)> {
    let rid = parse_owner_id(recipient)?;
    if hex::encode(rid) == owner.owner_id() {
        return Err(RepoError::ShareWithSelf);
    }
    let c = home.containers().open(owner, name)?;
    let keys = c
        .manifest
        .raw_keys(&owner.master)
        .map_err(|e| RepoError::Format(format!("container `{name}`: {e}")))?;
    let now = crate::time::now_unix();
    let bytes = seal_share(&owner.identity, &rid, &c.manifest, &keys, now)?;
    let given = GivenShare {
        container: c.manifest.name.clone(),
        container_id: c.manifest.id,
        recipient: hex::encode(rid),
        shared_unix: now,
        revoked_unix: None,
    };
    home.index.put_given_share(&c.manifest.id, &rid, &given)?;
    Ok((bytes, given))
}

/// Add the container of share file `bytes` to this home, read-only, and
/// read its snapshots and index from the peers of its roster. Accepting
/// the same share again reads them again (new snapshots).
pub fn accept_share(home: &Home, owner: &Owner, bytes: &[u8]) -> Result<AcceptReport> {
    let header = peek_share(bytes)?;
    if hex::encode(header.recipient) != owner.owner_id() {
        return Err(RepoError::ShareNotForYou {
            recipient: hex::encode(header.recipient),
            you: owner.owner_id(),
        });
    }
    if header.sharer == owner.public() {
        return Err(RepoError::ShareWithSelf);
    }
    let (_, contents) = open_share(bytes, &owner.master.transport_seed())?;
    let mut m = contents.manifest;
    if home.index.container(&m.name).is_ok() {
        return Err(RepoError::ContainerExists(m.name));
    }
    if let Some(other) = received(home, &m.name)? {
        if other.manifest.id != m.id {
            return Err(RepoError::ContainerExists(m.name));
        }
    }
    let mut wrapped = contents.keys.iter().map(|k| owner.master.wrap(&m.id, k));
    m.wrapped_key = wrapped
        .next()
        .expect("open_share refuses a file without a key");
    m.later_keys = wrapped.collect();
    let record = ReceivedShare {
        manifest: m,
        sharer: header.sharer,
        accepted_unix: crate::time::now_unix(),
    };
    home.index
        .put_received_share(&record.manifest.id, &record)?;
    refresh(home, owner, &record)
}

/// Read the new snapshots and index of every container shared with this
/// identity (`trove share sync`); a container none of whose peers answers
/// is reported, not an error for the others.
pub fn sync_shares(home: &Home, owner: &Owner) -> Result<Vec<AcceptReport>> {
    received_all(home)?
        .iter()
        .map(|r| match refresh(home, owner, r) {
            Err(RepoError::NoReachablePeer) => Ok(AcceptReport {
                container: r.manifest.name.clone(),
                owner: r.sharer.fingerprint(),
                peers_read: Vec::new(),
                peers_unreachable: r.manifest.roster.iter().map(|p| p.name.clone()).collect(),
                snapshots: home.index.snapshots(&r.manifest.id)?.len(),
                packs: 0,
                unreadable: 0,
            }),
            other => other,
        })
        .collect()
}

/// Every container shared with this identity.
pub(crate) fn received_all(home: &Home) -> Result<Vec<ReceivedShare>> {
    home.index.received_shares()
}

/// The shared container named `name`, if there is one.
pub(crate) fn received(home: &Home, name: &str) -> Result<Option<ReceivedShare>> {
    Ok(received_all(home)?
        .into_iter()
        .find(|r| r.manifest.name == name))
}

/// The shares given and received.
pub fn list_shares(home: &Home) -> Result<ShareList> {
    let received = received_all(home)?
        .into_iter()
        .map(|r| {
            Ok(ReceivedRow {
                snapshots: home.index.snapshots(&r.manifest.id)?.len(),
                container: r.manifest.name,
                container_id: r.manifest.id,
                owner: r.sharer.fingerprint(),
                accepted_unix: r.accepted_unix,
            })
        })
        .collect::<Result<_>>()?;
    Ok(ShareList {
        given: home.index.given_shares()?,
        received,
    })
}

/// Read a shared container's snapshots and index segments from the peers
/// of its roster, keeping only what the owner signed and the container
/// key opens, and replay them into the index as `sync` does.
fn refresh(home: &Home, owner: &Owner, record: &ReceivedShare) -> Result<AcceptReport> {
    let container = record.open(owner)?;
    let cid = container.manifest.id;
    let set = home.peers().open_records(&record.manifest.roster);
    let mut report = AcceptReport {
        container: record.manifest.name.clone(),
        owner: record.sharer.fingerprint(),
        peers_read: Vec::new(),
        peers_unreachable: Vec::new(),
        snapshots: 0,
        packs: 0,
        unreadable: 0,
    };
    let mut segments: BTreeMap<SegmentId, (IndexSegment, Vec<u8>)> = BTreeMap::new();
    let mut snapshots: BTreeMap<SnapshotId, (SnapshotManifest, Vec<u8>)> = BTreeMap::new();
    let mut unopened: std::collections::HashSet<MetaKey> = Default::default();
    for slot in &set.slots {
        let listed = slot.available().ok_or(()).and_then(|p| {
            p.list_meta(Some(&cid))
                .map(|keys| (p, keys))
                .map_err(|_| ())
        });
        let Ok((peer, keys)) = listed else {
            report.peers_unreachable.push(slot.record.name.clone());
            continue;
        };
        report.peers_read.push(slot.record.name.clone());
        for key in keys {
            let seen = unopened.contains(&key)
                || match key {
                    MetaKey::IndexSegment(_, id) => segments.contains_key(&id),
                    MetaKey::Snapshot(_, id) => snapshots.contains_key(&id),
                    // The container manifest opens with the owner's master
                    // secret only; the share file carried it.
                    MetaKey::Container(_) => true,
                };
            if seen {
                continue;
            }
            let Ok(bytes) = peer.get_meta(&key) else {
                continue;
            };
            // Only what the owner signed and the container key opens.
            match open_signed_object(&record.sharer, &container.keys, key, &bytes) {
                Ok(Opened::Segment(seg)) => {
                    segments.insert(seg.id, (seg, bytes));
                }
                Ok(Opened::Snapshot(snap)) => {
                    snapshots.insert(snap.id, (snap, bytes));
                }
                Ok(Opened::Manifest(_)) => {}
                Err(_) => {
                    unopened.insert(key);
                }
            }
        }
    }
    if report.peers_read.is_empty() {
        return Err(RepoError::NoReachablePeer);
    }
    report.unreadable = unopened.len();
    let state = replay(segments.values().map(|(s, _)| s));
    apply_log(home, &cid, &state, &segments)?;
    for (snap, env) in snapshots.values() {
        if !state.forgotten.contains(&snap.id) {
            home.index.insert_snapshot(snap, env)?;
            report.snapshots += 1;
        }
    }
    report.packs = state.packs.len();
    Ok(report)
}
