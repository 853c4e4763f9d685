//! The closed vocabularies of the API and the store: enrollment status, verification decision and the
//! reason codes of a rejected enrollment. Each has one stable snake_case spelling, used in JSON, in the
//! database and in metrics labels.

use crate::face::{ImageKind, QualityCheck, QualityFailure};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;

/// The status of an enrollment, as stored and as shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EnrollmentStatus {
    /// Every check passed.
    Verified,
    /// At least one check failed; `reasons` says which.
    Rejected,
    /// A later status check found the certificate revoked.
    Revoked,
    /// A later status check found it revoked with affiliationChanged: the holder moved or was renamed.
    IdentityChanged,
    /// A later status check got a signed `unknown` from J-LIS: not usable until a check answers `good`.
    StatusUnknown,
    /// Deleted: identity and templates crypto-shredded; only the tombstone row remains.
    Deleted,
    /// Waits for a person (issue 22): a check the tenant sends to review found something
    /// (`review.reasons` says what). Not usable for verify, not in the 1:N gallery, until approved.
    InReview,
}

impl EnrollmentStatus {
    pub const ALL: [EnrollmentStatus; 7] = [
        Self::Verified,
        Self::Rejected,
        Self::Revoked,
        Self::IdentityChanged,
        Self::StatusUnknown,
        Self::Deleted,
        Self::InReview,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verified => "verified",
            Self::Rejected => "rejected",
            Self::Revoked => "revoked",
            Self::IdentityChanged => "identity_changed",
            Self::StatusUnknown => "status_unknown",
            Self::Deleted => "deleted",
            Self::InReview => "in_review",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether transaction-time verification (and new transaction sessions) may use it.
    pub fn is_active(self) -> bool {
        self == Self::Verified
    }
}

/// Where a stored face template came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TemplateSource {
    /// The live selfie of the enrollment.
    EnrollmentSelfie,
    /// The IC chip's photo (券面AP DF27).
    ChipPhoto,
}

impl TemplateSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EnrollmentSelfie => "enrollment_selfie",
            Self::ChipPhoto => "chip_photo",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::EnrollmentSelfie, Self::ChipPhoto]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

/// The outcome of a transaction-time verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VerificationDecision {
    Match,
    NoMatch,
    /// The selfie failed a quality check: nothing was decided about the face.
    QualityFailed,
    /// The live-capture challenge failed.
    LivenessFailed,
}

impl VerificationDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Match => "match",
            Self::NoMatch => "no_match",
            Self::QualityFailed => "quality_failed",
            Self::LivenessFailed => "liveness_failed",
        }
    }
}

/// Why an enrollment was rejected (or later changed status). Serialised as its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    // The card (card-data.md §0).
    InvalidSignature,
    UnknownIssuer,
    CardNotPresent,
    UntrustedCertificate,
    CertificateWrongIssuer,
    CertificateRootNotCa,
    CertificateRootNotValid,
    CertificateExpired,
    CertificateNotYetValid,
    CertificateBadKeyUsage,
    CertificateUnknownCriticalExtension,
    CertificatePolicyMissing,
    InvalidJpkiSignature,
    InvalidHojoSignature,
    UnknownHojoIssuer,
    HojoRequired,
    HojoMismatch,
    IdentityMismatch,
    // J-LIS.
    CertificateRevoked,
    IdentityChanged,
    CertificateStatusUnknown,
    // Faces.
    Quality(QualityFailure),
    FaceMismatch,
    FaceNotCompared,
    LivenessFailed,
    // 1:N search (issue 21), added after the decision by `usecase::search::check`.
    /// The selfie matches another active enrollment of the tenant with another identity.
    DuplicateFace,
    /// The selfie (or a verify's) matches an entry of the tenant's watchlist.
    WatchlistHit,
}

impl Reason {
    const FIXED: [(Reason, &'static str); 26] = [
        (Reason::InvalidSignature, "invalid_signature"),
        (Reason::UnknownIssuer, "unknown_issuer"),
        (Reason::CardNotPresent, "card_not_present"),
        (Reason::UntrustedCertificate, "untrusted_certificate"),
        (Reason::CertificateWrongIssuer, "certificate_wrong_issuer"),
        (Reason::CertificateRootNotCa, "certificate_root_not_ca"),
        (
            Reason::CertificateRootNotValid,
            "certificate_root_not_valid",
        ),
        (Reason::CertificateExpired, "certificate_expired"),
        (Reason::CertificateNotYetValid, "certificate_not_yet_valid"),
        (Reason::CertificateBadKeyUsage, "certificate_bad_key_usage"),
        (
            Reason::CertificateUnknownCriticalExtension,
            "certificate_unknown_critical_extension",
        ),
        (
            Reason::CertificatePolicyMissing,
            "certificate_policy_missing",
        ),
        (Reason::InvalidJpkiSignature, "invalid_jpki_signature"),
        (Reason::InvalidHojoSignature, "invalid_hojo_signature"),
        (Reason::UnknownHojoIssuer, "unknown_hojo_issuer"),
        (Reason::HojoRequired, "hojo_required"),
        (Reason::HojoMismatch, "hojo_mismatch"),
        (Reason::IdentityMismatch, "identity_mismatch"),
        (Reason::CertificateRevoked, "certificate_revoked"),
        (Reason::IdentityChanged, "identity_changed"),
        (
            Reason::CertificateStatusUnknown,
            "certificate_status_unknown",
        ),
        (Reason::FaceMismatch, "face_mismatch"),
        (Reason::FaceNotCompared, "face_not_compared"),
        (Reason::LivenessFailed, "liveness_failed"),
        (Reason::DuplicateFace, "duplicate_face"),
        (Reason::WatchlistHit, "watchlist_hit"),
    ];

    /// Every code a reason can have (for the OpenAPI enum and the tests).
    pub fn all_codes() -> Vec<String> {
        let mut codes: Vec<String> = Self::FIXED.iter().map(|(_, c)| c.to_string()).collect();
        for kind in [ImageKind::Selfie, ImageKind::ChipPhoto] {
            for check in QualityCheck::ALL.into_iter().filter(|c| c.applies_to(kind)) {
                codes.push(QualityFailure { check, kind }.code());
            }
        }
        codes
    }

    pub fn code(&self) -> Cow<'static, str> {
        match self {
            Reason::Quality(q) => Cow::Owned(q.code()),
            fixed => Cow::Borrowed(
                Self::FIXED
                    .iter()
                    .find(|(r, _)| r == fixed)
                    .map(|(_, c)| *c)
                    .unwrap_or("unknown"),
            ),
        }
    }

    pub fn parse(code: &str) -> Option<Reason> {
        Self::FIXED
            .iter()
            .find(|(_, c)| *c == code)
            .map(|(r, _)| *r)
            .or_else(|| QualityFailure::parse(code).map(Reason::Quality))
    }
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.code())
    }
}

impl<'de> Deserialize<'de> for Reason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Reason::parse(&code)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown reason code {code:?}")))
    }
}

impl utoipa::PartialSchema for Reason {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(Reason::all_codes()))
            .into()
    }
}

impl utoipa::ToSchema for Reason {}

/// The reasons of a decision, each once, in the order they were found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Reasons(Vec<Reason>);

impl Reasons {
    pub fn push(&mut self, reason: Reason) {
        if !self.0.contains(&reason) {
            self.0.push(reason);
        }
    }

    pub fn remove(&mut self, reason: Reason) {
        self.0.retain(|r| *r != reason);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, reason: Reason) -> bool {
        self.0.contains(&reason)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Reason> {
        self.0.iter()
    }
}

impl utoipa::PartialSchema for Reasons {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(<Reason as utoipa::PartialSchema>::schema())
            .into()
    }
}

impl utoipa::ToSchema for Reasons {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_code_round_trips() {
        let codes = Reason::all_codes();
        assert_eq!(codes.len(), 26 + 19);
        assert!(codes.contains(&"selfie_mask".to_string()));
        assert_eq!(Reason::parse("chip_photo_mask"), None);
        for code in &codes {
            let r = Reason::parse(code).unwrap_or_else(|| panic!("{code} parses"));
            assert_eq!(&r.code(), code);
        }
        assert_eq!(Reason::parse("nonsense"), None);
    }

    #[test]
    fn statuses_round_trip_and_only_verified_is_active() {
        for s in EnrollmentStatus::ALL {
            assert_eq!(EnrollmentStatus::parse(s.as_str()), Some(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(s.is_active(), s == EnrollmentStatus::Verified);
        }
    }

    #[test]
    fn reasons_keep_the_first_occurrence_only() {
        let mut r = Reasons::default();
        r.push(Reason::FaceMismatch);
        r.push(Reason::LivenessFailed);
        r.push(Reason::FaceMismatch);
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"["face_mismatch","liveness_failed"]"#
        );
    }
}
