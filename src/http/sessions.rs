//! `POST /v1/sessions`: the RP's backend opens a single-use session for the mobile app.

use super::extract::{self, RawBody};
use super::{idempotency, ApiContext, ApiResult, TenantAuth};
use crate::usecase::idempotency::Answer;
use crate::usecase::sessions::{self, CreateSession, CreatedSession};

use axum::extract::State;
use axum::http::HeaderMap;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(create_session))
}

/// The documented shape of [`CreateSession`]: one variant per purpose.
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
#[serde(untagged)]
pub enum CreateSessionRequest {
    Enrollment(EnrollmentSessionRequest),
    Transaction(TransactionSessionRequest),
}

#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EnrollmentPurpose {
    Enrollment,
}

#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransactionPurpose {
    Transaction,
}

/// An enrollment session.
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentSessionRequest {
    pub purpose: EnrollmentPurpose,
    /// The RP's own reference for the customer.
    #[schema(min_length = 1, max_length = 256)]
    pub subject_ref: Option<String>,
    /// Free-form JSON object (at most 4096 bytes serialised).
    #[schema(value_type = Option<Object>)]
    pub context: Option<serde_json::Value>,
}

/// A transaction session: re-verifies the person of `enrollment_id`.
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransactionSessionRequest {
    pub purpose: TransactionPurpose,
    pub enrollment_id: crate::domain::EnrollmentId,
    /// Free-form JSON object (at most 4096 bytes serialised), e.g. the transaction's reference.
    #[schema(value_type = Option<Object>)]
    pub context: Option<serde_json::Value>,
}

/// Open a session.
#[utoipa::path(post, path = "/v1/sessions", tag = "sessions", request_body = CreateSessionRequest,
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]{1,255}$", description = "Retry-safe key; the first answer is replayed for 24 h")),
    responses(
        (status = 201, body = CreatedSession),
        (status = 400, body = super::error::Problem, content_type = "application/problem+json", description = "malformed_request"),
        (status = 401, body = super::error::Problem, content_type = "application/problem+json", description = "unauthenticated"),
        (status = 403, body = super::error::Problem, content_type = "application/problem+json", description = "forbidden (a client token cannot open sessions)"),
        (status = 404, body = super::error::Problem, content_type = "application/problem+json", description = "not_found (enrollment_id)"),
        (status = 409, body = super::error::Problem, content_type = "application/problem+json", description = "enrollment_inactive / idempotency_conflict / idempotency_in_progress"),
        (status = 413, body = super::error::Problem, content_type = "application/problem+json", description = "payload_too_large"),
        (status = 415, body = super::error::Problem, content_type = "application/problem+json", description = "unsupported_media_type"),
        (status = 429, body = super::error::Problem, content_type = "application/problem+json", description = "rate_limited"),
        (status = 503, body = super::error::Problem, content_type = "application/problem+json", description = "store_unavailable"),
    ),
    security(("api_key" = [])))]
pub async fn create_session(
    State(ctx): State<ApiContext>,
    auth: TenantAuth,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Answer> {
    let request: CreateSession = extract::json_body(&headers, &body)?;
    let key = idempotency::key(&headers)?;
    Ok(sessions::open(
        &ctx.services(),
        &auth.tenant_id,
        &auth.key_id,
        request,
        &body,
        key,
    )
    .await?)
}
