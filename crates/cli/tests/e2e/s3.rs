//! S3 peers through the real binary against a real SeaweedFS (`weed mini`
//! on 127.0.0.1, which `.ci/run` installs): four folders and two buckets,
//! 4+2. The buckets hold fragments and no secret; with the server killed
//! the folders restore exactly; an emptied bucket is refilled by `repair`;
//! after losing the home, one bucket added with credentials from the
//! environment leads `sync` to the rest, and with two folders gone the
//! restore is exact. Wrong credentials are refused at `peer add`, naming
//! the peer and never the secret. Skips loudly without `weed`.

use crate::common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use trove_remote::testing::{Seaweed, ACCESS_KEY, SECRET_KEY};

const BUCKETS: [&str; 2] = ["cloud-a", "cloud-b"];

/// `cmd` with the environment's S3 credentials (as a user exports them).
fn with_keys(mut cmd: Command, secret: &str) -> Command {
    cmd.env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env_remove("AWS_SESSION_TOKEN");
    cmd
}

fn run_s3(t: &Trove, args: &[&str]) -> std::process::Output {
    run_bounded(with_keys(t.command(args), SECRET_KEY), COMMAND_TIMEOUT)
}

fn ok_s3(t: &Trove, args: &[&str]) -> Value {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    let out = run_s3(t, &full);
    assert_code(&out, 0, &full);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(SECRET_KEY)
            && !stderr(&out).contains(SECRET_KEY),
        "the secret key was printed by {full:?}"
    );
    parse_json(&out)
}

fn peer_rows(t: &Trove) -> Vec<Value> {
    ok_s3(t, &["peer", "list"]).as_array().unwrap().clone()
}

fn fragments_on(t: &Trove, name: &str) -> u64 {
    let rows = peer_rows(t);
    let row = rows.iter().find(|r| r["name"] == name).unwrap();
    row["fragments"]
        .as_u64()
        .unwrap_or_else(|| panic!("no fragment count for {name}: {row}"))
}

/// Whether `needle` occurs in any file under `dir`.
fn found_in(dir: &Path, needle: &[u8]) -> Vec<String> {
    all_files(dir)
        .into_iter()
        .filter(|f| {
            std::fs::read(f)
                .map(|b| b.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
        })
        .map(|f| f.display().to_string())
        .collect()
}

#[test]
fn buckets_as_peers_survive_a_dead_server_an_emptied_bucket_and_a_lost_home() {
    let Some(mut server) = Seaweed::start(&BUCKETS) else {
        return;
    };
    let t = Trove::new();
    make_small_tree(&t.src, 14);
    write(&t.src.join("big/blob.bin"), &Gen::new(15).bytes(3_000_000));
    let phrase = t.init()["phrase"].as_str().unwrap().to_owned();
    t.add_folder_peers(4);
    for (i, b) in BUCKETS.iter().enumerate() {
        let name = format!("s{}", i + 1);
        let loc = server.location(b, "trove");
        let v = ok_s3(
            &t,
            &[
                "peer",
                "add",
                &name,
                &loc,
                "--label",
                &format!("site=cloud-{i}"),
            ],
        );
        assert_eq!(
            v["location"],
            loc.as_str(),
            "the roster keeps the location as given"
        );
    }
    // A bucket prefix that holds someone else's objects is refused.
    let out = run_s3(
        &t,
        &["peer", "add", "again", &server.location("cloud-a", "")],
    );
    assert_code(&out, 1, &["peer", "add", "again"]);
    assert!(
        stderr(&out).contains("not a Trove peer"),
        "{}",
        stderr(&out)
    );
    t.create_container("4+2");
    let b = ok_s3(&t, &["backup", "--profile"]);
    assert!(b["profile"]["peers"].as_array().unwrap().len() == 6, "{b}");
    let held = fragments_on(&t, "s1");
    assert!(
        held > 0 && fragments_on(&t, "s2") == held,
        "each bucket holds a fragment of every pack"
    );

    // No secret anywhere: not on the server, the folders or in the home.
    for dir in [server.dir.path(), t.peers_dir.as_path(), t.home.as_path()] {
        for secret in [SECRET_KEY.as_bytes(), PASS.as_bytes(), phrase.as_bytes()] {
            let hits = found_in(dir, secret);
            assert!(hits.is_empty(), "a secret is stored in {hits:?}");
        }
    }

    // The server dies: the folders alone restore exactly, and a backup of
    // new data goes on without the buckets.
    server.kill();
    let (_, restored) = ok_restore(&t);
    assert_eq!(diff_trees(&t.src, &restored), Vec::<String>::new());
    write(
        &t.src.join("new/while-down.bin"),
        &Gen::new(16).bytes(1_500_000),
    );
    let down = ok_s3(&t, &["backup"]);
    assert!(down["packs_new"].as_u64().is_some_and(|n| n > 0), "{down}");
    let (_, restored) = ok_restore(&t);
    assert_eq!(diff_trees(&t.src, &restored), Vec::<String>::new());

    // Back up, one bucket emptied behind Trove's back: check sees it,
    // repair refills it, check --read-data is clean.
    server.restart();
    assert!(server.empty("cloud-b", "trove") > 0);
    let out = run_s3(&t, &["--json", "check"]);
    assert_code(&out, 1, &["check"]);
    assert_eq!(fragments_on(&t, "s2"), 0);
    ok_s3(&t, &["repair"]);
    // Every pack has a fragment on each bucket again, those of the backup
    // made while the server was down included.
    let packs = ok_s3(&t, &["status"])["containers"][0]["packs_total"]
        .as_u64()
        .unwrap();
    assert!(packs > held);
    assert_eq!(fragments_on(&t, "s2"), packs, "repair refilled the bucket");
    assert_eq!(fragments_on(&t, "s1"), packs);
    let c = ok_s3(&t, &["check", "--read-data"]);
    assert_eq!(c["problems"].as_array().map(Vec::len), Some(0), "{c}");

    // The home is lost: recover from the phrase, add one bucket with the
    // environment's credentials, sync finds the rest.
    std::fs::remove_dir_all(&t.home).unwrap();
    let pf = t.tmp.path().join("phrase.txt");
    std::fs::write(&pf, &phrase).unwrap();
    ok_s3(&t, &["recover", "--phrase-file", &pf.display().to_string()]);
    ok_s3(
        &t,
        &["peer", "add", "cloud", &server.location("cloud-a", "trove")],
    );
    ok_s3(&t, &["sync"]);
    let names: Vec<String> = peer_rows(&t)
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    for want in ["cloud", "p1", "p2", "p3", "p4", "s2"] {
        assert!(names.iter().any(|n| n == want), "sync found {names:?}");
    }
    std::fs::remove_dir_all(t.peer(1)).unwrap();
    std::fs::remove_dir_all(t.peer(3)).unwrap();
    let (_, restored) = ok_restore(&t);
    assert_eq!(diff_trees(&t.src, &restored), Vec::<String>::new());
}

/// Restore `data:latest` with the credentials in the environment.
fn ok_restore(t: &Trove) -> (Value, std::path::PathBuf) {
    let target = t.fresh_dir("restore");
    let v = ok_s3(
        t,
        &[
            "restore",
            "data:latest",
            "--target",
            &target.display().to_string(),
        ],
    );
    (v, target.join("src"))
}

#[test]
fn wrong_credentials_and_a_missing_bucket_are_refused_at_add() {
    let Some(server) = Seaweed::start(&["cloud-c"]) else {
        return;
    };
    let t = Trove::new();
    t.init();
    let loc = server.location("cloud-c", "trove");
    let wrong = "wrong-secret-4417";
    let out = run_bounded(
        with_keys(t.command(&["peer", "add", "cloud", &loc]), wrong),
        COMMAND_TIMEOUT,
    );
    assert_code(&out, 1, &["peer", "add"]);
    let err = stderr(&out);
    assert!(err.contains("403") && err.contains("`cloud`"), "{err}");
    assert!(!err.contains(wrong) && !err.contains(SECRET_KEY), "{err}");
    // Credentials in the location are refused before anything is asked.
    let leaky = loc.replace("s3://", &format!("s3://{ACCESS_KEY}:{wrong}@"));
    let out = run_s3(&t, &["peer", "add", "leak", &leaky]);
    assert_code(&out, 1, &["peer", "add", "leak"]);
    assert!(
        stderr(&out).contains("credentials.toml"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains(wrong), "{}", stderr(&out));
    // The file's credentials win over the environment's, and a file other
    // users can read is refused.
    let creds = t.home.join("credentials.toml");
    std::fs::write(
        &creds,
        format!(
            "version = 1\n[peers.cloud]\naccess_key_id = \"{ACCESS_KEY}\"\nsecret_access_key = \"{SECRET_KEY}\"\n"
        ),
    )
    .unwrap();
    chmod(&creds, 0o644);
    let out = run_bounded(
        with_keys(t.command(&["peer", "add", "cloud", &loc]), wrong),
        COMMAND_TIMEOUT,
    );
    assert_code(&out, 1, &["peer", "add"]);
    assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));
    chmod(&creds, 0o600);
    // Every log line on, the signer's included: no secret in them.
    let mut cmd = with_keys(t.command(&["peer", "add", "cloud", &loc]), wrong);
    cmd.env("TROVE_LOG", "trace");
    let out = run_bounded(cmd, COMMAND_TIMEOUT);
    assert_code(&out, 0, &["peer", "add"]);
    assert!(
        !stderr(&out).contains(SECRET_KEY),
        "a log line holds the secret"
    );
    let peers = t.ok_json(&["peer", "list"]);
    assert!(!peers.to_string().contains(SECRET_KEY), "{peers}");
    // A bucket that does not exist is named as such.
    let out = run_s3(
        &t,
        &[
            "peer",
            "add",
            "nob",
            &server.location("no-such-bucket", "t"),
        ],
    );
    assert_code(&out, 1, &["peer", "add", "nob"]);
    assert!(stderr(&out).contains("bucket"), "{}", stderr(&out));
}
