//! Review (issue 22): the queue of enrollments `in_review`, their sealed evidence, the approvals of
//! the four-eyes rule, and the decision, written exactly once by a compare-and-set on
//! `status = 'in_review'` in one transaction with the evidence's deletion, the audit event and the
//! outbox events.

use super::audit::{self, AuditEvent};
use super::enrollments::{enrollment_from, ENROLLMENT_COLUMNS};
use super::evidence::forget_in;
use super::gallery::{feed_in, FeedKind, FeedOp};
use super::sql::SqlStore;
use super::webhooks::{self, OutboxEvent};
use super::{EnrollmentRow, StoreError, StoreResult};
use crate::domain::review::{EvidenceKind, ReviewReasonCode, Reviewer};
use crate::domain::{EnrollmentId, EnrollmentStatus, Millis, TenantId};
use crate::redact::Secret;
use sqlx::any::AnyRow;
use sqlx::Row;

/// An approve of an enrollment in review, as stored.
#[derive(Debug, Clone)]
pub struct ApprovalRow {
    pub reviewer: Reviewer,
    pub reason_code: ReviewReasonCode,
    /// Sealed under the enrollment's data key.
    pub note_sealed: Option<Secret<Vec<u8>>>,
    pub created_at: Millis,
}

/// What [`ReviewStore::record_approval`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalWrite {
    /// Recorded; `approvers` distinct reviewers have approved now (this one included).
    Recorded { approvers: usize },
    /// This reviewer had already approved: nothing written.
    AlreadyApproved,
    /// The enrollment is no longer in review (its status now): nothing written.
    NotInReview(EnrollmentStatus),
}

/// The decision on an enrollment in review, as the use case decided it.
#[derive(Debug, Clone)]
pub struct ReviewWrite<'a> {
    pub to: EnrollmentStatus,
    /// The re-rendered public decision record.
    pub document: &'a str,
    /// The deciding approve, kept with the others (approve only).
    pub approval: Option<&'a ApprovalRow>,
    /// Crypto-shred the identity, the certificate record and the templates (reject).
    pub shred: bool,
    pub now: Millis,
}

#[async_trait::async_trait]
pub trait ReviewStore: Send + Sync {
    /// The tenant's enrollments in review, oldest first, after the keyset `after` (created_at, id).
    async fn list_in_review(
        &self,
        tenant_id: &TenantId,
        after: Option<(Millis, &EnrollmentId)>,
        limit: i64,
    ) -> StoreResult<Vec<EnrollmentRow>>;
    /// Which photos of the enrollment's evidence are still held.
    async fn evidence_kinds(
        &self,
        tenant_id: &TenantId,
        id: &EnrollmentId,
    ) -> StoreResult<Vec<EvidenceKind>>;
    /// One sealed photo, with `audit` (who saw it) appended in the same transaction; `None` (and no
    /// audit event) once it is shredded.
    async fn view_evidence(
        &self,
        tenant_id: &TenantId,
        id: &EnrollmentId,
        kind: EvidenceKind,
        audit: &AuditEvent,
    ) -> StoreResult<Option<Secret<Vec<u8>>>>;
    /// The approvals so far, oldest first.
    async fn approvals(
        &self,
        tenant_id: &TenantId,
        id: &EnrollmentId,
    ) -> StoreResult<Vec<ApprovalRow>>;
    /// A first approve under the four-eyes rule: recorded only while the enrollment is in review and
    /// this reviewer has not approved yet, with its audit event. Concurrent approvals of one
    /// enrollment are serialised on its row, so the count each one returns includes the others.
    async fn record_approval(
        &self,
        tenant_id: &TenantId,
        id: &EnrollmentId,
        approval: &ApprovalRow,
        audit: &AuditEvent,
    ) -> StoreResult<ApprovalWrite>;
    /// Compare-and-set on `status = 'in_review'`: the status and record, the evidence deleted, the
    /// deciding approval kept (approve) or every approval deleted with the shredded records (reject),
    /// the audit and outbox events and the gallery feed, in one transaction. `Err(status)` (nothing
    /// written): the enrollment was no longer in review; `None` if it does not exist (any more).
    async fn decide_review(
        &self,
        tenant_id: &TenantId,
        id: &EnrollmentId,
        write: &ReviewWrite<'_>,
        audit: &AuditEvent,
        events: &[OutboxEvent],
    ) -> StoreResult<Result<(), Option<EnrollmentStatus>>>;
}

fn approval_from(r: &AnyRow) -> StoreResult<ApprovalRow> {
    let reviewer: String = r.try_get("reviewer")?;
    let code: String = r.try_get("reason_code")?;
    Ok(ApprovalRow {
        reviewer: serde_json::from_str(&reviewer)
            .map_err(|e| StoreError::Corrupt(format!("review approval reviewer: {e}")))?,
        reason_code: serde_json::from_value(serde_json::Value::String(code.clone()))
            .map_err(|_| StoreError::Corrupt(format!("review reason code {code:?}")))?,
        note_sealed: r
            .try_get::<Option<Vec<u8>>, _>("note_sealed")?
            .map(Secret::new),
        created_at: r.try_get("created_at")?,
    })
}

async fn insert_approval(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &TenantId,
    id: &EnrollmentId,
    a: &ApprovalRow,
) -> StoreResult<()> {
    let reviewer =
        serde_json::to_string(&a.reviewer).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    sqlx::query("INSERT INTO review_approvals (tenant_id, enrollment_id, reviewer_key, reviewer, reason_code, note_sealed, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(tenant_id)
        .bind(id)
        .bind(a.reviewer.key())
        .bind(reviewer)
        .bind(a.reason_code.as_str())
        .bind(a.note_sealed.as_ref().map(|n| n.expose().clone()))
        .bind(a.created_at)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Locks the enrollment's row until the transaction ends and reads its status (`None`: no such
/// live enrollment).
async fn lock_status(
    conn: &mut sqlx::AnyConnection,
    store: &SqlStore,
    tenant_id: &TenantId,
    id: &EnrollmentId,
) -> StoreResult<Option<EnrollmentStatus>> {
    let sql = format!(
        "SELECT status FROM enrollments WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL{}",
        store.dialect.for_update()
    );
    let row = sqlx::query(&sql)
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| {
        let s: String = r.try_get("status")?;
        EnrollmentStatus::parse(&s)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown enrollment status {s:?}")))
    })
    .transpose()
}

#[async_trait::async_trait]
impl ReviewStore for SqlStore {
    #[tracing::instrument(skip_all)]
    async fn list_in_review(
        &self,
        tenant_id: &TenantId,
        after: Option<(Millis, &EnrollmentId)>,
        limit: i64,
    ) -> StoreResult<Vec<EnrollmentRow>> {
        let (at, id) = match after {
            Some((at, id)) => (at, id.as_str().to_string()),
            None => (Millis::MIN, String::new()),
        };
        let sql = format!("SELECT {ENROLLMENT_COLUMNS} FROM enrollments WHERE tenant_id = $1 AND status = 'in_review' AND deleted_at IS NULL AND (created_at > $2 OR (created_at = $2 AND id > $3)) ORDER BY created_at, id LIMIT $4");
        let rows = sqlx::query(&sql)
            .bind(tenant_id)
            .bind(at)
            .bind(id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(enrollment_from).collect()
    }

    #[tracing::instrument(skip_all)]
    async fn evidence_kinds(
        &self,
        tenant_id: &TenantId,
        id: &EnrollmentId,
    ) -> StoreResult<Vec<EvidenceKind>> {
        let rows = sqlx::query("SELECT kind FROM review_evidence WHERE tenant_id = $1 AND enrollment_id = $2 ORDER BY kind")
            .bind(tenant_id)
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                EvidenceKind::parse(&kind)
                    .ok_or_else(|| StoreError::Corrupt(format!("evidence kind {kind:?}")))
            })
            .collect()
    }

    #[tracing::instrument(skip_all)]
    async fn view_evidence(
        &self,
        tenant_id: &TenantId,
        id: &EnrollmentId,
        kind: EvidenceKind,
        audit: &AuditEvent,
    ) -> StoreResult<Option<Secret<Vec<u8>>>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query("SELECT sealed FROM review_evidence WHERE tenant_id = $1 AND enrollment_id = $2 AND kind = $3")
            .bind(tenant_id)
            .bind(id)
            .bind(kind.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let sealed: Vec<u8> = row.try_get("sealed")?;
        audit::append_in(&mut tx, self.dialect, audit).await?;
        tx.commit().await?;
        Ok(Some(Secret::new(sealed)))
    }

    #[tracing::instrument(skip_all)]
    async fn approvals(
        &self,
        tenant_id: &TenantId,
        id: &EnrollmentId,
    ) -> StoreResult<Vec<ApprovalRow>> {
        let rows = sqlx::query("SELECT reviewer, reason_code, note_sealed, created_at FROM review_approvals WHERE tenant_id = $1 AND enrollment_id = $2 ORDER BY created_at, reviewer_key")
            .bind(tenant_id)
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(approval_from).collect()
    }

    #[tracing::instrument(skip_all)]
    async fn record_approval(
        &self,
        tenant_id: &TenantId,
        id: &EnrollmentId,
        approval: &ApprovalRow,
        audit: &AuditEvent,
    ) -> StoreResult<ApprovalWrite> {
        let mut tx = self.begin().await?;
        match lock_status(&mut tx, self, tenant_id, id).await? {
            Some(EnrollmentStatus::InReview) => {}
            Some(other) => return Ok(ApprovalWrite::NotInReview(other)),
            None => return Ok(ApprovalWrite::NotInReview(EnrollmentStatus::Deleted)),
        }
        let keys: Vec<String> = sqlx::query(
            "SELECT reviewer_key FROM review_approvals WHERE tenant_id = $1 AND enrollment_id = $2",
        )
        .bind(tenant_id)
        .bind(id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get("reviewer_key"))
        .collect::<Result<_, _>>()?;
        let key = approval.reviewer.key();
        if keys.contains(&key) {
            return Ok(ApprovalWrite::AlreadyApproved);
        }
        insert_approval(&mut tx, tenant_id, id, approval).await?;
        audit::append_in(&mut tx, self.dialect, audit).await?;
        tx.commit().await?;
        Ok(ApprovalWrite::Recorded {
            approvers: keys.len() + 1,
        })
    }

    #[tracing::instrument(skip_all)]
    async fn decide_review(
        &self,
        tenant_id: &TenantId,
        id: &EnrollmentId,
        w: &ReviewWrite<'_>,
        audit: &AuditEvent,
        events: &[OutboxEvent],
    ) -> StoreResult<Result<(), Option<EnrollmentStatus>>> {
        let mut tx = self.begin().await?;
        let sql = if w.shred {
            "UPDATE enrollments SET status = $1, document = $2, updated_at = $3, identity_sealed = NULL, revocation_sealed = NULL, kek_id = NULL, wrapped_dek = NULL WHERE tenant_id = $4 AND id = $5 AND deleted_at IS NULL AND status = 'in_review'"
        } else {
            "UPDATE enrollments SET status = $1, document = $2, updated_at = $3 WHERE tenant_id = $4 AND id = $5 AND deleted_at IS NULL AND status = 'in_review'"
        };
        let n = sqlx::query(sql)
            .bind(w.to.as_str())
            .bind(w.document)
            .bind(w.now)
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            let now = lock_status(&mut tx, self, tenant_id, id).await?;
            return Ok(Err(now));
        }
        sqlx::query("DELETE FROM review_evidence WHERE tenant_id = $1 AND enrollment_id = $2")
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if w.shred {
            forget_in(&mut tx, tenant_id, id).await?;
            for statement in [
                "DELETE FROM face_templates WHERE tenant_id = $1 AND enrollment_id = $2",
                // A stored answer sealed under the shredded key could never be replayed again.
                "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND sealed_under = $2",
            ] {
                sqlx::query(statement)
                    .bind(tenant_id)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        if let Some(approval) = w.approval {
            insert_approval(&mut tx, tenant_id, id, approval).await?;
        }
        webhooks::outbox_in(&mut tx, events).await?;
        audit::append_in(&mut tx, self.dialect, audit).await?;
        // Approved: now in the replicas' galleries; rejected: never again.
        let op = if w.shred {
            FeedOp::Remove
        } else {
            FeedOp::Upsert
        };
        feed_in(
            &mut tx,
            self.dialect,
            tenant_id,
            FeedKind::Enrollment,
            id.as_str(),
            op,
            w.now,
        )
        .await?;
        tx.commit().await?;
        Ok(Ok(()))
    }
}
