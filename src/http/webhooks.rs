//! Webhook endpoint routes (API key only): `POST/GET /v1/webhooks`, `GET/DELETE /v1/webhooks/{id}`,
//! `POST /v1/webhooks/{id}/rotate-secret`, `GET /v1/webhooks/{id}/deliveries` and
//! `POST /v1/webhooks/{id}/deliveries/{delivery_id}/retry`. The flow is [`crate::usecase::webhooks`].

use super::extract::{self, PathOf, QueryOf, RawBody};
use super::{ApiContext, ApiResult, TenantAuth};
use crate::domain::{DeliveryId, WebhookId};
use crate::usecase::webhooks::{
    self, CreateWebhook, DeliveryDocument, DeliveryList, SecretRotated, WebhookCreated,
    WebhookDocument, WebhookList,
};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(get_webhook, delete_webhook))
        .routes(routes!(rotate_secret))
        .routes(routes!(list_deliveries))
        .routes(routes!(retry_delivery))
}

/// Register an endpoint; the answer shows its signing secret, this once.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = CreateWebhook,
    responses(
        (status = 201, body = WebhookCreated),
        (status = 400, body = super::error::Problem, content_type = "application/problem+json", description = "malformed_request (url refused, no events)"),
        (status = 409, body = super::error::Problem, content_type = "application/problem+json", description = "limit_reached (`webhooks.max_endpoints_per_tenant` endpoints exist)"),
        (status = 401, body = super::error::Problem, content_type = "application/problem+json", description = "unauthenticated"),
        (status = 403, body = super::error::Problem, content_type = "application/problem+json", description = "forbidden (a client token)"),
        (status = 413, body = super::error::Problem, content_type = "application/problem+json", description = "payload_too_large"),
        (status = 415, body = super::error::Problem, content_type = "application/problem+json", description = "unsupported_media_type"),
        (status = 429, body = super::error::Problem, content_type = "application/problem+json", description = "rate_limited"),
        (status = 503, body = super::error::Problem, content_type = "application/problem+json", description = "store_unavailable"),
    ),
    security(("api_key" = [])))]
pub async fn create_webhook(
    State(ctx): State<ApiContext>,
    auth: TenantAuth,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<WebhookCreated>)> {
    let request: CreateWebhook = extract::json_body(&headers, &body)?;
    Ok((
        StatusCode::CREATED,
        Json(webhooks::create(&ctx.svc, &auth.tenant_id, request).await?),
    ))
}

/// This tenant's endpoints.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    responses((status = 200, body = WebhookList),
              (status = 401, body = super::error::Problem, content_type = "application/problem+json"),
              (status = 403, body = super::error::Problem, content_type = "application/problem+json", description = "forbidden (a client token)"),
              (status = 429, body = super::error::Problem, content_type = "application/problem+json", description = "rate_limited"),
              (status = 503, body = super::error::Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn list_webhooks(
    State(ctx): State<ApiContext>,
    auth: TenantAuth,
) -> ApiResult<Json<WebhookList>> {
    Ok(Json(webhooks::list(&ctx.svc, &auth.tenant_id).await?))
}

/// One endpoint.
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = WebhookId, Path)),
    responses((status = 200, body = WebhookDocument),
              (status = 400, body = super::error::Problem, content_type = "application/problem+json", description = "malformed_request (path)"),
              (status = 401, body = super::error::Problem, content_type = "application/problem+json"),
              (status = 403, body = super::error::Problem, content_type = "application/problem+json", description = "forbidden (a client token)"),
              (status = 404, body = super::error::Problem, content_type = "application/problem+json"),
              (status = 429, body = super::error::Problem, content_type = "application/problem+json", description = "rate_limited"),
              (status = 503, body = super::error::Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn get_webhook(
    State(ctx): State<ApiContext>,
    auth: TenantAuth,
    PathOf(id): PathOf<WebhookId>,
) -> ApiResult<Json<WebhookDocument>> {
    Ok(Json(webhooks::get(&ctx.svc, &auth.tenant_id, &id).await?))
}

/// Delete an endpoint: nothing more is sent to it; its deliveries stay listed in the audit log.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = WebhookId, Path)),
    responses((status = 204, description = "deleted"),
              (status = 400, body = super::error::Problem, content_type = "application/problem+json", description = "malformed_request (path)"),
              (status = 401, body = super::error::Problem, content_type = "application/problem+json"),
              (status = 403, body = super::error::Problem, content_type = "application/problem+json", description = "forbidden (a client token)"),
              (status = 404, body = super::error::Problem, content_type = "application/problem+json"),
              (status = 429, body = super::error::Problem, content_type = "application/problem+json", description = "rate_limited"),
              (status = 503, body = super::error::Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn delete_webhook(
    State(ctx): State<ApiContext>,
    auth: TenantAuth,
    PathOf(id): PathOf<WebhookId>,
) -> ApiResult<StatusCode> {
    webhooks::delete(&ctx.svc, &auth.tenant_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new signing secret, shown this once; the previous one keeps signing (a second signature in
/// `webhook-signature`) until `previous_secret_valid_until`.
#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", tag = "webhooks", params(("id" = WebhookId, Path)),
    responses((status = 200, body = SecretRotated),
              (status = 400, body = super::error::Problem, content_type = "application/problem+json", description = "malformed_request (path)"),
              (status = 401, body = super::error::Problem, content_type = "application/problem+json"),
              (status = 403, body = super::error::Problem, content_type = "application/problem+json", description = "forbidden (a client token)"),
              (status = 404, body = super::error::Problem, content_type = "application/problem+json"),
              (status = 429, body = super::error::Problem, content_type = "application/problem+json", description = "rate_limited"),
              (status = 503, body = super::error::Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn rotate_secret(
    State(ctx): State<ApiContext>,
    auth: TenantAuth,
    PathOf(id): PathOf<WebhookId>,
) -> ApiResult<Json<SecretRotated>> {
    Ok(Json(
        webhooks::rotate_secret(&ctx.svc, &auth.tenant_id, &id).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// At most this many (default 50), newest first.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

/// The endpoint's deliveries, newest first, with every attempt (status code or error class, time;
/// never the receiver's body).
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks", params(("id" = WebhookId, Path), DeliveriesQuery),
    responses((status = 200, body = DeliveryList),
              (status = 400, body = super::error::Problem, content_type = "application/problem+json", description = "malformed_request (limit, path)"),
              (status = 401, body = super::error::Problem, content_type = "application/problem+json"),
              (status = 403, body = super::error::Problem, content_type = "application/problem+json", description = "forbidden (a client token)"),
              (status = 404, body = super::error::Problem, content_type = "application/problem+json"),
              (status = 429, body = super::error::Problem, content_type = "application/problem+json", description = "rate_limited"),
              (status = 503, body = super::error::Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn list_deliveries(
    State(ctx): State<ApiContext>,
    auth: TenantAuth,
    PathOf(id): PathOf<WebhookId>,
    QueryOf(query): QueryOf<DeliveriesQuery>,
) -> ApiResult<Json<DeliveryList>> {
    Ok(Json(
        webhooks::deliveries(&ctx.svc, &auth.tenant_id, &id, query.limit).await?,
    ))
}

/// Retry a delivery now, with a fresh retry budget; re-enables an endpoint that was disabled.
#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/{delivery_id}/retry", tag = "webhooks",
    params(("id" = WebhookId, Path), ("delivery_id" = DeliveryId, Path)),
    responses((status = 202, body = DeliveryDocument, description = "due now (a pending delivery is left as it is)"),
              (status = 400, body = super::error::Problem, content_type = "application/problem+json", description = "malformed_request (path)"),
              (status = 401, body = super::error::Problem, content_type = "application/problem+json"),
              (status = 403, body = super::error::Problem, content_type = "application/problem+json", description = "forbidden (a client token)"),
              (status = 404, body = super::error::Problem, content_type = "application/problem+json"),
              (status = 429, body = super::error::Problem, content_type = "application/problem+json", description = "rate_limited"),
              (status = 503, body = super::error::Problem, content_type = "application/problem+json")),
    security(("api_key" = [])))]
pub async fn retry_delivery(
    State(ctx): State<ApiContext>,
    auth: TenantAuth,
    PathOf((id, delivery_id)): PathOf<(WebhookId, DeliveryId)>,
) -> ApiResult<(StatusCode, Json<DeliveryDocument>)> {
    Ok((
        StatusCode::ACCEPTED,
        Json(webhooks::retry(&ctx.svc, &auth.tenant_id, &id, &delivery_id).await?),
    ))
}
