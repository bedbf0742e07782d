//! The containers of a home: creating one, opening one with its key
//! unwrapped, and listing containers and snapshots as rows.

use crate::error::{RepoError, Result};
use crate::home::{check_name, Container, Home, Owner};
use std::collections::HashSet;
use std::path::PathBuf;
use trove_core::chunk::ChunkerParams;
use trove_core::envelope;
use trove_core::keys::ContainerKey;
use trove_core::manifest::{
    ContainerManifest, PackRecord, PeerRecord, Redundancy, SnapshotManifest,
};
use trove_core::pack::DEFAULT_PACK_TARGET;
use trove_core::seal::BlobKind;
use trove_core::{ContainerId, SnapshotId};
use trove_peer::MetaKey;

/// The containers of a home.
#[derive(Debug, Clone, Copy)]
pub struct Containers<'a> {
    home: &'a Home,
}

/// One container as `trove container list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ContainerRow {
    pub name: String,
    pub id: ContainerId,
    /// `K+M`, e.g. `4+2`.
    pub redundancy: String,
    pub sources: Vec<String>,
    pub snapshots: usize,
    /// Peers in the container's roster.
    pub peers: usize,
}

/// One snapshot as `trove snapshots` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SnapshotRow {
    pub id: SnapshotId,
    pub short_id: String,
    pub container: String,
    /// UTC, `YYYY-MM-DD HH:MM:SS`.
    pub time: String,
    pub time_unix_ns: i64,
    pub host: String,
    pub files: u64,
    pub bytes: u64,
    pub parent: Option<SnapshotId>,
}

/// A container just created.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CreatedContainer {
    pub name: String,
    pub id: ContainerId,
    pub redundancy: String,
    pub sources: Vec<String>,
    /// Peers configured now; fewer than `k+m` means some peers will hold
    /// more than one fragment of a pack.
    #[serde(skip)]
    pub peers: usize,
    #[serde(skip)]
    pub layout: Redundancy,
}

impl<'a> Containers<'a> {
    pub(crate) fn new(home: &'a Home) -> Self {
        Self { home }
    }

    /// Create a container over `sources` (made absolute). Its manifest is
    /// replicated to peers by the first backup.
    pub fn create(
        &self,
        owner: &Owner,
        name: &str,
        sources: &[PathBuf],
        redundancy: Option<Redundancy>,
    ) -> Result<CreatedContainer> {
        check_name("container", name)?;
        if sources.is_empty() {
            return Err(RepoError::NoSources);
        }
        let mut abs = Vec::new();
        let mut names = HashSet::new();
        for s in sources {
            let a = std::path::absolute(s).map_err(|e| RepoError::io("resolve", s, e))?;
            std::fs::symlink_metadata(&a).map_err(|e| RepoError::io("read source", &a, e))?;
            let base = a
                .file_name()
                .ok_or_else(|| RepoError::SourceWithoutName(a.clone()))?
                .to_owned();
            if !names.insert(base.clone()) {
                return Err(RepoError::DuplicateSource(base));
            }
            abs.push(a.to_string_lossy().into_owned());
        }
        let peers = self.home.index.peers()?;
        let layout = redundancy.unwrap_or_else(|| Redundancy::for_peers(peers.len()));
        let id = ContainerId::random();
        let key = ContainerKey::generate();
        let manifest = ContainerManifest {
            id,
            name: name.to_owned(),
            revision: 1,
            created_unix: crate::time::now_unix(),
            redundancy: layout,
            chunker: ChunkerParams::default(),
            pack_target: DEFAULT_PACK_TARGET as u32,
            sources: abs,
            roster: peers.clone(),
            wrapped_key: owner.master.wrap(&id, &key),
            later_keys: Vec::new(),
        };
        self.home.index.put_container(&manifest, true)?;
        self.seal_manifest(owner, &manifest)?;
        Ok(CreatedContainer {
            name: manifest.name,
            id,
            redundancy: layout.to_string(),
            sources: manifest.sources,
            peers: peers.len(),
            layout,
        })
    }

    /// Store a changed manifest and the envelope that peers hold, signed,
    /// in one transaction (the caller has bumped its revision).
    pub(crate) fn update_manifest(&self, owner: &Owner, m: &ContainerManifest) -> Result<()> {
        self.home
            .index
            .put_container_sealed(m, &Self::sealed(owner, m))
    }

    /// Make the roster every configured peer (`configured`), so a new
    /// machine finds them all and a removed peer drops out: a new revision,
    /// signed. Returns whether the roster changed.
    pub(crate) fn update_roster(
        &self,
        owner: &Owner,
        container: &mut Container,
        configured: Vec<PeerRecord>,
    ) -> Result<bool> {
        if container.manifest.roster == configured {
            return Ok(false);
        }
        container.manifest.roster = configured;
        container.manifest.revision += 1;
        self.update_manifest(owner, &container.manifest)?;
        Ok(true)
    }

    fn seal_manifest(&self, owner: &Owner, m: &ContainerManifest) -> Result<()> {
        self.home
            .index
            .put_meta(&MetaKey::Container(m.id), &Self::sealed(owner, m))
    }

    fn sealed(owner: &Owner, m: &ContainerManifest) -> Vec<u8> {
        envelope::seal_signed(
            &owner.identity,
            &owner.master.manifest_key(),
            BlobKind::ContainerManifest,
            &m.id.0,
            m.revision,
            &m.encode(),
        )
    }

    /// A container's manifest, without unlocking anything. A container
    /// shared with this identity is refused: this is what commands that
    /// write use.
    pub fn manifest(&self, name: &str) -> Result<ContainerManifest> {
        match self.home.index.container(name) {
            Err(RepoError::NoContainer(_)) => match crate::share::received(self.home, name)? {
                Some(r) => Err(RepoError::SharedReadOnly {
                    container: name.to_owned(),
                    owner: r.sharer.fingerprint(),
                }),
                None => Err(RepoError::NoContainer(name.to_owned())),
            },
            other => other,
        }
    }

    /// Open a container to read it: one of this identity's, or one shared
    /// with it.
    pub fn open_readable(&self, owner: &Owner, name: &str) -> Result<Container> {
        match crate::share::received(self.home, name)? {
            Some(r) if self.home.index.container(name).is_err() => r.open(owner),
            _ => self.open(owner, name),
        }
    }

    /// The manifests of every container that can be read: this identity's,
    /// then those shared with it.
    fn readable_manifests(&self) -> Result<Vec<ContainerManifest>> {
        let mut all = self.manifests()?;
        all.extend(
            crate::share::received_all(self.home)?
                .into_iter()
                .map(|r| r.manifest),
        );
        Ok(all)
    }

    /// Every container's manifest.
    pub fn manifests(&self) -> Result<Vec<ContainerManifest>> {
        self.home.index.containers()
    }

    /// Load a container and unwrap its key.
    pub fn open(&self, owner: &Owner, name: &str) -> Result<Container> {
        let manifest = self.manifest(name)?;
        let keys = manifest
            .keys(&owner.master)
            .map_err(|e| RepoError::Format(format!("container `{name}`: {e}")))?;
        Ok(Container { keys, manifest })
    }

    /// The named container, or the only one when no name is given.
    pub fn open_or_only(&self, owner: &Owner, name: Option<&str>) -> Result<Container> {
        self.open(owner, &self.name_or_only(name)?)
    }

    /// `name`, or the only container's name when none is given (nothing
    /// is unlocked).
    pub fn name_or_only(&self, name: Option<&str>) -> Result<String> {
        if let Some(n) = name {
            return Ok(n.to_owned());
        }
        let mut all = self.manifests()?;
        match all.len() {
            1 => Ok(all.remove(0).name),
            0 => Err(RepoError::NoContainers),
            _ => Err(RepoError::SeveralContainers(
                all.into_iter().map(|c| c.name).collect(),
            )),
        }
    }

    /// The packs recorded for a container: where each fragment is.
    pub fn packs(&self, id: &ContainerId) -> Result<Vec<PackRecord>> {
        self.home.index.packs(id)
    }

    /// The snapshots of a container, oldest first.
    pub fn snapshots_of(&self, id: &ContainerId) -> Result<Vec<SnapshotManifest>> {
        self.home.index.snapshots(id)
    }

    /// Every container, for `container list`.
    pub fn list(&self) -> Result<Vec<ContainerRow>> {
        self.manifests()?
            .into_iter()
            .map(|m| {
                Ok(ContainerRow {
                    snapshots: self.snapshots_of(&m.id)?.len(),
                    peers: m.roster.len(),
                    redundancy: m.redundancy.to_string(),
                    name: m.name,
                    id: m.id,
                    sources: m.sources,
                })
            })
            .collect()
    }

    /// The snapshots of one container or of all, oldest first per container.
    pub fn snapshot_rows(&self, name: Option<&str>) -> Result<Vec<SnapshotRow>> {
        let containers = match name {
            Some(n) => {
                let found: Vec<_> = self
                    .readable_manifests()?
                    .into_iter()
                    .filter(|m| m.name == n)
                    .collect();
                match found.is_empty() {
                    true => return Err(RepoError::NoContainer(n.to_owned())),
                    false => found,
                }
            }
            None => self.readable_manifests()?,
        };
        let mut rows = Vec::new();
        for m in &containers {
            for s in self.snapshots_of(&m.id)? {
                let sum = &s.summary;
                rows.push(SnapshotRow {
                    short_id: s.id.short(),
                    id: s.id,
                    container: m.name.clone(),
                    time: crate::time::utc(s.time_unix_ns),
                    time_unix_ns: s.time_unix_ns,
                    host: s.host,
                    files: sum.files_new + sum.files_changed + sum.files_unchanged,
                    bytes: sum.bytes_total,
                    parent: s.parent,
                });
            }
        }
        Ok(rows)
    }
}
