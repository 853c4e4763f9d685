//! The time source of the checkers, injectable so tests can age responses and caches.

use chrono::{DateTime, Duration, Utc};
use std::sync::atomic::{AtomicI64, Ordering};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The system clock shifted by an adjustable offset: for tests and drills ("what if it were tomorrow").
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset_secs: AtomicI64,
}

impl OffsetClock {
    pub fn new() -> Self {
        Self::default()
    }
    /// Moves this clock forward (or back, with a negative value).
    pub fn advance_secs(&self, secs: i64) {
        self.offset_secs.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + Duration::seconds(self.offset_secs.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_clock_moves() {
        let c = OffsetClock::new();
        let before = c.now();
        c.advance_secs(3_600);
        let after = c.now();
        assert!(after - before >= Duration::seconds(3_600));
        assert!(after - before < Duration::seconds(3_660));
    }
}
