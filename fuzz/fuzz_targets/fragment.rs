//! Fragments: `FragmentHeader::parse` and `erasure::decode` of arbitrary fragment sets.
//! Oracle and input layout: `trove_fuzz::erasure::decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| trove_fuzz::erasure::decode(data));
