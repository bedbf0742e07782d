//! Peers learn nothing: after a backup, no file anywhere under a peer
//! folder, and no file or folder name there, contains a source file name, a
//! folder name, a symlink target, the source path, or any 16 bytes of a
//! file's contents.

use crate::common::*;
use std::path::Path;

const FILE_NAME: &str = "SECRET-NAME-7f3a.txt";
const DIR_NAME: &str = "CONFIDENTIAL-DIR-e91b";
const BIN_NAME: &str = "PRIVATE-BLOB-52d0.bin";
const LINK_TARGET: &str = "SYMLINK-TARGET-4c2d-hidden";
const TEXT: &str = "Dear Margarethe, the vault combination is 31-17-42 and the spare key is under the blue heron statue. ";

/// Every 16-byte window of `b`.
fn windows16(b: &[u8]) -> Vec<Vec<u8>> {
    b.windows(16).map(|w| w.to_vec()).collect()
}

fn check_peers_learn_nothing(compressible: bool) {
    let t = Trove::setup(6, "4+2");
    let marker = Gen::new(0xC0FFEE).bytes(64);
    let dir = t.src.join(DIR_NAME);
    let mut g = Gen::new(if compressible { 1 } else { 2 });
    let body: Vec<u8> = if compressible {
        // The marker over and over: zstd shrinks it to almost nothing.
        marker.repeat(8192)
    } else {
        // Noise with the marker embedded every 64 KiB.
        let mut b = g.bytes(3 << 20);
        for off in (0..b.len() - 64).step_by(65536) {
            b[off..off + 64].copy_from_slice(&marker);
        }
        b
    };
    write(&dir.join(BIN_NAME), &body);
    let text = if compressible {
        TEXT.repeat(200).into_bytes()
    } else {
        let mut t = g.bytes(20_000);
        t.extend_from_slice(TEXT.as_bytes());
        t.extend_from_slice(&g.bytes(20_000));
        t
    };
    write(&dir.join(FILE_NAME), &text);
    write(&t.src.join("plain.txt"), TEXT.as_bytes());
    std::os::unix::fs::symlink(LINK_TARGET, dir.join("link")).unwrap();
    let b = t.backup();
    assert!(b["packs_new"].as_u64().unwrap() >= 1, "{b}");

    let src = t.src.display().to_string();
    let tmp_name = t
        .tmp
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut needles: Vec<Vec<u8>> = vec![
        FILE_NAME.into(),
        DIR_NAME.into(),
        BIN_NAME.into(),
        LINK_TARGET.into(),
        src.clone().into(),
        tmp_name.clone().into(),
        // A file name on its own, without the test's prefixes.
        b"SECRET-NAME".to_vec(),
        b"CONFIDENTIAL".to_vec(),
    ];
    needles.extend(windows16(&marker));
    needles.extend(windows16(TEXT.as_bytes()));

    // The needles are findable: the search itself works.
    assert!(find_any(&body, &needles).is_some());
    assert!(find_any(&std::fs::read(dir.join(FILE_NAME)).unwrap(), &needles).is_some());

    let mut scanned = 0u64;
    let mut fragments = 0;
    for p in 1..=6 {
        let peer = t.peer(p);
        fragments += fragment_files(&peer).len();
        for f in all_files(&peer) {
            let rel = f.strip_prefix(&peer).unwrap().display().to_string();
            assert!(
                find_any(rel.as_bytes(), &needles).is_none(),
                "peer file name {rel} leaks"
            );
            let bytes = std::fs::read(&f).unwrap();
            scanned += bytes.len() as u64;
            if let Some((at, n)) = find_any(&bytes, &needles) {
                panic!(
                    "{} leaks {:?} at offset {at}",
                    f.display(),
                    String::from_utf8_lossy(n)
                );
            }
        }
        // Folder names too.
        for d in list_tree(&peer).into_keys() {
            assert!(find_any(d.as_bytes(), &needles).is_none(), "{d} leaks");
        }
    }
    assert!(fragments >= 6, "there were fragments to scan");
    let stored = b["bytes_stored"].as_u64().unwrap();
    assert!(
        scanned >= stored,
        "scanned {scanned} bytes of {stored} stored"
    );
    // And the data is really there: it restores.
    let (_, out) = t.restore("data:latest");
    assert_same_tree(&t.src, &out);
    assert!(Path::new(&out.join(DIR_NAME).join(FILE_NAME)).is_file());
}

#[test]
fn peer_folders_hold_no_names_paths_or_contents_of_compressible_files() {
    check_peers_learn_nothing(true);
}

#[test]
fn peer_folders_hold_no_names_paths_or_contents_of_incompressible_files() {
    check_peers_learn_nothing(false);
}
