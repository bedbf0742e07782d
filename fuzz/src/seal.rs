//! Sealed blobs (`docs/design.md` §3.1): `trove_core::seal::open`.

use crate::keys::{seal_key, SEAL_KEY};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::io::Read;
use trove_core::seal::{self, BlobKind, Compression, SealError, MAX_BLOB_LEN, SEAL_OVERHEAD};

/// The id every seal oracle binds.
pub const ID: [u8; 32] = [0xb1; 32];

/// Seal `region` (codec byte ‖ payload) exactly as §3.1 describes, written
/// from the document rather than from `seal.rs`: version 1 ‖ nonce ‖
/// XChaCha20-Poly1305(region) ‖ tag, associated data
/// `"trove-blob-v1" ‖ kind ‖ id`.
pub fn seal_region(key: &[u8; 32], kind: BlobKind, id: &[u8; 32], region: &[u8]) -> Vec<u8> {
    // A nonce from the contents keeps the oracle deterministic.
    let nonce: [u8; 24] = blake3::hash(region).as_bytes()[..24]
        .try_into()
        .expect("24 bytes");
    let mut aad = b"trove-blob-v1".to_vec();
    aad.push(kind as u8);
    aad.extend_from_slice(id);
    let mut out = vec![1u8];
    out.extend_from_slice(&nonce);
    let mut body = region.to_vec();
    let tag = XChaCha20Poly1305::new(key.into())
        .encrypt_in_place_detached(XNonce::from_slice(&nonce), &aad, &mut body)
        .expect("encrypts");
    out.extend_from_slice(&body);
    out.extend_from_slice(&tag);
    out
}

/// Whether the zstd frames in `payload` decompress to exactly `raw_len`
/// bytes, equal to `want` when given; `None` when the oracle cannot tell.
/// Uses zstd's streaming decoder (not the one-shot one `seal.rs` uses) and
/// compares as it goes, so the oracle itself never holds more than one
/// buffer of output.
fn zstd_holds(payload: &[u8], raw_len: usize, want: Option<&[u8]>) -> Option<bool> {
    // No frame at all holds nothing, as zstd's one-shot API counts it (the
    // streaming decoder calls it an incomplete frame).
    if payload.is_empty() {
        return Some(raw_len == 0);
    }
    let Ok(mut dec) = zstd::stream::read::Decoder::new(payload) else {
        return Some(false);
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut seen = 0usize;
    loop {
        let n = match dec.read(&mut buf) {
            Ok(0) => return Some(seen == raw_len),
            Ok(n) => n,
            // The one-shot decoder needs no window buffer, so it reads
            // frames declaring any window size; the streaming one refuses
            // windows over 128 MiB rather than allocate them.
            Err(e) if e.to_string().contains("too much memory") => return None,
            Err(_) => return Some(false),
        };
        if seen + n > raw_len {
            return Some(false);
        }
        if let Some(w) = want {
            if w[seen..seen + n] != buf[..n] {
                return Some(false);
            }
        }
        seen += n;
    }
}

/// Whether `open` must accept a blob whose decrypted region is `region`
/// and return `plain` (or, with `plain` unknown, anything): the document's
/// rules, with zstd itself deciding what a frame holds; `None` when the
/// oracle cannot tell.
fn must_open(region: &[u8], plain: Option<&[u8]>) -> Option<bool> {
    match region.first() {
        Some(0) => Some(plain.is_none_or(|p| p == &region[1..])),
        Some(1) => {
            let Some(raw_len) = region.get(1..5) else {
                return Some(false);
            };
            let raw_len = u32::from_le_bytes(raw_len.try_into().expect("4 bytes")) as usize;
            if raw_len > MAX_BLOB_LEN || plain.is_some_and(|p| p.len() != raw_len) {
                return Some(false);
            }
            zstd_holds(&region[5..], raw_len, plain)
        }
        _ => Some(false),
    }
}

/// Input: the decrypted region of a sealed blob, `codec ‖ payload`
/// (codec 0 raw; codec 1 = `raw_len u32 LE ‖ zstd frame`).
///
/// Asserts:
/// - the raw input, opened as a sealed blob, opens only if it has the
///   documented frame (in practice: only seeds sealed under the fixed key);
/// - sealed under the fixed key, a raw region opens to exactly its payload;
///   a zstd region opens only to exactly `raw_len` bytes, and only to what
///   the zstd frame holds (per zstd's streaming decoder); the expansion
///   bound never refuses a frame that decoder reads; an unknown codec is
///   `Malformed`; an authentication failure never happens;
/// - the input itself, sealed with zstd, opens back;
/// - the same blob under another kind or id, or with any one byte changed,
///   fails authentication (or is malformed), never opens;
/// - whatever opens seals again (both compression settings) and opens back.
pub fn open(data: &[u8]) {
    let key = seal_key();
    if seal::open(&key, BlobKind::Data, &ID, data).is_ok() {
        // Only bytes sealed under the fixed key open (a seed, or a mutation
        // of one that kept it intact): they have the documented frame.
        assert!(data.len() >= SEAL_OVERHEAD && data[0] == 1);
    }
    if data.is_empty() {
        return;
    }
    let sealed = seal_region(&SEAL_KEY, BlobKind::Data, &ID, data);
    let got = seal::open(&key, BlobKind::Data, &ID, &sealed);
    match &got {
        Ok(out) => assert!(
            must_open(data, Some(out)) != Some(false),
            "opened ({} bytes) to what the region (codec {}) does not hold",
            out.len(),
            data[0]
        ),
        Err(e) => {
            assert!(
                !matches!(e, SealError::Authentication),
                "a correctly sealed blob failed authentication"
            );
            // zstd's one-shot decoder (seal.rs) is stricter than its
            // streaming one on some damaged frames, so a refusal is not a
            // bug in itself; but the expansion bound must never be what
            // refuses a frame zstd can decode.
            if data[0] == 0 {
                panic!("refused a raw blob: {e}");
            }
            if data[0] == 1 && must_open(data, None) == Some(true) {
                assert!(
                    !e.to_string().contains("can hold"),
                    "the expansion bound refused a decodable frame: {e}"
                );
            }
        }
    }

    for (kind, id) in [(BlobKind::Tree, ID), (BlobKind::Data, [0xb2; 32])] {
        assert_eq!(
            seal::open(&key, kind, &id, &sealed),
            Err(SealError::Authentication),
            "opened under another kind or id"
        );
    }
    let h = blake3::hash(data);
    let pos = u32::from_le_bytes(h.as_bytes()[..4].try_into().expect("4")) as usize % sealed.len();
    let mut flipped = sealed.clone();
    flipped[pos] ^= 1 << (h.as_bytes()[4] % 8);
    assert!(
        seal::open(&key, BlobKind::Data, &ID, &flipped).is_err(),
        "opened with byte {pos} changed"
    );

    // Anything zstd compresses opens back.
    let blob = seal::seal(&key, BlobKind::Data, &ID, data, Compression::Zstd(1));
    assert_eq!(
        seal::open(&key, BlobKind::Data, &ID, &blob).as_deref(),
        Ok(data)
    );

    if let Ok(plain) = got {
        for c in [Compression::Off, Compression::Zstd(1)] {
            let again = seal::seal(&key, BlobKind::Data, &ID, &plain, c);
            assert_eq!(
                seal::open(&key, BlobKind::Data, &ID, &again).as_deref(),
                Ok(&plain[..])
            );
        }
    }
}
