//! The pure core of Trove's data path: typed ids, key derivation, chunking,
//! sealing, packs, erasure-coded fragments, directory trees and signed
//! manifests. No I/O, no clock, no threads: everything here is a function of
//! its inputs (plus the system RNG for keys, nonces and fresh ids), so it is
//! easy to test and fuzz. Byte formats are specified in `docs/design.md`.

pub mod chunk;
pub mod envelope;
pub mod erasure;
pub mod escrow;
pub mod handover;
pub mod ids;
pub mod keys;
pub mod manifest;
pub mod pack;
pub mod padding;
pub mod seal;
pub mod sealed_to;
pub mod share;
pub mod tree;

pub use ids::*;
