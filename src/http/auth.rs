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

/// The client's address: the TCP peer as the accept loop recorded it (absent in in-process tests),
/// or, when the peer is one of `server.trusted_proxies`, the right-most `X-Forwarded-For` address that
/// is not a trusted proxy (a client can prepend anything; only what our proxies appended counts).
fn client_ip(parts: &Parts, trusted_proxies: &[std::net::IpAddr]) -> Option<std::net::IpAddr> {
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())?;
    Some(forwarded_client(
        peer,
        trusted_proxies,
        parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok()),
    ))
}

fn forwarded_client<'a>(
    peer: std::net::IpAddr,
    trusted_proxies: &[std::net::IpAddr],
    forwarded_for: impl Iterator<Item = &'a str>,
) -> std::net::IpAddr {
    if !trusted_proxies.contains(&peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded_for.flat_map(|v| v.split(',')).collect();
    for hop in hops.iter().rev() {
        match hop.trim().parse::<std::net::IpAddr>() {
            Ok(ip) if trusted_proxies.contains(&ip) => continue,
            Ok(ip) => return ip,
            // An unparsable hop: stop trusting the chain there.
            Err(_) => return peer,
        }
    }
    peer
}

async fn authenticate(parts: &Parts, ctx: &ApiContext) -> Result<Caller, ApiError> {
    let ip = client_ip(parts, &ctx.server.trusted_proxies);
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

#[cfg(test)]
mod tests {
    use super::forwarded_client;
    use std::net::IpAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_client_is_the_peer_unless_the_peer_is_a_trusted_proxy() {
        let lb = ip("10.0.0.2");
        let proxies = [lb];
        // A direct client cannot claim another address.
        assert_eq!(
            forwarded_client(ip("198.51.100.7"), &proxies, ["203.0.113.9"].into_iter()),
            ip("198.51.100.7")
        );
        // Behind the balancer: the address it appended, not what the client prepended.
        assert_eq!(
            forwarded_client(lb, &proxies, ["1.2.3.4, 203.0.113.9"].into_iter()),
            ip("203.0.113.9")
        );
        // Two trusted hops, two headers.
        assert_eq!(
            forwarded_client(lb, &proxies, ["203.0.113.9", "10.0.0.2"].into_iter()),
            ip("203.0.113.9")
        );
        // No header, or garbage: the peer itself.
        assert_eq!(forwarded_client(lb, &proxies, std::iter::empty()), lb);
        assert_eq!(forwarded_client(lb, &proxies, ["junk"].into_iter()), lb);
        // Nothing trusted by default.
        assert_eq!(forwarded_client(lb, &[], ["203.0.113.9"].into_iter()), lb);
    }
}
