//! The HTTP layer: one module per resource, each exporting `router()`, merged here where the
//! layers and the one state struct are applied. Domain modules never see axum types.

pub mod auth;
pub mod claims;
pub mod console;
pub mod enrollments;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod openapi;
pub mod ops;
pub mod ratelimit;
pub mod request_id;
pub mod reviews;
pub mod search;
pub mod selfie;
pub mod serve;
pub mod sessions;
pub mod transactions;
pub mod upload;
pub mod webhooks;

pub use auth::{Caller, TenantAuth};
pub use error::{ApiError, ApiResult};

use crate::config::ServerSettings;
use crate::usecase::Services;
use axum::extract::DefaultBodyLimit;
use axum::Router;
use std::sync::Arc;

/// The one state shared by every handler: the use cases' services (one copy, shared handles)
/// plus what only the HTTP layer needs.
#[derive(Clone)]
pub struct ApiContext {
    /// Store, keys, trust, validity checker, face engine and the use cases' settings.
    pub svc: Services,
    /// `[server]`: limits of the listener and of requests.
    pub server: Arc<ServerSettings>,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Per-tenant request rate (per replica).
    pub limiter: Arc<ratelimit::TenantLimiter>,
    /// Failed authentications per client address (per replica).
    pub auth_failures: Arc<ratelimit::AuthFailureBudget>,
    /// Test hook: sees every response (see [`Observer`]).
    pub observer: Option<Observer>,
    /// The key that signs verified claims, and the published keys.
    pub claims: Arc<crate::claims::ClaimsKeys>,
}

impl ApiContext {
    /// Readiness of the engines loaded at start-up (face models, …), by name.
    pub fn engine_readiness(&self) -> Vec<(&'static str, String)> {
        let face = if self.svc.face.is_ready() {
            "ok"
        } else {
            "warming_up"
        };
        let gallery = if self.svc.faces.is_ready() {
            "ok"
        } else {
            "building"
        };
        vec![
            ("face_models", face.to_string()),
            ("face_gallery", gallery.to_string()),
        ]
    }
}

/// Every request has a deadline: past it the work is dropped (a store transaction in flight rolls
/// back) and the client gets 503 `deadline_exceeded`; nothing was decided.
async fn deadline(
    axum::extract::State(secs): axum::extract::State<u64>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match tokio::time::timeout(std::time::Duration::from_secs(secs), next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            metrics::counter!("http_deadline_exceeded_total").increment(1);
            ApiError::DeadlineExceeded(secs).into_response()
        }
    }
}

/// Every documented route with its OpenAPI operation.
pub fn api() -> utoipa_axum::router::OpenApiRouter<ApiContext> {
    use utoipa::OpenApi;
    utoipa_axum::router::OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(sessions::router())
        .merge(enrollments::router())
        .merge(transactions::router())
        .merge(webhooks::router())
        .merge(claims::router())
        .merge(search::router())
        .merge(ops::router())
        .merge(selfie::router())
        .merge(reviews::router())
}

/// Sees every response of a matched route (method, route template, status, headers, body): tests
/// validate them against the OpenAPI document. Not set in production.
pub type Observer =
    Arc<dyn Fn(&axum::http::Method, &str, u16, &axum::http::HeaderMap, &[u8]) + Send + Sync>;

async fn observe(
    axum::extract::State(observer): axum::extract::State<Observer>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let response = next.run(request).await;
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    observer(
        &method,
        &route,
        parts.status.as_u16(),
        &parts.headers,
        &bytes,
    );
    axum::response::Response::from_parts(parts, axum::body::Body::from(bytes))
}

pub fn router(ctx: ApiContext) -> Router {
    let body_limit = ctx.server.body_limit_bytes;
    let deadline_secs = ctx.server.request_deadline_secs;
    let (mut routes, mut doc) = api().split_for_parts();
    openapi::complete(&mut doc);
    if let Some(observer) = ctx.observer.clone() {
        routes = routes.route_layer(axum::middleware::from_fn_with_state(observer, observe));
    }
    // The console is HTML, outside the OpenAPI document (and so outside the observer's checks).
    routes = routes.merge(console::router());
    routes
        .layer(axum::Extension(Arc::new(doc)))
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            deadline_secs,
            deadline,
        ))
        .layer(axum::middleware::from_fn(request_id::layer))
        .with_state(ctx)
}
