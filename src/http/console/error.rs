//! Why a console request was refused, as a response: a redirect to the login page, or a status
//! with an [`ErrorPage`] that the console's layer renders in the reader's language.

use super::i18n::Msg;
use crate::usecase::UseCaseError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

/// Why a console request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("not logged in")]
    NotLoggedIn,
    #[error("csrf check failed")]
    Csrf,
    #[error("forbidden for this role")]
    Forbidden,
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    UseCase(#[from] UseCaseError),
}

/// What the error layer renders: the status, the stable code and the message.
#[derive(Debug, Clone)]
pub struct ErrorPage {
    pub code: &'static str,
    pub message: Msg,
    /// A validation message from the use case (`Malformed`), shown as is (ours, never a secret).
    pub detail: Option<String>,
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, code, message, detail) = match self {
            ConsoleError::NotLoggedIn => return Redirect::to("/console/login").into_response(),
            ConsoleError::Csrf => (StatusCode::FORBIDDEN, "csrf_failed", Msg::CsrfFailed, None),
            ConsoleError::Forbidden => (StatusCode::FORBIDDEN, "forbidden", Msg::Forbidden, None),
            ConsoleError::BadRequest(d) => (
                StatusCode::BAD_REQUEST,
                "bad_request",
                Msg::BadRequest,
                Some(d),
            ),
            ConsoleError::UseCase(e) => {
                let api = crate::http::ApiError::from(e);
                let status = api.status();
                let (code, message) = match status.as_u16() {
                    400 | 413 | 415 | 422 => ("bad_request", Msg::BadRequest),
                    403 => ("forbidden", Msg::Forbidden),
                    404 => ("not_found", Msg::NotFound),
                    409 => ("conflict", Msg::Conflict),
                    503 => ("unavailable", Msg::Unavailable),
                    _ => ("internal", Msg::Internal),
                };
                let detail = match &api {
                    crate::http::ApiError::UseCase(
                        UseCaseError::Malformed(d) | UseCaseError::LimitReached(d),
                    ) => Some(d.clone()),
                    _ => None,
                };
                if code == "internal" {
                    tracing::error!(error = %api, "console request failed");
                }
                (status, code, message, detail)
            }
        };
        let mut response = status.into_response();
        response.extensions_mut().insert(ErrorPage {
            code,
            message,
            detail,
        });
        response
    }
}

/// Path parameters the console takes as text and parses itself, so a malformed id is the same 404
/// page as a missing one.
pub fn parse_or_404<T>(parsed: Option<T>) -> Result<T, ConsoleError> {
    parsed.ok_or(ConsoleError::UseCase(UseCaseError::NotFound))
}
