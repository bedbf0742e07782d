//! End-to-end tests of the `trove` binary, in one test binary (one link
//! instead of one per file): each module drives the real binary in
//! throwaway directories, with the helpers of [`common`].
//!
//! The tests run side by side, except one that takes `common::Turn::alone`
//! (the demo's, whose report depends on timing). Run one area with a
//! filter, e.g. `cargo test -p trove-cli --test e2e faults::`.

mod common;

mod audit;
mod backup_restore;
mod crash;
mod daemon;
mod dashboard;
mod demo;
mod drill;
mod dump;
mod faults;
mod inherit;
mod mount;
mod nodes;
mod passphrase;
mod privacy;
mod prune;
mod recovery;
mod repair;
mod restore_symlinks;
mod rotate;
mod s3;
mod security;
mod share;
mod undelete;
