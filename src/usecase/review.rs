//! Review (issue 22): the queue of enrollments `in_review`, one case with its evidence, and the
//! decision, made exactly once. Shared by the API (an RP's own case tool, with its API key) and the
//! console (operators); the caller enforces roles, everything here is tenant-scoped (another
//! tenant's enrollment is `NotFound`).
//!
//! - **Exactly once.** The decision is a compare-and-set on `status = 'in_review'` in one transaction
//!   with the evidence's deletion, the audit event and the outbox event (`store::ReviewStore`); of
//!   two racing decisions one wins and the other gets `ReviewAlreadyDecided` with the status.
//! - **Four-eyes** (tenant `review_four_eyes`): an approve needs two approvals by different reviewers
//!   ([`Reviewer::key`]); the first is recorded in `review_approvals` (unique per reviewer) and
//!   answered `AwaitingSecondApproval`. A reject by anyone decides at once.
//! - **The note** is free text from a person: at most [`MAX_NOTE_CHARS`], never logged, never in the
//!   audit log or a webhook (they get its length), sealed under the enrollment's data key with the
//!   approval; a reject shreds that key, and the note with it.
//! - **Evidence**: the chip photo and the selfie as JPEG, sealed under the enrollment's data key
//!   when it went to review; every view is audited (`review.evidence_viewed`, naming the viewer).

use super::enrollment::decide::{route_to_review, Decision, MatchPolicy, ReviewRules};
use super::enrollment::record::{data_key, render, StoredDecision};
use super::enrollment::view::{EnrollmentDocument, ReviewInfo, ReviewOutcomeView};
use super::{search, webhooks, Services, UseCaseError, UseCaseResult};
use crate::crypto::{DataKey, Owner, RecordKind};
use crate::domain::review::{
    is_reviewer_ref, EvidenceKind, ReviewDecision, ReviewReasonCode, Reviewer,
};
use crate::domain::{
    now_millis, rfc3339, AuditKind, EnrollmentId, EnrollmentStatus, Millis, Reasons, TenantId,
};
use crate::redact::Secret;
use crate::store::{ApprovalRow, ApprovalWrite, AuditEvent, EnrollmentRow, ReviewWrite};
use crate::store::{SealedEvidence, Tenant};
use serde::{Deserialize, Serialize};

/// `[review]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ReviewSettings {
    /// Review evidence is shredded this long after the enrollment went to review, at the latest.
    pub evidence_retention_secs: u64,
}

impl Default for ReviewSettings {
    fn default() -> Self {
        Self {
            evidence_retention_secs: 30 * 86_400,
        }
    }
}

impl ReviewSettings {
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.evidence_retention_secs == 0 {
            return Err((
                "review.evidence_retention_secs",
                "must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Longest reviewer's note, in characters.
pub const MAX_NOTE_CHARS: usize = 1000;
/// Most enrollments one page of the queue returns.
pub const MAX_REVIEW_LIMIT: i64 = 100;
/// Default page size of the queue.
pub const DEFAULT_REVIEW_LIMIT: i64 = 50;

/// One page of the queue: `after` is the `next_cursor` of the previous page (opaque).
#[derive(Debug, Clone, Default)]
pub struct ReviewListQuery {
    pub after: Option<String>,
    pub limit: Option<i64>,
}

/// `GET /v1/reviews`: enrollments waiting for a person, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReviewPage {
    pub reviews: Vec<ReviewSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One enrollment of the queue.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReviewSummary {
    pub enrollment_id: EnrollmentId,
    pub subject_ref: Option<String>,
    /// What sent it to review.
    pub reasons: Reasons,
    /// Chip photo against selfie, if both had a face.
    pub face_score: Option<f64>,
    pub face_threshold: f64,
    pub created_at: String,
    /// When its evidence is shredded if no decision came first.
    pub evidence_until: Option<String>,
}

/// An approve given so far. (`Debug` leaves the note out.)
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApprovalView {
    pub reviewer: Reviewer,
    pub reason_code: ReviewReasonCode,
    /// The reviewer's note (opened for this answer only; never logged).
    pub note: Option<String>,
    pub at: String,
}

/// `GET /v1/reviews/{id}`: one enrollment that went to review, with everything a reviewer needs
/// but the photos (`GET /v1/enrollments/{id}/evidence/{kind}`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReviewCase {
    /// The enrollment: status, reasons, every check with its score and threshold, identity, and
    /// `review` (what sent it there, the evidence's deadline, the outcome once decided).
    pub enrollment: EnrollmentDocument,
    /// The approvals so far (under four-eyes, the first one while it waits for the second).
    pub approvals: Vec<ApprovalView>,
    /// 2 under the tenant's four-eyes rule, else 1.
    pub approvals_needed: usize,
    /// The photos still held (none once decided or past `evidence_until`).
    pub evidence: Vec<EvidenceKind>,
}

/// `POST /v1/enrollments/{id}/review` (without the reviewer, who comes from the caller). (`Debug`
/// leaves the note out.)
#[derive(Clone, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    pub decision: ReviewDecision,
    pub reason_code: ReviewReasonCode,
    /// Free text, at most 1000 characters; sealed, never logged.
    #[serde(default)]
    pub note: Option<String>,
}

impl std::fmt::Debug for ReviewRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReviewRequest")
            .field("decision", &self.decision)
            .field("reason_code", &self.reason_code)
            .field("note", &self.note.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl std::fmt::Debug for ApprovalView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApprovalView")
            .field("reviewer", &self.reviewer)
            .field("reason_code", &self.reason_code)
            .field("note", &self.note.as_ref().map(|_| "[redacted]"))
            .field("at", &self.at)
            .finish()
    }
}

/// What a decision did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ReviewOutcome {
    /// Decided: the enrollment is now `verified` or `rejected`.
    Decided { status: EnrollmentStatus },
    /// Four-eyes: the first approve is recorded; another reviewer must approve too.
    AwaitingSecondApproval,
}

/// A photo of the review evidence, ready to send.
pub struct EvidencePhoto {
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for EvidencePhoto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EvidencePhoto([redacted])")
    }
}

/// The tenant's review rules for an enrollment's decision.
pub fn rules(svc: &Services, tenant: &Tenant, mask_review: bool) -> ReviewRules {
    let s = &tenant.settings;
    ReviewRules {
        band_threshold: s
            .review_band_fmr
            .and_then(|r| r.valid())
            .map(|fmr| MatchPolicy::for_fmr(&svc.face, fmr).threshold),
        on_status_unknown: s.review_on_status_unknown.unwrap_or(false),
        mask: mask_review,
    }
}

/// How long the tenant keeps review evidence, in milliseconds.
fn evidence_retention(svc: &Services, tenant: &Tenant) -> Millis {
    let secs = tenant
        .settings
        .review_evidence_retention_secs
        .filter(|s| *s > 0)
        .unwrap_or(svc.settings.review.evidence_retention_secs);
    (secs as Millis).saturating_mul(1000)
}

/// Routes a decision to review by the tenant's rules; on `in_review`, records why and until when
/// its evidence is kept in the decision's `review` (returned for the record).
pub fn route(
    svc: &Services,
    tenant: &Tenant,
    decision: &mut Decision,
    mask_review: bool,
    now: Millis,
) -> Option<ReviewInfo> {
    let reasons = route_to_review(decision, &rules(svc, tenant, mask_review));
    (decision.status == EnrollmentStatus::InReview).then(|| ReviewInfo {
        reasons,
        evidence_until: rfc3339(now.saturating_add(evidence_retention(svc, tenant))),
        outcome: None,
    })
}

/// The evidence of an enrollment going to review: the chip photo (JPEG 2000) and the selfie (when
/// it was posted with the enrollment; a selfie kept by the selfie step has no image any more),
/// decoded as the pipeline decodes them and re-encoded as JPEG off the async executor, sealed under
/// the enrollment's data key. A photo that cannot be re-encoded is left out (logged, no content).
pub async fn seal_evidence(
    svc: &Services,
    dek: &DataKey,
    owner: Owner<'_>,
    chip_photo: Vec<u8>,
    selfie: Option<bytes::Bytes>,
    expires_at: Millis,
) -> UseCaseResult<Vec<SealedEvidence>> {
    let cfg = svc.face.config().clone();
    let photos = tokio::task::spawn_blocking(move || {
        let chip = crate::face::display_jpeg(&cfg, &chip_photo, crate::face::ImageKind::ChipPhoto);
        let selfie =
            selfie.map(|s| crate::face::display_jpeg(&cfg, &s, crate::face::ImageKind::Selfie));
        (chip, selfie)
    })
    .await
    .map_err(UseCaseError::internal)?;
    let mut out = Vec::new();
    for (kind, photo) in [
        (EvidenceKind::ChipPhoto, Some(photos.0)),
        (EvidenceKind::Selfie, photos.1),
    ] {
        match photo {
            Some(Ok(jpeg)) => out.push(SealedEvidence {
                kind,
                sealed: Secret::new(dek.seal(owner, record_kind(kind), &jpeg)),
                expires_at,
            }),
            Some(Err(e)) => {
                tracing::warn!(kind = kind.as_str(), error = ?e, "review evidence: photo left out")
            }
            None => {}
        }
    }
    Ok(out)
}

/// When evidence sealed now expires, for the tenant.
pub fn evidence_expiry(svc: &Services, tenant: &Tenant, now: Millis) -> Millis {
    now.saturating_add(evidence_retention(svc, tenant))
}

fn record_kind(kind: EvidenceKind) -> RecordKind {
    match kind {
        EvidenceKind::ChipPhoto => RecordKind::ReviewChipPhoto,
        EvidenceKind::Selfie => RecordKind::ReviewSelfie,
    }
}

fn owner<'a>(row: &'a EnrollmentRow) -> Owner<'a> {
    Owner {
        tenant_id: &row.tenant_id,
        enrollment_id: &row.id,
    }
}

async fn tenant(svc: &Services, tenant_id: &TenantId) -> UseCaseResult<Tenant> {
    svc.store
        .get_tenant(tenant_id)
        .await?
        .ok_or(UseCaseError::NotFound)
}

async fn enrollment(
    svc: &Services,
    tenant_id: &TenantId,
    id: &EnrollmentId,
) -> UseCaseResult<EnrollmentRow> {
    svc.store
        .get_enrollment(tenant_id, id)
        .await?
        .ok_or(UseCaseError::NotFound)
}

fn parse_cursor(cursor: &str) -> Option<(Millis, EnrollmentId)> {
    let (at, id) = cursor.split_once('.')?;
    Some((at.parse().ok()?, EnrollmentId::parse(id)?))
}

/// `GET /v1/reviews`: the tenant's enrollments in review, oldest first (keyset pagination).
pub async fn list_reviews(
    svc: &Services,
    tenant_id: &TenantId,
    page: ReviewListQuery,
) -> Result<ReviewPage, UseCaseError> {
    let limit = page.limit.unwrap_or(DEFAULT_REVIEW_LIMIT);
    if !(1..=MAX_REVIEW_LIMIT).contains(&limit) {
        return Err(UseCaseError::Malformed(format!(
            "limit must be between 1 and {MAX_REVIEW_LIMIT}"
        )));
    }
    let after = page
        .after
        .as_deref()
        .map(|c| {
            parse_cursor(c).ok_or_else(|| {
                UseCaseError::Malformed("cursor: not a cursor this service gave".into())
            })
        })
        .transpose()?;
    let rows = svc
        .store
        .list_in_review(
            tenant_id,
            after.as_ref().map(|(at, id)| (*at, id)),
            limit + 1,
        )
        .await?;
    let more = rows.len() as i64 > limit;
    let rows = &rows[..rows.len().min(limit as usize)];
    let next_cursor = more
        .then(|| rows.last().map(|r| format!("{}.{}", r.created_at, r.id)))
        .flatten();
    let reviews = rows
        .iter()
        .map(|row| {
            let record = StoredDecision::from_row(row)?;
            let review = record.review.as_ref();
            Ok(ReviewSummary {
                enrollment_id: row.id.clone(),
                subject_ref: row.subject_ref.clone(),
                reasons: review.map(|r| r.reasons.clone()).unwrap_or_default(),
                face_score: record.checks.face_match.score,
                face_threshold: record.checks.face_match.threshold,
                created_at: rfc3339(row.created_at),
                evidence_until: review.map(|r| r.evidence_until.clone()),
            })
        })
        .collect::<UseCaseResult<_>>()?;
    Ok(ReviewPage {
        reviews,
        next_cursor,
    })
}

/// `GET /v1/reviews/{id}`: an enrollment that went to review (waiting or decided).
pub async fn get_review(
    svc: &Services,
    tenant_id: &TenantId,
    id: &EnrollmentId,
) -> Result<ReviewCase, UseCaseError> {
    let row = enrollment(svc, tenant_id, id).await?;
    let document = render(svc, &row)?;
    if document.review.is_none() {
        return Err(UseCaseError::NotFound);
    }
    let dek = data_key(svc, &row)?;
    let approvals = svc
        .store
        .approvals(tenant_id, id)
        .await?
        .into_iter()
        .map(|a| {
            let note = match (&dek, &a.note_sealed) {
                (Some(dek), Some(sealed)) => Some(
                    dek.open(owner(&row), RecordKind::ReviewNote, sealed.expose())
                        .map_err(UseCaseError::internal)
                        .and_then(|n| String::from_utf8(n).map_err(UseCaseError::internal))?,
                ),
                _ => None,
            };
            Ok(ApprovalView {
                reviewer: a.reviewer,
                reason_code: a.reason_code,
                note,
                at: rfc3339(a.created_at),
            })
        })
        .collect::<UseCaseResult<_>>()?;
    let four_eyes = tenant(svc, tenant_id)
        .await?
        .settings
        .review_four_eyes
        .unwrap_or(false);
    Ok(ReviewCase {
        enrollment: document,
        approvals,
        approvals_needed: if four_eyes { 2 } else { 1 },
        evidence: svc.store.evidence_kinds(tenant_id, id).await?,
    })
}

fn check_request(reviewer: &Reviewer, req: &ReviewRequest) -> UseCaseResult<()> {
    if !req.reason_code.fits(req.decision) {
        return Err(UseCaseError::Malformed(format!(
            "reason_code `{}` does not go with `{}` (approve: verified_by_reviewer; reject: any other)",
            req.reason_code.as_str(),
            req.decision.as_str()
        )));
    }
    if req
        .note
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS)
    {
        return Err(UseCaseError::Malformed(format!(
            "note: at most {MAX_NOTE_CHARS} characters"
        )));
    }
    match reviewer {
        Reviewer::ApiKey { reviewer_ref, .. } if !is_reviewer_ref(reviewer_ref) => {
            Err(UseCaseError::Malformed(
                "reviewer: 1 to 64 characters of A-Z a-z 0-9 . _ : @ - (an opaque id, not a name)"
                    .into(),
            ))
        }
        Reviewer::Operator { operator_id } if operator_id.is_empty() => Err(
            UseCaseError::internal(anyhow::anyhow!("an operator reviewer without an id")),
        ),
        _ => Ok(()),
    }
}

/// `POST /v1/enrollments/{id}/review`: approve or reject an enrollment in review, exactly once.
pub async fn decide(
    svc: &Services,
    tenant_id: &TenantId,
    id: &EnrollmentId,
    reviewer: Reviewer,
    req: ReviewRequest,
) -> Result<ReviewOutcome, UseCaseError> {
    check_request(&reviewer, &req)?;
    let row = enrollment(svc, tenant_id, id).await?;
    if row.status != EnrollmentStatus::InReview {
        return Err(UseCaseError::ReviewAlreadyDecided { status: row.status });
    }
    let now = now_millis();
    let dek = data_key(svc, &row)?.ok_or_else(|| {
        UseCaseError::internal(anyhow::anyhow!(
            "enrollment {id} in review without a data key"
        ))
    })?;
    let approval = ApprovalRow {
        reviewer: reviewer.clone(),
        reason_code: req.reason_code,
        note_sealed: req
            .note
            .as_deref()
            .filter(|n| !n.is_empty())
            .map(|n| Secret::new(dek.seal(owner(&row), RecordKind::ReviewNote, n.as_bytes()))),
        created_at: now,
    };
    let decided = Decided {
        row: &row,
        req: &req,
        now,
    };
    if req.decision == ReviewDecision::Reject {
        return decided.write(svc, vec![reviewer], None).await;
    }
    let four_eyes = tenant(svc, tenant_id)
        .await?
        .settings
        .review_four_eyes
        .unwrap_or(false);
    if !four_eyes {
        return decided.write(svc, vec![reviewer], Some(&approval)).await;
    }
    let earlier = svc.store.approvals(tenant_id, id).await?;
    if earlier.iter().any(|a| a.reviewer.key() == reviewer.key()) {
        return Err(UseCaseError::SecondReviewerRequired);
    }
    let mut reviewers: Vec<Reviewer> = earlier.into_iter().map(|a| a.reviewer).collect();
    if !reviewers.is_empty() {
        reviewers.push(reviewer);
        return decided.write(svc, reviewers, Some(&approval)).await;
    }
    let audit = AuditEvent::new(
        tenant_id,
        AuditKind::EnrollmentReviewed,
        id.as_str(),
        serde_json::json!({"decision": req.decision, "reason_code": req.reason_code,
            "reviewer": reviewer, "outcome": "awaiting_second_approval",
            "note_chars": note_chars(&req)}),
    );
    match svc
        .store
        .record_approval(tenant_id, id, &approval, &audit)
        .await?
    {
        ApprovalWrite::Recorded { approvers: 1 } => Ok(ReviewOutcome::AwaitingSecondApproval),
        // Another reviewer's first approve committed just before this one: this one is the second.
        ApprovalWrite::Recorded { .. } => {
            let reviewers = svc
                .store
                .approvals(tenant_id, id)
                .await?
                .into_iter()
                .map(|a| a.reviewer)
                .collect();
            decided.write(svc, reviewers, None).await
        }
        ApprovalWrite::AlreadyApproved => Err(UseCaseError::SecondReviewerRequired),
        ApprovalWrite::NotInReview(status) => Err(UseCaseError::ReviewAlreadyDecided { status }),
    }
}

fn note_chars(req: &ReviewRequest) -> usize {
    req.note.as_deref().map_or(0, |n| n.chars().count())
}

/// A decision about to be written.
struct Decided<'a> {
    row: &'a EnrollmentRow,
    req: &'a ReviewRequest,
    now: Millis,
}

impl Decided<'_> {
    async fn write(
        &self,
        svc: &Services,
        reviewers: Vec<Reviewer>,
        approval: Option<&ApprovalRow>,
    ) -> UseCaseResult<ReviewOutcome> {
        let (row, req) = (self.row, self.req);
        let to = match req.decision {
            ReviewDecision::Approve => EnrollmentStatus::Verified,
            ReviewDecision::Reject => EnrollmentStatus::Rejected,
        };
        let mut record = StoredDecision::from_row(row)?;
        let mut review = record.review.take().unwrap_or_else(|| ReviewInfo {
            reasons: record.reasons.clone(),
            evidence_until: rfc3339(self.now),
            outcome: None,
        });
        review.outcome = Some(ReviewOutcomeView {
            decision: req.decision,
            reason_code: req.reason_code,
            reviewers: reviewers.clone(),
            decided_at: rfc3339(self.now),
        });
        record.review = Some(review);
        let document = record.to_json()?;
        let audit = AuditEvent::new(
            &row.tenant_id,
            AuditKind::EnrollmentReviewed,
            row.id.as_str(),
            serde_json::json!({"decision": req.decision, "reason_code": req.reason_code,
                "reviewers": reviewers, "status": to, "outcome": "decided",
                "note_chars": note_chars(req)}),
        );
        let events = [webhooks::event_at(
            &row.tenant_id,
            webhooks::EventType::EnrollmentReviewed,
            serde_json::json!({"enrollment_id": row.id, "status": to, "decision": req.decision,
                "reason_code": req.reason_code, "reviewers": reviewers}),
            self.now,
        )];
        let write = ReviewWrite {
            to,
            document: &document,
            approval,
            shred: to == EnrollmentStatus::Rejected,
            now: self.now,
        };
        match svc
            .store
            .decide_review(&row.tenant_id, &row.id, &write, &audit, &events)
            .await?
        {
            Ok(()) => {}
            Err(Some(status)) => return Err(UseCaseError::ReviewAlreadyDecided { status }),
            Err(None) => return Err(UseCaseError::NotFound),
        }
        // This replica's gallery at once (approved: found from now on); the others follow the feed.
        if let Err(e) =
            search::sync::refresh_enrollment(svc, &svc.faces, &row.tenant_id, &row.id).await
        {
            tracing::warn!(enrollment_id = %row.id, error = %e, "gallery: refresh after review failed");
        }
        metrics::counter!("reviews_decided_total", "decision" => req.decision.as_str())
            .increment(1);
        Ok(ReviewOutcome::Decided { status: to })
    }
}

/// `GET /v1/enrollments/{id}/evidence/{kind}`: one photo of the review evidence, as JPEG; the view
/// is audited (`review.evidence_viewed`, naming the viewer) in the same transaction as the read.
/// `NotFound` once shredded (decided, past its deadline, or deleted).
pub async fn evidence(
    svc: &Services,
    tenant_id: &TenantId,
    id: &EnrollmentId,
    kind: EvidenceKind,
    viewer: Reviewer,
) -> Result<EvidencePhoto, UseCaseError> {
    let row = enrollment(svc, tenant_id, id).await?;
    let audit = AuditEvent::new(
        tenant_id,
        AuditKind::ReviewEvidenceViewed,
        id.as_str(),
        serde_json::json!({"kind": kind, "viewer": viewer}),
    );
    let sealed = svc
        .store
        .view_evidence(tenant_id, id, kind, &audit)
        .await?
        .ok_or(UseCaseError::NotFound)?;
    let dek = data_key(svc, &row)?.ok_or(UseCaseError::NotFound)?;
    let bytes = dek
        .open(owner(&row), record_kind(kind), sealed.expose())
        .map_err(UseCaseError::internal)?;
    Ok(EvidencePhoto {
        content_type: "image/jpeg",
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        let id = EnrollmentId::new();
        let c = format!("{}.{}", 1_700_000_000_123i64, id);
        assert_eq!(parse_cursor(&c), Some((1_700_000_000_123, id)));
        assert_eq!(parse_cursor("nonsense"), None);
        assert_eq!(parse_cursor("12.enr_00"), None);
        assert_eq!(parse_cursor("x.enr_00000000000000000000000000000000"), None);
    }

    #[test]
    fn requests_are_checked_before_anything_is_read() {
        let api = Reviewer::ApiKey {
            key_id: "key_1".into(),
            reviewer_ref: "rev-1".into(),
        };
        let ok = ReviewRequest {
            decision: ReviewDecision::Approve,
            reason_code: ReviewReasonCode::VerifiedByReviewer,
            note: Some("looked twice".into()),
        };
        assert!(check_request(&api, &ok).is_ok());
        let wrong_code = ReviewRequest {
            reason_code: ReviewReasonCode::FaceMismatch,
            ..ok.clone()
        };
        assert!(matches!(
            check_request(&api, &wrong_code),
            Err(UseCaseError::Malformed(_))
        ));
        let long = ReviewRequest {
            note: Some("あ".repeat(MAX_NOTE_CHARS + 1)),
            ..ok.clone()
        };
        assert!(check_request(&api, &long).is_err());
        let at_limit = ReviewRequest {
            note: Some("あ".repeat(MAX_NOTE_CHARS)),
            ..ok.clone()
        };
        assert!(check_request(&api, &at_limit).is_ok());
        let named = Reviewer::ApiKey {
            key_id: "key_1".into(),
            reviewer_ref: "Yamada Taro".into(),
        };
        assert!(check_request(&named, &ok).is_err());
        assert!(
            !format!("{ok:?}").contains("looked twice"),
            "the note never reaches a log"
        );
    }
}
