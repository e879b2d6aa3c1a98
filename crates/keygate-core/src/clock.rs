//! Time, read in one place: [`Clock`] for the time of day (the system clock, or a
//! fixed one a test moves by hand) and [`Stopwatch`] for how long something took.
//! Nothing else in keygate calls `SystemTime::now` or `Instant::now` (clippy's
//! `disallowed-methods` in `clippy.toml` holds that), so no test waits for time by
//! sleeping and every time-dependent rule can be tested at any instant.
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::model::EpochSeconds;

/// The source of the time of day.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The system clock.
    #[default]
    System,
    /// A clock that stands still until moved (tests).
    Fixed(Arc<AtomicI64>),
}

impl Clock {
    /// A fixed clock at `millis` since the Unix epoch.
    pub fn fixed(millis: i64) -> Self {
        Self::Fixed(Arc::new(AtomicI64::new(millis)))
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_millis(&self) -> i64 {
        match self {
            Self::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            Self::Fixed(ms) => ms.load(Ordering::SeqCst),
        }
    }

    /// Microseconds since the Unix epoch by the system clock (log timestamps; a fixed
    /// clock does not reach the logs).
    pub fn system_micros() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
    }

    /// Seconds since the Unix epoch.
    pub fn now(&self) -> EpochSeconds {
        self.now_millis().div_euclid(1000)
    }

    /// Moves a fixed clock `millis` forward (the system clock cannot be moved), so a
    /// test waits for time without sleeping.
    pub fn advance(&self, millis: i64) {
        if let Self::Fixed(ms) = self {
            ms.fetch_add(millis, Ordering::SeqCst);
        }
    }
}

/// Measures how long something takes (monotonic: unaffected by clock changes).
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(Instant);

impl Stopwatch {
    /// Starts measuring now.
    pub fn start() -> Self {
        Self(Instant::now())
    }

    /// A stopwatch started `ago` before now (tests, and "never" as long ago), if the
    /// platform's monotonic clock reaches back that far.
    pub fn started_ago(ago: Duration) -> Option<Self> {
        Instant::now().checked_sub(ago).map(Self)
    }

    /// Time since it started.
    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }

    /// The instant `d` after it started (a deadline for a timer).
    pub fn after(&self, d: Duration) -> Instant {
        self.0 + d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_clock_moves_only_when_told() {
        let c = Clock::fixed(1_000_500);
        assert_eq!(c.now(), 1_000);
        c.advance(600);
        assert_eq!((c.now_millis(), c.now()), (1_001_100, 1_001));
        Clock::System.advance(1_000_000);
        assert!(Clock::System.now() > 1_700_000_000);
    }

    #[test]
    fn a_stopwatch_started_ago_has_run_that_long() {
        let s = Stopwatch::started_ago(Duration::from_secs(2)).expect("monotonic clock");
        assert!(s.elapsed() >= Duration::from_secs(2));
    }
}
