//! README command 1: `trove demo` must keep working, end to end.

use crate::common::*;

#[test]
fn demo_survives_a_lost_disk_a_lost_node_and_a_corrupt_fragment() {
    // Which peers the demo's restore reports depends on timing (a hedged
    // read of a loaded peer is "slow", not "corrupt"): run it alone.
    let _alone = Turn::alone();
    let t = Trove::new();
    let dir = t.fresh_dir("demo");
    let d = dir.display().to_string();
    let v = t.ok_json(&["demo", "--dir", &d]);
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["files"].as_u64().unwrap() > 100, "{v}");
    assert_eq!(v["lost"].as_array().unwrap().len(), 0, "{v}");
    let problems = v["fragment_problems"].to_string();
    assert!(
        problems.contains("disk-3") && problems.contains("corrupt"),
        "{v}"
    );
    assert!(problems.contains("disk-1"), "{v}");
    // A thief holding the transport key could overwrite none of the
    // manifests on the node (issue 8, finding 1).
    assert!(
        v["metadata_overwrites_refused"].as_u64().unwrap() >= 3,
        "{v}"
    );
    // The demo's node processes are gone when it returns: their data
    // folders exist, and a node's ticket names a loopback address.
    for n in ["friend-1", "friend-2"] {
        let ticket = std::fs::read_to_string(dir.join("nodes").join(n).join("ticket")).unwrap();
        assert!(ticket.starts_with("trovenode1"), "{ticket}");
    }
    let ps = std::process::Command::new("pgrep")
        .args(["-f", &format!("node run .*{d}")])
        .output();
    if let Ok(ps) = ps {
        assert!(
            ps.stdout.is_empty(),
            "node processes left running: {}",
            String::from_utf8_lossy(&ps.stdout)
        );
    }
}
