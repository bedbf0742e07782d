//! Inheritance escrows on real nodes (`trove_node::testing::TestNode`, real
//! iroh endpoints on 127.0.0.1): the owner stores an escrow, only the named
//! heir may claim and collect (granted or not), a claim waits out the
//! period by the node's clock, a veto blocks it for good, and a claim
//! survives the node's restart on the same data folder.

use std::thread;
use std::time::Duration;

use trove_core::escrow::{open_escrow_share, seal_escrow_share};
use trove_node::escrow::{ClaimPhase, EscrowSpec};
use trove_node::testing::{bounded, new_client, owner_of, TestNode};
use trove_node::{Collected, HeirCallError, NodeClient};
use trove_peer::{Peer, PeerError};

const GRACE: Duration = Duration::from_secs(3600);

/// The owner's seed and client, granted on `node`.
fn owner_on(node: &TestNode) -> ([u8; 32], std::sync::Arc<NodeClient>) {
    let seed: [u8; 32] = rand::random();
    let client = NodeClient::start(seed, &trove_node::testing::direct_local()).unwrap();
    node.grant(&client, 1 << 20);
    (seed, client)
}

fn heir() -> ([u8; 32], std::sync::Arc<NodeClient>) {
    let seed: [u8; 32] = rand::random();
    let client = NodeClient::start(seed, &trove_node::testing::direct_local()).unwrap();
    (seed, client)
}

fn spec(owner_seed: &[u8; 32], heir: &NodeClient, wait_secs: u64) -> EscrowSpec {
    let heir_id = owner_of(heir);
    EscrowSpec {
        heir: heir_id,
        wait_secs,
        inactive_secs: None,
        set_id: 4242,
        threshold: 2,
        sealed_share: seal_escrow_share(owner_seed, &heir_id.0, 4242, "some share words").unwrap(),
    }
}

#[test]
fn escrow_is_stored_privately_and_shown_to_its_owner() {
    bounded(Duration::from_secs(60), || {
        let node = TestNode::start(GRACE);
        let (seed, owner) = owner_on(&node);
        let (_, heir) = heir();
        let peer = node.peer(&owner);
        assert_eq!(peer.escrow_status().unwrap(), None);
        peer.escrow_put(spec(&seed, &heir, 3600)).unwrap();
        let path = node
            .data()
            .join("escrow")
            .join(format!("{}.json", owner_of(&owner).to_hex()));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", path.display());
        let v = peer.escrow_status().unwrap().expect("an escrow");
        assert_eq!(
            (v.heir, v.wait_secs, v.set_id),
            (owner_of(&heir), 3600, 4242)
        );
        assert_eq!(v.claim, None);
        // Cancel deletes it.
        assert!(peer.escrow_delete().unwrap().is_some());
        assert!(!path.exists());
        assert_eq!(peer.escrow_status().unwrap(), None);
    });
}

#[test]
fn a_claim_by_anyone_but_the_heir_is_refused_and_an_heir_gets_nothing_else() {
    bounded(Duration::from_secs(60), || {
        let node = TestNode::start(GRACE);
        let (seed, owner) = owner_on(&node);
        let (_, heir) = heir();
        node.peer(&owner)
            .escrow_put(spec(&seed, &heir, 3600))
            .unwrap();
        let owner_id = owner_of(&owner);
        // A stranger (not granted) and another granted owner.
        let stranger = new_client();
        let (_, other_owner) = owner_on(&node);
        for c in [&stranger, &other_owner] {
            let p = node.peer(c);
            for r in [
                p.inherit_claim(owner_id).map(|_| ()),
                p.inherit_status(owner_id).map(|_| ()),
                p.inherit_collect(owner_id).map(|_| ()),
            ] {
                assert!(matches!(r, Err(HeirCallError::NotHeir { .. })), "{r:?}");
            }
        }
        // The owner itself is not its heir either.
        assert!(matches!(
            node.peer(&owner).inherit_claim(owner_id),
            Err(HeirCallError::NotHeir { .. })
        ));
        assert_eq!(
            node.peer(&owner).escrow_status().unwrap().unwrap().claim,
            None,
            "no claim was recorded"
        );
        // The ungranted heir may claim, but is served nothing else.
        let hp = node.peer(&heir);
        assert!(hp.inherit_claim(owner_id).is_ok());
        let err = node.peer(&heir).list_fragments().unwrap_err();
        assert!(matches!(err, PeerError::Refused { .. }), "{err:?}");
    });
}

#[test]
fn collect_before_the_wait_says_how_long_is_left_and_after_it_releases() {
    bounded(Duration::from_secs(60), || {
        let node = TestNode::start(GRACE);
        let (seed, owner) = owner_on(&node);
        let (heir_seed, heir) = heir();
        let s = spec(&seed, &heir, 3);
        let sealed = s.sealed_share.clone();
        node.peer(&owner).escrow_put(s).unwrap();
        let owner_id = owner_of(&owner);
        let hp = node.peer(&heir);
        // No claim yet: nothing.
        match hp.inherit_collect(owner_id).unwrap() {
            Collected::Withheld(v) => assert_eq!(v.claim, None),
            other => panic!("released without a claim: {other:?}"),
        }
        let v = hp.inherit_claim(owner_id).unwrap();
        let c = v.claim.unwrap();
        assert!(
            matches!(c.phase, ClaimPhase::Waiting { left_secs, .. } if (1..=3).contains(&left_secs)),
            "{c:?}"
        );
        // The owner sees the open claim.
        let seen = node.peer(&owner).escrow_status().unwrap().unwrap();
        assert_eq!(seen.claim.map(|c| c.id), Some(c.id));
        match hp.inherit_collect(owner_id).unwrap() {
            Collected::Withheld(v) => assert!(
                matches!(v.claim.unwrap().phase, ClaimPhase::Waiting { left_secs, .. } if left_secs >= 1)
            ),
            other => panic!("released before the wait: {other:?}"),
        }
        // A repeated claim does not restart the wait.
        assert_eq!(
            hp.inherit_claim(owner_id)
                .unwrap()
                .claim
                .unwrap()
                .opened_unix,
            c.opened_unix
        );
        thread::sleep(Duration::from_millis(3200));
        match hp.inherit_collect(owner_id).unwrap() {
            Collected::Released { sealed_share, .. } => {
                assert_eq!(sealed_share, sealed);
                let (_, words) = open_escrow_share(&sealed_share, &owner_id.0, &heir_seed).unwrap();
                assert_eq!(words.as_str(), "some share words");
            }
            other => panic!("not released after the wait: {other:?}"),
        }
    });
}

#[test]
fn a_veto_blocks_the_claim_for_good_and_a_new_claim_waits_again() {
    bounded(Duration::from_secs(60), || {
        let node = TestNode::start(GRACE);
        let (seed, owner) = owner_on(&node);
        let (_, heir) = heir();
        node.peer(&owner).escrow_put(spec(&seed, &heir, 2)).unwrap();
        let owner_id = owner_of(&owner);
        let hp = node.peer(&heir);
        let first = hp.inherit_claim(owner_id).unwrap().claim.unwrap();
        let v = node.peer(&owner).escrow_veto().unwrap().unwrap();
        assert!(matches!(v.claim.unwrap().phase, ClaimPhase::Vetoed { .. }));
        thread::sleep(Duration::from_millis(2200));
        match hp.inherit_collect(owner_id).unwrap() {
            Collected::Withheld(v) => {
                assert!(matches!(v.claim.unwrap().phase, ClaimPhase::Vetoed { .. }))
            }
            other => panic!("a vetoed claim released: {other:?}"),
        }
        let second = hp.inherit_claim(owner_id).unwrap().claim.unwrap();
        assert_eq!(second.id, first.id + 1, "a new claim, a new number");
        assert!(
            matches!(second.phase, ClaimPhase::Waiting { .. }),
            "a new wait"
        );
        assert_eq!(
            node.peer(&owner).escrow_status().unwrap().unwrap().vetoed,
            1
        );
    });
}

#[test]
fn a_claim_survives_the_node_being_killed_and_restarted_on_its_folder() {
    bounded(Duration::from_secs(90), || {
        let node = TestNode::start(GRACE);
        let (seed, owner) = owner_on(&node);
        let (_, heir) = heir();
        node.peer(&owner).escrow_put(spec(&seed, &heir, 2)).unwrap();
        let owner_id = owner_of(&owner);
        let claimed = node
            .peer(&heir)
            .inherit_claim(owner_id)
            .unwrap()
            .claim
            .unwrap();
        let dir = node.kill();
        let node = TestNode::start_in(dir, GRACE);
        let hp = node.peer(&heir);
        let after = hp.inherit_status(owner_id).unwrap().claim.unwrap();
        assert_eq!(
            (after.id, after.opened_unix),
            (claimed.id, claimed.opened_unix)
        );
        thread::sleep(Duration::from_millis(2200));
        assert!(matches!(
            hp.inherit_collect(owner_id).unwrap(),
            Collected::Released { .. }
        ));
        // A veto written before a polite stop holds after the restart.
        let dir = node.stop();
        let node = TestNode::start_in(dir, GRACE);
        node.peer(&owner).escrow_veto().unwrap();
        let dir = node.stop();
        let node = TestNode::start_in(dir, GRACE);
        assert!(matches!(
            node.peer(&heir).inherit_collect(owner_id).unwrap(),
            Collected::Withheld(v) if matches!(v.claim.unwrap().phase, ClaimPhase::Vetoed { .. })
        ));
    });
}

#[test]
fn with_inactivity_the_owners_requests_hold_the_release_until_it_stays_away() {
    bounded(Duration::from_secs(60), || {
        let node = TestNode::start(GRACE);
        let (seed, owner) = owner_on(&node);
        let (_, heir) = heir();
        let mut s = spec(&seed, &heir, 0);
        s.inactive_secs = Some(3);
        let op = node.peer(&owner);
        op.escrow_put(s).unwrap();
        let owner_id = owner_of(&owner);
        let hp = node.peer(&heir);
        hp.inherit_claim(owner_id).unwrap();
        // The wait (0 s) has passed, but the owner was just seen; while it
        // keeps using the node, nothing is released.
        for _ in 0..3 {
            thread::sleep(Duration::from_millis(1100));
            op.escrow_status().unwrap();
            assert!(
                matches!(
                    hp.inherit_collect(owner_id).unwrap(),
                    Collected::Withheld(_)
                ),
                "released while the owner is active"
            );
        }
        // The heir's own requests do not count as the owner's activity.
        thread::sleep(Duration::from_millis(3300));
        assert!(matches!(
            hp.inherit_collect(owner_id).unwrap(),
            Collected::Released { .. }
        ));
    });
}
