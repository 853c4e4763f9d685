//! Verified claims of one enrollment for its RP (`GET /v1/enrollments/{id}/verified-claims`):
//! read the enrollment, open its sealed identity and certificate record under its data key, audit
//! the access, build the `verified_claims` document ([`crate::claims`]). Signing is the caller's.
//!
//! Only a `verified` enrollment has claims to give: a rejected, revoked, `identity_changed` or
//! `status_unknown` one is refused (`EnrollmentNotVerified`); a deleted (crypto-shredded) one, or
//! another tenant's, does not exist (`NotFound`).

use super::enrollment::{self, StoredDecision};
use super::status::SealedCertificate;
use super::{Services, UseCaseError, UseCaseResult};
use crate::card::Identity;
use crate::claims::{ClaimSet, ClaimsPayload, EvidenceInput, SubjectSource};
use crate::crypto::{Owner, RecordKind};
use crate::domain::{new_id, now_millis, EnrollmentId, EnrollmentStatus, TenantId};
use crate::store::AuditEvent;

/// The audit event of every opening of an identity for verified claims.
pub const AUDIT_EVENT: crate::domain::AuditKind =
    crate::domain::AuditKind::EnrollmentVerifiedClaimsIssued;

/// Who asked, and how the answer goes out (for the audit event).
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub tenant_id: &'a TenantId,
    /// The API key's id.
    pub key_id: &'a str,
    /// `jwt` or `json`.
    pub format: &'static str,
    /// `kid` of the key that will sign it (for `jwt`).
    pub kid: &'a str,
}

/// The claims document of enrollment `id`, limited to `wanted`. The access is in the audit log
/// (event [`AUDIT_EVENT`], with the token id and the claim names, never their values) before
/// anything is returned: a failed audit write answers an error and discloses nothing.
pub async fn verified_claims(
    svc: &Services,
    request: Request<'_>,
    id: &EnrollmentId,
    wanted: &ClaimSet,
) -> UseCaseResult<ClaimsPayload> {
    let row = svc
        .store
        .get_enrollment(request.tenant_id, id)
        .await?
        .ok_or(UseCaseError::NotFound)?;
    if row.status == EnrollmentStatus::Deleted {
        return Err(UseCaseError::NotFound);
    }
    if row.status != EnrollmentStatus::Verified {
        return Err(UseCaseError::EnrollmentNotVerified);
    }
    // A verified enrollment whose key is gone has been shredded: nothing left to assert.
    let Some(dek) = enrollment::data_key(svc, &row)? else {
        return Err(UseCaseError::NotFound);
    };
    let Some(sealed_identity) = row.identity_sealed.as_ref() else {
        return Err(UseCaseError::NotFound);
    };
    // The decision record must read: the claims rest on its checks.
    StoredDecision::from_row(&row)?;
    let owner = Owner {
        tenant_id: &row.tenant_id,
        enrollment_id: &row.id,
    };
    let identity: Identity = serde_json::from_slice(
        &dek.open(owner, RecordKind::Identity, sealed_identity.expose())
            .map_err(UseCaseError::internal)?,
    )
    .map_err(UseCaseError::internal)?;
    let certificate: Option<SealedCertificate> = row
        .revocation_sealed
        .as_ref()
        .map(|sealed| {
            dek.open(owner, RecordKind::RevocationTarget, sealed.expose())
                .map_err(UseCaseError::internal)
                .and_then(|plain| serde_json::from_slice(&plain).map_err(UseCaseError::internal))
        })
        .transpose()?;
    let cfg = &svc.settings.claims;
    let sub = match (cfg.subject, row.subject_ref.as_deref()) {
        (SubjectSource::SubjectRef, Some(subject_ref)) => subject_ref,
        _ => row.id.as_str(),
    };
    let jti = new_id("vc");
    let now = now_millis();
    let decided_at = chrono::DateTime::from_timestamp_millis(row.created_at).unwrap_or_default();
    let cert_fields = certificate
        .as_ref()
        .and_then(|c| Some((c.issuer.as_deref()?, c.serial.as_deref()?)));
    let payload = ClaimsPayload::build(
        &EvidenceInput {
            iss: &cfg.issuer,
            sub,
            iat: now.div_euclid(1000),
            jti: &jti,
            enrollment_id: row.id.as_str(),
            decided_at,
            identity: &identity,
            certificate: cert_fields,
        },
        wanted,
    );
    let audit = AuditEvent::new(
        request.tenant_id,
        AUDIT_EVENT,
        row.id.as_str(),
        serde_json::json!({
            "key_id": request.key_id,
            "jti": jti,
            "format": request.format,
            "kid": (request.format == "jwt").then_some(request.kid),
            "claims": wanted.names(),
        }),
    );
    svc.store.append_audit(&audit).await?;
    metrics::counter!("verified_claims_issued_total", "format" => request.format).increment(1);
    Ok(payload)
}
