//! Packs bundle sealed blobs so that small files do not become tiny
//! fragments. The blob table is itself sealed; the pack is padded (Padmé) so
//! its length says little about the blobs inside.
//!
//! ```text
//! sealed blob 0 | sealed blob 1 | ... | padding | sealed header | header_len u32 LE | version u8
//! ```

use crate::ids::{BlobId, PackId};
use crate::keys::SealKey;
use crate::padding::padme;
use crate::seal::{self, BlobKind, Compression, SealError};
use serde::{Deserialize, Serialize};

/// Version byte at the end of a pack.
pub const PACK_VERSION: u8 = 1;
/// Trailer: header length (u32 LE) and version.
pub const PACK_TRAILER_LEN: usize = 5;
/// Default target size of a pack.
pub const DEFAULT_PACK_TARGET: usize = 16 * 1024 * 1024;

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
            version: PACK_VERSION,
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
        buf.extend((0..padding).map(|_| rand::random::<u8>()));
        buf.extend_from_slice(&sealed);
        buf.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        buf.push(PACK_VERSION);
        FinishedPack {
            id: PackId::of(&buf),
            bytes: buf,
            entries,
        }
    }
}

/// Read a pack's blob table, checking that every entry lies inside the pack.
pub fn read_header(key: &SealKey, pack: &[u8]) -> Result<Vec<PackEntry>, PackError> {
    if pack.len() < PACK_TRAILER_LEN {
        return Err(PackError::Malformed("shorter than its trailer"));
    }
    let (rest, trailer) = pack.split_at(pack.len() - PACK_TRAILER_LEN);
    if trailer[4] != PACK_VERSION {
        return Err(PackError::Malformed("unknown pack version"));
    }
    let header_len = u32::from_le_bytes(trailer[..4].try_into().expect("4 bytes")) as usize;
    if header_len > rest.len() {
        return Err(PackError::Malformed("header longer than the pack"));
    }
    let header_start = rest.len() - header_len;
    let plain = seal::open(key, BlobKind::PackHeader, &[0; 32], &rest[header_start..])?;
    let header: PackHeader =
        postcard::from_bytes(&plain).map_err(|e| PackError::Decode(e.to_string()))?;
    if header.version != PACK_VERSION {
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
}
