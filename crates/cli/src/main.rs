//! `trove`: the command line over `trove-repo`. This file only parses the
//! arguments and dispatches; each command is a file under `commands/`, and
//! `context.rs` holds what they share (the home, the passphrase, output).
//!
//! Exit codes: 0 ok, 1 error, 2 usage, 3 finished but some files were
//! unreadable (backup) or lost (restore), listed, or some pack is not back
//! at full redundancy (repair).

mod commands;
mod context;
mod limits;
mod memory;
mod ui;

use clap::{Parser, Subcommand};
use commands::*;
use context::Out;
use std::process::ExitCode;
use trove_repo::RepoError;

#[derive(Parser)]
#[command(
    name = "trove",
    version,
    about = "Encrypted, erasure-coded backups spread over your own and your friends' disks"
)]
struct Cli {
    /// Machine-readable output on stdout.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create the master secret and print its 24-word recovery phrase.
    Init,
    /// Manage peers (where fragments are stored).
    #[command(subcommand)]
    Peer(peer::PeerCmd),
    /// Run a node for others (friends, family, your other devices) and manage who may use it.
    #[command(subcommand)]
    Node(node::NodeCmd),
    /// Print your owner id (for node operators) and identity fingerprint.
    Whoami,
    /// The local passphrase that unlocks TROVE_HOME/keyfile: `change` it
    /// (the 24-word phrase, shares and peers stay valid).
    #[command(subcommand)]
    Passphrase(passphrase::PassphraseCmd),
    /// Manage data containers (named backups of folders).
    #[command(subcommand)]
    Container(container::ContainerCmd),
    /// The settings in TROVE_HOME/config.toml: the daemon's, and each
    /// container's schedule and retention.
    #[command(subcommand)]
    Config(config::ConfigCmd),
    /// Look after every container until stopped: back up changes as they
    /// happen, audit peers, repair what is lost, apply retention.
    Daemon(daemon::Args),
    /// Containers (last snapshot, redundancy, durability estimate), peers
    /// (state, audits, bytes held) and the daemon. Exit 3 if some pack is
    /// degraded.
    Status(status::Args),
    /// A local web dashboard (containers, pack health, peers, snapshots to
    /// browse and download) on 127.0.0.1; prints its URL with a token.
    Ui(dashboard::Args),
    /// Back up a container (incremental); prints the snapshot id.
    Backup(backup::Args),
    /// List snapshots.
    Snapshots(snapshots::Args),
    /// List the files of a snapshot (SNAPSHOT: id, id prefix, or CONTAINER:latest).
    Ls(ls::Args),
    /// Restore a snapshot into a folder.
    Restore(restore::Args),
    /// Write a snapshot, or a path in it, to stdout as a tar archive
    /// (`trove dump docs:latest | tar -x`).
    Dump(dump::Args),
    /// Browse the snapshots as a read-only filesystem at MOUNTPOINT
    /// (snapshots/TIME/..., snapshots/latest) until Ctrl-C.
    Mount(mount::Args),
    /// Give another identity read-only access to a container (`share
    /// CONTAINER --with OWNER_ID`), accept a share file, list shares.
    Share(share::Args),
    /// Verify fragments and manifests on every peer.
    Check(check::Args),
    /// One audit round now (as `trove daemon` runs hourly): each peer
    /// proves random fragments; peer states and the reciprocity ledger are
    /// updated. Exit 1 if a peer failed to show a fragment intact.
    Audit(audit::Args),
    /// Rebuild missing, corrupt and lost fragments on other peers, so that
    /// every pack is back at k+m fragments on distinct peers.
    Repair(repair::Args),
    /// Forget snapshots: by id, or by a policy (--keep-last, --keep-daily, ...).
    Forget(forget::Args),
    /// Delete what no snapshot uses; repack packs that are mostly unused.
    Prune(prune::Args),
    /// Recreate an identity in an empty TROVE_HOME from the 24-word phrase
    /// (prompt, --phrase-file, or stdin) or from SLIP-39 shares.
    Recover(recover::Args),
    /// Rebuild the local index from the peers: containers, snapshots, peer rosters.
    Sync,
    /// List snapshots deleted within the peers' grace period, or bring one
    /// back with everything it references.
    Undelete(undelete::Args),
    /// Social recovery: SLIP-39 shares of the master secret, and the recovery kit.
    #[command(subcommand)]
    Recovery(recovery::RecoveryCmd),
    /// Inheritance with a waiting period and a veto: escrow the master
    /// secret on custodian nodes for an heir (`setup`), see claims
    /// (`status`), `veto` them, `cancel`; the heir's `claim` and `collect`.
    #[command(subcommand)]
    Inherit(inherit::InheritCmd),
    /// Rehearse a recovery from the phrase (or shares) in a scratch home,
    /// through one peer that answers, restoring and verifying a random
    /// sample of files; this home is not changed (except drill.json).
    /// Exit 1 when something would block a real recovery.
    Drill(drill::Args),
    /// Show the whole path on sample data: back up to six peers (four
    /// folders, two node processes), lose a disk and a node, corrupt a
    /// fragment on a third, restore and verify every byte.
    Demo(demo::Args),
}

/// The system allocator, with huge pages for large buffers (see `memory`).
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: memory::Allocator = memory::Allocator;

fn main() -> ExitCode {
    memory::set_policy();
    limits::raise_open_files();
    context::quiet_when_stdout_reader_leaves();
    let cli = Cli::parse();
    context::init_logging(matches!(
        cli.cmd,
        Cmd::Node(node::NodeCmd::Run { .. }) | Cmd::Daemon(_)
    ));
    let out = Out { json: cli.json };
    match run(cli.cmd, out) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            match e.downcast_ref::<RepoError>() {
                Some(r) if r.is_usage() => ExitCode::from(2),
                _ => ExitCode::from(1),
            }
        }
    }
}

fn run(cmd: Cmd, out: Out) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::Init => init::run(out),
        Cmd::Peer(c) => peer::run(c, out),
        Cmd::Node(c) => node::run(c, out),
        Cmd::Whoami => whoami::run(out),
        Cmd::Passphrase(c) => passphrase::run(c, out),
        Cmd::Container(c) => container::run(c, out),
        Cmd::Config(c) => config::run(c, out),
        Cmd::Daemon(a) => daemon::run(a),
        Cmd::Status(a) => status::run(a, out),
        Cmd::Ui(a) => dashboard::run(a, out),
        Cmd::Backup(a) => backup::run(a, out),
        Cmd::Snapshots(a) => snapshots::run(a, out),
        Cmd::Ls(a) => ls::run(a, out),
        Cmd::Restore(a) => restore::run(a, out),
        Cmd::Dump(a) => dump::run(a),
        Cmd::Mount(a) => mount::run(a, out),
        Cmd::Share(a) => share::run(a, out),
        Cmd::Check(a) => check::run(a, out),
        Cmd::Audit(a) => audit::run(a, out),
        Cmd::Repair(a) => repair::run(a, out),
        Cmd::Forget(a) => forget::run(a, out),
        Cmd::Prune(a) => prune::run(a, out),
        Cmd::Recover(a) => recover::run(a, out),
        Cmd::Sync => sync::run(out),
        Cmd::Undelete(a) => undelete::run(a, out),
        Cmd::Recovery(c) => recovery::run(c, out),
        Cmd::Inherit(c) => inherit::run(c, out),
        Cmd::Drill(a) => drill::run(a, out),
        Cmd::Demo(a) => demo::run(a, out),
    }
}
