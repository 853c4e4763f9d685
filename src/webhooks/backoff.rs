//! The retry schedule: retry n (after n failed attempts) waits `base * 2^(n-1)`, capped at `max`,
//! half of it fixed and half random ("equal jitter"), so receivers that failed together are not
//! retried together. A delivery gives up after `max_attempts` attempts or once the next attempt
//! would fall after `max_retry` from the start of its retry budget.

use super::WebhookSettings;
use crate::domain::Millis;
use crate::store::AttemptOutcome;

/// The wait before retry `failures` (>= 1), for a jitter draw `jitter` in [0, 1).
pub fn delay_ms(failures: i64, base_ms: u64, max_ms: u64, jitter: f64) -> u64 {
    let shift = (failures.max(1) - 1).min(40) as u32;
    let full = base_ms.saturating_mul(1u64 << shift.min(63)).min(max_ms);
    let half = full / 2;
    half + ((full - half) as f64 * jitter.clamp(0.0, 1.0)) as u64
}

/// What happens after an attempt: `window_attempts` counts this attempt.
pub fn outcome(
    delivered: bool,
    window_attempts: i64,
    window_start: Millis,
    now: Millis,
    cfg: &WebhookSettings,
    jitter: f64,
) -> AttemptOutcome {
    if delivered {
        return AttemptOutcome::Delivered;
    }
    if window_attempts >= cfg.max_attempts {
        return AttemptOutcome::GiveUp;
    }
    let next = now
        + delay_ms(
            window_attempts,
            cfg.backoff_base_ms,
            cfg.backoff_max_ms,
            jitter,
        ) as Millis;
    if next > window_start + (cfg.max_retry_secs as Millis) * 1000 {
        return AttemptOutcome::GiveUp;
    }
    AttemptOutcome::Retry {
        next_attempt_at: next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_within_the_jitter_band() {
        let (base, max) = (10_000, 3_600_000);
        let lows: Vec<u64> = (1..=12).map(|n| delay_ms(n, base, max, 0.0)).collect();
        let highs: Vec<u64> = (1..=12)
            .map(|n| delay_ms(n, base, max, 0.999_999))
            .collect();
        assert_eq!(&lows[..4], &[5_000, 10_000, 20_000, 40_000]);
        assert_eq!(&highs[..4], &[9_999, 19_999, 39_999, 79_999]);
        // capped at one hour (half of it fixed)
        assert_eq!(lows[11], 1_800_000);
        assert!(highs[11] < 3_600_000 && highs[11] >= 3_599_000);
        for w in lows.windows(2) {
            assert!(w[1] >= w[0], "never shorter than the previous wait");
        }
        assert_eq!(delay_ms(1_000, base, max, 0.0), 1_800_000, "no overflow");
        assert_eq!(
            delay_ms(0, base, max, 0.0),
            5_000,
            "the first retry at least"
        );
    }

    #[test]
    fn gives_up_after_the_attempts_or_the_time() {
        let cfg = WebhookSettings {
            max_attempts: 3,
            max_retry_secs: 60,
            backoff_base_ms: 10_000,
            backoff_max_ms: 3_600_000,
            ..WebhookSettings::default()
        };
        assert_eq!(outcome(true, 5, 0, 0, &cfg, 0.5), AttemptOutcome::Delivered);
        assert_eq!(
            outcome(false, 1, 0, 0, &cfg, 0.0),
            AttemptOutcome::Retry {
                next_attempt_at: 5_000
            }
        );
        assert_eq!(
            outcome(false, 3, 0, 0, &cfg, 0.0),
            AttemptOutcome::GiveUp,
            "attempts spent"
        );
        assert_eq!(
            outcome(false, 2, 0, 55_000, &cfg, 0.0),
            AttemptOutcome::GiveUp,
            "the next attempt would be past max_retry_secs"
        );
    }
}
