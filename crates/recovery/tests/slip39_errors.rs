//! The errors a person typing shares back in will see: precise about which
//! word, which share, which group.

use rand::rngs::StdRng;
use rand::SeedableRng;
use trove_recovery::slip39::{
    combine, combine_master, parse_shares, progress, sets, split, split_with_rng, GroupSpec,
    SetShares, Share, Slip39Error,
};

/// Two shares of a 2-of-3 backup from the official vectors (case 4).
const SHARE_A: &str = "shadow pistol academic always adequate wildlife fancy gross oasis \
    cylinder mustang wrist rescue view short owner flip making coding armed";
const SHARE_B: &str = "shadow pistol academic acid actress prayer class unknown daughter \
    sweater depict flip twice unkind craft early superior advocate guest smoking";
const SECRET: &str = "b43ceb7e57a0ea8766221624d01b0864";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn vector_shares_combine_case_insensitively() {
    let shouted = SHARE_B.to_uppercase().replace(' ', "\n  ");
    let secret = combine(&[SHARE_A, &shouted], b"TREZOR").expect("valid");
    assert_eq!(hex(&secret), SECRET);
}

#[test]
fn wrong_word_is_reported_by_share_and_position() {
    // Word 7 of share 2 mistyped.
    let typo = SHARE_B.replace(" class ", " clas ");
    let error = combine(&[SHARE_A, &typo], b"TREZOR").unwrap_err();
    assert_eq!(
        error,
        Slip39Error::UnknownWord {
            share: Some(2),
            position: 7,
            word: "clas".into(),
            suggestion: Some("class".into()),
        }
    );
    assert_eq!(
        error.to_string(),
        "share 2: word 7 (\"clas\") is not in the SLIP-39 word list (did you mean \"class\"?)"
    );
    // Parsing one share alone cannot know its number.
    let alone = Share::from_mnemonic(&typo).unwrap_err();
    assert_eq!(
        alone.to_string(),
        "word 7 (\"clas\") is not in the SLIP-39 word list (did you mean \"class\"?)"
    );
}

#[test]
fn wrong_but_listed_word_fails_the_checksum() {
    let swapped = SHARE_A.replace(" oasis ", " ocean ");
    let error = combine(&[SHARE_B, &swapped], b"TREZOR").unwrap_err();
    assert_eq!(error, Slip39Error::BadChecksum { share: Some(2) });
}

#[test]
fn wrong_word_count() {
    let short: Vec<&str> = SHARE_A.split_whitespace().take(19).collect();
    let error = Share::from_mnemonic(&short.join(" ")).unwrap_err();
    assert_eq!(
        error,
        Slip39Error::WrongWordCount {
            share: None,
            words: 19
        }
    );
}

#[test]
fn exact_duplicates_are_dropped() {
    // A duplicated share neither counts twice nor causes an error.
    let secret = combine(&[SHARE_A, SHARE_A, SHARE_B, SHARE_A], b"TREZOR").expect("valid");
    assert_eq!(hex(&secret), SECRET);
    let error = combine(&[SHARE_A, SHARE_A], b"TREZOR").unwrap_err();
    assert_eq!(
        error,
        Slip39Error::TooFewMembers {
            group_index: 0,
            needed: 2,
            have: 1
        }
    );
    assert_eq!(
        error.to_string(),
        "group 1 needs 2 shares, but only 1 was given"
    );
}

#[test]
fn same_index_different_value_is_a_conflict() {
    // Official vector 11: two different shares claiming member index 2.
    let a = "device stay academic always dive coal antenna adult black exceed stadium herald \
        advance soldier busy dryer daughter evaluate minister laser";
    let b = "device stay academic always dwarf afraid robin gravity crunch adjust soul branch \
        walnut coastal dream costume scholar mortgage mountain pumps";
    let error = combine(&[a, b], b"TREZOR").unwrap_err();
    assert_eq!(
        error,
        Slip39Error::ConflictingShares {
            first: 1,
            second: 2,
            group_index: 0,
            member_index: 2,
        }
    );
    assert_eq!(
        error.to_string(),
        "shares 1 and 2 are both member 3 of group 1 but differ: \
         one of them is mistyped or from a different backup"
    );
}

#[test]
fn shares_of_two_different_secrets() {
    let layout = [GroupSpec {
        member_threshold: 2,
        member_count: 3,
    }];
    // Different random identifiers: caught before any arithmetic.
    let one = split_with_rng(
        &[1; 32],
        b"",
        1,
        &layout,
        false,
        0,
        &mut StdRng::seed_from_u64(1),
    )
    .expect("valid");
    let two = split_with_rng(
        &[2; 32],
        b"",
        1,
        &layout,
        false,
        0,
        &mut StdRng::seed_from_u64(2),
    )
    .expect("valid");
    let (id1, id2) = (one[0][0].identifier(), two[0][0].identifier());
    assert_ne!(id1, id2);
    let error = combine(&[one[0][0].to_mnemonic(), two[0][1].to_mnemonic()], b"").unwrap_err();
    assert_eq!(
        error,
        Slip39Error::IdentifierMismatch {
            share: 2,
            expected: id1,
            found: id2
        }
    );
    assert_eq!(
        error.to_string(),
        format!(
            "share 2 belongs to a different share set than share 1 (set {id2:04x} instead of {id1:04x}): \
             shares of different sets never combine"
        )
    );

    // The same identifier (same RNG seed) but different secrets: only the
    // digest can tell.
    let three = split_with_rng(
        &[3; 32],
        b"",
        1,
        &layout,
        false,
        0,
        &mut StdRng::seed_from_u64(1),
    )
    .expect("valid");
    assert_eq!(three[0][0].identifier(), id1);
    let error = combine(&[one[0][0].to_mnemonic(), three[0][1].to_mnemonic()], b"").unwrap_err();
    assert_eq!(
        error,
        Slip39Error::DigestMismatch {
            group_index: Some(0)
        }
    );

    // Different iteration exponents and group layouts are named too.
    let slow = split_with_rng(
        &[1; 32],
        b"",
        1,
        &layout,
        false,
        1,
        &mut StdRng::seed_from_u64(1),
    )
    .expect("valid");
    let error = combine(&[one[0][0].to_mnemonic(), slow[0][1].to_mnemonic()], b"").unwrap_err();
    assert_eq!(
        error,
        Slip39Error::IterationExponentMismatch {
            share: 2,
            expected: 0,
            found: 1
        }
    );
}

#[test]
fn progress_says_what_is_missing() {
    let groups = [
        GroupSpec {
            member_threshold: 3,
            member_count: 5,
        },
        GroupSpec {
            member_threshold: 2,
            member_count: 3,
        },
        GroupSpec {
            member_threshold: 1,
            member_count: 1,
        },
    ];
    let master = [7u8; 32];
    let shares = split(&master, b"", 2, &groups, true, 0).expect("valid");
    let given = [
        shares[0][4].to_mnemonic(),
        shares[1][0].to_mnemonic(),
        shares[1][2].to_mnemonic(),
    ];
    let report = progress(&given).expect("consistent");
    assert_eq!(report.group_threshold, 2);
    assert_eq!(report.complete_groups(), 1);
    assert_eq!(report.groups_missing(), 1);
    assert_eq!(report.groups[0].missing(), Some(2));
    assert_eq!(report.groups[0].member_indices, vec![4]);
    assert_eq!(report.groups[2].missing(), None);
    assert_eq!(
        report.to_string(),
        "1 of the 2 groups needed are complete (the backup has 3 groups)\n\
         2 more shares needed from group 1 (needs 3, has 1)\n\
         group 2 is complete (needs 2, has 2)\n\
         group 3: no shares yet"
    );
    assert_eq!(
        combine(&given, b"").unwrap_err(),
        Slip39Error::TooFewMembers {
            group_index: 0,
            needed: 3,
            have: 1
        }
    );

    // Adding the 1-of-1 group completes it.
    let mut enough = given.to_vec();
    enough.push(shares[2][0].to_mnemonic());
    assert!(progress(&enough).expect("consistent").is_complete());
    assert_eq!(combine_master(&enough, b""), Ok(master));
}

#[test]
fn too_few_groups() {
    let groups = [GroupSpec {
        member_threshold: 1,
        member_count: 1,
    }; 3];
    let shares = split(&[9; 16], b"", 3, &groups, false, 0).expect("valid");
    let error = combine(&[shares[2][0].to_mnemonic()], b"").unwrap_err();
    assert_eq!(
        error,
        Slip39Error::TooFewGroups {
            needed: 3,
            present: 1,
            complete: 1
        }
    );
    assert_eq!(
        error.to_string(),
        "shares from 3 groups are needed, but only 1 group has shares (1 complete)"
    );
    assert!(error.is_too_few());
    assert_eq!(combine::<&str>(&[], b""), Err(Slip39Error::NoShares));
}

#[test]
fn split_rejects_bad_parameters() {
    let ok = [GroupSpec {
        member_threshold: 2,
        member_count: 3,
    }];
    assert_eq!(
        split(&[0; 15], b"", 1, &ok, false, 0).unwrap_err(),
        Slip39Error::InvalidSecretLength(15)
    );
    assert_eq!(
        split(&[0; 17], b"", 1, &ok, false, 0).unwrap_err(),
        Slip39Error::InvalidSecretLength(17)
    );
    assert_eq!(
        split(&[0; 32], "pässword".as_bytes(), 1, &ok, false, 0).unwrap_err(),
        Slip39Error::InvalidPassphrase
    );
    assert_eq!(
        split(&[0; 32], b"", 2, &ok, false, 0).unwrap_err(),
        Slip39Error::InvalidGroupThreshold {
            threshold: 2,
            groups: 1
        }
    );
    assert_eq!(
        split(&[0; 32], b"", 0, &ok, false, 0).unwrap_err(),
        Slip39Error::InvalidGroupThreshold {
            threshold: 0,
            groups: 1
        }
    );
    assert_eq!(
        split(&[0; 32], b"", 1, &[], false, 0).unwrap_err(),
        Slip39Error::InvalidGroupCount(0)
    );
    assert_eq!(
        split(&[0; 32], b"", 1, &ok, false, 16).unwrap_err(),
        Slip39Error::InvalidIterationExponent(16)
    );
    for (member_threshold, member_count) in [(1, 2), (0, 1), (3, 2), (2, 17)] {
        let spec = [
            ok[0],
            GroupSpec {
                member_threshold,
                member_count,
            },
        ];
        assert_eq!(
            split(&[0; 32], b"", 1, &spec, false, 0).unwrap_err(),
            Slip39Error::InvalidGroupSpec {
                group_index: 1,
                member_threshold,
                member_count
            }
        );
    }
}

#[test]
fn debug_output_redacts_share_values() {
    let share = Share::from_mnemonic(SHARE_A).expect("valid");
    let debug = format!("{share:?}");
    assert!(debug.contains("<16 bytes redacted>"), "{debug}");
    assert!(!debug.contains("value: ["), "{debug}");
}

/// Shares of two splits of the same secret are told apart by set, each
/// share named by position; the set shows as 4 hex digits.
#[test]
fn shares_are_sorted_by_set() {
    let layout = [GroupSpec {
        member_threshold: 2,
        member_count: 3,
    }];
    let one = split(&[7; 32], b"", 1, &layout, true, 1).expect("valid");
    let two = split(&[7; 32], b"", 1, &layout, true, 1).expect("valid");
    let (a, b) = (one[0][0].set_id(), two[0][0].set_id());
    assert_eq!(a.value(), one[0][0].identifier());
    assert_eq!(a.to_string(), format!("{:04x}", one[0][0].identifier()));
    assert_eq!(a.to_string().len(), 4);
    if a == b {
        // 1 in 32768: two splits drew the same identifier.
        return;
    }
    let mixed: Vec<String> = [&one[0][0], &two[0][1], &one[0][2], &two[0][0]]
        .iter()
        .map(|s| s.to_mnemonic())
        .collect();
    let parsed = parse_shares(&mixed).expect("each share is valid");
    assert_eq!(parsed[1].member_index(), 1);
    assert_eq!(
        sets(&parsed),
        [
            SetShares {
                set: a,
                positions: vec![0, 2]
            },
            SetShares {
                set: b,
                positions: vec![1, 3]
            }
        ]
    );
    assert_eq!(progress(&mixed[..1]).unwrap().set_id(), a);
    // Each set on its own combines to the secret.
    assert_eq!(combine(&[&mixed[0], &mixed[2]], b"").unwrap(), [7; 32]);
    assert_eq!(combine(&[&mixed[1], &mixed[3]], b"").unwrap(), [7; 32]);
    // A bad share is named by its position.
    let mut bad = mixed.clone();
    bad[2] = "notaword ".repeat(33);
    assert!(matches!(
        parse_shares(&bad),
        Err(Slip39Error::UnknownWord { share: Some(3), .. })
    ));
}
