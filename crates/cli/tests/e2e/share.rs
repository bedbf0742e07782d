//! `trove share`: a container shared read-only with another identity, who
//! restores and dumps it exactly and cannot write into it; share files for
//! someone else, altered or cut short are refused.

use crate::common::*;
use std::path::Path;

fn owner_id(t: &Trove) -> String {
    t.ok_json(&["whoami"])["owner_id"]
        .as_str()
        .expect("owner_id")
        .to_owned()
}

#[test]
fn a_shared_container_reads_exactly_for_its_recipient_only_and_stays_read_only() {
    let owner = Trove::setup(3, "2+1");
    make_small_tree(&owner.src, 91);
    owner.backup();
    let friend = Trove::new();
    friend.init();
    let stranger = Trove::new();
    stranger.init();

    let file = owner.tmp.path().join("data.trove-share");
    let f = file.display().to_string();
    let fid = owner_id(&friend);
    let given = owner.ok_json(&["share", "data", "--with", &fid, "--out", &f]);
    assert_eq!(given["recipient"], fid.as_str());
    // The file carries no readable secret: not the container key's hex,
    // nor the source paths.
    let bytes = std::fs::read(&file).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the share file is private");
    let src = owner.src.display().to_string();
    assert!(
        !bytes.windows(src.len()).any(|w| w == src.as_bytes()),
        "the manifest is sealed"
    );

    // The recipient: accept, list, restore and dump exactly.
    let acc = friend.ok_json(&["share", "accept", &f]);
    assert_eq!(acc["container"], "data");
    assert_eq!(acc["snapshots"], 1);
    let snaps = friend.snapshots();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["container"], "data");
    let (_, restored) = friend.restore("data:latest");
    assert_same_tree(&owner.src, &restored);
    let ls = friend.ok_json(&["ls", "data:latest", "src/docs"]);
    assert!(ls.as_array().unwrap().len() > 10, "{ls}");
    let out = friend.fresh_dir("dump");
    std::fs::create_dir_all(&out).unwrap();
    let dump = friend.run(&["dump", "data:latest"]);
    assert_code(&dump, 0, &["dump", "data:latest"]);
    extract(&dump.stdout, &out);
    assert_same_tree(&owner.src, &out.join("src"));

    // Nothing the recipient could write: every writing command refuses,
    // and passing the container on is the owner's too.
    let sid = owner_id(&stranger);
    for args in [
        vec!["backup", "data"],
        vec!["forget", "data", "--keep-last", "1"],
        vec!["prune", "data"],
        vec!["share", "data", "--with", &sid],
    ] {
        let o = friend.run(&args);
        assert_code(&o, 2, &args);
        assert!(
            stderr(&o).contains("shared with you read-only"),
            "{args:?}: {}",
            describe(&o)
        );
    }
    assert_eq!(
        owner.snapshots().len(),
        1,
        "the owner's snapshots unchanged"
    );

    // A new snapshot of the owner's: `share sync` reads it.
    write(&owner.src.join("after-share.txt"), b"new\n");
    owner.backup();
    let synced = friend.ok_json(&["share", "sync"]);
    assert_eq!(synced[0]["container"], "data");
    assert_eq!(synced[0]["snapshots"], 2, "{synced}");
    let (_, restored) = friend.restore("data:latest");
    assert_same_tree(&owner.src, &restored);

    // Someone else's file, an altered one, a cut one.
    let o = stranger.run(&["share", "accept", &f]);
    assert_code(&o, 2, &["share", "accept", &f]);
    assert!(
        stderr(&o).contains("not for this identity"),
        "{}",
        describe(&o)
    );
    for (name, bad) in [
        ("altered", {
            let mut b = bytes.clone();
            let at = b.len() / 2;
            b[at] ^= 1;
            b
        }),
        ("cut", bytes[..bytes.len() - 10].to_vec()),
    ] {
        let p = friend.tmp.path().join(name);
        std::fs::write(&p, &bad).unwrap();
        let ps = p.display().to_string();
        let o = friend.run(&["share", "accept", &ps]);
        assert_code(&o, 1, &["share", "accept", &ps]);
        assert!(
            stderr(&o).contains("share file"),
            "{name}: {}",
            describe(&o)
        );
    }
    let list = friend.ok_json(&["share", "list"]);
    assert_eq!(list["received"][0]["container"], "data");
    let list = owner.ok_json(&["share", "list"]);
    assert_eq!(list["given"][0]["recipient"], fid.as_str());
}

/// Extract a tar archive with the real `tar`.
fn extract(archive: &[u8], into: &Path) {
    use std::io::Write;
    let mut tar = std::process::Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(into)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tar.stdin.take().unwrap().write_all(archive).unwrap();
    assert!(tar.wait().unwrap().success());
}

#[test]
fn a_revoked_recipient_cannot_read_what_comes_after_and_the_owner_loses_nothing() {
    let owner = Trove::new();
    let phrase = owner.init()["phrase"].as_str().unwrap().to_owned();
    owner.add_folder_peers(3);
    owner.create_container("2+1");
    make_small_tree(&owner.src, 93);
    owner.backup();
    let (friend, other) = (Trove::new(), Trove::new());
    friend.init();
    other.init();
    let (fid, oid) = (owner_id(&friend), owner_id(&other));
    let file = owner.tmp.path().join("friend.trove-share");
    let f = file.display().to_string();
    owner.ok_json(&["share", "data", "--with", &fid, "--out", &f]);
    let other_file = owner.tmp.path().join("other.trove-share");
    let of = other_file.display().to_string();
    owner.ok_json(&["share", "data", "--with", &oid, "--out", &of]);
    assert_eq!(friend.ok_json(&["share", "accept", &f])["snapshots"], 1);
    let before = owner.fresh_dir("before");
    copy_tree(&owner.src, &before);

    let r = owner.ok_json(&["share", "revoke", "data", "--with", &fid]);
    assert_eq!(r["peers_updated"].as_array().unwrap().len(), 3, "{r}");
    assert_eq!(
        r["reshare"][0],
        oid.as_str(),
        "the other recipient is named: {r}"
    );
    write(
        &owner.src.join("after-revoke.txt"),
        b"secret after the revocation\n",
    );
    owner.backup();

    // The revoked friend: the old snapshot still, the new one not at all.
    let acc = friend.ok_json(&["share", "accept", &f]);
    assert_eq!(acc["snapshots"], 1, "{acc}");
    assert!(acc["unreadable"].as_u64().unwrap() >= 1, "{acc}");
    let (_, restored) = friend.restore("data:latest");
    assert_same_tree(&before, &restored);
    // The other recipient's old file opens only the old data too; a new
    // share file opens everything, old and new.
    assert_eq!(other.ok_json(&["share", "accept", &of])["snapshots"], 1);
    owner.ok_json(&["share", "data", "--with", &oid, "--out", &of]);
    assert_eq!(other.ok_json(&["share", "accept", &of])["snapshots"], 2);
    let (_, restored) = other.restore("data:latest");
    assert_same_tree(&owner.src, &restored);

    // The owner: every byte readable, and after losing the machine the
    // phrase brings back both keys (container manifest version 2).
    let check = owner.ok_json(&["check", "--read-data"]);
    assert!(check["problems"].as_array().unwrap().is_empty(), "{check}");
    owner.lose_home_and_recover(&phrase);
    let p1 = format!("dir:{}", owner.peer(1).display());
    owner.ok_json(&["peer", "add", "found", &p1]);
    owner.ok_json(&["sync"]);
    assert_eq!(owner.snapshots().len(), 2);
    let (_, restored) = owner.restore("data:latest");
    assert_same_tree(&owner.src, &restored);
    let first = owner.snapshots()[0]["id"].as_str().unwrap().to_owned();
    let (_, restored) = owner.restore(&first);
    assert_same_tree(&before, &restored);
}
