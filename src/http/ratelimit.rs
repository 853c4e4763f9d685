//! A per-tenant request rate limit: a token bucket per tenant, checked right after authentication.
//!
//! Per replica, on purpose: a global limit would put a database write on every request (the store is
//! the only shared state), and the limit exists to stop one tenant from starving the others on a
//! replica, which a local bucket does exactly. With N replicas the effective global rate is up to N×
//! the configured one; a global cap belongs to the load balancer. (docs/api.md says the same.)

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets by tenant id.
#[derive(Debug)]
pub struct TenantLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl TenantLimiter {
    /// `rate` tokens per second, at most `burst` saved; `rate == 0` disables the limit.
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `tenant_id`; `Err(seconds until one is free)` when none is left.
    pub fn check(&self, tenant_id: &str) -> Result<(), u64> {
        self.check_at(tenant_id, Instant::now())
    }

    fn check_at(&self, tenant_id: &str, now: Instant) -> Result<(), u64> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets.entry(tenant_id.to_string()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_tenant_gets_its_burst_then_the_rate_and_others_are_unaffected() {
        let limiter = TenantLimiter::new(2.0, 3.0);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check_at("a", t0).is_ok());
        }
        assert_eq!(limiter.check_at("a", t0), Err(1));
        assert!(
            limiter.check_at("b", t0).is_ok(),
            "another tenant has its own bucket"
        );
        assert!(limiter
            .check_at("a", t0 + Duration::from_millis(500))
            .is_ok());
        assert!(limiter
            .check_at("a", t0 + Duration::from_millis(500))
            .is_err());
        assert!(TenantLimiter::new(0.0, 0.0).check_at("a", t0).is_ok());
    }
}
