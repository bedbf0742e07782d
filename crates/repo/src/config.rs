//! `TROVE_HOME/config.toml`: the daemon's settings and each container's
//! schedule and retention (docs/design.md §10).
//!
//! The file is optional: without it every setting has its default. It is
//! written by `trove container set` and may be edited by hand; the daemon
//! reads it at start, and its flags override it. Durations are strings in
//! [`parse_duration`]'s units (`10s`, `5m`, `1h`, `30d`). The file carries a
//! `version`; a newer one than this build knows is refused rather than
//! half-understood.

use crate::error::{RepoError, Result};
use crate::forget::{KeepPolicy, KeepWithin};
use crate::health::{format_duration, parse_duration, DEFAULT_PEER_LOST_AFTER};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file's name in `TROVE_HOME`.
pub const CONFIG_FILE: &str = "config.toml";
/// The format this build writes and the newest it reads.
pub const CONFIG_VERSION: u32 = 1;

/// Everything `config.toml` holds, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "current_version")]
    pub version: u32,
    #[serde(default)]
    pub daemon: DaemonSettings,
    /// The data folder of this owner's own node (`trove node run --data`),
    /// if it runs one on this machine: the reciprocity ledger reads what it
    /// stores for others there and writes the audits' proofs into it
    /// (docs/design.md §6a.5). Else the environment's `TROVE_NODE_DATA`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_data: Option<PathBuf>,
    /// Per container, by name.
    #[serde(default)]
    pub containers: BTreeMap<String, ContainerSchedule>,
}

fn current_version() -> u32 {
    CONFIG_VERSION
}

impl Default for Config {
    fn default() -> Self {
        Self {
            version: CONFIG_VERSION,
            daemon: DaemonSettings::default(),
            node_data: None,
            containers: BTreeMap::new(),
        }
    }
}

/// How `trove daemon` paces its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonSettings {
    /// Back up once the sources have been quiet this long.
    #[serde(with = "duration")]
    pub debounce: Duration,
    /// ... but no later than this after the first change, even if files
    /// keep changing.
    #[serde(with = "duration")]
    pub max_delay: Duration,
    /// Walk every source this often whatever the watcher says (changes it
    /// missed, filesystems it cannot watch).
    #[serde(with = "duration")]
    pub rescan: Duration,
    /// Audit a sample of every peer's fragments this often.
    #[serde(with = "duration")]
    pub audit_every: Duration,
    /// Fragments audited per peer and round.
    pub audit_sample: u32,
    /// A peer unreachable this long is lost, and its fragments repaired.
    #[serde(with = "duration")]
    pub peer_lost_after: Duration,
    /// Repair lost and damaged fragments without being asked.
    pub repair: bool,
    /// MiB a repair round may read plus write; the least healthy packs go
    /// first and the rest wait for the next round.
    pub repair_budget_mib: u64,
}

impl Default for DaemonSettings {
    fn default() -> Self {
        Self {
            debounce: Duration::from_secs(10),
            max_delay: Duration::from_secs(60),
            rescan: Duration::from_secs(3600),
            audit_every: Duration::from_secs(3600),
            audit_sample: 16,
            peer_lost_after: DEFAULT_PEER_LOST_AFTER,
            repair: true,
            repair_budget_mib: 4096,
        }
    }
}

/// One container's schedule and retention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContainerSchedule {
    /// Back up changes as they happen (else only at each rescan).
    pub watch: bool,
    /// Apply the retention policy (forget, then prune) this often.
    #[serde(with = "duration")]
    pub prune_every: Duration,
    #[serde(flatten)]
    pub retention: Retention,
}

impl Default for ContainerSchedule {
    fn default() -> Self {
        Self {
            watch: true,
            prune_every: Duration::from_secs(86_400),
            retention: Retention::default(),
        }
    }
}

/// Which snapshots the schedule keeps: [`KeepPolicy`] as the file spells
/// it. No rule set keeps everything (nothing is ever forgotten).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_hourly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_yearly: Option<u32>,
    /// `1y6m`, `30d`, `2d12h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_within: Option<String>,
}

impl Retention {
    /// The policy `trove forget` applies. Fails on a `keep_within` that
    /// does not parse (which [`Config::load`] already refused).
    pub fn policy(&self) -> Result<KeepPolicy> {
        let keep_within = self
            .keep_within
            .as_deref()
            .map(KeepWithin::parse)
            .transpose()
            .map_err(RepoError::BadDuration)?;
        Ok(KeepPolicy {
            keep_last: self.keep_last,
            keep_hourly: self.keep_hourly,
            keep_daily: self.keep_daily,
            keep_weekly: self.keep_weekly,
            keep_monthly: self.keep_monthly,
            keep_yearly: self.keep_yearly,
            keep_within,
        })
    }

    /// The same policy, as the file spells it.
    pub fn from_policy(p: &KeepPolicy) -> Self {
        Self {
            keep_last: p.keep_last,
            keep_hourly: p.keep_hourly,
            keep_daily: p.keep_daily,
            keep_weekly: p.keep_weekly,
            keep_monthly: p.keep_monthly,
            keep_yearly: p.keep_yearly,
            keep_within: p.keep_within.map(|w| w.to_string()),
        }
    }

    /// `--keep-daily 7 --keep-weekly 5`, or `keep everything`.
    pub fn describe(&self) -> String {
        let rules: Vec<String> = [
            ("last", self.keep_last),
            ("hourly", self.keep_hourly),
            ("daily", self.keep_daily),
            ("weekly", self.keep_weekly),
            ("monthly", self.keep_monthly),
            ("yearly", self.keep_yearly),
        ]
        .into_iter()
        .filter_map(|(rule, n)| n.map(|n| format!("--keep-{rule} {n}")))
        .chain(
            self.keep_within
                .iter()
                .map(|w| format!("--keep-within {w}")),
        )
        .collect();
        if rules.is_empty() {
            "keep everything".to_owned()
        } else {
            rules.join(" ")
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl Config {
    /// The file's path in `home`.
    pub fn path(home: &Path) -> PathBuf {
        home.join(CONFIG_FILE)
    }

    /// Read `home/config.toml`; the defaults when there is none.
    pub fn load(home: &Path) -> Result<Self> {
        let path = Self::path(home);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(RepoError::io("read", &path, e)),
        };
        Self::parse(&text).map_err(|reason| RepoError::Config { path, reason })
    }

    /// Parse and validate the file's text.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let config: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        if config.version > CONFIG_VERSION {
            return Err(format!(
                "version {} is newer than this trove understands ({CONFIG_VERSION}): upgrade trove",
                config.version
            ));
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let d = &self.daemon;
        if d.debounce > d.max_delay {
            return Err(format!(
                "daemon.debounce ({}) is longer than daemon.max_delay ({})",
                format_duration(d.debounce),
                format_duration(d.max_delay)
            ));
        }
        for (what, v) in [
            ("daemon.rescan", d.rescan),
            ("daemon.audit_every", d.audit_every),
            ("daemon.max_delay", d.max_delay),
        ] {
            if v.is_zero() {
                return Err(format!("{what} must be longer than 0s"));
            }
        }
        for (name, c) in &self.containers {
            if c.prune_every.is_zero() {
                return Err(format!(
                    "containers.{name}.prune_every must be longer than 0s"
                ));
            }
            if let Some(w) = &c.retention.keep_within {
                KeepWithin::parse(w).map_err(|e| format!("containers.{name}.keep_within: {e}"))?;
            }
        }
        Ok(())
    }

    /// Write the file (private, replaced atomically).
    pub fn save(&self, home: &Path) -> Result<()> {
        let path = Self::path(home);
        let body = toml::to_string_pretty(self).map_err(|e| RepoError::Config {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let text = format!(
            "# Trove's settings: `trove daemon` and each container's schedule and\n\
             # retention. Written by `trove container set`; edit freely (see\n\
             # `trove config show`). Durations: 10s, 5m, 1h, 30d.\n{body}"
        );
        trove_peer::durable::replace(&path, text.as_bytes(), None)
            .map_err(|e| RepoError::io("write", &path, e))
    }

    /// The data folder of this owner's own node: `node_data`, else the
    /// environment's `TROVE_NODE_DATA`.
    pub fn node_data(&self) -> Option<PathBuf> {
        self.node_data.clone().or_else(|| {
            std::env::var_os("TROVE_NODE_DATA")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
    }

    /// A container's schedule (the defaults if the file names none).
    pub fn container(&self, name: &str) -> ContainerSchedule {
        self.containers.get(name).cloned().unwrap_or_default()
    }
}

/// Durations as `10s`, `5m`, `72h`, `30d` strings.
mod duration {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_file_is_the_defaults_and_a_saved_file_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Config::load(dir.path()).unwrap(), Config::default());
        let mut c = Config::default();
        c.daemon.debounce = Duration::from_secs(1);
        c.daemon.max_delay = Duration::from_secs(5);
        c.node_data = Some("/srv/trove-node".into());
        c.containers.insert(
            "docs".into(),
            ContainerSchedule {
                retention: Retention {
                    keep_daily: Some(7),
                    keep_within: Some("30d".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        );
        c.save(dir.path()).unwrap();
        let text = std::fs::read_to_string(Config::path(dir.path())).unwrap();
        assert!(text.contains("debounce = \"1s\""), "{text}");
        assert!(text.contains("keep_daily = 7"), "{text}");
        assert!(text.contains("node_data = \"/srv/trove-node\""), "{text}");
        assert_eq!(Config::load(dir.path()).unwrap(), c);
        let policy = c.container("docs").retention.policy().unwrap();
        assert_eq!(policy.keep_daily, Some(7));
        assert_eq!(
            Retention::from_policy(&policy),
            c.containers["docs"].retention
        );
        assert_eq!(
            c.containers["docs"].retention.describe(),
            "--keep-daily 7 --keep-within 30d"
        );
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        for (text, says) in [
            ("[daemon]\ndebounce = \"ten\"\n", "duration `ten`"),
            (
                "[daemon]\ndebounce = \"2m\"\nmax_delay = \"1m\"\n",
                "longer than",
            ),
            ("[daemon]\nwatch_limit = 3\n", "unknown field"),
            ("version = 9\n", "newer"),
            (
                "[containers.x]\nkeep_within = \"soon\"\n",
                "containers.x.keep_within",
            ),
            ("[containers.x]\nprune_every = \"0s\"\n", "prune_every"),
        ] {
            let err = Config::parse(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(Config::path(dir.path()), "[daemon\n").unwrap();
        let err = Config::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("config.toml"), "{err}");
    }
}
