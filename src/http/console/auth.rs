//! Who is at the console, and whether a form really comes from it.
//!
//! - The session cookie carries a random 256-bit token; the store knows only its SHA-256. The cookie
//!   is `HttpOnly; Secure; SameSite=Strict; Path=/console`; idle and absolute expiry are the use
//!   case's (`usecase::operators::session`).
//! - CSRF: every form carries a token derived from the session token (SHA-256 under a label: only the
//!   session's holder can compute it, and it needs no storage), compared in constant time; and the
//!   request must come from this origin. The pages send `Referrer-Policy: no-referrer`, under which
//!   browsers send `Origin: null` on form posts, so `Sec-Fetch-Site` decides first (every current
//!   browser sends it), then `Origin`, then `Referer`; a client that sends none of them (not a
//!   browser) is judged on the token alone. Before login the same check runs against a short-lived
//!   nonce cookie (`jf_login`), so a login cannot be forced from another site either (`login.rs`).

use super::cookies::{cookie, CSRF_FIELD, SESSION_COOKIE};
use super::error::ConsoleError;
use super::i18n::Lang;
use crate::http::ApiContext;
use crate::usecase::operators::{self, ConsoleSession};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

fn derive(label: &str, secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(label.as_bytes());
    h.update([0]);
    h.update(secret.as_bytes());
    URL_SAFE_NO_PAD.encode(h.finalize())
}

/// The CSRF token of a session token.
pub fn csrf_of_session(token: &str) -> String {
    derive("jpki-face/console/csrf/v1", token)
}

/// The CSRF token of the login page's nonce.
pub(super) fn csrf_of_login_nonce(nonce: &str) -> String {
    derive("jpki-face/console/login-csrf/v1", nonce)
}

fn tokens_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Whether a state-changing request comes from this origin (see the module's comment).
pub fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return site.as_bytes() == b"same-origin";
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let is_ours = |value: &HeaderValue| {
        let Some(url) = value.to_str().ok().and_then(|v| url::Url::parse(v).ok()) else {
            return false;
        };
        let authority = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => return false,
        };
        matches!(url.scheme(), "http" | "https") && host == Some(authority.as_str())
    };
    if let Some(origin) = headers.get(header::ORIGIN) {
        return is_ours(origin);
    }
    if let Some(referer) = headers.get(header::REFERER) {
        return is_ours(referer);
    }
    true
}

/// A logged-in operator's request: the session, its CSRF token, the language, the path.
pub struct Authed {
    pub session: ConsoleSession,
    pub csrf: String,
    pub lang: Lang,
    pub path: String,
}

impl Authed {
    /// Refuses (403 page) unless `allowed`.
    pub fn require(&self, allowed: bool) -> Result<(), ConsoleError> {
        if allowed {
            Ok(())
        } else {
            Err(ConsoleError::Forbidden)
        }
    }

    pub fn tenant(&self) -> &crate::domain::TenantId {
        &self.session.operator.tenant_id
    }
}

impl FromRequestParts<ApiContext> for Authed {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &ApiContext,
    ) -> Result<Self, Self::Rejection> {
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or(ConsoleError::NotLoggedIn)?;
        let session = operators::session(&ctx.svc, &token)
            .await?
            .ok_or(ConsoleError::NotLoggedIn)?;
        Ok(Authed {
            csrf: csrf_of_session(&token),
            session,
            lang: Lang::of(&parts.headers),
            path: parts.uri.path().to_string(),
        })
    }
}

/// A form posted by a logged-in operator, its origin and CSRF token checked before it is parsed.
pub struct Posted<F> {
    pub authed: Authed,
    pub form: F,
}

pub(super) fn check_posted(headers: &HeaderMap, pairs: &[(String, String)], want: &str) -> bool {
    let presented = pairs
        .iter()
        .find(|(k, _)| k == CSRF_FIELD)
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    // Both checks always run.
    let token_ok = tokens_equal(presented, want);
    same_origin(headers) & token_ok
}

async fn form_body(req: Request, ctx: &ApiContext) -> Result<bytes::Bytes, ConsoleError> {
    axum::body::Bytes::from_request(req, ctx)
        .await
        .map_err(|_| ConsoleError::BadRequest("the form could not be read".into()))
}

impl<F: DeserializeOwned + Send> FromRequest<ApiContext> for Posted<F> {
    type Rejection = ConsoleError;

    async fn from_request(req: Request, ctx: &ApiContext) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let authed = Authed::from_request_parts(&mut parts, ctx).await?;
        let headers = parts.headers.clone();
        let bytes = form_body(Request::from_parts(parts, body), ctx).await?;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| ConsoleError::BadRequest("the form could not be read".into()))?;
        if !check_posted(&headers, &pairs, &authed.csrf) {
            return Err(ConsoleError::Csrf);
        }
        let form = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| ConsoleError::BadRequest(format!("form: {e}")))?;
        Ok(Posted { authed, form })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn same_origin_prefers_fetch_metadata_then_origin_then_referer() {
        assert!(same_origin(&headers(&[
            ("sec-fetch-site", "same-origin"),
            ("origin", "null")
        ])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "same-site")])));
        let host = ("host", "127.0.0.1:8080");
        assert!(same_origin(&headers(&[
            host,
            ("origin", "http://127.0.0.1:8080")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("origin", "http://evil.example")
        ])));
        assert!(!same_origin(&headers(&[host, ("origin", "null")])));
        assert!(same_origin(&headers(&[
            host,
            ("referer", "http://127.0.0.1:8080/console/x")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("referer", "http://127.0.0.1:9/console/")
        ])));
        assert!(same_origin(&headers(&[host])));
    }

    #[test]
    fn csrf_tokens_depend_on_the_session_and_compare_exactly() {
        let a = csrf_of_session("one");
        assert_ne!(a, csrf_of_session("two"));
        assert_ne!(a, csrf_of_login_nonce("one"));
        assert!(tokens_equal(&a, &csrf_of_session("one")));
        assert!(!tokens_equal(&a, ""));
    }
}
