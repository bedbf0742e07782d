//! Sealing: optional zstd compression, then XChaCha20-Poly1305 with a random
//! 24-byte nonce. The blob's kind and id are bound as associated data, so a
//! peer cannot swap one sealed blob for another without the tag failing.

use crate::keys::SealKey;
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// Version byte of a sealed blob.
pub const SEAL_VERSION: u8 = 1;
/// Bytes a sealed blob adds to a stored (uncompressed) payload:
/// version, nonce, codec byte, tag.
pub const SEAL_OVERHEAD: usize = 1 + 24 + 1 + 16;
/// Largest plaintext a compressed blob may declare; bounds the allocation
/// made before decompressing (a tree of a directory with millions of entries
/// stays well below it).
pub const MAX_BLOB_LEN: usize = 1024 * 1024 * 1024;

/// Most bytes any zstd frame yields per byte of it: the densest block is an
/// RLE block, 3 header bytes and 1 content byte for at most 128 KiB (zstd's
/// block maximum); every other block type costs more per output byte. So a
/// declared length above `payload × 32 768` cannot be true, and is refused
/// before the output buffer is allocated.
const ZSTD_MAX_EXPANSION: usize = 128 * 1024 / 4;

const AAD_PREFIX: &[u8] = b"trove-blob-v1";
const CODEC_RAW: u8 = 0;
const CODEC_ZSTD: u8 = 1;

/// What a sealed object is; bound into its associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[repr(u8)]
pub enum BlobKind {
    /// A chunk of file content.
    Data = 0,
    /// A serialized directory tree.
    Tree = 1,
    /// A pack's blob table.
    PackHeader = 2,
    /// The body of a container manifest.
    ContainerManifest = 3,
    /// The body of a snapshot manifest.
    SnapshotManifest = 4,
    /// The body of an index segment.
    IndexSegment = 5,
}

impl BlobKind {
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::Data,
            1 => Self::Tree,
            2 => Self::PackHeader,
            3 => Self::ContainerManifest,
            4 => Self::SnapshotManifest,
            5 => Self::IndexSegment,
            _ => return None,
        })
    }
}

/// Compression policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Never compress.
    Off,
    /// zstd at this level where it pays.
    Zstd(i32),
}

/// zstd level 1: on a mixed 1 GB tree it stored 4.9% more than level 3
/// and spent about half the CPU, which is what bounds a first backup
/// (docs/performance.md).
impl Default for Compression {
    fn default() -> Self {
        Self::Zstd(1)
    }
}

/// A sealed blob did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// Too short or an unknown version byte.
    #[error("sealed blob is malformed ({0})")]
    Malformed(&'static str),
    /// The tag did not verify: wrong key, wrong id or kind, or altered bytes.
    #[error("sealed blob failed authentication (wrong key, or the bytes were altered)")]
    Authentication,
    /// The compressed payload is corrupt or larger than declared.
    #[error("sealed blob payload does not decompress: {0}")]
    Decompress(String),
}

fn aad(kind: BlobKind, id: &[u8; 32]) -> [u8; AAD_PREFIX.len() + 33] {
    let mut a = [0u8; AAD_PREFIX.len() + 33];
    a[..AAD_PREFIX.len()].copy_from_slice(AAD_PREFIX);
    a[AAD_PREFIX.len()] = kind as u8;
    a[AAD_PREFIX.len() + 1..].copy_from_slice(id);
    a
}

thread_local! {
    // Creating a zstd context costs more than compressing a small file, and a
    // backup seals one blob per small file: keep one per thread.
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

fn compress(data: &[u8], level: i32) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    compress_onto(data, level, &mut out).then_some(out)
}

/// Append `data` compressed at `level` to `out` as one zstd frame (its
/// content size declared), written straight into `out`'s spare room: a
/// large chunk is not compressed into a buffer of its own and copied.
/// False, with `out` as it was, if zstd fails.
fn compress_onto(data: &[u8], level: i32, out: &mut Vec<u8>) -> bool {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.as_ref().is_none_or(|(l, _)| *l != level) {
            match zstd::bulk::Compressor::new(level) {
                Ok(new) => *c = Some((level, new)),
                Err(_) => return false,
            }
        }
        let Some((_, compressor)) = c.as_mut() else {
            return false;
        };
        let start = out.len();
        out.reserve_exact(zstd::zstd_safe::compress_bound(data.len()));
        // zstd writes at the cursor, into the room just reserved.
        let mut at = std::io::Cursor::new(&mut *out);
        at.set_position(start as u64);
        let done = compressor.compress_to_buffer(data, &mut at).is_ok();
        if !done {
            out.truncate(start);
        }
        done
    })
}

/// Decompress `data` into `out` (emptied), which is given room for
/// `capacity` bytes: zstd writes no more.
fn decompress_into(data: &[u8], capacity: usize, out: &mut Vec<u8>) -> std::io::Result<()> {
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(zstd::bulk::Decompressor::new()?);
        }
        out.clear();
        out.reserve(capacity);
        d.as_mut()
            .expect("just set")
            .decompress_to_buffer(data, out)
            .map(|_| ())
    })
}

/// Leading bytes of formats that are compressed already (gzip, zip and
/// its kin: jar, docx, epub; PNG, JPEG, GIF, WebP's RIFF, xz, bzip2, zstd,
/// 7z, MP4/MOV's `ftyp`, Ogg, FLAC, MP3's ID3 and frame sync): zstd would
/// spend its time and gain nothing.
const COMPRESSED_MAGIC: &[&[u8]] = &[
    b"\x1f\x8b",
    b"PK\x03\x04",
    b"\x89PNG",
    b"\xff\xd8\xff",
    b"GIF8",
    b"RIFF",
    b"\xfd7zXZ",
    b"BZh",
    b"\x28\xb5\x2f\xfd",
    b"7z\xbc\xaf",
    b"OggS",
    b"fLaC",
    b"ID3",
    b"\xff\xfb",
];

/// Whether `data` begins like an already-compressed format.
fn compressed_already(data: &[u8]) -> bool {
    COMPRESSED_MAGIC.iter().any(|m| data.starts_with(m))
        || data.get(4..8) == Some(b"ftyp".as_slice())
}

/// Whether compressing `data` is likely to pay: not a known compressed
/// format by its first bytes, and, for a large blob, a 64 KiB sample from
/// its middle shrinks, so incompressible media costs almost nothing.
fn worth_compressing(data: &[u8]) -> bool {
    const SAMPLE: usize = 64 * 1024;
    if data.len() < 64 || compressed_already(data) {
        return false;
    }
    if data.len() <= 2 * SAMPLE {
        return true;
    }
    let mid = data.len() / 2;
    let sample = &data[mid - SAMPLE / 2..mid + SAMPLE / 2];
    match compress(sample, 1) {
        Some(c) => c.len() < SAMPLE * 97 / 100,
        None => false,
    }
}

/// Seal `plaintext` as a blob of `kind` named `id`.
pub fn seal(
    key: &SealKey,
    kind: BlobKind,
    id: &[u8; 32],
    plaintext: &[u8],
    compression: Compression,
) -> Vec<u8> {
    let mut out = Vec::new();
    seal_begin(plaintext, compression, &mut out);
    seal_finish(key, kind, id, &mut out);
    out
}

/// Where a sealed blob's payload starts: after its version byte and nonce.
const PAYLOAD_AT: usize = 1 + 24;

/// The first step of [`seal`], into `out` (its contents replaced): the
/// version, a fresh nonce and the payload in the clear, `plaintext`
/// compressed by `compression` where that pays, else as it is. Split out
/// so a caller can time compression and encryption apart, and reuse `out`.
pub fn seal_begin(plaintext: &[u8], compression: Compression, out: &mut Vec<u8>) {
    let nonce: [u8; 24] = rand::random();
    out.clear();
    out.push(SEAL_VERSION);
    out.extend_from_slice(&nonce);
    if let Compression::Zstd(level) = compression {
        if worth_compressing(plaintext) {
            out.push(CODEC_ZSTD);
            out.extend_from_slice(&(plaintext.len() as u32).to_le_bytes());
            let body_at = out.len();
            if compress_onto(plaintext, level, out)
                && out.len() - body_at + 4 < plaintext.len() * 97 / 100
            {
                return;
            }
            out.truncate(PAYLOAD_AT);
        }
    }
    out.reserve_exact(1 + plaintext.len() + 16);
    out.push(CODEC_RAW);
    out.extend_from_slice(plaintext);
}

/// The second step of [`seal`]: encrypt the payload [`seal_begin`] left in
/// `out` in place and append its tag.
pub fn seal_finish(key: &SealKey, kind: BlobKind, id: &[u8; 32], out: &mut Vec<u8>) {
    let nonce = *XNonce::from_slice(&out[1..PAYLOAD_AT]);
    let cipher = XChaCha20Poly1305::new(&key.0.into());
    let tag = cipher
        .encrypt_in_place_detached(&nonce, &aad(kind, id), &mut out[PAYLOAD_AT..])
        .expect("XChaCha20-Poly1305 encrypts any length we produce");
    out.extend_from_slice(&tag);
}

/// [`open`] with the first of `keys` that authenticates the blob (a
/// container's current and retired keys); the first key's error if none.
pub fn open_any<'k>(
    keys: impl IntoIterator<Item = &'k SealKey>,
    kind: BlobKind,
    id: &[u8; 32],
    sealed: &[u8],
) -> Result<Vec<u8>, SealError> {
    let mut out = Vec::new();
    open_any_into(keys, kind, id, sealed, &mut out)?;
    Ok(out)
}

/// [`open_any`] into `out`, as [`open_into`].
pub fn open_any_into<'k>(
    keys: impl IntoIterator<Item = &'k SealKey>,
    kind: BlobKind,
    id: &[u8; 32],
    sealed: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), SealError> {
    let mut first = None;
    for key in keys {
        match open_into(key, kind, id, sealed, out) {
            Ok(()) => return Ok(()),
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    Err(first.unwrap_or(SealError::Authentication))
}

/// Open a blob sealed by [`seal`], checking kind and id.
pub fn open(
    key: &SealKey,
    kind: BlobKind,
    id: &[u8; 32],
    sealed: &[u8],
) -> Result<Vec<u8>, SealError> {
    let mut out = Vec::new();
    open_into(key, kind, id, sealed, &mut out)?;
    Ok(out)
}

/// A compressed payload is copied here (one buffer per thread, kept up to
/// this size) to be decompressed into the caller's buffer. A raw payload
/// needs no second buffer: it is opened in the caller's (docs/performance.md,
/// fourteenth round).
const SCRATCH_KEPT: usize = 1 << 20;

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// [`open`] into `out` (its contents replaced; unspecified on an error),
/// so that a caller opening many blobs can reuse one buffer.
pub fn open_into(
    key: &SealKey,
    kind: BlobKind,
    id: &[u8; 32],
    sealed: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), SealError> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(SealError::Malformed("shorter than the seal overhead"));
    }
    if sealed[0] != SEAL_VERSION {
        return Err(SealError::Malformed("unknown seal version"));
    }
    let (body, tag) = sealed[25..].split_at(sealed.len() - 25 - 16);
    out.clear();
    out.extend_from_slice(body);
    let cipher = XChaCha20Poly1305::new(&key.0.into());
    cipher
        .decrypt_in_place_detached(
            XNonce::from_slice(&sealed[1..25]),
            &aad(kind, id),
            out,
            tag.into(),
        )
        .map_err(|_| SealError::Authentication)?;
    decode_in_place(out)
}

/// Decode a decrypted payload (its codec byte first) into the plaintext,
/// in the same buffer.
fn decode_in_place(out: &mut Vec<u8>) -> Result<(), SealError> {
    match out[0] {
        CODEC_RAW => {
            // One move of the plaintext, as a copy out of a scratch buffer
            // cost before (and that buffer held up to a chunk's size).
            out.drain(..1);
            Ok(())
        }
        CODEC_ZSTD => SCRATCH.with(|scratch| {
            let mut frame = scratch.borrow_mut();
            frame.clear();
            frame.extend_from_slice(out);
            let decoded = decompress_payload(&frame, out);
            if frame.capacity() > SCRATCH_KEPT {
                *frame = Vec::new();
            }
            decoded
        }),
        _ => Err(SealError::Malformed("unknown codec")),
    }
}

/// Decompress a zstd payload (codec byte, declared length, frame) into `out`.
fn decompress_payload(payload: &[u8], out: &mut Vec<u8>) -> Result<(), SealError> {
    if payload.len() < 5 {
        return Err(SealError::Malformed("compressed blob without length"));
    }
    let raw_len = u32::from_le_bytes(payload[1..5].try_into().expect("4 bytes")) as usize;
    let frame = &payload[5..];
    if raw_len > MAX_BLOB_LEN {
        return Err(SealError::Decompress(format!(
            "declared length {raw_len} too large"
        )));
    }
    if raw_len > frame.len().saturating_mul(ZSTD_MAX_EXPANSION) {
        return Err(SealError::Decompress(format!(
            "declared length {raw_len} is more than {} compressed bytes can hold",
            frame.len()
        )));
    }
    decompress_into(frame, raw_len, out).map_err(|e| SealError::Decompress(e.to_string()))?;
    if out.len() != raw_len {
        return Err(SealError::Decompress(
            "length differs from the declared one".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SealKey {
        SealKey([b; 32])
    }

    #[test]
    fn open_into_replaces_what_the_buffer_held_for_raw_and_compressed_blobs() {
        let text = b"the same words again and again ".repeat(4000);
        let noise: Vec<u8> = (0..100_000).map(|_| rand::random::<u8>()).collect();
        let mut out = vec![0xAA; 300_000];
        for (data, zstd) in [
            (&text[..], true),
            (&noise[..], false),
            (&b"tiny"[..], false),
        ] {
            let s = seal(
                &key(1),
                BlobKind::Data,
                &[2; 32],
                data,
                Compression::Zstd(1),
            );
            // Stored raw, a blob is its bytes plus the seal's overhead.
            let raw = s.len() == data.len() + SEAL_OVERHEAD;
            assert_eq!(raw, !zstd, "codec of a {}-byte blob", data.len());
            open_into(&key(1), BlobKind::Data, &[2; 32], &s, &mut out).unwrap();
            assert_eq!(out, data);
            assert_eq!(open(&key(1), BlobKind::Data, &[2; 32], &s).unwrap(), data);
        }
        // A wrong id fails, whatever the buffer held.
        let s = seal(
            &key(1),
            BlobKind::Data,
            &[2; 32],
            &text,
            Compression::Zstd(1),
        );
        assert_eq!(
            open_into(&key(1), BlobKind::Data, &[3; 32], &s, &mut out),
            Err(SealError::Authentication)
        );
    }

    #[test]
    fn known_compressed_formats_are_stored_raw_by_their_magic() {
        let text = b"hello hello hello hello ".repeat(500);
        for magic in [&b"\x1f\x8b\x08\x00"[..], b"\x89PNG", b"PK\x03\x04"] {
            let data = [magic, &text].concat();
            let s = seal(
                &key(1),
                BlobKind::Data,
                &[2; 32],
                &data,
                Compression::default(),
            );
            assert_eq!(
                s.len(),
                data.len() + SEAL_OVERHEAD,
                "{magic:?} is stored raw"
            );
            assert_eq!(open(&key(1), BlobKind::Data, &[2; 32], &s).unwrap(), data);
        }
        let mp4 = [&b"\0\0\0\x20ftypisom"[..], &text].concat();
        let sealed = |p: &[u8]| seal(&key(1), BlobKind::Data, &[2; 32], p, Compression::default());
        assert_eq!(
            sealed(&mp4).len(),
            mp4.len() + SEAL_OVERHEAD,
            "mp4 is stored raw"
        );
        assert!(
            sealed(&text).len() < text.len() / 2,
            "the same text alone is compressed"
        );
    }

    #[test]
    fn round_trip_compressible_and_not() {
        let text = b"hello hello hello hello ".repeat(5000);
        let s = seal(
            &key(1),
            BlobKind::Data,
            &[2; 32],
            &text,
            Compression::default(),
        );
        assert!(s.len() < text.len() / 4, "compressible text must shrink");
        assert_eq!(open(&key(1), BlobKind::Data, &[2; 32], &s).unwrap(), text);

        let noise: Vec<u8> = (0..300_000).map(|_| rand::random()).collect();
        let s = seal(
            &key(1),
            BlobKind::Data,
            &[2; 32],
            &noise,
            Compression::default(),
        );
        assert_eq!(s.len(), noise.len() + SEAL_OVERHEAD, "noise is stored raw");
        assert_eq!(open(&key(1), BlobKind::Data, &[2; 32], &s).unwrap(), noise);

        let s = seal(
            &key(1),
            BlobKind::Tree,
            &[2; 32],
            b"",
            Compression::default(),
        );
        assert_eq!(open(&key(1), BlobKind::Tree, &[2; 32], &s).unwrap(), b"");
    }

    #[test]
    fn binds_key_kind_id_and_bytes() {
        let s = seal(
            &key(1),
            BlobKind::Data,
            &[2; 32],
            b"secret data",
            Compression::Off,
        );
        assert_eq!(
            open(&key(9), BlobKind::Data, &[2; 32], &s),
            Err(SealError::Authentication)
        );
        assert_eq!(
            open(&key(1), BlobKind::Tree, &[2; 32], &s),
            Err(SealError::Authentication)
        );
        assert_eq!(
            open(&key(1), BlobKind::Data, &[3; 32], &s),
            Err(SealError::Authentication)
        );
        for i in 0..s.len() {
            let mut t = s.clone();
            t[i] ^= 1;
            assert!(
                open(&key(1), BlobKind::Data, &[2; 32], &t).is_err(),
                "flip at {i}"
            );
        }
        assert!(open(&key(1), BlobKind::Data, &[2; 32], &s[..10]).is_err());
    }

    /// Seal `region` (codec byte and payload) as `seal` would, to test what
    /// `open` does with contents `seal` never writes.
    fn seal_region(key: &SealKey, kind: BlobKind, id: &[u8; 32], region: &[u8]) -> Vec<u8> {
        let mut body = region.to_vec();
        let tag = XChaCha20Poly1305::new(&key.0.into())
            .encrypt_in_place_detached(XNonce::from_slice(&[7; 24]), &aad(kind, id), &mut body)
            .unwrap();
        [&[SEAL_VERSION][..], &[7; 24], &body, &tag].concat()
    }

    #[test]
    fn a_reused_buffer_seals_as_a_fresh_one() {
        let text = b"hello hello hello hello ".repeat(5000);
        let noise: Vec<u8> = (0..300_000).map(|_| rand::random()).collect();
        let mut out = Vec::new();
        for (plain, compression) in [
            (&noise, Compression::default()),
            (&text, Compression::default()),
            (&noise, Compression::default()),
            (&text, Compression::Off),
        ] {
            seal_begin(plain, compression, &mut out);
            seal_finish(&key(1), BlobKind::Data, &[2; 32], &mut out);
            let fresh = seal(&key(1), BlobKind::Data, &[2; 32], plain, compression);
            assert_eq!(out.len(), fresh.len());
            assert_eq!(
                &open(&key(1), BlobKind::Data, &[2; 32], &out).unwrap(),
                plain
            );
        }
    }

    /// Fuzzing (seal_open, fuzz/regressions/seal_open/oom-zstd-declared-length):
    /// a 55-byte blob declaring 805 MB made `open` allocate 805 MB before
    /// zstd found the frame far too small. Now the declared length is
    /// checked against what the frame can hold first.
    #[test]
    fn zstd_declared_length_beyond_the_frame_is_refused_before_allocating() {
        let frame = zstd::bulk::compress(b"lazy dog", 3).unwrap();
        let mut region = vec![CODEC_ZSTD];
        region.extend_from_slice(&805_308_168u32.to_le_bytes());
        region.extend_from_slice(&frame);
        let s = seal_region(&key(1), BlobKind::Data, &[2; 32], &region);
        match open(&key(1), BlobKind::Data, &[2; 32], &s) {
            Err(SealError::Decompress(m)) => assert!(m.contains("can hold"), "{m}"),
            other => panic!("{other:?}"),
        }
        // The bound is not tighter than zstd: its densest output (runs of
        // one byte, stored as RLE blocks) still opens.
        let zeros = vec![0u8; 16 << 20];
        let s = seal(
            &key(1),
            BlobKind::Data,
            &[2; 32],
            &zeros,
            Compression::Zstd(19),
        );
        let ratio = zeros.len() / s.len();
        assert!(
            ratio > ZSTD_MAX_EXPANSION * 3 / 4,
            "near the bound: {ratio}"
        );
        assert_eq!(open(&key(1), BlobKind::Data, &[2; 32], &s).unwrap(), zeros);
    }

    #[test]
    fn plaintext_does_not_appear() {
        let secret = b"the quick brown fox jumps over the lazy dog".repeat(4);
        for c in [Compression::Off, Compression::default()] {
            let s = seal(&key(1), BlobKind::Data, &[2; 32], &secret, c);
            assert!(!s.windows(16).any(|w| secret.windows(16).any(|x| x == w)));
        }
    }
}
