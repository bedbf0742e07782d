//! The inheritance calls of a [`NodePeer`]: the owner's on its own escrow,
//! the heir's on the escrow that names it (`docs/design.md` §9f).

use trove_peer::PeerError;

use super::NodePeer;
use crate::escrow::{EscrowSpec, EscrowView};
use crate::proto::{ErrorKind, Request, Response};
use crate::store::OwnerId;

/// An heir's call that did not get an answer about the escrow.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HeirCallError {
    /// The node holds no escrow of this owner naming the caller as heir.
    #[error("{node}: {message}; check the owner id and that you run this from the heir's home (`trove whoami` shows the owner id the owner named)")]
    NotHeir { node: String, message: String },
    /// The node could not be reached, or failed.
    #[error(transparent)]
    Peer(#[from] PeerError),
}

/// What a collect got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Collected {
    /// The sealed share: the claim's wait passed on the node's clock.
    Released {
        view: EscrowView,
        sealed_share: Vec<u8>,
    },
    /// Nothing yet: the view says why (no claim, waiting, vetoed).
    Withheld(EscrowView),
}

impl NodePeer {
    /// The node's label, for messages (`name (node 1a2b…)`).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Store (or replace) this owner's escrow on the node.
    pub fn escrow_put(&self, spec: EscrowSpec) -> Result<(), PeerError> {
        self.expect_ok(Request::EscrowPut { spec }, None)
    }

    /// Delete this owner's escrow; what it was, if there was one.
    pub fn escrow_delete(&self) -> Result<Option<EscrowView>, PeerError> {
        self.escrow_call(Request::EscrowDelete)
    }

    /// Veto every open claim on this owner's escrow.
    pub fn escrow_veto(&self) -> Result<Option<EscrowView>, PeerError> {
        self.escrow_call(Request::EscrowVeto)
    }

    /// This owner's escrow as the node sees it.
    pub fn escrow_status(&self) -> Result<Option<EscrowView>, PeerError> {
        self.escrow_call(Request::EscrowStatus)
    }

    /// The heir claims `owner`'s escrow.
    pub fn inherit_claim(&self, owner: OwnerId) -> Result<EscrowView, HeirCallError> {
        self.heir_view(Request::InheritClaim { owner })
    }

    /// The heir asks where its claim on `owner`'s escrow stands.
    pub fn inherit_status(&self, owner: OwnerId) -> Result<EscrowView, HeirCallError> {
        self.heir_view(Request::InheritStatus { owner })
    }

    /// The heir asks for its share of `owner`'s escrow.
    pub fn inherit_collect(&self, owner: OwnerId) -> Result<Collected, HeirCallError> {
        match self.heir_call(Request::InheritCollect { owner })? {
            Response::Released { view, sealed_share } => {
                Ok(Collected::Released { view, sealed_share })
            }
            Response::Escrow(Some(view)) => Ok(Collected::Withheld(view)),
            r => Err(self.unexpected(&r).into()),
        }
    }

    fn escrow_call(&self, req: Request) -> Result<Option<EscrowView>, PeerError> {
        self.call(0, async {
            match self.exchange(&req, None).await? {
                (Response::Escrow(v), _) => Ok(v),
                (r, _) => Err(self.unexpected(&r)),
            }
        })
    }

    fn heir_view(&self, req: Request) -> Result<EscrowView, HeirCallError> {
        match self.heir_call(req)? {
            Response::Escrow(Some(view)) => Ok(view),
            r => Err(self.unexpected(&r).into()),
        }
    }

    /// One heir's request; a `NotHeir` refusal is its own error.
    fn heir_call(&self, req: Request) -> Result<Response, HeirCallError> {
        let r = self.call(0, async {
            self.exchange_any(&req, None).await.map(|(r, _)| r)
        })?;
        match r {
            Response::Error {
                kind: ErrorKind::NotHeir,
                message,
            } => Err(HeirCallError::NotHeir {
                node: self.label.clone(),
                message,
            }),
            Response::Error { kind, message } => Err(self.refused(kind, message).into()),
            r => Ok(r),
        }
    }
}
