//! The node protocol's decoders and ticket parsing, fed arbitrary bytes:
//! what must hold for any input. The same properties run for much longer as
//! the `node_proto` and `ticket` fuzz targets (`fuzz/README.md`).

use proptest::prelude::*;
use serde::{de::DeserializeOwned, Serialize};
use std::fmt::Debug;
use trove_node::proto::{self, Request, Response, WireError};
use trove_node::NodeTicket;

fn read<T: DeserializeOwned>(bytes: &[u8], max: u32) -> (Result<T, WireError>, usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut r = bytes;
    let got = rt.block_on(proto::read_msg(&mut r, max));
    (got, bytes.len() - r.len())
}

/// `decode` refuses exactly the other versions; whatever it accepts
/// re-encodes into a frame `read_msg` reads back; `read_msg` returns a
/// message only for a frame within the limit, consuming exactly that frame,
/// and refuses a longer announced length before reading it.
fn check<T: Serialize + DeserializeOwned + PartialEq + Debug>(
    bytes: &[u8],
    max: u32,
) -> Result<(), TestCaseError> {
    match proto::decode::<T>(bytes) {
        Ok(msg) => {
            let frame = proto::encode(&msg);
            let (back, used) = read::<T>(&frame, u32::MAX);
            prop_assert_eq!(back.ok(), Some(msg));
            prop_assert_eq!(used, frame.len());
        }
        Err(WireError::Version(v)) => prop_assert!(bytes.first() == Some(&v) && v != 1),
        Err(WireError::Malformed(_)) => prop_assert!(bytes.first().is_none_or(|&v| v == 1)),
        Err(e) => prop_assert!(false, "decode of a slice failed with {}", e),
    }
    let len = bytes
        .get(..4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap()) as usize);
    match read::<T>(bytes, max) {
        (Ok(msg), used) => {
            let len = len.unwrap();
            prop_assert!(len <= max as usize);
            prop_assert_eq!(used, 4 + len);
            prop_assert_eq!(proto::decode::<T>(&bytes[4..used]).ok(), Some(msg));
        }
        (Err(WireError::TooLarge { len: l, .. }), used) => {
            prop_assert!(l > max && Some(l as usize) == len);
            prop_assert_eq!(used, 4, "read past the length of a refused frame");
        }
        (Err(WireError::Io(_)), _) => prop_assert!(len.is_none_or(|l| bytes.len() < 4 + l)),
        (Err(_), _) => prop_assert!(len.is_some_and(|l| l <= max as usize && bytes.len() >= 4 + l)),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn frames(body in proptest::collection::vec(any::<u8>(), 0..200), announced in prop_oneof![0u32..300, any::<u32>()]) {
        let mut v1 = vec![1u8];
        v1.extend_from_slice(&body);
        let mut frame = announced.to_le_bytes().to_vec();
        frame.extend_from_slice(&v1);
        let mut exact = (v1.len() as u32).to_le_bytes().to_vec();
        exact.extend_from_slice(&v1);
        for bytes in [&body, &v1, &frame, &exact] {
            check::<Request>(bytes, proto::MAX_REQUEST_FRAME)?;
            check::<Response>(bytes, proto::MAX_RESPONSE_FRAME)?;
            check::<Request>(bytes, 16)?;
        }
    }

    /// A parsed ticket prints as `trovenode1` + lowercase base32 and parses
    /// back to itself; garbage after the prefix, as text or as contents, never panics.
    #[test]
    fn tickets(text in "\\PC{0,80}", contents in proptest::collection::vec(any::<u8>(), 0..80)) {
        let encoded = format!("trovenode1{}", base32(&contents));
        for s in [text.clone(), format!("trovenode1{text}"), encoded] {
            if let Ok(t) = s.parse::<NodeTicket>() {
                let printed = t.to_string();
                prop_assert!(printed.starts_with("trovenode1"));
                prop_assert_eq!(printed.parse::<NodeTicket>().ok(), Some(t.clone()));
                prop_assert!(t.endpoint_addr().is_ok());
            }
        }
    }
}

/// RFC 4648 base32, lowercase, no padding.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let (mut out, mut acc, mut bits) = (String::new(), 0u64, 0);
    for &b in bytes {
        acc = (acc << 8) | b as u64;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[(acc >> bits) as usize & 31] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[(acc << (5 - bits)) as usize & 31] as char);
    }
    out
}
