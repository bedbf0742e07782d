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

    /// Whether the cut `(off, n)` that [`Chunker::cuts`] gave for a buffer of
    /// `len` bytes, the part of a file read so far, is where a pass over the
    /// whole file cuts too. FastCDC cuts at the first place from `min` where
    /// a rolling hash of the bytes before it matches, or at `max`, so a cut
    /// found inside the buffer depends on nothing after it; only a chunk
    /// that runs to the buffer's end short of `max` may end elsewhere once
    /// more is read. The end of the file is always a cut.
    pub fn cut_is_final(&self, (off, n): (usize, usize), len: usize) -> bool {
        off + n < len || n == self.params.max as usize
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

    /// Reading a file in windows a little larger than `max`, keeping what
    /// follows the last final cut for the next window, cuts it where one
    /// pass over all of it does.
    #[test]
    fn final_cuts_of_windows_are_those_of_one_pass() {
        let params = ChunkerParams {
            min: 2 * 1024,
            avg: 8 * 1024,
            max: 32 * 1024,
        };
        for seed in [1, 2, 3] {
            let c = Chunker::new(params, seed);
            // Noise with runs of zeros, so that some chunks end at `max`.
            let mut data = pseudo_random(1024 * 1024, seed);
            data[300_000..400_000].fill(0);
            let whole: Vec<(usize, usize)> = c.cuts(&data).collect();
            assert!(whole.iter().any(|&(_, n)| n == params.max as usize));
            // Windows larger than `max`, and smaller ones that double (up
            // to a quarter over `max`) when no cut in them is final, as the
            // backup reads large files.
            let largest = (params.max + params.max / 4) as usize;
            for first in [33 * 1024, 40 * 1024, 64 * 1024 + 7, 16 * 1024, 5 * 1024 + 3] {
                let (mut got, mut start, mut window, mut grown) = (Vec::new(), 0, first, 0);
                while start < data.len() {
                    let end = (start + window).min(data.len());
                    let eof = end == data.len();
                    let buf = &data[start..end];
                    let mut used = 0;
                    for cut in c.cuts(buf) {
                        if !(eof || c.cut_is_final(cut, buf.len())) {
                            break;
                        }
                        got.push((start + cut.0, cut.1));
                        used = cut.0 + cut.1;
                    }
                    if used == 0 {
                        assert!(window < largest, "a window larger than max makes progress");
                        window = (window * 2).min(largest);
                        grown += 1;
                    }
                    start += used;
                }
                assert_eq!(got, whole, "seed {seed}, first window {first}");
                if first < params.max as usize {
                    assert!(grown > 0, "some chunk was longer than {first}");
                }
            }
        }
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
