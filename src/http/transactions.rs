//! Transaction-time re-verification (出口対策): `POST /v1/transactions/verify`. The flow is
//! [`crate::usecase::verification`].

use super::extract::PathOf;
use super::upload::{self, PartLimits};
use super::{idempotency, ApiContext, ApiError, ApiResult, Caller, TenantAuth};
use crate::usecase::idempotency::Answer;
use crate::usecase::verification::{self, VerificationDocument};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(verify))
        .routes(routes!(verify_enrollment))
}

fn limits(ctx: &ApiContext) -> PartLimits {
    PartLimits {
        card_json: 0,
        image: ctx.svc.settings.face.selfie_max_bytes,
        max_frames: ctx.svc.settings.liveness.max_frames,
    }
}

/// Re-verify an enrolled person by a new selfie.
#[utoipa::path(post, path = "/v1/transactions/verify", tag = "transactions",
    request_body(content(
        (upload::VerifyUpload = "multipart/form-data"),
        (upload::VerifyJson = "application/json"),
    ), description = "The app's upload with a transaction session's client token: `selfie` (+ `liveness_frame`… if asked), or nothing to use the selfie the session accepted at `POST /v1/sessions/{id}/selfie` (a posted selfie wins). (An API key here answers 403: the server-to-server form is `POST /v1/enrollments/{id}/verify`.)"),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]{1,255}$", description = "Retry-safe key")),
    responses(
        (status = 200, description = "Decided (also when the answer is no)", body = VerificationDocument),
        (status = 400, body = super::error::Problem, content_type = "application/problem+json", description = "malformed_request"),
        (status = 401, body = super::error::Problem, content_type = "application/problem+json", description = "unauthenticated"),
        (status = 403, body = super::error::Problem, content_type = "application/problem+json", description = "forbidden"),
        (status = 404, body = super::error::Problem, content_type = "application/problem+json", description = "not_found (also after deletion)"),
        (status = 409, body = super::error::Problem, content_type = "application/problem+json", description = "enrollment_inactive / session_consumed / session_expired / idempotency_conflict / idempotency_in_progress"),
        (status = 413, body = super::error::Problem, content_type = "application/problem+json", description = "payload_too_large"),
        (status = 415, body = super::error::Problem, content_type = "application/problem+json", description = "unsupported_media_type"),
        (status = 423, body = super::error::Problem, content_type = "application/problem+json", description = "enrollment_locked (Retry-After)"),
        (status = 429, body = super::error::Problem, content_type = "application/problem+json", description = "rate_limited"),
        (status = 500, body = super::error::Problem, content_type = "application/problem+json", description = "internal_error"),
        (status = 503, body = super::error::Problem, content_type = "application/problem+json", description = "overloaded / not_ready / store_unavailable / deadline_exceeded"),
    ),
    security(("client_token" = [])))]
pub async fn verify(
    State(ctx): State<ApiContext>,
    caller: Caller,
    headers: HeaderMap,
    request: Request,
) -> ApiResult<Answer> {
    let key = idempotency::key(&headers)?;
    let upload = upload::read_verify(request, limits(&ctx)).await?;
    Ok(verification::verify(&ctx.svc, &caller, upload, key).await?)
}

/// Re-verify an enrolled person by a new selfie, server to server (the RP's backend).
#[utoipa::path(post, path = "/v1/enrollments/{id}/verify", tag = "transactions",
    request_body(content(
        (upload::SelfieUpload = "multipart/form-data"),
        (upload::SelfieJson = "application/json"),
    ), description = "`selfie` for the enrollment in the path (no liveness challenge: there is no session, so the selfie is always posted here)."),
    params(("id" = crate::domain::EnrollmentId, Path),
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]{1,255}$", description = "Retry-safe key")),
    responses(
        (status = 200, description = "Decided (also when the answer is no)", body = VerificationDocument),
        (status = 400, body = super::error::Problem, content_type = "application/problem+json", description = "malformed_request"),
        (status = 401, body = super::error::Problem, content_type = "application/problem+json", description = "unauthenticated"),
        (status = 403, body = super::error::Problem, content_type = "application/problem+json", description = "forbidden"),
        (status = 404, body = super::error::Problem, content_type = "application/problem+json", description = "not_found (also after deletion)"),
        (status = 409, body = super::error::Problem, content_type = "application/problem+json", description = "enrollment_inactive / session_consumed / session_expired / idempotency_conflict / idempotency_in_progress"),
        (status = 413, body = super::error::Problem, content_type = "application/problem+json", description = "payload_too_large"),
        (status = 415, body = super::error::Problem, content_type = "application/problem+json", description = "unsupported_media_type"),
        (status = 423, body = super::error::Problem, content_type = "application/problem+json", description = "enrollment_locked (Retry-After)"),
        (status = 429, body = super::error::Problem, content_type = "application/problem+json", description = "rate_limited"),
        (status = 500, body = super::error::Problem, content_type = "application/problem+json", description = "internal_error"),
        (status = 503, body = super::error::Problem, content_type = "application/problem+json", description = "overloaded / not_ready / store_unavailable / deadline_exceeded"),
    ),
    security(("api_key" = [])))]
pub async fn verify_enrollment(
    State(ctx): State<ApiContext>,
    auth: TenantAuth,
    PathOf(enrollment_id): PathOf<crate::domain::EnrollmentId>,
    headers: HeaderMap,
    request: Request,
) -> ApiResult<Answer> {
    let key = idempotency::key(&headers)?;
    let mut upload = upload::read_verify(request, limits(&ctx)).await?;
    if upload.enrollment_id.is_some() {
        return Err(ApiError::malformed(
            "`enrollment_id` is in the path of this operation; do not send it",
        ));
    }
    upload.enrollment_id = Some(enrollment_id.to_string());
    Ok(verification::verify(&ctx.svc, &auth.into(), upload, key).await?)
}
