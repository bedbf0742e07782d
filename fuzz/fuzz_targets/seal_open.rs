//! Sealed blobs: `seal::open` under a fixed key, raw and zstd codecs.
//! Oracle and input layout: `trove_fuzz::seal::open`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| trove_fuzz::seal::open(data));
