//! Content-defined chunking with FastCDC (2020), its gear table seeded from
//! the container key so that chunk boundaries (and so chunk sizes) reveal
//! nothing to someone who knows the plaintext but not the key.

use fastcdc::v2020::{FastCDC, Normalization, StreamCDC};
use std::io::Read;

/// Chunk size bounds in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChunkerParams {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

impl Default for ChunkerParams {
    /// 256 KiB / 1 MiB / 4 MiB (docs/design.md §3.3).
    fn default() -> Self {
        Self {
            min: 256 * 1024,
            avg: 1024 * 1024,
            max: 4 * 1024 * 1024,
        }
    }
}

/// A keyed chunker.
#[derive(Debug, Clone, Copy)]
pub struct Chunker {
    params: ChunkerParams,
    seed: u64,
}

impl Chunker {
    pub fn new(params: ChunkerParams, seed: u64) -> Self {
        Self { params, seed }
    }

    pub fn params(&self) -> ChunkerParams {
        self.params
    }

    /// Chunk boundaries of an in-memory buffer, as `(offset, length)`.
    /// An empty buffer has no chunks.
    pub fn cuts<'a>(&self, data: &'a [u8]) -> impl Iterator<Item = (usize, usize)> + 'a {
        let p = self.params;
        FastCDC::with_level_and_seed(data, p.min, p.avg, p.max, Normalization::Level1, self.seed)
            .map(|c| (c.offset, c.length))
    }

    /// Chunks of a reader, read in windows of at most `max` bytes, so memory
    /// stays bounded for any file size.
    pub fn stream<R: Read>(&self, reader: R) -> impl Iterator<Item = std::io::Result<Vec<u8>>> {
        let p = self.params;
        StreamCDC::with_level_and_seed(
            reader,
            p.min,
            p.avg,
            p.max,
            Normalization::Level1,
            self.seed,
        )
        .map(|r| {
            r.map(|c| c.data).map_err(|e| match e {
                fastcdc::v2020::Error::IoError(io) => io,
                other => std::io::Error::other(other.to_string()),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn slice_and_stream_agree_and_cover_input() {
        let data = pseudo_random(9 * 1024 * 1024, 3);
        let c = Chunker::new(ChunkerParams::default(), 42);
        let cuts: Vec<_> = c.cuts(&data).collect();
        let mut pos = 0;
        for &(off, len) in &cuts {
            assert_eq!(off, pos);
            assert!(len <= 4 * 1024 * 1024);
            pos += len;
        }
        assert_eq!(pos, data.len());
        let streamed: Vec<Vec<u8>> = c.stream(&data[..]).map(|r| r.unwrap()).collect();
        assert_eq!(streamed.len(), cuts.len());
        for (s, (off, len)) in streamed.iter().zip(&cuts) {
            assert_eq!(&s[..], &data[*off..off + len]);
        }
    }

    #[test]
    fn seed_changes_boundaries() {
        let data = pseudo_random(16 * 1024 * 1024, 5);
        let a: Vec<_> = Chunker::new(ChunkerParams::default(), 1)
            .cuts(&data)
            .collect();
        let b: Vec<_> = Chunker::new(ChunkerParams::default(), 2)
            .cuts(&data)
            .collect();
        assert!(a.len() > 2);
        assert_ne!(a, b);
    }

    #[test]
    fn insert_shifts_few_chunks() {
        let data = pseudo_random(16 * 1024 * 1024, 9);
        let c = Chunker::new(ChunkerParams::default(), 7);
        let before: std::collections::HashSet<&[u8]> =
            c.cuts(&data).map(|(o, l)| &data[o..o + l]).collect();
        let mut edited = data.clone();
        edited.splice(5_000_000..5_000_000, b"an insertion".iter().copied());
        let after: Vec<&[u8]> = c.cuts(&edited).map(|(o, l)| &edited[o..o + l]).collect();
        let changed = after.iter().filter(|c| !before.contains(*c)).count();
        assert!(changed <= 2, "{changed} of {} chunks changed", after.len());
    }
}
