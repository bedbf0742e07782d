//! The node protocol end to end, over real iroh endpoints.
//!
//! Every node and owner here binds 127.0.0.1 in [`NetworkMode::Direct`]: no
//! relays, no mDNS, no internet. Each node runs on its own tokio runtime in a
//! background thread (`trove_node::testing::TestNode`); owners use the
//! blocking `NodePeer` from plain threads, as the owner's code does. Every
//! test body runs under [`bounded`], so a hang fails that test instead of
//! stalling the suite.
//!
//! Layout: harness (bounded runs, files; test nodes and owners come from
//! `trove_node::testing`), then one section per property: the peer
//! contract, round trip, grants, namespaces, hash mismatch, quota,
//! malformed messages, audits, interrupted transfers, grace period.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use iroh::endpoint::{Connection, ConnectionError};
use rand::RngCore;
use trove_core::keys::MasterSecret;
use trove_core::{ContainerId, FragmentId, SegmentId, SnapshotId};
use trove_node::proto::{self, Request, Response, ALPN, MAX_RESPONSE_FRAME};
use trove_node::store::NodeStore;
use trove_node::testing::{direct_local, new_client, Stop, TestNode};
use trove_node::{NodeClient, NodeDir, NodeTicket, OwnerId};
use trove_peer::audit::{self, AuditRange};
use trove_peer::testing::{contract, signed_by};
use trove_peer::{MetaKey, MetaRejection, Peer, PeerError};

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

const MIB: usize = 1 << 20;
/// The grace period of deleted fragments on test nodes.
const GRACE: Duration = Duration::from_secs(3600);

/// Run `body` on its own thread and fail if it takes longer than `limit`.
/// Panics in `body` are re-raised here, so assertions fail the test.
fn bounded(limit: Duration, body: impl FnOnce() + Send + 'static) {
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let handle = thread::Builder::new()
        .name("test-body".into())
        .spawn(move || {
            body();
            let _ = done_tx.send(());
        })
        .expect("spawn the test thread");
    match done_rx.recv_timeout(limit) {
        // Disconnected: the body panicked; join re-raises its panic.
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(panic) = handle.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("test did not finish within {limit:?}: something hangs")
        }
    }
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut v);
    v
}

/// Regular files under `dir`, recursively (none if it does not exist).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let path = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => out.extend(files_under(&path)),
            Ok(t) if t.is_file() => out.push(path),
            _ => {}
        }
    }
    out.sort();
    out
}

/// Files under `owners/*/<sub>` of a node's data folder, for every owner.
fn owner_files(data: &Path, sub: &str) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(data.join("owners")) else {
        return Vec::new();
    };
    rd.flatten()
        .flat_map(|o| files_under(&o.path().join(sub)))
        .collect()
}

/// Leftovers of receives: `.part` files in `owners/*/tmp`.
fn part_files(data: &Path) -> Vec<PathBuf> {
    owner_files(data, "tmp")
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "part"))
        .collect()
}

/// Every file under `owners/*/fragments` must hash to its own name.
fn assert_fragment_files_intact(data: &Path) {
    for f in owner_files(data, "fragments") {
        let bytes = fs::read(&f).expect("read a fragment file");
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        assert_eq!(
            FragmentId::of(&bytes).to_hex(),
            name,
            "{} does not hash to its name: the node stored a damaged or partial fragment",
            f.display()
        );
    }
}

/// The file of fragment `id` of one owner on the node's disk.
fn fragment_path(owner_dir: &Path, id: &FragmentId) -> PathBuf {
    let hex = id.to_hex();
    owner_dir.join("fragments").join(&hex[..2]).join(hex)
}

fn assert_refused_with_hint(err: &PeerError) {
    match err {
        PeerError::Refused { reason, .. } => assert!(
            reason.contains("trove node grant"),
            "the refusal should tell the owner how to get granted: {reason}"
        ),
        other => panic!("expected a refusal (not granted), got {other:?}"),
    }
}

fn assert_not_found<T: std::fmt::Debug>(r: Result<T, PeerError>, what: &str) {
    match r {
        Err(e) if e.is_not_found() => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

/// Compare big byte strings without printing them.
fn assert_same_bytes(got: &[u8], want: &[u8], what: &str) {
    assert!(
        got == want,
        "{what}: got {} bytes (hash {}), want {} bytes (hash {})",
        got.len(),
        FragmentId::of(got).short(),
        want.len(),
        FragmentId::of(want).short()
    );
}

// ---------------------------------------------------------------------------
// 0. The peer contract, as folder and memory peers keep it
// ---------------------------------------------------------------------------

/// The properties of `trove_peer::testing::contract` run against a node
/// peer, each for a fresh owner (a namespace of its own) of one node. The
/// stored bytes are damaged in the owner's folder on the node.
#[test]
fn node_peer_keeps_the_peer_contract() {
    bounded(Duration::from_secs(120), || {
        let node = TestNode::start(GRACE);
        let owner = || {
            let client = new_client();
            node.grant(&client, 64 * MIB as u64);
            (node.peer(&client), client)
        };
        let (peer, _c) = owner();
        contract::put_get_has_list_range(&peer);
        let (peer, _c) = owner();
        contract::wrong_hash_is_refused_and_nothing_stored(&peer);
        let (peer, client) = owner();
        let dir = node.owner_dir(&client);
        contract::truncated_fragment_is_returned_as_is(&peer, &|id, bytes| {
            fs::write(fragment_path(&dir, id), bytes).expect("damage a fragment")
        });
        let (peer, _c) = owner();
        contract::deleted_fragment_is_gone_at_once(&peer);
        let (peer, _c) = owner();
        contract::meta_put_get_list_per_container(&peer);
        let (peer, _c) = owner();
        contract::stolen_key_cannot_overwrite_or_roll_back_metadata(&peer);
        let (peer, _c) = owner();
        contract::deleted_and_replaced_metadata_is_in_the_trash(&peer);
        let (peer, client) = owner();
        let dir = node.owner_dir(&client);
        contract::a_damaged_meta_copy_is_replaced(&peer, &|key, bytes| {
            let MetaKey::IndexSegment(c, g) = key else {
                unreachable!("the contract damages an index segment")
            };
            let path = dir
                .join("meta")
                .join(c.to_hex())
                .join("index")
                .join(g.to_hex());
            fs::write(path, bytes).expect("damage a segment")
        });
        // Not kept by a node: `put_replaces_a_damaged_copy`. A node answers
        // a put of a fragment it has a file for with Ok and keeps the file
        // as it is, damaged or not (server.rs, `put`).
    });
}

// ---------------------------------------------------------------------------
// 1. Round trip of every request
// ---------------------------------------------------------------------------

#[test]
fn round_trip_of_every_request() {
    bounded(Duration::from_secs(120), || {
        let node = TestNode::start(GRACE);
        let client = new_client();
        let quota = 64 * MIB as u64;
        node.grant(&client, quota);
        let peer = node.peer(&client);
        assert_eq!(peer.hello().expect("hello"), (quota, 0));

        // A ~5 MiB fragment, streamed both ways.
        let big = random_bytes(5 * MIB + 123);
        let big_id = FragmentId::of(&big);
        let n = big.len() as u64;
        peer.put_fragment(&big_id, &big).expect("put 5 MiB");
        peer.put_fragment(&big_id, &big)
            .expect("putting a held fragment again is Ok");
        assert_same_bytes(&peer.get_fragment(&big_id).expect("get"), &big, "get");

        // Ranges: middle, tail running past the end (short), past the end (empty).
        let mid = peer
            .get_fragment_range(&big_id, 1_000_000, 70_000)
            .expect("middle range");
        assert_same_bytes(&mid, &big[1_000_000..1_070_000], "middle range");
        let tail = peer
            .get_fragment_range(&big_id, n - 10, 100)
            .expect("range past the end");
        assert_same_bytes(&tail, &big[big.len() - 10..], "range past the end");
        let rest = peer
            .get_fragment_range(&big_id, n - 5, u64::MAX)
            .expect("range to the end");
        assert_same_bytes(&rest, &big[big.len() - 5..], "range to the end");
        let past = peer
            .get_fragment_range(&big_id, n + 1000, 10)
            .expect("range after the end");
        assert!(past.is_empty(), "range after the end: {} bytes", past.len());

        assert!(peer.has_fragment(&big_id).expect("has"));
        let absent = FragmentId(rand::random());
        assert!(!peer.has_fragment(&absent).expect("has (absent)"));
        assert_not_found(peer.get_fragment(&absent), "get of an absent fragment");

        // A second fragment to list and delete.
        let small = random_bytes(4096);
        let small_id = FragmentId::of(&small);
        peer.put_fragment(&small_id, &small).expect("put small");
        let mut both = vec![big_id, small_id];
        both.sort();
        assert_eq!(peer.list_fragments().expect("list"), both);
        let st = peer.stat().expect("stat");
        assert_eq!((st.fragments, st.fragment_bytes), (2, n + 4096));

        peer.delete_fragment(&small_id).expect("delete");
        assert_eq!(peer.list_fragments().expect("list"), vec![big_id]);
        assert!(!peer.has_fragment(&small_id).expect("has after delete"));
        assert_not_found(peer.get_fragment(&small_id), "get after delete");
        assert_not_found(
            peer.get_fragment_range(&small_id, 0, 10),
            "range after delete",
        );
        peer.delete_fragment(&small_id)
            .expect("deleting an absent fragment is Ok");

        // Signed metadata objects of two containers.
        let me = MasterSecret::generate();
        let c1 = ContainerId([1; 32]);
        let c2 = ContainerId([9; 32]);
        let manifest = MetaKey::Container(c1);
        let snapshot = MetaKey::Snapshot(c1, SnapshotId([2; 32]));
        let segment = MetaKey::IndexSegment(c1, SegmentId([3; 32]));
        let other = MetaKey::Container(c2);
        let old_manifest = signed_by(&me, &manifest, 1, &random_bytes(2_000));
        let objects: Vec<(MetaKey, Vec<u8>)> = vec![
            (manifest, old_manifest.clone()),
            (
                snapshot,
                signed_by(&me, &snapshot, 0, &random_bytes(10_000)),
            ),
            (segment, signed_by(&me, &segment, 0, &random_bytes(300_000))),
            (other, signed_by(&me, &other, 1, b"c2")),
        ];
        for (k, v) in &objects {
            peer.put_meta(k, v).expect("put meta");
        }
        for (k, v) in &objects {
            assert_same_bytes(&peer.get_meta(k).expect("get meta"), v, "get meta");
        }
        let new_manifest = signed_by(&me, &manifest, 2, b"new manifest");
        peer.put_meta(&manifest, &new_manifest)
            .expect("replace meta");
        assert_eq!(peer.get_meta(&manifest).expect("get meta"), new_manifest);
        // The replaced revision waits in the trash, and counts.
        assert_eq!(
            peer.get_deleted_meta(&manifest).expect("replaced copy"),
            old_manifest
        );
        let mut of_c1 = vec![manifest, snapshot, segment];
        of_c1.sort();
        assert_eq!(peer.list_meta(Some(&c1)).expect("list meta c1"), of_c1);
        assert_eq!(
            peer.list_meta(Some(&c2)).expect("list meta c2"),
            vec![other]
        );
        let mut all = vec![manifest, snapshot, segment, other];
        all.sort();
        assert_eq!(peer.list_meta(None).expect("list meta"), all);
        assert_not_found(
            peer.get_meta(&MetaKey::Container(ContainerId([7; 32]))),
            "get of absent meta",
        );

        // Counts and usage: one fragment, the deleted one in the trash, and
        // metadata (live and replaced) count towards the quota.
        let meta_bytes: u64 = objects.iter().map(|(_, v)| v.len() as u64).sum::<u64>()
            + new_manifest.len() as u64
            + 4096;
        let st = peer.stat().expect("stat");
        assert_eq!((st.fragments, st.fragment_bytes), (1, n));
        let free = st.free_bytes.expect("a node reports free bytes");
        assert!(
            free <= quota - n - meta_bytes,
            "free {free} exceeds the quota left {}",
            quota - n - meta_bytes
        );
        assert_eq!(peer.hello().expect("hello"), (quota, n + meta_bytes));
    });
}

// ---------------------------------------------------------------------------
// 2. Grants: unknown owners are refused, grant and revoke apply at once
// ---------------------------------------------------------------------------

#[test]
fn unknown_owner_is_refused_until_granted_and_after_revoke() {
    bounded(Duration::from_secs(90), || {
        let node = TestNode::start(GRACE);
        let client = new_client();
        let peer = node.peer(&client);
        let bytes = random_bytes(1000);
        let id = FragmentId::of(&bytes);

        assert_refused_with_hint(&peer.hello().expect_err("hello from an unknown owner"));
        assert_refused_with_hint(
            &peer
                .put_fragment(&id, &bytes)
                .expect_err("put from an unknown owner"),
        );
        assert_refused_with_hint(
            &peer
                .has_fragment(&id)
                .expect_err("has from an unknown owner"),
        );
        assert_refused_with_hint(&peer.stat().expect_err("stat from an unknown owner"));
        assert!(
            !node.owner_dir(&client).exists(),
            "the node made a namespace for an owner it never granted"
        );

        // Granted while the node runs: works without a restart.
        node.grant(&client, 10 * MIB as u64);
        assert_eq!(
            peer.hello().expect("hello once granted"),
            (10 * MIB as u64, 0)
        );
        peer.put_fragment(&id, &bytes).expect("put once granted");
        assert!(peer.has_fragment(&id).expect("has once granted"));

        // The node notices grants.json changes by its mtime: let the clock
        // tick past the grant's (see `revoke_in_the_same_mtime_tick_applies`).
        thread::sleep(Duration::from_millis(50));
        node.revoke(&client);
        assert_refused_with_hint(&peer.hello().expect_err("hello after revoke"));
        assert_refused_with_hint(&peer.get_fragment(&id).expect_err("get after revoke"));
    });
}

/// A large put from an unknown owner must come back as "not granted" too,
/// not as a lost connection (which would hide the `trove node grant` hint
/// and mark the node as down).
#[test]
fn unknown_owner_large_put_is_refused_not_lost() {
    bounded(Duration::from_secs(90), || {
        let node = TestNode::start(GRACE);
        let client = new_client();
        let peer = node.peer(&client);
        let bytes = random_bytes(8 * MIB);
        let id = FragmentId::of(&bytes);
        assert_refused_with_hint(
            &peer
                .put_fragment(&id, &bytes)
                .expect_err("a large put from an unknown owner"),
        );
    });
}

/// grants.json rewritten within one timestamp tick of the version the node
/// cached (1 s on ext3, FAT or HFS+, a few ms for new files on ext4): a
/// revoke must still take effect.
#[test]
fn revoke_in_the_same_mtime_tick_applies() {
    bounded(Duration::from_secs(60), || {
        let node = TestNode::start(GRACE);
        let client = new_client();
        node.grant(&client, MIB as u64);
        let peer = node.peer(&client);
        peer.hello().expect("hello once granted");
        let grants = node.data().join("grants.json");
        let cached = fs::metadata(&grants)
            .and_then(|m| m.modified())
            .expect("grants.json mtime");
        node.revoke(&client);
        fs::File::options()
            .append(true)
            .open(&grants)
            .and_then(|f| f.set_modified(cached))
            .expect("set grants.json mtime");
        assert_refused_with_hint(&peer.hello().expect_err("hello after revoke"));
    });
}

// ---------------------------------------------------------------------------
// 3. Namespaces: owners never see each other's data
// ---------------------------------------------------------------------------

#[test]
fn owners_cannot_touch_each_others_fragments() {
    bounded(Duration::from_secs(90), || {
        let node = TestNode::start(GRACE);
        let (a_client, b_client) = (new_client(), new_client());
        node.grant(&a_client, 10 * MIB as u64);
        node.grant(&b_client, 10 * MIB as u64);
        let (a, b) = (node.peer(&a_client), node.peer(&b_client));

        let bytes = random_bytes(200_000);
        let id = FragmentId::of(&bytes);
        a.put_fragment(&id, &bytes).expect("A puts");
        let c = ContainerId([4; 32]);
        let a_manifest = signed_by(&MasterSecret::generate(), &MetaKey::Container(c), 1, b"A's");
        a.put_meta(&MetaKey::Container(c), &a_manifest)
            .expect("A puts meta");

        assert_not_found(b.get_fragment(&id), "B gets A's fragment");
        assert_not_found(b.get_fragment_range(&id, 0, 100), "B reads a range of A's");
        assert!(!b.has_fragment(&id).expect("B has"), "B sees A's fragment");
        assert!(b.list_fragments().expect("B lists").is_empty());
        assert_eq!(b.stat().expect("B stat").fragments, 0);
        let range = AuditRange {
            offset: 0,
            len: 100,
        };
        assert_not_found(b.audit_fragment(&id, &[range]), "B audits A's fragment");
        assert_not_found(b.get_meta(&MetaKey::Container(c)), "B gets A's meta");
        assert!(b.list_meta(None).expect("B lists meta").is_empty());
        b.delete_fragment(&id)
            .expect("B's delete of a fragment it does not hold is a no-op");

        assert!(a.has_fragment(&id).expect("A has"));
        assert_same_bytes(
            &a.get_fragment(&id).expect("A gets"),
            &bytes,
            "A's fragment",
        );
        assert_eq!(a.list_fragments().expect("A lists"), vec![id]);
        assert!(
            files_under(&node.owner_dir(&a_client).join("trash")).is_empty(),
            "B's delete moved A's fragment to the trash"
        );
    });
}

// ---------------------------------------------------------------------------
// 4. Puts whose bytes do not hash to their id
// ---------------------------------------------------------------------------

#[test]
fn put_with_wrong_hash_is_refused_and_stores_nothing() {
    bounded(Duration::from_secs(90), || {
        let node = TestNode::start(GRACE);
        let client = new_client();
        node.grant(&client, 64 * MIB as u64);
        let peer = node.peer(&client);

        let claimed = random_bytes(MIB + 17);
        let id = FragmentId::of(&claimed);
        let other = random_bytes(MIB + 17);
        let err = peer
            .put_unchecked(&id, &other)
            .expect_err("the node accepted bytes that do not hash to the id");
        assert!(
            matches!(
                err,
                PeerError::Corrupt { .. } | PeerError::HashMismatch { .. }
            ),
            "expected a hash refusal, got {err:?}"
        );
        assert!(!peer.has_fragment(&id).expect("has"));
        assert_not_found(peer.get_fragment(&id), "get after a refused put");
        assert_eq!(owner_files(node.data(), "fragments"), Vec::<PathBuf>::new());
        assert_eq!(part_files(node.data()), Vec::<PathBuf>::new());
        assert_eq!(
            peer.hello().expect("hello").1,
            0,
            "a refused put still counts against the quota"
        );

        // The same against a fragment the node already holds.
        peer.put_fragment(&id, &claimed).expect("honest put");
        let err = peer
            .put_unchecked(&id, &other)
            .expect_err("the node accepted wrong bytes for a held id");
        assert!(
            matches!(
                err,
                PeerError::Corrupt { .. } | PeerError::HashMismatch { .. }
            ),
            "expected a hash refusal, got {err:?}"
        );
        assert_same_bytes(&peer.get_fragment(&id).expect("get"), &claimed, "held copy");
        assert_eq!(owner_files(node.data(), "fragments").len(), 1);
        assert_fragment_files_intact(node.data());
        assert_eq!(part_files(node.data()), Vec::<PathBuf>::new());
        assert_eq!(peer.hello().expect("hello").1, claimed.len() as u64);
    });
}

// ---------------------------------------------------------------------------
// 5. Quotas
// ---------------------------------------------------------------------------

#[test]
fn quota_is_enforced() {
    bounded(Duration::from_secs(90), || {
        let node = TestNode::start(GRACE);
        let client = new_client();
        let quota = 3 * MIB as u64;
        node.grant(&client, quota);
        let peer = node.peer(&client);

        let first = random_bytes(2 * MIB);
        let first_id = FragmentId::of(&first);
        peer.put_fragment(&first_id, &first).expect("2 MiB of 3");
        let second = random_bytes(2 * MIB);
        let second_id = FragmentId::of(&second);
        match peer.put_fragment(&second_id, &second) {
            Err(PeerError::Full { .. }) => {}
            other => panic!("a put over the quota: expected Full, got {other:?}"),
        }
        assert!(!peer.has_fragment(&second_id).expect("has"));
        assert_eq!(part_files(node.data()), Vec::<PathBuf>::new());

        let free = peer.stat().expect("stat").free_bytes.expect("free bytes");
        assert!(
            free <= MIB as u64,
            "free {free} > the 1 MiB the quota leaves"
        );
        assert_eq!(peer.hello().expect("hello"), (quota, 2 * MIB as u64));

        // What the quota still allows goes through.
        let third = random_bytes(MIB / 2);
        let third_id = FragmentId::of(&third);
        peer.put_fragment(&third_id, &third)
            .expect("512 KiB within the quota");
    });
}

// ---------------------------------------------------------------------------
// 6. Malformed and oversized messages
// ---------------------------------------------------------------------------

/// Open a raw connection to the node (async, on the test's own runtime).
async fn raw_connect(ep: &iroh::Endpoint, ticket: &NodeTicket) -> Connection {
    let addr = ticket.endpoint_addr().expect("ticket address");
    tokio::time::timeout(Duration::from_secs(8), ep.connect(addr, ALPN))
        .await
        .expect("connect within 8 s")
        .expect("connect")
}

/// Send `bytes` on a fresh stream of a fresh connection; return how the
/// connection ended (the node must close it within a few seconds) and
/// whether the stream yielded a response.
async fn send_bad(
    ep: &iroh::Endpoint,
    ticket: &NodeTicket,
    bytes: &[u8],
) -> (Option<ConnectionError>, bool) {
    let conn = raw_connect(ep, ticket).await;
    let (mut send, mut recv) = conn.open_bi().await.expect("open a stream");
    // Writing may already fail if the node was quick to hang up.
    let _ = send.write_all(bytes).await;
    let _ = send.finish();
    let closed = tokio::time::timeout(Duration::from_secs(5), conn.closed())
        .await
        .ok();
    let answered = matches!(
        tokio::time::timeout(Duration::from_secs(1), recv.read_to_end(1 << 20)).await,
        Ok(Ok(b)) if !b.is_empty()
    );
    (closed, answered)
}

#[test]
fn malformed_and_oversized_messages_drop_only_that_connection() {
    bounded(Duration::from_secs(120), || {
        let node = TestNode::start(GRACE);
        let good_client = new_client();
        node.grant(&good_client, 10 * MIB as u64);
        let good = Arc::new(node.peer(&good_client));
        let frag = random_bytes(100_000);
        let frag_id = FragmentId::of(&frag);
        good.put_fragment(&frag_id, &frag).expect("good owner puts");

        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("raw owner runtime");
        let raw_key = iroh::SecretKey::from_bytes(&rand::random());
        let ep = rt
            .block_on(direct_local().bind(raw_key, Vec::new(), false))
            .expect("raw endpoint");
        node.node_dir()
            .grant(OwnerId(*ep.id().as_bytes()), MIB as u64)
            .expect("grant the raw owner");

        // The good owner works all along, from another thread.
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let (good, stop, frag) = (good.clone(), stop.clone(), frag.clone());
            thread::spawn(move || -> Result<u32, String> {
                let mut rounds = 0;
                while !stop.load(Ordering::SeqCst) || rounds == 0 {
                    good.hello().map_err(|e| format!("hello: {e}"))?;
                    let got = good
                        .get_fragment(&frag_id)
                        .map_err(|e| format!("get: {e}"))?;
                    if got != frag {
                        return Err("get returned other bytes".into());
                    }
                    rounds += 1;
                    thread::sleep(Duration::from_millis(20));
                }
                Ok(rounds)
            })
        };

        // A stalled request: 100 bytes announced, 10 sent, stream left open.
        let (stalled_conn, stalled_send) = rt.block_on(async {
            let conn = raw_connect(&ep, node.ticket()).await;
            let (mut send, _recv) = conn.open_bi().await.expect("open a stream");
            send.write_all(&100u32.to_le_bytes()).await.expect("write");
            send.write_all(&[1; 10]).await.expect("write");
            (conn, send)
        });

        let mut unknown_version = proto::encode(&Request::Stat);
        unknown_version[4] = 9;
        let mut oversized = 10_000_000u32.to_le_bytes().to_vec();
        oversized.extend([0u8; 64]);
        let cases: [(&str, Vec<u8>); 3] = [
            ("a frame announcing 10 MB", oversized),
            (
                "garbage in a small frame",
                vec![5, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff],
            ),
            ("an unknown protocol version", unknown_version),
        ];
        for (what, bytes) in cases {
            let started = Instant::now();
            let (closed, answered) = rt.block_on(send_bad(&ep, node.ticket(), &bytes));
            match closed {
                Some(ConnectionError::ApplicationClosed(_)) => {}
                Some(other) => {
                    panic!("{what}: connection ended by {other}, not closed by the node")
                }
                None => panic!("{what}: the node kept the connection open for 5 s"),
            }
            assert!(!answered, "{what}: the node answered a bad request");
            eprintln!("{what}: connection dropped after {:?}", started.elapsed());
            assert_eq!(
                good.hello().expect("hello between attacks").0,
                10 * MIB as u64
            );
            assert_same_bytes(&good.get_fragment(&frag_id).expect("get"), &frag, "get");
        }

        stop.store(true, Ordering::SeqCst);
        let rounds = worker
            .join()
            .expect("worker thread")
            .unwrap_or_else(|e| panic!("the good owner failed during the attacks: {e}"));
        assert!(rounds >= 1);
        drop(stalled_send);
        stalled_conn.close(0u32.into(), b"done");

        // After: the good owner still works, and the raw owner is not
        // banned: a well-formed request on a new connection is answered.
        assert_same_bytes(
            &good.get_fragment(&frag_id).expect("get after"),
            &frag,
            "get",
        );
        let resp: Response = rt.block_on(async {
            let conn = raw_connect(&ep, node.ticket()).await;
            let (mut send, mut recv) = conn.open_bi().await.expect("open a stream");
            let hello = Request::Hello {
                client: "raw".into(),
            };
            proto::write_msg(&mut send, &hello).await.expect("write");
            send.finish().expect("finish");
            let resp = tokio::time::timeout(
                Duration::from_secs(5),
                proto::read_msg(&mut recv, MAX_RESPONSE_FRAME),
            )
            .await
            .expect("answer within 5 s")
            .expect("read the answer");
            conn.close(0u32.into(), b"done");
            resp
        });
        assert!(
            matches!(resp, Response::Hello { quota, used: 0, .. } if quota == MIB as u64),
            "{resp:?}"
        );
        rt.block_on(async {
            let _ = tokio::time::timeout(Duration::from_secs(2), ep.close()).await;
        });
        rt.shutdown_timeout(Duration::from_secs(2));
    });
}

// ---------------------------------------------------------------------------
// 7. Audits
// ---------------------------------------------------------------------------

#[test]
fn audits_prove_intact_fragments_and_catch_damage() {
    bounded(Duration::from_secs(90), || {
        let node = TestNode::start(GRACE);
        let client = new_client();
        node.grant(&client, 10 * MIB as u64);
        let peer = node.peer(&client);
        let bytes = random_bytes(300_007);
        let id = FragmentId::of(&bytes);
        let len = bytes.len() as u64;
        peer.put_fragment(&id, &bytes).expect("put");

        let mut ranges = audit::pick_ranges(len, 8, 4096, &mut rand::thread_rng());
        ranges.push(AuditRange {
            offset: 0,
            len: 100,
        });
        ranges.push(AuditRange {
            offset: len - 50,
            len: 4096,
        });
        let proofs = peer.audit_fragment(&id, &ranges).expect("audit");
        assert_eq!(proofs.len(), ranges.len());
        for (r, p) in ranges.iter().zip(&proofs) {
            let got = audit::verify(&id, *r, p)
                .unwrap_or_else(|e| panic!("proof of {r:?} rejected: {e}"));
            let end = (r.offset + r.len).min(len) as usize;
            assert_same_bytes(&got, &bytes[r.offset as usize..end], "proven bytes");
        }
        assert_not_found(
            peer.audit_fragment(&FragmentId(rand::random()), &ranges),
            "audit of an absent fragment",
        );

        // Flip one byte of the node's copy.
        let file = fragment_path(&node.owner_dir(&client), &id);
        let mut on_disk = fs::read(&file).expect("the fragment file is where the layout says");
        on_disk[150_000] ^= 0x01;
        fs::write(&file, &on_disk).expect("damage the fragment");

        let proofs = peer
            .audit_fragment(&id, &ranges)
            .expect("audit of a damaged copy");
        assert_eq!(proofs.len(), ranges.len());
        for (r, p) in ranges.iter().zip(&proofs) {
            assert!(
                audit::verify(&id, *r, p).is_err(),
                "a proof of {r:?} from a damaged copy was accepted"
            );
        }
        // The node serves what it has; the owner notices.
        let got = peer.get_fragment(&id).expect("get of a damaged copy");
        assert_ne!(FragmentId::of(&got), id, "damaged bytes hash to the id");
        assert_same_bytes(&got, &on_disk, "the node serves its (damaged) copy");
    });
}

// ---------------------------------------------------------------------------
// 8. A node killed or stopped mid-transfer
// ---------------------------------------------------------------------------

/// Start a 32 MiB put, stop the node `how` while the node is receiving it,
/// check the put fails in bounded time, then restart the node on the same
/// folder and check it holds the fragment whole or not at all.
fn interrupted_put(how: Stop) {
    let node = TestNode::start(GRACE);
    let node_id = node.ticket().node;
    let client = new_client();
    node.grant(&client, 1 << 30);
    let peer = node.peer(&client);
    peer.hello().expect("hello"); // connect first: the put streams at once
    let bytes = Arc::new(random_bytes(32 * MIB));
    let id = FragmentId::of(&bytes);

    let (tx, rx) = mpsc::channel();
    let putter = {
        let bytes = bytes.clone();
        thread::spawn(move || {
            let started = Instant::now();
            let r = peer.put_fragment(&id, &bytes);
            let _ = tx.send((r, started.elapsed()));
        })
    };
    // Wait until the node is writing the fragment to its tmp folder.
    let deadline = Instant::now() + Duration::from_secs(20);
    let in_flight = loop {
        let receiving = part_files(node.data())
            .iter()
            .any(|p| fs::metadata(p).is_ok_and(|m| m.len() > 0));
        if receiving {
            break true;
        }
        if putter.is_finished() || Instant::now() > deadline {
            break false;
        }
        thread::sleep(Duration::from_millis(1));
    };
    let stopped_at = Instant::now();
    let dir = match how {
        Stop::Graceful => node.stop(),
        Stop::Kill => node.kill(),
    };
    assert!(in_flight, "the put was never seen in flight on the node");
    let (result, took) = rx
        .recv_timeout(Duration::from_secs(40))
        .expect("the put hung after the node went away");
    putter.join().expect("put thread");
    eprintln!(
        "{how:?}: put ended {:?} after the stop ({took:?} in all): {result:?}",
        stopped_at.elapsed()
    );
    match result {
        Err(PeerError::Unavailable { .. }) => {}
        other => panic!("a put cut off by the node's {how:?}: expected Unavailable, got {other:?}"),
    }

    // Same folder, same key: whole or nothing.
    let node = TestNode::start_in(dir, GRACE);
    assert_eq!(
        node.ticket().node,
        node_id,
        "the restarted node has another key"
    );
    let peer = node.peer(&client);
    if peer.has_fragment(&id).expect("has after restart") {
        let got = peer.get_fragment(&id).expect("get after restart");
        assert_eq!(FragmentId::of(&got), id, "the node kept half a fragment");
    }
    assert_fragment_files_intact(node.data());
    // And the owner's retry goes through.
    peer.put_fragment(&id, &bytes).expect("retry after restart");
    assert_same_bytes(&peer.get_fragment(&id).expect("get"), &bytes, "retried put");
    assert_fragment_files_intact(node.data());
}

#[test]
fn node_killed_mid_transfer_keeps_fragment_whole_or_absent() {
    bounded(Duration::from_secs(180), || interrupted_put(Stop::Kill));
}

#[test]
fn node_stopped_mid_transfer_keeps_fragment_whole_or_absent() {
    bounded(Duration::from_secs(180), || interrupted_put(Stop::Graceful));
}

// ---------------------------------------------------------------------------
// 9. Deleted fragments are kept for the grace period
// ---------------------------------------------------------------------------

#[test]
fn deleted_fragments_stay_in_the_trash_for_the_grace_period() {
    bounded(Duration::from_secs(90), || {
        let node = TestNode::start(GRACE);
        let client = new_client();
        node.grant(&client, 10 * MIB as u64);
        let peer = node.peer(&client);
        let bytes = random_bytes(200_000);
        let id = FragmentId::of(&bytes);
        let len = bytes.len() as u64;
        peer.put_fragment(&id, &bytes).expect("put");
        assert_eq!(peer.hello().expect("hello").1, len);

        peer.delete_fragment(&id).expect("delete");
        assert!(!peer.has_fragment(&id).expect("has"));
        assert!(peer.list_fragments().expect("list").is_empty());
        assert_eq!(
            peer.hello().expect("hello").1,
            len,
            "a deleted fragment counts against the owner's quota until it is purged"
        );
        let trash = node.owner_dir(&client).join("trash");
        let kept = files_under(&trash);
        assert_eq!(kept.len(), 1, "trash holds {kept:?}");
        assert!(
            kept[0].to_string_lossy().ends_with(&id.to_hex()),
            "{kept:?} is not fragment {id:?}"
        );
        let kept_bytes = fs::read(&kept[0]).expect("read the trash");
        assert_eq!(FragmentId::of(&kept_bytes), id, "the trash copy is damaged");
        assert!(owner_files(node.data(), "fragments").is_empty());

        let dir = node.stop();
        // Within the grace period nothing is freed...
        let store = NodeStore::open(NodeDir::open(dir.path()).expect("node dir"), None, GRACE)
            .expect("store");
        assert_eq!(store.purge_expired(), 0, "purged within the grace period");
        assert_eq!(files_under(&trash).len(), 1);
        // ...and once it is over, the space comes back.
        let store = NodeStore::open(
            NodeDir::open(dir.path()).expect("node dir"),
            None,
            Duration::ZERO,
        )
        .expect("store");
        assert_eq!(store.purge_expired(), len, "bytes freed");
        assert!(files_under(&trash).is_empty(), "trash not emptied");
    });
}

// ---------------------------------------------------------------------------
// 10. A stolen transport key (issue 8, findings 1 and 5)
// ---------------------------------------------------------------------------

/// Ransomware that stole `transport.key` speaks to the node as the owner.
/// It can no longer overwrite the owner's metadata with garbage, roll a
/// container manifest back, or slip in objects signed by another identity;
/// what it deletes waits in the trash, readable by the owner.
#[test]
fn stolen_transport_key_cannot_wipe_metadata() {
    bounded(Duration::from_secs(120), || {
        let node = TestNode::start(GRACE);
        let seed: [u8; 32] = rand::random();
        let owner = NodeClient::start(seed, &direct_local()).expect("owner client");
        node.grant(&owner, 64 * MIB as u64);
        let peer = node.peer(&owner);
        let me = MasterSecret::generate();
        let c = ContainerId::random();
        let manifest = MetaKey::Container(c);
        let snapshot = MetaKey::Snapshot(c, SnapshotId::random());
        let segment = MetaKey::IndexSegment(c, SegmentId::random());
        let r1 = signed_by(&me, &manifest, 1, b"roster 1");
        let r2 = signed_by(&me, &manifest, 2, b"roster 2");
        let snap = signed_by(&me, &snapshot, 0, b"snapshot");
        let seg = signed_by(&me, &segment, 0, b"segment");
        for (k, v) in [(&segment, &seg), (&manifest, &r1), (&snapshot, &snap)] {
            peer.put_meta(k, v).expect("the owner's put");
        }
        peer.put_meta(&manifest, &r2).expect("a newer revision");
        let pinned = fs::read_to_string(node.owner_dir(&owner).join("identity"))
            .expect("the node pinned the owner's identity");
        assert_eq!(pinned.trim(), me.identity().public().to_hex());

        // The thief: same transport key, its own process and endpoint.
        let thief = NodeClient::start(seed, &direct_local()).expect("thief client");
        let stolen = node.peer(&thief);
        let rejected = |r: Result<(), PeerError>| match r {
            Err(PeerError::MetaRejected { reason, .. }) => *reason,
            other => panic!("expected the node to refuse, got {other:?}"),
        };
        for k in [&manifest, &snapshot, &segment] {
            assert!(matches!(
                rejected(stolen.put_meta(k, b"x")),
                MetaRejection::Invalid(_)
            ));
        }
        assert_eq!(
            rejected(stolen.put_meta(&manifest, &r1)),
            MetaRejection::NotNewer {
                held: 2,
                offered: 1
            }
        );
        let other = MasterSecret::generate();
        assert!(matches!(
            rejected(stolen.put_meta(&manifest, &signed_by(&other, &manifest, 9, b"mine"))),
            MetaRejection::WrongSigner { .. }
        ));
        // Even in a container the node has never seen: the owner is pinned.
        let elsewhere = MetaKey::Container(ContainerId::random());
        assert!(matches!(
            rejected(stolen.put_meta(&elsewhere, &signed_by(&other, &elsewhere, 1, b"x"))),
            MetaRejection::WrongSigner { .. }
        ));
        for (k, v) in [(&manifest, &r2), (&snapshot, &snap), (&segment, &seg)] {
            assert_eq!(&peer.get_meta(k).expect("intact"), v);
        }

        // Deleting is delayed: everything waits in the trash.
        for k in [&manifest, &snapshot, &segment] {
            stolen.delete_meta(k).expect("delete");
        }
        assert!(peer.list_meta(Some(&c)).expect("list").is_empty());
        let trashed: Vec<MetaKey> = peer
            .list_deleted_meta(Some(&c))
            .expect("list deleted")
            .into_iter()
            .map(|d| d.key)
            .collect();
        for k in [&manifest, &snapshot, &segment] {
            assert!(trashed.contains(k), "{k} is not in the trash: {trashed:?}");
        }
        assert_eq!(peer.get_deleted_meta(&manifest).expect("newest"), r2);
        assert_eq!(peer.get_deleted_meta(&snapshot).expect("snapshot"), snap);
        assert_eq!(peer.get_deleted_meta(&segment).expect("segment"), seg);
        // And the owner can put them back.
        for (k, v) in [(&segment, &seg), (&manifest, &r2), (&snapshot, &snap)] {
            peer.put_meta(k, v).expect("put back");
        }
    });
}

/// A granted owner cannot fill the node past its quota by putting and
/// deleting: deleted fragments count until the grace period ends.
#[test]
fn put_and_delete_cannot_fill_the_node_past_the_quota() {
    bounded(Duration::from_secs(90), || {
        let node = TestNode::start(GRACE);
        let client = new_client();
        let quota = 3 * MIB as u64;
        node.grant(&client, quota);
        let peer = node.peer(&client);
        let mut stored = 0u64;
        for round in 0..6 {
            let bytes = random_bytes(MIB);
            let id = FragmentId::of(&bytes);
            match peer.put_fragment(&id, &bytes) {
                Ok(()) => {
                    stored += MIB as u64;
                    peer.delete_fragment(&id).expect("delete");
                }
                Err(PeerError::Full { .. }) => {
                    assert_eq!(round, 3, "refused at round {round}");
                    break;
                }
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        assert_eq!(
            stored, quota,
            "the node took {stored} bytes on a {quota}-byte quota"
        );
        let trash: u64 = files_under(&node.owner_dir(&client).join("trash"))
            .iter()
            .map(|f| fs::metadata(f).map_or(0, |m| m.len()))
            .sum();
        assert_eq!(trash, quota);
        assert_eq!(peer.hello().expect("hello"), (quota, quota));
    });
}

/// A put that stalls until the request's time limit drops it gives back
/// what it reserved and leaves no `.part` file.
#[test]
fn a_put_dropped_at_the_time_limit_releases_its_reservation() {
    bounded(Duration::from_secs(90), || {
        let dir = tempfile::tempdir().expect("node folder");
        let node = TestNode::start_with(dir, GRACE, Duration::from_secs(2));
        let seed: [u8; 32] = rand::random();
        let client = NodeClient::start(seed, &direct_local()).expect("client");
        let quota = 4 * MIB as u64;
        node.grant(&client, quota);
        let peer = node.peer(&client);
        assert_eq!(peer.hello().expect("hello"), (quota, 0));

        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("raw owner runtime");
        let ep = rt
            .block_on(direct_local().bind(iroh::SecretKey::from_bytes(&seed), Vec::new(), false))
            .expect("raw endpoint");
        let ticket = node.ticket().clone();
        let data = node.data().to_owned();
        rt.block_on(async move {
            let conn = raw_connect(&ep, &ticket).await;
            let (mut send, _recv) = conn.open_bi().await.expect("stream");
            let id = FragmentId(rand::random());
            let frame = proto::encode(&Request::Put {
                id,
                len: 3 * MIB as u64,
            });
            send.write_all(&frame).await.expect("request");
            send.write_all(&random_bytes(100_000))
                .await
                .expect("a little");
            // Wait until the node holds the reservation and the part file.
            let deadline = Instant::now() + Duration::from_secs(10);
            while part_files(&data).is_empty() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert!(!part_files(&data).is_empty(), "the put never started");
            // ...then stall past the limit, with the stream open.
            tokio::time::sleep(Duration::from_secs(4)).await;
            drop(send);
            conn.close(0u32.into(), b"done");
        });
        assert_eq!(part_files(node.data()), Vec::<PathBuf>::new());
        assert_eq!(
            peer.hello().expect("hello"),
            (quota, 0),
            "the dropped put still holds its reservation"
        );
    });
}

/// An owner the node does not know gets its answer, then the node closes
/// the connection instead of reading its requests.
#[test]
fn an_ungranted_owner_is_answered_then_disconnected() {
    bounded(Duration::from_secs(60), || {
        let node = TestNode::start(GRACE);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let ep = rt
            .block_on(direct_local().bind(
                iroh::SecretKey::from_bytes(&rand::random()),
                Vec::new(),
                false,
            ))
            .expect("endpoint");
        let ticket = node.ticket().clone();
        rt.block_on(async move {
            let conn = raw_connect(&ep, &ticket).await;
            let (mut send, mut recv) = conn.open_bi().await.expect("stream");
            send.write_all(&proto::encode(&Request::Stat))
                .await
                .expect("request");
            let _ = send.finish();
            let answer: Response = proto::read_msg(&mut recv, MAX_RESPONSE_FRAME)
                .await
                .expect("an answer");
            assert!(
                matches!(
                    answer,
                    Response::Error {
                        kind: proto::ErrorKind::NotGranted,
                        ..
                    }
                ),
                "{answer:?}"
            );
            let closed = tokio::time::timeout(Duration::from_secs(10), conn.closed()).await;
            assert!(
                closed.is_ok(),
                "the node kept the connection of an ungranted owner"
            );
        });
    });
}
