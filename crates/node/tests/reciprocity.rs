//! The reciprocity ledger over real nodes on 127.0.0.1 (docs/design.md
//! §6a.5): a node run with `--reciprocal` refuses an owner's new fragments
//! past what it gives plus the allowance, keeps serving what it holds,
//! takes metadata and re-puts, and takes more once `proofs.json` shows
//! enough given; the operator is told in `Hello` and kept across runs; the
//! node's own observations land in `ledger.json`.

use std::time::Duration;

use rand::RngCore;
use trove_core::keys::MasterSecret;
use trove_core::{ContainerId, FragmentId};
use trove_node::ledger::{Proof, Proofs, Reciprocity, PROOF_TTL};
use trove_node::testing::{bounded, new_client, owner_of, TestNode};
use trove_node::NodePeer;
use trove_peer::testing::signed_by;
use trove_peer::{MetaKey, Peer, PeerError};

const KIB: u64 = 1 << 10;
const GRACE: Duration = Duration::from_secs(3600);

fn fragment(len: u64) -> (FragmentId, Vec<u8>) {
    let mut v = vec![0u8; len as usize];
    rand::thread_rng().fill_bytes(&mut v);
    (FragmentId::of(&v), v)
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn refused_by_reciprocity(r: Result<(), PeerError>, what: &str) -> String {
    match r {
        Err(e @ PeerError::Refused { .. }) => {
            assert!(e.is_retryable_elsewhere(), "{what}: {e}");
            e.to_string()
        }
        other => panic!("{what}: expected a reciprocity refusal, got {other:?}"),
    }
}

fn put(peer: &NodePeer, f: &(FragmentId, Vec<u8>)) -> Result<(), PeerError> {
    peer.put_fragment(&f.0, &f.1)
}

#[test]
fn a_reciprocal_node_refuses_new_fragments_past_the_allowance_and_takes_more_once_proven() {
    bounded(Duration::from_secs(60), || {
        let operator_client = new_client();
        let operator = owner_of(&operator_client);
        let node = TestNode::start_configured(tempfile::tempdir().unwrap(), GRACE, |o| {
            o.operator = Some(operator);
            o.reciprocity = Some(Reciprocity {
                allowance: 100 * KIB,
            });
        });
        let owner_client = new_client();
        let owner = owner_of(&owner_client);
        node.grant(&owner_client, 10 << 20);
        node.grant(&operator_client, 10 << 20);
        let peer = node.peer(&owner_client);

        // Hello names the operator.
        let hello = peer.greet().expect("hello");
        assert_eq!(hello.operator, Some(operator));
        assert_eq!((hello.quota, hello.used), (10 << 20, 0));

        // Within the allowance: stored. The room left is what reciprocity leaves.
        let first = fragment(60 * KIB);
        put(&peer, &first).expect("a fragment within the allowance");
        assert_eq!(
            peer.stat().expect("stat").free_bytes,
            Some(40 * KIB),
            "stat's room is the reciprocity limit's"
        );

        // Past it: refused, with the owner, the figures and the next step.
        let second = fragment(60 * KIB);
        let msg = refused_by_reciprocity(put(&peer, &second), "past the allowance");
        for says in [
            owner.to_hex(),
            format!("stores {} bytes", 60 * KIB),
            "gives 0 bytes".to_owned(),
            format!("allowance is {} bytes", 100 * KIB),
            "store data for this node's operator".to_owned(),
            "larger allowance".to_owned(),
        ] {
            assert!(
                msg.contains(&says),
                "the refusal should say `{says}`: {msg}"
            );
        }
        assert!(
            !peer.has_fragment(&second.0).expect("has"),
            "nothing stored"
        );

        // Soft: what is stored stays readable, a re-put of it is fine, and
        // metadata still goes in (the owner can commit).
        assert_eq!(peer.get_fragment(&first.0).expect("get"), first.1);
        put(&peer, &first).expect("re-putting a fragment already held");
        let key = MetaKey::Container(ContainerId([7; 32]));
        let meta = signed_by(&MasterSecret::generate(), &key, 1, &[0u8; 50_000]);
        peer.put_meta(&key, &meta)
            .expect("metadata past the allowance");

        // The operator's own data is never limited.
        let own = node.peer(&operator_client);
        put(&own, &fragment(300 * KIB)).expect("the operator's own fragment");

        // The operator's home proves 1 MiB given: the owner may store more.
        let now = now_unix();
        let mut proofs = Proofs {
            by: Some(operator),
            written_unix: now,
            ..Proofs::default()
        };
        proofs.owners.insert(
            owner,
            Proof {
                proven_bytes: 1 << 20,
                proven_fragments: 4,
                proven_unix: now - 60,
                peers: vec!["bob".into()],
            },
        );
        node.node_dir().write_proofs(&proofs).expect("write proofs");
        put(&peer, &second).expect("a new fragment once proven to give");

        // A proof older than its time to live counts for nothing again.
        proofs.owners.get_mut(&owner).unwrap().proven_unix = now - PROOF_TTL.as_secs() - 60;
        node.node_dir().write_proofs(&proofs).expect("write proofs");
        let msg = refused_by_reciprocity(put(&peer, &fragment(10 * KIB)), "stale proof");
        assert!(msg.contains("gives 0 bytes"), "{msg}");
        assert_eq!(peer.get_fragment(&second.0).expect("get"), second.1);

        // Stopping writes the ledger: the node's own observations.
        drop(peer);
        drop(own);
        let data = node.stop();
        let dir = trove_node::NodeDir::open(data.path()).unwrap();
        let ledger = dir.ledger().expect("ledger.json");
        assert_eq!(
            ledger.reciprocity,
            Some(Reciprocity {
                allowance: 100 * KIB
            })
        );
        let seen = &ledger.owners[&owner];
        assert!(seen.requests >= 10, "{seen:?}");
        assert!(seen.last_seen_unix >= seen.first_seen_unix);
        assert_eq!(
            seen.stored_bytes,
            120 * KIB + meta.len() as u64,
            "two fragments and the metadata"
        );

        // A later run without --operator keeps the operator.
        let node = TestNode::start_configured(data, GRACE, |_| {});
        let hello = node.peer(&owner_client).greet().expect("hello");
        assert_eq!(hello.operator, Some(operator));
        // And without --reciprocal, nothing is refused for it.
        put(&node.peer(&owner_client), &fragment(200 * KIB)).expect("no reciprocity now");
    });
}

#[test]
fn a_node_without_an_operator_says_none() {
    bounded(Duration::from_secs(30), || {
        let node = TestNode::start(GRACE);
        let client = new_client();
        node.grant(&client, 1 << 20);
        assert_eq!(node.peer(&client).greet().expect("hello").operator, None);
    });
}
