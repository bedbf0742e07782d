//! Packs and pack headers (`docs/design.md` §3.4): `trove_core::pack::read_header`
//! and `pack::blob_bytes`.

use crate::keys::seal_key;
use crate::Input;
use serde::{Deserialize, Serialize};
use trove_core::pack::{self, PackEntry, PACK_TRAILER_LEN, PACK_VERSION};

/// The version inside the sealed header (§3.4; pack v2 left it at 1).
pub const HEADER_VERSION: u8 = 1;
/// Object id sealing a v2 pack's header length (the header uses zeros).
const HEADER_LEN_OBJECT: [u8; 32] = [1; 32];
use trove_core::seal::{self, BlobKind, Compression};

/// The pack header's plaintext as §3.4 writes it down (`pack.rs` keeps its
/// own struct private).
#[derive(Debug, Serialize, Deserialize)]
pub struct HeaderModel {
    pub version: u8,
    pub entries: Vec<PackEntry>,
}

/// Assemble a pack around a header plaintext:
/// v2 `region ‖ seal(plain) ‖ seal(H u32 LE) ‖ 0x02`, or the v1 layout
/// Trove still reads, `region ‖ seal(plain) ‖ H u32 LE ‖ 0x01`.
pub fn assemble(region: &[u8], plain: &[u8], zstd: bool, v1: bool) -> Vec<u8> {
    let c = if zstd {
        Compression::Zstd(3)
    } else {
        Compression::Off
    };
    let sealed = seal::seal(&seal_key(), BlobKind::PackHeader, &[0; 32], plain, c);
    let len = (sealed.len() as u32).to_le_bytes();
    let mut p = region.to_vec();
    p.extend_from_slice(&sealed);
    if v1 {
        p.extend_from_slice(&len);
        p.push(1);
    } else {
        p.extend_from_slice(&seal::seal(
            &seal_key(),
            BlobKind::PackHeader,
            &HEADER_LEN_OBJECT,
            &len,
            Compression::Off,
        ));
        p.push(PACK_VERSION);
    }
    p
}

/// Where the sealed header starts, read from the trailer as §3.4 says.
fn header_start(pack: &[u8]) -> usize {
    let (trailer_len, h) = match pack.last() {
        Some(1) => {
            let t = &pack[pack.len() - 5..];
            (5, u32::from_le_bytes(t[..4].try_into().expect("4")))
        }
        _ => {
            let t = &pack[pack.len() - PACK_TRAILER_LEN..pack.len() - 1];
            let plain = seal::open(&seal_key(), BlobKind::PackHeader, &HEADER_LEN_OBJECT, t)
                .expect("a pack read_header accepted has a sealed length");
            (
                PACK_TRAILER_LEN,
                u32::from_le_bytes(plain.try_into().expect("4 bytes")),
            )
        }
    };
    pack.len() - trailer_len - h as usize
}

/// The layout of a structured input: `flags u8 ‖ n u16 LE ‖ region [n] ‖
/// header plaintext`; flag bit 0: zstd header, bit 1: v1 layout.
pub fn input(region: &[u8], plain: &[u8], zstd: bool, v1: bool) -> Vec<u8> {
    crate::InputBuilder::default()
        .u8(zstd as u8 | (v1 as u8) << 1)
        .u16(region.len() as u16)
        .bytes(region)
        .bytes(plain)
        .build()
}

/// Checks what every successful `read_header` must give: each entry lies
/// before the sealed header, and `blob_bytes` returns exactly its bytes.
fn check_entries(pack: &[u8], entries: &[PackEntry]) {
    let header_start = header_start(pack);
    for e in entries {
        let end = e.offset as usize + e.length as usize;
        assert!(end <= header_start, "entry {e:?} overlaps the header");
        let b = pack::blob_bytes(pack, e).expect("an entry read_header accepted");
        assert_eq!(b, &pack[e.offset as usize..end]);
    }
}

/// Input: see [`input`]; the whole input is also tried as a pack.
///
/// Asserts:
/// - raw bytes as a pack: accepted entries lie inside the pack;
/// - a pack built around any header plaintext (sealed under the fixed key)
///   in either layout (v2, or v1 still read) is accepted exactly when the
///   plaintext is postcard of §3.4's header with version 1 and every entry
///   ends before the header, and then yields
///   exactly those entries, which re-encode to a header that reads back the same;
/// - `blob_bytes` of an arbitrary entry returns `offset..offset+length`
///   exactly when that lies inside the pack.
pub fn read(data: &[u8]) {
    let key = seal_key();
    if let Ok(entries) = pack::read_header(&key, data) {
        check_entries(data, &entries);
    }

    let mut r = Input::new(data);
    let flags = r.u8();
    let (zstd, v1) = (flags & 1 == 1, flags & 2 == 2);
    let n = r.u16() as usize;
    let region = r.take(n);
    let plain = r.rest();
    let p = assemble(region, plain, zstd, v1);
    let got = pack::read_header(&key, &p);
    let model = postcard::from_bytes::<HeaderModel>(plain)
        .ok()
        .filter(|h| h.version == HEADER_VERSION)
        .filter(|h| {
            h.entries
                .iter()
                .all(|e| e.offset as u64 + e.length as u64 <= region.len() as u64)
        });
    match (&got, &model) {
        (Ok(entries), Some(m)) => {
            assert_eq!(entries, &m.entries);
            check_entries(&p, entries);
            let again = postcard::to_stdvec(&HeaderModel {
                version: HEADER_VERSION,
                entries: entries.clone(),
            })
            .expect("serializes");
            let p2 = assemble(region, &again, !zstd, !v1);
            assert_eq!(pack::read_header(&key, &p2).as_ref(), Ok(entries));
        }
        (Err(_), None) => {}
        (got, model) => panic!("read_header gave {got:?}, the format says {model:?}"),
    }

    // One arbitrary entry (its place from the input's first bytes) against the raw input.
    let mut r = Input::new(data);
    let e = PackEntry {
        kind: BlobKind::Data,
        id: trove_core::BlobId([0; 32]),
        offset: r.u32(),
        length: r.u32(),
        raw_length: 0,
    };
    let end = e.offset as u64 + e.length as u64;
    match pack::blob_bytes(data, &e) {
        Ok(b) => {
            assert!(end <= data.len() as u64);
            assert_eq!(b, &data[e.offset as usize..end as usize]);
        }
        Err(_) => assert!(end > data.len() as u64),
    }
}
