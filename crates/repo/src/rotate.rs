//! Rotating the master secret (`trove recovery rotate`, `docs/design.md`
//! §2a): for when the 24-word phrase or too many SLIP-39 shares were
//! exposed. A new master secret gives a new identity, owner id, wrap and
//! manifest key; every container key is re-wrapped under it and a new
//! container key is added (new data is sealed with a key the old secret
//! never wrapped); every peer takes a hand-over certificate, then every
//! manifest, snapshot and index segment signed by the old identity is
//! signed again by the new one. Fragments do not move.
//!
//! The steps, each resumable (the rotation is finished by running it again):
//! 1. `keyfile.next`: the new secret under the same passphrase, and
//!    `handover.next`, the certificate, are written before any peer hears
//!    of them; while they exist, every other command that unlocks refuses.
//! 2. every configured peer takes the certificate (a node moves the
//!    owner's namespace and grant to the new owner id);
//! 3. container manifests are re-wrapped and re-sealed, snapshot and
//!    segment envelopes re-signed, in the index;
//! 4. every peer gets the new envelopes; they replace the old identity's
//!    copies, which go to the peer's trash;
//! 5. `transport.key` becomes the new one, `keyfile.next` is renamed over
//!    `keyfile` (the commit), `handover.next` is removed.

use std::cell::OnceCell;
use std::collections::BTreeSet;
use std::sync::Arc;

use trove_core::envelope;
use trove_core::handover::HandOver;
use trove_core::keys::{ContainerKey, MasterSecret, PublicIdentity};
use trove_core::manifest::{ContainerManifest, PeerRecord};
use trove_node::NodeClient;
use trove_peer::{durable, MetaKey, Peer, PeerError};

use crate::error::{RepoError, Result};
use crate::home::{Home, Owner, KEYFILE, NEXT_HANDOVER, NEXT_KEYFILE};
use crate::keyfile;
use crate::location::PeerLocation;
use crate::progress::Progress;

/// What a rotation did.
#[derive(Debug)]
pub struct RotateReport {
    pub old_identity: PublicIdentity,
    pub old_owner_id: String,
    /// The new owner: its master secret is the new phrase.
    pub new: Owner,
    /// Whether an earlier, unfinished rotation was finished.
    pub resumed: bool,
    /// Peers that took the hand-over and hold the re-signed objects.
    pub peers: Vec<String>,
    /// Containers re-wrapped (with a new container key added).
    pub containers: Vec<String>,
    /// Envelopes of the index signed anew by the new identity.
    pub resigned: usize,
    /// Objects stored on peers (the new signatures replacing the old).
    pub stored: usize,
    /// Recipients of shares (`trove share`) who need a new share file to
    /// read what is stored from now on, per container.
    pub reshare: Vec<(String, String)>,
}

/// The node endpoints of the old and the new owner id, started on first use.
struct Endpoints<'h> {
    home: &'h Home,
    old: &'h Owner,
    new: &'h Owner,
    old_client: OnceCell<std::result::Result<Arc<NodeClient>, String>>,
    new_client: OnceCell<std::result::Result<Arc<NodeClient>, String>>,
}

impl Endpoints<'_> {
    fn client(&self, new: bool) -> std::result::Result<Arc<NodeClient>, String> {
        let (cell, owner) = match new {
            true => (&self.new_client, self.new),
            false => (&self.old_client, self.old),
        };
        cell.get_or_init(|| {
            let seed = zeroize::Zeroizing::new(owner.master.transport_seed());
            self.home
                .start_node_client(&seed)
                .map_err(|e| e.to_string())
        })
        .clone()
    }

    /// Open `rec`, speaking as the new owner id to a node if `new`.
    fn open(&self, rec: &PeerRecord, new: bool) -> std::result::Result<Arc<dyn Peer>, String> {
        let client = match is_node(rec) {
            true => Some(self.client(new)?),
            false => None,
        };
        self.home
            .peers()
            .open_with(rec, client.as_ref())
            .map_err(|e| e.to_string())
    }
}

/// Whether `rec` is a node peer (which knows the owner by its owner id).
fn is_node(rec: &PeerRecord) -> bool {
    matches!(rec.location.parse(), Ok(PeerLocation::Node(_)))
}

/// Rotate the master secret of `home`, or finish a rotation under way.
/// `passphrase` unlocks the current keyfile and seals the new one.
pub fn rotate(home: &Home, passphrase: &[u8], progress: &dyn Progress) -> Result<RotateReport> {
    let old = home.unlock_current(passphrase)?;
    let next = home.dir().join(NEXT_KEYFILE);
    let resumed = next.exists();
    let new = if resumed {
        Owner::new(keyfile::unlock(&next, passphrase)?)
    } else {
        // Commits left by a killed backup are signed by the old identity:
        // finish them while the peers still take it.
        crate::pending::finish_all(home, &old, progress)?;
        let m = MasterSecret::generate();
        keyfile::create_like(&next, &home.dir().join(KEYFILE), &m, passphrase)?;
        Owner::new(m)
    };
    let cert = certificate(home, &old, &new)?;
    let records = home.peers().records()?;
    let ends = Endpoints {
        home,
        old: &old,
        new: &new,
        old_client: OnceCell::new(),
        new_client: OnceCell::new(),
    };

    let mut failed = Vec::new();
    for rec in &records {
        if let Err(e) = hand_over(&ends, rec, &cert) {
            failed.push(format!(
                "peer `{}` did not take the hand-over: {e}",
                rec.name
            ));
        }
    }
    if !failed.is_empty() {
        return Err(RepoError::RotationIncomplete { failed });
    }

    let rekeyed = rewrap_and_resign(home, &old, &new)?;
    let mut stored = 0;
    for rec in &records {
        match ends
            .open(rec, true)
            .and_then(|peer| push(home, &old, &new, peer.as_ref()).map_err(|e| e.to_string()))
        {
            Ok(n) => stored += n,
            Err(e) => failed.push(format!("peer `{}`: {e}", rec.name)),
        }
    }
    if !failed.is_empty() {
        return Err(RepoError::RotationIncomplete { failed });
    }

    // The commit: the new transport key first, so that a crash between
    // the two leaves a rotation that resumes (the unlock of the old
    // keyfile writes its own transport key back).
    home.save_transport_key(&new)?;
    let keyfile_path = home.dir().join(KEYFILE);
    durable::rename(&next, &keyfile_path).map_err(|e| RepoError::io("rename", &next, e))?;
    let cert_path = home.dir().join(NEXT_HANDOVER);
    match std::fs::remove_file(&cert_path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(RepoError::io("remove", &cert_path, e))
        }
        _ => {}
    }
    Ok(RotateReport {
        old_identity: old.public(),
        old_owner_id: old.owner_id(),
        new,
        resumed,
        peers: records.into_iter().map(|r| r.name).collect(),
        containers: rekeyed.containers,
        resigned: rekeyed.resigned,
        stored,
        reshare: rekeyed.reshare,
    })
}

/// The rotation's certificate: the one written when it started, else a new
/// one, written before any peer sees it (peers keep one certificate per
/// old identity, so a resumed rotation must send the same bytes).
fn certificate(home: &Home, old: &Owner, new: &Owner) -> Result<HandOver> {
    let path = home.dir().join(NEXT_HANDOVER);
    let held = std::fs::read(&path)
        .ok()
        .and_then(|b| HandOver::decode(&b).ok())
        .filter(|h| h.old_identity == old.public() && h.new_identity == new.public());
    if let Some(h) = held {
        return Ok(h);
    }
    let made = u64::try_from(crate::time::now_unix()).unwrap_or(0);
    let h = HandOver::sign(&old.master, &new.master, made);
    durable::replace(&path, &h.encode(), None).map_err(|e| RepoError::io("write", &path, e))?;
    Ok(h)
}

/// Give `rec` the certificate. A node is asked as the old owner id, and if
/// that fails as the new one: a node that took it before a crash has
/// already moved the grant.
fn hand_over(
    ends: &Endpoints<'_>,
    rec: &PeerRecord,
    cert: &HandOver,
) -> std::result::Result<(), String> {
    let as_old = ends
        .open(rec, false)
        .and_then(|p| p.hand_over(cert).map_err(|e| e.to_string()));
    let Err(first) = as_old else { return Ok(()) };
    if !is_node(rec) {
        return Err(first);
    }
    match ends
        .open(rec, true)
        .and_then(|p| p.hand_over(cert).map_err(|e| e.to_string()))
    {
        Ok(()) => Ok(()),
        Err(_) => Err(first),
    }
}

/// What [`rewrap_and_resign`] changed in the index.
struct Rekeyed {
    /// Containers re-wrapped now.
    containers: Vec<String>,
    /// Envelopes signed anew.
    resigned: usize,
    /// Share recipients to give a new share file: (container, owner id).
    reshare: Vec<(String, String)>,
}

/// Re-wrap every container's keys under the new secret, with a new
/// container key added, and sign every snapshot and segment envelope of
/// the index anew.
fn rewrap_and_resign(home: &Home, old: &Owner, new: &Owner) -> Result<Rekeyed> {
    let containers = home.containers();
    let mut rewrapped = Vec::new();
    let mut resigned = 0;
    for m in containers.manifests()? {
        let cid = m.id;
        // Already done by a rotation that was stopped later on.
        if m.raw_keys(&new.master).is_err() {
            let next = rewrapped_manifest(&m, old, new)?;
            containers.update_manifest(new, &next)?;
            rewrapped.push(m.name.clone());
        }
        for key in home.index.meta_keys(&cid)? {
            if matches!(key, MetaKey::Container(_)) {
                continue;
            }
            let Some(env) = home.index.meta_envelope(&key)? else {
                continue;
            };
            let again = signed_anew(&env, old, new)
                .map_err(|e| RepoError::Format(format!("{key} of container `{}`: {e}", m.name)))?;
            if let Some(again) = again {
                home.index.put_meta(&key, &again)?;
                resigned += 1;
            }
        }
    }
    let reshare = home
        .index
        .given_shares::<crate::share::GivenShare>()?
        .into_iter()
        .filter(|g| g.revoked_unix.is_none())
        .map(|g| (g.container, g.recipient))
        .collect();
    Ok(Rekeyed {
        containers: rewrapped,
        resigned,
        reshare,
    })
}

/// `env` signed by the new identity if its header names the old one as
/// signer (it must then verify); `None` for any other envelope.
fn signed_anew(
    env: &[u8],
    old: &Owner,
    new: &Owner,
) -> std::result::Result<Option<Vec<u8>>, envelope::EnvelopeError> {
    match envelope::peek(env) {
        Ok(h) if h.signer == old.public() => envelope::resign(env, &new.identity).map(Some),
        _ => Ok(None),
    }
}

/// `m` with its keys wrapped by the new secret, a new container key added
/// (new data is sealed with it), and the next revision.
fn rewrapped_manifest(
    m: &ContainerManifest,
    old: &Owner,
    new: &Owner,
) -> Result<ContainerManifest> {
    let keys = m
        .raw_keys(&old.master)
        .map_err(|e| RepoError::Format(format!("container `{}`: {e}", m.name)))?;
    let mut next = m.clone();
    next.wrapped_key = new.master.wrap(&m.id, &keys[0]);
    next.later_keys = keys[1..]
        .iter()
        .chain(std::iter::once(&ContainerKey::generate()))
        .map(|k| new.master.wrap(&m.id, k))
        .collect();
    next.revision += 1;
    Ok(next)
}

/// Store on `peer` every object of every container signed by the new
/// identity: the index's envelopes, and those only the peer holds that the
/// old identity signed (another machine's backups not synced here),
/// re-signed. In the order a backup replicates them
/// ([`crate::meta::replication_order`]). Returns how many were stored.
fn push(
    home: &Home,
    old: &Owner,
    new: &Owner,
    peer: &dyn Peer,
) -> std::result::Result<usize, PeerError> {
    let index_err = |e: RepoError| PeerError::Corrupt {
        peer: peer.describe(),
        what: format!("the local index failed: {e}"),
    };
    let mut stored = 0;
    for m in home.containers().manifests().map_err(index_err)? {
        let mut keys: BTreeSet<(u8, MetaKey)> = BTreeSet::new();
        let ours = home.index.meta_keys(&m.id).map_err(index_err)?;
        for key in ours.into_iter().chain(peer.list_meta(Some(&m.id))?) {
            keys.insert((crate::meta::replication_order(&key), key));
        }
        for (_, key) in keys {
            let bytes = match home.index.meta_envelope(&key).map_err(index_err)? {
                Some(b) => b,
                None => match signed_anew(&peer.get_meta(&key)?, old, new) {
                    Ok(Some(again)) => again,
                    // Another identity's, signed anew already, or invalid.
                    _ => continue,
                },
            };
            peer.put_meta(&key, &bytes)?;
            stored += 1;
        }
    }
    Ok(stored)
}
