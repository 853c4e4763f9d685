//! Authentication: tenant API keys (`jfk_live_…`) for the RP's backend and session client tokens
//! (`jfc_…`) for the mobile app. Presented credentials are hashed and looked up by hash; the
//! stored hash is then compared in constant time. Every failure is the same 401.

use super::{ApiContext, ApiError};
use crate::domain::{credential_hash, now_millis, API_KEY_PREFIX, CLIENT_TOKEN_PREFIX};
use crate::store::Session;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use subtle::ConstantTimeEq;

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The RP's backend, with a tenant API key.
    Tenant { tenant_id: String },
    /// The RP's mobile app, with the client token of one live session.
    Client { session: Box<Session> },
}

impl Caller {
    pub fn tenant_id(&self) -> &str {
        match self {
            Caller::Tenant { tenant_id } => tenant_id,
            Caller::Client { session } => &session.tenant_id,
        }
    }
}

/// The RP backend only: an API key.
#[derive(Debug, Clone)]
pub struct TenantAuth {
    pub tenant_id: String,
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

async fn authenticate(parts: &Parts, ctx: &ApiContext) -> Result<Caller, ApiError> {
    let token = bearer(parts).ok_or(ApiError::Unauthenticated)?;
    if token.len() > 256 {
        return Err(ApiError::Unauthenticated);
    }
    let presented = credential_hash(token);
    let caller = if token.starts_with(API_KEY_PREFIX) {
        let (tenant_id, stored) = ctx
            .store
            .tenant_for_api_key(&presented)
            .await?
            .ok_or(ApiError::Unauthenticated)?;
        if !bool::from(stored.ct_eq(&presented)) {
            return Err(ApiError::Unauthenticated);
        }
        Caller::Tenant { tenant_id }
    } else if token.starts_with(CLIENT_TOKEN_PREFIX) {
        let (session, stored) = ctx
            .store
            .session_by_token(&presented)
            .await?
            .ok_or(ApiError::Unauthenticated)?;
        if !bool::from(stored.ct_eq(&presented)) || now_millis() >= session.expires_at {
            return Err(ApiError::Unauthenticated);
        }
        Caller::Client {
            session: Box::new(session),
        }
    } else {
        return Err(ApiError::Unauthenticated);
    };
    tracing::Span::current().record("tenant_id", caller.tenant_id());
    Ok(caller)
}

impl FromRequestParts<ApiContext> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &ApiContext,
    ) -> Result<Self, Self::Rejection> {
        authenticate(parts, ctx).await
    }
}

impl FromRequestParts<ApiContext> for TenantAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &ApiContext,
    ) -> Result<Self, Self::Rejection> {
        match authenticate(parts, ctx).await? {
            Caller::Tenant { tenant_id } => Ok(TenantAuth { tenant_id }),
            Caller::Client { .. } => Err(ApiError::Forbidden(
                "this operation needs the tenant's API key, not a session client token".into(),
            )),
        }
    }
}
