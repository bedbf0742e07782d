//! Rebuilding the local index from peers (DESIGN invariant 6): with the
//! master secret and one reachable peer, read every container manifest,
//! snapshot manifest and index segment signed by this identity, verify each,
//! find the other peers again from the container rosters, and fill the
//! index so that snapshots, restore and dedup work as before.

use crate::error::{RepoError, Result};
use crate::home::{Home, Owner};
use crate::progress::{Event, Progress};
use std::collections::{BTreeMap, HashMap, HashSet};
use trove_core::envelope;
use trove_core::manifest::{ContainerManifest, IndexSegment, PeerRecord, SnapshotManifest};
use trove_core::seal::BlobKind;
use trove_core::{ContainerId, FragmentId, PeerId};
use trove_net::MetaKey;

/// A container read from peers: its manifest and envelope, and its verified
/// segments and snapshots with their envelopes.
type Found = (
    ContainerManifest,
    Vec<u8>,
    Vec<(IndexSegment, Vec<u8>)>,
    Vec<(SnapshotManifest, Vec<u8>)>,
);

/// What a sync found and did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SyncReport {
    pub containers: Vec<String>,
    pub snapshots: u64,
    pub segments: u64,
    pub packs: u64,
    /// Configured peers recognised as a roster peer: (local name, roster name).
    pub peers_recognised: Vec<(String, String)>,
    /// Roster peers added to the configuration.
    pub peers_added: Vec<String>,
    /// Objects that failed verification and were ignored.
    pub refused: Vec<String>,
}

/// Read everything this identity stored on the reachable peers into the index.
pub fn sync(home: &Home, owner: &Owner, progress: &dyn Progress) -> Result<SyncReport> {
    let mut report = SyncReport::default();
    let me = owner.public();
    let slots = home.open_peers()?;
    let available: Vec<_> = slots
        .iter()
        .filter_map(|s| s.available().map(|p| (s.record.clone(), p.clone())))
        .collect();
    if available.is_empty() {
        return Err(RepoError::Usage(
            "no reachable peer: add one with `trove peer add NAME dir:PATH`".into(),
        ));
    }

    // 1. Container manifests: the newest valid revision of each.
    let mut manifests: HashMap<ContainerId, (ContainerManifest, Vec<u8>)> = HashMap::new();
    let mut foreign = 0usize;
    let mut seen_any = false;
    for (rec, peer) in &available {
        let keys = match peer.list_meta(None) {
            Ok(k) => k,
            Err(e) => {
                progress.event(Event::Warning(e.to_string()));
                continue;
            }
        };
        for key in keys {
            let MetaKey::Container(cid) = key else {
                continue;
            };
            seen_any = true;
            let Ok(bytes) = peer.get_meta(&key) else {
                continue;
            };
            if envelope::peek(&bytes)
                .map(|h| h.signer != me)
                .unwrap_or(false)
            {
                foreign += 1;
                continue;
            }
            let opened = envelope::open_signed(
                &me,
                &owner.master.manifest_key(),
                BlobKind::ContainerManifest,
                &cid.0,
                &bytes,
            )
            .map_err(|e| e.to_string())
            .and_then(|b| ContainerManifest::decode(&b).map_err(|e| e.to_string()));
            match opened {
                Ok(m) if m.id == cid => {
                    let newer = manifests
                        .get(&cid)
                        .is_none_or(|(old, _)| m.revision > old.revision);
                    if newer {
                        manifests.insert(cid, (m, bytes));
                    }
                }
                Ok(_) => report.refused.push(format!(
                    "peer `{}`: {key} names another container",
                    rec.name
                )),
                Err(e) => report
                    .refused
                    .push(format!("peer `{}`: {key} refused: {e}", rec.name)),
            }
        }
    }
    if manifests.is_empty() {
        let names: Vec<_> = available
            .iter()
            .map(|(r, _)| format!("`{}`", r.name))
            .collect();
        return Err(RepoError::Usage(if foreign > 0 {
            format!(
                "peer(s) {} hold data of another identity only, none of this one (fingerprint {}): wrong phrase or shares?",
                names.join(", "),
                me.fingerprint()
            )
        } else if seen_any {
            format!(
                "no container manifest on {} could be verified: {}",
                names.join(", "),
                report.refused.join("; ")
            )
        } else {
            format!(
                "peer(s) {} hold no Trove data of this identity",
                names.join(", ")
            )
        }));
    }

    // 2. Segments and snapshots of each container, verified, from every peer.
    let mut rosters: Vec<PeerRecord> = Vec::new();
    let mut fragments_by_peer: HashMap<PeerId, Vec<FragmentId>> = HashMap::new();
    let mut pending: Vec<Found> = Vec::new();
    for (cid, (m, env)) in manifests {
        let key = owner
            .master
            .unwrap(&cid, &m.wrapped_key)
            .map_err(|e| RepoError::Format(format!("container `{}`: {e}", m.name)))?
            .derive();
        let mut segs = BTreeMap::new();
        let mut snaps = BTreeMap::new();
        for (rec, peer) in &available {
            let Ok(keys) = peer.list_meta(Some(&cid)) else {
                continue;
            };
            for k in keys {
                let (kind, object) = match &k {
                    MetaKey::IndexSegment(_, s) if !segs.contains_key(s) => {
                        (BlobKind::IndexSegment, s.0)
                    }
                    MetaKey::Snapshot(_, s) if !snaps.contains_key(s) => {
                        (BlobKind::SnapshotManifest, s.0)
                    }
                    _ => continue,
                };
                let Ok(bytes) = peer.get_meta(&k) else {
                    continue;
                };
                match envelope::open_signed(&me, &key.seal, kind, &object, &bytes) {
                    Err(e) => report
                        .refused
                        .push(format!("peer `{}`: {k} refused: {e}", rec.name)),
                    Ok(body) => match &k {
                        MetaKey::IndexSegment(_, s) => match IndexSegment::decode(&body) {
                            Ok(seg) if seg.container == cid => {
                                segs.insert(*s, (seg, bytes));
                            }
                            _ => report
                                .refused
                                .push(format!("peer `{}`: {k} does not decode", rec.name)),
                        },
                        MetaKey::Snapshot(_, s) => match SnapshotManifest::decode(&body) {
                            Ok(snap) if snap.container == cid && snap.id == *s => {
                                snaps.insert(*s, (snap, bytes));
                            }
                            _ => report
                                .refused
                                .push(format!("peer `{}`: {k} does not decode", rec.name)),
                        },
                        MetaKey::Container(_) => {}
                    },
                }
            }
        }
        for (seg, _) in segs.values() {
            for p in &seg.packs {
                for f in &p.fragments {
                    let v = fragments_by_peer.entry(f.peer).or_default();
                    if v.len() < 8 {
                        v.push(f.id);
                    }
                }
            }
        }
        rosters.extend(m.roster.iter().cloned());
        pending.push((
            m,
            env,
            segs.into_values().collect(),
            snaps.into_values().collect(),
        ));
    }

    // 3. Recognise configured peers as roster peers (by the fragments they
    //    hold, so a disk mounted at a new path is still found), then add the
    //    roster peers that are not configured.
    let roster_ids: HashSet<PeerId> = rosters.iter().map(|r| r.id).collect();
    let mut configured = home.index.peers()?;
    let mut matched: HashSet<PeerId> = configured
        .iter()
        .map(|r| r.id)
        .filter(|id| roster_ids.contains(id))
        .collect();
    for (rec, peer) in &available {
        if roster_ids.contains(&rec.id) {
            continue;
        }
        let found = rosters.iter().find(|r| {
            !matched.contains(&r.id)
                && (r.location == rec.location
                    || fragments_by_peer.get(&r.id).is_some_and(|ids| {
                        ids.iter().any(|id| peer.has_fragment(id).unwrap_or(false))
                    }))
        });
        if let Some(r) = found {
            let updated = PeerRecord {
                id: r.id,
                name: rec.name.clone(),
                location: rec.location.clone(),
                labels: if rec.labels.is_empty() {
                    r.labels.clone()
                } else {
                    rec.labels.clone()
                },
            };
            home.index.replace_peer(&rec.name, &updated)?;
            matched.insert(r.id);
            report
                .peers_recognised
                .push((rec.name.clone(), r.name.clone()));
        }
    }
    configured = home.index.peers()?;
    let mut added: HashSet<PeerId> = HashSet::new();
    for r in &rosters {
        if matched.contains(&r.id)
            || added.contains(&r.id)
            || configured
                .iter()
                .any(|c| c.id == r.id || c.location == r.location)
        {
            continue;
        }
        let mut rec = r.clone();
        if configured.iter().any(|c| c.name == rec.name) {
            rec.name = format!("{}-{}", rec.name, rec.id.short());
        }
        home.index.add_peer(&rec)?;
        configured.push(rec.clone());
        added.insert(r.id);
        report
            .peers_added
            .push(format!("{} ({})", rec.name, rec.location));
    }

    // 4. Fill the index.
    for (m, env, segs, snaps) in pending {
        if let Ok(local) = home.index.container(&m.name) {
            if local.id != m.id {
                return Err(RepoError::ContainerExists(m.name.clone()));
            }
        }
        home.index.put_container(&m, false)?;
        home.index.put_meta(&MetaKey::Container(m.id), &env)?;
        for (seg, bytes) in &segs {
            home.index.record_packs(&m.id, &seg.packs, true)?;
            home.index
                .put_meta(&MetaKey::IndexSegment(m.id, seg.id), bytes)?;
            report.segments += 1;
            report.packs += seg.packs.len() as u64;
        }
        for (snap, bytes) in &snaps {
            home.index.insert_snapshot(snap, bytes)?;
            report.snapshots += 1;
        }
        report.containers.push(m.name);
    }
    report.containers.sort();
    Ok(report)
}
