//! Status checks (現況確認): the revocation check of the API, how an answer changes an enrollment's
//! status, and the on-demand check of a stored enrollment.

use super::enrollment::{open_certificate, reason_of, RevocationCheck, StoredDecision};
use super::{Services, UseCaseError, UseCaseResult};
use crate::domain::{now_millis, EnrollmentId, EnrollmentStatus, Reason, TenantId};
use crate::jlis::ValidityReport;
use crate::store::{AuditEvent, StatusChange};
use serde::{Deserialize, Serialize};

pub use super::enrollment::{RevocationResult, SealedCertificate};

/// The status after a status check's answer. Revocation is final; `unknown` is visible
/// (`status_unknown`) and lifts when a later check answers `good`.
pub fn after_check(current: EnrollmentStatus, report: &ValidityReport) -> EnrollmentStatus {
    use EnrollmentStatus::*;
    match (current, reason_of(report)) {
        (Revoked | IdentityChanged | Rejected | Deleted, _) => current,
        // In review (issue 22): a revocation ends the review (a decision then finds it decided);
        // anything else leaves it to the reviewer.
        (InReview, Some(Reason::IdentityChanged)) => IdentityChanged,
        (InReview, Some(Reason::CertificateRevoked)) => Revoked,
        (InReview, _) => InReview,
        (_, Some(Reason::IdentityChanged)) => IdentityChanged,
        (_, Some(Reason::CertificateRevoked)) => Revoked,
        (_, Some(_)) => StatusUnknown,
        (Verified | StatusUnknown, None) => Verified,
    }
}

/// The answer of `POST /v1/enrollments/{id}/status-check`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusCheckDocument {
    pub id: EnrollmentId,
    pub status: EnrollmentStatus,
    pub revocation: RevocationCheck,
}

/// Who asked for a status check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The RP, `POST /v1/enrollments/{id}/status-check`.
    Manual,
    /// The scheduler (`[status_checks]`).
    Scheduled,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Scheduled => "scheduled",
        }
    }
}

/// A fresh validity check of a stored enrollment's certificate, asked by the RP.
pub async fn check_enrollment(
    svc: &Services,
    tenant_id: &crate::domain::TenantId,
    id: &EnrollmentId,
) -> UseCaseResult<StatusCheckDocument> {
    check_enrollment_by(svc, tenant_id, id, Trigger::Manual).await
}

/// The status check of both the RP's request and the scheduler: the same transitions, the same
/// audit event, and `enrollment.status_changed` in the same transaction when the status changes.
pub async fn check_enrollment_by(
    svc: &Services,
    tenant_id: &TenantId,
    id: &EnrollmentId,
    trigger: Trigger,
) -> UseCaseResult<StatusCheckDocument> {
    let mut row = svc
        .store
        .get_enrollment(tenant_id, id)
        .await?
        .ok_or(UseCaseError::NotFound)?;
    let Some(certificate) = open_certificate(svc, &row)? else {
        return Err(UseCaseError::EnrollmentInactive);
    };
    let report = svc
        .validity
        .check(&certificate.target)
        .await
        .map_err(|e| UseCaseError::validity_unavailable(&e))?;
    let check = RevocationCheck::from_report(&report);
    // The answer is applied to the status as it is when we write: a concurrent check (manual and
    // scheduled, or two replicas) that wrote first is read again, so a change is recorded, audited
    // and signalled once.
    for _ in 0..MAX_STATUS_WRITE_ATTEMPTS {
        let status = after_check(row.status, &report);
        let mut record = StoredDecision::from_row(&row)?;
        record.checks.revocation = check.clone();
        match reason_of(&report) {
            Some(reason) => record.reasons.push(reason),
            None => record.reasons.remove(Reason::CertificateStatusUnknown),
        }
        let audit = AuditEvent::new(
            &row.tenant_id,
            crate::domain::AuditKind::EnrollmentStatusChecked,
            row.id.as_str(),
            serde_json::json!({"result": check.result, "reason": check.reason, "status": status,
                               "previous_status": row.status, "trigger": trigger.as_str()}),
        );
        let events = super::webhooks::status_changed(
            &row.tenant_id,
            &row.id,
            row.status,
            status,
            reason_of(&report),
            trigger.as_str(),
        );
        let document = record.to_json()?;
        let change = StatusChange {
            from: row.status,
            to: status,
            document: &document,
        };
        if svc
            .store
            .update_enrollment_status(
                &row.tenant_id,
                &row.id,
                &change,
                &audit,
                now_millis(),
                &events,
            )
            .await?
        {
            return Ok(StatusCheckDocument {
                id: id.clone(),
                status,
                revocation: check,
            });
        }
        // Deleted while we asked J-LIS (404), or changed by a concurrent check: read it again.
        row = svc
            .store
            .get_enrollment(tenant_id, id)
            .await?
            .ok_or(UseCaseError::NotFound)?;
    }
    Err(UseCaseError::internal(anyhow::anyhow!(
        "the enrollment's status kept changing during the check"
    )))
}

/// Writes of one check's answer before it gives up on an enrollment whose status keeps changing.
const MAX_STATUS_WRITE_ATTEMPTS: usize = 3;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jlis;
    use chrono::Utc;
    use EnrollmentStatus::*;

    fn report(status: jlis::Status) -> ValidityReport {
        ValidityReport {
            status,
            method: jlis::Method::Ocsp,
            checked_at: Utc::now(),
            this_update: Utc::now(),
            next_update: None,
            responder: None,
            from_cache: false,
        }
    }

    #[test]
    fn every_answer_sets_a_visible_status() {
        let good = report(jlis::Status::Good);
        let unknown = report(jlis::Status::Unknown);
        let revoked = report(jlis::Status::Revoked {
            reason: jlis::RevocationReason::KeyCompromise,
            revoked_at: Utc::now(),
        });
        let moved = report(jlis::Status::Revoked {
            reason: jlis::RevocationReason::AffiliationChanged,
            revoked_at: Utc::now(),
        });
        assert_eq!(after_check(Verified, &good), Verified);
        assert_eq!(after_check(Verified, &unknown), StatusUnknown);
        assert_eq!(
            after_check(StatusUnknown, &good),
            Verified,
            "unknown lifts on good"
        );
        assert_eq!(after_check(StatusUnknown, &revoked), Revoked);
        assert_eq!(after_check(Verified, &revoked), Revoked);
        assert_eq!(after_check(Verified, &moved), IdentityChanged);
        assert_eq!(after_check(Revoked, &good), Revoked, "revocation is final");
        assert_eq!(after_check(IdentityChanged, &unknown), IdentityChanged);
        assert_eq!(reason_of(&unknown), Some(Reason::CertificateStatusUnknown));
        assert_eq!(reason_of(&moved), Some(Reason::IdentityChanged));
        assert_eq!(reason_of(&good), None);
        // In review: only a revocation ends it; the rest is the reviewer's to weigh.
        assert_eq!(after_check(InReview, &good), InReview);
        assert_eq!(after_check(InReview, &unknown), InReview);
        assert_eq!(after_check(InReview, &revoked), Revoked);
        assert_eq!(after_check(InReview, &moved), IdentityChanged);
    }
}
