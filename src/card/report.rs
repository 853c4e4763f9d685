//! The typed results of the card checks, serialised with the API's words (`valid`, `invalid_signature`, …).
//!
//! A check that runs and fails is a result here, not an error. [`CardReport::failures`] turns the
//! failures into the [`Reason`]s of api.md, one per failure (the mapping is typed; the code strings
//! are spelled once, in `domain::vocab`):
//!
//! | check | result | code |
//! |---|---|---|
//! | card_data | invalid_signature | `invalid_signature` |
//! | card_data | unknown_issuer | `unknown_issuer` |
//! | card_present | invalid_signature | `card_not_present` |
//! | certificate | untrusted_chain | `untrusted_certificate` |
//! | certificate | wrong_issuer | `certificate_wrong_issuer` |
//! | certificate | root_not_ca | `certificate_root_not_ca` |
//! | certificate | root_not_valid | `certificate_root_not_valid` |
//! | certificate | expired | `certificate_expired` |
//! | certificate | not_yet_valid | `certificate_not_yet_valid` |
//! | certificate | unknown_critical_extension | `certificate_unknown_critical_extension` |
//! | certificate | bad_key_usage | `certificate_bad_key_usage` |
//! | certificate | policy_missing | `certificate_policy_missing` |
//! | certificate | invalid_signature | `invalid_jpki_signature` |
//! | hojo | invalid_signature | `invalid_hojo_signature` |
//! | hojo | unknown_issuer | `unknown_hojo_issuer` |
//! | consistency | mismatch | `identity_mismatch` |
//! | hojo_binding | hojo_required | `hojo_required` |
//! | hojo_binding | mismatch | `hojo_mismatch` |

use super::Identity;
use crate::domain::Reason;
pub use crate::domain::RevocationTarget;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Steps 1–3: the CVC chains to a configured issuer key and DF28 verifies with the certified key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CardDataResult {
    Valid,
    /// The CVC's 5F37 or the record's DF28 does not verify.
    InvalidSignature,
    /// The CVC's issuer key-ID is not in the trust table.
    UnknownIssuer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CardDataCheck {
    pub result: CardDataResult,
    /// The CVC's issuer key-ID, e.g. `9000023/001`.
    pub issuer_key_id: String,
}

/// Step 4: the card signed this session's `tbs_card` with its DF24 key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PresenceResult {
    Valid,
    InvalidSignature,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PresenceCheck {
    pub result: PresenceResult,
}

/// Step 6, checked in this order; the first failure is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CertificateResult {
    Valid,
    /// No configured JPKI root verifies the certificate's signature.
    UntrustedChain,
    /// A root verifies it, but the certificate's issuer name is not that root's subject.
    WrongIssuer,
    /// The root that verifies it has no basicConstraints with cA = TRUE.
    RootNotCa,
    /// `now` lies outside the validity period of the root that verifies it.
    RootNotValid,
    Expired,
    NotYetValid,
    /// The certificate marks an extension critical that this verifier does not process (RFC 5280 4.2).
    UnknownCriticalExtension,
    /// keyUsage missing, not critical, or without digitalSignature + nonRepudiation.
    BadKeyUsage,
    /// certificatePolicies lacks every configured signing-certificate policy (`card.signing_policy_oids`).
    PolicyMissing,
    /// The signature over this session's `tbs_jpki` does not verify with the certificate's key.
    InvalidSignature,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CertificateCheck {
    pub result: CertificateResult,
    /// Upper-case hex, no sign byte (as OpenSSL prints it).
    pub serial: String,
    /// The issuer DN in RFC 4514 text.
    pub issuer: String,
    pub not_after: DateTime<Utc>,
    /// With `unknown_critical_extension`: the OIDs of the critical extensions that are not processed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown_critical_extensions: Vec<String>,
}

/// The optional 入力補助AP integrity check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HojoResult {
    Valid,
    /// The CVC or DF33 does not verify, or DF32 is not the digest of the attributes sent.
    InvalidSignature,
    UnknownIssuer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HojoCheck {
    pub result: HojoResult,
    pub issuer_key_id: String,
}

/// Step 8: the 券面AP (DF22 birth date, DF23 sex) describes the person in the certificate SAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsistencyResult {
    Match,
    Mismatch,
}

/// An attribute that differs between the applications.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum IdentityField {
    BirthDate,
    Sex,
    Name,
    Address,
}

/// SAN vs 券面AP only (`birth_date`, `sex`); the 入力補助AP comparisons are in [`HojoBindingCheck`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConsistencyCheck {
    pub result: ConsistencyResult,
    pub mismatched: Vec<IdentityField>,
}

/// The one-card binding through the 入力補助AP (docs/card.md, "The one-card binding").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HojoBindingResult {
    /// The 入力補助AP records were sent and agree with the SAN and with the 券面AP.
    Bound,
    /// No 入力補助AP records, and the tenant's policy does not require them (`require_hojo = false`).
    NotRequired,
    /// No 入力補助AP records, and the policy requires them.
    HojoRequired,
    /// The 入力補助AP records disagree with the SAN or the 券面AP; the fields are listed.
    Mismatch,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HojoBindingCheck {
    pub result: HojoBindingResult,
    /// 入力補助AP vs the certificate SAN: `name`, `address`, `birth_date`, `sex` (after normalisation).
    pub certificate_mismatched: Vec<IdentityField>,
    /// 入力補助AP vs 券面AP: `birth_date`, `sex`.
    pub kenmen_mismatched: Vec<IdentityField>,
}

/// Everything the card checks found. `status` is `verified` only if [`CardReport::failures`] is empty
/// (and the other modules' checks pass).
#[derive(Clone)]
pub struct CardReport {
    pub card_data: CardDataCheck,
    pub card_present: PresenceCheck,
    pub certificate: CertificateCheck,
    /// `None` when no 入力補助AP data was sent.
    pub hojo: Option<HojoCheck>,
    pub consistency: ConsistencyCheck,
    pub hojo_binding: HojoBindingCheck,
    /// From the certificate SAN.
    pub identity: Identity,
    /// DF27: the JPEG 2000 photo, for the face engine.
    pub chip_photo: Vec<u8>,
    /// DF29, which no signature covers: informational only.
    pub card_expiry_unauthenticated: Option<chrono::NaiveDate>,
    /// Present when the certificate chained to a configured root.
    pub revocation_target: Option<RevocationTarget>,
}

impl std::fmt::Debug for CardReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardReport")
            .field("card_data", &self.card_data)
            .field("card_present", &self.card_present)
            .field("certificate", &self.certificate)
            .field("hojo", &self.hojo)
            .field("consistency", &self.consistency)
            .field("hojo_binding", &self.hojo_binding)
            .field("identity", &self.identity)
            .field(
                "chip_photo",
                &format_args!("[{} bytes]", self.chip_photo.len()),
            )
            .field("revocation_target", &self.revocation_target)
            .finish()
    }
}

impl CardDataResult {
    pub fn failure(self) -> Option<Reason> {
        match self {
            Self::Valid => None,
            Self::InvalidSignature => Some(Reason::InvalidSignature),
            Self::UnknownIssuer => Some(Reason::UnknownIssuer),
        }
    }
}

impl PresenceResult {
    pub fn failure(self) -> Option<Reason> {
        match self {
            Self::Valid => None,
            Self::InvalidSignature => Some(Reason::CardNotPresent),
        }
    }
}

impl CertificateResult {
    pub fn failure(self) -> Option<Reason> {
        match self {
            Self::Valid => None,
            Self::UntrustedChain => Some(Reason::UntrustedCertificate),
            Self::WrongIssuer => Some(Reason::CertificateWrongIssuer),
            Self::RootNotCa => Some(Reason::CertificateRootNotCa),
            Self::RootNotValid => Some(Reason::CertificateRootNotValid),
            Self::Expired => Some(Reason::CertificateExpired),
            Self::NotYetValid => Some(Reason::CertificateNotYetValid),
            Self::UnknownCriticalExtension => Some(Reason::CertificateUnknownCriticalExtension),
            Self::BadKeyUsage => Some(Reason::CertificateBadKeyUsage),
            Self::PolicyMissing => Some(Reason::CertificatePolicyMissing),
            Self::InvalidSignature => Some(Reason::InvalidJpkiSignature),
        }
    }
}

impl HojoResult {
    pub fn failure(self) -> Option<Reason> {
        match self {
            Self::Valid => None,
            Self::InvalidSignature => Some(Reason::InvalidHojoSignature),
            Self::UnknownIssuer => Some(Reason::UnknownHojoIssuer),
        }
    }
}

impl ConsistencyResult {
    pub fn failure(self) -> Option<Reason> {
        match self {
            Self::Match => None,
            Self::Mismatch => Some(Reason::IdentityMismatch),
        }
    }
}

impl HojoBindingResult {
    pub fn failure(self) -> Option<Reason> {
        match self {
            Self::Bound | Self::NotRequired => None,
            Self::HojoRequired => Some(Reason::HojoRequired),
            Self::Mismatch => Some(Reason::HojoMismatch),
        }
    }
}

impl CardReport {
    /// True if every card check passed.
    pub fn passed(&self) -> bool {
        self.failures().is_empty()
    }

    /// The reason of every failed card check, in check order. Empty: all card checks passed.
    pub fn failures(&self) -> Vec<Reason> {
        [
            self.card_data.result.failure(),
            self.card_present.result.failure(),
            self.certificate.result.failure(),
            self.hojo.as_ref().and_then(|h| h.result.failure()),
            self.consistency.result.failure(),
            self.hojo_binding.result.failure(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}
