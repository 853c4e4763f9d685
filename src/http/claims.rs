//! Verified claims routes: `GET /v1/enrollments/{id}/verified-claims` (API key; a signed JWT, or
//! the same claims as JSON), and the public `GET /.well-known/jwks.json` and
//! `GET /.well-known/openid-ida-configuration`. The flow is [`crate::usecase::claims`].

use super::extract::{PathOf, QueryOf};
use super::{ApiContext, ApiError, ApiResult, TenantAuth};
use crate::claims::{self, ClaimSet, ClaimsPayload, Discovery, Jwks};
use crate::usecase::claims as flow;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(verified_claims))
        .routes(routes!(jwks))
        .routes(routes!(ida_configuration))
}

/// The media type of a signed claims token (RFC 7519 §10.3.1).
pub const JWT: &str = "application/jwt";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Jwt,
    Json,
}

impl Format {
    fn as_str(self) -> &'static str {
        match self {
            Format::Jwt => "jwt",
            Format::Json => "json",
        }
    }
}

/// The weight `accept` gives `mime` (`type/subtype`): the q of the most specific matching range.
fn weight(accept: &str, mime: &str) -> f32 {
    let (kind, _) = mime.split_once('/').unwrap_or((mime, ""));
    let mut best: Option<(u8, f32)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0)
            .clamp(0.0, 1.0);
        let specificity = if media == mime {
            3
        } else if media.strip_suffix("/*") == Some(kind) {
            2
        } else if media == "*/*" {
            1
        } else {
            continue;
        };
        if best.is_none_or(|(s, _)| specificity > s) {
            best = Some((specificity, q));
        }
    }
    best.map(|(_, q)| q).unwrap_or(0.0)
}

/// `application/jwt` unless the client prefers `application/json`; 406 when it takes neither.
fn negotiate(headers: &HeaderMap) -> ApiResult<Format> {
    let accept: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if accept.is_empty() {
        return Ok(Format::Jwt);
    }
    let accept = accept.join(",");
    let (jwt, json) = (weight(&accept, JWT), weight(&accept, "application/json"));
    match (jwt, json) {
        (j, s) if j <= 0.0 && s <= 0.0 => Err(ApiError::NotAcceptable(format!(
            "verified claims are served as {JWT} (signed) or application/json"
        ))),
        (j, s) if s > j => Ok(Format::Json),
        _ => Ok(Format::Jwt),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClaimsQuery {
    /// OpenID Connect `claims` request (JSON), e.g. `{"verified_claims":{"verification":{"trust_framework":null},"claims":{"birthdate":null}}}`:
    /// only the claims named are returned. Absent: every claim (`name`, `birthdate`, `gender`, `address`).
    #[param(max_length = 4096)]
    pub claims: Option<String>,
}

fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::VARY, HeaderValue::from_static("accept"));
    response
}

/// The enrollment's verified claims (OpenID Connect for Identity Assurance `verified_claims`,
/// trust framework `jp_aml`), signed with the service's claims key.
#[utoipa::path(get, path = "/v1/enrollments/{id}/verified-claims", tag = "claims",
    params(("id" = crate::domain::EnrollmentId, Path), ClaimsQuery,
           ("Accept" = Option<String>, Header, description = "`application/jwt` (the default) or `application/json`")),
    responses(
        (status = 200, description = "A compact JWS (ES256, `kid` in the header; verify with `/.well-known/jwks.json`), or on `Accept: application/json` the same claims set unsigned",
         content((String = "application/jwt"), (ClaimsPayload = "application/json"))),
        (status = 400, body = super::error::Problem, content_type = "application/problem+json", description = "malformed_request (the `claims` parameter)"),
        (status = 401, body = super::error::Problem, content_type = "application/problem+json", description = "unauthenticated"),
        (status = 403, body = super::error::Problem, content_type = "application/problem+json", description = "forbidden (a client token)"),
        (status = 404, body = super::error::Problem, content_type = "application/problem+json", description = "not_found (also deleted, shredded or another tenant's)"),
        (status = 406, body = super::error::Problem, content_type = "application/problem+json", description = "not_acceptable (neither application/jwt nor application/json accepted)"),
        (status = 409, body = super::error::Problem, content_type = "application/problem+json", description = "enrollment_not_verified (rejected, revoked, identity_changed, status_unknown)"),
        (status = 429, body = super::error::Problem, content_type = "application/problem+json", description = "rate_limited"),
        (status = 500, body = super::error::Problem, content_type = "application/problem+json", description = "internal_error"),
        (status = 503, body = super::error::Problem, content_type = "application/problem+json", description = "store_unavailable / deadline_exceeded"),
    ),
    security(("api_key" = [])))]
pub async fn verified_claims(
    State(ctx): State<ApiContext>,
    auth: TenantAuth,
    PathOf(id): PathOf<crate::domain::EnrollmentId>,
    QueryOf(query): QueryOf<ClaimsQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let format = negotiate(&headers)?;
    let wanted = ClaimSet::from_request(query.claims.as_deref()).map_err(ApiError::malformed)?;
    let request = flow::Request {
        tenant_id: &auth.tenant_id,
        key_id: &auth.key_id,
        format: format.as_str(),
        kid: ctx.claims.kid(),
    };
    let payload = flow::verified_claims(&ctx.svc, request, &id, &wanted).await?;
    Ok(no_store(match format {
        Format::Json => Json(payload).into_response(),
        Format::Jwt => {
            let token = ctx.claims.sign(&payload).map_err(ApiError::internal)?;
            ([(header::CONTENT_TYPE, JWT)], token).into_response()
        }
    }))
}

/// The public keys that verify claims tokens: the current key and retired keys in their grace period.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "claims",
    responses((status = 200, body = Jwks, description = "JWK Set (RFC 7517)"),
              (status = 503, body = super::error::Problem, content_type = "application/problem+json", description = "deadline_exceeded")))]
pub async fn jwks(State(ctx): State<ApiContext>) -> Response {
    let mut response = Json(ctx.claims.jwks(chrono::Utc::now())).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

/// The Identity Assurance members of a discovery document, for an IdP to merge into its own.
#[utoipa::path(get, path = "/.well-known/openid-ida-configuration", tag = "claims",
    responses((status = 200, body = Discovery),
              (status = 503, body = super::error::Problem, content_type = "application/problem+json", description = "deadline_exceeded")))]
pub async fn ida_configuration(State(ctx): State<ApiContext>) -> Json<Discovery> {
    let issuer = &ctx.svc.settings.claims.issuer;
    Json(claims::discovery(issuer, issuer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(&HeaderMap::new()).unwrap(), Format::Jwt);
        assert_eq!(negotiate(&accept("*/*")).unwrap(), Format::Jwt);
        assert_eq!(negotiate(&accept("application/jwt")).unwrap(), Format::Jwt);
        assert_eq!(
            negotiate(&accept("application/json")).unwrap(),
            Format::Json
        );
        assert_eq!(
            negotiate(&accept("application/jwt;q=0.5, application/json")).unwrap(),
            Format::Json
        );
        assert_eq!(
            negotiate(&accept("application/*, application/json;q=0")).unwrap(),
            Format::Jwt
        );
        assert!(negotiate(&accept("text/html")).is_err());
        assert!(negotiate(&accept("application/json;q=0, application/jwt;q=0")).is_err());
    }
}
