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
//!   nonce cookie (`jf_login`), so a login cannot be forced from another site either.

use super::i18n::{Lang, Msg};
use super::layout::{self, ConsoleError};
use crate::domain::random_bytes;
use crate::http::ApiContext;
use crate::redact::Secret;
use crate::usecase::operators::{self, ConsoleSession, LoginRequest};
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use maud::html;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const SESSION_COOKIE: &str = "jf_console";
pub const LOGIN_COOKIE: &str = "jf_login";
pub const LANG_COOKIE: &str = "jf_lang";
/// The hidden field of every form.
pub const CSRF_FIELD: &str = "csrf";
/// How long the login page's nonce lives.
const LOGIN_NONCE_SECS: i64 = 900;

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A `Set-Cookie` value scoped to the console. `max_age` 0 deletes the cookie.
pub fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; Path=/console; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    );
    // Names and values are ours (base64url, codes): always valid header text.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

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
fn csrf_of_login_nonce(nonce: &str) -> String {
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

fn check_posted(headers: &HeaderMap, pairs: &[(String, String)], want: &str) -> bool {
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

/// `GET /console/login`: the form, with a fresh nonce cookie for its CSRF token.
pub async fn login_page(State(ctx): State<ApiContext>, lang: Lang) -> Response {
    let nonce = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    login_form(&ctx, lang, &nonce, None, StatusCode::OK)
}

fn login_form(
    ctx: &ApiContext,
    lang: Lang,
    nonce: &str,
    error: Option<Msg>,
    status: StatusCode,
) -> Response {
    let csrf = csrf_of_login_nonce(nonce);
    let body = html! {
        @if let Some(e) = error {
            p #login-error .error role="alert" { (e.text(lang)) }
        }
        form #login-form method="post" action="/console/login" {
            input type="hidden" name=(CSRF_FIELD) value=(csrf);
            p {
                label for="tenant" { (Msg::Tenant.text(lang)) }
                input #tenant type="text" name="tenant" required autocomplete="organization" spellcheck="false";
            }
            p {
                label for="login" { (Msg::LoginName.text(lang)) }
                input #login type="text" name="login" required autocomplete="username" spellcheck="false";
            }
            p {
                label for="password" { (Msg::Password.text(lang)) }
                input #password type="password" name="password" required autocomplete="current-password";
            }
            p {
                label for="totp" { (Msg::TotpCode.text(lang)) }
                input #totp type="text" name="totp" required inputmode="numeric" pattern="[0-9]{6}" maxlength="6" autocomplete="one-time-code";
            }
            p { button #login-submit type="submit" { (Msg::Login.text(lang)) } }
        }
        (layout::lang_form(lang, &csrf, "/console/login"))
    };
    let mut response = (status, layout::bare_page(lang, Msg::Login, body)).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            LOGIN_COOKIE,
            nonce,
            LOGIN_NONCE_SECS,
            ctx.svc.settings.console.cookie_secure,
        ),
    );
    response
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    login: String,
    #[serde(default)]
    password: Secret<String>,
    #[serde(default)]
    totp: Secret<String>,
}

/// `POST /console/login`.
pub async fn login(
    State(ctx): State<ApiContext>,
    lang: Lang,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Result<Response, ConsoleError> {
    let nonce = cookie(&headers, LOGIN_COOKIE).ok_or(ConsoleError::Csrf)?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
        .map_err(|_| ConsoleError::BadRequest("the form could not be read".into()))?;
    if !check_posted(&headers, &pairs, &csrf_of_login_nonce(&nonce)) {
        return Err(ConsoleError::Csrf);
    }
    let form: LoginForm = serde_urlencoded::from_bytes(&body)
        .map_err(|e| ConsoleError::BadRequest(format!("form: {e}")))?;
    let started = operators::login(
        &ctx.svc,
        LoginRequest {
            tenant: form.tenant,
            login: form.login,
            password: form.password,
            totp: form.totp,
        },
    )
    .await?;
    let secure = ctx.svc.settings.console.cookie_secure;
    let Some(started) = started else {
        let fresh = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
        return Ok(login_form(
            &ctx,
            lang,
            &fresh,
            Some(Msg::LoginRefused),
            StatusCode::UNAUTHORIZED,
        ));
    };
    let mut response = Redirect::to("/console/").into_response();
    let max_age = ctx.svc.settings.console.absolute_timeout_secs as i64;
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, started.token.expose(), max_age, secure),
    );
    headers.append(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, "", 0, secure));
    Ok(response)
}

#[derive(Deserialize)]
pub struct Empty {}

/// `POST /console/logout`.
pub async fn logout(
    State(ctx): State<ApiContext>,
    posted: Posted<Empty>,
) -> Result<Response, ConsoleError> {
    operators::logout(&ctx.svc, &posted.authed.session).await?;
    let mut response = Redirect::to("/console/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            SESSION_COOKIE,
            "",
            0,
            ctx.svc.settings.console.cookie_secure,
        ),
    );
    Ok(response)
}

#[derive(Deserialize)]
pub struct LangForm {
    #[serde(default)]
    lang: String,
    #[serde(default)]
    back: String,
}

/// `POST /console/lang`: from the login page (its nonce) or a logged-in page (the session's token).
pub async fn set_lang(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Result<Response, ConsoleError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
        .map_err(|_| ConsoleError::BadRequest("the form could not be read".into()))?;
    let by_session = cookie(&headers, SESSION_COOKIE).map(|t| csrf_of_session(&t));
    let by_nonce = cookie(&headers, LOGIN_COOKIE).map(|n| csrf_of_login_nonce(&n));
    let ok = [by_session, by_nonce]
        .into_iter()
        .flatten()
        .any(|want| check_posted(&headers, &pairs, &want));
    if !ok {
        return Err(ConsoleError::Csrf);
    }
    let form: LangForm = serde_urlencoded::from_bytes(&body)
        .map_err(|e| ConsoleError::BadRequest(format!("form: {e}")))?;
    let lang =
        Lang::parse(&form.lang).ok_or_else(|| ConsoleError::BadRequest("lang: ja or en".into()))?;
    // Only a console path: never an open redirect.
    let back = if form.back.starts_with("/console/") && !form.back.contains("//") {
        form.back
    } else {
        "/console/".to_string()
    };
    let mut response = Redirect::to(&back).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            LANG_COOKIE,
            lang.code(),
            365 * 86_400,
            ctx.svc.settings.console.cookie_secure,
        ),
    );
    Ok(response)
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
    fn cookies_are_found_among_several() {
        let h = headers(&[("cookie", "a=1; jf_console=tok; jf_lang=en")]);
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("tok"));
        assert_eq!(cookie(&h, LANG_COOKIE).as_deref(), Some("en"));
        assert_eq!(cookie(&h, LOGIN_COOKIE), None);
    }

    #[test]
    fn session_cookies_carry_every_attribute() {
        let c = set_cookie(SESSION_COOKIE, "tok", 60, true);
        assert_eq!(
            c.to_str().unwrap(),
            "jf_console=tok; Path=/console; Max-Age=60; HttpOnly; SameSite=Strict; Secure"
        );
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
