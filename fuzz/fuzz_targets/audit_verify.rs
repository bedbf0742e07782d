//! Audit proofs from nodes: `audit::verify`.
//! Oracle and input layout: `trove_fuzz::audit::verify`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| trove_fuzz::audit::verify(data));
