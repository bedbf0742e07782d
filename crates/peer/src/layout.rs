//! Names every peer that stores objects under paths uses: folder peers on
//! a disk, remote peers in a bucket (`trove-remote`). One layout, so a
//! bucket synced to a disk, or a disk copied into a bucket, is the same
//! peer (docs/design.md §6 and §6b).
//!
//! ```text
//! fragments/<2 hex>/<64 hex>          fragments, sharded by their first byte
//! meta/<container>/container          container manifest
//! meta/<container>/snapshots/<id>     snapshot manifests
//! meta/<container>/index/<id>         index segments
//! trash/<secs>.<nanos>-<64 hex>       deleted fragments awaiting purge
//! trash/meta/<secs>.<nanos>-<key>     replaced or deleted metadata objects
//! handover/<64 hex>                   a hand-over certificate made by that identity
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use trove_core::{ContainerId, FragmentId};

use crate::peer::MetaKey;

pub const FRAGMENTS: &str = "fragments";
pub const META: &str = "meta";
pub const TRASH: &str = "trash";
/// Under `trash/`: replaced and deleted metadata objects.
pub const TRASH_META: &str = "meta";
/// Under `meta/<container>/`.
pub const CONTAINER_FILE: &str = "container";
pub const SNAPSHOTS: &str = "snapshots";
pub const INDEX: &str = "index";
/// Hand-over certificates (master secret rotation), by the identity that made them.
pub const HANDOVER: &str = "handover";

/// `handover/<identity hex>`: the certificate by which `old` handed over.
pub fn handover_path(old: &trove_core::keys::PublicIdentity) -> String {
    format!("{HANDOVER}/{}", old.to_hex())
}

/// `fragments/<2 hex>/<64 hex>`, relative to the peer's root.
pub fn fragment_path(id: &FragmentId) -> String {
    let hex = id.to_hex();
    format!("{FRAGMENTS}/{}/{hex}", &hex[..2])
}

/// `meta/<container>`, relative to the peer's root.
pub fn meta_dir(container: &ContainerId) -> String {
    format!("{META}/{}", container.to_hex())
}

/// Where a metadata object lives, relative to the peer's root.
pub fn meta_path(key: &MetaKey) -> String {
    let dir = meta_dir(key.container());
    match key {
        MetaKey::Container(_) => format!("{dir}/{CONTAINER_FILE}"),
        MetaKey::Snapshot(_, s) => format!("{dir}/{SNAPSHOTS}/{}", s.to_hex()),
        MetaKey::IndexSegment(_, g) => format!("{dir}/{INDEX}/{}", g.to_hex()),
    }
}

/// The key stored at `path` (relative to the root), if it is one.
pub fn parse_meta_path(path: &str) -> Option<MetaKey> {
    let rest = path.strip_prefix(META)?.strip_prefix('/')?;
    let mut parts = rest.split('/');
    let c: ContainerId = parts.next()?.parse().ok()?;
    let key = match (parts.next()?, parts.next()) {
        (CONTAINER_FILE, None) => MetaKey::Container(c),
        (SNAPSHOTS, Some(id)) => MetaKey::Snapshot(c, id.parse().ok()?),
        (INDEX, Some(id)) => MetaKey::IndexSegment(c, id.parse().ok()?),
        _ => return None,
    };
    parts.next().is_none().then_some(key)
}

/// The fragment stored at `path` (relative to the root), if it is one.
pub fn parse_fragment_path(path: &str) -> Option<FragmentId> {
    let rest = path.strip_prefix(FRAGMENTS)?.strip_prefix('/')?;
    let (shard, hex) = rest.split_once('/')?;
    let id: FragmentId = hex.parse().ok()?;
    (is_shard_name(shard) && hex.starts_with(shard)).then_some(id)
}

/// A fragment shard folder's name: two lowercase hex digits.
pub fn is_shard_name(s: &str) -> bool {
    s.len() == 2
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `<secs>.<nanos, 9 digits>-<name>`: a trash entry's name, stamped now.
pub fn trash_stamp(name: &str) -> String {
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:09}-{name}", at.as_secs(), at.subsec_nanos())
}

/// `<secs>.<nanos>-<64 hex>` → (deletion time, id).
pub fn parse_trash_name(name: &str) -> Option<(SystemTime, FragmentId)> {
    let (time, hex) = name.split_once('-')?;
    Some((parse_trash_time(time)?, hex.parse().ok()?))
}

/// `<secs>.<nanos>-<key file name>` → (time trashed, key).
pub fn parse_meta_trash_name(name: &str) -> Option<(SystemTime, MetaKey)> {
    let (at, key) = name.split_once('-')?;
    Some((parse_trash_time(at)?, parse_meta_file_name(key)?))
}

/// `<secs>.<nanos, 9 digits>` → time.
pub fn parse_trash_time(time: &str) -> Option<SystemTime> {
    let (secs, nanos) = time.split_once('.')?;
    let at = Duration::new(
        secs.parse().ok()?,
        nanos.parse().ok().filter(|n| *n < 1_000_000_000)?,
    );
    Some(UNIX_EPOCH + at)
}

/// Nanoseconds since the Unix epoch (0 before it), as [`crate::DeletedMeta`] keeps time.
pub fn unix_ns(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A metadata key as one file name, for the trash:
/// `<container>.container`, `<container>.snapshot.<id>`, `<container>.index.<id>`.
pub fn meta_file_name(key: &MetaKey) -> String {
    match key {
        MetaKey::Container(c) => format!("{}.container", c.to_hex()),
        MetaKey::Snapshot(c, s) => format!("{}.snapshot.{}", c.to_hex(), s.to_hex()),
        MetaKey::IndexSegment(c, g) => format!("{}.index.{}", c.to_hex(), g.to_hex()),
    }
}

/// The key a trash file name (after its time stamp) stands for.
pub fn parse_meta_file_name(name: &str) -> Option<MetaKey> {
    let mut parts = name.split('.');
    let c: ContainerId = parts.next()?.parse().ok()?;
    let key = match (parts.next()?, parts.next()) {
        ("container", None) => MetaKey::Container(c),
        ("snapshot", Some(id)) => MetaKey::Snapshot(c, id.parse().ok()?),
        ("index", Some(id)) => MetaKey::IndexSegment(c, id.parse().ok()?),
        _ => return None,
    };
    parts.next().is_none().then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use trove_core::{SegmentId, SnapshotId};

    #[test]
    fn paths_round_trip() {
        let c = ContainerId([7; 32]);
        for key in [
            MetaKey::Container(c),
            MetaKey::Snapshot(c, SnapshotId([1; 32])),
            MetaKey::IndexSegment(c, SegmentId([2; 32])),
        ] {
            assert_eq!(parse_meta_path(&meta_path(&key)), Some(key));
            assert_eq!(parse_meta_file_name(&meta_file_name(&key)), Some(key));
        }
        assert_eq!(
            parse_meta_path(&format!("meta/{}/container/x", c.to_hex())),
            None
        );
        let id = FragmentId([0xab; 32]);
        assert_eq!(parse_fragment_path(&fragment_path(&id)), Some(id));
        assert_eq!(
            parse_fragment_path(&format!("fragments/00/{}", id.to_hex())),
            None,
            "a fragment in the wrong shard is not one"
        );
    }

    #[test]
    fn trash_names_round_trip() {
        let id = FragmentId::of(b"x");
        let (at, parsed) = parse_trash_name(&format!("12.000000005-{}", id.to_hex())).unwrap();
        assert_eq!(parsed, id);
        assert_eq!(at, UNIX_EPOCH + Duration::new(12, 5));
        assert!(parse_trash_name("12-abc").is_none());
        assert!(parse_trash_name(&format!("12.x-{}", id.to_hex())).is_none());
        let c = ContainerId([7; 32]);
        for key in [
            MetaKey::Container(c),
            MetaKey::Snapshot(c, SnapshotId([8; 32])),
            MetaKey::IndexSegment(c, SegmentId([9; 32])),
        ] {
            assert_eq!(parse_meta_file_name(&meta_file_name(&key)), Some(key));
        }
        assert_eq!(
            parse_meta_file_name(&format!("{}.container.x", c.to_hex())),
            None
        );
        assert_eq!(parse_meta_file_name("container"), None);
        assert!(is_shard_name("0f") && !is_shard_name("0F") && !is_shard_name("0"));
    }
}
