//! Property tests: split then combine round-trips for any layout and any
//! sufficient subset; any insufficient subset fails with a "too few" error;
//! shares survive formatting and parsing. Iteration exponent 0 keeps the
//! PBKDF2 cost low.

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use trove_recovery::bip39;
use trove_recovery::slip39::{combine, progress, split, GroupSpec, Share, Slip39Error};

/// A valid group: 1-of-1, or t-of-n with 2 ≤ t ≤ n ≤ 5.
fn group_spec() -> impl Strategy<Value = GroupSpec> {
    (1u8..=5).prop_flat_map(|count| {
        let min = if count == 1 { 1 } else { 2 };
        (min..=count).prop_map(move |threshold| GroupSpec {
            member_threshold: threshold,
            member_count: count,
        })
    })
}

/// A secret (even length, 16 to 34 bytes), passphrase, group threshold and groups.
fn backup() -> impl Strategy<Value = (Vec<u8>, String, u8, Vec<GroupSpec>, bool)> {
    (
        (8usize..=17).prop_flat_map(|half| prop::collection::vec(any::<u8>(), half * 2)),
        prop_oneof![Just(String::new()), "[ -~]{1,12}"],
        prop::collection::vec(group_spec(), 1..=4),
        any::<bool>(),
    )
        .prop_flat_map(|(secret, passphrase, groups, extendable)| {
            let count = groups.len() as u8;
            (
                Just(secret),
                Just(passphrase),
                1..=count,
                Just(groups),
                Just(extendable),
            )
        })
}

fn mnemonics(shares: &[&Share]) -> Vec<String> {
    shares.iter().map(|s| s.to_mnemonic()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_sufficient_subset_recovers(
        (secret, passphrase, group_threshold, groups, extendable) in backup(),
        seed in any::<u64>(),
    ) {
        let shares = split(&secret, passphrase.as_bytes(), group_threshold, &groups, extendable, 0)
            .expect("valid parameters");
        let mut rng = StdRng::seed_from_u64(seed);
        // Pick at least `group_threshold` groups; from each chosen group at
        // least its threshold of members; from the others, anything.
        let mut order: Vec<usize> = (0..groups.len()).collect();
        order.shuffle(&mut rng);
        let complete = rng.gen_range(usize::from(group_threshold)..=groups.len());
        let mut chosen: Vec<&Share> = Vec::new();
        for (rank, &g) in order.iter().enumerate() {
            let spec = groups[g];
            let min = if rank < complete { usize::from(spec.member_threshold) } else { 0 };
            let take = rng.gen_range(min..=usize::from(spec.member_count));
            chosen.extend(shares[g].choose_multiple(&mut rng, take));
        }
        chosen.shuffle(&mut rng);
        let recovered = combine(&mnemonics(&chosen), passphrase.as_bytes());
        prop_assert_eq!(recovered, Ok(secret));
        let progress = progress(&mnemonics(&chosen)).expect("consistent shares");
        prop_assert!(progress.is_complete());
    }

    #[test]
    fn any_insufficient_subset_fails_with_too_few(
        (secret, passphrase, group_threshold, groups, extendable) in backup(),
        seed in any::<u64>(),
    ) {
        let shares = split(&secret, passphrase.as_bytes(), group_threshold, &groups, extendable, 0)
            .expect("valid parameters");
        let mut rng = StdRng::seed_from_u64(seed);
        // Complete only `group_threshold − 1` groups; the rest get fewer
        // shares than they need.
        let mut order: Vec<usize> = (0..groups.len()).collect();
        order.shuffle(&mut rng);
        let complete = usize::from(group_threshold) - 1;
        let mut chosen: Vec<&Share> = Vec::new();
        for (rank, &g) in order.iter().enumerate() {
            let spec = groups[g];
            let take = if rank < complete {
                rng.gen_range(usize::from(spec.member_threshold)..=usize::from(spec.member_count))
            } else {
                rng.gen_range(0..usize::from(spec.member_threshold))
            };
            chosen.extend(shares[g].choose_multiple(&mut rng, take));
        }
        chosen.shuffle(&mut rng);
        let result = combine(&mnemonics(&chosen), passphrase.as_bytes());
        if chosen.is_empty() {
            prop_assert_eq!(result, Err(Slip39Error::NoShares));
        } else {
            let error = result.expect_err("below threshold");
            prop_assert!(error.is_too_few(), "{:?}", error);
            let progress = progress(&mnemonics(&chosen)).expect("consistent shares");
            prop_assert!(!progress.is_complete());
            prop_assert_eq!(progress.complete_groups(), complete);
        }
    }

    #[test]
    fn mnemonic_round_trip(
        (secret, passphrase, group_threshold, groups, extendable) in backup(),
    ) {
        let shares = split(&secret, passphrase.as_bytes(), group_threshold, &groups, extendable, 0)
            .expect("valid parameters");
        for (g, group) in shares.iter().enumerate() {
            prop_assert_eq!(group.len(), usize::from(groups[g].member_count));
            for (m, share) in group.iter().enumerate() {
                prop_assert_eq!(usize::from(share.group_index()), g);
                prop_assert_eq!(usize::from(share.member_index()), m);
                prop_assert_eq!(share.group_threshold(), group_threshold);
                prop_assert_eq!(share.extendable(), extendable);
                let mnemonic = share.to_mnemonic();
                // 7 metadata words plus the value in 10-bit words.
                prop_assert_eq!(mnemonic.split(' ').count(), 7 + (secret.len() * 8).div_ceil(10));
                prop_assert_eq!(&Share::from_mnemonic(&mnemonic).expect("parses"), share);
                let shouted = mnemonic.to_uppercase().replace(' ', " \t\n ");
                prop_assert_eq!(&Share::from_mnemonic(&shouted).expect("parses"), share);
                prop_assert_eq!(Share::from_mnemonic(&mnemonic).expect("parses").to_mnemonic(), mnemonic);
            }
        }
    }

    #[test]
    fn bip39_round_trip(words in prop::sample::select(vec![16usize, 20, 24, 28, 32]), seed in any::<u64>()) {
        let mut entropy = vec![0u8; words];
        StdRng::seed_from_u64(seed).fill(&mut entropy[..]);
        let phrase = bip39::entropy_to_phrase(&entropy).expect("valid length");
        prop_assert_eq!(phrase.split(' ').count(), words * 3 / 4);
        prop_assert_eq!(bip39::phrase_to_entropy(&phrase), Ok(entropy.clone()));
        if let Ok(master) = <[u8; 32]>::try_from(entropy.as_slice()) {
            prop_assert_eq!(bip39::master_to_phrase(&master), phrase.clone());
            prop_assert_eq!(bip39::phrase_to_master(&phrase), Ok(master));
        }
    }
}
