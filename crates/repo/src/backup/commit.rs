//! Stage 3 of a backup: the summary and the new file cache, the index
//! segment naming every pack not yet published, the snapshot manifest; one
//! local transaction commits them (the commit point, invariant 4 of
//! docs/design.md §Invariants); then they are replicated to the peers.

use super::pipeline::{FileResult, FolderTrees, Stored};
use super::prepare::Prepared;
use super::seen::Seen;
use crate::error::Result;
use crate::home::{Home, Owner};
use crate::index::{FileCacheUpdate, FileEntry};
use crate::index::{FolderCache, FolderTree, Lookups};
use crate::meta::sync_meta;
use crate::pending::PendingCommit;
use crate::progress::Progress;
use crate::scan::Scan;
use crate::scan::{SkippedPath, UnreadablePath};
use std::collections::HashSet;
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
        mut scan,
    } = prepared;
    let cid = container.manifest.id;
    let mut unreadable = std::mem::take(&mut scan.unreadable);
    // Folders a guided walk kept count as they were.
    let mut summary = SnapshotSummary {
        dirs: scan.dirs + scan.kept.dirs,
        files_unchanged: scan.kept.files,
        bytes_total: scan.kept.bytes,
        blobs_new: stored.blobs_new,
        packs_new: stored.packs.len() as u64,
        bytes_stored: stored.fragment_bytes,
        ..Default::default()
    };
    for (slot, (file, result)) in scan.files.iter().zip(&stored.files).enumerate() {
        if file.cached {
            summary.files_unchanged += 1;
            summary.bytes_total += file.stat.size;
            continue;
        }
        match result {
            Some(Ok(read)) => {
                if file.in_cache {
                    summary.files_changed += 1;
                } else {
                    summary.files_new += 1;
                }
                summary.bytes_read += read.len;
                summary.bytes_total += read.len;
            }
            Some(Err(e)) => unreadable.push(UnreadablePath {
                path: scan.path(slot),
                error: e.clone(),
            }),
            None => {}
        }
    }
    let mut files = file_cache_update(&scan, stored.files, &stored.seen, &lookups)?;
    folder_trees_update(&scan, &stored.trees, &lookups, &mut files)?;
    drop(lookups);
    summary.unreadable = unreadable.len() as u64;
    // The walk is not needed past this point, and the commit's peak (the
    // segment, its envelope and the pending record, all at once) is next.
    let skipped = std::mem::take(&mut scan.skipped);
    drop(scan);

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
        skipped,
    })
}

/// The file cache's new records: one per folder where a file was read,
/// added, removed or became unreadable (or whose record predates a blob
/// leaving the dedup set); folders the walk no longer has are removed.
/// Each folder's chunk lists are made from the walk and the read results
/// as its record is made, and the record is serialized at once: lists for
/// every file held together were 27 MB of the commit's peak on 200,000
/// files.
fn file_cache_update(
    scan: &Scan,
    mut read: Vec<Option<FileResult>>,
    seen: &Seen,
    lookups: &Lookups,
) -> Result<FileCacheUpdate> {
    let scanned = &scan.files;
    // A file's cache entry now: none for a file not read (unreadable, or
    // the backup stopped). Each slot is in one folder, so taken once.
    let mut entry = |slot: usize| -> Option<(Vec<u8>, FileEntry)> {
        let file = &scanned[slot];
        let chunks = if file.cached {
            scan.cached_chunks(slot).to_vec()
        } else {
            seen.chunks(read[slot].take()?.ok()?.chunks.as_slice())
        };
        let name = scan.name(slot).to_vec();
        let stat = &file.stat;
        Some((
            name,
            FileEntry {
                size: stat.size,
                mtime_ns: stat.mtime_ns,
                ctime_ns: stat.ctime_ns,
                inode: stat.inode,
                chunks,
            },
        ))
    };
    let mut update = FileCacheUpdate::default();
    for folder in scan.folders.iter().filter(|f| !f.clean) {
        let mut files: Vec<(Vec<u8>, FileEntry)> = folder
            .slots
            .iter()
            .filter_map(|&slot| entry(slot as usize))
            .collect();
        // Looked up by binary search; the sources that are files come in
        // the container's order.
        files.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if !files.is_empty() {
            let record = FolderCache {
                epoch: lookups.epoch,
                files,
            };
            update.upsert(folder.key.clone(), &record);
        } else if folder.had_record {
            update.remove.push(folder.key.clone());
        }
    }
    // Records of folders not walked (gone), looked for only when there are
    // more records than walked folders had: reading every record costs. A
    // guided walk leaves most folders alone: those are not gone, and what
    // went is taken out at the next whole walk.
    let walked_with_record = scan.folders.iter().filter(|f| f.had_record).count() as u64;
    if !scan.guided && lookups.folders > walked_with_record {
        let walked: HashSet<&[u8]> = scan.folders.iter().map(|f| f.key.as_slice()).collect();
        update.remove.extend(lookups.folders_not_in(&walked)?);
    }
    Ok(update)
}

/// The folder trees to record: each walked folder's new tree where it
/// differs from the record (none is written on an unchanged re-run), and
/// no record for a folder with a part left out or, after a whole walk, for
/// a folder that is gone.
fn folder_trees_update(
    scan: &Scan,
    trees: &FolderTrees,
    lookups: &Lookups,
    update: &mut FileCacheUpdate,
) -> Result<()> {
    for (place, tree) in trees {
        let key = scan.place_key(*place);
        let had = lookups.stored_tree(key);
        match tree {
            Some((tree, sum)) => {
                let now = FolderTree {
                    epoch: lookups.epoch,
                    tree: *tree,
                    files: sum.files,
                    bytes: sum.bytes,
                    dirs: sum.dirs,
                };
                if had != Some(now) {
                    update.trees.push((key.to_vec(), now));
                }
            }
            None if had.is_some() => update.forget_trees.push(key.to_vec()),
            None => {}
        }
    }
    if !scan.guided {
        let walked: HashSet<&[u8]> = trees.iter().map(|(p, _)| scan.place_key(*p)).collect();
        update.forget_trees.extend(lookups.trees_not_in(&walked)?);
    }
    Ok(())
}
