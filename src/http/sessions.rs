//! `POST /v1/sessions`: the RP's backend opens a single-use session for the mobile app.

use super::extract::{self, RawBody};
use super::idempotency::{self, Answer};
use super::{ApiContext, ApiError, ApiResult, TenantAuth};
use crate::domain::{
    self, new_id, now_millis, prefix, IssuedCredential, Purpose, CLIENT_TOKEN_PREFIX,
};
use crate::liveness::Challenge;
use crate::store::{AuditEvent, NewSession};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn router() -> Router<ApiContext> {
    Router::new().route("/v1/sessions", post(create_session))
}

const MAX_SUBJECT_REF: usize = 256;
const MAX_CONTEXT_BYTES: usize = 4096;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    pub purpose: Purpose,
    /// The RP's own reference for the customer (enrollment sessions).
    pub subject_ref: Option<String>,
    /// The enrollment to re-verify (transaction sessions; required there).
    pub enrollment_id: Option<String>,
    /// Free-form JSON the RP wants kept with the session, e.g. `{"reference": "wire-2291"}`.
    #[schema(value_type = Option<Object>)]
    pub context: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedSession {
    pub id: String,
    pub purpose: Purpose,
    /// Bearer token for the mobile app; valid for this session only, until `expires_at`. Shown once.
    pub client_token: String,
    /// 32 random bytes, base64url: bound into what the card and the JPKI key sign.
    pub nonce: String,
    pub expires_at: String,
    /// The live-capture challenge: one `liveness_frame` per prompt, in order (kind `off`: none).
    pub liveness: Challenge,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_ref: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enrollment_id: Option<String>,
}

/// Open a session.
#[utoipa::path(post, path = "/v1/sessions", tag = "sessions", request_body = CreateSession,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key; the first answer is replayed for 24 h")),
    responses(
        (status = 201, body = CreatedSession),
        (status = 400, body = super::error::Problem, description = "malformed_request"),
        (status = 401, body = super::error::Problem, description = "unauthenticated"),
        (status = 403, body = super::error::Problem, description = "forbidden (a client token cannot open sessions)"),
        (status = 404, body = super::error::Problem, description = "not_found (enrollment_id)"),
        (status = 409, body = super::error::Problem, description = "enrollment_inactive / idempotency_conflict"),
        (status = 413, body = super::error::Problem, description = "payload_too_large"),
        (status = 415, body = super::error::Problem, description = "unsupported_media_type"),
    ),
    security(("api_key" = [])))]
pub async fn create_session(
    State(ctx): State<ApiContext>,
    auth: TenantAuth,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    let request: CreateSession = extract::json_body(&headers, &body)?;
    let key = idempotency::key(&headers)?;
    let fingerprint = idempotency::fingerprint("POST /v1/sessions", &[&body]);
    idempotency::once(&ctx, &auth.tenant_id, key, fingerprint, || {
        open(&ctx, &auth.tenant_id, request)
    })
    .await
}

async fn open(ctx: &ApiContext, tenant_id: &str, request: CreateSession) -> ApiResult<Answer> {
    if request
        .subject_ref
        .as_ref()
        .is_some_and(|s| s.is_empty() || s.len() > MAX_SUBJECT_REF)
    {
        return Err(ApiError::Malformed(format!(
            "subject_ref must be 1-{MAX_SUBJECT_REF} characters"
        )));
    }
    let context = match &request.context {
        Some(value) if !value.is_object() => {
            return Err(ApiError::Malformed("context must be a JSON object".into()))
        }
        Some(value) => Some(value.to_string()),
        None => None,
    };
    if context
        .as_ref()
        .is_some_and(|c| c.len() > MAX_CONTEXT_BYTES)
    {
        return Err(ApiError::Malformed(format!(
            "context must serialise to at most {MAX_CONTEXT_BYTES} bytes"
        )));
    }
    match (request.purpose, &request.enrollment_id) {
        (Purpose::Enrollment, Some(_)) => {
            return Err(ApiError::Malformed(
                "enrollment_id is only for purpose \"transaction\"".into(),
            ))
        }
        (Purpose::Transaction, None) => {
            return Err(ApiError::Malformed(
                "purpose \"transaction\" needs enrollment_id".into(),
            ))
        }
        (Purpose::Transaction, Some(enrollment_id)) => {
            let enrollment = ctx
                .store
                .get_enrollment(tenant_id, enrollment_id)
                .await?
                .ok_or(ApiError::NotFound)?;
            if !super::enrollment_is_active(&enrollment.status) {
                return Err(ApiError::EnrollmentInactive);
            }
        }
        (Purpose::Enrollment, None) => {}
    }

    let now = now_millis();
    let ttl_ms = i64::try_from(ctx.settings.sessions.ttl_secs * 1000).unwrap_or(600_000);
    let credential = IssuedCredential::new(CLIENT_TOKEN_PREFIX);
    let nonce = domain::new_nonce();
    let tenant = ctx
        .store
        .get_tenant(tenant_id)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    let mode = tenant
        .settings
        .liveness
        .unwrap_or(ctx.settings.liveness.mode);
    let challenge = Challenge::for_mode(mode, &mut rand::rngs::OsRng);
    let session = NewSession {
        id: new_id(prefix::SESSION),
        tenant_id: tenant_id.to_string(),
        purpose: request.purpose,
        subject_ref: request.subject_ref.clone(),
        enrollment_id: request.enrollment_id.clone(),
        context,
        client_token_hash: credential.hash,
        nonce,
        liveness: Some(serde_json::to_string(&challenge).map_err(ApiError::internal)?),
        created_at: now,
        expires_at: now + ttl_ms,
    };
    let audit = AuditEvent::new(
        tenant_id,
        "session.created",
        &session.id,
        serde_json::json!({"purpose": request.purpose.as_str()}),
    );
    ctx.store.create_session(&session, &audit).await?;
    let created = CreatedSession {
        id: session.id.clone(),
        purpose: request.purpose,
        client_token: credential.token.into_inner(),
        nonce: URL_SAFE_NO_PAD.encode(nonce),
        expires_at: domain::rfc3339(session.expires_at),
        liveness: challenge,
        subject_ref: request.subject_ref,
        enrollment_id: request.enrollment_id,
    };
    Ok(Answer {
        status: StatusCode::CREATED,
        body: serde_json::to_value(created).map_err(ApiError::internal)?,
        resource_id: Some(session.id),
    })
}
