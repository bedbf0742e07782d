//! The configured peers of a home: their records, adding and removing
//! them, and opening them — a folder directly, a node over the home's
//! network endpoint.

use crate::error::Result;
use crate::health::{probe, PeerHealth, PeerState, Storm};
use crate::home::{check_name, Container, Home};
use crate::location::{LocationError, PeerLocation};
use crate::progress::{Event, Progress};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use trove_core::manifest::PeerRecord;
use trove_core::PeerId;
use trove_node::{NodeClient, NodePeer};
use trove_peer::{FolderPeer, Peer, PeerError};
use trove_remote::{Credentials, RemoteLocation, RemotePeer};

/// Why the network endpoint for node peers could not be started.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum NetworkError {
    #[error(
        "{} is missing: run a command that unlocks (e.g. `trove snapshots`) once to recreate it",
        .0.display()
    )]
    NoTransportKey(PathBuf),
    /// The network settings in the environment are not understood.
    #[error("{0}")]
    Config(String),
    /// The endpoint did not start.
    #[error("{0}")]
    Start(String),
}

/// The configured peers of a home.
#[derive(Debug, Clone, Copy)]
pub struct Peers<'a> {
    home: &'a Home,
}

/// A configured peer and, if it could be opened, the peer itself.
#[derive(Debug)]
pub struct PeerSlot {
    pub record: PeerRecord,
    pub peer: Result<Arc<dyn Peer>, PeerError>,
    /// Its state, once [`PeerSet::record_health`] asked it.
    pub health: Option<PeerHealth>,
}

impl PeerSlot {
    pub fn available(&self) -> Option<&Arc<dyn Peer>> {
        self.peer.as_ref().ok()
    }

    /// Its state, if [`PeerSet::record_health`] asked it.
    pub fn state(&self) -> Option<PeerState> {
        self.health.as_ref().map(|h| h.state)
    }
}

/// Every configured peer, opened where possible.
#[derive(Debug)]
pub struct PeerSet {
    pub slots: Vec<PeerSlot>,
}

impl PeerSet {
    /// Tell the user about each peer that could not be opened (the
    /// operation goes on with the others).
    pub fn warn_unavailable(&self, progress: &dyn Progress) {
        for e in self.unavailable() {
            progress.event(Event::Warning(e.to_string()));
        }
    }

    /// Why each unavailable peer could not be opened.
    pub fn unavailable(&self) -> impl Iterator<Item = &PeerError> {
        self.slots.iter().filter_map(|s| s.peer.as_ref().err())
    }

    /// The peers that could be opened, with their records.
    pub fn available(&self) -> Vec<(PeerRecord, Arc<dyn Peer>)> {
        self.slots
            .iter()
            .filter_map(|s| s.available().map(|p| (s.record.clone(), p.clone())))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The records of every configured peer, available or not.
    pub fn records(&self) -> Vec<PeerRecord> {
        self.slots.iter().map(|s| s.record.clone()).collect()
    }

    /// Ask every peer whether it answers (all at once, so several dead
    /// nodes cost one timeout), set each slot's [`PeerHealth`], and, with
    /// `persist`, record in the index when each was last seen and since
    /// when it has been unreachable. A peer unreachable for `lost_after`
    /// or longer is [`PeerState::Lost`], a more recent one
    /// [`PeerState::Suspect`].
    pub fn record_health(
        &mut self,
        home: &Home,
        lost_after: Duration,
        persist: bool,
    ) -> Result<()> {
        let known = home.index.sightings()?;
        let audits = home.index.audits()?;
        let answers: Vec<Option<String>> = std::thread::scope(|s| {
            let asks: Vec<_> = self
                .slots
                .iter()
                .map(|slot| {
                    s.spawn(move || match &slot.peer {
                        Ok(p) => probe(p.as_ref()).err().map(|e| e.to_string()),
                        Err(e) => Some(e.to_string()),
                    })
                })
                .collect();
            asks.into_iter()
                .map(|a| {
                    a.join()
                        .unwrap_or_else(|_| Some("the probe panicked".into()))
                })
                .collect()
        });
        let now = crate::time::now_ns();
        let mut seen = Vec::with_capacity(self.slots.len());
        for (slot, error) in self.slots.iter_mut().zip(answers) {
            let id = slot.record.id;
            let sightings = known
                .get(&id)
                .copied()
                .unwrap_or_default()
                .observe(error.is_none(), now);
            seen.push((id, sightings));
            slot.health = Some(PeerHealth::new(
                &slot.record.name,
                id,
                sightings,
                audits.get(&id).cloned().unwrap_or_default(),
                error,
                now,
                lost_after,
            ));
        }
        if persist {
            home.index.record_sightings(&seen)?;
        }
        Ok(())
    }

    /// The storm guard (after [`PeerSet::record_health`]): when more than a
    /// quarter of the peers are unreachable at once ([`Storm`]), none of
    /// them counts as lost by time, only as suspect: their fragments still
    /// count and nothing is rebuilt away from them. Peers lost because they
    /// fail audits stay lost. With `enabled` (else nothing happens), returns
    /// the storm, if there is one, and tells `progress`.
    pub fn storm_guard(&mut self, enabled: bool, progress: &dyn Progress) -> Option<Storm> {
        if !enabled {
            return None;
        }
        let unreachable = self
            .slots
            .iter()
            .filter(|s| {
                s.health
                    .as_ref()
                    .is_some_and(|h| h.sightings.unreachable_since_ns.is_some())
            })
            .count();
        let storm = Storm::of(unreachable, self.slots.len())?;
        for h in self.slots.iter_mut().filter_map(|s| s.health.as_mut()) {
            if h.state == PeerState::Lost && !h.failed_audits() {
                h.state = PeerState::Suspect;
            }
        }
        progress.event(Event::Warning(storm.to_string()));
        Some(storm)
    }

    /// Each peer's state, once [`PeerSet::record_health`] asked them.
    pub fn health(&self) -> Vec<PeerHealth> {
        self.slots.iter().filter_map(|s| s.health.clone()).collect()
    }
}

/// One peer as `trove peer list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PeerRow {
    pub name: String,
    pub id: PeerId,
    pub location: String,
    pub labels: BTreeMap<String, String>,
    pub available: bool,
    /// Online, suspect (unreachable, its fragments still count) or lost
    /// (unreachable for longer than the threshold).
    pub state: PeerState,
    /// When it last answered (UTC), if ever.
    pub last_seen: Option<String>,
    /// Since when it has not answered (UTC), if it does not answer now.
    pub unreachable_since: Option<String>,
    /// Why it is unavailable, or why its counts could not be read.
    pub error: Option<String>,
    pub fragments: Option<u64>,
    pub fragment_bytes: Option<u64>,
    pub free_bytes: Option<u64>,
}

/// What a node said when it was added: whether it lets this owner in.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(untagged)]
pub enum NodeWelcome {
    Granted {
        granted: bool,
        quota: u64,
        used: u64,
    },
    Refused {
        granted: bool,
        error: String,
    },
}

/// A peer just taken off the configuration.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RemovedPeer {
    /// Its name.
    pub removed: String,
    pub id: PeerId,
    /// Fragments the index places on it, now counted as lost.
    pub fragments_lost: u64,
    /// Packs holding one of them, over all containers.
    pub packs_affected: u64,
    /// What to do next.
    pub next: String,
}

/// A peer just added.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AddedPeer {
    pub name: String,
    pub id: PeerId,
    pub location: String,
    pub labels: BTreeMap<String, String>,
    /// For a node: whether it lets this owner in (`None` for a folder).
    pub node: Option<NodeWelcome>,
}

impl<'a> Peers<'a> {
    pub(crate) fn new(home: &'a Home) -> Self {
        Self { home }
    }

    /// The configured records, by name.
    pub fn records(&self) -> Result<Vec<PeerRecord>> {
        self.home.index.peers()
    }

    /// Add a peer: `dir:PATH` (the folder is created and marked as a Trove
    /// peer if it is not one yet; a folder holding anything else is
    /// refused) or a node's ticket, after which the node is asked whether
    /// it lets this owner in.
    pub fn add(
        &self,
        name: &str,
        location: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<AddedPeer> {
        check_name("peer", name)?;
        let location = PeerLocation::from_user(location)?;
        for p in self.records()? {
            match (p.location.parse::<PeerLocation>(), &location) {
                (Ok(PeerLocation::Node(t)), PeerLocation::Node(new)) if t.node == new.node => {
                    return Err(LocationError::NodeTaken {
                        node: new.node_hex()[..12].to_owned(),
                        peer: p.name,
                    }
                    .into())
                }
                (Ok(PeerLocation::Folder(d)), PeerLocation::Folder(new)) if &d == new => {
                    return Err(LocationError::FolderTaken(d).into())
                }
                (Ok(PeerLocation::Remote(r)), PeerLocation::Remote(new)) if &r == new => {
                    return Err(LocationError::RemoteTaken {
                        location: r.to_string(),
                        peer: p.name,
                    }
                    .into())
                }
                _ => {}
            }
        }
        if let PeerLocation::Folder(path) = &location {
            // Opens an existing peer folder, creates a new one, refuses a
            // folder that holds anything else.
            FolderPeer::create(name, path)?;
        }
        if let PeerLocation::Remote(remote) = &location {
            // Marks an empty bucket prefix as a peer, refuses a foreign one;
            // wrong credentials or a missing bucket show here, at once.
            RemotePeer::create(name, remote, &self.credentials(name, remote)?)?;
        }
        let rec = PeerRecord {
            id: PeerId::random(),
            name: name.to_owned(),
            location: location.to_string(),
            labels,
        };
        self.home.index.add_peer(&rec)?;
        // A node: say at once whether it lets this owner in.
        let node = self.node(&rec)?.map(|n| match n.hello() {
            Ok((quota, used)) => NodeWelcome::Granted {
                granted: true,
                quota,
                used,
            },
            Err(e) => NodeWelcome::Refused {
                granted: false,
                error: e.to_string(),
            },
        });
        Ok(AddedPeer {
            name: rec.name,
            id: rec.id,
            location: rec.location,
            labels: rec.labels,
            node,
        })
    }

    /// Take a peer off the configuration: a disk that died, a node that
    /// is gone. Nothing is asked of the peer itself. Its fragments count as
    /// lost from now on (`trove repair` rebuilds them on the other peers),
    /// and the containers' rosters drop it at the next backup or repair.
    pub fn remove(&self, name: &str) -> Result<RemovedPeer> {
        let rec = self.home.index.remove_peer(name)?;
        let (mut fragments, mut packs) = (0, 0);
        for c in self.home.index.containers()? {
            for p in self.home.index.packs(&c.id)? {
                let here = p.fragments.iter().filter(|f| f.peer == rec.id).count() as u64;
                fragments += here;
                packs += u64::from(here > 0);
            }
        }
        let next = if fragments == 0 {
            "it held no fragment: nothing to repair".to_owned()
        } else {
            format!(
                "run `trove repair` to rebuild its {fragments} fragment(s) of {packs} pack(s) on the other peers"
            )
        };
        Ok(RemovedPeer {
            removed: rec.name,
            id: rec.id,
            fragments_lost: fragments,
            packs_affected: packs,
            next,
        })
    }

    /// Replace the record stored under `old_name` (rename and/or re-id).
    pub(crate) fn replace(&self, old_name: &str, rec: &PeerRecord) -> Result<()> {
        self.home.index.replace_peer(old_name, rec)
    }

    /// Configure a record as it is (a roster peer found by `sync`).
    pub(crate) fn insert(&self, rec: &PeerRecord) -> Result<()> {
        self.home.index.add_peer(rec)
    }

    /// Configure a peer that lives in this process (a `MemoryPeer`, a
    /// failing or lying wrapper): the seam that lets tests run backup,
    /// restore, check and sync over peers that fail on demand. Its location
    /// is `test:NAME`, which only this home can open.
    #[cfg(feature = "testing")]
    pub fn attach(
        &self,
        name: &str,
        peer: Arc<dyn Peer>,
        labels: BTreeMap<String, String>,
    ) -> Result<PeerRecord> {
        check_name("peer", name)?;
        let rec = PeerRecord {
            id: PeerId::random(),
            name: name.to_owned(),
            location: format!("test:{name}"),
            labels,
        };
        self.home.index.add_peer(&rec)?;
        self.home
            .attached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(rec.location.clone(), peer);
        Ok(rec)
    }

    /// What peer `name` at `remote` signs with: its table in
    /// `TROVE_HOME/credentials.toml`, else the environment.
    fn credentials(&self, name: &str, remote: &RemoteLocation) -> Result<Credentials> {
        Ok(Credentials::for_peer(self.home.dir(), name, remote)?)
    }

    /// Open one peer: a folder, a bucket, or a node over the network.
    pub fn open(&self, rec: &PeerRecord) -> std::result::Result<Arc<dyn Peer>, PeerError> {
        self.open_with(rec, None)
    }

    /// [`Peers::open`], reaching a node through `nodes` instead of the
    /// home's own endpoint (a rotation speaks as two owner ids).
    pub(crate) fn open_with(
        &self,
        rec: &PeerRecord,
        nodes: Option<&Arc<NodeClient>>,
    ) -> std::result::Result<Arc<dyn Peer>, PeerError> {
        #[cfg(feature = "testing")]
        if let Some(p) = self
            .home
            .attached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&rec.location)
        {
            return Ok(p.clone());
        }
        let unavailable = |reason: String| PeerError::Unavailable {
            peer: rec.name.clone(),
            reason,
        };
        match rec.location.parse::<PeerLocation>() {
            Ok(PeerLocation::Folder(path)) => Ok(Arc::new(FolderPeer::open(&rec.name, &path)?)),
            Ok(PeerLocation::Remote(remote)) => {
                let credentials = self
                    .credentials(&rec.name, &remote)
                    .map_err(|e| unavailable(e.to_string()))?;
                Ok(Arc::new(RemotePeer::open(
                    &rec.name,
                    &remote,
                    &credentials,
                )?))
            }
            Ok(PeerLocation::Node(ticket)) => {
                let client = match nodes {
                    Some(c) => c.clone(),
                    None => self
                        .home
                        .node_client()
                        .map_err(|e| unavailable(e.to_string()))?,
                };
                let peer = client
                    .peer(&rec.name, &ticket)
                    .map_err(|e| unavailable(e.to_string()))?;
                Ok(Arc::new(peer))
            }
            Err(e) => Err(unavailable(e.to_string())),
        }
    }

    /// These peers (a shared container's roster), opened where possible.
    pub fn open_records(&self, records: &[PeerRecord]) -> PeerSet {
        PeerSet {
            slots: records
                .iter()
                .map(|record| PeerSlot {
                    peer: self.open(record),
                    record: record.clone(),
                    health: None,
                })
                .collect(),
        }
    }

    /// The peers to read `container` from: this home's, or for a container
    /// shared with it, the owner's roster.
    pub fn open_for(&self, container: &Container) -> Result<PeerSet> {
        let shared = crate::share::received_all(self.home)?
            .into_iter()
            .find(|r| r.manifest.id == container.manifest.id);
        match shared {
            Some(r) => Ok(self.open_records(&r.manifest.roster)),
            None => self.open_all(),
        }
    }

    /// Every configured peer, opened where possible.
    pub fn open_all(&self) -> Result<PeerSet> {
        Ok(PeerSet {
            slots: self
                .records()?
                .into_iter()
                .map(|record| {
                    let peer = self.open(&record);
                    PeerSlot {
                        record,
                        peer,
                        health: None,
                    }
                })
                .collect(),
        })
    }

    /// A node peer by its record, with its node-only calls (hello); `None`
    /// for a folder peer.
    pub fn node(&self, rec: &PeerRecord) -> Result<Option<NodePeer>> {
        let PeerLocation::Node(ticket) = rec.location.parse::<PeerLocation>()? else {
            return Ok(None);
        };
        let client = self.home.node_client()?;
        client
            .peer(&rec.name, &ticket)
            .map(Some)
            .map_err(|e| LocationError::BadTicket(e.to_string()).into())
    }

    /// Every configured peer with its state and counts, for `peer list`; a
    /// peer unreachable for `lost_after` or longer is lost. Records when
    /// each peer was seen.
    pub fn list(&self, lost_after: Duration) -> Result<Vec<PeerRow>> {
        let mut set = self.open_all()?;
        set.record_health(self.home, lost_after, true)?;
        Ok(set
            .slots
            .into_iter()
            .map(|s| {
                let health = s.health.clone().expect("record_health set every slot");
                let stat = s.available().map(|p| p.stat());
                let error = match (&s.peer, &stat) {
                    (Err(e), _) | (_, Some(Err(e))) => Some(e.to_string()),
                    _ => health.error.clone(),
                };
                let stat = stat.and_then(|r| r.ok());
                PeerRow {
                    name: s.record.name,
                    id: s.record.id,
                    location: s.record.location,
                    labels: s.record.labels,
                    available: error.is_none(),
                    state: health.state,
                    last_seen: health.last_seen,
                    unreachable_since: health.unreachable_since,
                    error,
                    fragments: stat.map(|st| st.fragments),
                    fragment_bytes: stat.map(|st| st.fragment_bytes),
                    free_bytes: stat.and_then(|st| st.free_bytes),
                }
            })
            .collect())
    }
}
