//! Transaction-time re-verification (出口対策).
//!
//! Decision rule: the selfie must pass quality (else `quality_failed`) and liveness when the session
//! asks for it (else `liveness_failed`); then it is scored against every stored template of the
//! enrollment made by the same model (the enrollment selfie and the chip photo), and the BEST score
//! is compared with the threshold at the transaction-time target FMR. Non-matches count towards the
//! lockout; quality and liveness failures do not. The attempt is counted by a compare-and-set of the
//! lockout counters in the store's write transaction (see `record`), so parallel attempts cannot
//! race past the limit.

use super::enrollment::{self, MatchPolicy};
use super::idempotency::{self, Answer, Keyed};
use super::selfie::SelfieSource;
use super::sessions::{self, StoredChallenge};
use super::upload::{self, VerifyUpload};
use super::{round4, secs_until, Caller, Services, UseCaseError, UseCaseResult};
use crate::crypto::{Owner, RecordKind};
use crate::domain::{
    self, now_millis, EnrollmentId, Purpose, Reasons, TemplateSource, VerificationDecision,
    VerificationId,
};
use crate::face::{QualityReport, QualityResult, Template};
use crate::liveness::LivenessReport;
use crate::lockout::Attempt;
use crate::store::{
    AuditEvent, EnrollmentRow, NewVerification, Session, StoredTemplate, VerificationWrite,
};
use serde::{Deserialize, Serialize};

/// The answer of `POST /v1/transactions/verify` (200).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VerificationDocument {
    pub id: VerificationId,
    pub enrollment_id: EnrollmentId,
    pub decision: VerificationDecision,
    /// The best cosine similarity against the enrollment's templates (absent if not compared).
    pub score: Option<f64>,
    pub threshold: f64,
    pub target_fmr: f64,
    pub model: String,
    /// Which stored templates were compared.
    pub compared_with: Vec<TemplateSource>,
    pub selfie_quality: QualityReport,
    pub liveness: LivenessReport,
    pub created_at: String,
    /// `watchlist_hit` when the selfie matched the tenant's watchlist (the decision is unchanged).
    #[serde(default, skip_serializing_if = "Reasons::is_empty")]
    pub reasons: Reasons,
    /// The watchlist check of the selfie (issue 21); entry ids only with an API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watchlist: Option<super::search::WatchlistCheck>,
}

/// The decision and what it rests on.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub decision: VerificationDecision,
    pub best: Option<f32>,
    pub compared_with: Vec<TemplateSource>,
}

/// Pure: the decision from the selfie's quality, the liveness report and the scores against each
/// comparable template. `None` when nothing could be compared (no template of the running model).
pub fn decide(
    quality: &QualityReport,
    liveness: &LivenessReport,
    scores: &[(TemplateSource, f32)],
    threshold: f32,
) -> Option<Outcome> {
    if quality.result != QualityResult::Pass {
        return Some(Outcome {
            decision: VerificationDecision::QualityFailed,
            best: None,
            compared_with: Vec::new(),
        });
    }
    if !liveness.passed() {
        return Some(Outcome {
            decision: VerificationDecision::LivenessFailed,
            best: None,
            compared_with: Vec::new(),
        });
    }
    let best = scores.iter().map(|(_, s)| *s).reduce(f32::max)?;
    Some(Outcome {
        decision: if best >= threshold {
            VerificationDecision::Match
        } else {
            VerificationDecision::NoMatch
        },
        best: Some(best),
        compared_with: scores.iter().map(|(s, _)| *s).collect(),
    })
}

/// What the attempt counts as for the lockout.
pub fn attempt_of(decision: VerificationDecision) -> Attempt {
    match decision {
        VerificationDecision::Match => Attempt::Match,
        VerificationDecision::NoMatch => Attempt::NoMatch,
        VerificationDecision::QualityFailed | VerificationDecision::LivenessFailed => {
            Attempt::Undecided
        }
    }
}

/// `POST /v1/transactions/verify`.
pub async fn verify(
    svc: &Services,
    caller: &Caller,
    upload: VerifyUpload,
    idempotency_key: Option<String>,
) -> UseCaseResult<Answer> {
    // Which enrollment, before any state check (so a retry's key is looked up first).
    let (enrollment_id, session_id) = match caller {
        Caller::Client { session } => {
            if upload.enrollment_id.is_some() {
                return Err(UseCaseError::Malformed(
                    "`enrollment_id` comes from the session with a client token; do not send it"
                        .into(),
                ));
            }
            let session_id = session.id.clone();
            let enrollment_id = session
                .enrollment_id
                .clone()
                .ok_or_else(|| UseCaseError::Forbidden("this session is for enrollment".into()))?;
            (enrollment_id.to_string(), Some(session_id))
        }
        Caller::Tenant { .. } => {
            let id = upload.enrollment_id.clone().ok_or_else(|| {
                UseCaseError::Forbidden(
                    "with an API key, verify through POST /v1/enrollments/{id}/verify".into(),
                )
            })?;
            (id, None)
        }
    };
    let keyed = idempotency_key.map(|key| {
        Keyed::new(
            caller.tenant_id(),
            &caller.credential(),
            "POST /v1/transactions/verify",
            key,
            &upload::fingerprint(
                session_id.as_ref().map(|s| s.as_str()).unwrap_or(""),
                &enrollment_id,
                b"",
                upload.selfie.as_deref().unwrap_or_default(),
                &upload.liveness_frame,
            ),
        )
    });
    let upload = &upload;
    let (enrollment_id, session_id) = (&enrollment_id, &session_id);
    idempotency::once(svc, keyed, |pending| async move {
        let session = match session_id {
            Some(id) => {
                Some(sessions::usable_session(svc, caller, id, Purpose::Transaction).await?)
            }
            None => None,
        };
        let tenant_id = caller.tenant_id();
        // The posted selfie, or the one the selfie step kept with this session.
        let selfie = SelfieSource::resolve(svc, session.as_ref(), upload.selfie.clone()).await?;
        let enrollment = match EnrollmentId::parse(enrollment_id) {
            Some(id) => svc.store.get_enrollment(tenant_id, &id).await?,
            None => None,
        }
        .ok_or(UseCaseError::NotFound)?;
        if !enrollment.status.is_active() {
            return Err(UseCaseError::EnrollmentInactive);
        }
        let policy = svc.settings.verification.lockout;
        let seen = enrollment.lockout();
        // Advisory: a locked enrollment costs no face work. `record` re-checks when it counts.
        if let Some(retry_after_secs) = policy.locked_for(&seen, now_millis()) {
            return Err(UseCaseError::EnrollmentLocked { retry_after_secs });
        }
        let challenge = session
            .as_ref()
            .map(StoredChallenge::of)
            .unwrap_or(StoredChallenge::Readable(crate::liveness::Challenge::off()));
        // The store reads the decision may need run while the selfie is analysed (they are used,
        // and their errors count, only as they did when read after it).
        let (judged, stored, policy) = tokio::join!(
            selfie.judge(svc, tenant_id, None, &upload.liveness_frame, &challenge),
            svc.store.templates(&enrollment.tenant_id, &enrollment.id),
            super::search::check::policy(svc, tenant_id),
        );
        let (judged, _) = judged?;
        let threshold = MatchPolicy::for_fmr(&svc.face, svc.settings.face.transaction_target_fmr);
        let scores = match (&judged.template, judged.passed()) {
            (Some(probe), true) => scores(svc, &enrollment, &stored?, probe)?,
            _ => Vec::new(),
        };
        // Nothing comparable: the templates are of another model (re-enrollment needed).
        let outcome = decide(
            &judged.quality,
            &judged.liveness,
            &scores,
            threshold.threshold,
        )
        .ok_or(UseCaseError::EnrollmentInactive)?;
        // Every verify's selfie is checked against the tenant's watchlist (issue 21).
        let watchlist = match (&judged.template, judged.quality.result) {
            (Some(probe), QualityResult::Pass) => {
                let policy = policy?;
                let index = super::search::check::ready_index(svc).await?;
                let mut check = super::search::check::watchlist(
                    index,
                    tenant_id,
                    probe,
                    &policy,
                    svc.settings.search.max_limit,
                )
                .await?;
                // A verify only flags.
                check.mode = crate::domain::search::CheckMode::Flag;
                Some(check)
            }
            _ => None,
        };
        let shown = Shown {
            watchlist,
            for_client: matches!(caller, Caller::Client { .. }),
        };
        record(
            svc,
            &enrollment,
            session.as_ref(),
            outcome,
            &threshold,
            judged.quality,
            judged.liveness,
            pending,
            shown,
        )
        .await
    })
    .await
}

/// The 1:N part of a verification's answer, and to whom it is shown.
struct Shown {
    watchlist: Option<super::search::WatchlistCheck>,
    for_client: bool,
}

#[allow(clippy::too_many_arguments)]
async fn record(
    svc: &Services,
    enrollment: &EnrollmentRow,
    session: Option<&Session>,
    outcome: Outcome,
    threshold: &MatchPolicy,
    selfie_quality: QualityReport,
    liveness: LivenessReport,
    pending: Option<idempotency::Pending>,
    shown: Shown,
) -> UseCaseResult<Answer> {
    let now = now_millis();
    let id = VerificationId::new();
    let listed = shown
        .watchlist
        .as_ref()
        .map(|w| w.ids())
        .unwrap_or_default();
    let mut reasons = Reasons::default();
    if !listed.is_empty() {
        reasons.push(domain::Reason::WatchlistHit);
    }
    let document = VerificationDocument {
        id: id.clone(),
        enrollment_id: enrollment.id.clone(),
        decision: outcome.decision,
        score: outcome.best.map(round4),
        threshold: round4(threshold.threshold),
        target_fmr: threshold.target_fmr,
        model: threshold.model.clone(),
        compared_with: outcome.compared_with,
        selfie_quality,
        liveness,
        created_at: domain::rfc3339(now),
        reasons,
        watchlist: shown.watchlist.clone(),
    };
    // The stored record keeps the entry ids (for the API key's reads); a client token's answer not.
    let stored_body = serde_json::to_vec(&document).map_err(UseCaseError::internal)?;
    let document = VerificationDocument {
        watchlist: match (&document.watchlist, shown.for_client) {
            (Some(w), true) => Some(w.for_client()),
            _ => document.watchlist.clone(),
        },
        ..document
    };
    let answer = Answer::ok(&document)?;
    let verification = NewVerification {
        id: id.clone(),
        tenant_id: enrollment.tenant_id.clone(),
        enrollment_id: enrollment.id.clone(),
        session_id: session.map(|s| s.id.clone()),
        decision: outcome.decision,
        document: String::from_utf8(stored_body).map_err(UseCaseError::internal)?,
        created_at: now,
    };
    let audit = AuditEvent::new(
        &enrollment.tenant_id,
        crate::domain::AuditKind::VerificationCreated,
        id.as_str(),
        if listed.is_empty() {
            serde_json::json!({"enrollment_id": enrollment.id, "decision": outcome.decision.as_str()})
        } else {
            serde_json::json!({"enrollment_id": enrollment.id, "decision": outcome.decision.as_str(),
                               "watchlist_entries": listed})
        },
    );
    // The answer holds scores and quality metrics only: sealed under the KEK.
    let completion = pending.map(|p| p.sealed_under_kek(svc, &answer, Some(id.as_str())));
    // The lockout rule is applied here to the counters as stored; the store writes the result only
    // if they are still what was read (compare-and-set), so parallel attempts are counted one after
    // the other and cannot race past the limit. A lost race reads the counters again.
    let policy = &svc.settings.verification.lockout;
    let attempt = attempt_of(outcome.decision);
    let mut seen = enrollment.lockout();
    for _ in 0..MAX_LOCKOUT_WRITE_ATTEMPTS {
        let was_locked = policy.locked_for(&seen, now).is_some();
        if was_locked && attempt == Attempt::Match {
            // Locked by a concurrent attempt since the advisory check: a match does not clear a lock.
            return Err(UseCaseError::EnrollmentLocked {
                retry_after_secs: secs_until(seen.locked_until.unwrap_or(now)),
            });
        }
        let next = policy.next(&seen, attempt, now);
        let locked_now = !was_locked && policy.locked_for(&next, now).is_some();
        let mut audits = vec![audit.clone()];
        let mut events = Vec::new();
        if !listed.is_empty() {
            events.push(super::webhooks::event_at(
                &enrollment.tenant_id,
                super::webhooks::EventType::WatchlistHit,
                serde_json::json!({"enrollment_id": enrollment.id, "verification_id": id, "entries": listed}),
                now,
            ));
        }
        if locked_now {
            audits.push(AuditEvent {
                tenant_id: enrollment.tenant_id.clone(),
                event: crate::domain::AuditKind::EnrollmentLocked,
                subject: enrollment.id.to_string(),
                details: serde_json::json!({"verification_id": id, "failed_count": next.failed_count, "locked_until": next.locked_until}),
                at: now,
            });
            events.push(super::webhooks::event_at(
                &enrollment.tenant_id,
                super::webhooks::EventType::VerificationLocked,
                serde_json::json!({"enrollment_id": enrollment.id, "verification_id": id}),
                now,
            ));
        }
        let write = VerificationWrite {
            verification: &verification,
            seen,
            next,
            audit: &audits,
            answer: completion.as_ref(),
            events: &events,
        };
        if svc.store.record_verification(&write).await? {
            if locked_now {
                metrics::counter!("enrollments_locked_total").increment(1);
            }
            metrics::counter!("verifications_total", "decision" => outcome.decision.as_str())
                .increment(1);
            return Ok(answer);
        }
        // A concurrent attempt was counted first (or the enrollment was deleted: 404).
        seen = svc
            .store
            .get_enrollment(&enrollment.tenant_id, &enrollment.id)
            .await?
            .ok_or(UseCaseError::NotFound)?
            .lockout();
    }
    Err(UseCaseError::internal(anyhow::anyhow!(
        "the enrollment's lockout counters kept changing"
    )))
}

/// Writes of one attempt before it gives up: each lost race means another attempt was counted, so
/// this bounds the parallel attempts on one enrollment that are certain to be counted.
const MAX_LOCKOUT_WRITE_ATTEMPTS: usize = 64;

/// Scores of the probe against the enrollment's stored templates of the same model.
fn scores(
    svc: &Services,
    enrollment: &EnrollmentRow,
    stored: &[StoredTemplate],
    probe: &Template,
) -> UseCaseResult<Vec<(TemplateSource, f32)>> {
    let dek = enrollment::data_key(svc, enrollment)?.ok_or(UseCaseError::EnrollmentInactive)?;
    let owner = Owner {
        tenant_id: &enrollment.tenant_id,
        enrollment_id: &enrollment.id,
    };
    let mut scores = Vec::new();
    for t in stored {
        let plain = dek
            .open(owner, RecordKind::Template, t.sealed.expose())
            .map_err(UseCaseError::internal)?;
        let template = Template::from_bytes(&plain)
            .map_err(|e| UseCaseError::internal(anyhow::anyhow!("{e}")))?;
        let source = t.source;
        // Templates of another model are never compared.
        if let Ok(score) = probe.cosine(&template) {
            scores.push((source, score));
        }
    }
    Ok(scores)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::face::{ImageKind, QualityCheck};
    use crate::liveness::LivenessResult;

    fn quality(pass: bool) -> QualityReport {
        let failed: &[QualityCheck] = if pass { &[] } else { &[QualityCheck::Blurry] };
        crate::usecase::test_support::quality(ImageKind::Selfie, failed)
    }

    fn live(result: LivenessResult) -> LivenessReport {
        LivenessReport {
            result,
            ..LivenessReport::skipped()
        }
    }

    #[test]
    fn the_best_template_decides_at_the_threshold() {
        let scores = [
            (TemplateSource::EnrollmentSelfie, 0.41),
            (TemplateSource::ChipPhoto, 0.63),
        ];
        let ok = live(LivenessResult::Skipped);
        let m = decide(&quality(true), &ok, &scores, 0.6).unwrap();
        assert_eq!(m.decision, VerificationDecision::Match);
        assert_eq!(m.best, Some(0.63));
        assert_eq!(m.compared_with.len(), 2);
        let n = decide(&quality(true), &ok, &scores, 0.64).unwrap();
        assert_eq!(n.decision, VerificationDecision::NoMatch);
        assert_eq!(
            decide(&quality(true), &ok, &scores, 0.63).unwrap().decision,
            VerificationDecision::Match,
            "at the threshold is a match"
        );
    }

    #[test]
    fn quality_and_liveness_decide_before_any_score() {
        let scores = [(TemplateSource::ChipPhoto, 0.99)];
        let q = decide(&quality(false), &live(LivenessResult::Pass), &scores, 0.5).unwrap();
        assert_eq!(q.decision, VerificationDecision::QualityFailed);
        assert_eq!(q.best, None);
        let l = decide(&quality(true), &live(LivenessResult::Fail), &scores, 0.5).unwrap();
        assert_eq!(l.decision, VerificationDecision::LivenessFailed);
        let unevaluated = decide(
            &quality(true),
            &live(LivenessResult::NotEvaluated),
            &scores,
            0.5,
        );
        assert_eq!(
            unevaluated.unwrap().decision,
            VerificationDecision::LivenessFailed,
            "an unevaluated challenge is no pass"
        );
    }

    #[test]
    fn nothing_comparable_is_no_decision_and_attempts_count_as_documented() {
        assert_eq!(
            decide(&quality(true), &live(LivenessResult::Pass), &[], 0.5),
            None
        );
        assert_eq!(attempt_of(VerificationDecision::Match), Attempt::Match);
        assert_eq!(attempt_of(VerificationDecision::NoMatch), Attempt::NoMatch);
        assert_eq!(
            attempt_of(VerificationDecision::QualityFailed),
            Attempt::Undecided
        );
        assert_eq!(
            attempt_of(VerificationDecision::LivenessFailed),
            Attempt::Undecided
        );
    }
}
