//! Remote peers against a real SeaweedFS S3 server on 127.0.0.1: the peer
//! contract every peer keeps, creation, and the failures a bucket has
//! (wrong credentials, missing bucket, server gone). Skips loudly when
//! `weed` is not installed (`.ci/run` installs it).

use std::time::{Duration, Instant, SystemTime};

use trove_peer::testing::contract;
use trove_peer::{layout, MetaKey, Peer, PeerError};
use trove_remote::testing::{Seaweed, ACCESS_KEY, SECRET_KEY};
use trove_remote::{Credentials, RemoteLocation, RemotePeer};

const BUCKET: &str = "contract";

/// A server of this test's own, stopped (by pid) when dropped: a static
/// one would outlive the test process.
fn server() -> Option<Seaweed> {
    Seaweed::start(&[BUCKET])
}

fn creds() -> Credentials {
    Credentials {
        access_key_id: Some(ACCESS_KEY.into()),
        secret_access_key: Some(SECRET_KEY.into()),
        ..Credentials::default()
    }
}

fn location(s: &Seaweed, prefix: &str) -> RemoteLocation {
    s.location(BUCKET, prefix).parse().unwrap()
}

/// A new, empty peer under its own prefix.
fn fresh(s: &Seaweed, name: &str) -> (RemotePeer, RemoteLocation) {
    let loc = location(s, &format!("{name}-{:08x}", rand::random::<u32>()));
    (RemotePeer::create(name, &loc, &creds()).unwrap(), loc)
}

/// Overwrite an object behind the peer's back (bit rot, a meddling admin).
fn overwrite(s: &Seaweed, loc: &RemoteLocation, path: &str, bytes: &[u8]) {
    let RemoteLocation::S3 { prefix, .. } = loc else {
        unreachable!()
    };
    let op = opendal::Operator::new(
        opendal::services::S3::default()
            .bucket(BUCKET)
            .root(&format!("/{prefix}"))
            .endpoint(&s.endpoint)
            .region("us-east-1")
            .access_key_id(ACCESS_KEY)
            .secret_access_key(SECRET_KEY)
            .disable_config_load()
            .disable_ec2_metadata(),
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(op.write(path, bytes.to_vec())).unwrap();
}

#[test]
fn a_bucket_keeps_the_peer_contract() {
    let Some(s) = server() else { return };
    let s = &s;
    let (p, _) = fresh(s, "c1");
    contract::put_get_has_list_range(&p);
    let (p, _) = fresh(s, "c2");
    contract::wrong_hash_is_refused_and_nothing_stored(&p);
    let (p, loc) = fresh(s, "c3");
    contract::put_replaces_a_damaged_copy(&p, &|id, b| {
        overwrite(s, &loc, &layout::fragment_path(id), b)
    });
    let (p, loc) = fresh(s, "c4");
    contract::truncated_fragment_is_returned_as_is(&p, &|id, b| {
        overwrite(s, &loc, &layout::fragment_path(id), b)
    });
    let (p, _) = fresh(s, "c5");
    contract::meta_put_get_list_per_container(&p);
    let (p, _) = fresh(s, "c6");
    contract::stolen_key_cannot_overwrite_or_roll_back_metadata(&p);
    let (p, _) = fresh(s, "c6h");
    contract::a_hand_over_lets_the_new_identity_replace_the_old(&p);
    let (p, loc) = fresh(s, "c7");
    contract::a_damaged_meta_copy_is_replaced(&p, &|k: &MetaKey, b| {
        overwrite(s, &loc, &layout::meta_path(k), b)
    });
}

#[test]
fn deletion_is_delayed_undone_and_purged_after_the_grace_period() {
    let Some(s) = server() else { return };
    let s = &s;
    let (p, _) = fresh(s, "del");
    let contract::DeletedFragment { deleted, kept } =
        contract::deleted_fragment_is_gone_at_once(&p);
    // Still in the trash: it comes back.
    assert!(p.undelete_fragment(&deleted.0).unwrap());
    assert_eq!(p.get_fragment(&deleted.0).unwrap(), deleted.1);
    assert!(
        !p.undelete_fragment(&deleted.0).unwrap(),
        "the trash is empty"
    );
    p.delete_fragment(&deleted.0).unwrap();
    let trashed = contract::deleted_and_replaced_metadata_is_in_the_trash(&p);
    // Within the grace period nothing goes; after it, the fragment and the
    // two trashed objects do.
    assert_eq!(
        p.purge_expired(Duration::from_secs(3600), SystemTime::now())
            .unwrap(),
        0
    );
    let later = SystemTime::now() + Duration::from_secs(7200);
    assert_eq!(
        p.purge_expired(Duration::from_secs(3600), later).unwrap(),
        3
    );
    assert!(!p.undelete_fragment(&deleted.0).unwrap());
    assert!(p
        .list_deleted_meta(Some(&trashed.container))
        .unwrap()
        .is_empty());
    assert_eq!(p.get_fragment(&kept.0).unwrap(), kept.1);
    let stat = p.stat().unwrap();
    assert_eq!(
        (stat.fragments, stat.fragment_bytes),
        (1, kept.1.len() as u64)
    );
}

#[test]
fn create_marks_an_empty_prefix_and_refuses_a_foreign_one() {
    let Some(s) = server() else { return };
    let s = &s;
    let (_, loc) = fresh(s, "mk");
    // Creating again opens it.
    RemotePeer::create("mk", &loc, &creds()).unwrap();
    let foreign = location(s, &format!("photos-{:08x}", rand::random::<u32>()));
    overwrite(s, &foreign, "holiday.jpg", b"jpeg");
    let e = RemotePeer::create("f", &foreign, &creds()).unwrap_err();
    assert!(matches!(e, PeerError::Refused { .. }), "{e}");
    assert!(e.to_string().contains("not a Trove peer"), "{e}");
    let future = location(s, &format!("future-{:08x}", rand::random::<u32>()));
    overwrite(
        s,
        &future,
        trove_remote::MARKER_FILE,
        b"trove remote peer v9\n",
    );
    let e = RemotePeer::create("v9", &future, &creds()).unwrap_err();
    assert!(e.to_string().contains("v9"), "{e}");
}

#[test]
fn wrong_credentials_and_a_missing_bucket_say_so_without_the_secret() {
    let Some(s) = server() else { return };
    let s = &s;
    let (p, loc) = fresh(s, "ok");
    let (id, bytes) = trove_peer::testing::fragment(9, 500);
    p.put_fragment(&id, &bytes).unwrap();

    let wrong = Credentials {
        secret_access_key: Some("not-the-secret-81723".into()),
        ..creds()
    };
    let bad = RemotePeer::open("cloud-1", &loc, &wrong).unwrap();
    let e = bad.get_fragment(&id).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, PeerError::Refused { .. }), "{text}");
    assert!(text.contains("403") && text.contains("cloud-1"), "{text}");
    assert!(
        !text.contains("not-the-secret") && !text.contains(SECRET_KEY),
        "{text}"
    );
    assert!(e.is_retryable_elsewhere());

    let gone: RemoteLocation = s.location("no-such-bucket", "x").parse().unwrap();
    let e = RemotePeer::open("nb", &gone, &creds())
        .unwrap()
        .has_fragment(&id)
        .unwrap_err();
    assert!(matches!(e, PeerError::Unavailable { .. }), "{e}");
    assert!(e.to_string().contains("bucket"), "{e}");
}

#[test]
fn a_server_that_is_down_is_unavailable_after_bounded_retries() {
    // Its own server, killed here.
    let Some(mut s) = Seaweed::start(&["down"]) else {
        return;
    };
    let loc: RemoteLocation = s.location("down", "p").parse().unwrap();
    let p = RemotePeer::create("d", &loc, &creds()).unwrap();
    let (id, bytes) = trove_peer::testing::fragment(3, 100);
    p.put_fragment(&id, &bytes).unwrap();
    s.kill();
    let started = Instant::now();
    let e = p.get_fragment(&id).unwrap_err();
    assert!(matches!(e, PeerError::Unavailable { .. }), "{e}");
    assert!(e.is_retryable_elsewhere());
    // Bounded: a handful of retries with backoff, not a hang.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    let e = p.put_fragment(&id, &bytes).unwrap_err();
    assert!(matches!(e, PeerError::Unavailable { .. }), "{e}");
}

/// A server that answers every request with 503 (a storm of server
/// errors; SeaweedFS cannot be made to do this on demand): each request is
/// retried a bounded number of times, then the peer is unavailable, and for
/// a while later requests fail without asking again.
#[test]
fn a_5xx_storm_is_retried_a_bounded_number_of_times_then_unavailable() {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = requests.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut buf = [0u8; 65536];
            // One request per connection: read the head (and any small body).
            let _ = conn.set_read_timeout(Some(Duration::from_millis(300)));
            let _ = conn.read(&mut buf);
            seen.fetch_add(1, Ordering::SeqCst);
            let _ = conn.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let loc: RemoteLocation = format!("s3://storm/p?endpoint=http://127.0.0.1:{port}")
        .parse()
        .unwrap();
    let p = RemotePeer::open("storm", &loc, &creds()).unwrap();
    let (id, bytes) = trove_peer::testing::fragment(4, 100);
    let started = Instant::now();
    let e = p.put_fragment(&id, &bytes).unwrap_err();
    assert!(matches!(e, PeerError::Unavailable { .. }), "{e}");
    assert!(e.is_retryable_elsewhere());
    let asked = requests.load(Ordering::SeqCst);
    assert_eq!(asked, 5, "one request and four retries");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    // Held down: the next request fails at once, without a request.
    let e = p.get_fragment(&id).unwrap_err();
    assert!(matches!(e, PeerError::Unavailable { .. }), "{e}");
    assert_eq!(requests.load(Ordering::SeqCst), asked);
}
