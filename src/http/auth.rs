//! Authentication: tenant API keys (`jfk_live_…`) for the RP's backend and session client tokens
//! (`jfc_…`) for the mobile app. Presented credentials are hashed and looked up by hash; the
//! stored hash is then compared in constant time. Every failure is the same 401.

use super::{ApiContext, ApiError};
use crate::domain::{credential_hash, now_millis, TenantId, API_KEY_PREFIX, CLIENT_TOKEN_PREFIX};
pub use crate::usecase::Caller;
use crate::usecase::UseCaseError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use subtle::ConstantTimeEq;

/// The RP backend only: an API key.
#[derive(Debug, Clone)]
pub struct TenantAuth {
    pub tenant_id: TenantId,
    pub key_id: String,
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

/// The client's address, as the accept loop recorded it (absent in in-process tests).
fn client_ip(parts: &Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

async fn authenticate(parts: &Parts, ctx: &ApiContext) -> Result<Caller, ApiError> {
    let ip = client_ip(parts);
    // An address that keeps presenting bad credentials is refused before the database is asked.
    if let Some(ip) = ip {
        ctx.auth_failures
            .check(ip)
            .map_err(|retry_after_secs| UseCaseError::RateLimited {
                retry_after_secs,
                detail: "too many failed authentications from this address",
            })?;
    }
    let caller = match identify(parts, ctx).await {
        Err(ApiError::Unauthenticated) => {
            if let Some(ip) = ip {
                ctx.auth_failures.charge(ip);
            }
            return Err(ApiError::Unauthenticated);
        }
        other => other?,
    };
    tracing::Span::current().record("tenant_id", caller.tenant_id().as_str());
    ctx.limiter
        .check(caller.tenant_id().as_str())
        .map_err(|retry_after_secs| UseCaseError::RateLimited {
            retry_after_secs,
            detail: "this tenant's request rate is exceeded",
        })?;
    Ok(caller)
}

/// Who the presented credential belongs to; every failure is the same 401.
async fn identify(parts: &Parts, ctx: &ApiContext) -> Result<Caller, ApiError> {
    let token = bearer(parts).ok_or(ApiError::Unauthenticated)?;
    if token.len() > 256 {
        return Err(ApiError::Unauthenticated);
    }
    let presented = credential_hash(token);
    let caller = if token.starts_with(API_KEY_PREFIX) {
        let (key_id, tenant_id, stored) = ctx
            .svc
            .store
            .api_key_by_hash(&presented)
            .await?
            .ok_or(ApiError::Unauthenticated)?;
        if !bool::from(stored.ct_eq(&presented)) {
            return Err(ApiError::Unauthenticated);
        }
        Caller::Tenant { tenant_id, key_id }
    } else if token.starts_with(CLIENT_TOKEN_PREFIX) {
        let (session, stored) = ctx
            .svc
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
            Caller::Tenant { tenant_id, key_id } => Ok(TenantAuth { tenant_id, key_id }),
            Caller::Client { .. } => Err(UseCaseError::Forbidden(
                "this operation needs the tenant's API key, not a session client token".into(),
            )
            .into()),
        }
    }
}

impl From<TenantAuth> for Caller {
    fn from(auth: TenantAuth) -> Self {
        Caller::Tenant {
            tenant_id: auth.tenant_id,
            key_id: auth.key_id,
        }
    }
}
