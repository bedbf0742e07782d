//! Every decoder of bytes that come from a peer, fed arbitrary bytes: what
//! must hold for *any* input, not only that nothing panics. The same
//! properties, with deeper inputs and for much longer, are the fuzz targets
//! in `fuzz/` (see `fuzz/README.md`); this bounded version runs with the
//! normal tests.
//!
//! Authenticated formats get their wrapper built here around arbitrary
//! contents (a sealed region, a signed envelope), so the properties reach
//! the code behind the tag check.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use trove_core::envelope::{self, EnvelopeError};
use trove_core::erasure::{self, FragmentHeader, FRAGMENT_HEADER_LEN};
use trove_core::keys::{MasterSecret, SealKey};
use trove_core::manifest::{ContainerManifest, IndexSegment, ManifestError, SnapshotManifest};
use trove_core::pack::{self, PackEntry};
use trove_core::seal::{self, BlobKind, Compression, SealError};
use trove_core::tree::Tree;
use trove_core::PackId;

const KEY: [u8; 32] = [0x5e; 32];
const ID: [u8; 32] = [0xb1; 32];

fn garbage(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

/// A sealed blob around `region` (codec ‖ payload), as design §3.1 writes it.
fn seal_region(kind: BlobKind, id: &[u8; 32], region: &[u8]) -> Vec<u8> {
    let nonce = [9u8; 24];
    let mut aad = b"trove-blob-v1".to_vec();
    aad.push(kind as u8);
    aad.extend_from_slice(id);
    let mut body = region.to_vec();
    let tag = XChaCha20Poly1305::new(&KEY.into())
        .encrypt_in_place_detached(XNonce::from_slice(&nonce), &aad, &mut body)
        .unwrap();
    [&[1u8][..], &nonce, &body, &tag].concat()
}

/// A zstd region: `0x01 ‖ raw_len u32 LE ‖ payload`.
fn zstd_region(raw_len: u32, payload: &[u8]) -> Vec<u8> {
    [&[1u8][..], &raw_len.to_le_bytes(), payload].concat()
}

/// §3.4's pack header plaintext.
#[derive(Serialize, Deserialize)]
struct HeaderModel {
    version: u8,
    entries: Vec<PackEntry>,
}

fn pack_around(region: &[u8], header_plain: &[u8]) -> Vec<u8> {
    let sealed = seal::seal(
        &SealKey::from_bytes(KEY),
        BlobKind::PackHeader,
        &[0; 32],
        header_plain,
        Compression::Off,
    );
    let len = (sealed.len() as u32).to_le_bytes();
    [region, &sealed, &len, &[1u8]].concat()
}

fn fragment_model(b: &[u8]) -> bool {
    if b.len() < FRAGMENT_HEADER_LEN || &b[..4] != b"TRVF" || b[4] != 1 {
        return false;
    }
    let (k, m, index) = (b[5] as u64, b[6] as u64, b[7] as u64);
    let pack_len = u64::from_le_bytes(b[40..48].try_into().unwrap());
    let shard_len = u32::from_le_bytes(b[48..52].try_into().unwrap()) as u64;
    k != 0
        && index < k + m
        && b.len() as u64 == FRAGMENT_HEADER_LEN as u64 + shard_len
        && pack_len <= shard_len * k
}

fn name_is_safe(n: &[u8]) -> bool {
    !n.is_empty() && n != b"." && n != b".." && !n.iter().any(|&b| b == b'/' || b == 0)
}

/// `read`: the body versions this decoder reads (the last is the one it writes).
fn manifest_round_trip<T: PartialEq + std::fmt::Debug>(
    data: &[u8],
    read: &[u8],
    decode: fn(&[u8]) -> Result<T, ManifestError>,
    encode: fn(&T) -> Vec<u8>,
) -> Result<(), TestCaseError> {
    match decode(data) {
        Ok(v) => {
            let enc = encode(&v);
            let back = decode(&enc);
            prop_assert_eq!(back.as_ref(), Ok(&v));
        }
        Err(ManifestError::Version(v)) => {
            prop_assert!(data.first() == Some(&v) && !read.contains(&v))
        }
        Err(_) => prop_assert!(data.first().is_none_or(|v| read.contains(v))),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    /// Garbage never opens; a raw region sealed under the key opens to its
    /// payload; an unknown codec is malformed; a zstd region opens only to
    /// exactly its declared length.
    #[test]
    fn sealed_blobs(bytes in garbage(300), payload in garbage(200), codec: u8, raw_len in 0u32..100_000) {
        let key = SealKey::from_bytes(KEY);
        prop_assert!(seal::open(&key, BlobKind::Data, &ID, &bytes).is_err());
        let raw = [&[0u8][..], &payload].concat();
        prop_assert_eq!(seal::open(&key, BlobKind::Data, &ID, &seal_region(BlobKind::Data, &ID, &raw)), Ok(payload.clone()));
        prop_assert_eq!(seal::open(&key, BlobKind::Tree, &ID, &seal_region(BlobKind::Data, &ID, &raw)), Err(SealError::Authentication));
        if codec > 1 {
            let odd = [&[codec][..], &payload].concat();
            prop_assert!(matches!(seal::open(&key, BlobKind::Data, &ID, &seal_region(BlobKind::Data, &ID, &odd)), Err(SealError::Malformed(_))));
        }
        let garbage_zstd = zstd_region(raw_len, &payload);
        if let Ok(out) = seal::open(&key, BlobKind::Data, &ID, &seal_region(BlobKind::Data, &ID, &garbage_zstd)) {
            prop_assert_eq!(out.len(), raw_len as usize);
        }
        let frame = zstd::bulk::compress(&payload, 3).unwrap();
        let good = zstd_region(payload.len() as u32, &frame);
        prop_assert_eq!(seal::open(&key, BlobKind::Data, &ID, &seal_region(BlobKind::Data, &ID, &good)), Ok(payload.clone()));
        let wrong_len = zstd_region(payload.len() as u32 + 1 + raw_len % 7, &frame);
        prop_assert!(seal::open(&key, BlobKind::Data, &ID, &seal_region(BlobKind::Data, &ID, &wrong_len)).is_err());
    }

    /// `read_header` accepts a pack exactly when its sealed header is §3.4's
    /// postcard with version 1 and entries that end before the header; then
    /// `blob_bytes` returns each entry's bytes. Raw garbage is refused.
    #[test]
    fn packs(bytes in garbage(300), region in garbage(200), header in garbage(120), entries in proptest::collection::vec((0u32..300, 0u32..300), 0..4)) {
        let key = SealKey::from_bytes(KEY);
        prop_assert!(pack::read_header(&key, &bytes).is_err());
        let entries: Vec<PackEntry> = entries.into_iter().map(|(offset, length)| PackEntry {
            kind: BlobKind::Data, id: trove_core::BlobId([1; 32]), offset, length, raw_length: 7,
        }).collect();
        let plain = postcard::to_stdvec(&HeaderModel { version: 1, entries: entries.clone() }).unwrap();
        for (plain, entries) in [(plain, Some(entries)), (header.clone(), None)] {
            let p = pack_around(&region, &plain);
            let model = postcard::from_bytes::<HeaderModel>(&plain).ok()
                .filter(|h| h.version == 1)
                .filter(|h| h.entries.iter().all(|e| e.offset as u64 + e.length as u64 <= region.len() as u64))
                .map(|h| h.entries);
            let got = pack::read_header(&key, &p);
            prop_assert_eq!(got.as_ref().ok(), model.as_ref());
            if let (Ok(got), Some(entries)) = (&got, entries) {
                prop_assert_eq!(got, &entries);
            }
            for e in got.iter().flatten() {
                let end = (e.offset + e.length) as usize;
                prop_assert_eq!(pack::blob_bytes(&p, e), Ok(&p[e.offset as usize..end]));
            }
        }
    }

    /// `parse` accepts exactly §3.6's headers; `decode` of any set of
    /// garbage fragments fails (it cannot hash to the pack id they name).
    #[test]
    fn fragments(bytes in garbage(200), set in proptest::collection::vec(garbage(120), 0..5), k in 0u8..5, m in 0u8..3, shard_len in 0u32..80, index: u8) {
        prop_assert_eq!(FragmentHeader::parse(&bytes).is_ok(), fragment_model(&bytes));
        // Headers that parse, with garbage shards.
        let mut h = b"TRVF\x01".to_vec();
        h.extend_from_slice(&[k, m, index % (k + m + 1)]);
        h.extend_from_slice(&[7; 32]);
        h.extend_from_slice(&(shard_len as u64 * k as u64 / 2).to_le_bytes());
        h.extend_from_slice(&shard_len.to_le_bytes());
        let mut frags: Vec<Vec<u8>> = set;
        for (i, f) in frags.iter_mut().enumerate() {
            if i % 2 == 0 {
                let mut g = h.clone();
                g[7] = (i as u8) % (k + m).max(1);
                g.extend((0..shard_len).map(|j| f.get(j as usize).copied().unwrap_or(j as u8)));
                *f = g;
            }
            prop_assert_eq!(FragmentHeader::parse(f).is_ok(), fragment_model(f));
        }
        let got = erasure::decode(&frags);
        prop_assert!(got.is_err(), "garbage decoded to a pack hashing to [7; 32]");
    }

    /// Any k of k+m fragments of any pack rebuild it; a damaged byte never
    /// yields another pack.
    #[test]
    fn fragments_of_real_packs(pack in garbage(400), k in 1u8..6, m in 0u8..4, flip in any::<prop::sample::Index>(), x in 1u8..) {
        let id = PackId::of(&pack);
        let frags = erasure::encode(&id, &pack, k, m).unwrap();
        let last_k: Vec<&[u8]> = frags.iter().rev().take(k as usize).map(|f| &f.bytes[..]).collect();
        prop_assert_eq!(erasure::decode(&last_k), Ok(pack.clone()));
        let mut bad: Vec<Vec<u8>> = last_k.iter().map(|f| f.to_vec()).collect();
        let which = flip.index(bad.len());
        let at = flip.index(bad[which].len());
        bad[which][at] ^= x;
        if let Ok(p) = erasure::decode(&bad) {
            prop_assert_eq!(p, pack);
        }
    }

    /// `Tree::decode` accepts exactly version 1 + postcard with safe,
    /// strictly increasing names, and what it accepts round-trips.
    #[test]
    fn trees(bytes in garbage(300), names in proptest::collection::vec(garbage(4), 0..5)) {
        let t = Tree { nodes: names.into_iter().map(|name| trove_core::tree::Node {
            name, mode: 0o644, mtime_ns: 0, kind: trove_core::tree::NodeKind::Dir { tree: trove_core::TreeId([1; 32]) },
        }).collect() };
        let mut v1 = vec![1u8];
        v1.extend_from_slice(&bytes);
        for data in [bytes, v1, t.encode()] {
            let parsed = match data.split_first() {
                Some((1, rest)) => postcard::from_bytes::<Tree>(rest).ok(),
                _ => None,
            };
            let valid = parsed.as_ref().is_some_and(|t| {
                t.nodes.iter().all(|n| name_is_safe(&n.name)) && t.nodes.windows(2).all(|w| w[0].name < w[1].name)
            });
            let got = Tree::decode(&data);
            prop_assert_eq!(got.is_ok(), valid);
            if let Ok(t) = got {
                prop_assert_eq!(Some(&t), parsed.as_ref());
                prop_assert_eq!(Tree::decode(&t.encode()), Ok(t.clone()));
            }
        }
    }

    /// The three body decoders refuse other versions, and whatever they
    /// accept round-trips through `encode`.
    #[test]
    fn manifests(bytes in garbage(300)) {
        let mut v1 = vec![1u8];
        v1.extend_from_slice(&bytes);
        for data in [&bytes, &v1] {
            manifest_round_trip(data, &[1, 2], ContainerManifest::decode, ContainerManifest::encode)?;
            manifest_round_trip(data, &[1], SnapshotManifest::decode, SnapshotManifest::encode)?;
            manifest_round_trip(data, &[1, 2], IndexSegment::decode, IndexSegment::encode)?;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// `peek` and `open_signed` agree; garbage never opens; an envelope
    /// signed by the owner opens, and with any byte changed, cut or
    /// appended, never does.
    #[test]
    fn envelopes(bytes in garbage(300), body in garbage(100), kind in 3u8..6, revision in any::<u64>(), flip in any::<prop::sample::Index>(), x in 1u8.., cut in 0usize..3) {
        let master = MasterSecret::from_bytes([0x11; 32]);
        let (id, key) = (master.identity(), SealKey::from_bytes(KEY));
        let kind = BlobKind::from_u8(kind).unwrap();
        let env = envelope::seal_signed(&id, &key, kind, &ID, revision, &body);
        let mut changed = env.clone();
        let at = flip.index(changed.len());
        changed[at] ^= x;
        let mut resized = env.clone();
        if cut == 0 { resized.push(x) } else { resized.truncate(env.len() - cut) }
        let mut garbage_env = bytes.clone();
        if garbage_env.len() >= 38 { garbage_env[..6].copy_from_slice(b"TRVM\x02\x04"); garbage_env[6..38].copy_from_slice(&id.public().0); }
        for (bytes, must_open) in [(&bytes, false), (&garbage_env, false), (&changed, false), (&resized, false), (&env, true)] {
            let object = envelope::peek(bytes).map_or(ID, |h| h.object);
            let got = envelope::open_signed(&id.public(), &key, kind, &object, bytes);
            match envelope::peek(bytes) {
                Err(e) => prop_assert_eq!(got.as_ref().err(), Some(&e)),
                Ok(h) if h.signer != id.public() => prop_assert_eq!(got.as_ref().err(), Some(&EnvelopeError::WrongSigner)),
                Ok(_) => {}
            }
            prop_assert_eq!(got.is_ok(), must_open);
            if must_open {
                prop_assert_eq!(got.map(|(h, b)| (h.revision, b)), Ok((revision, body.clone())));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// A share file: garbage never opens, nor passes `peek_share`; a real
    /// one with any byte changed or cut never opens either.
    #[test]
    fn share_files(bytes in garbage(400), at in any::<usize>(), flip in 1u8..=255, cut in any::<usize>()) {
        use trove_core::share::{open_share, peek_share, seal_share};
        let (owner, friend) = (MasterSecret::from_bytes([1; 32]), MasterSecret::from_bytes([2; 32]));
        let seed = friend.transport_seed();
        prop_assert!(peek_share(&bytes).is_err());
        prop_assert!(open_share(&bytes, &seed).is_err());
        let recipient = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key().to_bytes();
        let manifest = share_manifest();
        let key = trove_core::keys::ContainerKey::from_bytes([3; 32]);
        let good = seal_share(&owner.identity(), &recipient, &manifest, &[key], 7).unwrap();
        prop_assert!(open_share(&good, &seed).is_ok());
        let mut bad = good.clone();
        let i = at % bad.len();
        bad[i] ^= flip;
        prop_assert!(open_share(&bad, &seed).is_err());
        prop_assert!(open_share(&good[..cut % good.len()], &seed).is_err());
    }
}

fn share_manifest() -> ContainerManifest {
    ContainerManifest {
        id: trove_core::ContainerId([4; 32]),
        name: "shared".into(),
        revision: 1,
        created_unix: 0,
        redundancy: trove_core::manifest::Redundancy { k: 2, m: 1 },
        chunker: Default::default(),
        pack_target: 1 << 20,
        sources: vec!["/s".into()],
        roster: Vec::new(),
        wrapped_key: Vec::new(),
        later_keys: Vec::new(),
    }
}
