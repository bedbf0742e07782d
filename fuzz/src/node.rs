//! The node protocol (`docs/design.md` §6a.2) and node tickets (§6a.4):
//! `trove_node::proto::{decode, read_msg}` and `NodeTicket::from_str`.

use crate::Input;
use serde::{de::DeserializeOwned, Serialize};
use std::fmt::Debug;
use trove_node::proto::{self, Request, Response, WireError, PROTOCOL_VERSION};
use trove_node::NodeTicket;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    thread_local! {
        static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
    }
    RT.with(|rt| rt.block_on(f))
}

fn check<T: Serialize + DeserializeOwned + PartialEq + Debug>(data: &[u8], max: u32) {
    // A frame body.
    match proto::decode::<T>(data) {
        Ok(msg) => {
            assert_eq!(data[0], PROTOCOL_VERSION);
            let frame = proto::encode(&msg);
            let len = u32::from_le_bytes(frame[..4].try_into().expect("4")) as usize;
            assert_eq!(len, frame.len() - 4);
            assert_eq!(proto::decode::<T>(&frame[4..]).ok().as_ref(), Some(&msg));
            let mut r = &frame[..];
            let back: T = block_on(proto::read_msg(&mut r, u32::MAX)).expect("own frame reads");
            assert_eq!(back, msg);
            assert!(r.is_empty(), "read_msg left bytes of its frame");
        }
        Err(WireError::Version(v)) => {
            assert_eq!(Some(&v), data.first());
            assert_ne!(v, PROTOCOL_VERSION);
        }
        Err(WireError::Malformed(_)) => {
            assert!(data.first().is_none_or(|&v| v == PROTOCOL_VERSION))
        }
        Err(e) => panic!("decode of a slice failed with {e}"),
    }

    // A stream: a frame, maybe followed by bytes that are not part of it.
    let mut r = data;
    let got = block_on(proto::read_msg::<_, T>(&mut r, max));
    let len = data
        .get(..4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4")));
    match got {
        Ok(msg) => {
            let len = len.expect("a length was read") as usize;
            assert!(len <= max as usize);
            assert_eq!(r.len(), data.len() - 4 - len, "read other than one frame");
            assert_eq!(
                proto::decode::<T>(&data[4..4 + len]).ok().as_ref(),
                Some(&msg)
            );
        }
        Err(WireError::TooLarge { len: l, max: m }) => {
            assert_eq!((Some(l), m), (len, max));
            assert!(l > max);
        }
        Err(WireError::Io(_)) => {
            let short = len.is_none_or(|l| data.len() - 4 < l as usize);
            assert!(short, "I/O error on a complete frame");
        }
        Err(_) => {
            let l = len.expect("a length was read") as usize;
            assert!(l <= max as usize && data.len() >= 4 + l);
        }
    }
}

/// Input: any bytes, as a frame body and as a stream, each for both message types.
///
/// Asserts, for `Request` and `Response` (and `decode_response` against
/// `decode`, see [`check_response`]):
/// - `decode` fails with `Version(v)` exactly when the first byte `v` is not 1;
///   whatever decodes re-encodes into a frame whose length
///   prefix is right and that `read_msg` reads back, consuming exactly it;
/// - `read_msg` with the protocol's limit (64 KiB requests, 8 MiB
///   responses) returns a message only for a frame within the limit,
///   consuming exactly that frame, and then the same as `decode` of its
///   body; says `TooLarge` exactly for a longer announced length (before
///   reading it); an I/O error only for a cut frame.
pub fn proto(data: &[u8]) {
    check::<Request>(data, proto::MAX_REQUEST_FRAME);
    check::<Response>(data, proto::MAX_RESPONSE_FRAME);
    check_response(data);
}

/// `decode_response` is `decode::<Response>` except that a body that does
/// not decode may still be an older node's `Hello` (no operator).
fn check_response(data: &[u8]) {
    match (
        proto::decode::<Response>(data),
        proto::decode_response(data),
    ) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(WireError::Malformed(_)), Ok(Response::Hello { operator, .. })) => {
            assert_eq!(operator, None);
            assert_eq!(data.first(), Some(&PROTOCOL_VERSION));
        }
        (Err(WireError::Malformed(_)), Err(WireError::Malformed(_))) => {}
        (Err(WireError::Version(a)), Err(WireError::Version(b))) => assert_eq!(a, b),
        (a, b) => panic!("decode gave {a:?}, decode_response {b:?}"),
    }
}

/// Mode 0: the rest is ticket text (UTF-8, else skipped). Mode 1: the rest
/// is a ticket's binary contents, put into text form here
/// (`trovenode1` + lowercase base32), so the fuzzer reaches the postcard
/// decoding without having to find valid base32 first.
///
/// Asserts: a parsed ticket prints as `trovenode1` + lowercase base32, that
/// text parses back to the same ticket, and its node id is a valid key
/// (`endpoint_addr` succeeds); parsing ignores case and surrounding space.
pub fn ticket(data: &[u8]) {
    let mut r = Input::new(data);
    let mode = r.u8();
    let text = if mode % 2 == 0 {
        match std::str::from_utf8(r.rest()) {
            Ok(s) => s.to_owned(),
            Err(_) => return,
        }
    } else {
        format!("trovenode1{}", base32(r.rest()))
    };
    let Ok(t) = text.parse::<NodeTicket>() else {
        return;
    };
    let printed = t.to_string();
    let body = printed
        .strip_prefix("trovenode1")
        .expect("printed with the prefix");
    assert!(body
        .bytes()
        .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)));
    assert_eq!(printed.parse::<NodeTicket>().ok().as_ref(), Some(&t));
    let shouted = format!(
        " \t{}\n",
        printed
            .to_uppercase()
            .replacen("TROVENODE1", "trovenode1", 1)
    );
    assert_eq!(shouted.parse::<NodeTicket>().ok().as_ref(), Some(&t));
    t.endpoint_addr()
        .expect("a parsed ticket has a valid node id");
}

/// RFC 4648 base32, lowercase, no padding (as tickets use it).
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::new();
    let mut acc = 0u64;
    let mut bits = 0;
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
