//! An enrollment as the API shows it: the document, its checks and their closed result enums.
//! These types are also what the stored decision record holds (see [`super::record`]).

use crate::card;
use crate::domain::{EnrollmentId, EnrollmentStatus, Reasons};
use crate::face::QualityReport;
use crate::jlis::{self, ValidityReport};
use crate::liveness::LivenessReport;
use serde::{Deserialize, Serialize};

/// The outcome of the face comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FaceMatchResult {
    Match,
    NoMatch,
    /// A face was missing (see the quality checks), or the card failed first, so no score exists.
    NotCompared,
}

/// The `face_match` check: chip photo against selfie at the enrollment target FMR.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FaceMatchCheck {
    pub result: FaceMatchResult,
    /// Cosine similarity of the two templates.
    pub score: Option<f64>,
    pub threshold: f64,
    pub target_fmr: f64,
    /// `<model id>@<sha256 prefix>`.
    pub model: String,
}

/// The `certificate` check. The details identify a person and are kept sealed under the
/// enrollment's key: shown to the API key holder of a verified enrollment, destroyed by deletion,
/// never stored for a rejected one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CertificateView {
    pub result: card::CertificateResult,
    /// Upper-case hex, no sign byte (as OpenSSL prints it).
    pub serial: Option<String>,
    /// The issuer DN in RFC 4514 text.
    pub issuer: Option<String>,
    pub not_after: Option<chrono::DateTime<chrono::Utc>>,
}

impl CertificateView {
    pub(super) fn result_only(result: card::CertificateResult) -> Self {
        Self {
            result,
            serial: None,
            issuer: None,
            not_after: None,
        }
    }
}

/// Every check of an enrollment (api.md). `result` fields are closed enums.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EnrollmentChecks {
    pub card_data: card::CardDataCheck,
    pub card_present: card::PresenceCheck,
    pub certificate: CertificateView,
    pub revocation: RevocationCheck,
    pub consistency: card::ConsistencyCheck,
    /// Present when 入力補助AP data was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hojo: Option<card::HojoCheck>,
    /// The one-card binding: the 入力補助AP against the certificate and the 券面AP (docs/card.md).
    #[serde(default)]
    pub hojo_binding: Option<card::HojoBindingCheck>,
    /// `null` when the card failed first and the selfie was not looked at.
    pub selfie_quality: Option<QualityReport>,
    /// The chip photo's quality (same shape, looser rules); `null` when not looked at.
    pub chip_photo_quality: Option<QualityReport>,
    pub liveness: LivenessReport,
    pub face_match: FaceMatchCheck,
    /// The 1:N duplicate check (issue 21); absent when the tenant's `duplicate_check` is `off` or
    /// the enrollment was not verified by the other checks. Other enrollments' ids only with an API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_face: Option<crate::usecase::search::DuplicateCheck>,
    /// The watchlist check (issue 21); absent when the other checks did not verify. Entry ids only
    /// with an API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watchlist: Option<crate::usecase::search::WatchlistCheck>,
}

impl EnrollmentChecks {
    /// What a client token sees: the 1:N results without other enrollments' or entries' ids.
    pub fn for_client(mut self) -> Self {
        self.duplicate_face = self.duplicate_face.as_ref().map(|d| d.for_client());
        self.watchlist = self.watchlist.as_ref().map(|w| w.for_client());
        self
    }
}

/// An enrollment as the API shows it (201 from POST, 200 from GET).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EnrollmentDocument {
    pub id: EnrollmentId,
    pub status: EnrollmentStatus,
    pub subject_ref: Option<String>,
    /// The failed checks' codes, e.g. `face_mismatch`, `certificate_revoked`, `identity_changed`.
    pub reasons: Reasons,
    pub checks: EnrollmentChecks,
    /// From the signing certificate; `null` for a rejected or deleted enrollment (nothing personal is kept).
    pub identity: Option<card::Identity>,
    pub created_at: String,
    /// Present when the enrollment went to review (issue 22): why, and the decision once made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<ReviewInfo>,
}

/// `review` of an enrollment that went to review: what sent it there, how long its evidence is kept,
/// and the reviewer's decision once made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReviewInfo {
    /// The reasons that sent it to a person (they are also in `reasons`).
    pub reasons: Reasons,
    /// When the review evidence (chip photo and selfie) is shredded if no decision came first.
    pub evidence_until: String,
    /// The decision; absent while it waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<ReviewOutcomeView>,
}

/// A reviewer's decision on an enrollment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReviewOutcomeView {
    pub decision: crate::domain::review::ReviewDecision,
    pub reason_code: crate::domain::review::ReviewReasonCode,
    /// Who decided (under the four-eyes rule, both approvers, first first). Ids only.
    pub reviewers: Vec<crate::domain::review::Reviewer>,
    pub decided_at: String,
}

/// `GET /v1/enrollments`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EnrollmentList {
    /// Newest first.
    pub enrollments: Vec<EnrollmentDocument>,
}

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
    pub method: Option<jlis::Method>,
    /// When this answer was obtained (the last status check's time after a status check).
    pub checked_at: Option<String>,
    /// RFC 5280 reason name when revoked, e.g. `affiliationChanged`.
    pub reason: Option<jlis::RevocationReason>,
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
                Some(reason),
                Some(revoked_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            ),
            jlis::Status::Unknown => (RevocationResult::Unknown, None, None),
        };
        Self {
            result,
            method: Some(report.method),
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
