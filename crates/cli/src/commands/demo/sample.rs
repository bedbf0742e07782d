//! The demo's sample data, and the comparison of a restore with its source.

use anyhow::Result;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// xorshift64: the same seed always gives the same noise.
pub fn noise(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// Deterministic sample data: text, binary noise, a large file, duplicates,
/// nested and empty folders, a symlink and unusual modes.
pub fn make_sample(root: &Path) -> Result<u64> {
    let mut next = noise(0x9E37_79B9_7F4A_7C15);
    const WORDS: &[&str] = &[
        "backup", "photo", "letter", "tax", "family", "garden", "holiday", "invoice", "recipe",
        "poem", "draft", "meeting", "budget", "school", "music", "travel", "notes", "health",
        "house", "car",
    ];
    let mut total = 0u64;
    for d in [
        "papers/2024",
        "papers/2025",
        "photos/summer",
        "photos/winter",
        "code/src",
        "empty-folder",
    ] {
        std::fs::create_dir_all(root.join(d))?;
    }
    for i in 0..120 {
        let dir = ["papers/2024", "papers/2025", "code/src"][i % 3];
        let len = 200 + (next() % 60_000) as usize;
        let mut text = String::with_capacity(len);
        while text.len() < len {
            text.push_str(WORDS[(next() % WORDS.len() as u64) as usize]);
            text.push(if next().is_multiple_of(12) { '\n' } else { ' ' });
        }
        std::fs::write(root.join(format!("{dir}/doc-{i:03}.txt")), &text)?;
        total += text.len() as u64;
    }
    for i in 0..24 {
        let dir = ["photos/summer", "photos/winter"][i % 2];
        let len = 100_000 + (next() % 3_000_000) as usize;
        let data: Vec<u8> = (0..len.div_ceil(8))
            .flat_map(|_| next().to_le_bytes())
            .take(len)
            .collect();
        std::fs::write(root.join(format!("{dir}/img-{i:02}.jpg")), &data)?;
        total += len as u64;
    }
    // A large file, streamed by the chunker rather than read whole.
    let mut big = std::fs::File::create(root.join("photos/video.mp4"))?;
    for _ in 0..(40 * 1024 * 1024 / 65536) {
        let block: Vec<u8> = (0..8192).flat_map(|_| next().to_le_bytes()).collect();
        big.write_all(&block)?;
        total += block.len() as u64;
    }
    std::fs::copy(
        root.join("papers/2024/doc-000.txt"),
        root.join("papers/copy-of-doc-000.txt"),
    )?;
    std::fs::write(root.join("empty-file"), b"")?;
    std::os::unix::fs::symlink("papers/2025", root.join("latest-papers"))?;
    std::fs::set_permissions(
        root.join("code/src/doc-002.txt"),
        std::fs::Permissions::from_mode(0o755),
    )?;
    std::fs::set_permissions(
        root.join("papers/2025/doc-001.txt"),
        std::fs::Permissions::from_mode(0o600),
    )?;
    Ok(total)
}

/// Compare two trees: content, kind, permission bits, symlink targets and
/// file mtimes. Returns every difference found.
pub fn compare(a: &Path, b: &Path) -> Result<(u64, u64, Vec<String>)> {
    let mut diffs = Vec::new();
    let (mut files, mut bytes) = (0u64, 0u64);
    compare_into(a, b, &mut files, &mut bytes, &mut diffs)?;
    Ok((files, bytes, diffs))
}

fn compare_into(
    a: &Path,
    b: &Path,
    files: &mut u64,
    bytes: &mut u64,
    diffs: &mut Vec<String>,
) -> Result<()> {
    let ma = std::fs::symlink_metadata(a)?;
    let mb = match std::fs::symlink_metadata(b) {
        Ok(m) => m,
        Err(_) => {
            diffs.push(format!("missing: {}", b.display()));
            return Ok(());
        }
    };
    if ma.file_type() != mb.file_type() {
        diffs.push(format!("kind differs: {}", b.display()));
        return Ok(());
    }
    if ma.file_type().is_symlink() {
        if std::fs::read_link(a)? != std::fs::read_link(b)? {
            diffs.push(format!("symlink target differs: {}", b.display()));
        }
        return Ok(());
    }
    if ma.mode() & 0o7777 != mb.mode() & 0o7777 {
        diffs.push(format!(
            "mode differs: {} ({:o} vs {:o})",
            b.display(),
            ma.mode() & 0o7777,
            mb.mode() & 0o7777
        ));
    }
    if ma.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(a)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort();
        let extra = std::fs::read_dir(b)?
            .filter_map(|e| e.ok())
            .filter(|e| !names.contains(&e.file_name()))
            .count();
        if extra > 0 {
            diffs.push(format!("{extra} unexpected entries in {}", b.display()));
        }
        for n in names {
            compare_into(&a.join(&n), &b.join(&n), files, bytes, diffs)?;
        }
        return Ok(());
    }
    *files += 1;
    *bytes += ma.len();
    if (ma.mtime(), ma.mtime_nsec()) != (mb.mtime(), mb.mtime_nsec()) {
        diffs.push(format!("mtime differs: {}", b.display()));
    }
    if std::fs::read(a)? != std::fs::read(b)? {
        diffs.push(format!("content differs: {}", b.display()));
    }
    Ok(())
}
