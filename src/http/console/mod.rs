//! The back-office console under `/console/` (issue 22; docs/console.md): server-rendered HTML, no
//! script, one stylesheet. Its rooms: `cookies`, `auth` (sessions, CSRF, same origin), `login`
//! (login, logout, language), `error` (refusals), `layout` (the frame, error pages), `i18n`
//! (Japanese and English), `pages` (dashboard, enrollments), `reviews` (queue, case, photos), `admin` (webhooks, API
//! keys, settings, operators). Every response carries the strict headers set here.

pub mod admin;
pub mod auth;
pub mod cookies;
pub mod error;
pub mod i18n;
pub mod layout;
pub mod login;
pub mod pages;
pub mod reviews;

use super::ApiContext;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

/// No script, no inline style, nothing from elsewhere, never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLESHEET: &str = include_str!("console.css");
/// The page icon: without one the browser asks for /favicon.ico on every page and logs the 404.
const ICON: &str = include_str!("icon.svg");

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/console/", get(pages::dashboard))
        .route(
            "/console",
            get(|| async { axum::response::Redirect::to("/console/") }),
        )
        .route("/console/login", get(login::login_page).post(login::login))
        .route("/console/logout", post(login::logout))
        .route("/console/lang", post(login::set_lang))
        .route("/console/static/console.css", get(stylesheet))
        .route("/console/static/icon.svg", get(icon))
        .route("/console/enrollments", get(pages::enrollments))
        .route("/console/enrollments/subject", post(pages::subject_filter))
        .route("/console/enrollments/{id}", get(pages::enrollment))
        .route("/console/reviews", get(reviews::queue))
        .route(
            "/console/reviews/{id}",
            get(reviews::case).post(reviews::decide),
        )
        .route("/console/reviews/{id}/photo/{kind}", get(reviews::photo))
        .route("/console/webhooks", get(admin::webhooks))
        .route(
            "/console/webhooks/{webhook}/deliveries/{delivery}/retry",
            post(admin::retry_delivery),
        )
        .route("/console/keys", get(admin::keys).post(admin::create_key))
        .route("/console/keys/{id}/revoke", post(admin::revoke_key))
        .route(
            "/console/settings",
            get(admin::settings).post(admin::save_settings),
        )
        .route(
            "/console/operators",
            get(admin::operators).post(admin::create_operator),
        )
        .route(
            "/console/operators/{id}/disable",
            post(admin::disable_operator),
        )
        // Unknown console paths get the console's 404 page (a fallback cannot be merged).
        .route("/console/{*rest}", get(not_found).post(not_found))
        .layer(axum::middleware::from_fn(frame))
}

async fn not_found() -> error::ConsoleError {
    error::ConsoleError::UseCase(crate::usecase::UseCaseError::NotFound)
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        STYLESHEET,
    )
        .into_response()
}

async fn icon() -> Response {
    ([(header::CONTENT_TYPE, "image/svg+xml")], ICON).into_response()
}

/// Renders error pages in the reader's language and puts the security headers on every response.
async fn frame(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let lang = i18n::Lang::of(request.headers());
    let mut response = next.run(request).await;
    if let Some(page) = response.extensions_mut().remove::<error::ErrorPage>() {
        let status = response.status();
        let cookies: Vec<HeaderValue> = response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .cloned()
            .collect();
        response = (status, layout::error_body(lang, &page)).into_response();
        for c in cookies {
            response.headers_mut().append(header::SET_COOKIE, c);
        }
    }
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
