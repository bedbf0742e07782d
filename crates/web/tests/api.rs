//! The dashboard's API in process: a real home in a temporary folder (three
//! folder peers, one container, one backup), requests sent to the
//! `Router` with `oneshot`, no port bound.

use axum::body::{to_bytes, Body};
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;
use trove_core::keys::MasterSecret;
use trove_core::manifest::Redundancy;
use trove_repo::{backup, BackupOptions, Home, KdfParams, Quiet};
use trove_web::Dashboard;

/// Argon2 at its cheapest: these tests are not about the keyfile.
const FAST_KDF: KdfParams = KdfParams {
    m_kib: 64,
    t: 1,
    p: 1,
};

struct World {
    tmp: tempfile::TempDir,
    dash: Dashboard,
    /// The snapshot's short id.
    snapshot: String,
}

impl World {
    fn home(&self) -> PathBuf {
        self.tmp.path().join("home")
    }

    fn peer(&self, i: usize) -> PathBuf {
        self.tmp.path().join(format!("peers/p{i}"))
    }

    fn app(&self) -> Router {
        trove_web::app(self.dash.clone())
    }

    fn token(&self) -> &str {
        self.dash.token.as_str()
    }
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Container `docs` (2+1) over `src` on peers `p1..p3` (sites `s1..s3`),
/// backed up once.
fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("home");
    let (home, owner) = Home::init(&dir, MasterSecret::generate(), b"pass", FAST_KDF).unwrap();
    for i in 1..=3 {
        let loc = format!("dir:{}", tmp.path().join(format!("peers/p{i}")).display());
        let labels = BTreeMap::from([("site".to_owned(), format!("s{i}"))]);
        home.peers().add(&format!("p{i}"), &loc, labels).unwrap();
    }
    let src = tmp.path().join("src");
    write(&src.join("notes.txt"), b"remember the milk\n");
    write(&src.join("letters/a.txt"), &b"dear a\n".repeat(1000));
    write(&src.join("letters/old/b.bin"), &[7u8; 300_000]);
    home.containers()
        .create(&owner, "docs", &[src], Some(Redundancy { k: 2, m: 1 }))
        .unwrap();
    let report = backup(&home, &owner, "docs", &BackupOptions::default(), &Quiet).unwrap();
    let snapshot = report.snapshot.id.short();
    // The server opens the home per request.
    drop(home);
    World {
        dash: Dashboard::new(dir, Arc::new(owner)),
        tmp,
        snapshot,
    }
}

async fn send(app: Router, req: Request<Body>) -> (StatusCode, Vec<u8>) {
    let resp = app.oneshot(req).await.unwrap();
    let status = resp.status();
    let body = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    (status, body.to_vec())
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn bearer(method: Method, uri: &str, token: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

async fn json(w: &World, uri: &str) -> Value {
    let (status, body) = send(w.app(), bearer(Method::GET, uri, w.token())).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{uri}: {}",
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test]
async fn every_request_without_the_right_token_is_401() {
    let w = world();
    let wrong = "0".repeat(64);
    for uri in ["/", "/api/status", "/api/snapshots", "/no/such/page"] {
        let (status, _) = send(w.app(), get(uri)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri} without a token");
        let (status, _) = send(w.app(), get(&format!("{uri}?token={wrong}"))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri} with a wrong token");
        let (status, _) = send(w.app(), bearer(Method::GET, uri, &wrong)).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{uri} with a wrong header"
        );
        // A prefix of the token is not the token.
        let (status, _) = send(w.app(), get(&format!("{uri}?token={}", &w.token()[..32]))).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{uri} with half the token"
        );
    }
    // The right token, in the query or the header.
    let (status, page) = send(w.app(), get(&format!("/?token={}", w.token()))).await;
    assert_eq!(status, StatusCode::OK);
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains("<title>Trove</title>"), "{page}");
    assert!(page.contains("function renderStatus") && page.contains(".badge"));
    assert!(!page.contains("/*JS*/") && !page.contains("/*CSS*/"));
    let (status, _) = send(w.app(), bearer(Method::GET, "/no/such/page", w.token())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A request that is not a GET must carry the token in the header: a
/// cross-site form can put it in a URL, never in a header.
#[tokio::test]
async fn state_changing_methods_need_the_token_in_the_header() {
    let w = world();
    for method in [Method::POST, Method::PUT, Method::DELETE] {
        let req = Request::builder()
            .method(method.clone())
            .uri(format!("/api/status?token={}", w.token()))
            .body(Body::empty())
            .unwrap();
        let (status, body) = send(w.app(), req).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} with the token in the query"
        );
        assert!(String::from_utf8_lossy(&body).contains("Authorization"));
        // With the header, the request gets past the check (and there is
        // no such route for the method).
        let (status, _) = send(w.app(), bearer(method.clone(), "/api/status", w.token())).await;
        assert_eq!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} with the header"
        );
    }
}

#[tokio::test]
async fn status_names_containers_peers_sites_and_pack_health() {
    let w = world();
    let s = json(&w, "/api/status").await;
    let c = &s["containers"][0];
    assert_eq!(c["name"], "docs", "{s}");
    assert_eq!((c["k"].as_u64(), c["m"].as_u64()), (Some(2), Some(1)));
    assert_eq!(c["snapshots"], 1);
    assert!(c["durability_text"].as_str().is_some_and(|t| !t.is_empty()));
    let packs_total = c["packs_total"].as_u64().unwrap();
    assert!(packs_total > 0);
    let peers: BTreeMap<String, (String, String, u64)> = s["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                (
                    p["site"].as_str().unwrap().to_owned(),
                    p["state"].as_str().unwrap().to_owned(),
                    p["bytes_held"].as_u64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(peers.keys().collect::<Vec<_>>(), ["p1", "p2", "p3"]);
    for (name, (site, state, held)) in &peers {
        assert_eq!(site, &format!("s{}", &name[1..]));
        assert_eq!(state, "online");
        assert!(*held > 0, "{name} holds fragments");
    }
    let map = &s["packs"][0];
    assert_eq!(map["container"], "docs");
    assert_eq!(map["full"].as_u64(), Some(packs_total), "{map}");
    assert_eq!(map["cells"].as_array().unwrap().len() as u64, packs_total);
    assert!(map["cells"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["state"] == "full" && c["online"] == 3));

    // A peer that stops answering: every pack is degraded (2 of 3 online,
    // still readable), in the map as in the counts.
    std::fs::rename(w.peer(3), w.tmp.path().join("unplugged")).unwrap();
    let s = json(&w, "/api/status").await;
    let p3 = s["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "p3");
    assert_eq!(p3.unwrap()["state"], "suspect", "{s}");
    assert_eq!(
        s["containers"][0]["packs_degraded"].as_u64(),
        Some(packs_total)
    );
    let map = &s["packs"][0];
    assert_eq!(
        (
            map["full"].as_u64(),
            map["degraded"].as_u64(),
            map["unreadable"].as_u64()
        ),
        (Some(0), Some(packs_total), Some(0)),
        "{map}"
    );
    assert!(map["cells"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["state"] == "degraded" && c["online"] == 2 && c["readable"] == 3));
}

#[tokio::test]
async fn snapshots_and_one_folder_at_a_time() {
    let w = world();
    let snaps = json(&w, "/api/snapshots").await;
    assert_eq!(snaps.as_array().unwrap().len(), 1);
    assert_eq!(snaps[0]["short_id"], w.snapshot.as_str());
    assert_eq!(snaps[0]["container"], "docs");
    assert_eq!(snaps[0]["files"], 3);

    let names = |l: &Value| -> BTreeSet<(String, String, String)> {
        l["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_owned(),
                    e["path"].as_str().unwrap().to_owned(),
                    e["kind"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let root = json(&w, &format!("/api/ls?snapshot={}", w.snapshot)).await;
    assert_eq!(
        names(&root),
        BTreeSet::from([("src".into(), "src".into(), "dir".into())])
    );
    let src = json(&w, &format!("/api/ls?snapshot={}&path=src", w.snapshot)).await;
    assert_eq!(
        names(&src),
        BTreeSet::from([
            ("letters".into(), "src/letters".into(), "dir".into()),
            ("notes.txt".into(), "src/notes.txt".into(), "file".into()),
        ])
    );
    let letters = json(&w, "/api/ls?snapshot=docs:latest&path=src/letters/").await;
    assert_eq!(letters["path"], "src/letters");
    assert_eq!(
        names(&letters),
        BTreeSet::from([
            ("a.txt".into(), "src/letters/a.txt".into(), "file".into()),
            ("old".into(), "src/letters/old".into(), "dir".into()),
        ])
    );

    // Bad input: a path the snapshot lacks, a snapshot that does not
    // exist, one that is not a snapshot argument at all.
    for (uri, want) in [
        (
            format!("/api/ls?snapshot={}&path=src/nope", w.snapshot),
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/ls?snapshot=ffffffff".to_owned(),
            StatusCode::NOT_FOUND,
        ),
        ("/api/ls?snapshot=zz".to_owned(), StatusCode::BAD_REQUEST),
        ("/api/ls".to_owned(), StatusCode::BAD_REQUEST),
    ] {
        let (status, body) = send(w.app(), bearer(Method::GET, &uri, w.token())).await;
        assert_eq!(status, want, "{uri}: {}", String::from_utf8_lossy(&body));
    }
}

/// Path → contents of every file (`None` for a folder) of a tar.
fn untar(bytes: &[u8]) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    for e in tar::Archive::new(bytes).entries().unwrap() {
        let mut e = e.unwrap();
        let path = e
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches('/')
            .to_owned();
        let data = match e.header().entry_type() {
            tar::EntryType::Directory => None,
            _ => {
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut v).unwrap();
                Some(v)
            }
        };
        out.insert(path, data);
    }
    out
}

#[tokio::test]
async fn download_a_folder_or_a_file_as_tar() {
    let w = world();
    let src = w.tmp.path().join("src");
    // A download link carries the token in its query (a GET).
    let uri = format!(
        "/api/download?snapshot={}&path=src/letters&token={}",
        w.snapshot,
        w.token()
    );
    let resp = w.app().oneshot(get(&uri)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/x-tar");
    assert_eq!(
        resp.headers()[header::CONTENT_DISPOSITION],
        format!("attachment; filename=\"{}-letters.tar\"", w.snapshot).as_str()
    );
    let body = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    let got = untar(&body);
    let want = BTreeMap::from([
        ("src/letters".to_owned(), None),
        (
            "src/letters/a.txt".to_owned(),
            Some(std::fs::read(src.join("letters/a.txt")).unwrap()),
        ),
        ("src/letters/old".to_owned(), None),
        (
            "src/letters/old/b.bin".to_owned(),
            Some(std::fs::read(src.join("letters/old/b.bin")).unwrap()),
        ),
    ]);
    assert_eq!(got, want);

    let (status, body) = send(
        w.app(),
        bearer(
            Method::GET,
            "/api/download?snapshot=docs:latest&path=src/notes.txt",
            w.token(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        untar(&body),
        BTreeMap::from([(
            "src/notes.txt".to_owned(),
            Some(b"remember the milk\n".to_vec())
        )])
    );

    // A path the snapshot lacks is a plain 404 (nothing streamed yet).
    let (status, body) = send(
        w.app(),
        bearer(
            Method::GET,
            "/api/download?snapshot=docs:latest&path=src/nope",
            w.token(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(String::from_utf8_lossy(&body).contains("src/nope"));
}

/// Another process holds the index: 503 with its message, after the
/// dashboard's wait; once it lets go, the next request is served.
#[tokio::test]
async fn a_busy_home_is_503_until_it_is_free() {
    let mut w = world();
    w.dash.wait = Duration::from_millis(300);
    let held = Home::open(&w.home()).unwrap();
    let (status, body) = send(w.app(), bearer(Method::GET, "/api/status", w.token())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        String::from_utf8_lossy(&body).contains("another trove process"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    drop(held);
    json(&w, "/api/status").await;
}
