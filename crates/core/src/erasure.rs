//! Reed-Solomon erasure coding of packs into `k` data + `m` parity
//! fragments (reed-solomon-simd). A fragment carries a small header so any
//! `k` of them, from any peers, rebuild the pack without other metadata.
//!
//! ```text
//! "TRVF" | version u8 | k u8 | m u8 | index u8 | pack id [32] | pack_len u64 LE | shard_len u32 LE | shard
//! ```

use crate::ids::{FragmentId, PackId};

pub const FRAGMENT_MAGIC: &[u8; 4] = b"TRVF";
pub const FRAGMENT_VERSION: u8 = 1;
pub const FRAGMENT_HEADER_LEN: usize = 4 + 1 + 1 + 1 + 1 + 32 + 8 + 4;

/// A fragment's parsed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentHeader {
    pub k: u8,
    pub m: u8,
    /// 0..k are data shards, k..k+m parity.
    pub index: u8,
    pub pack: PackId,
    pub pack_len: u64,
    pub shard_len: u32,
}

/// One encoded fragment and its id.
#[derive(Debug, Clone)]
pub struct Fragment {
    pub id: FragmentId,
    pub index: u8,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErasureError {
    #[error("redundancy {k}+{m} is not supported (k >= 1, k+m <= 255)")]
    Unsupported { k: u8, m: u8 },
    #[error("fragment is malformed: {0}")]
    Malformed(&'static str),
    #[error("fragments disagree about their pack ({0})")]
    Mismatch(&'static str),
    #[error("{have} distinct fragments, {need} needed to rebuild the pack")]
    TooFew { have: usize, need: usize },
    #[error("reed-solomon: {0}")]
    Codec(String),
    #[error("rebuilt pack does not match its id")]
    PackHash,
}

impl FragmentHeader {
    pub fn parse(bytes: &[u8]) -> Result<Self, ErasureError> {
        if bytes.len() < FRAGMENT_HEADER_LEN {
            return Err(ErasureError::Malformed("shorter than its header"));
        }
        if &bytes[..4] != FRAGMENT_MAGIC {
            return Err(ErasureError::Malformed("bad magic"));
        }
        if bytes[4] != FRAGMENT_VERSION {
            return Err(ErasureError::Malformed("unknown version"));
        }
        let h = FragmentHeader {
            k: bytes[5],
            m: bytes[6],
            index: bytes[7],
            pack: PackId(bytes[8..40].try_into().expect("32 bytes")),
            pack_len: u64::from_le_bytes(bytes[40..48].try_into().expect("8 bytes")),
            shard_len: u32::from_le_bytes(bytes[48..52].try_into().expect("4 bytes")),
        };
        if h.k == 0 || h.index as usize >= h.k as usize + h.m as usize {
            return Err(ErasureError::Malformed("index out of range"));
        }
        if bytes.len() != FRAGMENT_HEADER_LEN + h.shard_len as usize {
            return Err(ErasureError::Malformed("length differs from its header"));
        }
        if h.pack_len > h.shard_len as u64 * h.k as u64 {
            return Err(ErasureError::Malformed("pack longer than its shards"));
        }
        Ok(h)
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(FRAGMENT_MAGIC);
        out.extend_from_slice(&[FRAGMENT_VERSION, self.k, self.m, self.index]);
        out.extend_from_slice(self.pack.as_bytes());
        out.extend_from_slice(&self.pack_len.to_le_bytes());
        out.extend_from_slice(&self.shard_len.to_le_bytes());
    }
}

/// Shard length for a pack: ceil(len / k), rounded up to even (the codec
/// works on 16-bit symbols), at least 2.
pub fn shard_len(pack_len: usize, k: u8) -> usize {
    let s = pack_len.div_ceil(k as usize).max(2);
    s + (s & 1)
}

/// Encode a pack into `k + m` fragments, each in a buffer of its own.
pub fn encode(pack: &PackId, bytes: &[u8], k: u8, m: u8) -> Result<Vec<Fragment>, ErasureError> {
    let encoded = EncodedPack::new(pack, bytes, k, m)?;
    Ok((0..encoded.count())
        .map(|i| Fragment {
            id: encoded.ids[i],
            index: i as u8,
            bytes: encoded.parts(i).concat(),
        })
        .collect())
}

/// Zero bytes that end the last data shards: with `slen` = ⌈len / k⌉
/// rounded up to even, the shards overrun the pack by less than `2k`
/// bytes in all, or by 2 for a pack shorter than that.
static PADDING: [u8; 2 * 256] = [0; 2 * 256];

/// A pack's fragments without a copy of its data: data fragment `i` is its
/// header, the pack's bytes `i * slen..` up to `slen` of them, and zeros if
/// the pack ends first; parity fragments are buffers of their own. An
/// upload stores the data fragments from the pack itself (on 200,000 small
/// files, copies of the data shards beside the pack were 8 MiB of a
/// backup's peak).
#[derive(Debug)]
pub struct EncodedPack<'a> {
    pack: &'a [u8],
    k: usize,
    slen: usize,
    headers: Vec<[u8; FRAGMENT_HEADER_LEN]>,
    /// Parity fragments, header included.
    parity: Vec<Vec<u8>>,
    /// Each fragment's id, by index.
    pub ids: Vec<FragmentId>,
}

impl<'a> EncodedPack<'a> {
    /// Encode the pack `bytes` (named `pack`) into `k + m` fragments.
    pub fn new(pack: &PackId, bytes: &'a [u8], k: u8, m: u8) -> Result<Self, ErasureError> {
        Self::reusing(pack, bytes, k, m, Vec::new())
    }

    /// [`EncodedPack::new`], writing the parity fragments into `spare`
    /// buffers (from [`EncodedPack::into_spare`]) where there are any: a
    /// fresh buffer is pages the kernel must zero and map as it is first
    /// written, 4 MiB of a 4+2 pack of 8 MiB.
    pub fn reusing(
        pack: &PackId,
        bytes: &'a [u8],
        k: u8,
        m: u8,
        mut spare: Vec<Vec<u8>>,
    ) -> Result<Self, ErasureError> {
        if k == 0 || k as usize + m as usize > 255 {
            return Err(ErasureError::Unsupported { k, m });
        }
        let slen = shard_len(bytes.len(), k);
        let headers: Vec<[u8; FRAGMENT_HEADER_LEN]> = (0..k as usize + m as usize)
            .map(|i| {
                let mut h = Vec::with_capacity(FRAGMENT_HEADER_LEN);
                FragmentHeader {
                    k,
                    m,
                    index: i as u8,
                    pack: *pack,
                    pack_len: bytes.len() as u64,
                    shard_len: slen as u32,
                }
                .write(&mut h);
                h.try_into().expect("a header is FRAGMENT_HEADER_LEN bytes")
            })
            .collect();
        // Each parity fragment starts with its header; its shard is
        // appended stripe by stripe.
        let mut parity: Vec<Vec<u8>> = headers[k as usize..]
            .iter()
            .map(|h| {
                let mut f = spare.pop().unwrap_or_default();
                f.clear();
                f.reserve_exact(FRAGMENT_HEADER_LEN + slen);
                f.extend_from_slice(h);
                f
            })
            .collect();
        if m > 0 {
            encode_parity(bytes, k as usize, slen, &mut parity)?;
        }
        let mut encoded = Self {
            pack: bytes,
            k: k as usize,
            slen,
            headers,
            parity,
            ids: Vec::new(),
        };
        encoded.ids = (0..encoded.count())
            .map(|i| FragmentId::of_parts(&encoded.parts(i)))
            .collect();
        Ok(encoded)
    }

    /// The parity fragments' buffers, for the next pack's
    /// [`EncodedPack::reusing`].
    pub fn into_spare(self) -> Vec<Vec<u8>> {
        self.parity
    }

    /// How many fragments there are (`k + m`).
    pub fn count(&self) -> usize {
        self.headers.len()
    }

    /// The length of every fragment.
    pub fn fragment_len(&self) -> usize {
        FRAGMENT_HEADER_LEN + self.slen
    }

    /// Fragment `i`'s bytes, in order: its header, its shard's bytes and
    /// its padding (a parity fragment is all in its first part).
    pub fn parts(&self, i: usize) -> [&[u8]; 3] {
        if i >= self.k {
            return [&self.parity[i - self.k], &[], &[]];
        }
        let data = data_shard(self.pack, i, self.slen);
        let pad = self.slen - data.len();
        [&self.headers[i], data, &PADDING[..pad]]
    }
}

/// The pack's bytes in data shard `i` (short or empty past its end).
fn data_shard(pack: &[u8], i: usize, slen: usize) -> &[u8] {
    let start = (i * slen).min(pack.len());
    &pack[start..(start + slen).min(pack.len())]
}

/// Parity is coded in stripes of this many bytes of each shard: the
/// encoder's work space stays small and in cache.
const STRIPE: usize = 64 * 1024;

/// Missing shards are decoded in larger stripes: each decode first
/// evaluates the erasure locator over the whole field (65,536 points)
/// whatever the stripe's length, which at 64 KiB stripes was 4% of a
/// restore's CPU (docs/performance.md, twelfth round). The decoder's work
/// space is then about 3 MiB (6 MiB at 256 KiB stripes, for no measurable
/// gain: fourteenth round).
const DECODE_STRIPE: usize = 128 * 1024;

/// The stripes of `stripe` bytes of a shard of `slen` bytes.
fn stripes(slen: usize, stripe: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..slen)
        .step_by(stripe)
        .map(move |start| start..(start + stripe).min(slen))
}

/// One decoder for the process, kept from pack to pack so that each pack
/// rebuilt reuses its work space, not fresh pages. A thread that finds it
/// busy decodes with a decoder of its own, dropped after: the work space
/// kept stays one, however many threads rebuild packs.
static DECODER: std::sync::Mutex<Option<reed_solomon_simd::ReedSolomonDecoder>> =
    std::sync::Mutex::new(None);

fn codec(e: reed_solomon_simd::Error) -> ErasureError {
    ErasureError::Codec(e.to_string())
}

/// The parity shards of the pack `pack` (data shards of `slen` bytes, the
/// last ones padded with zeros), appended to each parity fragment's
/// header, stripe by stripe.
fn encode_parity(
    pack: &[u8],
    k: usize,
    slen: usize,
    parity: &mut [Vec<u8>],
) -> Result<(), ErasureError> {
    let mut coder: Option<reed_solomon_simd::ReedSolomonEncoder> = None;
    // A stripe that runs past the pack's end, padded.
    let mut padded = Vec::new();
    for r in stripes(slen, STRIPE) {
        let m = parity.len();
        let coder = match &mut coder {
            Some(c) => {
                c.reset(k, m, r.len()).map_err(codec)?;
                c
            }
            None => coder
                .insert(reed_solomon_simd::ReedSolomonEncoder::new(k, m, r.len()).map_err(codec)?),
        };
        for i in 0..k {
            let shard = data_shard(pack, i, slen);
            let have = &shard[r.start.min(shard.len())..r.end.min(shard.len())];
            if have.len() == r.len() {
                coder.add_original_shard(have).map_err(codec)?;
            } else {
                padded.clear();
                padded.extend_from_slice(have);
                padded.resize(r.len(), 0);
                coder.add_original_shard(&padded).map_err(codec)?;
            }
        }
        let result = coder.encode().map_err(codec)?;
        for (f, stripe) in parity.iter_mut().zip(result.recovery_iter()) {
            debug_assert_eq!(f.len(), FRAGMENT_HEADER_LEN + r.start);
            f.extend_from_slice(stripe);
        }
    }
    Ok(())
}

/// Rebuild a pack from fragments whose ids the caller has already checked.
/// Any `k` distinct indices suffice; extra ones are ignored. The result is
/// checked against the pack id.
pub fn decode<B: AsRef<[u8]>>(fragments: &[B]) -> Result<Vec<u8>, ErasureError> {
    let (h, by_index) = shards(fragments)?;
    let k = h.k as usize;
    // Data shards go straight into the pack; missing ones are decoded into
    // it stripe by stripe.
    let slen = h.shard_len as usize;
    let mut pack = vec![0u8; k * slen];
    for (&i, &at) in by_index.range(..h.k) {
        let i = i as usize;
        pack[i * slen..(i + 1) * slen].copy_from_slice(shard(fragments[at].as_ref(), 0..slen));
    }
    let missing = missing_data(&by_index, k);
    let mut both = (fragments, pack);
    decode_missing(
        &mut both,
        &by_index,
        &h,
        &missing,
        |(fragments, _), at, r| shard(fragments[at].as_ref(), r),
        |(_, pack), i, r, stripe| {
            pack[i * slen + r.start..i * slen + r.end].copy_from_slice(stripe)
        },
    )?;
    let mut pack = both.1;
    pack.truncate(h.pack_len as usize);
    if PackId::of(&pack) != h.pack {
        return Err(ErasureError::PackHash);
    }
    Ok(pack)
}

/// The fragments' common header and, for each data shard, the position in
/// `fragments` of the first fragment that holds it (none where it is
/// missing); at least `k` distinct indices, or an error.
pub fn data_positions<B: AsRef<[u8]>>(
    fragments: &[B],
) -> Result<(FragmentHeader, Vec<Option<usize>>), ErasureError> {
    let (h, by_index) = shards(fragments)?;
    Ok((h, (0..h.k).map(|i| by_index.get(&i).copied()).collect()))
}

/// The data shards missing from `fragments`, rebuilt in place: each over a
/// parity fragment that is there, stripe by stripe (each stripe of it read
/// before it is overwritten), so that no buffer is needed beyond those the
/// fragments came in. Returns each rebuilt shard's index and the position
/// in `fragments` of the buffer that now holds it after
/// [`FRAGMENT_HEADER_LEN`] bytes (the parity fragment's header, no longer
/// its own). With the data fragments that are there they make the pack,
/// which a caller can use in place instead of [`decode`]'s copy; the pack
/// is not checked here: the caller hashes it. Any `k` distinct indices
/// suffice.
pub fn rebuild_missing_in_place(
    fragments: &mut [Vec<u8>],
) -> Result<Vec<(u8, usize)>, ErasureError> {
    let (h, by_index) = shards(fragments)?;
    let missing = missing_data(&by_index, h.k as usize);
    // At least `k` distinct indices are there, so at least as many parity
    // fragments as missing data shards.
    let over: Vec<usize> = by_index
        .range(h.k..)
        .map(|(_, &at)| at)
        .take(missing.len())
        .collect();
    decode_missing(
        fragments,
        &by_index,
        &h,
        &missing,
        |fragments, at, r| shard(&fragments[at], r),
        |fragments, i, r, stripe| {
            let j = missing.iter().position(|&m| m == i).expect("i is missing");
            fragments[over[j]][FRAGMENT_HEADER_LEN + r.start..FRAGMENT_HEADER_LEN + r.end]
                .copy_from_slice(stripe);
        },
    )?;
    Ok(missing.iter().map(|&i| i as u8).zip(over).collect())
}

/// Bytes `r` of the shard of `fragment`.
fn shard(fragment: &[u8], r: std::ops::Range<usize>) -> &[u8] {
    &fragment[FRAGMENT_HEADER_LEN + r.start..FRAGMENT_HEADER_LEN + r.end]
}

/// The data indices below `k` that `by_index` lacks.
fn missing_data(by_index: &std::collections::BTreeMap<u8, usize>, k: usize) -> Vec<usize> {
    (0..k)
        .filter(|i| !by_index.contains_key(&(*i as u8)))
        .collect()
}

/// The fragments' common header and, by fragment index, the position of
/// the first fragment with that index; at least `k` distinct indices, or
/// an error.
fn shards<B: AsRef<[u8]>>(
    fragments: &[B],
) -> Result<(FragmentHeader, std::collections::BTreeMap<u8, usize>), ErasureError> {
    let mut first: Option<FragmentHeader> = None;
    let mut by_index: std::collections::BTreeMap<u8, usize> = Default::default();
    for (at, f) in fragments.iter().enumerate() {
        let h = FragmentHeader::parse(f.as_ref())?;
        match &first {
            None => first = Some(h),
            Some(p) => {
                if (p.k, p.m, p.pack, p.pack_len, p.shard_len)
                    != (h.k, h.m, h.pack, h.pack_len, h.shard_len)
                {
                    return Err(ErasureError::Mismatch("k, m, pack id or length"));
                }
            }
        }
        by_index.entry(h.index).or_insert(at);
    }
    let h = first.ok_or(ErasureError::TooFew { have: 0, need: 1 })?;
    if by_index.len() < h.k as usize {
        return Err(ErasureError::TooFew {
            have: by_index.len(),
            need: h.k as usize,
        });
    }
    Ok((h, by_index))
}

/// Decode the data shards `missing` (none: nothing to do) of fragments
/// with header `h`, stripe by stripe: `shard` reads bytes of the shard at
/// a position of `by_index` (fragment index to position) out of `src`, and
/// `put` hands each decoded stripe (shard index, range in the shard,
/// bytes) to `src`, once every shard's bytes of that stripe are read.
fn decode_missing<S: ?Sized>(
    src: &mut S,
    by_index: &std::collections::BTreeMap<u8, usize>,
    h: &FragmentHeader,
    missing: &[usize],
    shard: impl for<'a> Fn(&'a S, usize, std::ops::Range<usize>) -> &'a [u8],
    mut put: impl FnMut(&mut S, usize, std::ops::Range<usize>, &[u8]),
) -> Result<(), ErasureError> {
    if missing.is_empty() {
        return Ok(());
    }
    let (k, m, slen) = (h.k as usize, h.m as usize, h.shard_len as usize);
    let mut kept = DECODER.try_lock().ok();
    let mut own = None;
    let d = match &mut kept {
        Some(kept) => &mut **kept,
        None => &mut own,
    };
    for r in stripes(slen, DECODE_STRIPE) {
        let coder = match d {
            Some(c) => {
                c.reset(k, m, r.len()).map_err(codec)?;
                c
            }
            None => {
                d.insert(reed_solomon_simd::ReedSolomonDecoder::new(k, m, r.len()).map_err(codec)?)
            }
        };
        for (&i, &at) in by_index {
            let (i, part) = (i as usize, shard(src, at, r.clone()));
            if i < k {
                coder.add_original_shard(i, part)
            } else {
                coder.add_recovery_shard(i - k, part)
            }
            .map_err(codec)?;
        }
        let restored = coder.decode().map_err(codec)?;
        for &i in missing {
            let stripe = restored
                .restored_original(i)
                .ok_or(ErasureError::Codec("shard not restored".into()))?;
            put(src, i, r.clone(), stripe);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fragments told as parts over the pack are whole fragments: each
    /// part list parses, hashes to its id, and any `k` of them decode, for
    /// packs that end inside a shard, on a shard's end, before the last
    /// shard, and that are empty.
    #[test]
    fn fragments_in_parts_over_the_pack_decode_and_hash_to_their_ids() {
        for (len, k, m) in [
            (300_001, 4, 2),
            (8, 4, 2),
            (0, 3, 1),
            (131_072 * 3, 3, 2),
            (5, 7, 0),
        ] {
            let bytes: Vec<u8> = (0..len as u32).map(|i| (i * 7 % 251) as u8).collect();
            let id = PackId::of(&bytes);
            let encoded = EncodedPack::new(&id, &bytes, k, m).unwrap();
            let whole: Vec<Vec<u8>> = (0..encoded.count())
                .map(|i| encoded.parts(i).concat())
                .collect();
            for (i, f) in whole.iter().enumerate() {
                assert_eq!(f.len(), encoded.fragment_len(), "{len}: fragment {i}");
                assert_eq!(FragmentId::of(f), encoded.ids[i], "{len}: fragment {i}");
                assert_eq!(FragmentHeader::parse(f).unwrap().index as usize, i);
            }
            let last_k: Vec<&Vec<u8>> = whole.iter().skip(m as usize).collect();
            assert_eq!(decode(&last_k).unwrap(), bytes, "{len} bytes, {k}+{m}");
        }
    }

    #[test]
    fn missing_shards_rebuilt_in_place_are_those_of_the_pack() {
        let bytes: Vec<u8> = (0..300_001u32).map(|i| (i * 13 % 241) as u8).collect();
        let frags = encode(&PackId::of(&bytes), &bytes, 4, 2).unwrap();
        // Parity first, a data fragment given twice: 0 and 2 are rebuilt
        // over the two parity fragments, and nothing else is touched.
        let mut rest: Vec<Vec<u8>> = [5, 1, 4, 3, 1]
            .iter()
            .map(|&i| frags[i].bytes.clone())
            .collect();
        let before = rest.clone();
        let rebuilt = rebuild_missing_in_place(&mut rest).unwrap();
        assert_eq!(rebuilt, [(0, 2), (2, 0)]);
        for &(i, at) in &rebuilt {
            assert_eq!(rest[at].len(), frags[i as usize].bytes.len());
            assert_eq!(
                &rest[at][FRAGMENT_HEADER_LEN..],
                &frags[i as usize].bytes[FRAGMENT_HEADER_LEN..]
            );
        }
        assert_eq!(rest[1..2], before[1..2]);
        assert_eq!(rest[3..], before[3..]);
        assert!(rebuild_missing_in_place(&mut rest[..2].to_vec()).is_err());
        let mut all: Vec<Vec<u8>> = frags.iter().map(|f| f.bytes.clone()).collect();
        assert!(rebuild_missing_in_place(&mut all).unwrap().is_empty());
        assert!(all.iter().zip(&frags).all(|(a, f)| *a == f.bytes));
    }

    #[test]
    fn any_k_of_k_plus_m_rebuild() {
        let bytes: Vec<u8> = (0..100_003u32).map(|i| (i * 7 % 251) as u8).collect();
        let id = PackId::of(&bytes);
        let frags = encode(&id, &bytes, 4, 2).unwrap();
        assert_eq!(frags.len(), 6);
        for f in &frags {
            assert_eq!(f.id, FragmentId::of(&f.bytes));
        }
        for skip_a in 0..6 {
            for skip_b in skip_a + 1..6 {
                let rest: Vec<&[u8]> = frags
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != skip_a && *i != skip_b)
                    .map(|(_, f)| &f.bytes[..])
                    .collect();
                assert_eq!(decode(&rest).unwrap(), bytes);
            }
        }
        let three: Vec<&[u8]> = frags[..3].iter().map(|f| &f.bytes[..]).collect();
        assert_eq!(
            decode(&three),
            Err(ErasureError::TooFew { have: 3, need: 4 })
        );
    }

    /// Parity written into the buffers of packs encoded before (longer,
    /// shorter, or holding other bytes) is that of a fresh encoding.
    #[test]
    fn parity_in_reused_buffers_equals_fresh_parity() {
        let mut spare = vec![vec![0xAA; 3 * STRIPE + 17], Vec::new()];
        for len in [9 * STRIPE + 5, 100_003, 2, 4 * STRIPE] {
            let bytes: Vec<u8> = (0..len as u32).map(|i| (i * 7 % 251) as u8).collect();
            let id = PackId::of(&bytes);
            let fresh = EncodedPack::new(&id, &bytes, 4, 2).unwrap();
            let reused = EncodedPack::reusing(&id, &bytes, 4, 2, spare).unwrap();
            assert_eq!(reused.ids, fresh.ids, "len {len}");
            for i in 4..6 {
                assert_eq!(reused.parts(i), fresh.parts(i), "len {len} fragment {i}");
            }
            spare = reused.into_spare();
        }
    }

    /// Parity coded stripe by stripe is byte for byte what one pass over
    /// whole shards gives (fragments already stored must still decode), for
    /// shards of one stripe, several, and a last block shorter than 64 bytes.
    #[test]
    fn striped_parity_equals_one_pass_and_decodes() {
        for len in [
            2usize,
            130,
            100_003,
            4 * STRIPE,
            4 * STRIPE + 6,
            9 * STRIPE + 4 * 333 + 2,
        ] {
            let bytes: Vec<u8> = (0..len as u32).map(|i| (i * 31 % 253) as u8).collect();
            let id = PackId::of(&bytes);
            let frags = encode(&id, &bytes, 4, 2).unwrap();
            let slen = shard_len(len, 4);
            let shards: Vec<&[u8]> = frags[..4]
                .iter()
                .map(|f| &f.bytes[FRAGMENT_HEADER_LEN..])
                .collect();
            assert!(shards.iter().all(|s| s.len() == slen));
            let one_pass = reed_solomon_simd::encode(4, 2, &shards).unwrap();
            for (j, p) in one_pass.iter().enumerate() {
                assert_eq!(
                    &frags[4 + j].bytes[FRAGMENT_HEADER_LEN..],
                    &p[..],
                    "len {len} parity {j}"
                );
            }
            let without_two_data: Vec<&[u8]> = frags[2..].iter().map(|f| &f.bytes[..]).collect();
            assert_eq!(decode(&without_two_data).unwrap(), bytes, "len {len}");
        }
    }

    /// The kept decoder rebuilds packs of
    /// other shapes in turn: shards of several decode stripes ending inside
    /// one, a tiny pack, other `k`, `m` and missing shards, then the first
    /// shape again.
    #[test]
    fn a_kept_decoder_rebuilds_packs_of_any_shape_in_turn() {
        for (len, k, m, keep_from) in [
            (4 * (2 * DECODE_STRIPE + 777), 4, 2, 2),
            (130, 4, 2, 1),
            (3 * DECODE_STRIPE + 5, 3, 3, 3),
            (DECODE_STRIPE, 2, 1, 1),
            (4 * (2 * DECODE_STRIPE + 777), 4, 2, 2),
        ] {
            let bytes: Vec<u8> = (0..len as u32).map(|i| (i * 13 % 249) as u8).collect();
            let id = PackId::of(&bytes);
            let frags = encode(&id, &bytes, k, m).unwrap();
            let some: Vec<&[u8]> = frags[keep_from..].iter().map(|f| &f.bytes[..]).collect();
            assert!(decode(&some).unwrap() == bytes, "{len} bytes, {k}+{m}");
            let mut some: Vec<Vec<u8>> = some.iter().map(|f| f.to_vec()).collect();
            let rebuilt = rebuild_missing_in_place(&mut some).unwrap();
            assert_eq!(rebuilt.len(), keep_from, "{len} bytes, {k}+{m}");
            for (i, at) in rebuilt {
                let want = &frags[i as usize].bytes[FRAGMENT_HEADER_LEN..];
                assert!(
                    some[at][FRAGMENT_HEADER_LEN..] == *want,
                    "{len} bytes, shard {i}"
                );
            }
        }
    }

    #[test]
    fn no_parity_and_tiny_packs() {
        for (k, m) in [(1, 0), (1, 1), (2, 1), (3, 0)] {
            for len in [0usize, 1, 5, 64] {
                let bytes = vec![0xAB; len];
                let id = PackId::of(&bytes);
                let frags = encode(&id, &bytes, k, m).unwrap();
                let first_k: Vec<&[u8]> = frags
                    .iter()
                    .rev()
                    .take(k as usize)
                    .map(|f| &f.bytes[..])
                    .collect();
                assert_eq!(decode(&first_k).unwrap(), bytes, "{k}+{m} len {len}");
            }
        }
    }

    #[test]
    fn corrupt_shard_is_caught_by_pack_hash() {
        let bytes = vec![1u8; 5000];
        let id = PackId::of(&bytes);
        let mut frags = encode(&id, &bytes, 2, 1).unwrap();
        let last = frags[0].bytes.len() - 1;
        frags[0].bytes[last] ^= 0xff;
        let picked: Vec<&[u8]> = frags[..2].iter().map(|f| &f.bytes[..]).collect();
        assert_eq!(decode(&picked), Err(ErasureError::PackHash));
    }
}
