//! Trove nodes: machines of friends, family and the owner's other devices
//! that store encrypted fragments for the owners they grant, reached over
//! QUIC with iroh (dial by public key, hole punching, relays, LAN discovery).
//!
//! - [`proto`]: the versioned node protocol (ALPN `trove/node/1`).
//! - [`server`]: `trove node run`: per-owner namespaces, quotas, verified
//!   and fsynced puts, delayed deletion, audits.
//! - [`client`]: [`NodePeer`], the owner's [`trove_peer::Peer`] for a node.
//! - [`store`]: the node's data folder, grants and quotas.
//! - [`escrow`]: inheritance escrows the node holds as a custodian.
//! - [`ledger`]: the reciprocity ledger (`ledger.json`, `proofs.json`).
//! - [`network`]: network modes, tickets and LAN discovery.
//! - `testing` (feature `testing`, for tests of this and other crates):
//!   real nodes on 127.0.0.1 that tests start, stop and kill.

pub mod client;
pub mod error;
pub mod escrow;
pub mod ledger;
pub mod network;
pub mod proto;
pub mod server;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use client::{Collected, HeirCallError, NodeClient, NodeHello, NodePeer};
pub use error::NodeError;
pub use ledger::{Ledger, Proof, Proofs, Reciprocity, Standing};
pub use network::{discover, NetworkConfig, NetworkMode, NodeTicket};
pub use server::{start, NodeOptions, RunningNode, DEFAULT_REQUEST_LIMIT};
pub use store::{parse_size, Grant, NodeDir, OwnerId};
