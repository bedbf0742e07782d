//! Read-only sharing (design §9e): the owner seals a container's key and
//! manifest to another identity (`trove share`); the recipient adds the
//! container read-only (`trove share accept`), reading its snapshots and
//! index segments from the peers of its roster and trusting only what the
//! owner's identity signed. The recipient's commands that read (snapshots,
//! ls, restore, dump, mount) work on it; those that write refuse
//! ([`RepoError::SharedReadOnly`]).

use crate::error::{RepoError, Result};
use crate::home::{Container, Home, Owner};
use crate::sync::{open_signed_object, Opened};
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
    pub manifest: ContainerManifest,
    /// The owner, who alone signs its snapshots and segments.
    pub sharer: PublicIdentity,
    /// The container key, wrapped by this identity's master secret.
    pub wrapped_key: Vec<u8>,
    pub accepted_unix: i64,
}

impl ReceivedShare {
    pub fn open(&self, owner: &Owner) -> Result<Container> {
        let key = owner
            .master
            .unwrap(&self.manifest.id, &self.wrapped_key)
            .map_err(|e| {
                RepoError::Format(format!("shared container `{}`: {e}", self.manifest.name))
            })?;
        Ok(Container {
            keys: key.derive(),
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
}

/// Seal container `name` to the identity whose owner id is `recipient`
/// (64 hex digits): the share file's bytes.
pub fn share_container(
    home: &Home,
    owner: &Owner,
    name: &str,
    recipient: &str,
) -> Result<(Vec<u8>, GivenShare)> {
    let rid: [u8; 32] = hex::decode(recipient.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| RepoError::BadOwnerId(recipient.to_owned()))?;
    if hex::encode(rid) == owner.owner_id() {
        return Err(RepoError::ShareWithSelf);
    }
    let c = home.containers().open(owner, name)?;
    let key = owner
        .master
        .unwrap(&c.manifest.id, &c.manifest.wrapped_key)
        .map_err(|e| RepoError::Format(format!("container `{name}`: {e}")))?;
    let now = crate::time::now_unix();
    let bytes = seal_share(&owner.identity, &rid, &c.manifest, &key, now)?;
    let given = GivenShare {
        container: c.manifest.name.clone(),
        container_id: c.manifest.id,
        recipient: hex::encode(rid),
        shared_unix: now,
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
    let m = contents.manifest;
    if home.index.container(&m.name).is_ok() {
        return Err(RepoError::ContainerExists(m.name));
    }
    if let Some(other) = received(home, &m.name)? {
        if other.manifest.id != m.id {
            return Err(RepoError::ContainerExists(m.name));
        }
    }
    let record = ReceivedShare {
        wrapped_key: owner.master.wrap(&m.id, &contents.key),
        manifest: m,
        sharer: header.sharer,
        accepted_unix: crate::time::now_unix(),
    };
    home.index
        .put_received_share(&record.manifest.id, &record)?;
    refresh(home, owner, &record)
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
    };
    let mut segments: BTreeMap<SegmentId, (IndexSegment, Vec<u8>)> = BTreeMap::new();
    let mut snapshots: BTreeMap<SnapshotId, (SnapshotManifest, Vec<u8>)> = BTreeMap::new();
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
            let seen = match key {
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
                Ok(Opened::Manifest(_)) | Err(_) => {}
            }
        }
    }
    if report.peers_read.is_empty() {
        return Err(RepoError::NoReachablePeer);
    }
    let state = replay(segments.values().map(|(s, _)| s));
    let entries: Vec<(&IndexSegment, &[u8])> =
        segments.values().map(|(s, e)| (s, e.as_slice())).collect();
    home.index.rebuild_packs(&cid, &state, &entries)?;
    let forgotten: Vec<SnapshotId> = state.forgotten.iter().copied().collect();
    home.index.forget_snapshots(&cid, &forgotten)?;
    for (snap, env) in snapshots.values() {
        if !state.forgotten.contains(&snap.id) {
            home.index.insert_snapshot(snap, env)?;
            report.snapshots += 1;
        }
    }
    report.packs = state.packs.len();
    Ok(report)
}
