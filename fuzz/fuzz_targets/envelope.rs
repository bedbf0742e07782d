//! Signed envelopes: `envelope::peek` and `envelope::open_signed`.
//! Oracle and input layout: `trove_fuzz::envelope::open`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| trove_fuzz::envelope::open(data));
