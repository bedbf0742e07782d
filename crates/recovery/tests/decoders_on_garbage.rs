//! Phrase and share parsing fed arbitrary text, and share lists of arbitrary
//! (but checksummed) words: what must hold for any input. The same
//! properties run for much longer as the `recovery` fuzz target
//! (`fuzz/README.md`).

use proptest::prelude::*;
use trove_recovery::slip39::{self, combine_master, progress, Share, Slip39Error};
use trove_recovery::{bip39, phrase_to_master};

fn normalize(s: &str) -> String {
    s.split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// SLIP-39's RS1024 checksum, from the specification.
fn checksum(extendable: bool, words: &[u16]) -> [u16; 3] {
    const GEN: [u32; 10] = [
        0xE0E040, 0x1C1C080, 0x3838100, 0x7070200, 0xE0E0009, 0x1C0C2412, 0x38086C24, 0x3090FC48,
        0x21B1F890, 0x3F3F120,
    ];
    let cs: &[u8] = if extendable {
        b"shamir_extendable"
    } else {
        b"shamir"
    };
    let mut chk = 1u32;
    let values = cs.iter().map(|&b| b as u32);
    for v in values.chain(words.iter().map(|&w| w as u32)).chain([0; 3]) {
        let b = chk >> 20;
        chk = ((chk & 0xFFFFF) << 10) ^ v;
        for (i, g) in GEN.iter().enumerate() {
            if (b >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    let chk = chk ^ 1;
    [2, 1, 0].map(|i| ((chk >> (10 * i)) & 1023) as u16)
}

fn mnemonic(words: &[u16]) -> String {
    let extendable = words[1] >> 4 & 1 == 1;
    let list = slip39::wordlist();
    words
        .iter()
        .chain(&checksum(extendable, words))
        .map(|&w| list[w as usize])
        .collect::<Vec<_>>()
        .join(" ")
}

/// A share that parses prints back canonically; `progress` and
/// `combine_master` refuse the same lists with the same error, and an
/// incomplete list is "too few" for both.
fn check_shares(lines: &[String]) -> Result<(), TestCaseError> {
    for line in lines {
        if let Ok(s) = Share::from_mnemonic(line) {
            prop_assert_eq!(s.to_mnemonic(), normalize(line));
            prop_assert_eq!(Share::from_mnemonic(&s.to_mnemonic()), Ok(s));
        }
    }
    match progress(lines) {
        Err(e) => prop_assert_eq!(combine_master(lines, b"").err(), Some(e)),
        Ok(p) => {
            prop_assert_eq!(p.groups.len(), p.group_count as usize);
            if !p.is_complete() {
                let e = combine_master(lines, b"").unwrap_err();
                prop_assert!(e.is_too_few(), "{}", e);
            } else if p.iteration_exponent == 0 {
                // The passphrase cipher's cost is 10 000 · 2^e by design.
                match combine_master(lines, b"") {
                    Ok(_)
                    | Err(Slip39Error::DigestMismatch { .. })
                    | Err(Slip39Error::NotAMasterSecret(_)) => {}
                    Err(e) => prop_assert!(false, "complete shares gave {}", e),
                }
            }
        }
    }
    Ok(())
}

fn words() -> impl Strategy<Value = Vec<u16>> {
    proptest::collection::vec(0u16..1024, 17..40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn phrases(text in "\\PC{0,200}", ws in proptest::collection::vec(0usize..2048, 0..26)) {
        let list = bip39::wordlist();
        let listed = ws.iter().map(|&i| list[i]).collect::<Vec<_>>().join("  ");
        for s in [&text, &listed] {
            match bip39::phrase_to_entropy(s) {
                Ok(e) => {
                    prop_assert_eq!(bip39::entropy_to_phrase(&e), Ok(normalize(s)));
                    prop_assert_eq!(phrase_to_master(s).is_ok(), e.len() == 32);
                }
                Err(_) => prop_assert!(phrase_to_master(s).is_err()),
            }
        }
    }

    #[test]
    fn share_lists(text in "\\PC{0,200}", shares in proptest::collection::vec(words(), 0..4)) {
        check_shares(&text.lines().map(str::to_owned).collect::<Vec<_>>())?;
        // Checksummed words: the parser's later checks, and combining.
        let lines: Vec<String> = shares.iter().map(|w| mnemonic(w)).collect();
        check_shares(&lines)?;
        // The same shares with one header in common, so they get further.
        let same: Vec<String> = shares.iter().map(|w| {
            let mut w = w.clone();
            w[..2].copy_from_slice(&[0, 0]);
            w.truncate(shares[0].len());
            w.resize(shares[0].len(), 0);
            mnemonic(&w)
        }).collect();
        check_shares(&same)?;
    }
}
