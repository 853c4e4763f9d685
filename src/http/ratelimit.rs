//! Request budgets checked before work is done: a per-tenant rate (token bucket, right after
//! authentication) and a per-address budget of failed authentications (checked before a credential
//! is looked up in the database).
//!
//! The tenant limit is work-conserving: it exists to share a replica fairly, so it applies only while
//! another tenant has been active on this replica within the fairness window. A lone tenant (most
//! self-hosted deployments have one) is never refused below what the replica can serve; the face
//! pool's own queue answers 503 `overloaded` when the replica itself is full.
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
    /// The tenant's last request (for the fairness window).
    seen: Instant,
}

/// How long a tenant counts as active after its last request.
pub const FAIRNESS_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

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
        let contended = buckets.iter().any(|(id, b)| {
            id != tenant_id && now.saturating_duration_since(b.seen) < FAIRNESS_WINDOW
        });
        let bucket = buckets.entry(tenant_id.to_string()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
            seen: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.at = now;
        bucket.seen = now;
        if !contended {
            // Alone on this replica: nobody to be fair to.
            return Ok(());
        }
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

/// Failed authentications per client address (per replica): an address that used its budget is
/// answered 429 before its credential is looked up, so a credential-guessing flood costs no
/// database work. Successful requests cost nothing.
#[derive(Debug)]
pub struct AuthFailureBudget {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<std::net::IpAddr, Bucket>>,
}

/// Addresses remembered at most; past it, full (idle) buckets are forgotten first, and all of them
/// when that frees less than half.
const MAX_TRACKED_ADDRESSES: usize = 100_000;

impl AuthFailureBudget {
    /// `rate` failures per second refill, at most `burst` at once; `rate == 0` disables it.
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(seconds)` when `ip` has no failed attempt left.
    pub fn check(&self, ip: std::net::IpAddr) -> Result<(), u64> {
        self.check_at(ip, Instant::now())
    }

    /// Counts one failed authentication of `ip`.
    pub fn charge(&self, ip: std::net::IpAddr) {
        self.charge_at(ip, Instant::now())
    }

    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.at = now;
    }

    fn check_at(&self, ip: std::net::IpAddr, now: Instant) -> Result<(), u64> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let Some(bucket) = buckets.get_mut(&ip) else {
            return Ok(());
        };
        self.refill(bucket, now);
        if bucket.tokens >= 1.0 {
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }

    fn charge_at(&self, ip: std::net::IpAddr, now: Instant) {
        if self.rate <= 0.0 {
            return;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_TRACKED_ADDRESSES && !buckets.contains_key(&ip) {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
            });
            // Under a flood from very many addresses few buckets are idle: then forget them all, so
            // that this O(n) sweep runs at most once per MAX/2 new addresses (amortised O(1)).
            if buckets.len() > MAX_TRACKED_ADDRESSES / 2 {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            at: now,
            seen: now,
        });
        self.refill(bucket, now);
        bucket.tokens = (bucket.tokens - 1.0).max(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_lone_tenant_is_never_refused() {
        let limiter = TenantLimiter::new(2.0, 3.0);
        let t0 = Instant::now();
        for _ in 0..100 {
            assert!(limiter.check_at("a", t0).is_ok());
        }
        // Another tenant past the fairness window does not count either.
        assert!(limiter.check_at("b", t0).is_ok());
        let later = t0 + FAIRNESS_WINDOW + Duration::from_secs(1);
        for _ in 0..100 {
            assert!(limiter.check_at("a", later).is_ok());
        }
    }

    #[test]
    fn a_flood_from_many_addresses_keeps_the_table_bounded() {
        let budget = AuthFailureBudget::new(1.0, 3.0);
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED_ADDRESSES as u32 + 10) {
            budget.charge_at(std::net::IpAddr::from(i.to_be_bytes()), t0);
        }
        let len = budget.buckets.lock().unwrap().len();
        assert!(len <= MAX_TRACKED_ADDRESSES, "{len}");
        assert!(
            len < 100,
            "the busy table was forgotten once, not swept per address: {len}"
        );
    }

    #[test]
    fn failed_authentications_are_budgeted_per_address() {
        let budget = AuthFailureBudget::new(1.0, 3.0);
        let (a, b): (std::net::IpAddr, std::net::IpAddr) =
            ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(budget.check_at(a, t0).is_ok());
            budget.charge_at(a, t0);
        }
        assert_eq!(budget.check_at(a, t0), Err(1));
        assert!(
            budget.check_at(b, t0).is_ok(),
            "another address is unaffected"
        );
        assert!(
            budget.check_at(a, t0 + Duration::from_secs(1)).is_ok(),
            "it refills"
        );
        assert!(AuthFailureBudget::new(0.0, 1.0).check_at(a, t0).is_ok());
    }

    #[test]
    fn a_tenant_gets_its_burst_then_the_rate_and_others_are_unaffected() {
        let limiter = TenantLimiter::new(2.0, 3.0);
        let t0 = Instant::now();
        assert!(limiter.check_at("b", t0).is_ok(), "b is active");
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
