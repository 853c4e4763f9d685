//! The delivery worker: claims due deliveries, signs and sends each, records the attempt and what
//! follows (delivered, a retry at the backoff time, failed; the endpoint disabled after too many
//! failed deliveries in a row). At least once: a worker that dies mid-attempt loses its lease and
//! another takes the delivery over, with the same event id.

use super::{backoff, sign, ssrf, WebhookSettings};
use crate::crypto::KeyRing;
use crate::domain::{now_millis, Environment, Millis, TenantId, WebhookId};
use crate::store::{AttemptOutcome, AttemptRecord, AttemptRow, AuditEvent, ClaimedDelivery, Store};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// The associated data a webhook secret is sealed under (tenant and endpoint bound).
pub fn secret_context<'a>(tenant_id: &'a TenantId, endpoint_id: &'a WebhookId) -> [&'a str; 3] {
    ["webhook_secret", tenant_id.as_str(), endpoint_id.as_str()]
}

#[derive(Clone)]
pub struct Worker {
    pub store: Arc<dyn Store>,
    pub keys: Arc<KeyRing>,
    pub settings: WebhookSettings,
    pub environment: Environment,
}

/// `disabled_reason` of an endpoint disabled by [`should_disable`].
const DISABLED_REASON: &str = "consecutive_failures";

/// The endpoint is disabled once `limit` deliveries in a row failed (`limit` 0: never).
pub fn should_disable(failed_deliveries_in_a_row: i64, limit: i64) -> bool {
    limit > 0 && failed_deliveries_in_a_row >= limit
}

/// What one attempt got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptResult {
    pub status_code: Option<u16>,
    pub error_class: Option<&'static str>,
}

impl AttemptResult {
    pub fn delivered(&self) -> bool {
        self.error_class.is_none() && self.status_code.is_some_and(|s| (200..300).contains(&s))
    }
}

impl Worker {
    /// Polls until `shutdown` turns true, then waits for the attempts in flight (each bounded by
    /// its timeout). Attempts run as their own tasks, at most `concurrency` at once, so a slow
    /// receiver does not hold up the next poll.
    pub async fn run(self, shutdown: tokio::sync::watch::Receiver<bool>) {
        let this = Arc::new(self);
        let slots = Arc::new(tokio::sync::Semaphore::new(this.settings.concurrency));
        let period = Duration::from_millis(this.settings.poll_interval_ms);
        crate::jobs::every("webhook delivery poll", period, shutdown, || {
            this.poll_once(&slots)
        })
        .await;
        // Drain: the attempts in flight hold their slots until they are recorded.
        let _ = slots.acquire_many(this.settings.concurrency as u32).await;
    }

    /// Claims as many due deliveries as there are free slots and starts them; returns how many.
    pub async fn poll_once(
        self: &Arc<Self>,
        slots: &Arc<tokio::sync::Semaphore>,
    ) -> anyhow::Result<usize> {
        let s = &self.settings;
        let free = slots.available_permits().min(s.batch_size.max(1) as usize);
        if free == 0 {
            return Ok(0);
        }
        let claimed = self
            .store
            .claim_deliveries(now_millis(), (s.lease_secs * 1000) as Millis, free as i64)
            .await?;
        let n = claimed.len();
        for c in claimed {
            let permit = slots.clone().acquire_owned().await?;
            let this = self.clone();
            tokio::spawn(async move {
                if let Err(e) = this.attempt(c).await {
                    tracing::warn!(error = %e, "recording a webhook attempt failed");
                }
                drop(permit);
            });
        }
        Ok(n)
    }

    async fn attempt(&self, c: ClaimedDelivery) -> anyhow::Result<()> {
        let started_at = now_millis();
        let clock = Instant::now();
        let result = self.send(&c).await;
        let duration_ms = clock.elapsed().as_millis() as i64;
        let now = now_millis();
        let window_attempts = c.delivery.window_attempts + 1;
        let outcome = backoff::outcome(
            result.delivered(),
            window_attempts,
            c.delivery.window_start,
            now,
            &self.settings,
            rand::random::<f64>(),
        );
        let label = match outcome {
            AttemptOutcome::Delivered => "delivered",
            AttemptOutcome::Retry { .. } => "retry",
            AttemptOutcome::GiveUp => "failed",
        };
        metrics::counter!("webhook_attempts_total", "outcome" => label, "error" => result.error_class.unwrap_or("none")).increment(1);
        metrics::histogram!("webhook_attempt_duration_seconds").record(duration_ms as f64 / 1000.0);
        if !matches!(outcome, AttemptOutcome::Retry { .. }) {
            metrics::counter!("webhook_deliveries_total", "result" => label).increment(1);
        }
        let attempt = AttemptRow {
            n: c.delivery.attempts + 1,
            at: started_at,
            status_code: result.status_code.map(i64::from),
            error_class: result.error_class.map(str::to_string),
            duration_ms,
        };
        let failures = self
            .store
            .record_attempt(&AttemptRecord {
                tenant_id: c.delivery.tenant_id.clone(),
                delivery_id: c.delivery.id.clone(),
                endpoint_id: c.endpoint.id.clone(),
                attempt: attempt.clone(),
                outcome,
            })
            .await?;
        let limit = self.settings.disable_after_failed_deliveries;
        if outcome == AttemptOutcome::GiveUp && should_disable(failures, limit) {
            let audit = AuditEvent {
                tenant_id: c.delivery.tenant_id.clone(),
                event: crate::domain::AuditKind::WebhookDisabled,
                subject: c.endpoint.id.to_string(),
                details: serde_json::json!({"reason": DISABLED_REASON, "failed_deliveries": limit, "last_delivery_id": c.delivery.id}),
                at: attempt.at,
            };
            let disabled = self
                .store
                .disable_webhook(
                    &c.delivery.tenant_id,
                    &c.endpoint.id,
                    failures,
                    DISABLED_REASON,
                    &audit,
                    attempt.at,
                )
                .await?;
            if disabled {
                metrics::counter!("webhook_endpoints_disabled_total").increment(1);
                tracing::warn!(endpoint_id = %c.endpoint.id, "webhook endpoint disabled after consecutive failed deliveries");
            }
        }
        Ok(())
    }

    /// The signing keys valid now: the current one, and the previous one in its grace period.
    fn keys_of(&self, c: &ClaimedDelivery, now: Millis) -> anyhow::Result<Vec<Zeroizing<Vec<u8>>>> {
        let context = secret_context(&c.endpoint.tenant_id, &c.endpoint.id);
        let mut keys = vec![Zeroizing::new(
            self.keys
                .open_system(&context, c.endpoint.secret_sealed.expose())?,
        )];
        if let (Some(prev), Some(until)) = (
            &c.endpoint.previous_secret_sealed,
            c.endpoint.previous_secret_expires_at,
        ) {
            if until > now {
                keys.push(Zeroizing::new(
                    self.keys.open_system(&context, prev.expose())?,
                ));
            }
        }
        Ok(keys)
    }

    async fn send(&self, c: &ClaimedDelivery) -> AttemptResult {
        let failed = |class: &'static str| AttemptResult {
            status_code: None,
            error_class: Some(class),
        };
        let url = match ssrf::check_url(&c.endpoint.url, self.environment) {
            Ok(u) => u,
            Err(e) => return failed(e.class()),
        };
        let pinned = match ssrf::resolve_checked(&url, self.environment).await {
            Ok(p) => p,
            Err(e) => return failed(e.class()),
        };
        let s = &self.settings;
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(Duration::from_millis(s.connect_timeout_ms))
            .timeout(Duration::from_millis(s.attempt_timeout_ms))
            .user_agent(concat!("jpki-face-webhooks/", env!("CARGO_PKG_VERSION")));
        if let (Some(addr), Some(host)) = (pinned, url.host_str()) {
            // Connect to the address that was checked, whatever DNS says now.
            builder = builder.resolve(host, addr);
        }
        let client = match builder.build() {
            Ok(c) => c,
            Err(_) => return failed("client"),
        };
        let now = now_millis();
        let keys = match self.keys_of(c, now) {
            Ok(k) => k,
            Err(e) => {
                tracing::error!(error = %e, endpoint_id = %c.endpoint.id, "webhook secret does not open");
                return failed("secret");
            }
        };
        let timestamp = now / 1000;
        let body = c.payload.as_bytes();
        let key_refs: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
        let signature = sign::header(&key_refs, c.delivery.event_id.as_str(), timestamp, body);
        let request = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", c.delivery.event_id.as_str())
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(c.payload.clone());
        let exchange = async {
            let mut response = request.send().await?;
            let status = response.status().as_u16();
            // The answer is read (bounded) so the connection ends cleanly, then discarded.
            let mut read = 0usize;
            while let Some(chunk) = response.chunk().await? {
                read += chunk.len();
                if read >= s.max_response_bytes {
                    break;
                }
            }
            Ok::<u16, reqwest::Error>(status)
        };
        match tokio::time::timeout(Duration::from_millis(s.attempt_timeout_ms), exchange).await {
            Err(_) => failed("timeout"),
            Ok(Err(e)) if e.is_timeout() => failed("timeout"),
            Ok(Err(e)) if e.is_connect() => failed("connect"),
            Ok(Err(_)) => failed("request"),
            Ok(Ok(status)) => AttemptResult {
                status_code: Some(status),
                error_class: (!(200..300).contains(&status)).then_some(
                    if (300..400).contains(&status) {
                        "redirect"
                    } else {
                        "http_status"
                    },
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::should_disable;

    #[test]
    fn an_endpoint_is_disabled_at_the_limit_and_never_with_limit_zero() {
        assert!(!should_disable(4, 5));
        assert!(should_disable(5, 5));
        assert!(
            should_disable(6, 5),
            "past the limit (a concurrent failure) still disables"
        );
        assert!(!should_disable(100, 0), "0 never disables");
    }
}
