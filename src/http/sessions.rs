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

/// Open a session.
#[utoipa::path(post, path = "/v1/sessions", tag = "sessions", request_body = CreateSession,
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
    Ok(sessions::open(&ctx.svc, &auth.tenant_id, &auth.key_id, request, &body, key).await?)
}
