//! The node as a custodian of inheritance escrows: the owner's requests
//! (put, delete, veto, status) on its own escrow, and the heir's (claim,
//! status, collect) on the escrow that names it. Every time is this
//! node's clock; every change is written before it is answered, so a
//! claim or a veto survives a restart.

use tracing::{info, warn};

use super::{err, now_unix, Server};
use crate::escrow::{Escrow, EscrowView, Withheld, MAX_SEALED_SHARE};
use crate::proto::{ErrorKind, Request, Response};
use crate::store::OwnerId;

/// Serve one inheritance request of `caller` (blocking: file I/O).
pub(super) fn serve(server: &Server, caller: OwnerId, req: Request) -> Response {
    // One writer at a time: a claim and a veto racing must not lose one.
    let _turn = server.escrow_turn.lock().unwrap_or_else(|p| p.into_inner());
    let dir = &server.store.dir;
    let now = now_unix();
    let stored = |e: &Escrow| match dir.save_escrow(e) {
        Ok(()) => None,
        Err(e) => {
            warn!(error = %e, "writing an escrow failed");
            Some(err(
                ErrorKind::Internal,
                "the node cannot write the escrow (see its log)",
            ))
        }
    };
    // The refusal is boxed: a `Response` is large for an `Err`.
    let load = |owner: &OwnerId| match dir.escrow(owner) {
        Ok(e) => Ok(e),
        Err(e) => {
            warn!(error = %e, "reading an escrow failed");
            Err(Box::new(err(
                ErrorKind::Internal,
                "the node cannot read the escrow (see its log)",
            )))
        }
    };
    let seen = |owner: &OwnerId| server.owner_seen(owner);
    let view = |e: &Escrow| -> EscrowView { e.view(now, seen(&e.owner)) };
    match req {
        Request::EscrowPut { spec } => {
            if spec.sealed_share.len() > MAX_SEALED_SHARE {
                return err(ErrorKind::BadRequest, "the sealed share is too large");
            }
            let e = Escrow::new(caller, spec, now);
            if let Some(r) = stored(&e) {
                return r;
            }
            info!(owner = %caller.short(), heir = %e.spec.heir.short(), wait_secs = e.spec.wait_secs, "inheritance escrow stored (replacing any earlier one and its claims)");
            Response::Ok
        }
        Request::EscrowDelete => match load(&caller) {
            Err(r) => *r,
            Ok(before) => match dir.delete_escrow(&caller) {
                Ok(_) => {
                    if before.is_some() {
                        info!(owner = %caller.short(), "inheritance escrow deleted by its owner");
                    }
                    Response::Escrow(before.as_ref().map(view))
                }
                Err(e) => {
                    warn!(error = %e, "deleting an escrow failed");
                    err(
                        ErrorKind::Internal,
                        "the node cannot delete the escrow (see its log)",
                    )
                }
            },
        },
        Request::EscrowVeto => match load(&caller) {
            Err(r) => *r,
            Ok(None) => Response::Escrow(None),
            Ok(Some(mut e)) => {
                let n = e.veto(now);
                if n > 0 {
                    if let Some(r) = stored(&e) {
                        return r;
                    }
                    info!(owner = %caller.short(), claims = n, "the owner vetoed the open inheritance claim");
                }
                Response::Escrow(Some(view(&e)))
            }
        },
        Request::EscrowStatus => match load(&caller) {
            Err(r) => *r,
            Ok(e) => Response::Escrow(e.as_ref().map(view)),
        },
        Request::InheritClaim { owner }
        | Request::InheritStatus { owner }
        | Request::InheritCollect { owner } => {
            let mut e = match load(&owner) {
                Err(r) => return *r,
                Ok(Some(e)) if e.spec.heir == caller => e,
                Ok(_) => {
                    info!(caller = %caller.short(), owner = %owner.short(), "refused an inheritance request from an id that is not the named heir");
                    return err(
                        ErrorKind::NotHeir,
                        format!(
                            "this node holds no escrow of owner {} naming {} as heir",
                            owner.short(),
                            caller.short()
                        ),
                    );
                }
            };
            match req {
                Request::InheritClaim { .. } => {
                    let before = e.next_claim;
                    let c = e.claim(now);
                    if e.next_claim != before {
                        if let Some(r) = stored(&e) {
                            return r;
                        }
                        let v = view(&e);
                        warn!(owner = %owner.short(), heir = %caller.short(), claim = c.id, release = ?v.claim.map(|c| c.phase), "INHERITANCE CLAIM opened: the owner can veto it with `trove inherit veto` until it releases");
                    }
                    Response::Escrow(Some(view(&e)))
                }
                Request::InheritCollect { .. } => match e.release(now, seen(&owner)) {
                    Ok(share) => {
                        info!(owner = %owner.short(), heir = %caller.short(), "released the inheritance share to the heir");
                        Response::Released {
                            view: view(&e),
                            sealed_share: share.to_vec(),
                        }
                    }
                    Err(Withheld::NoClaim | Withheld::Waiting { .. } | Withheld::Vetoed { .. }) => {
                        Response::Escrow(Some(view(&e)))
                    }
                },
                _ => Response::Escrow(Some(view(&e))),
            }
        }
        _ => err(ErrorKind::BadRequest, "not an inheritance request"),
    }
}
