//! Packs bundle sealed blobs so that small files do not become tiny
//! fragments. The blob table is itself sealed; the pack is padded (Padmé) so
//! its length says little about the blobs inside.
//!
//! ```text
//! v2: sealed blob 0 | ... | padding | sealed header | sealed header_len (46 bytes) | version u8 = 2
//! v1: sealed blob 0 | ... | padding | sealed header | header_len u32 LE            | version u8 = 1
//! ```
//!
//! Version 2 seals the header's length too, so a peer cannot tell where the
//! random padding ends and the header begins: the header's length, which
//! grows with the number of blobs, is no longer in the clear. Version 1
//! packs are still read.

use crate::ids::{BlobId, PackId};
use crate::keys::SealKey;
use crate::padding::padme;
use crate::seal::{self, BlobKind, Compression, SealError, SEAL_OVERHEAD};
use serde::{Deserialize, Serialize};

/// Version byte at the end of a pack.
pub const PACK_VERSION: u8 = 2;
/// Trailer of a version-2 pack: the sealed header length and the version.
pub const PACK_TRAILER_LEN: usize = SEALED_LEN_LEN + 1;
/// Trailer of a version-1 pack: header length (u32 LE) and version.
const V1_TRAILER_LEN: usize = 5;
/// The header length sealed: a raw seal of 4 bytes.
const SEALED_LEN_LEN: usize = SEAL_OVERHEAD + 4;
/// Object id in the associated data of the sealed header length (the header
/// itself uses 32 zero bytes), so neither can stand in for the other.
const HEADER_LEN_OBJECT: [u8; 32] = [1; 32];
/// Version of the pack header inside its seal (unchanged by pack v2).
const PACK_HEADER_VERSION: u8 = 1;
/// Default target size of a pack: 6 MiB, so the few packs a backup has in
/// flight (being filled, encoded, written) stay a small part of its memory,
/// while fragments (1.5 MiB at 4+2) stay large enough that a peer's per-file
/// cost does not dominate (8 MiB until the fifteenth round of
/// docs/performance.md: two packs and parity were a quarter of a backup's
/// peak; 4 MiB packs slowed node peers' restores).
pub const DEFAULT_PACK_TARGET: usize = 6 * 1024 * 1024;

/// Where one blob lives inside a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackEntry {
    pub kind: BlobKind,
    pub id: BlobId,
    /// Offset of the sealed blob from the start of the pack.
    pub offset: u32,
    /// Length of the sealed blob.
    pub length: u32,
    /// Length of the plaintext, so a restore knows each chunk's offset in its file.
    pub raw_length: u32,
}

#[derive(Serialize, Deserialize)]
struct PackHeader {
    version: u8,
    entries: Vec<PackEntry>,
}

/// A pack could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PackError {
    #[error("pack is malformed: {0}")]
    Malformed(&'static str),
    #[error("pack header does not open: {0}")]
    Header(#[from] SealError),
    #[error("pack header is not valid: {0}")]
    Decode(String),
}

/// Accumulates sealed blobs into one pack.
#[derive(Debug, Default)]
pub struct PackBuilder {
    buf: Vec<u8>,
    entries: Vec<PackEntry>,
}

/// A finished pack: its id, bytes and blob table.
#[derive(Debug)]
pub struct FinishedPack {
    pub id: PackId,
    pub bytes: Vec<u8>,
    pub entries: Vec<PackEntry>,
}

impl PackBuilder {
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            buf: Vec::with_capacity(bytes),
            entries: Vec::new(),
        }
    }

    /// A builder with room for `bytes` in `buf`, whatever it held dropped:
    /// a stored pack's buffer, whose pages are already in memory.
    pub fn reusing(mut buf: Vec<u8>, bytes: usize) -> Self {
        buf.clear();
        buf.reserve_exact(bytes);
        Self {
            buf,
            entries: Vec::new(),
        }
    }

    /// Append a sealed blob.
    pub fn add(&mut self, kind: BlobKind, id: BlobId, sealed: &[u8], raw_length: u32) {
        self.entries.push(PackEntry {
            kind,
            id,
            offset: self.buf.len() as u32,
            length: sealed.len() as u32,
            raw_length,
        });
        self.buf.extend_from_slice(sealed);
    }

    /// Bytes of sealed blobs so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn blob_count(&self) -> usize {
        self.entries.len()
    }

    /// Seal the blob table, pad, and name the pack by its hash.
    pub fn finish(self, key: &SealKey) -> FinishedPack {
        let PackBuilder { mut buf, entries } = self;
        let header = postcard::to_stdvec(&PackHeader {
            version: PACK_HEADER_VERSION,
            entries: entries.clone(),
        })
        .expect("pack header serializes");
        let sealed = seal::seal(
            key,
            BlobKind::PackHeader,
            &[0; 32],
            &header,
            Compression::Zstd(3),
        );
        let unpadded = buf.len() + sealed.len() + PACK_TRAILER_LEN;
        let padding = padme(unpadded as u64) as usize - unpadded;
        buf.reserve(padding + sealed.len() + PACK_TRAILER_LEN);
        let at = buf.len();
        buf.resize(at + padding, 0);
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut buf[at..]);
        buf.extend_from_slice(&sealed);
        buf.extend_from_slice(&seal::seal(
            key,
            BlobKind::PackHeader,
            &HEADER_LEN_OBJECT,
            &(sealed.len() as u32).to_le_bytes(),
            Compression::Off,
        ));
        buf.push(PACK_VERSION);
        // The builder reserved room for a large last blob: give back what
        // is left of it (backed by huge pages, the last 2 MiB page written
        // would be held whole while the pack waits to be stored).
        buf.shrink_to_fit();
        FinishedPack {
            id: PackId::of(&buf),
            bytes: buf,
            entries,
        }
    }
}

/// Read a pack's blob table, checking that every entry lies inside the pack.
pub fn read_header(key: &SealKey, pack: &[u8]) -> Result<Vec<PackEntry>, PackError> {
    let trailer_len = match pack.last() {
        Some(1) => V1_TRAILER_LEN,
        Some(&PACK_VERSION) => PACK_TRAILER_LEN,
        Some(_) => return Err(PackError::Malformed("unknown pack version")),
        None => return Err(PackError::Malformed("empty")),
    };
    if pack.len() < trailer_len {
        return Err(PackError::Malformed("shorter than its trailer"));
    }
    let (rest, trailer) = pack.split_at(pack.len() - trailer_len);
    let len_bytes = &trailer[..trailer_len - 1];
    let len_plain;
    let len_bytes = if trailer_len == V1_TRAILER_LEN {
        len_bytes
    } else {
        len_plain = seal::open(key, BlobKind::PackHeader, &HEADER_LEN_OBJECT, len_bytes)?;
        len_plain.as_slice()
    };
    let header_len = u32::from_le_bytes(
        len_bytes
            .try_into()
            .map_err(|_| PackError::Malformed("header length is not 4 bytes"))?,
    ) as usize;
    if header_len > rest.len() {
        return Err(PackError::Malformed("header longer than the pack"));
    }
    let header_start = rest.len() - header_len;
    let plain = seal::open(key, BlobKind::PackHeader, &[0; 32], &rest[header_start..])?;
    let header: PackHeader =
        postcard::from_bytes(&plain).map_err(|e| PackError::Decode(e.to_string()))?;
    if header.version != PACK_HEADER_VERSION {
        return Err(PackError::Malformed("unknown pack header version"));
    }
    for e in &header.entries {
        if e.offset as usize + e.length as usize > header_start {
            return Err(PackError::Malformed("entry outside the pack"));
        }
    }
    Ok(header.entries)
}

/// The sealed bytes of one entry.
pub fn blob_bytes<'a>(pack: &'a [u8], entry: &PackEntry) -> Result<&'a [u8], PackError> {
    pack.get(entry.offset as usize..entry.offset as usize + entry.length as usize)
        .ok_or(PackError::Malformed("entry outside the pack"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_and_read_back() {
        let key = SealKey::from_bytes([4; 32]);
        let mut b = PackBuilder::default();
        let mut blobs = Vec::new();
        for i in 0..20u8 {
            let plain = vec![i; 1000 + i as usize * 37];
            let id = BlobId([i; 32]);
            let sealed = seal::seal(&key, BlobKind::Data, &id.0, &plain, Compression::Off);
            b.add(BlobKind::Data, id, &sealed, plain.len() as u32);
            blobs.push((id, plain));
        }
        let p = b.finish(&key);
        assert_eq!(p.id, PackId::of(&p.bytes));
        assert_eq!(p.bytes.len() as u64, padme(p.bytes.len() as u64));
        let entries = read_header(&key, &p.bytes).unwrap();
        assert_eq!(entries, p.entries);
        for (e, (id, plain)) in entries.iter().zip(&blobs) {
            assert_eq!(e.id, *id);
            let got = seal::open(&key, e.kind, &e.id.0, blob_bytes(&p.bytes, e).unwrap()).unwrap();
            assert_eq!(&got, plain);
        }
        assert!(read_header(&SealKey::from_bytes([5; 32]), &p.bytes).is_err());
        let mut bad = p.bytes.clone();
        let n = bad.len();
        bad[n - 1] = 9;
        assert!(read_header(&key, &bad).is_err());
        assert!(read_header(&key, &p.bytes[..3]).is_err());
    }

    /// A pack built in the buffer of one stored before holds only its own
    /// blobs: the same bytes, but for the random padding, as one built in
    /// fresh memory.
    #[test]
    fn a_reused_buffer_keeps_nothing_of_its_last_pack() {
        let key = SealKey::from_bytes([4; 32]);
        let old = pack_of(30);
        let id = BlobId([200; 32]);
        let sealed = seal::seal(&key, BlobKind::Data, &id.0, b"new blob", Compression::Off);
        let build = |mut b: PackBuilder| {
            b.add(BlobKind::Data, id, &sealed, 8);
            b.finish(&key)
        };
        let reused = build(PackBuilder::reusing(old.bytes, 4096));
        let fresh = build(PackBuilder::default());
        assert_eq!(reused.bytes.len(), fresh.bytes.len());
        let entries = read_header(&key, &reused.bytes).unwrap();
        assert_eq!(entries, fresh.entries);
        assert_eq!(blob_bytes(&reused.bytes, &entries[0]).unwrap(), &sealed[..]);
        let got = seal::open(&key, BlobKind::Data, &id.0, &sealed).unwrap();
        assert_eq!(got, b"new blob");
    }

    fn pack_of(blobs: usize) -> FinishedPack {
        let key = SealKey::from_bytes([4; 32]);
        let mut b = PackBuilder::default();
        for i in 0..blobs {
            let sealed = seal::seal(
                &key,
                BlobKind::Data,
                &[i as u8; 32],
                &[0u8; 100],
                Compression::Off,
            );
            b.add(BlobKind::Data, BlobId([i as u8; 32]), &sealed, 100);
        }
        b.finish(&key)
    }

    /// What a peer can read of a pack: its length and its last bytes.
    #[test]
    fn nothing_in_the_clear_depends_on_the_blob_count() {
        let (a, b) = (pack_of(60), pack_of(61));
        // Same Padmé length: 61 blobs of 142 bytes land in the same bucket.
        assert_eq!(a.bytes.len(), b.bytes.len());
        // The trailer is ciphertext of the same length plus the version.
        assert_eq!(a.bytes.last(), Some(&PACK_VERSION));
        let key = SealKey::from_bytes([4; 32]);
        assert_eq!(read_header(&key, &a.bytes).unwrap(), a.entries);
        assert_eq!(read_header(&key, &b.bytes).unwrap(), b.entries);
        // The sealed length is bound to its role: swapping in another
        // pack's trailer, or damaging it, fails.
        let mut swapped = a.bytes.clone();
        let n = swapped.len();
        swapped[n - PACK_TRAILER_LEN..].copy_from_slice(&b.bytes[n - PACK_TRAILER_LEN..]);
        assert!(read_header(&key, &swapped).is_err());
    }

    #[test]
    fn version_1_packs_are_still_read() {
        let key = SealKey::from_bytes([4; 32]);
        let entries = vec![PackEntry {
            kind: BlobKind::Data,
            id: BlobId([1; 32]),
            offset: 0,
            length: 10,
            raw_length: 10,
        }];
        let plain = postcard::to_stdvec(&PackHeader {
            version: 1,
            entries: entries.clone(),
        })
        .unwrap();
        let sealed = seal::seal(
            &key,
            BlobKind::PackHeader,
            &[0; 32],
            &plain,
            Compression::Zstd(3),
        );
        let mut pack = vec![7u8; 10];
        pack.extend_from_slice(&sealed);
        pack.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        pack.push(1);
        assert_eq!(read_header(&key, &pack).unwrap(), entries);
    }
}
