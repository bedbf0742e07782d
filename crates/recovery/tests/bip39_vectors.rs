//! The official BIP-39 English test vectors (trezor/python-mnemonic
//! `vectors.json`, see `fixtures/README.md`): entropy → phrase, phrase →
//! entropy and phrase → seed with passphrase "TREZOR". The xprv column is
//! out of scope and ignored.

use serde_json::Value;
use trove_recovery::bip39::{entropy_to_phrase, phrase_to_entropy, phrase_to_seed};

#[test]
fn official_english_vectors() {
    let vectors: Value =
        serde_json::from_str(include_str!("fixtures/bip39_vectors.json")).expect("valid JSON");
    let cases = vectors["english"].as_array().expect("english cases");
    let mut run = 0;
    for (i, case) in cases.iter().enumerate() {
        let entropy = hex::decode(case[0].as_str().expect("entropy")).expect("hex");
        let phrase = case[1].as_str().expect("phrase");
        let seed = case[2].as_str().expect("seed");
        assert_eq!(
            entropy_to_phrase(&entropy).as_deref(),
            Ok(phrase),
            "case {}",
            i + 1
        );
        assert_eq!(
            phrase_to_entropy(phrase),
            Ok(entropy.clone()),
            "case {}",
            i + 1
        );
        assert_eq!(
            hex::encode(phrase_to_seed(phrase, "TREZOR")),
            seed,
            "case {}",
            i + 1
        );
        println!(
            "ok case {:2}: {} bytes, {} words",
            i + 1,
            entropy.len(),
            phrase.split(' ').count()
        );
        run += 1;
    }
    println!("BIP-39 English vectors: {run} run");
    assert_eq!(run, 24);
}
