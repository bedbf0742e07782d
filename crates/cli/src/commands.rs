//! One module per command: its arguments and what it does, over
//! `trove-repo`, printing rows as text or `--json` (see [`crate::context`]).

pub mod audit;
pub mod backup;
pub mod check;
pub mod config;
pub mod container;
pub mod daemon;
pub mod dashboard;
pub mod demo;
pub mod drill;
pub mod dump;
pub mod forget;
pub mod inherit;
pub mod init;
pub mod ls;
pub mod mount;
pub mod node;
pub mod passphrase;
pub mod peer;
pub mod prune;
pub mod recover;
pub mod recovery;
pub mod repair;
pub mod restore;
pub mod rotate;
pub mod share;
pub mod snapshots;
pub mod status;
pub mod sync;
pub mod undelete;
pub mod whoami;
