//! What the back-office console reads (issue 22), each query bounded by an index so that a page
//! costs the same with a million enrollments as with ten: the enrollment list by keyset (on
//! `(tenant_id[, status], created_at DESC, id DESC)` or on the reasons side table), the per-day
//! counters, the newest documents for the score chart, one enrollment's audit events with their
//! predecessors' hashes; and the tenant-scoped writes of the admin pages (API keys, settings).

use super::audit::{self, AuditEvent, AuditRow};
use super::sql::{Dialect, SqlStore};
use super::{StoreError, StoreResult, TenantSettings};
use crate::domain::{EnrollmentId, EnrollmentStatus, Millis, TenantId};
use sqlx::any::AnyRow;
use sqlx::Row;

/// The enrollment list's filters and page position.
#[derive(Debug, Clone, Default)]
pub struct EnrollmentFilter {
    pub status: Option<EnrollmentStatus>,
    /// A reason code.
    pub reason: Option<String>,
    /// `created_at >= from`.
    pub from: Option<Millis>,
    /// `created_at < until`.
    pub until: Option<Millis>,
    pub subject_ref: Option<String>,
    /// The last row of the previous page: `(created_at, id)`.
    pub after: Option<(Millis, EnrollmentId)>,
    pub limit: i64,
}

/// One row of the enrollment list (no sealed data).
#[derive(Debug, Clone)]
pub struct EnrollmentSummary {
    pub id: EnrollmentId,
    pub status: EnrollmentStatus,
    pub subject_ref: Option<String>,
    /// The public decision record.
    pub document: String,
    pub created_at: Millis,
}

/// An enrollment's audit row and the hash of the row before it in the tenant's chain (`None` for
/// the first row, or when that row is missing).
#[derive(Debug, Clone)]
pub struct LinkedAuditRow {
    pub row: AuditRow,
    pub predecessor_hash: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct ApiKeyRow {
    pub id: String,
    pub created_at: Millis,
    pub revoked_at: Option<Millis>,
}

#[async_trait::async_trait]
pub trait ConsoleStore: Send + Sync {
    async fn console_enrollments(
        &self,
        tenant_id: &TenantId,
        filter: &EnrollmentFilter,
    ) -> StoreResult<Vec<EnrollmentSummary>>;
    /// `(day, status, n)` for the days since `from_day` (days since the Unix epoch, UTC).
    async fn daily_counts(
        &self,
        tenant_id: &TenantId,
        from_day: i64,
    ) -> StoreResult<Vec<(i64, String, i64)>>;
    /// `(face score, threshold)` of the newest `limit` enrollments that have a score, read from
    /// their decision records by the database (no record crosses the wire).
    async fn recent_scores(&self, tenant_id: &TenantId, limit: i64)
        -> StoreResult<Vec<(f64, f64)>>;
    /// The audit rows whose subject is `subject`, in chain order, each with its predecessor's hash.
    async fn subject_audit(
        &self,
        tenant_id: &TenantId,
        subject: &str,
    ) -> StoreResult<Vec<LinkedAuditRow>>;
    /// Pending webhook deliveries of the tenant, counted up to `cap`.
    async fn pending_deliveries(&self, tenant_id: &TenantId, cap: i64) -> StoreResult<i64>;
    async fn list_api_keys(&self, tenant_id: &TenantId) -> StoreResult<Vec<ApiKeyRow>>;
    /// Adds an API key of the tenant with its audit event, in one transaction.
    async fn add_api_key_audited(
        &self,
        key_id: &str,
        tenant_id: &TenantId,
        key_hash: &[u8; 32],
        now: Millis,
        audit: &AuditEvent,
    ) -> StoreResult<()>;
    /// Revokes a live key of this tenant only; `false` if none matched.
    async fn revoke_tenant_api_key(
        &self,
        tenant_id: &TenantId,
        key_id: &str,
        now: Millis,
        audit: &AuditEvent,
    ) -> StoreResult<bool>;
    async fn set_tenant_settings(
        &self,
        tenant_id: &TenantId,
        settings: &TenantSettings,
        audit: &AuditEvent,
    ) -> StoreResult<bool>;
}

/// A value bound to a statement built at run time.
enum Bind {
    Text(String),
    Int(i64),
}

fn summary_from(r: &AnyRow) -> StoreResult<EnrollmentSummary> {
    let status: String = r.try_get("status")?;
    Ok(EnrollmentSummary {
        id: r.try_get("id")?,
        status: EnrollmentStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown enrollment status {status:?}")))?,
        subject_ref: r.try_get("subject_ref")?,
        document: r.try_get("document")?,
        created_at: r.try_get("created_at")?,
    })
}

/// The list query: from the reasons side table when a reason is asked for (its index is ordered
/// like the page), else from the enrollments (the status index when a status is asked for).
fn list_query(tenant_id: &TenantId, f: &EnrollmentFilter) -> (String, Vec<Bind>) {
    fn param(binds: &mut Vec<Bind>, b: Bind) -> String {
        binds.push(b);
        format!("${}", binds.len())
    }
    let mut binds = vec![Bind::Text(tenant_id.as_str().to_string())];
    // `t` is the table the order and the keyset come from.
    let (mut sql, t, id_col) = match &f.reason {
        Some(reason) => {
            let p = param(&mut binds, Bind::Text(reason.clone()));
            (
                format!("SELECT e.id, e.status, e.subject_ref, e.document, e.created_at FROM enrollment_reasons r JOIN enrollments e ON e.id = r.enrollment_id WHERE r.tenant_id = $1 AND r.reason = {p}"),
                "r",
                "enrollment_id",
            )
        }
        None => (
            "SELECT e.id, e.status, e.subject_ref, e.document, e.created_at FROM enrollments e WHERE e.tenant_id = $1".to_string(),
            "e",
            "id",
        ),
    };
    if let Some(status) = f.status {
        let p = param(&mut binds, Bind::Text(status.as_str().to_string()));
        sql.push_str(&format!(" AND e.status = {p}"));
    }
    if let Some(from) = f.from {
        let p = param(&mut binds, Bind::Int(from));
        sql.push_str(&format!(" AND {t}.created_at >= {p}"));
    }
    if let Some(until) = f.until {
        let p = param(&mut binds, Bind::Int(until));
        sql.push_str(&format!(" AND {t}.created_at < {p}"));
    }
    if let Some(subject) = &f.subject_ref {
        let p = param(&mut binds, Bind::Text(subject.clone()));
        sql.push_str(&format!(" AND e.subject_ref = {p}"));
    }
    if let Some((at, id)) = &f.after {
        let a = param(&mut binds, Bind::Int(*at));
        let b = param(&mut binds, Bind::Text(id.as_str().to_string()));
        sql.push_str(&format!(" AND ({t}.created_at, {t}.{id_col}) < ({a}, {b})"));
    }
    let l = param(&mut binds, Bind::Int(f.limit));
    sql.push_str(&format!(
        " ORDER BY {t}.created_at DESC, {t}.{id_col} DESC LIMIT {l}"
    ));
    (sql, binds)
}

fn audit_row_from(r: &AnyRow) -> StoreResult<AuditRow> {
    Ok(AuditRow {
        tenant_id: r.try_get("tenant_id")?,
        seq: r.try_get("seq")?,
        at: r.try_get("at")?,
        event: r.try_get("event")?,
        subject: r.try_get("subject")?,
        details: r.try_get("details")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

#[async_trait::async_trait]
impl ConsoleStore for SqlStore {
    #[tracing::instrument(skip_all)]
    async fn console_enrollments(
        &self,
        tenant_id: &TenantId,
        filter: &EnrollmentFilter,
    ) -> StoreResult<Vec<EnrollmentSummary>> {
        let (sql, binds) = list_query(tenant_id, filter);
        let mut query = sqlx::query(&sql);
        for b in binds {
            query = match b {
                Bind::Text(s) => query.bind(s),
                Bind::Int(i) => query.bind(i),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(summary_from).collect()
    }

    #[tracing::instrument(skip_all)]
    async fn daily_counts(
        &self,
        tenant_id: &TenantId,
        from_day: i64,
    ) -> StoreResult<Vec<(i64, String, i64)>> {
        let rows = sqlx::query("SELECT day, status, n FROM enrollment_daily WHERE tenant_id = $1 AND day >= $2 AND n > 0 ORDER BY day DESC, status")
            .bind(tenant_id)
            .bind(from_day)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("day")?, r.try_get("status")?, r.try_get("n")?)))
            .collect()
    }

    #[tracing::instrument(skip_all)]
    async fn recent_scores(
        &self,
        tenant_id: &TenantId,
        limit: i64,
    ) -> StoreResult<Vec<(f64, f64)>> {
        let (score, threshold) = match self.dialect {
            Dialect::Postgres => (
                "(document::jsonb #>> '{checks,face_match,score}')::double precision",
                "(document::jsonb #>> '{checks,face_match,threshold}')::double precision",
            ),
            Dialect::Sqlite => (
                "CAST(json_extract(document, '$.checks.face_match.score') AS REAL)",
                "CAST(json_extract(document, '$.checks.face_match.threshold') AS REAL)",
            ),
        };
        // The newest `limit` enrollments (a bounded index range), then those with a score.
        let sql = format!(
            "SELECT score, threshold FROM (SELECT {score} AS score, {threshold} AS threshold FROM enrollments WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2) AS recent WHERE score IS NOT NULL AND threshold IS NOT NULL"
        );
        let rows = sqlx::query(&sql)
            .bind(tenant_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("score")?, r.try_get("threshold")?)))
            .collect()
    }

    #[tracing::instrument(skip_all)]
    async fn subject_audit(
        &self,
        tenant_id: &TenantId,
        subject: &str,
    ) -> StoreResult<Vec<LinkedAuditRow>> {
        let rows = sqlx::query("SELECT tenant_id, seq, at, event, subject, details, prev_hash, hash FROM audit_log WHERE tenant_id = $1 AND subject = $2 ORDER BY seq LIMIT 500")
            .bind(tenant_id)
            .bind(subject)
            .fetch_all(&self.pool)
            .await?;
        let mut linked = Vec::with_capacity(rows.len());
        for r in &rows {
            let row = audit_row_from(r)?;
            let predecessor_hash = if row.seq > 1 {
                sqlx::query("SELECT hash FROM audit_log WHERE tenant_id = $1 AND seq = $2")
                    .bind(tenant_id)
                    .bind(row.seq - 1)
                    .fetch_optional(&self.pool)
                    .await?
                    .map(|p| p.try_get::<Vec<u8>, _>("hash"))
                    .transpose()?
            } else {
                Some(audit::GENESIS.to_vec())
            };
            linked.push(LinkedAuditRow {
                row,
                predecessor_hash,
            });
        }
        Ok(linked)
    }

    #[tracing::instrument(skip_all)]
    async fn pending_deliveries(&self, tenant_id: &TenantId, cap: i64) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM (SELECT 1 FROM webhook_deliveries WHERE tenant_id = $1 AND state = 'pending' LIMIT $2) AS p")
            .bind(tenant_id)
            .bind(cap)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    #[tracing::instrument(skip_all)]
    async fn list_api_keys(&self, tenant_id: &TenantId) -> StoreResult<Vec<ApiKeyRow>> {
        let rows = sqlx::query("SELECT id, created_at, revoked_at FROM api_keys WHERE tenant_id = $1 ORDER BY created_at DESC, id")
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ApiKeyRow {
                    id: r.try_get("id")?,
                    created_at: r.try_get("created_at")?,
                    revoked_at: r.try_get("revoked_at")?,
                })
            })
            .collect()
    }

    #[tracing::instrument(skip_all)]
    async fn add_api_key_audited(
        &self,
        key_id: &str,
        tenant_id: &TenantId,
        key_hash: &[u8; 32],
        now: Millis,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, key_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(key_id)
        .bind(tenant_id)
        .bind(key_hash.as_slice())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        audit::append_in(&mut tx, self.dialect, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn revoke_tenant_api_key(
        &self,
        tenant_id: &TenantId,
        key_id: &str,
        now: Millis,
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE tenant_id = $2 AND id = $3 AND revoked_at IS NULL")
            .bind(now)
            .bind(tenant_id)
            .bind(key_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        audit::append_in(&mut tx, self.dialect, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    #[tracing::instrument(skip_all)]
    async fn set_tenant_settings(
        &self,
        tenant_id: &TenantId,
        settings: &TenantSettings,
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        let json =
            serde_json::to_string(settings).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut tx = self.begin().await?;
        let n = sqlx::query("UPDATE tenants SET settings = $1 WHERE id = $2")
            .bind(json)
            .bind(tenant_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        audit::append_in(&mut tx, self.dialect, audit).await?;
        tx.commit().await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_filter_pages_on_the_side_table_and_binds_in_order() {
        let filter = EnrollmentFilter {
            status: Some(EnrollmentStatus::Rejected),
            reason: Some("face_mismatch".into()),
            from: Some(10),
            until: Some(20),
            subject_ref: None,
            after: Some((15, EnrollmentId::new())),
            limit: 50,
        };
        let (sql, binds) = list_query(&TenantId::new(), &filter);
        assert!(sql.contains("FROM enrollment_reasons r JOIN enrollments e"));
        assert!(sql.contains("(r.created_at, r.enrollment_id) < ($6, $7)"));
        assert!(sql.ends_with("ORDER BY r.created_at DESC, r.enrollment_id DESC LIMIT $8"));
        assert_eq!(binds.len(), 8);
        let (sql, binds) = list_query(
            &TenantId::new(),
            &EnrollmentFilter {
                limit: 5,
                ..Default::default()
            },
        );
        assert!(sql.ends_with("ORDER BY e.created_at DESC, e.id DESC LIMIT $2"));
        assert_eq!(binds.len(), 2);
    }
}
