//! The review queue and the review page on `usecase::review`: chip photo and selfie side by side
//! (each view audited by the use case, naming the operator), scores, reasons, the four-eyes state
//! and the approve/reject form. Viewers read; reviewers and admins decide and see the photos.

use super::auth::{Authed, Posted};
use super::error::parse_or_404;
use super::error::ConsoleError;
use super::i18n::{status_label, Msg};
use super::layout::{csrf_input, flash, page};
use super::pages::enrollment_table;
use crate::domain::review::{EvidenceKind, ReviewDecision, ReviewReasonCode, Reviewer};
use crate::domain::{EnrollmentId, EnrollmentStatus};
use crate::http::ApiContext;
use crate::usecase::console::{self, ListedEnrollment};
use crate::usecase::review::{self, ReviewListQuery, ReviewOutcome, ReviewRequest};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct QueueParams {
    after: Option<String>,
    done: Option<String>,
}

fn reviewer_of(a: &Authed) -> Reviewer {
    Reviewer::Operator {
        operator_id: a.session.operator.id.as_str().to_string(),
    }
}

/// `GET /console/reviews`: oldest first.
pub async fn queue(
    State(ctx): State<ApiContext>,
    a: Authed,
    Query(q): Query<QueueParams>,
) -> Result<Markup, ConsoleError> {
    let lang = a.lang;
    let listed = review::list_reviews(
        &ctx.svc,
        a.tenant(),
        ReviewListQuery {
            after: q.after.clone().filter(|s| !s.is_empty()),
            limit: Some(console::PAGE_SIZE),
        },
    )
    .await?;
    let rows: Vec<ListedEnrollment> = listed
        .reviews
        .iter()
        .map(|r| ListedEnrollment {
            id: r.enrollment_id.clone(),
            status: EnrollmentStatus::InReview,
            subject_ref: r.subject_ref.clone(),
            reasons: serde_json::to_value(&r.reasons)
                .ok()
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default(),
            score: r.face_score,
            created_at: chrono::DateTime::parse_from_rfc3339(&r.created_at)
                .map(|t| t.timestamp_millis())
                .unwrap_or_default(),
        })
        .collect();
    let next = listed.next_cursor.as_ref().map(|c| {
        format!(
            "/console/reviews?{}",
            serde_urlencoded::to_string([("after", c.as_str())]).unwrap_or_default()
        )
    });
    let body = html! {
        (flash(lang, q.done.as_deref()))
        h2 { (Msg::ReviewQueue.text(lang)) }
        (enrollment_table(lang, &rows, "reviews-table", "review-link", "/console/reviews/"))
        @if let Some(href) = next {
            p { a #next-page href=(href) rel="next" { (Msg::NextPage.text(lang)) } }
        }
    };
    Ok(page(&a, Msg::Reviews, body))
}

/// `GET /console/reviews/{id}`.
pub async fn case(
    State(ctx): State<ApiContext>,
    a: Authed,
    Path(id): Path<String>,
) -> Result<Markup, ConsoleError> {
    let id = parse_or_404(EnrollmentId::parse(&id))?;
    let c = review::get_review(&ctx.svc, a.tenant(), &id).await?;
    let lang = a.lang;
    let doc = &c.enrollment;
    let can_review = a.session.operator.role.can_review();
    let waiting = doc.status == EnrollmentStatus::InReview;
    let four_eyes_state = if c.approvals.is_empty() {
        "none"
    } else {
        "awaiting_second"
    };
    let face = &doc.checks.face_match;
    let reasons: Vec<String> = serde_json::to_value(&doc.reasons)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let photo = |kind: EvidenceKind, path: &str, img_id: &str, label: Msg| {
        let held = c.evidence.contains(&kind);
        html! {
            figure {
                @if held {
                    img id=(img_id) src=(format!("/console/reviews/{}/photo/{path}", doc.id)) alt=(label.text(lang)) width="360";
                } @else {
                    p .empty { (Msg::EvidenceGone.text(lang)) }
                }
                figcaption { (label.text(lang)) }
            }
        }
    };
    let body = html! {
        dl #review-summary {
            dt { (Msg::Id.text(lang)) } dd { code #enrollment-id { (doc.id.as_str()) } }
            dt { (Msg::Status.text(lang)) } dd #status data-status=(doc.status.as_str()) { (status_label(doc.status.as_str(), lang)) " (" (doc.status.as_str()) ")" }
            dt { (Msg::SubjectRef.text(lang)) } dd #subject-ref { (doc.subject_ref.as_deref().unwrap_or("")) }
            @if let Some(info) = &doc.review {
                dt { (Msg::Deadline.text(lang)) } dd #evidence-until { (info.evidence_until) }
            }
        }
        @if can_review {
            div .evidence {
                (photo(EvidenceKind::ChipPhoto, "chip_photo", "chip-photo", Msg::ChipPhoto))
                (photo(EvidenceKind::Selfie, "selfie", "selfie", Msg::Selfie))
            }
        } @else {
            p #evidence-hidden { (Msg::EvidenceHidden.text(lang)) }
        }
        h2 { (Msg::Scores.text(lang)) }
        table #scores {
            tbody {
                tr { th scope="row" { (Msg::Score.text(lang)) } td #face-score { (face.score.map(|s| format!("{s:.4}")).unwrap_or_default()) } }
                tr { th scope="row" { (Msg::Threshold.text(lang)) } td #face-threshold { (format!("{:.4}", face.threshold)) } }
                tr { th scope="row" { (Msg::TargetFmr.text(lang)) } td { (face.target_fmr) } }
                tr { th scope="row" { (Msg::FaceModel.text(lang)) } td { code { (face.model) } } }
            }
        }
        h2 { (Msg::Reasons.text(lang)) }
        ul #reasons { @for r in &reasons { li data-reason=(r) { code { (r) } } } }
        h2 { (Msg::Approvals.text(lang)) }
        p #four-eyes-state data-state=(four_eyes_state) data-needed=(c.approvals_needed) data-given=(c.approvals.len()) {
            @if c.approvals.is_empty() { (Msg::FourEyesNone.text(lang)) } @else { (Msg::FourEyesAwaiting.text(lang)) }
        }
        @if !c.approvals.is_empty() {
            ul #approvals {
                @for ap in &c.approvals {
                    li { (ap.at) " — " code { (ap.reviewer.key()) } " — " (ap.reason_code.as_str())
                        @if let Some(n) = &ap.note { " — " (n) } }
                }
            }
        }
        @if waiting && can_review {
            form #review-form method="post" action=(format!("/console/reviews/{}", doc.id)) {
                (csrf_input(&a))
                p {
                    label for="reason_code" { (Msg::ReasonCode.text(lang)) }
                    select #reason_code name="reason_code" {
                        @for code in ReviewReasonCode::ALL { option value=(code.as_str()) { (code.as_str()) } }
                    }
                }
                p {
                    label for="note" { (Msg::Note.text(lang)) }
                    br;
                    textarea #note name="note" rows="3" cols="60" maxlength=(review::MAX_NOTE_CHARS) {}
                }
                p {
                    button #approve type="submit" name="decision" value="approve" { (Msg::Approve.text(lang)) }
                    " "
                    button #reject type="submit" name="decision" value="reject" { (Msg::Reject.text(lang)) }
                }
            }
        }
    };
    Ok(page(&a, Msg::Review, body))
}

#[derive(Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    decision: String,
    #[serde(default)]
    reason_code: String,
    #[serde(default)]
    note: String,
}

/// `POST /console/reviews/{id}`: reviewers and admins.
pub async fn decide(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    posted: Posted<DecisionForm>,
) -> Result<Redirect, ConsoleError> {
    let a = &posted.authed;
    a.require(a.session.operator.role.can_review())?;
    let id = parse_or_404(EnrollmentId::parse(&id))?;
    let f = posted.form;
    let decision = match f.decision.as_str() {
        "approve" => ReviewDecision::Approve,
        "reject" => ReviewDecision::Reject,
        _ => {
            return Err(ConsoleError::BadRequest(
                "decision: approve or reject".into(),
            ))
        }
    };
    let reason_code = ReviewReasonCode::ALL
        .into_iter()
        .find(|c| c.as_str() == f.reason_code)
        .ok_or_else(|| ConsoleError::BadRequest("reason_code: not a review reason code".into()))?;
    let note = Some(f.note.trim().to_string()).filter(|n| !n.is_empty());
    let outcome = review::decide(
        &ctx.svc,
        a.tenant(),
        &id,
        reviewer_of(a),
        ReviewRequest {
            decision,
            reason_code,
            note,
        },
    )
    .await?;
    Ok(Redirect::to(match outcome {
        ReviewOutcome::Decided { .. } => "/console/reviews?done=decided",
        ReviewOutcome::AwaitingSecondApproval => "/console/reviews?done=awaiting_second",
    }))
}

/// `GET /console/reviews/{id}/photo/{kind}`: reviewers and admins; audited by the use case.
pub async fn photo(
    State(ctx): State<ApiContext>,
    a: Authed,
    Path((id, kind)): Path<(String, String)>,
) -> Result<Response, ConsoleError> {
    a.require(a.session.operator.role.can_review())?;
    let id = parse_or_404(EnrollmentId::parse(&id))?;
    let kind = match kind.as_str() {
        "chip_photo" => EvidenceKind::ChipPhoto,
        "selfie" => EvidenceKind::Selfie,
        _ => return Err(crate::usecase::UseCaseError::NotFound.into()),
    };
    let p = review::evidence(&ctx.svc, a.tenant(), &id, kind, reviewer_of(&a)).await?;
    Ok(([(header::CONTENT_TYPE, p.content_type)], p.bytes).into_response())
}
