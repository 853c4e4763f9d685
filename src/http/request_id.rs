//! The request id: taken from a sane incoming `x-request-id` or generated, kept in a task-local
//! so errors and logs can name it, and echoed on every response.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

tokio::task_local! {
    static REQUEST_ID: String;
}

pub const HEADER: &str = "x-request-id";

/// The current request's id, or an empty string outside a request.
pub fn current() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

fn acceptable(id: &str) -> bool {
    (8..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Middleware: assigns the id, runs the request inside its span, logs one line per request and
/// records the HTTP metrics.
pub async fn layer(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(str::to_string)
        .unwrap_or_else(|| crate::domain::new_id("req"));
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route, tenant_id = tracing::field::Empty);
    let started = std::time::Instant::now();
    let mut response = {
        use tracing::Instrument;
        REQUEST_ID
            .scope(id.clone(), next.run(request))
            .instrument(span.clone())
            .await
    };
    let latency = started.elapsed();
    let status = response.status().as_u16();
    span.in_scope(|| tracing::info!(status, latency_ms = latency.as_secs_f64() * 1e3, "request"));
    crate::telemetry::record_http(method.as_str(), &route, status, latency);
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}
