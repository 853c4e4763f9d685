//! Small domain types shared by the HTTP layer and the store: ids, credentials, purposes, times.
//!
//! Ids are opaque strings with a type prefix and 128 random bits (api.md asks for ≥ 96).
//! Credentials are 256 random bits; only their SHA-256 is ever stored.

pub mod audit;
pub mod ids;
pub mod operator;
pub mod review;
pub mod revocation;
pub mod search;
pub mod vocab;

pub use audit::AuditKind;
pub use ids::{
    DeliveryId, EnrollmentId, EventId, OperatorId, SessionId, TenantId, VerificationId, WebhookId,
};
pub use operator::Role;
pub use revocation::RevocationTarget;
pub use vocab::{EnrollmentStatus, Reason, Reasons, TemplateSource, VerificationDecision};

use crate::redact::Secret;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where the service runs: production refuses development conveniences (generated keys, static
/// J-LIS mode, test fault hooks). Here, not in `config`, so every subsystem can see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Development,
    Production,
}

/// Milliseconds since the Unix epoch: how the store keeps time, identically on both backends.
pub type Millis = i64;

pub fn now_millis() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// RFC 3339 UTC with millisecond precision, as the API prints times.
pub fn rfc3339(ms: Millis) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

/// A new id such as `ses_4f0c…` (128 random bits, hex).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", hex::encode(random_bytes::<16>()))
}

/// The id prefixes in use.
pub mod prefix {
    pub const TENANT: &str = "ten";
    pub const API_KEY: &str = "key";
    pub const SESSION: &str = "ses";
    pub const ENROLLMENT: &str = "enr";
    pub const VERIFICATION: &str = "ver";
    pub const TEMPLATE: &str = "tpl";
}

/// The prefix of tenant API keys.
pub const API_KEY_PREFIX: &str = "jfk_live_";
/// The prefix of session client tokens.
pub const CLIENT_TOKEN_PREFIX: &str = "jfc_";

/// A bearer credential as issued: shown to its owner once, then only its hash is kept.
pub struct IssuedCredential {
    pub token: Secret<String>,
    pub hash: [u8; 32],
}

impl IssuedCredential {
    pub fn new(prefix: &str) -> Self {
        let token = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()));
        let hash = credential_hash(&token);
        Self {
            token: Secret::new(token),
            hash,
        }
    }
}

/// SHA-256 of a presented credential. Lookups are by this hash, so no stored secret is ever
/// compared byte by byte; the final equality check is constant-time anyway (see `http::auth`).
pub fn credential_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// 32 random bytes for a session: what the card and the JPKI key sign (api.md, Sessions).
pub fn new_nonce() -> [u8; 32] {
    random_bytes::<32>()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    Enrollment,
    Transaction,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Enrollment => "enrollment",
            Purpose::Transaction => "transaction",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "enrollment" => Some(Purpose::Enrollment),
            "transaction" => Some(Purpose::Transaction),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_and_distinct() {
        let a = new_id(prefix::SESSION);
        let b = new_id(prefix::SESSION);
        assert!(a.starts_with("ses_") && a.len() == 4 + 32);
        assert_ne!(a, b);
    }

    #[test]
    fn credentials_carry_256_bits_and_hash_stably() {
        let c = IssuedCredential::new(API_KEY_PREFIX);
        let raw = c.token.expose().strip_prefix(API_KEY_PREFIX).unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(raw).unwrap().len(), 32);
        assert_eq!(credential_hash(c.token.expose()), c.hash);
        assert_eq!(format!("{:?}", c.token), "[redacted]");
    }

    #[test]
    fn times_print_as_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    }
}
