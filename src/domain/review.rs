//! The vocabulary of human review (issue 22): what a reviewer decides, the closed reason codes a
//! decision carries, who the reviewer is (for the four-eyes rule and the audit log) and which photo
//! of the review evidence is meant.

use serde::{Deserialize, Serialize};

/// A reviewer's decision on an enrollment `in_review`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewDecision {
    /// The enrollment becomes `verified` (under four-eyes: once two reviewers approved).
    Approve,
    /// The enrollment becomes `rejected` at once; its identity, templates and evidence are shredded.
    Reject,
}

impl ReviewDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewDecision::Approve => "approve",
            ReviewDecision::Reject => "reject",
        }
    }
}

/// Why a reviewer decided as they did: a small closed set, so that reports can count them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewReasonCode {
    /// Approve: the reviewer compared the photos and the checks and found the person verified.
    VerifiedByReviewer,
    /// Reject: the selfie is not the card holder.
    FaceMismatch,
    /// Reject: a mask or something else hides the face.
    MaskOrObstruction,
    /// Reject: something is wrong with the card or its validity.
    DocumentProblem,
    /// Reject: an attempt to deceive (a photo of a photo, a stolen card, …).
    SuspectedFraud,
    /// Reject: the person is already enrolled under another identity.
    DuplicatePerson,
    /// Reject: another reason (the note says which).
    Other,
}

impl ReviewReasonCode {
    pub const ALL: [ReviewReasonCode; 7] = [
        Self::VerifiedByReviewer,
        Self::FaceMismatch,
        Self::MaskOrObstruction,
        Self::DocumentProblem,
        Self::SuspectedFraud,
        Self::DuplicatePerson,
        Self::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifiedByReviewer => "verified_by_reviewer",
            Self::FaceMismatch => "face_mismatch",
            Self::MaskOrObstruction => "mask_or_obstruction",
            Self::DocumentProblem => "document_problem",
            Self::SuspectedFraud => "suspected_fraud",
            Self::DuplicatePerson => "duplicate_person",
            Self::Other => "other",
        }
    }

    /// Whether the code may accompany `decision`: `verified_by_reviewer` only an approve, every
    /// other code only a reject.
    pub fn fits(self, decision: ReviewDecision) -> bool {
        (self == Self::VerifiedByReviewer) == (decision == ReviewDecision::Approve)
    }
}

/// Longest `reviewer_ref` an RP may send.
pub const MAX_REVIEWER_REF_LEN: usize = 64;

/// Whether `s` is a well-formed `reviewer_ref`: 1 to 64 characters of `[A-Za-z0-9._:@-]` (an opaque
/// id of the RP's reviewer, never a name: it is written to the audit log in clear).
pub fn is_reviewer_ref(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_REVIEWER_REF_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'@' | b'-'))
}

/// Who decided: an operator of the console, or the RP's own reviewer through an API key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reviewer {
    /// An operator account of the console.
    Operator { operator_id: String },
    /// The RP's case-management tool, with its API key and its own opaque id of the reviewer.
    ApiKey {
        key_id: String,
        reviewer_ref: String,
    },
}

impl Reviewer {
    /// The person behind the decision, for the four-eyes rule: two approvals count only if their
    /// keys differ. An RP reviewer is the same person whichever of the tenant's keys it uses.
    pub fn key(&self) -> String {
        match self {
            Reviewer::Operator { operator_id } => format!("operator:{operator_id}"),
            Reviewer::ApiKey { reviewer_ref, .. } => format!("api:{reviewer_ref}"),
        }
    }
}

/// One photo of the review evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// The IC chip's photo (券面AP DF27), re-encoded from JPEG 2000.
    ChipPhoto,
    /// The enrollment's selfie.
    Selfie,
}

impl EvidenceKind {
    pub const ALL: [EvidenceKind; 2] = [EvidenceKind::ChipPhoto, EvidenceKind::Selfie];

    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceKind::ChipPhoto => "chip_photo",
            EvidenceKind::Selfie => "selfie",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_spelled_once_and_fit_one_decision() {
        for code in ReviewReasonCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
            assert_ne!(
                code.fits(ReviewDecision::Approve),
                code.fits(ReviewDecision::Reject),
                "{code:?}"
            );
        }
        assert!(ReviewReasonCode::VerifiedByReviewer.fits(ReviewDecision::Approve));
        assert!(!ReviewReasonCode::Other.fits(ReviewDecision::Approve));
        for kind in EvidenceKind::ALL {
            assert_eq!(EvidenceKind::parse(kind.as_str()), Some(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
    }

    #[test]
    fn reviewer_refs_are_short_opaque_ids() {
        assert!(is_reviewer_ref("rev-01@bank.example"));
        assert!(is_reviewer_ref("a:b_c.d"));
        assert!(!is_reviewer_ref(""));
        assert!(!is_reviewer_ref("山田"));
        assert!(!is_reviewer_ref("has space"));
        assert!(!is_reviewer_ref(&"x".repeat(65)));
        assert!(is_reviewer_ref(&"x".repeat(64)));
    }

    #[test]
    fn one_person_is_one_reviewer_whichever_key_it_uses() {
        let a = Reviewer::ApiKey {
            key_id: "key_1".into(),
            reviewer_ref: "r1".into(),
        };
        let b = Reviewer::ApiKey {
            key_id: "key_2".into(),
            reviewer_ref: "r1".into(),
        };
        let op = Reviewer::Operator {
            operator_id: "r1".into(),
        };
        assert_eq!(a.key(), b.key());
        assert_ne!(a.key(), op.key());
    }
}
