//! The owner's side: [`NodePeer`] is a [`Peer`] that talks to a node. It
//! wraps async iroh calls in a small runtime shared by all node peers of a
//! process ([`NodeClient`]), bounds every call in time, and remembers for a
//! while that a node is down so a dead node costs one timeout, not one per
//! fragment.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iroh::endpoint::{Connection, RecvStream};
use iroh::{Endpoint, EndpointAddr, SecretKey};
use tokio::io::AsyncReadExt;
use trove_core::handover::HandOver;
use trove_core::{ContainerId, FragmentId};
use trove_peer::{AuditRange, DeletedMeta, MetaKey, Peer, PeerError, PeerStat};

use crate::error::NodeError;
use crate::network::{NetworkConfig, NodeTicket};
use crate::proto::{self, ErrorKind, Request, Response, ALPN, MAX_RESPONSE_FRAME};
use crate::store::OwnerId;

mod escrow;
pub use escrow::{Collected, HeirCallError};

/// Connecting (including hole punching) may take this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(8);
/// Base time allowed for any request...
const REQUEST_BASE: Duration = Duration::from_secs(20);
/// ...plus this much per MiB transferred (a 1 MiB/s floor).
const PER_MIB: Duration = Duration::from_secs(1);
/// After a node proved unreachable, fail fast for this long.
const DOWN_FOR: Duration = Duration::from_secs(20);

/// The owner's network endpoint and the runtime that drives it.
#[derive(Debug)]
pub struct NodeClient {
    rt: tokio::runtime::Runtime,
    endpoint: Endpoint,
}

impl NodeClient {
    /// Start an endpoint whose identity is the owner's transport key.
    pub fn start(transport_seed: [u8; 32], net: &NetworkConfig) -> Result<Arc<Self>, NodeError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("trove-peer")
            .enable_all()
            .build()
            .map_err(|e| NodeError::Network(format!("cannot start the network runtime: {e}")))?;
        let key = SecretKey::from_bytes(&transport_seed);
        let endpoint = rt.block_on(net.bind(key, Vec::new(), false))?;
        Ok(Arc::new(Self { rt, endpoint }))
    }

    /// The owner id nodes see.
    pub fn owner_id(&self) -> [u8; 32] {
        *self.endpoint.id().as_bytes()
    }

    /// A peer for the node behind `ticket`.
    pub fn peer(self: &Arc<Self>, name: &str, ticket: &NodeTicket) -> Result<NodePeer, NodeError> {
        Ok(NodePeer {
            label: format!("{name} (node {})", &ticket.node_hex()[..12]),
            client: self.clone(),
            addr: ticket.endpoint_addr()?,
            conn: tokio::sync::Mutex::new(None),
            down_until: Mutex::new(None),
        })
    }
}

impl Drop for NodeClient {
    fn drop(&mut self) {
        let ep = self.endpoint.clone();
        // Close politely so nodes free the connection at once.
        let _ = self
            .rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(1), ep.close()).await });
    }
}

/// A node as one of the owner's peers.
#[derive(Debug)]
pub struct NodePeer {
    label: String,
    client: Arc<NodeClient>,
    addr: EndpointAddr,
    conn: tokio::sync::Mutex<Option<Connection>>,
    down_until: Mutex<Option<Instant>>,
}

/// What a node says to `Hello`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeHello {
    /// The node's software version.
    pub node: String,
    /// Bytes this owner may store there, and stores now.
    pub quota: u64,
    pub used: u64,
    /// The node's operator's own owner id, if the operator named it
    /// (`trove node run --operator`; older nodes never do).
    pub operator: Option<OwnerId>,
}

/// What a call needs besides the request: bytes to send after it.
/// A request's body, in parts sent one after the other (a fragment stored
/// from its pack: its header, the pack's bytes, padding).
type Body<'a> = Option<&'a [&'a [u8]]>;

/// The bytes in a body's parts.
fn body_len(parts: &[&[u8]]) -> u64 {
    parts.iter().map(|b| b.len() as u64).sum()
}

impl NodePeer {
    fn unavailable(&self, reason: impl Into<String>) -> PeerError {
        PeerError::Unavailable {
            peer: self.label.clone(),
            reason: reason.into(),
        }
    }

    async fn connection(&self) -> Result<Connection, PeerError> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            if c.close_reason().is_none() {
                return Ok(c.clone());
            }
        }
        let connect = self.client.endpoint.connect(self.addr.clone(), ALPN);
        let conn = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                return Err(self.unavailable(format!(
                    "cannot connect: {e} (is `trove node run` running there, and are the ticket's addresses right?)"
                )))
            }
            Err(_) => {
                return Err(self.unavailable(format!(
                    "no answer within {}s (is the node running and reachable?)",
                    CONNECT_TIMEOUT.as_secs()
                )))
            }
        };
        *guard = Some(conn.clone());
        Ok(conn)
    }

    /// Send a request (and body), read the response frame; the stream is
    /// returned for responses that carry raw bytes.
    async fn exchange(
        &self,
        req: &Request,
        body: Body<'_>,
    ) -> Result<(Response, RecvStream), PeerError> {
        let (resp, recv) = self.exchange_any(req, body).await?;
        if let Response::Error { kind, message } = resp {
            return Err(self.refused(kind, message));
        }
        Ok((resp, recv))
    }

    /// [`NodePeer::exchange`], with the node's refusals as answers.
    async fn exchange_any(
        &self,
        req: &Request,
        body: Body<'_>,
    ) -> Result<(Response, RecvStream), PeerError> {
        let conn = self.connection().await?;
        let lost = |e: &dyn std::fmt::Display| self.unavailable(format!("connection lost: {e}"));
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| lost(&e))?;
        proto::write_msg(&mut send, req)
            .await
            .map_err(|e| lost(&e))?;
        for b in body.unwrap_or_default() {
            if let Err(e) = send.write_all(b).await {
                // The node may have refused before reading it all (an owner
                // it does not know): its answer says why.
                return match tokio::time::timeout(
                    Duration::from_secs(2),
                    proto::read_response(&mut recv, MAX_RESPONSE_FRAME),
                )
                .await
                {
                    Ok(Ok(Response::Error { kind, message })) => Err(self.refused(kind, message)),
                    _ => Err(lost(&e)),
                };
            }
        }
        send.finish().map_err(|e| lost(&e))?;
        let resp: Response = proto::read_response(&mut recv, MAX_RESPONSE_FRAME)
            .await
            .map_err(|e| match e {
                proto::WireError::Io(io) => lost(&io),
                other => PeerError::Corrupt {
                    peer: self.label.clone(),
                    what: format!("the node sent a bad answer: {other}"),
                },
            })?;
        Ok((resp, recv))
    }

    fn refused(&self, kind: ErrorKind, message: String) -> PeerError {
        let peer = self.label.clone();
        match kind {
            ErrorKind::NotFound => PeerError::NotFound {
                peer,
                what: message,
            },
            ErrorKind::NotGranted => PeerError::Refused {
                peer,
                reason: format!(
                    "{message}; give the node's operator your owner id (`trove whoami`) and ask them to run `trove node grant OWNER_ID --quota SIZE`"
                ),
            },
            ErrorKind::QuotaExceeded | ErrorKind::NodeFull => {
                tracing::warn!(peer = %peer, "{message}");
                PeerError::Full { peer }
            }
            // Another peer takes the fragment; the message names the
            // figures and what to do.
            ErrorKind::NotReciprocal => {
                tracing::warn!(peer = %peer, "{message}");
                PeerError::Refused {
                    peer,
                    reason: message,
                }
            }
            ErrorKind::HashMismatch => PeerError::Corrupt {
                peer,
                what: format!("the node refused a put: {message}"),
            },
            ErrorKind::BadRequest | ErrorKind::Internal | ErrorKind::NotHeir => PeerError::Refused {
                peer,
                reason: message,
            },
        }
    }

    /// Run one call on the shared runtime, bounded in time; a node found
    /// unreachable is skipped for a while.
    fn call<T>(
        &self,
        bytes: u64,
        f: impl std::future::Future<Output = Result<T, PeerError>>,
    ) -> Result<T, PeerError> {
        if let Some(until) = *self.down_until.lock().unwrap_or_else(|p| p.into_inner()) {
            if Instant::now() < until {
                return Err(self.unavailable("unreachable a moment ago; not retried yet"));
            }
        }
        let limit = REQUEST_BASE + PER_MIB * u32::try_from(bytes >> 20).unwrap_or(u32::MAX);
        let r = self.client.rt.block_on(async {
            match tokio::time::timeout(limit, f).await {
                Ok(r) => r,
                Err(_) => Err(self.unavailable(format!("no answer within {}s", limit.as_secs()))),
            }
        });
        let mut down = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
        let reconnect = match &r {
            Err(PeerError::Unavailable { .. }) => {
                *down = Some(Instant::now() + DOWN_FOR);
                true
            }
            // A node closes the connection of an owner it refuses.
            Err(PeerError::Refused { .. }) => {
                *down = None;
                true
            }
            _ => {
                *down = None;
                false
            }
        };
        if reconnect {
            // The next call connects from scratch.
            if let Ok(mut c) = self.conn.try_lock() {
                *c = None;
            }
        }
        r
    }

    fn unexpected(&self, r: &Response) -> PeerError {
        PeerError::Corrupt {
            peer: self.label.clone(),
            what: format!("the node answered out of turn: {r:?}"),
        }
    }

    async fn read_data(
        &self,
        resp: Response,
        recv: RecvStream,
        max: u64,
    ) -> Result<Vec<u8>, PeerError> {
        let mut buf = Vec::new();
        self.read_data_into(resp, recv, max, &mut buf).await?;
        Ok(buf)
    }

    /// [`Self::read_data`] into `buf` (its contents replaced).
    async fn read_data_into(
        &self,
        resp: Response,
        mut recv: RecvStream,
        max: u64,
        buf: &mut Vec<u8>,
    ) -> Result<(), PeerError> {
        let Response::Data { len } = resp else {
            return Err(self.unexpected(&resp));
        };
        if len > max {
            return Err(PeerError::Corrupt {
                peer: self.label.clone(),
                what: format!("the node announced {len} bytes, more than asked"),
            });
        }
        buf.clear();
        // Exactly: see the folder peer's `get_fragment_into`.
        buf.reserve_exact(len as usize);
        (&mut recv)
            .take(len)
            .read_to_end(buf)
            .await
            .map_err(|e| self.unavailable(format!("connection lost mid-transfer: {e}")))?;
        if (buf.len() as u64) < len {
            return Err(
                self.unavailable(format!("transfer cut short ({} of {len} bytes)", buf.len()))
            );
        }
        Ok(())
    }

    /// Say hello: checks the grant and returns (quota, used).
    pub fn hello(&self) -> Result<(u64, u64), PeerError> {
        self.greet().map(|h| (h.quota, h.used))
    }

    /// Say hello: checks the grant and returns all the node says.
    pub fn greet(&self) -> Result<NodeHello, PeerError> {
        self.call(0, async {
            let req = Request::Hello {
                client: format!("trove {}", env!("CARGO_PKG_VERSION")),
            };
            match self.exchange(&req, None).await? {
                (
                    Response::Hello {
                        node,
                        quota,
                        used,
                        operator,
                    },
                    _,
                ) => Ok(NodeHello {
                    node,
                    quota,
                    used,
                    operator,
                }),
                (r, _) => Err(self.unexpected(&r)),
            }
        })
    }

    fn expect_ok(&self, req: Request, body: Body<'_>) -> Result<(), PeerError> {
        let n = body.map_or(0, body_len);
        self.call(n, async {
            match self.exchange(&req, body).await? {
                (Response::Ok, _) => Ok(()),
                (r, _) => Err(self.unexpected(&r)),
            }
        })
    }
}

impl Peer for NodePeer {
    fn describe(&self) -> String {
        self.label.clone()
    }

    fn put_fragment(&self, id: &FragmentId, bytes: &[u8]) -> Result<(), PeerError> {
        self.put_fragment_parts(id, &[bytes])
    }

    fn put_fragment_parts(&self, id: &FragmentId, parts: &[&[u8]]) -> Result<(), PeerError> {
        PeerError::check_fragment_parts(&self.label, id, parts)?;
        self.put_unchecked_parts(id, parts)
    }

    fn get_fragment(&self, id: &FragmentId) -> Result<Vec<u8>, PeerError> {
        let mut buf = Vec::new();
        self.get_fragment_into(id, &mut buf)?;
        Ok(buf)
    }

    fn get_fragment_into(&self, id: &FragmentId, buf: &mut Vec<u8>) -> Result<(), PeerError> {
        self.call(16, async {
            let req = Request::Get {
                id: *id,
                offset: 0,
                len: None,
            };
            let (resp, recv) = self.exchange(&req, None).await?;
            self.read_data_into(resp, recv, proto::MAX_FRAGMENT_LEN, buf)
                .await
        })
    }

    fn get_fragment_range(
        &self,
        id: &FragmentId,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, PeerError> {
        self.call(len, async {
            let req = Request::Get {
                id: *id,
                offset,
                len: Some(len),
            };
            let (resp, recv) = self.exchange(&req, None).await?;
            self.read_data(resp, recv, len).await
        })
    }

    fn has_fragment(&self, id: &FragmentId) -> Result<bool, PeerError> {
        self.call(0, async {
            match self.exchange(&Request::Has { id: *id }, None).await? {
                (Response::Has(h), _) => Ok(h),
                (r, _) => Err(self.unexpected(&r)),
            }
        })
    }

    fn list_fragments(&self) -> Result<Vec<FragmentId>, PeerError> {
        self.call(64, async {
            let (resp, mut recv) = self.exchange(&Request::List, None).await?;
            let Response::Ids { count } = resp else {
                return Err(self.unexpected(&resp));
            };
            let mut buf = Vec::new();
            (&mut recv)
                .take(count.saturating_mul(32))
                .read_to_end(&mut buf)
                .await
                .map_err(|e| self.unavailable(format!("connection lost: {e}")))?;
            if buf.len() as u64 != count.saturating_mul(32) {
                return Err(self.unavailable("fragment list cut short"));
            }
            Ok(buf
                .chunks_exact(32)
                .map(|c| FragmentId(c.try_into().unwrap_or([0; 32])))
                .collect())
        })
    }

    fn delete_fragment(&self, id: &FragmentId) -> Result<(), PeerError> {
        self.expect_ok(Request::Delete { id: *id }, None)
    }

    fn undelete_fragment(&self, id: &FragmentId) -> Result<bool, PeerError> {
        self.call(0, async {
            match self
                .exchange(&Request::UndeleteFragment { id: *id }, None)
                .await?
            {
                (Response::Undeleted(back), _) => Ok(back),
                (r, _) => Err(self.unexpected(&r)),
            }
        })
    }

    fn put_meta(&self, key: &MetaKey, bytes: &[u8]) -> Result<(), PeerError> {
        let req = Request::PutMeta {
            key: *key,
            len: bytes.len() as u64,
        };
        self.call(bytes.len() as u64, async {
            match self.exchange(&req, Some(&[bytes])).await? {
                (Response::Ok, _) => Ok(()),
                (Response::MetaRejected(reason), _) => Err(PeerError::MetaRejected {
                    peer: self.label.clone(),
                    key: *key,
                    reason: Box::new(reason),
                }),
                (r, _) => Err(self.unexpected(&r)),
            }
        })
    }

    fn delete_meta(&self, key: &MetaKey) -> Result<(), PeerError> {
        self.expect_ok(Request::DeleteMeta { key: *key }, None)
    }

    fn list_deleted_meta(
        &self,
        container: Option<&ContainerId>,
    ) -> Result<Vec<DeletedMeta>, PeerError> {
        self.call(0, async {
            let req = Request::ListDeletedMeta {
                container: container.copied(),
            };
            match self.exchange(&req, None).await? {
                (Response::DeletedMeta(d), _) => Ok(d),
                (r, _) => Err(self.unexpected(&r)),
            }
        })
    }

    fn get_deleted_meta(&self, key: &MetaKey) -> Result<Vec<u8>, PeerError> {
        self.call(16, async {
            let (resp, recv) = self
                .exchange(&Request::GetDeletedMeta { key: *key }, None)
                .await?;
            self.read_data(resp, recv, proto::MAX_META_LEN).await
        })
    }

    fn get_meta(&self, key: &MetaKey) -> Result<Vec<u8>, PeerError> {
        self.call(16, async {
            let (resp, recv) = self.exchange(&Request::GetMeta { key: *key }, None).await?;
            self.read_data(resp, recv, proto::MAX_META_LEN).await
        })
    }

    fn list_meta(&self, container: Option<&ContainerId>) -> Result<Vec<MetaKey>, PeerError> {
        self.call(0, async {
            let req = Request::ListMeta {
                container: container.copied(),
            };
            match self.exchange(&req, None).await? {
                (Response::MetaKeys(k), _) => Ok(k),
                (r, _) => Err(self.unexpected(&r)),
            }
        })
    }

    fn stat(&self) -> Result<PeerStat, PeerError> {
        self.call(0, async {
            match self.exchange(&Request::Stat, None).await? {
                (
                    Response::Stat {
                        fragments,
                        fragment_bytes,
                        free_bytes,
                    },
                    _,
                ) => Ok(PeerStat {
                    fragments,
                    fragment_bytes,
                    free_bytes,
                }),
                (r, _) => Err(self.unexpected(&r)),
            }
        })
    }
    fn hand_over(&self, cert: &HandOver) -> Result<(), PeerError> {
        let cert = cert.encode();
        self.expect_ok(Request::HandOver { cert }, None)
    }

    fn audit_fragment(
        &self,
        id: &FragmentId,
        ranges: &[AuditRange],
    ) -> Result<Vec<Vec<u8>>, PeerError> {
        self.call(1, async {
            let req = Request::Audit {
                id: *id,
                ranges: ranges.to_vec(),
            };
            match self.exchange(&req, None).await? {
                (Response::Proofs(p), _) if p.len() == ranges.len() => Ok(p),
                (r, _) => Err(self.unexpected(&r)),
            }
        })
    }
}

impl NodePeer {
    /// A put without the local hash check, so tests can show that the node
    /// refuses bytes that do not match their id.
    #[doc(hidden)]
    pub fn put_unchecked(&self, id: &FragmentId, bytes: &[u8]) -> Result<(), PeerError> {
        self.put_unchecked_parts(id, &[bytes])
    }

    fn put_unchecked_parts(&self, id: &FragmentId, parts: &[&[u8]]) -> Result<(), PeerError> {
        let len = body_len(parts);
        self.expect_ok(Request::Put { id: *id, len }, Some(parts))
    }
}
