//! The selfie step, `POST /v1/sessions/{id}/selfie`: the app posts the selfie on its own, before or
//! after the card, and hears the verdict at once. The flow is [`crate::usecase::selfie_step`].

use super::extract::PathOf;
use super::upload::{self, PartLimits};
use super::{idempotency, ApiContext, ApiResult, Caller};
use crate::domain::SessionId;
use crate::usecase::idempotency::Answer;
use crate::usecase::selfie_step::{self, SelfieStepDocument};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(post_selfie))
}

/// Post the session's selfie on its own (selfie first or card first) and get its verdict at once.
#[utoipa::path(post, path = "/v1/sessions/{id}/selfie", tag = "sessions",
    request_body(content(
        (upload::SelfieUpload = "multipart/form-data"),
        (upload::SelfieJson = "application/json"),
    ), description = "The app's selfie for its own session (client token): `selfie` (+ `liveness_frame`… if the session's challenge asks). A `pass` is kept with the session, sealed, until the enrollment or verify of the session uses it (then post those without a selfie), the session is used, or it expires; a later `pass` replaces it; a `retake` keeps nothing."),
    params(("id" = SessionId, Path),
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]{1,255}$", description = "Retry-safe key: a retry with the same key and request replays the first answer")),
    responses(
        (status = 200, description = "Judged: `result` is `pass` (kept) or `retake` with `reasons`", body = SelfieStepDocument),
        (status = 400, body = super::error::Problem, content_type = "application/problem+json", description = "malformed_request"),
        (status = 401, body = super::error::Problem, content_type = "application/problem+json", description = "unauthenticated (also an expired session's token)"),
        (status = 403, body = super::error::Problem, content_type = "application/problem+json", description = "forbidden (an API key, or another session's client token)"),
        (status = 404, body = super::error::Problem, content_type = "application/problem+json", description = "not_found"),
        (status = 409, body = super::error::Problem, content_type = "application/problem+json", description = "session_consumed / session_expired / idempotency_conflict / idempotency_in_progress"),
        (status = 413, body = super::error::Problem, content_type = "application/problem+json", description = "payload_too_large"),
        (status = 415, body = super::error::Problem, content_type = "application/problem+json", description = "unsupported_media_type"),
        (status = 429, body = super::error::Problem, content_type = "application/problem+json", description = "rate_limited"),
        (status = 500, body = super::error::Problem, content_type = "application/problem+json", description = "internal_error"),
        (status = 503, body = super::error::Problem, content_type = "application/problem+json", description = "overloaded / not_ready / store_unavailable / deadline_exceeded"),
    ),
    security(("client_token" = [])))]
pub async fn post_selfie(
    State(ctx): State<ApiContext>,
    caller: Caller,
    PathOf(session_id): PathOf<SessionId>,
    headers: HeaderMap,
    request: Request,
) -> ApiResult<Answer> {
    let key = idempotency::key(&headers)?;
    let limits = PartLimits {
        card_json: 0,
        image: ctx.svc.settings.face.selfie_max_bytes,
        max_frames: ctx.svc.settings.liveness.max_frames,
    };
    let upload = upload::read_selfie(request, limits).await?;
    Ok(selfie_step::post(&ctx.svc, &caller, &session_id, upload, key).await?)
}
