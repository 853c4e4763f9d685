//! Transaction-time verifications and the lockout counters they move. The lockout rule is not here
//! (see [`crate::lockout`], applied by the use case): the store writes the counters it is given, by
//! compare-and-set, with the verification.

use super::audit::{self, AuditEvent};
use super::idempotency::{self, Completion};
use super::sessions;
use super::sql::SqlStore;
use super::webhooks::{self, OutboxEvent};
use super::StoreResult;
use crate::domain::{
    EnrollmentId, Millis, SessionId, TenantId, VerificationDecision, VerificationId,
};
use crate::lockout::Lockout;

#[derive(Debug, Clone)]
pub struct NewVerification {
    pub id: VerificationId,
    pub tenant_id: TenantId,
    pub enrollment_id: EnrollmentId,
    pub session_id: Option<SessionId>,
    pub decision: VerificationDecision,
    pub document: String,
    pub created_at: Millis,
}

/// A verification with the lockout counters the use case computed for it (see
/// [`crate::lockout::LockoutPolicy::next`]). The store decides nothing: it writes `next` only if the
/// counters are still `seen` (compare-and-set), together with everything else, in one transaction.
#[derive(Debug, Clone, Copy)]
pub struct VerificationWrite<'a> {
    pub verification: &'a NewVerification,
    /// The counters `next` was computed from.
    pub seen: Lockout,
    pub next: Lockout,
    /// Appended to the audit chain in this order.
    pub audit: &'a [AuditEvent],
    pub answer: Option<&'a Completion>,
    pub events: &'a [OutboxEvent],
}

#[async_trait::async_trait]
pub trait VerificationStore: Send + Sync {
    /// One transaction: compare-and-set of the enrollment's lockout counters from `w.seen` to
    /// `w.next` (the row is locked by the update until commit), then consume the session if any,
    /// insert the verification, store the idempotent answer, append the audit events and the
    /// outbox events. `false`: nothing was written (the counters changed since they were read, or
    /// the enrollment was deleted): read them again and recompute.
    async fn record_verification(&self, w: &VerificationWrite<'_>) -> StoreResult<bool>;
}

#[async_trait::async_trait]
impl VerificationStore for SqlStore {
    #[tracing::instrument(skip_all)]
    async fn record_verification(&self, w: &VerificationWrite<'_>) -> StoreResult<bool> {
        let v = w.verification;
        let now = v.created_at;
        let mut tx = self.begin().await?;
        let n = sqlx::query("UPDATE enrollments SET failed_count = $1, failure_window_start = $2, locked_until = $3, updated_at = $4 WHERE tenant_id = $5 AND id = $6 AND deleted_at IS NULL AND failed_count = $7 AND failure_window_start IS NOT DISTINCT FROM $8 AND locked_until IS NOT DISTINCT FROM $9")
            .bind(w.next.failed_count)
            .bind(w.next.failure_window_start)
            .bind(w.next.locked_until)
            .bind(now)
            .bind(&v.tenant_id)
            .bind(&v.enrollment_id)
            .bind(w.seen.failed_count)
            .bind(w.seen.failure_window_start)
            .bind(w.seen.locked_until)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        if let Some(session_id) = &v.session_id {
            sessions::consume_in(&mut tx, &v.tenant_id, session_id, now).await?;
        }
        sqlx::query("INSERT INTO verifications (id, tenant_id, enrollment_id, session_id, decision, document, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(&v.id)
            .bind(&v.tenant_id)
            .bind(&v.enrollment_id)
            .bind(&v.session_id)
            .bind(v.decision.as_str())
            .bind(&v.document)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        if let Some(answer) = w.answer {
            idempotency::complete_in(&mut tx, answer, now).await?;
        }
        audit::append_all_in(&mut tx, self.dialect, w.audit).await?;
        webhooks::outbox_in(&mut tx, w.events).await?;
        tx.commit().await?;
        Ok(true)
    }
}
