//! How likely a container is to lose data within a year: an estimate for
//! people, from the number of failure domains holding the container, its
//! parity, how often peers are lost and how fast a lost peer is repaired.
//!
//! # Model
//!
//! A pack survives the loss of any `m` failure domains (peers, with the
//! peers of one failure domain counted once). Data is lost only when `m + 1`
//! domains fail within one *repair window* `τ`: the time to notice a lost
//! peer (`peer_lost_after`, plus up to one `audit_every` round) and rebuild
//! its fragments elsewhere. Each of the `D` domains fails independently at
//! `λ` per year (a Poisson process). A first failure happens at `D·λ` per
//! year; data is then lost if `m` of the other `D − 1` domains fail before
//! the repair is done, which by the union bound over the `C(D−1, m)` sets
//! of `m` domains has a probability of at most `C(D−1, m)·(λτ)^m`. So
//!
//! ```text
//! rate ≈ D·λ · C(D−1, m) · (λ·τ)^m    events per year, τ in years
//! P(loss within a year) = 1 − exp(−rate)
//! ```
//!
//! the classic MTTDL approximation (`1/rate` is the mean time to data loss).
//!
//! # What it is and is not
//!
//! It is an *upper bound under its assumptions*: the union bound overcounts,
//! `λτ ≥ 1 − e^{−λτ}`, and counting every domain that holds some fragment of
//! the container as if each pack were spread over all of them is
//! conservative (a pack on `k + m` of `D` domains is only lost when `m + 1`
//! of *its* domains fail).
//!
//! It is *not* a bound on real-world risk, because real failures are not
//! independent: one fire, flood, burglary, ransomware run, power surge or
//! bad firmware can take several peers at once. That is what failure
//! domains are for: peers that can fail together must be counted as one.
//! It also ignores repairs that cannot finish (no free peer, no capacity),
//! losing the owner's identity (the recovery phrase covers that), and
//! mistakes such as forgetting the wrong snapshots. Say "estimate" when
//! showing it.
//!
//! A year is the Julian year, 365.25 days.

use crate::config::DaemonSettings;
use crate::health::format_duration;
use serde::Serialize;
use std::time::Duration;

/// Seconds in a (Julian) year: 365.25 days.
const SECS_PER_YEAR: f64 = 365.25 * 86_400.0;

/// The prior peer loss rate, per peer and year, assumed before anything
/// has been observed: one disk in ten lost a year. Conservative on purpose
/// for consumer disks (published drive statistics put their annual failure
/// rates at a few percent) because a peer is lost for more reasons than a
/// failing disk: a friend who stops running the node, a USB drive that is
/// dropped or mislaid.
pub const PRIOR_LOSS_RATE_PER_YEAR: f64 = 0.1;

/// The estimate and what it was computed from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Durability {
    /// The probability of losing some data within a year, in `[0, 1]`.
    pub annual_loss_probability: f64,
    /// The expected number of data-loss events a year (`rate` in the
    /// module's model; its inverse is the mean time to data loss).
    /// Infinite (`null` in JSON) when the estimate is 1 by definition.
    pub loss_events_per_year: f64,
    /// Independent failure domains holding the container's fragments.
    pub domains: u32,
    /// How many of them every pack survives losing.
    pub m: u32,
    /// `λ`: peer (failure domain) losses per peer and year.
    pub loss_rate_per_year: f64,
    /// `τ`: from a peer's loss until its fragments are rebuilt elsewhere.
    #[serde(rename = "window_secs", serialize_with = "as_secs")]
    pub window: Duration,
}

fn as_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

impl Durability {
    /// Whether there are too few failure domains for any pack to survive
    /// `m` losses (`domains ≤ m`): the estimate is then 1.
    pub fn too_few_domains(&self) -> bool {
        self.domains <= self.m
    }

    /// One line for people: `≈ 4e-6 per year (estimate: independent
    /// failures, λ = 0.10/peer/year, repaired within 73h)`.
    pub fn describe(&self) -> String {
        if self.too_few_domains() {
            return format!(
                "data loss is likely: {} failure domain(s) cannot hold a pack that survives {} lost peer(s); add peers in other failure domains",
                self.domains, self.m
            );
        }
        let p = self.annual_loss_probability;
        let odds = if p == 0.0 {
            "0".to_owned()
        } else if p < 0.01 {
            format!("{p:.0e}")
        } else {
            format!("{:.0}%", p * 100.0)
        };
        let lambda = if self.loss_rate_per_year >= 0.01 {
            format!("{:.2}", self.loss_rate_per_year)
        } else {
            format!("{:.1e}", self.loss_rate_per_year)
        };
        format!(
            "≈ {odds} per year (estimate: independent failures, λ = {lambda}/peer/year, repaired within {})",
            format_duration(self.window)
        )
    }
}

/// The probability that a container loses data within a year (see the
/// module documentation for the model and its limits).
///
/// - `domains`: `D`, the independent failure domains holding the
///   container's fragments.
/// - `m`: how many of those domains every pack survives losing: its parity
///   fragments when each of a pack's fragments is in a different domain
///   (fewer when some domain holds several fragments of a pack).
/// - `loss_rate_per_year`: `λ`, per domain (see [`observed_loss_rate`]).
/// - `window`: `τ`, see [`repair_window`].
///
/// With `domains ≤ m` no pack can be spread so that it survives `m` losses,
/// and the estimate is 1 rather than the formula's 0. A `λ` that is
/// negative or not a number is a caller's bug; the estimate is then 1 too,
/// never a reassuring figure.
pub fn estimate_loss(
    domains: u32,
    m: u32,
    loss_rate_per_year: f64,
    window: Duration,
) -> Durability {
    let mut d = Durability {
        annual_loss_probability: 1.0,
        loss_events_per_year: f64::INFINITY,
        domains,
        m,
        loss_rate_per_year,
        window,
    };
    if domains <= m || loss_rate_per_year.is_nan() || loss_rate_per_year < 0.0 {
        return d;
    }
    let lambda = loss_rate_per_year;
    let tau = window.as_secs_f64() / SECS_PER_YEAR;
    let rate = f64::from(domains)
        * lambda
        * binomial(domains - 1, m)
        * (lambda * tau).powi(i32::try_from(m).unwrap_or(i32::MAX));
    d.loss_events_per_year = rate;
    // `-expm1(-x)` is `1 - e^-x` without losing the small values to
    // rounding; NaN (∞·0) only arises from absurd inputs: count it as 1.
    let p = -(-rate).exp_m1();
    d.annual_loss_probability = if p.is_nan() { 1.0 } else { p.clamp(0.0, 1.0) };
    d
}

/// `C(n, k)` as a float (exact while it fits in 53 bits).
fn binomial(n: u32, k: u32) -> f64 {
    if k > n {
        return 0.0;
    }
    let k = k.min(n - k);
    (0..k).fold(1.0, |c, i| c * f64::from(n - i) / f64::from(i + 1))
}

/// The peer loss rate `λ` (per peer and year) to use, from what this home
/// has seen: `losses` peers declared lost over `observed_peer_years` (the
/// sum over peers of how long each has been watched).
///
/// `λ = (losses + 1) / (observed_peer_years + 1/λ0)` with
/// `λ0 =` [`PRIOR_LOSS_RATE_PER_YEAR`]: the mean of the Gamma posterior
/// after a prior worth one loss in `1/λ0 = 10` peer-years. A young home that
/// has lost nothing is therefore estimated at `λ0`, not at 0 (which would
/// call its data immortal), and the observations take over as they
/// accumulate: no loss in 10 peer-years gives 0.05, three losses in 20 give
/// about 0.13. Negative or non-numeric `observed_peer_years` count as 0.
pub fn observed_loss_rate(losses: u32, observed_peer_years: f64) -> f64 {
    let years = if observed_peer_years.is_nan() {
        0.0
    } else {
        observed_peer_years.max(0.0)
    };
    (f64::from(losses) + 1.0) / (years + 1.0 / PRIOR_LOSS_RATE_PER_YEAR)
}

/// `τ`: the time from a peer's loss until its fragments are rebuilt, with
/// the daemon's `settings`: it counts as lost after `peer_lost_after`, which
/// the next audit round (at most `audit_every` later) notices, and the
/// repair then takes about `repair_estimate` (its data at the peers'
/// bandwidth, within the repair budget).
pub fn repair_window(settings: &DaemonSettings, repair_estimate: Duration) -> Duration {
    settings
        .peer_lost_after
        .saturating_add(settings.audit_every)
        .saturating_add(repair_estimate)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn p(domains: u32, m: u32, lambda: f64, window: Duration) -> f64 {
        estimate_loss(domains, m, lambda, window).annual_loss_probability
    }

    #[test]
    fn a_hand_computed_case() {
        // D = 4, m = 1, λ = 0.5, τ = 0.1 year:
        // rate = 4·0.5 · C(3,1) · (0.5·0.1)^1 = 2 · 3 · 0.05 = 0.3.
        let tenth_of_a_year = Duration::from_secs_f64(SECS_PER_YEAR / 10.0);
        let d = estimate_loss(4, 1, 0.5, tenth_of_a_year);
        assert!((d.loss_events_per_year - 0.3).abs() < 1e-12, "{d:?}");
        let expected = 1.0 - (-0.3f64).exp(); // 0.259181...
        assert!(
            (d.annual_loss_probability - expected).abs() < 1e-12,
            "{d:?}"
        );
        assert!((d.annual_loss_probability - 0.259_181_779_6).abs() < 1e-9);

        // Six peers at 4+2, the defaults' 72h + 1h, λ0: C(5,2) = 10,
        // λτ = 0.1 · 73/8766, rate = 0.6 · 10 · (λτ)² ≈ 4.16e-6.
        let d = estimate_loss(6, 2, 0.1, 73 * HOUR);
        let lt = 0.1 * 73.0 / 8766.0;
        assert!(
            (d.loss_events_per_year - 6.0 * lt * lt).abs() < 1e-15,
            "{d:?}"
        );
        assert!((d.annual_loss_probability - 4.161e-6).abs() < 1e-9, "{d:?}");

        // No parity: the first failure loses data, whatever the window.
        let d = estimate_loss(3, 0, 0.1, 10_000 * HOUR);
        assert!((d.annual_loss_probability - (1.0 - (-0.3f64).exp())).abs() < 1e-12);
    }

    #[test]
    fn more_losses_or_slower_repairs_are_worse_and_more_parity_is_better() {
        let mut last = 0.0;
        for lambda in [0.001, 0.01, 0.05, 0.1, 0.3, 1.0, 5.0] {
            let now = p(6, 2, lambda, 73 * HOUR);
            assert!(now > last, "λ {lambda}: {now} after {last}");
            last = now;
        }
        let mut last = 0.0;
        for hours in [1, 24, 73, 24 * 7, 24 * 30, 24 * 365] {
            let now = p(6, 2, 0.1, hours * HOUR);
            assert!(now > last, "{hours}h: {now} after {last}");
            last = now;
        }
        let mut last = 1.0;
        for m in 0..8 {
            let now = p(12, m, 0.1, 73 * HOUR);
            assert!(now < last, "m {m}: {now} after {last}");
            last = now;
        }
    }

    #[test]
    fn too_few_domains_is_certain_loss_not_immortality() {
        for (domains, m) in [(0, 0), (1, 1), (2, 2), (2, 3), (3, 5)] {
            let d = estimate_loss(domains, m, 0.1, 73 * HOUR);
            assert_eq!(d.annual_loss_probability, 1.0, "{domains} domains, m {m}");
            assert!(d.too_few_domains());
            assert!(d.describe().contains("add peers"), "{}", d.describe());
        }
        assert!(!estimate_loss(3, 2, 0.1, 73 * HOUR).too_few_domains());
    }

    #[test]
    fn the_estimate_stays_a_probability() {
        for (domains, m, lambda, window) in [
            (1000, 1, 1e6, 1_000_000 * HOUR),
            (6, 2, f64::INFINITY, HOUR),
            (6, 2, f64::NAN, HOUR),
            (6, 2, -1.0, HOUR),
            (6, 2, 0.1, Duration::MAX),
            (u32::MAX, 3, 0.1, HOUR),
        ] {
            let p = p(domains, m, lambda, window);
            assert!(
                (0.0..=1.0).contains(&p),
                "{domains} {m} {lambda} {window:?}: {p}"
            );
        }
        assert_eq!(p(6, 2, f64::NAN, HOUR), 1.0);
        assert_eq!(p(6, 2, -1.0, HOUR), 1.0);
        assert_eq!(p(6, 2, 0.0, HOUR), 0.0);
        assert_eq!(p(6, 2, 0.1, Duration::ZERO), 0.0);
    }

    #[test]
    fn binomials() {
        assert_eq!(binomial(5, 2), 10.0);
        assert_eq!(binomial(5, 0), 1.0);
        assert_eq!(binomial(5, 5), 1.0);
        assert_eq!(binomial(2, 3), 0.0);
        assert_eq!(binomial(52, 5), 2_598_960.0);
    }

    #[test]
    fn the_observed_rate_starts_at_the_prior_and_follows_the_evidence() {
        assert_eq!(observed_loss_rate(0, 0.0), PRIOR_LOSS_RATE_PER_YEAR);
        assert_eq!(observed_loss_rate(0, -3.0), PRIOR_LOSS_RATE_PER_YEAR);
        assert_eq!(observed_loss_rate(0, f64::NAN), PRIOR_LOSS_RATE_PER_YEAR);
        assert!((observed_loss_rate(0, 10.0) - 0.05).abs() < 1e-12);
        assert!((observed_loss_rate(3, 20.0) - 4.0 / 30.0).abs() < 1e-12);
        // Many peer-years: the observed frequency.
        assert!((observed_loss_rate(99, 9990.0) - 0.01).abs() < 1e-12);
        // Never zero, however long nothing was lost.
        assert!(observed_loss_rate(0, 1e9) > 0.0);
        // More losses over the same time: a higher rate.
        assert!(observed_loss_rate(2, 5.0) > observed_loss_rate(1, 5.0));
    }

    #[test]
    fn the_window_is_detection_plus_audit_plus_repair() {
        let s = DaemonSettings::default();
        assert_eq!(repair_window(&s, Duration::ZERO), 73 * HOUR);
        assert_eq!(repair_window(&s, 2 * HOUR), 75 * HOUR);
        assert_eq!(repair_window(&s, Duration::MAX), Duration::MAX);
    }

    #[test]
    fn it_reads_for_people_and_scripts() {
        let d = estimate_loss(6, 2, 0.1, 73 * HOUR);
        assert_eq!(
            d.describe(),
            "≈ 4e-6 per year (estimate: independent failures, λ = 0.10/peer/year, repaired within 73h)"
        );
        assert!(estimate_loss(3, 0, 0.1, HOUR)
            .describe()
            .starts_with("≈ 26% per year"));
        assert!(estimate_loss(6, 2, 0.001, HOUR)
            .describe()
            .contains("λ = 1.0e-3/"));
        let row = toml::to_string(&d).unwrap();
        assert!(row.contains("window_secs = 262800"), "{row}");
        assert!(row.contains("domains = 6"), "{row}");
        assert!(
            row.contains("annual_loss_probability = 0.00000416"),
            "{row}"
        );
    }
}
