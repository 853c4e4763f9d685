//! A circuit breaker: after N consecutive failures, fail fast for M seconds, then let one trial through.
//!
//! Failing fast keeps enrollments from piling up behind a dead responder; the caller still fails
//! closed (503 with Retry-After = the remaining open time).

use super::clock::Clock;
use super::config::BreakerConfig;
use super::Method;
use chrono::{DateTime, Duration, Utc};
use std::sync::{Arc, Mutex};

/// Observable breaker state (also exported as the `jlis_breaker_open` gauge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    /// Failing fast until this instant.
    Open {
        until: DateTime<Utc>,
    },
    /// The open time has passed and one trial request, started at `trial_started`, is under way.
    HalfOpen {
        trial_started: DateTime<Utc>,
    },
}

#[derive(Debug)]
struct Inner {
    consecutive_failures: u32,
    state: BreakerState,
}

pub(crate) struct Breaker {
    cfg: BreakerConfig,
    clock: Arc<dyn Clock>,
    method: Method,
    inner: Mutex<Inner>,
}

/// Permission to make one request.
pub(crate) enum Admit {
    Go,
    /// Fail fast: the breaker is open for this many more seconds (at least 1).
    Reject {
        retry_after_secs: u64,
    },
}

impl Breaker {
    pub(crate) fn new(cfg: BreakerConfig, clock: Arc<dyn Clock>, method: Method) -> Self {
        metrics::gauge!("jlis_breaker_open", "method" => method.as_str()).set(0.0);
        Self {
            cfg,
            clock,
            method,
            inner: Mutex::new(Inner {
                consecutive_failures: 0,
                state: BreakerState::Closed,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave it inconsistent (plain counters).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn open_for(&self) -> Duration {
        Duration::seconds(
            i64::try_from(self.cfg.open_secs)
                .unwrap_or(i64::MAX / 4)
                .clamp(1, 10 * 365 * 86_400),
        )
    }

    pub(crate) fn state(&self) -> BreakerState {
        self.lock().state
    }

    pub(crate) fn admit(&self) -> Admit {
        if self.cfg.failure_threshold == 0 {
            return Admit::Go;
        }
        let now = self.clock.now();
        let mut inner = self.lock();
        match inner.state {
            BreakerState::Closed => Admit::Go,
            BreakerState::Open { until } if now >= until => {
                inner.state = BreakerState::HalfOpen { trial_started: now };
                Admit::Go
            }
            BreakerState::Open { until } => Admit::Reject {
                retry_after_secs: secs_until(now, until),
            },
            // A trial whose caller went away (request cancelled) never reports: after another open
            // period, let a new trial through instead of staying stuck.
            BreakerState::HalfOpen { trial_started } if now >= trial_started + self.open_for() => {
                inner.state = BreakerState::HalfOpen { trial_started: now };
                Admit::Go
            }
            // One trial at a time; others fail fast until it reports.
            BreakerState::HalfOpen { .. } => Admit::Reject {
                retry_after_secs: 1,
            },
        }
    }

    pub(crate) fn record_success(&self) {
        let mut inner = self.lock();
        inner.consecutive_failures = 0;
        if inner.state != BreakerState::Closed {
            inner.state = BreakerState::Closed;
            tracing::info!(method = self.method.as_str(), "jlis circuit breaker closed");
            metrics::gauge!("jlis_breaker_open", "method" => self.method.as_str()).set(0.0);
        }
    }

    pub(crate) fn record_failure(&self) {
        if self.cfg.failure_threshold == 0 {
            return;
        }
        let now = self.clock.now();
        let mut inner = self.lock();
        inner.consecutive_failures = inner.consecutive_failures.saturating_add(1);
        let trip = matches!(inner.state, BreakerState::HalfOpen { .. })
            || inner.consecutive_failures >= self.cfg.failure_threshold;
        if trip {
            let until = now + self.open_for();
            inner.state = BreakerState::Open { until };
            tracing::warn!(
                method = self.method.as_str(),
                failures = inner.consecutive_failures,
                open_secs = self.cfg.open_secs,
                "jlis circuit breaker open: failing fast"
            );
            metrics::gauge!("jlis_breaker_open", "method" => self.method.as_str()).set(1.0);
            metrics::counter!("jlis_breaker_opened_total", "method" => self.method.as_str())
                .increment(1);
        }
    }
}

fn secs_until(now: DateTime<Utc>, until: DateTime<Utc>) -> u64 {
    u64::try_from((until - now).num_seconds())
        .unwrap_or(0)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jlis::OffsetClock;

    fn breaker(threshold: u32, open_secs: u64) -> (Breaker, Arc<OffsetClock>) {
        let clock = Arc::new(OffsetClock::new());
        let b = Breaker::new(
            BreakerConfig {
                failure_threshold: threshold,
                open_secs,
            },
            clock.clone(),
            Method::Ocsp,
        );
        (b, clock)
    }

    #[test]
    fn opens_after_threshold_and_recovers_through_half_open() {
        let (b, clock) = breaker(3, 60);
        for _ in 0..2 {
            assert!(matches!(b.admit(), Admit::Go));
            b.record_failure();
        }
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(matches!(b.admit(), Admit::Go));
        b.record_failure();
        assert!(matches!(b.state(), BreakerState::Open { .. }));
        match b.admit() {
            Admit::Reject { retry_after_secs } => assert!((55..=60).contains(&retry_after_secs)),
            Admit::Go => panic!("open breaker let a request through"),
        }
        clock.advance_secs(61);
        assert!(matches!(b.admit(), Admit::Go));
        assert!(matches!(b.state(), BreakerState::HalfOpen { .. }));
        // Only one trial at a time.
        assert!(matches!(b.admit(), Admit::Reject { .. }));
        b.record_success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(matches!(b.admit(), Admit::Go));
    }

    #[test]
    fn an_abandoned_trial_does_not_block_forever() {
        let (b, clock) = breaker(1, 10);
        b.record_failure();
        clock.advance_secs(11);
        assert!(matches!(b.admit(), Admit::Go)); // the trial's caller is cancelled: no report
        assert!(matches!(b.admit(), Admit::Reject { .. }));
        clock.advance_secs(11);
        assert!(matches!(b.admit(), Admit::Go));
        b.record_success();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn a_failed_trial_reopens_at_once() {
        let (b, clock) = breaker(2, 10);
        b.record_failure();
        b.record_failure();
        clock.advance_secs(11);
        assert!(matches!(b.admit(), Admit::Go));
        b.record_failure();
        assert!(matches!(b.state(), BreakerState::Open { .. }));
        assert!(matches!(b.admit(), Admit::Reject { .. }));
    }

    #[test]
    fn success_resets_the_count_and_zero_disables() {
        let (b, _) = breaker(2, 10);
        b.record_failure();
        b.record_success();
        b.record_failure();
        assert_eq!(b.state(), BreakerState::Closed);
        let (off, _) = breaker(0, 10);
        for _ in 0..10 {
            off.record_failure();
        }
        assert!(matches!(off.admit(), Admit::Go));
    }
}
