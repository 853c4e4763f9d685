//! The audit log's vocabulary: every kind of event the service records, spelled once.

use serde::Serialize;

/// What happened. Stored as [`AuditKind::as_str`]; the names are stable (consumers read them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum AuditKind {
    #[serde(rename = "tenant.created")]
    TenantCreated,
    #[serde(rename = "session.created")]
    SessionCreated,
    #[serde(rename = "enrollment.created")]
    EnrollmentCreated,
    #[serde(rename = "enrollment.deleted")]
    EnrollmentDeleted,
    #[serde(rename = "enrollment.status_checked")]
    EnrollmentStatusChecked,
    #[serde(rename = "enrollment.locked")]
    EnrollmentLocked,
    #[serde(rename = "enrollment.verified_claims_issued")]
    EnrollmentVerifiedClaimsIssued,
    #[serde(rename = "verification.created")]
    VerificationCreated,
    #[serde(rename = "webhook.created")]
    WebhookCreated,
    #[serde(rename = "webhook.deleted")]
    WebhookDeleted,
    #[serde(rename = "webhook.secret_rotated")]
    WebhookSecretRotated,
    #[serde(rename = "webhook.delivery_retried")]
    WebhookDeliveryRetried,
    #[serde(rename = "webhook.disabled")]
    WebhookDisabled,
    #[serde(rename = "retention.purged")]
    RetentionPurged,
    #[serde(rename = "faces.searched")]
    FacesSearched,
    #[serde(rename = "watchlist.created")]
    WatchlistCreated,
    #[serde(rename = "watchlist.deleted")]
    WatchlistDeleted,
    /// The selfie step judged a selfie (`pass`: kept with the session; `retake`: nothing kept).
    #[serde(rename = "session.selfie_checked")]
    SessionSelfieChecked,
    /// A reviewer decided an enrollment in review (or gave the first of two approvals).
    #[serde(rename = "enrollment.reviewed")]
    EnrollmentReviewed,
    /// A photo of an enrollment's review evidence was shown; names the viewer.
    #[serde(rename = "review.evidence_viewed")]
    ReviewEvidenceViewed,
    /// Console operators (issue 22): each names the operator id as its subject.
    #[serde(rename = "operator.created")]
    OperatorCreated,
    #[serde(rename = "operator.login")]
    OperatorLogin,
    /// A refused login of a known operator (unknown logins are not audited: no subject to name).
    #[serde(rename = "operator.login_failed")]
    OperatorLoginFailed,
    #[serde(rename = "operator.locked")]
    OperatorLocked,
    #[serde(rename = "operator.disabled")]
    OperatorDisabled,
    #[serde(rename = "operator.logout")]
    OperatorLogout,
    /// API keys made or revoked from the console (`details.operator_id` names who).
    #[serde(rename = "api_key.created")]
    ApiKeyCreated,
    #[serde(rename = "api_key.revoked")]
    ApiKeyRevoked,
    #[serde(rename = "tenant.settings_changed")]
    TenantSettingsChanged,
}

impl AuditKind {
    pub const ALL: [AuditKind; 29] = [
        AuditKind::TenantCreated,
        AuditKind::SessionCreated,
        AuditKind::EnrollmentCreated,
        AuditKind::EnrollmentDeleted,
        AuditKind::EnrollmentStatusChecked,
        AuditKind::EnrollmentLocked,
        AuditKind::EnrollmentVerifiedClaimsIssued,
        AuditKind::VerificationCreated,
        AuditKind::WebhookCreated,
        AuditKind::WebhookDeleted,
        AuditKind::WebhookSecretRotated,
        AuditKind::WebhookDeliveryRetried,
        AuditKind::WebhookDisabled,
        AuditKind::RetentionPurged,
        AuditKind::FacesSearched,
        AuditKind::WatchlistCreated,
        AuditKind::WatchlistDeleted,
        AuditKind::SessionSelfieChecked,
        AuditKind::EnrollmentReviewed,
        AuditKind::ReviewEvidenceViewed,
        AuditKind::OperatorCreated,
        AuditKind::OperatorLogin,
        AuditKind::OperatorLoginFailed,
        AuditKind::OperatorLocked,
        AuditKind::OperatorDisabled,
        AuditKind::OperatorLogout,
        AuditKind::ApiKeyCreated,
        AuditKind::ApiKeyRevoked,
        AuditKind::TenantSettingsChanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::TenantCreated => "tenant.created",
            AuditKind::SessionCreated => "session.created",
            AuditKind::EnrollmentCreated => "enrollment.created",
            AuditKind::EnrollmentDeleted => "enrollment.deleted",
            AuditKind::EnrollmentStatusChecked => "enrollment.status_checked",
            AuditKind::EnrollmentLocked => "enrollment.locked",
            AuditKind::EnrollmentVerifiedClaimsIssued => "enrollment.verified_claims_issued",
            AuditKind::VerificationCreated => "verification.created",
            AuditKind::WebhookCreated => "webhook.created",
            AuditKind::WebhookDeleted => "webhook.deleted",
            AuditKind::WebhookSecretRotated => "webhook.secret_rotated",
            AuditKind::WebhookDeliveryRetried => "webhook.delivery_retried",
            AuditKind::WebhookDisabled => "webhook.disabled",
            AuditKind::RetentionPurged => "retention.purged",
            AuditKind::FacesSearched => "faces.searched",
            AuditKind::WatchlistCreated => "watchlist.created",
            AuditKind::WatchlistDeleted => "watchlist.deleted",
            AuditKind::SessionSelfieChecked => "session.selfie_checked",
            AuditKind::EnrollmentReviewed => "enrollment.reviewed",
            AuditKind::ReviewEvidenceViewed => "review.evidence_viewed",
            AuditKind::OperatorCreated => "operator.created",
            AuditKind::OperatorLogin => "operator.login",
            AuditKind::OperatorLoginFailed => "operator.login_failed",
            AuditKind::OperatorLocked => "operator.locked",
            AuditKind::OperatorDisabled => "operator.disabled",
            AuditKind::OperatorLogout => "operator.logout",
            AuditKind::ApiKeyCreated => "api_key.created",
            AuditKind::ApiKeyRevoked => "api_key.revoked",
            AuditKind::TenantSettingsChanged => "tenant.settings_changed",
        }
    }
}

impl std::fmt::Display for AuditKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_spelled_once_and_distinct() {
        let mut names: Vec<_> = AuditKind::ALL.iter().map(|k| k.as_str()).collect();
        for k in AuditKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), AuditKind::ALL.len());
    }
}
