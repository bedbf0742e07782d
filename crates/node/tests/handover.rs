//! Master secret rotation on real nodes (`trove_node::testing::TestNode`,
//! real iroh endpoints on 127.0.0.1): a hand-over certificate moves the
//! owner's namespace, grant and pinned identity to the new owner id and
//! identity; the old owner id is refused from then on; a retry from either
//! id is answered `Ok`; a certificate that is not the caller's, or that
//! would merge two owners, is refused and changes nothing; the old
//! secret's inheritance escrow is deleted; all of it survives a restart.

use std::sync::Arc;
use std::time::Duration;

use trove_core::envelope;
use trove_core::escrow::seal_escrow_share;
use trove_core::handover::HandOver;
use trove_core::keys::MasterSecret;
use trove_core::{ContainerId, FragmentId};
use trove_node::escrow::EscrowSpec;
use trove_node::testing::{bounded, direct_local, owner_of, TestNode};
use trove_node::NodeClient;
use trove_peer::testing::signed_by;
use trove_peer::{MetaKey, MetaRejection, Peer, PeerError};

const GRACE: Duration = Duration::from_secs(3600);

fn client_of(m: &MasterSecret) -> Arc<NodeClient> {
    NodeClient::start(m.transport_seed(), &direct_local()).unwrap()
}

fn manifest(m: &MasterSecret, c: ContainerId, revision: u64) -> Vec<u8> {
    signed_by(m, &MetaKey::Container(c), revision, b"body")
}

fn refused(r: Result<(), PeerError>) -> String {
    match r {
        Err(PeerError::Refused { reason, .. }) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_hand_over_moves_namespace_grant_and_identity_and_survives_a_restart() {
    bounded(Duration::from_secs(120), || {
        let node = TestNode::start(GRACE);
        let (old, new) = (MasterSecret::generate(), MasterSecret::generate());
        let (old_client, new_client) = (client_of(&old), client_of(&new));
        node.grant(&old_client, 1 << 20);
        let peer = node.peer(&old_client);
        let bytes = b"a fragment of the old owner".to_vec();
        let fid = FragmentId::of(&bytes);
        peer.put_fragment(&fid, &bytes).unwrap();
        let c = ContainerId([7; 32]);
        let key = MetaKey::Container(c);
        let held = manifest(&old, c, 3);
        peer.put_meta(&key, &held).unwrap();
        let old_dir = node.owner_dir(&old_client);
        // An inheritance escrow of the old secret, which the hand-over deletes.
        let heir = owner_of(&new_client);
        peer.escrow_put(EscrowSpec {
            heir,
            wait_secs: 60,
            inactive_secs: None,
            set_id: 7,
            threshold: 2,
            sealed_share: seal_escrow_share(&old.transport_seed(), &heir.0, 7, "words").unwrap(),
        })
        .unwrap();
        let escrow = node
            .data()
            .join("escrow")
            .join(format!("{}.json", owner_of(&old_client).to_hex()));
        assert!(escrow.is_file());

        // Not the caller's certificate: refused, nothing moved.
        let (x, y) = (MasterSecret::generate(), MasterSecret::generate());
        let why = refused(peer.hand_over(&HandOver::sign(&x, &y, 1)));
        assert!(why.contains("hands over owner"), "{why}");
        // The new id is not granted before the hand-over.
        assert!(node
            .peer(&new_client)
            .hand_over(&HandOver::sign(&old, &new, 1))
            .is_err());
        assert!(old_dir.is_dir());

        let cert = HandOver::sign(&old, &new, 1_790_000_000);
        peer.hand_over(&cert).unwrap();
        assert!(!old_dir.exists(), "the old namespace moved");
        assert!(!escrow.exists(), "the old secret's escrow is deleted");
        let new_peer = node.peer(&new_client);
        assert!(new_peer.has_fragment(&fid).unwrap());
        assert_eq!(new_peer.get_meta(&key).unwrap(), held);
        // The old owner id is refused from now on.
        assert!(peer.has_fragment(&fid).is_err());
        // Objects of the old identity are refused; re-signed ones replace them.
        match new_peer.put_meta(&key, &manifest(&old, c, 4)) {
            Err(PeerError::MetaRejected { reason, .. }) => {
                assert!(matches!(*reason, MetaRejection::WrongSigner { .. }))
            }
            other => panic!("expected WrongSigner, got {other:?}"),
        }
        let resigned = envelope::resign(&held, &new.identity()).unwrap();
        new_peer.put_meta(&key, &resigned).unwrap();
        assert_eq!(new_peer.get_meta(&key).unwrap(), resigned);
        // A retry from the new id is answered Ok; from the old one it is refused.
        new_peer.hand_over(&cert).unwrap();
        assert!(peer.hand_over(&cert).is_err());
        let identity =
            std::fs::read_to_string(node.owner_dir(&new_client).join("identity")).unwrap();
        assert_eq!(identity.trim(), new.identity().public().to_hex());

        let dir = node.stop();
        let node = TestNode::start_in(dir, GRACE);
        let new_peer = node.peer(&new_client);
        assert!(new_peer.has_fragment(&fid).unwrap());
        assert_eq!(new_peer.get_meta(&key).unwrap(), resigned);
        assert!(node.peer(&old_client).has_fragment(&fid).is_err());
    });
}

#[test]
fn a_hand_over_never_merges_two_owners() {
    bounded(Duration::from_secs(120), || {
        let node = TestNode::start(GRACE);
        let (a, b) = (MasterSecret::generate(), MasterSecret::generate());
        let (ca, cb) = (client_of(&a), client_of(&b));
        node.grant(&ca, 1 << 20);
        node.grant(&cb, 1 << 20);
        let bytes = b"b's own fragment".to_vec();
        node.peer(&cb)
            .put_fragment(&FragmentId::of(&bytes), &bytes)
            .unwrap();
        node.peer(&ca)
            .put_meta(
                &MetaKey::Container(ContainerId([1; 32])),
                &manifest(&a, ContainerId([1; 32]), 1),
            )
            .unwrap();
        let why = refused(node.peer(&ca).hand_over(&HandOver::sign(&a, &b, 1)));
        assert!(why.contains("already keeps data"), "{why}");
        assert!(node.owner_dir(&ca).is_dir() && node.owner_dir(&cb).is_dir());
        // A certificate of another owner altogether.
        let (other, target) = (MasterSecret::generate(), MasterSecret::generate());
        let forged = HandOver::sign(&other, &target, 1);
        assert!(node.peer(&ca).hand_over(&forged).is_err());
        assert!(node.peer(&ca).has_fragment(&FragmentId::of(b"x")).is_ok());
    });
}
