//! Paper backups of Trove's master secret.
//!
//! Everything in a Trove repository is derived from one 32-byte master
//! secret, so losing it loses the backup. This crate turns it into words a
//! person can write down, in two ways:
//!
//! - [`bip39`]: one 24-word phrase. The master secret is used directly as
//!   BIP-39 *entropy*, so the phrase decodes to exactly the same 32 bytes
//!   ([`bip39::master_to_phrase`], [`bip39::phrase_to_master`]).
//! - [`slip39`]: SLIP-39 Shamir shares, e.g. "any 2 of 3 friends", or "2 of
//!   3 groups, each needing 2 of its 3 members". Again the 32-byte master
//!   secret itself is what is shared (optionally encrypted with a
//!   passphrase, as the spec defines), not a BIP-39 seed or phrase derived
//!   from it: SLIP-39 is designed to share a 128–256-bit master secret
//!   directly, and going through BIP-39 would add a second format that
//!   recovery depends on, without making anything more secure. Each share
//!   of a 32-byte secret is 33 words.
//!
//! # Why Trove implements both formats itself
//!
//! Both specifications are small and frozen, and the code that reads them
//! back must keep working for decades, so Trove keeps it in-house and pins
//! it with the official test vectors (copied unchanged into
//! `tests/fixtures/`, with their provenance). When this crate was written,
//! no crate that was evaluated passed those vectors. Writing it here also
//! lets the errors be precise enough to guide someone typing shares back in
//! (the word and its position, the share, the group still lacking shares),
//! see [`slip39::progress`].
//!
//! Secrets and intermediate values are zeroized where practical; share
//! values are redacted from `Debug` output. Returned phrases and secrets
//! are the caller's to protect.

pub mod bip39;
mod bits;
pub mod slip39;
mod wordlist;

pub use bip39::{
    entropy_to_phrase, master_to_phrase, phrase_to_entropy, phrase_to_master, phrase_to_seed,
    Bip39Error,
};
pub use slip39::{
    combine, combine_master, parse_shares, progress, sets, split, GroupProgress, GroupSpec,
    RecoveryProgress, SetId, SetShares, Share, Slip39Error,
};
