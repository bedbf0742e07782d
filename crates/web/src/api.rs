//! The JSON API the page is built from: `/api/status` (containers with
//! their durability estimate, peers, the pack-health map),
//! `/api/snapshots`, `/api/ls` (one folder of a snapshot) and
//! `/api/download` (a tar of a snapshot, a folder or a file; see
//! [`crate::download`]). Each request opens the home on a blocking thread
//! and drops it before answering (see the crate doc).

use crate::error::WebError;
use crate::packs::{pack_maps, PackMap};
use crate::Dashboard;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use trove_repo::{Config, ContainerStatus, Home, PeerStatus, SnapshotRow, Storm};

/// The label that names a peer's site (the failure domain placement uses).
const SITE_LABEL: &str = "site";

pub fn routes() -> Router<Arc<Dashboard>> {
    Router::new()
        .route("/status", get(status))
        .route("/snapshots", get(snapshots))
        .route("/ls", get(ls))
        .route("/download", get(crate::download::download))
}

/// Run `f` on the opened home, on a blocking thread (the index and the
/// peers are synchronous); the home is closed when it returns.
pub(crate) async fn with_home<T: Send + 'static>(
    dash: Arc<Dashboard>,
    f: impl FnOnce(&Home, &Dashboard) -> Result<T, WebError> + Send + 'static,
) -> Result<T, WebError> {
    tokio::task::spawn_blocking(move || {
        let home = Home::open_waiting(&dash.dir, dash.wait, &|_| {})?;
        f(&home, &dash)
    })
    .await
    .map_err(|e| WebError::Internal(e.to_string()))?
}

/// What `/api/status` answers.
#[derive(Debug, Serialize)]
pub struct StatusView {
    pub containers: Vec<ContainerStatus>,
    pub peers: Vec<PeerView>,
    /// The storm guard holds: unreachable peers are not declared lost.
    pub storm: Option<Storm>,
    pub packs: Vec<PackMap>,
    /// Custodians reporting an open inheritance claim (§9f).
    pub inheritance_claims: Vec<trove_repo::inherit::CustodianRow>,
}

/// A peer as `trove status` reports it, with its labels and site.
#[derive(Debug, Serialize)]
pub struct PeerView {
    #[serde(flatten)]
    pub status: PeerStatus,
    pub site: Option<String>,
    pub labels: std::collections::BTreeMap<String, String>,
}

async fn status(State(dash): State<Arc<Dashboard>>) -> Result<Json<StatusView>, WebError> {
    with_home(dash, |home, dash| {
        let config = Config::load(&dash.dir)?;
        let report = trove_repo::status(home, &config)?;
        let records: HashMap<String, _> = home
            .peers()
            .records()?
            .into_iter()
            .map(|r| (r.name.clone(), r))
            .collect();
        let states = report
            .peers
            .iter()
            .filter_map(|p| records.get(&p.name).map(|r| (r.id, p.state)))
            .collect();
        let packs = pack_maps(home, &states)?;
        let peers = report
            .peers
            .into_iter()
            .map(|status| {
                let labels = records
                    .get(&status.name)
                    .map(|r| r.labels.clone())
                    .unwrap_or_default();
                PeerView {
                    site: labels.get(SITE_LABEL).cloned(),
                    labels,
                    status,
                }
            })
            .collect();
        Ok(Json(StatusView {
            containers: report.containers,
            peers,
            storm: report.storm,
            packs,
            inheritance_claims: report.inheritance_claims,
        }))
    })
    .await
}

/// Every snapshot of every container, newest first.
async fn snapshots(State(dash): State<Arc<Dashboard>>) -> Result<Json<Vec<SnapshotRow>>, WebError> {
    with_home(dash, |home, _| {
        let mut rows = home.containers().snapshot_rows(None)?;
        rows.sort_by_key(|r| std::cmp::Reverse(r.time_unix_ns));
        Ok(Json(rows))
    })
    .await
}

/// `?snapshot=ID&path=P`: a snapshot (id, id prefix or `NAME:latest`) and
/// a snapshot-relative path (none or empty: the root).
#[derive(Debug, Deserialize)]
pub(crate) struct Where {
    pub snapshot: String,
    #[serde(default)]
    pub path: String,
}

impl Where {
    /// The path, or `None` for the root.
    pub fn under(&self) -> Option<&Path> {
        let p = self.path.trim_matches('/');
        (!p.is_empty()).then(|| Path::new(p))
    }
}

/// One entry of a folder.
#[derive(Debug, Serialize)]
struct Entry {
    name: String,
    /// Snapshot-relative, for the next `ls` or a download.
    path: String,
    kind: &'static str,
    size: u64,
    mode: u32,
    mtime_ns: i64,
}

#[derive(Debug, Serialize)]
struct Listing {
    snapshot: String,
    path: String,
    entries: Vec<Entry>,
}

/// The entries directly in one folder of a snapshot.
async fn ls(
    State(dash): State<Arc<Dashboard>>,
    Query(at): Query<Where>,
) -> Result<Json<Listing>, WebError> {
    with_home(dash, move |home, dash| {
        let under = at.under();
        let entries = trove_repo::ls_folder(home, &dash.owner, &at.snapshot, under)?
            .into_iter()
            .map(|e| Entry {
                name: Path::new(&e.path)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                path: e.path,
                kind: e.kind,
                size: e.size,
                mode: e.mode,
                mtime_ns: e.mtime_ns,
            })
            .collect();
        Ok(Json(Listing {
            path: under.map(|p| p.display().to_string()).unwrap_or_default(),
            snapshot: at.snapshot,
            entries,
        }))
    })
    .await
}
