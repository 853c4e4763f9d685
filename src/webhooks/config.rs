//! `[webhooks]`: owned here; `config` only layers and aggregates it.

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct WebhookSettings {
    /// Run the delivery worker in this process.
    pub worker_enabled: bool,
    /// How often the worker looks for due deliveries.
    pub poll_interval_ms: u64,
    /// Deliveries claimed per poll, and sent at once at most.
    pub batch_size: i64,
    pub concurrency: usize,
    /// A claimed delivery is another replica's to take after this (a worker that died).
    pub lease_secs: u64,
    /// One attempt (connect, send, answer, bounded body) at most.
    pub attempt_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    /// The receiver's answer is read up to this many bytes and discarded.
    pub max_response_bytes: usize,
    /// Attempts of one delivery at most, and the time from its first attempt after which it is failed.
    pub max_attempts: i64,
    pub max_retry_secs: u64,
    /// Retry n waits about base * 2^(n-1), capped, with jitter (half fixed, half random).
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// An endpoint is disabled (audit event `webhook.disabled`) after this many failed deliveries
    /// in a row; 0 never disables.
    pub disable_after_failed_deliveries: i64,
    /// After a rotation the previous secret still signs (a second signature) for this long.
    pub secret_grace_secs: u64,
    /// Endpoints per tenant at most.
    pub max_endpoints_per_tenant: usize,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            worker_enabled: true,
            poll_interval_ms: 1000,
            batch_size: 32,
            concurrency: 8,
            lease_secs: 60,
            attempt_timeout_ms: 10_000,
            connect_timeout_ms: 5_000,
            max_response_bytes: 64 * 1024,
            max_attempts: 12,
            max_retry_secs: 86_400,
            backoff_base_ms: 10_000,
            backoff_max_ms: 3_600_000,
            disable_after_failed_deliveries: 5,
            secret_grace_secs: 86_400,
            max_endpoints_per_tenant: 16,
        }
    }
}

impl WebhookSettings {
    /// `Err((key, why))`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let positive = [
            ("webhooks.poll_interval_ms", self.poll_interval_ms),
            ("webhooks.attempt_timeout_ms", self.attempt_timeout_ms),
            ("webhooks.connect_timeout_ms", self.connect_timeout_ms),
            ("webhooks.backoff_base_ms", self.backoff_base_ms),
            ("webhooks.lease_secs", self.lease_secs),
        ];
        for (key, v) in positive {
            if v == 0 {
                return Err((key, "must be at least 1".into()));
            }
        }
        if self.batch_size < 1 {
            return Err(("webhooks.batch_size", "must be at least 1".into()));
        }
        if self.concurrency == 0 {
            return Err(("webhooks.concurrency", "must be at least 1".into()));
        }
        if self.max_attempts < 1 {
            return Err(("webhooks.max_attempts", "must be at least 1".into()));
        }
        if self.backoff_max_ms < self.backoff_base_ms {
            return Err((
                "webhooks.backoff_max_ms",
                "must be at least webhooks.backoff_base_ms".into(),
            ));
        }
        if self.disable_after_failed_deliveries < 0 {
            return Err((
                "webhooks.disable_after_failed_deliveries",
                "must be >= 0 (0 never disables)".into(),
            ));
        }
        if self.lease_secs * 1000 <= self.attempt_timeout_ms {
            return Err((
                "webhooks.lease_secs",
                "must be longer than webhooks.attempt_timeout_ms (an attempt keeps its delivery)"
                    .into(),
            ));
        }
        if self.max_endpoints_per_tenant == 0 {
            return Err((
                "webhooks.max_endpoints_per_tenant",
                "must be at least 1".into(),
            ));
        }
        Ok(())
    }
}
