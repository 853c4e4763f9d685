//! The JPKI signing certificate (JPKI AP EF 0001): strict DER parsing, the SAN identity profile
//! (OIDs 1.2.392.200149.8.5.5.1–.6) and the pieces the chain and signature checks need.

use super::rsakey;
use super::tlv;
use super::{Identity, InvalidCardData, Sex};
use chrono::{DateTime, NaiveDate, Utc};
use rsa::RsaPublicKey;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

const ELEMENT: &str = "jpki.signing_certificate";
/// Largest certificate accepted (real ones are about 1.5 KiB).
pub const MAX_CERT_BYTES: usize = 16 * 1024;

const OID_CERTIFICATE_POLICIES: &str = "2.5.29.32";
const OID_CRL_DISTRIBUTION_POINTS: &str = "2.5.29.31";

/// Extensions whose meaning this verifier knows and acts on (or that only carry identifiers); a critical
/// extension outside this list makes the certificate `unknown_critical_extension`. J-LIS marks
/// certificatePolicies critical (profile 3.2), so it must be here.
const PROCESSED_EXTENSIONS: &[&str] = &[
    "2.5.29.15",                 // keyUsage: checked
    "2.5.29.17",                 // subjectAltName: the identity
    OID_CERTIFICATE_POLICIES,    // checked against card.signing_policy_oids
    "2.5.29.19",                 // basicConstraints
    OID_CRL_DISTRIBUTION_POINTS, // the revocation check's scope
    "2.5.29.35",                 // authorityKeyIdentifier
    "2.5.29.14",                 // subjectKeyIdentifier
    "1.3.6.1.5.5.7.1.1",         // authorityInfoAccess (never followed)
];

/// sha256WithRSAEncryption, the only signature algorithm JPKI uses.
pub(crate) const SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";

/// What the checks need from the end-entity certificate, copied out of the DER.
#[derive(Clone)]
pub struct SigningCertificate {
    pub der: Vec<u8>,
    pub key: RsaPublicKey,
    pub identity: Identity,
    /// The serial's content bytes (two's complement, as in the DER).
    pub serial: Vec<u8>,
    /// The issuer Name, DER: compared with the trusted root's subject.
    pub issuer_der: Vec<u8>,
    /// The issuer in RFC 4514 text.
    pub issuer: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// keyUsage present, critical, with digitalSignature and nonRepudiation.
    pub key_usage_ok: bool,
    /// The policy OIDs of certificatePolicies (dotted form); empty without the extension.
    pub policies: Vec<String>,
    /// OIDs of critical extensions this verifier does not process (RFC 5280 4.2: must be refused).
    pub unknown_critical: Vec<String>,
    /// The cRLDistributionPoints extension value (DER), for the revocation check.
    pub crl_distribution_points: Option<Vec<u8>>,
    pub(crate) tbs: Vec<u8>,
    pub(crate) signature_algorithm: String,
    pub(crate) signature: Vec<u8>,
}

impl std::fmt::Debug for SigningCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningCertificate")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl SigningCertificate {
    pub fn parse(der: &[u8]) -> Result<Self, InvalidCardData> {
        if der.len() > MAX_CERT_BYTES {
            return Err(InvalidCardData::new(ELEMENT, "larger than 16 KiB"));
        }
        let (rest, cert) = X509Certificate::from_der(der)
            .map_err(|_| InvalidCardData::new(ELEMENT, "not a DER X.509 certificate"))?;
        if !rest.is_empty() {
            return Err(InvalidCardData::new(ELEMENT, "bytes after the certificate"));
        }
        // The algorithm inside the signed part must match the outer one (RFC 5280 4.1.1.2).
        if cert.tbs_certificate.signature != cert.signature_algorithm {
            return Err(InvalidCardData::new(
                ELEMENT,
                "signature algorithm differs inside and outside the signed part",
            ));
        }
        let key = rsa_key(&cert).map_err(|d| {
            InvalidCardData::new("jpki.signing_certificate/subjectPublicKeyInfo", d)
        })?;
        let identity = identity_from_san(&cert)?;
        let ku = cert.key_usage().map_err(|_| {
            InvalidCardData::new("jpki.signing_certificate/keyUsage", "malformed or repeated")
        })?;
        let key_usage_ok = ku.is_some_and(|k| {
            k.critical && k.value.digital_signature() && k.value.non_repudiation()
        });
        // RFC 5280 4.2: at most one instance of each extension.
        cert.extensions_map().map_err(|_| {
            InvalidCardData::new(
                "jpki.signing_certificate/extensions",
                "an extension appears twice",
            )
        })?;
        let mut policies = Vec::new();
        let mut unknown_critical = Vec::new();
        let mut crl_distribution_points = None;
        for ext in cert.extensions() {
            let oid = ext.oid.to_id_string();
            match oid.as_str() {
                OID_CERTIFICATE_POLICIES => {
                    // An unparsable policies extension counts as none: the policy check then fails.
                    if let ParsedExtension::CertificatePolicies(list) = ext.parsed_extension() {
                        policies.extend(list.iter().map(|p| p.policy_id.to_id_string()));
                    }
                }
                OID_CRL_DISTRIBUTION_POINTS => crl_distribution_points = Some(ext.value.to_vec()),
                _ => {}
            }
            if ext.critical && !PROCESSED_EXTENSIONS.contains(&oid.as_str()) {
                unknown_critical.push(oid);
            }
        }
        let time = |t: i64| DateTime::<Utc>::from_timestamp(t, 0);
        let validity = cert.validity();
        let (Some(not_before), Some(not_after)) = (
            time(validity.not_before.timestamp()),
            time(validity.not_after.timestamp()),
        ) else {
            return Err(InvalidCardData::new(
                "jpki.signing_certificate/validity",
                "time out of range",
            ));
        };
        Ok(Self {
            der: der.to_vec(),
            key,
            identity,
            serial: cert.raw_serial().to_vec(),
            issuer_der: cert.issuer().as_raw().to_vec(),
            issuer: cert.issuer().to_string(),
            not_before,
            not_after,
            key_usage_ok,
            policies,
            unknown_critical,
            crl_distribution_points,
            tbs: cert.tbs_certificate.as_ref().to_vec(),
            signature_algorithm: cert.signature_algorithm.algorithm.to_id_string(),
            signature: cert.signature_value.data.to_vec(),
        })
    }

    /// Serial as upper-case hex without a leading sign byte (the form OpenSSL's index.txt uses).
    pub fn serial_hex(&self) -> String {
        let trimmed = match self.serial.as_slice() {
            [0, rest @ ..] if !rest.is_empty() => rest,
            s => s,
        };
        hex::encode_upper(trimmed)
    }

    /// True if `issuer_key` made this certificate's signature.
    pub fn signed_by(&self, issuer_key: &RsaPublicKey) -> bool {
        self.signature_algorithm == SHA256_WITH_RSA
            && rsakey::verify_sha256(issuer_key, &self.tbs, &self.signature)
    }
}

/// The RSA key of a parsed certificate, with the size bounds enforced.
pub(crate) fn rsa_key(cert: &X509Certificate<'_>) -> Result<RsaPublicKey, String> {
    match cert.public_key().parsed() {
        Ok(PublicKey::RSA(k)) => {
            rsakey::from_parts(k.modulus, k.exponent).map_err(|e| e.to_string())
        }
        Ok(_) => Err("not an RSA key".into()),
        Err(_) => Err("malformed key".into()),
    }
}

const OID_NAME: &str = "1.2.392.200149.8.5.5.1";
const OID_NAME_ALT: &str = "1.2.392.200149.8.5.5.2";
const OID_SEX: &str = "1.2.392.200149.8.5.5.3";
const OID_BIRTH: &str = "1.2.392.200149.8.5.5.4";
const OID_ADDRESS: &str = "1.2.392.200149.8.5.5.5";
const OID_ADDRESS_ALT: &str = "1.2.392.200149.8.5.5.6";

fn identity_from_san(cert: &X509Certificate<'_>) -> Result<Identity, InvalidCardData> {
    const SAN: &str = "jpki.signing_certificate/subjectAltName";
    let san = cert
        .subject_alternative_name()
        .map_err(|_| InvalidCardData::new(SAN, "malformed or repeated"))?
        .ok_or_else(|| InvalidCardData::new(SAN, "missing"))?;
    let mut fields: [Option<String>; 6] = Default::default();
    for name in &san.value.general_names {
        let GeneralName::OtherName(oid, value) = name else {
            continue;
        };
        let slot = match oid.to_id_string().as_str() {
            OID_NAME => 0,
            OID_NAME_ALT => 1,
            OID_SEX => 2,
            OID_BIRTH => 3,
            OID_ADDRESS => 4,
            OID_ADDRESS_ALT => 5,
            _ => continue,
        };
        let text = other_name_text(value)
            .ok_or_else(|| InvalidCardData::new(SAN, "otherName value is not a string"))?;
        if fields[slot].replace(text).is_some() {
            return Err(InvalidCardData::new(
                SAN,
                "an identity attribute appears twice",
            ));
        }
    }
    let [name, name_alt, sex, birth, address, address_alt] = fields;
    let missing = |what: &str| InvalidCardData::new(SAN, format!("no {what}"));
    let sex = sex.ok_or_else(|| missing("sex"))?;
    let sex = match sex.as_bytes() {
        [d] => Sex::from_code(*d),
        _ => None,
    }
    .ok_or_else(|| InvalidCardData::new(SAN, "sex is not a JIS X 0303 code"))?;
    let birth = birth.ok_or_else(|| missing("birth date"))?;
    let birth_date = parse_era_date(&birth)
        .ok_or_else(|| InvalidCardData::new(SAN, "birth date is not EYYYYMMDD"))?;
    Ok(Identity {
        name: name.ok_or_else(|| missing("name"))?,
        name_alt: name_alt.unwrap_or_default(),
        birth_date,
        sex,
        address: address.ok_or_else(|| missing("address"))?,
        address_alt: address_alt.unwrap_or_default(),
    })
}

/// The otherName value is `[0] EXPLICIT` around a string (UTF8String in practice; some issuers used OCTET STRING).
fn other_name_text(bytes: &[u8]) -> Option<String> {
    let (outer, rest) = tlv::read(bytes, 0).ok()?;
    if outer.tag != 0xA0 || !rest.is_empty() {
        return None;
    }
    let (inner, rest) = tlv::read(outer.value, 0).ok()?;
    if !rest.is_empty() || !matches!(inner.tag, 0x0C | 0x04 | 0x13 | 0x16) {
        return None;
    }
    String::from_utf8(inner.value.to_vec()).ok()
}

/// `EYYYYMMDD`: an era digit (1 明治 … 5 令和), then the Gregorian date. The era digit is dropped.
pub fn parse_era_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    match b.split_first() {
        Some((era, date)) if (b'1'..=b'5').contains(era) => super::kenmen::parse_yyyymmdd(date),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn era_dates_drop_the_era_digit() {
        assert_eq!(
            parse_era_date("419900102"),
            NaiveDate::from_ymd_opt(1990, 1, 2)
        );
        assert_eq!(
            parse_era_date("320010101"),
            NaiveDate::from_ymd_opt(2001, 1, 1)
        );
        assert_eq!(parse_era_date("19900102"), None);
        assert_eq!(parse_era_date("919900102"), None);
        assert_eq!(parse_era_date(""), None);
    }

    #[test]
    fn other_name_values() {
        let utf8 = [0xA0, 0x05, 0x0C, 0x03, 0xE5, 0xB1, 0xB1];
        assert_eq!(other_name_text(&utf8).as_deref(), Some("山"));
        assert_eq!(
            other_name_text(&[0xA0, 0x02, 0x0C, 0x00]).as_deref(),
            Some("")
        );
        assert_eq!(other_name_text(&[0xA0, 0x03, 0x02, 0x01, 0x05]), None);
        assert_eq!(other_name_text(&[0xA1, 0x02, 0x0C, 0x00]), None);
    }

    #[test]
    fn garbage_is_invalid_card_data() {
        let e = SigningCertificate::parse(&[0x30, 0x03, 0x02, 0x01, 0x01]).unwrap_err();
        assert_eq!(e.element, ELEMENT);
    }
}
