//! `trove undelete` end to end, as issue 10's acceptance runs it: three
//! real node processes (2+1); an attacker holding the owner's key forgets
//! and prunes the history and wipes the home; the owner recovers from the
//! 24 words and one node's ticket, and brings the old snapshot back from
//! the nodes' trash.

use crate::common::*;
use crate::nodes::{make_data, nodes_for};

#[test]
fn an_attacker_forgets_prunes_and_wipes_then_the_owner_recovers_and_undeletes() {
    let t = Trove::new();
    let init = t.init();
    let nodes = nodes_for(&t, 3, "1G");
    t.create_container("2+1");
    make_data(&t, 71, 3 << 20);
    let old = id_of(&t.backup(), "snapshot");
    let old_tree = t.tmp.path().join("old-tree");
    copy_tree(&t.src, &old_tree);
    // The next snapshot drops the big file, so the old one alone holds it.
    std::fs::remove_file(t.src.join("big/video.bin")).unwrap();
    write(
        &t.src.join("later.txt"),
        b"written after the first snapshot",
    );
    let new = id_of(&t.backup(), "snapshot");

    // The attacker, with the key: forget every snapshot but the newest,
    // prune, and wipe the home.
    let f = t.ok_json(&["forget", "data", "--keep-last", "1", "--prune"]);
    let forgotten: Vec<String> = f["forget"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(forgotten, vec![old.clone()], "{f}");
    assert!(
        f["prune"]["fragment_bytes_removed"].as_u64().unwrap() > 2 << 20,
        "the big file's fragments were deleted: {f}"
    );

    // The home is wiped. The owner: the phrase and one node's ticket,
    // nothing else; sync finds the other nodes in the container's roster.
    t.lose_home_and_recover(init["phrase"].as_str().unwrap());
    t.ok_json(&["peer", "add", "found", &nodes[0].ticket(&t)]);
    let s = t.ok_json(&["sync"]);
    assert_eq!(
        s["snapshots"], 1,
        "the forgotten snapshot stays forgotten: {s}"
    );
    assert_eq!(id_of(&t.snapshots()[0], "id"), new);
    assert_eq!(t.ok_json(&["peer", "list"]).as_array().unwrap().len(), 3);
    // What the nodes can bring back: the forgotten snapshot.
    let listed = t.ok_json(&["undelete", "data"]);
    let ids: Vec<String> = listed["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, vec![old.clone()], "{listed}");

    let u = t.ok_json(&["undelete", "data", &old[..12]]);
    assert_eq!(u["restored"].as_str(), Some(old.as_str()), "{u}");
    assert!(u["fragments_undeleted"].as_u64().unwrap() >= 3, "{u}");
    assert!(strings(&u["missing"]).is_empty(), "{u}");
    assert_eq!(t.snapshots().len(), 2);
    let (_, restored) = t.restore(&old[..12]);
    assert_same_tree(&old_tree, &restored);
    let (_, restored) = t.restore("data:latest");
    assert_same_tree(&t.src, &restored);
    let c = t.ok_json(&["check", "--read-data"]);
    assert!(strings(&c["problems"]).is_empty(), "{c}");
}
