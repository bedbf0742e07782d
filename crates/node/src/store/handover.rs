//! A node's side of a master secret rotation (`docs/design.md` §2a): the
//! owner hands its namespace, its grant and its pinned identity over to a
//! new owner id and identity, named by a certificate both identities
//! signed. Each step is durable before the next and the whole is
//! idempotent, so a node killed half-way finishes when the owner asks
//! again, from the old owner id (still granted until the last step) or
//! the new one.
//!
//! 1. the certificate is written into the old namespace
//!    (`handover/<old identity>`, as a folder peer keeps it);
//! 2. `owners/<old>` is renamed to `owners/<new>`;
//! 3. the new namespace's `identity` pins the new identity;
//! 4. the grant moves to the new owner id (`grants.json`, one atomic write);
//! 5. the old owner's inheritance escrow is deleted: its shares are of the
//!    old master secret.

use std::fs;
use std::path::Path;

use tracing::info;
use trove_core::handover::{self, HandOver};
use trove_core::keys::PublicIdentity;
use trove_peer::{durable, layout};

use super::{dir_bytes, read_identity, write_atomic, NodeStore, OwnerId, IDENTITY_FILE};
use crate::error::NodeError;

/// Why a node did not take a hand-over.
#[derive(Debug, thiserror::Error)]
pub enum HandOverRefusal {
    /// The certificate does not fit this caller or this node's state.
    #[error("{0}")]
    Refused(String),
    /// The node failed to store it.
    #[error(transparent)]
    Failed(#[from] NodeError),
}

/// The identity a namespace's objects must be signed by: the pinned one,
/// followed through the hand-over certificates the namespace holds.
pub(super) fn pinned_identity(dir: &Path) -> Result<Option<PublicIdentity>, NodeError> {
    let pinned = read_identity(&dir.join(IDENTITY_FILE))?;
    Ok(pinned.map(|p| handover::successor(p, |old| held_cert(dir, old))))
}

fn held_cert(dir: &Path, old: &PublicIdentity) -> Option<Vec<u8>> {
    fs::read(dir.join(layout::handover_path(old))).ok()
}

impl NodeStore {
    /// Take `cert` from `caller` (see the module's steps).
    pub fn hand_over(&self, caller: &OwnerId, cert: &HandOver) -> Result<(), HandOverRefusal> {
        let (old, new) = (OwnerId(cert.old_owner), OwnerId(cert.new_owner));
        let refuse = |why: String| Err(HandOverRefusal::Refused(why));
        if old == new {
            return refuse("the certificate hands an owner id over to itself".into());
        }
        // No request of either owner opens a namespace meanwhile.
        let mut spaces = self.spaces.lock().unwrap_or_else(|p| p.into_inner());
        let (old_dir, new_dir) = (self.dir.owner_dir(&old), self.dir.owner_dir(&new));
        let moved = held_cert(&new_dir, &cert.old_identity).as_deref() == Some(&cert.encode()[..]);
        if *caller == new {
            // A retry from the new owner id, which is granted only once
            // the hand-over is done.
            return match moved {
                true => Ok(()),
                false => refuse(format!(
                    "this node holds no hand-over from owner {old} to you ({new})"
                )),
            };
        }
        if *caller != old {
            return refuse(format!(
                "the certificate hands over owner {old}, but this request comes from owner {caller}"
            ));
        }
        if !moved {
            match pinned_identity(&old_dir)? {
                Some(p) if p != cert.old_identity && p != cert.new_identity => {
                    return refuse(format!(
                        "the certificate is made by identity {}, but this node keeps owner {old}'s \
                         objects for identity {}",
                        cert.old_identity.fingerprint(),
                        p.fingerprint()
                    ))
                }
                _ => {}
            }
            if new_dir.exists() && !holds_nothing(&new_dir) {
                return refuse(format!(
                    "owner {new} already keeps data on this node; a hand-over does not merge two owners"
                ));
            }
            spaces.remove(&old);
            spaces.remove(&new);
            let cert_path = old_dir.join(layout::handover_path(&cert.old_identity));
            let io = |what: &'static str, p: &Path| {
                let p = p.to_owned();
                move |e| NodeError::io(what, &p, e)
            };
            durable::create_dir_all(cert_path.parent().unwrap_or(&old_dir))
                .map_err(io("create", &old_dir))?;
            write_atomic(&cert_path, &cert.encode())?;
            if new_dir.exists() {
                // An empty namespace the new id got before (a hello).
                fs::remove_dir_all(&new_dir).map_err(io("remove", &new_dir))?;
            }
            durable::rename(&old_dir, &new_dir).map_err(io("rename", &old_dir))?;
            write_atomic(
                &new_dir.join(IDENTITY_FILE),
                format!("{}\n", cert.new_identity.to_hex()).as_bytes(),
            )?;
        }
        let mut grants = self.dir.grants()?;
        if let Some(g) = grants.remove(&old) {
            grants.entry(new).or_insert(g);
            self.dir.save_grants(&grants)?;
        }
        // A request of the old id after a crash between the steps may have
        // opened an empty namespace for it again.
        spaces.remove(&old);
        if old_dir.exists() && holds_nothing(&old_dir) {
            fs::remove_dir_all(&old_dir).map_err(|e| NodeError::io("remove", &old_dir, e))?;
        }
        if self.dir.delete_escrow(&old)? {
            info!(owner = %old.short(), "inheritance escrow of the old owner id deleted by its hand-over");
        }
        info!(from = %old.short(), to = %new.short(), identity = %cert.new_identity.fingerprint(), "owner handed over to a new owner id and identity");
        Ok(())
    }
}

/// Whether a namespace holds no fragment, metadata or trash bytes.
fn holds_nothing(dir: &Path) -> bool {
    ["fragments", "meta", "trash"]
        .iter()
        .all(|d| dir_bytes(&dir.join(d)) == 0)
}
