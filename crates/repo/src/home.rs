//! `TROVE_HOME`: the folder, the keyfile and the identity it unlocks. The
//! configured peers and the containers are reached through
//! [`Home::peers`] and [`Home::containers`]; the index database behind them
//! is private to this crate.

use crate::containers::Containers;
use crate::error::{RepoError, Result};
use crate::index::Index;
use crate::keyfile::{self, KdfParams};
use crate::lock::{self, Lease, LockHolder};
use crate::peers::{NetworkError, Peers};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use trove_core::keys::{ContainerKeys, Identity, MasterSecret, PublicIdentity};
use trove_core::manifest::ContainerManifest;
use trove_node::{NetworkConfig, NodeClient};
use trove_peer::durable;

pub(crate) const KEYFILE: &str = "keyfile";
/// The keyfile of a master secret rotation under way (§2a): written before
/// any peer hears of the new secret, renamed over `keyfile` when every peer
/// has taken the hand-over.
pub(crate) const NEXT_KEYFILE: &str = "keyfile.next";
/// The hand-over certificate of a rotation under way, kept so that a
/// rotation resumed after a crash sends the very bytes peers already hold.
pub(crate) const NEXT_HANDOVER: &str = "handover.next";
const INDEX: &str = "index.redb";
/// The owner's transport key (derived from the master secret), kept so that
/// commands that do not unlock (peer list, peer add) can still reach nodes.
/// It lets its holder read ciphertext and delete (with the node's grace
/// period) on nodes, never decrypt: the same trust as the index beside it.
const TRANSPORT_KEY: &str = "transport.key";
/// The files of a home: each holds a secret or metadata.
const HOME_FILES: [&str; 6] = [
    KEYFILE,
    INDEX,
    TRANSPORT_KEY,
    lock::LOCK_FILE,
    NEXT_KEYFILE,
    NEXT_HANDOVER,
];

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
    pub(crate) index: Index,
    /// Permissions this open had to restrict (see [`Home::open`]).
    pub made_private: Vec<String>,
    /// The network endpoint for node peers, started on first use.
    nodes: OnceLock<std::result::Result<Arc<NodeClient>, NetworkError>>,
    /// Network settings for it; from the environment unless set.
    network: OnceLock<NetworkConfig>,
    /// Peers a test attached in memory, by location (feature `testing`).
    #[cfg(feature = "testing")]
    pub(crate) attached:
        std::sync::Mutex<std::collections::HashMap<String, Arc<dyn trove_peer::Peer>>>,
    /// What this process wrote into `TROVE_HOME/lock` (`None`: opened
    /// read-only, nothing written).
    holder: Option<LockHolder>,
    /// Backups share it, prune and forget hold it alone (see `lock.rs`).
    lease: Lease,
}

impl Drop for Home {
    fn drop(&mut self) {
        // Before the index closes (the fields drop after this), so no other
        // process can have written its own label yet.
        if let Some(holder) = &self.holder {
            lock::release(&self.dir, holder);
        }
    }
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
    /// The owner id nodes know this owner by (hex), as `trove whoami` shows.
    pub fn owner_id(&self) -> String {
        trove_node::OwnerId::from_seed(&self.master.transport_seed()).to_hex()
    }
}

/// A container with its keys unwrapped.
#[derive(Debug, Clone)]
pub struct Container {
    pub manifest: ContainerManifest,
    pub keys: ContainerKeys,
}

/// The public ids of a home, readable without the passphrase.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PublicIds {
    /// The identity key, which signs manifests.
    pub identity: PublicIdentity,
    /// The owner id nodes grant (from `transport.key`), if it was written.
    pub owner_id: Option<String>,
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
        let index = Index::open(&dir.join(INDEX)).map_err(name_holder)?;
        // The index is ours: label it (a label left by a killed process is
        // stale, and replaced).
        let holder = lock::write(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            index,
            made_private,
            nodes: OnceLock::new(),
            network: OnceLock::new(),
            #[cfg(feature = "testing")]
            attached: Default::default(),
            holder: Some(holder),
            lease: Lease::default(),
        })
    }

    /// Open an existing home to read it, writing nothing in it: no
    /// permission fixes, no `lock` label, and the index read through an
    /// overlay that keeps its writes in memory (`trove drill` reading the
    /// live home). [`RepoError::Busy`] while another process holds the
    /// index; it cannot open it meanwhile.
    pub(crate) fn open_read_only(dir: &Path) -> Result<Self> {
        if !dir.join(KEYFILE).exists() {
            return Err(RepoError::NoIdentity(dir.to_owned()));
        }
        let index = Index::open_read_only(&dir.join(INDEX)).map_err(name_holder)?;
        Ok(Self {
            dir: dir.to_owned(),
            index,
            made_private: Vec::new(),
            nodes: OnceLock::new(),
            network: OnceLock::new(),
            #[cfg(feature = "testing")]
            attached: Default::default(),
            holder: None,
            lease: Lease::default(),
        })
    }

    /// Reach node peers through `other`'s network endpoint, if it started
    /// one (a home of the same identity: two endpoints of one key in one
    /// process would only compete).
    pub(crate) fn share_network(&self, other: &Home) {
        if let Some(client) = other.nodes.get() {
            let _ = self.nodes.set(client.clone());
        }
    }

    /// [`Home::open`], waiting up to `wait` while another process holds the
    /// index (a running backup, say); `waiting` is told once who it waits
    /// for. After `wait`, the error names the holder.
    pub fn open_waiting(
        dir: &Path,
        wait: Duration,
        waiting: &dyn Fn(Option<&LockHolder>),
    ) -> Result<Self> {
        Self::open_waiting_with(dir, wait, waiting, Self::open)
    }

    /// [`Home::open_read_only`], waiting up to `wait` as
    /// [`Home::open_waiting`] does.
    pub(crate) fn open_read_only_waiting(
        dir: &Path,
        wait: Duration,
        waiting: &dyn Fn(Option<&LockHolder>),
    ) -> Result<Self> {
        Self::open_waiting_with(dir, wait, waiting, Self::open_read_only)
    }

    fn open_waiting_with(
        dir: &Path,
        wait: Duration,
        waiting: &dyn Fn(Option<&LockHolder>),
        open: fn(&Path) -> Result<Self>,
    ) -> Result<Self> {
        let started = Instant::now();
        let mut told = false;
        loop {
            match open(dir) {
                Err(RepoError::Busy { home, holder, .. }) => {
                    if started.elapsed() >= wait {
                        return Err(RepoError::Busy {
                            home,
                            holder,
                            waited: Some(started.elapsed()),
                        });
                    }
                    if !told && holder.is_some() {
                        waiting(holder.as_ref());
                        told = true;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                other => return other,
            }
        }
    }

    /// The in-process lease: a backup shares it, prune and forget take it
    /// alone (see [`Lease`]).
    pub fn lease(&self) -> &Lease {
        &self.lease
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

    /// The configured peers.
    pub fn peers(&self) -> Peers<'_> {
        Peers::new(self)
    }

    /// The containers.
    pub fn containers(&self) -> Containers<'_> {
        Containers::new(self)
    }

    pub fn public_identity(&self) -> Result<PublicIdentity> {
        keyfile::public_identity(&self.dir.join(KEYFILE))
    }

    /// Unlock the keyfile. Refused while a master secret rotation is under
    /// way: the peers may already have moved to the new identity, and only
    /// `trove recovery rotate` finishes it.
    pub fn unlock(&self, passphrase: &[u8]) -> Result<Owner> {
        if self.rotation_under_way() {
            return Err(RepoError::RotationUnderway(self.dir.clone()));
        }
        self.unlock_current(passphrase)
    }

    /// Unlock the keyfile whether or not a rotation is under way (the
    /// rotation itself). A transport key that is not this secret's (a
    /// crash in the last step of a rotation) is written anew.
    pub(crate) fn unlock_current(&self, passphrase: &[u8]) -> Result<Owner> {
        let owner = Owner::new(keyfile::unlock(&self.dir.join(KEYFILE), passphrase)?);
        let seed = std::fs::read(self.dir.join(TRANSPORT_KEY)).ok();
        if seed.as_deref() != Some(&owner.master.transport_seed()[..]) {
            self.save_transport_key(&owner)?;
        }
        Ok(owner)
    }

    /// Whether a master secret rotation was started and not finished.
    pub fn rotation_under_way(&self) -> bool {
        self.dir.join(NEXT_KEYFILE).exists()
    }

    /// Re-wrap the keyfile's master secret under `new_passphrase`
    /// (`trove passphrase change`); `owner` is what the current passphrase
    /// unlocked. Only the keyfile changes (new salt, nonce and ciphertext,
    /// replaced atomically and durably): the master secret, and so the
    /// identity, the owner id, the 24-word phrase and SLIP-39 shares, stay.
    /// The caller holds this home open, so no other trove process uses it
    /// meanwhile.
    pub fn change_passphrase(&self, owner: &Owner, new_passphrase: &[u8]) -> Result<()> {
        keyfile::rewrap(&self.dir.join(KEYFILE), &owner.master, new_passphrase)
    }

    pub(crate) fn save_transport_key(&self, owner: &Owner) -> Result<()> {
        let path = self.dir.join(TRANSPORT_KEY);
        let seed = zeroize::Zeroizing::new(owner.master.transport_seed());
        durable::replace(&path, seed.as_slice(), None).map_err(|e| RepoError::io("write", &path, e))
    }

    /// The owner's network endpoint (started once per process).
    pub(crate) fn node_client(&self) -> std::result::Result<Arc<NodeClient>, NetworkError> {
        self.nodes
            .get_or_init(|| {
                let path = self.dir.join(TRANSPORT_KEY);
                let seed: zeroize::Zeroizing<[u8; 32]> = std::fs::read(&path)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .map(zeroize::Zeroizing::new)
                    .ok_or(NetworkError::NoTransportKey(path))?;
                self.start_node_client(&seed)
            })
            .clone()
    }

    /// A network endpoint of its own for this transport seed (a rotation
    /// speaks as the old and the new owner id).
    pub(crate) fn start_node_client(
        &self,
        seed: &[u8; 32],
    ) -> std::result::Result<Arc<NodeClient>, NetworkError> {
        let net = match self.network.get() {
            Some(n) => n.clone(),
            None => NetworkConfig::from_env().map_err(|e| NetworkError::Config(e.to_string()))?,
        };
        NodeClient::start(*seed, &net).map_err(|e| NetworkError::Start(e.to_string()))
    }

    /// The identity and owner id (if the transport key is there) of the
    /// home in `dir`, without opening the index, which a running backup holds.
    pub fn peek_ids(dir: &Path) -> Result<PublicIds> {
        if !dir.join(KEYFILE).exists() {
            return Err(RepoError::NoIdentity(dir.to_owned()));
        }
        let identity = keyfile::public_identity(&dir.join(KEYFILE))?;
        let owner_id = std::fs::read(dir.join(TRANSPORT_KEY))
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .map(|seed| trove_node::OwnerId::from_seed(&seed).to_hex());
        Ok(PublicIds { identity, owner_id })
    }

    /// Use these network settings for node peers instead of the environment's
    /// (before the first node peer is opened).
    pub fn set_network(&self, net: NetworkConfig) {
        let _ = self.network.set(net);
    }
}

/// Names of peers and containers: short, and safe in messages and paths.
pub(crate) fn check_name(kind: &'static str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(RepoError::BadName {
            kind,
            name: name.to_owned(),
        })
    }
}

/// A busy index's error, with the holder its `lock` label names.
fn name_holder(e: RepoError) -> RepoError {
    match e {
        RepoError::Busy { home, waited, .. } => RepoError::Busy {
            holder: lock::read(&home),
            home,
            waited,
        },
        other => other,
    }
}
