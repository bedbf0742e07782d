//! The official SLIP-39 test vectors (trezor/python-shamir-mnemonic
//! `vectors.json`, see `fixtures/README.md`): every valid case must combine
//! to its master secret with passphrase "TREZOR", every invalid case must
//! fail. The xprv column (BIP-32 derivation) is out of scope and ignored.

use serde_json::Value;
use trove_recovery::slip39::{combine, Slip39Error};

const PASSPHRASE: &[u8] = b"TREZOR";

#[test]
fn official_vectors() {
    let vectors: Value =
        serde_json::from_str(include_str!("fixtures/slip39_vectors.json")).expect("valid JSON");
    let cases = vectors.as_array().expect("array of cases");
    let (mut valid, mut invalid) = (0, 0);
    for case in cases {
        let description = case[0].as_str().expect("description");
        let mnemonics: Vec<&str> = case[1]
            .as_array()
            .expect("mnemonics")
            .iter()
            .map(|m| m.as_str().expect("mnemonic"))
            .collect();
        let expected = case[2].as_str().expect("master secret");
        let result = combine(&mnemonics, PASSPHRASE);
        if expected.is_empty() {
            match result {
                Err(e) => {
                    assert!(
                        expected_failure(description, &e),
                        "{description}: failed for the wrong reason: {e:?}"
                    );
                    println!("ok (invalid) {description}: {e}");
                }
                Ok(secret) => panic!(
                    "{description}: expected an error, got {}",
                    hex::encode(secret)
                ),
            }
            invalid += 1;
        } else {
            match result {
                Ok(secret) => assert_eq!(hex::encode(secret), expected, "{description}"),
                Err(e) => panic!("{description}: {e}"),
            }
            println!("ok (valid)   {description}");
            valid += 1;
        }
    }
    println!(
        "SLIP-39 vectors: {} run, {valid} valid, {invalid} invalid",
        valid + invalid
    );
    assert_eq!((valid, invalid), (15, 30));
    assert_eq!(valid + invalid, 45);
}

/// Whether `error` is the failure the vector's description announces, so a
/// case cannot pass by failing for an unrelated reason.
fn expected_failure(description: &str, error: &Slip39Error) -> bool {
    use Slip39Error::*;
    let d = description.to_lowercase();
    if d.contains("invalid checksum") {
        matches!(error, BadChecksum { share: Some(1) })
    } else if d.contains("invalid padding") {
        matches!(error, InvalidPadding { share: Some(1) })
    } else if d.contains("insufficient length") || d.contains("invalid master secret length") {
        matches!(error, WrongWordCount { share: Some(1), .. })
    } else if d.contains("different identifiers") {
        matches!(error, IdentifierMismatch { .. })
    } else if d.contains("different iteration exponents") {
        matches!(error, IterationExponentMismatch { .. })
    } else if d.contains("mismatching group thresholds") {
        matches!(error, GroupThresholdMismatch { .. })
    } else if d.contains("mismatching group counts") {
        matches!(error, GroupCountMismatch { .. })
    } else if d.contains("greater group threshold than group counts") {
        matches!(error, GroupThresholdExceedsCount { .. })
    } else if d.contains("duplicate member indices") {
        matches!(error, ConflictingShares { .. })
    } else if d.contains("mismatching member thresholds") {
        matches!(error, MemberThresholdMismatch { .. })
    } else if d.contains("invalid digest") {
        matches!(error, DigestMismatch { .. })
    } else if d.contains("insufficient number of groups") {
        matches!(error, TooFewGroups { .. })
    } else if d.contains("insufficient number of members") || d.contains("basic sharing") {
        // The invalid "basic sharing" cases give one share of a 2-of-3.
        matches!(error, TooFewMembers { .. })
    } else {
        false
    }
}
