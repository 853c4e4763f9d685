//! 1:N face search routes (issue 21, API key only): `POST /v1/faces/search`, and the watchlist
//! `POST/GET /v1/watchlist`, `GET/DELETE /v1/watchlist/{id}`. The flows are
//! [`crate::usecase::search`].

use super::extract::{self, PathOf, QueryOf, RawBody};
use super::upload::{self, PartLimits};
use super::{ApiContext, ApiResult, TenantAuth};
use crate::usecase::search::find::{self, SearchDocument};
use crate::usecase::search::watchlist::{self, NewEntry, WatchlistEntry, WatchlistList};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(search_faces))
        .routes(routes!(create_entry, list_entries))
        .routes(routes!(get_entry, delete_entry))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// At most this many candidates (default 10, at most `search.max_limit`, 100 by default).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// Search the tenant's enrollments for a face (1:N). Candidates are leads for a person to review.
#[utoipa::path(post, path = "/v1/faces/search", tag = "search", params(SearchQuery),
    request_body(content(
        (upload::VerifyUpload = "multipart/form-data"),
        (upload::VerifyJson = "application/json"),
    ), description = "`selfie` only (no liveness frames, no enrollment id). Quality rules as for a verify."),
    responses(
        (status = 200, description = "Searched (`candidates` may be empty), or `quality_failed`", body = SearchDocument),
        (status = 400, body = super::error::Problem, content_type = "application/problem+json", description = "malformed_request"),
        (status = 401, body = super::error::Problem, content_type = "application/problem+json", description = "unauthenticated"),
        (status = 403, body = super::error::Problem, content_type = "application/problem+json", description = "forbidden (a client token)"),
        (status = 413, body = super::error::Problem, content_type = "application/problem+json", description = "payload_too_large"),
        (status = 415, body = super::error::Problem, content_type = "application/problem+json", description = "unsupported_media_type"),
        (status = 429, body = super::error::Problem, content_type = "application/problem+json", description = "rate_limited"),
        (status = 500, body = super::error::Problem, content_type = "application/problem+json", description = "internal_error"),
        (status = 503, body = super::error::Problem, content_type = "application/problem+json", description = "overloaded / not_ready / store_unavailable / deadline_exceeded"),
    ),
    security(("api_key" = [])))]
pub async fn search_faces(
    State(ctx): State<ApiContext>,
    auth: TenantAuth,
    QueryOf(query): QueryOf<SearchQuery>,
    request: Request,
) -> ApiResult<Json<SearchDocument>> {
    let limits = PartLimits {
        card_json: 0,
        image: ctx.svc.settings.face.selfie_max_bytes,
        max_frames: 0,
    };
    let upload = upload::read_verify(request, limits).await?;
    Ok(Json(
        find::search(&ctx.svc, &auth.tenant_id, upload, query.limit).await?,
    ))
}

/// Add a face to the tenant's watchlist; every later enrollment and verify is checked against it.
#[utoipa::path(post, path = "/v1/watchlist", tag = "search", request_body = NewEntry,
    responses(
        (status = 201, body = WatchlistEntry),
        (status = 400, body = super::error::Problem, content_type = "application/problem+json", description = "malformed_request (no face in the photo, label or reason out of bounds)"),
        (status = 401, body = super::error::Problem, content_type = "application/problem+json", description = "unauthenticated"),
        (status = 403, body = super::error::Problem, content_type = "application/problem+json", description = "forbidden (a client token)"),
        (status = 413, body = super::error::Problem, content_type = "application/problem+json", description = "payload_too_large"),
        (status = 415, body = super::error::Problem, content_type = "application/problem+json", description = "unsupported_media_type"),
        (status = 429, body = super::error::Problem, content_type = "application/problem+json", description = "rate_limited"),
        (status = 500, body = super::error::Problem, content_type = "application/problem+json", description = "internal_error"),
        (status = 503, body = super::error::Problem, content_type = "application/problem+json", description = "overloaded / not_ready / store_unavailable"),
    ),
    security(("api_key" = [])))]
pub async fn create_entry(
    State(ctx): State<ApiContext>,
    auth: TenantAuth,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<WatchlistEntry>)> {
    let entry: NewEntry = extract::json_body(&headers, &body)?;
    Ok((
        StatusCode::CREATED,
        Json(watchlist::create(&ctx.svc, &auth.tenant_id, entry).await?),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// At most this many (default 50), newest first.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

/// The tenant's watchlist, newest first.
#[utoipa::path(get, path = "/v1/watchlist", tag = "search", params(ListQuery),
    responses((status = 200, body = WatchlistList),
              (status = 400, body = super::error::Problem, content_type = "application/problem+json", description = "malformed_request (limit)"),
              (status = 401, body = super::error::Problem, content_type = "application/problem+json"),
              (status = 403, body = super::error::Problem, content_type = "application/problem+json", description = "forbidden (a client token)"),
              (status = 429, body = super::error::Problem, content_type = "application/problem+json", description = "rate_limited"),
              (status = 503, body = super::error::Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn list_entries(
    State(ctx): State<ApiContext>,
    auth: TenantAuth,
    QueryOf(query): QueryOf<ListQuery>,
) -> ApiResult<Json<WatchlistList>> {
    Ok(Json(
        watchlist::list(&ctx.svc, &auth.tenant_id, query.limit).await?,
    ))
}

/// One watchlist entry (its label and reason are shown here only).
#[utoipa::path(get, path = "/v1/watchlist/{id}", tag = "search", params(("id" = String, Path, pattern = "^wle_[0-9a-f]{32}$")),
    responses((status = 200, body = WatchlistEntry),
              (status = 401, body = super::error::Problem, content_type = "application/problem+json"),
              (status = 403, body = super::error::Problem, content_type = "application/problem+json", description = "forbidden (a client token)"),
              (status = 404, body = super::error::Problem, content_type = "application/problem+json"),
              (status = 429, body = super::error::Problem, content_type = "application/problem+json", description = "rate_limited"),
              (status = 503, body = super::error::Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn get_entry(
    State(ctx): State<ApiContext>,
    auth: TenantAuth,
    PathOf(id): PathOf<String>,
) -> ApiResult<Json<WatchlistEntry>> {
    Ok(Json(watchlist::get(&ctx.svc, &auth.tenant_id, &id).await?))
}

/// Remove a watchlist entry: its face, label and reason are crypto-shredded; an audit event remains.
#[utoipa::path(delete, path = "/v1/watchlist/{id}", tag = "search", params(("id" = String, Path, pattern = "^wle_[0-9a-f]{32}$")),
    responses((status = 204, description = "deleted"),
              (status = 401, body = super::error::Problem, content_type = "application/problem+json"),
              (status = 403, body = super::error::Problem, content_type = "application/problem+json", description = "forbidden (a client token)"),
              (status = 404, body = super::error::Problem, content_type = "application/problem+json"),
              (status = 429, body = super::error::Problem, content_type = "application/problem+json", description = "rate_limited"),
              (status = 503, body = super::error::Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn delete_entry(
    State(ctx): State<ApiContext>,
    auth: TenantAuth,
    PathOf(id): PathOf<String>,
) -> ApiResult<StatusCode> {
    watchlist::delete(&ctx.svc, &auth.tenant_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
