//! End-to-end tests of the `trove` binary, in one test binary (one link
//! instead of one per file): each module drives the real binary in
//! throwaway directories, with the helpers of [`common`].
//!
//! Run one area with a filter, e.g. `cargo test -p trove-cli --test e2e faults::`.

mod common;

mod backup_restore;
mod crash;
mod demo;
mod faults;
mod nodes;
mod privacy;
mod recovery;
mod restore_symlinks;
mod security;
