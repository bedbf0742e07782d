//! `trove check`: every fragment present on its peer with the right hash,
//! every manifest replicated and correctly signed; with `read_data`, every
//! pack decoded and every blob opened and verified, every snapshot's trees
//! walked and every referenced blob found; with `audit`, each fragment is
//! checked by its peer proving a few random ranges of it (see
//! [`trove_peer::audit`]) instead of being downloaded whole.

use crate::deletions::{self, Leftovers};
use crate::error::Result;
use crate::fetch::{read_verified, Fetcher, FragmentFault, FragmentProblem};
use crate::health::{advice, PeerHealth, PeerState, DEFAULT_PEER_LOST_AFTER};
use crate::home::{Container, Home, Owner};
use crate::index::BlobLocation;
use crate::peers::PeerSet;
use crate::progress::{Event, Progress};
use crate::snapshot::TreeReader;
use std::collections::HashSet;
use std::time::Duration;
use trove_core::erasure;
use trove_core::manifest::PackRecord;
use trove_core::tree::NodeKind;
use trove_core::{BlobId, ChunkId, FragmentId, PackId, SnapshotId, TreeId};
use trove_peer::{audit, MetaKey, Peer};

/// Ranges asked of each fragment in an audit. A peer that kept the hash tree
/// but dropped a fraction `f` of a fragment's chunks passes one audit of it
/// with probability at most about `(1 - f)^4`; a peer whose copy is damaged
/// anywhere fails every range, as its tree no longer leads to the id.
const AUDIT_RANGES_PER_FRAGMENT: usize = 4;
/// One BLAKE3 chunk: the unit a proof verifies anyway.
const AUDIT_RANGE_LEN: u64 = 1024;

/// What `check` verifies beyond the manifests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct CheckOptions {
    /// Also decode every pack and verify every blob and tree.
    #[cfg_attr(feature = "clap", arg(long))]
    pub read_data: bool,
    /// Have each peer prove random byte ranges of its fragments (BLAKE3
    /// verified streaming) instead of downloading them.
    #[cfg_attr(feature = "clap", arg(long))]
    pub audit: bool,
    /// A peer unreachable for this long is reported as lost rather than
    /// suspect (`30s`, `15m`, `72h`, `30d`).
    #[cfg_attr(
        feature = "clap",
        arg(long, default_value = "72h", value_parser = crate::health::parse_duration)
    )]
    pub peer_lost_after: Duration,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            read_data: false,
            audit: false,
            peer_lost_after: DEFAULT_PEER_LOST_AFTER,
        }
    }
}

/// How a peer's copy of a metadata object differs from this machine's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaIssue {
    /// The peer does not hold it.
    Lacks,
    /// The peer's copy does not verify.
    Invalid(String),
    /// A valid copy of a lower revision.
    Older { theirs: u64, mine: u64 },
    /// A valid copy of a higher revision: this machine is behind.
    Newer { theirs: u64, mine: u64 },
    /// Another valid copy of the same revision.
    SameRevision(u64),
    /// The peer's copy could not be read.
    Unreadable(String),
}

/// A problem `check` found. In reports it reads as one sentence naming the
/// object, the cause and the next step.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckProblem {
    /// A configured peer does not answer: what it is (suspect or lost) and
    /// what that means for its fragments.
    PeerUnavailable {
        peer: String,
        state: PeerState,
        /// The peer's error, its state and what to do, in one sentence.
        detail: String,
    },
    /// A peer's copy of a metadata object differs from this machine's.
    Meta {
        peer: String,
        key: MetaKey,
        issue: MetaIssue,
    },
    /// A fragment not intact where the index says it is.
    Fragment(FragmentProblem),
    /// A pack with fewer good fragments than it needs: its data is lost.
    PackLost {
        pack: PackId,
        good: usize,
        needed: u8,
    },
    /// A pack that could not be fetched and decoded, or a blob of it that
    /// does not open.
    Data(String),
    /// A snapshot whose tree cannot be read.
    Tree { snapshot: SnapshotId, error: String },
    /// A snapshot referencing a chunk the index does not hold.
    ChunkNotStored {
        snapshot: SnapshotId,
        chunk: ChunkId,
        file: String,
    },
    /// The index could not be read.
    Index(String),
}

impl std::fmt::Display for CheckProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckProblem::PeerUnavailable { detail, .. } => f.write_str(detail),
            CheckProblem::Data(e) | CheckProblem::Index(e) => f.write_str(e),
            CheckProblem::Meta { peer, key, issue } => match issue {
                MetaIssue::Lacks => write!(f, "peer `{peer}` lacks {key}; the next backup copies it"),
                MetaIssue::Invalid(e) => write!(
                    f,
                    "peer `{peer}`: {key} is invalid and was refused ({e}); the next backup replaces it"
                ),
                MetaIssue::Older { theirs, mine } => write!(
                    f,
                    "peer `{peer}`: {key} is an older signed version (revision {theirs}, this machine has {mine}); the next backup replaces it"
                ),
                MetaIssue::Newer { theirs, mine } => write!(
                    f,
                    "peer `{peer}`: {key} is a newer signed version (revision {theirs}, this machine has {mine}): run `trove sync`"
                ),
                MetaIssue::SameRevision(r) => write!(
                    f,
                    "peer `{peer}`: {key} is another signed copy of the same revision {r}; the peer keeps its own"
                ),
                MetaIssue::Unreadable(e) => write!(f, "peer `{peer}`: {key}: {e}"),
            },
            CheckProblem::Fragment(p) => write!(f, "{p}"),
            CheckProblem::PackLost { pack, good, needed } => write!(
                f,
                "pack {} has {good} good fragments of the {needed} it needs: its data is lost",
                pack.short()
            ),
            CheckProblem::Tree { snapshot, error } => {
                write!(f, "snapshot {}: {error}", snapshot.short())
            }
            CheckProblem::ChunkNotStored {
                snapshot,
                chunk,
                file,
            } => write!(
                f,
                "snapshot {}: chunk {} of {file:?} is not stored",
                snapshot.short(),
                chunk.short()
            ),
        }
    }
}

/// In reports, a problem is its sentence.
impl serde::Serialize for CheckProblem {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What `check` found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CheckReport {
    /// The state of every configured peer, as check met it.
    pub peers: Vec<PeerHealth>,
    pub containers: u64,
    pub snapshots: u64,
    pub packs: u64,
    pub fragments: u64,
    pub fragments_ok: u64,
    /// Packs with fewer than `k` good fragments: data is lost.
    pub packs_unrecoverable: u64,
    pub blobs_verified: u64,
    /// Fragments whose peer was asked for audit proofs (0 unless auditing).
    pub audited_fragments: u64,
    /// Ranges asked for in those audits.
    pub audited_ranges: u64,
    /// What killed backups and unfinished deletions left on the peers
    /// (not a problem: `trove prune` removes them).
    pub leftovers: Leftovers,
    /// What is wrong; empty means healthy.
    pub problems: Vec<CheckProblem>,
}

/// Check one container, or all when `name` is `None`.
pub fn check(
    home: &Home,
    owner: &Owner,
    name: Option<&str>,
    opts: &CheckOptions,
    progress: &dyn Progress,
) -> Result<CheckReport> {
    let names: Vec<String> = match name {
        Some(n) => vec![n.to_owned()],
        None => home
            .containers()
            .manifests()?
            .into_iter()
            .map(|c| c.name)
            .collect(),
    };
    crate::pending::finish_all(home, owner, progress)?;
    let mut peers = home.peers().open_all()?;
    peers.record_health(home, opts.peer_lost_after, true)?;
    let mut report = CheckReport {
        peers: peers.health(),
        ..Default::default()
    };
    for h in report.peers.clone() {
        if h.state == PeerState::Online {
            continue;
        }
        report.problems.push(CheckProblem::PeerUnavailable {
            detail: format!(
                "{} — {}; {}",
                h.error.as_deref().unwrap_or("it does not answer"),
                h.describe(),
                advice(&h, opts.peer_lost_after)
            ),
            peer: h.peer,
            state: h.state,
        });
    }
    let fetcher = Fetcher::new(&peers.slots);
    for n in names {
        let c = home.containers().open(owner, &n)?;
        report.containers += 1;
        check_meta(home, owner, &c, &peers, &mut report);
        check_fragments(home, &c, &fetcher, opts.audit, &mut report, progress)?;
        let l = deletions::count(home, &c, &peers)?;
        let sum = &mut report.leftovers;
        sum.fragments += l.fragments;
        sum.fragment_bytes += l.fragment_bytes;
        sum.pending_fragments += l.pending_fragments;
        sum.pending_fragment_bytes += l.pending_fragment_bytes;
        sum.pending_manifests += l.pending_manifests;
        if opts.read_data {
            check_data(home, &c, &fetcher, &mut report, progress)?;
        }
    }
    (report.leftovers.tmp_files, report.leftovers.tmp_bytes) = deletions::count_tmp(&peers);
    report
        .problems
        .extend(fetcher.problems().into_iter().map(CheckProblem::Fragment));
    Ok(report)
}

fn check_meta(
    home: &Home,
    owner: &Owner,
    c: &Container,
    peers: &PeerSet,
    report: &mut CheckReport,
) {
    let cid = c.manifest.id;
    let objects = match home.index.meta(&cid) {
        Ok(o) => o,
        Err(e) => {
            report.problems.push(CheckProblem::Index(e.to_string()));
            return;
        }
    };
    for (rec, peer) in peers.available() {
        for (key, local) in &objects {
            let issue = match peer.get_meta(key) {
                Ok(b) if &b == local => continue,
                Ok(b) => match crate::meta::verify_envelope(owner, c, key, &b) {
                    Err(e) => MetaIssue::Invalid(e.to_string()),
                    Ok(theirs) => {
                        let mine = trove_core::envelope::peek(local).map_or(0, |h| h.revision);
                        match theirs.revision.cmp(&mine) {
                            std::cmp::Ordering::Greater => MetaIssue::Newer {
                                theirs: theirs.revision,
                                mine,
                            },
                            std::cmp::Ordering::Less => MetaIssue::Older {
                                theirs: theirs.revision,
                                mine,
                            },
                            std::cmp::Ordering::Equal => MetaIssue::SameRevision(mine),
                        }
                    }
                },
                Err(e) if e.is_not_found() => MetaIssue::Lacks,
                Err(e) => MetaIssue::Unreadable(e.to_string()),
            };
            report.problems.push(CheckProblem::Meta {
                peer: rec.name.clone(),
                key: *key,
                issue,
            });
        }
    }
}

fn check_fragments(
    home: &Home,
    c: &Container,
    fetcher: &Fetcher,
    audit: bool,
    report: &mut CheckReport,
    progress: &dyn Progress,
) -> Result<()> {
    let packs = home.index.packs(&c.manifest.id)?;
    let total = packs.len() as u64;
    for (n, rec) in packs.iter().enumerate() {
        report.packs += 1;
        let mut good = 0;
        for loc in &rec.fragments {
            report.fragments += 1;
            let verdict = match fetcher.peer_of(loc) {
                Err((name, fault)) => Err((name, fault)),
                Ok((name, p)) => if audit {
                    let (ranges, verdict) = audit_fragment(p.as_ref(), &loc.id, fragment_len(rec));
                    report.audited_fragments += 1;
                    report.audited_ranges += ranges;
                    verdict
                } else {
                    read_verified(p.as_ref(), &loc.id).map(|_| ())
                }
                .map_err(|fault| (name, fault)),
            };
            match verdict {
                Ok(()) => {
                    good += 1;
                    report.fragments_ok += 1;
                }
                Err((name, fault)) => {
                    report
                        .problems
                        .push(CheckProblem::Fragment(FragmentProblem::new(
                            rec, loc, &name, fault,
                        )))
                }
            }
        }
        if good < rec.k as usize {
            report.packs_unrecoverable += 1;
            report.problems.push(CheckProblem::PackLost {
                pack: rec.id,
                good,
                needed: rec.k,
            });
        }
        progress.event(Event::Step {
            done: n as u64 + 1,
            total,
        });
    }
    Ok(())
}

/// The length of each fragment of a pack, known from the index alone.
pub(crate) fn fragment_len(rec: &PackRecord) -> u64 {
    (erasure::FRAGMENT_HEADER_LEN + erasure::shard_len(rec.pack_len as usize, rec.k)) as u64
}

/// Ask `peer` to prove random ranges of fragment `id` and check every proof
/// against the id. Returns how many ranges were asked for, and the verdict.
pub(crate) fn audit_fragment(
    peer: &dyn Peer,
    id: &FragmentId,
    fragment_len: u64,
) -> (u64, std::result::Result<(), FragmentFault>) {
    let ranges = audit::pick_ranges(
        fragment_len,
        AUDIT_RANGES_PER_FRAGMENT,
        AUDIT_RANGE_LEN,
        &mut rand::thread_rng(),
    );
    let verdict = (|| {
        let proofs = peer
            .audit_fragment(id, &ranges)
            .map_err(|e| FragmentFault::of(&e))?;
        if proofs.len() != ranges.len() {
            return Err(FragmentFault::AuditFailed(format!(
                "the peer answered {} of {} ranges",
                proofs.len(),
                ranges.len()
            )));
        }
        for (range, proof) in ranges.iter().zip(&proofs) {
            audit::verify(id, *range, proof)
                .map_err(|e| FragmentFault::AuditFailed(e.to_string()))?;
        }
        Ok(())
    })();
    (ranges.len() as u64, verdict)
}

fn check_data(
    home: &Home,
    c: &Container,
    fetcher: &Fetcher,
    report: &mut CheckReport,
    progress: &dyn Progress,
) -> Result<()> {
    let cid = c.manifest.id;
    let packs = home.index.packs(&cid)?;
    let total = packs.len() as u64;
    for (n, rec) in packs.iter().enumerate() {
        match fetcher.pack_uncached(rec) {
            Ok(data) => {
                for entry in &rec.blobs {
                    let loc = BlobLocation {
                        pack: rec.id,
                        entry: *entry,
                    };
                    match Fetcher::open_blob(&c.keys, &data, &loc) {
                        Ok(_) => report.blobs_verified += 1,
                        Err(e) => report
                            .problems
                            .push(CheckProblem::Data(format!("pack {}: {e}", rec.id.short()))),
                    }
                }
            }
            Err(e) => report.problems.push(CheckProblem::Data(e.to_string())),
        }
        progress.event(Event::Step {
            done: n as u64 + 1,
            total,
        });
    }
    // Every snapshot's trees readable and every blob they name indexed.
    let reader = TreeReader {
        home,
        container: c,
        fetcher,
    };
    let mut seen: HashSet<TreeId> = HashSet::new();
    for snap in home.index.snapshots(&cid)? {
        report.snapshots += 1;
        let mut stack = vec![snap.root];
        while let Some(t) = stack.pop() {
            if !seen.insert(t) {
                continue;
            }
            let tree = match reader.load(&t) {
                Ok(tree) => tree,
                Err(e) => {
                    report.problems.push(CheckProblem::Tree {
                        snapshot: snap.id,
                        error: e.to_string(),
                    });
                    continue;
                }
            };
            for node in tree.nodes {
                match node.kind {
                    NodeKind::Dir { tree } => stack.push(tree),
                    NodeKind::File { chunks, .. } => {
                        for chunk in chunks {
                            if home.index.blob(&cid, &BlobId(chunk.0))?.is_none() {
                                report.problems.push(CheckProblem::ChunkNotStored {
                                    snapshot: snap.id,
                                    chunk,
                                    file: String::from_utf8_lossy(&node.name).into_owned(),
                                });
                            }
                        }
                    }
                    NodeKind::Symlink { .. } => {}
                }
            }
        }
    }
    Ok(())
}
