//! The console's reading pages: the dashboard, the enrollment list with its filters (the subject
//! reference kept in the session, never in a URL) and one enrollment's page.

use super::auth::{Authed, Posted};
use super::error::parse_or_404;
use super::error::ConsoleError;
use super::i18n::{status_label, Lang, Msg};
use super::layout::{csrf_input, page};
use crate::domain::{EnrollmentId, EnrollmentStatus, Reason};
use crate::http::ApiContext;
use crate::usecase::console::{self, ListQuery};
use crate::usecase::operators;
use axum::extract::{Path, Query, State};
use maud::{html, Markup};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct DaysQuery {
    days: Option<String>,
}

/// `GET /console/`.
pub async fn dashboard(
    State(ctx): State<ApiContext>,
    a: Authed,
    Query(q): Query<DaysQuery>,
) -> Result<Markup, ConsoleError> {
    let days = match q.days.as_deref() {
        Some("30") => 30,
        _ => 14,
    };
    let d = console::dashboard(&ctx.svc, a.tenant(), days).await?;
    let lang = a.lang;
    let statuses: Vec<&str> = {
        let mut s: Vec<&str> = d
            .days
            .iter()
            .flat_map(|(_, c)| c.iter().map(|(st, _)| st.as_str()))
            .collect();
        s.sort_unstable();
        s.dedup();
        s
    };
    let health = health(&ctx).await;
    let body = html! {
        section #decisions aria-labelledby="decisions-title" {
            h2 #decisions-title { (Msg::DecisionsPerDay.text(lang)) }
            p {
                a #days-14 href="/console/?days=14" aria-current=[(days == 14).then_some("true")] { (Msg::Last14Days.text(lang)) }
                " · "
                a #days-30 href="/console/?days=30" aria-current=[(days == 30).then_some("true")] { (Msg::Last30Days.text(lang)) }
            }
            table #decisions-table {
                thead { tr {
                    th scope="col" { (Msg::Day.text(lang)) }
                    @for s in &statuses { th scope="col" data-status=(s) { (status_label(s, lang)) } }
                    th scope="col" { (Msg::Total.text(lang)) }
                } }
                tbody {
                    @for (day, counts) in &d.days {
                        tr data-day=(day) {
                            th scope="row" { (day) }
                            @for s in &statuses {
                                td { (counts.iter().find(|(st, _)| st == s).map(|(_, n)| *n).unwrap_or(0)) }
                            }
                            td { (counts.iter().map(|(_, n)| n).sum::<i64>()) }
                        }
                    }
                }
            }
        }
        section #scores aria-labelledby="scores-title" {
            h2 #scores-title { (Msg::ScoreDistribution.text(lang)) }
            @if d.scores.is_empty() {
                p #no-scores { (Msg::NoScores.text(lang)) }
            } @else {
                (score_chart(lang, &d.scores, d.threshold))
            }
        }
        section #validity aria-labelledby="validity-title" {
            h2 #validity-title { (Msg::ValidityHealth.text(lang)) }
            dl {
                @for (name, state) in &health {
                    dt { (name) }
                    dd id=(format!("health-{name}")) data-state=(state) { (state) }
                }
            }
        }
        section #webhook-backlog aria-labelledby="backlog-title" {
            h2 #backlog-title { (Msg::WebhookBacklog.text(lang)) }
            p { (Msg::PendingDeliveries.text(lang)) ": "
                span #webhook-backlog-count { (d.pending_deliveries)
                    @if d.pending_deliveries >= console::BACKLOG_CAP { "+" } }
            }
        }
    };
    Ok(page(&a, Msg::Dashboard, body))
}

/// What `/readyz` knows, and the validity checker's breaker and method.
async fn health(ctx: &ApiContext) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let database =
        match tokio::time::timeout(std::time::Duration::from_secs(2), ctx.svc.store.ping()).await {
            Ok(Ok(())) => "ok",
            Ok(Err(_)) => "unreachable",
            Err(_) => "timeout",
        };
    out.push(("database".to_string(), database.to_string()));
    for (name, state) in ctx.engine_readiness() {
        out.push((name.to_string(), state));
    }
    out.push((
        "validity_method".to_string(),
        ctx.svc.validity.method().as_str().to_string(),
    ));
    // The breaker's gauge (1: open, J-LIS failing; 0: closed) as the metrics endpoint shows it.
    if let Some(metrics) = &ctx.metrics {
        let rendered = metrics.render();
        let open = rendered
            .lines()
            .filter(|l| l.starts_with("jlis_breaker_open"))
            .any(|l| l.trim_end().ends_with(" 1"));
        out.push((
            "validity_breaker".to_string(),
            if open { "open" } else { "closed" }.to_string(),
        ));
    }
    out
}

/// A histogram of the scores in 20 bins over [0, 1] with the threshold as a line; plain SVG
/// attributes (no style), so the CSP holds.
fn score_chart(lang: Lang, scores: &[f64], threshold: Option<f64>) -> Markup {
    const BINS: usize = 20;
    const W: f64 = 600.0;
    const H: f64 = 200.0;
    const PAD: f64 = 24.0;
    let mut bins = [0usize; BINS];
    for s in scores {
        let i = ((s.clamp(0.0, 0.999_999)) * BINS as f64) as usize;
        bins[i.min(BINS - 1)] += 1;
    }
    let max = bins.iter().copied().max().unwrap_or(1).max(1) as f64;
    let bar_w = (W - 2.0 * PAD) / BINS as f64;
    let x_of = |v: f64| PAD + v.clamp(0.0, 1.0) * (W - 2.0 * PAD);
    html! {
        svg #score-chart role="img" aria-labelledby="score-chart-title" viewBox=(format!("0 0 {W} {H}")) width="600" height="200" {
            title #score-chart-title {
                (Msg::ScoreChartCaption.text(lang))
                @if let Some(t) = threshold { " (" (Msg::Threshold.text(lang)) " " (format!("{t:.4}")) ")" }
            }
            line x1=(PAD) y1=(H - PAD) x2=(W - PAD) y2=(H - PAD) stroke="#555" {}
            @for (i, n) in bins.iter().enumerate() {
                @let h = (*n as f64 / max) * (H - 2.0 * PAD);
                rect class="bar" x=(format!("{:.1}", PAD + i as f64 * bar_w + 1.0)) y=(format!("{:.1}", H - PAD - h))
                    width=(format!("{:.1}", bar_w - 2.0)) height=(format!("{h:.1}")) fill="#4a6fa5" data-count=(n) {}
            }
            @if let Some(t) = threshold {
                line #threshold-line x1=(format!("{:.1}", x_of(t))) y1="8" x2=(format!("{:.1}", x_of(t))) y2=(H - PAD) stroke="#b00020" stroke-width="2" {}
            }
            text x=(PAD) y=(H - 6.0) font-size="11" { "0.0" }
            text x=(W / 2.0 - 8.0) y=(H - 6.0) font-size="11" { "0.5" }
            text x=(W - PAD - 16.0) y=(H - 6.0) font-size="11" { "1.0" }
        }
    }
}

#[derive(Deserialize, Default)]
pub struct ListParams {
    status: Option<String>,
    reason: Option<String>,
    from: Option<String>,
    to: Option<String>,
    after: Option<String>,
}

/// `GET /console/enrollments`.
pub async fn enrollments(
    State(ctx): State<ApiContext>,
    a: Authed,
    Query(p): Query<ListParams>,
) -> Result<Markup, ConsoleError> {
    let lang = a.lang;
    let status = p
        .status
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            EnrollmentStatus::parse(s)
                .ok_or_else(|| ConsoleError::BadRequest("status: not a status".into()))
        })
        .transpose()?;
    let q = ListQuery {
        status,
        reason: p.reason.clone(),
        from: p.from.clone(),
        to: p.to.clone(),
        subject_ref: a.session.subject_filter.clone(),
        after: p.after.clone(),
    };
    let listed = console::list_enrollments(&ctx.svc, a.tenant(), &q).await?;
    let next_href = listed.next.as_ref().map(|cursor| {
        let pairs: Vec<(&str, &str)> = [
            ("status", p.status.as_deref()),
            ("reason", p.reason.as_deref()),
            ("from", p.from.as_deref()),
            ("to", p.to.as_deref()),
            ("after", Some(cursor.as_str())),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| (k, v)))
        .collect();
        format!(
            "/console/enrollments?{}",
            serde_urlencoded::to_string(pairs).unwrap_or_default()
        )
    });
    let mut reasons = Reason::all_codes();
    reasons.sort();
    let selected = |v: &Option<String>, x: &str| v.as_deref() == Some(x);
    let body = html! {
        form #enrollment-filter method="get" action="/console/enrollments" {
            p {
                label for="status" { (Msg::Status.text(lang)) }
                select #status name="status" {
                    option value="" { (Msg::Any.text(lang)) }
                    @for s in EnrollmentStatus::ALL {
                        option value=(s.as_str()) selected[selected(&p.status, s.as_str())] {
                            (status_label(s.as_str(), lang)) " (" (s.as_str()) ")"
                        }
                    }
                }
                label for="reason" { (Msg::Reason.text(lang)) }
                select #reason name="reason" {
                    option value="" { (Msg::Any.text(lang)) }
                    @for r in &reasons {
                        option value=(r) selected[selected(&p.reason, r)] { (r) }
                    }
                }
                label for="from" { (Msg::From.text(lang)) }
                input #from type="date" name="from" value=[p.from.as_deref()];
                label for="to" { (Msg::To.text(lang)) }
                input #to type="date" name="to" value=[p.to.as_deref()];
                button #filter-submit type="submit" { (Msg::Filter.text(lang)) }
            }
        }
        form #subject-filter method="post" action="/console/enrollments/subject" {
            (csrf_input(&a))
            p {
                label for="subject_ref" { (Msg::SubjectRef.text(lang)) }
                input #subject_ref type="text" name="subject_ref" autocomplete="off" spellcheck="false";
                button #subject-submit type="submit" { (Msg::SetFilter.text(lang)) }
                @if a.session.subject_filter.is_some() {
                    button #subject-clear type="submit" name="clear" value="1" { (Msg::ClearFilter.text(lang)) }
                }
            }
            @if let Some(s) = &a.session.subject_filter {
                p { (Msg::SubjectFilter.text(lang)) ": " span #subject-filter-active { (s.expose()) } }
            }
        }
        (enrollment_table(lang, &listed.rows, "enrollments-table", "enrollment-link", "/console/enrollments/"))
        @if let Some(href) = next_href {
            p { a #next-page href=(href) rel="next" { (Msg::NextPage.text(lang)) } }
        }
    };
    Ok(page(&a, Msg::Enrollments, body))
}

/// The table of enrollments shared by the list and the review queue.
pub fn enrollment_table(
    lang: Lang,
    rows: &[console::ListedEnrollment],
    table_id: &str,
    link_class: &str,
    href_prefix: &str,
) -> Markup {
    html! {
        @if rows.is_empty() {
            p .empty { (Msg::NoRows.text(lang)) }
        }
        table id=(table_id) {
            thead { tr {
                th scope="col" { (Msg::Id.text(lang)) }
                th scope="col" { (Msg::Status.text(lang)) }
                th scope="col" { (Msg::SubjectRef.text(lang)) }
                th scope="col" { (Msg::Reasons.text(lang)) }
                th scope="col" { (Msg::Score.text(lang)) }
                th scope="col" { (Msg::Created.text(lang)) }
            } }
            tbody {
                @for r in rows {
                    tr data-id=(r.id.as_str()) data-status=(r.status.as_str()) {
                        td { a class=(link_class) href=(format!("{href_prefix}{}", r.id)) { code { (r.id.as_str()) } } }
                        td { (status_label(r.status.as_str(), lang)) }
                        td .subject { (r.subject_ref.as_deref().unwrap_or("")) }
                        td { (r.reasons.join(", ")) }
                        td { (r.score.map(|s| format!("{s:.4}")).unwrap_or_default()) }
                        td { (console::time(r.created_at)) }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct SubjectForm {
    #[serde(default)]
    subject_ref: String,
    #[serde(default)]
    clear: Option<String>,
}

/// `POST /console/enrollments/subject`: the subject filter, kept in the session.
pub async fn subject_filter(
    State(ctx): State<ApiContext>,
    posted: Posted<SubjectForm>,
) -> Result<axum::response::Redirect, ConsoleError> {
    let value = posted.form.subject_ref.trim();
    let filter = (posted.form.clear.is_none() && !value.is_empty()).then_some(value);
    if filter.is_some_and(|v| v.len() > 256) {
        return Err(ConsoleError::BadRequest(
            "subject_ref: at most 256 bytes".into(),
        ));
    }
    operators::set_subject_filter(&ctx.svc, &posted.authed.session, filter).await?;
    Ok(axum::response::Redirect::to("/console/enrollments"))
}

/// `GET /console/enrollments/{id}`.
pub async fn enrollment(
    State(ctx): State<ApiContext>,
    a: Authed,
    Path(id): Path<String>,
) -> Result<Markup, ConsoleError> {
    let id = parse_or_404(EnrollmentId::parse(&id))?;
    let d = console::enrollment(&ctx.svc, a.tenant(), &id).await?;
    let lang = a.lang;
    let checks = d
        .decision
        .as_ref()
        .and_then(|dec| serde_json::to_value(&dec.checks).ok())
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    let intact = d.chain_intact();
    let body = html! {
        dl #enrollment-summary {
            dt { (Msg::Id.text(lang)) } dd #enrollment-id { code { (d.id.as_str()) } }
            dt { (Msg::Status.text(lang)) } dd #status data-status=(d.status.as_str()) { (status_label(d.status.as_str(), lang)) " (" (d.status.as_str()) ")" }
            dt { (Msg::SubjectRef.text(lang)) } dd #subject-ref { (d.subject_ref.as_deref().unwrap_or("")) }
            dt { (Msg::Created.text(lang)) } dd { (console::time(d.created_at)) }
            dt { (Msg::Updated.text(lang)) } dd { (console::time(d.updated_at)) }
        }
        h2 { (Msg::Reasons.text(lang)) }
        ul #reasons {
            @for r in &d.reasons { li data-reason=(r) { code { (r) } } }
        }
        h2 { (Msg::Checks.text(lang)) }
        table #checks {
            thead { tr { th scope="col" { (Msg::Check.text(lang)) } th scope="col" { (Msg::Result.text(lang)) } th scope="col" { (Msg::Details.text(lang)) } } }
            tbody {
                @for (name, value) in &checks {
                    tr data-check=(name) {
                        th scope="row" { (name) }
                        td { (value.get("result").and_then(|r| r.as_str()).unwrap_or("")) }
                        td { code { (check_details(value)) } }
                    }
                }
            }
        }
        h2 { (Msg::History.text(lang)) }
        table #history {
            thead { tr { th scope="col" { (Msg::Time.text(lang)) } th scope="col" { (Msg::Event.text(lang)) } th scope="col" { (Msg::Details.text(lang)) } } }
            tbody {
                @for t in d.trail.iter().filter(|t| t.event.starts_with("enrollment.") || t.event.starts_with("review.")) {
                    tr { td { (console::time(t.at)) } td { code { (t.event) } } td { code { (t.details) } } }
                }
            }
        }
        h2 { (Msg::AuditTrail.text(lang)) }
        p #chain-status data-verified=(intact) .ok[intact] .error[!intact] {
            (if intact { Msg::ChainVerified } else { Msg::ChainBroken }.text(lang))
        }
        table #audit-trail {
            thead { tr {
                th scope="col" { (Msg::Seq.text(lang)) } th scope="col" { (Msg::Time.text(lang)) }
                th scope="col" { (Msg::Event.text(lang)) } th scope="col" { (Msg::Details.text(lang)) }
                th scope="col" { "chain" }
            } }
            tbody {
                @for t in &d.trail {
                    tr data-seq=(t.seq) data-intact=(t.intact) {
                        td { (t.seq) } td { (console::time(t.at)) } td { code { (t.event) } }
                        td { code { (t.details) } }
                        td { (if t.intact { Msg::LinkOk } else { Msg::LinkBroken }.text(lang)) }
                    }
                }
            }
        }
    };
    Ok(page(&a, Msg::Enrollments, body))
}

/// A check's figures without its `result` (scores, thresholds, quality numbers), compact JSON.
fn check_details(value: &serde_json::Value) -> String {
    match value.as_object() {
        Some(o) => {
            let mut o = o.clone();
            o.remove("result");
            if o.is_empty() {
                String::new()
            } else {
                serde_json::Value::Object(o).to_string()
            }
        }
        None => value.to_string(),
    }
}
