//! The OCSP request: the CertID of the certificate asked about and the request's DER with its nonce.

use crate::jlis::x509::ParsedCert;
use crate::jlis::{Failure, FailureKind};
use const_oid::db::rfc5912::{ID_SHA_1, ID_SHA_256};
use const_oid::db::rfc6960::ID_PKIX_OCSP_NONCE;
use der::asn1::{Null, OctetString};
use der::Encode;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::Extension;
use x509_cert::serial_number::SerialNumber;
use x509_ocsp::{CertId, OcspRequest, Request, TbsRequest, Version};

/// Bytes of randomness in each nonce (RFC 8954 recommends 32 at most; openssl sends 16).
const NONCE_LEN: usize = 16;

fn serial_number(serial: &[u8]) -> Result<SerialNumber, Failure> {
    if serial.is_empty() {
        return Err(Failure::new(
            FailureKind::InvalidTarget,
            "serial is zero or empty",
        ));
    }
    SerialNumber::new(serial)
        .map_err(|e| Failure::new(FailureKind::InvalidTarget, format!("serial: {e}")))
}

/// The SHA-1 CertID for `serial` under `issuer` (RFC 6960 §4.1.1).
pub(super) fn cert_id(issuer: &ParsedCert, serial: &[u8]) -> Result<CertId, Failure> {
    cert_id_with(issuer, serial, ID_SHA_1)
}

pub(super) fn cert_id_with(
    issuer: &ParsedCert,
    serial: &[u8],
    alg: der::asn1::ObjectIdentifier,
) -> Result<CertId, Failure> {
    let name = issuer.subject_der()?;
    let (name_hash, key_hash) = if alg == ID_SHA_1 {
        (
            Sha1::digest(&name).to_vec(),
            Sha1::digest(issuer.key_bits()).to_vec(),
        )
    } else if alg == ID_SHA_256 {
        (
            Sha256::digest(&name).to_vec(),
            Sha256::digest(issuer.key_bits()).to_vec(),
        )
    } else {
        return Err(Failure::new(
            FailureKind::UnsupportedAlgorithm,
            format!("CertID hash {alg}"),
        ));
    };
    let octets = |v: Vec<u8>| {
        OctetString::new(v).map_err(|e| Failure::new(FailureKind::InvalidTarget, e.to_string()))
    };
    Ok(CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: alg,
            parameters: Some(Null.into()),
        },
        issuer_name_hash: octets(name_hash)?,
        issuer_key_hash: octets(key_hash)?,
        serial_number: serial_number(serial)?,
    })
}

/// DER of the request, and the nonce extension's extnValue if one was added.
pub(super) fn build_request(
    cert_id: &CertId,
    with_nonce: bool,
) -> Result<(Vec<u8>, Option<Vec<u8>>), Failure> {
    let enc = |e: der::Error| Failure::new(FailureKind::InvalidTarget, format!("request: {e}"));
    let nonce_value = if with_nonce {
        let random: [u8; NONCE_LEN] = rand::random();
        // RFC 8954: the extnValue holds an OCTET STRING of the nonce bytes.
        Some(
            OctetString::new(random.to_vec())
                .map_err(enc)?
                .to_der()
                .map_err(enc)?,
        )
    } else {
        None
    };
    let request_extensions = match &nonce_value {
        Some(v) => Some(vec![Extension {
            extn_id: ID_PKIX_OCSP_NONCE,
            critical: false,
            extn_value: OctetString::new(v.clone()).map_err(enc)?,
        }]),
        None => None,
    };
    let req = OcspRequest {
        tbs_request: TbsRequest {
            version: Version::V1,
            requestor_name: None,
            request_list: vec![Request {
                req_cert: cert_id.clone(),
                single_request_extensions: None,
            }],
            request_extensions,
        },
        optional_signature: None,
    };
    Ok((req.to_der().map_err(enc)?, nonce_value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jlis::x509::normalise_serial;
    use der::Decode;
    use x509_ocsp::{BasicOcspResponse, OcspResponse};

    const CA: &[u8] = include_bytes!("../testdata/ca.der");
    const GOOD: &[u8] = include_bytes!("../testdata/good-no-nonce.ocsp.der");
    const SERIAL: &[u8] = &[0x10, 0x00];

    #[test]
    fn the_request_is_what_openssl_expects() {
        let issuer = ParsedCert::parse(CA, FailureKind::InvalidTarget).unwrap();
        let id = cert_id(&issuer, SERIAL).unwrap();
        let (der, nonce) = build_request(&id, true).unwrap();
        let req = OcspRequest::from_der(&der).unwrap();
        assert_eq!(req.tbs_request.request_list.len(), 1);
        assert_eq!(req.tbs_request.request_list[0].req_cert, id);
        assert_eq!(id.hash_algorithm.oid, ID_SHA_1);
        assert_eq!(id.issuer_name_hash.as_bytes().len(), 20);
        let ext = &req.tbs_request.request_extensions.as_ref().unwrap()[0];
        assert_eq!(ext.extn_id, ID_PKIX_OCSP_NONCE);
        assert_eq!(Some(ext.extn_value.as_bytes()), nonce.as_deref());
        // The CertID the responder answered with is the one we compute.
        let basic = OcspResponse::from_der(GOOD)
            .unwrap()
            .response_bytes
            .unwrap();
        let basic = BasicOcspResponse::from_der(basic.response.as_bytes()).unwrap();
        assert_eq!(basic.tbs_response_data.responses[0].cert_id, id);
        // Two requests never share a nonce.
        let (_, other) = build_request(&id, true).unwrap();
        assert_ne!(nonce, other);
        assert_eq!(build_request(&id, false).unwrap().1, None);
    }

    #[test]
    fn zero_and_empty_serials_are_invalid_targets() {
        let issuer = ParsedCert::parse(CA, FailureKind::InvalidTarget).unwrap();
        assert_eq!(
            cert_id(&issuer, &[]).unwrap_err().kind,
            FailureKind::InvalidTarget
        );
        assert_eq!(
            cert_id(&issuer, normalise_serial(&[0, 0]))
                .unwrap_err()
                .kind,
            FailureKind::InvalidTarget
        );
        assert_eq!(
            cert_id(&issuer, &[0xFF; 30]).unwrap_err().kind,
            FailureKind::InvalidTarget
        );
    }
}
