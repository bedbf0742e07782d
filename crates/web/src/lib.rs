//! `trove ui`: a local web dashboard over `trove-repo`. One page (HTML, CSS
//! and JS vendored in the binary, no CDN) and a JSON API under `/api/`:
//! containers, a pack-health map, peers, snapshots with browsing and tar
//! downloads, and the durability estimate.
//!
//! Security: the server listens on loopback unless told otherwise
//! ([`check_listen`]) and every request must carry the [`Token`] printed at
//! start (see `auth.rs`); a request that changes state must carry it in the
//! `Authorization` header, which a cross-site form or link cannot set, so
//! no CSRF token is needed.
//!
//! The home's index is exclusive to one process, so the server does not
//! keep it open: each request opens the home on a blocking thread, waits a
//! little if another trove process holds it (503 after
//! [`Dashboard::wait`]), and drops it. The owner is unlocked once, at start.
//!
//! Error policy: typed errors ([`WebError`]) whose messages name the
//! object, the cause and the next step.

mod api;
mod auth;
mod download;
mod error;
mod packs;
mod page;

pub use auth::Token;
pub use error::WebError;
pub use packs::{PackCell, PackMap, PackState};

use axum::Router;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use trove_repo::Owner;

/// The default address of `trove ui`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8737";

/// What every request needs: where the home is, the unlocked owner and the
/// token.
#[derive(Debug, Clone)]
pub struct Dashboard {
    /// `TROVE_HOME`.
    pub dir: PathBuf,
    pub owner: Arc<Owner>,
    pub token: Token,
    /// How long a request waits for another trove process (a backup, the
    /// daemon's step) to let go of the index before it answers 503.
    pub wait: Duration,
}

impl Dashboard {
    /// A dashboard over the home in `dir`, with a fresh random token.
    pub fn new(dir: PathBuf, owner: Arc<Owner>) -> Self {
        Self {
            dir,
            owner,
            token: Token::random(),
            wait: Duration::from_secs(10),
        }
    }

    /// The address to open in a browser: the page with the token.
    pub fn url(&self, addr: SocketAddr) -> String {
        format!("http://{addr}/?token={}", self.token.as_str())
    }
}

/// The whole application: the page, the API, and the token check in front
/// of both (before routing, so an unknown path or a wrong method is 401
/// too when the token is missing). Tests send requests to it in process.
pub fn app(dash: Dashboard) -> Router {
    let token = dash.token.clone();
    Router::new()
        .route("/", axum::routing::get(page::index))
        .nest("/api", api::routes())
        .fallback(not_found)
        .with_state(Arc::new(dash))
        .layer(axum::middleware::from_fn_with_state(token, auth::require))
}

async fn not_found() -> (axum::http::StatusCode, &'static str) {
    (axum::http::StatusCode::NOT_FOUND, "no such page\n")
}

/// Refuse an address other hosts can reach unless `allow_remote`: the
/// dashboard shows file names and serves file contents, and it speaks
/// plain HTTP, so the token would cross the network in clear text.
pub fn check_listen(addr: SocketAddr, allow_remote: bool) -> Result<(), WebError> {
    if addr.ip().is_loopback() || allow_remote {
        Ok(())
    } else {
        Err(WebError::NotLoopback(addr))
    }
}

/// Bind `addr` (port 0: any free port), with an error that names the
/// address and says what to do when it is taken.
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, WebError> {
    let l = std::net::TcpListener::bind(addr).map_err(|source| match source.kind() {
        std::io::ErrorKind::AddrInUse => WebError::AddrInUse(addr),
        _ => WebError::Bind { addr, source },
    })?;
    // tokio takes over a listener only in non-blocking mode.
    l.set_nonblocking(true)
        .map_err(|source| WebError::Bind { addr, source })?;
    Ok(l)
}

/// Serve `app` on `listener` (from [`bind`]) until `shutdown` completes.
/// Runs inside a tokio runtime.
pub async fn serve(
    listener: std::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), WebError> {
    let addr = listener
        .local_addr()
        .map_err(|source| WebError::Serve { source })?;
    let listener = tokio::net::TcpListener::from_std(listener)
        .map_err(|source| WebError::Bind { addr, source })?;
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| WebError::Serve { source })
}
