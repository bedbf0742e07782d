//! Node protocol frames: `proto::decode` and `proto::read_msg` of `Request` and `Response`.
//! Oracle and input layout: `trove_fuzz::node::proto`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| trove_fuzz::node::proto(data));
