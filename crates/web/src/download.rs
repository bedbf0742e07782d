//! `/api/download?snapshot=ID&path=P`: a tar of a snapshot, or of a folder
//! or file in it, streamed as `trove dump` writes it. The dump runs on a
//! blocking thread (the home open all along) and writes into a channel
//! whose receiving end is the response body, so memory stays flat
//! whatever the size. A failure before the first chunk is an ordinary
//! error response (404 for a path the snapshot lacks); one after it aborts
//! the body, so the browser reports the download as failed rather than
//! keeping a truncated archive that looks whole.

use crate::api::{with_home, Where};
use crate::error::WebError;
use crate::Dashboard;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::io::{self, Write};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

/// Bytes gathered before a chunk is handed to the body.
const CHUNK: usize = 256 << 10;
/// Chunks in flight between the dump and the connection.
const CHUNKS_IN_FLIGHT: usize = 8;

type Chunk = Result<Bytes, io::Error>;

pub(crate) async fn download(
    State(dash): State<Arc<Dashboard>>,
    Query(at): Query<Where>,
) -> Result<Response, WebError> {
    let filename = archive_name(&at);
    let (tx, mut rx) = mpsc::channel::<Chunk>(CHUNKS_IN_FLIGHT);
    let task = tokio::spawn(with_home(dash, move |home, dash| {
        let mut out = ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
            started: false,
        };
        let r = trove_repo::dump(home, &dash.owner, &at.snapshot, at.under(), &mut out)
            .and_then(|_| out.flush().map_err(trove_repo::RepoError::Output));
        match r {
            Ok(()) => Ok(()),
            // The client went away: nobody to tell.
            Err(e) if e.is_closed_output() => Ok(()),
            // Mid-stream: abort the body (see the module doc).
            Err(e) if out.started => {
                let _ = out.tx.blocking_send(Err(io::Error::other(e.to_string())));
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }));
    let Some(first) = rx.recv().await else {
        // Closed before any data: the dump failed at once.
        task.await
            .map_err(|e| WebError::Internal(e.to_string()))??;
        return Err(WebError::Internal(
            "the archive ended before it began".into(),
        ));
    };
    let body = Body::from_stream(tokio_stream::once(first).chain(ReceiverStream::new(rx)));
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// `SNAPSHOT[-LAST_PATH_COMPONENT].tar`, with anything but letters,
/// digits, `.`, `-` and `_` replaced (it goes into a header, quoted).
fn archive_name(at: &Where) -> String {
    let mut name = at.snapshot.replace(':', "-");
    if let Some(last) = at.under().and_then(|p| p.file_name()) {
        name.push('-');
        name.push_str(&last.to_string_lossy());
    }
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{clean}.tar")
}

/// A `Write` whose bytes go to the response body, in chunks of [`CHUNK`].
struct ChannelWriter {
    tx: mpsc::Sender<Chunk>,
    buf: Vec<u8>,
    /// Whether a chunk has been sent (the response has begun).
    started: bool,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.started = true;
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_names_are_safe_in_a_header() {
        let at = |snapshot: &str, path: &str| Where {
            snapshot: snapshot.into(),
            path: path.into(),
        };
        assert_eq!(archive_name(&at("data:latest", "")), "data-latest.tar");
        assert_eq!(
            archive_name(&at("3f2a9c1e", "src/docs/")),
            "3f2a9c1e-docs.tar"
        );
        assert_eq!(
            archive_name(&at("3f2a", "src/a \"b\";c.txt")),
            "3f2a-a__b__c.txt.tar"
        );
    }
}
