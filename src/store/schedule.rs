//! The schedule of status checks (現況確認): which enrollments are due, claimed with a lease so that
//! replicas never check the same one at once.

use super::sql::SqlStore;
use super::StoreResult;
use crate::domain::{EnrollmentId, Millis, TenantId};
use sqlx::Row;

/// An enrollment whose scheduled status check is due, claimed (leased) by this replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedCheck {
    pub tenant_id: TenantId,
    pub enrollment_id: EnrollmentId,
    pub next_status_check_at: Millis,
}

#[async_trait::async_trait]
pub trait ScheduleStore: Send + Sync {
    /// Verified (or status-unknown) enrollments that have no check scheduled yet.
    async fn unscheduled_status_checks(
        &self,
        limit: i64,
    ) -> StoreResult<Vec<(TenantId, EnrollmentId)>>;
    /// Sets the first check time of an enrollment that has none (a concurrent replica may have).
    async fn schedule_status_check(
        &self,
        tenant_id: &TenantId,
        enrollment_id: &EnrollmentId,
        at: Millis,
    ) -> StoreResult<()>;
    /// Claims up to `limit` due checks for `lease_ms` (SKIP LOCKED on PostgreSQL).
    async fn claim_status_checks(
        &self,
        now: Millis,
        lease_ms: Millis,
        limit: i64,
    ) -> StoreResult<Vec<ClaimedCheck>>;
    /// Ends a claimed check: the lease is dropped and the next check set.
    async fn finish_status_check(
        &self,
        tenant_id: &TenantId,
        enrollment_id: &EnrollmentId,
        next_at: Millis,
    ) -> StoreResult<()>;
    /// Checks due now and checks due before `overdue_before`.
    async fn status_check_backlog(
        &self,
        now: Millis,
        overdue_before: Millis,
    ) -> StoreResult<(i64, i64)>;
}

#[async_trait::async_trait]
impl ScheduleStore for SqlStore {
    #[tracing::instrument(skip_all)]
    async fn unscheduled_status_checks(
        &self,
        limit: i64,
    ) -> StoreResult<Vec<(TenantId, EnrollmentId)>> {
        let rows = sqlx::query("SELECT tenant_id, id FROM enrollments WHERE status IN ('verified', 'status_unknown') AND deleted_at IS NULL AND next_status_check_at IS NULL ORDER BY created_at, id LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("tenant_id")?, r.try_get("id")?)))
            .collect()
    }

    #[tracing::instrument(skip_all)]
    async fn schedule_status_check(
        &self,
        tenant_id: &TenantId,
        enrollment_id: &EnrollmentId,
        at: Millis,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE enrollments SET next_status_check_at = $1 WHERE tenant_id = $2 AND id = $3 AND next_status_check_at IS NULL")
            .bind(at)
            .bind(tenant_id)
            .bind(enrollment_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn claim_status_checks(
        &self,
        now: Millis,
        lease_ms: Millis,
        limit: i64,
    ) -> StoreResult<Vec<ClaimedCheck>> {
        const DUE: &str = "status IN ('verified', 'status_unknown') AND deleted_at IS NULL AND next_status_check_at <= $1 AND (status_check_lease_until IS NULL OR status_check_lease_until <= $1)";
        // A cheap look first: an idle poll takes no write lock.
        let peek = format!("SELECT id FROM enrollments WHERE {DUE} LIMIT 1");
        if sqlx::query(&peek)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?
            .is_none()
        {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        let sql = format!(
            "SELECT tenant_id, id, next_status_check_at FROM enrollments WHERE {DUE} ORDER BY next_status_check_at, id LIMIT $2{}",
            self.dialect.skip_locked()
        );
        let claimed: Vec<ClaimedCheck> = sqlx::query(&sql)
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| {
                Ok(ClaimedCheck {
                    tenant_id: r.try_get("tenant_id")?,
                    enrollment_id: r.try_get("id")?,
                    next_status_check_at: r.try_get("next_status_check_at")?,
                })
            })
            .collect::<StoreResult<_>>()?;
        for c in &claimed {
            sqlx::query("UPDATE enrollments SET status_check_lease_until = $1 WHERE tenant_id = $2 AND id = $3")
                .bind(now + lease_ms)
                .bind(&c.tenant_id)
                .bind(&c.enrollment_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(claimed)
    }

    #[tracing::instrument(skip_all)]
    async fn finish_status_check(
        &self,
        tenant_id: &TenantId,
        enrollment_id: &EnrollmentId,
        next_at: Millis,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE enrollments SET next_status_check_at = $1, status_check_lease_until = NULL WHERE tenant_id = $2 AND id = $3")
            .bind(next_at)
            .bind(tenant_id)
            .bind(enrollment_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn status_check_backlog(
        &self,
        now: Millis,
        overdue_before: Millis,
    ) -> StoreResult<(i64, i64)> {
        let row = sqlx::query("SELECT COALESCE(SUM(CASE WHEN next_status_check_at <= $1 THEN 1 ELSE 0 END), 0) AS due, COALESCE(SUM(CASE WHEN next_status_check_at <= $2 THEN 1 ELSE 0 END), 0) AS overdue FROM enrollments WHERE status IN ('verified', 'status_unknown') AND deleted_at IS NULL")
            .bind(now)
            .bind(overdue_before)
            .fetch_one(&self.pool)
            .await?;
        Ok((row.try_get("due")?, row.try_get("overdue")?))
    }
}
