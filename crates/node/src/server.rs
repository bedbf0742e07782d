//! The node server: accept owners' connections and serve their requests
//! from their own namespace, one request per QUIC stream.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use iroh::endpoint::{Connection, RecvStream, SendStream};
use iroh::Endpoint;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tracing::{debug, info, warn};
use trove_core::FragmentId;
use trove_net::audit::{MAX_AUDIT_RANGES, MAX_AUDIT_RANGE_LEN};
use trove_net::{Peer, PeerError};

use crate::error::NodeError;
use crate::network::{NetworkConfig, NetworkMode, NodeTicket};
use crate::proto::{
    self, ErrorKind, Request, Response, WireError, ALPN, MAX_FRAGMENT_LEN, MAX_META_LEN,
    MAX_REQUEST_FRAME,
};
use crate::store::{NodeDir, NodeStore, OwnerId, OwnerSpace, Refusal};

/// How a node is started.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    pub data: PathBuf,
    pub listen: Option<SocketAddr>,
    pub capacity: Option<u64>,
    pub grace: Duration,
    pub network: NetworkConfig,
}

/// How often deleted fragments past their grace period are freed.
const PURGE_EVERY: Duration = Duration::from_secs(600);
/// A request that takes longer than this (a stalled owner) is dropped.
const REQUEST_LIMIT: Duration = Duration::from_secs(600);
/// Bytes per read when streaming a fragment out.
const STREAM_BUF: usize = 256 * 1024;

/// A started node: its endpoint and ticket.
#[derive(Debug)]
pub struct RunningNode {
    pub endpoint: Endpoint,
    pub ticket: NodeTicket,
    store: Arc<NodeStore>,
}

/// Open the data folder, bind the endpoint, write the ticket.
pub async fn start(opts: &NodeOptions) -> Result<RunningNode, NodeError> {
    let dir = NodeDir::open_or_create(&opts.data)?;
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
        store,
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
        let store = self.store.clone();
        let purger = tokio::spawn(async move {
            loop {
                let s = store.clone();
                let _ = tokio::task::spawn_blocking(move || s.purge_expired()).await;
                tokio::time::sleep(PURGE_EVERY).await;
            }
        });
        let accept = async {
            while let Some(incoming) = self.endpoint.accept().await {
                let store = self.store.clone();
                tokio::spawn(async move {
                    match incoming.await {
                        Ok(conn) => serve_connection(store, conn).await,
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
        self.endpoint.close().await;
    }
}

async fn serve_connection(store: Arc<NodeStore>, conn: Connection) {
    let owner = OwnerId(*conn.remote_id().as_bytes());
    match store.grant_of(&owner) {
        Ok(Some(_)) => debug!(owner = %owner.short(), "owner connected"),
        Ok(None) => {
            warn!(owner = %owner, "refused an owner this node has not granted (grant it with `trove node grant {owner} --quota SIZE`)")
        }
        Err(e) => warn!(error = %e, "reading grants failed"),
    }
    loop {
        let (send, recv) = match conn.accept_bi().await {
            Ok(s) => s,
            Err(e) => {
                debug!(owner = %owner.short(), reason = %e, "connection closed");
                return;
            }
        };
        let store = store.clone();
        let conn2 = conn.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(REQUEST_LIMIT, serve_stream(&store, owner, send, recv)).await
            {
                Ok(Ok(())) => {}
                Ok(Err(StreamError::Protocol(e))) => {
                    // Malformed or oversized: drop this owner's connection,
                    // keep serving everyone else.
                    warn!(owner = %owner.short(), error = %e, "bad request; dropping the connection");
                    conn2.close(2u32.into(), b"malformed request");
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
        other => {
            warn!(error = %other, "storage error");
            err(
                ErrorKind::Internal,
                "the node had a storage error (see its log)",
            )
        }
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

async fn serve_stream(
    store: &Arc<NodeStore>,
    owner: OwnerId,
    mut send: SendStream,
    mut recv: RecvStream,
) -> Result<(), StreamError> {
    let req: Request = proto::read_msg(&mut recv, MAX_REQUEST_FRAME).await?;
    let grant = match store.grant_of(&owner) {
        Ok(Some(g)) => g,
        Ok(None) => {
            warn!(owner = %owner, request = request_name(&req), "refused: owner not granted");
            return reply(
                &mut send,
                &err(
                    ErrorKind::NotGranted,
                    format!("this node has not granted owner {owner}"),
                ),
            )
            .await;
        }
        Err(e) => {
            warn!(error = %e, "reading grants failed");
            return reply(
                &mut send,
                &err(ErrorKind::Internal, "the node cannot read its grants"),
            )
            .await;
        }
    };
    let space = match store.space(&owner) {
        Ok(s) => s,
        Err(e) => {
            warn!(owner = %owner.short(), error = %e, "cannot open the owner's space");
            return reply(
                &mut send,
                &err(ErrorKind::Internal, "the node cannot open its storage"),
            )
            .await;
        }
    };
    let resp = match req {
        Request::Hello { client } => {
            info!(owner = %owner.short(), client, "hello");
            Response::Hello {
                node: env!("CARGO_PKG_VERSION").into(),
                quota: grant.quota,
                used: space.used.load(Ordering::SeqCst),
            }
        }
        Request::Put { id, len } => {
            return put(store, &space, grant.quota, id, len, send, recv).await;
        }
        Request::Get { id, offset, len } => return get(&space, id, offset, len, send).await,
        Request::Has { id } => {
            let s = space.clone();
            match blocking(move || s.folder.has_fragment(&id)).await? {
                Ok(h) => Response::Has(h),
                Err(e) => peer_err(&e),
            }
        }
        Request::List => {
            let s = space.clone();
            match blocking(move || s.folder.list_fragments()).await? {
                Ok(ids) => {
                    let count = ids.len() as u64;
                    let buf: Vec<u8> = ids.iter().flat_map(|id| id.0).collect();
                    return reply_with_bytes(&mut send, &Response::Ids { count }, &buf).await;
                }
                Err(e) => peer_err(&e),
            }
        }
        Request::Delete { id } => {
            let s = space.clone();
            let path = space.folder.fragment_file(&id);
            blocking(move || {
                let len = std::fs::metadata(&path).map(|m| m.len()).ok();
                match s.folder.delete_fragment(&id) {
                    Ok(()) => {
                        if let Some(len) = len {
                            // Still on disk (trash) until the grace period ends.
                            s.used.fetch_sub(len.min(s.used.load(Ordering::SeqCst)), Ordering::SeqCst);
                            info!(owner = %s.owner.short(), fragment = %id.short(), "deleted (kept for the grace period)");
                        }
                        Response::Ok
                    }
                    Err(e) => peer_err(&e),
                }
            })
            .await?
        }
        Request::PutMeta { key, len } => {
            if len > MAX_META_LEN {
                return reply(
                    &mut send,
                    &err(ErrorKind::BadRequest, "metadata object too large"),
                )
                .await;
            }
            let old = space
                .folder
                .get_meta(&key)
                .map(|b| b.len() as u64)
                .unwrap_or(0);
            let grow = len.saturating_sub(old);
            if let Err(r) = store.reserve(&space, grant.quota, grow) {
                drain(&mut recv).await;
                return reply(&mut send, &refusal(&owner, r)).await;
            }
            let mut bytes = vec![0u8; len as usize];
            if let Err(e) = recv.read_exact(&mut bytes).await {
                store.release(&space, grow);
                return Err(transfer(e));
            }
            let s = space.clone();
            match blocking(move || s.folder.put_meta(&key, &bytes)).await? {
                Ok(()) => {
                    if old > len {
                        store.release(&space, old - len);
                    }
                    Response::Ok
                }
                Err(e) => {
                    store.release(&space, grow);
                    peer_err(&e)
                }
            }
        }
        Request::GetMeta { key } => {
            let s = space.clone();
            match blocking(move || s.folder.get_meta(&key)).await? {
                Ok(bytes) => {
                    let len = bytes.len() as u64;
                    return reply_with_bytes(&mut send, &Response::Data { len }, &bytes).await;
                }
                Err(e) => peer_err(&e),
            }
        }
        Request::ListMeta { container } => {
            let s = space.clone();
            match blocking(move || s.folder.list_meta(container.as_ref())).await? {
                Ok(keys) => Response::MetaKeys(keys),
                Err(e) => peer_err(&e),
            }
        }
        Request::Stat => {
            let (s, st) = (space.clone(), store.clone());
            let quota = grant.quota;
            match blocking(move || st.stat(&s).map(|p| (p, st.free_for(&s, quota)))).await? {
                Ok((p, free)) => Response::Stat {
                    fragments: p.fragments,
                    fragment_bytes: p.fragment_bytes,
                    free_bytes: Some(free),
                },
                Err(e) => peer_err(&e),
            }
        }
        Request::Audit { id, ranges } => {
            if ranges.len() > MAX_AUDIT_RANGES || ranges.iter().any(|r| r.len > MAX_AUDIT_RANGE_LEN)
            {
                return Err(StreamError::Protocol(WireError::Malformed(
                    "audit asks for too many or too long ranges".into(),
                )));
            }
            let s = space.clone();
            match blocking(move || s.folder.audit_fragment(&id, &ranges)).await? {
                Ok(p) => Response::Proofs(p),
                Err(e) => peer_err(&e),
            }
        }
    };
    reply(&mut send, &resp).await
}

fn request_name(r: &Request) -> &'static str {
    match r {
        Request::Hello { .. } => "hello",
        Request::Put { .. } => "put",
        Request::Get { .. } => "get",
        Request::Has { .. } => "has",
        Request::List => "list",
        Request::Delete { .. } => "delete",
        Request::PutMeta { .. } => "put-meta",
        Request::GetMeta { .. } => "get-meta",
        Request::ListMeta { .. } => "list-meta",
        Request::Stat => "stat",
        Request::Audit { .. } => "audit",
    }
}

fn refusal(owner: &OwnerId, r: Refusal) -> Response {
    match r {
        Refusal::Quota { used, quota } => {
            info!(owner = %owner.short(), used, quota, "refused a put: quota used up");
            err(
                ErrorKind::QuotaExceeded,
                format!("the owner's quota of {quota} bytes is used up ({used} bytes stored)"),
            )
        }
        Refusal::Full { detail } => {
            warn!(owner = %owner.short(), detail, "refused a put: node full");
            err(ErrorKind::NodeFull, format!("the node is full: {detail}"))
        }
    }
}

/// Read and discard what the owner still sends, so it sees our answer
/// instead of a reset stream.
async fn drain(recv: &mut RecvStream) {
    let mut sink = tokio::io::sink();
    let _ = tokio::time::timeout(Duration::from_secs(30), tokio::io::copy(recv, &mut sink)).await;
}

/// Receive a fragment into a temporary file while hashing it; only a whole,
/// verified, fsynced fragment is renamed into place, so a node killed
/// mid-transfer never serves half a fragment.
async fn put(
    store: &Arc<NodeStore>,
    space: &Arc<OwnerSpace>,
    quota: u64,
    id: FragmentId,
    len: u64,
    mut send: SendStream,
    mut recv: RecvStream,
) -> Result<(), StreamError> {
    if len > MAX_FRAGMENT_LEN {
        return Err(StreamError::Protocol(WireError::Malformed(format!(
            "fragment of {len} bytes is over the limit"
        ))));
    }
    if space.folder.fragment_file(&id).exists() {
        // Already held: the owner retried. Hash what comes, keep nothing.
        let r = if receive_hashed(&mut recv, len, None).await? == id {
            Response::Ok
        } else {
            err(ErrorKind::HashMismatch, "bytes do not match the id")
        };
        return reply(&mut send, &r).await;
    }
    if let Err(r) = store.reserve(space, quota, len) {
        drain(&mut recv).await;
        return reply(&mut send, &refusal(&space.owner, r)).await;
    }
    let tmp = space.folder.new_tmp_path();
    let result = match tokio::fs::File::create(&tmp).await {
        Ok(file) => receive_hashed(&mut recv, len, Some(file)).await,
        Err(e) => Err(write_error(e)),
    };
    let outcome = match result {
        Ok(hash) if hash == id => {
            let (s, t) = (space.clone(), tmp.clone());
            match blocking(move || s.folder.adopt_fragment(&id, &t)).await? {
                Ok(true) => {
                    debug!(owner = %space.owner.short(), fragment = %id.short(), len, "stored");
                    Ok(Response::Ok)
                }
                Ok(false) => {
                    store.release(space, len);
                    Ok(Response::Ok)
                }
                Err(e) => {
                    store.release(space, len);
                    Ok(peer_err(&e))
                }
            }
        }
        Ok(_) => {
            store.release(space, len);
            warn!(owner = %space.owner.short(), fragment = %id.short(), "refused a put whose bytes do not match its id");
            Ok(err(
                ErrorKind::HashMismatch,
                "bytes do not match the id; nothing was stored",
            ))
        }
        Err(e) => {
            store.release(space, len);
            Err(e)
        }
    };
    let _ = tokio::fs::remove_file(&tmp).await;
    match outcome {
        Ok(r) => reply(&mut send, &r).await,
        Err(StreamError::DiskFull) => {
            reply(
                &mut send,
                &err(ErrorKind::NodeFull, "the node's disk is full"),
            )
            .await
        }
        Err(e) => Err(e),
    }
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

async fn get(
    space: &Arc<OwnerSpace>,
    id: FragmentId,
    offset: u64,
    len: Option<u64>,
    mut send: SendStream,
) -> Result<(), StreamError> {
    let path = space.folder.fragment_file(&id);
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return reply(
                &mut send,
                &err(
                    ErrorKind::NotFound,
                    format!("fragment {} is not here", id.short()),
                ),
            )
            .await
        }
        Err(e) => {
            warn!(error = %e, path = %path.display(), "reading a fragment failed");
            return reply(
                &mut send,
                &err(ErrorKind::Internal, "the node cannot read the fragment"),
            )
            .await;
        }
    };
    let size = file.metadata().await.map_err(transfer)?.len();
    let n = size.saturating_sub(offset).min(len.unwrap_or(u64::MAX));
    file.seek(std::io::SeekFrom::Start(offset.min(size)))
        .await
        .map_err(transfer)?;
    proto::write_msg(&mut send, &Response::Data { len: n }).await?;
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
    Ok(())
}
