//! Trove's container state and operations: `TROVE_HOME` (keyfile, identity,
//! peers, containers, the local index) and one module per operation over a
//! set of peers: backup, restore, check, repair, sync, listing.
//!
//! Error policy: every public function returns [`RepoError`], whose messages
//! name the object, the cause and the next step; the CLI prints them as is
//! and decides on the variant ([`RepoError::is_usage`]). Listings and
//! reports are typed rows (`serde::Serialize`): the CLI prints them as text
//! or as `--json` from the same rows.

mod audit;
mod backup;
mod changes;
mod check;
mod config;
mod containers;
mod deletions;
mod drill;
mod dump;
mod durability;
mod error;
mod fetch;
mod forget;
mod health;
mod home;
mod index;
pub mod inherit;
mod keyfile;
mod location;
mod lock;
mod meta;
mod peers;
mod pending;
mod profile;
mod progress;
mod prune;
mod readonly;
mod reciprocity;
mod redundancy;
mod repair;
mod restore;
mod rotate;
mod scan;
mod share;
mod snapshot;
mod status;
mod sync;
mod time;
mod undelete;
mod upload;

pub use audit::{audit_round, AuditFailure, AuditOptions, AuditRound, PeerAudit};
pub use backup::{
    backup, backup_unlocking, parse_compression, BackupOptions, BackupReport, GuidedWalk,
    SkippedPath, UnreadablePath,
};
pub use changes::Changes;
pub use check::{check, CheckOptions, CheckProblem, CheckReport, MetaIssue};
pub use config::{
    Config, ContainerSchedule, DaemonSettings, Retention, CONFIG_FILE, CONFIG_VERSION,
};
pub use containers::{ContainerRow, Containers, CreatedContainer, SnapshotRow};
pub use deletions::{DeletionReport, Leftovers, PendingDeletions};
pub use drill::{
    drill, drill_status, summary as drill_summary, DrillContainer, DrillOptions, DrillRecord,
    DrillReport, DrillStatus, FailedFile, ReadPeer, TriedPeer, DRILL_FILE, DRILL_REMIND_AFTER_DAYS,
    DRILL_VERSION,
};
pub use dump::{dump, DumpReport};
pub use durability::{
    estimate_loss, observed_loss_rate, repair_window, Durability, PRIOR_LOSS_RATE_PER_YEAR,
};
pub use error::{RepoError, Result};
pub use fetch::{FragmentFault, FragmentProblem};
pub use forget::{
    forget, ForgetOptions, ForgetReport, ForgetRow, KeepPolicy, KeepReason, KeepWithin,
};
pub use health::{
    format_duration, parse_duration, AuditRecord, PeerHealth, PeerState, Sightings, Storm,
    DEFAULT_PEER_LOST_AFTER,
};
pub use home::{Container, Home, Owner, PublicIds};
pub use keyfile::KdfParams;
pub use location::{LocationError, PeerLocation};
pub use lock::{parse_wait, ExclusiveLease, Lease, LockHolder, SharedLease};
pub use peers::{
    AddedPeer, NetworkError, NodeWelcome, PeerRow, PeerSet, PeerSlot, Peers, RemovedPeer,
};
pub use profile::{StageProfile, StageRow};
pub use progress::{Event, Progress, Quiet};
pub use prune::{prune, MaxUnused, PruneOptions, PruneReport};
pub use reciprocity::{PeerLedger, PeerReciprocity};
pub use redundancy::{redundancy, ContainerRedundancy, PackStanding};
pub use repair::{
    repair, ContainerRepair, Damage, FragmentMove, LostFile, LostPack, PackRepair, RepairOptions,
    RepairReport,
};
pub use restore::{restore, LostPath, RestoreOptions, RestoreReport};
pub use rotate::{rotate, RotateReport};
pub use share::{
    accept_share, list_shares, revoke_share, share_container, sync_shares, AcceptReport,
    GivenShare, ReceivedRow, RevokeReport, ShareList,
};
pub use snapshot::{ls, ls_folder, resolve_snapshot, Browser, FileReader, LsEntry, TreeReader};
pub use status::{status, ContainerStatus, PeerStatus, StatusReport};
pub use sync::{sync, PeerContribution, SyncReport};
pub use time::{now_ns, now_unix, utc};
pub use undelete::{list_deleted, undelete, DeletedSnapshot, UndeleteReport};
