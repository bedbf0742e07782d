//! Where a backup's time goes, stage by stage (`trove backup --profile`).
//!
//! Each stage's calls are timed on the thread that makes them: CPU time
//! from the thread's own clock (user and system, so a read's or a write's
//! kernel copy counts where it happens), wall time from the monotonic
//! clock (which also counts waiting: for a disk, for a lock, for the other
//! core). Times add up over threads, so a stage run by two workers at once
//! can show more seconds than the backup took.
//!
//! The **pipeline limit** is what the machine's cores could do if every
//! stage ran at the single-core speed it showed on this data, with no
//! stage ever waiting for another: the stages' CPU seconds summed, over the
//! cores. The backup's wall time against that limit says how much of the
//! machine the pipeline used.
//!
//! Off (the default), timing a stage costs one branch.

use rustix::time::{clock_gettime, ClockId};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A stage of the backup path, in the order data goes through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Open the container and peers, bring roster and metadata up to date.
    Prepare,
    /// The metadata walk of the sources.
    Scan,
    /// Reading files (open, read, the kernel's copy).
    Read,
    /// Content-defined chunking.
    Chunk,
    /// Keyed BLAKE3 of each chunk: its id.
    Id,
    /// Looking ids up in the dedup set.
    Dedup,
    /// zstd, where it pays.
    Compress,
    /// XChaCha20-Poly1305 of each new blob.
    Encrypt,
    /// Blobs into packs, the pack header sealed.
    Pack,
    /// Reed-Solomon: a pack into its fragments, and their ids.
    Encode,
    /// Putting fragments on peers, each durable (fsync) before it counts.
    Write,
    /// Upload intents and pack records in the local index.
    Index,
    /// Tree blobs of every folder, bottom-up.
    Trees,
    /// The snapshot: file cache, index segment, manifest, replication.
    Commit,
}

const STAGES: [Stage; 14] = [
    Stage::Prepare,
    Stage::Scan,
    Stage::Read,
    Stage::Chunk,
    Stage::Id,
    Stage::Dedup,
    Stage::Compress,
    Stage::Encrypt,
    Stage::Pack,
    Stage::Encode,
    Stage::Write,
    Stage::Index,
    Stage::Trees,
    Stage::Commit,
];

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Prepare => "prepare",
            Stage::Scan => "scan",
            Stage::Read => "read",
            Stage::Chunk => "chunk",
            Stage::Id => "id",
            Stage::Dedup => "dedup",
            Stage::Compress => "compress",
            Stage::Encrypt => "encrypt",
            Stage::Pack => "pack",
            Stage::Encode => "encode",
            Stage::Write => "write+fsync",
            Stage::Index => "index",
            Stage::Trees => "trees",
            Stage::Commit => "commit",
        }
    }
}

#[derive(Default)]
struct Counters {
    cpu_ns: AtomicU64,
    wall_ns: AtomicU64,
    bytes: AtomicU64,
}

/// Per-stage time counters, shared by every thread of one backup.
pub struct Profiler {
    on: bool,
    stages: [Counters; STAGES.len()],
    started: Instant,
    cpu_at_start: Duration,
    /// Fragment puts per peer name: (fragments, bytes, wall ns summed).
    peer_writes: Mutex<BTreeMap<String, (u64, u64, u64)>>,
    /// Files the pipeline took from the walk before it ended.
    early_files: AtomicU64,
}

fn thread_cpu() -> Duration {
    let t = clock_gettime(ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn process_cpu() -> Duration {
    let t = clock_gettime(ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

impl Profiler {
    pub fn new(on: bool) -> Self {
        Self {
            on,
            stages: Default::default(),
            started: Instant::now(),
            cpu_at_start: if on { process_cpu() } else { Duration::ZERO },
            peer_writes: Mutex::default(),
            early_files: AtomicU64::new(0),
        }
    }

    /// Count `n` files the pipeline took from the walk before it ended.
    pub fn early_files(&self, n: u64) {
        self.early_files.fetch_add(n, Ordering::Relaxed);
    }

    /// Run `f`, a put of a `bytes`-long fragment to `peer`, as part of the
    /// write stage, and count it for that peer too: each peer's own
    /// throughput shows a slow disk or bucket among fast ones.
    pub fn time_put<T>(&self, peer: &str, bytes: u64, f: impl FnOnce() -> T) -> T {
        if !self.on {
            return f();
        }
        let wall = Instant::now();
        let out = self.time(Stage::Write, bytes, f);
        let ns = wall.elapsed().as_nanos() as u64;
        let mut writes = self.peer_writes.lock().unwrap_or_else(|p| p.into_inner());
        let w = writes.entry(peer.to_owned()).or_default();
        *w = (w.0 + 1, w.1 + bytes, w.2 + ns);
        out
    }

    /// Run `f` as part of `stage`, which handles `bytes` of input.
    pub fn time<T>(&self, stage: Stage, bytes: u64, f: impl FnOnce() -> T) -> T {
        if !self.on {
            return f();
        }
        let (wall, cpu) = (Instant::now(), thread_cpu());
        let out = f();
        self.add(stage, thread_cpu() - cpu, wall.elapsed(), bytes);
        out
    }

    /// Run `f` as `stage` while nothing else of the backup runs: its CPU is
    /// the whole process's, so threads `f` starts count too.
    pub fn time_alone<T>(&self, stage: Stage, f: impl FnOnce() -> T) -> T {
        if !self.on {
            return f();
        }
        let (wall, cpu) = (Instant::now(), process_cpu());
        let out = f();
        self.add(stage, process_cpu() - cpu, wall.elapsed(), 0);
        out
    }

    fn add(&self, stage: Stage, cpu: Duration, wall: Duration, bytes: u64) {
        let c = &self.stages[stage as usize];
        c.cpu_ns.fetch_add(cpu.as_nanos() as u64, Ordering::Relaxed);
        c.wall_ns
            .fetch_add(wall.as_nanos() as u64, Ordering::Relaxed);
        c.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The profile so far; `None` when profiling is off.
    pub fn report(&self) -> Option<StageProfile> {
        if !self.on {
            return None;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let stages: Vec<StageRow> = STAGES
            .iter()
            .map(|s| {
                let c = &self.stages[*s as usize];
                StageRow {
                    stage: s.name(),
                    cpu_seconds: c.cpu_ns.load(Ordering::Relaxed) as f64 / 1e9,
                    wall_seconds: c.wall_ns.load(Ordering::Relaxed) as f64 / 1e9,
                    bytes: c.bytes.load(Ordering::Relaxed),
                }
            })
            .collect();
        let wall_seconds = self.started.elapsed().as_secs_f64();
        let limit_seconds = stages.iter().map(|s| s.cpu_seconds).sum::<f64>() / cores as f64;
        let peers = self
            .peer_writes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(peer, &(fragments, bytes, ns))| PeerWriteRow {
                peer: peer.clone(),
                fragments,
                bytes,
                seconds: ns as f64 / 1e9,
            })
            .collect();
        Some(StageProfile {
            stages,
            peers,
            wall_seconds,
            cpu_seconds: (process_cpu() - self.cpu_at_start).as_secs_f64(),
            cores,
            limit_seconds,
            early_files: self.early_files.load(Ordering::Relaxed),
            limit_fraction: if wall_seconds > 0.0 {
                limit_seconds / wall_seconds
            } else {
                0.0
            },
        })
    }
}

/// One stage's totals over all threads.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StageRow {
    pub stage: &'static str,
    pub cpu_seconds: f64,
    /// Summed over threads; includes waiting.
    pub wall_seconds: f64,
    /// The stage's input.
    pub bytes: u64,
}

/// The fragment puts to one peer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PeerWriteRow {
    pub peer: String,
    pub fragments: u64,
    pub bytes: u64,
    /// The puts' wall time summed (puts to one peer may overlap).
    pub seconds: f64,
}

/// A backup's stage profile and its pipeline limit (see the module doc).
#[derive(Debug, Clone, serde::Serialize)]
pub struct StageProfile {
    pub stages: Vec<StageRow>,
    /// Fragment puts per peer, by name.
    pub peers: Vec<PeerWriteRow>,
    /// The backup, end to end (after unlocking).
    pub wall_seconds: f64,
    /// The process's CPU over the backup, all threads.
    pub cpu_seconds: f64,
    pub cores: usize,
    /// Files read while the walk was still going on (`trove backup`: the
    /// walk hands them over as it finds them).
    pub early_files: u64,
    /// The stages' CPU seconds over the cores.
    pub limit_seconds: f64,
    /// `limit_seconds / wall_seconds`: 1.0 is every core busy with useful
    /// work from start to end.
    pub limit_fraction: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_add_up_over_threads_and_off_records_nothing() {
        let p = Profiler::new(true);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    p.time(Stage::Id, 1000, || {
                        // Work the thread's CPU clock can see.
                        let mut x = 0u64;
                        for i in 0..2_000_000u64 {
                            x = x.wrapping_mul(31).wrapping_add(i);
                        }
                        std::hint::black_box(x)
                    })
                });
            }
        });
        let r = p.report().unwrap();
        let id = r.stages.iter().find(|s| s.stage == "id").unwrap();
        assert_eq!(id.bytes, 2000);
        assert!(id.cpu_seconds > 0.0 && id.wall_seconds >= id.cpu_seconds * 0.5);
        let total: f64 = r.stages.iter().map(|s| s.cpu_seconds).sum();
        assert!((r.limit_seconds * r.cores as f64 - total).abs() < 1e-9);
        assert_eq!(r.stages.len(), STAGES.len());
        assert!(Profiler::new(false).report().is_none());
        p.time_put("s3a", 500, || ());
        p.time_put("s3a", 700, || ());
        let r = p.report().unwrap();
        assert_eq!(r.peers.len(), 1);
        assert_eq!((r.peers[0].fragments, r.peers[0].bytes), (2, 1200));
        let write = r.stages.iter().find(|s| s.stage == "write+fsync").unwrap();
        assert_eq!(write.bytes, 1200, "puts count in the write stage too");
    }
}
