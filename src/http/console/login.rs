//! Login, logout and the language switch: the pages a visitor without a session may reach.

use super::auth::{check_posted, csrf_of_login_nonce, csrf_of_session, Posted};
use super::cookies::{cookie, set_cookie, CSRF_FIELD, LANG_COOKIE, LOGIN_COOKIE, SESSION_COOKIE};
use super::error::ConsoleError;
use super::i18n::{Lang, Msg};
use super::layout;
use crate::domain::random_bytes;
use crate::http::ApiContext;
use crate::redact::Secret;
use crate::usecase::operators::{self, LoginRequest};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use maud::html;
use serde::Deserialize;

/// How long the login page's nonce lives.
const LOGIN_NONCE_SECS: i64 = 900;

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
