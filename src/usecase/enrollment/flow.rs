//! The enrollment flow (入口対策): card → (J-LIS ∥ faces) → decision → one transaction.
//!
//! Authenticate first: the card's checks (signatures, chain, binding) run before anything else. A card
//! that fails them is decided `rejected` at once: no image is decoded, no validity check is sent, the
//! face pool is not touched. Only then do the validity check and the face work run, concurrently.
//! Any error stores nothing and leaves the session usable.

use super::decide::{decide, AfterCard, Decision, FaceEvidence, MatchPolicy};
use super::record::{document, SealedCertificate, StoredDecision};
use super::view::ReviewInfo;
use crate::card::{self, CardReport, SessionBinding};
use crate::crypto::{DataKey, Owner, RecordKind};
use crate::domain::{
    new_id, now_millis, prefix, EnrollmentId, EnrollmentStatus, Purpose, TemplateSource, TenantId,
};
use crate::face::{FaceAnalysis, MaskMode, Template};
use crate::jlis::ValidityReport;
use crate::redact::Secret;
use crate::store::{AuditEvent, NewEnrollment, Session, StoredTemplate};
use crate::usecase::idempotency::{self, Answer, Keyed, Pending};
use crate::usecase::selfie::{JudgedSelfie, SelfieSource};
use crate::usecase::sessions::{self, StoredChallenge};
use crate::usecase::upload::{self, EnrollmentUpload};
use crate::usecase::webhooks;
use crate::usecase::{review, search};
use crate::usecase::{Caller, Services, UseCaseError, UseCaseResult};

/// `POST /v1/enrollments`.
pub async fn enroll(
    svc: &Services,
    caller: &Caller,
    upload: EnrollmentUpload,
    idempotency_key: Option<String>,
) -> UseCaseResult<Answer> {
    let session_id = sessions::session_id_for(caller, upload.session_id.as_deref())?;
    let keyed = idempotency_key.map(|key| {
        Keyed::new(
            caller.tenant_id(),
            &caller.credential(),
            "POST /v1/enrollments",
            key,
            &upload::fingerprint(
                session_id.as_str(),
                "",
                &upload.card,
                upload.selfie.as_deref().unwrap_or_default(),
                &upload.liveness_frame,
            ),
        )
    });
    let upload = &upload;
    idempotency::once(svc, keyed, |pending| async move {
        let session =
            sessions::usable_session(svc, caller, &session_id, Purpose::Enrollment).await?;
        run(svc, caller, &session, upload, pending).await
    })
    .await
}

async fn run(
    svc: &Services,
    caller: &Caller,
    session: &Session,
    upload: &EnrollmentUpload,
    pending: Option<Pending>,
) -> UseCaseResult<Answer> {
    let card_json = &upload.card;
    // The posted selfie, or the one the selfie step kept (taken as it was judged there).
    let selfie = SelfieSource::resolve(svc, Some(session), upload.selfie.clone()).await?;
    let submission = card::parse_card_json(card_json).map_err(|e| match e {
        card::CardInputError::MyNumberNotAccepted { .. } => UseCaseError::MyNumberNotAccepted,
        card::CardInputError::Malformed { detail } => UseCaseError::Malformed(detail),
    })?;
    let nonce: [u8; 32] = session
        .nonce
        .expose()
        .as_slice()
        .try_into()
        .map_err(|_| UseCaseError::internal(anyhow::anyhow!("stored nonce is not 32 bytes")))?;
    let policy = card_policy(svc, &session.tenant_id).await?;
    // Seven RSA verifications and the parsers: milliseconds of CPU, kept off the async executor.
    let (trust, session_id) = (svc.trust.clone(), session.id.clone());
    let report = tokio::task::spawn_blocking(move || {
        let binding = SessionBinding {
            session_id: session_id.as_str(),
            nonce: &nonce,
        };
        card::verify_card(&submission, &trust, &policy, &binding, chrono::Utc::now())
    })
    .await
    .map_err(UseCaseError::internal)?
    .map_err(|e| UseCaseError::InvalidCardData(e.to_string()))?;

    let challenge = StoredChallenge::of(session);
    let policy = MatchPolicy::for_fmr(&svc.face, svc.settings.face.enrollment_target_fmr);
    // Only an authenticated card has its photo decoded and its certificate looked up.
    let after_card = match (&report.revocation_target, report.passed()) {
        (Some(target), true) => {
            let faces = selfie.judge(
                svc,
                &session.tenant_id,
                Some(report.chip_photo.clone().into()),
                &upload.liveness_frame,
                &challenge,
            );
            let (revocation, faces) = tokio::join!(svc.validity.check(target), faces);
            let revocation = revocation.map_err(|e| UseCaseError::validity_unavailable(&e))?;
            Some((revocation, faces?))
        }
        _ => {
            metrics::counter!("enrollments_rejected_before_faces_total").increment(1);
            None
        }
    };
    let evidence = after_card
        .as_ref()
        .map(|(_, (judged, chip))| FaceEvidence::new(judged, chip.as_ref()));
    let mut decision = decide(
        &report,
        after_card
            .as_ref()
            .zip(evidence.as_ref())
            .map(|((revocation, _), faces)| AfterCard { revocation, faces }),
        challenge.kind(),
        &policy,
    );
    let (revocation, work) = after_card.as_ref().map(|(r, w)| (r, w)).unzip();
    // Review (issue 22): what the tenant sends to a person instead of deciding.
    let tenant = svc
        .store
        .get_tenant(&session.tenant_id)
        .await?
        .ok_or(UseCaseError::NotFound)?;
    let mask_review = tenant.settings.selfie_mask == Some(MaskMode::Review);
    let now = now_millis();
    let mut review = review::route(svc, &tenant, &mut decision, mask_review, now);
    // 1:N (issue 21): a selfie that verified (or waits for a person) is searched for duplicates and
    // on the watchlist; the findings may send it to review, or reject it.
    let probe = work.and_then(|(judged, _)| judged.template.as_ref());
    if let (EnrollmentStatus::Verified | EnrollmentStatus::InReview, Some(probe)) =
        (decision.status, probe)
    {
        let findings =
            search::check::at_enrollment(svc, &session.tenant_id, probe, &report.identity).await?;
        apply_findings(&mut decision, findings);
        review = review::route(svc, &tenant, &mut decision, mask_review, now);
    }
    let used = Used {
        faces: work.map(|(judged, chip)| (judged, chip.as_ref())),
        selfie: selfie.label(),
        posted_selfie: match &selfie {
            SelfieSource::Posted(bytes) => Some(bytes.clone()),
            SelfieSource::Kept(_) => None,
        },
        for_client: matches!(caller, Caller::Client { .. }),
        evidence_until: review::evidence_expiry(svc, &tenant, now),
    };
    let decided = Decided {
        decision,
        review,
        now,
    };
    store(svc, session, &report, used, decided, revocation, pending).await
}

/// The decision with what review added: why it went to review, when.
struct Decided {
    decision: Decision,
    review: Option<ReviewInfo>,
    now: crate::domain::Millis,
}

/// The 1:N checks' reasons join the decision's; a hit in `reject` mode rejects (`review` sends the
/// enrollment to a person: [`review::route`] after this).
fn apply_findings(decision: &mut Decision, findings: search::Findings) {
    for reason in findings.reasons() {
        decision.reasons.push(reason);
    }
    if findings.rejects() {
        decision.status = EnrollmentStatus::Rejected;
    }
    decision.checks.duplicate_face = findings.duplicates;
    decision.checks.watchlist = Some(findings.watchlist);
}

/// The tenant's card policy: `require_hojo` unless the tenant switched it off (docs/card.md).
async fn card_policy(svc: &Services, tenant_id: &TenantId) -> UseCaseResult<card::CardPolicy> {
    let tenant = svc
        .store
        .get_tenant(tenant_id)
        .await?
        .ok_or(UseCaseError::NotFound)?;
    let mut policy = card::CardPolicy::default();
    if let Some(require) = tenant.settings.require_hojo {
        policy.require_hojo = require;
    }
    Ok(policy)
}

/// What the faces of the decision were: the judged selfie and the chip photo, where the selfie
/// came from (`posted` or `kept`), and whether the answer goes to a client token.
struct Used<'a> {
    faces: Option<(&'a JudgedSelfie, Option<&'a FaceAnalysis>)>,
    selfie: &'static str,
    /// The selfie's bytes when it was posted with this upload: review evidence is made from it.
    posted_selfie: Option<bytes::Bytes>,
    for_client: bool,
    /// When review evidence sealed now is shredded at the latest.
    evidence_until: crate::domain::Millis,
}

async fn store(
    svc: &Services,
    session: &Session,
    report: &CardReport,
    used: Used<'_>,
    decided: Decided,
    revocation: Option<&ValidityReport>,
    pending: Option<Pending>,
) -> UseCaseResult<Answer> {
    let Decided {
        decision,
        review,
        now,
    } = decided;
    let id = EnrollmentId::new();
    let verified = decision.status == EnrollmentStatus::Verified;
    let in_review = decision.status == EnrollmentStatus::InReview;
    let owner = Owner {
        tenant_id: &session.tenant_id,
        enrollment_id: &id,
    };
    let record = StoredDecision {
        reasons: decision.reasons,
        checks: decision.checks,
        review,
    };
    // Personal data and templates are kept only for a verified enrollment (or one in review, so that
    // an approve needs nothing uploaded again), sealed under its own key.
    let mut sealed = None;
    let mut certificate = None;
    let mut evidence = Vec::new();
    if verified || in_review {
        let (dek, wrapped) = svc.keys.new_data_key(owner);
        let cert = report
            .revocation_target
            .as_ref()
            .map(|t| SealedCertificate {
                // The distribution point names the holder's city: sealed with the rest.
                target: t.clone(),
                serial: Some(report.certificate.serial.clone()),
                issuer: Some(report.certificate.issuer.clone()),
                not_after: Some(report.certificate.not_after),
            });
        let identity = serde_json::to_vec(&report.identity).map_err(UseCaseError::internal)?;
        let cert_bytes = cert
            .as_ref()
            .map(serde_json::to_vec)
            .transpose()
            .map_err(UseCaseError::internal)?;
        let templates = used
            .faces
            .map(|(selfie, chip)| templates(&dek, owner, selfie, chip))
            .unwrap_or_default();
        if in_review {
            evidence = review::seal_evidence(
                svc,
                &dek,
                owner,
                report.chip_photo.clone(),
                used.posted_selfie.clone(),
                used.evidence_until,
            )
            .await?;
        }
        sealed = Some((
            dek.seal(owner, RecordKind::Identity, &identity),
            cert_bytes.map(|c| dek.seal(owner, RecordKind::RevocationTarget, &c)),
            wrapped,
            templates,
            dek,
        ));
        certificate = cert;
    }
    // A client token never learns other enrollments' or watchlist entries' ids.
    let mut shown_record = record.clone();
    if used.for_client {
        shown_record.checks = shown_record.checks.for_client();
    }
    let shown = document(
        id.clone(),
        decision.status,
        session.subject_ref.clone(),
        shown_record,
        certificate.as_ref(),
        (verified || in_review).then(|| report.identity.clone()),
        now,
    );
    let answer = Answer::created(&shown)?;
    let completion = pending.map(|p| match &sealed {
        Some((.., dek)) => p.sealed_under_enrollment(dek, owner, &answer),
        None => p.sealed_under_kek(svc, &answer, Some(id.as_str())),
    });
    let (identity_sealed, revocation_sealed, wrapped_key, templates) = match sealed {
        Some((identity, cert, wrapped, templates, _dek)) => {
            (Some(identity), cert, Some(wrapped), templates)
        }
        None => (None, None, None, Vec::new()),
    };
    let enrollment = NewEnrollment {
        id: id.clone(),
        tenant_id: session.tenant_id.clone(),
        session_id: session.id.clone(),
        subject_ref: session.subject_ref.clone(),
        status: decision.status,
        document: record.to_json()?,
        identity_sealed,
        revocation_sealed,
        wrapped_key,
        templates,
        evidence,
        created_at: now,
    };
    let duplicates = record
        .checks
        .duplicate_face
        .as_ref()
        .map(|d| d.ids())
        .unwrap_or_default();
    let listed = record
        .checks
        .watchlist
        .as_ref()
        .map(|w| w.ids())
        .unwrap_or_default();
    let mut details = serde_json::json!({"session_id": session.id, "status": decision.status, "reasons": record.reasons,
           "revocation_method": revocation.map(|r| r.method.as_str()), "liveness": record.checks.liveness.result,
           "selfie": used.selfie});
    if !duplicates.is_empty() {
        details["duplicate_of"] = serde_json::json!(duplicates);
    }
    if !listed.is_empty() {
        details["watchlist_entries"] = serde_json::json!(listed);
    }
    let audit = AuditEvent::new(
        &session.tenant_id,
        crate::domain::AuditKind::EnrollmentCreated,
        id.as_str(),
        details,
    );
    let kind = match decision.status {
        EnrollmentStatus::Verified => webhooks::EventType::EnrollmentVerified,
        EnrollmentStatus::InReview => webhooks::EventType::EnrollmentInReview,
        _ => webhooks::EventType::EnrollmentRejected,
    };
    let mut events = vec![webhooks::event_at(
        &session.tenant_id,
        kind,
        serde_json::json!({"enrollment_id": id, "status": decision.status, "reasons": record.reasons}),
        now,
    )];
    if !duplicates.is_empty() {
        events.push(webhooks::event_at(
            &session.tenant_id,
            webhooks::EventType::EnrollmentDuplicateFace,
            serde_json::json!({"enrollment_id": id, "status": decision.status, "duplicate_of": duplicates}),
            now,
        ));
    }
    if !listed.is_empty() {
        events.push(webhooks::event_at(
            &session.tenant_id,
            webhooks::EventType::WatchlistHit,
            serde_json::json!({"enrollment_id": id, "status": decision.status, "entries": listed}),
            now,
        ));
    }
    svc.store
        .create_enrollment(&enrollment, &audit, completion.as_ref(), &events)
        .await?;
    if verified {
        let template = used.faces.and_then(|(selfie, _)| selfie.template.as_ref());
        remember(svc, &session.tenant_id, &id, template, report);
    }
    metrics::counter!("enrollments_total", "status" => decision.status.as_str()).increment(1);
    Ok(answer)
}

/// Puts a new verified enrollment in this replica's gallery at once (the others get it through the
/// feed), so the next enrollment here is checked against it.
fn remember(
    svc: &Services,
    tenant_id: &TenantId,
    id: &EnrollmentId,
    template: Option<&Template>,
    report: &CardReport,
) {
    let Some(template) = template else {
        return;
    };
    let meta = search::index::FaceMeta {
        status: EnrollmentStatus::Verified,
        identity: svc.faces.identity_tag(&report.identity),
    };
    if let Err(e) = svc
        .faces
        .upsert_face(tenant_id, id.as_str(), template, meta)
    {
        tracing::warn!(enrollment_id = %id, error = %e, "gallery: template left out");
    }
}

fn templates(
    dek: &DataKey,
    owner: Owner<'_>,
    selfie: &JudgedSelfie,
    chip: Option<&FaceAnalysis>,
) -> Vec<StoredTemplate> {
    [
        (TemplateSource::EnrollmentSelfie, selfie.template.as_ref()),
        (
            TemplateSource::ChipPhoto,
            chip.and_then(|c| c.template.as_ref()),
        ),
    ]
    .into_iter()
    .filter_map(|(source, template)| {
        let template = template?;
        Some(StoredTemplate {
            id: new_id(prefix::TEMPLATE),
            source,
            model_id: template.model_id.clone(),
            model_hash: template.model_hash.clone(),
            preprocessing_version: template.preprocessing_version.to_string(),
            sealed: Secret::new(dek.seal(owner, RecordKind::Template, &template.to_bytes())),
        })
    })
    .collect()
}
