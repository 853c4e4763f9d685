//! Scheduled status checks (継続的顧客管理): every verified (or status-unknown) enrollment is
//! re-checked once per interval (default daily, per tenant), spread over the interval by a random
//! first offset, with bounded concurrency, through [`super::status::check_enrollment_by`], the very
//! check of `POST /v1/enrollments/{id}/status-check` (same transitions, same audit event, the
//! `enrollment.status_changed` event in its transaction). Replicas on one PostgreSQL claim due
//! enrollments with a lease (`FOR UPDATE SKIP LOCKED`), so each is checked once per interval.

use super::status::{check_enrollment_by, Trigger};
use super::{Services, UseCaseError};
use crate::domain::{now_millis, Millis, TenantId};
use futures::StreamExt;
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;

/// `[status_checks]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct StatusCheckSettings {
    /// Run the scheduler in this process.
    pub enabled: bool,
    /// Seconds between two checks of one enrollment (a tenant may override it).
    pub interval_secs: u64,
    /// How often the scheduler looks for due checks.
    pub poll_interval_ms: u64,
    /// Checks claimed per poll, and run at once at most.
    pub batch_size: i64,
    pub concurrency: usize,
    /// A claimed check is another replica's to take after this.
    pub lease_secs: u64,
    /// After a check that could not be answered (J-LIS unavailable), the next try comes this much
    /// later (at most one interval).
    pub retry_after_failure_secs: u64,
    /// A check due for longer than this counts as overdue (metric `status_checks_overdue`).
    pub overdue_after_secs: u64,
}

impl Default for StatusCheckSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_secs: 86_400,
            poll_interval_ms: 10_000,
            batch_size: 32,
            concurrency: 4,
            lease_secs: 300,
            retry_after_failure_secs: 900,
            overdue_after_secs: 3_600,
        }
    }
}

impl StatusCheckSettings {
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        for (key, v) in [
            ("status_checks.interval_secs", self.interval_secs),
            ("status_checks.poll_interval_ms", self.poll_interval_ms),
            ("status_checks.lease_secs", self.lease_secs),
            (
                "status_checks.retry_after_failure_secs",
                self.retry_after_failure_secs,
            ),
        ] {
            if v == 0 {
                return Err((key, "must be at least 1".into()));
            }
        }
        if self.batch_size < 1 {
            return Err(("status_checks.batch_size", "must be at least 1".into()));
        }
        if self.concurrency == 0 {
            return Err(("status_checks.concurrency", "must be at least 1".into()));
        }
        Ok(())
    }
}

/// The scheduler of one process.
pub struct Scheduler {
    pub svc: Services,
}

impl Scheduler {
    pub async fn run(self, shutdown: tokio::sync::watch::Receiver<bool>) {
        let period = Duration::from_millis(self.svc.settings.status_checks.poll_interval_ms);
        crate::jobs::every("status check poll", period, shutdown, || self.poll_once()).await;
    }

    /// Tenants' intervals in milliseconds (tenants without an override are absent).
    async fn intervals(&self) -> anyhow::Result<HashMap<TenantId, Millis>> {
        Ok(self
            .svc
            .store
            .list_tenants()
            .await?
            .into_iter()
            .filter_map(|t| {
                t.settings
                    .status_check_interval_secs
                    .filter(|&s| s > 0)
                    .map(|s| (t.id, (s as Millis) * 1000))
            })
            .collect())
    }

    /// Schedules new enrollments, claims due checks and runs them; returns how many ran.
    pub async fn poll_once(&self) -> anyhow::Result<usize> {
        let cfg = &self.svc.settings.status_checks;
        let store = &self.svc.store;
        let default_ms = (cfg.interval_secs as Millis) * 1000;
        let unscheduled = store.unscheduled_status_checks(500).await?;
        let intervals = if unscheduled.is_empty() {
            HashMap::new()
        } else {
            self.intervals().await?
        };
        let now = now_millis();
        for (tenant_id, id) in &unscheduled {
            let interval = intervals.get(tenant_id).copied().unwrap_or(default_ms);
            // A random first offset spreads the checks over the interval.
            let offset = (rand::random::<f64>() * interval as f64) as Millis;
            store
                .schedule_status_check(tenant_id, id, now + offset)
                .await?;
        }
        let (due, overdue) = store
            .status_check_backlog(now, now - (cfg.overdue_after_secs as Millis) * 1000)
            .await?;
        metrics::gauge!("status_checks_due").set(due as f64);
        metrics::gauge!("status_checks_overdue").set(overdue as f64);
        let claimed = store
            .claim_status_checks(now, (cfg.lease_secs as Millis) * 1000, cfg.batch_size)
            .await?;
        if claimed.is_empty() {
            return Ok(0);
        }
        let intervals = self.intervals().await?;
        let n = claimed.len();
        futures::stream::iter(claimed)
            .for_each_concurrent(cfg.concurrency, |c| {
                let interval = intervals.get(&c.tenant_id).copied().unwrap_or(default_ms);
                async move {
                    let result =
                        check_enrollment_by(&self.svc, &c.tenant_id, &c.enrollment_id, Trigger::Scheduled)
                            .await;
                    let now = now_millis();
                    let next = match &result {
                        Ok(_) => {
                            metrics::counter!("status_checks_total", "result" => "done").increment(1);
                            now + interval
                        }
                        // Revoked, rejected or deleted meanwhile: nothing more to check.
                        Err(UseCaseError::EnrollmentInactive | UseCaseError::NotFound) => now + interval,
                        Err(e) => {
                            metrics::counter!("status_checks_total", "result" => "failed").increment(1);
                            tracing::warn!(error = ?e, enrollment_id = %c.enrollment_id, "scheduled status check failed; retrying later");
                            now + ((cfg.retry_after_failure_secs as Millis) * 1000).min(interval)
                        }
                    };
                    if let Err(e) = self
                        .svc
                        .store
                        .finish_status_check(&c.tenant_id, &c.enrollment_id, next)
                        .await
                    {
                        tracing::warn!(error = %e, "rescheduling a status check failed (its lease expires)");
                    }
                }
            })
            .await;
        Ok(n)
    }
}
