//! CRLs with the extensions `openssl ca -gencrl` cannot write (issuingDistributionPoint, deltaCRLIndicator,
//! unknown critical CRL and entry extensions, chosen CRL numbers and times), signed with a test CA's key,
//! and the cRLDistributionPoints value a revocation target carries.
#![allow(dead_code)] // each test binary uses a different subset

use der::asn1::{BitString, Ia5String, OctetString, Uint};
use der::{Decode, Encode};
use rsa::pkcs8::DecodePrivateKey;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;
use std::time::Duration;
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::crl::{BaseCrlNumber, CrlDistributionPoints, IssuingDistributionPoint};
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{CrlNumber, CrlReason};
use x509_cert::ext::Extension;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Time;
use x509_cert::Certificate;

/// What to put in a CRL. `Default`: an empty complete CRL numbered 1, valid from an hour ago for a day.
pub struct CrlSpec {
    pub number: Option<u64>,
    pub this_update: i64,
    pub next_update: Option<i64>,
    /// (serial, reason) of each revoked certificate.
    pub revoked: Vec<(Vec<u8>, CrlReason)>,
    pub idp: Option<IssuingDistributionPoint>,
    /// BaseCRLNumber: makes it a delta CRL.
    pub delta_base: Option<u64>,
    /// More CRL extensions (e.g. an unknown critical one).
    pub extra: Vec<Extension>,
    /// More extensions on every entry.
    pub entry_extra: Vec<Extension>,
}

impl Default for CrlSpec {
    fn default() -> Self {
        let now = chrono::Utc::now().timestamp();
        Self {
            number: Some(1),
            this_update: now - 3_600,
            next_update: Some(now + 86_400),
            revoked: Vec::new(),
            idp: None,
            delta_base: None,
            extra: Vec::new(),
            entry_extra: Vec::new(),
        }
    }
}

/// The PKCS#8 PEM key `openssl req -nodes` wrote.
pub fn load_key(path: &std::path::Path) -> RsaPrivateKey {
    let pem = std::fs::read_to_string(path).expect("key file");
    RsaPrivateKey::from_pkcs8_pem(&pem).expect("PKCS#8 key")
}

fn time(unix: i64) -> Time {
    Time::UtcTime(
        der::asn1::UtcTime::from_unix_duration(Duration::from_secs(
            u64::try_from(unix).expect("after 1970"),
        ))
        .expect("UTCTime range"),
    )
}

fn ext<T: Encode>(oid: const_oid::ObjectIdentifier, critical: bool, value: &T) -> Extension {
    Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value.to_der().expect("encode")).expect("octets"),
    }
}

/// An extension with an arbitrary OID and a NULL value.
pub fn null_extension(oid: &str, critical: bool) -> Extension {
    Extension {
        extn_id: oid.parse().expect("OID"),
        critical,
        extn_value: OctetString::new(vec![0x05, 0x00]).expect("octets"),
    }
}

fn number(n: u64) -> Uint {
    Uint::new(&n.to_be_bytes()).expect("uint")
}

/// A v2 CRL issued (name and key) by `issuer_cert_der` / `key`.
pub fn build_crl(issuer_cert_der: &[u8], key: &RsaPrivateKey, spec: &CrlSpec) -> Vec<u8> {
    use const_oid::db::rfc5280 as o;
    let issuer = Certificate::from_der(issuer_cert_der)
        .expect("issuer certificate")
        .tbs_certificate
        .subject;
    let alg = AlgorithmIdentifierOwned {
        oid: const_oid::db::rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
        parameters: Some(der::asn1::Null.into()),
    };
    let entries: Vec<RevokedCert> = spec
        .revoked
        .iter()
        .map(|(serial, reason)| {
            let mut exts = vec![ext(o::ID_CE_CRL_REASONS, false, reason)];
            exts.extend(spec.entry_extra.iter().cloned());
            RevokedCert {
                serial_number: SerialNumber::new(serial).expect("serial"),
                revocation_date: time(spec.this_update - 60),
                crl_entry_extensions: Some(exts),
            }
        })
        .collect();
    let mut exts = Vec::new();
    if let Some(n) = spec.number {
        exts.push(ext(o::ID_CE_CRL_NUMBER, false, &CrlNumber(number(n))));
    }
    if let Some(b) = spec.delta_base {
        exts.push(ext(
            o::ID_CE_DELTA_CRL_INDICATOR,
            true,
            &BaseCrlNumber(number(b)),
        ));
    }
    if let Some(idp) = &spec.idp {
        exts.push(ext(o::ID_CE_ISSUING_DISTRIBUTION_POINT, true, idp));
    }
    exts.extend(spec.extra.iter().cloned());
    let tbs = TbsCertList {
        version: x509_cert::Version::V2,
        signature: alg.clone(),
        issuer,
        this_update: time(spec.this_update),
        next_update: spec.next_update.map(time),
        revoked_certificates: (!entries.is_empty()).then_some(entries),
        crl_extensions: (!exts.is_empty()).then_some(exts),
    };
    let tbs_der = tbs.to_der().expect("TBS");
    let sig = key
        .sign(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(&tbs_der))
        .expect("sign");
    CertificateList {
        tbs_cert_list: tbs,
        signature_algorithm: alg,
        signature: BitString::from_bytes(&sig).expect("bits"),
    }
    .to_der()
    .expect("CRL")
}

fn uri(s: &str) -> GeneralName {
    GeneralName::UniformResourceIdentifier(Ia5String::new(s).expect("IA5"))
}

/// An issuingDistributionPoint naming one URI (a partition of the issuer's CRL).
pub fn idp_uri(u: &str) -> IssuingDistributionPoint {
    IssuingDistributionPoint {
        distribution_point: Some(DistributionPointName::FullName(vec![uri(u)])),
        only_contains_user_certs: false,
        only_contains_ca_certs: false,
        only_some_reasons: None,
        indirect_crl: false,
        only_contains_attribute_certs: false,
    }
}

/// The cRLDistributionPoints extension value of a certificate naming one URI.
pub fn dp_uri(u: &str) -> Vec<u8> {
    CrlDistributionPoints(vec![DistributionPoint {
        distribution_point: Some(DistributionPointName::FullName(vec![uri(u)])),
        reasons: None,
        crl_issuer: None,
    }])
    .to_der()
    .expect("cRLDistributionPoints")
}

/// The cRLDistributionPoints value naming a directory name (the JPKI form), given in RFC 4514.
pub fn dp_dirname(dn: &str) -> Vec<u8> {
    use std::str::FromStr;
    let name = x509_cert::name::Name::from_str(dn).expect("RFC 4514 name");
    CrlDistributionPoints(vec![DistributionPoint {
        distribution_point: Some(DistributionPointName::FullName(vec![
            GeneralName::DirectoryName(name),
        ])),
        reasons: None,
        crl_issuer: None,
    }])
    .to_der()
    .expect("cRLDistributionPoints")
}

/// An issuingDistributionPoint naming a directory name.
pub fn idp_dirname(dn: &str) -> IssuingDistributionPoint {
    use std::str::FromStr;
    let name = x509_cert::name::Name::from_str(dn).expect("RFC 4514 name");
    IssuingDistributionPoint {
        distribution_point: Some(DistributionPointName::FullName(vec![
            GeneralName::DirectoryName(name),
        ])),
        ..idp_uri("http://unused/")
    }
}
