//! Review routes (issue 22, API key only), for an RP that plugs its own case-management tool in
//! instead of the console: `GET /v1/reviews` (the queue), `GET /v1/reviews/{id}` (one case),
//! `POST /v1/enrollments/{id}/review` (the decision) and `GET /v1/enrollments/{id}/evidence/{kind}`
//! (a photo, audited). The flows are [`crate::usecase::review`].

use super::extract::{self, PathOf, QueryOf, RawBody};
use super::{ApiContext, ApiResult, TenantAuth};
use crate::domain::review::{EvidenceKind, ReviewDecision, ReviewReasonCode, Reviewer};
use crate::domain::EnrollmentId;
use crate::usecase::review::{
    self, ReviewCase, ReviewListQuery, ReviewOutcome, ReviewPage, ReviewRequest,
};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(list_reviews))
        .routes(routes!(get_review))
        .routes(routes!(review_enrollment))
        .routes(routes!(get_evidence))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QueueQuery {
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// At most this many (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

/// The tenant's enrollments waiting for a person, oldest first.
#[utoipa::path(get, path = "/v1/reviews", tag = "reviews", params(QueueQuery),
    responses((status = 200, body = ReviewPage),
              (status = 400, body = super::error::Problem, content_type = "application/problem+json", description = "malformed_request (limit, cursor)"),
              (status = 401, body = super::error::Problem, content_type = "application/problem+json"),
              (status = 403, body = super::error::Problem, content_type = "application/problem+json", description = "forbidden (a client token)"),
              (status = 429, body = super::error::Problem, content_type = "application/problem+json", description = "rate_limited"),
              (status = 503, body = super::error::Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn list_reviews(
    State(ctx): State<ApiContext>,
    auth: TenantAuth,
    QueryOf(query): QueryOf<QueueQuery>,
) -> ApiResult<Json<ReviewPage>> {
    let page = ReviewListQuery {
        after: query.cursor,
        limit: query.limit,
    };
    Ok(Json(
        review::list_reviews(&ctx.svc, &auth.tenant_id, page).await?,
    ))
}

/// One enrollment that went to review: its checks, scores and thresholds, the reasons that sent it
/// there, the approvals so far and which photos are still held.
#[utoipa::path(get, path = "/v1/reviews/{id}", tag = "reviews", params(("id" = EnrollmentId, Path)),
    responses((status = 200, body = ReviewCase),
              (status = 401, body = super::error::Problem, content_type = "application/problem+json"),
              (status = 403, body = super::error::Problem, content_type = "application/problem+json", description = "forbidden (a client token)"),
              (status = 404, body = super::error::Problem, content_type = "application/problem+json", description = "not_found (also an enrollment that never went to review)"),
              (status = 429, body = super::error::Problem, content_type = "application/problem+json", description = "rate_limited"),
              (status = 503, body = super::error::Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn get_review(
    State(ctx): State<ApiContext>,
    auth: TenantAuth,
    PathOf(id): PathOf<EnrollmentId>,
) -> ApiResult<Json<ReviewCase>> {
    Ok(Json(
        review::get_review(&ctx.svc, &auth.tenant_id, &id).await?,
    ))
}

/// The body of `POST /v1/enrollments/{id}/review`. No `Debug`: the note must never reach a log.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    pub decision: ReviewDecision,
    /// `verified_by_reviewer` with `approve`; any other code with `reject`.
    pub reason_code: ReviewReasonCode,
    /// Free text, at most 1000 characters: sealed under the enrollment's key, never logged, gone
    /// with a reject.
    #[schema(max_length = 1000)]
    pub note: Option<String>,
    /// The RP's own opaque id of the reviewer (never a name): written to the audit log, and what the
    /// four-eyes rule compares.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._:@-]{1,64}$")]
    pub reviewer: String,
}

/// Decide an enrollment in review, exactly once: `approve` → `verified`, `reject` → `rejected`
/// (identity, templates and evidence shredded). Under the tenant's four-eyes rule the first approve
/// answers 202 and a second, different reviewer decides.
#[utoipa::path(post, path = "/v1/enrollments/{id}/review", tag = "reviews", params(("id" = EnrollmentId, Path)),
    request_body = ReviewBody,
    responses((status = 200, body = ReviewOutcome, description = "decided"),
              (status = 202, body = ReviewOutcome, description = "awaiting_second_approval (four-eyes)"),
              (status = 400, body = super::error::Problem, content_type = "application/problem+json", description = "malformed_request (reason code that does not go with the decision, note too long, reviewer)"),
              (status = 401, body = super::error::Problem, content_type = "application/problem+json"),
              (status = 403, body = super::error::Problem, content_type = "application/problem+json", description = "forbidden (a client token)"),
              (status = 404, body = super::error::Problem, content_type = "application/problem+json"),
              (status = 409, body = super::error::Problem, content_type = "application/problem+json", description = "review_already_decided (with `enrollment_status`) / second_reviewer_required"),
              (status = 415, body = super::error::Problem, content_type = "application/problem+json", description = "unsupported_media_type"),
              (status = 429, body = super::error::Problem, content_type = "application/problem+json", description = "rate_limited"),
              (status = 503, body = super::error::Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn review_enrollment(
    State(ctx): State<ApiContext>,
    auth: TenantAuth,
    PathOf(id): PathOf<EnrollmentId>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<ReviewOutcome>)> {
    let body: ReviewBody = extract::json_body(&headers, &body)?;
    let reviewer = Reviewer::ApiKey {
        key_id: auth.key_id,
        reviewer_ref: body.reviewer,
    };
    let request = ReviewRequest {
        decision: body.decision,
        reason_code: body.reason_code,
        note: body.note,
    };
    let outcome = review::decide(&ctx.svc, &auth.tenant_id, &id, reviewer, request).await?;
    let status = match outcome {
        ReviewOutcome::Decided { .. } => StatusCode::OK,
        ReviewOutcome::AwaitingSecondApproval => StatusCode::ACCEPTED,
    };
    Ok((status, Json(outcome)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ViewerQuery {
    /// The RP's opaque id of the person looking (the audit event names them).
    #[param(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9._:@-]{1,64}$")]
    pub reviewer: String,
}

/// A photo of an enrollment's review evidence (`chip_photo` or `selfie`) as JPEG. Every view is an
/// audit event (`review.evidence_viewed`) naming the viewer. 404 once shredded (decided, past the
/// retention cap, deleted) and for an enrollment that never went to review.
#[utoipa::path(get, path = "/v1/enrollments/{id}/evidence/{kind}", tag = "reviews",
    params(("id" = EnrollmentId, Path), ("kind" = EvidenceKind, Path), ViewerQuery),
    responses((status = 200, description = "The photo (longest side at most 640 px)", content_type = "image/jpeg", body = String),
              (status = 400, body = super::error::Problem, content_type = "application/problem+json", description = "malformed_request (reviewer)"),
              (status = 401, body = super::error::Problem, content_type = "application/problem+json"),
              (status = 403, body = super::error::Problem, content_type = "application/problem+json", description = "forbidden (a client token)"),
              (status = 404, body = super::error::Problem, content_type = "application/problem+json"),
              (status = 429, body = super::error::Problem, content_type = "application/problem+json", description = "rate_limited"),
              (status = 503, body = super::error::Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn get_evidence(
    State(ctx): State<ApiContext>,
    auth: TenantAuth,
    PathOf((id, kind)): PathOf<(EnrollmentId, EvidenceKind)>,
    QueryOf(query): QueryOf<ViewerQuery>,
) -> ApiResult<Response> {
    if !crate::domain::review::is_reviewer_ref(&query.reviewer) {
        return Err(super::ApiError::malformed(
            "reviewer: 1 to 64 characters of A-Z a-z 0-9 . _ : @ - (an opaque id, not a name)",
        ));
    }
    let viewer = Reviewer::ApiKey {
        key_id: auth.key_id,
        reviewer_ref: query.reviewer,
    };
    let photo = review::evidence(&ctx.svc, &auth.tenant_id, &id, kind, viewer).await?;
    let mut response = photo.bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(photo.content_type),
    );
    // A person's face: never kept by a cache on the way.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
