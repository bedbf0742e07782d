//! `trove-bench`: single-thread throughput of each stage of Trove's pure data
//! path on generated data (half text-like and compressible, half random).
//!
//! ```text
//! trove-bench [--mb N] [--runs R] [--json]
//! ```
//! Each stage runs over the whole data set, in the order the backup path
//! runs them (chunk → id → seal → pack → erasure-code), with open after seal
//! and the two decodes after encoding. Each stage runs R times (default 3)
//! and the fastest is reported, since the machine may be shared. Rows named
//! "stage / part" ("of which" in the table) time one library call of that
//! stage alone, to show where the stage's time goes. MB are
//! 10^6 bytes. "MB/s in" is the stage's own input (sealed bytes for packing,
//! pack bytes for erasure coding); "MB/s src" is source bytes over the
//! stage's time, so stages can be compared with each other and with a whole
//! backup. Peak RSS is the process's VmHWM at the end.

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use trove_core::chunk::{Chunker, ChunkerParams};
use trove_core::erasure;
use trove_core::keys::ContainerKey;
use trove_core::pack::{FinishedPack, PackBuilder, DEFAULT_PACK_TARGET};
use trove_core::seal::{self, BlobKind, Compression};
use trove_core::{BlobId, ChunkId};

const USAGE: &str = "usage: trove-bench [--mb N] [--runs R] [--json]
  --mb N     size of the generated data in MB (default 256)
  --runs R   run each stage R times and report the fastest (default 3)
  --json     machine-readable output on stdout";

/// Redundancy benchmarked: 4 data + 2 parity fragments per pack.
const K: u8 = 4;
const M: u8 = 2;
/// Alternate text-like and random data in segments of this size, as a tree
/// mixes text files and already-compressed media.
const SEGMENT: usize = 4 * 1024 * 1024;

struct Row {
    stage: &'static str,
    input_bytes: u64,
    seconds: f64,
    note: String,
}

struct Args {
    mb: usize,
    runs: usize,
    json: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        mb: 256,
        runs: 3,
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => args.json = true,
            "--mb" => {
                let v = it.next().ok_or("--mb needs a value")?;
                args.mb = v
                    .parse()
                    .map_err(|_| format!("--mb: `{v}` is not a number"))?;
            }
            "--runs" => {
                let v = it.next().ok_or("--runs needs a value")?;
                args.runs = v
                    .parse()
                    .map_err(|_| format!("--runs: `{v}` is not a number"))?;
            }
            s if s.starts_with("--mb=") => {
                let v = &s[5..];
                args.mb = v
                    .parse()
                    .map_err(|_| format!("--mb: `{v}` is not a number"))?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    if args.mb == 0 || args.runs == 0 {
        return Err("--mb and --runs must be at least 1".into());
    }
    Ok(args)
}

/// Text-like bytes: words from a skewed vocabulary, with punctuation and
/// line breaks; zstd -3 compresses it roughly 3:1, like source code or docs.
fn fill_text(rng: &mut StdRng, vocab: &[Vec<u8>], out: &mut Vec<u8>, n: usize) {
    let end = out.len() + n;
    let mut line = 0usize;
    while out.len() < end {
        // Squaring a uniform value skews toward frequent (low-index) words.
        let u: f64 = rng.gen();
        let w = &vocab[((u * u) * vocab.len() as f64) as usize];
        out.extend_from_slice(w);
        line += w.len() + 1;
        let p: u32 = rng.gen_range(0..100);
        if line > 72 {
            out.push(b'\n');
            line = 0;
        } else if p < 6 {
            out.extend_from_slice(b", ");
        } else if p < 9 {
            out.extend_from_slice(b". ");
        } else {
            out.push(b' ');
        }
    }
    out.truncate(end);
}

fn generate(total: usize) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(0x7e0f_b3c4);
    let vocab: Vec<Vec<u8>> = (0..4000)
        .map(|_| {
            let len = rng.gen_range(2..11);
            (0..len).map(|_| rng.gen_range(b'a'..=b'z')).collect()
        })
        .collect();
    let mut data = Vec::with_capacity(total);
    let mut text = true;
    while data.len() < total {
        let n = SEGMENT.min(total - data.len());
        if text {
            fill_text(&mut rng, &vocab, &mut data, n);
        } else {
            let start = data.len();
            data.resize(start + n, 0);
            rng.fill_bytes(&mut data[start..]);
        }
        text = !text;
    }
    data
}

fn vm_hwm_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs per stage; the fastest is reported (the machine may be shared).
static RUNS: AtomicUsize = AtomicUsize::new(3);

/// Run `f` RUNS times; its last output and its fastest time.
fn timed<T>(f: impl Fn() -> T) -> (T, f64) {
    let mut best = f64::INFINITY;
    let mut out = None;
    for _ in 0..RUNS.load(Ordering::Relaxed).max(1) {
        drop(out.take()); // free the previous run's output first
        let t = Instant::now();
        out = Some(f());
        best = best.min(t.elapsed().as_secs_f64());
    }
    (out.expect("at least one run"), best)
}

fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    RUNS.store(args.runs, Ordering::Relaxed);
    let total = args.mb * 1_000_000;
    if !args.json {
        eprintln!("generating {} MB (50% text-like, 50% random)...", args.mb);
    }
    let data = generate(total);
    let src = data.len() as u64;

    let keys = ContainerKey::from_bytes([7; 32]).derive();
    let chunker = Chunker::new(ChunkerParams::default(), keys.chunker_seed);
    let mut rows = Vec::new();

    // 1. FastCDC chunking.
    let (cuts, s) = timed(|| chunker.cuts(&data).collect::<Vec<_>>());
    rows.push(Row {
        stage: "chunk (FastCDC)",
        input_bytes: src,
        seconds: s,
        note: format!(
            "{} chunks, avg {:.0} KiB",
            cuts.len(),
            src as f64 / cuts.len() as f64 / 1024.0
        ),
    });
    let chunks: Vec<&[u8]> = cuts.iter().map(|&(o, n)| &data[o..o + n]).collect();

    // 2. Keyed BLAKE3 chunk ids.
    let (ids, s) = timed(|| {
        chunks
            .iter()
            .map(|c| keys.chunk_id(c))
            .collect::<Vec<ChunkId>>()
    });
    rows.push(Row {
        stage: "chunk id (keyed BLAKE3)",
        input_bytes: src,
        seconds: s,
        note: String::new(),
    });

    // 3. Seal with compression (what a backup does by default).
    let (sealed, s) = timed(|| {
        chunks
            .iter()
            .zip(&ids)
            .map(|(c, id)| seal::seal(&keys.seal, BlobKind::Data, &id.0, c, Compression::default()))
            .collect::<Vec<Vec<u8>>>()
    });
    let sealed_bytes: u64 = sealed.iter().map(|b| b.len() as u64).sum();
    rows.push(Row {
        stage: "seal (zstd-3 + XChaCha20-Poly1305)",
        input_bytes: src,
        seconds: s,
        note: format!(
            "{:.1}% of input after sealing",
            100.0 * sealed_bytes as f64 / src as f64
        ),
    });

    // 3b. Seal without compression: the cipher alone.
    let (off_bytes, s) = timed(|| {
        chunks
            .iter()
            .zip(&ids)
            .map(|(c, id)| {
                black_box(seal::seal(
                    &keys.seal,
                    BlobKind::Data,
                    &id.0,
                    c,
                    Compression::Off,
                ))
                .len() as u64
            })
            .sum::<u64>()
    });
    rows.push(Row {
        stage: "seal (compression off)",
        input_bytes: src,
        seconds: s,
        note: format!("{off_bytes} bytes out"),
    });

    // 3c. Where sealing time goes: zstd alone on the chunks seal compressed.
    let compressed: Vec<&[u8]> = chunks
        .iter()
        .zip(&sealed)
        .filter(|(c, b)| b.len() < c.len())
        .map(|(c, _)| *c)
        .collect();
    let compressed_bytes: u64 = compressed.iter().map(|c| c.len() as u64).sum();
    let (zbytes, s) = timed(|| {
        compressed
            .iter()
            .map(|c| zstd::bulk::compress(c, 3).expect("zstd").len() as u64)
            .sum::<u64>()
    });
    rows.push(Row {
        stage: "seal / zstd -3 alone",
        input_bytes: compressed_bytes,
        seconds: s,
        note: format!(
            "the {} compressible chunks only, ratio {:.2}",
            compressed.len(),
            compressed_bytes as f64 / zbytes.max(1) as f64
        ),
    });

    // 4. Open (decrypt + decompress), checking every byte came back.
    let (ok, s) = timed(|| {
        sealed.iter().zip(&ids).zip(&chunks).all(|((b, id), c)| {
            seal::open(&keys.seal, BlobKind::Data, &id.0, b).is_ok_and(|p| p == *c)
        })
    });
    assert!(ok, "open returned different bytes");
    rows.push(Row {
        stage: "open (decrypt + decompress)",
        input_bytes: sealed_bytes,
        seconds: s,
        note: String::new(),
    });

    // 5. Packs of 16 MiB: append sealed blobs, seal the header, pad, hash.
    let (packs, s) = timed(|| {
        let mut packs: Vec<FinishedPack> = Vec::new();
        let cap = DEFAULT_PACK_TARGET + 4 * 1024 * 1024;
        let mut b = PackBuilder::with_capacity(cap);
        for ((blob, id), c) in sealed.iter().zip(&ids).zip(&chunks) {
            b.add(BlobKind::Data, BlobId::from(*id), blob, c.len() as u32);
            if b.len() >= DEFAULT_PACK_TARGET {
                let full = std::mem::replace(&mut b, PackBuilder::with_capacity(cap));
                packs.push(full.finish(&keys.seal));
            }
        }
        if !b.is_empty() {
            packs.push(b.finish(&keys.seal));
        }
        packs
    });
    let pack_bytes: u64 = packs.iter().map(|p| p.bytes.len() as u64).sum();
    rows.push(Row {
        stage: "pack build + finish",
        input_bytes: sealed_bytes,
        seconds: s,
        note: format!(
            "{} packs, {:.1}% padding",
            packs.len(),
            100.0 * (pack_bytes - sealed_bytes) as f64 / sealed_bytes as f64
        ),
    });
    drop(sealed);

    // 6. Erasure-code each pack into 4+2 fragments.
    let (frags, s) = timed(|| {
        packs
            .iter()
            .map(|p| erasure::encode(&p.id, &p.bytes, K, M).expect("encode"))
            .collect::<Vec<_>>()
    });
    let frag_bytes: u64 = frags.iter().flatten().map(|f| f.bytes.len() as u64).sum();
    rows.push(Row {
        stage: "erasure encode 4+2",
        input_bytes: pack_bytes,
        seconds: s,
        note: format!(
            "{:.2}x pack bytes stored",
            frag_bytes as f64 / pack_bytes as f64
        ),
    });

    // 6b. Where encoding time goes: the Reed-Solomon math alone on prepared
    // shards, and plain BLAKE3 over the fragments (FragmentId).
    let shard_sets: Vec<Vec<Vec<u8>>> = packs
        .iter()
        .map(|p| {
            let slen = erasure::shard_len(p.bytes.len(), K);
            (0..K as usize)
                .map(|i| {
                    let start = (i * slen).min(p.bytes.len());
                    let end = ((i + 1) * slen).min(p.bytes.len());
                    let mut v = p.bytes[start..end].to_vec();
                    v.resize(slen, 0);
                    v
                })
                .collect()
        })
        .collect();
    let (parity, s) = timed(|| {
        shard_sets
            .iter()
            .map(|sh| reed_solomon_simd::encode(K as usize, M as usize, sh).expect("rs encode"))
            .collect::<Vec<_>>()
    });
    rows.push(Row {
        stage: "erasure encode 4+2 / RS math alone",
        input_bytes: pack_bytes,
        seconds: s,
        note: "reed_solomon_simd::encode on prepared shards".into(),
    });
    let (h, s) = timed(|| {
        frags
            .iter()
            .flatten()
            .fold(0u8, |a, f| a ^ blake3::hash(&f.bytes).as_bytes()[0])
    });
    black_box(h);
    rows.push(Row {
        stage: "erasure encode 4+2 / BLAKE3 of fragments",
        input_bytes: frag_bytes,
        seconds: s,
        note: "FragmentId::of, single thread".into(),
    });

    // 7. Decode with all data fragments present (the common restore case).
    let (ok, s) = timed(|| {
        frags.iter().zip(&packs).all(|(f, p)| {
            let have: Vec<&[u8]> = f[..K as usize].iter().map(|f| &f.bytes[..]).collect();
            erasure::decode(&have).is_ok_and(|b| b == p.bytes)
        })
    });
    assert!(ok, "decode (no loss) returned different bytes");
    rows.push(Row {
        stage: "erasure decode (no loss)",
        input_bytes: pack_bytes,
        seconds: s,
        note: "data fragments only; concat + BLAKE3 check".into(),
    });

    // 8. Decode with data fragments 0 and 1 missing. Like the other decode
    // rows, each rebuilt pack is compared and dropped at once, as a restore
    // drops it after writing its blobs.
    let (ok, s) = timed(|| {
        frags.iter().zip(&packs).all(|(f, p)| {
            let have: Vec<&[u8]> = f[2..].iter().map(|f| &f.bytes[..]).collect();
            erasure::decode(&have).is_ok_and(|b| b == p.bytes)
        })
    });
    assert!(ok, "decode (2 data missing) returned different bytes");
    rows.push(Row {
        stage: "erasure decode (2 data missing)",
        input_bytes: pack_bytes,
        seconds: s,
        note: "Reed-Solomon recovery + BLAKE3 check".into(),
    });
    drop(frags);

    // 8b. The Reed-Solomon recovery alone, on the same inputs.
    let (n, s) = timed(|| {
        shard_sets
            .iter()
            .zip(&parity)
            .map(|(sh, par)| {
                let originals = [(2usize, &sh[2][..]), (3, &sh[3][..])];
                let recovery = [(0usize, &par[0][..]), (1, &par[1][..])];
                reed_solomon_simd::decode(K as usize, M as usize, originals, recovery)
                    .expect("rs decode")
                    .len()
            })
            .sum::<usize>()
    });
    assert_eq!(n, 2 * shard_sets.len());
    rows.push(Row {
        stage: "erasure decode (2 data missing) / RS math alone",
        input_bytes: pack_bytes,
        seconds: s,
        note: "reed_solomon_simd::decode, 2 originals + 2 recovery".into(),
    });
    drop(shard_sets);
    drop(parity);
    drop(packs);

    let hwm_kib = vm_hwm_kib();
    let backup_s: f64 = rows
        .iter()
        .filter(|r| {
            matches!(
                r.stage,
                "chunk (FastCDC)"
                    | "chunk id (keyed BLAKE3)"
                    | "seal (zstd-3 + XChaCha20-Poly1305)"
                    | "pack build + finish"
                    | "erasure encode 4+2"
            )
        })
        .map(|r| r.seconds)
        .sum();

    if args.json {
        let items: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "    {{\"stage\": {}, \"input_bytes\": {}, \"seconds\": {:.6}, \"mb_per_s\": {:.1}, \"src_mb_per_s\": {:.1}, \"note\": {}}}",
                    json_str(r.stage),
                    r.input_bytes,
                    r.seconds,
                    r.input_bytes as f64 / 1e6 / r.seconds,
                    src as f64 / 1e6 / r.seconds,
                    json_str(&r.note)
                )
            })
            .collect();
        println!("{{");
        println!("  \"source_bytes\": {src},");
        println!("  \"chunks\": {},", cuts.len());
        println!("  \"threads\": 1,");
        println!("  \"runs\": {},", args.runs);
        println!(
            "  \"backup_path_seconds\": {backup_s:.6},\n  \"backup_path_mb_per_s\": {:.1},",
            src as f64 / 1e6 / backup_s
        );
        println!(
            "  \"peak_rss_mib\": {},",
            hwm_kib.map_or("null".into(), |k| format!("{:.1}", k as f64 / 1024.0))
        );
        println!("  \"stages\": [\n{}\n  ]", items.join(",\n"));
        println!("}}");
    } else {
        println!(
            "trove-bench: {:.0} MB generated (50% text-like, 50% random), single thread, best of {} runs",
            src as f64 / 1e6,
            args.runs
        );
        println!(
            "{:<36} {:>9} {:>8} {:>9} {:>9}  note",
            "stage", "input MB", "seconds", "MB/s in", "MB/s src"
        );
        for r in &rows {
            // "stage / part" rows time one call of the stage above alone.
            let name = match r.stage.split_once(" / ") {
                Some((_, part)) => format!("  of which {part}"),
                None => r.stage.to_owned(),
            };
            println!(
                "{:<36} {:>9.1} {:>8.3} {:>9.1} {:>9.1}  {}",
                name,
                r.input_bytes as f64 / 1e6,
                r.seconds,
                r.input_bytes as f64 / 1e6 / r.seconds,
                src as f64 / 1e6 / r.seconds,
                r.note
            );
        }
        println!(
            "backup path (chunk+id+seal+pack+encode): {:.3} s, {:.1} MB/s of source per core",
            backup_s,
            src as f64 / 1e6 / backup_s
        );
        match hwm_kib {
            Some(k) => println!("peak RSS (VmHWM): {:.1} MiB", k as f64 / 1024.0),
            None => println!("peak RSS: unknown (no /proc/self/status)"),
        }
    }
}
