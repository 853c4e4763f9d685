//! The selfie step, `POST /v1/sessions/{id}/selfie`: the app posts the selfie (and its liveness frames)
//! on its own, before or after the card, and hears at once whether it passes. The judging is the
//! enrollment's and the verify's own ([`super::selfie`]). A passing selfie is kept with the session,
//! sealed under a per-session data key, until an enrollment or verify of the session uses it (the
//! upload then needs no selfie), the session is consumed, or it expires; a later passing post
//! replaces it; a retake keeps nothing (an earlier accepted selfie stays). Every post is audited.

use super::idempotency::{self, Answer, Keyed};
use super::selfie::{self, SelfieSource};
use super::sessions::{self, StoredChallenge};
use super::upload::{self, SelfieUpload};
use super::{Caller, Services, UseCaseError, UseCaseResult};
use crate::domain::{self, now_millis, Reasons, SessionId};
use crate::face::QualityReport;
use crate::liveness::LivenessReport;
use crate::store::{AuditEvent, SelfieWrite};
use serde::{Deserialize, Serialize};

/// The selfie step's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SelfieResult {
    /// Kept with the session: the enrollment (or verify) may now be posted without a selfie.
    Pass,
    /// Not kept: take the selfie again (`reasons` says why).
    Retake,
}

impl SelfieResult {
    pub fn as_str(self) -> &'static str {
        match self {
            SelfieResult::Pass => "pass",
            SelfieResult::Retake => "retake",
        }
    }
}

/// The answer of `POST /v1/sessions/{id}/selfie` (200, for a retake too: the verdict is the answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SelfieStepDocument {
    pub session_id: SessionId,
    pub result: SelfieResult,
    /// The failed checks' codes (the enrollment's vocabulary): empty on `pass`.
    pub reasons: Reasons,
    pub selfie_quality: QualityReport,
    pub liveness: LivenessReport,
    /// On `pass`: until when the selfie is kept (the session's expiry) unless used first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_until: Option<String>,
    pub created_at: String,
}

const ROUTE: &str = "POST /v1/sessions/{id}/selfie";

/// `POST /v1/sessions/{id}/selfie` with the client token of session `session_id`.
pub async fn post(
    svc: &Services,
    caller: &Caller,
    session_id: &SessionId,
    upload: SelfieUpload,
    idempotency_key: Option<String>,
) -> UseCaseResult<Answer> {
    let session = match caller {
        Caller::Client { session } if &session.id == session_id => session,
        Caller::Client { .. } => {
            return Err(UseCaseError::Forbidden(
                "a client token acts only on its own session".into(),
            ))
        }
        Caller::Tenant { .. } => {
            return Err(UseCaseError::Forbidden(
                "the selfie step is the app's: use the session's client token".into(),
            ))
        }
    };
    let keyed = idempotency_key.map(|key| {
        Keyed::new(
            caller.tenant_id(),
            &caller.credential(),
            ROUTE,
            key,
            &upload::fingerprint(
                session_id.as_str(),
                "",
                b"",
                &upload.selfie,
                &upload.liveness_frame,
            ),
        )
    });
    let upload = &upload;
    idempotency::once(svc, keyed, |pending| async move {
        // Either purpose: an enrollment's or a transaction's selfie.
        let session = sessions::usable_session(svc, caller, session_id, session.purpose).await?;
        let challenge = StoredChallenge::of(&session);
        let source = SelfieSource::Posted(upload.selfie.clone());
        let (judged, _) = source
            .judge(
                svc,
                &session.tenant_id,
                None,
                &upload.liveness_frame,
                &challenge,
            )
            .await?;
        let now = now_millis();
        let passed = judged.passed();
        let result = if passed {
            SelfieResult::Pass
        } else {
            SelfieResult::Retake
        };
        let reasons = judged.reasons();
        let keep = if passed {
            Some(selfie::seal(
                &svc.keys,
                &session.tenant_id,
                &session.id,
                &judged,
                now,
                session.expires_at,
            )?)
        } else {
            None
        };
        let document = SelfieStepDocument {
            session_id: session.id.clone(),
            result,
            reasons: reasons.clone(),
            selfie_quality: judged.quality.clone(),
            liveness: judged.liveness.clone(),
            kept_until: passed.then(|| domain::rfc3339(session.expires_at)),
            created_at: domain::rfc3339(now),
        };
        let answer = Answer::ok(&document)?;
        let audit = AuditEvent::new(
            &session.tenant_id,
            crate::domain::AuditKind::SessionSelfieChecked,
            session.id.as_str(),
            serde_json::json!({"result": result.as_str(), "reasons": reasons,
                "liveness": judged.liveness.result}),
        );
        // The answer holds quality metrics and codes only: sealed under the KEK.
        let completion =
            pending.map(|p| p.sealed_under_kek(svc, &answer, Some(session.id.as_str())));
        svc.store
            .record_selfie(&SelfieWrite {
                tenant_id: &session.tenant_id,
                session_id: &session.id,
                keep: keep.as_ref(),
                audit: &audit,
                answer: completion.as_ref(),
                now,
            })
            .await?;
        metrics::counter!("session_selfies_total", "result" => result.as_str()).increment(1);
        Ok(answer)
    })
    .await
}
