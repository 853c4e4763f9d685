//! The J-LIS validity-check adapter: is the JPKI signing certificate still in effect?
//!
//! Three checkers behind one trait, chosen by `[jlis] mode`:
//! - [`ocsp`]: RFC 6960 over HTTP POST, responses verified (signer, CertID, nonce, freshness);
//! - [`crl`]: CRLs downloaded from configured URLs, verified against the CA, refreshed in the background;
//! - [`static_mode`]: a fixed answer for development, refused in production.
//!
//! A check either decides (a [`ValidityReport`] with good / revoked / unknown) or fails with a
//! [`JlisError`], which always means "could not decide": the caller fails closed (503
//! `revocation_unavailable` with Retry-After). This module knows nothing of HTTP serving or SQL.

mod breaker;
mod clock;
mod config;
pub mod crl;
mod fetch;
pub mod ocsp;
pub mod static_mode;
mod x509;

pub use breaker::BreakerState;
pub use clock::{Clock, OffsetClock, SystemClock};
pub use config::{
    BreakerConfig, CrlConfig, CrlDistributionPoint, JlisConfig, Mode, OcspConfig, StaticStatus,
};

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::fmt;
use std::sync::Arc;

pub use crate::domain::RevocationTarget;

/// How the status was obtained.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[schema(as = RevocationMethod)]
pub enum Method {
    Ocsp,
    Crl,
    Static,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Ocsp => "ocsp",
            Method::Crl => "crl",
            Method::Static => "static",
        }
    }
}

/// RFC 5280 CRLReason, named as there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum RevocationReason {
    Unspecified,
    KeyCompromise,
    #[serde(rename = "cACompromise")]
    CaCompromise,
    /// J-LIS: the 基本4情報 changed (moved or renamed): re-enroll with the new certificate.
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
    CertificateHold,
    #[serde(rename = "removeFromCRL")]
    RemoveFromCrl,
    PrivilegeWithdrawn,
    #[serde(rename = "aACompromise")]
    AaCompromise,
}

impl RevocationReason {
    pub(crate) fn from_x509(r: x509_cert::ext::pkix::CrlReason) -> Self {
        use x509_cert::ext::pkix::CrlReason as R;
        match r {
            R::Unspecified => Self::Unspecified,
            R::KeyCompromise => Self::KeyCompromise,
            R::CaCompromise => Self::CaCompromise,
            R::AffiliationChanged => Self::AffiliationChanged,
            R::Superseded => Self::Superseded,
            R::CessationOfOperation => Self::CessationOfOperation,
            R::CertificateHold => Self::CertificateHold,
            R::RemoveFromCRL => Self::RemoveFromCrl,
            R::PrivilegeWithdrawn => Self::PrivilegeWithdrawn,
            R::AaCompromise => Self::AaCompromise,
        }
    }
}

/// The decided status of the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Status {
    Good,
    Revoked {
        /// `unspecified` when the responder or CRL gave no reason.
        reason: RevocationReason,
        revoked_at: DateTime<Utc>,
    },
    /// The responder does not know the certificate (not issued by this CA, or not yet known).
    Unknown,
}

/// A decided answer, with what is needed for the audit record (card-data.md §0 step 7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidityReport {
    /// Serialised flat: `"status": "revoked", "reason": "affiliationChanged", "revoked_at": …`.
    #[serde(flatten)]
    pub status: Status,
    pub method: Method,
    /// When we obtained the answer (for a cached answer: when it was first obtained).
    pub checked_at: DateTime<Utc>,
    /// The responder's / CRL's thisUpdate.
    pub this_update: DateTime<Utc>,
    pub next_update: Option<DateTime<Utc>>,
    /// Who answered: the OCSP signer's subject or the CRL issuer and URL.
    pub responder: Option<String>,
    pub from_cache: bool,
}

impl ValidityReport {
    /// The API's failure code for this answer, or `None` when the certificate is good.
    pub fn failure_code(&self) -> Option<&'static str> {
        match self.status {
            Status::Good => None,
            Status::Revoked {
                reason: RevocationReason::AffiliationChanged,
                ..
            } => Some("identity_changed"),
            Status::Revoked { .. } => Some("certificate_revoked"),
            Status::Unknown => Some("certificate_status_unknown"),
        }
    }
}

/// The precise reason a check could not be decided. All of them fail closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// TCP connection refused or unreachable.
    Connect,
    /// Connect or total timeout.
    Timeout,
    /// Other transport error (reset, TLS, …).
    Transport,
    /// The server answered with a non-200 HTTP status.
    HttpStatus,
    /// The body exceeded the configured limit.
    TooLarge,
    /// Not a parseable OCSP response / CRL.
    Malformed,
    /// OCSP responseStatus other than successful (malformedRequest, internalError, tryLater, …).
    ResponderError,
    /// A signature algorithm or key type we do not verify.
    UnsupportedAlgorithm,
    /// The signature does not verify.
    BadSignature,
    /// The response was not signed by the CA, a CA-issued OCSP delegate or the configured responder.
    UntrustedResponder,
    /// The response is not about the certificate we asked for.
    CertIdMismatch,
    /// The responder echoed a nonce other than ours (a replayed response).
    NonceMismatch,
    /// The responder did not echo our nonce and `accept_missing_nonce` is false.
    NonceMissing,
    /// nextUpdate (or thisUpdate + max age) has passed.
    Stale,
    /// thisUpdate / producedAt lies in the future beyond the allowed skew.
    NotYetValid,
    /// The circuit breaker is open: failing fast.
    BreakerOpen,
    /// No configured CRL is issued by the certificate's CA.
    NoCrlForIssuer,
    /// The issuer certificate or serial given to the checker is unusable.
    InvalidTarget,
    /// The CRL's scope (issuingDistributionPoint) does not cover the certificate: another partition,
    /// CA or attribute certificates only, some reasons only, or an indirect CRL.
    CrlScopeMismatch,
    /// A delta CRL where a complete CRL was expected (a delta is never used without its base).
    DeltaCrl,
    /// The CRL or one of its entries has a critical extension this checker does not process.
    UnknownCriticalExtension,
    /// The CRL's number is lower than one already seen for the same scope (a replayed older CRL).
    CrlNumberRegressed,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Transport => "transport",
            Self::HttpStatus => "http_status",
            Self::TooLarge => "too_large",
            Self::Malformed => "malformed",
            Self::ResponderError => "responder_error",
            Self::UnsupportedAlgorithm => "unsupported_algorithm",
            Self::BadSignature => "bad_signature",
            Self::UntrustedResponder => "untrusted_responder",
            Self::CertIdMismatch => "cert_id_mismatch",
            Self::NonceMismatch => "nonce_mismatch",
            Self::NonceMissing => "nonce_missing",
            Self::Stale => "stale",
            Self::NotYetValid => "not_yet_valid",
            Self::BreakerOpen => "breaker_open",
            Self::NoCrlForIssuer => "no_crl_for_issuer",
            Self::InvalidTarget => "invalid_target",
            Self::CrlScopeMismatch => "crl_scope_mismatch",
            Self::DeltaCrl => "delta_crl",
            Self::UnknownCriticalExtension => "unknown_critical_extension",
            Self::CrlNumberRegressed => "crl_number_regressed",
        }
    }

    /// Worth another attempt right away (transient network or responder state).
    pub(crate) fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::Connect
                | Self::Timeout
                | Self::Transport
                | Self::HttpStatus
                | Self::ResponderError
        )
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A check that could not be decided. Every variant maps to 503 `revocation_unavailable`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JlisError {
    /// `detail` is for operators' logs; it never holds the serial or other personal data.
    #[error("revocation status unavailable ({kind}): {detail}")]
    Unavailable {
        kind: FailureKind,
        retry_after_secs: u64,
        detail: String,
    },
}

impl JlisError {
    pub fn kind(&self) -> FailureKind {
        match self {
            Self::Unavailable { kind, .. } => *kind,
        }
    }
    pub fn retry_after_secs(&self) -> u64 {
        match self {
            Self::Unavailable {
                retry_after_secs, ..
            } => *retry_after_secs,
        }
    }
    /// The API error code.
    pub fn code(&self) -> &'static str {
        "revocation_unavailable"
    }
}

/// A failure inside a checker before the Retry-After is attached.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub kind: FailureKind,
    pub detail: String,
}

impl Failure {
    pub(crate) fn new(kind: FailureKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }
    pub(crate) fn into_error(self, retry_after_secs: u64) -> JlisError {
        JlisError::Unavailable {
            kind: self.kind,
            retry_after_secs,
            detail: self.detail,
        }
    }
}

/// Asks whether a signing certificate is still in effect.
#[async_trait::async_trait]
pub trait ValidityChecker: Send + Sync {
    async fn check(&self, target: &RevocationTarget) -> Result<ValidityReport, JlisError>;
    fn method(&self) -> Method;
}

/// The checker could not be built from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("jlis.mode = \"static\" is refused when environment = \"production\"")]
    StaticInProduction,
    #[error("configuration: `{key}`: {why}")]
    Config { key: &'static str, why: String },
}

/// Builds the checker selected by `cfg.mode`, with the system clock.
pub fn build_checker(
    cfg: &JlisConfig,
    env: crate::domain::Environment,
) -> Result<Arc<dyn ValidityChecker>, BuildError> {
    build_checker_with_clock(cfg, env, Arc::new(SystemClock))
}

/// As [`build_checker`], with an injected clock (tests move time forward with [`OffsetClock`]).
///
/// CRL mode starts its background refresh task when called inside a Tokio runtime.
pub fn build_checker_with_clock(
    cfg: &JlisConfig,
    env: crate::domain::Environment,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn ValidityChecker>, BuildError> {
    cfg.validate()?;
    match cfg.mode {
        Mode::Ocsp => Ok(Arc::new(ocsp::OcspChecker::new(cfg, clock)?)),
        Mode::Crl => Ok(crl::CrlChecker::start(cfg, clock)?),
        Mode::Static => {
            if env == crate::domain::Environment::Production {
                return Err(BuildError::StaticInProduction);
            }
            tracing::warn!(
                status = ?cfg.static_status,
                "!!! jlis.mode = \"static\": certificate revocation is NOT checked; every certificate \
                 gets a fixed answer. Development only: never run this with real customers !!!"
            );
            Ok(Arc::new(static_mode::StaticChecker::new(
                cfg.static_status,
                clock,
            )))
        }
    }
}

pub(crate) fn metric_outcome(result: &Result<ValidityReport, JlisError>) -> &'static str {
    match result {
        Ok(r) => match r.status {
            Status::Good => "good",
            Status::Revoked { .. } => "revoked",
            Status::Unknown => "unknown",
        },
        Err(e) => e.kind().as_str(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(status: Status) -> ValidityReport {
        ValidityReport {
            status,
            method: Method::Ocsp,
            checked_at: Utc::now(),
            this_update: Utc::now(),
            next_update: None,
            responder: None,
            from_cache: false,
        }
    }

    #[test]
    fn failure_codes_follow_the_api() {
        let at = Utc::now();
        assert_eq!(report(Status::Good).failure_code(), None);
        assert_eq!(
            report(Status::Revoked {
                reason: RevocationReason::AffiliationChanged,
                revoked_at: at
            })
            .failure_code(),
            Some("identity_changed")
        );
        for reason in [
            RevocationReason::KeyCompromise,
            RevocationReason::Unspecified,
            RevocationReason::Superseded,
            RevocationReason::CertificateHold,
        ] {
            assert_eq!(
                report(Status::Revoked {
                    reason,
                    revoked_at: at
                })
                .failure_code(),
                Some("certificate_revoked")
            );
        }
        assert_eq!(
            report(Status::Unknown).failure_code(),
            Some("certificate_status_unknown")
        );
    }

    #[test]
    fn report_serialises_flat() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-25T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut r = report(Status::Revoked {
            reason: RevocationReason::AffiliationChanged,
            revoked_at: at,
        });
        r.this_update = at;
        r.checked_at = at;
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["status"], "revoked");
        assert_eq!(v["reason"], "affiliationChanged");
        assert_eq!(v["revoked_at"], "2026-11-25T12:00:00Z");
        assert_eq!(v["method"], "ocsp");
        assert_eq!(v["next_update"], serde_json::Value::Null);
        assert_eq!(v["from_cache"], false);
        let good = serde_json::to_value(report(Status::Good)).unwrap();
        assert_eq!(good["status"], "good");
        assert!(good.get("reason").is_none());
    }

    #[test]
    fn reasons_serialise_with_rfc5280_names() {
        let names: Vec<String> = [
            RevocationReason::Unspecified,
            RevocationReason::KeyCompromise,
            RevocationReason::CaCompromise,
            RevocationReason::AffiliationChanged,
            RevocationReason::Superseded,
            RevocationReason::CessationOfOperation,
            RevocationReason::CertificateHold,
            RevocationReason::RemoveFromCrl,
            RevocationReason::PrivilegeWithdrawn,
            RevocationReason::AaCompromise,
        ]
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
        assert_eq!(
            names,
            [
                "\"unspecified\"",
                "\"keyCompromise\"",
                "\"cACompromise\"",
                "\"affiliationChanged\"",
                "\"superseded\"",
                "\"cessationOfOperation\"",
                "\"certificateHold\"",
                "\"removeFromCRL\"",
                "\"privilegeWithdrawn\"",
                "\"aACompromise\"",
            ]
        );
        assert_eq!(serde_json::to_string(&Method::Crl).unwrap(), "\"crl\"");
    }

    #[test]
    fn static_mode_is_refused_in_production() {
        let cfg = JlisConfig {
            mode: Mode::Static,
            ..JlisConfig::default()
        };
        let err = build_checker(&cfg, crate::domain::Environment::Production).err();
        assert!(matches!(err, Some(BuildError::StaticInProduction)));
        let ok = build_checker(&cfg, crate::domain::Environment::Development).unwrap();
        assert_eq!(ok.method(), Method::Static);
    }

    #[test]
    fn target_debug_hides_the_serial() {
        let t = RevocationTarget {
            serial: vec![0xAB, 0xCD, 0xEF],
            issuer_cert_der: vec![1, 2, 3],
            crl_distribution_points: Some(b"Chiyoda-ku".to_vec()),
        };
        let s = format!("{t:?}");
        assert!(
            !s.contains("171") && !s.to_lowercase().contains("ab") && !s.contains("Chiyoda"),
            "{s}"
        );
    }
}
