//! Step 13 of the demo: the container shared read-only with a friend's
//! identity, who restores it exactly and dumps it as tar, and whose backup
//! into it is refused.

use super::{restore_and_compare, FRIEND_PASSPHRASE, PASSPHRASE};
use anyhow::Result;
use std::path::Path;
use trove_core::keys::MasterSecret;
use trove_repo::{BackupOptions, Home, KdfParams, Quiet, RepoError};

/// What sharing showed.
#[derive(serde::Serialize)]
pub struct ShareSummary {
    pub snapshots: usize,
    pub files_restored: u64,
    /// Differences between the friend's restore and the source.
    pub differences: Vec<String>,
    pub tar_bytes: u64,
    /// The friend's backup into the shared container was refused.
    pub backup_refused: bool,
}

pub fn share_with_a_friend(base: &Path, src: &Path, json: bool) -> Result<ShareSummary> {
    let home = Home::open(&base.join("home"))?;
    let owner = home.unlock(PASSPHRASE.as_bytes())?;
    let (friend, friend_owner) = Home::init(
        &base.join("friend-home"),
        MasterSecret::generate(),
        FRIEND_PASSPHRASE,
        KdfParams::default(),
    )?;
    for h in [&home, &friend] {
        h.set_network(super::loopback());
    }
    let (file, _) = trove_repo::share_container(&home, &owner, "demo", &friend_owner.owner_id())?;
    drop(home);
    let accepted = trove_repo::accept_share(&friend, &friend_owner, &file)?;
    let target = base.join("friend-restored");
    let (r, _, _, differences) =
        restore_and_compare(&friend, &friend_owner, "demo:latest", &target, src, json)?;
    let mut tar = Counter(0);
    trove_repo::dump(&friend, &friend_owner, "demo:latest", None, &mut tar)?;
    let backup_refused = matches!(
        trove_repo::backup(
            &friend,
            &friend_owner,
            "demo",
            &BackupOptions::default(),
            &Quiet
        ),
        Err(RepoError::SharedReadOnly { .. })
    );
    Ok(ShareSummary {
        snapshots: accepted.snapshots,
        files_restored: r.files,
        differences,
        tar_bytes: tar.0,
        backup_refused,
    })
}

/// Counts what a dump writes.
struct Counter(u64);

impl std::io::Write for Counter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
