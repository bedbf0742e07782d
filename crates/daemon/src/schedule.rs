//! When a watched container is backed up: after `debounce` of quiet, and
//! never later than `max_delay` after the first change that is not yet in
//! a snapshot, however busy the files stay.
//!
//! Pure time arithmetic over [`Instant`]s, so it is tested without clocks.

use std::time::{Duration, Instant};

/// Changes seen since the last backup started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dirty {
    /// The first change not yet in a snapshot.
    pub first: Instant,
    /// The latest change.
    pub last: Instant,
}

impl Dirty {
    pub fn new(at: Instant) -> Self {
        Self {
            first: at,
            last: at,
        }
    }

    /// One more change at `at`.
    pub fn touch(&mut self, at: Instant) {
        self.last = self.last.max(at);
    }

    /// When the backup is due: once quiet for `debounce`, or at `max_delay`
    /// after the first change, whichever comes first.
    pub fn due(&self, debounce: Duration, max_delay: Duration) -> Instant {
        (self.last + debounce).min(self.first + max_delay)
    }
}

/// How long to wait before trying a failed step again: 30 s, doubling with
/// each failure in a row, at most `cap`.
pub fn backoff(failures: u32, cap: Duration) -> Duration {
    let secs = 30u64.saturating_mul(1u64 << failures.saturating_sub(1).min(16));
    Duration::from_secs(secs).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_burst_is_backed_up_after_the_quiet() {
        let t0 = Instant::now();
        let mut d = Dirty::new(t0);
        d.touch(t0 + S);
        d.touch(t0 + 2 * S);
        assert_eq!(d.due(S, 5 * S), t0 + 3 * S);
    }

    #[test]
    fn a_file_that_keeps_changing_is_backed_up_at_max_delay() {
        let t0 = Instant::now();
        let mut d = Dirty::new(t0);
        for i in 1..100 {
            d.touch(t0 + i * S / 2);
        }
        assert_eq!(d.due(S, 5 * S), t0 + 5 * S);
        // An old change never moves the due time later.
        d.touch(t0);
        assert_eq!(d.last, t0 + 99 * S / 2);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let cap = Duration::from_secs(3600);
        assert_eq!(backoff(1, cap), 30 * S);
        assert_eq!(backoff(2, cap), 60 * S);
        assert_eq!(backoff(4, cap), 240 * S);
        assert_eq!(backoff(40, cap), cap);
        assert_eq!(backoff(3, 10 * S), 10 * S);
    }
}
