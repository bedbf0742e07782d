//! `TROVE_HOME`: the keyfile, the index database, and the operations on
//! peers and containers that need nothing but local state.

use crate::error::{RepoError, Result};
use crate::index::Index;
use crate::keyfile::{self, KdfParams};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use trove_core::chunk::ChunkerParams;
use trove_core::envelope;
use trove_core::keys::{ContainerKey, ContainerKeys, Identity, MasterSecret, PublicIdentity};
use trove_core::manifest::{ContainerManifest, PeerRecord, Redundancy};
use trove_core::pack::DEFAULT_PACK_TARGET;
use trove_core::seal::BlobKind;
use trove_core::{ContainerId, PeerId};
use trove_node::{NetworkConfig, NodeClient, NodeTicket};
use trove_peer::{durable, FolderPeer, MetaKey, Peer, PeerError};

const KEYFILE: &str = "keyfile";
const INDEX: &str = "index.redb";
/// The owner's transport key (derived from the master secret), kept so that
/// commands that do not unlock (peer list, peer add) can still reach nodes.
/// It lets its holder read ciphertext and delete (with the node's grace
/// period) on nodes, never decrypt: the same trust as the index beside it.
const TRANSPORT_KEY: &str = "transport.key";
/// Location prefix of node peers; the rest is the node's ticket.
const NODE_PREFIX: &str = "node:";
/// The files of a home: each holds a secret or metadata.
const HOME_FILES: [&str; 3] = [KEYFILE, INDEX, TRANSPORT_KEY];

/// Make a home private again where it is more open than `0700` (folder)
/// and `0600` (files): homes made by older versions, or by hand. Returns
/// one line per change, for the user to see.
fn make_private(dir: &Path) -> Result<Vec<String>> {
    let mut fixed = Vec::new();
    let entries = std::iter::once((dir.to_owned(), durable::DIR_MODE))
        .chain(HOME_FILES.iter().map(|f| (dir.join(f), durable::FILE_MODE)));
    for (path, mode) in entries {
        if !path.exists() {
            continue;
        }
        let had = durable::restrict(&path, mode)
            .map_err(|e| RepoError::io("restrict the permissions of", &path, e))?;
        if let Some(had) = had {
            fixed.push(format!(
                "{} was readable by other users (mode {had:04o}); it is now {mode:04o}",
                path.display()
            ));
        }
    }
    Ok(fixed)
}

/// An opened `TROVE_HOME`.
#[derive(Debug)]
pub struct Home {
    dir: PathBuf,
    pub index: Index,
    /// Permissions this open had to restrict (see [`Home::open`]).
    pub made_private: Vec<String>,
    /// The network endpoint for node peers, started on first use.
    nodes: std::sync::OnceLock<std::result::Result<Arc<NodeClient>, String>>,
    /// Network settings for it; from the environment unless set.
    network: std::sync::OnceLock<NetworkConfig>,
}

/// The unlocked owner: the master secret and the identity derived from it.
#[derive(Debug, Clone)]
pub struct Owner {
    pub master: MasterSecret,
    pub identity: Identity,
}

impl Owner {
    pub fn new(master: MasterSecret) -> Self {
        let identity = master.identity();
        Self { master, identity }
    }
    pub fn public(&self) -> PublicIdentity {
        self.identity.public()
    }
}

/// A container with its keys unwrapped.
#[derive(Debug, Clone)]
pub struct Container {
    pub manifest: ContainerManifest,
    pub keys: ContainerKeys,
}

/// A configured peer and, if it could be opened, the peer itself.
#[derive(Debug)]
pub struct PeerSlot {
    pub record: PeerRecord,
    pub peer: Result<Arc<dyn Peer>, PeerError>,
}

impl PeerSlot {
    pub fn available(&self) -> Option<&Arc<dyn Peer>> {
        self.peer.as_ref().ok()
    }
}

/// Open a folder peer from its location string (node peers need the
/// home's network endpoint: [`Home::open_peer`]).
pub fn open_peer(rec: &PeerRecord) -> Result<Arc<dyn Peer>, PeerError> {
    match rec.location.strip_prefix("dir:") {
        Some(path) => Ok(Arc::new(FolderPeer::open(&rec.name, Path::new(path))?)),
        None => Err(PeerError::Unavailable {
            peer: rec.name.clone(),
            reason: format!("unknown location `{}`", rec.location),
        }),
    }
}

fn check_name(kind: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(RepoError::Usage(format!(
            "{kind} name `{name}`: use 1-64 letters, digits, `-`, `_` or `.`"
        )))
    }
}

impl Home {
    /// Open an existing home (the directory must hold a keyfile). A home
    /// more open than `0700`/`0600` is made private, and
    /// [`Home::made_private`] says what changed so the user can be told.
    pub fn open(dir: &Path) -> Result<Self> {
        if !dir.join(KEYFILE).exists() {
            return Err(RepoError::NoIdentity(dir.to_owned()));
        }
        let made_private = make_private(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            index: Index::open(&dir.join(INDEX))?,
            made_private,
            nodes: std::sync::OnceLock::new(),
            network: std::sync::OnceLock::new(),
        })
    }

    /// Create a home with a fresh master secret (or the given one, for
    /// recovery). Refuses a home that already holds an identity.
    pub fn init(
        dir: &Path,
        master: MasterSecret,
        passphrase: &[u8],
        kdf: KdfParams,
    ) -> Result<(Self, Owner)> {
        durable::create_dir_all(dir).map_err(|e| RepoError::io("create", dir, e))?;
        keyfile::create(&dir.join(KEYFILE), &master, passphrase, kdf)?;
        let home = Self::open(dir)?;
        let owner = Owner::new(master);
        home.save_transport_key(&owner)?;
        Ok((home, owner))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn public_identity(&self) -> Result<PublicIdentity> {
        keyfile::public_identity(&self.dir.join(KEYFILE))
    }

    pub fn unlock(&self, passphrase: &[u8]) -> Result<Owner> {
        let owner = Owner::new(keyfile::unlock(&self.dir.join(KEYFILE), passphrase)?);
        if !self.dir.join(TRANSPORT_KEY).exists() {
            self.save_transport_key(&owner)?;
        }
        Ok(owner)
    }

    fn save_transport_key(&self, owner: &Owner) -> Result<()> {
        let path = self.dir.join(TRANSPORT_KEY);
        let seed = zeroize::Zeroizing::new(owner.master.transport_seed());
        durable::replace(&path, seed.as_slice(), None).map_err(|e| RepoError::io("write", &path, e))
    }

    /// The owner's network endpoint (started once per process).
    pub fn node_client(&self) -> std::result::Result<Arc<NodeClient>, String> {
        self.nodes
            .get_or_init(|| {
                let path = self.dir.join(TRANSPORT_KEY);
                let seed: [u8; 32] = std::fs::read(&path)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| {
                        format!(
                            "{} is missing: run a command that unlocks (e.g. `trove snapshots`) once to recreate it",
                            path.display()
                        )
                    })?;
                let net = match self.network.get() {
                    Some(n) => n.clone(),
                    None => NetworkConfig::from_env().map_err(|e| e.to_string())?,
                };
                NodeClient::start(seed, &net).map_err(|e| e.to_string())
            })
            .clone()
    }

    /// The identity and owner id (if the transport key is there) of the
    /// home in `dir`, without opening the index, which a running backup holds.
    pub fn peek_ids(dir: &Path) -> Result<(PublicIdentity, Option<String>)> {
        if !dir.join(KEYFILE).exists() {
            return Err(RepoError::NoIdentity(dir.to_owned()));
        }
        let identity = keyfile::public_identity(&dir.join(KEYFILE))?;
        let owner = std::fs::read(dir.join(TRANSPORT_KEY))
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .map(|seed| trove_node::OwnerId::from_seed(&seed).to_hex());
        Ok((identity, owner))
    }

    /// Use these network settings for node peers instead of the environment's
    /// (before the first node peer is opened).
    pub fn set_network(&self, net: NetworkConfig) {
        let _ = self.network.set(net);
    }

    /// The owner id nodes know this owner by (hex), as `trove whoami` shows.
    pub fn owner_id(owner: &Owner) -> String {
        let key = trove_node::OwnerId::from_seed(&owner.master.transport_seed());
        key.to_hex()
    }

    /// Open one configured peer: a folder, or a node over the network.
    pub fn open_peer(&self, rec: &PeerRecord) -> std::result::Result<Arc<dyn Peer>, PeerError> {
        match self.node_peer(rec) {
            None => open_peer(rec),
            Some(Ok(peer)) => Ok(Arc::new(peer)),
            Some(Err(reason)) => Err(PeerError::Unavailable {
                peer: rec.name.clone(),
                reason,
            }),
        }
    }

    /// A node peer by its record, with its node-only calls (hello); `None`
    /// for a folder peer.
    pub fn open_node(&self, rec: &PeerRecord) -> Result<Option<trove_node::NodePeer>> {
        self.node_peer(rec)
            .transpose()
            .map_err(RepoError::BadLocation)
    }

    /// `None` unless `rec` is a node peer; then the peer, or why it cannot
    /// be opened.
    fn node_peer(
        &self,
        rec: &PeerRecord,
    ) -> Option<std::result::Result<trove_node::NodePeer, String>> {
        let ticket = rec.location.strip_prefix(NODE_PREFIX)?;
        Some((|| {
            let ticket: NodeTicket = ticket
                .parse()
                .map_err(|e: trove_node::NodeError| e.to_string())?;
            let client = self.node_client()?;
            client.peer(&rec.name, &ticket).map_err(|e| e.to_string())
        })())
    }

    // ---- peers -------------------------------------------------------------

    /// Add a peer. `location` is `dir:PATH`; the folder is created and
    /// marked as a Trove peer if it is not one yet.
    pub fn add_peer(
        &self,
        name: &str,
        location: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<PeerRecord> {
        check_name("peer", name)?;
        let ticket = location.strip_prefix(NODE_PREFIX).unwrap_or(location);
        if ticket.starts_with("trovenode") {
            let ticket: NodeTicket = ticket
                .parse()
                .map_err(|e: trove_node::NodeError| RepoError::BadLocation(e.to_string()))?;
            if let Some(p) = self.index.peers()?.iter().find(|p| {
                p.location
                    .strip_prefix(NODE_PREFIX)
                    .and_then(|t| t.parse::<NodeTicket>().ok())
                    .is_some_and(|t| t.node == ticket.node)
            }) {
                return Err(RepoError::BadLocation(format!(
                    "node {} is already peer `{}`",
                    &ticket.node_hex()[..12],
                    p.name
                )));
            }
            let rec = PeerRecord {
                id: PeerId::random(),
                name: name.to_owned(),
                location: format!("{NODE_PREFIX}{ticket}"),
                labels,
            };
            self.index.add_peer(&rec)?;
            return Ok(rec);
        }
        let Some(path) = location.strip_prefix("dir:") else {
            return Err(RepoError::BadLocation(format!(
                "peer location `{location}` is not understood; use dir:PATH for a folder peer or a node's ticket (trovenode1...)"
            )));
        };
        if path.is_empty() {
            return Err(RepoError::BadLocation(
                "dir: needs a path, e.g. dir:/mnt/usb/trove".into(),
            ));
        }
        let abs = std::path::absolute(path).map_err(|e| RepoError::io("resolve", path, e))?;
        if self
            .index
            .peers()?
            .iter()
            .any(|p| p.location == format!("dir:{}", abs.display()))
        {
            return Err(RepoError::BadLocation(format!(
                "{} is already a peer",
                abs.display()
            )));
        }
        // Opens an existing peer folder, creates a new one, refuses a folder
        // that holds anything else.
        FolderPeer::create(name, &abs)?;
        let rec = PeerRecord {
            id: PeerId::random(),
            name: name.to_owned(),
            location: format!("dir:{}", abs.display()),
            labels,
        };
        self.index.add_peer(&rec)?;
        Ok(rec)
    }

    /// Every configured peer, opened where possible.
    pub fn open_peers(&self) -> Result<Vec<PeerSlot>> {
        Ok(self
            .index
            .peers()?
            .into_iter()
            .map(|record| {
                let peer = self.open_peer(&record);
                PeerSlot { record, peer }
            })
            .collect())
    }

    // ---- containers --------------------------------------------------------

    /// Create a container over `sources` (made absolute). Its manifest is
    /// replicated to peers by the first backup.
    pub fn create_container(
        &self,
        owner: &Owner,
        name: &str,
        sources: &[PathBuf],
        redundancy: Option<Redundancy>,
    ) -> Result<Container> {
        check_name("container", name)?;
        if sources.is_empty() {
            return Err(RepoError::Usage(
                "a container needs at least one source folder".into(),
            ));
        }
        let mut abs = Vec::new();
        let mut names = std::collections::HashSet::new();
        for s in sources {
            let a = std::path::absolute(s).map_err(|e| RepoError::io("resolve", s, e))?;
            std::fs::symlink_metadata(&a).map_err(|e| RepoError::io("read source", &a, e))?;
            let base = a
                .file_name()
                .ok_or_else(|| {
                    RepoError::Usage(format!("source {} has no name (is it `/`?)", a.display()))
                })?
                .to_owned();
            if !names.insert(base.clone()) {
                return Err(RepoError::Usage(format!(
                    "two sources are named {:?}; snapshots store each source under its own name",
                    base
                )));
            }
            abs.push(a.to_string_lossy().into_owned());
        }
        let peers = self.index.peers()?;
        let redundancy = redundancy.unwrap_or_else(|| Redundancy::for_peers(peers.len()));
        let id = ContainerId::random();
        let key = ContainerKey::generate();
        let manifest = ContainerManifest {
            id,
            name: name.to_owned(),
            revision: 1,
            created_unix: crate::now_ns() / 1_000_000_000,
            redundancy,
            chunker: ChunkerParams::default(),
            pack_target: DEFAULT_PACK_TARGET as u32,
            sources: abs,
            roster: peers,
            wrapped_key: owner.master.wrap(&id, &key),
        };
        self.index.put_container(&manifest, true)?;
        self.refresh_container_envelope(owner, &manifest)?;
        Ok(Container {
            keys: key.derive(),
            manifest,
        })
    }

    /// Sign the container manifest into the envelope that peers hold.
    pub fn refresh_container_envelope(&self, owner: &Owner, m: &ContainerManifest) -> Result<()> {
        let env = envelope::seal_signed(
            &owner.identity,
            &owner.master.manifest_key(),
            BlobKind::ContainerManifest,
            &m.id.0,
            m.revision,
            &m.encode(),
        );
        self.index.put_meta(&MetaKey::Container(m.id), &env)
    }

    /// Load a container and unwrap its key.
    pub fn container(&self, owner: &Owner, name: &str) -> Result<Container> {
        let manifest = self.index.container(name)?;
        let key = owner
            .master
            .unwrap(&manifest.id, &manifest.wrapped_key)
            .map_err(|e| RepoError::Format(format!("container `{name}`: {e}")))?;
        Ok(Container {
            keys: key.derive(),
            manifest,
        })
    }

    /// The one container, when `name` is not given and there is exactly one.
    pub fn container_or_only(&self, owner: &Owner, name: Option<&str>) -> Result<Container> {
        match name {
            Some(n) => self.container(owner, n),
            None => {
                let all = self.index.containers()?;
                match all.as_slice() {
                    [one] => self.container(owner, &one.name),
                    [] => Err(RepoError::Usage(
                        "no containers yet: create one with `trove container create NAME PATH...`"
                            .into(),
                    )),
                    _ => Err(RepoError::Usage(format!(
                        "several containers ({}): name one",
                        all.iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))),
                }
            }
        }
    }
}
