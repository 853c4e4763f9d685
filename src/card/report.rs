//! The typed results of the card checks, serialised with the API's words (`valid`, `invalid_signature`, …).
//!
//! A check that runs and fails is a result here, not an error. [`CardReport::failure_codes`] turns the
//! failures into the stable `reasons` codes of api.md, one per failure:
//!
//! | check | result | code |
//! |---|---|---|
//! | card_data | invalid_signature | `invalid_signature` |
//! | card_data | unknown_issuer | `unknown_issuer` |
//! | card_present | invalid_signature | `card_not_present` |
//! | certificate | untrusted_chain | `untrusted_certificate` |
//! | certificate | wrong_issuer | `certificate_wrong_issuer` |
//! | certificate | expired | `certificate_expired` |
//! | certificate | not_yet_valid | `certificate_not_yet_valid` |
//! | certificate | bad_key_usage | `certificate_bad_key_usage` |
//! | certificate | invalid_signature | `invalid_jpki_signature` |
//! | hojo | invalid_signature | `invalid_hojo_signature` |
//! | hojo | unknown_issuer | `unknown_hojo_issuer` |
//! | consistency | mismatch | `identity_mismatch` |

use super::Identity;
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
    Expired,
    NotYetValid,
    /// keyUsage missing, not critical, or without digitalSignature + nonRepudiation.
    BadKeyUsage,
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

/// Step 8: the applications describe the same person.
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConsistencyCheck {
    pub result: ConsistencyResult,
    pub mismatched: Vec<IdentityField>,
}

/// What the EE certificate's revocation check needs (the `jlis` adapter's input).
#[derive(Clone, PartialEq, Eq)]
pub struct RevocationTarget {
    /// The serial's DER content bytes.
    pub serial: Vec<u8>,
    /// DER of the configured root that signed the certificate (the OCSP CertID issuer).
    pub issuer_cert_der: Vec<u8>,
    /// DER of the certificate itself.
    pub cert_der: Vec<u8>,
}

impl std::fmt::Debug for RevocationTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RevocationTarget(serial {})",
            hex::encode_upper(&self.serial)
        )
    }
}

/// Everything the card checks found. `status` is `verified` only if [`CardReport::failure_codes`] is empty
/// (and the other modules' checks pass).
#[derive(Clone)]
pub struct CardReport {
    pub card_data: CardDataCheck,
    pub card_present: PresenceCheck,
    pub certificate: CertificateCheck,
    /// `None` when no 入力補助AP data was sent.
    pub hojo: Option<HojoCheck>,
    pub consistency: ConsistencyCheck,
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
    pub fn failure_code(self) -> Option<&'static str> {
        match self {
            Self::Valid => None,
            Self::InvalidSignature => Some("invalid_signature"),
            Self::UnknownIssuer => Some("unknown_issuer"),
        }
    }
}

impl PresenceResult {
    pub fn failure_code(self) -> Option<&'static str> {
        match self {
            Self::Valid => None,
            Self::InvalidSignature => Some("card_not_present"),
        }
    }
}

impl CertificateResult {
    pub fn failure_code(self) -> Option<&'static str> {
        match self {
            Self::Valid => None,
            Self::UntrustedChain => Some("untrusted_certificate"),
            Self::WrongIssuer => Some("certificate_wrong_issuer"),
            Self::Expired => Some("certificate_expired"),
            Self::NotYetValid => Some("certificate_not_yet_valid"),
            Self::BadKeyUsage => Some("certificate_bad_key_usage"),
            Self::InvalidSignature => Some("invalid_jpki_signature"),
        }
    }
}

impl HojoResult {
    pub fn failure_code(self) -> Option<&'static str> {
        match self {
            Self::Valid => None,
            Self::InvalidSignature => Some("invalid_hojo_signature"),
            Self::UnknownIssuer => Some("unknown_hojo_issuer"),
        }
    }
}

impl ConsistencyResult {
    pub fn failure_code(self) -> Option<&'static str> {
        match self {
            Self::Match => None,
            Self::Mismatch => Some("identity_mismatch"),
        }
    }
}

impl CardReport {
    /// True if every card check passed.
    pub fn passed(&self) -> bool {
        self.failure_codes().is_empty()
    }

    /// The api.md `reasons` codes of every failed card check, in check order. Empty: all card checks passed.
    pub fn failure_codes(&self) -> Vec<&'static str> {
        [
            self.card_data.result.failure_code(),
            self.card_present.result.failure_code(),
            self.certificate.result.failure_code(),
            self.hojo.as_ref().and_then(|h| h.result.failure_code()),
            self.consistency.result.failure_code(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}
