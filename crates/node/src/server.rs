//! The node server: accept owners' connections and serve their requests
//! from their own namespace, one request per QUIC stream, one handler per
//! request kind. Inheritance requests are served by `server/inherit.rs`.

mod inherit;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iroh::endpoint::{Connection, RecvStream, SendStream};
use iroh::Endpoint;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tracing::{debug, info, warn};
use trove_core::handover::HandOver;
use trove_core::FragmentId;
use trove_peer::audit::{AuditRange, MAX_AUDIT_RANGES, MAX_AUDIT_RANGE_LEN};
use trove_peer::{MetaKey, MetaStored, Peer, PeerError};

use crate::error::NodeError;
use crate::ledger::{Ledger, Reciprocity};
use crate::network::{NetworkConfig, NetworkMode, NodeTicket};
use crate::proto::{
    self, ErrorKind, Request, Response, WireError, ALPN, MAX_FRAGMENT_LEN, MAX_META_LEN,
    MAX_REQUEST_FRAME,
};
use crate::store::{Grant, HandOverRefusal, NodeDir, NodeStore, OwnerId, OwnerSpace, Refusal};

/// How a node is started.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    pub data: PathBuf,
    pub listen: Option<SocketAddr>,
    pub capacity: Option<u64>,
    pub grace: Duration,
    pub network: NetworkConfig,
    /// A request that takes longer (a stalled owner) is dropped, and what it
    /// reserved and wrote is given back: [`DEFAULT_REQUEST_LIMIT`].
    pub request_limit: Duration,
    /// The operator's own owner id (`--operator`): written to the data
    /// folder, so later runs keep it, and told to owners in `Hello`.
    pub operator: Option<OwnerId>,
    /// Refuse new fragments of owners past what they give plus an
    /// allowance (`--reciprocal`, see [`crate::ledger`]).
    pub reciprocity: Option<Reciprocity>,
}

/// How often the trash is purged and dropped transfers are cleaned up.
const PURGE_EVERY: Duration = Duration::from_secs(600);
/// How long one request may take by default (see [`NodeOptions::request_limit`]).
pub const DEFAULT_REQUEST_LIMIT: Duration = Duration::from_secs(600);
/// Bytes per read when streaming a fragment out.
const STREAM_BUF: usize = 256 * 1024;
/// An owner the node refuses is logged at most this often.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(600);
/// How long a caller the node has not granted has to send its request
/// frame (an heir's request; anything else is refused).
const UNGRANTED_READ: Duration = Duration::from_secs(10);
/// Connection close code after a refusal (2 is a malformed request).
const CLOSE_NOT_GRANTED: u32 = 3;
/// How often the node's observations are written to `ledger.json` (and
/// at shutdown): a killed node loses at most this much of them.
const LEDGER_FLUSH_EVERY: Duration = Duration::from_secs(60);
/// Metadata objects are received whole into memory to be checked; all
/// owners' puts in flight together may hold at most this much (a granted
/// owner opening a hundred streams of 256 MiB each waits, the node does
/// not run out of memory).
const META_MEMORY: usize = 2 * MAX_META_LEN as usize;

/// A started node: its endpoint and ticket.
#[derive(Debug)]
pub struct RunningNode {
    pub endpoint: Endpoint,
    pub ticket: NodeTicket,
    server: Arc<Server>,
}

/// What every connection of a running node shares.
#[derive(Debug)]
struct Server {
    store: Arc<NodeStore>,
    request_limit: Duration,
    /// Bytes of metadata puts held in memory (see [`META_MEMORY`]).
    meta_memory: tokio::sync::Semaphore,
    /// When each refused owner was last logged.
    refusals_logged: Mutex<HashMap<OwnerId, Instant>>,
    /// The operator's own owner id, if named.
    operator: Option<OwnerId>,
    reciprocity: Option<Reciprocity>,
    /// The node's observations, written to `ledger.json` when changed.
    ledger: Mutex<(Ledger, bool)>,
    /// Held while an escrow is read, changed and written.
    escrow_turn: Mutex<()>,
}

impl Server {
    /// Log a refused owner, at most once per [`REFUSAL_LOG_EVERY`]: a client
    /// that keeps knocking must not fill the operator's log.
    fn log_refusal(&self, owner: &OwnerId) {
        let mut logged = self
            .refusals_logged
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if logged
            .get(owner)
            .is_some_and(|t| now.duration_since(*t) < REFUSAL_LOG_EVERY)
        {
            return;
        }
        logged.insert(*owner, now);
        warn!(owner = %owner, "refused an owner this node has not granted (grant it with `trove node grant {owner} --quota SIZE`); further refusals of it are not logged for 10 minutes");
    }

    /// Count a request of a granted owner (in memory; see [`Server::flush_ledger`]).
    fn observe(&self, owner: OwnerId) {
        let mut l = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        l.0.observe(owner, now_unix());
        l.1 = true;
    }

    /// When `owner` last made an authenticated request here (the ledger's
    /// observation: kept across restarts, to within its flush interval).
    fn owner_seen(&self, owner: &OwnerId) -> Option<u64> {
        let l = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        l.0.owners.get(owner).map(|r| r.last_seen_unix)
    }

    /// Write `ledger.json` if it changed, with each owner's bytes as now.
    fn flush_ledger(&self) {
        let snapshot = {
            let mut l = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
            if !l.1 {
                return;
            }
            l.1 = false;
            for (owner, r) in &mut l.0.owners {
                if let Some(used) = self.store.used_of(owner) {
                    r.stored_bytes = used;
                }
            }
            l.0.clone()
        };
        if let Err(e) = self.store.dir.save_ledger(&snapshot) {
            warn!(error = %e, "writing the reciprocity ledger failed; retried later");
            self.ledger.lock().unwrap_or_else(|p| p.into_inner()).1 = true;
        }
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Open the data folder, bind the endpoint, write the ticket.
pub async fn start(opts: &NodeOptions) -> Result<RunningNode, NodeError> {
    let dir = NodeDir::open_or_create(&opts.data)?;
    if let Some(op) = &opts.operator {
        dir.set_operator(op)?;
    }
    let operator = dir.operator()?;
    // Written at once, so `trove node status` knows the rule in force.
    let mut ledger = dir.ledger()?;
    ledger.reciprocity = opts.reciprocity;
    dir.save_ledger(&ledger)?;
    if let Some(r) = &opts.reciprocity {
        if operator.is_none() {
            warn!("--reciprocal without an operator: owners cannot learn whom to give space to; start with --operator OWNER_ID (your `trove whoami`)");
        }
        info!(
            allowance = r.allowance,
            "reciprocity: new fragments of an owner past what it gives plus the allowance are refused"
        );
    }
    let store = Arc::new(NodeStore::open(dir.clone(), opts.capacity, opts.grace)?);
    let mut net = opts.network.clone();
    if opts.listen.is_some() {
        net.bind = opts.listen;
    }
    let endpoint = net
        .bind(dir.secret_key()?, vec![ALPN.to_vec()], true)
        .await?;
    let ticket = ticket_of(&endpoint, &net).await;
    dir.write_ticket(&ticket.to_string())?;
    info!(
        node = %ticket.node_hex(),
        addrs = ?ticket.addrs,
        relay = ?ticket.relay,
        data = %opts.data.display(),
        "node listening; ticket written to {}",
        opts.data.join("ticket").display()
    );
    Ok(RunningNode {
        endpoint,
        ticket,
        server: Arc::new(Server {
            store,
            request_limit: opts.request_limit,
            meta_memory: tokio::sync::Semaphore::new(META_MEMORY),
            refusals_logged: Mutex::new(HashMap::new()),
            operator,
            reciprocity: opts.reciprocity,
            ledger: Mutex::new((ledger, false)),
            escrow_turn: Mutex::new(()),
        }),
    })
}

/// The ticket to hand out: bound addresses when bound to one address, the
/// interface addresses (and home relay, online) otherwise.
async fn ticket_of(endpoint: &Endpoint, net: &NetworkConfig) -> NodeTicket {
    if let Some(b) = net.bind.filter(|b| !b.ip().is_unspecified()) {
        let mut addrs: Vec<SocketAddr> = endpoint.bound_sockets();
        addrs.retain(|a| a.ip() == b.ip());
        return NodeTicket {
            node: *endpoint.id().as_bytes(),
            addrs,
            relay: None,
        };
    }
    if net.mode == NetworkMode::Internet {
        let _ = tokio::time::timeout(Duration::from_secs(5), endpoint.online()).await;
    }
    for _ in 0..30 {
        if endpoint.addr().ip_addrs().next().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    NodeTicket::of(&endpoint.addr())
}

impl RunningNode {
    /// Serve until `shutdown` completes.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()>) {
        let store = self.server.store.clone();
        let purger = tokio::spawn(async move {
            loop {
                let s = store.clone();
                let _ = tokio::task::spawn_blocking(move || s.purge_expired()).await;
                tokio::time::sleep(PURGE_EVERY).await;
            }
        });
        let server = self.server.clone();
        let flusher = tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEDGER_FLUSH_EVERY).await;
                let s = server.clone();
                let _ = tokio::task::spawn_blocking(move || s.flush_ledger()).await;
            }
        });
        let accept = async {
            while let Some(incoming) = self.endpoint.accept().await {
                let server = self.server.clone();
                tokio::spawn(async move {
                    match incoming.await {
                        Ok(conn) => serve_connection(server, conn).await,
                        Err(e) => debug!(error = %e, "incoming connection failed"),
                    }
                });
            }
        };
        tokio::select! {
            _ = accept => {}
            _ = shutdown => info!("shutting down"),
        }
        purger.abort();
        flusher.abort();
        self.endpoint.close().await;
        let server = self.server.clone();
        let _ = tokio::task::spawn_blocking(move || server.flush_ledger()).await;
    }
}

async fn serve_connection(server: Arc<Server>, conn: Connection) {
    let owner = OwnerId(*conn.remote_id().as_bytes());
    debug!(owner = %owner.short(), "owner connected");
    loop {
        let (send, recv) = match conn.accept_bi().await {
            Ok(s) => s,
            Err(e) => {
                debug!(owner = %owner.short(), reason = %e, "connection closed");
                return;
            }
        };
        let server = server.clone();
        let conn = conn.clone();
        tokio::spawn(async move {
            let served = tokio::time::timeout(
                server.request_limit,
                serve_stream(&server, owner, send, recv),
            )
            .await;
            match served {
                Ok(Ok(Served::Answered)) => {}
                Ok(Ok(Served::NotGranted)) => {
                    // Nothing more is read from an owner the node does not
                    // serve: it learns why, then the connection is closed.
                    conn.close(CLOSE_NOT_GRANTED.into(), b"not granted");
                }
                Ok(Err(StreamError::Protocol(e))) => {
                    // Malformed or oversized: drop this owner's connection,
                    // keep serving everyone else.
                    warn!(owner = %owner.short(), error = %e, "bad request; dropping the connection");
                    conn.close(2u32.into(), b"malformed request");
                }
                Ok(Err(e)) => {
                    debug!(owner = %owner.short(), error = %e, "transfer broke off");
                }
                Err(_) => warn!(owner = %owner.short(), "request took too long; dropped"),
            }
        });
    }
}

#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error("{0}")]
    Protocol(WireError),
    #[error("{0}")]
    Transfer(String),
    #[error("the node's disk is full")]
    DiskFull,
}

impl From<WireError> for StreamError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Io(io) => StreamError::Transfer(io.to_string()),
            other => StreamError::Protocol(other),
        }
    }
}

fn transfer(e: impl std::fmt::Display) -> StreamError {
    StreamError::Transfer(e.to_string())
}

/// How a stream ended.
#[derive(Debug)]
enum Served {
    Answered,
    /// The owner is not granted: the connection is to be closed.
    NotGranted,
}

fn err(kind: ErrorKind, message: impl Into<String>) -> Response {
    Response::Error {
        kind,
        message: message.into(),
    }
}

fn peer_err(e: &PeerError) -> Response {
    match e {
        PeerError::NotFound { what, .. } => err(ErrorKind::NotFound, format!("{what} is not here")),
        PeerError::Full { .. } => err(ErrorKind::NodeFull, "the node's disk is full"),
        PeerError::HashMismatch { .. } => err(ErrorKind::HashMismatch, "bytes do not match the id"),
        PeerError::MetaRejected { reason, .. } => Response::MetaRejected((**reason).clone()),
        other => {
            warn!(error = %other, "storage error");
            err(
                ErrorKind::Internal,
                "the node had a storage error (see its log)",
            )
        }
    }
}

/// What a handler answers: a message, a message followed by raw bytes, or
/// nothing more (it answered on the stream itself).
enum Reply {
    Msg(Response),
    Bytes(Response, Vec<u8>),
    Sent,
}

impl From<Response> for Reply {
    fn from(r: Response) -> Self {
        Reply::Msg(r)
    }
}

async fn reply(send: &mut SendStream, r: &Response) -> Result<(), StreamError> {
    proto::write_msg(send, r).await?;
    send.finish().map_err(transfer)?;
    Ok(())
}

/// A response frame followed by raw bytes.
async fn reply_with_bytes(
    send: &mut SendStream,
    r: &Response,
    bytes: &[u8],
) -> Result<(), StreamError> {
    proto::write_msg(send, r).await?;
    send.write_all(bytes).await.map_err(transfer)?;
    send.finish().map_err(transfer)?;
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StreamError> {
    tokio::task::spawn_blocking(f).await.map_err(transfer)
}

/// Run a blocking call on the owner's folder and turn its error into the
/// answer the owner gets.
async fn on_folder<T: Send + 'static>(
    space: &Arc<OwnerSpace>,
    f: impl FnOnce(&OwnerSpace) -> Result<T, PeerError> + Send + 'static,
) -> Result<Result<T, Response>, StreamError> {
    let s = space.clone();
    Ok(blocking(move || f(&s)).await?.map_err(|e| peer_err(&e)))
}

/// One request on its own stream: check the grant before reading anything,
/// then dispatch to its handler.
async fn serve_stream(
    server: &Arc<Server>,
    owner: OwnerId,
    mut send: SendStream,
    mut recv: RecvStream,
) -> Result<Served, StreamError> {
    let store = &server.store;
    let grant = match store.grant_of(&owner) {
        Ok(Some(g)) => g,
        Ok(None) => {
            // An heir need not be granted: read the request frame (bounded
            // in size and time, never what follows it) and serve only the
            // heir's requests.
            let req = tokio::time::timeout(
                UNGRANTED_READ,
                proto::read_msg::<_, Request>(&mut recv, MAX_REQUEST_FRAME),
            )
            .await;
            if let Ok(Ok(req)) = req {
                if req.is_heirs() {
                    let s = Arc::clone(server);
                    let answer = blocking(move || inherit::serve(&s, owner, req)).await?;
                    reply(&mut send, &answer).await?;
                    return Ok(Served::Answered);
                }
            }
            server.log_refusal(&owner);
            // Read nothing more and tell the owner to stop sending; it
            // still reads the answer.
            let _ = recv.stop(0u32.into());
            reply(
                &mut send,
                &err(
                    ErrorKind::NotGranted,
                    format!("this node has not granted owner {owner}"),
                ),
            )
            .await?;
            let _ = tokio::time::timeout(Duration::from_secs(5), send.stopped()).await;
            return Ok(Served::NotGranted);
        }
        Err(e) => {
            warn!(error = %e, "reading grants failed");
            reply(
                &mut send,
                &err(ErrorKind::Internal, "the node cannot read its grants"),
            )
            .await?;
            return Ok(Served::Answered);
        }
    };
    server.observe(owner);
    let req: Request = proto::read_msg(&mut recv, MAX_REQUEST_FRAME).await?;
    let space = match store.space(&owner) {
        Ok(s) => s,
        Err(e) => {
            warn!(owner = %owner.short(), error = %e, "cannot open the owner's space");
            reply(
                &mut send,
                &err(ErrorKind::Internal, "the node cannot open its storage"),
            )
            .await?;
            return Ok(Served::Answered);
        }
    };
    let cx = Ctx {
        store,
        space: &space,
        grant: &grant,
        meta_memory: &server.meta_memory,
        operator: server.operator,
        reciprocity: server.reciprocity,
    };
    let answer = match req {
        Request::Hello { client } => cx.hello(client).into(),
        Request::Put { id, len } => cx.put(id, len, &mut send, &mut recv).await?,
        Request::Get { id, offset, len } => cx.get(id, offset, len, &mut send).await?,
        Request::Has { id } => cx.has(id).await?,
        Request::List => cx.list().await?,
        Request::Delete { id } => cx.delete(id).await?,
        Request::PutMeta { key, len } => cx.put_meta(key, len, &mut recv).await?,
        Request::GetMeta { key } => cx.get_meta(key).await?,
        Request::ListMeta { container } => {
            match on_folder(&space, move |s| s.folder.list_meta(container.as_ref())).await? {
                Ok(keys) => Response::MetaKeys(keys).into(),
                Err(r) => r.into(),
            }
        }
        Request::Stat => cx.stat().await?,
        Request::Audit { id, ranges } => cx.audit(id, ranges).await?,
        Request::DeleteMeta { key } => cx.delete_meta(key).await?,
        Request::ListDeletedMeta { container } => {
            match on_folder(&space, move |s| {
                s.folder.list_deleted_meta(container.as_ref())
            })
            .await?
            {
                Ok(d) => Response::DeletedMeta(d).into(),
                Err(r) => r.into(),
            }
        }
        Request::UndeleteFragment { id } => cx.undelete(id).await?,
        req @ (Request::EscrowPut { .. }
        | Request::EscrowDelete
        | Request::EscrowVeto
        | Request::EscrowStatus
        | Request::InheritClaim { .. }
        | Request::InheritStatus { .. }
        | Request::InheritCollect { .. }) => {
            let s = Arc::clone(server);
            blocking(move || inherit::serve(&s, owner, req))
                .await?
                .into()
        }
        Request::HandOver { cert } => {
            let store = Arc::clone(store);
            blocking(move || hand_over(&store, owner, &cert))
                .await?
                .into()
        }
        Request::GetDeletedMeta { key } => {
            match on_folder(&space, move |s| s.folder.get_deleted_meta(&key)).await? {
                Ok(bytes) => data(bytes),
                Err(r) => r.into(),
            }
        }
    };
    match answer {
        Reply::Msg(r) => reply(&mut send, &r).await?,
        Reply::Bytes(r, bytes) => reply_with_bytes(&mut send, &r, &bytes).await?,
        Reply::Sent => {}
    }
    Ok(Served::Answered)
}

/// Serve a hand-over (blocking: file I/O).
fn hand_over(store: &NodeStore, caller: OwnerId, cert: &[u8]) -> Response {
    let cert = match HandOver::decode(cert) {
        Ok(c) => c,
        Err(e) => return err(ErrorKind::BadRequest, e.to_string()),
    };
    match store.hand_over(&caller, &cert) {
        Ok(()) => Response::Ok,
        Err(HandOverRefusal::Refused(why)) => err(ErrorKind::BadRequest, why),
        Err(HandOverRefusal::Failed(e)) => {
            warn!(owner = %caller.short(), error = %e, "a hand-over failed");
            err(
                ErrorKind::Internal,
                "the node failed to store the hand-over (see its log); ask again",
            )
        }
    }
}

/// A `Data` answer carrying `bytes`.
fn data(bytes: Vec<u8>) -> Reply {
    let len = bytes.len() as u64;
    Reply::Bytes(Response::Data { len }, bytes)
}

/// What a granted request is served with.
struct Ctx<'a> {
    store: &'a Arc<NodeStore>,
    space: &'a Arc<OwnerSpace>,
    grant: &'a Grant,
    meta_memory: &'a tokio::sync::Semaphore,
    operator: Option<OwnerId>,
    reciprocity: Option<Reciprocity>,
}

/// The reciprocity figures of an owner's limit, for its refusal.
#[derive(Debug, Clone, Copy)]
struct ReciprocalLimit {
    given: u64,
    allowance: u64,
}

impl Ctx<'_> {
    fn hello(&self, client: String) -> Response {
        info!(owner = %self.space.owner.short(), client, "hello");
        Response::Hello {
            node: env!("CARGO_PKG_VERSION").into(),
            quota: self.grant.quota,
            used: self.space.used.load(Ordering::SeqCst),
            operator: self.operator,
        }
    }

    /// The most this owner may hold here once a new fragment is in: its
    /// quota, or less under reciprocity (what its nodes are proven to
    /// give the operator, from `proofs.json` as it is now, plus the
    /// allowance). The operator's own data is not limited by it.
    fn fragment_cap(&self) -> (u64, Option<ReciprocalLimit>) {
        let quota = self.grant.quota;
        let Some(rule) = self.reciprocity else {
            return (quota, None);
        };
        let owner = self.space.owner;
        if self.operator == Some(owner) {
            return (quota, None);
        }
        let given = match self.store.dir.proofs() {
            Ok(p) => p.given(&owner, now_unix()),
            Err(e) => {
                // Soft: an unreadable file proves nothing, and says so.
                warn!(error = %e, "reading proofs.json failed; counting no owner as giving anything");
                0
            }
        };
        let limit = ReciprocalLimit {
            given,
            allowance: rule.allowance,
        };
        (quota.min(rule.limit(given)), Some(limit))
    }

    async fn has(&self, id: FragmentId) -> Result<Reply, StreamError> {
        Ok(
            match on_folder(self.space, move |s| s.folder.has_fragment(&id)).await? {
                Ok(h) => Response::Has(h).into(),
                Err(r) => r.into(),
            },
        )
    }

    async fn list(&self) -> Result<Reply, StreamError> {
        Ok(
            match on_folder(self.space, |s| s.folder.list_fragments()).await? {
                Ok(ids) => {
                    let count = ids.len() as u64;
                    Reply::Bytes(
                        Response::Ids { count },
                        ids.iter().flat_map(|id| id.0).collect(),
                    )
                }
                Err(r) => r.into(),
            },
        )
    }

    /// Delayed deletion: the fragment moves to the trash, where it still
    /// counts against the owner's quota until the grace period ends.
    async fn delete(&self, id: FragmentId) -> Result<Reply, StreamError> {
        let owner = self.space.owner;
        Ok(
            match on_folder(self.space, move |s| s.folder.delete_fragment(&id)).await? {
                Ok(()) => {
                    info!(owner = %owner.short(), fragment = %id.short(), "deleted (kept for the grace period)");
                    Response::Ok.into()
                }
                Err(r) => r.into(),
            },
        )
    }

    /// Bring a fragment back from the trash (it counted against the quota
    /// there too, so the owner's usage does not change).
    async fn undelete(&self, id: FragmentId) -> Result<Reply, StreamError> {
        let owner = self.space.owner;
        Ok(
            match on_folder(self.space, move |s| s.folder.undelete_fragment(&id)).await? {
                Ok(back) => {
                    if back {
                        info!(owner = %owner.short(), fragment = %id.short(), "undeleted");
                    }
                    Response::Undeleted(back).into()
                }
                Err(r) => r.into(),
            },
        )
    }

    async fn delete_meta(&self, key: MetaKey) -> Result<Reply, StreamError> {
        let owner = self.space.owner;
        Ok(
            match on_folder(self.space, move |s| s.folder.delete_meta(&key)).await? {
                Ok(()) => {
                    info!(owner = %owner.short(), object = %key, "deleted metadata (kept for the grace period)");
                    Response::Ok.into()
                }
                Err(r) => r.into(),
            },
        )
    }

    async fn get_meta(&self, key: MetaKey) -> Result<Reply, StreamError> {
        Ok(
            match on_folder(self.space, move |s| s.folder.get_meta(&key)).await? {
                Ok(bytes) => data(bytes),
                Err(r) => r.into(),
            },
        )
    }

    async fn stat(&self) -> Result<Reply, StreamError> {
        let (s, st) = (self.space.clone(), self.store.clone());
        // Under reciprocity the room left is what new fragments may take,
        // so owners' placement favours other peers before being refused.
        let quota = self.fragment_cap().0;
        Ok(
            match blocking(move || st.stat(&s).map(|p| (p, st.free_for(&s, quota)))).await? {
                Ok((p, free)) => Response::Stat {
                    fragments: p.fragments,
                    fragment_bytes: p.fragment_bytes,
                    free_bytes: Some(free),
                }
                .into(),
                Err(e) => peer_err(&e).into(),
            },
        )
    }

    async fn audit(&self, id: FragmentId, ranges: Vec<AuditRange>) -> Result<Reply, StreamError> {
        if ranges.len() > MAX_AUDIT_RANGES || ranges.iter().any(|r| r.len > MAX_AUDIT_RANGE_LEN) {
            return Err(StreamError::Protocol(WireError::Malformed(
                "audit asks for too many or too long ranges".into(),
            )));
        }
        Ok(
            match on_folder(self.space, move |s| s.folder.audit_fragment(&id, &ranges)).await? {
                Ok(p) => Response::Proofs(p).into(),
                Err(r) => r.into(),
            },
        )
    }

    /// Store a metadata object if it is a valid envelope signed by the
    /// owner's identity (pinned at the first one accepted) that does not
    /// roll anything back; a replaced copy goes to the trash.
    async fn put_meta(
        &self,
        key: MetaKey,
        len: u64,
        recv: &mut RecvStream,
    ) -> Result<Reply, StreamError> {
        if len > MAX_META_LEN {
            return Ok(err(ErrorKind::BadRequest, "metadata object too large").into());
        }
        let reservation = match self.store.reserve(self.space, self.grant.quota, len) {
            Ok(r) => r,
            Err(r) => {
                drain(recv).await;
                return Ok(refusal(&self.space.owner, r).into());
            }
        };
        // `len` ≤ MAX_META_LEN, which fits a u32 and the semaphore.
        let _memory = self
            .meta_memory
            .acquire_many(len as u32)
            .await
            .map_err(transfer)?;
        let mut bytes = vec![0u8; len as usize];
        recv.read_exact(&mut bytes).await.map_err(transfer)?;
        let stored = on_folder(self.space, move |s| {
            let pinned = s.identity();
            let stored = s.folder.put_meta_as(&key, &bytes, pinned.as_ref())?;
            if pinned.is_none() {
                // Admitted, so a valid envelope: its signer is the owner's
                // identity from now on.
                let signer = trove_core::envelope::peek(&bytes)
                    .map_err(|e| PeerError::Corrupt {
                        peer: s.folder.describe(),
                        what: e.to_string(),
                    })?
                    .signer;
                s.pin_identity(signer).map_err(|e| PeerError::Io {
                    peer: s.folder.describe(),
                    op: "pinning the owner's identity",
                    source: std::io::Error::other(e.to_string()),
                })?;
            }
            Ok(stored)
        })
        .await?;
        Ok(match stored {
            Ok(MetaStored::Unchanged) => Response::Ok.into(),
            Ok(MetaStored::New | MetaStored::Replaced) => {
                reservation.keep();
                Response::Ok.into()
            }
            Err(r) => {
                if let Response::MetaRejected(why) = &r {
                    warn!(owner = %self.space.owner.short(), object = %key, reason = %why, "refused a metadata object");
                }
                r.into()
            }
        })
    }

    /// Receive a fragment into a temporary file while hashing it; only a
    /// whole, verified, fsynced fragment is renamed into place, so a node
    /// killed mid-transfer never serves half a fragment.
    async fn put(
        &self,
        id: FragmentId,
        len: u64,
        send: &mut SendStream,
        recv: &mut RecvStream,
    ) -> Result<Reply, StreamError> {
        let space = self.space;
        if len > MAX_FRAGMENT_LEN {
            return Err(StreamError::Protocol(WireError::Malformed(format!(
                "fragment of {len} bytes is over the limit"
            ))));
        }
        if space.folder.fragment_file(&id).exists() {
            // Already held: the owner retried. Hash what comes, keep nothing.
            return Ok(if receive_hashed(recv, len, None).await? == id {
                Response::Ok
            } else {
                err(ErrorKind::HashMismatch, "bytes do not match the id")
            }
            .into());
        }
        let (cap, reciprocal) = self.fragment_cap();
        let reservation = match self.store.reserve(space, cap, len) {
            Ok(r) => r,
            Err(r) => {
                let r = match (r, reciprocal) {
                    // The quota alone would have let it in.
                    (Refusal::Quota { used, .. }, Some(l))
                        if used.saturating_add(len) <= self.grant.quota =>
                    {
                        Refusal::Reciprocity {
                            used,
                            given: l.given,
                            allowance: l.allowance,
                        }
                    }
                    (r, _) => r,
                };
                drain(recv).await;
                return Ok(refusal(&space.owner, r).into());
            }
        };
        // Removed on every exit path, including a request dropped at its
        // time limit; once adopted it is gone already.
        let tmp = TmpFile(space.folder.new_tmp_path());
        let received = match private_file(&tmp.0).await {
            Ok(file) => receive_hashed(recv, len, Some(file)).await,
            Err(e) => Err(write_error(e)),
        };
        let answer = match received {
            Ok(hash) if hash == id => {
                let t = tmp.0.clone();
                match on_folder(space, move |s| s.folder.adopt_fragment(&id, &t)).await? {
                    Ok(true) => {
                        reservation.keep();
                        debug!(owner = %space.owner.short(), fragment = %id.short(), len, "stored");
                        Response::Ok
                    }
                    Ok(false) => Response::Ok,
                    Err(r) => r,
                }
            }
            Ok(_) => {
                warn!(owner = %space.owner.short(), fragment = %id.short(), "refused a put whose bytes do not match its id");
                err(
                    ErrorKind::HashMismatch,
                    "bytes do not match the id; nothing was stored",
                )
            }
            Err(StreamError::DiskFull) => err(ErrorKind::NodeFull, "the node's disk is full"),
            Err(e) => return Err(e),
        };
        drop(tmp);
        reply(send, &answer).await?;
        Ok(Reply::Sent)
    }

    async fn get(
        &self,
        id: FragmentId,
        offset: u64,
        len: Option<u64>,
        send: &mut SendStream,
    ) -> Result<Reply, StreamError> {
        let path = self.space.folder.fragment_file(&id);
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(err(
                    ErrorKind::NotFound,
                    format!("fragment {} is not here", id.short()),
                )
                .into())
            }
            Err(e) => {
                warn!(error = %e, path = %path.display(), "reading a fragment failed");
                return Ok(err(ErrorKind::Internal, "the node cannot read the fragment").into());
            }
        };
        let size = file.metadata().await.map_err(transfer)?.len();
        let n = size.saturating_sub(offset).min(len.unwrap_or(u64::MAX));
        file.seek(std::io::SeekFrom::Start(offset.min(size)))
            .await
            .map_err(transfer)?;
        proto::write_msg(send, &Response::Data { len: n }).await?;
        let mut reader = file.take(n);
        let mut buf = vec![0u8; STREAM_BUF];
        loop {
            let k = reader.read(&mut buf).await.map_err(transfer)?;
            if k == 0 {
                break;
            }
            send.write_all(&buf[..k]).await.map_err(transfer)?;
        }
        send.finish().map_err(transfer)?;
        Ok(Reply::Sent)
    }
}

/// A file in the owner's tmp folder, removed when dropped.
struct TmpFile(PathBuf);

impl Drop for TmpFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Create a private (0600) file for a transfer.
async fn private_file(path: &Path) -> std::io::Result<tokio::fs::File> {
    tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(trove_peer::durable::FILE_MODE)
        .open(path)
        .await
}

fn refusal(owner: &OwnerId, r: Refusal) -> Response {
    match r {
        Refusal::Quota { used, quota } => {
            info!(owner = %owner.short(), used, quota, "refused a put: quota used up");
            err(
                ErrorKind::QuotaExceeded,
                format!(
                    "the owner's quota of {quota} bytes is used up ({used} bytes stored or awaiting deletion)"
                ),
            )
        }
        Refusal::Full { detail } => {
            warn!(owner = %owner.short(), detail, "refused a put: node full");
            err(ErrorKind::NodeFull, format!("the node is full: {detail}"))
        }
        Refusal::Reciprocity {
            used,
            given,
            allowance,
        } => {
            info!(owner = %owner.short(), used, given, allowance, "refused a new fragment: reciprocity");
            err(
                ErrorKind::NotReciprocal,
                format!(
                    "this node takes new fragments of owner {owner} only up to what it gives this node's operator plus an allowance: it stores {used} bytes here, gives {given} bytes (proven by the operator's audits) and the allowance is {allowance} bytes; its data here stays readable. Next step: store data for this node's operator (grant them on a node you run with `--operator` set to your owner id), or ask the operator for a larger allowance"
                ),
            )
        }
    }
}

/// Read and discard what the owner still sends, so it sees our answer
/// instead of a reset stream.
async fn drain(recv: &mut RecvStream) {
    let mut sink = tokio::io::sink();
    let _ = tokio::time::timeout(Duration::from_secs(30), tokio::io::copy(recv, &mut sink)).await;
}

/// Read exactly `len` bytes of a put, hashing them and writing them to
/// `file` if given; the BLAKE3 of what arrived.
async fn receive_hashed(
    recv: &mut RecvStream,
    len: u64,
    mut file: Option<tokio::fs::File>,
) -> Result<FragmentId, StreamError> {
    let mut hasher = blake3::Hasher::new();
    let mut left = len;
    let mut buf = vec![0u8; STREAM_BUF];
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = recv.read(&mut buf[..want]).await.map_err(transfer)?;
        let Some(n) = n.filter(|&n| n > 0) else {
            return Err(transfer(format!("stream ended {left} bytes early")));
        };
        hasher.update(&buf[..n]);
        if let Some(f) = file.as_mut() {
            f.write_all(&buf[..n]).await.map_err(write_error)?;
        }
        left -= n as u64;
    }
    if let Some(f) = file.as_mut() {
        f.flush().await.map_err(write_error)?;
    }
    Ok(FragmentId(*hasher.finalize().as_bytes()))
}

/// A failed local write: a full disk is the owner's business (it places
/// elsewhere), anything else only ends this transfer.
fn write_error(e: std::io::Error) -> StreamError {
    match e.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
            StreamError::DiskFull
        }
        _ => transfer(e),
    }
}
