//! BIP-39 mnemonic phrases, English word list only
//! (<https://github.com/bitcoin/bips/blob/master/bip-0039.mediawiki>).
//!
//! Trove uses BIP-39 purely as an encoding: the 32-byte master secret is the
//! BIP-39 *entropy*, so its phrase has 24 words and decodes back to the
//! exact same bytes ([`master_to_phrase`], [`phrase_to_master`]). The BIP-39
//! *seed* ([`phrase_to_seed`]) is a one-way PBKDF2 hash of the phrase; Trove
//! does not use it, it is here for completeness and to check against the
//! official vectors.

use sha2::{Digest, Sha256, Sha512};
use zeroize::Zeroizing;

use crate::bits::{bits_to_bytes, bits_to_words, bytes_to_bits, words_to_bits};
use crate::wordlist::{UnknownWord, BIP39_ENGLISH};

/// Bits per BIP-39 word.
const WORD_BITS: u32 = 11;
/// Words in a phrase that encodes a Trove master secret (256-bit entropy).
pub const MASTER_PHRASE_WORDS: usize = 24;

/// Why a BIP-39 phrase or entropy was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Bip39Error {
    /// Entropy must be 16, 20, 24, 28 or 32 bytes (128 to 256 bits in steps of 32).
    #[error("BIP-39 entropy must be 16, 20, 24, 28 or 32 bytes, not {0}")]
    BadEntropyLength(usize),
    /// A word is not on the BIP-39 English list.
    #[error(
        "word {position} ({word:?}) is not in the BIP-39 English word list{}",
        did_you_mean(.suggestion)
    )]
    UnknownWord {
        /// 1-based position of the word in the phrase.
        position: usize,
        /// The word as typed.
        word: String,
        /// The list word that shares the typed word's first four letters (or,
        /// failing that, the single list word within two typos of it).
        suggestion: Option<String>,
    },
    /// A BIP-39 phrase has 12, 15, 18, 21 or 24 words; this one has the given number.
    #[error("a BIP-39 phrase has 12, 15, 18, 21 or 24 words, not {0}")]
    WrongWordCount(usize),
    /// Every word is on the list, but the checksum (the last bits of the last
    /// word) does not match: a word was mistyped as another list word, or
    /// words are out of order.
    #[error(
        "the BIP-39 checksum does not match: a word is wrong (but on the list) \
         or words are out of order"
    )]
    BadChecksum,
    /// The phrase is a valid BIP-39 phrase, but a Trove master-secret phrase
    /// has exactly 24 words.
    #[error("a Trove master-secret phrase has 24 words, but this valid BIP-39 phrase has {0}")]
    NotAMasterPhrase(usize),
}

pub(crate) fn did_you_mean(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(word) => format!(" (did you mean {word:?}?)"),
        None => String::new(),
    }
}

impl From<UnknownWord> for Bip39Error {
    fn from(e: UnknownWord) -> Self {
        Bip39Error::UnknownWord {
            position: e.position,
            word: e.word,
            suggestion: e.suggestion,
        }
    }
}

/// Encodes 16, 20, 24, 28 or 32 bytes of entropy as a phrase of 12 to 24
/// lower-case words separated by single spaces.
pub fn entropy_to_phrase(entropy: &[u8]) -> Result<String, Bip39Error> {
    if !matches!(entropy.len(), 16 | 20 | 24 | 28 | 32) {
        return Err(Bip39Error::BadEntropyLength(entropy.len()));
    }
    Ok(encode(entropy))
}

/// Encodes entropy whose length the caller has checked.
fn encode(entropy: &[u8]) -> String {
    // One checksum bit per 32 bits of entropy, taken from SHA-256(entropy).
    let checksum_bits = entropy.len() * 8 / 32;
    let mut bits = bytes_to_bits(entropy);
    bits.extend_from_slice(&bytes_to_bits(&Sha256::digest(entropy)[..1])[..checksum_bits]);
    let words = Zeroizing::new(bits_to_words(&bits, WORD_BITS));
    words
        .iter()
        .map(|&i| BIP39_ENGLISH.word(i))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Decodes a phrase back to its entropy, checking every word and the checksum.
///
/// Words match case-insensitively and may be separated by any whitespace.
/// Unknown words are reported before a wrong word count, since a typo is
/// the more specific problem (and two words run together are both).
pub fn phrase_to_entropy(phrase: &str) -> Result<Vec<u8>, Bip39Error> {
    let words = Zeroizing::new(BIP39_ENGLISH.to_indices(phrase)?);
    if !matches!(words.len(), 12 | 15 | 18 | 21 | 24) {
        return Err(Bip39Error::WrongWordCount(words.len()));
    }
    let bits = words_to_bits(&words, WORD_BITS);
    // 33 bits of phrase per 32 bits of entropy.
    let entropy_bits = bits.len() * 32 / 33;
    let entropy = bits_to_bytes(&bits[..entropy_bits]);
    let hash = Sha256::digest(&*entropy);
    let expected = bytes_to_bits(&hash[..1]);
    let checksum = &bits[entropy_bits..];
    if checksum != &expected[..checksum.len()] {
        return Err(Bip39Error::BadChecksum);
    }
    Ok(entropy.to_vec())
}

/// The 64-byte BIP-39 seed: PBKDF2-HMAC-SHA512 of the phrase, 2048 rounds,
/// salt `"mnemonic" + passphrase`.
///
/// The phrase is not validated (BIP-39 defines a seed for any sentence), but
/// it is canonicalised first: words lower-cased and joined by single spaces,
/// so that a phrase typed with capitals or extra spaces yields the seed of
/// the phrase the user meant.
///
/// Unicode NFKD normalisation, which BIP-39 applies to the phrase and the
/// passphrase, is **not** applied: this crate has no Unicode tables. English
/// words and ASCII passphrases are unaffected by NFKD, so the result is
/// correct for them; a non-ASCII passphrase is used as its raw UTF-8 bytes
/// and may give a different seed than other wallets.
pub fn phrase_to_seed(phrase: &str, passphrase: &str) -> [u8; 64] {
    let canonical = Zeroizing::new(
        phrase
            .split_whitespace()
            .map(str::to_lowercase)
            .collect::<Vec<_>>()
            .join(" "),
    );
    let mut salt = Zeroizing::new(Vec::with_capacity(8 + passphrase.len()));
    salt.extend_from_slice(b"mnemonic");
    salt.extend_from_slice(passphrase.as_bytes());
    pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(canonical.as_bytes(), &salt, 2048)
}

/// The 24-word phrase of a Trove master secret (the secret is the entropy).
pub fn master_to_phrase(master: &[u8; 32]) -> String {
    encode(master)
}

/// Decodes a Trove master-secret phrase. Any other valid BIP-39 length is
/// rejected with [`Bip39Error::NotAMasterPhrase`].
pub fn phrase_to_master(phrase: &str) -> Result<[u8; 32], Bip39Error> {
    let entropy = Zeroizing::new(phrase_to_entropy(phrase)?);
    <[u8; 32]>::try_from(entropy.as_slice())
        .map_err(|_| Bip39Error::NotAMasterPhrase(phrase.split_whitespace().count()))
}

/// The BIP-39 English word list, in index order (for autocompletion).
pub fn wordlist() -> &'static [&'static str] {
    BIP39_ENGLISH.words()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZERO_PHRASE: &str = "abandon abandon abandon abandon abandon abandon abandon abandon \
        abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon \
        abandon abandon abandon abandon art";

    #[test]
    fn master_round_trip() {
        assert_eq!(master_to_phrase(&[0; 32]), ZERO_PHRASE);
        assert_eq!(phrase_to_master(ZERO_PHRASE), Ok([0; 32]));
        let master = [0xa5; 32];
        let phrase = master_to_phrase(&master);
        assert_eq!(phrase, entropy_to_phrase(&master).unwrap());
        assert_eq!(phrase_to_master(&phrase.to_uppercase()), Ok(master));
    }

    #[test]
    fn master_demands_24_words() {
        let twelve = entropy_to_phrase(&[0; 16]).unwrap();
        assert_eq!(
            phrase_to_master(&twelve),
            Err(Bip39Error::NotAMasterPhrase(12))
        );
    }

    #[test]
    fn unknown_word_is_reported_by_position() {
        let phrase = ZERO_PHRASE.replacen("abandon abandon", "abandon abandom", 1);
        let err = phrase_to_master(&phrase).unwrap_err();
        assert_eq!(
            err,
            Bip39Error::UnknownWord {
                position: 2,
                word: "abandom".into(),
                suggestion: Some("abandon".into()),
            }
        );
        assert_eq!(
            err.to_string(),
            "word 2 (\"abandom\") is not in the BIP-39 English word list (did you mean \"abandon\"?)"
        );
    }

    #[test]
    fn wrong_count_and_checksum() {
        assert_eq!(
            phrase_to_entropy("abandon abandon abandon"),
            Err(Bip39Error::WrongWordCount(3))
        );
        assert_eq!(phrase_to_entropy(""), Err(Bip39Error::WrongWordCount(0)));
        let swapped = ZERO_PHRASE.replace("art", "zoo");
        assert_eq!(phrase_to_master(&swapped), Err(Bip39Error::BadChecksum));
        assert_eq!(
            entropy_to_phrase(&[0; 31]),
            Err(Bip39Error::BadEntropyLength(31))
        );
    }

    #[test]
    fn seed_ignores_case_and_spacing() {
        let spaced = format!("  {}  ", ZERO_PHRASE.to_uppercase().replace(' ', "\n\t "));
        assert_eq!(
            phrase_to_seed(&spaced, "x"),
            phrase_to_seed(ZERO_PHRASE, "x")
        );
        assert_ne!(
            phrase_to_seed(ZERO_PHRASE, "x"),
            phrase_to_seed(ZERO_PHRASE, "y")
        );
    }
}
