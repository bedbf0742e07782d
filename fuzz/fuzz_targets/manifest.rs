//! Manifest bodies: `ContainerManifest`, `SnapshotManifest` and `IndexSegment::decode`.
//! Oracle and input layout: `trove_fuzz::manifest::decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| trove_fuzz::manifest::decode(data));
