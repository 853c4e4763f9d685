//! Enrollment (入口対策): `POST /v1/enrollments`, `GET /v1/enrollments[/{id}]`, `DELETE`, and
//! `POST /v1/enrollments/{id}/status-check` (現況確認).
//!
//! Order of work for one enrollment: the card checks (pure, milliseconds) first; then the J-LIS
//! validity check runs concurrently with the face work (chip photo, selfie and liveness frames in
//! the worker pool); then the decision; then ONE transaction stores the enrollment, the sealed
//! identity and templates, the audit event, and consumes the session. An error at any step
//! stores nothing and leaves the session usable.

use super::faces::{self, FaceWork};
use super::idempotency::{self, Answer};
use super::upload::{self, Upload};
use super::{ApiContext, ApiError, ApiResult, Caller, TenantAuth};
use crate::card::{self, CardReport, SessionBinding};
use crate::crypto::{DataKey, Owner, RecordKind};
use crate::domain::{self, new_id, now_millis, prefix, Purpose};
use crate::jlis::{self, ValidityReport};
use crate::liveness::{Challenge, LivenessReport};
use crate::redact::Secret;
use crate::store::{AuditEvent, EnrollmentRow, NewEnrollment, Session, StoredTemplate};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route(
            "/v1/enrollments",
            post(create_enrollment).get(list_enrollments),
        )
        .route(
            "/v1/enrollments/{id}",
            get(get_enrollment).delete(delete_enrollment),
        )
        .route("/v1/enrollments/{id}/status-check", post(status_check))
}

/// The outcome of the validity check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RevocationResult {
    Good,
    Revoked,
    Unknown,
    /// The certificate did not chain to a trusted root, so there was nothing to ask.
    NotChecked,
}

/// The `revocation` check of the API.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RevocationCheck {
    pub result: RevocationResult,
    pub method: Option<String>,
    pub checked_at: Option<String>,
    /// RFC 5280 reason name when revoked, e.g. `affiliationChanged`.
    pub reason: Option<String>,
    pub revoked_at: Option<String>,
    pub responder: Option<String>,
}

impl RevocationCheck {
    pub fn not_checked() -> Self {
        Self {
            result: RevocationResult::NotChecked,
            method: None,
            checked_at: None,
            reason: None,
            revoked_at: None,
            responder: None,
        }
    }

    pub fn from_report(report: &ValidityReport) -> Self {
        let (result, reason, revoked_at) = match report.status {
            jlis::Status::Good => (RevocationResult::Good, None, None),
            jlis::Status::Revoked { reason, revoked_at } => (
                RevocationResult::Revoked,
                serde_json::to_value(reason)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string)),
                Some(revoked_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            ),
            jlis::Status::Unknown => (RevocationResult::Unknown, None, None),
        };
        Self {
            result,
            method: Some(report.method.as_str().into()),
            checked_at: Some(
                report
                    .checked_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            ),
            reason,
            revoked_at,
            responder: report.responder.clone(),
        }
    }
}

/// The outcome of the face comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FaceMatchResult {
    Match,
    NoMatch,
    /// A face was missing (see the quality checks), so no score exists.
    NotCompared,
}

/// The `face_match` check: chip photo against selfie at the enrollment target FMR.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FaceMatchCheck {
    pub result: FaceMatchResult,
    /// Cosine similarity of the two templates.
    pub score: Option<f64>,
    pub threshold: f64,
    pub target_fmr: f64,
    /// `<model id>@<sha256 prefix>`.
    pub model: String,
}

/// Every check of an enrollment (api.md). `result` fields are closed enums.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EnrollmentChecks {
    pub card_data: card::CardDataCheck,
    pub card_present: card::PresenceCheck,
    pub certificate: card::CertificateCheck,
    pub revocation: RevocationCheck,
    pub consistency: card::ConsistencyCheck,
    /// Present when 入力補助AP data was sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hojo: Option<card::HojoCheck>,
    /// `{result: pass|fail, faces, face_width_px, brightness, sharpness, yaw_deg, pitch_deg, failed: [codes], …}`
    #[schema(value_type = Object)]
    pub selfie_quality: crate::face::QualityReport,
    /// The chip photo's quality (same shape, looser rules).
    #[schema(value_type = Option<Object>)]
    pub chip_photo_quality: Option<crate::face::QualityReport>,
    /// `{result: pass|fail|skipped, kind, frames: […], failed: [codes]}` (docs/liveness.md)
    #[schema(value_type = Object)]
    pub liveness: LivenessReport,
    pub face_match: FaceMatchCheck,
}

/// The enrollment's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EnrollmentStatus {
    /// Every check passed.
    Verified,
    /// At least one check failed; `reasons` says which.
    Rejected,
    /// A later status check found the certificate revoked.
    Revoked,
    /// A later status check found it revoked with affiliationChanged: the holder moved or was renamed.
    IdentityChanged,
}

/// An enrollment as the API shows it (201 from POST, 200 from GET).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EnrollmentDocument {
    pub id: String,
    pub status: EnrollmentStatus,
    pub subject_ref: Option<String>,
    /// The failed checks' codes, e.g. `face_mismatch`, `certificate_revoked`, `identity_changed`.
    pub reasons: Vec<String>,
    pub checks: EnrollmentChecks,
    /// From the signing certificate; `null` for a rejected enrollment (nothing personal is kept).
    pub identity: Option<card::Identity>,
    pub created_at: String,
}

/// What is sealed for a later status check: the certificate's serial and its issuer, not the certificate.
#[derive(Serialize, Deserialize)]
struct SealedRevocationTarget {
    serial_hex: String,
    issuer_cert_der_hex: String,
}

/// The enrollment status for a revocation answer: `identity_changed` for affiliationChanged,
/// `revoked` for any other revocation, unchanged otherwise.
fn status_after_revocation(report: &ValidityReport, current: &str) -> String {
    match report.failure_code() {
        Some("identity_changed") => "identity_changed".into(),
        Some("certificate_revoked") => "revoked".into(),
        _ => current.to_string(),
    }
}

fn limits(ctx: &ApiContext) -> upload::PartLimits {
    upload::PartLimits {
        card_json: ctx.settings.server.card_json_limit_bytes,
        image: ctx.settings.face.selfie_max_bytes,
        max_frames: ctx.settings.liveness.max_frames,
    }
}

/// The session an upload acts on: the client token's own, or `session_id` with an API key.
pub(super) async fn resolve_session(
    ctx: &ApiContext,
    caller: &Caller,
    upload_session: Option<&str>,
    purpose: Purpose,
) -> ApiResult<Session> {
    let session = match caller {
        Caller::Client { session } => {
            if upload_session.is_some_and(|id| id != session.id) {
                return Err(ApiError::Forbidden(
                    "a client token acts only on its own session".into(),
                ));
            }
            (**session).clone()
        }
        Caller::Tenant { tenant_id } => {
            let id = upload_session
                .ok_or_else(|| ApiError::Malformed("missing field `session_id`".into()))?;
            ctx.store
                .get_session(tenant_id, id)
                .await?
                .ok_or(ApiError::NotFound)?
        }
    };
    if session.purpose != purpose {
        return Err(ApiError::Forbidden(format!(
            "this session is for {}",
            session.purpose.as_str()
        )));
    }
    if session.consumed_at.is_some() {
        return Err(ApiError::SessionConsumed);
    }
    if now_millis() >= session.expires_at {
        return Err(ApiError::SessionExpired);
    }
    Ok(session)
}

pub(super) fn challenge_of(session: &Session) -> Challenge {
    session
        .liveness
        .as_deref()
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_else(Challenge::off)
}

/// Enroll a card holder.
#[utoipa::path(post, path = "/v1/enrollments", tag = "enrollments",
    request_body(content_type = "multipart/form-data", description = "parts `card` (JSON, api.md), `selfie` (JPEG/PNG/WebP), `liveness_frame`… ; with an API key also `session_id`. Or application/json with base64 images."),
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry-safe key")),
    responses(
        (status = 201, description = "Decided: `status` is `verified` or `rejected` with `reasons`", body = EnrollmentDocument),
        (status = 400, body = super::error::Problem, description = "malformed_request"),
        (status = 401, body = super::error::Problem, description = "unauthenticated"),
        (status = 403, body = super::error::Problem, description = "forbidden"),
        (status = 404, body = super::error::Problem, description = "not_found"),
        (status = 409, body = super::error::Problem, description = "session_consumed / session_expired / idempotency_conflict"),
        (status = 413, body = super::error::Problem, description = "payload_too_large"),
        (status = 415, body = super::error::Problem, description = "unsupported_media_type"),
        (status = 422, body = super::error::Problem, description = "invalid_card_data / my_number_not_accepted"),
        (status = 503, body = super::error::Problem, description = "revocation_unavailable / overloaded"),
    ),
    security(("client_token" = []), ("api_key" = [])))]
pub async fn create_enrollment(
    State(ctx): State<ApiContext>,
    caller: Caller,
    headers: HeaderMap,
    request: Request,
) -> ApiResult<Response> {
    let upload = upload::read(request, limits(&ctx)).await?;
    let session = resolve_session(
        &ctx,
        &caller,
        upload.session_id.as_deref(),
        Purpose::Enrollment,
    )
    .await?;
    let key = idempotency::key(&headers)?;
    let fingerprint = upload.fingerprint("POST /v1/enrollments");
    let tenant_id = session.tenant_id.clone();
    idempotency::once(&ctx, &tenant_id, key, fingerprint, || {
        enroll(&ctx, session, upload)
    })
    .await
}

async fn enroll(ctx: &ApiContext, session: Session, upload: Upload) -> ApiResult<Answer> {
    let card_json = upload
        .card
        .as_ref()
        .ok_or_else(|| ApiError::Malformed("missing part `card`".into()))?;
    let selfie = upload.require_selfie()?;
    let submission = card::parse_card_json(card_json).map_err(|e| match e {
        card::CardInputError::MyNumberNotAccepted { .. } => ApiError::MyNumberNotAccepted,
        card::CardInputError::Malformed { detail } => ApiError::Malformed(detail),
    })?;
    let nonce: [u8; 32] = session
        .nonce
        .expose()
        .as_slice()
        .try_into()
        .map_err(|_| ApiError::internal(anyhow::anyhow!("stored nonce is not 32 bytes")))?;
    // Seven RSA verifications and the parsers: milliseconds of CPU, kept off the async executor.
    let (trust, session_id) = (ctx.trust.clone(), session.id.clone());
    let report = tokio::task::spawn_blocking(move || {
        let binding = SessionBinding {
            session_id: &session_id,
            nonce: &nonce,
        };
        // Issue 11: the lead wires the tenant's card policy here; `require_hojo: false` keeps the
        // pre-issue behaviour until then (CardPolicy::default() requires the 入力補助AP).
        let policy = card::CardPolicy {
            require_hojo: false,
        };
        card::verify_card(&submission, &trust, &policy, &binding, chrono::Utc::now())
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| ApiError::InvalidCardData(e.to_string()))?;

    // The validity check and the face work run concurrently.
    let revocation = async {
        match &report.revocation_target {
            Some(t) => {
                let target = jlis::RevocationTarget {
                    serial: t.serial.clone(),
                    issuer_cert_der: t.issuer_cert_der.clone(),
                    crl_distribution_points: t.crl_distribution_points.clone(),
                };
                ctx.validity.check(&target).await.map(Some)
            }
            None => Ok(None),
        }
    };
    let challenge = challenge_of(&session);
    let faces = faces::analyze(
        &ctx.face,
        selfie,
        Some(report.chip_photo.clone().into()),
        &upload.liveness_frames,
    );
    let (revocation, faces) = tokio::join!(revocation, faces);
    let revocation = revocation.map_err(|e| {
        tracing::warn!(
            kind = e.kind().as_str(),
            "validity check unavailable; failing closed"
        );
        ApiError::RevocationUnavailable {
            retry_after_secs: e.retry_after_secs(),
            cause: e.kind().as_str(),
        }
    })?;
    let faces = faces?;
    let decision = decide(ctx, &report, revocation.as_ref(), &faces, &challenge);
    store_enrollment(
        ctx,
        &session,
        &report,
        revocation.as_ref(),
        &faces,
        decision,
    )
    .await
}

struct Decision {
    status: EnrollmentStatus,
    reasons: Vec<String>,
    checks: EnrollmentChecks,
}

fn push_unique(reasons: &mut Vec<String>, code: impl Into<String>) {
    let code = code.into();
    if !reasons.contains(&code) {
        reasons.push(code);
    }
}

fn decide(
    ctx: &ApiContext,
    report: &CardReport,
    revocation: Option<&ValidityReport>,
    faces: &FaceWork,
    challenge: &Challenge,
) -> Decision {
    let mut reasons: Vec<String> = report
        .failure_codes()
        .into_iter()
        .map(str::to_string)
        .collect();
    let revocation_check = match revocation {
        Some(r) => {
            if let Some(code) = r.failure_code() {
                push_unique(&mut reasons, code);
            }
            RevocationCheck::from_report(r)
        }
        None => RevocationCheck::not_checked(),
    };
    for failure in &faces.selfie.quality.failed {
        push_unique(&mut reasons, failure.code());
    }
    if let Some(chip) = &faces.chip {
        for failure in &chip.quality.failed {
            push_unique(&mut reasons, failure.code());
        }
    }
    let liveness = faces.liveness(challenge, &ctx.settings.liveness);
    if !liveness.passed() {
        push_unique(&mut reasons, "liveness_failed");
    }
    let threshold = ctx
        .face
        .threshold_for_fmr(ctx.settings.face.enrollment_target_fmr);
    let model = ctx.face.model_label();
    let compared = faces
        .chip
        .as_ref()
        .and_then(|c| c.template.as_ref())
        .zip(faces.selfie.template.as_ref())
        .and_then(|(chip, selfie)| ctx.face.compare(chip, selfie).ok());
    let result = match compared {
        Some(score) if score >= threshold.score => FaceMatchResult::Match,
        Some(_) => FaceMatchResult::NoMatch,
        None => FaceMatchResult::NotCompared,
    };
    match result {
        FaceMatchResult::Match => {}
        FaceMatchResult::NoMatch => push_unique(&mut reasons, "face_mismatch"),
        FaceMatchResult::NotCompared => push_unique(&mut reasons, "face_not_compared"),
    }
    let face_match = FaceMatchCheck {
        result,
        score: compared.map(round4),
        threshold: round4(threshold.score),
        target_fmr: threshold.target_fmr,
        model,
    };
    let checks = EnrollmentChecks {
        card_data: report.card_data.clone(),
        card_present: report.card_present.clone(),
        certificate: report.certificate.clone(),
        revocation: revocation_check,
        consistency: report.consistency.clone(),
        hojo: report.hojo.clone(),
        selfie_quality: faces.selfie.quality.clone(),
        chip_photo_quality: faces.chip.as_ref().map(|c| c.quality.clone()),
        liveness: liveness.clone(),
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

pub(super) fn round4(x: f32) -> f64 {
    (f64::from(x) * 10_000.0).round() / 10_000.0
}

async fn store_enrollment(
    ctx: &ApiContext,
    session: &Session,
    report: &CardReport,
    revocation: Option<&ValidityReport>,
    faces: &FaceWork,
    decision: Decision,
) -> ApiResult<Answer> {
    let id = new_id(prefix::ENROLLMENT);
    let now = now_millis();
    let verified = decision.status == EnrollmentStatus::Verified;
    let status = serde_json::to_value(decision.status).map_err(ApiError::internal)?;
    let status = status.as_str().unwrap_or("rejected").to_string();
    // The stored document is the public decision without the identity, which is sealed apart.
    let mut document = EnrollmentDocument {
        id: id.clone(),
        status: decision.status,
        subject_ref: session.subject_ref.clone(),
        reasons: decision.reasons,
        checks: decision.checks,
        identity: None,
        created_at: domain::rfc3339(now),
    };
    let owner = Owner {
        tenant_id: &session.tenant_id,
        enrollment_id: &id,
    };
    // Personal data and templates are kept only for a verified enrollment, sealed under its own key.
    let (identity_sealed, revocation_sealed, wrapped_key, templates) = if verified {
        let (dek, wrapped) = ctx.keys.new_data_key(owner);
        let identity = serde_json::to_vec(&report.identity).map_err(ApiError::internal)?;
        let target = report
            .revocation_target
            .as_ref()
            .map(|t| SealedRevocationTarget {
                serial_hex: hex::encode(&t.serial),
                issuer_cert_der_hex: hex::encode(&t.issuer_cert_der),
            });
        let target = target
            .map(|t| serde_json::to_vec(&t))
            .transpose()
            .map_err(ApiError::internal)?;
        let mut templates = Vec::new();
        for (source, analysis) in [
            ("enrollment_selfie", Some(&faces.selfie)),
            ("chip_photo", faces.chip.as_ref()),
        ] {
            if let Some(template) = analysis.and_then(|a| a.template.as_ref()) {
                templates.push(StoredTemplate {
                    id: new_id(prefix::TEMPLATE),
                    source: source.into(),
                    model_id: template.model_id.clone(),
                    model_hash: template.model_hash.clone(),
                    preprocessing_version: template.preprocessing_version.to_string(),
                    sealed: Secret::new(dek.seal(
                        owner,
                        RecordKind::Template,
                        &template.to_bytes(),
                    )),
                });
            }
        }
        (
            Some(dek.seal(owner, RecordKind::Identity, &identity)),
            target.map(|t| dek.seal(owner, RecordKind::RevocationTarget, &t)),
            Some(wrapped),
            templates,
        )
    } else {
        (None, None, None, Vec::new())
    };
    let enrollment = NewEnrollment {
        id: id.clone(),
        tenant_id: session.tenant_id.clone(),
        session_id: session.id.clone(),
        subject_ref: session.subject_ref.clone(),
        status: status.clone(),
        document: serde_json::to_string(&document).map_err(ApiError::internal)?,
        identity_sealed,
        revocation_sealed,
        wrapped_key,
        templates,
        created_at: now,
    };
    let audit = AuditEvent::new(
        &session.tenant_id,
        "enrollment.created",
        &id,
        json!({"session_id": session.id, "status": status, "reasons": document.reasons,
               "revocation_method": revocation.map(|r| r.method.as_str()), "liveness": document.checks.liveness.result}),
    );
    ctx.store.create_enrollment(&enrollment, &audit).await?;
    metrics::counter!("enrollments_total", "status" => status).increment(1);
    if verified {
        document.identity = Some(report.identity.clone());
    }
    Ok(Answer {
        status: StatusCode::CREATED,
        // Through text, so f32 metrics print as short decimals (0.569), exactly as GET prints them.
        body: serde_json::from_str(&serde_json::to_string(&document).map_err(ApiError::internal)?)
            .map_err(ApiError::internal)?,
        resource_id: Some(id),
    })
}

/// The enrollment's data key, if it still has one (a shredded or rejected enrollment has none).
pub(super) fn data_key(ctx: &ApiContext, row: &EnrollmentRow) -> ApiResult<Option<DataKey>> {
    let owner = Owner {
        tenant_id: &row.tenant_id,
        enrollment_id: &row.id,
    };
    row.wrapped_key
        .as_ref()
        .map(|w| ctx.keys.unwrap_key(owner, w).map_err(ApiError::internal))
        .transpose()
}

/// Opens one sealed record of an enrollment; `None` when it was never kept or has been shredded.
fn open_record(
    ctx: &ApiContext,
    row: &EnrollmentRow,
    kind: RecordKind,
    sealed: Option<&Secret<Vec<u8>>>,
) -> ApiResult<Option<Vec<u8>>> {
    let (Some(dek), Some(sealed)) = (data_key(ctx, row)?, sealed) else {
        return Ok(None);
    };
    let owner = Owner {
        tenant_id: &row.tenant_id,
        enrollment_id: &row.id,
    };
    dek.open(owner, kind, sealed.expose())
        .map(Some)
        .map_err(ApiError::internal)
}

/// The stored document plus the decrypted identity, as api.md shows an enrollment.
fn render(ctx: &ApiContext, row: &EnrollmentRow) -> ApiResult<Value> {
    let mut document: Value = serde_json::from_str(&row.document).map_err(ApiError::internal)?;
    document["status"] = json!(row.status);
    document["identity"] =
        match open_record(ctx, row, RecordKind::Identity, row.identity_sealed.as_ref())? {
            Some(plain) => serde_json::from_slice(&plain).map_err(ApiError::internal)?,
            None => Value::Null,
        };
    Ok(document)
}

/// One enrollment.
#[utoipa::path(get, path = "/v1/enrollments/{id}", tag = "enrollments", params(("id" = String, Path)),
    responses((status = 200, body = EnrollmentDocument), (status = 401, body = super::error::Problem), (status = 404, body = super::error::Problem)),
    security(("api_key" = [])))]
pub async fn get_enrollment(
    State(ctx): State<ApiContext>,
    auth: TenantAuth,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let row = ctx
        .store
        .get_enrollment(&auth.tenant_id, &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(render(&ctx, &row)?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// The RP's reference given when the session was opened.
    pub subject_ref: Option<String>,
    /// At most this many (default 50, at most 200), newest first.
    pub limit: Option<i64>,
}

/// Enrollments of this tenant, newest first, optionally for one `subject_ref`.
#[utoipa::path(get, path = "/v1/enrollments", tag = "enrollments", params(ListQuery),
    responses((status = 200, description = "`{\"enrollments\": [...]}`", body = Object), (status = 401, body = super::error::Problem)),
    security(("api_key" = [])))]
pub async fn list_enrollments(
    State(ctx): State<ApiContext>,
    auth: TenantAuth,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let limit = query.limit.unwrap_or(50).clamp(1, 200);
    let rows = ctx
        .store
        .list_enrollments(&auth.tenant_id, query.subject_ref.as_deref(), limit)
        .await?;
    let documents = rows
        .iter()
        .map(|r| render(&ctx, r))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(json!({ "enrollments": documents })))
}

/// Delete an enrollment: identity and templates are crypto-shredded; an audit tombstone remains.
#[utoipa::path(delete, path = "/v1/enrollments/{id}", tag = "enrollments", params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = super::error::Problem), (status = 404, body = super::error::Problem)),
    security(("api_key" = [])))]
pub async fn delete_enrollment(
    State(ctx): State<ApiContext>,
    auth: TenantAuth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let audit = AuditEvent::new(
        &auth.tenant_id,
        "enrollment.deleted",
        &id,
        json!({"shredded": true}),
    );
    if ctx
        .store
        .delete_enrollment(&auth.tenant_id, &id, &audit, now_millis())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

/// A fresh validity check of the enrollment's certificate (現況確認).
#[utoipa::path(post, path = "/v1/enrollments/{id}/status-check", tag = "enrollments", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 401, body = super::error::Problem), (status = 404, body = super::error::Problem),
              (status = 409, body = super::error::Problem, description = "enrollment_inactive (never verified: nothing to check)"),
              (status = 503, body = super::error::Problem, description = "revocation_unavailable")),
    security(("api_key" = [])))]
pub async fn status_check(
    State(ctx): State<ApiContext>,
    auth: TenantAuth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let row = ctx
        .store
        .get_enrollment(&auth.tenant_id, &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let Some(plain) = open_record(
        &ctx,
        &row,
        RecordKind::RevocationTarget,
        row.revocation_sealed.as_ref(),
    )?
    else {
        return Err(ApiError::EnrollmentInactive);
    };
    let stored: SealedRevocationTarget =
        serde_json::from_slice(&plain).map_err(ApiError::internal)?;
    let target = jlis::RevocationTarget {
        serial: hex::decode(&stored.serial_hex).map_err(ApiError::internal)?,
        issuer_cert_der: hex::decode(&stored.issuer_cert_der_hex).map_err(ApiError::internal)?,
        // Not sealed yet (issue 11, lead): without it only a complete CRL can answer in CRL mode.
        crl_distribution_points: None,
    };
    let report =
        ctx.validity
            .check(&target)
            .await
            .map_err(|e| ApiError::RevocationUnavailable {
                retry_after_secs: e.retry_after_secs(),
                cause: e.kind().as_str(),
            })?;
    let check = RevocationCheck::from_report(&report);
    let status = status_after_revocation(&report, &row.status);
    let mut document: Value = serde_json::from_str(&row.document).map_err(ApiError::internal)?;
    document["checks"]["revocation"] = json!(check);
    document["status"] = json!(status);
    if let Some(code) = report.failure_code() {
        if let Some(reasons) = document["reasons"].as_array_mut() {
            if !reasons.iter().any(|r| r == code) {
                reasons.push(json!(code));
            }
        }
    }
    let audit = AuditEvent::new(
        &row.tenant_id,
        "enrollment.status_checked",
        &row.id,
        json!({"result": check.result, "reason": check.reason, "status": status}),
    );
    ctx.store
        .update_enrollment_status(
            &row.tenant_id,
            &row.id,
            &status,
            &document.to_string(),
            &audit,
            now_millis(),
        )
        .await?;
    Ok(Json(json!({"id": row.id, "status": status, "revocation": check})).into_response())
}
