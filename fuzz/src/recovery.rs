//! Recovery phrases and shares (`docs/design.md` §9a): `phrase_to_master`,
//! `Share::from_mnemonic`, `progress` and `combine_master`.

use crate::{Input, InputBuilder};
use trove_recovery::slip39::{self, Share, Slip39Error};
use trove_recovery::{bip39, combine_master, progress};

/// Highest iteration exponent the oracle lets `combine_master` run with:
/// its cost is 10 000 · 2^e PBKDF2 rounds *by the specification*, so a
/// share with e = 15 takes minutes by design and would only time the fuzzer out.
const MAX_COMBINE_EXPONENT: u8 = 1;

/// Words lower-cased and joined by single spaces: the canonical form.
fn normalize(s: &str) -> String {
    s.split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// SLIP-39's RS1024 checksum, written from the specification.
pub fn rs1024_checksum(extendable: bool, words: &[u16]) -> [u16; 3] {
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
    let values = cs
        .iter()
        .map(|&b| b as u32)
        .chain(words.iter().map(|&w| w as u32))
        .chain([0; 3]);
    for v in values {
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

/// A share mnemonic from word indices without the checksum (which is added).
pub fn mnemonic(words: &[u16]) -> String {
    let extendable = words.get(1).is_some_and(|w| w >> 4 & 1 == 1);
    let list = slip39::wordlist();
    words
        .iter()
        .copied()
        .chain(rs1024_checksum(extendable, words))
        .map(|w| list[w as usize % 1024])
        .collect::<Vec<_>>()
        .join(" ")
}

fn bip39_phrase(s: &str) {
    if let Ok(m) = bip39::phrase_to_master(s) {
        assert_eq!(bip39::master_to_phrase(&m), normalize(s));
    }
    match bip39::phrase_to_entropy(s) {
        Ok(e) => {
            assert_eq!(
                bip39::entropy_to_phrase(&e).as_deref(),
                Ok(&normalize(s)[..])
            );
            assert_eq!(bip39::phrase_to_master(s).is_ok(), e.len() == 32);
        }
        Err(e) => {
            let _ = e.to_string();
            assert!(bip39::phrase_to_master(s).is_err());
        }
    }
}

fn shares(lines: &[String]) {
    for line in lines {
        match Share::from_mnemonic(line) {
            Ok(s) => {
                let text = s.to_mnemonic();
                assert_eq!(text, normalize(line), "the share's text is not canonical");
                assert_eq!(Share::from_mnemonic(&text).as_ref(), Ok(&s));
                assert!(s.group_index() < s.group_count());
                assert!(s.group_threshold() <= s.group_count());
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
    match progress(lines) {
        Err(e) => {
            let _ = e.to_string();
            // Both start from the same parse: the same error, and without
            // running the passphrase cipher.
            assert_eq!(combine_master(lines, b"").err(), Some(e));
        }
        Ok(p) => {
            let _ = p.to_string();
            assert_eq!(p.groups.len(), p.group_count as usize);
            for (i, g) in p.groups.iter().enumerate() {
                assert_eq!(g.group_index as usize, i);
                assert!(g.member_indices.windows(2).all(|w| w[0] < w[1]));
                assert!(g.member_indices.iter().all(|&m| m < 16));
                assert_eq!(g.member_threshold.is_none(), g.member_indices.is_empty());
            }
            assert!(p.complete_groups() <= p.group_count as usize);
            if !p.is_complete() {
                let e = combine_master(lines, b"").expect_err("incomplete");
                assert!(e.is_too_few(), "incomplete shares gave {e}");
            } else if p.iteration_exponent <= MAX_COMBINE_EXPONENT {
                match combine_master(lines, b"") {
                    Ok(_) => {}
                    Err(Slip39Error::DigestMismatch { .. } | Slip39Error::NotAMasterSecret(_)) => {}
                    Err(e) => panic!("complete shares gave {e}"),
                }
            }
        }
    }
}

/// Mode 0: the rest is a BIP-39 phrase (UTF-8). Mode 1: the rest is SLIP-39
/// shares, one per line (UTF-8). Mode 2: `count u8 ‖ count × (words u8 ‖
/// n × word u16 LE)` with `n = 17 + words % 24` 10-bit word indices per
/// share, to which the oracle appends a valid RS1024 checksum, so the
/// fuzzer reaches everything behind the checksum.
///
/// Asserts:
/// - a phrase that decodes prints back as its canonical form (lower case,
///   single spaces), as entropy and as a master secret (24 words exactly);
/// - a share that parses prints back as its canonical form and parses to
///   itself, with group index < count and threshold ≤ count;
/// - `progress` and `combine_master` refuse the same share lists with the
///   same error; progress lists every group once, members ascending, a
///   threshold exactly for groups with shares; incomplete sets make
///   `combine_master` say "too few"; complete sets combine or fail only the
///   digest (or are not 32 bytes).
pub fn recover(data: &[u8]) {
    let mut r = Input::new(data);
    match r.u8() % 3 {
        0 => {
            if let Ok(s) = std::str::from_utf8(r.rest()) {
                bip39_phrase(s);
            }
        }
        1 => {
            if let Ok(s) = std::str::from_utf8(r.rest()) {
                let lines: Vec<String> = s.lines().map(str::to_owned).collect();
                shares(&lines);
            }
        }
        _ => {
            let count = r.u8() % 8;
            let lines: Vec<String> = (0..count)
                .map(|_| {
                    let n = 17 + r.u8() as usize % 24;
                    let words: Vec<u16> = (0..n).map(|_| r.u16() % 1024).collect();
                    mnemonic(&words)
                })
                .collect();
            shares(&lines);
        }
    }
}

/// A mode-1 input.
pub fn shares_input(mnemonics: &[String]) -> Vec<u8> {
    InputBuilder::default()
        .u8(1)
        .bytes(mnemonics.join("\n").as_bytes())
        .build()
}

/// A mode-0 input.
pub fn phrase_input(phrase: &str) -> Vec<u8> {
    InputBuilder::default()
        .u8(0)
        .bytes(phrase.as_bytes())
        .build()
}

/// A mode-2 input from shares (their words without the checksum).
pub fn words_input(mnemonics: &[String]) -> Vec<u8> {
    let list = slip39::wordlist();
    let mut b = InputBuilder::default().u8(2).u8(mnemonics.len() as u8);
    for m in mnemonics {
        let words: Vec<u16> = m
            .split(' ')
            .map(|w| list.iter().position(|x| *x == w).expect("a list word") as u16)
            .collect();
        let words = &words[..words.len() - 3];
        b = b.u8((words.len() - 17) as u8);
        for &w in words {
            b = b.u16(w);
        }
    }
    b.build()
}
