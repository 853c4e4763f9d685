//! Transaction-time re-verification (出口対策): `POST /v1/transactions/verify`.
//!
//! Decision rule: the selfie must pass quality (else `quality_failed`) and liveness when the
//! session asks for it (else `liveness_failed`); then it is scored against every stored template
//! of the enrollment made by the same model (the enrollment selfie and the chip photo), and the
//! BEST score is compared with the threshold at the transaction-time target FMR. Non-matches count
//! towards the lockout (see [`crate::lockout`]); quality and liveness failures do not.

use super::enrollments::{challenge_of, resolve_session, round4};
use super::faces;
use super::idempotency::{self, Answer};
use super::upload;
use super::{ApiContext, ApiError, ApiResult, Caller};
use crate::crypto::{Owner, RecordKind};
use crate::domain::{self, new_id, now_millis, prefix, Purpose};
use crate::face::Template;
use crate::liveness::Challenge;
use crate::lockout::Attempt;
use crate::store::{AuditEvent, EnrollmentRow, Lockout, NewVerification};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde_json::json;

/// The outcome of a transaction-time verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Match,
    NoMatch,
    /// The selfie failed a quality check: nothing was decided about the face.
    QualityFailed,
    /// The live-capture challenge failed.
    LivenessFailed,
}

impl Decision {
    fn as_str(self) -> &'static str {
        match self {
            Decision::Match => "match",
            Decision::NoMatch => "no_match",
            Decision::QualityFailed => "quality_failed",
            Decision::LivenessFailed => "liveness_failed",
        }
    }
}

/// The answer of `POST /v1/transactions/verify` (200).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct VerificationDocument {
    pub id: String,
    pub enrollment_id: String,
    pub decision: Decision,
    /// The best cosine similarity against the enrollment's templates (absent if not compared).
    pub score: Option<f64>,
    pub threshold: f64,
    pub target_fmr: f64,
    pub model: String,
    /// Which stored templates were compared: `enrollment_selfie`, `chip_photo`.
    pub compared_with: Vec<String>,
    #[schema(value_type = Object)]
    pub selfie_quality: crate::face::QualityReport,
    #[schema(value_type = Object)]
    pub liveness: crate::liveness::LivenessReport,
    pub created_at: String,
}

pub fn router() -> Router<ApiContext> {
    Router::new().route("/v1/transactions/verify", post(verify))
}

/// Re-verify an enrolled person by a new selfie.
#[utoipa::path(post, path = "/v1/transactions/verify", tag = "transactions",
    request_body(content_type = "multipart/form-data", description = "part `selfie` (+ `liveness_frame`… if the session asks); with an API key also `enrollment_id`"),
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    responses(
        (status = 200, description = "Decided (also when the answer is no)", body = VerificationDocument),
        (status = 400, body = super::error::Problem, description = "malformed_request"),
        (status = 401, body = super::error::Problem, description = "unauthenticated"),
        (status = 403, body = super::error::Problem, description = "forbidden"),
        (status = 404, body = super::error::Problem, description = "not_found (also after deletion)"),
        (status = 409, body = super::error::Problem, description = "enrollment_inactive / session_consumed / idempotency_conflict"),
        (status = 413, body = super::error::Problem, description = "payload_too_large"),
        (status = 415, body = super::error::Problem, description = "unsupported_media_type"),
        (status = 423, body = super::error::Problem, description = "enrollment_locked (Retry-After)"),
        (status = 503, body = super::error::Problem, description = "overloaded"),
    ),
    security(("client_token" = []), ("api_key" = [])))]
pub async fn verify(
    State(ctx): State<ApiContext>,
    caller: Caller,
    headers: HeaderMap,
    request: Request,
) -> ApiResult<Response> {
    let limits = upload::PartLimits {
        card_json: 0,
        image: ctx.settings.face.selfie_max_bytes,
        max_frames: ctx.settings.liveness.max_frames,
    };
    let upload = upload::read(request, limits).await?;
    let (tenant_id, enrollment_id, session) = match &caller {
        Caller::Client { .. } => {
            let session = resolve_session(
                &ctx,
                &caller,
                upload.session_id.as_deref(),
                Purpose::Transaction,
            )
            .await?;
            let enrollment_id = session.enrollment_id.clone().ok_or_else(|| {
                ApiError::internal(anyhow::anyhow!("transaction session without enrollment"))
            })?;
            (session.tenant_id.clone(), enrollment_id, Some(session))
        }
        Caller::Tenant { tenant_id } => {
            let enrollment_id = upload
                .enrollment_id
                .clone()
                .ok_or_else(|| ApiError::Malformed("missing field `enrollment_id`".into()))?;
            (tenant_id.clone(), enrollment_id, None)
        }
    };
    let key = idempotency::key(&headers)?;
    let fingerprint = upload.fingerprint("POST /v1/transactions/verify");
    idempotency::once(&ctx, &tenant_id, key, fingerprint, || async {
        let enrollment = ctx.store.get_enrollment(&tenant_id, &enrollment_id).await?.ok_or(ApiError::NotFound)?;
        if !super::enrollment_is_active(&enrollment.status) {
            return Err(ApiError::EnrollmentInactive);
        }
        let lockout_state = Lockout {
            failed_count: enrollment.failed_count,
            failure_window_start: enrollment.failure_window_start,
            locked_until: enrollment.locked_until,
        };
        let policy = ctx.settings.verification.lockout;
        if let Some(retry_after_secs) = policy.locked_for(&lockout_state, now_millis()) {
            return Err(ApiError::EnrollmentLocked { retry_after_secs });
        }
        let selfie = upload.require_selfie()?;
        let challenge = session.as_ref().map(challenge_of).unwrap_or_else(Challenge::off);
        let work = faces::analyze(&ctx.face, selfie, None, &upload.liveness_frames).await?;
        let liveness = work.liveness(&challenge, &ctx.settings.liveness);
        let threshold = ctx.face.threshold_for_fmr(ctx.settings.face.transaction_target_fmr);

        let (decision, best, compared_with) = if work.selfie.quality.result != crate::face::QualityResult::Pass {
            (Decision::QualityFailed, None, Vec::new())
        } else if !liveness.passed() {
            (Decision::LivenessFailed, None, Vec::new())
        } else {
            let templates = open_templates(&ctx, &enrollment).await?;
            let probe = work
                .selfie
                .template
                .as_ref()
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("passing selfie without template")))?;
            let mut best: Option<f32> = None;
            let mut compared = Vec::new();
            for (source, template) in &templates {
                // Templates of another model are never compared (a re-enrollment is needed after a model change).
                if let Ok(score) = ctx.face.compare(probe, template) {
                    best = Some(best.map_or(score, |b: f32| b.max(score)));
                    compared.push(source.clone());
                }
            }
            match best {
                Some(score) if score >= threshold.score => (Decision::Match, Some(score), compared),
                Some(score) => (Decision::NoMatch, Some(score), compared),
                None => return Err(ApiError::EnrollmentInactive),
            }
        };
        let attempt = match decision {
            Decision::Match => Attempt::Match,
            Decision::NoMatch => Attempt::NoMatch,
            Decision::QualityFailed | Decision::LivenessFailed => Attempt::Undecided,
        };
        let now = now_millis();
        let next = policy.next(&lockout_state, attempt, now);
        let id = new_id(prefix::VERIFICATION);
        let document = VerificationDocument {
            id: id.clone(),
            enrollment_id: enrollment.id.clone(),
            decision,
            score: best.map(round4),
            threshold: round4(threshold.score),
            target_fmr: threshold.target_fmr,
            model: ctx.face.model_label(),
            compared_with,
            selfie_quality: work.selfie.quality.clone(),
            liveness,
            created_at: domain::rfc3339(now),
        };
        // Through text, so f32 metrics print as short decimals.
        let text = serde_json::to_string(&document).map_err(ApiError::internal)?;
        let body: serde_json::Value = serde_json::from_str(&text).map_err(ApiError::internal)?;
        let verification = NewVerification {
            id: id.clone(),
            tenant_id: tenant_id.clone(),
            enrollment_id: enrollment.id.clone(),
            session_id: session.as_ref().map(|s| s.id.clone()),
            decision: decision.as_str().to_string(),
            document: text,
            created_at: now,
        };
        let audit = AuditEvent::new(
            &tenant_id,
            "verification.created",
            &id,
            json!({"enrollment_id": enrollment.id, "decision": decision.as_str(), "locked": next.locked_until.is_some()}),
        );
        ctx.store.record_verification(&verification, next, &audit).await?;
        metrics::counter!("verifications_total", "decision" => decision.as_str()).increment(1);
        Ok(Answer { status: StatusCode::OK, body, resource_id: Some(id) })
    })
    .await
}

/// The enrollment's templates, unsealed, labelled by source.
async fn open_templates(
    ctx: &ApiContext,
    enrollment: &EnrollmentRow,
) -> ApiResult<Vec<(String, Template)>> {
    let dek = super::enrollments::data_key(ctx, enrollment)?.ok_or(ApiError::EnrollmentInactive)?;
    let owner = Owner {
        tenant_id: &enrollment.tenant_id,
        enrollment_id: &enrollment.id,
    };
    let stored = ctx
        .store
        .templates(&enrollment.tenant_id, &enrollment.id)
        .await?;
    stored
        .iter()
        .map(|t| {
            let plain = dek
                .open(owner, RecordKind::Template, t.sealed.expose())
                .map_err(ApiError::internal)?;
            Ok((
                t.source.clone(),
                Template::from_bytes(&plain)
                    .map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")))?,
            ))
        })
        .collect()
}
