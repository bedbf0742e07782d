//! Replication of the small signed objects (container manifest, snapshot
//! manifests, index segments) to every peer, so that a new machine can
//! rebuild everything from one peer (invariant 6, docs/design.md
//! §Invariants), and their verification.

use crate::error::Result;
use crate::home::{Container, Home, Owner};
use crate::progress::{Event, Progress};
use rand::seq::SliceRandom;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use trove_core::envelope::{self, EnvelopeError, EnvelopeHeader};
use trove_core::manifest::{
    ContainerManifest, IndexSegment, ManifestError, PackRecord, PeerRecord,
};
use trove_core::seal::BlobKind;
use trove_core::{ContainerId, SegmentId};
use trove_peer::{MetaKey, MetaRejection, Peer, PeerError};

/// Why a signed object read from a peer is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ObjectError {
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error("its body does not decode: {0}")]
    Decode(#[from] ManifestError),
    #[error("it names another object")]
    WrongObject,
    /// The revision a peer reads in the clear must be the one inside.
    #[error("its signed revision {header} differs from the revision {body} inside")]
    RevisionMismatch { header: u64, body: u64 },
}

/// The next segment of container `cid`'s index log: a random id, `seq` one
/// past the highest this index knows (§5), adding `packs`.
pub(crate) fn next_segment(
    home: &Home,
    cid: ContainerId,
    packs: Vec<PackRecord>,
) -> Result<IndexSegment> {
    Ok(IndexSegment::adding(
        SegmentId::random(),
        cid,
        home.index.next_segment_seq(&cid)?,
        packs,
    ))
}

/// A segment sealed under the container's key and signed, as it travels
/// to the peers.
pub(crate) fn seal_segment(owner: &Owner, container: &Container, seg: &IndexSegment) -> Vec<u8> {
    envelope::seal_signed(
        &owner.identity,
        &container.keys.seal,
        BlobKind::IndexSegment,
        &seg.id.0,
        0,
        &seg.encode(),
    )
}

/// Open and decode a container manifest envelope of container `cid`.
pub fn open_container_manifest(
    owner: &Owner,
    cid: &ContainerId,
    bytes: &[u8],
) -> Result<ContainerManifest, ObjectError> {
    let (header, body) = envelope::open_signed(
        &owner.public(),
        &owner.master.manifest_key(),
        BlobKind::ContainerManifest,
        &cid.0,
        bytes,
    )?;
    let m = ContainerManifest::decode(&body)?;
    if m.id != *cid {
        return Err(ObjectError::WrongObject);
    }
    // Version-1 envelopes carry no revision in the clear.
    if header.version >= 2 && header.revision != m.revision {
        return Err(ObjectError::RevisionMismatch {
            header: header.revision,
            body: m.revision,
        });
    }
    Ok(m)
}

/// Envelopes `sync_meta` reads back from each peer besides the container
/// manifest: a random few, so a damaged or rolled-back copy is found within
/// a few runs while the cost stays bounded however long the history grows
/// (`trove check` reads every copy).
const VERIFY_SAMPLE: usize = 8;

/// Push every envelope the index holds for the container to each peer that
/// lacks it. With `verify`, also read back each peer's copy of the container
/// manifest and of [`VERIFY_SAMPLE`] other envelopes chosen at random, and
/// replace any that differ: silently when the peer's copy is a valid older
/// version, with a warning naming the peer when it fails verification. A peer that
/// holds a newer container manifest than this machine keeps it, and the
/// warning says to run `trove sync`.
/// The order objects are stored on a peer in: segments before the
/// snapshots that rely on them, so a peer never holds a snapshot whose packs
/// it cannot find, even if replication stops midway.
pub(crate) fn replication_order(key: &MetaKey) -> u8 {
    match key {
        MetaKey::IndexSegment(..) => 0,
        MetaKey::Container(_) => 1,
        MetaKey::Snapshot(..) => 2,
    }
}

pub fn sync_meta(
    home: &Home,
    owner: &Owner,
    container: &Container,
    peers: &[(PeerRecord, Arc<dyn Peer>)],
    verify: bool,
    progress: &dyn Progress,
) -> Result<()> {
    let cid = &container.manifest.id;
    let mut keys = home.index.meta_keys(cid)?;
    keys.sort_by_key(replication_order);
    // What is read back from every peer: the container manifest and the
    // same VERIFY_SAMPLE others (each loaded from the index once).
    let mut read_back: HashSet<MetaKey> = HashSet::new();
    if verify {
        let others: Vec<MetaKey> = keys
            .iter()
            .filter(|k| !matches!(k, MetaKey::Container(_)))
            .copied()
            .collect();
        read_back.extend(others.choose_multiple(&mut rand::thread_rng(), VERIFY_SAMPLE));
        read_back.extend(keys.iter().filter(|k| matches!(k, MetaKey::Container(_))));
    }
    let envelopes = Envelopes {
        home,
        loaded: Mutex::new(HashMap::new()),
        large_read: Mutex::new(()),
    };
    // Peers in parallel: each costs a few fsyncs per object, and a slow one
    // should not hold up the rest.
    std::thread::scope(|s| {
        for (rec, peer) in peers {
            let (keys, read_back, envelopes) = (&keys, &read_back, &envelopes);
            s.spawn(move || {
                let job = PeerSync {
                    owner,
                    container,
                    rec,
                    peer: peer.as_ref(),
                    envelopes,
                    progress,
                };
                job.run(keys, read_back)
            });
        }
    });
    Ok(())
}

/// The envelopes a [`sync_meta`] needs, each loaded from the index the
/// first time a peer needs it (an envelope every peer has is never loaded).
struct Envelopes<'h> {
    home: &'h Home,
    loaded: Mutex<HashMap<MetaKey, Option<Arc<Vec<u8>>>>>,
    /// Held while a peer's copy of a large envelope is read back, so the
    /// peers' copies of a large index segment are not all in memory at once.
    large_read: Mutex<()>,
}

/// Envelopes larger than this are read back from one peer at a time.
const LARGE_ENVELOPE: usize = 1 << 20;

impl Envelopes<'_> {
    fn get(&self, key: &MetaKey) -> Option<Arc<Vec<u8>>> {
        let mut loaded = self.loaded.lock().expect("not poisoned");
        loaded
            .entry(*key)
            .or_insert_with(|| {
                self.home
                    .index
                    .meta_envelope(key)
                    .ok()
                    .flatten()
                    .map(Arc::new)
            })
            .clone()
    }
}

/// [`sync_meta`] for one peer.
struct PeerSync<'a> {
    owner: &'a Owner,
    container: &'a Container,
    rec: &'a PeerRecord,
    peer: &'a dyn Peer,
    envelopes: &'a Envelopes<'a>,
    progress: &'a dyn Progress,
}

impl PeerSync<'_> {
    fn warn(&self, message: String) {
        self.progress.event(Event::Warning(message));
    }

    fn run(&self, keys: &[MetaKey], read_back: &HashSet<MetaKey>) {
        let (rec, peer) = (self.rec, self.peer);
        let cid = &self.container.manifest.id;
        let present: HashSet<MetaKey> = match peer.list_meta(Some(cid)) {
            Ok(v) => v.into_iter().collect(),
            Err(e) => {
                self.warn(format!("peer `{}`: cannot list manifests: {e}", rec.name));
                return;
            }
        };
        for key in keys {
            let missing = !present.contains(key);
            if !missing && !read_back.contains(key) {
                continue;
            }
            let Some(bytes) = self.envelopes.get(key) else {
                continue;
            };
            if !missing && !self.differs(key, &bytes) {
                continue;
            }
            match peer.put_meta(key, &bytes) {
                Ok(()) => {}
                Err(PeerError::MetaRejected { reason, .. })
                    if matches!(*reason, MetaRejection::NotNewer { .. }) =>
                {
                    self.warn(format!(
                        "peer `{}` holds a newer revision of {key} than this machine ({reason}): \
                         run `trove sync` to bring this machine up to date",
                        rec.name
                    ))
                }
                Err(e @ PeerError::MetaRejected { .. }) => self.warn(e.to_string()),
                Err(e) => {
                    self.warn(format!(
                        "peer `{}`: could not store {key}: {e} (it will be retried at the next backup)",
                        rec.name
                    ));
                    return;
                }
            }
        }
    }

    /// Whether the peer's copy of `key` must be replaced by `ours`: it is
    /// unreadable, invalid (said in a warning) or of a lower revision.
    fn differs(&self, key: &MetaKey, ours: &[u8]) -> bool {
        let _turn = (ours.len() > LARGE_ENVELOPE)
            .then(|| self.envelopes.large_read.lock().expect("not poisoned"));
        match self.peer.get_meta(key) {
            Ok(b) if b == ours => false,
            Ok(theirs) => match verify_envelope(self.owner, self.container, key, &theirs) {
                Err(e) => {
                    self.warn(format!(
                        "peer `{}` held an invalid copy of {key} ({e}); replaced it",
                        self.rec.name
                    ));
                    true
                }
                Ok(h) => h.revision < revision_of(ours),
            },
            Err(_) => true,
        }
    }
}

/// The revision an envelope carries (0 if it is unreadable).
fn revision_of(bytes: &[u8]) -> u64 {
    envelope::peek(bytes).map_or(0, |h| h.revision)
}

/// Verify a signed envelope of `container` as found on a peer.
pub fn verify_envelope(
    owner: &Owner,
    container: &Container,
    key: &MetaKey,
    bytes: &[u8],
) -> Result<EnvelopeHeader, EnvelopeError> {
    let me = owner.public();
    let (kind, object) = match key {
        MetaKey::Container(c) => {
            let manifest_key = owner.master.manifest_key();
            return envelope::open_signed(
                &me,
                &manifest_key,
                BlobKind::ContainerManifest,
                &c.0,
                bytes,
            )
            .map(|(h, _)| h);
        }
        MetaKey::Snapshot(_, id) => (BlobKind::SnapshotManifest, id.0),
        MetaKey::IndexSegment(_, id) => (BlobKind::IndexSegment, id.0),
    };
    // Sealed with the container's key of their time.
    envelope::open_signed_any(&me, container.keys.seals(), kind, &object, bytes).map(|(h, _)| h)
}
