//! The console's frame: the HTML page around every view (maud escapes every value it prints), the
//! navigation by role, the language form, and the error pages. An error is returned by handlers as
//! a `ConsoleError` (`error.rs`); the console's layer renders it here, in the reader's language.

use super::auth::Authed;
use super::cookies::CSRF_FIELD;
use super::error::ErrorPage;
use super::i18n::{Lang, Msg};
use maud::{html, Markup, DOCTYPE};

/// The body of an error page.
pub fn error_body(lang: Lang, page: &ErrorPage) -> Markup {
    bare_page(
        lang,
        Msg::ErrorTitle,
        html! {
            div .error-page data-code=(page.code) {
                p #error-reason { (page.message.text(lang)) }
                @if let Some(d) = &page.detail {
                    p #error-detail { (d) }
                }
                p { a #back href="/console/" { (Msg::BackToDashboard.text(lang)) } }
            }
        },
    )
}

fn head(lang: Lang, title: Msg) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title.text(lang)) " — jpki-face " (Msg::Console.text(lang)) }
            link rel="stylesheet" href="/console/static/console.css";
            link rel="icon" href="/console/static/icon.svg" type="image/svg+xml";
        }
    }
}

/// A page without navigation (login, errors).
pub fn bare_page(lang: Lang, title: Msg, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            (head(lang, title))
            body {
                main #main {
                    h1 #page-title { (title.text(lang)) }
                    (body)
                }
            }
        }
    }
}

/// The language switch (a form: no script).
pub fn lang_form(lang: Lang, csrf: &str, back: &str) -> Markup {
    html! {
        form #lang-form method="post" action="/console/lang" {
            input type="hidden" name=(CSRF_FIELD) value=(csrf);
            input type="hidden" name="back" value=(back);
            label for="lang" { (Msg::Language.text(lang)) }
            select #lang name="lang" {
                option value="ja" selected[lang == Lang::Ja] { "日本語" }
                option value="en" selected[lang == Lang::En] { "English" }
            }
            button #lang-submit type="submit" { (Msg::Change.text(lang)) }
        }
    }
}

/// A page of a logged-in operator, with the navigation its role allows.
pub fn page(a: &Authed, title: Msg, body: Markup) -> Markup {
    let lang = a.lang;
    let op = &a.session.operator;
    let admin = op.role.can_administer();
    let nav = |id: &str, href: &str, msg: Msg| {
        let current = a.path == href;
        html! { a id=(id) href=(href) aria-current=[current.then_some("page")] { (msg.text(lang)) } }
    };
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            (head(lang, title))
            body {
                header #top {
                    nav #nav aria-label=(Msg::Console.text(lang)) {
                        (nav("nav-dashboard", "/console/", Msg::Dashboard))
                        (nav("nav-enrollments", "/console/enrollments", Msg::Enrollments))
                        (nav("nav-reviews", "/console/reviews", Msg::Reviews))
                        @if admin {
                            (nav("nav-webhooks", "/console/webhooks", Msg::Webhooks))
                            (nav("nav-keys", "/console/keys", Msg::ApiKeys))
                            (nav("nav-settings", "/console/settings", Msg::Settings))
                            (nav("nav-operators", "/console/operators", Msg::Operators))
                        }
                    }
                    div #account {
                        span #whoami { (op.login) " (" (op.role.as_str()) ")" }
                        form #logout-form method="post" action="/console/logout" {
                            input type="hidden" name=(CSRF_FIELD) value=(a.csrf);
                            button #logout type="submit" { (Msg::Logout.text(lang)) }
                        }
                        (lang_form(lang, &a.csrf, &a.path))
                    }
                }
                main #main {
                    h1 #page-title { (title.text(lang)) }
                    (body)
                }
            }
        }
    }
}

/// The hidden CSRF input of a form.
pub fn csrf_input(a: &Authed) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(a.csrf); }
}

/// A one-button form that posts to `action` with the CSRF token: the row actions (retry a delivery,
/// revoke a key, disable an operator). `class` names the form, `button_id` the button tests press.
pub fn action_button(
    a: &Authed,
    class: &str,
    action: &str,
    button_id: &str,
    label: &str,
) -> Markup {
    html! {
        form class=(class) method="post" action=(action) {
            (csrf_input(a))
            button id=(button_id) type="submit" { (label) }
        }
    }
}

/// A success message from a `?done=` redirect.
pub fn flash(lang: Lang, done: Option<&str>) -> Markup {
    let msg = match done {
        Some("saved") => Some(Msg::Saved),
        Some("retried") => Some(Msg::Retried),
        Some("revoked") => Some(Msg::Revoked),
        Some("disabled") => Some(Msg::Disabled),
        Some("decided") => Some(Msg::Decided),
        Some("awaiting_second") => Some(Msg::AwaitingSecond),
        _ => None,
    };
    html! {
        @if let Some(m) = msg {
            p #flash .ok role="status" { (m.text(lang)) }
        }
    }
}
