//! Packs: `pack::read_header` and `pack::blob_bytes`.
//! Oracle and input layout: `trove_fuzz::pack::read`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| trove_fuzz::pack::read(data));
