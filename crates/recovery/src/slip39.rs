//! SLIP-39 Shamir backups
//! (<https://github.com/satoshilabs/slips/blob/master/slip-0039.md>).
//!
//! A secret is encrypted with a passphrase (a Feistel cipher, `cipher.rs`),
//! then split in two levels: into `groups.len()` group shares of which
//! `group_threshold` are needed, and each group share into member shares of
//! which that group's `member_threshold` are needed (`shamir.rs`). Each
//! member share becomes a mnemonic of 10-bit words with an RS1024 checksum
//! (`share.rs`, `rs1024.rs`).

mod cipher;
mod error;
mod gf256;
mod rs1024;
mod set;
mod shamir;
mod share;

use std::fmt;

use rand::rngs::OsRng;
use rand::{CryptoRng, RngCore};
use zeroize::Zeroizing;

pub use error::Slip39Error;
pub use share::Share;

use crate::wordlist::SLIP39;
use set::ShareSet;

/// Most groups, and most members per group, that 4-bit fields can encode.
const MAX_SHARES: usize = 16;
/// Shortest secret SLIP-39 allows: 128 bits.
const MIN_SECRET_BYTES: usize = 16;

/// Which share set a share belongs to: the random 15-bit identifier that
/// each [`split`] draws and writes into every share it makes. Only shares of
/// one set combine; splitting again makes a new set (a new identifier, new
/// shares). Shown as 4 lower-case hex digits, `0000` to `7fff`.
///
/// Two splits draw the same identifier with probability 1 in 32768; shares
/// of such sets cannot be told apart by it, and combining them fails the
/// digest check instead ([`Slip39Error::DigestMismatch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SetId(u16);

impl SetId {
    pub(crate) fn new(identifier: u16) -> Self {
        Self(identifier & 0x7FFF)
    }

    /// The identifier as a number (0 to 32767).
    pub fn value(self) -> u16 {
        self.0
    }
}

impl fmt::Display for SetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}", self.0)
    }
}

/// The shares of one set among those given to [`sets`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetShares {
    /// The set.
    pub set: SetId,
    /// 0-based positions of its shares in the input, ascending.
    pub positions: Vec<usize>,
}

/// Parses every share on its own (errors name the share by its 1-based
/// position, as [`combine`] does) without checking that they belong
/// together: for telling the user what each share is.
pub fn parse_shares<S: AsRef<str>>(mnemonics: &[S]) -> Result<Vec<Share>, Slip39Error> {
    mnemonics
        .iter()
        .enumerate()
        .map(|(i, m)| Share::from_mnemonic(m.as_ref()).map_err(|e| e.in_share(i + 1)))
        .collect()
}

/// The sets `shares` come from, in the order each first appears. More than
/// one means the shares cannot be combined as they are.
pub fn sets(shares: &[Share]) -> Vec<SetShares> {
    let mut found: Vec<SetShares> = Vec::new();
    for (position, share) in shares.iter().enumerate() {
        let set = share.set_id();
        match found.iter_mut().find(|s| s.set == set) {
            Some(s) => s.positions.push(position),
            None => found.push(SetShares {
                set,
                positions: vec![position],
            }),
        }
    }
    found
}

/// The layout of one group: `member_threshold` of its `member_count`
/// shares are needed to reconstruct the group's share of the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupSpec {
    /// Shares needed (1 to `member_count`; 1 only if `member_count` is 1).
    pub member_threshold: u8,
    /// Shares made (1 to 16).
    pub member_count: u8,
}

/// Splits `master_secret` into shares: the outer `Vec` has one entry per
/// group (in the order of `groups`), each holding that group's shares.
///
/// `master_secret` must be at least 16 bytes and of even length (Trove's is
/// 32). `passphrase` must be printable ASCII, as SLIP-39 requires for
/// interoperability; it may be empty. `iteration_exponent` (0 to 15) sets
/// the PBKDF2 cost of the passphrase encryption to 10000 · 2^e iterations.
/// An `extendable` backup can later be given further share sets for the
/// same secret and passphrase. The identifier is random.
pub fn split(
    master_secret: &[u8],
    passphrase: &[u8],
    group_threshold: u8,
    groups: &[GroupSpec],
    extendable: bool,
    iteration_exponent: u8,
) -> Result<Vec<Vec<Share>>, Slip39Error> {
    split_with_rng(
        master_secret,
        passphrase,
        group_threshold,
        groups,
        extendable,
        iteration_exponent,
        &mut OsRng,
    )
}

/// [`split`] with a caller-supplied random number generator (for tests; use
/// [`split`] otherwise).
pub fn split_with_rng<R: RngCore + CryptoRng>(
    master_secret: &[u8],
    passphrase: &[u8],
    group_threshold: u8,
    groups: &[GroupSpec],
    extendable: bool,
    iteration_exponent: u8,
    rng: &mut R,
) -> Result<Vec<Vec<Share>>, Slip39Error> {
    if master_secret.len() < MIN_SECRET_BYTES || !master_secret.len().is_multiple_of(2) {
        return Err(Slip39Error::InvalidSecretLength(master_secret.len()));
    }
    if !passphrase.iter().all(|b| (b' '..=b'~').contains(b)) {
        return Err(Slip39Error::InvalidPassphrase);
    }
    if iteration_exponent > 15 {
        return Err(Slip39Error::InvalidIterationExponent(iteration_exponent));
    }
    let group_count = match u8::try_from(groups.len()) {
        Ok(n) if (1..=MAX_SHARES).contains(&groups.len()) => n,
        _ => return Err(Slip39Error::InvalidGroupCount(groups.len())),
    };
    if group_threshold < 1 || group_threshold > group_count {
        return Err(Slip39Error::InvalidGroupThreshold {
            threshold: group_threshold,
            groups: groups.len(),
        });
    }
    for (group_index, spec) in (0u8..).zip(groups) {
        let GroupSpec {
            member_threshold,
            member_count,
        } = *spec;
        // A 1-of-n group would be n identical shares under different member
        // indices; the spec forbids it (make 1-of-1 and copy it instead).
        let valid = member_threshold >= 1
            && member_threshold <= member_count
            && usize::from(member_count) <= MAX_SHARES
            && (member_threshold > 1 || member_count == 1);
        if !valid {
            return Err(Slip39Error::InvalidGroupSpec {
                group_index,
                member_threshold,
                member_count,
            });
        }
    }

    // A random 15-bit identifier ties the shares together.
    let identifier = (rng.next_u32() & 0x7FFF) as u16;
    let encrypted = cipher::encrypt(
        master_secret,
        passphrase,
        iteration_exponent,
        identifier,
        extendable,
    );
    let group_shares = shamir::split(group_threshold, group_count, &encrypted, rng);
    Ok(groups
        .iter()
        .zip(group_shares)
        .map(|(spec, (group_index, group_secret))| {
            shamir::split(spec.member_threshold, spec.member_count, &group_secret, rng)
                .into_iter()
                .map(|(member_index, value)| Share {
                    identifier,
                    extendable,
                    iteration_exponent,
                    group_index,
                    group_threshold,
                    group_count,
                    member_index,
                    member_threshold: spec.member_threshold,
                    value,
                })
                .collect()
        })
        .collect())
}

/// Recovers the secret from share mnemonics and the passphrase.
///
/// The shares may come in any order; exact duplicates are dropped, and
/// shares beyond the thresholds are ignored. Errors name shares by their
/// 1-based position in `mnemonics`. Any passphrase yields *a* secret: a
/// wrong one is not detected here (SLIP-39's plausible deniability), so the
/// caller must check the result (Trove checks it against the repository).
///
/// Intermediate values are zeroized; the returned `Vec` is not, so wrap it
/// in [`zeroize::Zeroizing`] if it is kept around.
pub fn combine<S: AsRef<str>>(mnemonics: &[S], passphrase: &[u8]) -> Result<Vec<u8>, Slip39Error> {
    let set = ShareSet::parse(mnemonics)?;
    let encrypted = set.recover_encrypted_secret()?;
    let first = &set.first;
    let secret = cipher::decrypt(
        &encrypted,
        passphrase,
        first.iteration_exponent,
        first.identifier,
        first.extendable,
    );
    Ok(secret.to_vec())
}

/// [`combine`] for a Trove master secret: fails unless the shares hold
/// exactly 32 bytes.
pub fn combine_master<S: AsRef<str>>(
    mnemonics: &[S],
    passphrase: &[u8],
) -> Result<[u8; 32], Slip39Error> {
    let secret = Zeroizing::new(combine(mnemonics, passphrase)?);
    <[u8; 32]>::try_from(secret.as_slice()).map_err(|_| Slip39Error::NotAMasterSecret(secret.len()))
}

/// What a set of shares has and still lacks, so a user can be told which
/// shares to fetch. [`fmt::Display`] gives a human summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryProgress {
    /// The backup's identifier.
    pub identifier: u16,
    /// Whether the backup is extendable.
    pub extendable: bool,
    /// The backup's iteration exponent.
    pub iteration_exponent: u8,
    /// Groups that must be complete.
    pub group_threshold: u8,
    /// Groups in the backup.
    pub group_count: u8,
    /// One entry per group of the backup (`group_count` of them), by group index.
    pub groups: Vec<GroupProgress>,
}

/// Progress of one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupProgress {
    /// 0-based group index (shown to users as `group_index + 1`).
    pub group_index: u8,
    /// Shares needed to complete the group; `None` until one of its shares
    /// has been seen, because only a group's own shares record it.
    pub member_threshold: Option<u8>,
    /// 0-based member indices of the distinct shares given, ascending.
    pub member_indices: Vec<u8>,
}

impl GroupProgress {
    /// Distinct shares of this group given.
    pub fn have(&self) -> usize {
        self.member_indices.len()
    }

    /// Whether this group has enough shares.
    pub fn is_complete(&self) -> bool {
        self.member_threshold
            .is_some_and(|t| self.have() >= usize::from(t))
    }

    /// How many more shares this group needs; `None` if that is not known
    /// yet (no share of the group given).
    pub fn missing(&self) -> Option<usize> {
        self.member_threshold
            .map(|t| usize::from(t).saturating_sub(self.have()))
    }
}

impl RecoveryProgress {
    /// The set the shares belong to.
    pub fn set_id(&self) -> SetId {
        SetId::new(self.identifier)
    }

    /// Groups with enough shares.
    pub fn complete_groups(&self) -> usize {
        self.groups.iter().filter(|g| g.is_complete()).count()
    }

    /// How many more groups must be completed.
    pub fn groups_missing(&self) -> usize {
        usize::from(self.group_threshold).saturating_sub(self.complete_groups())
    }

    /// Whether the shares suffice to recover the secret (barring a digest
    /// mismatch, which only combining can detect).
    pub fn is_complete(&self) -> bool {
        self.groups_missing() == 0
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl fmt::Display for RecoveryProgress {
    /// One line per group, e.g. "2 more shares needed from group 1 (needs 3, has 1)",
    /// preceded by a summary line when there are several groups.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_complete() {
            write!(f, "enough shares to recover the secret")?;
        } else if self.group_count > 1 {
            write!(
                f,
                "{} of the {} needed are complete (the backup has {} groups)",
                self.complete_groups(),
                plural(usize::from(self.group_threshold), "group", "groups"),
                self.group_count,
            )?;
        } else {
            write!(f, "not enough shares yet")?;
        }
        for group in &self.groups {
            let number = u16::from(group.group_index) + 1;
            let have = group.have();
            match (group.member_threshold, group.missing()) {
                (Some(needed), Some(0)) => write!(
                    f,
                    "\ngroup {number} is complete (needs {needed}, has {have})"
                )?,
                (Some(needed), Some(missing)) => write!(
                    f,
                    "\n{missing} more {} needed from group {number} (needs {needed}, has {have})",
                    if missing == 1 { "share" } else { "shares" },
                )?,
                _ => write!(f, "\ngroup {number}: no shares yet")?,
            }
        }
        Ok(())
    }
}

/// Analyses a possibly incomplete set of shares: which groups are complete
/// and how many shares each of the others still needs. Fails like
/// [`combine`] on shares that are invalid or do not belong together, but
/// not on missing shares (except when none are given at all).
pub fn progress<S: AsRef<str>>(mnemonics: &[S]) -> Result<RecoveryProgress, Slip39Error> {
    let set = ShareSet::parse(mnemonics)?;
    let first = &set.first;
    let groups = (0..first.group_count)
        .map(|group_index| {
            let group = set.groups.get(&group_index);
            GroupProgress {
                group_index,
                member_threshold: group.map(|g| g.member_threshold),
                member_indices: group
                    .map(|g| g.members.keys().copied().collect())
                    .unwrap_or_default(),
            }
        })
        .collect();
    Ok(RecoveryProgress {
        identifier: first.identifier,
        extendable: first.extendable,
        iteration_exponent: first.iteration_exponent,
        group_threshold: first.group_threshold,
        group_count: first.group_count,
        groups,
    })
}

/// The SLIP-39 word list, in index order (for autocompletion).
pub fn wordlist() -> &'static [&'static str] {
    SLIP39.words()
}
