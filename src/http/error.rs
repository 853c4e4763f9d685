//! The one error type of the HTTP layer, rendered as RFC 9457 problem details with the stable
//! `code`s of api.md. Internal causes are logged with the request id and never echoed.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Malformed(String),
    #[error("missing, unknown or expired credential")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(String),
    #[error("no such resource")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
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
    #[error("the enrollment is not verified (rejected, revoked, identity changed or status unknown): it has no verified claims")]
    EnrollmentNotVerified,
    #[error("{0}")]
    NotAcceptable(String),
    #[error("{0}")]
    LimitReached(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    InvalidCardData(String),
    #[error("fields that could carry the My Number are not accepted")]
    MyNumberNotAccepted,
    #[error("too many failed verifications; try again later")]
    EnrollmentLocked { retry_after_secs: u64 },
    #[error("{detail}")]
    RateLimited {
        retry_after_secs: u64,
        detail: &'static str,
    },
    #[error("the certificate validity service could not answer ({cause}); nothing was decided")]
    RevocationUnavailable {
        retry_after_secs: u64,
        cause: &'static str,
    },
    #[error("the face engine is at capacity; retry shortly")]
    Overloaded { retry_after_secs: u64 },
    #[error("the service is not ready")]
    NotReady { retry_after_secs: u64 },
    #[error("the database is unavailable; nothing was decided")]
    StoreUnavailable { retry_after_secs: u64 },
    #[error("the request did not complete within {0} s; nothing was decided")]
    DeadlineExceeded(u64),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// The problem-details body (RFC 9457) with the stable `code` and the request id.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    /// Stable, machine-readable, snake_case. Clients branch on this, never on `detail`.
    pub code: String,
    pub detail: String,
    pub request_id: String,
}

impl ApiError {
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(e.into())
    }

    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            Malformed(_) => StatusCode::BAD_REQUEST,
            Unauthenticated => StatusCode::UNAUTHORIZED,
            Forbidden(_) => StatusCode::FORBIDDEN,
            NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            SessionConsumed
            | SessionExpired
            | IdempotencyConflict
            | IdempotencyInProgress { .. }
            | EnrollmentInactive
            | EnrollmentNotVerified
            | LimitReached(_) => StatusCode::CONFLICT,
            NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            InvalidCardData(_) | MyNumberNotAccepted => StatusCode::UNPROCESSABLE_ENTITY,
            EnrollmentLocked { .. } => StatusCode::LOCKED,
            RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            RevocationUnavailable { .. }
            | Overloaded { .. }
            | NotReady { .. }
            | StoreUnavailable { .. }
            | DeadlineExceeded(_) => StatusCode::SERVICE_UNAVAILABLE,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code of api.md.
    pub fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            Malformed(_) => "malformed_request",
            Unauthenticated => "unauthenticated",
            Forbidden(_) => "forbidden",
            NotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            SessionConsumed => "session_consumed",
            SessionExpired => "session_expired",
            IdempotencyConflict => "idempotency_conflict",
            IdempotencyInProgress { .. } => "idempotency_in_progress",
            EnrollmentInactive => "enrollment_inactive",
            EnrollmentNotVerified => "enrollment_not_verified",
            NotAcceptable(_) => "not_acceptable",
            LimitReached(_) => "limit_reached",
            PayloadTooLarge(_) => "payload_too_large",
            UnsupportedMediaType(_) => "unsupported_media_type",
            InvalidCardData(_) => "invalid_card_data",
            MyNumberNotAccepted => "my_number_not_accepted",
            EnrollmentLocked { .. } => "enrollment_locked",
            RateLimited { .. } => "rate_limited",
            RevocationUnavailable { .. } => "revocation_unavailable",
            Overloaded { .. } => "overloaded",
            NotReady { .. } => "not_ready",
            StoreUnavailable { .. } => "store_unavailable",
            DeadlineExceeded(_) => "deadline_exceeded",
            Internal(_) => "internal_error",
        }
    }

    fn retry_after(&self) -> Option<u64> {
        use ApiError::*;
        match self {
            EnrollmentLocked { retry_after_secs }
            | IdempotencyInProgress { retry_after_secs }
            | StoreUnavailable { retry_after_secs }
            | RateLimited {
                retry_after_secs, ..
            }
            | RevocationUnavailable {
                retry_after_secs, ..
            }
            | Overloaded { retry_after_secs }
            | NotReady { retry_after_secs } => Some(*retry_after_secs),
            DeadlineExceeded(_) => Some(1),
            _ => None,
        }
    }

    pub fn problem(&self) -> Problem {
        let status = self.status();
        Problem {
            type_: format!(
                "https://jpki-face.dev/problems/{}",
                self.code().replace('_', "-")
            ),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            code: self.code().to_string(),
            detail: self.to_string(),
            request_id: super::request_id::current(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(error = format!("{cause:#}"), "internal error");
        }
        let mut response = (self.status(), axum::Json(self.problem())).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        crate::usecase::UseCaseError::from(e).into()
    }
}

/// The one mapping of the use cases' errors to the API's.
impl From<crate::usecase::UseCaseError> for ApiError {
    fn from(e: crate::usecase::UseCaseError) -> Self {
        use crate::usecase::UseCaseError as U;
        match e {
            U::Malformed(d) => ApiError::Malformed(d),
            U::Forbidden(d) => ApiError::Forbidden(d),
            U::NotFound => ApiError::NotFound,
            U::SessionConsumed => ApiError::SessionConsumed,
            U::SessionExpired => ApiError::SessionExpired,
            U::IdempotencyConflict => ApiError::IdempotencyConflict,
            U::IdempotencyInProgress { retry_after_secs } => {
                ApiError::IdempotencyInProgress { retry_after_secs }
            }
            U::EnrollmentInactive => ApiError::EnrollmentInactive,
            U::EnrollmentNotVerified => ApiError::EnrollmentNotVerified,
            U::LimitReached(detail) => ApiError::LimitReached(detail),
            U::EnrollmentLocked { retry_after_secs } => {
                ApiError::EnrollmentLocked { retry_after_secs }
            }
            U::PayloadTooLarge(d) => ApiError::PayloadTooLarge(d),
            U::UnsupportedMediaType(d) => ApiError::UnsupportedMediaType(d),
            U::InvalidCardData(d) => ApiError::InvalidCardData(d),
            U::MyNumberNotAccepted => ApiError::MyNumberNotAccepted,
            U::RevocationUnavailable {
                retry_after_secs,
                cause,
            } => ApiError::RevocationUnavailable {
                retry_after_secs,
                cause,
            },
            U::Overloaded { retry_after_secs } => ApiError::Overloaded { retry_after_secs },
            U::RateLimited { retry_after_secs } => ApiError::RateLimited {
                retry_after_secs,
                detail: "this tenant's share of the face engine is in use; retry shortly",
            },
            U::NotReady { retry_after_secs } => ApiError::NotReady { retry_after_secs },
            U::StoreUnavailable { retry_after_secs } => {
                ApiError::StoreUnavailable { retry_after_secs }
            }
            U::Internal(cause) => ApiError::Internal(cause),
        }
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(
                "the request body is larger than the configured limit".into(),
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                ApiError::UnsupportedMediaType("expected content-type: application/json".into())
            }
            _ => ApiError::Malformed(rejection.body_text()),
        }
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::BytesRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(
                "the request body is larger than the configured limit".into(),
            ),
            _ => ApiError::Malformed(rejection.body_text()),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
