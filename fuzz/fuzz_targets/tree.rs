//! Trees: `Tree::decode`.
//! Oracle and input layout: `trove_fuzz::tree::decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| trove_fuzz::tree::decode(data));
