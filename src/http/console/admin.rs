//! The admin pages: webhooks (endpoints, recent deliveries, retry), API keys (create, shown once;
//! revoke), the tenant's settings and the operators. Admins only; every change is audited by its
//! use case with the operator's id.

use super::auth::{Authed, Posted};
use super::error::parse_or_404;
use super::error::ConsoleError;
use super::i18n::Msg;
use super::layout::{action_button, csrf_input, flash, page};
use crate::domain::{DeliveryId, OperatorId, Role, WebhookId};
use crate::http::ApiContext;
use crate::redact::Secret;
use crate::usecase::{console, operators, webhooks};
use axum::extract::{Path, Query, State};
use axum::response::Redirect;
use maud::{html, Markup};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct Done {
    done: Option<String>,
}

/// Deliveries shown per endpoint.
const DELIVERIES_SHOWN: i64 = 20;

/// `GET /console/webhooks`.
pub async fn webhooks(
    State(ctx): State<ApiContext>,
    a: Authed,
    Query(q): Query<Done>,
) -> Result<Markup, ConsoleError> {
    a.require(a.session.operator.role.can_administer())?;
    let lang = a.lang;
    let list = webhooks::list(&ctx.svc, a.tenant()).await?;
    let mut endpoints = Vec::new();
    for w in list.webhooks {
        let deliveries =
            webhooks::deliveries(&ctx.svc, a.tenant(), &w.id, Some(DELIVERIES_SHOWN)).await?;
        endpoints.push((w, deliveries.deliveries));
    }
    let body = html! {
        (flash(lang, q.done.as_deref()))
        @if endpoints.is_empty() { p .empty { (Msg::NoRows.text(lang)) } }
        table #webhooks-table {
            thead { tr {
                th scope="col" { (Msg::Id.text(lang)) } th scope="col" { (Msg::Endpoint.text(lang)) }
                th scope="col" { (Msg::Events.text(lang)) } th scope="col" { (Msg::Status.text(lang)) }
            } }
            tbody {
                @for (w, _) in &endpoints {
                    tr data-id=(w.id.as_str()) {
                        td { code { (w.id.as_str()) } }
                        td { (w.url) }
                        td { (w.events.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(", ")) }
                        td { (if w.enabled { Msg::Enabled } else { Msg::Disabled }.text(lang))
                             @if let Some(r) = &w.disabled_reason { " (" (r) ")" } }
                    }
                }
            }
        }
        @for (w, deliveries) in &endpoints {
            section .endpoint data-id=(w.id.as_str()) {
                h2 { (Msg::Deliveries.text(lang)) ": " code { (w.id.as_str()) } }
                table .deliveries {
                    thead { tr {
                        th scope="col" { (Msg::Id.text(lang)) } th scope="col" { (Msg::Event.text(lang)) }
                        th scope="col" { (Msg::Status.text(lang)) } th scope="col" { (Msg::Attempts.text(lang)) }
                        th scope="col" { (Msg::Created.text(lang)) } th scope="col" { (Msg::Retry.text(lang)) }
                    } }
                    tbody {
                        @for d in deliveries {
                            @let status = serde_json::to_value(d.status).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
                            tr data-id=(d.id.as_str()) data-status=(status) {
                                td { code { (d.id.as_str()) } }
                                td { (d.event_type.as_str()) }
                                td { (status) }
                                td { (d.attempts.len()) }
                                td { (d.created_at) }
                                td {
                                    (action_button(&a, "retry-form", &format!("/console/webhooks/{}/deliveries/{}/retry", w.id, d.id), &format!("retry-{}", d.id), Msg::Retry.text(lang)))
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&a, Msg::Webhooks, body))
}

#[derive(Deserialize)]
pub struct NoFields {}

/// `POST /console/webhooks/{webhook}/deliveries/{delivery}/retry`.
pub async fn retry_delivery(
    State(ctx): State<ApiContext>,
    Path((webhook, delivery)): Path<(String, String)>,
    posted: Posted<NoFields>,
) -> Result<Redirect, ConsoleError> {
    let a = &posted.authed;
    a.require(a.session.operator.role.can_administer())?;
    let webhook = parse_or_404(WebhookId::parse(&webhook))?;
    let delivery = parse_or_404(DeliveryId::parse(&delivery))?;
    webhooks::retry_by(
        &ctx.svc,
        a.tenant(),
        &webhook,
        &delivery,
        Some(&a.session.operator.id),
    )
    .await?;
    Ok(Redirect::to("/console/webhooks?done=retried"))
}

fn keys_page(
    a: &Authed,
    keys: &[crate::store::ApiKeyRow],
    created: Option<(&str, &Secret<String>)>,
    done: Option<&str>,
) -> Markup {
    let lang = a.lang;
    let body = html! {
        (flash(lang, done))
        @if let Some((id, key)) = created {
            div #new-key-box .ok role="status" {
                p { (Msg::NewKeyShownOnce.text(lang)) }
                p { span #new-key-id { (id) } }
                p { code #new-key { (key.expose()) } }
            }
        }
        form #key-create-form method="post" action="/console/keys" {
            (csrf_input(a))
            button #key-create type="submit" { (Msg::CreateKey.text(lang)) }
        }
        table #keys-table {
            thead { tr {
                th scope="col" { (Msg::Id.text(lang)) } th scope="col" { (Msg::Created.text(lang)) }
                th scope="col" { (Msg::KeyState.text(lang)) } th scope="col" { (Msg::Revoke.text(lang)) }
            } }
            tbody {
                @for k in keys {
                    @let live = k.revoked_at.is_none();
                    tr data-id=(k.id) data-state=(if live { "live" } else { "revoked" }) {
                        td { code { (k.id) } }
                        td { (console::time(k.created_at)) }
                        td { (if live { Msg::Live } else { Msg::Revoked }.text(lang)) }
                        td {
                            @if live {
                                (action_button(a, "revoke-form", &format!("/console/keys/{}/revoke", k.id), &format!("revoke-{}", k.id), Msg::Revoke.text(lang)))
                            }
                        }
                    }
                }
            }
        }
    };
    page(a, Msg::ApiKeys, body)
}

/// `GET /console/keys`.
pub async fn keys(
    State(ctx): State<ApiContext>,
    a: Authed,
    Query(q): Query<Done>,
) -> Result<Markup, ConsoleError> {
    a.require(a.session.operator.role.can_administer())?;
    let keys = console::api_keys(&ctx.svc, a.tenant()).await?;
    Ok(keys_page(&a, &keys, None, q.done.as_deref()))
}

/// `POST /console/keys`: the new key is in this answer only (never in a URL or a redirect).
pub async fn create_key(
    State(ctx): State<ApiContext>,
    posted: Posted<NoFields>,
) -> Result<Markup, ConsoleError> {
    let a = &posted.authed;
    a.require(a.session.operator.role.can_administer())?;
    let (id, key) = console::create_api_key(&ctx.svc, a.tenant(), &a.session.operator.id).await?;
    let keys = console::api_keys(&ctx.svc, a.tenant()).await?;
    Ok(keys_page(a, &keys, Some((&id, &key)), None))
}

/// `POST /console/keys/{id}/revoke`.
pub async fn revoke_key(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    posted: Posted<NoFields>,
) -> Result<Redirect, ConsoleError> {
    let a = &posted.authed;
    a.require(a.session.operator.role.can_administer())?;
    console::revoke_api_key(&ctx.svc, a.tenant(), &id, &a.session.operator.id).await?;
    Ok(Redirect::to("/console/keys?done=revoked"))
}

fn settings_page(a: &Authed, json: &str, error: Option<&str>, done: Option<&str>) -> Markup {
    let lang = a.lang;
    let body = html! {
        (flash(lang, done))
        @if let Some(e) = error { p #error .error role="alert" { (e) } }
        form #settings-form method="post" action="/console/settings" {
            (csrf_input(a))
            p {
                label for="settings" { (Msg::SettingsJson.text(lang)) }
                br;
                textarea #settings name="settings" rows="16" cols="80" spellcheck="false" aria-describedby="settings-help" { (json) }
            }
            p #settings-help { (Msg::SettingsHelp.text(lang)) }
            p { button #settings-submit type="submit" { (Msg::Save.text(lang)) } }
        }
    };
    page(a, Msg::Settings, body)
}

/// `GET /console/settings`.
pub async fn settings(
    State(ctx): State<ApiContext>,
    a: Authed,
    Query(q): Query<Done>,
) -> Result<Markup, ConsoleError> {
    a.require(a.session.operator.role.can_administer())?;
    let current = console::settings(&ctx.svc, a.tenant()).await?;
    let json = serde_json::to_string_pretty(&current).unwrap_or_else(|_| "{}".into());
    Ok(settings_page(&a, &json, None, q.done.as_deref()))
}

#[derive(Deserialize)]
pub struct SettingsForm {
    #[serde(default)]
    settings: String,
}

/// `POST /console/settings`: saved, or the form again with what is wrong (400).
pub async fn save_settings(
    State(ctx): State<ApiContext>,
    posted: Posted<SettingsForm>,
) -> Result<axum::response::Response, ConsoleError> {
    use axum::response::IntoResponse;
    let a = &posted.authed;
    a.require(a.session.operator.role.can_administer())?;
    match console::update_settings(
        &ctx.svc,
        a.tenant(),
        &posted.form.settings,
        &a.session.operator.id,
    )
    .await
    {
        Ok(()) => Ok(Redirect::to("/console/settings?done=saved").into_response()),
        Err(crate::usecase::UseCaseError::Malformed(why)) => Ok((
            axum::http::StatusCode::BAD_REQUEST,
            settings_page(a, &posted.form.settings, Some(&why), None),
        )
            .into_response()),
        Err(e) => Err(e.into()),
    }
}

fn operators_page(
    a: &Authed,
    list: &[operators::OperatorView],
    created: Option<&operators::CreatedOperator>,
    error: Option<&str>,
    done: Option<&str>,
) -> Markup {
    let lang = a.lang;
    let body = html! {
        (flash(lang, done))
        @if let Some(e) = error { p #error .error role="alert" { (e) } }
        @if let Some(c) = created {
            div #new-operator-box .ok role="status" {
                p { (Msg::NewOperatorSecret.text(lang)) }
                p { span #new-operator-id { (c.id.as_str()) } }
                p { code #new-totp-secret { (c.totp_secret.expose()) } }
                p { code #new-otpauth-uri { (c.otpauth_uri.expose()) } }
            }
        }
        h2 { (Msg::CreateOperator.text(lang)) }
        form #operator-create-form method="post" action="/console/operators" {
            (csrf_input(a))
            p {
                label for="new-login" { (Msg::LoginName.text(lang)) }
                input #new-login type="text" name="login" required pattern="[A-Za-z0-9._\\-]{1,64}" autocomplete="off";
            }
            p {
                label for="new-role" { (Msg::Role.text(lang)) }
                select #new-role name="role" {
                    @for r in Role::ALL { option value=(r.as_str()) { (r.as_str()) } }
                }
            }
            p {
                label for="new-password" { (Msg::Password.text(lang)) }
                input #new-password type="password" name="password" required minlength=(operators::MIN_PASSWORD_CHARS) autocomplete="new-password";
            }
            p { button #operator-create type="submit" { (Msg::CreateOperator.text(lang)) } }
        }
        h2 { (Msg::Operators.text(lang)) }
        table #operators-table {
            thead { tr {
                th scope="col" { (Msg::Id.text(lang)) } th scope="col" { (Msg::LoginName.text(lang)) }
                th scope="col" { (Msg::Role.text(lang)) } th scope="col" { (Msg::Status.text(lang)) }
                th scope="col" { (Msg::Created.text(lang)) } th scope="col" { (Msg::Disable.text(lang)) }
            } }
            tbody {
                @for o in list {
                    @let state = if o.disabled { "disabled" } else if o.locked { "locked" } else { "active" };
                    tr data-id=(o.id.as_str()) data-state=(state) {
                        td { code { (o.id.as_str()) } }
                        td { (o.login) }
                        td { (o.role.as_str()) }
                        td { (match state { "disabled" => Msg::Disabled, "locked" => Msg::Locked, _ => Msg::Active }.text(lang)) }
                        td { (console::time(o.created_at)) }
                        td {
                            @if !o.disabled && o.id != a.session.operator.id {
                                (action_button(a, "disable-form", &format!("/console/operators/{}/disable", o.id), &format!("disable-{}", o.id), Msg::Disable.text(lang)))
                            }
                        }
                    }
                }
            }
        }
    };
    page(a, Msg::Operators, body)
}

/// `GET /console/operators`.
pub async fn operators(
    State(ctx): State<ApiContext>,
    a: Authed,
    Query(q): Query<Done>,
) -> Result<Markup, ConsoleError> {
    a.require(a.session.operator.role.can_administer())?;
    let list = operators::list(&ctx.svc, a.tenant()).await?;
    Ok(operators_page(&a, &list, None, None, q.done.as_deref()))
}

#[derive(Deserialize)]
pub struct OperatorForm {
    #[serde(default)]
    login: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: Secret<String>,
}

/// `POST /console/operators`: the new operator's TOTP secret is in this answer only.
pub async fn create_operator(
    State(ctx): State<ApiContext>,
    posted: Posted<OperatorForm>,
) -> Result<axum::response::Response, ConsoleError> {
    use axum::response::IntoResponse;
    let a = &posted.authed;
    a.require(a.session.operator.role.can_administer())?;
    let form = posted.form;
    let role = Role::parse(&form.role)
        .ok_or_else(|| ConsoleError::BadRequest("role: viewer, reviewer or admin".into()))?;
    let created = operators::create_operator(
        ctx.svc.store.as_ref(),
        &ctx.svc.keys,
        a.tenant(),
        operators::NewOperatorRequest {
            login: form.login,
            role,
            password: form.password,
        },
        Some(&a.session.operator.id),
    )
    .await;
    let list = operators::list(&ctx.svc, a.tenant()).await?;
    match created {
        Ok(c) => Ok(operators_page(a, &list, Some(&c), None, None).into_response()),
        Err(crate::usecase::UseCaseError::Malformed(why)) => Ok((
            axum::http::StatusCode::BAD_REQUEST,
            operators_page(a, &list, None, Some(&why), None),
        )
            .into_response()),
        Err(e) => Err(e.into()),
    }
}

/// `POST /console/operators/{id}/disable`.
pub async fn disable_operator(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    posted: Posted<NoFields>,
) -> Result<Redirect, ConsoleError> {
    let a = &posted.authed;
    a.require(a.session.operator.role.can_administer())?;
    let id = parse_or_404(OperatorId::parse(&id))?;
    operators::disable(&ctx.svc, a.tenant(), &id, &a.session.operator.id).await?;
    Ok(Redirect::to("/console/operators?done=disabled"))
}
