//! Property tests of each stage of the data path: whatever the input, the
//! stage round-trips, and damage is detected rather than passed on.
//! Decoders fed arbitrary bytes are in `decoders_on_garbage.rs`.

use proptest::prelude::*;
use trove_core::chunk::{Chunker, ChunkerParams};
use trove_core::erasure;
use trove_core::keys::SealKey;
use trove_core::pack::{self, PackBuilder};
use trove_core::seal::{self, BlobKind, Compression};
use trove_core::{BlobId, PackId};

fn small_chunker(seed: u64) -> Chunker {
    Chunker::new(
        ChunkerParams {
            min: 64,
            avg: 256,
            max: 1024,
        },
        seed,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn chunks_cover_input_within_bounds(data in proptest::collection::vec(any::<u8>(), 0..20_000), seed: u64) {
        let c = small_chunker(seed);
        let mut pos = 0;
        let cuts: Vec<_> = c.cuts(&data).collect();
        for (i, &(off, len)) in cuts.iter().enumerate() {
            prop_assert_eq!(off, pos);
            prop_assert!(len <= 1024);
            if i + 1 < cuts.len() { prop_assert!(len >= 64); }
            pos += len;
        }
        prop_assert_eq!(pos, data.len());
        let streamed: Vec<u8> = c.stream(&data[..]).flat_map(|r| r.unwrap()).collect();
        prop_assert_eq!(streamed, data);
    }

    #[test]
    fn seal_round_trips_and_rejects_any_flip(
        data in proptest::collection::vec(any::<u8>(), 0..5000),
        repeat in any::<bool>(),
        flip in any::<prop::sample::Index>(),
        key: [u8; 32],
        id: [u8; 32],
    ) {
        let data = if repeat { data.repeat(8) } else { data };
        let key = SealKey::from_bytes(key);
        for c in [Compression::Off, Compression::default()] {
            let s = seal::seal(&key, BlobKind::Data, &id, &data, c);
            prop_assert_eq!(&seal::open(&key, BlobKind::Data, &id, &s).unwrap(), &data);
            let mut bad = s.clone();
            let i = flip.index(bad.len());
            bad[i] ^= 0x01;
            prop_assert!(seal::open(&key, BlobKind::Data, &id, &bad).is_err());
        }
    }

    #[test]
    fn pack_round_trips(blobs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3000), 1..20), key: [u8; 32]) {
        let key = SealKey::from_bytes(key);
        let mut b = PackBuilder::default();
        for (i, data) in blobs.iter().enumerate() {
            let id = BlobId([i as u8; 32]);
            let sealed = seal::seal(&key, BlobKind::Data, &id.0, data, Compression::default());
            b.add(BlobKind::Data, id, &sealed, data.len() as u32);
        }
        let p = b.finish(&key);
        let entries = pack::read_header(&key, &p.bytes).unwrap();
        prop_assert_eq!(entries.len(), blobs.len());
        for (e, data) in entries.iter().zip(&blobs) {
            let got = seal::open(&key, e.kind, &e.id.0, pack::blob_bytes(&p.bytes, e).unwrap()).unwrap();
            prop_assert_eq!(&got, data);
            prop_assert_eq!(e.raw_length as usize, data.len());
        }
    }

    #[test]
    fn any_k_fragments_rebuild(
        data in proptest::collection::vec(any::<u8>(), 0..50_000),
        k in 1u8..8,
        m in 0u8..5,
        pick_seed: u64,
    ) {
        let id = PackId::of(&data);
        let frags = erasure::encode(&id, &data, k, m).unwrap();
        prop_assert_eq!(frags.len(), (k + m) as usize);
        // A pseudo-random choice of k fragments.
        let mut idx: Vec<usize> = (0..frags.len()).collect();
        let mut x = pick_seed | 1;
        for i in (1..idx.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            idx.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let chosen: Vec<&[u8]> = idx[..k as usize].iter().map(|i| &frags[*i].bytes[..]).collect();
        prop_assert_eq!(erasure::decode(&chosen).unwrap(), data);
        if k > 1 {
            let too_few: Vec<&[u8]> = idx[..k as usize - 1].iter().map(|i| &frags[*i].bytes[..]).collect();
            prop_assert!(erasure::decode(&too_few).is_err());
        }
    }
}
