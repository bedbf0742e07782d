//! Node peers end to end: real `trove node run` processes on 127.0.0.1,
//! each with its own data folder, started, killed and restarted by the
//! tests, with owners talking to them through the real `trove` binary.
//! Every process is killed and reaped on drop; every command is bounded.

use crate::common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One node process and its data folder.
pub(crate) struct Node {
    pub(crate) name: String,
    data: PathBuf,
    port: u16,
    log: PathBuf,
    proc: ChildGuard,
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("bind a probe socket")
        .port()
}

impl Node {
    pub(crate) fn start(t: &Trove, name: &str) -> Node {
        let data = t.tmp.path().join("nodes").join(name);
        let log = t.tmp.path().join("nodes").join(format!("{name}.log"));
        std::fs::create_dir_all(data.parent().unwrap()).unwrap();
        let mut n = Node {
            name: name.to_owned(),
            data,
            port: free_udp_port(),
            log,
            proc: ChildGuard(None),
        };
        n.spawn();
        n
    }

    fn spawn(&mut self) {
        let _ = std::fs::remove_file(self.data.join("ticket"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_trove"))
            .args(["node", "run", "--data"])
            .arg(&self.data)
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--network", "direct", "--grace", "30"])
            .env_remove("TROVE_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn trove node run");
        self.proc = ChildGuard(Some(child));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.data.join("ticket").is_file() {
            assert!(
                Instant::now() < deadline,
                "node {} did not start: {}",
                self.name,
                self.log_text()
            );
            if let Some(st) = self.proc.child().try_wait().unwrap() {
                panic!("node {} exited with {st}: {}", self.name, self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: the node gets no chance to tidy up.
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.proc.0.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// Start the node again on its data folder and port (same ticket).
    pub(crate) fn restart(&mut self) {
        self.spawn();
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn node_cmd(&self, t: &Trove, args: &[&str]) -> Value {
        let mut full = vec!["node"];
        full.extend_from_slice(args);
        let d = self.data.display().to_string();
        full.extend_from_slice(&["--data", &d]);
        t.ok_json(&full)
    }

    /// `trove node status --json` of this node's data folder.
    pub(crate) fn status(&self, t: &Trove) -> Value {
        self.node_cmd(t, &["status"])
    }

    pub(crate) fn ticket(&self, t: &Trove) -> String {
        self.node_cmd(t, &["ticket"])["ticket"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn grant(&self, t: &Trove, owner: &str, quota: &str) {
        self.node_cmd(t, &["grant", owner, "--quota", quota]);
    }

    /// The folder peer holding one owner's data on this node.
    pub(crate) fn owner_dir(&self, owner: &str) -> PathBuf {
        self.data.join("owners").join(owner)
    }
}

pub(crate) fn owner_id(t: &Trove) -> String {
    let v = t.ok_json(&["whoami"]);
    let id = v["owner_id"].as_str().expect("owner_id").to_owned();
    assert_eq!(id.len(), 64, "{v}");
    id
}

/// Start `n` nodes, grant this owner on each, add them as peers `node1..`,
/// each on its own site.
pub(crate) fn nodes_for(t: &Trove, n: usize, quota: &str) -> Vec<Node> {
    let owner = owner_id(t);
    (1..=n)
        .map(|i| {
            let node = Node::start(t, &format!("node{i}"));
            node.grant(t, &owner, quota);
            let ticket = node.ticket(t);
            let label = format!("site=nsite-{i}");
            let v = t.ok_json(&["peer", "add", &node.name, &ticket, "--label", &label]);
            assert_eq!(v["node"]["granted"], true, "{v}");
            node
        })
        .collect()
}

pub(crate) fn make_data(t: &Trove, seed: u64, big: usize) {
    make_small_tree(&t.src, seed);
    let mut g = Gen::new(seed + 1);
    write(&t.src.join("big/video.bin"), &g.bytes(big));
}

/// Every fragment a node holds for an owner hashes to its name: nothing
/// half-written is ever in place.
fn assert_fragments_intact(dir: &Path) {
    for f in fragment_files(dir) {
        let bytes = std::fs::read(&f).unwrap();
        assert_eq!(
            blake3::hash(&bytes).to_hex().to_string(),
            file_name(&f),
            "fragment {} on a node does not match its name",
            f.display()
        );
    }
}

#[test]
fn six_nodes_two_killed_restore_is_byte_for_byte() {
    let t = Trove::new();
    t.init();
    let mut nodes = nodes_for(&t, 6, "1G");
    t.create_container("4+2");
    make_data(&t, 7, 9 << 20);
    let b = t.backup();
    assert!(b["packs_new"].as_u64().unwrap_or(0) >= 1, "{b}");
    let owner = owner_id(&t);
    for n in &nodes {
        let frags = fragment_files(&n.owner_dir(&owner));
        assert!(!frags.is_empty(), "node {} holds fragments", n.name);
        assert_fragments_intact(&n.owner_dir(&owner));
        let st = n.node_cmd(&t, &["status"]);
        assert!(st["owners"][0]["used"].as_u64().unwrap() > 0, "{st}");
    }
    nodes[1].kill();
    nodes[4].kill();
    let (r, restored) = t.restore("data:latest");
    assert_same_tree(&t.src, &restored);
    // Only the killed nodes failed (a live node may at most have been
    // slower than the hedge delay on a busy machine).
    for p in r["fragment_problems"].as_array().unwrap() {
        let (peer, problem) = (p["peer"].as_str().unwrap(), p["problem"].as_str().unwrap());
        assert!(
            peer == "node2" || peer == "node5" || problem.starts_with("slow"),
            "{p}"
        );
    }
    // A check reads every fragment and names both dead nodes.
    let c = t.json_code(1, &["check"]);
    let text = c["problems"].to_string();
    assert!(text.contains("node2") && text.contains("node5"), "{c}");
    for n in ["node1", "node3", "node4", "node6"] {
        assert!(!text.contains(n), "{c}");
    }
}

#[test]
fn corrupt_node_is_detected_by_restore_and_by_audit() {
    let t = Trove::new();
    t.init();
    let nodes = nodes_for(&t, 6, "1G");
    t.create_container("4+2");
    make_data(&t, 11, 3 << 20);
    t.backup();
    // Honest nodes: every proof is accepted.
    let c = t.ok_json(&["check", "--audit"]);
    assert!(c["audited_fragments"].as_u64().unwrap() >= 6, "{c}");
    assert_eq!(c["problems"].as_array().unwrap().len(), 0, "{c}");
    // One byte changed in every fragment node3 holds.
    let owner = owner_id(&t);
    let frags = fragment_files(&nodes[2].owner_dir(&owner));
    assert!(!frags.is_empty());
    for f in &frags {
        flip_last_byte(f);
    }
    let c = t.json_code(1, &["check", "--audit"]);
    let problems = c["problems"].as_array().unwrap();
    assert_eq!(
        problems.len(),
        frags.len(),
        "one failed audit per fragment: {c}"
    );
    for p in problems {
        let s = p.to_string();
        assert!(s.contains("node3") && s.contains("audit failed"), "{s}");
    }
    let (r, restored) = t.restore("data:latest");
    assert_same_tree(&t.src, &restored);
    // Restore reads data shards first; whatever it read from node3 was
    // caught as corrupt, and nothing else was wrong.
    for p in r["fragment_problems"].as_array().unwrap() {
        let (peer, problem) = (p["peer"].as_str().unwrap(), p["problem"].as_str().unwrap());
        assert!(
            (peer == "node3" && problem.contains("corrupt")) || problem.starts_with("slow"),
            "{p}"
        );
    }
}

#[test]
fn node_restarted_mid_backup_loses_nothing() {
    let t = Trove::new();
    t.init();
    let mut nodes = nodes_for(&t, 4, "1G");
    t.create_container("2+2");
    make_data(&t, 13, 120 << 20);
    let mut backup = ChildGuard(Some(
        t.command(&["--json", "backup"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    // Wait until node2 has started receiving, then kill it mid-transfer.
    let owner = owner_id(&t);
    let deadline = Instant::now() + Duration::from_secs(120);
    while fragment_files(&nodes[1].owner_dir(&owner)).is_empty() {
        assert!(Instant::now() < deadline, "backup never reached node2");
        assert!(
            backup.child().try_wait().unwrap().is_none(),
            "backup ended too soon"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    nodes[1].kill();
    std::thread::sleep(Duration::from_millis(500));
    nodes[1].spawn();
    let child = backup.0.take().unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "backup: {}", describe(&out));
    for n in &nodes {
        assert_fragments_intact(&n.owner_dir(&owner));
    }
    let (_, restored) = t.restore("data:latest");
    assert_same_tree(&t.src, &restored);
}

#[test]
fn quota_refusal_goes_elsewhere_or_refuses_to_commit() {
    let t = Trove::new();
    t.init();
    let owner = owner_id(&t);
    let nodes = nodes_for(&t, 3, "64K");
    nodes[1].grant(&t, &owner, "1G");
    nodes[2].grant(&t, &owner, "1G");
    // 2+1 on three nodes: every pack asks node1 for a fragment.
    t.create_container("2+1");
    make_data(&t, 17, 2 << 20);
    let out = t.run(&["--json", "backup"]);
    assert_code(&out, 0, &["backup"]);
    let err = describe(&out);
    assert!(err.contains("node1") && err.contains("full"), "{err}");
    assert!(fragment_files(&nodes[0].owner_dir(&owner)).is_empty());
    let (_, restored) = t.restore("data:latest");
    assert_same_tree(&t.src, &restored);

    // Every node out of quota: the backup fails, naming a node, and commits nothing.
    for n in &nodes {
        n.grant(&t, &owner, "64K");
    }
    let before = t.snapshots().len();
    write(&t.src.join("new/more.bin"), &Gen::new(3).bytes(1 << 20));
    let out = t.run(&["--json", "backup"]);
    assert_code(&out, 1, &["backup"]);
    let err = describe(&out);
    assert!(err.contains("full") && err.contains("node"), "{err}");
    assert_eq!(t.snapshots().len(), before, "no snapshot committed");
}

#[test]
fn unauthorised_owner_is_refused_until_granted() {
    let t = Trove::new();
    t.init();
    let node = Node::start(&t, "stranger");
    let ticket = node.ticket(&t);
    let v = t.ok_json(&["peer", "add", "stranger", &ticket]);
    assert_eq!(v["node"]["granted"], false, "{v}");
    assert!(
        v["node"]["error"]
            .as_str()
            .unwrap()
            .contains("trove node grant"),
        "{v}"
    );
    t.create_container("1+0");
    make_small_tree(&t.src, 5);
    let out = t.run(&["backup"]);
    assert_ne!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(stderr(&out).contains("stranger"), "{}", describe(&out));
    let owner = owner_id(&t);
    assert!(
        node.log_text().contains("not granted"),
        "the node logs the refusal: {}",
        node.log_text()
    );
    assert!(
        !node.owner_dir(&owner).join("fragments").exists()
            || fragment_files(&node.owner_dir(&owner)).is_empty()
    );

    node.grant(&t, &owner, "1G");
    t.backup();
    let (_, restored) = t.restore("data:latest");
    assert_same_tree(&t.src, &restored);

    node.node_cmd(&t, &["revoke", &owner]);
    let c = t.json_code(1, &["check"]);
    assert!(c.to_string().contains("trove node grant"), "{c}");
}

#[test]
fn mixed_folder_and_node_peers_back_up_restore_and_recover() {
    let t = Trove::new();
    let init = t.init();
    t.add_folder_peers(3);
    let mut nodes = nodes_for(&t, 3, "1G");
    t.create_container("4+2");
    make_data(&t, 19, 5 << 20);
    t.backup();
    // Lose a folder peer and a node.
    std::fs::remove_dir_all(t.peer(2)).unwrap();
    nodes[0].kill();
    let (_, restored) = t.restore("data:latest");
    assert_same_tree(&t.src, &restored);

    // Recovery from nothing but the phrase and one node's ticket.
    nodes[0].spawn();
    t.lose_home_and_recover(init["phrase"].as_str().unwrap());
    let ticket = nodes[1].ticket(&t);
    t.ok_json(&["peer", "add", "found", &ticket]);
    let s = t.ok_json(&["sync"]);
    assert!(s["snapshots"].as_u64().unwrap() >= 1, "{s}");
    let (_, restored) = t.restore("data:latest");
    assert_same_tree(&t.src, &restored);
}

/// Finding 1 of the security review: ransomware that stole the owner's
/// `transport.key` talks to the owner's nodes directly (a real client over
/// real sockets, not the `trove` binary). It tries to overwrite every
/// metadata object with one byte, to roll the container manifest back to
/// an older signed revision, then deletes everything. The nodes refuse the
/// writes and keep the deleted objects in their trash, so recovery from the
/// phrase with one node still restores every snapshot.
#[test]
fn stolen_transport_key_overwriting_and_deleting_meta_then_recovery_from_the_phrase_succeeds() {
    use trove_peer::{MetaRejection, Peer, PeerError};
    let t = Trove::new();
    let init = t.init();
    let nodes = nodes_for(&t, 3, "1G");
    t.create_container("2+1");
    make_data(&t, 23, 1 << 20);
    t.backup();
    write(&t.src.join("later.txt"), b"a second snapshot");
    t.backup();
    // A roster change: the container manifest gets a newer revision.
    t.add_folder_peers(1);
    t.backup();
    assert_eq!(t.snapshots().len(), 3);

    // The thief's client, with the stolen key, on its own endpoint.
    let seed: [u8; 32] = std::fs::read(t.home.join("transport.key"))
        .unwrap()
        .try_into()
        .unwrap();
    let net = trove_node::NetworkConfig {
        mode: trove_node::NetworkMode::Direct,
        relay: None,
        bind: Some("127.0.0.1:0".parse().unwrap()),
    };
    let thief = trove_node::NodeClient::start(seed, &net).unwrap();
    let mut refused = 0;
    for node in &nodes {
        let ticket: trove_node::NodeTicket = node.ticket(&t).parse().unwrap();
        let peer = thief.peer(&node.name, &ticket).unwrap();
        let keys = peer.list_meta(None).unwrap();
        assert!(keys.len() >= 5, "{}: {keys:?}", node.name);
        for key in &keys {
            match peer.put_meta(key, b"x") {
                Err(PeerError::MetaRejected { reason, .. }) => {
                    assert!(matches!(*reason, MetaRejection::Invalid(_)), "{reason}");
                    refused += 1;
                }
                other => panic!(
                    "{}: overwriting {key} was not refused: {other:?}",
                    node.name
                ),
            }
        }
        // Replay the older revision the node kept when the roster changed.
        let manifest = keys
            .iter()
            .find(|k| matches!(k, trove_peer::MetaKey::Container(_)))
            .unwrap();
        let older = peer.get_deleted_meta(manifest).unwrap();
        match peer.put_meta(manifest, &older) {
            Err(PeerError::MetaRejected { reason, .. }) => {
                assert!(
                    matches!(*reason, MetaRejection::NotNewer { .. }),
                    "{reason}"
                )
            }
            other => panic!("rolling {manifest} back was not refused: {other:?}"),
        }
        for key in &keys {
            peer.delete_meta(key).unwrap();
        }
        assert!(peer.list_meta(None).unwrap().is_empty());
    }
    assert!(refused >= 15, "{refused}");
    drop(thief);

    // The owner's machine is gone too, and the folder peer is unplugged:
    // recover from the phrase and one node, whose metadata is all in its trash.
    let unplugged = t.tmp.path().join("p1-unplugged");
    std::fs::rename(t.peer(1), &unplugged).unwrap();
    t.lose_home_and_recover(init["phrase"].as_str().unwrap());
    t.ok_json(&["peer", "add", "found", &nodes[0].ticket(&t)]);
    let s = t.ok_json(&["sync"]);
    assert_eq!(s["snapshots"], 3, "{s}");
    assert!(
        !s["from_trash"].as_array().unwrap().is_empty(),
        "the objects came back from the trash: {s}"
    );
    let (_, restored) = t.restore("data:latest");
    assert_same_tree(&t.src, &restored);
    // The next backup puts the metadata back in place; check is clean.
    std::fs::rename(&unplugged, t.peer(1)).unwrap();
    t.backup();
    let c = t.ok_json(&["check", "--read-data"]);
    assert!(strings(&c["problems"]).is_empty(), "{c}");
}
