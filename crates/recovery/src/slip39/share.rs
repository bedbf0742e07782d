//! One SLIP-39 share and its mnemonic encoding:
//!
//! ```text
//! id (15 bits) | ext (1) | e (4) | GI (4) | Gt−1 (4) | g−1 (4) | I (4) | t−1 (4) | padding + value | checksum (30)
//! ```
//!
//! packed into 10-bit words. The value is left-padded with zero bits to a
//! whole number of words.

use std::fmt;

use zeroize::Zeroizing;

use super::error::Slip39Error;
use super::rs1024::{self, customization, CHECKSUM_WORDS};
use super::SetId;
use crate::bits::{bits_to_bytes, bits_to_words, bytes_to_bits, words_to_bits};
use crate::wordlist::SLIP39;

/// Bits per SLIP-39 word.
const WORD_BITS: u32 = 10;
/// Words holding identifier, extendable flag and iteration exponent (20 bits).
const ID_EXP_WORDS: usize = 2;
/// Words holding group index, group threshold and count, member index and threshold (20 bits).
const PARAMS_WORDS: usize = 2;
/// Words in a share besides its value.
const METADATA_WORDS: usize = ID_EXP_WORDS + PARAMS_WORDS + CHECKSUM_WORDS;
/// The shortest share: a 128-bit value takes 13 words.
const MIN_WORDS: usize = METADATA_WORDS + 13;

/// One share of a SLIP-39 backup. Its value is zeroized on drop, and
/// `Debug` does not print it.
///
/// Indices are 0-based as encoded (a user-facing "group 1" is index 0);
/// thresholds and counts are the real numbers (1 to 16).
#[derive(Clone, PartialEq, Eq)]
pub struct Share {
    pub(crate) identifier: u16,
    pub(crate) extendable: bool,
    pub(crate) iteration_exponent: u8,
    pub(crate) group_index: u8,
    pub(crate) group_threshold: u8,
    pub(crate) group_count: u8,
    pub(crate) member_index: u8,
    pub(crate) member_threshold: u8,
    pub(crate) value: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Share")
            .field("identifier", &self.identifier)
            .field("extendable", &self.extendable)
            .field("iteration_exponent", &self.iteration_exponent)
            .field("group_index", &self.group_index)
            .field("group_threshold", &self.group_threshold)
            .field("group_count", &self.group_count)
            .field("member_index", &self.member_index)
            .field("member_threshold", &self.member_threshold)
            .field(
                "value",
                &format_args!("<{} bytes redacted>", self.value.len()),
            )
            .finish()
    }
}

impl Share {
    /// The random 15-bit identifier shared by all shares of one backup.
    pub fn identifier(&self) -> u16 {
        self.identifier
    }

    /// The set this share belongs to (its identifier, typed).
    pub fn set_id(&self) -> SetId {
        SetId::new(self.identifier)
    }

    /// Whether further share sets can be made for the same secret (the
    /// identifier is then not part of the encryption key).
    pub fn extendable(&self) -> bool {
        self.extendable
    }

    /// The PBKDF2 cost: 10000 · 2^e iterations in total.
    pub fn iteration_exponent(&self) -> u8 {
        self.iteration_exponent
    }

    /// 0-based index of this share's group.
    pub fn group_index(&self) -> u8 {
        self.group_index
    }

    /// How many groups must be complete to recover the secret.
    pub fn group_threshold(&self) -> u8 {
        self.group_threshold
    }

    /// How many groups the backup has.
    pub fn group_count(&self) -> u8 {
        self.group_count
    }

    /// 0-based index of this share within its group.
    pub fn member_index(&self) -> u8 {
        self.member_index
    }

    /// How many shares of this group complete it.
    pub fn member_threshold(&self) -> u8 {
        self.member_threshold
    }

    /// Parses a share: words are matched case-insensitively and may be
    /// separated by any whitespace. Checks the word list, length, checksum,
    /// header consistency and padding. Errors leave `share` as `None`;
    /// [`combine`](super::combine) and [`progress`](super::progress) fill
    /// it in.
    pub fn from_mnemonic(mnemonic: &str) -> Result<Self, Slip39Error> {
        let words =
            Zeroizing::new(
                SLIP39
                    .to_indices(mnemonic)
                    .map_err(|e| Slip39Error::UnknownWord {
                        share: None,
                        position: e.position,
                        word: e.word,
                        suggestion: e.suggestion,
                    })?,
            );
        let wrong_count = Slip39Error::WrongWordCount {
            share: None,
            words: words.len(),
        };
        if words.len() < MIN_WORDS {
            return Err(wrong_count);
        }
        // The value is a whole number of 16-bit units, padded to 10-bit
        // words; more than 8 padding bits would mean a spare word.
        let value_words = words.len() - METADATA_WORDS;
        let padding = (value_words * WORD_BITS as usize) % 16;
        if padding > 8 {
            return Err(wrong_count);
        }

        let id_exp = (u32::from(words[0]) << WORD_BITS) | u32::from(words[1]);
        let extendable = (id_exp >> 4) & 1 == 1;
        if !rs1024::verify(customization(extendable), &words) {
            return Err(Slip39Error::BadChecksum { share: None });
        }
        let params = (u32::from(words[2]) << WORD_BITS) | u32::from(words[3]);
        let nibble = |shift: u32| ((params >> shift) & 0xF) as u8;
        let share = Share {
            // 15 bits, 4 bits: the casts cannot truncate.
            identifier: (id_exp >> 5) as u16,
            extendable,
            iteration_exponent: (id_exp & 0xF) as u8,
            group_index: nibble(16),
            group_threshold: nibble(12) + 1,
            group_count: nibble(8) + 1,
            member_index: nibble(4),
            member_threshold: nibble(0) + 1,
            value: Zeroizing::new(Vec::new()),
        };
        if share.group_threshold > share.group_count {
            return Err(Slip39Error::GroupThresholdExceedsCount {
                share: None,
                group_threshold: share.group_threshold,
                group_count: share.group_count,
            });
        }
        if share.group_index >= share.group_count {
            return Err(Slip39Error::GroupIndexOutOfRange {
                share: None,
                group_index: share.group_index,
                group_count: share.group_count,
            });
        }

        let value_bits = words_to_bits(
            &words[ID_EXP_WORDS + PARAMS_WORDS..words.len() - CHECKSUM_WORDS],
            WORD_BITS,
        );
        if value_bits[..padding].iter().any(|&bit| bit != 0) {
            return Err(Slip39Error::InvalidPadding { share: None });
        }
        Ok(Share {
            value: bits_to_bytes(&value_bits[padding..]),
            ..share
        })
    }

    /// The share as lower-case words separated by single spaces.
    pub fn to_mnemonic(&self) -> String {
        let id_exp = (u32::from(self.identifier) << 5)
            | (u32::from(self.extendable) << 4)
            | u32::from(self.iteration_exponent);
        let params = (u32::from(self.group_index) << 16)
            | (u32::from(self.group_threshold - 1) << 12)
            | (u32::from(self.group_count - 1) << 8)
            | (u32::from(self.member_index) << 4)
            | u32::from(self.member_threshold - 1);
        // Each header value is 20 bits; split into two 10-bit words.
        let mut words = Zeroizing::new(vec![
            (id_exp >> WORD_BITS) as u16,
            (id_exp & 0x3FF) as u16,
            (params >> WORD_BITS) as u16,
            (params & 0x3FF) as u16,
        ]);
        let value_bits = self.value.len() * 8;
        let padding = (WORD_BITS as usize - value_bits % WORD_BITS as usize) % WORD_BITS as usize;
        let mut bits = Zeroizing::new(vec![0u8; padding]);
        bits.extend_from_slice(&bytes_to_bits(&self.value));
        words.extend(bits_to_words(&bits, WORD_BITS));
        let checksum = rs1024::create(customization(self.extendable), &words);
        words.extend(checksum);
        words
            .iter()
            .map(|&w| SLIP39.word(w))
            .collect::<Vec<_>>()
            .join(" ")
    }
}
