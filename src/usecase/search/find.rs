//! `POST /v1/faces/search` (API key only): a selfie searched against the tenant's enrollments.
//! The selfie passes the quality rules of a verify first; candidates at or above the tenant's 1:N
//! threshold (its target FPIR at its gallery size) come back best first. Every search is audited.

use super::check::{blocking, ready_index, Candidate};
use crate::domain::{new_id, now_millis, rfc3339, AuditKind, EnrollmentId, TenantId};
use crate::face::identification::threshold_for_fpir;
use crate::face::{QualityReport, QualityResult};
use crate::store::AuditEvent;
use crate::usecase::upload::VerifyUpload;
use crate::usecase::{faces, round4, Services, UseCaseError, UseCaseResult};
use serde::{Deserialize, Serialize};

/// Whether the search ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SearchResult {
    Searched,
    /// The selfie failed a quality check: nothing was searched.
    QualityFailed,
}

/// The answer of `POST /v1/faces/search` (200). Candidates are leads for a person to review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SearchDocument {
    /// `srh_…`: the audit event's subject.
    pub id: String,
    pub result: SearchResult,
    /// At or above the threshold, best first, at most `limit`.
    pub candidates: Vec<Candidate>,
    pub threshold: f64,
    pub target_fpir: f64,
    /// Enrollments searched.
    pub gallery_size: usize,
    pub model: String,
    pub selfie_quality: QualityReport,
    pub created_at: String,
}

/// Default and largest `limit`.
pub const DEFAULT_LIMIT: usize = 10;

pub async fn search(
    svc: &Services,
    tenant_id: &TenantId,
    upload: VerifyUpload,
    limit: Option<usize>,
) -> UseCaseResult<SearchDocument> {
    let max = svc.settings.search.max_limit;
    let limit = limit.unwrap_or(DEFAULT_LIMIT.min(max));
    if !(1..=max).contains(&limit) {
        return Err(UseCaseError::Malformed(format!(
            "limit must be between 1 and {max}"
        )));
    }
    if upload.enrollment_id.is_some() || !upload.liveness_frame.is_empty() {
        return Err(UseCaseError::Malformed(
            "a search takes a `selfie` part only".into(),
        ));
    }
    let policy = super::check::policy(svc, tenant_id).await?;
    let selfie = upload
        .selfie
        .ok_or_else(|| UseCaseError::Malformed("a search needs a `selfie` part".into()))?;
    let work = faces::analyze(svc, tenant_id, selfie, None, &[]).await?;
    let index = ready_index(svc).await?;
    let now = now_millis();
    let id = new_id("srh");
    let (result, candidates, threshold, gallery_size) =
        match (&work.selfie.template, work.selfie.quality.result) {
            (Some(probe), QualityResult::Pass) => {
                let (index, tenant, probe, fpir) = (
                    index.clone(),
                    tenant_id.clone(),
                    probe.clone(),
                    policy.target_fpir,
                );
                let found = blocking(move || {
                    index.search_faces(&tenant, &probe, |n| threshold_for_fpir(fpir, n), limit)
                })
                .await?;
                let candidates: Vec<Candidate> = found
                    .hits
                    .into_iter()
                    .filter_map(|(h, _)| {
                        EnrollmentId::parse(&h.id).map(|enrollment_id| Candidate {
                            enrollment_id,
                            score: round4(h.score),
                            rank: h.rank,
                        })
                    })
                    .collect();
                (
                    SearchResult::Searched,
                    candidates,
                    found.threshold,
                    found.gallery_size,
                )
            }
            _ => {
                let n = index.len(tenant_id);
                (
                    SearchResult::QualityFailed,
                    Vec::new(),
                    threshold_for_fpir(policy.target_fpir, n),
                    n,
                )
            }
        };
    let ids: Vec<&EnrollmentId> = candidates.iter().map(|c| &c.enrollment_id).collect();
    svc.store
        .append_audit(&AuditEvent {
            tenant_id: tenant_id.clone(),
            event: AuditKind::FacesSearched,
            subject: id.clone(),
            details: serde_json::json!({"result": result, "candidates": ids, "gallery_size": gallery_size,
                                        "threshold": round4(threshold), "target_fpir": policy.target_fpir}),
            at: now,
        })
        .await?;
    metrics::counter!("face_searches_total").increment(1);
    Ok(SearchDocument {
        id,
        result,
        candidates,
        threshold: round4(threshold),
        target_fpir: policy.target_fpir,
        gallery_size,
        model: svc.face.model_label(),
        selfie_quality: work.selfie.quality,
        created_at: rfc3339(now),
    })
}
