//! Folder peers: a directory on a second disk, a USB drive or a NAS mount.
//!
//! Layout under the peer folder:
//!
//! ```text
//! trove-peer                          marker: "trove folder peer v1"
//! fragments/<2 hex>/<64 hex>          fragments, sharded by their first byte
//! meta/<container>/container          container manifest
//! meta/<container>/snapshots/<id>     snapshot manifests
//! meta/<container>/index/<id>         index segments
//! tmp/                                in-progress writes
//! trash/<secs>.<nanos>-<64 hex>       deleted fragments awaiting purge
//! trash/meta/<secs>.<nanos>-<key>     replaced or deleted metadata objects
//! handover/<64 hex>                   hand-over certificates (master secret rotation)
//! ```
//!
//! Every write goes to `tmp/`, is fsynced, renamed into place, and the target
//! directory is fsynced ([`crate::durable`]), so a killed process leaves at
//! most a stray file in `tmp/`, never a half-written fragment or manifest.
//! Only ids and the caller's (encrypted) bytes are written; the marker is the
//! only other file. Metadata objects are admitted by [`mod@crate::admit`]: a
//! folder peer pins each container to the signer of the objects it already
//! holds for it.

use std::fs::{self, File};
use std::io::{self, ErrorKind, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use trove_core::handover::HandOver;
use trove_core::keys::PublicIdentity;
use trove_core::{ContainerId, FragmentId, SegmentId, SnapshotId};

use crate::admit::{self, Admission};
use crate::audit::{self, AuditRange};
use crate::durable::{self, sync_dir};
use crate::layout::{
    is_shard_name, meta_file_name, parse_meta_trash_name, parse_trash_name, trash_stamp,
    CONTAINER_FILE, FRAGMENTS, INDEX, META, SNAPSHOTS, TRASH, TRASH_META,
};
use crate::peer::{DeletedMeta, MetaKey, Peer, PeerError, PeerStat};

/// Name of the marker file that makes a folder a peer folder.
pub const MARKER_FILE: &str = "trove-peer";
/// Prefix of the marker's first line; the format version follows it.
const MARKER_PREFIX: &str = "trove folder peer v";
/// The folder format this code writes and reads.
pub const FOLDER_FORMAT_VERSION: u32 = 1;
/// Files in `tmp/` older than this are leftovers of a killed process.
const STALE_TMP_AGE: Duration = Duration::from_secs(3600);

const TMP: &str = "tmp";

/// What [`FolderPeer::put_meta_as`] did with an admitted object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaStored {
    /// The same bytes were already there.
    Unchanged,
    /// Stored; nothing was held before.
    New,
    /// Stored; the copy held before is in the trash.
    Replaced,
}

/// A peer that is a directory on a locally mounted filesystem.
#[derive(Debug, Clone)]
pub struct FolderPeer {
    name: String,
    root: PathBuf,
    label: String,
    /// Serialises metadata writes of this process: admission reads the held
    /// copy, then replaces it, and two concurrent puts must not interleave
    /// (an older revision would win).
    meta_lock: Arc<Mutex<()>>,
}

impl FolderPeer {
    /// Make `path` a peer folder (creating the directory if needed) and open
    /// it. Creating an existing peer folder just opens it; a non-empty folder
    /// that is not a peer folder is refused so Trove never scatters its
    /// directories among someone's files.
    pub fn create(name: &str, path: &Path) -> Result<FolderPeer, PeerError> {
        let peer = FolderPeer::new(name, path);
        durable::create_dir_all(path)
            .map_err(|e| peer.classify_local("creating the folder", true, e))?;
        if peer.marker_present() {
            return FolderPeer::open(name, path);
        }
        // Only our own subdirectories may be there (a create interrupted
        // before the marker was written).
        let entries =
            fs::read_dir(path).map_err(|e| peer.classify_local("reading the folder", false, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| peer.classify_local("reading the folder", false, e))?;
            let file_name = entry.file_name();
            if ![FRAGMENTS, META, TMP, TRASH]
                .iter()
                .any(|d| file_name == *d)
            {
                return Err(PeerError::Refused {
                    peer: peer.label.clone(),
                    reason: format!(
                        "folder {} is not empty and is not a Trove peer folder: \
                         choose an empty folder, e.g. a new subfolder",
                        path.display()
                    ),
                });
            }
        }
        for dir in [FRAGMENTS, META, TMP, TRASH] {
            durable::create_dir(&path.join(dir))
                .map_err(|e| peer.classify_local("creating the peer folder", true, e))?;
        }
        // The marker goes last and atomically: its presence means the folder
        // is complete.
        let marker = format!("{MARKER_PREFIX}{FOLDER_FORMAT_VERSION}\n");
        durable::replace(
            &path.join(MARKER_FILE),
            marker.as_bytes(),
            Some(&path.join(TMP)),
        )
        .map_err(|e| peer.classify_local("writing the peer marker", true, e))?;
        FolderPeer::open(name, path)
    }

    /// Open an existing peer folder. A missing folder, or one without the
    /// marker (typically an unmounted disk's empty mount point), is
    /// [`PeerError::Unavailable`]. Removes stale files from `tmp/`.
    pub fn open(name: &str, path: &Path) -> Result<FolderPeer, PeerError> {
        let peer = FolderPeer::new(name, path);
        match fs::metadata(path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(PeerError::Unavailable {
                    peer: peer.label,
                    reason: format!("{} is not a folder", path.display()),
                })
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(PeerError::Unavailable {
                    peer: peer.label,
                    reason: format!(
                        "folder {} does not exist: is the disk mounted?",
                        path.display()
                    ),
                })
            }
            Err(e) => return Err(peer.classify_local("opening the folder", false, e)),
        }
        let marker = match fs::read(path.join(MARKER_FILE)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(PeerError::Unavailable {
                    peer: peer.label,
                    reason: format!(
                    "folder {} has no `{MARKER_FILE}` marker, so it is not a Trove peer folder: \
                         is the disk mounted? (a new peer folder must be created first)",
                    path.display()
                ),
                })
            }
            Err(e) => return Err(peer.classify_local("reading the peer marker", false, e)),
        };
        peer.check_marker(&marker)?;
        peer.clean_stale_tmp(SystemTime::now());
        Ok(peer)
    }

    fn new(name: &str, path: &Path) -> FolderPeer {
        FolderPeer {
            name: name.to_owned(),
            root: path.to_owned(),
            label: format!("{name} (dir:{})", path.display()),
            meta_lock: Arc::new(Mutex::new(())),
        }
    }

    /// The peer's name as given to `open`/`create`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The peer folder.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Where the fragment `id` lives (for servers that stream it out).
    pub fn fragment_file(&self, id: &FragmentId) -> PathBuf {
        self.fragment_path(id)
    }

    /// A fresh path in the peer's tmp folder, for a server that receives a
    /// fragment in pieces before [`FolderPeer::adopt_fragment`].
    pub fn new_tmp_path(&self) -> PathBuf {
        let _ = durable::create_dir(&self.root.join(TMP));
        let name = format!("{}.part", hex::encode(rand::random::<[u8; 16]>()));
        self.root.join(TMP).join(name)
    }

    /// Move a fully received file, whose hash the caller has checked, into
    /// place as fragment `id`: fsync it, rename, fsync the directory. Returns
    /// whether it is new (`false`: an intact copy was already there).
    pub fn adopt_fragment(&self, id: &FragmentId, tmp: &Path) -> Result<bool, PeerError> {
        const OP: &str = "storing a received fragment";
        self.ensure_present()?;
        let target = self.fragment_path(id);
        if target.is_file() {
            let _ = fs::remove_file(tmp);
            return Ok(false);
        }
        self.ensure_dir(parent_of(&target), OP)?;
        durable::adopt(tmp, &target).map_err(|e| self.classify(OP, true, e))?;
        Ok(true)
    }

    /// Free the space of fragments and metadata objects deleted or replaced
    /// at least `grace` before `now`. The grace period is the folder owner's
    /// choice (invariant 7, docs/design.md §Invariants). Returns how many
    /// files were purged.
    pub fn purge_expired(&self, grace: Duration, now: SystemTime) -> Result<u64, PeerError> {
        const OP: &str = "purging deleted fragments";
        self.ensure_present()?;
        let mut purged = 0;
        let fragments = self
            .trash_entries(OP)?
            .into_iter()
            .map(|(p, at, _)| (p, at));
        let meta = self
            .meta_trash_entries(OP)?
            .into_iter()
            .map(|(p, at, _)| (p, at));
        for (path, deleted_at) in fragments.chain(meta) {
            let expired = now.duration_since(deleted_at).is_ok_and(|age| age >= grace);
            if expired {
                match fs::remove_file(&path) {
                    Ok(()) => purged += 1,
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(self.classify(OP, true, e)),
                }
            }
        }
        Ok(purged)
    }

    /// Undo a delete: move the most recently deleted copy of `id` back out of
    /// the trash (what [`Peer::undelete_fragment`] does).
    fn restore_deleted(&self, id: &FragmentId) -> Result<bool, PeerError> {
        const OP: &str = "restoring a deleted fragment";
        self.ensure_present()?;
        let newest = self
            .trash_entries(OP)?
            .into_iter()
            .filter(|(_, _, tid)| tid == id)
            .max_by_key(|(_, at, _)| *at);
        let Some((src, _, _)) = newest else {
            return Ok(false);
        };
        let dst = self.fragment_path(id);
        self.ensure_dir(parent_of(&dst), OP)?;
        durable::rename(&src, &dst).map_err(|e| self.classify(OP, true, e))?;
        Ok(true)
    }

    fn check_marker(&self, marker: &[u8]) -> Result<(), PeerError> {
        let text = String::from_utf8_lossy(marker);
        let first = text.lines().next().unwrap_or("").trim();
        let version = first
            .strip_prefix(MARKER_PREFIX)
            .and_then(|v| v.parse::<u32>().ok());
        match version {
            Some(FOLDER_FORMAT_VERSION) => Ok(()),
            Some(v) => Err(PeerError::Corrupt {
                peer: self.label.clone(),
                what: format!(
                    "the folder uses format v{v}, this Trove reads v{FOLDER_FORMAT_VERSION}: \
                     upgrade Trove"
                ),
            }),
            None => Err(PeerError::Corrupt {
                peer: self.label.clone(),
                what: format!(
                    "the `{MARKER_FILE}` marker does not name a folder format; \
                     restore it as `{MARKER_PREFIX}{FOLDER_FORMAT_VERSION}` if this is a peer folder"
                ),
            }),
        }
    }

    /// Remove files of `tmp/` older than an hour: leftovers of a killed
    /// process or a dropped transfer. Best effort: a failure here (e.g. a
    /// read-only disk) must not stop reads. Run at open, and on a schedule
    /// by long-running servers.
    pub fn clean_stale_tmp(&self, now: SystemTime) {
        for (path, _) in self.stale_tmp(STALE_TMP_AGE, now) {
            if let Err(e) = fs::remove_file(&path) {
                tracing::debug!(peer = %self.label, error = %e, "could not remove stale tmp file");
            }
        }
    }

    /// Files of `tmp/` last written at least `age` before `now`, with their
    /// sizes: writes that a killed process left behind (a write in progress
    /// touches its file at every step). Unreadable entries are skipped.
    pub fn stale_tmp(&self, age: Duration, now: SystemTime) -> Vec<(PathBuf, u64)> {
        let Ok(entries) = fs::read_dir(self.root.join(TMP)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            let old = meta
                .modified()
                .is_ok_and(|t| now.duration_since(t).is_ok_and(|a| a >= age));
            if meta.is_file() && old {
                out.push((entry.path(), meta.len()));
            }
        }
        out.sort();
        out
    }

    /// Remove the files of `tmp/` older than `age` (see
    /// [`FolderPeer::stale_tmp`]); returns how many and their bytes. A file
    /// gone meanwhile is not counted.
    pub fn sweep_tmp(&self, age: Duration, now: SystemTime) -> Result<(u64, u64), PeerError> {
        const OP: &str = "removing stale temporary files";
        self.ensure_present()?;
        let (mut files, mut bytes) = (0, 0);
        for (path, len) in self.stale_tmp(age, now) {
            match fs::remove_file(&path) {
                Ok(()) => {
                    files += 1;
                    bytes += len;
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(self.classify(OP, true, e)),
            }
        }
        Ok((files, bytes))
    }

    fn fragment_path(&self, id: &FragmentId) -> PathBuf {
        self.root.join(crate::layout::fragment_path(id))
    }

    /// A stored fragment, open for reading, and its size; `op` names what
    /// was being done in an error.
    fn open_fragment(&self, id: &FragmentId, op: &'static str) -> Result<(File, u64), PeerError> {
        let file = match File::open(self.fragment_path(id)) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(self.missing(format!("fragment {}", id.short())))
            }
            Err(e) => return Err(self.classify(op, false, e)),
        };
        let size = file
            .metadata()
            .map_err(|e| self.classify(op, false, e))?
            .len();
        Ok((file, size))
    }

    fn meta_dir(&self, container: &ContainerId) -> PathBuf {
        self.root.join(crate::layout::meta_dir(container))
    }

    fn meta_path(&self, key: &MetaKey) -> PathBuf {
        self.root.join(crate::layout::meta_path(key))
    }

    fn marker_present(&self) -> bool {
        self.root.join(MARKER_FILE).is_file()
    }

    /// Checked before writes, so an unmounted disk's mount point never gets
    /// written to, and before listings, so it is never listed as empty.
    fn ensure_present(&self) -> Result<(), PeerError> {
        if self.marker_present() {
            Ok(())
        } else {
            Err(self.vanished(None))
        }
    }

    fn vanished(&self, cause: Option<&io::Error>) -> PeerError {
        let cause = cause.map(|e| format!(" ({e})")).unwrap_or_default();
        PeerError::Unavailable {
            peer: self.label.clone(),
            reason: format!(
                "peer folder {} is gone or unreadable{cause}: is the disk mounted?",
                self.root.display()
            ),
        }
    }

    /// NotFound for an absent item, unless the whole folder is gone.
    fn missing(&self, what: String) -> PeerError {
        if self.marker_present() {
            PeerError::NotFound {
                peer: self.label.clone(),
                what,
            }
        } else {
            self.vanished(None)
        }
    }

    /// Map an I/O error to what the caller can act on.
    fn classify(&self, op: &'static str, write: bool, e: io::Error) -> PeerError {
        match self.classify_local(op, write, e) {
            PeerError::Io { source, .. } if !self.marker_present() => self.vanished(Some(&source)),
            other => other,
        }
    }

    /// Like [`Self::classify`] but without checking that the folder is still
    /// there (for `create`/`open`, where it may legitimately not be yet).
    fn classify_local(&self, op: &'static str, write: bool, e: io::Error) -> PeerError {
        let peer = self.label.clone();
        if is_full(&e) {
            PeerError::Full { peer }
        } else if e.kind() == ErrorKind::ReadOnlyFilesystem
            || (write && e.kind() == ErrorKind::PermissionDenied)
        {
            PeerError::ReadOnly { peer }
        } else {
            PeerError::Io {
                peer,
                op,
                source: e,
            }
        }
    }

    /// Create `dir` (under the root) and missing parents, fsyncing each
    /// parent whose entries changed. Never creates the root itself: a
    /// missing root is an unmounted disk, not something to recreate.
    fn ensure_dir(&self, dir: &Path, op: &'static str) -> Result<(), PeerError> {
        if dir.is_dir() {
            return Ok(());
        }
        let parent = parent_of(dir);
        if parent != self.root {
            self.ensure_dir(parent, op)?;
        }
        durable::create_dir(dir)
            .map(|_| ())
            .map_err(|e| self.classify(op, true, e))
    }

    /// Write `parts`, end to end, to `target` so that either the old or the
    /// new content is there after a crash, and the new content is durable
    /// on return.
    fn write_atomic(
        &self,
        target: &Path,
        parts: &[&[u8]],
        op: &'static str,
    ) -> Result<(), PeerError> {
        self.ensure_dir(parent_of(target), op)?;
        self.ensure_dir(&self.root.join(TMP), op)?;
        durable::replace_parts(target, parts, Some(&self.root.join(TMP)))
            .map_err(|e| self.classify(op, true, e))
    }

    /// Store a metadata object if [`admit::admit`] admits it, with `owner`
    /// as the pinned signer when the caller knows it (a node knows its
    /// owner's identity); otherwise the signer of the container's objects
    /// already held is pinned. A replaced copy goes to the trash first.
    pub fn put_meta_as(
        &self,
        key: &MetaKey,
        bytes: &[u8],
        owner: Option<&PublicIdentity>,
    ) -> Result<MetaStored, PeerError> {
        const OP: &str = "writing metadata";
        self.ensure_present()?;
        let _serial = self.meta_lock.lock().unwrap_or_else(|p| p.into_inner());
        let path = self.meta_path(key);
        let held = match fs::read(&path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(self.classify(OP, false, e)),
        };
        let pinned = match owner {
            Some(o) => Some(*o),
            None => self.container_signer(key.container(), OP)?,
        };
        match admit::admit(key, bytes, held.as_deref(), pinned.as_ref()) {
            Err(reason) => Err(PeerError::MetaRejected {
                peer: self.label.clone(),
                key: *key,
                reason: Box::new(reason),
            }),
            Ok(Admission::Unchanged) => {
                // A crash may have hit between rename and directory fsync.
                sync_dir(parent_of(&path)).map_err(|e| self.classify(OP, true, e))?;
                Ok(MetaStored::Unchanged)
            }
            Ok(Admission::Store { replaces }) => {
                if let Some(old) = held.as_deref().filter(|_| replaces) {
                    self.keep_in_trash(key, &path, old, OP)?;
                }
                self.write_atomic(&path, &[bytes], OP)?;
                Ok(if replaces {
                    MetaStored::Replaced
                } else {
                    MetaStored::New
                })
            }
        }
    }

    /// The identity the objects of `container` held here are signed by:
    /// the container manifest's signer, else that of any snapshot or
    /// segment, if one verifies.
    fn container_signer(
        &self,
        container: &ContainerId,
        op: &'static str,
    ) -> Result<Option<PublicIdentity>, PeerError> {
        let others = || -> Result<Vec<MetaKey>, PeerError> {
            let dir = self.meta_dir(container);
            let snapshots: Vec<SnapshotId> = self.list_ids(&dir.join(SNAPSHOTS), op)?;
            let segments: Vec<SegmentId> = self.list_ids(&dir.join(INDEX), op)?;
            Ok(snapshots
                .into_iter()
                .map(|s| MetaKey::Snapshot(*container, s))
                .chain(
                    segments
                        .into_iter()
                        .map(|g| MetaKey::IndexSegment(*container, g)),
                )
                .collect())
        };
        admit::held_signer(
            container,
            others,
            |key| fs::read(self.meta_path(key)).ok(),
            |old| self.held_handover(old),
        )
    }

    /// The hand-over certificate identity `old` made, if this peer holds it.
    pub fn held_handover(&self, old: &PublicIdentity) -> Option<Vec<u8>> {
        fs::read(self.root.join(crate::layout::handover_path(old))).ok()
    }

    /// A new path in `trash/meta/` for a copy of `key` trashed now.
    fn meta_trash_path(&self, key: &MetaKey, op: &'static str) -> Result<PathBuf, PeerError> {
        let dir = self.root.join(TRASH).join(TRASH_META);
        self.ensure_dir(&dir, op)?;
        Ok(dir.join(trash_stamp(&meta_file_name(key))))
    }

    /// Delayed deletion: rename `src` to `dst` in the trash and make both
    /// folders durable. An absent `src` is `Ok` (deleting twice is fine).
    fn move_to_trash(&self, src: &Path, dst: &Path, op: &'static str) -> Result<(), PeerError> {
        match durable::rename(src, dst) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound && self.marker_present() => Ok(()),
            Err(e) => Err(self.classify(op, true, e)),
        }
    }

    /// Keep the held copy of `key` (whose bytes are `held`) in the trash
    /// before it is replaced: a hard link where the file system allows it,
    /// else a durable copy.
    fn keep_in_trash(
        &self,
        key: &MetaKey,
        path: &Path,
        held: &[u8],
        op: &'static str,
    ) -> Result<(), PeerError> {
        let dst = self.meta_trash_path(key, op)?;
        let kept = fs::hard_link(path, &dst)
            .and_then(|()| sync_dir(parent_of(&dst)))
            .or_else(|_| durable::replace(&dst, held, Some(&self.root.join(TMP))));
        kept.map_err(|e| self.classify(op, true, e))
    }

    /// Metadata trash entries: (path, time trashed, key).
    fn meta_trash_entries(
        &self,
        op: &'static str,
    ) -> Result<Vec<(PathBuf, SystemTime, MetaKey)>, PeerError> {
        let entries = match fs::read_dir(self.root.join(TRASH).join(TRASH_META)) {
            Ok(it) => it,
            Err(e) if e.kind() == ErrorKind::NotFound && self.marker_present() => {
                return Ok(Vec::new())
            }
            Err(e) => return Err(self.classify(op, false, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.classify(op, false, e))?;
            let parsed = entry.file_name().to_str().and_then(parse_meta_trash_name);
            match parsed {
                Some((at, key)) => out.push((entry.path(), at, key)),
                None => {
                    tracing::debug!(peer = %self.label, file = ?entry.path(), "ignoring stray file in the metadata trash")
                }
            }
        }
        Ok(out)
    }

    /// Visit every fragment file: (id, size).
    fn for_each_fragment(
        &self,
        op: &'static str,
        mut f: impl FnMut(FragmentId, u64),
    ) -> Result<(), PeerError> {
        let shards = match fs::read_dir(self.root.join(FRAGMENTS)) {
            Ok(it) => it,
            // Created lazily on first write (e.g. a peer created read-only).
            Err(e) if e.kind() == ErrorKind::NotFound && self.marker_present() => return Ok(()),
            Err(e) => return Err(self.classify(op, false, e)),
        };
        for shard in shards {
            let shard = shard.map_err(|e| self.classify(op, false, e))?;
            let shard_name = shard.file_name();
            let Some(shard_name) = shard_name.to_str().filter(|s| is_shard_name(s)) else {
                continue;
            };
            if !shard.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let files = fs::read_dir(shard.path()).map_err(|e| self.classify(op, false, e))?;
            for file in files {
                let file = file.map_err(|e| self.classify(op, false, e))?;
                let name = file.file_name();
                let Some(id) = name
                    .to_str()
                    .filter(|n| n.len() == 64 && n.starts_with(shard_name))
                    .and_then(|n| n.parse::<FragmentId>().ok())
                else {
                    tracing::debug!(peer = %self.label, file = ?file.path(), "ignoring stray file");
                    continue;
                };
                let meta = file.metadata().map_err(|e| self.classify(op, false, e))?;
                if meta.is_file() {
                    f(id, meta.len());
                }
            }
        }
        Ok(())
    }

    /// Trash entries: (path, deletion time, fragment id).
    fn trash_entries(
        &self,
        op: &'static str,
    ) -> Result<Vec<(PathBuf, SystemTime, FragmentId)>, PeerError> {
        let entries = match fs::read_dir(self.root.join(TRASH)) {
            Ok(it) => it,
            Err(e) if e.kind() == ErrorKind::NotFound && self.marker_present() => {
                return Ok(Vec::new())
            }
            Err(e) => return Err(self.classify(op, false, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.classify(op, false, e))?;
            if entry.file_name() == TRASH_META {
                continue;
            }
            match entry.file_name().to_str().and_then(parse_trash_name) {
                Some((at, id)) => out.push((entry.path(), at, id)),
                None => {
                    tracing::debug!(peer = %self.label, file = ?entry.path(), "ignoring stray file in trash")
                }
            }
        }
        Ok(out)
    }

    /// Entries of `dir` whose names parse as ids; a missing dir is empty.
    fn list_ids<T: std::str::FromStr>(
        &self,
        dir: &Path,
        op: &'static str,
    ) -> Result<Vec<T>, PeerError> {
        let entries = match fs::read_dir(dir) {
            Ok(it) => it,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.classify(op, false, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.classify(op, false, e))?;
            if let Some(id) = entry
                .file_name()
                .to_str()
                .filter(|n| n.len() == 64)
                .and_then(|n| n.parse().ok())
            {
                out.push(id);
            }
        }
        Ok(out)
    }
}

impl Peer for FolderPeer {
    fn describe(&self) -> String {
        self.label.clone()
    }

    fn put_fragment(&self, id: &FragmentId, bytes: &[u8]) -> Result<(), PeerError> {
        self.put_fragment_parts(id, &[bytes])
    }

    fn put_fragment_parts(&self, id: &FragmentId, parts: &[&[u8]]) -> Result<(), PeerError> {
        const OP: &str = "writing a fragment";
        PeerError::check_fragment_parts(&self.label, id, parts)?;
        self.ensure_present()?;
        let path = self.fragment_path(id);
        match fs::read(&path) {
            // Already there and intact: make sure its directory entry is
            // durable too (a crash may have hit between rename and dir fsync).
            Ok(existing) if FragmentId::of(&existing) == *id => {
                return sync_dir(parent_of(&path)).map_err(|e| self.classify(OP, true, e));
            }
            Ok(_) => {
                tracing::warn!(peer = %self.label, fragment = %id.short(), "replacing a damaged copy");
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(self.classify(OP, false, e)),
        }
        self.write_atomic(&path, parts, OP)
    }

    fn get_fragment(&self, id: &FragmentId) -> Result<Vec<u8>, PeerError> {
        let mut buf = Vec::new();
        self.get_fragment_into(id, &mut buf)?;
        Ok(buf)
    }

    fn get_fragment_into(&self, id: &FragmentId, buf: &mut Vec<u8>) -> Result<(), PeerError> {
        const OP: &str = "reading a fragment";
        let (mut file, size) = self.open_fragment(id, OP)?;
        buf.clear();
        // Room for one byte more than the size: read_to_end then sees the
        // end without growing the buffer (as fs::read does). Exactly: a
        // reused buffer that `reserve` doubled took huge pages (blocks of
        // 2 MiB or more ask for them) for twice the fragment's size.
        buf.reserve_exact(usize::try_from(size).unwrap_or(0).saturating_add(1));
        file.read_to_end(buf)
            .map_err(|e| self.classify(OP, false, e))?;
        Ok(())
    }

    fn get_fragment_range(
        &self,
        id: &FragmentId,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, PeerError> {
        const OP: &str = "reading a fragment range";
        let (mut file, size) = self.open_fragment(id, OP)?;
        // Size the buffer from the file, not from `len`, which may be huge.
        let expect = size.saturating_sub(offset).min(len);
        let mut buf = Vec::with_capacity(usize::try_from(expect).unwrap_or(0));
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| self.classify(OP, false, e))?;
        file.take(len)
            .read_to_end(&mut buf)
            .map_err(|e| self.classify(OP, false, e))?;
        Ok(buf)
    }

    /// Streams the file instead of reading it whole: only the bao tree
    /// (64 bytes per KiB) and the proven chunks are held in memory.
    fn audit_fragment(
        &self,
        id: &FragmentId,
        ranges: &[AuditRange],
    ) -> Result<Vec<Vec<u8>>, PeerError> {
        const OP: &str = "proving fragment ranges";
        let (file, _) = self.open_fragment(id, OP)?;
        audit::prove(io::BufReader::with_capacity(1 << 16, file), ranges)
            .map_err(|e| self.classify(OP, false, e))
    }

    fn has_fragment(&self, id: &FragmentId) -> Result<bool, PeerError> {
        match fs::symlink_metadata(self.fragment_path(id)) {
            Ok(m) => Ok(m.is_file()),
            // An unmounted disk must not look like one that lost everything.
            Err(e) if e.kind() == ErrorKind::NotFound => {
                if self.marker_present() {
                    Ok(false)
                } else {
                    Err(self.vanished(None))
                }
            }
            Err(e) => Err(self.classify("checking a fragment", false, e)),
        }
    }

    fn list_fragments(&self) -> Result<Vec<FragmentId>, PeerError> {
        self.ensure_present()?;
        let mut ids = Vec::new();
        self.for_each_fragment("listing fragments", |id, _| ids.push(id))?;
        ids.sort_unstable();
        Ok(ids)
    }

    fn delete_fragment(&self, id: &FragmentId) -> Result<(), PeerError> {
        const OP: &str = "deleting a fragment";
        self.ensure_present()?;
        let trash = self.root.join(TRASH);
        self.ensure_dir(&trash, OP)?;
        let dst = trash.join(trash_stamp(&id.to_hex()));
        self.move_to_trash(&self.fragment_path(id), &dst, OP)
    }

    fn undelete_fragment(&self, id: &FragmentId) -> Result<bool, PeerError> {
        self.restore_deleted(id)
    }

    fn put_meta(&self, key: &MetaKey, bytes: &[u8]) -> Result<(), PeerError> {
        self.put_meta_as(key, bytes, None).map(|_| ())
    }

    fn delete_meta(&self, key: &MetaKey) -> Result<(), PeerError> {
        const OP: &str = "deleting metadata";
        self.ensure_present()?;
        let _serial = self.meta_lock.lock().unwrap_or_else(|p| p.into_inner());
        let src = self.meta_path(key);
        if !src.is_file() {
            return Ok(());
        }
        let dst = self.meta_trash_path(key, OP)?;
        self.move_to_trash(&src, &dst, OP)
    }

    fn list_deleted_meta(
        &self,
        container: Option<&ContainerId>,
    ) -> Result<Vec<DeletedMeta>, PeerError> {
        self.ensure_present()?;
        let mut out: Vec<DeletedMeta> = self
            .meta_trash_entries("listing deleted metadata")?
            .into_iter()
            .filter(|(_, _, key)| container.is_none_or(|c| key.container() == c))
            .map(|(_, at, key)| DeletedMeta {
                key,
                deleted_unix_ns: at
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64),
            })
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    fn get_deleted_meta(&self, key: &MetaKey) -> Result<Vec<u8>, PeerError> {
        const OP: &str = "reading deleted metadata";
        self.ensure_present()?;
        let newest = self
            .meta_trash_entries(OP)?
            .into_iter()
            .filter(|(_, _, k)| k == key)
            .max_by_key(|(_, at, _)| *at);
        let Some((path, _, _)) = newest else {
            return Err(self.missing(format!("a deleted copy of {key}")));
        };
        fs::read(path).map_err(|e| self.classify(OP, false, e))
    }

    fn get_meta(&self, key: &MetaKey) -> Result<Vec<u8>, PeerError> {
        match fs::read(self.meta_path(key)) {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(self.missing(key.to_string())),
            Err(e) => Err(self.classify("reading metadata", false, e)),
        }
    }

    fn list_meta(&self, container: Option<&ContainerId>) -> Result<Vec<MetaKey>, PeerError> {
        const OP: &str = "listing metadata";
        self.ensure_present()?;
        let containers: Vec<ContainerId> = match container {
            Some(c) => vec![*c],
            None => self.list_ids(&self.root.join(META), OP)?,
        };
        let mut keys = Vec::new();
        for c in containers {
            let dir = self.meta_dir(&c);
            if dir.join(CONTAINER_FILE).is_file() {
                keys.push(MetaKey::Container(c));
            }
            let snapshots: Vec<SnapshotId> = self.list_ids(&dir.join(SNAPSHOTS), OP)?;
            keys.extend(snapshots.into_iter().map(|s| MetaKey::Snapshot(c, s)));
            let segments: Vec<SegmentId> = self.list_ids(&dir.join(INDEX), OP)?;
            keys.extend(segments.into_iter().map(|g| MetaKey::IndexSegment(c, g)));
        }
        keys.sort_unstable();
        Ok(keys)
    }

    fn purge_trash(&self, grace: Duration, now: SystemTime) -> Result<Option<u64>, PeerError> {
        self.purge_expired(grace, now).map(Some)
    }

    fn stat(&self) -> Result<PeerStat, PeerError> {
        self.ensure_present()?;
        let mut stat = PeerStat::default();
        // A full walk: fine for a local disk, and always exact.
        self.for_each_fragment("counting fragments", |_, len| {
            stat.fragments += 1;
            stat.fragment_bytes += len;
        })?;
        stat.free_bytes = match rustix::fs::statvfs(&self.root) {
            Ok(vfs) => Some(vfs.f_bavail.saturating_mul(vfs.f_frsize)),
            Err(e) => {
                tracing::debug!(peer = %self.label, error = %e, "statvfs failed");
                None
            }
        };
        Ok(stat)
    }

    fn hand_over(&self, cert: &HandOver) -> Result<(), PeerError> {
        const OP: &str = "storing a hand-over certificate";
        self.ensure_present()?;
        // Serialised with metadata puts, which read the certificates.
        let _serial = self.meta_lock.lock().unwrap_or_else(|p| p.into_inner());
        let path = self
            .root
            .join(crate::layout::handover_path(&cert.old_identity));
        let held = self.held_handover(&cert.old_identity);
        match admit::admit_handover(&self.label, cert, held.as_deref())? {
            true => self.write_atomic(&path, &[&cert.encode()], OP),
            false => Ok(()),
        }
    }
}

fn parent_of(path: &Path) -> &Path {
    // Every path here is built as root.join(..), so it has a parent.
    path.parent().unwrap_or(path)
}

fn is_full(e: &io::Error) -> bool {
    if e.kind() == ErrorKind::StorageFull {
        return true;
    }
    #[cfg(unix)]
    if let Some(code) = e.raw_os_error() {
        return code == libc::ENOSPC || code == libc::EDQUOT;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_map_to_actionable_variants() {
        let dir = tempfile::tempdir().unwrap();
        let peer = FolderPeer::create("t", dir.path()).unwrap();
        let err = |code| io::Error::from_raw_os_error(code);
        assert!(matches!(
            peer.classify("x", true, err(libc::ENOSPC)),
            PeerError::Full { .. }
        ));
        assert!(matches!(
            peer.classify("x", true, err(libc::EDQUOT)),
            PeerError::Full { .. }
        ));
        assert!(matches!(
            peer.classify("x", true, err(libc::EROFS)),
            PeerError::ReadOnly { .. }
        ));
        assert!(matches!(
            peer.classify("x", false, err(libc::EROFS)),
            PeerError::ReadOnly { .. }
        ));
        assert!(matches!(
            peer.classify("x", true, err(libc::EACCES)),
            PeerError::ReadOnly { .. }
        ));
        assert!(matches!(
            peer.classify("x", true, err(libc::EPERM)),
            PeerError::ReadOnly { .. }
        ));
        // Permission denied on a read is not a read-only peer.
        assert!(matches!(
            peer.classify("x", false, err(libc::EACCES)),
            PeerError::Io { .. }
        ));
        assert!(matches!(
            peer.classify("x", false, err(libc::EIO)),
            PeerError::Io { .. }
        ));
        // Once the folder is gone, I/O errors mean the peer is unavailable.
        fs::remove_file(dir.path().join(MARKER_FILE)).unwrap();
        assert!(matches!(
            peer.classify("x", false, err(libc::EIO)),
            PeerError::Unavailable { .. }
        ));
    }

    #[test]
    fn audit_streams_proofs_that_verify_and_catch_damage() {
        let dir = tempfile::tempdir().unwrap();
        let peer = FolderPeer::create("t", dir.path()).unwrap();
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let id = FragmentId::of(&bytes);
        peer.put_fragment(&id, &bytes).unwrap();
        let ranges = [
            AuditRange {
                offset: 0,
                len: 1_024,
            },
            AuditRange {
                offset: 50_000,
                len: 3_000,
            },
            AuditRange {
                offset: 99_990,
                len: 1_024,
            },
        ];
        let proofs = peer.audit_fragment(&id, &ranges).unwrap();
        // Streaming from the file gives the same proofs as proving from memory.
        assert_eq!(
            proofs,
            audit::prove(io::Cursor::new(&bytes), &ranges).unwrap()
        );
        for (r, proof) in ranges.iter().zip(&proofs) {
            let end = (r.offset + r.len).min(bytes.len() as u64) as usize;
            assert_eq!(
                audit::verify(&id, *r, proof).unwrap(),
                &bytes[r.offset as usize..end]
            );
        }

        // One damaged byte far from every range fails every proof.
        let mut damaged = bytes.clone();
        damaged[20_000] ^= 1;
        fs::write(peer.fragment_path(&id), &damaged).unwrap();
        let proofs = peer.audit_fragment(&id, &ranges).unwrap();
        for (r, proof) in ranges.iter().zip(&proofs) {
            assert_eq!(
                audit::verify(&id, *r, proof),
                Err(audit::AuditError::Mismatch)
            );
        }

        let too_many = [ranges[0]; audit::MAX_AUDIT_RANGES + 1];
        assert!(matches!(
            peer.audit_fragment(&id, &too_many),
            Err(PeerError::Io { source, .. }) if source.kind() == ErrorKind::InvalidInput
        ));
        let absent = FragmentId::of(b"absent");
        assert!(peer
            .audit_fragment(&absent, &ranges)
            .unwrap_err()
            .is_not_found());
        // An unmounted disk is not a lost fragment.
        fs::remove_file(dir.path().join(MARKER_FILE)).unwrap();
        assert!(matches!(
            peer.audit_fragment(&absent, &ranges),
            Err(PeerError::Unavailable { .. })
        ));
    }
}
