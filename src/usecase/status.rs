//! Status checks (現況確認): the revocation check of the API, how an answer changes an enrollment's
//! status, and the on-demand check of a stored enrollment.

use super::{Services, UseCaseError, UseCaseResult};
use crate::domain::{now_millis, EnrollmentId, EnrollmentStatus, Reason, TenantId};
use crate::jlis::{self, ValidityReport};
use crate::store::{AuditEvent, StatusChange};
use serde::{Deserialize, Serialize};

/// The outcome of the validity check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RevocationResult {
    Good,
    Revoked,
    Unknown,
    /// Nothing was asked: the card's own checks failed first (or it chained to no trusted root).
    NotChecked,
}

/// The `revocation` check of the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RevocationCheck {
    pub result: RevocationResult,
    /// `ocsp`, `crl` or `static`.
    pub method: Option<String>,
    /// When this answer was obtained (the last status check's time after a status check).
    pub checked_at: Option<String>,
    /// RFC 5280 reason name when revoked, e.g. `affiliationChanged`.
    pub reason: Option<String>,
    pub revoked_at: Option<String>,
    pub responder: Option<String>,
}

impl RevocationCheck {
    pub fn not_checked() -> Self {
        Self {
            result: RevocationResult::NotChecked,
            method: None,
            checked_at: None,
            reason: None,
            revoked_at: None,
            responder: None,
        }
    }

    pub fn from_report(report: &ValidityReport) -> Self {
        let (result, reason, revoked_at) = match report.status {
            jlis::Status::Good => (RevocationResult::Good, None, None),
            jlis::Status::Revoked { reason, revoked_at } => (
                RevocationResult::Revoked,
                serde_json::to_value(reason)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string)),
                Some(revoked_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            ),
            jlis::Status::Unknown => (RevocationResult::Unknown, None, None),
        };
        Self {
            result,
            method: Some(report.method.as_str().into()),
            checked_at: Some(
                report
                    .checked_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            ),
            reason,
            revoked_at,
            responder: report.responder.clone(),
        }
    }
}

/// The reason code of a validity answer that is not `good`.
pub fn reason_of(report: &ValidityReport) -> Option<Reason> {
    match report.status {
        jlis::Status::Good => None,
        jlis::Status::Revoked {
            reason: jlis::RevocationReason::AffiliationChanged,
            ..
        } => Some(Reason::IdentityChanged),
        jlis::Status::Revoked { .. } => Some(Reason::CertificateRevoked),
        jlis::Status::Unknown => Some(Reason::CertificateStatusUnknown),
    }
}

/// The status after a status check's answer. Revocation is final; `unknown` is visible
/// (`status_unknown`) and lifts when a later check answers `good`.
pub fn after_check(current: EnrollmentStatus, report: &ValidityReport) -> EnrollmentStatus {
    use EnrollmentStatus::*;
    match (current, reason_of(report)) {
        (Revoked | IdentityChanged | Rejected | Deleted, _) => current,
        (_, Some(Reason::IdentityChanged)) => IdentityChanged,
        (_, Some(Reason::CertificateRevoked)) => Revoked,
        (_, Some(_)) => StatusUnknown,
        (Verified | StatusUnknown, None) => Verified,
    }
}

/// What is sealed under the enrollment's key about its certificate: enough for a status check, and
/// the fields that reveal a person (the serial; `not_after` is the fifth birthday after issuance).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SealedCertificate {
    pub serial_hex: String,
    pub issuer_cert_der_hex: String,
    /// The certificate's CRL distribution point, when it names one (DER, hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution_point_hex: Option<String>,
    /// For the API key holder's view.
    #[serde(default)]
    pub serial: Option<String>,
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default)]
    pub not_after: Option<chrono::DateTime<chrono::Utc>>,
}

impl SealedCertificate {
    pub fn target(&self) -> UseCaseResult<jlis::RevocationTarget> {
        Ok(jlis::RevocationTarget {
            serial: hex::decode(&self.serial_hex).map_err(UseCaseError::internal)?,
            issuer_cert_der: hex::decode(&self.issuer_cert_der_hex)
                .map_err(UseCaseError::internal)?,
            crl_distribution_points: self
                .distribution_point_hex
                .as_deref()
                .map(hex::decode)
                .transpose()
                .map_err(UseCaseError::internal)?,
        })
    }
}

/// The answer of `POST /v1/enrollments/{id}/status-check`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusCheckDocument {
    pub id: EnrollmentId,
    pub status: EnrollmentStatus,
    pub revocation: RevocationCheck,
}

/// Maps a validity checker's failure (nothing decided) to the API's fail-closed error.
pub fn unavailable(e: &jlis::JlisError) -> UseCaseError {
    tracing::warn!(
        kind = e.kind().as_str(),
        "validity check unavailable; failing closed"
    );
    UseCaseError::RevocationUnavailable {
        retry_after_secs: e.retry_after_secs(),
        cause: e.kind().as_str(),
    }
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
    id: &str,
) -> UseCaseResult<StatusCheckDocument> {
    check_enrollment_by(svc, tenant_id, id, Trigger::Manual).await
}

/// The status check of both the RP's request and the scheduler: the same transitions, the same
/// audit event, and `enrollment.status_changed` in the same transaction when the status changes.
pub async fn check_enrollment_by(
    svc: &Services,
    tenant_id: &TenantId,
    id: &str,
    trigger: Trigger,
) -> UseCaseResult<StatusCheckDocument> {
    let id = EnrollmentId::parse(id).ok_or(UseCaseError::NotFound)?;
    let mut row = svc
        .store
        .get_enrollment(tenant_id, &id)
        .await?
        .ok_or(UseCaseError::NotFound)?;
    let Some(certificate) = super::enrollment::open_certificate(svc, &row)? else {
        return Err(UseCaseError::EnrollmentInactive);
    };
    let report = svc
        .validity
        .check(&certificate.target()?)
        .await
        .map_err(|e| unavailable(&e))?;
    let check = RevocationCheck::from_report(&report);
    // The answer is applied to the status as it is when we write: a concurrent check (manual and
    // scheduled, or two replicas) that wrote first is read again, so a change is recorded, audited
    // and signalled once.
    for _ in 0..MAX_STATUS_WRITE_ATTEMPTS {
        let status = after_check(row.status, &report);
        let mut record = super::enrollment::StoredDecision::from_row(&row)?;
        record.checks.revocation = check.clone();
        match reason_of(&report) {
            Some(reason) => record.reasons.push(reason),
            None => record.reasons.remove(Reason::CertificateStatusUnknown),
        }
        let audit = AuditEvent::new(
            &row.tenant_id,
            "enrollment.status_checked",
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
                id,
                status,
                revocation: check,
            });
        }
        // Deleted while we asked J-LIS (404), or changed by a concurrent check: read it again.
        row = svc
            .store
            .get_enrollment(tenant_id, &id)
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
    }
}
