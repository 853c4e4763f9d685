//! Verifying an OCSP response against what was asked: the signer (the CA, a delegate it issued with
//! id-kp-OCSPSigning, or the configured responder), the CertID, the nonce and the freshness. Pure: no
//! I/O, the clock passed in.

use super::request::cert_id_with;
use crate::jlis::x509::{normalise_serial, time_to_chrono, ParsedCert, RawSigned};
use crate::jlis::{
    Failure, FailureKind, Method, OcspConfig, RevocationReason, Status, ValidityReport,
};
use chrono::{DateTime, Duration, Utc};
use const_oid::db::rfc5280::ID_KP_OCSP_SIGNING;
use const_oid::db::rfc6960::{ID_PKIX_OCSP_BASIC, ID_PKIX_OCSP_NONCE};
use der::{Decode, Encode};
use sha1::Sha1;
use sha2::Digest;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspResponse, OcspResponseStatus, ResponderId,
};

/// What a response must match: built together with the request.
pub(super) struct Expect<'a> {
    pub(super) issuer: &'a ParsedCert,
    pub(super) serial: &'a [u8],
    pub(super) cert_id: &'a CertId,
    /// The nonce extension's extnValue we sent, if any.
    pub(super) nonce_value: Option<&'a [u8]>,
}

fn responder_matches(id: &ResponderId, cert: &ParsedCert) -> bool {
    match id {
        ResponderId::ByName(name) => *name == cert.cert.tbs_certificate.subject,
        ResponderId::ByKey(hash) => hash.as_bytes() == Sha1::digest(cert.key_bits()).as_slice(),
    }
}

/// Finds who signed the response and checks they may speak for this CA.
fn find_signer<'a>(
    basic: &'a BasicOcspResponse,
    delegates: &'a [ParsedCert],
    issuer: &'a ParsedCert,
    pinned: Option<&'a ParsedCert>,
    now: DateTime<Utc>,
    skew: i64,
) -> Result<(&'a ParsedCert, &'static str), Failure> {
    let id = &basic.tbs_response_data.responder_id;
    if responder_matches(id, issuer) {
        return Ok((issuer, "ca"));
    }
    if let Some(p) = pinned.filter(|p| responder_matches(id, p)) {
        return Ok((p, "configured"));
    }
    let mut why =
        "the responder is neither the CA, a delegate it issued, nor the configured responder"
            .to_string();
    for cand in delegates.iter().filter(|c| responder_matches(id, c)) {
        if let Err(f) = cand.is_issued_by(issuer) {
            why = f.detail;
            continue;
        }
        if !cand.has_eku(ID_KP_OCSP_SIGNING) {
            why = "delegated responder certificate lacks id-kp-OCSPSigning".into();
            continue;
        }
        if !cand.valid_at(now, skew) {
            why = "delegated responder certificate is outside its validity period".into();
            continue;
        }
        return Ok((cand, "delegated"));
    }
    Err(Failure::new(FailureKind::UntrustedResponder, why))
}

fn cert_id_matches(got: &CertId, expect: &Expect<'_>) -> bool {
    if normalise_serial(got.serial_number.as_bytes()) != expect.serial {
        return false;
    }
    if got.hash_algorithm.oid == expect.cert_id.hash_algorithm.oid {
        return got.issuer_name_hash == expect.cert_id.issuer_name_hash
            && got.issuer_key_hash == expect.cert_id.issuer_key_hash;
    }
    // A responder may answer with another hash than we asked with (RFC 6960 allows SHA-256).
    match cert_id_with(expect.issuer, expect.serial, got.hash_algorithm.oid) {
        Ok(alt) => {
            got.issuer_name_hash == alt.issuer_name_hash
                && got.issuer_key_hash == alt.issuer_key_hash
        }
        Err(_) => false,
    }
}

/// Verifies one OCSP response body against what we asked. Pure: no I/O, clock passed in.
pub(super) fn verify_response(
    body: &[u8],
    expect: &Expect<'_>,
    pinned: Option<&ParsedCert>,
    cfg: &OcspConfig,
    now: DateTime<Utc>,
) -> Result<Verified, Failure> {
    let malformed =
        |what: &str, e: der::Error| Failure::new(FailureKind::Malformed, format!("{what}: {e}"));
    let outer = OcspResponse::from_der(body).map_err(|e| malformed("OCSPResponse", e))?;
    if outer.response_status != OcspResponseStatus::Successful {
        return Err(Failure::new(
            FailureKind::ResponderError,
            format!("responseStatus {:?}", outer.response_status),
        ));
    }
    let bytes = outer
        .response_bytes
        .ok_or_else(|| Failure::new(FailureKind::Malformed, "successful response without body"))?;
    if bytes.response_type != ID_PKIX_OCSP_BASIC {
        return Err(Failure::new(
            FailureKind::Malformed,
            format!("response type {}", bytes.response_type),
        ));
    }
    let basic_der = bytes.response.as_bytes();
    let raw = RawSigned::parse(basic_der)?;
    let basic =
        BasicOcspResponse::from_der(basic_der).map_err(|e| malformed("BasicOCSPResponse", e))?;

    // The delegates' DER as sent, for verifying their signatures over the exact bytes.
    let mut delegates = Vec::new();
    if let Some(extra) = &raw.extra {
        let seq: Vec<der::asn1::AnyRef<'_>> =
            extra.decode_as().map_err(|e| malformed("certs", e))?;
        for any in seq {
            let der = any.to_der().map_err(|e| malformed("certs", e))?;
            delegates.push(ParsedCert::parse(&der, FailureKind::Malformed)?);
        }
    }
    let skew = i64::try_from(cfg.max_skew_secs).unwrap_or(i64::MAX / 4);
    let (signer, signer_kind) = find_signer(&basic, &delegates, expect.issuer, pinned, now, skew)?;
    raw.verify_with(signer.spki())?;

    let data = &basic.tbs_response_data;
    let single = data
        .responses
        .iter()
        .find(|r| cert_id_matches(&r.cert_id, expect))
        .ok_or_else(|| {
            Failure::new(
                FailureKind::CertIdMismatch,
                "no SingleResponse for the certificate asked about",
            )
        })?;

    // Whether the answer is provably fresh (made for this request). Without that, its age is capped.
    let mut nonce_echoed = false;
    if let Some(sent) = expect.nonce_value {
        let echoed = data.response_extensions.as_ref().and_then(|exts| {
            exts.iter()
                .find(|e| e.extn_id == ID_PKIX_OCSP_NONCE)
                .map(|e| e.extn_value.as_bytes())
        });
        match echoed {
            Some(got) if got == sent => nonce_echoed = true,
            Some(_) => {
                return Err(Failure::new(
                    FailureKind::NonceMismatch,
                    "the response carries another request's nonce (replayed?)",
                ))
            }
            None if cfg.accept_missing_nonce => {}
            None => {
                return Err(Failure::new(
                    FailureKind::NonceMissing,
                    "the responder did not echo the nonce",
                ))
            }
        }
    }

    let skew_d = Duration::seconds(skew);
    let this_update = time_to_chrono(single.this_update.0.to_unix_duration())?;
    let produced_at = time_to_chrono(data.produced_at.0.to_unix_duration())?;
    let next_update = match &single.next_update {
        Some(t) => Some(time_to_chrono(t.0.to_unix_duration())?),
        None => None,
    };
    if this_update > now + skew_d || produced_at > now + skew_d {
        return Err(Failure::new(
            FailureKind::NotYetValid,
            format!("thisUpdate {this_update} / producedAt {produced_at} is in the future"),
        ));
    }
    let max_age =
        this_update + Duration::seconds(i64::try_from(cfg.max_age_secs).unwrap_or(i64::MAX / 4));
    let expiry = match next_update {
        // Without our nonce echoed the answer may be a replay of an older one: it is used for at most
        // max_age_secs after its thisUpdate, whatever its nextUpdate says.
        Some(nu) if nonce_echoed => nu,
        Some(nu) => nu.min(max_age),
        None => max_age,
    };
    if now - skew_d > expiry {
        return Err(Failure::new(
            FailureKind::Stale,
            if nonce_echoed || next_update.is_none_or(|nu| nu <= max_age) {
                format!("response expired at {expiry}")
            } else {
                format!(
                    "response without our nonce is older than jlis.ocsp.max_age_secs (thisUpdate {this_update})"
                )
            },
        ));
    }

    let status = match single.cert_status {
        CertStatus::Good(_) => Status::Good,
        CertStatus::Unknown(_) => Status::Unknown,
        CertStatus::Revoked(info) => Status::Revoked {
            reason: info
                .revocation_reason
                .map(RevocationReason::from_x509)
                .unwrap_or(RevocationReason::Unspecified),
            revoked_at: time_to_chrono(info.revocation_time.0.to_unix_duration())?,
        },
    };
    Ok(Verified {
        report: ValidityReport {
            status,
            method: Method::Ocsp,
            checked_at: now,
            this_update,
            next_update,
            responder: Some(format!("{} ({signer_kind})", signer.subject_string())),
            from_cache: false,
        },
        usable_until: expiry,
    })
}

/// A verified answer and the instant after which it may no longer be used (nor served from the cache).
pub(super) struct Verified {
    pub(super) report: ValidityReport,
    pub(super) usable_until: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    //! Pure verification tests on a real response captured from `openssl ocsp` (see testdata/README.md).
    use super::*;
    use crate::jlis::ocsp::request::cert_id;
    use chrono::TimeZone;
    use const_oid::db::rfc5912::ID_SHA_256;
    use der::asn1::OctetString;
    use proptest::prelude::*;

    const CA: &[u8] = include_bytes!("../testdata/ca.der");
    const GOOD: &[u8] = include_bytes!("../testdata/good-no-nonce.ocsp.der");
    const SERIAL: &[u8] = &[0x10, 0x00];

    fn produced_at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 13, 3, 59).unwrap()
    }

    fn cfg() -> OcspConfig {
        OcspConfig {
            accept_missing_nonce: true,
            ..OcspConfig::default()
        }
    }

    fn verify(
        body: &[u8],
        now: DateTime<Utc>,
        nonce: Option<&[u8]>,
    ) -> Result<ValidityReport, Failure> {
        verify_with(body, now, nonce, &cfg())
    }

    fn verify_with(
        body: &[u8],
        now: DateTime<Utc>,
        nonce: Option<&[u8]>,
        cfg: &OcspConfig,
    ) -> Result<ValidityReport, Failure> {
        let issuer = ParsedCert::parse(CA, FailureKind::InvalidTarget).unwrap();
        let id = cert_id(&issuer, SERIAL).unwrap();
        let expect = Expect {
            issuer: &issuer,
            serial: SERIAL,
            cert_id: &id,
            nonce_value: nonce,
        };
        verify_response(body, &expect, None, cfg, now).map(|v| v.report)
    }

    #[test]
    fn the_captured_response_verifies() {
        let r = verify(GOOD, produced_at(), None).unwrap();
        assert_eq!(r.status, Status::Good);
        assert_eq!(r.this_update, produced_at());
        // Past thisUpdate + max_age (+ skew) the same bytes are stale.
        let later = produced_at() + Duration::seconds(3_600 + 301);
        assert_eq!(
            verify(GOOD, later, None).unwrap_err().kind,
            FailureKind::Stale
        );
        // We sent a nonce, the response has none, and missing nonces are accepted here.
        let nonce = OctetString::new(vec![1u8; 16]).unwrap().to_der().unwrap();
        assert!(verify(GOOD, produced_at(), Some(&nonce)).is_ok());
    }

    #[test]
    fn a_nonce_less_answer_is_capped_at_max_age() {
        // The captured answer has no nextUpdate; a tighter cap refuses it sooner.
        let tight = OcspConfig {
            max_age_secs: 60,
            max_skew_secs: 0,
            ..cfg()
        };
        let at = produced_at() + Duration::seconds(60);
        assert!(verify_with(GOOD, at, None, &tight).is_ok());
        let late = produced_at() + Duration::seconds(61);
        assert_eq!(
            verify_with(GOOD, late, None, &tight).unwrap_err().kind,
            FailureKind::Stale
        );
    }

    #[test]
    fn every_single_bit_flip_is_refused() {
        // Whatever byte of the response is damaged (wrapper, signed data, signature or the
        // delegate's certificate), the answer must never be taken.
        for i in 0..GOOD.len() {
            for bit in [0x01u8, 0x80] {
                let mut body = GOOD.to_vec();
                body[i] ^= bit;
                if let Ok(r) = verify(&body, produced_at(), None) {
                    panic!("flip of bit {bit:#x} at byte {i} was accepted: {r:?}");
                }
            }
        }
    }

    #[test]
    fn cert_ids_match_by_sha1_or_sha256_and_serial() {
        let issuer = ParsedCert::parse(CA, FailureKind::InvalidTarget).unwrap();
        let id = cert_id(&issuer, SERIAL).unwrap();
        let expect = Expect {
            issuer: &issuer,
            serial: SERIAL,
            cert_id: &id,
            nonce_value: None,
        };
        assert!(cert_id_matches(&id, &expect));
        let sha256 = cert_id_with(&issuer, SERIAL, ID_SHA_256).unwrap();
        assert_eq!(sha256.issuer_key_hash.as_bytes().len(), 32);
        assert!(cert_id_matches(&sha256, &expect));
        // A leading zero byte in the serial is the same number.
        let padded = cert_id(&issuer, &[0x00, 0x10, 0x00]);
        assert!(padded.is_err() || cert_id_matches(&padded.unwrap(), &expect));
        let other_serial = cert_id(&issuer, &[0x10, 0x01]).unwrap();
        assert!(!cert_id_matches(&other_serial, &expect));
        let mut other_key = sha256.clone();
        other_key.issuer_key_hash = OctetString::new(vec![0u8; 32]).unwrap();
        assert!(!cert_id_matches(&other_key, &expect));
        let mut other_name = id.clone();
        other_name.issuer_name_hash = OctetString::new(vec![0u8; 20]).unwrap();
        assert!(!cert_id_matches(&other_name, &expect));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_nor_verify(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
            prop_assert!(verify(&body, produced_at(), None).is_err());
        }

        #[test]
        fn truncations_never_verify(cut in 0usize..1420) {
            let end = cut.min(GOOD.len().saturating_sub(1));
            prop_assert!(verify(&GOOD[..end], produced_at(), None).is_err());
        }
    }
}
