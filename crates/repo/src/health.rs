//! Peer states: online, suspect, lost (docs/design.md §9b.1).
//!
//! A peer that does not answer now may be an unmounted USB disk or a laptop
//! asleep: its fragments are still counted, and nothing repairs them away.
//! Only a peer unreachable for longer than a threshold (or removed from the
//! configuration) is lost. To tell the two apart, the index keeps per peer
//! when it was last seen and since when it has been unreachable; backup,
//! check, repair, sync and `peer list` update it each time they open the
//! peers ([`crate::PeerSet::record_health`]).

use crate::time::utc;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use trove_core::{FragmentId, PeerId};
use trove_peer::{Peer, PeerError};

/// How long a peer may stay unreachable before it counts as lost, unless
/// told otherwise (`--peer-lost-after`): long enough for a weekend away
/// from a USB disk or a node's owner.
pub const DEFAULT_PEER_LOST_AFTER: Duration = Duration::from_secs(72 * 3600);

/// What Trove makes of a configured peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerState {
    /// It answered just now.
    Online,
    /// It does not answer, since less than the threshold: its fragments
    /// still count and are never repaired away.
    Suspect,
    /// It has not answered for longer than the threshold: its fragments
    /// count as lost, and `trove repair` rebuilds them elsewhere. (A peer
    /// removed from the configuration is lost too, but is no longer listed.)
    Lost,
}

impl std::fmt::Display for PeerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PeerState::Online => "online",
            PeerState::Suspect => "suspect",
            PeerState::Lost => "lost",
        })
    }
}

/// What the index remembers of a peer's reachability (table
/// `peer_health`, keyed by peer id).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sightings {
    /// When it last answered (ns since the Unix epoch).
    pub last_seen_ns: Option<i64>,
    /// Since when it has not answered, if it does not answer now.
    pub unreachable_since_ns: Option<i64>,
}

impl Sightings {
    /// The record after one more look at the peer, at `now`.
    pub fn observe(self, reachable: bool, now: i64) -> Self {
        if reachable {
            Self {
                last_seen_ns: Some(now),
                unreachable_since_ns: None,
            }
        } else {
            Self {
                last_seen_ns: self.last_seen_ns,
                unreachable_since_ns: Some(self.unreachable_since_ns.unwrap_or(now)),
            }
        }
    }

    /// The state this record gives at `now` (after [`Sightings::observe`]).
    pub fn state(&self, now: i64, lost_after: Duration) -> PeerState {
        match self.unreachable_since_ns {
            None => PeerState::Online,
            Some(since) => {
                let away = u128::try_from(now.saturating_sub(since)).unwrap_or(0);
                if away >= lost_after.as_nanos() {
                    PeerState::Lost
                } else {
                    PeerState::Suspect
                }
            }
        }
    }
}

/// What the index remembers of a peer's audits (table `peer_audits`,
/// keyed by peer id): the daemon audits a sample of each peer's fragments
/// every round ([`crate::audit_round`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Rounds in which every fragment asked of it was proven.
    pub rounds_passed: u64,
    /// Rounds in which some fragment was missing, corrupt or unproven.
    pub rounds_failed: u64,
    pub fragments_passed: u64,
    pub fragments_failed: u64,
    /// When it was last audited (ns since the Unix epoch).
    pub last_audit_ns: Option<i64>,
    /// Since when its audits fail: set by a failed round, cleared only by a
    /// later round that proves at least one fragment and fails none. While
    /// set, the peer is lost: its fragments are rebuilt elsewhere.
    pub failing_since_ns: Option<i64>,
    /// What the last failure was, for people.
    pub last_failure: Option<String>,
}

impl AuditRecord {
    /// The record after one round that asked `passed + failed` fragments.
    pub fn after_round(
        mut self,
        passed: u64,
        failed: u64,
        failure: Option<String>,
        now: i64,
    ) -> Self {
        if passed + failed == 0 {
            return self;
        }
        self.last_audit_ns = Some(now);
        self.fragments_passed += passed;
        self.fragments_failed += failed;
        if failed == 0 {
            self.rounds_passed += 1;
            self.failing_since_ns = None;
        } else {
            self.rounds_failed += 1;
            self.failing_since_ns.get_or_insert(now);
            self.last_failure = failure;
        }
        self
    }
}

/// Too many peers unreachable at once to believe they all failed: more
/// than a quarter of them, and at least two. It is more likely this
/// machine's own network or a disk hub, so none is declared lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Storm {
    pub unreachable: usize,
    pub peers: usize,
}

impl Storm {
    /// A storm, if `unreachable` of `peers` is one.
    pub fn of(unreachable: usize, peers: usize) -> Option<Self> {
        (unreachable >= 2 && unreachable * 4 > peers).then_some(Self { unreachable, peers })
    }
}

impl std::fmt::Display for Storm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {} peers are unreachable at once: more likely this machine's network (or a disk hub) than {} failures, so none is declared lost and nothing is repaired away; if they are gone for good, `trove peer remove NAME` each",
            self.unreachable, self.peers, self.unreachable
        )
    }
}

/// One peer's state as an operation met it: what `peer list`, `check` and
/// `repair` report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerHealth {
    pub peer: String,
    pub id: PeerId,
    pub state: PeerState,
    /// When it last answered (UTC), if ever.
    pub last_seen: Option<String>,
    /// Since when it has not answered (UTC), if it does not answer now.
    pub unreachable_since: Option<String>,
    /// Why it did not answer, or why it is lost although it answers.
    pub error: Option<String>,
    /// Its audit record (all zero if it was never audited).
    pub audits: AuditRecord,
    #[serde(skip)]
    pub sightings: Sightings,
}

impl PeerHealth {
    pub(crate) fn new(
        peer: &str,
        id: PeerId,
        sightings: Sightings,
        audits: AuditRecord,
        error: Option<String>,
        now: i64,
        lost_after: Duration,
    ) -> Self {
        let mut state = sightings.state(now, lost_after);
        let mut error = error;
        // A peer that answers but fails its audits holds data it cannot
        // prove: as good as lost.
        if let (PeerState::Online, Some(since)) = (state, audits.failing_since_ns) {
            state = PeerState::Lost;
            error = Some(format!(
                "failing its audits since {} UTC: {}",
                utc(since),
                audits
                    .last_failure
                    .as_deref()
                    .unwrap_or("a fragment was not proven")
            ));
        }
        Self {
            peer: peer.to_owned(),
            id,
            state,
            last_seen: sightings.last_seen_ns.map(utc),
            unreachable_since: sightings.unreachable_since_ns.map(utc),
            error,
            audits,
            sightings,
        }
    }

    /// Lost because it failed audits (it answers).
    pub fn failed_audits(&self) -> bool {
        self.state == PeerState::Lost && self.sightings.unreachable_since_ns.is_none()
    }

    /// A sentence for people: "suspect: unreachable since …, last seen …".
    pub fn describe(&self) -> String {
        let seen = match &self.last_seen {
            Some(t) => format!("last seen {t} UTC"),
            None => "never seen".to_owned(),
        };
        match (self.state, &self.unreachable_since) {
            (PeerState::Online, _) => "online".to_owned(),
            (PeerState::Lost, None) => format!(
                "lost: {}",
                self.error.as_deref().unwrap_or("failing its audits")
            ),
            (state, Some(since)) => format!("{state}: unreachable since {since} UTC, {seen}"),
            (state, None) => format!("{state}: {seen}"),
        }
    }
}

/// Whether a peer answers: one cheap question (does it hold the all-zero
/// fragment id?). Opening a node peer does not connect; this does.
pub(crate) fn probe(peer: &dyn Peer) -> Result<(), PeerError> {
    peer.has_fragment(&FragmentId([0; 32])).map(|_| ())
}

/// What a peer's state means for its fragments, in a sentence for people:
/// what `check` says about a peer that does not answer.
pub fn advice(h: &PeerHealth, lost_after: Duration) -> String {
    match h.state {
        PeerState::Online => String::new(),
        PeerState::Suspect => format!(
            "its fragments still count: `trove repair` rebuilds them elsewhere only once it has been unreachable for {}, or run `trove peer remove {}` if it is gone for good",
            format_duration(lost_after),
            h.peer
        ),
        PeerState::Lost if h.failed_audits() => format!(
            "its fragments count as lost and it gets no new data: run `trove repair` to rebuild them on the other peers; to trust it again (a disk replaced), `trove peer remove {0}` and add it anew",
            h.peer
        ),
        PeerState::Lost => format!(
            "unreachable for {} or longer, so its fragments count as lost: run `trove repair` to rebuild them on the other peers",
            format_duration(lost_after)
        ),
    }
}

/// A duration as [`parse_duration`] reads it: `72h`, `30d`, `90s`.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".to_owned(),
        // Days from a week up: 72h reads better than 3d.
        s if s % 86_400 == 0 && s >= 7 * 86_400 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// `30s`, `15m`, `72h`, `30d`, `6mo`, `1y`: a whole number and a unit
/// (a month is 30 days, a year 365: waiting periods, not calendar dates).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad =
        || format!("duration `{s}`: give a number and a unit, e.g. 30s, 15m, 72h, 30d, 6mo or 1y");
    let s = s.trim();
    let unit_at = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = s.split_at(unit_at);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "mo" => 30 * 86_400,
        "y" => 365 * 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(secs).map(Duration::from_secs).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_their_unit_only() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("72h"), Ok(DEFAULT_PEER_LOST_AFTER));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("6mo"), Ok(Duration::from_secs(180 * 86_400)));
        assert_eq!(parse_duration("1y"), Ok(Duration::from_secs(365 * 86_400)));
        for bad in ["1mon", "2yr", "1M", "mo", "1 y"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        for bad in ["", "72", "h", "1.5h", "-1h", "3w", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        for text in ["0s", "90s", "15m", "72h", "30d"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }

    #[test]
    fn a_peer_is_suspect_until_the_threshold_then_lost_and_online_when_it_answers() {
        const H: i64 = 3_600_000_000_000;
        let lost_after = Duration::from_secs(72 * 3600);
        let seen = Sightings::default().observe(true, 0);
        assert_eq!(seen.state(0, lost_after), PeerState::Online);
        // Gone at hour 1: suspect from then on, and the first miss is kept.
        let gone = seen.observe(false, H).observe(false, 50 * H);
        assert_eq!(gone.unreachable_since_ns, Some(H));
        assert_eq!(gone.last_seen_ns, Some(0));
        assert_eq!(gone.state(50 * H, lost_after), PeerState::Suspect);
        assert_eq!(gone.state(73 * H - 1, lost_after), PeerState::Suspect);
        assert_eq!(gone.state(73 * H, lost_after), PeerState::Lost);
        // Back: online again, and the clock starts over next time.
        let back = gone.observe(true, 80 * H);
        assert_eq!(back.state(80 * H, lost_after), PeerState::Online);
        assert_eq!(
            back.observe(false, 81 * H).state(81 * H, lost_after),
            PeerState::Suspect
        );
        // Never seen and unreachable now: suspect, not lost.
        let never = Sightings::default().observe(false, 5 * H);
        assert_eq!(never.state(5 * H, lost_after), PeerState::Suspect);
        assert_eq!(never.state(5 * H, Duration::ZERO), PeerState::Lost);
    }
}
