//! The HTTP layer: one module per resource, each exporting `router()`, merged here where the
//! layers and the one state struct are applied. Domain modules never see axum types.

pub mod auth;
pub mod enrollments;
pub mod error;
pub mod extract;
pub mod faces;
pub mod idempotency;
pub mod openapi;
pub mod ops;
pub mod request_id;
pub mod sessions;
pub mod transactions;
pub mod upload;

pub use auth::{Caller, TenantAuth};
pub use error::{ApiError, ApiResult};

use crate::config::Settings;
use crate::crypto::KeyRing;
use crate::store::Store;
use axum::extract::DefaultBodyLimit;
use axum::Router;
use std::sync::Arc;

/// The one state shared by every handler.
#[derive(Clone)]
pub struct ApiContext {
    pub settings: Arc<Settings>,
    pub store: Arc<dyn Store>,
    pub keys: Arc<KeyRing>,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// The configured CVC issuer keys and JPKI roots.
    pub trust: Arc<crate::card::TrustStore>,
    /// The J-LIS validity checker.
    pub validity: Arc<dyn crate::jlis::ValidityChecker>,
    pub face: crate::face::FaceEngine,
}

impl ApiContext {
    /// Readiness of the engines loaded at start-up (face models, …), by name.
    pub fn engine_readiness(&self) -> Vec<(&'static str, String)> {
        let face = if self.face.is_ready() {
            "ok"
        } else {
            "warming_up"
        };
        vec![("face_models", face.to_string())]
    }
}

/// Whether an enrollment status still allows transaction-time verification.
pub fn enrollment_is_active(status: &str) -> bool {
    status == "verified"
}

pub fn router(ctx: ApiContext) -> Router {
    let body_limit = ctx.settings.server.body_limit_bytes;
    Router::new()
        .merge(sessions::router())
        .merge(enrollments::router())
        .merge(transactions::router())
        .merge(ops::router())
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(request_id::layer))
        .with_state(ctx)
}
