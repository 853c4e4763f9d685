//! `Idempotency-Key` on POSTs: a retry with the same key and the same request gets the first
//! answer again; the same key with a different request is 409 `idempotency_conflict`.
//! Answers are kept sealed under the KEK (they can hold a client token or identity) for
//! `idempotency.ttl_secs`. Errors are not kept: they decided nothing, so a retry runs again.

use super::{ApiContext, ApiError, ApiResult};
use crate::domain::now_millis;
use crate::store::IdempotentResponse;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::future::Future;

pub const HEADER: &str = "idempotency-key";

/// A successful answer: status, JSON body, and the id of the resource it created, if any.
pub struct Answer {
    pub status: StatusCode,
    pub body: serde_json::Value,
    pub resource_id: Option<String>,
}

/// The Idempotency-Key header, if sent: 1–255 visible ASCII characters.
pub fn key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(value) = headers.get(HEADER) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .map_err(|_| ApiError::Malformed("Idempotency-Key must be visible ASCII".into()))?;
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::Malformed(
            "Idempotency-Key must be 1-255 visible ASCII characters".into(),
        ));
    }
    Ok(Some(key.to_string()))
}

/// A fingerprint of what the request asks for (route plus its meaningful content).
pub fn fingerprint(route: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(route.as_bytes());
    for part in parts {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Runs `work` once per (tenant, key); replays the stored answer for a matching retry.
pub async fn once<F, Fut>(
    ctx: &ApiContext,
    tenant_id: &str,
    key: Option<String>,
    request: [u8; 32],
    work: F,
) -> ApiResult<Response>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ApiResult<Answer>>,
{
    let Some(key) = key else {
        let answer = work().await?;
        return Ok((answer.status, axum::Json(answer.body)).into_response());
    };
    let context = [tenant_id, key.as_str()];
    if let Some(stored) = ctx
        .store
        .idempotent_response(tenant_id, &key, now_millis())
        .await?
    {
        if stored.request_hash != request {
            return Err(ApiError::IdempotencyConflict);
        }
        let body = ctx
            .keys
            .open_system(&context, &stored.body)
            .map_err(ApiError::internal)?;
        let status = StatusCode::from_u16(stored.status).map_err(ApiError::internal)?;
        let mut response = json_response(status, body);
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
        return Ok(response);
    }
    let answer = work().await?;
    let body = serde_json::to_vec(&answer.body).map_err(ApiError::internal)?;
    let stored = IdempotentResponse {
        request_hash: request,
        status: answer.status.as_u16(),
        body: ctx.keys.seal_system(&context, &body),
        resource_id: answer.resource_id,
    };
    let ttl_ms =
        i64::try_from(ctx.settings.idempotency.ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    ctx.store
        .save_idempotent_response(tenant_id, &key, &stored, now_millis(), ttl_ms)
        .await?;
    Ok(json_response(answer.status, body))
}
