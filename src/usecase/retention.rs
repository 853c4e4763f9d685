//! Retention: a periodic job that, per tenant (settings override `[retention]`), crypto-shreds the
//! templates and identity of enrollments without a verification for a period (default never),
//! deletes rejected enrollments' decision records and verification records after their retention
//! (default 7 years, the 確認記録 period of 犯収法; no images are ever kept), and purges expired
//! sessions, expired idempotency rows and old delivered webhook events. Every purge is an audit event.

use super::Services;
use crate::domain::{now_millis, Millis, TenantId};
use crate::store::{PurgeCounts, RetentionCutoffs, Tenant};
use serde::Deserialize;
use std::time::Duration;

/// Seven years of 365.25 days.
pub const SEVEN_YEARS_SECS: u64 = 220_903_200;

/// `[retention]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RetentionSettings {
    /// Run the retention job in this process.
    pub enabled: bool,
    /// How often it runs.
    pub run_interval_secs: u64,
    /// Shred an enrollment's templates and identity after this long without a verification; 0: never.
    pub shred_inactive_after_secs: u64,
    /// Delete a rejected enrollment's decision record after this long.
    pub rejected_retention_secs: u64,
    /// Delete verification records after this long.
    pub verification_retention_secs: u64,
    /// Delete webhook events (and their deliveries and attempts) after this long, once none is pending.
    pub webhook_event_retention_secs: u64,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            run_interval_secs: 3_600,
            shred_inactive_after_secs: 0,
            rejected_retention_secs: SEVEN_YEARS_SECS,
            verification_retention_secs: SEVEN_YEARS_SECS,
            webhook_event_retention_secs: 30 * 86_400,
        }
    }
}

impl RetentionSettings {
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        for (key, v) in [
            ("retention.run_interval_secs", self.run_interval_secs),
            (
                "retention.rejected_retention_secs",
                self.rejected_retention_secs,
            ),
            (
                "retention.verification_retention_secs",
                self.verification_retention_secs,
            ),
            (
                "retention.webhook_event_retention_secs",
                self.webhook_event_retention_secs,
            ),
        ] {
            if v == 0 {
                return Err((key, "must be at least 1".into()));
            }
        }
        Ok(())
    }
}

/// What one run did for one tenant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunReport {
    pub shredded: u64,
    pub purged: PurgeCounts,
}

fn secs(s: u64) -> Millis {
    (s as Millis).saturating_mul(1000)
}

/// One run over every tenant, as of `now`.
pub async fn run_once(svc: &Services, now: Millis) -> anyhow::Result<Vec<(TenantId, RunReport)>> {
    let mut out = Vec::new();
    for tenant in svc.store.list_tenants().await? {
        let report = run_tenant(svc, &tenant, now).await?;
        out.push((tenant.id, report));
    }
    Ok(out)
}

async fn run_tenant(svc: &Services, tenant: &Tenant, now: Millis) -> anyhow::Result<RunReport> {
    let cfg = &svc.settings.retention;
    let t = &tenant.settings;
    let mut report = RunReport::default();
    let shred_after = t
        .shred_inactive_after_secs
        .unwrap_or(cfg.shred_inactive_after_secs);
    if shred_after > 0 {
        for id in svc
            .store
            .inactive_enrollments(&tenant.id, now - secs(shred_after), 1000)
            .await?
        {
            match super::enrollment::delete_by(svc, &tenant.id, &id, "retention").await {
                Ok(()) => report.shredded += 1,
                Err(super::UseCaseError::NotFound) => {}
                Err(e) => return Err(anyhow::anyhow!("shredding {id}: {e}")),
            }
        }
    }
    let cutoffs = RetentionCutoffs {
        rejected_before: Some(
            now - secs(
                t.rejected_retention_secs
                    .unwrap_or(cfg.rejected_retention_secs),
            ),
        ),
        verifications_before: Some(
            now - secs(
                t.verification_retention_secs
                    .unwrap_or(cfg.verification_retention_secs),
            ),
        ),
        sessions_expired_before: now,
        idempotency_expired_before: now,
        webhook_events_before: now - secs(cfg.webhook_event_retention_secs),
        review_evidence_expired_before: now,
    };
    report.purged = svc.store.purge(&tenant.id, &cutoffs, now).await?;
    if report.shredded > 0 || report.purged.total() > 0 {
        metrics::counter!("retention_shredded_total").increment(report.shredded);
        metrics::counter!("retention_purged_total").increment(report.purged.total());
        tracing::info!(tenant_id = %tenant.id, shredded = report.shredded, purged = report.purged.total(), "retention run");
    }
    Ok(report)
}

/// The periodic job.
pub async fn run(svc: Services, shutdown: tokio::sync::watch::Receiver<bool>) {
    let period = Duration::from_secs(svc.settings.retention.run_interval_secs);
    crate::jobs::every("retention run", period, shutdown, || {
        run_once(&svc, now_millis())
    })
    .await;
}
