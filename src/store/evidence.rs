//! The rows that hold what a review needs (issue 22), as the enrollment's own writes touch them: the
//! evidence inserted with a new enrollment, the evidence and approvals deleted with its shredding,
//! and the evidence past its retention cap. The review itself is in `reviews`.

use super::StoreResult;
use crate::domain::review::EvidenceKind;
use crate::domain::{EnrollmentId, Millis, TenantId};
use crate::redact::Secret;
use sqlx::AnyConnection;

/// One photo of the review evidence, sealed under the enrollment's data key.
#[derive(Debug, Clone)]
pub struct SealedEvidence {
    pub kind: EvidenceKind,
    pub sealed: Secret<Vec<u8>>,
    /// The retention cap: the retention job deletes it then if no decision did before.
    pub expires_at: Millis,
}

/// Deletes an enrollment's evidence and approvals (with its shredding or deletion).
pub(super) async fn forget_in(
    conn: &mut AnyConnection,
    tenant_id: &TenantId,
    id: &EnrollmentId,
) -> StoreResult<()> {
    for statement in [
        "DELETE FROM review_evidence WHERE tenant_id = $1 AND enrollment_id = $2",
        "DELETE FROM review_approvals WHERE tenant_id = $1 AND enrollment_id = $2",
    ] {
        sqlx::query(statement)
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Inserts a new enrollment's evidence (with the enrollment).
pub(super) async fn evidence_in(
    conn: &mut AnyConnection,
    tenant_id: &TenantId,
    id: &EnrollmentId,
    evidence: &[SealedEvidence],
    now: Millis,
) -> StoreResult<()> {
    for e in evidence {
        sqlx::query("INSERT INTO review_evidence (tenant_id, enrollment_id, kind, sealed, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(tenant_id)
            .bind(id)
            .bind(e.kind.as_str())
            .bind(e.sealed.expose().as_slice())
            .bind(now)
            .bind(e.expires_at)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Deletes the tenant's evidence whose retention cap passed; returns how many photos.
pub(super) async fn expire_evidence_in(
    conn: &mut AnyConnection,
    tenant_id: &TenantId,
    now: Millis,
) -> StoreResult<u64> {
    Ok(
        sqlx::query("DELETE FROM review_evidence WHERE tenant_id = $1 AND expires_at <= $2")
            .bind(tenant_id)
            .bind(now)
            .execute(&mut *conn)
            .await?
            .rows_affected(),
    )
}
