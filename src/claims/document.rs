//! The `verified_claims` document (OpenID Identity Assurance schema definition 1.0, §5 "Verified
//! claims") for one verified enrollment, the OIDC-style `claims` request parameter that limits it,
//! and the IDA discovery fragment.

use crate::card::{Identity, Sex};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The trust framework: Japan's Act on Prevention of Transfer of Criminal Proceeds (犯収法).
pub const TRUST_FRAMEWORK: &str = "jp_aml";
/// The predefined document type of the My Number Card.
pub const DOCUMENT_TYPE: &str = "jp_individual_number_card";
/// `assurance_process.policy`: the identification method of the JPKI signing certificate.
pub const POLICY: &str = "犯罪による収益の移転防止に関する法律施行規則 第6条第1項第1号ワ";
/// `assurance_process.procedure`.
pub const PROCEDURE: &str = "jpki_signing_certificate_with_ic_chip_photo_match";
/// `signature_type` of the `electronic_signature` evidence: a signature by the JPKI signing key
/// (署名用電子証明書) over this service's session challenge.
pub const SIGNATURE_TYPE: &str = "jpki_signing";
/// The card's issuing system, as `document_details.issuer.name`.
pub const DOCUMENT_ISSUER: &str = "J-LIS";

/// Claims this service can assert, as named in OpenID Connect Core §5.1.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ClaimName {
    Name,
    Birthdate,
    Gender,
    Address,
}

impl ClaimName {
    pub const ALL: [ClaimName; 4] = [
        ClaimName::Name,
        ClaimName::Birthdate,
        ClaimName::Gender,
        ClaimName::Address,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ClaimName::Name => "name",
            ClaimName::Birthdate => "birthdate",
            ClaimName::Gender => "gender",
            ClaimName::Address => "address",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Which claims to put in the document: all of them, or those a `claims` parameter asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimSet(BTreeSet<ClaimName>);

/// Longest `claims` parameter accepted, in bytes.
const MAX_CLAIMS_PARAMETER: usize = 4096;

impl ClaimSet {
    pub fn all() -> Self {
        Self(ClaimName::ALL.into_iter().collect())
    }

    pub fn contains(&self, name: ClaimName) -> bool {
        self.0.contains(&name)
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().map(|c| c.as_str()).collect()
    }

    /// Parses the `claims` request parameter (OpenID Connect Core §5.5 with the `verified_claims`
    /// request syntax of OpenID Connect for Identity Assurance 1.0 §6):
    /// `{"verified_claims": {"verification": {…}, "claims": {"birthdate": null, …}}}`.
    /// Each requested claim is `null` or an object (`essential`, `purpose`); claims this service
    /// cannot assert are left out, as OpenID Connect does. `None` (no parameter) means every claim.
    pub fn from_request(raw: Option<&str>) -> Result<Self, String> {
        let Some(raw) = raw else {
            return Ok(Self::all());
        };
        if raw.len() > MAX_CLAIMS_PARAMETER {
            return Err(format!(
                "`claims` is longer than {MAX_CLAIMS_PARAMETER} bytes"
            ));
        }
        let value: serde_json::Value =
            serde_json::from_str(raw).map_err(|e| format!("`claims` is not JSON: {e}"))?;
        let request = value
            .as_object()
            .and_then(|o| o.get("verified_claims"))
            .ok_or("`claims` must be a JSON object with a `verified_claims` member")?
            .as_object()
            .ok_or("`claims.verified_claims` must be one object")?;
        if let Some(v) = request.get("verification") {
            if !v.is_object() {
                return Err("`claims.verified_claims.verification` must be an object".into());
            }
        }
        let claims = request
            .get("claims")
            .and_then(|c| c.as_object())
            .filter(|c| !c.is_empty())
            .ok_or("`claims.verified_claims.claims` must be a non-empty object")?;
        let mut wanted = BTreeSet::new();
        for (name, spec) in claims {
            if !(spec.is_null() || spec.is_object()) {
                return Err(format!(
                    "`claims.verified_claims.claims.{name}` must be null or an object"
                ));
            }
            if let Some(claim) = ClaimName::parse(name) {
                wanted.insert(claim);
            }
        }
        Ok(Self(wanted))
    }
}

/// What a receiver gets: the JWT claims set (or, with `Accept: application/json`, the same object
/// unsigned).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClaimsPayload {
    /// `claims.issuer` of the configuration.
    pub iss: String,
    /// The enrollment id, or the RP's `subject_ref` (`claims.subject`).
    pub sub: String,
    /// Seconds since the epoch.
    pub iat: i64,
    /// This token's id; the audit event of the access records it.
    pub jti: String,
    /// The verification process: equal to `verified_claims.verification.verification_process`.
    pub txn: String,
    pub verified_claims: VerifiedClaims,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VerifiedClaims {
    pub verification: Verification,
    pub claims: Claims,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = IdaVerification)]
pub struct Verification {
    /// `jp_aml`
    pub trust_framework: String,
    /// When the enrollment was decided (RFC 3339, seconds, UTC).
    pub time: String,
    /// The enrollment id: the subject of its `enrollment.created` audit event.
    pub verification_process: String,
    pub assurance_process: AssuranceProcess,
    pub evidence: Vec<Evidence>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AssuranceProcess {
    pub policy: String,
    pub procedure: String,
}

/// One piece of evidence, by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[schema(as = IdaEvidence)]
pub enum Evidence {
    /// The My Number Card itself.
    Document(DocumentEvidence),
    /// The JPKI signing certificate that signed the session challenge.
    ElectronicSignature(SignatureEvidence),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DocumentEvidence {
    pub check_details: Vec<CheckDetail>,
    pub document_details: DocumentDetails,
}

/// Predefined check methods of the IDA identifiers page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckMethod {
    /// Cryptographic security features verified: the 券面AP issuer signatures (`checks.card_data`).
    Vcrypt,
    /// The card as a smartcard token: it signed this session's challenge (`checks.card_present`).
    Token,
    /// Automated remote biometric match: chip photo against the live selfie (`checks.face_match`).
    Bvr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckDetail {
    pub check_method: CheckMethod,
    /// `<enrollment id>/<check>`: the check of that name in the enrollment's decision record.
    pub check_id: String,
    pub time: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DocumentDetails {
    /// `jp_individual_number_card`
    #[serde(rename = "type")]
    pub type_: String,
    pub issuer: DocumentIssuer,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DocumentIssuer {
    pub name: String,
    /// ICAO 3-letter code.
    pub country_code: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SignatureEvidence {
    /// `jpki_signing`
    pub signature_type: String,
    /// The certificate's issuer DN (RFC 4514).
    pub issuer: String,
    /// The certificate's serial number (upper-case hex).
    pub serial_number: String,
    /// When the signature was verified (the enrollment's decision).
    pub created_at: String,
}

/// The verified claims, as read from the JPKI signing certificate; only those asked for.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = IdaClaims)]
pub struct Claims {
    /// Full name as on the card (family name, ideographic space, given name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `YYYY-MM-DD`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthdate: Option<String>,
    /// `male`, `female`, `not_known` or `not_applicable` (ISO/IEC 5218 codes 1, 2, 0, 9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
}

/// The OpenID Connect `address` claim: the card gives the address as one string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = IdaAddress)]
pub struct Address {
    pub formatted: String,
    /// `JP`
    pub country: String,
}

/// What the document is made from.
pub struct EvidenceInput<'a> {
    pub iss: &'a str,
    pub sub: &'a str,
    pub iat: i64,
    pub jti: &'a str,
    pub enrollment_id: &'a str,
    /// When the enrollment was decided.
    pub decided_at: chrono::DateTime<chrono::Utc>,
    pub identity: &'a Identity,
    /// The signing certificate's issuer DN and serial, when the enrollment still has them.
    pub certificate: Option<(&'a str, &'a str)>,
}

fn gender(sex: Sex) -> &'static str {
    match sex {
        Sex::Male => "male",
        Sex::Female => "female",
        Sex::NotKnown => "not_known",
        Sex::NotApplicable => "not_applicable",
    }
}

impl ClaimsPayload {
    /// The document for one verified enrollment, with the claims in `wanted` only.
    pub fn build(input: &EvidenceInput<'_>, wanted: &ClaimSet) -> Self {
        let time = input
            .decided_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let check = |check_method, name: &str| CheckDetail {
            check_method,
            check_id: format!("{}/{name}", input.enrollment_id),
            time: time.clone(),
        };
        let mut evidence = vec![Evidence::Document(DocumentEvidence {
            check_details: vec![
                check(CheckMethod::Vcrypt, "card_data"),
                check(CheckMethod::Token, "card_present"),
                check(CheckMethod::Bvr, "face_match"),
            ],
            document_details: DocumentDetails {
                type_: DOCUMENT_TYPE.into(),
                issuer: DocumentIssuer {
                    name: DOCUMENT_ISSUER.into(),
                    country_code: "JPN".into(),
                },
            },
        })];
        if let Some((issuer, serial)) = input.certificate {
            evidence.push(Evidence::ElectronicSignature(SignatureEvidence {
                signature_type: SIGNATURE_TYPE.into(),
                issuer: issuer.into(),
                serial_number: serial.into(),
                created_at: time.clone(),
            }));
        }
        let id = input.identity;
        let claims = Claims {
            name: wanted.contains(ClaimName::Name).then(|| id.name.clone()),
            birthdate: wanted
                .contains(ClaimName::Birthdate)
                .then(|| id.birth_date.format("%Y-%m-%d").to_string()),
            gender: wanted
                .contains(ClaimName::Gender)
                .then(|| gender(id.sex).to_string()),
            address: wanted.contains(ClaimName::Address).then(|| Address {
                formatted: id.address.clone(),
                country: "JP".into(),
            }),
        };
        Self {
            iss: input.iss.into(),
            sub: input.sub.into(),
            iat: input.iat,
            jti: input.jti.into(),
            txn: input.enrollment_id.into(),
            verified_claims: VerifiedClaims {
                verification: Verification {
                    trust_framework: TRUST_FRAMEWORK.into(),
                    time,
                    verification_process: input.enrollment_id.into(),
                    assurance_process: AssuranceProcess {
                        policy: POLICY.into(),
                        procedure: PROCEDURE.into(),
                    },
                    evidence,
                },
                claims,
            },
        }
    }
}

/// The IDA members of an OpenID Provider's discovery document (OpenID Connect for Identity
/// Assurance 1.0 §9), for an IdP to merge into its own, plus where the keys are.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Discovery {
    pub issuer: String,
    pub jwks_uri: String,
    /// The verified-claims endpoint, with `{id}` for the enrollment id.
    pub verified_claims_endpoint: String,
    pub verified_claims_supported: bool,
    pub trust_frameworks_supported: Vec<String>,
    pub evidence_supported: Vec<String>,
    pub documents_supported: Vec<String>,
    pub documents_check_methods_supported: Vec<String>,
    pub claims_in_verified_claims_supported: Vec<String>,
    pub verified_claims_signing_alg_values_supported: Vec<String>,
}

/// The discovery fragment for `issuer`, whose own address is `base_url`.
pub fn discovery(issuer: &str, base_url: &str) -> Discovery {
    let base = base_url.trim_end_matches('/');
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    Discovery {
        issuer: issuer.into(),
        jwks_uri: format!("{base}/.well-known/jwks.json"),
        verified_claims_endpoint: format!("{base}/v1/enrollments/{{id}}/verified-claims"),
        verified_claims_supported: true,
        trust_frameworks_supported: strings(&[TRUST_FRAMEWORK]),
        evidence_supported: strings(&["document", "electronic_signature"]),
        documents_supported: strings(&[DOCUMENT_TYPE]),
        documents_check_methods_supported: strings(&["vcrypt", "token", "bvr"]),
        claims_in_verified_claims_supported: ClaimName::ALL
            .iter()
            .map(|c| c.as_str().to_string())
            .collect(),
        verified_claims_signing_alg_values_supported: strings(&["ES256"]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            name: "山田\u{3000}太郎".into(),
            name_alt: String::new(),
            birth_date: chrono::NaiveDate::from_ymd_opt(1990, 1, 2).unwrap(),
            sex: Sex::Male,
            address: "東京都千代田区霞が関２－１－２".into(),
            address_alt: String::new(),
        }
    }

    fn payload(wanted: &ClaimSet) -> serde_json::Value {
        let identity = identity();
        serde_json::to_value(ClaimsPayload::build(
            &EvidenceInput {
                iss: "https://ekyc.example.jp",
                sub: "enr_1",
                iat: 1_700_000_000,
                jti: "vc_1",
                enrollment_id: "enr_1",
                decided_at: chrono::DateTime::from_timestamp(1_700_000_000, 123_000_000).unwrap(),
                identity: &identity,
                certificate: Some(("CN=JPKI CA,O=JPKI,C=JP", "0A1B")),
            },
            wanted,
        ))
        .unwrap()
    }

    #[test]
    fn the_whole_document_has_the_jp_aml_shape() {
        let p = payload(&ClaimSet::all());
        let v = &p["verified_claims"]["verification"];
        assert_eq!(v["trust_framework"], "jp_aml");
        assert_eq!(v["time"], "2023-11-14T22:13:20Z");
        assert_eq!(v["verification_process"], "enr_1");
        assert_eq!(p["txn"], "enr_1");
        assert_eq!(v["evidence"][0]["type"], "document");
        assert_eq!(
            v["evidence"][0]["document_details"]["type"],
            "jp_individual_number_card"
        );
        let methods: Vec<&str> = v["evidence"][0]["check_details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["check_method"].as_str().unwrap())
            .collect();
        assert_eq!(methods, ["vcrypt", "token", "bvr"]);
        assert_eq!(v["evidence"][1]["type"], "electronic_signature");
        assert_eq!(v["evidence"][1]["serial_number"], "0A1B");
        let c = &p["verified_claims"]["claims"];
        assert_eq!(c["birthdate"], "1990-01-02");
        assert_eq!(c["gender"], "male");
        assert_eq!(c["address"]["formatted"], "東京都千代田区霞が関２－１－２");
    }

    #[test]
    fn the_claims_parameter_limits_the_claims() {
        let wanted = ClaimSet::from_request(Some(
            r#"{"verified_claims":{"verification":{"trust_framework":null},"claims":{"birthdate":{"essential":true},"email":null}}}"#,
        ))
        .unwrap();
        assert_eq!(wanted.names(), ["birthdate"]);
        let p = payload(&wanted);
        assert_eq!(
            p["verified_claims"]["claims"],
            serde_json::json!({"birthdate": "1990-01-02"})
        );
    }

    #[test]
    fn malformed_claims_parameters_are_refused() {
        for bad in [
            "not json",
            "[]",
            "{}",
            r#"{"verified_claims":[]}"#,
            r#"{"verified_claims":{}}"#,
            r#"{"verified_claims":{"claims":{}}}"#,
            r#"{"verified_claims":{"claims":{"name":1}}}"#,
            r#"{"verified_claims":{"verification":1,"claims":{"name":null}}}"#,
        ] {
            assert!(ClaimSet::from_request(Some(bad)).is_err(), "{bad}");
        }
        let long = format!(
            r#"{{"verified_claims":{{"claims":{{"name":null}}}},"x":"{}"}}"#,
            "a".repeat(5000)
        );
        assert!(ClaimSet::from_request(Some(&long)).is_err());
        assert_eq!(ClaimSet::from_request(None).unwrap(), ClaimSet::all());
    }
}
