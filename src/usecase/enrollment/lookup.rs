//! Reading and deleting stored enrollments: `GET`, the list, and crypto-shredding.

use super::record::render;
use super::view::{EnrollmentDocument, EnrollmentList};
use crate::domain::{now_millis, EnrollmentId, EnrollmentStatus, TenantId};
use crate::store::AuditEvent;
use crate::usecase::webhooks;
use crate::usecase::{Services, UseCaseError, UseCaseResult};

/// `GET /v1/enrollments/{id}`.
pub async fn get(
    svc: &Services,
    tenant_id: &TenantId,
    id: &EnrollmentId,
) -> UseCaseResult<EnrollmentDocument> {
    let row = svc
        .store
        .get_enrollment(tenant_id, id)
        .await?
        .ok_or(UseCaseError::NotFound)?;
    render(svc, &row)
}

/// Most enrollments one list returns.
pub const MAX_LIST_LIMIT: i64 = 200;

/// `GET /v1/enrollments`: newest first, at most `limit` (1–200, default 50).
pub async fn list(
    svc: &Services,
    tenant_id: &TenantId,
    subject_ref: Option<&str>,
    limit: Option<i64>,
) -> UseCaseResult<EnrollmentList> {
    let limit = limit.unwrap_or(50);
    if !(1..=MAX_LIST_LIMIT).contains(&limit) {
        return Err(UseCaseError::Malformed(format!(
            "limit must be between 1 and {MAX_LIST_LIMIT}"
        )));
    }
    let rows = svc
        .store
        .list_enrollments(tenant_id, subject_ref, limit)
        .await?;
    Ok(EnrollmentList {
        enrollments: rows
            .iter()
            .map(|r| render(svc, r))
            .collect::<UseCaseResult<_>>()?,
    })
}

/// `DELETE /v1/enrollments/{id}`: crypto-shred, keep a tombstone and the audit event.
pub async fn delete(svc: &Services, tenant_id: &TenantId, id: &EnrollmentId) -> UseCaseResult<()> {
    delete_by(svc, tenant_id, id, "request").await
}

/// Crypto-shreds an enrollment, asked by the RP (`request`) or by the retention job (`retention`).
pub async fn delete_by(
    svc: &Services,
    tenant_id: &TenantId,
    id: &EnrollmentId,
    cause: &'static str,
) -> UseCaseResult<()> {
    let audit = AuditEvent::new(
        tenant_id,
        crate::domain::AuditKind::EnrollmentDeleted,
        id.as_str(),
        serde_json::json!({"shredded": true, "cause": cause}),
    );
    let events = [webhooks::event(
        tenant_id,
        webhooks::EventType::EnrollmentDeleted,
        serde_json::json!({"enrollment_id": id, "status": EnrollmentStatus::Deleted, "cause": cause}),
    )];
    if svc
        .store
        .delete_enrollment(tenant_id, id, &audit, now_millis(), &events)
        .await?
    {
        // Never found again here from now on; the other replicas follow the feed.
        svc.faces.remove_face(tenant_id, id.as_str());
        Ok(())
    } else {
        Err(UseCaseError::NotFound)
    }
}
