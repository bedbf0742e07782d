//! Storage audits: a peer proves it still holds a fragment by answering a few
//! random byte ranges with BLAKE3 verified-streaming (bao) slices, and the
//! owner checks each answer against the fragment id alone.
//!
//! This works because a fragment id is the plain BLAKE3 hash of its bytes
//! ([`FragmentId::of`]), and BLAKE3 is a Merkle tree over 1 KiB chunks whose
//! root is exactly what bao verifies against. A slice holds the chunks that
//! cover the range plus the sibling hashes on their path to the root.
//!
//! The owner picks the ranges ([`pick_ranges`]), the peer answers with
//! [`prove`], the owner checks each proof with [`verify`]. The peer rebuilds
//! the tree from the bytes it holds each time, so a single damaged byte
//! anywhere in its copy changes the root and fails every proof; a peer that
//! kept the tree but dropped chunks fails when a range lands on one.
//!
//! Proof format, one proof per range (all parts are bao combined-encoding
//! slices, which start with the fragment length as u64 LE):
//!
//! ```text
//! proof = slice(offset, len) | slice(fragment_len, 0)
//!                              ^ only when the first slice does not hold
//!                                the fragment's final chunk
//! ```
//!
//! Bao authenticates the length header only through the final chunk, so a
//! slice from the middle of a fragment would still verify with a tampered
//! length (its bytes would be right, but the proof would not be
//! tamper-evident). The second slice carries the final chunk, so every byte
//! of a proof is checked.

use std::io::{self, Cursor, Read, Seek, SeekFrom};

use serde::{Deserialize, Serialize};
use trove_core::FragmentId;

/// At most this many ranges per request, so one request cannot make a peer
/// do unbounded work.
pub const MAX_AUDIT_RANGES: usize = 16;
/// At most this many bytes per range: an audit samples, it does not download.
pub const MAX_AUDIT_RANGE_LEN: u64 = 64 * 1024;

/// BLAKE3's (and so bao's) chunk size.
const CHUNK_LEN: u64 = 1024;
/// Bytes of the length header that starts every bao slice.
const LEN_HEADER: usize = 8;

/// A byte range of a fragment to prove.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRange {
    /// First byte of the range.
    pub offset: u64,
    /// Length in bytes, at least 1; the part past the fragment's end is
    /// clipped.
    pub len: u64,
}

impl AuditRange {
    fn is_valid(&self) -> bool {
        self.len > 0 && self.offset.checked_add(self.len).is_some()
    }
}

/// Why a proof was rejected. Anything but [`AuditError::InvalidRange`] means
/// the peer failed the audit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The owner asked for an empty range or one past 2^64 bytes: a bug on
    /// the owner's side, not the peer's.
    #[error("audit range of {len} bytes at offset {offset} is empty or runs past 2^64 bytes")]
    InvalidRange {
        /// The range's first byte.
        offset: u64,
        /// The range's length.
        len: u64,
    },
    /// A chunk or tree hash does not lead to the fragment id: the peer's
    /// copy is damaged, or it does not hold the fragment.
    #[error(
        "proof does not match the fragment id (the peer's copy is damaged or gone; \
         `trove check` shows what is still recoverable)"
    )]
    Mismatch,
    /// The proof ends before it is complete.
    #[error("truncated proof: it ends before the range is proven")]
    Truncated,
    /// Bytes follow the end of a valid proof: not a proof this code makes.
    #[error("malformed proof: {extra} unexpected bytes after its end")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
}

/// Answer an audit: one proof per range, for the fragment read from
/// `fragment`. Streams the fragment once to build the bao tree (kept in
/// memory: 64 bytes per KiB of fragment) and then reads only the chunks each
/// range needs. Refuses with [`io::ErrorKind::InvalidInput`] more than
/// [`MAX_AUDIT_RANGES`] ranges, or a range that is empty, longer than
/// [`MAX_AUDIT_RANGE_LEN`] or past 2^64 bytes.
pub fn prove<R: Read + Seek>(mut fragment: R, ranges: &[AuditRange]) -> io::Result<Vec<Vec<u8>>> {
    check_request(ranges)?;
    fragment.seek(SeekFrom::Start(0))?;
    let mut encoder = bao::encode::Encoder::new_outboard(Cursor::new(Vec::new()));
    let fragment_len = io::copy(&mut fragment, &mut encoder)?;
    encoder.finalize()?;
    let outboard = encoder.into_inner().into_inner();
    ranges
        .iter()
        .map(|&range| {
            let mut proof = Vec::new();
            extract(
                &mut fragment,
                &outboard,
                range.offset,
                range.len,
                &mut proof,
            )?;
            if !reaches_final_chunk(fragment_len, range) {
                extract(&mut fragment, &outboard, fragment_len, 0, &mut proof)?;
            }
            Ok(proof)
        })
        .collect()
}

fn check_request(ranges: &[AuditRange]) -> io::Result<()> {
    let refuse = |why: String| Err(io::Error::new(io::ErrorKind::InvalidInput, why));
    if ranges.len() > MAX_AUDIT_RANGES {
        return refuse(format!(
            "audit asks for {} ranges, at most {MAX_AUDIT_RANGES} are answered",
            ranges.len()
        ));
    }
    for r in ranges {
        if !r.is_valid() || r.len > MAX_AUDIT_RANGE_LEN {
            return refuse(format!(
                "audit range of {} bytes at offset {} is empty, longer than \
                 {MAX_AUDIT_RANGE_LEN} bytes or past 2^64 bytes",
                r.len, r.offset
            ));
        }
    }
    Ok(())
}

/// Append bao's slice of `[start, start + len)` to `out`.
fn extract<R: Read + Seek>(
    fragment: &mut R,
    outboard: &[u8],
    start: u64,
    len: u64,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    // The extractor assumes both readers start at position 0 and only seeks
    // when it skips ahead.
    fragment.seek(SeekFrom::Start(0))?;
    bao::encode::SliceExtractor::new_outboard(fragment, Cursor::new(outboard), start, len)
        .read_to_end(out)?;
    Ok(())
}

/// Whether bao's slice of `range` already holds the final chunk of a
/// fragment of `fragment_len` bytes (and so authenticates the length).
fn reaches_final_chunk(fragment_len: u64, range: AuditRange) -> bool {
    // A slice starting at or past the end consists of the final chunk.
    if range.offset >= fragment_len {
        return true;
    }
    let last_byte = range.offset.saturating_add(range.len).min(fragment_len) - 1;
    last_byte / CHUNK_LEN == (fragment_len - 1) / CHUNK_LEN
}

/// Check a proof for `range` of the fragment `id`; returns the range's bytes
/// (clipped at the fragment's end, so empty for a range past it). Needs
/// nothing but the id: every chunk, tree hash and the fragment length are
/// checked against it.
pub fn verify(id: &FragmentId, range: AuditRange, proof: &[u8]) -> Result<Vec<u8>, AuditError> {
    if !range.is_valid() {
        return Err(AuditError::InvalidRange {
            offset: range.offset,
            len: range.len,
        });
    }
    let hash = bao::Hash::from(id.0);
    let claimed_len = len_header(proof)?;
    let mut bytes = Vec::new();
    let mut decoder = bao::decode::SliceDecoder::new(proof, &hash, range.offset, range.len);
    decoder.read_to_end(&mut bytes).map_err(decode_error)?;
    let mut rest = decoder.into_inner();
    if !reaches_final_chunk(claimed_len, range) {
        // The tail must vouch for the same length the first slice used.
        if len_header(rest)? != claimed_len {
            return Err(AuditError::Mismatch);
        }
        let mut tail = bao::decode::SliceDecoder::new(rest, &hash, claimed_len, 0);
        tail.read_to_end(&mut Vec::new()).map_err(decode_error)?;
        rest = tail.into_inner();
    }
    if !rest.is_empty() {
        return Err(AuditError::TrailingBytes { extra: rest.len() });
    }
    Ok(bytes)
}

fn len_header(slice: &[u8]) -> Result<u64, AuditError> {
    slice
        .first_chunk::<LEN_HEADER>()
        .map(|h| u64::from_le_bytes(*h))
        .ok_or(AuditError::Truncated)
}

/// Bao reports a short slice as `UnexpectedEof` and a wrong hash as
/// `InvalidData`; a slice in memory fails in no other way.
fn decode_error(e: io::Error) -> AuditError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        AuditError::Truncated
    } else {
        AuditError::Mismatch
    }
}

/// `count` random ranges of `range_len` bytes inside a fragment of
/// `fragment_len` bytes (the owner knows it: `FRAGMENT_HEADER_LEN +
/// erasure::shard_len(pack_len, k)`), the last clipped at the end. Clamped
/// to what [`prove`] answers ([`MAX_AUDIT_RANGES`], [`MAX_AUDIT_RANGE_LEN`]);
/// empty when `fragment_len` or `range_len` is 0, as there is nothing to
/// sample.
pub fn pick_ranges(
    fragment_len: u64,
    count: usize,
    range_len: u64,
    rng: &mut impl rand::Rng,
) -> Vec<AuditRange> {
    let range_len = range_len.min(MAX_AUDIT_RANGE_LEN);
    if fragment_len == 0 || range_len == 0 {
        return Vec::new();
    }
    (0..count.min(MAX_AUDIT_RANGES))
        .map(|_| {
            let offset = rng.gen_range(0..fragment_len);
            AuditRange {
                offset,
                len: range_len.min(fragment_len - offset),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;

    fn fragment(len: usize, seed: u8) -> (FragmentId, Vec<u8>) {
        let bytes: Vec<u8> = (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ (i >> 8) as u8 ^ seed)
            .collect();
        (FragmentId::of(&bytes), bytes)
    }

    fn range(offset: u64, len: u64) -> AuditRange {
        AuditRange { offset, len }
    }

    fn prove_one(bytes: &[u8], r: AuditRange) -> Vec<u8> {
        prove(Cursor::new(bytes), &[r]).unwrap().remove(0)
    }

    /// The bytes `verify` must return for `r`.
    fn expected(bytes: &[u8], r: AuditRange) -> &[u8] {
        let start = (r.offset as usize).min(bytes.len());
        let end = (r.offset + r.len).min(bytes.len() as u64) as usize;
        &bytes[start..end]
    }

    #[test]
    fn honest_proofs_verify() {
        let cases: &[(usize, &[AuditRange])] = &[
            (
                10_000,
                &[
                    range(0, 100),          // start
                    range(5_000, 300),      // middle
                    range(1_000, 48),       // straddles the first chunk boundary
                    range(2_047, 2),        // one byte either side of a boundary
                    range(3_072, 1_024),    // exactly one chunk
                    range(9_990, 100),      // tail, clipped to 10 bytes
                    range(9_216, 784),      // exactly the final partial chunk
                    range(0, 10_000),       // everything
                    range(20_000, 5),       // past the end: empty
                    range(u64::MAX - 1, 1), // far past the end: empty
                ],
            ),
            (500, &[range(0, 500), range(100, 50), range(490, 64)]), // under one chunk
            (1_024, &[range(0, 1), range(1_023, 1), range(1_024, 1)]), // exactly one chunk
            (0, &[range(0, 1), range(0, 1_024)]),                    // empty fragment
        ];
        for &(len, ranges) in cases {
            let (id, bytes) = fragment(len, 7);
            let proofs = prove(Cursor::new(&bytes), ranges).unwrap();
            for (r, proof) in ranges.iter().zip(&proofs) {
                assert_eq!(
                    verify(&id, *r, proof).as_deref(),
                    Ok(expected(&bytes, *r)),
                    "fragment of {len} bytes, {r:?}"
                );
            }
        }
    }

    #[test]
    fn any_changed_fragment_byte_fails_the_proof() {
        let (id, bytes) = fragment(10_000, 1);
        let r = range(2_100, 100); // inside chunk 2 (2048..3072)
        for at in [
            2_150, // inside the range
            2_050, // outside the range, same chunk
            3_000, // outside the range, same chunk
            0,     // another chunk
            9_999, // the final chunk
        ] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x01;
            let proof = prove_one(&damaged, r);
            assert_eq!(
                verify(&id, r, &proof),
                Err(AuditError::Mismatch),
                "byte {at}"
            );
        }
        // A fragment shorter or longer by one byte fails too.
        for damaged in [&bytes[..9_999], &[&bytes[..], &[0]].concat()[..]] {
            assert_eq!(
                verify(&id, r, &prove_one(damaged, r)),
                Err(AuditError::Mismatch)
            );
        }
    }

    #[test]
    fn every_flipped_proof_byte_is_rejected() {
        let (id, bytes) = fragment(10_000, 2);
        for r in [range(2_100, 100), range(9_500, 600), range(0, 2_000)] {
            let proof = prove_one(&bytes, r);
            for i in 0..proof.len() {
                for bit in [0x01, 0x80] {
                    let mut bad = proof.clone();
                    bad[i] ^= bit;
                    assert!(verify(&id, r, &bad).is_err(), "{r:?}: byte {i} ^ {bit:#x}");
                }
            }
        }
    }

    #[test]
    fn length_header_is_authenticated_for_ranges_in_the_middle() {
        // 10_000 and 10_001 bytes both make 10 chunks, so bao alone accepts a
        // slice of chunk 2 whose header claims either length.
        let (id, bytes) = fragment(10_000, 3);
        let r = range(2_100, 100);
        let proof = prove_one(&bytes, r);
        let mut bare = proof[..LEN_HEADER + 4 * 64 + 1_024].to_vec(); // header, 4 parents, chunk 2
        bare[0] ^= 0x01; // 10_000 -> 10_001
        let mut out = Vec::new();
        bao::decode::SliceDecoder::new(&bare[..], &bao::Hash::from(id.0), r.offset, r.len)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, expected(&bytes, r));
        // The final chunk that follows in our proofs catches it.
        assert_eq!(verify(&id, r, &bare), Err(AuditError::Truncated));
        let mut bad = proof.clone();
        bad[0] ^= 0x01;
        assert_eq!(verify(&id, r, &bad), Err(AuditError::Mismatch));
    }

    #[test]
    fn wrong_id_truncation_and_trailing_bytes_are_rejected() {
        let (id, bytes) = fragment(5_000, 4);
        let r = range(1_500, 1_000);
        let proof = prove_one(&bytes, r);
        let (other, _) = fragment(5_000, 5);
        assert_eq!(verify(&other, r, &proof), Err(AuditError::Mismatch));
        for cut in [0, 3, LEN_HEADER, proof.len() / 2, proof.len() - 1] {
            assert_eq!(
                verify(&id, r, &proof[..cut]),
                Err(AuditError::Truncated),
                "cut at {cut}"
            );
        }
        let mut long = proof.clone();
        long.push(0);
        assert_eq!(
            verify(&id, r, &long),
            Err(AuditError::TrailingBytes { extra: 1 })
        );
        // A proof for another range of the same fragment does not pass.
        assert!(verify(&id, range(3_000, 1_000), &proof).is_err());
    }

    #[test]
    fn limits_are_enforced() {
        let (id, bytes) = fragment(200_000, 6);
        let max = vec![range(0, MAX_AUDIT_RANGE_LEN); MAX_AUDIT_RANGES];
        assert_eq!(
            prove(Cursor::new(&bytes), &max).unwrap().len(),
            MAX_AUDIT_RANGES
        );
        let refused = [
            vec![range(0, 1); MAX_AUDIT_RANGES + 1],
            vec![range(0, MAX_AUDIT_RANGE_LEN + 1)],
            vec![range(0, 0)],
            vec![range(u64::MAX, 1)],
        ];
        for ranges in refused {
            let err = prove(Cursor::new(&bytes), &ranges).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{ranges:?}");
        }
        let proof = prove_one(&bytes, range(0, 1));
        for r in [range(0, 0), range(u64::MAX, 1)] {
            assert_eq!(
                verify(&id, r, &proof),
                Err(AuditError::InvalidRange {
                    offset: r.offset,
                    len: r.len
                })
            );
        }
    }

    #[test]
    fn picked_ranges_lie_inside_the_fragment() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let ranges = pick_ranges(5_000, 200, 1_024, &mut rng);
        assert_eq!(ranges.len(), MAX_AUDIT_RANGES);
        for _ in 0..50 {
            for r in pick_ranges(5_000, 4, 1_024, &mut rng) {
                assert!(r.offset < 5_000 && r.len >= 1 && r.offset + r.len <= 5_000);
                assert!(r.len == 1_024 || r.offset + r.len == 5_000, "{r:?}");
            }
        }
        assert!(pick_ranges(10, 3, 1_024, &mut rng)
            .iter()
            .all(|r| r.offset + r.len == 10));
        let big = pick_ranges(1 << 30, 1, u64::MAX, &mut rng);
        assert!(big[0].len <= MAX_AUDIT_RANGE_LEN);
        assert!(pick_ranges(0, 4, 1_024, &mut rng).is_empty());
        assert!(pick_ranges(5_000, 4, 0, &mut rng).is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn random_ranges_verify_and_any_flipped_proof_byte_fails(
            len in 0usize..12_000,
            seed: u8,
            start in 0.0f64..1.1,
            range_len in 1u64..3_000,
            flip in any::<prop::sample::Index>(),
            bit in 0u32..8,
        ) {
            let (id, bytes) = fragment(len, seed);
            let r = range((len as f64 * start) as u64, range_len);
            let proof = prove_one(&bytes, r);
            let verified = verify(&id, r, &proof);
            prop_assert_eq!(verified.as_deref(), Ok(expected(&bytes, r)));
            let mut bad = proof.clone();
            bad[flip.index(proof.len())] ^= 1 << bit;
            prop_assert!(verify(&id, r, &bad).is_err());
        }
    }
}
