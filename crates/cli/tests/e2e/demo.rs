//! README command 1: `trove demo` must keep working, end to end.

use crate::common::*;

#[test]
fn demo_survives_losses_repairs_and_undoes_ransomware() {
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
    // The lost peers were replaced and repaired: check --read-data is clean.
    let repair = &v["repair"];
    assert_eq!(repair["full_redundancy"], true, "{v}");
    assert!(repair["fragments_rebuilt"].as_u64().unwrap() >= 3, "{v}");
    assert!(strings(&repair["check_problems"]).is_empty(), "{v}");
    // Ransomware forgot and pruned the clean snapshot; undelete brought it
    // back from the peers' trash, identical to the verified restore.
    let w = &v["ransomware"];
    assert_eq!(w["snapshots_forgotten"], 1, "{v}");
    assert!(
        w["fragment_bytes_pruned"].as_u64().unwrap() > 1 << 20,
        "{v}"
    );
    assert!(w["fragments_undeleted"].as_u64().unwrap() >= 3, "{v}");
    assert!(strings(&w["differences"]).is_empty(), "{v}");
    // The daemon, by itself: a new file in a snapshot, a dead disk repaired.
    let dm = &v["daemon"];
    assert!(dm["snapshot_after_write_seconds"].as_f64().is_some(), "{v}");
    // That backup walked only what the watcher saw change.
    assert!(
        dm["guided_walk"]
            .as_str()
            .is_some_and(|w| w.contains("folder(s) walked") && w.contains("kept")),
        "{v}"
    );
    assert_eq!(dm["full_redundancy"], true, "{v}");
    assert!(
        dm["repair"].as_str().unwrap().contains("pack(s) repaired"),
        "{v}"
    );
    // Shared read-only with a friend's identity: an exact restore, a dump,
    // a refused backup.
    let sh = &v["share"];
    assert!(sh["snapshots"].as_u64().unwrap() >= 2, "{v}");
    assert!(strings(&sh["differences"]).is_empty(), "{v}");
    assert!(sh["files_restored"].as_u64().unwrap() > 100, "{v}");
    assert!(sh["tar_bytes"].as_u64().unwrap() > 1 << 20, "{v}");
    assert_eq!(sh["backup_refused"], true, "{v}");
    // A recovery drill from the 24 words passed, every sampled file verified.
    let dr = &v["drill"];
    assert_eq!(dr["ok"], true, "{v}");
    assert!(dr["files_sampled"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(dr["files_verified"], dr["files_sampled"], "{v}");
    // The friend inherited the container: the vetoed claim released
    // nothing, the early collect was refused, the heir restored it exactly.
    let inh = &v["inherit"];
    assert_eq!(inh["vetoed_claim_released_nothing"], true, "{v}");
    assert_eq!(inh["early_collect_refused"], true, "{v}");
    assert!(inh["shares_collected"].as_u64().unwrap() >= 1, "{v}");
    assert!(inh["files_restored"].as_u64().unwrap() > 100, "{v}");
    assert!(strings(&inh["differences"]).is_empty(), "{v}");
    // The master secret was rotated: every live peer handed over, the old
    // owner id refused by a node, `demo` restored exactly.
    let rot = &v["rotate"];
    assert_ne!(rot["old_fingerprint"], rot["new_fingerprint"], "{v}");
    assert!(rot["peers_handed_over"].as_u64().unwrap() >= 5, "{v}");
    assert!(rot["envelopes_resigned"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(rot["old_owner_refused"], true, "{v}");
    assert!(rot["files_restored"].as_u64().unwrap() > 100, "{v}");
    assert!(strings(&rot["differences"]).is_empty(), "{v}");
    let log = std::fs::read_to_string(dir.join("daemon.log")).unwrap();
    assert!(log.contains("trove daemon stopped"), "{log}");
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
