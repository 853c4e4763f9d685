//! What an enrollment is stored as: the public decision record (the `document` column, versioned),
//! the certificate record sealed under the enrollment's data key, and how both are opened and put
//! back together into the API's document. Enrollment and status checks both read and write these.

use super::view::{CertificateView, EnrollmentChecks, EnrollmentDocument, ReviewInfo};
use crate::card;
use crate::crypto::{DataKey, Owner, RecordKind};
use crate::domain::RevocationTarget;
use crate::domain::{self, EnrollmentId, EnrollmentStatus, Millis, Reasons};
use crate::redact::Secret;
use crate::store::EnrollmentRow;
use crate::usecase::{Services, UseCaseError, UseCaseResult};
use serde::{Deserialize, Serialize};

/// The public decision record, stored as the `document` column: reasons and checks, nothing that
/// identifies a person. The status, subject_ref and time live in their own columns.
///
/// Stored with its schema version ([`StoredDecision::SCHEMA`]); every older version still loads (see
/// [`StoredDecision::from_json`]), so a change to the API's types cannot make old rows unreadable
/// without a failing test (`tests` below keep a row of each version).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredDecision {
    pub reasons: Reasons,
    pub checks: EnrollmentChecks,
    /// Issue 22: present once the enrollment went to review (absent in older rows: same schema).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<ReviewInfo>,
}

/// The stored form: the record with its version. Version 1 (before versions were written) has no
/// `schema` member and the same shape as version 2.
#[derive(Serialize)]
struct Versioned<'a> {
    schema: u32,
    #[serde(flatten)]
    record: &'a StoredDecision,
}

/// Why a record was not written or not read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("the decision record would carry certificate details (they are sealed separately)")]
    CertificateDetails,
    #[error("decision record schema {0} is newer than this build understands")]
    NewerSchema(u64),
    #[error("decision record: {0}")]
    Json(#[from] serde_json::Error),
}

impl From<RecordError> for UseCaseError {
    fn from(e: RecordError) -> Self {
        UseCaseError::internal(e)
    }
}

impl StoredDecision {
    /// The version written now.
    pub const SCHEMA: u32 = 2;

    pub fn from_row(row: &EnrollmentRow) -> UseCaseResult<Self> {
        Self::from_json(&row.document)
            .map_err(|e| UseCaseError::internal(anyhow::anyhow!("enrollment {}: {e}", row.id)))
    }

    /// Reads every version this build has written.
    pub fn from_json(json: &str) -> Result<Self, RecordError> {
        let mut value: serde_json::Value = serde_json::from_str(json)?;
        let schema = value
            .as_object_mut()
            .and_then(|o| o.remove("schema"))
            .map(|v| v.as_u64().unwrap_or(u64::MAX))
            .unwrap_or(1);
        match schema {
            // Versions 1 and 2 have the same shape; a future version 3 converts here.
            1 | 2 => Ok(serde_json::from_value(value)?),
            newer => Err(RecordError::NewerSchema(newer)),
        }
    }

    /// The stored form. Refuses a record that carries certificate details: those identify a person
    /// and live only in the sealed certificate record (a check in release builds too).
    pub fn to_json(&self) -> Result<String, RecordError> {
        let c = &self.checks.certificate;
        if c.serial.is_some() || c.issuer.is_some() || c.not_after.is_some() {
            return Err(RecordError::CertificateDetails);
        }
        Ok(serde_json::to_string(&Versioned {
            schema: Self::SCHEMA,
            record: self,
        })?)
    }
}

/// What is sealed under the enrollment's key about its certificate: enough for a status check, and
/// the fields that reveal a person (the serial; `not_after` is the fifth birthday after issuance).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "SealedCertificateWire", into = "SealedCertificateWire")]
pub struct SealedCertificate {
    /// What a status check asks J-LIS about.
    pub target: RevocationTarget,
    /// For the API key holder's view: upper-case hex serial, issuer DN, expiry.
    pub serial: Option<String>,
    pub issuer: Option<String>,
    pub not_after: Option<chrono::DateTime<chrono::Utc>>,
}

/// The sealed record's JSON (unchanged since the first version): DER as hex strings.
#[derive(Serialize, Deserialize)]
struct SealedCertificateWire {
    serial_hex: String,
    issuer_cert_der_hex: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    distribution_point_hex: Option<String>,
    #[serde(default)]
    serial: Option<String>,
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    not_after: Option<chrono::DateTime<chrono::Utc>>,
}

impl TryFrom<SealedCertificateWire> for SealedCertificate {
    type Error = hex::FromHexError;

    fn try_from(w: SealedCertificateWire) -> Result<Self, Self::Error> {
        Ok(Self {
            target: RevocationTarget {
                serial: hex::decode(&w.serial_hex)?,
                issuer_cert_der: hex::decode(&w.issuer_cert_der_hex)?,
                crl_distribution_points: w.distribution_point_hex.map(hex::decode).transpose()?,
            },
            serial: w.serial,
            issuer: w.issuer,
            not_after: w.not_after,
        })
    }
}

impl From<SealedCertificate> for SealedCertificateWire {
    fn from(c: SealedCertificate) -> Self {
        Self {
            serial_hex: hex::encode(&c.target.serial),
            issuer_cert_der_hex: hex::encode(&c.target.issuer_cert_der),
            distribution_point_hex: c.target.crl_distribution_points.as_ref().map(hex::encode),
            serial: c.serial,
            issuer: c.issuer,
            not_after: c.not_after,
        }
    }
}

impl SealedCertificate {
    /// The details the API key holder of a verified enrollment sees.
    fn show_in(&self, view: &mut CertificateView) {
        view.serial = self.serial.clone();
        view.issuer = self.issuer.clone();
        view.not_after = self.not_after;
    }
}

/// The parts of a document, in one place so that POST's answer and GET's rendering cannot differ.
pub(super) fn document(
    id: EnrollmentId,
    status: EnrollmentStatus,
    subject_ref: Option<String>,
    record: StoredDecision,
    certificate: Option<&SealedCertificate>,
    identity: Option<card::Identity>,
    created_at: Millis,
) -> EnrollmentDocument {
    let mut checks = record.checks;
    if let Some(sealed) = certificate {
        sealed.show_in(&mut checks.certificate);
    }
    EnrollmentDocument {
        id,
        status,
        subject_ref,
        reasons: record.reasons,
        checks,
        identity,
        created_at: domain::rfc3339(created_at),
        review: record.review,
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Reason;
    use crate::jlis;

    /// A `document` column as version 1 wrote it (no `schema` member): a rejected enrollment whose
    /// certificate was found revoked. Kept verbatim: if the API's types change, this must still load.
    const V1_REVOKED: &str = r#"{"reasons":["certificate_revoked"],"checks":{"card_data":{"result":"valid","issuer_key_id":"9000023/001"},"card_present":{"result":"valid"},"certificate":{"result":"valid","serial":null,"issuer":null,"not_after":null},"revocation":{"result":"revoked","method":"ocsp","checked_at":"2026-12-01T10:00:00.000Z","reason":"keyCompromise","revoked_at":"2026-11-30T09:00:00Z","responder":"http://127.0.0.1:8888"},"consistency":{"result":"match","mismatched":[]},"hojo":{"result":"valid","issuer_key_id":"9000033/001"},"hojo_binding":{"result":"bound","certificate_mismatched":[],"kenmen_mismatched":[]},"selfie_quality":{"result":"pass","faces":1,"face_width_px":200,"brightness":0.5,"sharpness":0.8,"yaw_deg":0.0,"pitch_deg":0.0,"failed":[],"inter_eye_px":60.0,"roll_deg":0.0,"glare":0.0,"detection_score":0.9},"chip_photo_quality":{"result":"pass","faces":1,"face_width_px":200,"brightness":0.5,"sharpness":0.8,"yaw_deg":0.0,"pitch_deg":0.0,"failed":[],"inter_eye_px":60.0,"roll_deg":0.0,"glare":0.0,"detection_score":0.9},"liveness":{"result":"skipped","kind":"off"},"face_match":{"result":"match","score":0.7,"threshold":0.5,"target_fmr":0.0001,"model":"sface@abc"}}}"#;

    #[test]
    fn a_version_1_record_loads_and_is_written_back_as_the_current_version() {
        let record = StoredDecision::from_json(V1_REVOKED).expect("version 1 loads");
        assert!(record.reasons.contains(Reason::CertificateRevoked));
        assert_eq!(
            record.checks.revocation.reason,
            Some(jlis::RevocationReason::KeyCompromise)
        );
        assert_eq!(record.checks.revocation.method, Some(jlis::Method::Ocsp));
        let written = record.to_json().unwrap();
        let value: serde_json::Value = serde_json::from_str(&written).unwrap();
        assert_eq!(value["schema"], StoredDecision::SCHEMA);
        // Apart from the version, the stored shape is unchanged.
        let mut v1: serde_json::Value = serde_json::from_str(V1_REVOKED).unwrap();
        v1["schema"] = StoredDecision::SCHEMA.into();
        assert_eq!(value, v1);
        assert_eq!(StoredDecision::from_json(&written).unwrap(), record);
    }

    #[test]
    fn a_record_of_a_newer_schema_is_refused_not_misread() {
        let mut v: serde_json::Value = serde_json::from_str(V1_REVOKED).unwrap();
        v["schema"] = 3.into();
        assert!(matches!(
            StoredDecision::from_json(&v.to_string()),
            Err(RecordError::NewerSchema(3))
        ));
    }

    #[test]
    fn certificate_details_are_refused_in_the_public_record() {
        let mut record = StoredDecision::from_json(V1_REVOKED).unwrap();
        record.checks.certificate.serial = Some("0A1B".into());
        assert!(matches!(
            record.to_json(),
            Err(RecordError::CertificateDetails)
        ));
        let mut record = StoredDecision::from_json(V1_REVOKED).unwrap();
        record.checks.certificate.issuer = Some("CN=x".into());
        assert!(record.to_json().is_err());
    }

    #[test]
    fn the_sealed_certificate_keeps_its_first_json_shape() {
        let json = r#"{"serial_hex":"0a1b","issuer_cert_der_hex":"3082","distribution_point_hex":"30ff","serial":"0A1B","issuer":"CN=JPKI","not_after":"2030-01-01T00:00:00Z"}"#;
        let sealed: SealedCertificate = serde_json::from_str(json).unwrap();
        assert_eq!(sealed.target.serial, vec![0x0a, 0x1b]);
        assert_eq!(
            sealed.target.crl_distribution_points,
            Some(vec![0x30, 0xff])
        );
        let back: serde_json::Value = serde_json::to_value(&sealed).unwrap();
        assert_eq!(
            back,
            serde_json::from_str::<serde_json::Value>(json).unwrap()
        );
        assert!(serde_json::from_str::<SealedCertificate>(
            r#"{"serial_hex":"zz","issuer_cert_der_hex":"30"}"#
        )
        .is_err());
    }
}
