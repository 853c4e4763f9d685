//! Operations endpoints: liveness, readiness, Prometheus metrics, the OpenAPI document.

use super::ApiContext;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use std::time::Duration;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "up", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// Each dependency: `ok` or what is wrong.
    pub checks: std::collections::BTreeMap<&'static str, String>,
}

/// Ready to serve: database reachable, migrations applied, engines loaded.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn readyz(State(ctx): State<ApiContext>) -> impl IntoResponse {
    let mut checks = std::collections::BTreeMap::new();
    let database = match tokio::time::timeout(Duration::from_secs(2), ctx.svc.store.ping()).await {
        Ok(Ok(())) => "ok".to_string(),
        Ok(Err(_)) => "unreachable".to_string(),
        Err(_) => "timeout".to_string(),
    };
    let migrations = if database == "ok" {
        match ctx.svc.store.migrations_current().await {
            Ok(true) => "ok".to_string(),
            Ok(false) => "pending".to_string(),
            Err(_) => "unknown".to_string(),
        }
    } else {
        "unknown".to_string()
    };
    checks.insert("database", database);
    checks.insert("migrations", migrations);
    for (name, state) in ctx.engine_readiness() {
        checks.insert(name, state);
    }
    let ready = checks.values().all(|v| v == "ok");
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Readiness {
            status: if ready { "ready" } else { "not_ready" },
            checks,
        }),
    )
}

/// Prometheus text exposition. With `server.metrics_token` set (required in production) it needs
/// `Authorization: Bearer <token>`: the counters describe the tenants' traffic.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses(
    (status = 200, content_type = "text/plain"),
    (status = 401, body = super::error::Problem, content_type = "application/problem+json", description = "unauthenticated (a metrics token is configured)")),
    security((), ("metrics_token" = [])))]
pub async fn metrics(
    State(ctx): State<ApiContext>,
    headers: axum::http::HeaderMap,
) -> Result<impl IntoResponse, super::ApiError> {
    if let Some(token) = &ctx.server.metrics_token {
        use subtle::ConstantTimeEq;
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let want = crate::domain::credential_hash(token.expose());
        let got = crate::domain::credential_hash(presented);
        if !bool::from(want.ct_eq(&got)) {
            return Err(super::ApiError::Unauthenticated);
        }
    }
    let body = ctx.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body))
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", responses((status = 200, content_type = "application/json", body = Object, description = "OpenAPI 3.1")))]
pub async fn openapi(
    axum::Extension(doc): axum::Extension<std::sync::Arc<utoipa::openapi::OpenApi>>,
) -> Json<utoipa::openapi::OpenApi> {
    Json((*doc).clone())
}
