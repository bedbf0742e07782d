//! Errors of the dashboard: starting it ([`WebError::NotLoopback`],
//! [`WebError::AddrInUse`], ...) and answering a request, where each
//! variant maps to an HTTP status and its message is the response body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use trove_repo::RepoError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebError {
    /// `--listen` names an address other machines can reach.
    #[error(
        "refusing to listen on {0}: other machines could reach the dashboard, which shows your \
         file names and serves their contents over plain HTTP (the token would cross the network \
         in clear text); listen on 127.0.0.1, or pass --allow-remote if you mean it"
    )]
    NotLoopback(SocketAddr),
    /// Another program listens on the address.
    #[error("{0} is already in use; pick another address with --listen 127.0.0.1:PORT (port 0: any free port)")]
    AddrInUse(SocketAddr),
    /// The address cannot be bound for another reason.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The server stopped on an I/O error.
    #[error("the dashboard's server failed: {source}")]
    Serve { source: std::io::Error },
    /// An operation on the home failed (a request's answer).
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// A request's query is missing a parameter or has a bad one.
    #[error("{0}")]
    BadRequest(String),
    /// A blocking task of a request panicked or was cancelled.
    #[error("internal error: {0}")]
    Internal(String),
}

impl WebError {
    /// The HTTP status a request that failed this way gets.
    pub fn status(&self) -> StatusCode {
        match self {
            WebError::Repo(RepoError::Busy { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            WebError::Repo(
                RepoError::NoSnapshot(_)
                | RepoError::NotInSnapshot(_)
                | RepoError::NoContainer(_)
                | RepoError::NoPeer(_),
            ) => StatusCode::NOT_FOUND,
            WebError::Repo(r) if r.is_usage() => StatusCode::BAD_REQUEST,
            WebError::Repo(
                RepoError::AmbiguousSnapshot(_)
                | RepoError::BadSnapshotSpec(_)
                | RepoError::OnlyLatest(_),
            )
            | WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The message as plain text, with the status of [`WebError::status`].
impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        (self.status(), format!("{self}\n")).into_response()
    }
}
