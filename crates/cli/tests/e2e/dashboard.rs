//! `trove ui` through the real binary: the printed URL, the token check over
//! a real socket, `/api/status`, the page as headless Chromium renders it
//! (what a person would see: container, peers, the snapshot) and a
//! screenshot, and the start-up errors (a port in use, a remote address).

use crate::common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const CONTAINER: &str = "family-photos";

/// One HTTP/1.1 GET over a plain socket: (status, body).
fn http_get(addr: SocketAddr, target: &str, bearer: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to trove ui");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the response");
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a header block");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head}"));
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

/// The body of a `Transfer-Encoding: chunked` response.
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").expect("a chunk size line");
        let n = usize::from_str_radix(size.trim(), 16).expect("a hex chunk size");
        if n == 0 {
            return out;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
}

/// `chromium` or `chromium-browser` on PATH.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| [d.join("chromium"), d.join("chromium-browser")])
        .find(|p| p.is_file())
}

/// Headless Chromium on `url` with `args`, its own profile under `tmp`;
/// asserts it succeeded and returns stdout.
fn headless(browser: &Path, tmp: &Path, url: &str, args: &[&str]) -> String {
    let mut c = Command::new(browser);
    c.args([
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--virtual-time-budget=5000",
    ])
    .arg(format!(
        "--user-data-dir={}",
        tmp.join("chromium-profile").display()
    ))
    .args(args)
    .arg(url)
    .stdin(Stdio::null());
    let out = run_bounded(c, Duration::from_secs(180));
    assert!(
        out.status.success(),
        "chromium {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `trove ui ARGS` running, and the first line it printed on stdout.
fn start_ui(t: &Trove, args: &[&str]) -> (ChildGuard, String) {
    let mut cmd = t.command(args);
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut guard = ChildGuard(Some(cmd.spawn().expect("spawn trove ui")));
    let stdout = guard.child().stdout.take().expect("stdout piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(COMMAND_TIMEOUT)
        .expect("trove ui printed its URL in time");
    (guard, line.trim().to_owned())
}

#[test]
fn dashboard_serves_the_api_and_a_page_chromium_renders() {
    let t = Trove::new();
    t.init();
    t.add_folder_peers(3);
    let src = t.src.display().to_string();
    t.ok_json(&[
        "container",
        "create",
        CONTAINER,
        &src,
        "--redundancy",
        "2+1",
    ]);
    make_small_tree(&t.src, 13);
    let b = t.ok_json(&["backup", CONTAINER]);
    let short = t.snapshots()[0]["short_id"].as_str().unwrap().to_owned();
    assert!(id_of(&b, "snapshot").starts_with(&short));

    let (_ui, url) = start_ui(&t, &["ui", "--listen", "127.0.0.1:0"]);
    let rest = url
        .strip_prefix("http://127.0.0.1:")
        .unwrap_or_else(|| panic!("a loopback URL: {url}"));
    let (port, token) = rest.split_once("/?token=").expect("URL with a token");
    assert_eq!(token.len(), 64, "{url}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    let port: u16 = port.parse().expect("the actual port, not 0");
    assert_ne!(port, 0);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    // No token, a wrong one (query or header): 401.
    let wrong = "f".repeat(64);
    assert_eq!(http_get(addr, "/", None).0, 401);
    assert_eq!(http_get(addr, "/api/status", None).0, 401);
    assert_eq!(http_get(addr, &format!("/?token={wrong}"), None).0, 401);
    assert_eq!(http_get(addr, "/api/status", Some(&wrong)).0, 401);

    let (code, body) = http_get(addr, "/api/status", Some(token));
    assert_eq!(code, 200, "{body}");
    let status: Value = serde_json::from_str(&body).expect("status is JSON");
    assert_eq!(status["containers"][0]["name"], CONTAINER, "{status}");
    let peers: Vec<&str> = status["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(peers, ["p1", "p2", "p3"]);
    assert_eq!(status["peers"][0]["site"], "site-1");

    // A port in use: a clear error naming the address.
    let out = t.run(&["ui", "--listen", &addr.to_string()]);
    assert_code(&out, 1, &["ui", "--listen", &addr.to_string()]);
    let err = stderr(&out);
    assert!(
        err.contains(&addr.to_string()) && err.contains("in use") && err.contains("--listen"),
        "{err}"
    );
    // A remote address without --allow-remote: refused, saying why.
    let out = t.run(&["ui", "--listen", "0.0.0.0:0"]);
    assert_code(&out, 1, &["ui", "--listen", "0.0.0.0:0"]);
    assert!(stderr(&out).contains("--allow-remote"), "{}", stderr(&out));

    let Some(browser) = chromium() else {
        eprintln!("SKIPPED: chromium not installed (apt-get install chromium)");
        return;
    };
    let dom = headless(&browser, t.tmp.path(), &url, &["--dump-dom"]);
    // What the page shows, without the script's own text.
    let shown = dom.split("<script").next().unwrap();
    assert!(
        shown.contains(&format!("<strong>{CONTAINER}</strong>")),
        "the container is listed: {shown}"
    );
    for p in ["p1", "p2", "p3"] {
        assert!(
            shown.contains(&format!("<strong>{p}</strong>")),
            "peer {p}: {shown}"
        );
    }
    assert!(shown.contains("site-2"), "a peer's site: {shown}");
    assert!(
        shown.contains(&format!("<code>{short}</code>")),
        "the snapshot {short} is listed: {shown}"
    );
    assert!(
        shown.contains("class=\"cell full\""),
        "the pack map: {shown}"
    );
    assert!(
        shown.contains("id=\"error\" class=\"banner bad\" hidden"),
        "no error shown: {shown}"
    );

    // A folder of the snapshot, as the page shows it when asked in the
    // URL's fragment (what its "browse" buttons set).
    let folder = format!("{url}#snapshot={short}&path=src/docs");
    let dom = headless(&browser, t.tmp.path(), &folder, &["--dump-dom"]);
    let shown = dom.split("<script").next().unwrap();
    for name in ["letter-00.txt", "letter-11.txt", "naïve café – notes.txt"] {
        assert!(
            shown.contains(&format!("<td>{name}</td>")),
            "{name} listed: {shown}"
        );
    }
    assert!(
        !shown.contains("src/docs/letter-00.txt</td>"),
        "names, not paths"
    );
    assert!(
        shown.contains("path=src%2Fdocs%2Fletter-03.txt"),
        "a download link per entry: {shown}"
    );
    // Such a link: a GET with the token in its query, answered with a tar.
    let (code, tar) = http_get(
        addr,
        &format!("/api/download?snapshot={short}&path=src/docs/letter-03.txt&token={token}"),
        None,
    );
    assert_eq!(code, 200);
    let letter = std::fs::read_to_string(t.src.join("docs/letter-03.txt")).unwrap();
    assert!(tar.contains("src/docs/letter-03.txt") && tar.contains(&letter));

    let png = t.tmp.path().join("ui.png");
    headless(
        &browser,
        t.tmp.path(),
        &url,
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1280,900",
        ],
    );
    let bytes = std::fs::read(&png).expect("chromium wrote the screenshot");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    // A blank 1280x900 page compresses to a few KiB; tables and text do not.
    assert!(bytes.len() > 20_000, "screenshot of {} bytes", bytes.len());
}

/// An heir's open inheritance claim is a banner on the dashboard, as
/// Chromium renders it; with no claim there is none.
#[test]
fn an_open_inheritance_claim_is_a_banner_on_the_dashboard() {
    let t = Trove::new();
    t.init();
    let escrow = crate::inherit::Escrowed::set_up(&t);
    let Some(browser) = chromium() else {
        eprintln!("SKIPPED: chromium not installed (apt-get install chromium)");
        return;
    };
    let banner = |t: &Trove| {
        let (_ui, url) = start_ui(t, &["ui", "--listen", "127.0.0.1:0"]);
        let dom = headless(&browser, t.tmp.path(), &url, &["--dump-dom"]);
        let shown = dom.split("<script").next().unwrap().to_owned();
        shown
            .split("id=\"claims\"")
            .nth(1)
            .map(|rest| rest.split("</div>").next().unwrap_or("").to_owned())
            .unwrap_or_else(|| panic!("no claims element: {shown}"))
    };
    let quiet = banner(&t);
    assert!(
        quiet.contains("hidden") && !quiet.contains("Inheritance claim"),
        "{quiet}"
    );
    escrow.claim();
    let open = banner(&t);
    assert!(open.contains("Inheritance claim open on"), "{open}");
    assert!(!open.contains("hidden"), "{open}");
}
