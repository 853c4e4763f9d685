//! Enrollment (入口対策): the flow card → (J-LIS ∥ faces) → decision → one transaction, and the
//! typed records an enrollment is stored as and rendered from.
//!
//! Authenticate first: the card's checks (signatures, chain, binding) run before anything else. A card
//! that fails them is decided `rejected` at once: no image is decoded, no validity check is sent, the
//! face pool is not touched. Only then do the validity check and the face work run, concurrently.
//! Any error stores nothing and leaves the session usable.

use super::faces::{self, FaceWork};
use super::idempotency::{self, Answer, Keyed, Pending};
use super::sessions::{self, StoredChallenge};
use super::status::{self, RevocationCheck, SealedCertificate};
use super::{round4, Caller, Services, UseCaseError, UseCaseResult};
use crate::card::{self, CardReport, SessionBinding};
use crate::crypto::{DataKey, Owner, RecordKind};
use crate::domain::{
    self, new_id, now_millis, prefix, EnrollmentId, EnrollmentStatus, Millis, Purpose, Reason,
    Reasons, TemplateSource, TenantId,
};
use crate::face::QualityReport;
use crate::jlis::ValidityReport;
use crate::liveness::{LivenessConfig, LivenessMode, LivenessReport};
use crate::redact::Secret;
use crate::store::{AuditEvent, EnrollmentRow, NewEnrollment, Session, StoredTemplate};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// What a client uploaded (see `http::upload`). The card JSON stays raw: the card module parses it.
#[derive(Default)]
pub struct Upload {
    pub session_id: Option<String>,
    pub enrollment_id: Option<String>,
    pub card: Option<Bytes>,
    pub selfie: Option<Bytes>,
    pub liveness_frames: Vec<Bytes>,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("session_id", &self.session_id)
            .field("enrollment_id", &self.enrollment_id)
            .field("card", &self.card.as_ref().map(|c| c.len()))
            .field("selfie", &self.selfie.as_ref().map(|s| s.len()))
            .field("liveness_frames", &self.liveness_frames.len())
            .finish()
    }
}

impl Upload {
    /// What the request asks for, for its Idempotency-Key fingerprint: the resolved session and
    /// enrollment, then the content (independent of multipart boundaries or JSON encoding).
    pub fn parts<'a>(&'a self, session_id: &'a str, enrollment_id: &'a str) -> Vec<&'a [u8]> {
        let mut parts: Vec<&[u8]> = vec![
            session_id.as_bytes(),
            enrollment_id.as_bytes(),
            self.card.as_deref().unwrap_or(b""),
            self.selfie.as_deref().unwrap_or(b""),
        ];
        parts.extend(self.liveness_frames.iter().map(|f| f.as_ref()));
        parts
    }

    pub fn require_selfie(&self) -> UseCaseResult<Bytes> {
        self.selfie
            .clone()
            .ok_or_else(|| UseCaseError::Malformed("missing part `selfie`".into()))
    }
}

/// The outcome of the face comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FaceMatchResult {
    Match,
    NoMatch,
    /// A face was missing (see the quality checks), or the card failed first, so no score exists.
    NotCompared,
}

/// The `face_match` check: chip photo against selfie at the enrollment target FMR.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FaceMatchCheck {
    pub result: FaceMatchResult,
    /// Cosine similarity of the two templates.
    pub score: Option<f64>,
    pub threshold: f64,
    pub target_fmr: f64,
    /// `<model id>@<sha256 prefix>`.
    pub model: String,
}

/// The `certificate` check. The details identify a person and are kept sealed under the
/// enrollment's key: shown to the API key holder of a verified enrollment, destroyed by deletion,
/// never stored for a rejected one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CertificateView {
    pub result: card::CertificateResult,
    /// Upper-case hex, no sign byte (as OpenSSL prints it).
    pub serial: Option<String>,
    /// The issuer DN in RFC 4514 text.
    pub issuer: Option<String>,
    pub not_after: Option<chrono::DateTime<chrono::Utc>>,
}

impl CertificateView {
    fn result_only(result: card::CertificateResult) -> Self {
        Self {
            result,
            serial: None,
            issuer: None,
            not_after: None,
        }
    }

    fn with_details(mut self, sealed: Option<&SealedCertificate>) -> Self {
        if let Some(s) = sealed {
            self.serial = s.serial.clone();
            self.issuer = s.issuer.clone();
            self.not_after = s.not_after;
        }
        self
    }
}

/// Every check of an enrollment (api.md). `result` fields are closed enums.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EnrollmentChecks {
    pub card_data: card::CardDataCheck,
    pub card_present: card::PresenceCheck,
    pub certificate: CertificateView,
    pub revocation: RevocationCheck,
    pub consistency: card::ConsistencyCheck,
    /// Present when 入力補助AP data was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hojo: Option<card::HojoCheck>,
    /// The one-card binding: the 入力補助AP against the certificate and the 券面AP (docs/card.md).
    #[serde(default)]
    pub hojo_binding: Option<card::HojoBindingCheck>,
    /// `null` when the card failed first and the selfie was not looked at.
    pub selfie_quality: Option<QualityReport>,
    /// The chip photo's quality (same shape, looser rules); `null` when not looked at.
    pub chip_photo_quality: Option<QualityReport>,
    pub liveness: LivenessReport,
    pub face_match: FaceMatchCheck,
}

/// An enrollment as the API shows it (201 from POST, 200 from GET).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EnrollmentDocument {
    pub id: EnrollmentId,
    pub status: EnrollmentStatus,
    pub subject_ref: Option<String>,
    /// The failed checks' codes, e.g. `face_mismatch`, `certificate_revoked`, `identity_changed`.
    pub reasons: Reasons,
    pub checks: EnrollmentChecks,
    /// From the signing certificate; `null` for a rejected or deleted enrollment (nothing personal is kept).
    pub identity: Option<card::Identity>,
    pub created_at: String,
}

/// `GET /v1/enrollments`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EnrollmentList {
    /// Newest first.
    pub enrollments: Vec<EnrollmentDocument>,
}

/// The public decision record, stored as the `document` column: reasons and checks, nothing that
/// identifies a person. The status, subject_ref and time live in their own columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredDecision {
    pub reasons: Reasons,
    pub checks: EnrollmentChecks,
}

impl StoredDecision {
    pub fn from_row(row: &EnrollmentRow) -> UseCaseResult<Self> {
        serde_json::from_str(&row.document).map_err(|e| {
            UseCaseError::internal(anyhow::anyhow!("enrollment {} record: {e}", row.id))
        })
    }

    pub fn to_json(&self) -> UseCaseResult<String> {
        debug_assert!(self.checks.certificate.serial.is_none());
        serde_json::to_string(self).map_err(UseCaseError::internal)
    }
}

/// What the face work measured, reduced to what the decision needs.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceEvidence {
    pub selfie_quality: QualityReport,
    pub chip_quality: Option<QualityReport>,
    pub liveness: LivenessReport,
    /// Chip photo against selfie; `None` if either has no template.
    pub score: Option<f32>,
}

impl FaceEvidence {
    pub fn from_work(work: &FaceWork, challenge: &StoredChallenge, cfg: &LivenessConfig) -> Self {
        let score = work
            .chip
            .as_ref()
            .and_then(|c| c.template.as_ref())
            .zip(work.selfie.template.as_ref())
            .and_then(|(chip, selfie)| chip.cosine(selfie).ok());
        Self {
            selfie_quality: work.selfie.quality.clone(),
            chip_quality: work.chip.as_ref().map(|c| c.quality.clone()),
            liveness: challenge.evaluate(|c| work.liveness(c, cfg)),
            score,
        }
    }
}

/// The threshold a score is compared with, and the model that made the templates.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchPolicy {
    pub threshold: f32,
    pub target_fmr: f64,
    pub model: String,
}

impl MatchPolicy {
    pub fn for_fmr(engine: &crate::face::FaceEngine, fmr: f64) -> Self {
        let t = engine.threshold_for_fmr(fmr);
        Self {
            threshold: t.score,
            target_fmr: t.target_fmr,
            model: engine.model_label(),
        }
    }

    fn check(&self, score: Option<f32>) -> FaceMatchCheck {
        let result = match score {
            Some(s) if s >= self.threshold => FaceMatchResult::Match,
            Some(_) => FaceMatchResult::NoMatch,
            None => FaceMatchResult::NotCompared,
        };
        FaceMatchCheck {
            result,
            score: score.map(round4),
            threshold: round4(self.threshold),
            target_fmr: self.target_fmr,
            model: self.model.clone(),
        }
    }
}

/// An enrollment's decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub status: EnrollmentStatus,
    pub reasons: Reasons,
    /// The checks with the certificate's result only (details are sealed separately).
    pub checks: EnrollmentChecks,
}

/// The card's failures as reasons, in check order.
fn card_reasons(report: &CardReport, reasons: &mut Reasons) {
    for code in report.failure_codes() {
        match Reason::parse(code) {
            Some(reason) => reasons.push(reason),
            // A card result without a reason code would make a rejection silent: refuse to verify.
            None => {
                tracing::error!(code, "card failure code without a reason");
                reasons.push(Reason::InvalidSignature);
            }
        }
    }
}

/// The decision, from everything the checks found. Pure: no I/O, no models.
///
/// `faces` is `None` when the card failed and the images were never looked at; then `revocation`
/// is `None` too.
pub fn decide(
    card: &CardReport,
    revocation: Option<&ValidityReport>,
    faces: Option<&FaceEvidence>,
    liveness_kind: LivenessMode,
    policy: &MatchPolicy,
) -> Decision {
    let mut reasons = Reasons::default();
    card_reasons(card, &mut reasons);
    let revocation_check = match revocation {
        Some(r) => {
            if let Some(reason) = status::reason_of(r) {
                reasons.push(reason);
            }
            RevocationCheck::from_report(r)
        }
        None => RevocationCheck::not_checked(),
    };
    let (selfie_quality, chip_quality, liveness, face_match) = match faces {
        None => (
            None,
            None,
            LivenessReport::not_evaluated(liveness_kind),
            policy.check(None),
        ),
        Some(f) => {
            for failure in &f.selfie_quality.failed {
                reasons.push(Reason::Quality(*failure));
            }
            for failure in f.chip_quality.iter().flat_map(|q| q.failed.iter()) {
                reasons.push(Reason::Quality(*failure));
            }
            if !f.liveness.passed() {
                reasons.push(Reason::LivenessFailed);
            }
            let face_match = policy.check(f.score);
            match face_match.result {
                FaceMatchResult::Match => {}
                FaceMatchResult::NoMatch => reasons.push(Reason::FaceMismatch),
                FaceMatchResult::NotCompared => reasons.push(Reason::FaceNotCompared),
            }
            (
                Some(f.selfie_quality.clone()),
                f.chip_quality.clone(),
                f.liveness.clone(),
                face_match,
            )
        }
    };
    // Belt and braces: a decision without face evidence is never `verified`.
    if faces.is_none() && reasons.is_empty() {
        reasons.push(Reason::FaceNotCompared);
    }
    let checks = EnrollmentChecks {
        card_data: card.card_data.clone(),
        card_present: card.card_present.clone(),
        certificate: CertificateView::result_only(card.certificate.result),
        revocation: revocation_check,
        consistency: card.consistency.clone(),
        hojo: card.hojo.clone(),
        hojo_binding: Some(card.hojo_binding.clone()),
        selfie_quality,
        chip_photo_quality: chip_quality,
        liveness,
        face_match,
    };
    Decision {
        status: if reasons.is_empty() {
            EnrollmentStatus::Verified
        } else {
            EnrollmentStatus::Rejected
        },
        reasons,
        checks,
    }
}

/// `POST /v1/enrollments`.
pub async fn enroll(
    svc: &Services,
    caller: &Caller,
    upload: Upload,
    idempotency_key: Option<String>,
) -> UseCaseResult<Answer> {
    if upload.enrollment_id.is_some() {
        return Err(UseCaseError::Malformed(
            "`enrollment_id` is not a field of an enrollment".into(),
        ));
    }
    let session_id = sessions::session_id_for(caller, upload.session_id.as_deref())?;
    let keyed = idempotency_key.map(|key| {
        Keyed::new(
            caller.tenant_id(),
            &caller.credential(),
            "POST /v1/enrollments",
            key,
            &upload.parts(session_id.as_str(), ""),
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
    upload: &Upload,
    pending: Option<Pending>,
) -> UseCaseResult<Answer> {
    let card_json = upload
        .card
        .as_ref()
        .ok_or_else(|| UseCaseError::Malformed("missing part `card`".into()))?;
    let selfie = upload.require_selfie()?;
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
    let (revocation, work) = if report.passed() {
        // Only an authenticated card has its photo decoded and its certificate looked up.
        let revocation = async {
            match &report.revocation_target {
                Some(t) => {
                    let target = crate::jlis::RevocationTarget {
                        serial: t.serial.clone(),
                        issuer_cert_der: t.issuer_cert_der.clone(),
                        crl_distribution_points: t.crl_distribution_points.clone(),
                    };
                    svc.validity.check(&target).await.map(Some)
                }
                None => Ok(None),
            }
        };
        let faces = faces::analyze(
            &svc.face,
            &session.tenant_id,
            selfie,
            Some(report.chip_photo.clone().into()),
            &upload.liveness_frames,
        );
        let (revocation, faces) = tokio::join!(revocation, faces);
        let revocation = revocation.map_err(|e| status::unavailable(&e))?;
        (revocation, Some(faces?))
    } else {
        metrics::counter!("enrollments_rejected_before_faces_total").increment(1);
        (None, None)
    };
    let evidence = work
        .as_ref()
        .map(|w| FaceEvidence::from_work(w, &challenge, &svc.settings.liveness));
    let decision = decide(
        &report,
        revocation.as_ref(),
        evidence.as_ref(),
        challenge.kind(),
        &policy,
    );
    store(
        svc,
        session,
        &report,
        work.as_ref(),
        decision,
        revocation.as_ref(),
        pending,
    )
    .await
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

/// The parts of a document, in one place so that POST's answer and GET's rendering cannot differ.
fn document(
    id: EnrollmentId,
    status: EnrollmentStatus,
    subject_ref: Option<String>,
    record: StoredDecision,
    certificate: Option<&SealedCertificate>,
    identity: Option<card::Identity>,
    created_at: Millis,
) -> EnrollmentDocument {
    let mut checks = record.checks;
    checks.certificate = checks.certificate.with_details(certificate);
    EnrollmentDocument {
        id,
        status,
        subject_ref,
        reasons: record.reasons,
        checks,
        identity,
        created_at: domain::rfc3339(created_at),
    }
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
                serial_hex: hex::encode(&t.serial),
                issuer_cert_der_hex: hex::encode(&t.issuer_cert_der),
                // It names the holder's city: sealed with the rest.
                distribution_point_hex: t.crl_distribution_points.as_ref().map(hex::encode),
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
        "enrollment.created",
        id.as_str(),
        serde_json::json!({"session_id": session.id, "status": decision.status, "reasons": record.reasons,
               "revocation_method": revocation.map(|r| r.method.as_str()), "liveness": record.checks.liveness.result}),
    );
    let kind = if verified {
        super::webhooks::EventType::EnrollmentVerified
    } else {
        super::webhooks::EventType::EnrollmentRejected
    };
    let events = [super::webhooks::event_at(
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

/// The enrollment's data key, if it still has one (a shredded or rejected enrollment has none).
pub fn data_key(svc: &Services, row: &EnrollmentRow) -> UseCaseResult<Option<DataKey>> {
    let owner = Owner {
        tenant_id: &row.tenant_id,
        enrollment_id: &row.id,
    };
    row.wrapped_key
        .as_ref()
        .map(|w| {
            svc.keys
                .unwrap_key(owner, w)
                .map_err(UseCaseError::internal)
        })
        .transpose()
}

fn open_record(
    row: &EnrollmentRow,
    dek: Option<&DataKey>,
    kind: RecordKind,
    sealed: Option<&Secret<Vec<u8>>>,
) -> UseCaseResult<Option<Vec<u8>>> {
    let (Some(dek), Some(sealed)) = (dek, sealed) else {
        return Ok(None);
    };
    let owner = Owner {
        tenant_id: &row.tenant_id,
        enrollment_id: &row.id,
    };
    dek.open(owner, kind, sealed.expose())
        .map(Some)
        .map_err(UseCaseError::internal)
}

/// The sealed certificate record of a verified enrollment.
pub fn open_certificate(
    svc: &Services,
    row: &EnrollmentRow,
) -> UseCaseResult<Option<SealedCertificate>> {
    let dek = data_key(svc, row)?;
    open_record(
        row,
        dek.as_ref(),
        RecordKind::RevocationTarget,
        row.revocation_sealed.as_ref(),
    )?
    .map(|plain| serde_json::from_slice(&plain).map_err(UseCaseError::internal))
    .transpose()
}

/// A stored enrollment as the API shows it.
pub fn render(svc: &Services, row: &EnrollmentRow) -> UseCaseResult<EnrollmentDocument> {
    let record = StoredDecision::from_row(row)?;
    let dek = data_key(svc, row)?;
    let identity = open_record(
        row,
        dek.as_ref(),
        RecordKind::Identity,
        row.identity_sealed.as_ref(),
    )?
    .map(|plain| serde_json::from_slice(&plain).map_err(UseCaseError::internal))
    .transpose()?;
    let certificate = open_record(
        row,
        dek.as_ref(),
        RecordKind::RevocationTarget,
        row.revocation_sealed.as_ref(),
    )?
    .map(|plain| {
        serde_json::from_slice::<SealedCertificate>(&plain).map_err(UseCaseError::internal)
    })
    .transpose()?;
    Ok(document(
        row.id.clone(),
        row.status,
        row.subject_ref.clone(),
        record,
        certificate.as_ref(),
        identity,
        row.created_at,
    ))
}

/// `GET /v1/enrollments/{id}`.
pub async fn get(
    svc: &Services,
    tenant_id: &TenantId,
    id: &str,
) -> UseCaseResult<EnrollmentDocument> {
    let id = EnrollmentId::parse(id).ok_or(UseCaseError::NotFound)?;
    let row = svc
        .store
        .get_enrollment(tenant_id, &id)
        .await?
        .ok_or(UseCaseError::NotFound)?;
    render(svc, &row)
}

/// Most enrollments one list returns.
pub const MAX_LIST_LIMIT: i64 = 200;

/// `GET /v1/enrollments`: newest first, at most `limit` (1–200, default 50).
pub async fn list(
    svc: &Services,
    tenant_id: &TenantId,
    subject_ref: Option<&str>,
    limit: Option<i64>,
) -> UseCaseResult<EnrollmentList> {
    let limit = limit.unwrap_or(50);
    if !(1..=MAX_LIST_LIMIT).contains(&limit) {
        return Err(UseCaseError::Malformed(format!(
            "limit must be between 1 and {MAX_LIST_LIMIT}"
        )));
    }
    let rows = svc
        .store
        .list_enrollments(tenant_id, subject_ref, limit)
        .await?;
    Ok(EnrollmentList {
        enrollments: rows
            .iter()
            .map(|r| render(svc, r))
            .collect::<UseCaseResult<_>>()?,
    })
}

/// `DELETE /v1/enrollments/{id}`: crypto-shred, keep a tombstone and the audit event.
pub async fn delete(svc: &Services, tenant_id: &TenantId, id: &str) -> UseCaseResult<()> {
    delete_by(svc, tenant_id, id, "request").await
}

/// Crypto-shreds an enrollment, asked by the RP (`request`) or by the retention job (`retention`).
pub async fn delete_by(
    svc: &Services,
    tenant_id: &TenantId,
    id: &str,
    cause: &'static str,
) -> UseCaseResult<()> {
    let id = EnrollmentId::parse(id).ok_or(UseCaseError::NotFound)?;
    let audit = AuditEvent::new(
        tenant_id,
        "enrollment.deleted",
        id.as_str(),
        serde_json::json!({"shredded": true, "cause": cause}),
    );
    let events = [super::webhooks::event(
        tenant_id,
        super::webhooks::EventType::EnrollmentDeleted,
        serde_json::json!({"enrollment_id": id, "status": EnrollmentStatus::Deleted, "cause": cause}),
    )];
    if svc
        .store
        .delete_enrollment(tenant_id, &id, &audit, now_millis(), &events)
        .await?
    {
        Ok(())
    } else {
        Err(UseCaseError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::{
        CardDataCheck, CardDataResult, CertificateCheck, CertificateResult, ConsistencyCheck,
        ConsistencyResult, HojoBindingCheck, HojoBindingResult, HojoCheck, HojoResult,
        PresenceCheck, PresenceResult, Sex,
    };
    use crate::face::{ImageKind, QualityCheck, QualityFailure};
    use crate::jlis::{self, RevocationReason};
    use crate::liveness::LivenessResult;
    use crate::usecase::test_support::quality;
    use chrono::Utc;

    fn card() -> CardReport {
        CardReport {
            card_data: CardDataCheck {
                result: CardDataResult::Valid,
                issuer_key_id: "9000023/001".into(),
            },
            card_present: PresenceCheck {
                result: PresenceResult::Valid,
            },
            certificate: CertificateCheck {
                result: CertificateResult::Valid,
                serial: "0A".into(),
                issuer: "CN=test".into(),
                not_after: Utc::now(),
                unknown_critical_extensions: Vec::new(),
            },
            hojo: Some(HojoCheck {
                result: HojoResult::Valid,
                issuer_key_id: "9000033/001".into(),
            }),
            consistency: ConsistencyCheck {
                result: ConsistencyResult::Match,
                mismatched: Vec::new(),
            },
            hojo_binding: HojoBindingCheck {
                result: HojoBindingResult::Bound,
                certificate_mismatched: Vec::new(),
                kenmen_mismatched: Vec::new(),
            },
            identity: card::Identity {
                name: "山田　太郎".into(),
                name_alt: String::new(),
                birth_date: chrono::NaiveDate::from_ymd_opt(1990, 1, 2).unwrap(),
                sex: Sex::Male,
                address: "東京都".into(),
                address_alt: String::new(),
            },
            chip_photo: Vec::new(),
            card_expiry_unauthenticated: None,
            revocation_target: None,
        }
    }

    fn faces(score: Option<f32>) -> FaceEvidence {
        FaceEvidence {
            selfie_quality: quality(ImageKind::Selfie, &[]),
            chip_quality: Some(quality(ImageKind::ChipPhoto, &[])),
            liveness: LivenessReport::skipped(),
            score,
        }
    }

    fn validity(status: jlis::Status) -> ValidityReport {
        ValidityReport {
            status,
            method: jlis::Method::Ocsp,
            checked_at: Utc::now(),
            this_update: Utc::now(),
            next_update: None,
            responder: None,
            from_cache: false,
        }
    }

    const POLICY: fn() -> MatchPolicy = || MatchPolicy {
        threshold: 0.5,
        target_fmr: 1e-4,
        model: "sface@abc".into(),
    };

    fn reasons(d: &Decision) -> Vec<String> {
        d.reasons.iter().map(|r| r.code().into_owned()).collect()
    }

    #[test]
    fn everything_passing_is_verified_and_keeps_no_certificate_details_in_the_record() {
        let good = validity(jlis::Status::Good);
        let d = decide(
            &card(),
            Some(&good),
            Some(&faces(Some(0.7))),
            LivenessMode::Off,
            &POLICY(),
        );
        assert_eq!(d.status, EnrollmentStatus::Verified);
        assert!(d.reasons.is_empty());
        assert_eq!(d.checks.face_match.result, FaceMatchResult::Match);
        assert_eq!(
            d.checks.certificate.serial, None,
            "details are sealed apart"
        );
        assert_eq!(d.checks.revocation.result, status::RevocationResult::Good);
    }

    #[test]
    fn every_card_failure_has_its_reason_and_skips_the_faces() {
        type Spoil = Box<dyn Fn(&mut CardReport)>;
        let cases: Vec<(Spoil, &str)> = vec![
            (
                Box::new(|c| c.card_data.result = CardDataResult::InvalidSignature),
                "invalid_signature",
            ),
            (
                Box::new(|c| c.card_data.result = CardDataResult::UnknownIssuer),
                "unknown_issuer",
            ),
            (
                Box::new(|c| c.card_present.result = PresenceResult::InvalidSignature),
                "card_not_present",
            ),
            (
                Box::new(|c| c.certificate.result = CertificateResult::UntrustedChain),
                "untrusted_certificate",
            ),
            (
                Box::new(|c| c.certificate.result = CertificateResult::WrongIssuer),
                "certificate_wrong_issuer",
            ),
            (
                Box::new(|c| c.certificate.result = CertificateResult::RootNotCa),
                "certificate_root_not_ca",
            ),
            (
                Box::new(|c| c.certificate.result = CertificateResult::RootNotValid),
                "certificate_root_not_valid",
            ),
            (
                Box::new(|c| c.certificate.result = CertificateResult::Expired),
                "certificate_expired",
            ),
            (
                Box::new(|c| c.certificate.result = CertificateResult::NotYetValid),
                "certificate_not_yet_valid",
            ),
            (
                Box::new(|c| c.certificate.result = CertificateResult::UnknownCriticalExtension),
                "certificate_unknown_critical_extension",
            ),
            (
                Box::new(|c| c.certificate.result = CertificateResult::BadKeyUsage),
                "certificate_bad_key_usage",
            ),
            (
                Box::new(|c| c.certificate.result = CertificateResult::PolicyMissing),
                "certificate_policy_missing",
            ),
            (
                Box::new(|c| c.certificate.result = CertificateResult::InvalidSignature),
                "invalid_jpki_signature",
            ),
            (
                Box::new(|c| c.hojo.as_mut().unwrap().result = HojoResult::InvalidSignature),
                "invalid_hojo_signature",
            ),
            (
                Box::new(|c| c.hojo.as_mut().unwrap().result = HojoResult::UnknownIssuer),
                "unknown_hojo_issuer",
            ),
            (
                Box::new(|c| c.hojo_binding.result = HojoBindingResult::HojoRequired),
                "hojo_required",
            ),
            (
                Box::new(|c| c.hojo_binding.result = HojoBindingResult::Mismatch),
                "hojo_mismatch",
            ),
            (
                Box::new(|c| c.consistency.result = ConsistencyResult::Mismatch),
                "identity_mismatch",
            ),
        ];
        for (spoil, code) in cases {
            let mut c = card();
            spoil(&mut c);
            let d = decide(&c, None, None, LivenessMode::PoseSequence, &POLICY());
            assert_eq!(d.status, EnrollmentStatus::Rejected, "{code}");
            assert_eq!(reasons(&d), vec![code.to_string()]);
            assert_eq!(
                d.checks.selfie_quality, None,
                "{code}: the selfie was not looked at"
            );
            assert_eq!(d.checks.liveness.result, LivenessResult::NotEvaluated);
            assert_eq!(d.checks.face_match.result, FaceMatchResult::NotCompared);
            assert_eq!(
                d.checks.revocation.result,
                status::RevocationResult::NotChecked
            );
        }
    }

    #[test]
    fn revocation_answers_have_their_reasons() {
        for (status, code) in [
            (
                jlis::Status::Revoked {
                    reason: RevocationReason::KeyCompromise,
                    revoked_at: Utc::now(),
                },
                "certificate_revoked",
            ),
            (
                jlis::Status::Revoked {
                    reason: RevocationReason::AffiliationChanged,
                    revoked_at: Utc::now(),
                },
                "identity_changed",
            ),
            (jlis::Status::Unknown, "certificate_status_unknown"),
        ] {
            let v = validity(status);
            let d = decide(
                &card(),
                Some(&v),
                Some(&faces(Some(0.9))),
                LivenessMode::Off,
                &POLICY(),
            );
            assert_eq!(d.status, EnrollmentStatus::Rejected);
            assert_eq!(reasons(&d), vec![code.to_string()]);
        }
    }

    #[test]
    fn every_face_reason_code() {
        let good = validity(jlis::Status::Good);
        let no_match = decide(
            &card(),
            Some(&good),
            Some(&faces(Some(0.49))),
            LivenessMode::Off,
            &POLICY(),
        );
        assert_eq!(reasons(&no_match), vec!["face_mismatch"]);
        assert_eq!(no_match.checks.face_match.score, Some(0.49));
        let at = decide(
            &card(),
            Some(&good),
            Some(&faces(Some(0.5))),
            LivenessMode::Off,
            &POLICY(),
        );
        assert_eq!(
            at.status,
            EnrollmentStatus::Verified,
            "the threshold itself matches"
        );
        let none = decide(
            &card(),
            Some(&good),
            Some(&faces(None)),
            LivenessMode::Off,
            &POLICY(),
        );
        assert_eq!(reasons(&none), vec!["face_not_compared"]);
        let mut live = faces(Some(0.9));
        live.liveness.result = LivenessResult::Fail;
        let d = decide(
            &card(),
            Some(&good),
            Some(&live),
            LivenessMode::PoseSequence,
            &POLICY(),
        );
        assert_eq!(reasons(&d), vec!["liveness_failed"]);
        for kind in [ImageKind::Selfie, ImageKind::ChipPhoto] {
            for check in QualityCheck::ALL {
                let mut f = faces(None);
                match kind {
                    ImageKind::Selfie => f.selfie_quality = quality(kind, &[check]),
                    ImageKind::ChipPhoto => f.chip_quality = Some(quality(kind, &[check])),
                }
                let d = decide(&card(), Some(&good), Some(&f), LivenessMode::Off, &POLICY());
                let code = QualityFailure { check, kind }.code();
                assert_eq!(reasons(&d), vec![code, "face_not_compared".to_string()]);
            }
        }
    }

    #[test]
    fn every_reason_code_is_reachable_by_decide() {
        // The codes above cover the whole vocabulary (Reason::all_codes).
        let covered = 18 + 3 + 3 + 2 * QualityCheck::ALL.len();
        assert_eq!(Reason::all_codes().len(), covered);
    }
}
