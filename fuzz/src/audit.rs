//! Audit proofs (`docs/design.md` §6a.3): `trove_peer::audit::verify`, which
//! reads a node's answer (`Response::Proofs`).

use crate::{Input, InputBuilder};
use std::io::Cursor;
use trove_core::FragmentId;
use trove_peer::audit::{self, AuditError, MAX_AUDIT_RANGE_LEN};
use trove_peer::AuditRange;

/// The fragment an input audits: `len` bytes derived from `seed`.
pub fn fragment(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ (i >> 8) as u8 ^ seed)
        .collect()
}

/// Input: `fragment_len u16 LE ‖ seed u8 ‖ offset u32 LE ‖ len u32 LE ‖
/// flags u8 ‖ changes u8 ‖ n × (offset u16 LE, xor u8) ‖ proof`. Flags bit 0:
/// the proof is the honest one (`audit::prove`), changed as listed and with
/// the rest appended; otherwise the rest is the proof. Bit 1: the offset
/// counts back from `u64::MAX`.
///
/// Asserts: an honest proof verifies to exactly the range's bytes (clipped
/// at the fragment's end); any change to it, any appended byte, any cut, is
/// refused; whatever verifies, honest or not, is exactly the range's bytes
/// of the one fragment with that id; an invalid range is `InvalidRange`.
pub fn verify(data: &[u8]) {
    let mut r = Input::new(data);
    let frag = fragment(r.u16() as usize, r.u8());
    let id = FragmentId::of(&frag);
    let offset = r.u32() as u64;
    let len = r.u32() as u64;
    let flags = r.u8();
    let offset = if flags & 2 != 0 {
        u64::MAX - offset
    } else {
        offset
    };
    let range = AuditRange { offset, len };
    let changes: Vec<(u16, u8)> = (0..r.u8() % 4).map(|_| (r.u16(), r.u8())).collect();
    let rest = r.rest();

    let start = (offset as usize).min(frag.len());
    let end = offset.saturating_add(len).min(frag.len() as u64) as usize;
    let expected = &frag[start..end.max(start)];
    let valid = len > 0 && offset.checked_add(len).is_some();

    let check = |proof: &[u8]| -> Result<Vec<u8>, AuditError> {
        let got = audit::verify(&id, range, proof);
        match &got {
            Ok(bytes) => assert_eq!(&bytes[..], expected, "verified other bytes"),
            Err(AuditError::InvalidRange { .. }) => assert!(!valid),
            Err(_) => assert!(valid),
        }
        got
    };

    if flags & 1 == 0 || !valid || len > MAX_AUDIT_RANGE_LEN {
        let _ = check(rest);
        return;
    }
    let honest = audit::prove(Cursor::new(&frag), &[range])
        .expect("a valid range is proven")
        .remove(0);
    assert_eq!(check(&honest).as_deref(), Ok(expected));
    let mut proof = honest.clone();
    for &(off, x) in &changes {
        if !proof.is_empty() {
            let n = proof.len();
            proof[off as usize % n] ^= x;
        }
    }
    proof.extend_from_slice(rest);
    let got = check(&proof);
    if proof != honest {
        assert!(got.is_err(), "a changed proof verified");
    }
    if !honest.is_empty() {
        let cut = changes
            .first()
            .map_or(1, |c| c.0 as usize % honest.len() + 1);
        assert!(
            check(&honest[..honest.len() - cut]).is_err(),
            "a cut proof verified"
        );
    }
}

/// An input for an honest proof of `offset, len` in a fragment of `fragment_len`.
pub fn honest_input(fragment_len: u16, seed: u8, offset: u32, len: u32) -> Vec<u8> {
    InputBuilder::default()
        .u16(fragment_len)
        .u8(seed)
        .u32(offset)
        .u32(len)
        .u8(1)
        .u8(0)
        .build()
}

/// An input whose proof is `proof`, as is.
pub fn proof_input(fragment_len: u16, seed: u8, offset: u32, len: u32, proof: &[u8]) -> Vec<u8> {
    InputBuilder::default()
        .u16(fragment_len)
        .u8(seed)
        .u32(offset)
        .u32(len)
        .u8(0)
        .u8(0)
        .bytes(proof)
        .build()
}
