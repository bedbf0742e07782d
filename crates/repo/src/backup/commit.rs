//! Stage 3 of a backup: the summary and the new file cache, the index
//! segment naming every pack not yet published, the snapshot manifest; one
//! local transaction commits them (the commit point, invariant 4 of
//! docs/design.md §Invariants); then they are replicated to the peers.

use super::pipeline::Stored;
use super::prepare::Prepared;
use crate::error::Result;
use crate::home::{Home, Owner};
use crate::index::{FileCacheUpdate, FileEntry};
use crate::meta::sync_meta;
use crate::pending::PendingCommit;
use crate::progress::Progress;
use crate::scan::{SkippedPath, UnreadablePath};
use std::collections::HashSet;
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
        lookups,
        scan,
    } = prepared;
    let cid = container.manifest.id;
    let mut unreadable = scan.unreadable;
    let mut files = FileCacheUpdate::default();
    // Cache entries of paths this backup walked; the rest are gone.
    let mut in_cache = 0u64;
    let mut summary = SnapshotSummary {
        dirs: scan.dirs,
        blobs_new: stored.blobs_new,
        packs_new: stored.packs.len() as u64,
        bytes_stored: stored.fragment_bytes,
        ..Default::default()
    };
    for (file, result) in scan.files.iter().zip(&stored.files) {
        in_cache += u64::from(file.in_cache);
        if file.cached {
            // Unchanged: its entry stays as it is.
            summary.files_unchanged += 1;
            summary.bytes_total += file.stat.size;
            continue;
        }
        let key = file.path.as_os_str().as_bytes().to_vec();
        match result {
            Some(Ok(read)) => {
                if file.in_cache {
                    summary.files_changed += 1;
                } else {
                    summary.files_new += 1;
                }
                summary.bytes_read += read.len;
                summary.bytes_total += read.len;
                let entry = FileEntry {
                    chunks: read.chunks.clone(),
                    ..file.stat.clone()
                };
                files.upsert.push((key, entry));
            }
            Some(Err(e)) => {
                unreadable.push(UnreadablePath {
                    path: file.path.clone(),
                    error: e.clone(),
                });
                if file.in_cache {
                    files.remove.push(key);
                }
            }
            None if file.in_cache => files.remove.push(key),
            None => {}
        }
    }
    if in_cache < lookups.file_count() {
        let seen: HashSet<&[u8]> = scan
            .files
            .iter()
            .map(|f| f.path.as_os_str().as_bytes())
            .collect();
        files.remove.extend(lookups.files_not_in(&seen)?);
    }
    drop(lookups);
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
    crate::pending::commit(home, &container, pending, &peers, &files, progress)?;
    // The rest of the replication: a peer that missed the new objects gets
    // them at the next backup (sync_meta), and `trove check` says so.
    sync_meta(home, owner, &container, &peers, false, progress)?;
    Ok(Committed {
        snapshot,
        unreadable,
        skipped: scan.skipped,
    })
}
