//! `trove audit`: one audit round through the real binary, as the daemon
//! runs it. Every peer proves what it holds; a rotten fragment fails the
//! round (exit 1) and is named.

use crate::common::*;

#[test]
fn an_audit_round_proves_every_peer_and_names_a_rotten_fragment() {
    let t = Trove::setup(3, "2+1");
    make_small_tree(&t.src, 31);
    t.backup();
    let r = t.ok_json(&["audit", "--sample", "64"]);
    let held: u64 = r["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["fragments_held"].as_u64().unwrap())
        .sum();
    assert!(held > 0, "{r}");
    assert_eq!(
        r["passed"].as_u64(),
        Some(held),
        "every fragment asked and proven: {r}"
    );
    assert_eq!(r["failed"], 0);

    // Rot one fragment on p2: the round fails and names it.
    let (_, victim) = t
        .all_fragments(3)
        .into_iter()
        .find(|(p, _)| *p == 2)
        .unwrap();
    let mut bytes = std::fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&victim, &bytes).unwrap();
    let r = t.json_code(1, &["audit", "--sample", "64"]);
    assert_eq!(r["failed"], 1, "{r}");
    let p2 = r["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["health"]["peer"] == "p2")
        .unwrap();
    let name = victim.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(p2["failed"][0]["fragment"], name.as_str(), "{p2}");
}
