//! The enrollment flow (入口対策): card → (J-LIS ∥ faces) → decision → one transaction.
//!
//! Authenticate first: the card's checks (signatures, chain, binding) run before anything else. A card
//! that fails them is decided `rejected` at once: no image is decoded, no validity check is sent, the
//! face pool is not touched. Only then do the validity check and the face work run, concurrently.
//! Any error stores nothing and leaves the session usable.

use super::decide::{decide, AfterCard, Decision, FaceEvidence, MatchPolicy};
use super::record::{document, SealedCertificate, StoredDecision};
use crate::card::{self, CardReport, SessionBinding};
use crate::crypto::{DataKey, Owner, RecordKind};
use crate::domain::{
    new_id, now_millis, prefix, EnrollmentId, EnrollmentStatus, Purpose, TemplateSource, TenantId,
};
use crate::jlis::ValidityReport;
use crate::redact::Secret;
use crate::store::{AuditEvent, NewEnrollment, Session, StoredTemplate};
use crate::usecase::faces::{self, FaceWork};
use crate::usecase::idempotency::{self, Answer, Keyed, Pending};
use crate::usecase::sessions::{self, StoredChallenge};
use crate::usecase::upload::{self, EnrollmentUpload};
use crate::usecase::webhooks;
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
                &upload.selfie,
                &upload.liveness_frame,
            ),
        )
    });
    let upload = &upload;
    idempotency::once(svc, keyed, |pending| async move {
        let session =
            sessions::usable_session(svc, caller, &session_id, Purpose::Enrollment).await?;
        run(svc, &session, upload, pending).await
    })
    .await
}

async fn run(
    svc: &Services,
    session: &Session,
    upload: &EnrollmentUpload,
    pending: Option<Pending>,
) -> UseCaseResult<Answer> {
    let card_json = &upload.card;
    let selfie = upload.selfie.clone();
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
            let faces = faces::analyze(
                svc,
                &session.tenant_id,
                selfie,
                Some(report.chip_photo.clone().into()),
                &upload.liveness_frame,
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
        .map(|(_, work)| FaceEvidence::from_work(work, &challenge, &svc.settings.liveness));
    let decision = decide(
        &report,
        after_card
            .as_ref()
            .zip(evidence.as_ref())
            .map(|((revocation, _), faces)| AfterCard { revocation, faces }),
        challenge.kind(),
        &policy,
    );
    let (revocation, work) = after_card.as_ref().map(|(r, w)| (r, w)).unzip();
    store(svc, session, &report, work, decision, revocation, pending).await
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

async fn store(
    svc: &Services,
    session: &Session,
    report: &CardReport,
    work: Option<&FaceWork>,
    decision: Decision,
    revocation: Option<&ValidityReport>,
    pending: Option<Pending>,
) -> UseCaseResult<Answer> {
    let id = EnrollmentId::new();
    let now = now_millis();
    let verified = decision.status == EnrollmentStatus::Verified;
    let owner = Owner {
        tenant_id: &session.tenant_id,
        enrollment_id: &id,
    };
    let record = StoredDecision {
        reasons: decision.reasons,
        checks: decision.checks,
    };
    // Personal data and templates are kept only for a verified enrollment, sealed under its own key.
    let mut sealed = None;
    let mut certificate = None;
    if verified {
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
        let templates = work.map(|w| templates(&dek, owner, w)).unwrap_or_default();
        sealed = Some((
            dek.seal(owner, RecordKind::Identity, &identity),
            cert_bytes.map(|c| dek.seal(owner, RecordKind::RevocationTarget, &c)),
            wrapped,
            templates,
            dek,
        ));
        certificate = cert;
    }
    let shown = document(
        id.clone(),
        decision.status,
        session.subject_ref.clone(),
        record.clone(),
        certificate.as_ref(),
        verified.then(|| report.identity.clone()),
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
        created_at: now,
    };
    let audit = AuditEvent::new(
        &session.tenant_id,
        crate::domain::AuditKind::EnrollmentCreated,
        id.as_str(),
        serde_json::json!({"session_id": session.id, "status": decision.status, "reasons": record.reasons,
               "revocation_method": revocation.map(|r| r.method.as_str()), "liveness": record.checks.liveness.result}),
    );
    let kind = if verified {
        webhooks::EventType::EnrollmentVerified
    } else {
        webhooks::EventType::EnrollmentRejected
    };
    let events = [webhooks::event_at(
        &session.tenant_id,
        kind,
        serde_json::json!({"enrollment_id": id, "status": decision.status, "reasons": record.reasons}),
        now,
    )];
    svc.store
        .create_enrollment(&enrollment, &audit, completion.as_ref(), &events)
        .await?;
    metrics::counter!("enrollments_total", "status" => decision.status.as_str()).increment(1);
    Ok(answer)
}

fn templates(dek: &DataKey, owner: Owner<'_>, work: &FaceWork) -> Vec<StoredTemplate> {
    [
        (TemplateSource::EnrollmentSelfie, Some(&work.selfie)),
        (TemplateSource::ChipPhoto, work.chip.as_ref()),
    ]
    .into_iter()
    .filter_map(|(source, analysis)| {
        let template = analysis?.template.as_ref()?;
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
