//! The one error type of the HTTP layer, rendered as RFC 9457 problem details with the stable
//! `code`s of api.md. It wraps the use cases' [`UseCaseError`] (whose messages are the `detail`) and
//! adds only what exists at the HTTP level: a missing credential, a wrong method, a deadline. Every
//! `code` and status is defined once, in [`ApiError::status`] and [`ApiError::code`]. Internal
//! causes are logged with the request id and never echoed.

use crate::usecase::UseCaseError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Everything a use case (or an extractor, in the use cases' terms) refused.
    #[error(transparent)]
    UseCase(#[from] UseCaseError),
    #[error("missing, unknown or expired credential")]
    Unauthenticated,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("the request did not complete within {0} s; nothing was decided")]
    DeadlineExceeded(u64),
    /// Content negotiation: no representation the client accepts.
    #[error("{0}")]
    NotAcceptable(String),
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
    /// `review_already_decided`: the enrollment's status now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrollment_status: Option<crate::domain::EnrollmentStatus>,
}

impl ApiError {
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        UseCaseError::Internal(e.into()).into()
    }

    pub fn malformed(detail: impl Into<String>) -> Self {
        UseCaseError::Malformed(detail.into()).into()
    }

    pub fn payload_too_large(detail: impl Into<String>) -> Self {
        UseCaseError::PayloadTooLarge(detail.into()).into()
    }

    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        UseCaseError::UnsupportedMediaType(detail.into()).into()
    }

    pub fn not_found() -> Self {
        UseCaseError::NotFound.into()
    }

    pub fn status(&self) -> StatusCode {
        use UseCaseError as U;
        match self {
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::DeadlineExceeded(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::UseCase(e) => match e {
                U::Malformed(_) => StatusCode::BAD_REQUEST,
                U::Forbidden(_) => StatusCode::FORBIDDEN,
                U::NotFound => StatusCode::NOT_FOUND,
                U::SessionConsumed
                | U::SessionExpired
                | U::IdempotencyConflict
                | U::IdempotencyInProgress { .. }
                | U::EnrollmentInactive
                | U::EnrollmentNotVerified
                | U::LimitReached(_)
                | U::ReviewAlreadyDecided { .. }
                | U::SecondReviewerRequired => StatusCode::CONFLICT,
                U::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                U::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                U::InvalidCardData(_) | U::MyNumberNotAccepted => StatusCode::UNPROCESSABLE_ENTITY,
                U::EnrollmentLocked { .. } => StatusCode::LOCKED,
                U::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
                U::RevocationUnavailable { .. }
                | U::Overloaded { .. }
                | U::NotReady { .. }
                | U::StoreUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
                U::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    /// The stable code of api.md.
    pub fn code(&self) -> &'static str {
        use UseCaseError as U;
        match self {
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::DeadlineExceeded(_) => "deadline_exceeded",
            ApiError::NotAcceptable(_) => "not_acceptable",
            ApiError::UseCase(e) => match e {
                U::Malformed(_) => "malformed_request",
                U::Forbidden(_) => "forbidden",
                U::NotFound => "not_found",
                U::SessionConsumed => "session_consumed",
                U::SessionExpired => "session_expired",
                U::IdempotencyConflict => "idempotency_conflict",
                U::IdempotencyInProgress { .. } => "idempotency_in_progress",
                U::EnrollmentInactive => "enrollment_inactive",
                U::EnrollmentNotVerified => "enrollment_not_verified",
                U::LimitReached(_) => "limit_reached",
                U::PayloadTooLarge(_) => "payload_too_large",
                U::UnsupportedMediaType(_) => "unsupported_media_type",
                U::InvalidCardData(_) => "invalid_card_data",
                U::MyNumberNotAccepted => "my_number_not_accepted",
                U::EnrollmentLocked { .. } => "enrollment_locked",
                U::RateLimited { .. } => "rate_limited",
                U::RevocationUnavailable { .. } => "revocation_unavailable",
                U::Overloaded { .. } => "overloaded",
                U::NotReady { .. } => "not_ready",
                U::StoreUnavailable { .. } => "store_unavailable",
                U::ReviewAlreadyDecided { .. } => "review_already_decided",
                U::SecondReviewerRequired => "second_reviewer_required",
                U::Internal(_) => "internal_error",
            },
        }
    }

    fn retry_after(&self) -> Option<u64> {
        use UseCaseError as U;
        match self {
            ApiError::DeadlineExceeded(_) => Some(1),
            ApiError::UseCase(
                U::EnrollmentLocked { retry_after_secs }
                | U::IdempotencyInProgress { retry_after_secs }
                | U::StoreUnavailable { retry_after_secs }
                | U::RateLimited {
                    retry_after_secs, ..
                }
                | U::RevocationUnavailable {
                    retry_after_secs, ..
                }
                | U::Overloaded { retry_after_secs }
                | U::NotReady { retry_after_secs },
            ) => Some(*retry_after_secs),
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
            enrollment_status: match self {
                ApiError::UseCase(UseCaseError::ReviewAlreadyDecided { status }) => Some(*status),
                _ => None,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::UseCase(UseCaseError::Internal(cause)) = &self {
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
        UseCaseError::from(e).into()
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::payload_too_large("the request body is larger than the configured limit")
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                ApiError::unsupported_media_type("expected content-type: application/json")
            }
            _ => ApiError::malformed(rejection.body_text()),
        }
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::BytesRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::payload_too_large("the request body is larger than the configured limit")
            }
            _ => ApiError::malformed(rejection.body_text()),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
