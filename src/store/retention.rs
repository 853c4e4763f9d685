//! Retention: what a tenant's retention run finds and purges.

use super::audit::{self, AuditEvent};
use super::sql::SqlStore;
use super::StoreResult;
use crate::domain::{EnrollmentId, Millis, TenantId};
use sqlx::Row;

/// Cut-off times (rows older are purged) of one tenant's retention run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionCutoffs {
    /// Rejected enrollments (their decision records) created before this.
    pub rejected_before: Option<Millis>,
    /// Verification records created before this.
    pub verifications_before: Option<Millis>,
    /// Sessions expired before this that no enrollment or verification refers to.
    pub sessions_expired_before: Millis,
    /// Idempotency rows expired before this.
    pub idempotency_expired_before: Millis,
    /// Webhook events (and their deliveries) created before this, once no delivery is pending.
    pub webhook_events_before: Millis,
    /// Review evidence whose retention cap is at or before this (issue 22).
    pub review_evidence_expired_before: Millis,
}

/// Rows one retention run removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PurgeCounts {
    pub rejected_enrollments: u64,
    pub verifications: u64,
    pub sessions: u64,
    pub idempotency_keys: u64,
    pub webhook_events: u64,
    /// Selfies kept by the selfie step for sessions that expired unused (left out of the audit
    /// event when none, so a run without any records what it did before).
    #[serde(skip_serializing_if = "is_zero")]
    pub session_selfies: u64,
    /// Photos of review evidence past their retention cap (issue 22; left out when none).
    #[serde(skip_serializing_if = "is_zero")]
    pub review_evidence: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl PurgeCounts {
    pub fn total(&self) -> u64 {
        self.rejected_enrollments
            + self.verifications
            + self.sessions
            + self.idempotency_keys
            + self.webhook_events
            + self.session_selfies
            + self.review_evidence
    }
}

#[async_trait::async_trait]
pub trait RetentionStore: Send + Sync {
    /// Live enrollments whose last verification (or creation) is older than `before`.
    async fn inactive_enrollments(
        &self,
        tenant_id: &TenantId,
        before: Millis,
        limit: i64,
    ) -> StoreResult<Vec<EnrollmentId>>;
    /// One transaction: purges what the cut-offs name and, if anything went, appends
    /// `retention.purged` with the counts to the audit chain.
    async fn purge(
        &self,
        tenant_id: &TenantId,
        cutoffs: &RetentionCutoffs,
        now: Millis,
    ) -> StoreResult<PurgeCounts>;
}

#[async_trait::async_trait]
impl RetentionStore for SqlStore {
    #[tracing::instrument(skip_all)]
    async fn inactive_enrollments(
        &self,
        tenant_id: &TenantId,
        before: Millis,
        limit: i64,
    ) -> StoreResult<Vec<EnrollmentId>> {
        let rows = sqlx::query("SELECT e.id FROM enrollments e WHERE e.tenant_id = $1 AND e.deleted_at IS NULL AND e.wrapped_dek IS NOT NULL AND e.created_at < $2 AND NOT EXISTS (SELECT 1 FROM verifications v WHERE v.tenant_id = $1 AND v.enrollment_id = e.id AND v.created_at >= $2) ORDER BY e.created_at, e.id LIMIT $3")
            .bind(tenant_id)
            .bind(before)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
    }

    #[tracing::instrument(skip_all)]
    async fn purge(
        &self,
        tenant_id: &TenantId,
        c: &RetentionCutoffs,
        now: Millis,
    ) -> StoreResult<PurgeCounts> {
        let mut tx = self.begin().await?;
        let mut counts = PurgeCounts::default();
        if let Some(before) = c.verifications_before {
            counts.verifications =
                sqlx::query("DELETE FROM verifications WHERE tenant_id = $1 AND created_at < $2")
                    .bind(tenant_id)
                    .bind(before)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
        }
        if let Some(before) = c.rejected_before {
            // A rejected enrollment holds no personal data: its decision record is the row.
            let doomed = "SELECT id FROM enrollments WHERE tenant_id = $1 AND status = 'rejected' AND created_at < $2 AND id NOT IN (SELECT enrollment_id FROM verifications WHERE tenant_id = $1)";
            sqlx::query(&format!(
                "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND resource_id IN ({doomed})"
            ))
            .bind(tenant_id)
            .bind(before)
            .execute(&mut *tx)
            .await?;
            counts.rejected_enrollments = sqlx::query(&format!(
                "DELETE FROM enrollments WHERE tenant_id = $1 AND id IN ({doomed})"
            ))
            .bind(tenant_id)
            .bind(before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        counts.idempotency_keys =
            sqlx::query("DELETE FROM idempotency_keys WHERE tenant_id = $1 AND expires_at < $2")
                .bind(tenant_id)
                .bind(c.idempotency_expired_before)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        // The selfie step's kept selfies go with their session's expiry (before the sessions: they
        // refer to them).
        counts.session_selfies =
            sqlx::query("DELETE FROM session_selfies WHERE tenant_id = $1 AND expires_at < $2")
                .bind(tenant_id)
                .bind(c.sessions_expired_before)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        counts.review_evidence = super::evidence::expire_evidence_in(
            &mut tx,
            tenant_id,
            c.review_evidence_expired_before,
        )
        .await?;
        // A session stays while an enrollment, a verification or a live idempotent answer
        // (its replay names the session) refers to it.
        counts.sessions = sqlx::query("DELETE FROM sessions WHERE tenant_id = $1 AND expires_at < $2 AND id NOT IN (SELECT session_id FROM enrollments WHERE tenant_id = $1) AND id NOT IN (SELECT session_id FROM verifications WHERE tenant_id = $1 AND session_id IS NOT NULL) AND id NOT IN (SELECT resource_id FROM idempotency_keys WHERE tenant_id = $1 AND resource_id IS NOT NULL)")
            .bind(tenant_id)
            .bind(c.sessions_expired_before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let old_events = "SELECT id FROM webhook_events WHERE tenant_id = $1 AND created_at < $2 AND id NOT IN (SELECT event_id FROM webhook_deliveries WHERE tenant_id = $1 AND state = 'pending')";
        sqlx::query(&format!(
            "DELETE FROM webhook_deliveries WHERE tenant_id = $1 AND event_id IN ({old_events})"
        ))
        .bind(tenant_id)
        .bind(c.webhook_events_before)
        .execute(&mut *tx)
        .await?;
        counts.webhook_events = sqlx::query(&format!(
            "DELETE FROM webhook_events WHERE tenant_id = $1 AND id IN ({old_events})"
        ))
        .bind(tenant_id)
        .bind(c.webhook_events_before)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if counts.total() > 0 {
            let audit = AuditEvent {
                tenant_id: tenant_id.clone(),
                event: crate::domain::AuditKind::RetentionPurged,
                subject: tenant_id.to_string(),
                details: serde_json::json!({"counts": counts}),
                at: now,
            };
            audit::append_in(&mut tx, self.dialect, &audit).await?;
        }
        tx.commit().await?;
        Ok(counts)
    }
}
