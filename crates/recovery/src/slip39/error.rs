//! The errors of SLIP-39 splitting, parsing and combining, worded for the
//! person holding the shares. "Share n" always counts from 1 in the order the
//! shares were given; groups are also shown counting from 1 (the group
//! *index* fields stay 0-based, as encoded).

use crate::bip39::did_you_mean;

/// Why shares could not be made, read or combined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Slip39Error {
    // ---- Reading one share ----
    /// A word is not on the SLIP-39 word list.
    #[error(
        "{}word {position} ({word:?}) is not in the SLIP-39 word list{}",
        in_share(.share),
        did_you_mean(.suggestion)
    )]
    UnknownWord {
        /// Which share (1-based position in the input), if known.
        share: Option<usize>,
        /// 1-based position of the word in the share.
        position: usize,
        /// The word as typed.
        word: String,
        /// The list word sharing the typed word's first four letters (or,
        /// failing that, the single list word within two typos of it).
        suggestion: Option<String>,
    },
    /// The share has a number of words no SLIP-39 share can have (at least
    /// 20; 20 for a 128-bit secret, 33 for a 256-bit one).
    #[error(
        "{}has {words} words, which is not a valid SLIP-39 share length \
         (20 words for a 128-bit secret, 33 for a 256-bit one)",
        share_subject(.share)
    )]
    WrongWordCount {
        /// Which share (1-based), if known.
        share: Option<usize>,
        /// How many words it has.
        words: usize,
    },
    /// The RS1024 checksum (last three words) does not match: some word is
    /// wrong (but on the list), or words are out of order.
    #[error(
        "{}has an invalid checksum: a word is wrong (but on the list) or words are out of order",
        share_subject(.share)
    )]
    BadChecksum {
        /// Which share (1-based), if known.
        share: Option<usize>,
    },
    /// The padding bits in front of the share value are not zero.
    #[error("{}has invalid padding bits (this is not a valid share)", share_subject(.share))]
    InvalidPadding {
        /// Which share (1-based), if known.
        share: Option<usize>,
    },
    /// The share's header claims a group threshold greater than its group count.
    #[error(
        "{}is invalid: its group threshold {group_threshold} exceeds its group count {group_count}",
        share_subject(.share)
    )]
    GroupThresholdExceedsCount {
        /// Which share (1-based), if known.
        share: Option<usize>,
        /// Group threshold in the header.
        group_threshold: u8,
        /// Group count in the header.
        group_count: u8,
    },
    /// The share's header claims a group index outside its group count.
    #[error(
        "{}is invalid: it claims group {} of only {group_count}",
        share_subject(.share),
        u16::from(*.group_index) + 1
    )]
    GroupIndexOutOfRange {
        /// Which share (1-based), if known.
        share: Option<usize>,
        /// 0-based group index in the header.
        group_index: u8,
        /// Group count in the header.
        group_count: u8,
    },

    // ---- Shares that do not belong together ----
    /// No shares were given.
    #[error("no shares were given")]
    NoShares,
    /// The share belongs to a different backup (share set): its identifier
    /// differs from share 1's. Identifiers are shown as [`SetId`](super::SetId)s
    /// are, 4 hex digits.
    #[error(
        "share {share} belongs to a different share set than share 1 \
         (set {found:04x} instead of {expected:04x}): shares of different sets never combine"
    )]
    IdentifierMismatch {
        /// The mismatching share (1-based).
        share: usize,
        /// Identifier of share 1.
        expected: u16,
        /// Identifier of this share.
        found: u16,
    },
    /// The share has a different iteration exponent than share 1, so it is
    /// from a different backup.
    #[error(
        "share {share} belongs to a different backup than share 1 \
         (iteration exponent {found} instead of {expected})"
    )]
    IterationExponentMismatch {
        /// The mismatching share (1-based).
        share: usize,
        /// Iteration exponent of share 1.
        expected: u8,
        /// Iteration exponent of this share.
        found: u8,
    },
    /// The share's extendable flag differs from share 1's, so it is from a
    /// different backup.
    #[error("share {share} belongs to a different backup than share 1 (extendable flag differs)")]
    ExtendableMismatch {
        /// The mismatching share (1-based).
        share: usize,
    },
    /// The share needs a different number of groups than share 1, so it is
    /// from a different backup.
    #[error(
        "share {share} belongs to a different backup than share 1 \
         (group threshold {found} instead of {expected})"
    )]
    GroupThresholdMismatch {
        /// The mismatching share (1-based).
        share: usize,
        /// Group threshold of share 1.
        expected: u8,
        /// Group threshold of this share.
        found: u8,
    },
    /// The share has a different group count than share 1, so it is from a
    /// different backup.
    #[error(
        "share {share} belongs to a different backup than share 1 \
         (group count {found} instead of {expected})"
    )]
    GroupCountMismatch {
        /// The mismatching share (1-based).
        share: usize,
        /// Group count of share 1.
        expected: u8,
        /// Group count of this share.
        found: u8,
    },
    /// The share's member threshold differs from that of an earlier share of
    /// the same group, so one of them is from a different backup.
    #[error(
        "share {share} needs {found} shares of group {}, but share {first} of the same group \
         needs {expected}: they are from different backups",
        u16::from(*.group_index) + 1
    )]
    MemberThresholdMismatch {
        /// The mismatching share (1-based).
        share: usize,
        /// The earlier share of the same group (1-based).
        first: usize,
        /// 0-based group index.
        group_index: u8,
        /// Member threshold of the earlier share.
        expected: u8,
        /// Member threshold of this share.
        found: u8,
    },
    /// The share encodes a secret of a different length than share 1.
    #[error(
        "share {share} holds a {found}-byte value but share 1 a {expected}-byte one: \
         they are from different backups"
    )]
    ShareLengthMismatch {
        /// The mismatching share (1-based).
        share: usize,
        /// Value length of share 1, in bytes.
        expected: usize,
        /// Value length of this share, in bytes.
        found: usize,
    },
    /// Two shares have the same group and member index but different
    /// contents. (Exact duplicates are harmless and silently dropped.)
    #[error(
        "shares {first} and {second} are both member {} of group {} but differ: \
         one of them is mistyped or from a different backup",
        u16::from(*.member_index) + 1,
        u16::from(*.group_index) + 1
    )]
    ConflictingShares {
        /// The earlier share (1-based).
        first: usize,
        /// The later share (1-based).
        second: usize,
        /// 0-based group index.
        group_index: u8,
        /// 0-based member index.
        member_index: u8,
    },

    // ---- Not enough shares ----
    /// Shares from too few groups were given.
    #[error(
        "shares from {needed} groups are needed, but only {} ({complete} complete)",
        groups_have(*.present)
    )]
    TooFewGroups {
        /// The group threshold.
        needed: u8,
        /// Groups with at least one share.
        present: usize,
        /// Groups with enough shares.
        complete: usize,
    },
    /// Enough groups have shares, but not enough of them are complete; this
    /// names the incomplete group closest to completion.
    #[error(
        "group {} needs {needed} shares, but only {have} {} given",
        u16::from(*.group_index) + 1,
        if *.have == 1 { "was" } else { "were" }
    )]
    TooFewMembers {
        /// 0-based group index.
        group_index: u8,
        /// The group's member threshold.
        needed: u8,
        /// Distinct shares of the group given.
        have: usize,
    },

    // ---- Combining ----
    /// The recovered secret does not match its digest: the shares are
    /// individually valid but do not belong together (or one was forged).
    #[error(
        "the shares {} do not fit together (digest check failed): \
         one is probably from a different backup",
        which_shares(.group_index)
    )]
    DigestMismatch {
        /// The group whose member shares failed (0-based), or `None` if the
        /// combination of group secrets failed.
        group_index: Option<u8>,
    },
    /// The secret recovered is not 32 bytes, so it is not a Trove master secret.
    #[error("the shares hold a {0}-byte secret, but a Trove master secret is 32 bytes")]
    NotAMasterSecret(usize),

    // ---- Splitting ----
    /// SLIP-39 secrets are at least 16 bytes and of even length.
    #[error("a SLIP-39 secret must be at least 16 bytes and of even length, not {0} bytes")]
    InvalidSecretLength(usize),
    /// SLIP-39 passphrases may only contain printable ASCII (space to `~`).
    #[error("a SLIP-39 passphrase may only contain printable ASCII characters")]
    InvalidPassphrase,
    /// The iteration exponent is 4 bits (at most 15).
    #[error("the iteration exponent must be at most 15, not {0}")]
    InvalidIterationExponent(u8),
    /// Between 1 and 16 groups are allowed.
    #[error("between 1 and 16 groups are allowed, not {0}")]
    InvalidGroupCount(usize),
    /// The group threshold must be between 1 and the number of groups.
    #[error("the group threshold must be between 1 and the number of groups ({groups}), not {threshold}")]
    InvalidGroupThreshold {
        /// Requested group threshold.
        threshold: u8,
        /// Number of groups.
        groups: usize,
    },
    /// A group's member threshold and count are not allowed: they must satisfy
    /// 1 ≤ threshold ≤ count ≤ 16, and a threshold of 1 requires a count of 1.
    #[error(
        "group {}: {member_threshold}-of-{member_count} is not allowed \
         (need 1 <= threshold <= count <= 16; for 1-of-n, make one share and copy it)",
        u16::from(*.group_index) + 1
    )]
    InvalidGroupSpec {
        /// 0-based group index.
        group_index: u8,
        /// Requested member threshold.
        member_threshold: u8,
        /// Requested member count.
        member_count: u8,
    },
}

impl Slip39Error {
    /// Whether the shares are consistent but too few (more are needed),
    /// as opposed to wrong.
    pub fn is_too_few(&self) -> bool {
        matches!(
            self,
            Slip39Error::TooFewGroups { .. } | Slip39Error::TooFewMembers { .. }
        )
    }

    /// Attaches the 1-based share number to an error from parsing one share.
    pub(crate) fn in_share(mut self, number: usize) -> Self {
        use Slip39Error::*;
        match &mut self {
            UnknownWord { share, .. }
            | WrongWordCount { share, .. }
            | BadChecksum { share }
            | InvalidPadding { share }
            | GroupThresholdExceedsCount { share, .. }
            | GroupIndexOutOfRange { share, .. } => *share = Some(number),
            _ => {}
        }
        self
    }
}

fn in_share(share: &Option<usize>) -> String {
    match share {
        Some(n) => format!("share {n}: "),
        None => String::new(),
    }
}

fn share_subject(share: &Option<usize>) -> String {
    match share {
        Some(n) => format!("share {n} "),
        None => "the share ".to_owned(),
    }
}

fn which_shares(group_index: &Option<u8>) -> String {
    match group_index {
        Some(g) => format!("of group {}", u16::from(*g) + 1),
        None => "of the different groups".to_owned(),
    }
}

fn groups_have(present: usize) -> String {
    match present {
        1 => "1 group has shares".to_owned(),
        n => format!("{n} groups have shares"),
    }
}
