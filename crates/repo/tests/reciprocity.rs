//! The reciprocity ledger end to end (docs/design.md §6a.5), over real
//! nodes on 127.0.0.1: Alice runs a node with `--reciprocal`, Bob stores on
//! it and runs a node Alice backs up to. Bob's new fragments are refused
//! past the allowance until Alice's audit round proves what Bob's node holds
//! for her (written into her node's `proofs.json`); a round that catches
//! Bob's node damaging her data takes the credit away again. `trove status`
//! shows "you give X, you use Y" for the node peer and nothing for folders.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::RngCore;
use trove_core::keys::MasterSecret;
use trove_core::FragmentId;
use trove_node::ledger::Reciprocity;
use trove_node::testing::{direct_local, new_client, owner_of, TestNode};
use trove_node::{NodePeer, OwnerId};
use trove_peer::{Peer, PeerError};
use trove_repo::{
    audit_round, backup, status, AuditOptions, BackupOptions, Config, Home, KdfParams, Quiet,
};

const KIB: u64 = 1 << 10;
const GRACE: Duration = Duration::from_secs(3600);
const FAST_KDF: KdfParams = KdfParams {
    m_kib: 64,
    t: 1,
    p: 1,
};
const AUDIT: AuditOptions = AuditOptions {
    per_peer: 64,
    peer_lost_after: Duration::from_secs(3600),
    storm_guard: false,
};

fn random(len: u64) -> Vec<u8> {
    let mut v = vec![0u8; len as usize];
    rand::thread_rng().fill_bytes(&mut v);
    v
}

fn put_new(peer: &NodePeer, len: u64) -> Result<(), PeerError> {
    let bytes = random(len);
    peer.put_fragment(&FragmentId::of(&bytes), &bytes)
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn bob_row(home: &Home) -> trove_repo::PeerStatus {
    let report = status(home, &Config::load(home.dir()).unwrap()).unwrap();
    for p in report.peers.iter().filter(|p| p.name != "bob") {
        assert!(
            p.reciprocity.is_none(),
            "a folder peer has no ledger: {p:?}"
        );
    }
    report.peers.into_iter().find(|p| p.name == "bob").unwrap()
}

#[test]
fn audits_prove_what_an_owner_gives_and_a_reciprocal_node_takes_more_only_then() {
    let tmp = tempfile::tempdir().unwrap();
    let (home, alice) = Home::init(
        &tmp.path().join("home"),
        MasterSecret::generate(),
        b"pass",
        FAST_KDF,
    )
    .unwrap();
    home.set_network(direct_local());
    let alice_id: OwnerId = alice.owner_id().parse().unwrap();

    // Alice's own node, reciprocal, linked to her home.
    let alices_node = TestNode::start_configured(tempfile::tempdir().unwrap(), GRACE, |o| {
        o.operator = Some(alice_id);
        o.reciprocity = Some(Reciprocity {
            allowance: 64 * KIB,
        });
    });
    let config = Config {
        node_data: Some(alices_node.data().to_owned()),
        ..Config::default()
    };
    config.save(home.dir()).unwrap();

    // Bob: an owner on Alice's node, and the operator of a node Alice uses.
    let bob = new_client();
    let bob_id = owner_of(&bob);
    alices_node.grant(&bob, 100 << 20);
    let bobs_node = TestNode::start_configured(tempfile::tempdir().unwrap(), GRACE, |o| {
        o.operator = Some(bob_id);
    });
    bobs_node.node_dir().grant(alice_id, 100 << 20).unwrap();
    let bob_on_alices = alices_node.peer(&bob);

    // Within the allowance, then past it: refused, placed elsewhere.
    put_new(&bob_on_alices, 50 * KIB).expect("within the allowance");
    let refused = put_new(&bob_on_alices, 50 * KIB).expect_err("past the allowance");
    assert!(
        matches!(refused, PeerError::Refused { .. }) && refused.is_retryable_elsewhere(),
        "{refused}"
    );

    // Alice backs up to Bob's node and two folders.
    home.peers()
        .add("bob", &bobs_node.ticket().to_string(), BTreeMap::new())
        .unwrap();
    for p in ["usb1", "usb2"] {
        let loc = format!("dir:{}", tmp.path().join(p).display());
        home.peers().add(p, &loc, BTreeMap::new()).unwrap();
    }
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), random(400 * KIB)).unwrap();
    home.containers().create(&alice, "c", &[src], None).unwrap();
    backup(&home, &alice, "c", &BackupOptions::default(), &Quiet).unwrap();

    // Before any audit: Bob's operator is learned, what Alice gives him is
    // read from her node, what she uses is unproven.
    let row = bob_row(&home);
    let r = row.reciprocity.clone().expect("a node peer has a ledger");
    assert_eq!(r.operator.as_deref(), Some(bob_id.to_hex().as_str()));
    assert_eq!(r.you_give, Some(50 * KIB));
    assert_eq!(r.you_use, None, "{r:?}");
    assert!(r.note.unwrap().contains("no audit of it has passed"));
    assert!(row.bytes_held > 0);

    // An audit round proves what Bob's node holds and writes it down on
    // Alice's node, credited to Bob.
    let round = audit_round(&home, &AUDIT, &Quiet).unwrap();
    assert_eq!(round.failed, 0, "{round:#?}");
    let proofs = alices_node.node_dir().proofs().unwrap();
    assert_eq!(proofs.by, Some(alice_id));
    let proof = &proofs.owners[&bob_id];
    assert_eq!(proof.proven_bytes, row.bytes_held);
    assert_eq!(proof.peers, vec!["bob".to_owned()]);
    assert_eq!(proofs.owners.len(), 1, "folders credit no one: {proofs:?}");
    let r = bob_row(&home).reciprocity.unwrap();
    assert_eq!(r.you_use, Some(row.bytes_held));
    assert!(r.proven_unix.is_some() && r.note.is_none(), "{r:?}");

    // Bob gives more than 50 KiB now: his new fragment is taken.
    assert!(row.bytes_held > 50 * KIB);
    put_new(&bob_on_alices, 50 * KIB).expect("taken once Bob is proven to give");

    // Bob's node damages every fragment of Alice's: the next round catches
    // it, the credit goes, and Bob's new fragments are refused again while
    // what Alice's node holds for him stays readable.
    let alices_dir = bobs_node.node_dir().owner_dir(&alice_id).join("fragments");
    let damaged = files_under(&alices_dir);
    assert!(!damaged.is_empty());
    for f in &damaged {
        let mut bytes = std::fs::read(f).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(f, bytes).unwrap();
    }
    let round = audit_round(&home, &AUDIT, &Quiet).unwrap();
    assert!(round.failed > 0, "{round:#?}");
    assert!(
        alices_node.node_dir().proofs().unwrap().owners.is_empty(),
        "a node failing its audits is credited nothing"
    );
    let r = bob_row(&home).reciprocity.unwrap();
    assert_eq!(r.you_use, None, "{r:?}");
    put_new(&bob_on_alices, 10 * KIB).expect_err("refused again without credit");
    assert_eq!(bob_on_alices.list_fragments().unwrap().len(), 2);
}
