//! The X.509 pieces both checkers need: signatures over the exact signed bytes, CA certificates, times.
//!
//! Signatures are checked over the TBS bytes as received (not re-encoded), so a responder's
//! non-canonical but signed encoding still verifies, and nothing we re-encode can change what was signed.

use super::{Failure, FailureKind};
use chrono::{DateTime, TimeZone, Utc};
use const_oid::db::rfc5912::{
    SHA_256_WITH_RSA_ENCRYPTION, SHA_384_WITH_RSA_ENCRYPTION, SHA_512_WITH_RSA_ENCRYPTION,
};
use der::asn1::{AnyRef, BitStringRef};
use der::{Decode, Encode};
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use sha2::{Digest, Sha256, Sha384, Sha512};
use spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoOwned};
use x509_cert::Certificate;

/// Any `SEQUENCE { tbs, signatureAlgorithm, signature [, [0] extra] }`: certificates, CRLs and
/// BasicOCSPResponse share this shape.
#[derive(der::Sequence)]
pub(crate) struct RawSigned<'a> {
    pub tbs: AnyRef<'a>,
    pub algorithm: AlgorithmIdentifierRef<'a>,
    pub signature: BitStringRef<'a>,
    #[asn1(context_specific = "0", optional = "true", tag_mode = "EXPLICIT")]
    pub extra: Option<AnyRef<'a>>,
}

impl<'a> RawSigned<'a> {
    pub(crate) fn parse(der: &'a [u8]) -> Result<Self, Failure> {
        Self::from_der(der).map_err(|e| Failure::new(FailureKind::Malformed, format!("DER: {e}")))
    }

    /// Verifies this object's signature with `key`.
    pub(crate) fn verify_with(&self, key: &SubjectPublicKeyInfoOwned) -> Result<(), Failure> {
        let tbs = self
            .tbs
            .to_der()
            .map_err(|e| Failure::new(FailureKind::Malformed, format!("TBS: {e}")))?;
        // PKCS#1 v1.5 algorithms take NULL or absent parameters. The field is outside the signed
        // bytes, so anything else is tampering or a broken signer: refuse rather than ignore it.
        if let Some(params) = &self.algorithm.parameters {
            if der::Tagged::tag(params) != der::Tag::Null || !params.value().is_empty() {
                return Err(Failure::new(
                    FailureKind::Malformed,
                    "signature algorithm parameters must be NULL",
                ));
            }
        }
        let sig = self
            .signature
            .as_bytes()
            .ok_or_else(|| Failure::new(FailureKind::Malformed, "signature has unused bits"))?;
        verify_signature(key, self.algorithm.oid, &tbs, sig)
    }
}

/// RSASSA-PKCS1-v1_5 with SHA-256/384/512 (what J-LIS and `openssl ocsp` use). SHA-1 is refused.
pub(crate) fn verify_signature(
    key: &SubjectPublicKeyInfoOwned,
    algorithm: der::asn1::ObjectIdentifier,
    message: &[u8],
    signature: &[u8],
) -> Result<(), Failure> {
    let key_der = key
        .to_der()
        .map_err(|e| Failure::new(FailureKind::Malformed, format!("public key: {e}")))?;
    let rsa = RsaPublicKey::from_public_key_der(&key_der).map_err(|e| {
        Failure::new(
            FailureKind::UnsupportedAlgorithm,
            format!("signer key is not a usable RSA key: {e}"),
        )
    })?;
    let result = if algorithm == SHA_256_WITH_RSA_ENCRYPTION {
        rsa.verify(
            Pkcs1v15Sign::new::<Sha256>(),
            &Sha256::digest(message),
            signature,
        )
    } else if algorithm == SHA_384_WITH_RSA_ENCRYPTION {
        rsa.verify(
            Pkcs1v15Sign::new::<Sha384>(),
            &Sha384::digest(message),
            signature,
        )
    } else if algorithm == SHA_512_WITH_RSA_ENCRYPTION {
        rsa.verify(
            Pkcs1v15Sign::new::<Sha512>(),
            &Sha512::digest(message),
            signature,
        )
    } else {
        return Err(Failure::new(
            FailureKind::UnsupportedAlgorithm,
            format!("signature algorithm {algorithm}"),
        ));
    };
    result.map_err(|_| Failure::new(FailureKind::BadSignature, "signature does not verify"))
}

/// A certificate with its DER kept, for verifying its own signature.
#[derive(Clone)]
pub(crate) struct ParsedCert {
    pub der: Vec<u8>,
    pub cert: Certificate,
}

impl ParsedCert {
    pub(crate) fn parse(der: &[u8], what: FailureKind) -> Result<Self, Failure> {
        let cert = Certificate::from_der(der)
            .map_err(|e| Failure::new(what, format!("certificate: {e}")))?;
        Ok(Self {
            der: der.to_vec(),
            cert,
        })
    }

    pub(crate) fn spki(&self) -> &SubjectPublicKeyInfoOwned {
        &self.cert.tbs_certificate.subject_public_key_info
    }

    pub(crate) fn subject_der(&self) -> Result<Vec<u8>, Failure> {
        self.cert
            .tbs_certificate
            .subject
            .to_der()
            .map_err(|e| Failure::new(FailureKind::InvalidTarget, format!("subject: {e}")))
    }

    pub(crate) fn subject_string(&self) -> String {
        self.cert.tbs_certificate.subject.to_string()
    }

    /// The raw subjectPublicKey bits (what OCSP key hashes are computed over).
    pub(crate) fn key_bits(&self) -> &[u8] {
        self.spki().subject_public_key.raw_bytes()
    }

    /// Whether `issuer` signed this certificate (names chain and the signature verifies).
    pub(crate) fn is_issued_by(&self, issuer: &ParsedCert) -> Result<(), Failure> {
        if self.cert.tbs_certificate.issuer != issuer.cert.tbs_certificate.subject {
            return Err(Failure::new(
                FailureKind::UntrustedResponder,
                "responder certificate is not issued by the CA",
            ));
        }
        let raw = RawSigned::parse(&self.der)?;
        raw.verify_with(issuer.spki()).map_err(|f| {
            Failure::new(
                FailureKind::UntrustedResponder,
                format!("responder certificate signature: {}", f.detail),
            )
        })
    }

    /// Whether `now` lies in the certificate's validity period (with `skew` seconds of slack).
    pub(crate) fn valid_at(&self, now: DateTime<Utc>, skew: i64) -> bool {
        let v = &self.cert.tbs_certificate.validity;
        let nb = unix_to_chrono(v.not_before.to_unix_duration().as_secs());
        let na = unix_to_chrono(v.not_after.to_unix_duration().as_secs());
        match (nb, na) {
            (Some(nb), Some(na)) => {
                now + chrono::Duration::seconds(skew) >= nb
                    && now - chrono::Duration::seconds(skew) <= na
            }
            _ => false,
        }
    }

    /// Whether the certificate's extendedKeyUsage lists `oid`.
    pub(crate) fn has_eku(&self, oid: der::asn1::ObjectIdentifier) -> bool {
        use x509_cert::ext::pkix::ExtendedKeyUsage;
        let Some(exts) = &self.cert.tbs_certificate.extensions else {
            return false;
        };
        exts.iter()
            .filter(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_EXT_KEY_USAGE)
            .filter_map(|e| ExtendedKeyUsage::from_der(e.extn_value.as_bytes()).ok())
            .any(|eku| eku.0.contains(&oid))
    }
}

pub(crate) fn unix_to_chrono(secs: u64) -> Option<DateTime<Utc>> {
    let secs = i64::try_from(secs).ok()?;
    Utc.timestamp_opt(secs, 0).single()
}

pub(crate) fn time_to_chrono(d: std::time::Duration) -> Result<DateTime<Utc>, Failure> {
    unix_to_chrono(d.as_secs())
        .ok_or_else(|| Failure::new(FailureKind::Malformed, "time out of range"))
}

/// Reads a certificate file, PEM or DER.
pub(crate) fn load_cert_file(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.starts_with(b"-----BEGIN") {
        let text = std::str::from_utf8(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        let (label, der) = der::pem::decode_vec(text.as_bytes())
            .map_err(|e| format!("{}: PEM: {e}", path.display()))?;
        if label != "CERTIFICATE" {
            return Err(format!(
                "{}: PEM label {label}, want CERTIFICATE",
                path.display()
            ));
        }
        Ok(der)
    } else {
        Ok(bytes)
    }
}

/// Big-endian serial bytes without leading zeros (empty for zero), for comparisons.
pub(crate) fn normalise_serial(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.get(start..).unwrap_or_default()
}
