//! [`RemotePeer`]: a bucket (or WebDAV folder) as a peer, with the folder
//! peer's layout and promises (docs/design.md §6b).
//!
//! An object store has no rename and no fsync: a PUT that succeeded is
//! durable and whole (S3 never shows a half-written object), so a fragment
//! or manifest is written in one request, straight to its name. Fragments
//! are bounded (a pack's shard and a 52-byte header, 1.5 MiB for a 6 MiB
//! pack split 4+2), so one request holds one fragment in memory at most.
//! Delayed deletion copies to `trash/` and then deletes. Requests that fail
//! for a passing reason (5xx, timeouts, refused connections) are retried
//! with backoff a bounded number of times; then the peer is unavailable
//! and the caller places or reads elsewhere.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::{ErrorKind, Operator};
use trove_core::handover::HandOver;
use trove_core::{ContainerId, FragmentId};
use trove_peer::layout::{self, TRASH, TRASH_META};
use trove_peer::{admit, Admission, DeletedMeta, MetaKey, Peer, PeerError, PeerStat};

use crate::credentials::Credentials;
use crate::location::RemoteLocation;
use crate::runtime::block_on;

/// The object that makes a prefix a peer (its first line names the format).
pub const MARKER_FILE: &str = "trove-peer";
const MARKER_PREFIX: &str = "trove remote peer v";
/// The layout this code writes and reads.
pub const REMOTE_FORMAT_VERSION: u32 = 1;

/// Retries of a request that failed for a passing reason, and their backoff.
const RETRIES: usize = 4;
const RETRY_MIN_DELAY: Duration = Duration::from_millis(200);
const RETRY_MAX_DELAY: Duration = Duration::from_secs(3);
/// A request that makes no progress for this long is abandoned (and retried).
const IO_TIMEOUT: Duration = Duration::from_secs(20);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A peer in an S3-compatible bucket or on a WebDAV server.
#[derive(Debug)]
pub struct RemotePeer {
    name: String,
    label: String,
    op: Operator,
    /// Serialises this process's metadata writes (admission reads the held
    /// copy, then replaces it).
    meta_lock: Mutex<()>,
}

/// When each server (by peer label) last failed a request after its
/// retries. For [`DOWN_HOLD`] after that, its requests fail at once instead
/// of waiting out the retries again, so a dead server costs one round of
/// retries per command, not one per request. Process-wide: a command opens
/// its peers more than once.
fn down_since() -> std::sync::MutexGuard<'static, HashMap<String, Instant>> {
    static DOWN: OnceLock<Mutex<HashMap<String, Instant>>> = OnceLock::new();
    DOWN.get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// Whether `e` says the server did not answer usefully (refused or timed
/// out connections, 5xx, slow-downs) even after the retries.
fn no_answer(e: &opendal::Error) -> bool {
    matches!(e.kind(), ErrorKind::Unexpected | ErrorKind::RateLimited)
        && (e.is_temporary() || e.is_persistent())
}

/// How long a server that did not answer is not asked again.
const DOWN_HOLD: Duration = Duration::from_secs(30);

impl RemotePeer {
    /// The peer at `location`, signing with `credentials`. No request is
    /// made: an unreachable server shows at the first operation.
    pub fn open(
        name: &str,
        location: &RemoteLocation,
        credentials: &Credentials,
    ) -> Result<RemotePeer, PeerError> {
        let label = format!("{name} ({location})");
        let config = |e: opendal::Error| PeerError::Unavailable {
            peer: label.clone(),
            reason: format!("the location cannot be used: {}", e.message()),
        };
        let op = match location {
            RemoteLocation::S3 {
                bucket,
                prefix,
                endpoint,
                region,
            } => {
                // Only what is given here signs: no ~/.aws files, no cloud
                // metadata service probed (a hang off the cloud).
                let mut b = opendal::services::S3::default()
                    .bucket(bucket)
                    .root(&format!("/{prefix}"))
                    .region(region)
                    .disable_config_load()
                    .disable_ec2_metadata();
                if let Some(e) = endpoint {
                    b = b.endpoint(e);
                }
                match (&credentials.access_key_id, &credentials.secret_access_key) {
                    (Some(k), Some(s)) => b = b.access_key_id(k).secret_access_key(s),
                    _ => b = b.skip_signature(),
                }
                if let Some(t) = &credentials.session_token {
                    b = b.session_token(t);
                }
                Operator::new(b).map_err(config)?
            }
            RemoteLocation::WebDav {
                scheme,
                authority,
                path,
            } => {
                let mut b = opendal::services::Webdav::default()
                    .endpoint(&format!("{scheme}://{authority}"))
                    .root(&format!("/{path}"));
                if let Some(u) = &credentials.username {
                    b = b.username(u);
                }
                if let Some(p) = &credentials.password {
                    b = b.password(p);
                }
                Operator::new(b).map_err(config)?
            }
        };
        let op = op
            .layer(
                TimeoutLayer::new()
                    .with_timeout(REQUEST_TIMEOUT)
                    .with_io_timeout(IO_TIMEOUT),
            )
            .layer(
                RetryLayer::new()
                    .with_max_times(RETRIES)
                    .with_min_delay(RETRY_MIN_DELAY)
                    .with_max_delay(RETRY_MAX_DELAY)
                    .with_jitter(),
            );
        Ok(RemotePeer {
            name: name.to_owned(),
            label,
            op,
            meta_lock: Mutex::new(()),
        })
    }

    /// Make the location a peer: write the marker if the prefix is empty,
    /// accept it if it is a peer already, refuse a prefix that holds
    /// anything else (Trove never mixes its objects with someone's files).
    pub fn create(
        name: &str,
        location: &RemoteLocation,
        credentials: &Credentials,
    ) -> Result<RemotePeer, PeerError> {
        const OP: &str = "creating the peer";
        let peer = RemotePeer::open(name, location, credentials)?;
        match peer.read(MARKER_FILE) {
            Ok(marker) => {
                peer.check_marker(&marker)?;
                return Ok(peer);
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(peer.classify(OP, e)),
        }
        let held = peer
            .call(peer.op.list_with("").limit(4))
            .map_err(|e| peer.classify(OP, e))?;
        if held.iter().any(|e| !e.path().is_empty() && e.path() != "/") {
            return Err(PeerError::Refused {
                peer: peer.label.clone(),
                reason: "the location holds objects and is not a Trove peer: choose an empty \
                         bucket or a new prefix, e.g. s3://BUCKET/trove"
                    .to_owned(),
            });
        }
        peer.ensure_marker().map_err(|e| peer.classify(OP, e))?;
        Ok(peer)
    }

    fn ensure_marker(&self) -> opendal::Result<()> {
        match self.call(self.op.stat(MARKER_FILE)) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let marker = format!("{MARKER_PREFIX}{REMOTE_FORMAT_VERSION}\n");
                self.write(MARKER_FILE, marker.into_bytes())
            }
            Err(e) => Err(e),
        }
    }

    /// The peer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Free what was deleted or replaced at least `grace` before `now`
    /// (the owner's grace period, as for a folder peer). Returns how many
    /// objects went.
    pub fn purge_expired(&self, grace: Duration, now: SystemTime) -> Result<u64, PeerError> {
        const OP: &str = "purging deleted fragments";
        let mut purged = 0;
        // One listing of `trash/` (it holds `trash/meta/` too): each entry
        // is a deleted fragment or a trashed metadata object.
        let meta_dir = format!("{TRASH_META}/");
        let trashed_at = |name: &str| match name.strip_prefix(&meta_dir) {
            Some(meta) => layout::parse_meta_trash_name(meta).map(|(at, _)| (at, ())),
            None => layout::parse_trash_name(name).map(|(at, _)| (at, ())),
        };
        for (path, at, ()) in self.trash_in(TRASH, OP, trashed_at)? {
            if now.duration_since(at).is_ok_and(|age| age >= grace) {
                self.delete(&path).map_err(|e| self.classify(OP, e))?;
                purged += 1;
            }
        }
        Ok(purged)
    }

    fn check_marker(&self, marker: &[u8]) -> Result<(), PeerError> {
        let text = String::from_utf8_lossy(marker);
        let version = text
            .lines()
            .next()
            .and_then(|l| l.trim().strip_prefix(MARKER_PREFIX))
            .and_then(|v| v.parse::<u32>().ok());
        match version {
            Some(REMOTE_FORMAT_VERSION) => Ok(()),
            Some(v) => Err(PeerError::Corrupt {
                peer: self.label.clone(),
                what: format!(
                    "the peer is in remote format v{v}; this Trove reads v{REMOTE_FORMAT_VERSION}: upgrade Trove"
                ),
            }),
            None => Err(PeerError::Corrupt {
                peer: self.label.clone(),
                what: format!("its {MARKER_FILE} object is not a Trove peer marker"),
            }),
        }
    }

    /// Run one request (with its retries), unless the server failed to
    /// answer within the last [`DOWN_HOLD`].
    fn call<F, T>(&self, request: F) -> opendal::Result<T>
    where
        F: std::future::IntoFuture<Output = opendal::Result<T>>,
        F::IntoFuture: Send,
        T: Send,
    {
        if down_since()
            .get(&self.label)
            .is_some_and(|at| at.elapsed() < DOWN_HOLD)
        {
            return Err(opendal::Error::new(
                ErrorKind::Unexpected,
                format!(
                    "it did not answer within the last {} s and is not asked again yet",
                    DOWN_HOLD.as_secs()
                ),
            )
            .set_temporary());
        }
        let result = block_on(request);
        match &result {
            // After its retries a passing failure comes back "persistent",
            // whatever its kind; a NotFound or a 403 is an answer.
            Err(e) if no_answer(e) => {
                down_since().insert(self.label.clone(), Instant::now());
            }
            _ => {
                down_since().remove(&self.label);
            }
        }
        result
    }

    fn read(&self, path: &str) -> opendal::Result<Vec<u8>> {
        self.call(self.op.read(path)).map(|b| b.to_vec())
    }

    fn write(&self, path: &str, bytes: Vec<u8>) -> opendal::Result<()> {
        self.call(self.op.write(path, bytes)).map(|_| ())
    }

    /// Delete an object; an absent one is fine.
    fn delete(&self, path: &str) -> opendal::Result<()> {
        match self.call(self.op.delete(path)) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// (path, size) of every object under `dir` (recursively).
    fn list(&self, dir: &str) -> opendal::Result<Vec<(String, u64)>> {
        let entries = match self.call(self.op.list_with(&format!("{dir}/")).recursive(true)) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(entries
            .into_iter()
            .filter(|e| e.metadata().is_file())
            .map(|e| (e.path().to_owned(), e.metadata().content_length()))
            .collect())
    }

    /// Delayed deletion of the object at `path`: copied to `trash_path`,
    /// then deleted. An absent object is fine.
    fn move_to_trash(&self, path: &str, trash_path: &str) -> opendal::Result<()> {
        match self.call(self.op.copy(path, trash_path)) {
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        self.delete(path)
    }

    /// The entries of the trash folder `dir` that `parse` names:
    /// (path, time trashed, what).
    fn trash_in<T>(
        &self,
        dir: &str,
        op: &'static str,
        parse: impl Fn(&str) -> Option<(SystemTime, T)>,
    ) -> Result<Vec<(String, SystemTime, T)>, PeerError> {
        let listed = self.list(dir).map_err(|e| self.classify(op, e))?;
        Ok(listed
            .into_iter()
            .filter_map(|(path, _)| {
                let (at, what) = parse(path.strip_prefix(dir)?.strip_prefix('/')?)?;
                Some((path, at, what))
            })
            .collect())
    }

    /// Fragments in the trash: (path, time deleted, id).
    fn fragment_trash(
        &self,
        op: &'static str,
    ) -> Result<Vec<(String, SystemTime, FragmentId)>, PeerError> {
        self.trash_in(TRASH, op, layout::parse_trash_name)
    }

    /// Metadata in the trash: (path, time trashed, key).
    fn meta_trash(
        &self,
        op: &'static str,
    ) -> Result<Vec<(String, SystemTime, MetaKey)>, PeerError> {
        self.trash_in(
            &format!("{TRASH}/{TRASH_META}"),
            op,
            layout::parse_meta_trash_name,
        )
    }

    fn meta_trash_path(key: &MetaKey) -> String {
        format!(
            "{TRASH}/{TRASH_META}/{}",
            layout::trash_stamp(&layout::meta_file_name(key))
        )
    }

    /// The snapshots and segments held of a container.
    fn container_others(&self, container: &ContainerId) -> Result<Vec<MetaKey>, PeerError> {
        let mut keys = self.list_meta(Some(container))?;
        keys.retain(|k| !matches!(k, MetaKey::Container(_)));
        Ok(keys)
    }

    fn missing(&self, what: String) -> PeerError {
        PeerError::NotFound {
            peer: self.label.clone(),
            what,
        }
    }

    /// A HEAD request answers a bare 404 for a missing object and for a
    /// missing bucket alike. A listing tells them apart, so a bucket that
    /// is gone never passes for one that lost a fragment.
    fn confirm_missing(&self, op: &'static str, what: String) -> PeerError {
        match self.call(self.op.list_with("").limit(1)) {
            Ok(_) => self.missing(what),
            Err(e) if e.kind() == ErrorKind::NotFound => self.missing(what),
            Err(e) => self.classify(op, e),
        }
    }

    /// What the caller can act on. Messages carry the server's error code
    /// and the object's path, never a credential (OpenDAL's context holds
    /// the URL and the response's status and headers, not the request's).
    fn classify(&self, op: &'static str, e: opendal::Error) -> PeerError {
        let peer = self.label.clone();
        let detail = e.message().to_owned();
        match e.kind() {
            ErrorKind::PermissionDenied => PeerError::Refused {
                peer,
                reason: format!(
                    "the server refused the request while {op} (403 access denied): check the \
                     credentials of peer `{}` in TROVE_HOME/credentials.toml or \
                     AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, and that they may use this bucket",
                    self.name
                ),
            },
            ErrorKind::ConfigInvalid => PeerError::Unavailable {
                peer,
                reason: format!(
                    "while {op}: {detail}: check that the bucket exists and the location's \
                     endpoint and region (`trove peer list`)"
                ),
            },
            ErrorKind::NotFound => self.missing(format!("the object of {op}")),
            ErrorKind::RateLimited => PeerError::Unavailable {
                peer,
                reason: format!(
                    "the server kept asking to slow down while {op}, after {RETRIES} retries"
                ),
            },
            _ if no_answer(&e) => PeerError::Unavailable {
                peer,
                reason: format!(
                    "no answer while {op} after {RETRIES} retries ({detail}): is the server up \
                     and reachable?"
                ),
            },
            _ => PeerError::Io {
                peer,
                op,
                source: std::io::Error::other(format!("{}: {detail}", e.kind())),
            },
        }
    }
}

impl Peer for RemotePeer {
    fn describe(&self) -> String {
        self.label.clone()
    }

    fn put_fragment(&self, id: &FragmentId, bytes: &[u8]) -> Result<(), PeerError> {
        PeerError::check_fragment(&self.label, id, bytes)?;
        // Always written, even when held: a PUT replaces a damaged copy,
        // and checking first would download the fragment.
        self.write(&layout::fragment_path(id), bytes.to_vec())
            .map_err(|e| self.classify("writing a fragment", e))
    }

    fn get_fragment(&self, id: &FragmentId) -> Result<Vec<u8>, PeerError> {
        self.read(&layout::fragment_path(id))
            .map_err(|e| match e.kind() {
                ErrorKind::NotFound => self.missing(format!("fragment {}", id.short())),
                _ => self.classify("reading a fragment", e),
            })
    }

    fn get_fragment_range(
        &self,
        id: &FragmentId,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, PeerError> {
        const OP: &str = "reading a fragment range";
        let path = layout::fragment_path(id);
        let fail = |e: opendal::Error| match e.kind() {
            ErrorKind::NotFound => self.confirm_missing(OP, format!("fragment {}", id.short())),
            _ => self.classify(OP, e),
        };
        // A range past the end is an error to S3: cut it to what is held.
        let size = self
            .call(self.op.stat(&path))
            .map_err(fail)?
            .content_length();
        let end = offset.saturating_add(len).min(size);
        if offset >= end {
            return Ok(Vec::new());
        }
        self.call(self.op.read_with(&path).range(offset..end))
            .map(|b| b.to_vec())
            .map_err(fail)
    }

    fn has_fragment(&self, id: &FragmentId) -> Result<bool, PeerError> {
        const OP: &str = "checking a fragment";
        match self.call(self.op.stat(&layout::fragment_path(id))) {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                match self.confirm_missing(OP, String::new()) {
                    PeerError::NotFound { .. } => Ok(false),
                    other => Err(other),
                }
            }
            Err(e) => Err(self.classify(OP, e)),
        }
    }

    fn list_fragments(&self) -> Result<Vec<FragmentId>, PeerError> {
        let listed = self
            .list(layout::FRAGMENTS)
            .map_err(|e| self.classify("listing fragments", e))?;
        let mut ids: Vec<FragmentId> = listed
            .iter()
            .filter_map(|(p, _)| layout::parse_fragment_path(p))
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    fn delete_fragment(&self, id: &FragmentId) -> Result<(), PeerError> {
        let trash = format!("{TRASH}/{}", layout::trash_stamp(&id.to_hex()));
        self.move_to_trash(&layout::fragment_path(id), &trash)
            .map_err(|e| self.classify("deleting a fragment", e))
    }

    fn undelete_fragment(&self, id: &FragmentId) -> Result<bool, PeerError> {
        const OP: &str = "restoring a deleted fragment";
        let newest = self
            .fragment_trash(OP)?
            .into_iter()
            .filter(|(_, _, t)| t == id)
            .max_by_key(|(_, at, _)| *at);
        let Some((path, _, _)) = newest else {
            return Ok(false);
        };
        self.call(self.op.copy(&path, &layout::fragment_path(id)))
            .map_err(|e| self.classify(OP, e))?;
        self.delete(&path).map_err(|e| self.classify(OP, e))?;
        Ok(true)
    }

    fn put_meta(&self, key: &MetaKey, bytes: &[u8]) -> Result<(), PeerError> {
        const OP: &str = "writing metadata";
        let _serial = self.meta_lock.lock().unwrap_or_else(|p| p.into_inner());
        let path = layout::meta_path(key);
        let held = match self.read(&path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(self.classify(OP, e)),
        };
        let container = key.container();
        let pinned = admit::held_signer(
            container,
            || self.container_others(container),
            |k| self.read(&layout::meta_path(k)).ok(),
            |old| self.read(&layout::handover_path(old)).ok(),
        )?;
        match admit::admit(key, bytes, held.as_deref(), pinned.as_ref()) {
            Err(reason) => Err(PeerError::MetaRejected {
                peer: self.label.clone(),
                key: *key,
                reason: Box::new(reason),
            }),
            Ok(Admission::Unchanged) => Ok(()),
            Ok(Admission::Store { replaces }) => {
                if matches!(key, MetaKey::Container(_)) {
                    // A bucket emptied behind Trove's back lost its marker
                    // too: the owner's next manifest puts it back.
                    self.ensure_marker().map_err(|e| self.classify(OP, e))?;
                }
                if let Some(old) = held.filter(|_| replaces) {
                    self.write(&Self::meta_trash_path(key), old)
                        .map_err(|e| self.classify(OP, e))?;
                }
                self.write(&path, bytes.to_vec())
                    .map_err(|e| self.classify(OP, e))
            }
        }
    }

    fn delete_meta(&self, key: &MetaKey) -> Result<(), PeerError> {
        let _serial = self.meta_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.move_to_trash(&layout::meta_path(key), &Self::meta_trash_path(key))
            .map_err(|e| self.classify("deleting metadata", e))
    }

    fn list_deleted_meta(
        &self,
        container: Option<&ContainerId>,
    ) -> Result<Vec<DeletedMeta>, PeerError> {
        let mut out: Vec<DeletedMeta> = self
            .meta_trash("listing deleted metadata")?
            .into_iter()
            .filter(|(_, _, key)| container.is_none_or(|c| key.container() == c))
            .map(|(_, at, key)| DeletedMeta {
                key,
                deleted_unix_ns: layout::unix_ns(at),
            })
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    fn get_deleted_meta(&self, key: &MetaKey) -> Result<Vec<u8>, PeerError> {
        const OP: &str = "reading deleted metadata";
        let newest = self
            .meta_trash(OP)?
            .into_iter()
            .filter(|(_, _, k)| k == key)
            .max_by_key(|(_, at, _)| *at);
        let Some((path, _, _)) = newest else {
            return Err(self.missing(format!("a deleted copy of {key}")));
        };
        self.read(&path).map_err(|e| self.classify(OP, e))
    }

    fn get_meta(&self, key: &MetaKey) -> Result<Vec<u8>, PeerError> {
        self.read(&layout::meta_path(key))
            .map_err(|e| match e.kind() {
                ErrorKind::NotFound => self.missing(key.to_string()),
                _ => self.classify("reading metadata", e),
            })
    }

    fn list_meta(&self, container: Option<&ContainerId>) -> Result<Vec<MetaKey>, PeerError> {
        let dir = match container {
            Some(c) => layout::meta_dir(c),
            None => layout::META.to_owned(),
        };
        let listed = self
            .list(&dir)
            .map_err(|e| self.classify("listing metadata", e))?;
        let mut keys: Vec<MetaKey> = listed
            .iter()
            .filter_map(|(p, _)| layout::parse_meta_path(p))
            .collect();
        keys.sort_unstable();
        Ok(keys)
    }

    fn purge_trash(&self, grace: Duration, now: SystemTime) -> Result<Option<u64>, PeerError> {
        self.purge_expired(grace, now).map(Some)
    }

    fn stat(&self) -> Result<PeerStat, PeerError> {
        let listed = self
            .list(layout::FRAGMENTS)
            .map_err(|e| self.classify("counting fragments", e))?;
        let mut stat = PeerStat::default();
        for (path, len) in &listed {
            if layout::parse_fragment_path(path).is_some() {
                stat.fragments += 1;
                stat.fragment_bytes += len;
            }
        }
        // A bucket states no free space.
        Ok(stat)
    }

    fn hand_over(&self, cert: &HandOver) -> Result<(), PeerError> {
        const OP: &str = "storing a hand-over certificate";
        let _serial = self.meta_lock.lock().unwrap_or_else(|p| p.into_inner());
        let path = layout::handover_path(&cert.old_identity);
        let held = match self.read(&path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(self.classify(OP, e)),
        };
        match admit::admit_handover(&self.label, cert, held.as_deref())? {
            true => self
                .write(&path, cert.encode())
                .map_err(|e| self.classify(OP, e)),
            false => Ok(()),
        }
    }
}
