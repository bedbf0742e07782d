//! `trove drill`, through the real binary: a drill with the right phrase
//! passes, verifies a sample of files, leaves the home byte for byte as it
//! was (but for `drill.json`) and prints no secret; `status` shows it.
//! Another identity's phrase, a file whose fragments are gone, and shares
//! of two sets each fail, and say why.

use crate::common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Every file of the home but `drill.json`, with its bytes.
fn home_files(home: &Path) -> BTreeMap<String, Vec<u8>> {
    all_files(home)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "drill.json"))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p.strip_prefix(home).unwrap().display().to_string(), bytes)
        })
        .collect()
}

fn phrase_of(init: &Value) -> String {
    init["phrase"]
        .as_str()
        .expect("init prints the phrase")
        .to_owned()
}

/// Write `text` into a new file under the world's temp dir; its path.
fn file_with(t: &Trove, name: &str, text: &str) -> String {
    let p = t.tmp.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// The words of the keys and string values of a JSON document (not its
/// literals: `true` is a BIP-39 word too).
fn json_words(v: &Value, out: &mut BTreeSet<String>) {
    fn words(s: &str, out: &mut BTreeSet<String>) {
        for w in s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if !w.is_empty() {
                out.insert(w.to_ascii_lowercase());
            }
        }
    }
    match v {
        Value::String(s) => words(s, out),
        Value::Array(a) => a.iter().for_each(|x| json_words(x, out)),
        Value::Object(o) => {
            for (k, x) in o {
                words(k, out);
                json_words(x, out);
            }
        }
        _ => {}
    }
}

#[test]
fn a_drill_with_the_right_phrase_passes_and_changes_nothing() {
    let t = Trove::new();
    let init = t.init();
    let phrase = phrase_of(&init);
    t.add_folder_peers(3);
    t.create_container("2+1");
    make_small_tree(&t.src, 31);
    t.backup();
    let pf = file_with(&t, "phrase.txt", &phrase);
    let before = home_files(&t.home);
    assert!(before.contains_key("index.redb") && before.contains_key("keyfile"));

    let out = t.run(&["--json", "drill", "--phrase-file", &pf]);
    assert_code(&out, 0, &["drill"]);
    let v = parse_json(&out);
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["seconds"].as_f64().is_some_and(|s| s > 0.0), "{v}");
    assert_eq!(v["identity"], init["fingerprint"]);
    assert_eq!(v["recovers"], init["fingerprint"]);
    assert_eq!(v["peers_tried"][0]["peer"], "p1");
    assert_eq!(v["peers_tried"][0]["answered"], true);
    assert_eq!(v["peer_used"], "p1");
    assert_eq!(v["containers_live"], serde_json::json!(["data"]));
    assert_eq!(v["containers_found"], serde_json::json!(["data"]));
    assert_eq!(v["snapshots_found"], 1);
    // 28 regular files, about 2 MB: 16 sampled, all verified.
    assert_eq!(v["files_sampled"], 16, "{v}");
    assert_eq!(v["files_verified"], 16, "{v}");
    assert_eq!(v["files_failed"], 0);
    assert_eq!(v["containers"][0]["files_in_snapshot"], 28);
    assert!(v["bytes_verified"].as_u64().unwrap() > 0);
    assert!(v["blockers"].as_array().unwrap().is_empty());

    // The live home is as it was, but for the record of the drill.
    assert_eq!(home_files(&t.home), before, "the drill changed the home");
    let record_path = t.home.join("drill.json");
    let mode = std::fs::metadata(&record_path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let record: Value = serde_json::from_slice(&std::fs::read(&record_path).unwrap()).unwrap();
    assert_eq!(record["version"], 1);
    assert_eq!(record["ok"], true);
    assert_eq!(record["identity"], init["fingerprint"]);

    // No secret: none of the 24 words, not the passphrase.
    let words: BTreeSet<String> = phrase.split(' ').map(str::to_owned).collect();
    assert!(words.len() > 12, "the phrase has (mostly) distinct words");
    let mut said = BTreeSet::new();
    json_words(&v, &mut said);
    let leaked: Vec<_> = said.intersection(&words).collect();
    assert!(
        leaked.is_empty(),
        "the report names phrase words {leaked:?}"
    );
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    // In text too (where ordinary English may meet a word of the list,
    // two words of the phrase in a row may not).
    let text = t.run(&["drill", "--phrase-file", &pf, "--sample", "3"]);
    assert_code(&text, 0, &["drill"]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&text.stdout)
    ) + &stderr(&text);
    assert!(all.contains("PASSED"), "{all}");
    assert!(all.contains("3 of 3 sampled file(s) verified"), "{all}");
    let list: Vec<&str> = phrase.split(' ').collect();
    for pair in list.windows(2) {
        assert!(!all.to_lowercase().contains(&pair.join(" ")), "{all}");
    }
    assert!(!all.contains(PASS));
    assert_eq!(home_files(&t.home), before);

    // Status shows it.
    let s = t.ok_json(&["status"]);
    assert_eq!(s["drill"]["ok"], true, "{s}");
    assert!(s["drill"]["reminder"].is_null());
    let st = t.run(&["status"]);
    assert!(
        String::from_utf8_lossy(&st.stdout).contains("drill: last drill passed today"),
        "{}",
        describe(&st)
    );
}

#[test]
fn another_identitys_phrase_is_a_blocker() {
    let t = Trove::setup(2, "1+1");
    make_small_tree(&t.src, 32);
    t.backup();
    // No drill yet.
    let st = t.run(&["status"]);
    assert!(String::from_utf8_lossy(&st.stdout).contains("drill: no drill yet"));

    let other = Trove::new();
    let other_init = other.init();
    let pf = file_with(&t, "other.txt", &phrase_of(&other_init));
    let before = home_files(&t.home);
    let v = t.json_code(1, &["drill", "--phrase-file", &pf]);
    assert_eq!(v["ok"], false);
    assert_eq!(v["recovers"], other_init["fingerprint"]);
    let blockers = strings(&v["blockers"]);
    assert_eq!(blockers.len(), 1, "{v}");
    let fp = other_init["fingerprint"].as_str().unwrap();
    assert!(
        blockers[0].contains(&format!(
            "these words recover identity {fp}, not this home's"
        )),
        "{blockers:?}"
    );
    assert!(v["peers_tried"].as_array().unwrap().is_empty());
    assert_eq!(home_files(&t.home), before);
    let s = t.ok_json(&["status"]);
    assert_eq!(s["drill"]["ok"], false);
    assert!(s["drill"]["last_passed_unix"].is_null());
    let st = t.run(&["status"]);
    assert!(
        String::from_utf8_lossy(&st.stdout)
            .contains("drill: last drill FAILED today: these words recover identity"),
        "{}",
        describe(&st)
    );
}

#[test]
fn a_file_whose_fragments_are_gone_fails_the_drill_by_name() {
    let t = Trove::new();
    let phrase = phrase_of(&t.init());
    t.add_folder_peers(3);
    t.create_container("2+1");
    write(&t.src.join("big.bin"), &Gen::new(7).bytes(600_000));
    t.backup();
    // The first backup's pack: big.bin (and the first trees).
    let first: Vec<_> = t.all_fragments(3);
    assert_eq!(first.len(), 3, "one pack of 2+1 fragments");
    // The second backup's pack holds the new file and the new trees.
    write(&t.src.join("later.txt"), &Gen::new(8).text(3_000));
    t.backup();
    // Two of the three fragments of big.bin's pack are gone: p1 alone
    // cannot rebuild it.
    for (peer, f) in &first {
        if *peer != 1 {
            std::fs::remove_file(f).unwrap();
        }
    }
    let pf = file_with(&t, "phrase.txt", &phrase);
    let v = t.json_code(1, &["drill", "--phrase-file", &pf]);
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["peer_used"], "p1");
    assert_eq!(v["containers_found"], serde_json::json!(["data"]));
    assert_eq!(v["files_sampled"], 2, "{v}");
    assert_eq!(v["files_verified"], 1, "later.txt comes back: {v}");
    assert_eq!(v["files_failed"], 1, "{v}");
    assert_eq!(v["containers"][0]["failures"][0]["at"], "data:src/big.bin");
    let blockers = strings(&v["blockers"]);
    assert_eq!(blockers.len(), 1, "{blockers:?}");
    assert!(
        blockers[0].starts_with("file `data:src/big.bin` of snapshot")
            && blockers[0].contains("could not be restored"),
        "{blockers:?}"
    );
    let record: Value =
        serde_json::from_slice(&std::fs::read(t.home.join("drill.json")).unwrap()).unwrap();
    assert_eq!(record["ok"], false);
    assert!(
        record["summary"]
            .as_str()
            .unwrap()
            .contains("data:src/big.bin"),
        "{record}"
    );
}

#[test]
fn shares_of_two_sets_are_refused_naming_the_sets() {
    let t = Trove::setup(2, "1+1");
    make_small_tree(&t.src, 33);
    t.backup();
    let split = |t: &Trove| {
        let v = t.ok_json(&["recovery", "split", "--threshold", "2", "--shares", "3"]);
        let shares: Vec<String> = v["shares"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["mnemonic"].as_str().unwrap().to_owned())
            .collect();
        (v["set"].as_str().unwrap().to_owned(), shares)
    };
    let (set_a, a) = split(&t);
    let (set_b, b) = split(&t);
    assert_ne!(set_a, set_b);
    let sf = file_with(&t, "mixed.txt", &format!("{}\n{}\n{}\n", a[0], b[0], b[1]));
    let out = t.run(&["drill", "--shares-file", &sf]);
    assert_code(&out, 1, &["drill", "--shares-file"]);
    let err = stderr(&out);
    assert!(
        err.contains("shares from 2 different sets")
            && err.contains(&format!("{set_a} (1 share)"))
            && err.contains(&format!("{set_b} (2 shares)")),
        "{err}"
    );
    assert!(!t.home.join("drill.json").exists(), "no drill ran");
    // The shares of one set pass.
    let sf = file_with(&t, "one-set.txt", &format!("{}\n{}\n", b[0], b[2]));
    let v = t.ok_json(&["drill", "--shares-file", &sf]);
    assert_eq!(v["ok"], true, "{v}");
}

#[test]
fn a_drill_through_node_peers() {
    let t = Trove::new();
    let phrase = phrase_of(&t.init());
    let _nodes = crate::nodes::nodes_for(&t, 2, "1G");
    t.create_container("1+1");
    make_small_tree(&t.src, 34);
    t.backup();
    let pf = file_with(&t, "phrase.txt", &phrase);
    let before = home_files(&t.home);
    let v = t.ok_json(&["drill", "--phrase-file", &pf, "--sample", "4"]);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["peer_used"], "node1");
    assert_eq!(v["files_verified"], 4, "{v}");
    let read: Vec<bool> = v["peers_read"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["read"] == true)
        .collect();
    assert_eq!(read, [true, true], "{v}");
    assert_eq!(home_files(&t.home), before);
}
