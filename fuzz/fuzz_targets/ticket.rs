//! Node tickets: `NodeTicket::from_str`.
//! Oracle and input layout: `trove_fuzz::node::ticket`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| trove_fuzz::node::ticket(data));
