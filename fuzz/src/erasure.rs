//! Fragments (`docs/design.md` §3.5–3.6): `FragmentHeader::parse` and
//! `trove_core::erasure::decode` of arbitrary fragment sets.

use crate::{Input, InputBuilder};
use trove_core::erasure::{self, ErasureError, FragmentHeader, FRAGMENT_HEADER_LEN};
use trove_core::PackId;

/// §3.6's rules for a fragment header, written out independently.
fn header_model(b: &[u8]) -> Option<FragmentHeader> {
    if b.len() < FRAGMENT_HEADER_LEN || &b[..4] != b"TRVF" || b[4] != 1 {
        return None;
    }
    let h = FragmentHeader {
        k: b[5],
        m: b[6],
        index: b[7],
        pack: PackId(b[8..40].try_into().ok()?),
        pack_len: u64::from_le_bytes(b[40..48].try_into().ok()?),
        shard_len: u32::from_le_bytes(b[48..52].try_into().ok()?),
    };
    let ok = h.k != 0
        && (h.index as u32) < h.k as u32 + h.m as u32
        && b.len() as u64 == FRAGMENT_HEADER_LEN as u64 + h.shard_len as u64
        && h.pack_len <= h.shard_len as u64 * h.k as u64;
    ok.then_some(h)
}

fn check_parse(b: &[u8]) -> Option<FragmentHeader> {
    let got = FragmentHeader::parse(b);
    assert_eq!(got.as_ref().ok(), header_model(b).as_ref(), "parse vs §3.6");
    got.ok()
}

/// What every successful decode must satisfy: the pack hashes to the id all
/// headers name and has their `pack_len`, and at least `k` distinct indices
/// were given.
fn check_decoded(fragments: &[&[u8]], pack: &[u8]) {
    let headers: Vec<FragmentHeader> = fragments
        .iter()
        .map(|f| FragmentHeader::parse(f).expect("decode accepted it"))
        .collect();
    let h = headers[0];
    assert!(headers
        .iter()
        .all(|x| (x.k, x.m, x.pack, x.pack_len, x.shard_len)
            == (h.k, h.m, h.pack, h.pack_len, h.shard_len)));
    assert_eq!(PackId::of(pack), h.pack);
    assert_eq!(pack.len() as u64, h.pack_len);
    let mut idx: Vec<u8> = headers.iter().map(|x| x.index).collect();
    idx.sort_unstable();
    idx.dedup();
    assert!(idx.len() >= h.k as usize);
}

/// Mode 0: the rest is one fragment. Mode 1: the rest is a fragment set,
/// each `len u16 LE ‖ bytes` (the last one short if the input ends).
/// Mode 2: `k u8 ‖ m u8 ‖ keep mask [32] ‖ corruptions u8 ‖ n × (fragment u8,
/// offset u16 LE, xor u8) ‖ pack bytes`.
///
/// Asserts:
/// - `parse` accepts exactly the headers §3.6 allows, with the fields at
///   the documented offsets;
/// - `decode` of any set either fails or returns a pack that hashes to the
///   id all the (agreeing) headers name, of their `pack_len`, from ≥ k
///   distinct indices;
/// - (mode 2) encoding any pack with any supported k+m, then decoding any
///   subset of ≥ k intact fragments (in any order, with duplicates) gives
///   the pack back; fewer is `TooFew`; with damaged fragments in the set,
///   decode fails or still returns exactly the pack; unsupported k+m are refused.
pub fn decode(data: &[u8]) {
    let mut r = Input::new(data);
    match r.u8() % 3 {
        0 => {
            check_parse(r.rest());
        }
        1 => {
            let mut set = Vec::new();
            while !r.is_empty() {
                let n = r.u16() as usize;
                set.push(r.take(n));
            }
            for f in &set {
                check_parse(f);
            }
            match erasure::decode(&set) {
                Ok(pack) => check_decoded(&set, &pack),
                Err(ErasureError::TooFew { have: 0, .. }) => assert!(set.is_empty()),
                Err(_) => {}
            }
        }
        _ => round_trip(r),
    }
}

fn round_trip(mut r: Input<'_>) {
    let (k, m) = (r.u8(), r.u8());
    let mask = r.take(32).to_vec();
    let corruptions: Vec<(u8, u16, u8)> =
        (0..r.u8() % 4).map(|_| (r.u8(), r.u16(), r.u8())).collect();
    let pack = r.rest();
    let id = PackId::of(pack);
    let frags = match erasure::encode(&id, pack, k, m) {
        Ok(f) => f,
        Err(e) => {
            assert!(k == 0 || k as usize + m as usize > 255, "{k}+{m}: {e}");
            assert_eq!(e, ErasureError::Unsupported { k, m });
            return;
        }
    };
    assert!(k != 0 && k as usize + m as usize <= 255);
    assert_eq!(frags.len(), k as usize + m as usize);
    for (i, f) in frags.iter().enumerate() {
        let h = check_parse(&f.bytes).expect("encode makes valid fragments");
        assert_eq!((h.k, h.m, h.index as usize, h.pack), (k, m, i, id));
        assert_eq!(f.id, trove_core::FragmentId::of(&f.bytes));
    }
    // The chosen fragments, last first (order must not matter), the first
    // chosen one twice (duplicates are ignored).
    let chosen: Vec<usize> = (0..frags.len())
        .rev()
        .filter(|i| mask.get(i / 8).is_some_and(|b| b >> (i % 8) & 1 == 1))
        .collect();
    let mut set: Vec<Vec<u8>> = chosen.iter().map(|&i| frags[i].bytes.clone()).collect();
    if let Some(&first) = chosen.first() {
        set.push(frags[first].bytes.clone());
    }
    let mut damaged = false;
    for &(f, off, x) in &corruptions {
        if set.is_empty() || x == 0 {
            continue;
        }
        let n = set.len();
        let f = &mut set[f as usize % n];
        let off = off as usize % f.len();
        f[off] ^= x;
        damaged = true;
    }
    let refs: Vec<&[u8]> = set.iter().map(|f| &f[..]).collect();
    let got = erasure::decode(&refs);
    if let Ok(p) = &got {
        assert_eq!(&p[..], pack, "decoded another pack");
        check_decoded(&refs, p);
    }
    if !damaged {
        if chosen.len() >= k as usize {
            assert_eq!(got.as_deref(), Ok(pack), "{k}+{m} from {chosen:?}");
        } else {
            assert!(
                matches!(got, Err(ErasureError::TooFew { .. })),
                "{k}+{m} from {chosen:?}: {got:?}"
            );
        }
    }
}

/// A mode-1 input: the fragment set, length-prefixed.
pub fn set_input(fragments: &[&[u8]]) -> Vec<u8> {
    let mut b = InputBuilder::default().u8(1);
    for f in fragments {
        b = b.u16(f.len() as u16).bytes(f);
    }
    b.build()
}

/// A mode-2 input.
pub fn round_trip_input(k: u8, m: u8, mask: [u8; 32], pack: &[u8]) -> Vec<u8> {
    InputBuilder::default()
        .u8(2)
        .u8(k)
        .u8(m)
        .bytes(&mask)
        .u8(0)
        .bytes(pack)
        .build()
}
