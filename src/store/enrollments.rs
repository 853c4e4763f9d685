//! Enrollments and their face templates: created with the session they consume, re-decided by status
//! checks (compare-and-set on the status), crypto-shredded on deletion.

use super::audit::{self, AuditEvent};
use super::evidence;
use super::gallery::{feed_in, FeedKind, FeedOp};
use super::idempotency::{self, Completion};
use super::sessions;
use super::sql::SqlStore;
use super::webhooks::{self, OutboxEvent};
use super::{StoreError, StoreResult};
use crate::crypto::WrappedKey;
use crate::domain::{EnrollmentId, EnrollmentStatus, Millis, SessionId, TemplateSource, TenantId};
use crate::lockout::Lockout;
use crate::redact::Secret;
use sqlx::any::AnyRow;
use sqlx::Row;

/// A face template as stored: sealed vector plus what it was made with.
#[derive(Debug, Clone)]
pub struct StoredTemplate {
    pub id: String,
    pub source: TemplateSource,
    pub model_id: String,
    pub model_hash: String,
    pub preprocessing_version: String,
    pub sealed: Secret<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct NewEnrollment {
    pub id: EnrollmentId,
    pub tenant_id: TenantId,
    pub session_id: SessionId,
    pub subject_ref: Option<String>,
    pub status: EnrollmentStatus,
    /// The public decision record (checks, reasons): no personal data.
    pub document: String,
    pub identity_sealed: Option<Vec<u8>>,
    pub revocation_sealed: Option<Vec<u8>>,
    pub wrapped_key: Option<WrappedKey>,
    pub templates: Vec<StoredTemplate>,
    /// The review evidence of an enrollment decided `in_review` (issue 22); empty otherwise.
    pub evidence: Vec<super::evidence::SealedEvidence>,
    pub created_at: Millis,
}

#[derive(Debug, Clone)]
pub struct EnrollmentRow {
    pub id: EnrollmentId,
    pub tenant_id: TenantId,
    pub session_id: SessionId,
    pub subject_ref: Option<String>,
    pub status: EnrollmentStatus,
    pub document: String,
    pub identity_sealed: Option<Secret<Vec<u8>>>,
    pub revocation_sealed: Option<Secret<Vec<u8>>>,
    pub wrapped_key: Option<WrappedKey>,
    pub failed_count: i64,
    pub failure_window_start: Option<Millis>,
    pub locked_until: Option<Millis>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl EnrollmentRow {
    /// The lockout counters as stored.
    pub fn lockout(&self) -> Lockout {
        Lockout {
            failed_count: self.failed_count,
            failure_window_start: self.failure_window_start,
            locked_until: self.locked_until,
        }
    }
}

/// A status check's result for one enrollment: from the status it read to the one it decided, with the
/// re-rendered decision record.
#[derive(Debug, Clone, Copy)]
pub struct StatusChange<'a> {
    pub from: EnrollmentStatus,
    pub to: EnrollmentStatus,
    pub document: &'a str,
}

#[async_trait::async_trait]
pub trait EnrollmentStore: Send + Sync {
    /// One transaction: consume the session (fails with `SessionConsumed` if it was), insert the
    /// enrollment and its templates, append the audit event, store the idempotent answer if any and
    /// the outbox events.
    async fn create_enrollment(
        &self,
        enrollment: &NewEnrollment,
        audit: &AuditEvent,
        answer: Option<&Completion>,
        events: &[OutboxEvent],
    ) -> StoreResult<()>;
    async fn get_enrollment(
        &self,
        tenant_id: &TenantId,
        id: &EnrollmentId,
    ) -> StoreResult<Option<EnrollmentRow>>;
    async fn list_enrollments(
        &self,
        tenant_id: &TenantId,
        subject_ref: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<EnrollmentRow>>;
    async fn templates(
        &self,
        tenant_id: &TenantId,
        enrollment_id: &EnrollmentId,
    ) -> StoreResult<Vec<StoredTemplate>>;
    /// Compare-and-set: applies `change` only if the enrollment is still in `change.from` (and not
    /// deleted), with the audit event and the outbox events in the same transaction. `false`: nothing
    /// was written (deleted, or a concurrent check changed the status first: read it again).
    async fn update_enrollment_status(
        &self,
        tenant_id: &TenantId,
        id: &EnrollmentId,
        change: &StatusChange<'_>,
        audit: &AuditEvent,
        now: Millis,
        events: &[OutboxEvent],
    ) -> StoreResult<bool>;
    /// Crypto-shreds: drops the wrapped data key, the sealed records and the templates; keeps a
    /// tombstone row and appends the audit event. Returns false if there was nothing to delete.
    async fn delete_enrollment(
        &self,
        tenant_id: &TenantId,
        id: &EnrollmentId,
        audit: &AuditEvent,
        now: Millis,
        events: &[OutboxEvent],
    ) -> StoreResult<bool>;
}

pub(super) const ENROLLMENT_COLUMNS: &str = "id, tenant_id, session_id, subject_ref, status, document, identity_sealed, revocation_sealed, kek_id, wrapped_dek, failed_count, failure_window_start, locked_until, created_at, updated_at";

pub(super) fn enrollment_from(row: &AnyRow) -> StoreResult<EnrollmentRow> {
    let status: String = row.try_get("status")?;
    let kek_id: Option<String> = row.try_get("kek_id")?;
    let wrapped: Option<Vec<u8>> = row.try_get("wrapped_dek")?;
    Ok(EnrollmentRow {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        session_id: row.try_get("session_id")?,
        subject_ref: row.try_get("subject_ref")?,
        status: EnrollmentStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown enrollment status {status:?}")))?,
        document: row.try_get("document")?,
        identity_sealed: row
            .try_get::<Option<Vec<u8>>, _>("identity_sealed")?
            .map(Secret::new),
        revocation_sealed: row
            .try_get::<Option<Vec<u8>>, _>("revocation_sealed")?
            .map(Secret::new),
        wrapped_key: match (kek_id, wrapped) {
            (Some(kek_id), Some(blob)) => Some(WrappedKey { kek_id, blob }),
            _ => None,
        },
        failed_count: row.try_get("failed_count")?,
        failure_window_start: row.try_get("failure_window_start")?,
        locked_until: row.try_get("locked_until")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn template_from(r: &AnyRow) -> StoreResult<StoredTemplate> {
    let source: String = r.try_get("source")?;
    Ok(StoredTemplate {
        id: r.try_get("id")?,
        source: TemplateSource::parse(&source)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown template source {source:?}")))?,
        model_id: r.try_get("model_id")?,
        model_hash: r.try_get("model_hash")?,
        preprocessing_version: r.try_get("preprocessing_version")?,
        sealed: Secret::new(r.try_get("sealed")?),
    })
}

#[async_trait::async_trait]
impl EnrollmentStore for SqlStore {
    #[tracing::instrument(skip_all)]
    async fn create_enrollment(
        &self,
        e: &NewEnrollment,
        audit: &AuditEvent,
        answer: Option<&Completion>,
        events: &[OutboxEvent],
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sessions::consume_in(&mut tx, &e.tenant_id, &e.session_id, e.created_at).await?;
        let (kek_id, wrapped) = match &e.wrapped_key {
            Some(w) => (Some(w.kek_id.clone()), Some(w.blob.clone())),
            None => (None, None),
        };
        sqlx::query("INSERT INTO enrollments (id, tenant_id, session_id, subject_ref, status, document, identity_sealed, revocation_sealed, kek_id, wrapped_dek, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)")
            .bind(&e.id)
            .bind(&e.tenant_id)
            .bind(&e.session_id)
            .bind(&e.subject_ref)
            .bind(e.status.as_str())
            .bind(&e.document)
            .bind(&e.identity_sealed)
            .bind(&e.revocation_sealed)
            .bind(kek_id)
            .bind(wrapped)
            .bind(e.created_at)
            .execute(&mut *tx)
            .await?;
        for t in &e.templates {
            sqlx::query("INSERT INTO face_templates (id, tenant_id, enrollment_id, source, model_id, model_hash, preprocessing_version, sealed, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
                .bind(&t.id)
                .bind(&e.tenant_id)
                .bind(&e.id)
                .bind(t.source.as_str())
                .bind(&t.model_id)
                .bind(&t.model_hash)
                .bind(&t.preprocessing_version)
                .bind(t.sealed.expose().as_slice())
                .bind(e.created_at)
                .execute(&mut *tx)
                .await?;
        }
        evidence::evidence_in(&mut tx, &e.tenant_id, &e.id, &e.evidence, e.created_at).await?;
        if let Some(answer) = answer {
            idempotency::complete_in(&mut tx, answer, e.created_at).await?;
        }
        webhooks::outbox_in(&mut tx, events).await?;
        audit::append_in(&mut tx, self.dialect, audit).await?;
        if !e.templates.is_empty() {
            let (tenant, op) = (&e.tenant_id, FeedOp::Upsert);
            feed_in(
                &mut tx,
                self.dialect,
                tenant,
                FeedKind::Enrollment,
                e.id.as_str(),
                op,
                e.created_at,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn get_enrollment(
        &self,
        tenant_id: &TenantId,
        id: &EnrollmentId,
    ) -> StoreResult<Option<EnrollmentRow>> {
        let sql = format!("SELECT {ENROLLMENT_COLUMNS} FROM enrollments WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL");
        let row = sqlx::query(&sql)
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(enrollment_from).transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn list_enrollments(
        &self,
        tenant_id: &TenantId,
        subject_ref: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<EnrollmentRow>> {
        let sql = format!("SELECT {ENROLLMENT_COLUMNS} FROM enrollments WHERE tenant_id = $1 AND deleted_at IS NULL AND ($2 IS NULL OR subject_ref = $2) ORDER BY created_at DESC, id LIMIT $3");
        let rows = sqlx::query(&sql)
            .bind(tenant_id)
            .bind(subject_ref)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(enrollment_from).collect()
    }

    #[tracing::instrument(skip_all)]
    async fn templates(
        &self,
        tenant_id: &TenantId,
        enrollment_id: &EnrollmentId,
    ) -> StoreResult<Vec<StoredTemplate>> {
        let rows = sqlx::query("SELECT id, source, model_id, model_hash, preprocessing_version, sealed FROM face_templates WHERE tenant_id = $1 AND enrollment_id = $2 ORDER BY source, id")
            .bind(tenant_id)
            .bind(enrollment_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(template_from).collect()
    }

    #[tracing::instrument(skip_all)]
    async fn update_enrollment_status(
        &self,
        tenant_id: &TenantId,
        id: &EnrollmentId,
        change: &StatusChange<'_>,
        audit: &AuditEvent,
        now: Millis,
        events: &[OutboxEvent],
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("UPDATE enrollments SET status = $1, document = $2, updated_at = $3 WHERE tenant_id = $4 AND id = $5 AND deleted_at IS NULL AND status = $6")
            .bind(change.to.as_str())
            .bind(change.document)
            .bind(now)
            .bind(tenant_id)
            .bind(id)
            .bind(change.from.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        webhooks::outbox_in(&mut tx, events).await?;
        audit::append_in(&mut tx, self.dialect, audit).await?;
        // The status decides whether the duplicate check counts the enrollment: replicas re-read it.
        feed_in(
            &mut tx,
            self.dialect,
            tenant_id,
            FeedKind::Enrollment,
            id.as_str(),
            FeedOp::Upsert,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    #[tracing::instrument(skip_all)]
    async fn delete_enrollment(
        &self,
        tenant_id: &TenantId,
        id: &EnrollmentId,
        audit: &AuditEvent,
        now: Millis,
        events: &[OutboxEvent],
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("UPDATE enrollments SET status = 'deleted', document = '{}', subject_ref = NULL, identity_sealed = NULL, revocation_sealed = NULL, kek_id = NULL, wrapped_dek = NULL, deleted_at = $1, updated_at = $1 WHERE tenant_id = $2 AND id = $3 AND deleted_at IS NULL")
            .bind(now)
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        for statement in [
            "DELETE FROM face_templates WHERE tenant_id = $1 AND enrollment_id = $2",
            "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND (resource_id = $2 OR sealed_under = $2)",
            // What the RP said about the person when opening the sessions goes with the enrollment.
            "UPDATE sessions SET subject_ref = NULL, context = NULL WHERE tenant_id = $1 AND (enrollment_id = $2 OR id IN (SELECT session_id FROM enrollments WHERE tenant_id = $1 AND id = $2))",
        ] {
            sqlx::query(statement)
                .bind(tenant_id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        // Review evidence and approvals (notes sealed under the shredded key) go with it.
        evidence::forget_in(&mut tx, tenant_id, id).await?;
        webhooks::outbox_in(&mut tx, events).await?;
        audit::append_in(&mut tx, self.dialect, audit).await?;
        feed_in(
            &mut tx,
            self.dialect,
            tenant_id,
            FeedKind::Enrollment,
            id.as_str(),
            FeedOp::Remove,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}
