//! A checked set of shares: all from the same backup, grouped, duplicates
//! dropped. Both [`combine`](super::combine) and [`progress`](super::progress)
//! start here, so they agree on what counts as a valid set.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use super::error::Slip39Error;
use super::shamir;
use super::share::Share;

/// The shares of one group, by member index.
#[derive(Debug)]
pub(crate) struct Group {
    /// Member threshold, as recorded in the group's first share.
    pub(crate) member_threshold: u8,
    /// 1-based number of the group's first share, for error messages.
    first_share: usize,
    /// Member index → (1-based share number, share).
    pub(crate) members: BTreeMap<u8, (usize, Share)>,
}

impl Group {
    pub(crate) fn is_complete(&self) -> bool {
        self.members.len() >= usize::from(self.member_threshold)
    }
}

/// Shares known to belong to one backup.
#[derive(Debug)]
pub(crate) struct ShareSet {
    /// The first share given; every other share is checked against it.
    pub(crate) first: Share,
    /// Group index → group; only groups with at least one share.
    pub(crate) groups: BTreeMap<u8, Group>,
}

impl ShareSet {
    /// Parses and checks `mnemonics`. Errors name shares by their 1-based
    /// position in `mnemonics`.
    pub(crate) fn parse<S: AsRef<str>>(mnemonics: &[S]) -> Result<Self, Slip39Error> {
        Self::from_shares(super::parse_shares(mnemonics)?)
    }

    fn from_shares(shares: Vec<Share>) -> Result<Self, Slip39Error> {
        let mut shares = shares.into_iter().enumerate().map(|(i, s)| (i + 1, s));
        let Some((_, first)) = shares.next() else {
            return Err(Slip39Error::NoShares);
        };
        let mut set = ShareSet {
            first: first.clone(),
            groups: BTreeMap::new(),
        };
        set.add(1, first)?;
        for (number, share) in shares {
            set.check_same_backup(number, &share)?;
            set.add(number, share)?;
        }
        Ok(set)
    }

    /// Checks the parameters every share of a backup has in common.
    fn check_same_backup(&self, number: usize, share: &Share) -> Result<(), Slip39Error> {
        let first = &self.first;
        if share.identifier != first.identifier {
            return Err(Slip39Error::IdentifierMismatch {
                share: number,
                expected: first.identifier,
                found: share.identifier,
            });
        }
        if share.extendable != first.extendable {
            return Err(Slip39Error::ExtendableMismatch { share: number });
        }
        if share.iteration_exponent != first.iteration_exponent {
            return Err(Slip39Error::IterationExponentMismatch {
                share: number,
                expected: first.iteration_exponent,
                found: share.iteration_exponent,
            });
        }
        if share.group_threshold != first.group_threshold {
            return Err(Slip39Error::GroupThresholdMismatch {
                share: number,
                expected: first.group_threshold,
                found: share.group_threshold,
            });
        }
        if share.group_count != first.group_count {
            return Err(Slip39Error::GroupCountMismatch {
                share: number,
                expected: first.group_count,
                found: share.group_count,
            });
        }
        if share.value.len() != first.value.len() {
            return Err(Slip39Error::ShareLengthMismatch {
                share: number,
                expected: first.value.len(),
                found: share.value.len(),
            });
        }
        Ok(())
    }

    /// Files a share under its group, dropping exact duplicates.
    fn add(&mut self, number: usize, share: Share) -> Result<(), Slip39Error> {
        let group = self
            .groups
            .entry(share.group_index)
            .or_insert_with(|| Group {
                member_threshold: share.member_threshold,
                first_share: number,
                members: BTreeMap::new(),
            });
        if share.member_threshold != group.member_threshold {
            return Err(Slip39Error::MemberThresholdMismatch {
                share: number,
                first: group.first_share,
                group_index: share.group_index,
                expected: group.member_threshold,
                found: share.member_threshold,
            });
        }
        match group.members.get(&share.member_index) {
            // The same share entered twice is harmless.
            Some((_, existing)) if *existing == share => Ok(()),
            Some((first, _)) => Err(Slip39Error::ConflictingShares {
                first: *first,
                second: number,
                group_index: share.group_index,
                member_index: share.member_index,
            }),
            None => {
                group.members.insert(share.member_index, (number, share));
                Ok(())
            }
        }
    }

    /// Recovers the encrypted master secret, or explains which shares are missing.
    ///
    /// Extra shares and groups beyond the thresholds are allowed and ignored:
    /// the lowest-numbered complete groups and, within them, the
    /// lowest-numbered members are used.
    pub(crate) fn recover_encrypted_secret(&self) -> Result<Zeroizing<Vec<u8>>, Slip39Error> {
        let group_threshold = self.first.group_threshold;
        let needed = usize::from(group_threshold);
        let complete: Vec<(u8, &Group)> = self
            .groups
            .iter()
            .filter(|(_, g)| g.is_complete())
            .map(|(&i, g)| (i, g))
            .collect();
        if complete.len() < needed {
            // If enough groups are started, point at the one nearest completion.
            let nearest = self
                .groups
                .iter()
                .filter(|(_, g)| !g.is_complete())
                .min_by_key(|(_, g)| usize::from(g.member_threshold) - g.members.len());
            return Err(match nearest {
                Some((&group_index, group)) if self.groups.len() >= needed => {
                    Slip39Error::TooFewMembers {
                        group_index,
                        needed: group.member_threshold,
                        have: group.members.len(),
                    }
                }
                _ => Slip39Error::TooFewGroups {
                    needed: group_threshold,
                    present: self.groups.len(),
                    complete: complete.len(),
                },
            });
        }

        let group_secrets = complete
            .iter()
            .take(needed)
            .map(|&(group_index, group)| {
                let points: Vec<(u8, &[u8])> = group
                    .members
                    .iter()
                    .take(usize::from(group.member_threshold))
                    .map(|(&member_index, (_, share))| (member_index, share.value.as_slice()))
                    .collect();
                shamir::recover(group.member_threshold, &points)
                    .map(|secret| (group_index, secret))
                    .ok_or(Slip39Error::DigestMismatch {
                        group_index: Some(group_index),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let points: Vec<(u8, &[u8])> = group_secrets
            .iter()
            .map(|(group_index, secret)| (*group_index, secret.as_slice()))
            .collect();
        shamir::recover(group_threshold, &points)
            .ok_or(Slip39Error::DigestMismatch { group_index: None })
    }
}
