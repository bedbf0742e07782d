//! The daemon's loop: one step at a time, the earliest due first.
//!
//! - **backup** of a container: its changes have been quiet for `debounce`
//!   or the first is `max_delay` old ([`Dirty`]), or its rescan is due
//!   (every `rescan`, at start, and when the watcher lost events);
//! - **audit**: every `audit_every`, an audit round over every peer; then,
//!   if some pack has a fragment on a lost or removed peer or an audit
//!   failed, a repair (least healthy packs first, within the budget);
//! - **retention**: every container's `prune_every`, its policy applied by
//!   `forget --prune`.
//!
//! The index is opened for each step and closed after it, so that other
//! commands run between steps (and a step waits for a command that holds
//! it). A failed step is logged and retried with a backoff: the daemon
//! never exits on a peer down or a disk full. A kill -9 at any point is
//! safe because every step is: the next start finishes or discards what
//! was under way, and its first backup is a rescan.

use crate::request::Unanswered;
use crate::schedule::{backoff, Dirty};
use crate::state::{ContainerState, DaemonState};
use crate::watch::{looks_gone, WatchFailure, Watches};
use crate::{DaemonError, Msg};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};
use trove_repo::{
    audit_round, now_unix, redundancy, AuditOptions, BackupOptions, Changes, Config,
    ContainerSchedule, DaemonSettings, Event, ForgetOptions, Home, Owner, PeerState, Progress,
    RepairOptions, RepoError,
};

/// How often a source that looks gone is looked at again.
const GONE_RECHECK: Duration = Duration::from_secs(5);

/// Library warnings go to the log.
#[derive(Debug)]
struct LogProgress<'a> {
    what: &'a str,
}

impl Progress for LogProgress<'_> {
    fn event(&self, e: Event) {
        if let Event::Warning(w) = e {
            tracing::warn!("{}: {w}", self.what);
        }
    }
}

/// One container the daemon looks after.
#[derive(Debug)]
struct Watched {
    name: String,
    sources: Vec<PathBuf>,
    schedule: ContainerSchedule,
    /// Changes not yet in a snapshot.
    dirty: Option<Dirty>,
    /// What the watcher named since the last backup began, while it has
    /// watched without a gap since before that backup's walk: the next
    /// backup walks only what this touches. `None`: not known (at start,
    /// after lost events or a gap in the watch); the next backup walks
    /// everything.
    journal: Option<Changes>,
    /// Paths in the journal that may be folders that appeared: they go in
    /// the next journal too, so a folder walked the instant it appeared,
    /// before the watcher watched inside it, is walked again.
    appeared: Vec<PathBuf>,
    /// No path whose events are ignored (the home, a folder peer) is in
    /// or above a source, so the journal can say everything that changed.
    guidable: bool,
    next_rescan: Instant,
    next_prune: Instant,
    /// After a failure: not before this.
    retry_at: Option<Instant>,
    failures: u32,
    watching: bool,
    watch_problem: Option<String>,
    /// Since when a source has looked deleted or unmounted.
    gone_since: Option<Instant>,
    /// Its last snapshot held files: an empty source then needs a rescan
    /// to confirm it before an empty tree is committed.
    had_data: bool,
    last_backup_unix: Option<i64>,
    last_prune_unix: Option<i64>,
    last_error: Option<String>,
    held: Option<String>,
}

/// When a container's retention is next due: `prune_every` after the last
/// one (a prune due while no daemon ran runs at once), or within ten
/// minutes if there never was one.
fn next_prune(schedule: &ContainerSchedule, last_prune_unix: Option<i64>, now: Instant) -> Instant {
    match last_prune_unix {
        Some(t) => {
            let left = (t + schedule.prune_every.as_secs() as i64 - now_unix()).max(0);
            now + Duration::from_secs(left as u64)
        }
        None => now + schedule.prune_every.min(Duration::from_secs(600)),
    }
}

/// How often `config.toml` is looked at for new container schedules.
const CONFIG_CHECK: Duration = Duration::from_secs(10);

/// Why a backup runs (said in its log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// Its rescan is due: every folder is walked.
    Rescan,
    /// `trove backup` asked for it.
    Asked,
    /// Changes the watcher saw.
    Changes,
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Trigger::Rescan => "rescan",
            Trigger::Asked => "asked",
            Trigger::Changes => "changes",
        })
    }
}

/// Changed paths a journal holds at most (about 100 bytes each).
const JOURNAL_MAX_PATHS: usize = 100_000;

impl Watched {
    /// A backup that did not commit: what it was to cover is still to be
    /// covered. After a whole walk that failed nothing is known.
    fn give_back(&mut self, guide: Option<std::sync::Arc<Changes>>) {
        match (guide, self.journal.as_mut()) {
            (Some(g), Some(j)) => j.merge(std::sync::Arc::unwrap_or_clone(g)),
            _ => self.forget_journal(),
        }
    }

    /// What changed is not known any more: the next backup walks it all.
    fn forget_journal(&mut self) {
        self.journal = None;
        self.appeared.clear();
    }

    /// When its next backup is due: its rescan, or sooner for changes
    /// ([`Dirty::due`]), but not before a failure's retry time.
    fn backup_due(&self, d: &DaemonSettings) -> Instant {
        let mut due = self.next_rescan;
        if let Some(dirty) = &self.dirty {
            due = due.min(dirty.due(d.debounce, d.max_delay));
        }
        self.retry_at.map_or(due, |r| due.max(r))
    }
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Backup(usize),
    Audit,
    Retention(usize),
}

/// The running daemon.
#[derive(Debug)]
pub struct Daemon {
    dir: PathBuf,
    owner: Owner,
    settings: DaemonSettings,
    containers: Vec<Watched>,
    rx: Receiver<Msg>,
    watches: Option<Watches>,
    next_audit: Instant,
    last_audit_unix: Option<i64>,
    last_repair_unix: Option<i64>,
    storm: Option<String>,
    started_unix: i64,
    clock: WallClock,
    /// The state last written (`updated_unix` zeroed): an unchanged state
    /// is not written again.
    saved: Option<DaemonState>,
    /// `config.toml`'s modification time when its schedules were last read.
    config_mtime: Option<SystemTime>,
    /// Peers' states at the last round, to log changes only.
    peer_states: std::collections::HashMap<String, PeerState>,
    shutdown: bool,
    /// Requests of `trove backup` to answer, in order.
    requests: std::collections::VecDeque<PathBuf>,
    /// Why it stopped, once `shutdown` is set.
    stopped: Stopped,
}

/// Why [`Daemon::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// A signal asked it to.
    Asked,
    /// The home's master secret was rotated: the one this daemon holds is
    /// refused by the peers, and a new start unlocks the new one.
    SecretRotated,
}

fn config_mtime(home: &Path) -> Option<SystemTime> {
    std::fs::metadata(Config::path(home))
        .and_then(|m| m.modified())
        .ok()
}

/// Converts the loop's [`Instant`]s to seconds since the epoch for the
/// state file, from one reading of both clocks: the same instant always
/// gives the same second.
#[derive(Debug, Clone, Copy)]
struct WallClock {
    at: Instant,
    unix_ns: i64,
}

impl WallClock {
    fn now() -> Self {
        Self {
            at: Instant::now(),
            unix_ns: trove_repo::now_ns(),
        }
    }

    fn unix(&self, at: Instant) -> i64 {
        let ns = match at.checked_duration_since(self.at) {
            Some(after) => self.unix_ns + after.as_nanos() as i64,
            None => self.unix_ns - (self.at - at).as_nanos() as i64,
        };
        ns.div_euclid(1_000_000_000)
    }
}

impl Daemon {
    /// Get ready to look after every container of the home in `dir`:
    /// read what was last done from the index and the state file, and
    /// start watching. `tx` is where signals and the watcher send.
    pub fn new(
        dir: &Path,
        owner: Owner,
        config: &Config,
        tx: Sender<Msg>,
        rx: Receiver<Msg>,
    ) -> Result<Self, DaemonError> {
        let settings = config.daemon;
        let home = Home::open_waiting(dir, Duration::from_secs(300), &|holder| {
            if let Some(h) = holder {
                tracing::info!("waiting for another trove command to finish: {h}");
            }
        })?;
        let manifests = home.containers().manifests()?;
        if manifests.is_empty() {
            return Err(DaemonError::NoContainers(dir.to_owned()));
        }
        let previous = DaemonState::load(dir).unwrap_or_default();
        if let Some(reminder) = trove_repo::drill_status(dir, trove_repo::now_unix()).reminder {
            tracing::warn!("{reminder}");
        }
        let now = Instant::now();
        let rows = home.containers().snapshot_rows(None)?;
        let mut containers = Vec::new();
        for m in &manifests {
            let schedule = config.container(&m.name);
            let last = rows.iter().rfind(|r| r.container == m.name);
            let last_prune_unix = previous
                .containers
                .get(&m.name)
                .and_then(|c| c.last_prune_unix);
            let next_prune = next_prune(&schedule, last_prune_unix, now);
            containers.push(Watched {
                name: m.name.clone(),
                sources: m.sources.iter().map(PathBuf::from).collect(),
                schedule,
                dirty: None,
                journal: None,
                appeared: Vec::new(),
                guidable: true,
                // The first backup is a rescan: whatever changed while no
                // daemon ran (or a killed one left) is taken now.
                next_rescan: now,
                next_prune,
                retry_at: None,
                failures: 0,
                watching: false,
                watch_problem: None,
                gone_since: None,
                had_data: last.is_some_and(|r| r.files > 0),
                last_backup_unix: last.map(|r| r.time_unix_ns / 1_000_000_000),
                last_prune_unix,
                last_error: None,
                held: None,
            });
        }
        // Paths whose changes are our own doing.
        let mut ignore = vec![dir.to_owned()];
        for rec in home.peers().records()? {
            if let Ok(loc) = rec.location.parse::<trove_repo::PeerLocation>() {
                ignore.extend(loc.folder().map(Path::to_owned));
            }
        }
        drop(home);
        // Events under the ignored paths are not seen: a container with a
        // source in one, or one inside a source, is walked whole each time.
        for c in &mut containers {
            // The watcher names paths as the walk does only if the
            // sources are written as the kernel resolves them.
            c.guidable = c.sources.iter().all(|s| {
                std::fs::canonicalize(s).is_ok_and(|real| real == *s)
                    && !ignore.iter().any(|i| i.starts_with(s) || s.starts_with(i))
            });
        }
        // Every container's sources (one may be set to `watch` later); only
        // those with `watch` are watched now.
        let sources: Vec<(usize, PathBuf)> = containers
            .iter()
            .enumerate()
            .flat_map(|(i, c)| c.sources.iter().map(move |s| (i, s.clone())))
            .collect();
        // Requests of `trove backup` left by commands that gave up.
        let requests = crate::request::requests_dir(dir)
            .inspect_err(|e| {
                tracing::warn!("cannot make the requests folder ({e}): `trove backup` walks the sources itself")
            })
            .ok();
        if let Some(r) = &requests {
            crate::request::clear(r);
        }
        let watches = match Watches::start(tx, sources, ignore, requests) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(
                    "cannot watch for changes ({e}); changes are found by the rescan every {}",
                    trove_repo::format_duration(settings.rescan)
                );
                None
            }
        };
        let mut daemon = Self {
            dir: dir.to_owned(),
            owner,
            settings,
            containers,
            rx,
            watches,
            next_audit: now + settings.audit_every.min(Duration::from_secs(60)),
            last_audit_unix: previous.last_audit_unix,
            last_repair_unix: previous.last_repair_unix,
            storm: None,
            started_unix: now_unix(),
            clock: WallClock::now(),
            saved: None,
            peer_states: Default::default(),
            config_mtime: config_mtime(dir),
            shutdown: false,
            requests: Default::default(),
            stopped: Stopped::Asked,
        };
        for i in 0..daemon.containers.len() {
            if daemon.containers[i].schedule.watch {
                daemon.watch(i);
            }
        }
        tracing::info!(
            "trove daemon started on {}: {} container(s) ({}); debounce {}, max delay {}, rescan {}, audits every {}, peers lost after {}, repair {}",
            dir.display(),
            daemon.containers.len(),
            daemon
                .containers
                .iter()
                .map(|c| format!(
                    "{}: {}",
                    c.name,
                    if c.watching { "watched" } else { "rescans only" }
                ))
                .collect::<Vec<_>>()
                .join(", "),
            trove_repo::format_duration(settings.debounce),
            trove_repo::format_duration(settings.max_delay),
            trove_repo::format_duration(settings.rescan),
            trove_repo::format_duration(settings.audit_every),
            trove_repo::format_duration(settings.peer_lost_after),
            if settings.repair { "on" } else { "off" },
        );
        daemon.save_state(None);
        Ok(daemon)
    }

    /// Watch a container's sources; log why not where it cannot.
    fn watch(&mut self, i: usize) {
        let Some(w) = self.watches.as_mut() else {
            return;
        };
        let failed = w.watch(i);
        let c = &mut self.containers[i];
        c.watching = failed.is_empty();
        // A new watch: what changed before it is not known.
        c.forget_journal();
        let problem = failed
            .iter()
            .map(|(p, why)| format!("{}: {why}", p.display()))
            .collect::<Vec<_>>()
            .join("; ");
        if failed.iter().any(|(_, why)| *why == WatchFailure::Limit) {
            w.unwatch(i);
        }
        if !failed.is_empty() && c.watch_problem.as_deref() != Some(problem.as_str()) {
            tracing::warn!(
                "container {}: cannot watch {problem}; its changes are found by the rescan every {}",
                c.name,
                trove_repo::format_duration(self.settings.rescan)
            );
        }
        c.watch_problem = (!failed.is_empty()).then_some(problem);
    }

    /// Run until SIGTERM/SIGINT (a [`Msg::Shutdown`]).
    pub fn run(mut self) -> Stopped {
        while !self.shutdown {
            self.reload_schedules();
            if let Some(request) = self.requests.pop_front() {
                self.serve(&request);
                self.handle_queued();
                continue;
            }
            let now = Instant::now();
            let (at, step) = self.next_step();
            if at > now {
                self.save_state(None);
                self.wait((at - now).min(CONFIG_CHECK));
                continue;
            }
            self.step(step);
            self.handle_queued();
        }
        self.save_state(None);
        tracing::info!("trove daemon stopped");
        self.stopped
    }

    /// Take in the `[containers.NAME]` sections of `config.toml` when the
    /// file changed (`trove container set`): retention, `prune_every`,
    /// `watch`. The `[daemon]` settings stay as at start (flags override
    /// them). A file that no longer parses is logged and the old schedules
    /// kept.
    fn reload_schedules(&mut self) {
        let mtime = config_mtime(&self.dir);
        if mtime == self.config_mtime {
            return;
        }
        self.config_mtime = mtime;
        let config = match Config::load(&self.dir) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("{e}; the schedules in use are kept");
                return;
            }
        };
        let now = Instant::now();
        for i in 0..self.containers.len() {
            let c = &mut self.containers[i];
            let new = config.container(&c.name);
            if new == c.schedule {
                continue;
            }
            tracing::info!(
                "container {}: new schedule from config.toml: {}, every {}, {}",
                c.name,
                new.retention.describe(),
                trove_repo::format_duration(new.prune_every),
                if new.watch { "watched" } else { "rescans only" }
            );
            c.next_prune = next_prune(&new, c.last_prune_unix, now);
            let watch = new.watch;
            let was = c.schedule.watch;
            c.schedule = new;
            match (was, watch) {
                (false, true) => self.watch(i),
                (true, false) => {
                    if let Some(w) = self.watches.as_mut() {
                        w.unwatch(i);
                    }
                    self.containers[i].watching = false;
                }
                _ => {}
            }
        }
    }

    fn next_step(&self) -> (Instant, Step) {
        let mut best = (self.next_audit, Step::Audit);
        for (i, c) in self.containers.iter().enumerate() {
            let due = c.backup_due(&self.settings);
            if (due, Step::Backup(i)) < best {
                best = (due, Step::Backup(i));
            }
            if !c.schedule.retention.is_empty() && (c.next_prune, Step::Retention(i)) < best {
                best = (c.next_prune, Step::Retention(i));
            }
        }
        best
    }

    fn wait(&mut self, d: Duration) {
        match self.rx.recv_timeout(d) {
            Ok(msg) => self.handle(msg),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => self.shutdown = true,
        }
    }

    /// Take in the messages already queued (changes, requests, a signal),
    /// without waiting.
    fn handle_queued(&mut self) {
        while let Ok(msg) = self.rx.try_recv() {
            self.handle(msg);
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Changed {
                container,
                at,
                path,
                appeared,
            } => {
                if let Some(c) = self.containers.get_mut(container) {
                    match &mut c.dirty {
                        Some(d) => d.touch(at),
                        None => c.dirty = Some(Dirty::new(at)),
                    }
                    if let Some(j) = c.journal.as_mut() {
                        j.add(&path);
                        if appeared {
                            c.appeared.push(path);
                        }
                        // Past this many, a whole walk costs less than
                        // the journal's memory is worth.
                        if j.len() + c.appeared.len() > JOURNAL_MAX_PATHS {
                            c.forget_journal();
                        }
                    }
                }
            }
            Msg::Rescan { container, why } => {
                let now = Instant::now();
                for (i, c) in self.containers.iter_mut().enumerate() {
                    if container.is_none_or(|x| x == i) {
                        tracing::warn!("container {}: rescanning: {why}", c.name);
                        c.next_rescan = now;
                        c.forget_journal();
                    }
                }
            }
            Msg::WatchFailed { container, why } => {
                let now = Instant::now();
                for (i, c) in self.containers.iter_mut().enumerate() {
                    if container.is_none_or(|x| x == i) && c.watching {
                        tracing::warn!(
                            "container {}: the watcher failed ({why}); rescanning now, and every {} until it watches again",
                            c.name,
                            trove_repo::format_duration(self.settings.rescan)
                        );
                        c.watching = false;
                        c.forget_journal();
                        c.watch_problem = Some(why.to_string());
                        c.next_rescan = now;
                    }
                }
            }
            Msg::Request(path) => {
                if !self.requests.contains(&path) {
                    self.requests.push_back(path);
                }
            }
            Msg::Shutdown => {
                if !self.shutdown {
                    tracing::info!("stopping: the step under way (if any) was finished; press Ctrl-C again to stop at once (safe: the next start picks up)");
                }
                self.shutdown = true;
            }
        }
    }

    /// Open the index for one step, waiting while another command holds
    /// it; `None` on shutdown or an error (logged).
    fn open_home(&mut self, what: &str) -> Option<Home> {
        let mut told = false;
        loop {
            match Home::open(&self.dir) {
                Ok(h) if self.holds_an_old_secret(&h) => {
                    tracing::error!(
                        "{what}: the master secret of this home was rotated (or a rotation is under way, `trove recovery rotate`); this daemon holds the old one, which the peers refuse: stopping (exit 1, so a service manager starts it again with the new one)"
                    );
                    self.shutdown = true;
                    self.stopped = Stopped::SecretRotated;
                    return None;
                }
                Ok(h) => return Some(h),
                Err(RepoError::Busy { holder, .. }) => {
                    if !told {
                        tracing::info!(
                            "{what}: waiting for another trove command to finish{}",
                            holder.map(|h| format!(" ({h})")).unwrap_or_default()
                        );
                        told = true;
                    }
                    // Often: a command polling in a loop must not starve us.
                    self.wait(Duration::from_millis(100));
                    if self.shutdown {
                        return None;
                    }
                }
                Err(e) => {
                    tracing::error!("{what}: cannot open the index: {e}; trying again later");
                    return None;
                }
            }
        }
    }

    /// Whether `home` moved on to another master secret than the one this
    /// daemon unlocked at its start (`trove recovery rotate`).
    fn holds_an_old_secret(&self, home: &Home) -> bool {
        home.rotation_under_way()
            || home
                .public_identity()
                .is_ok_and(|id| id != self.owner.public())
    }

    fn step(&mut self, step: Step) {
        let what = match step {
            Step::Backup(i) => format!("backup {}", self.containers[i].name),
            Step::Audit => "audit".to_owned(),
            Step::Retention(i) => format!("retention {}", self.containers[i].name),
        };
        self.save_state(Some(what.clone()));
        match step {
            Step::Backup(i) => self.backup(i),
            Step::Audit => self.audit(),
            Step::Retention(i) => self.retention(i),
        }
    }

    /// Answer the request of `trove backup` at `path`: a backup of its
    /// container now, for the changes the journal holds.
    fn serve(&mut self, path: &Path) {
        let Some(request) = crate::request::take(path) else {
            return;
        };
        let result = request.map_err(Unanswered::Failed).and_then(|r| {
            let Some(i) = self.containers.iter().position(|c| c.name == r.container) else {
                return Err(Unanswered::Declined(format!(
                    "the daemon looks after no container `{}` (it has {}); restart it to take in a new one",
                    r.container,
                    self.containers
                        .iter()
                        .map(|c| format!("`{}`", c.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            };
            self.save_state(Some(format!("backup {} (asked)", r.container)));
            self.backup_now(i, true).map_err(Unanswered::Failed)
        });
        crate::request::answer(path, result);
    }

    fn backup(&mut self, i: usize) {
        // Logged where it failed.
        let _ = self.backup_now(i, false);
    }

    /// Back up container `i` (`asked`: for a `trove backup`): its report as
    /// `trove backup --json` prints it, or why there is none.
    fn backup_now(&mut self, i: usize, asked: bool) -> Result<serde_json::Value, String> {
        // Events already queued name changes made before this backup: they
        // go in the journal it is given, not the next one.
        self.handle_queued();
        let now = Instant::now();
        let rescan = self.settings.rescan;
        let c = &mut self.containers[i];
        let trigger = if now >= c.next_rescan {
            Trigger::Rescan
        } else if asked {
            Trigger::Asked
        } else {
            Trigger::Changes
        };
        // A source that looks deleted or unmounted is not taken for a user
        // who deleted everything: only a rescan a full interval later that
        // finds it so again is.
        let gone: Vec<String> = c
            .sources
            .iter()
            .filter(|s| looks_gone(s))
            .map(|s| s.display().to_string())
            .collect();
        if gone.is_empty() || !c.had_data {
            if c.gone_since.take().is_some() {
                tracing::info!("container {}: its sources are back", c.name);
            }
            c.held = None;
        } else {
            let since = *c.gone_since.get_or_insert(now);
            if now < since + rescan {
                let held = format!(
                    "source {} is empty or missing (deleted? a disk not mounted?): the last snapshot is kept, and an empty tree is backed up only if a rescan in {} finds it so again",
                    gone.join(", "),
                    trove_repo::format_duration(rescan)
                );
                if c.held.as_deref() != Some(held.as_str()) {
                    tracing::warn!("container {}: {held}", c.name);
                }
                c.held = Some(held.clone());
                c.dirty = None;
                // Look again soon (a disk mounted again is backed up at
                // once, and watched anew), and confirm at the rescan.
                c.next_rescan = (since + rescan).min(now + GONE_RECHECK);
                c.watching = false;
                return Err(held);
            }
            tracing::warn!(
                "container {}: source {} still empty or missing after {}: backing it up as it is",
                c.name,
                gone.join(", "),
                trove_repo::format_duration(rescan)
            );
            c.held = None;
        }
        let pending = c.dirty.take();
        // When it was due to start: what the schedule promises (a command
        // holding the index may delay the start further; logged apart).
        let delay = pending.map(|d| d.first.elapsed().as_secs_f64());
        let name = c.name.clone();
        if c.schedule.watch && !c.watching {
            self.watch(i);
        }
        // A backup for changes walks only what the watcher named since the
        // last one began; from now on, what it names is for the next.
        let c = &mut self.containers[i];
        let guide = match c.journal.take() {
            Some(j) if trigger != Trigger::Rescan && c.watching && c.guidable => Some(j),
            _ => None,
        };
        let appeared = std::mem::take(&mut c.appeared);
        c.journal = c.watching.then(|| {
            let mut next = Changes::watching(c.sources.clone());
            for p in &appeared {
                next.add(p);
            }
            next
        });
        let guide = guide.map(std::sync::Arc::new);
        let waiting = Instant::now();
        let Some(home) = self.open_home(&format!("backup {name}")) else {
            let c = &mut self.containers[i];
            c.dirty = Some(pending.unwrap_or_else(|| Dirty::new(now)));
            c.give_back(guide);
            if !self.shutdown {
                c.failures += 1;
                c.retry_at = Some(Instant::now() + backoff(c.failures, rescan));
            }
            return Err("the daemon could not open the index (its log says why)".into());
        };
        let waited = waiting.elapsed().as_secs_f64();
        let progress = LogProgress { what: &name };
        let opts = BackupOptions {
            changes: guide.clone(),
            ..BackupOptions::default()
        };
        let result = trove_repo::backup(&home, &self.owner, &name, &opts, &progress);
        drop(home);
        let c = &mut self.containers[i];
        match result {
            Ok(r) => {
                let s = &r.snapshot.summary;
                let files = s.files_new + s.files_changed + s.files_unchanged;
                tracing::info!(
                    "snapshot {} of {name} ({trigger}{}{}): {} new, {} changed, {} unchanged files, {} bytes read, {} stored, {:.1}s{}{}",
                    r.snapshot.id.short(),
                    delay.map(|d| format!(", {d:.1}s after the first change")).unwrap_or_default(),
                    if waited >= 0.1 { format!(", then {waited:.1}s waiting for another command") } else { String::new() },
                    s.files_new,
                    s.files_changed,
                    s.files_unchanged,
                    s.bytes_read,
                    s.bytes_stored,
                    r.seconds,
                    match (&guide, r.walk) {
                        (Some(g), Some(w)) => format!(
                            "; {} changed path(s) seen: {} folder(s) walked, {} kept ({:.3}s)",
                            g.len(),
                            w.walked,
                            w.kept,
                            r.seconds
                        ),
                        _ => String::new(),
                    },
                    if r.unreadable.is_empty() {
                        String::new()
                    } else {
                        format!("; {} unreadable, left out", r.unreadable.len())
                    }
                );
                for u in &r.unreadable {
                    tracing::warn!("{name}: could not read {}: {}", u.path.display(), u.error);
                }
                c.had_data = files > 0;
                c.failures = 0;
                c.retry_at = None;
                c.last_error = None;
                c.last_backup_unix = Some(now_unix());
                // Only a whole walk puts off the next one: the rescan is
                // what finds the changes inotify cannot see.
                if guide.is_none() {
                    c.next_rescan = now + rescan;
                }
                serde_json::to_value(&r).map_err(|e| e.to_string())
            }
            Err(e) => {
                c.failures += 1;
                let wait = backoff(c.failures, rescan);
                tracing::error!(
                    "backup of {name} failed: {e}; trying again in {}",
                    trove_repo::format_duration(wait)
                );
                c.last_error = Some(e.to_string());
                c.retry_at = Some(Instant::now() + wait);
                c.give_back(guide);
                // The changes are still to be backed up.
                c.dirty = Some(pending.unwrap_or_else(|| Dirty::new(now)));
                Err(e.to_string())
            }
        }
    }

    fn audit(&mut self) {
        let now = Instant::now();
        self.next_audit = now + self.settings.audit_every;
        let Some(home) = self.open_home("audit") else {
            return;
        };
        let progress = LogProgress { what: "audit" };
        let opts = AuditOptions {
            per_peer: self.settings.audit_sample,
            peer_lost_after: self.settings.peer_lost_after,
            storm_guard: true,
        };
        let round = match audit_round(&home, &opts, &progress) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("audit round failed: {e}; trying again at the next round");
                return;
            }
        };
        self.last_audit_unix = Some(now_unix());
        // An open inheritance claim is the owner's to see at once: said at
        // every round while it stays open.
        for c in trove_repo::inherit::open_claims(&home, &[]) {
            tracing::warn!(
                "INHERITANCE CLAIM open on custodian {}: {}; if you did not expect it, run `trove inherit veto`",
                c.custodian,
                c.describe()
            );
        }
        let count = |s: PeerState| round.peers.iter().filter(|p| p.health.state == s).count();
        tracing::info!(
            "audit: {} fragment(s) proven, {} failed; peers: {} online, {} suspect, {} lost; {:.1}s",
            round.passed,
            round.failed,
            count(PeerState::Online),
            count(PeerState::Suspect),
            count(PeerState::Lost),
            round.seconds
        );
        for p in &round.peers {
            for f in &p.failed {
                tracing::warn!(
                    "audit: peer {} failed fragment {} of pack {}: {}",
                    p.health.peer,
                    f.fragment.short(),
                    f.pack.short(),
                    f.detail
                );
            }
            let was = self
                .peer_states
                .insert(p.health.peer.clone(), p.health.state);
            if was.is_some_and(|w| w != p.health.state)
                || (was.is_none() && p.health.state != PeerState::Online)
            {
                tracing::info!("peer {} is {}", p.health.peer, p.health.describe());
            }
        }
        let storm = round.storm.map(|s| s.to_string());
        if storm.is_some() && storm != self.storm {
            tracing::warn!("audit: {}", storm.as_deref().unwrap_or_default());
        }
        self.storm = storm;
        let health: Vec<_> = round.peers.iter().map(|p| p.health.clone()).collect();
        let to_repair: u64 = match redundancy(&home, &health) {
            Ok(rows) => rows.iter().map(|r| r.packs_to_repair).sum(),
            Err(e) => {
                tracing::error!("audit: cannot read the packs' redundancy: {e}");
                return;
            }
        };
        if to_repair == 0 && round.failed == 0 {
            return;
        }
        if !self.settings.repair {
            tracing::warn!(
                "repair is off (--no-repair): {to_repair} pack(s) have fragments on lost or removed peers; run `trove repair`"
            );
            return;
        }
        tracing::info!(
            "repair: {to_repair} pack(s) have fragments on lost or removed peers, {} fragment(s) failed their audit: repairing",
            round.failed
        );
        let opts = RepairOptions {
            audit: true,
            peer_lost_after: self.settings.peer_lost_after,
            budget_mib: Some(self.settings.repair_budget_mib),
            storm_guard: true,
            dry_run: false,
        };
        let progress = LogProgress { what: "repair" };
        match trove_repo::repair(&home, &self.owner, None, &opts, &progress) {
            Ok(r) => {
                self.last_repair_unix = Some(now_unix());
                tracing::info!(
                    "repair: {} pack(s) repaired, {} fragment(s) rebuilt ({} bytes read, {} written), {} short, {} lost, {} left for the next round; {}; {:.1}s",
                    r.packs_repaired,
                    r.fragments_rebuilt,
                    r.bytes_read,
                    r.bytes_written,
                    r.packs_short,
                    r.packs_lost,
                    r.packs_deferred,
                    if r.full_redundancy {
                        "every pack is at full redundancy".to_owned()
                    } else if r.peers_needed > 0 {
                        format!(
                            "not at full redundancy: add {} peer(s) (`trove peer add`)",
                            r.peers_needed
                        )
                    } else {
                        "not at full redundancy yet".to_owned()
                    },
                    r.seconds
                );
            }
            Err(e) => tracing::error!("repair failed: {e}; trying again at the next round"),
        }
    }

    fn retention(&mut self, i: usize) {
        let now = Instant::now();
        let c = &mut self.containers[i];
        c.next_prune = now + c.schedule.prune_every;
        let name = c.name.clone();
        let policy = match c.schedule.retention.policy() {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("retention of {name}: {e}");
                return;
            }
        };
        let Some(home) = self.open_home(&format!("retention {name}")) else {
            return;
        };
        let opts = ForgetOptions {
            policy,
            prune: true,
            ..Default::default()
        };
        let progress = LogProgress { what: &name };
        let result = trove_repo::forget(&home, &self.owner, &name, &opts, &progress);
        drop(home);
        let c = &mut self.containers[i];
        match result {
            Ok(r) => {
                c.last_prune_unix = Some(now_unix());
                let freed = r.prune.as_ref().map_or(0, |p| p.fragment_bytes_removed);
                tracing::info!(
                    "retention of {name} ({}): {} snapshot(s) kept, {} forgotten; prune removed {freed} bytes of fragments",
                    c.schedule.retention.describe(),
                    r.keep.len(),
                    r.forget.len()
                );
            }
            Err(e) => {
                c.last_error = Some(e.to_string());
                tracing::error!(
                    "retention of {name} failed: {e}; trying again in {}",
                    trove_repo::format_duration(c.schedule.prune_every)
                );
            }
        }
    }

    fn save_state(&mut self, working_on: Option<String>) {
        let clock = self.clock;
        let mut state = DaemonState {
            pid: std::process::id(),
            started_unix: self.started_unix,
            settings: Some(self.settings),
            updated_unix: 0,
            working_on,
            last_audit_unix: self.last_audit_unix,
            next_audit_unix: Some(clock.unix(self.next_audit)),
            last_repair_unix: self.last_repair_unix,
            storm: self.storm.clone(),
            containers: self
                .containers
                .iter()
                .map(|c| {
                    let row = ContainerState {
                        watching: c.watching,
                        watch_problem: c.watch_problem.clone(),
                        changes_since_unix: c.dirty.map(|x| clock.unix(x.first)),
                        knows_changes: c.guidable && c.journal.is_some(),
                        next_backup_unix: Some(clock.unix(c.backup_due(&self.settings))),
                        last_backup_unix: c.last_backup_unix,
                        last_prune_unix: c.last_prune_unix,
                        next_prune_unix: (!c.schedule.retention.is_empty())
                            .then(|| clock.unix(c.next_prune)),
                        held: c.held.clone(),
                        last_error: c.last_error.clone(),
                    };
                    (c.name.clone(), row)
                })
                .collect(),
            takes_requests: self.watches.as_ref().is_some_and(|w| w.takes_requests),
        };
        if self.saved.as_ref() == Some(&state) {
            return;
        }
        let unchanged = state.clone();
        state.updated_unix = now_unix();
        match state.save(&self.dir) {
            Ok(()) => self.saved = Some(unchanged),
            Err(e) => tracing::warn!(
                "cannot write {}: {e}",
                DaemonState::path(&self.dir).display()
            ),
        }
    }
}
