//! The use cases: one module per flow, between the HTTP layer (which only extracts, calls one function
//! here and renders) and the domain (card, jlis, face, liveness, lockout) and the store.
//!
//! Nothing here knows axum. Every function takes the [`Services`] it needs and returns a typed outcome
//! or a [`UseCaseError`]; `http::error` maps those to problem responses in one `From` impl. The decision
//! functions (`enrollment::decide`, `verification::decide`, `status::after_check`, the session rules)
//! are pure and unit-tested without models or a database.

pub mod claims;
pub mod console;
pub mod enrollment;
pub mod faces;
pub mod idempotency;
pub mod operators;
pub mod retention;
pub mod review;
pub mod scheduled;
pub mod search;
pub mod selfie;
pub mod selfie_step;
pub mod sessions;
pub mod status;
pub mod tenants;
pub mod upload;
pub mod verification;
pub mod webhooks;

use crate::crypto::KeyRing;
use crate::domain::{Environment, TenantId};
use crate::store::{Session, Store, StoreError};
use serde::Deserialize;
use std::sync::Arc;

/// The settings the use cases read: the slices of the configuration that are theirs (the
/// application builds it from `config::Settings`; nothing here reads the whole configuration).
#[derive(Debug, Clone)]
pub struct UseCaseSettings {
    pub environment: Environment,
    pub sessions: SessionSettings,
    pub idempotency: IdempotencySettings,
    pub verification: VerificationSettings,
    pub face: crate::face::FaceConfig,
    pub liveness: crate::liveness::LivenessConfig,
    pub webhooks: crate::webhooks::WebhookSettings,
    pub status_checks: scheduled::StatusCheckSettings,
    pub retention: retention::RetentionSettings,
    pub claims: crate::claims::ClaimsSettings,
    pub search: search::SearchSettings,
    pub review: review::ReviewSettings,
    pub console: operators::ConsoleSettings,
}

/// `[sessions]`.
#[derive(Debug, Clone, Deserialize)]
pub struct SessionSettings {
    pub ttl_secs: u64,
}

/// `[idempotency]`.
#[derive(Debug, Clone, Deserialize)]
pub struct IdempotencySettings {
    pub ttl_secs: u64,
    /// How long a reservation of a running request holds its key; after that, a request that died
    /// is assumed gone and a retry may take the key over. Longer than any request can run.
    pub reservation_secs: u64,
}

/// `[verification]`: transaction-time re-verification.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct VerificationSettings {
    pub lockout: crate::lockout::LockoutPolicy,
}

/// The services a use case may call. Cheap to clone (shared handles).
#[derive(Clone)]
pub struct Services {
    pub settings: Arc<UseCaseSettings>,
    pub store: Arc<dyn Store>,
    pub keys: Arc<KeyRing>,
    /// The configured CVC issuer keys and JPKI roots.
    pub trust: Arc<crate::card::TrustStore>,
    /// The J-LIS validity checker.
    pub validity: Arc<dyn crate::jlis::ValidityChecker>,
    pub face: crate::face::FaceEngine,
    /// This replica's 1:N galleries (issue 21), kept current by `search::sync`.
    pub faces: Arc<search::FaceIndex>,
}

/// Who is calling, as authenticated by the HTTP layer.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The RP's backend, with a tenant API key.
    Tenant { tenant_id: TenantId, key_id: String },
    /// The RP's mobile app, with the client token of one live session.
    Client { session: Box<Session> },
}

impl Caller {
    pub fn tenant_id(&self) -> &TenantId {
        match self {
            Caller::Tenant { tenant_id, .. } => tenant_id,
            Caller::Client { session } => &session.tenant_id,
        }
    }

    /// The credential part of an Idempotency-Key's scope.
    pub fn credential(&self) -> String {
        match self {
            Caller::Tenant { key_id, .. } => format!("key:{key_id}"),
            Caller::Client { session } => format!("session:{}", session.id),
        }
    }
}

/// Why a use case decided nothing. Each maps to one problem `code` of api.md.
#[derive(Debug, thiserror::Error)]
pub enum UseCaseError {
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("no such resource")]
    NotFound,
    #[error("the session has already been used")]
    SessionConsumed,
    #[error("the session has expired")]
    SessionExpired,
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyConflict,
    #[error("a request with this Idempotency-Key is still running; retry shortly")]
    IdempotencyInProgress { retry_after_secs: u64 },
    #[error(
        "the enrollment is not active (rejected, revoked, identity changed or status unknown)"
    )]
    EnrollmentInactive,
    /// Verified claims asked of an enrollment that is not `verified` (rejected, revoked, …).
    #[error("the enrollment is not verified (rejected, revoked, identity changed or status unknown): it has no verified claims")]
    EnrollmentNotVerified,
    /// A per-tenant count limit is reached (e.g. webhook endpoints); the request was valid.
    #[error("{0}")]
    LimitReached(String),
    #[error("too many failed verifications; try again later")]
    EnrollmentLocked { retry_after_secs: u64 },
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    InvalidCardData(String),
    #[error("fields that could carry the My Number are not accepted")]
    MyNumberNotAccepted,
    #[error("the certificate validity service could not answer ({cause}); nothing was decided")]
    RevocationUnavailable {
        retry_after_secs: u64,
        cause: &'static str,
    },
    #[error("the face engine is at capacity; retry shortly")]
    Overloaded { retry_after_secs: u64 },
    /// The tenant's request rate (HTTP) or its share of the face engine is used up.
    #[error("{detail}")]
    RateLimited {
        retry_after_secs: u64,
        detail: &'static str,
    },
    #[error("the service is not ready")]
    NotReady { retry_after_secs: u64 },
    #[error("the database is unavailable; nothing was decided")]
    StoreUnavailable { retry_after_secs: u64 },
    /// A review decision on an enrollment that is no longer in review (another decision won).
    #[error("the enrollment is no longer in review: it was decided ({})", status.as_str())]
    ReviewAlreadyDecided {
        status: crate::domain::EnrollmentStatus,
    },
    /// Four-eyes: this reviewer already gave the first approve; another reviewer must give the second.
    #[error("this reviewer already approved; the tenant's four-eyes rule needs a second, different reviewer")]
    SecondReviewerRequired,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

pub type UseCaseResult<T> = Result<T, UseCaseError>;

impl UseCaseError {
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        UseCaseError::Internal(e.into())
    }

    /// A validity checker's failure (nothing decided): the API's fail-closed error.
    pub fn validity_unavailable(e: &crate::jlis::JlisError) -> Self {
        tracing::warn!(
            kind = e.kind().as_str(),
            "validity check unavailable; failing closed"
        );
        UseCaseError::RevocationUnavailable {
            retry_after_secs: e.retry_after_secs(),
            cause: e.kind().as_str(),
        }
    }
}

/// Seconds a client is told to wait after the database failed.
const STORE_RETRY_AFTER_SECS: u64 = 2;

impl From<StoreError> for UseCaseError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::SessionConsumed => UseCaseError::SessionConsumed,
            StoreError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                UseCaseError::StoreUnavailable {
                    retry_after_secs: STORE_RETRY_AFTER_SECS,
                }
            }
            other => UseCaseError::Internal(other.into()),
        }
    }
}

/// Whole seconds from now until `until` (at least 1).
pub(crate) fn secs_until(until: crate::domain::Millis) -> u64 {
    let ms = until.saturating_sub(crate::domain::now_millis()).max(1);
    (ms as u64).div_ceil(1000)
}

/// Four decimals, as the API prints scores and thresholds.
pub fn round4(x: f32) -> f64 {
    (f64::from(x) * 10_000.0).round() / 10_000.0
}

/// Fixtures shared by the decision tests.
#[cfg(test)]
pub(crate) mod test_support {
    use crate::face::{ImageKind, QualityCheck, QualityFailure, QualityReport, QualityResult};

    /// A quality report of `kind` failing exactly `failed` (passing when empty).
    pub fn quality(kind: ImageKind, failed: &[QualityCheck]) -> QualityReport {
        QualityReport {
            result: if failed.is_empty() {
                QualityResult::Pass
            } else {
                QualityResult::Fail
            },
            faces: 1,
            face_width_px: Some(200),
            brightness: Some(0.5),
            sharpness: Some(0.8),
            yaw_deg: Some(0.0),
            pitch_deg: Some(0.0),
            failed: failed
                .iter()
                .map(|&check| QualityFailure { check, kind })
                .collect(),
            inter_eye_px: Some(60.0),
            roll_deg: Some(0.0),
            glare: Some(0.0),
            detection_score: Some(0.9),
            mask: Some(0.0),
            flagged: Vec::new(),
        }
    }
}
