//! The oracles of Trove's fuzz targets: each `pub fn` feeds one fuzzer input
//! to one family of decoders and asserts what must hold for *every* input,
//! not merely that nothing panics. The targets in `fuzz_targets/` are
//! one-line wrappers, and the seed generator (`examples/seeds.rs`) runs every
//! seed it writes through the same oracle.
//!
//! Where the decoders need a key, the oracles use fixed ones ([`keys`]). Where
//! an authenticated format would make random bytes useless (a sealed blob, a
//! signed envelope), the oracle builds the authenticated wrapper itself
//! around fuzzer-chosen contents, so the fuzzer reaches the code behind the
//! tag check; the wrapper is written from `docs/design.md`, which the oracles
//! thereby also check against the code.
//!
//! Layouts of structured inputs are documented on each oracle; a short
//! input reads as zeros ([`Input`]).

pub mod audit;
pub mod envelope;
pub mod erasure;
pub mod keys;
pub mod manifest;
pub mod node;
pub mod pack;
pub mod recovery;
pub mod seal;
pub mod tree;

/// A cursor over a fuzzer input that never fails: reading past the end
/// yields zeros or short slices, so every byte string is a valid input.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self(data)
    }
    pub fn u8(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or(0)
    }
    pub fn u16(&mut self) -> u16 {
        let mut b = [0u8; 2];
        let t = self.take(2);
        b[..t.len()].copy_from_slice(t);
        u16::from_le_bytes(b)
    }
    pub fn u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        let t = self.take(4);
        b[..t.len()].copy_from_slice(t);
        u32::from_le_bytes(b)
    }
    pub fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        let t = self.take(8);
        b[..t.len()].copy_from_slice(t);
        u64::from_le_bytes(b)
    }
    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.0.split_at(n.min(self.0.len()));
        self.0 = tail;
        head
    }
    pub fn rest(self) -> &'a [u8] {
        self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Builds the inputs that the layouts above describe (for the seed
/// generator and for tests).
#[derive(Debug, Default, Clone)]
pub struct InputBuilder(pub Vec<u8>);

impl InputBuilder {
    pub fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    pub fn u16(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn bytes(mut self, v: &[u8]) -> Self {
        self.0.extend_from_slice(v);
        self
    }
    pub fn build(self) -> Vec<u8> {
        self.0
    }
}
