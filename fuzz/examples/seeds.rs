//! Writes seed inputs for every fuzz target: real objects made by Trove's own
//! encoders under the fixed keys, in each target's input layout, so the
//! fuzzers start from valid formats instead of searching for them. Every
//! seed also goes through its target's oracle here, and the seeds meant to
//! be valid are checked to decode.
//!
//! ```text
//! cargo run --release --manifest-path fuzz/Cargo.toml --example seeds [OUT_DIR]
//! ```
//! writes `OUT_DIR/<target>/seed-<name>` (default `fuzz/corpus`).

use std::path::{Path, PathBuf};
use trove_core::chunk::ChunkerParams;
use trove_core::envelope;
use trove_core::erasure;
use trove_core::manifest::{
    ContainerManifest, FragmentLocation, IndexSegment, PackRecord, PeerRecord, Redundancy,
    SnapshotManifest, SnapshotSummary,
};
use trove_core::pack::{PackBuilder, PackEntry};
use trove_core::seal::{self, BlobKind, Compression};
use trove_core::tree::{Node, NodeKind, Tree};
use trove_core::{
    BlobId, ChunkId, ContainerId, FragmentId, PackId, PeerId, SegmentId, SnapshotId, TreeId,
};
use trove_fuzz::keys::{identity, master, seal_key};
use trove_fuzz::{audit, erasure as ferasure, node, pack as fpack, recovery as frecovery};
use trove_fuzz::{envelope as fenvelope, InputBuilder};
use trove_node::proto::{self, ErrorKind, Request, Response};
use trove_node::NodeTicket;
use trove_peer::{AuditRange, MetaKey};
use trove_recovery::slip39::GroupSpec;

struct Out {
    dir: PathBuf,
    count: usize,
}

impl Out {
    fn write(&mut self, target: &str, name: &str, bytes: &[u8], oracle: fn(&[u8])) {
        oracle(bytes);
        let dir = self.dir.join(target);
        std::fs::create_dir_all(&dir).expect("create corpus dir");
        std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("write seed");
        self.count += 1;
    }
}

fn tree() -> Tree {
    let node = |name: &[u8], kind| Node {
        name: name.to_vec(),
        mode: 0o644,
        mtime_ns: 1_700_000_000_123_456_789,
        kind,
    };
    Tree {
        nodes: vec![
            node(
                b".hidden",
                NodeKind::Dir {
                    tree: TreeId([3; 32]),
                },
            ),
            node(
                b"a file",
                NodeKind::File {
                    size: 5_000_000,
                    chunks: vec![ChunkId([1; 32]), ChunkId([2; 32])],
                },
            ),
            node(
                b"empty",
                NodeKind::File {
                    size: 0,
                    chunks: vec![],
                },
            ),
            node(
                b"link",
                NodeKind::Symlink {
                    target: b"../a file".to_vec(),
                },
            ),
            node(
                "\u{e9}t\u{e9}".as_bytes(),
                NodeKind::Dir {
                    tree: TreeId([4; 32]),
                },
            ),
        ],
    }
}

fn container() -> ContainerManifest {
    let m = master();
    let cid = ContainerId([7; 32]);
    ContainerManifest {
        id: cid,
        name: "photos".into(),
        revision: 3,
        created_unix: 1_790_000_000,
        redundancy: Redundancy { k: 4, m: 2 },
        chunker: ChunkerParams {
            min: 256 * 1024,
            avg: 1024 * 1024,
            max: 4 * 1024 * 1024,
        },
        pack_target: 16 * 1024 * 1024,
        sources: vec!["/home/me/photos".into()],
        roster: vec![
            PeerRecord {
                id: PeerId([8; 32]),
                name: "usb".into(),
                location: "dir:/mnt/usb/trove".into(),
                labels: [("site".to_string(), "home".to_string())].into(),
            },
            PeerRecord {
                id: PeerId([9; 32]),
                name: "nas".into(),
                location: "node:trovenode1aaaa".into(),
                labels: Default::default(),
            },
        ],
        wrapped_key: m.wrap(&cid, &trove_core::keys::ContainerKey::from_bytes([5; 32])),
        later_keys: Vec::new(),
    }
}

fn snapshot() -> SnapshotManifest {
    SnapshotManifest {
        id: SnapshotId([10; 32]),
        container: ContainerId([7; 32]),
        time_unix_ns: -5,
        host: "laptop".into(),
        sources: vec!["/home/me/photos".into(), "/etc".into()],
        root: TreeId([11; 32]),
        parent: Some(SnapshotId([12; 32])),
        summary: SnapshotSummary {
            files_new: 1,
            files_changed: 2,
            files_unchanged: 3,
            dirs: 4,
            bytes_read: 5,
            bytes_total: u64::MAX,
            bytes_stored: 300,
            blobs_new: 7,
            packs_new: 1,
            unreadable: 0,
        },
    }
}

fn segment() -> IndexSegment {
    let mut s = IndexSegment::adding(
        SegmentId([13; 32]),
        ContainerId([7; 32]),
        3,
        vec![PackRecord {
            id: PackId([14; 32]),
            k: 2,
            m: 1,
            pack_len: 12345,
            fragments: (0..3)
                .map(|i| FragmentLocation {
                    index: i,
                    id: FragmentId([20 + i; 32]),
                    peer: PeerId([30 + i; 32]),
                })
                .collect(),
            blobs: vec![
                PackEntry {
                    kind: BlobKind::Data,
                    id: BlobId([15; 32]),
                    offset: 0,
                    length: 1000,
                    raw_length: 3000,
                },
                PackEntry {
                    kind: BlobKind::Tree,
                    id: BlobId([16; 32]),
                    offset: 1000,
                    length: 200,
                    raw_length: 158,
                },
            ],
        }],
    );
    // A version-2 segment uses every field of the index log.
    s.removed = vec![PackId([17; 32])];
    s.forgotten = vec![SnapshotId([18; 32])];
    s.restored = vec![SnapshotId([19; 32])];
    s.supersedes = vec![SegmentId([12; 32])];
    s
}

/// Sealed blobs and the entries of a pack holding them.
fn blobs(n: usize) -> (Vec<u8>, Vec<PackEntry>) {
    let key = seal_key();
    let mut b = PackBuilder::default();
    for i in 0..n {
        let plain = if i % 2 == 0 {
            vec![i as u8; 300 + i * 50]
        } else {
            tree().encode()
        };
        let kind = if i % 2 == 0 {
            BlobKind::Data
        } else {
            BlobKind::Tree
        };
        let id = BlobId([i as u8; 32]);
        let sealed = seal::seal(&key, kind, &id.0, &plain, Compression::default());
        b.add(kind, id, &sealed, plain.len() as u32);
    }
    let p = b.finish(&key);
    let region_len = p
        .entries
        .last()
        .map_or(0, |e| (e.offset + e.length) as usize);
    (p.bytes[..region_len].to_vec(), p.entries)
}

fn main() {
    let dir = std::env::args_os().nth(1).map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"),
        PathBuf::from,
    );
    let mut out = Out { dir, count: 0 };
    let key = seal_key();

    // seal_open: decrypted regions, and whole blobs sealed under the fixed key.
    let text = b"the quick brown fox jumps over the lazy dog. ".repeat(40);
    let zstd_region = |frames: &[&[u8]], level| {
        let raw: Vec<u8> = frames.concat();
        let mut r = vec![1u8];
        r.extend_from_slice(&(raw.len() as u32).to_le_bytes());
        for f in frames {
            r.extend_from_slice(&zstd::bulk::compress(f, level).expect("compress"));
        }
        r
    };
    let o = trove_fuzz::seal::open;
    out.write("seal_open", "raw", &[&[0u8][..], b"hello"].concat(), o);
    out.write("seal_open", "raw-empty", &[0], o);
    out.write("seal_open", "zstd", &zstd_region(&[&text], 3), o);
    out.write("seal_open", "zstd-19", &zstd_region(&[&text[..500]], 19), o);
    out.write(
        "seal_open",
        "zstd-two-frames",
        &zstd_region(&[b"abc", &text], 1),
        o,
    );
    out.write("seal_open", "zstd-empty", &zstd_region(&[b""], 3), o);
    let sealed = seal::seal(
        &key,
        BlobKind::Data,
        &trove_fuzz::seal::ID,
        &text,
        Compression::default(),
    );
    assert_eq!(
        seal::open(&key, BlobKind::Data, &trove_fuzz::seal::ID, &sealed).unwrap(),
        text
    );
    out.write("seal_open", "sealed-blob", &sealed, o);

    // pack: blob regions and header plaintexts; and whole packs.
    let o = fpack::read;
    for n in [0usize, 1, 4] {
        let (region, entries) = blobs(n);
        let plain = postcard::to_stdvec(&fpack::HeaderModel {
            version: 1,
            entries: entries.clone(),
        })
        .unwrap();
        let input = fpack::input(&region, &plain, n % 2 == 0, n == 1);
        let p = fpack::assemble(&region, &plain, true, n == 1);
        assert_eq!(trove_core::pack::read_header(&key, &p).unwrap(), entries);
        out.write("pack", &format!("header-{n}-blobs"), &input, o);
    }
    let mut b = PackBuilder::default();
    let s = seal::seal(
        &key,
        BlobKind::Data,
        &[1; 32],
        b"one blob",
        Compression::Off,
    );
    b.add(BlobKind::Data, BlobId([1; 32]), &s, 8);
    let whole = b.finish(&key);
    assert!(trove_core::pack::read_header(&key, &whole.bytes).is_ok());
    out.write("pack", "whole-pack", &whole.bytes, o);

    // fragment: single fragments, fragment sets, round trips.
    let o = ferasure::decode;
    let pack: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    let id = PackId::of(&pack);
    let frags = erasure::encode(&id, &pack, 4, 2).unwrap();
    out.write(
        "fragment",
        "one",
        &InputBuilder::default().u8(0).bytes(&frags[5].bytes).build(),
        o,
    );
    let all: Vec<&[u8]> = frags.iter().map(|f| &f.bytes[..]).collect();
    for (name, pick) in [
        ("data-shards", vec![0, 1, 2, 3]),
        ("with-parity", vec![5, 1, 4, 2]),
        ("too-few", vec![0, 4, 5]),
    ] {
        let set: Vec<&[u8]> = pick.iter().map(|&i| all[i]).collect();
        out.write(
            "fragment",
            &format!("set-{name}"),
            &ferasure::set_input(&set),
            o,
        );
    }
    let tiny = erasure::encode(&PackId::of(b"x"), b"x", 1, 1).unwrap();
    out.write(
        "fragment",
        "set-1+1-parity",
        &ferasure::set_input(&[&tiny[1].bytes]),
        o,
    );
    for (k, m, mask) in [
        (4u8, 2u8, 0b11_0011u8),
        (1, 0, 1),
        (3, 3, 0b11_1000),
        (10, 5, 0xff),
    ] {
        let mut full = [0u8; 32];
        full[0] = mask;
        full[1] = 0xff;
        out.write(
            "fragment",
            &format!("round-trip-{k}+{m}"),
            &ferasure::round_trip_input(k, m, full, &pack[..1000]),
            o,
        );
    }

    // tree
    let o = trove_fuzz::tree::decode;
    for (name, t) in [("empty", Tree::default()), ("mixed", tree())] {
        let bytes = t.encode();
        assert_eq!(Tree::decode(&bytes).unwrap(), t);
        out.write("tree", name, &bytes, o);
    }

    // manifest bodies
    let o = trove_fuzz::manifest::decode;
    let bodies = [
        (
            BlobKind::ContainerManifest,
            container().encode(),
            container().id.0,
        ),
        (
            BlobKind::SnapshotManifest,
            snapshot().encode(),
            snapshot().id.0,
        ),
        (BlobKind::IndexSegment, segment().encode(), segment().id.0),
    ];
    for (kind, body, _) in &bodies {
        out.write("manifest", &format!("{kind:?}"), body, o);
    }

    // envelope: signed envelopes as they travel, and bodies for mode 1.
    let o = fenvelope::open;
    for (i, (kind, body, object)) in bodies.iter().enumerate() {
        let k = if *kind == BlobKind::ContainerManifest {
            master().manifest_key()
        } else {
            seal_key()
        };
        let revision = u64::from(*kind == BlobKind::ContainerManifest) * 7;
        let env = envelope::seal_signed(identity(), &k, *kind, object, revision, body);
        out.write(
            "envelope",
            &format!("{kind:?}"),
            &fenvelope::raw_input(&env),
            o,
        );
        out.write(
            "envelope",
            &format!("signed-{kind:?}"),
            &fenvelope::signed_input(i as u8, *object, body),
            o,
        );
    }

    // node protocol: each message as a body and as a frame.
    let o = node::proto;
    let c = ContainerId([3; 32]);
    let requests = vec![
        Request::Hello {
            client: "trove 0.1.0".into(),
        },
        Request::Put {
            id: FragmentId([1; 32]),
            len: 1 << 20,
        },
        Request::Get {
            id: FragmentId([1; 32]),
            offset: 5,
            len: Some(7),
        },
        Request::Has {
            id: FragmentId([2; 32]),
        },
        Request::List,
        Request::Delete {
            id: FragmentId([2; 32]),
        },
        Request::PutMeta {
            key: MetaKey::Snapshot(c, SnapshotId([4; 32])),
            len: 300,
        },
        Request::GetMeta {
            key: MetaKey::IndexSegment(c, SegmentId([5; 32])),
        },
        Request::ListMeta { container: Some(c) },
        Request::Stat,
        Request::Audit {
            id: FragmentId([2; 32]),
            ranges: vec![
                AuditRange {
                    offset: 1,
                    len: 1024
                };
                4
            ],
        },
    ];
    let responses = vec![
        Response::Hello {
            node: "trove 0.1.0".into(),
            quota: 1 << 40,
            used: 12345,
            operator: Some(trove_node::OwnerId([5; 32])),
        },
        Response::Ok,
        Response::Data { len: 99 },
        Response::Has(true),
        Response::Ids { count: 3 },
        Response::MetaKeys(vec![
            MetaKey::Container(c),
            MetaKey::Snapshot(c, SnapshotId([4; 32])),
        ]),
        Response::Stat {
            fragments: 10,
            fragment_bytes: 1 << 30,
            free_bytes: None,
        },
        Response::Proofs(vec![vec![1, 2, 3], vec![]]),
        Response::Error {
            kind: ErrorKind::QuotaExceeded,
            message: "quota of 1 GiB used up".into(),
        },
    ];
    for (i, r) in requests.iter().enumerate() {
        let f = proto::encode(r);
        out.write("node_proto", &format!("request-{i}-frame"), &f, o);
        out.write("node_proto", &format!("request-{i}-body"), &f[4..], o);
    }
    for (i, r) in responses.iter().enumerate() {
        let f = proto::encode(r);
        out.write("node_proto", &format!("response-{i}-frame"), &f, o);
        out.write("node_proto", &format!("response-{i}-body"), &f[4..], o);
    }

    // tickets
    let o = node::ticket;
    let tickets = [
        NodeTicket {
            node: *ed25519_dalek::SigningKey::from_bytes(&[7; 32])
                .verifying_key()
                .as_bytes(),
            addrs: vec![
                "127.0.0.1:4433".parse().unwrap(),
                "[2001:db8::1]:9".parse().unwrap(),
            ],
            relay: Some("https://relay.example/".into()),
        },
        NodeTicket {
            node: *identity().public().verifying_key().unwrap().as_bytes(),
            addrs: vec![],
            relay: None,
        },
    ];
    for (i, t) in tickets.iter().enumerate() {
        let text = t.to_string();
        assert_eq!(text.parse::<NodeTicket>().unwrap(), *t);
        out.write(
            "ticket",
            &format!("text-{i}"),
            &InputBuilder::default().u8(0).bytes(text.as_bytes()).build(),
            o,
        );
        out.write(
            "ticket",
            &format!("binary-{i}"),
            &InputBuilder::default()
                .u8(1)
                .bytes(&postcard::to_stdvec(t).unwrap())
                .build(),
            o,
        );
    }

    // audit proofs
    let o = audit::verify;
    for (name, flen, off, len) in [
        ("start", 5000u16, 0u32, 100u32),
        ("middle", 10_000, 5000, 300),
        ("tail", 3000, 2990, 100),
        ("past-end", 3000, 4000, 5),
        ("whole", 2048, 0, 2048),
        ("empty-fragment", 0, 0, 1),
    ] {
        out.write(
            "audit_verify",
            name,
            &audit::honest_input(flen, 9, off, len),
            o,
        );
        let frag = audit::fragment(flen as usize, 9);
        let range = AuditRange {
            offset: off as u64,
            len: len as u64,
        };
        let proof = trove_peer::audit::prove(std::io::Cursor::new(&frag), &[range])
            .unwrap()
            .remove(0);
        assert!(trove_peer::audit::verify(&FragmentId::of(&frag), range, &proof).is_ok());
        out.write(
            "audit_verify",
            &format!("{name}-proof"),
            &audit::proof_input(flen, 9, off, len, &proof),
            o,
        );
    }

    // recovery: the phrase and shares of the fixed master secret.
    let o = frecovery::recover;
    let phrase = trove_recovery::master_to_phrase(&trove_fuzz::keys::MASTER);
    out.write("recovery", "phrase", &frecovery::phrase_input(&phrase), o);
    let twelve = trove_recovery::entropy_to_phrase(&[0xab; 16]).unwrap();
    out.write(
        "recovery",
        "phrase-12",
        &frecovery::phrase_input(&twelve),
        o,
    );
    let layouts: [(&str, u8, Vec<GroupSpec>, bool); 3] = [
        (
            "1of1",
            1,
            vec![GroupSpec {
                member_threshold: 1,
                member_count: 1,
            }],
            false,
        ),
        (
            "2of3",
            1,
            vec![GroupSpec {
                member_threshold: 2,
                member_count: 3,
            }],
            true,
        ),
        (
            "groups",
            2,
            vec![
                GroupSpec {
                    member_threshold: 2,
                    member_count: 3,
                },
                GroupSpec {
                    member_threshold: 1,
                    member_count: 1,
                },
                GroupSpec {
                    member_threshold: 3,
                    member_count: 5,
                },
            ],
            false,
        ),
    ];
    for (name, gt, groups, ext) in layouts {
        let shares =
            trove_recovery::split(&trove_fuzz::keys::MASTER, b"", gt, &groups, ext, 0).unwrap();
        let mut flat: Vec<String> = Vec::new();
        for g in &shares {
            for s in g.iter().take(g.len().min(3)) {
                flat.push(s.to_mnemonic());
            }
        }
        assert_eq!(
            trove_recovery::combine_master(&flat, b"").unwrap(),
            trove_fuzz::keys::MASTER
        );
        out.write(
            "recovery",
            &format!("shares-{name}"),
            &frecovery::shares_input(&flat),
            o,
        );
        out.write(
            "recovery",
            &format!("shares-{name}-partial"),
            &frecovery::shares_input(&flat[1..]),
            o,
        );
        out.write(
            "recovery",
            &format!("words-{name}"),
            &frecovery::words_input(&flat),
            o,
        );
    }

    eprintln!("wrote {} seeds under {}", out.count, out.dir.display());
}
