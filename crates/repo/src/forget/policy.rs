//! Which snapshots a `--keep-*` policy keeps, and why: restic's rules.
//!
//! Snapshots are taken newest first. `--keep-last N` keeps the N newest.
//! Each calendar rule (`--keep-hourly`, `-daily`, `-weekly`, `-monthly`,
//! `-yearly` N) keeps the newest snapshot of each of the N most recent
//! periods (UTC hours, days, ISO weeks, months, years) that have one: a
//! snapshot is kept by the rule when its period differs from the period of
//! the last snapshot the rule kept, while the rule has some of its N left.
//! `--keep-within D` keeps every snapshot newer than the latest snapshot's
//! time minus D (calendar years, months, days and hours). A snapshot is
//! kept if any rule keeps it, and lists every rule that does. The latest
//! snapshot is never forgotten by a policy.

use crate::time::civil_from_days;
use serde::Serialize;
use std::fmt;
use trove_core::manifest::SnapshotManifest;
use trove_core::SnapshotId;

/// A `--keep-*` policy. No field set is no policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct KeepPolicy {
    /// Keep the N most recent snapshots.
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N hours that have one (UTC).
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    pub keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the last N days that have one (UTC).
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    pub keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the last N ISO weeks that have one.
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    pub keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the last N months that have one.
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    pub keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the last N years that have one.
    #[cfg_attr(feature = "clap", arg(long, value_name = "N"))]
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot newer than the latest one minus DURATION
    /// (years, months, days, hours: e.g. 1y6m, 30d, 2d12h).
    #[cfg_attr(
        feature = "clap",
        arg(long, value_name = "DURATION", value_parser = KeepWithin::parse)
    )]
    pub keep_within: Option<KeepWithin>,
}

impl KeepPolicy {
    /// Whether any rule is given.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A calendar duration for `--keep-within`: `1y6m`, `30d`, `2d12h`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeepWithin {
    pub years: u32,
    pub months: u32,
    pub days: u32,
    pub hours: u32,
}

impl KeepWithin {
    /// `NyNmNdNh`, each part optional, at least one given.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{s}` is not a duration: use years, months, days and hours, e.g. 1y6m, 30d, 2d12h"
            )
        };
        let mut w = KeepWithin::default();
        let mut num = String::new();
        let mut any = false;
        for c in s.chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let n: u32 = num.parse().map_err(|_| bad())?;
            num.clear();
            any = true;
            match c {
                'y' => w.years += n,
                'm' => w.months += n,
                'd' => w.days += n,
                'h' => w.hours += n,
                _ => return Err(bad()),
            }
        }
        if !num.is_empty() || !any {
            return Err(bad());
        }
        Ok(w)
    }

    /// `ns` minus this duration, in calendar terms (a month back from
    /// 31 March is 3 March, as Go's `AddDate` and restic have it).
    fn before(&self, ns: i64) -> i64 {
        let secs = ns.div_euclid(1_000_000_000);
        let sub = ns.rem_euclid(1_000_000_000);
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        let in_day = secs.rem_euclid(86_400);
        let months = y * 12 + (m - 1) - i64::from(self.years) * 12 - i64::from(self.months);
        let (y, m) = (months.div_euclid(12), months.rem_euclid(12) + 1);
        let days = days_from_civil(y, m, 1) + (d - 1) - i64::from(self.days);
        let secs = days * 86_400 + in_day - i64::from(self.hours) * 3600;
        secs * 1_000_000_000 + sub
    }
}

impl fmt::Display for KeepWithin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ];
        let mut wrote = false;
        for (n, unit) in parts {
            if n > 0 {
                write!(f, "{n}{unit}")?;
                wrote = true;
            }
        }
        if !wrote {
            f.write_str("0h")?;
        }
        Ok(())
    }
}

impl Serialize for KeepWithin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Why a snapshot is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepReason {
    Last,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
    Within(KeepWithin),
    /// Kept by no rule, but the latest: a policy never forgets it.
    Latest,
    /// Not named among the snapshots to forget.
    NotNamed,
}

impl fmt::Display for KeepReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeepReason::Last => f.write_str("last"),
            KeepReason::Hourly => f.write_str("hourly"),
            KeepReason::Daily => f.write_str("daily"),
            KeepReason::Weekly => f.write_str("weekly"),
            KeepReason::Monthly => f.write_str("monthly"),
            KeepReason::Yearly => f.write_str("yearly"),
            KeepReason::Within(w) => write!(f, "within {w}"),
            KeepReason::Latest => f.write_str("latest"),
            KeepReason::NotNamed => f.write_str("not named"),
        }
    }
}

impl Serialize for KeepReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The calendar periods of the rules, as comparable numbers.
#[derive(Debug, Clone, Copy)]
enum Period {
    Hour,
    Day,
    IsoWeek,
    Month,
    Year,
}

impl Period {
    fn of(self, ns: i64) -> i64 {
        let secs = ns.div_euclid(1_000_000_000);
        let days = secs.div_euclid(86_400);
        match self {
            Period::Hour => secs.div_euclid(3600),
            Period::Day => days,
            Period::IsoWeek => {
                let (year, week) = iso_week(days);
                year * 100 + week
            }
            Period::Month => {
                let (y, m, _) = civil_from_days(days);
                y * 12 + m - 1
            }
            Period::Year => civil_from_days(days).0,
        }
    }
}

/// The snapshots `policy` keeps, each with its reasons, newest first; the
/// others are to be forgotten. `snapshots` may come in any order.
pub fn decide(
    snapshots: &[SnapshotManifest],
    policy: &KeepPolicy,
) -> Vec<(SnapshotId, Vec<KeepReason>)> {
    let mut order: Vec<&SnapshotManifest> = snapshots.iter().collect();
    order.sort_by_key(|s| std::cmp::Reverse((s.time_unix_ns, s.id)));
    let Some(latest) = order.first().map(|s| s.time_unix_ns) else {
        return Vec::new();
    };
    let mut last_left = policy.keep_last.unwrap_or(0);
    let mut rules: Vec<(Period, KeepReason, u32, Option<i64>)> = [
        (Period::Hour, KeepReason::Hourly, policy.keep_hourly),
        (Period::Day, KeepReason::Daily, policy.keep_daily),
        (Period::IsoWeek, KeepReason::Weekly, policy.keep_weekly),
        (Period::Month, KeepReason::Monthly, policy.keep_monthly),
        (Period::Year, KeepReason::Yearly, policy.keep_yearly),
    ]
    .into_iter()
    .filter_map(|(p, r, n)| n.map(|n| (p, r, n, None)))
    .collect();
    let cutoff = policy.keep_within.map(|w| (w, w.before(latest)));
    let mut out = Vec::new();
    for (i, s) in order.iter().enumerate() {
        let mut reasons = Vec::new();
        if last_left > 0 {
            last_left -= 1;
            reasons.push(KeepReason::Last);
        }
        for (period, reason, left, last) in rules.iter_mut() {
            let p = period.of(s.time_unix_ns);
            if *left > 0 && *last != Some(p) {
                *left -= 1;
                *last = Some(p);
                reasons.push(*reason);
            }
        }
        if let Some((w, cut)) = cutoff {
            if s.time_unix_ns > cut {
                reasons.push(KeepReason::Within(w));
            }
        }
        if i == 0 && reasons.is_empty() {
            reasons.push(KeepReason::Latest);
        }
        out.push((s.id, reasons));
    }
    out
}

/// Days since 1970-01-01 of a civil date (Hinnant's days_from_civil); a day
/// past the month's end runs into the next month.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// ISO 8601 (year, week) of a day count since 1970-01-01: weeks start on
/// Monday and belong to the year of their Thursday.
fn iso_week(days: i64) -> (i64, i64) {
    // 1970-01-01 was a Thursday: weekday 1 = Monday .. 7 = Sunday.
    let weekday = (days + 3).rem_euclid(7) + 1;
    let thursday = days - (weekday - 1) + 3;
    let year = civil_from_days(thursday).0;
    (year, (thursday - days_from_civil(year, 1, 1)) / 7 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use trove_core::manifest::SnapshotSummary;
    use trove_core::{ContainerId, TreeId};

    /// Nanoseconds of a UTC date and time.
    fn at(y: i64, m: i64, d: i64, h: i64, min: i64) -> i64 {
        ((days_from_civil(y, m, d) * 86_400) + h * 3600 + min * 60) * 1_000_000_000
    }

    fn snap(n: u8, ns: i64) -> SnapshotManifest {
        SnapshotManifest {
            id: SnapshotId([n; 32]),
            container: ContainerId([0; 32]),
            time_unix_ns: ns,
            host: "h".into(),
            sources: Vec::new(),
            root: TreeId([0; 32]),
            parent: None,
            summary: SnapshotSummary::default(),
        }
    }

    fn kept(snaps: &[SnapshotManifest], p: &KeepPolicy) -> Vec<(u8, String)> {
        decide(snaps, p)
            .into_iter()
            .filter(|(_, r)| !r.is_empty())
            .map(|(id, r)| {
                let r: Vec<String> = r.iter().map(|x| x.to_string()).collect();
                (id.0[0], r.join(","))
            })
            .collect()
    }

    #[test]
    fn calendar_helpers_agree_with_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(days_from_civil(2000, 2, 29)), (2000, 2, 29));
        assert_eq!(
            civil_from_days(days_from_civil(2026, 2, 31)),
            (2026, 3, 3),
            "a day past the month's end runs on"
        );
        // ISO weeks: 2021-01-03 (Sunday) is in 2020-W53; 2021-01-04 in 2021-W01;
        // 2024-12-30 (Monday) is in 2025-W01.
        assert_eq!(iso_week(days_from_civil(2021, 1, 3)), (2020, 53));
        assert_eq!(iso_week(days_from_civil(2021, 1, 4)), (2021, 1));
        assert_eq!(iso_week(days_from_civil(2024, 12, 30)), (2025, 1));
        assert_eq!(iso_week(days_from_civil(2026, 11, 29)), (2026, 48));
    }

    #[test]
    fn within_subtracts_calendar_units() {
        let w = KeepWithin::parse("1m").unwrap();
        assert_eq!(w.before(at(2026, 3, 31, 10, 0)), at(2026, 3, 3, 10, 0));
        let w = KeepWithin::parse("1y2d12h").unwrap();
        assert_eq!(w.before(at(2026, 1, 2, 6, 0)), at(2024, 12, 30, 18, 0));
        assert_eq!(w.to_string(), "1y2d12h");
        for bad in ["", "5", "5w", "d", "1d2"] {
            assert!(KeepWithin::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn last_and_daily_keep_the_newest_of_each_day() {
        // Two snapshots a day over four days, oldest first.
        let snaps: Vec<_> = (0..8u8)
            .map(|i| {
                snap(
                    i,
                    at(2026, 11, 1 + i64::from(i / 2), 8 + 8 * i64::from(i % 2), 0),
                )
            })
            .collect();
        let p = KeepPolicy {
            keep_last: Some(1),
            keep_daily: Some(3),
            ..Default::default()
        };
        assert_eq!(
            kept(&snaps, &p),
            vec![
                (7, "last,daily".to_owned()),
                (5, "daily".to_owned()),
                (3, "daily".to_owned())
            ]
        );
    }

    #[test]
    fn weekly_monthly_yearly_and_within() {
        let snaps = vec![
            snap(1, at(2024, 6, 1, 0, 0)),
            snap(2, at(2025, 6, 1, 0, 0)),
            snap(3, at(2026, 10, 1, 0, 0)),
            snap(4, at(2026, 11, 2, 0, 0)),  // Monday, W45
            snap(5, at(2026, 11, 8, 0, 30)), // Sunday, W45
            snap(6, at(2026, 11, 9, 1, 0)),  // Monday, W46
        ];
        let p = KeepPolicy {
            keep_weekly: Some(2),
            keep_monthly: Some(2),
            keep_yearly: Some(10),
            keep_within: Some(KeepWithin::parse("1d").unwrap()),
            ..Default::default()
        };
        assert_eq!(
            kept(&snaps, &p),
            vec![
                (6, "weekly,monthly,yearly,within 1d".to_owned()),
                (5, "weekly".to_owned()),
                (3, "monthly".to_owned()),
                (2, "yearly".to_owned()),
                (1, "yearly".to_owned()),
            ]
        );
    }

    #[test]
    fn the_latest_is_never_forgotten_by_a_policy() {
        let snaps = vec![snap(1, at(2026, 1, 1, 0, 0)), snap(2, at(2026, 1, 2, 0, 0))];
        let p = KeepPolicy {
            keep_last: Some(0),
            ..Default::default()
        };
        assert_eq!(kept(&snaps, &p), vec![(2, "latest".to_owned())]);
        assert!(decide(&[], &p).is_empty());
    }
}
