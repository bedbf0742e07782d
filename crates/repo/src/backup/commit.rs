//! Stage 3 of a backup: the summary and the new file cache, the index
//! segment naming every pack not yet published, the snapshot manifest; one
//! local transaction commits them (the commit point, invariant 4 of
//! docs/design.md §Invariants); then they are replicated to the peers.

use super::pipeline::Stored;
use super::prepare::Prepared;
use crate::error::Result;
use crate::home::{Home, Owner};
use crate::index::FileEntry;
use crate::meta::sync_meta;
use crate::pending::PendingCommit;
use crate::progress::Progress;
use crate::scan::{SkippedPath, UnreadablePath};
use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use trove_core::envelope;
use trove_core::manifest::{SnapshotManifest, SnapshotSummary};
use trove_core::seal::BlobKind;
use trove_core::SnapshotId;

/// What was committed.
pub(super) struct Committed {
    pub snapshot: SnapshotManifest,
    pub unreadable: Vec<UnreadablePath>,
    pub skipped: Vec<SkippedPath>,
}

pub(super) fn commit(
    home: &Home,
    owner: &Owner,
    prepared: Prepared,
    stored: Stored,
    progress: &dyn Progress,
) -> Result<Committed> {
    let Prepared {
        container,
        peers,
        cache,
        scan,
        ..
    } = prepared;
    let cid = container.manifest.id;
    let mut unreadable = scan.unreadable;
    let mut files_cache = HashMap::new();
    let mut summary = SnapshotSummary {
        dirs: scan.dirs,
        blobs_new: stored.blobs_new,
        packs_new: stored.packs.len() as u64,
        bytes_stored: stored.fragment_bytes,
        ..Default::default()
    };
    for (file, result) in scan.files.into_iter().zip(&stored.files) {
        let key = file.path.as_os_str().as_bytes().to_vec();
        let chunks = if file.cached {
            summary.files_unchanged += 1;
            summary.bytes_total += file.stat.size;
            file.stat.chunks
        } else {
            match result {
                Some(Ok(read)) => {
                    if cache.contains_key(&key) {
                        summary.files_changed += 1;
                    } else {
                        summary.files_new += 1;
                    }
                    summary.bytes_read += read.len;
                    summary.bytes_total += read.len;
                    read.chunks.clone()
                }
                Some(Err(e)) => {
                    unreadable.push(UnreadablePath {
                        path: file.path,
                        error: e.clone(),
                    });
                    continue;
                }
                None => continue,
            }
        };
        files_cache.insert(
            key,
            FileEntry {
                chunks,
                ..file.stat
            },
        );
    }
    summary.unreadable = unreadable.len() as u64;

    let unpublished = home.index.unpublished_packs(&cid)?;
    let segment = if unpublished.is_empty() {
        None
    } else {
        let seg = crate::meta::next_segment(home, cid, unpublished)?;
        let env = crate::meta::seal_segment(owner, &container, &seg);
        Some((seg, env))
    };
    let parent = home.index.snapshots(&cid)?.last().map(|s| s.id);
    let snapshot = SnapshotManifest {
        id: SnapshotId::random(),
        container: cid,
        time_unix_ns: crate::time::now_ns(),
        host: crate::lock::hostname(),
        sources: container.manifest.sources.clone(),
        root: stored.root,
        parent,
        summary,
    };
    let env = envelope::seal_signed(
        &owner.identity,
        &container.keys.seal,
        BlobKind::SnapshotManifest,
        &snapshot.id.0,
        0,
        &snapshot.encode(),
    );
    // Peers first: the snapshot counts once enough peers hold it.
    let pending = PendingCommit {
        snapshot: snapshot.clone(),
        snapshot_envelope: env,
        segment,
    };
    crate::pending::commit(
        home,
        &container,
        pending,
        &peers,
        (&files_cache, &cache),
        progress,
    )?;
    // The rest of the replication: a peer that missed the new objects gets
    // them at the next backup (sync_meta), and `trove check` says so.
    sync_meta(home, owner, &container, &peers, false, progress)?;
    Ok(Committed {
        snapshot,
        unreadable,
        skipped: scan.skipped,
    })
}
