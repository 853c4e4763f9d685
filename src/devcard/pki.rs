//! Certificates, CRLs and the OpenSSL `index.txt` for the test hierarchy, built with the `x509-cert` types and
//! signed with `rsa` (sha256WithRSAEncryption, like J-LIS).

use anyhow::{Context, Result};
use const_oid::ObjectIdentifier;
use der::asn1::{BitString, GeneralizedTime, Ia5String, Null, OctetString, UtcTime, Utf8StringRef};
use der::{Any, Encode};
use rsa::pkcs8::EncodePublicKey;
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use std::str::FromStr;
use std::time::Duration;
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName, OtherName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints,
    CertificatePolicies, CrlDistributionPoints, CrlNumber, CrlReason, ExtendedKeyUsage, KeyUsage,
    KeyUsages, SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};
use x509_cert::{Certificate, TbsCertificate, Version};

/// The test CA's DN: the real J-LIS shape with `O=JPKI-TEST`, so it can never chain to a production root.
pub const CA_DN: &str =
    "OU=Japan Agency for Local Authority Information Systems,OU=JPKI for digital signature,O=JPKI-TEST,C=JP";
pub const OCSP_DN: &str = "CN=Test OCSP,O=JPKI-TEST,C=JP";

const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const OCSP_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");
const AD_OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");
const JPKI_SIGN_POLICY: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.392.200149.8.5.1.1.20");

pub fn name(dn: &str) -> Result<Name> {
    Name::from_str(dn).with_context(|| format!("bad DN {dn}"))
}

pub fn time(unix: i64) -> Result<Time> {
    let dt = der::DateTime::from_unix_duration(Duration::from_secs(u64::try_from(unix)?))?;
    Ok(if dt.year() < 2050 {
        Time::UtcTime(UtcTime::from_date_time(dt)?)
    } else {
        Time::GeneralTime(GeneralizedTime::from_date_time(dt))
    })
}

fn alg() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: SHA256_WITH_RSA,
        parameters: Some(Any::from(Null)),
    }
}

pub fn sign_sha256(key: &RsaPrivateKey, msg: &[u8]) -> Result<Vec<u8>> {
    Ok(key.sign(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(msg))?)
}

pub fn spki(key: &RsaPublicKey) -> Result<SubjectPublicKeyInfoOwned> {
    let der = key.to_public_key_der()?;
    Ok(SubjectPublicKeyInfoOwned::try_from(der.as_bytes())?)
}

/// Key identifier: the first 20 bytes of SHA-256 over the public key bits.
fn key_id(key: &RsaPublicKey) -> Result<OctetString> {
    let spki = spki(key)?;
    Ok(OctetString::new(
        &Sha256::digest(spki.subject_public_key.raw_bytes())[..20],
    )?)
}

fn ext<T: Encode>(oid: ObjectIdentifier, critical: bool, value: &T) -> Result<Extension> {
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

pub struct CertParams<'a> {
    pub serial: &'a [u8],
    pub subject: Name,
    pub issuer: Name,
    pub not_before: i64,
    pub not_after: i64,
    pub subject_key: &'a RsaPublicKey,
    pub issuer_key: &'a RsaPrivateKey,
}

fn sign_cert(p: CertParams<'_>, extensions: Vec<Extension>) -> Result<Certificate> {
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(p.serial)?,
        signature: alg(),
        issuer: p.issuer,
        validity: Validity {
            not_before: time(p.not_before)?,
            not_after: time(p.not_after)?,
        },
        subject: p.subject,
        subject_public_key_info: spki(p.subject_key)?,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(extensions),
    };
    let sig = sign_sha256(p.issuer_key, &tbs.to_der()?)?;
    Ok(Certificate {
        tbs_certificate: tbs,
        signature_algorithm: alg(),
        signature: BitString::from_bytes(&sig)?,
    })
}

fn aki(issuer_key: &RsaPrivateKey) -> Result<Extension> {
    let aki = AuthorityKeyIdentifier {
        key_identifier: Some(key_id(&issuer_key.to_public_key())?),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    };
    ext(
        const_oid::db::rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER,
        false,
        &aki,
    )
}

/// A self-signed signing CA root (KU keyCertSign+cRLSign, BC CA:TRUE, both critical).
pub fn ca_cert(p: CertParams<'_>) -> Result<Certificate> {
    let exts = vec![
        ext(
            const_oid::db::rfc5280::ID_CE_BASIC_CONSTRAINTS,
            true,
            &BasicConstraints {
                ca: true,
                path_len_constraint: None,
            },
        )?,
        ext(
            const_oid::db::rfc5280::ID_CE_KEY_USAGE,
            true,
            &KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign),
        )?,
        ext(
            const_oid::db::rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER,
            false,
            &SubjectKeyIdentifier(key_id(p.subject_key)?),
        )?,
    ];
    sign_cert(p, exts)
}

/// The OCSP responder's certificate: digitalSignature, id-kp-OCSPSigning.
pub fn ocsp_cert(p: CertParams<'_>) -> Result<Certificate> {
    let exts = vec![
        ext(
            const_oid::db::rfc5280::ID_CE_BASIC_CONSTRAINTS,
            false,
            &BasicConstraints {
                ca: false,
                path_len_constraint: None,
            },
        )?,
        ext(
            const_oid::db::rfc5280::ID_CE_KEY_USAGE,
            true,
            &KeyUsage(KeyUsages::DigitalSignature.into()),
        )?,
        ext(
            const_oid::db::rfc5280::ID_CE_EXT_KEY_USAGE,
            false,
            &ExtendedKeyUsage(vec![OCSP_SIGNING]),
        )?,
        aki(p.issuer_key)?,
        ext(
            const_oid::db::rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER,
            false,
            &SubjectKeyIdentifier(key_id(p.subject_key)?),
        )?,
    ];
    sign_cert(p, exts)
}

/// The SAN attributes in JPKI order (OIDs 1.2.392.200149.8.5.5.1–.6).
pub struct SanIdentity<'a> {
    pub name: &'a str,
    pub name_alt: &'a str,
    pub sex: &'a str,
    /// `EYYYYMMDD`
    pub birth: &'a str,
    pub address: &'a str,
    pub address_alt: &'a str,
}

/// keyUsage of a real JPKI signing certificate (critical).
pub fn signing_key_usage() -> KeyUsage {
    KeyUsage(KeyUsages::DigitalSignature | KeyUsages::NonRepudiation)
}

/// keyUsage without nonRepudiation: what an authentication certificate would carry.
pub fn auth_key_usage() -> KeyUsage {
    KeyUsage(KeyUsages::DigitalSignature.into())
}

/// A JPKI-shaped signing certificate (card-data.md B.1, D.1).
pub fn signing_cert(
    p: CertParams<'_>,
    san: &SanIdentity<'_>,
    key_usage: KeyUsage,
    ocsp_url: &str,
    crl_url: &str,
) -> Result<Certificate> {
    let mut names = Vec::new();
    for (i, value) in [
        san.name,
        san.name_alt,
        san.sex,
        san.birth,
        san.address,
        san.address_alt,
    ]
    .iter()
    .enumerate()
    {
        let oid = ObjectIdentifier::from_str(&format!("1.2.392.200149.8.5.5.{}", i + 1))?;
        let value = Any::encode_from(&Utf8StringRef::new(value)?)?;
        names.push(GeneralName::OtherName(OtherName {
            type_id: oid,
            value,
        }));
    }
    let uri = |s: &str| -> Result<GeneralName> {
        Ok(GeneralName::UniformResourceIdentifier(Ia5String::new(s)?))
    };
    let policies = CertificatePolicies(vec![x509_cert::ext::pkix::certpolicy::PolicyInformation {
        policy_identifier: JPKI_SIGN_POLICY,
        policy_qualifiers: None,
    }]);
    let aia = AuthorityInfoAccessSyntax(vec![AccessDescription {
        access_method: AD_OCSP,
        access_location: uri(ocsp_url)?,
    }]);
    let crldp = CrlDistributionPoints(vec![DistributionPoint {
        distribution_point: Some(DistributionPointName::FullName(vec![uri(crl_url)?])),
        reasons: None,
        crl_issuer: None,
    }]);
    let exts = vec![
        ext(const_oid::db::rfc5280::ID_CE_KEY_USAGE, true, &key_usage)?,
        ext(
            const_oid::db::rfc5280::ID_CE_CERTIFICATE_POLICIES,
            false,
            &policies,
        )?,
        ext(
            const_oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME,
            false,
            &SubjectAltName(names),
        )?,
        aki(p.issuer_key)?,
        ext(
            const_oid::db::rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER,
            false,
            &SubjectKeyIdentifier(key_id(p.subject_key)?),
        )?,
        ext(
            const_oid::db::rfc5280::ID_PE_AUTHORITY_INFO_ACCESS,
            false,
            &aia,
        )?,
        ext(
            const_oid::db::rfc5280::ID_CE_CRL_DISTRIBUTION_POINTS,
            false,
            &crldp,
        )?,
    ];
    sign_cert(p, exts)
}

/// One revoked certificate for the CRL.
pub struct Revoked {
    pub serial: Vec<u8>,
    pub at: i64,
    pub reason: CrlReason,
}

/// A v2 CRL over `revoked`, valid for one day.
pub fn crl(
    issuer: Name,
    issuer_key: &RsaPrivateKey,
    revoked: &[Revoked],
    this_update: i64,
    number: u32,
) -> Result<CertificateList> {
    let mut entries = Vec::new();
    for r in revoked {
        entries.push(RevokedCert {
            serial_number: SerialNumber::new(&r.serial)?,
            revocation_date: time(r.at)?,
            crl_entry_extensions: Some(vec![ext(
                const_oid::db::rfc5280::ID_CE_CRL_REASONS,
                false,
                &r.reason,
            )?]),
        });
    }
    let tbs = TbsCertList {
        version: Version::V2,
        signature: alg(),
        issuer,
        this_update: time(this_update)?,
        next_update: Some(time(this_update + 86_400)?),
        revoked_certificates: if entries.is_empty() {
            None
        } else {
            Some(entries)
        },
        crl_extensions: Some(vec![
            aki(issuer_key)?,
            ext(
                const_oid::db::rfc5280::ID_CE_CRL_NUMBER,
                false,
                &CrlNumber(der::asn1::Uint::new(&number.to_be_bytes())?),
            )?,
        ]),
    };
    let sig = sign_sha256(issuer_key, &tbs.to_der()?)?;
    Ok(CertificateList {
        tbs_cert_list: tbs,
        signature_algorithm: alg(),
        signature: BitString::from_bytes(&sig)?,
    })
}

/// `YYMMDDHHMMSSZ`, the time form of OpenSSL's index.txt.
pub fn index_time(unix: i64) -> Result<String> {
    let dt =
        chrono::DateTime::<chrono::Utc>::from_timestamp(unix, 0).context("time out of range")?;
    Ok(dt.format("%y%m%d%H%M%SZ").to_string())
}

pub fn parse_index_time(s: &str) -> Option<i64> {
    let dt = chrono::NaiveDateTime::parse_from_str(s.strip_suffix('Z')?, "%y%m%d%H%M%S").ok()?;
    Some(dt.and_utc().timestamp())
}

/// `/C=JP/L=…/CN=…` (OpenSSL's one-line DN form, used only for display in index.txt).
pub fn oneline_dn(parts: &[(&str, &str)]) -> String {
    parts.iter().map(|(k, v)| format!("/{k}={v}")).collect()
}

/// The OpenSSL revocation-reason names, as `openssl ca -crl_reason` writes them into index.txt.
pub fn reason_name(r: CrlReason) -> &'static str {
    match r {
        CrlReason::Unspecified => "unspecified",
        CrlReason::KeyCompromise => "keyCompromise",
        CrlReason::CaCompromise => "CACompromise",
        CrlReason::AffiliationChanged => "affiliationChanged",
        CrlReason::Superseded => "superseded",
        CrlReason::CessationOfOperation => "cessationOfOperation",
        CrlReason::CertificateHold => "certificateHold",
        CrlReason::RemoveFromCRL => "removeFromCRL",
        CrlReason::PrivilegeWithdrawn => "privilegeWithdrawn",
        CrlReason::AaCompromise => "AACompromise",
    }
}

pub fn reason_from_name(s: &str) -> Option<CrlReason> {
    [
        CrlReason::Unspecified,
        CrlReason::KeyCompromise,
        CrlReason::CaCompromise,
        CrlReason::AffiliationChanged,
        CrlReason::Superseded,
        CrlReason::CessationOfOperation,
        CrlReason::CertificateHold,
        CrlReason::RemoveFromCRL,
        CrlReason::PrivilegeWithdrawn,
        CrlReason::AaCompromise,
    ]
    .into_iter()
    .find(|r| reason_name(*r) == s)
}
