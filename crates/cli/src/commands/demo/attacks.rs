//! What the demo does to the backup: a thief's overwrites, a corrupted
//! fragment, and the ransomware that encrypts files and deletes history.

use anyhow::{bail, Result};
use std::path::Path;

/// What a thief holding `transport.key` can try against a node: overwrite
/// every metadata object of the owner with one byte. Returns how many
/// attempts the node refused; any accepted one is an error.
pub fn thief_overwrites(home: &Path, ticket: &str) -> Result<u64> {
    use trove_peer::{Peer, PeerError};
    let seed: [u8; 32] = std::fs::read(home.join("transport.key"))?
        .try_into()
        .map_err(|_| anyhow::anyhow!("transport.key is not 32 bytes"))?;
    let client = trove_node::NodeClient::start(seed, &super::loopback())?;
    let node = client.peer("friend-1", &ticket.parse()?)?;
    let mut refused = 0;
    for key in node.list_meta(None)? {
        match node.put_meta(&key, b"x") {
            Err(PeerError::MetaRejected { .. }) => refused += 1,
            Ok(()) => bail!("the node let {key} be overwritten"),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(refused)
}

/// Whether a fragment file holds a data shard: its header's index (byte 7)
/// is below `k` (byte 5), see docs/design.md §3.6.
fn is_data_shard(path: &Path) -> bool {
    use std::io::Read;
    let mut header = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .is_ok_and(|()| &header[..4] == b"TRVF" && header[7] < header[5])
}

/// Flip a byte in the middle of the largest data shard on a folder peer:
/// restore reads data shards first, so it meets this one for sure.
pub fn corrupt_a_data_shard(peer_dir: &Path) -> Result<std::path::PathBuf> {
    use anyhow::Context;
    let victim = std::fs::read_dir(peer_dir.join("fragments"))?
        .filter_map(|e| e.ok())
        .flat_map(|shard| {
            std::fs::read_dir(shard.path())
                .into_iter()
                .flatten()
                .filter_map(|e| e.ok())
        })
        .map(|e| e.path())
        .filter(|p| is_data_shard(p))
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .with_context(|| format!("{} holds no data fragment", peer_dir.display()))?;
    let mut bytes = std::fs::read(&victim)?;
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    std::fs::write(&victim, &bytes)?;
    Ok(victim)
}

/// Ransomware's first move: every file under `dir` replaced by noise of the
/// same length (as an encryption would). Returns how many files.
pub fn encrypt_files(dir: &Path) -> Result<u64> {
    let mut n = 0;
    let mut next = super::sample::noise(0xC0FF_EE00_DEAD_BEEF);
    for e in walk(dir)? {
        let len = std::fs::metadata(&e)?.len() as usize;
        let noise: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        std::fs::write(&e, noise)?;
        n += 1;
    }
    Ok(n)
}

/// The regular files under `dir`, not following links.
fn walk(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let t = e.file_type()?;
        if t.is_dir() {
            files.extend(walk(&e.path())?);
        } else if t.is_file() {
            files.push(e.path());
        }
    }
    Ok(files)
}
