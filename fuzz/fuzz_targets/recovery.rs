//! Recovery: `phrase_to_master`, `Share::from_mnemonic`, `progress`, `combine_master`.
//! Oracle and input layout: `trove_fuzz::recovery::recover`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| trove_fuzz::recovery::recover(data));
