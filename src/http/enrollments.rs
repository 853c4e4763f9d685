//! Enrollment (入口対策) routes: `POST /v1/enrollments`, `GET /v1/enrollments[/{id}]`, `DELETE`, and
//! `POST /v1/enrollments/{id}/status-check` (現況確認). The flow is [`crate::usecase::enrollment`].

use super::extract::{PathOf, QueryOf};
use super::upload::{self, PartLimits};
use super::{idempotency, ApiContext, ApiError, ApiResult, Caller, TenantAuth};
use crate::domain::EnrollmentId;
use crate::usecase::enrollment::{self, EnrollmentDocument, EnrollmentList};
use crate::usecase::idempotency::Answer;
use crate::usecase::status::{self, StatusCheckDocument};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(create_enrollment, list_enrollments))
        .routes(routes!(create_enrollment_for_session))
        .routes(routes!(get_enrollment, delete_enrollment))
        .routes(routes!(status_check))
}

fn limits(ctx: &ApiContext) -> PartLimits {
    PartLimits {
        card_json: ctx.server.card_json_limit_bytes,
        image: ctx.svc.settings.face.selfie_max_bytes,
        max_frames: ctx.svc.settings.liveness.max_frames,
    }
}

/// Enroll a card holder.
#[utoipa::path(post, path = "/v1/enrollments", tag = "enrollments",
    request_body(content(
        (upload::EnrollmentUpload = "multipart/form-data"),
        (upload::EnrollmentJson = "application/json"),
    ), description = "The app's upload with its session's client token: `card`, `selfie`, `liveness_frame`…; without `selfie` (and its frames) the selfie the session accepted at `POST /v1/sessions/{id}/selfie` is used (a posted selfie wins). (An API key here answers 403: the server-to-server form is `POST /v1/sessions/{id}/enrollment`.)"),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]{1,255}$", description = "Retry-safe key: a retry with the same key and request replays the first answer")),
    responses(
        (status = 201, description = "Decided: `status` is `verified` or `rejected` with `reasons`", body = EnrollmentDocument),
        (status = 400, body = super::error::Problem, content_type = "application/problem+json", description = "malformed_request"),
        (status = 401, body = super::error::Problem, content_type = "application/problem+json", description = "unauthenticated"),
        (status = 403, body = super::error::Problem, content_type = "application/problem+json", description = "forbidden"),
        (status = 404, body = super::error::Problem, content_type = "application/problem+json", description = "not_found"),
        (status = 409, body = super::error::Problem, content_type = "application/problem+json", description = "session_consumed / session_expired / idempotency_conflict / idempotency_in_progress"),
        (status = 413, body = super::error::Problem, content_type = "application/problem+json", description = "payload_too_large"),
        (status = 415, body = super::error::Problem, content_type = "application/problem+json", description = "unsupported_media_type"),
        (status = 422, body = super::error::Problem, content_type = "application/problem+json", description = "invalid_card_data / my_number_not_accepted"),
        (status = 429, body = super::error::Problem, content_type = "application/problem+json", description = "rate_limited"),
        (status = 500, body = super::error::Problem, content_type = "application/problem+json", description = "internal_error"),
        (status = 503, body = super::error::Problem, content_type = "application/problem+json", description = "revocation_unavailable / overloaded / not_ready / store_unavailable / deadline_exceeded"),
    ),
    security(("client_token" = [])))]
pub async fn create_enrollment(
    State(ctx): State<ApiContext>,
    caller: Caller,
    headers: HeaderMap,
    request: Request,
) -> ApiResult<Answer> {
    let key = idempotency::key(&headers)?;
    let upload = upload::read_enrollment(request, limits(&ctx)).await?;
    Ok(enrollment::enroll(&ctx.svc, &caller, upload, key).await?)
}

/// Enroll a card holder, server to server: the RP's backend uploads for one of its sessions.
#[utoipa::path(post, path = "/v1/sessions/{id}/enrollment", tag = "enrollments",
    request_body(content(
        (upload::EnrollmentUpload = "multipart/form-data"),
        (upload::EnrollmentJson = "application/json"),
    ), description = "`card`, `selfie`, `liveness_frame`… for the session in the path; without `selfie`, the selfie the session accepted at `POST /v1/sessions/{id}/selfie` is used."),
    params(("id" = crate::domain::SessionId, Path),
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]{1,255}$", description = "Retry-safe key: a retry with the same key and request replays the first answer")),
    responses(
        (status = 201, description = "Decided: `status` is `verified` or `rejected` with `reasons`", body = EnrollmentDocument),
        (status = 400, body = super::error::Problem, content_type = "application/problem+json", description = "malformed_request"),
        (status = 401, body = super::error::Problem, content_type = "application/problem+json", description = "unauthenticated"),
        (status = 403, body = super::error::Problem, content_type = "application/problem+json", description = "forbidden"),
        (status = 404, body = super::error::Problem, content_type = "application/problem+json", description = "not_found (no such session)"),
        (status = 409, body = super::error::Problem, content_type = "application/problem+json", description = "session_consumed / session_expired / idempotency_conflict / idempotency_in_progress"),
        (status = 413, body = super::error::Problem, content_type = "application/problem+json", description = "payload_too_large"),
        (status = 415, body = super::error::Problem, content_type = "application/problem+json", description = "unsupported_media_type"),
        (status = 422, body = super::error::Problem, content_type = "application/problem+json", description = "invalid_card_data / my_number_not_accepted"),
        (status = 429, body = super::error::Problem, content_type = "application/problem+json", description = "rate_limited"),
        (status = 500, body = super::error::Problem, content_type = "application/problem+json", description = "internal_error"),
        (status = 503, body = super::error::Problem, content_type = "application/problem+json", description = "revocation_unavailable / overloaded / not_ready / store_unavailable / deadline_exceeded"),
    ),
    security(("api_key" = [])))]
pub async fn create_enrollment_for_session(
    State(ctx): State<ApiContext>,
    auth: TenantAuth,
    PathOf(session_id): PathOf<crate::domain::SessionId>,
    headers: HeaderMap,
    request: Request,
) -> ApiResult<Answer> {
    let key = idempotency::key(&headers)?;
    let mut upload = upload::read_enrollment(request, limits(&ctx)).await?;
    if upload.session_id.is_some() {
        return Err(ApiError::malformed(
            "`session_id` is in the path of this operation; do not send it",
        ));
    }
    upload.session_id = Some(session_id.to_string());
    Ok(enrollment::enroll(&ctx.svc, &auth.into(), upload, key).await?)
}

/// One enrollment.
#[utoipa::path(get, path = "/v1/enrollments/{id}", tag = "enrollments", params(("id" = EnrollmentId, Path)),
    responses((status = 200, body = EnrollmentDocument),
              (status = 400, body = super::error::Problem, content_type = "application/problem+json", description = "malformed_request (path)"),
              (status = 401, body = super::error::Problem, content_type = "application/problem+json"),
              (status = 403, body = super::error::Problem, content_type = "application/problem+json", description = "forbidden (a client token)"),
              (status = 429, body = super::error::Problem, content_type = "application/problem+json", description = "rate_limited"),
              (status = 404, body = super::error::Problem, content_type = "application/problem+json"),
              (status = 503, body = super::error::Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn get_enrollment(
    State(ctx): State<ApiContext>,
    auth: TenantAuth,
    PathOf(id): PathOf<EnrollmentId>,
) -> ApiResult<Json<EnrollmentDocument>> {
    Ok(Json(enrollment::get(&ctx.svc, &auth.tenant_id, &id).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// The RP's reference given when the session was opened.
    pub subject_ref: Option<String>,
    /// At most this many (default 50), newest first.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

/// Enrollments of this tenant, newest first, optionally for one `subject_ref`.
#[utoipa::path(get, path = "/v1/enrollments", tag = "enrollments", params(ListQuery),
    responses((status = 200, body = EnrollmentList),
              (status = 400, body = super::error::Problem, content_type = "application/problem+json", description = "malformed_request (limit)"),
              (status = 401, body = super::error::Problem, content_type = "application/problem+json"),
              (status = 403, body = super::error::Problem, content_type = "application/problem+json", description = "forbidden (a client token)"),
              (status = 429, body = super::error::Problem, content_type = "application/problem+json", description = "rate_limited"),
              (status = 503, body = super::error::Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn list_enrollments(
    State(ctx): State<ApiContext>,
    auth: TenantAuth,
    QueryOf(query): QueryOf<ListQuery>,
) -> ApiResult<Json<EnrollmentList>> {
    Ok(Json(
        enrollment::list(
            &ctx.svc,
            &auth.tenant_id,
            query.subject_ref.as_deref(),
            query.limit,
        )
        .await?,
    ))
}

/// Delete an enrollment: identity and templates are crypto-shredded; an audit tombstone remains.
#[utoipa::path(delete, path = "/v1/enrollments/{id}", tag = "enrollments", params(("id" = EnrollmentId, Path)),
    responses((status = 204, description = "deleted"),
              (status = 401, body = super::error::Problem, content_type = "application/problem+json"),
              (status = 403, body = super::error::Problem, content_type = "application/problem+json", description = "forbidden (a client token)"),
              (status = 429, body = super::error::Problem, content_type = "application/problem+json", description = "rate_limited"),
              (status = 404, body = super::error::Problem, content_type = "application/problem+json"),
              (status = 503, body = super::error::Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn delete_enrollment(
    State(ctx): State<ApiContext>,
    auth: TenantAuth,
    PathOf(id): PathOf<EnrollmentId>,
) -> ApiResult<StatusCode> {
    enrollment::delete(&ctx.svc, &auth.tenant_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A fresh validity check of the enrollment's certificate (現況確認).
#[utoipa::path(post, path = "/v1/enrollments/{id}/status-check", tag = "enrollments", params(("id" = EnrollmentId, Path)),
    responses((status = 200, body = StatusCheckDocument),
              (status = 401, body = super::error::Problem, content_type = "application/problem+json"),
              (status = 403, body = super::error::Problem, content_type = "application/problem+json", description = "forbidden (a client token)"),
              (status = 429, body = super::error::Problem, content_type = "application/problem+json", description = "rate_limited"),
              (status = 404, body = super::error::Problem, content_type = "application/problem+json"),
              (status = 409, body = super::error::Problem, content_type = "application/problem+json", description = "enrollment_inactive (never verified: nothing to check)"),
              (status = 503, body = super::error::Problem, content_type = "application/problem+json", description = "revocation_unavailable / store_unavailable")),
    security(("api_key" = [])))]
pub async fn status_check(
    State(ctx): State<ApiContext>,
    auth: TenantAuth,
    PathOf(id): PathOf<EnrollmentId>,
) -> ApiResult<Json<StatusCheckDocument>> {
    Ok(Json(
        status::check_enrollment(&ctx.svc, &auth.tenant_id, &id).await?,
    ))
}
