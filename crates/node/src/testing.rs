//! Real nodes for tests (feature `testing`, off by default): a
//! [`TestNode`] serves on 127.0.0.1 in [`NetworkMode::Direct`] (no relays,
//! no mDNS, no internet) from its own tokio runtime in a background thread,
//! and is stopped politely or killed by the test. Owners reach it with
//! [`new_client`] and [`TestNode::peer`], from plain threads, as the
//! owner's code does.
//!
//! Crates enable it for their own tests only:
//! `trove-node = { workspace = true, features = ["testing"] }` under
//! `[dev-dependencies]`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use tempfile::TempDir;
use tokio::sync::oneshot;

use crate::{
    NetworkConfig, NetworkMode, NodeClient, NodeDir, NodeOptions, NodePeer, NodeTicket, OwnerId,
    DEFAULT_REQUEST_LIMIT,
};

/// Run `body` on its own thread; fail if it takes longer than `limit`
/// (network tests are bounded in time).
pub fn bounded(limit: Duration, body: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel::<()>();
    let h = thread::spawn(move || {
        body();
        let _ = tx.send(());
    });
    match rx.recv_timeout(limit) {
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(p) = h.join() {
                std::panic::resume_unwind(p);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test did not finish within {limit:?}"),
    }
}

fn localhost() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Owner-side network settings: direct, bound to 127.0.0.1.
pub fn direct_local() -> NetworkConfig {
    NetworkConfig {
        mode: NetworkMode::Direct,
        relay: None,
        bind: Some(localhost()),
    }
}

/// A fresh owner (random transport key) with its own endpoint on
/// 127.0.0.1.
pub fn new_client() -> Arc<NodeClient> {
    NodeClient::start(rand::random(), &direct_local()).expect("start an owner's client")
}

/// The owner id `client`'s owner is known by.
pub fn owner_of(client: &NodeClient) -> OwnerId {
    OwnerId(client.owner_id())
}

/// How a [`TestNode`] is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// As on Ctrl-C: the node closes its endpoint politely.
    Graceful,
    /// As on `kill -9`: the runtime is dropped mid-flight, no goodbyes.
    Kill,
}

/// A node serving on 127.0.0.1 from its own runtime in a background thread.
/// Dropping it stops it politely.
#[derive(Debug)]
pub struct TestNode {
    ticket: NodeTicket,
    dir: Option<TempDir>,
    stop: Option<oneshot::Sender<Stop>>,
    done: mpsc::Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

impl TestNode {
    /// A new node in a fresh temporary data folder; deleted fragments are
    /// kept for `grace`.
    pub fn start(grace: Duration) -> Self {
        Self::start_in(tempfile::tempdir().expect("temporary node folder"), grace)
    }

    /// A node on `dir`, new or the data folder of an earlier node.
    pub fn start_in(dir: TempDir, grace: Duration) -> Self {
        Self::start_with(dir, grace, DEFAULT_REQUEST_LIMIT)
    }

    /// A node whose requests may take at most `request_limit`.
    pub fn start_with(dir: TempDir, grace: Duration, request_limit: Duration) -> Self {
        Self::start_configured(dir, grace, |o| o.request_limit = request_limit)
    }

    /// A node on `dir` with the options `configure` sets (operator,
    /// reciprocity, ...) over the test defaults.
    pub fn start_configured(
        dir: TempDir,
        grace: Duration,
        configure: impl FnOnce(&mut NodeOptions),
    ) -> Self {
        let mut opts = NodeOptions {
            data: dir.path().to_owned(),
            listen: Some(localhost()),
            capacity: None,
            grace,
            network: NetworkConfig {
                mode: NetworkMode::Direct,
                relay: None,
                bind: None,
            },
            request_limit: DEFAULT_REQUEST_LIMIT,
            operator: None,
            reciprocity: None,
        };
        configure(&mut opts);
        let (ticket_tx, ticket_rx) = mpsc::channel::<Result<NodeTicket, String>>();
        let (stop_tx, stop_rx) = oneshot::channel::<Stop>();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let thread = thread::Builder::new()
            .name("test-node".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("node runtime");
                let how = rt.block_on(serve_node(opts, ticket_tx, stop_rx));
                match how {
                    Stop::Kill => rt.shutdown_background(),
                    Stop::Graceful => rt.shutdown_timeout(Duration::from_secs(5)),
                }
                let _ = done_tx.send(());
            })
            .expect("spawn the node thread");
        let ticket = match ticket_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => panic!("the node did not start: {e}"),
            Err(e) => panic!("the node did not start within 20 s: {e}"),
        };
        assert!(
            !ticket.addrs.is_empty() && ticket.addrs.iter().all(|a| a.ip().is_loopback()),
            "a test node must be reachable on 127.0.0.1 only: {:?}",
            ticket.addrs
        );
        Self {
            ticket,
            dir: Some(dir),
            stop: Some(stop_tx),
            done: done_rx,
            thread: Some(thread),
        }
    }

    /// The node's ticket (its id and 127.0.0.1 address).
    pub fn ticket(&self) -> &NodeTicket {
        &self.ticket
    }

    /// The node's data folder.
    pub fn data(&self) -> &Path {
        self.dir.as_ref().expect("node folder").path()
    }

    /// The node's data folder, opened as `trove node` commands open it.
    pub fn node_dir(&self) -> NodeDir {
        NodeDir::open(self.data()).expect("open the node folder")
    }

    /// Grant `client`'s owner `quota` bytes, as `trove node grant` does.
    pub fn grant(&self, client: &NodeClient, quota: u64) {
        self.node_dir()
            .grant(owner_of(client), quota)
            .expect("grant an owner");
    }

    /// Revoke `client`'s owner, which must have been granted.
    pub fn revoke(&self, client: &NodeClient) {
        assert!(
            self.node_dir().revoke(&owner_of(client)).expect("revoke"),
            "the owner was not granted"
        );
    }

    /// `client`'s [`NodePeer`] for this node.
    pub fn peer(&self, client: &Arc<NodeClient>) -> NodePeer {
        client.peer("test-node", &self.ticket).expect("node peer")
    }

    /// `owners/<hex>` of one owner in the node's data folder.
    pub fn owner_dir(&self, client: &NodeClient) -> PathBuf {
        self.node_dir().owner_dir(&owner_of(client))
    }

    /// Stop politely and hand back the data folder.
    pub fn stop(mut self) -> TempDir {
        self.shutdown(Stop::Graceful);
        self.dir.take().expect("node folder")
    }

    /// Kill (no polite close) and hand back the data folder.
    pub fn kill(mut self) -> TempDir {
        self.shutdown(Stop::Kill);
        self.dir.take().expect("node folder")
    }

    fn shutdown(&mut self, how: Stop) {
        let Some(stop) = self.stop.take() else { return };
        let _ = stop.send(how);
        match self.done.recv_timeout(Duration::from_secs(20)) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                let joined = self.thread.take().map(JoinHandle::join);
                if matches!(joined, Some(Err(_))) && !thread::panicking() {
                    panic!("the node thread panicked");
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if !thread::panicking() {
                    panic!("the node did not stop within 20 s");
                }
            }
        }
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.shutdown(Stop::Graceful);
    }
}

/// The node thread's async part: start, report the ticket, serve until told.
async fn serve_node(
    opts: NodeOptions,
    ticket_tx: mpsc::Sender<Result<NodeTicket, String>>,
    stop_rx: oneshot::Receiver<Stop>,
) -> Stop {
    let running = match crate::start(&opts).await {
        Ok(r) => r,
        Err(e) => {
            let _ = ticket_tx.send(Err(e.to_string()));
            return Stop::Graceful;
        }
    };
    let _ = ticket_tx.send(Ok(running.ticket.clone()));
    let (graceful_tx, graceful_rx) = oneshot::channel::<()>();
    let serve = running.serve(async {
        let _ = graceful_rx.await;
    });
    tokio::pin!(serve);
    tokio::select! {
        () = &mut serve => Stop::Graceful,
        how = stop_rx => match how {
            // Returning drops `serve` (and the endpoint) without closing it.
            Ok(Stop::Kill) => Stop::Kill,
            // A dropped sender (the test panicked) stops politely too.
            Ok(Stop::Graceful) | Err(_) => {
                let _ = graceful_tx.send(());
                serve.await;
                Stop::Graceful
            }
        },
    }
}
