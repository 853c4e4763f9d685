//! The lockout rule of transaction-time verification: after `max_failures` consecutive
//! non-matches within `window`, the enrollment answers 423 until `lock` has passed.
//! Pure arithmetic on the counters the store keeps, so every replica applies the same rule.

use crate::domain::Millis;
use serde::Deserialize;

/// The lockout counters of an enrollment, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    pub failed_count: i64,
    pub failure_window_start: Option<Millis>,
    pub locked_until: Option<Millis>,
}

/// `[verification]` lockout settings.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default)]
pub struct LockoutPolicy {
    /// Consecutive non-matches that lock the enrollment.
    pub max_failures: i64,
    /// The window the failures must fall in, in seconds.
    pub window_secs: i64,
    /// How long the lock lasts, in seconds.
    pub lock_secs: i64,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            window_secs: 900,
            lock_secs: 900,
        }
    }
}

/// The outcome being recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// A match: the counter resets.
    Match,
    /// A non-match: counts towards the lock.
    NoMatch,
    /// Quality or liveness failed: nothing about the face was decided, so the counter is left alone.
    Undecided,
}

impl LockoutPolicy {
    /// Seconds until the lock lifts, if `state` is locked at `now`.
    pub fn locked_for(&self, state: &Lockout, now: Millis) -> Option<u64> {
        state
            .locked_until
            .filter(|&until| until > now)
            .map(|until| ((until - now) as u64).div_ceil(1000))
    }

    /// The counters after `attempt` at `now`.
    pub fn next(&self, state: &Lockout, attempt: Attempt, now: Millis) -> Lockout {
        let window_ms = self.window_secs.saturating_mul(1000);
        let lock_expired = state.locked_until.is_some_and(|until| until <= now);
        match attempt {
            Attempt::Match => Lockout {
                failed_count: 0,
                failure_window_start: None,
                locked_until: None,
            },
            Attempt::Undecided => *state,
            Attempt::NoMatch => {
                let in_window = !lock_expired
                    && state
                        .failure_window_start
                        .is_some_and(|start| now - start <= window_ms);
                let (count, start) = if in_window {
                    (state.failed_count + 1, state.failure_window_start)
                } else {
                    (1, Some(now))
                };
                let locked_until =
                    (count >= self.max_failures).then(|| now + self.lock_secs.saturating_mul(1000));
                Lockout {
                    failed_count: count,
                    failure_window_start: start,
                    locked_until,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRESH: Lockout = Lockout {
        failed_count: 0,
        failure_window_start: None,
        locked_until: None,
    };

    fn policy() -> LockoutPolicy {
        LockoutPolicy {
            max_failures: 3,
            window_secs: 60,
            lock_secs: 120,
        }
    }

    #[test]
    fn locks_after_n_consecutive_failures_in_the_window() {
        let p = policy();
        let s1 = p.next(&FRESH, Attempt::NoMatch, 1_000);
        let s2 = p.next(&s1, Attempt::NoMatch, 2_000);
        assert_eq!(p.locked_for(&s2, 2_000), None);
        let s3 = p.next(&s2, Attempt::NoMatch, 3_000);
        assert_eq!(s3.failed_count, 3);
        assert_eq!(p.locked_for(&s3, 3_000), Some(120));
        assert_eq!(p.locked_for(&s3, 3_000 + 119_500), Some(1));
        assert_eq!(
            p.locked_for(&s3, 3_000 + 120_000),
            None,
            "the lock lifts when the time has passed"
        );
    }

    #[test]
    fn a_match_resets_and_old_failures_fall_out_of_the_window() {
        let p = policy();
        let s = p.next(
            &p.next(&FRESH, Attempt::NoMatch, 0),
            Attempt::NoMatch,
            1_000,
        );
        assert_eq!(p.next(&s, Attempt::Match, 2_000), FRESH);
        let late = p.next(&s, Attempt::NoMatch, 61_001);
        assert_eq!(
            late.failed_count, 1,
            "a failure after the window starts a new count"
        );
        assert_eq!(p.next(&s, Attempt::Undecided, 2_000), s);
    }

    #[test]
    fn after_a_lock_expires_counting_starts_again() {
        let p = policy();
        let locked = Lockout {
            failed_count: 3,
            failure_window_start: Some(0),
            locked_until: Some(120_000),
        };
        let after = p.next(&locked, Attempt::NoMatch, 130_000);
        assert_eq!(after.failed_count, 1);
        assert_eq!(after.locked_until, None);
    }
}
