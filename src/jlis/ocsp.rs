//! OCSP (RFC 6960) checker: POSTs a request with a SHA-1 CertID and a nonce, then trusts the answer
//! only if it is signed by the CA, by a CA-issued delegate with id-kp-OCSPSigning, or by the configured
//! responder certificate; is about our certificate; echoes our nonce; and is fresh.
//!
//! SHA-1 CertIDs are what `openssl ocsp` and most responders index by; SHA-1 here is a lookup key, not a
//! signature, so its weakness does not matter. Good answers are cached per (issuer, serial).

use super::breaker::{Admit, Breaker};
use super::clock::Clock;
use super::fetch::{FetchSettings, Fetcher, Req};
use super::x509::{load_cert_file, normalise_serial, time_to_chrono, ParsedCert, RawSigned};
use super::{
    BuildError, Failure, FailureKind, JlisConfig, JlisError, Method, OcspConfig, RevocationReason,
    RevocationTarget, Status, ValidityChecker, ValidityReport,
};
use chrono::{DateTime, Duration, Utc};
use const_oid::db::rfc5280::ID_KP_OCSP_SIGNING;
use const_oid::db::rfc5912::{ID_SHA_1, ID_SHA_256};
use const_oid::db::rfc6960::{ID_PKIX_OCSP_BASIC, ID_PKIX_OCSP_NONCE};
use der::asn1::{Null, OctetString};
use der::{Decode, Encode};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use x509_cert::ext::Extension;
use x509_cert::serial_number::SerialNumber;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus, Request,
    ResponderId, TbsRequest, Version,
};

/// Bytes of randomness in each nonce (RFC 8954 recommends 32 at most; openssl sends 16).
const NONCE_LEN: usize = 16;

#[derive(Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    issuer_name_hash: Vec<u8>,
    issuer_key_hash: Vec<u8>,
    serial: Vec<u8>,
}

struct CacheEntry {
    report: ValidityReport,
    expires: DateTime<Utc>,
}

pub struct OcspChecker {
    cfg: OcspConfig,
    retry_after_secs: u64,
    fetcher: Fetcher,
    breaker: Breaker,
    clock: Arc<dyn Clock>,
    pinned_responder: Option<ParsedCert>,
    cache: Mutex<HashMap<CacheKey, CacheEntry>>,
}

/// What a response must match: built together with the request.
struct Expect<'a> {
    issuer: &'a ParsedCert,
    serial: &'a [u8],
    cert_id: &'a CertId,
    /// The nonce extension's extnValue we sent, if any.
    nonce_value: Option<&'a [u8]>,
}

impl OcspChecker {
    pub fn new(cfg: &JlisConfig, clock: Arc<dyn Clock>) -> Result<Self, BuildError> {
        let o = &cfg.ocsp;
        if !(o.url.starts_with("http://") || o.url.starts_with("https://")) {
            return Err(BuildError::Config {
                key: "jlis.ocsp.url",
                why: "must be an http:// or https:// URL".into(),
            });
        }
        let pinned_responder = match &o.responder_cert {
            None => None,
            Some(path) => {
                let der = load_cert_file(path).map_err(|why| BuildError::Config {
                    key: "jlis.ocsp.responder_cert",
                    why,
                })?;
                Some(
                    ParsedCert::parse(&der, FailureKind::InvalidTarget).map_err(|f| {
                        BuildError::Config {
                            key: "jlis.ocsp.responder_cert",
                            why: f.detail,
                        }
                    })?,
                )
            }
        };
        let fetcher = Fetcher::new(
            Method::Ocsp,
            FetchSettings {
                connect_timeout_ms: o.connect_timeout_ms,
                timeout_ms: o.timeout_ms,
                retries: o.retries,
                backoff_ms: o.backoff_ms,
                max_bytes: o.max_response_bytes,
            },
            cfg.http_proxy.as_ref(),
        )
        .map_err(|why| BuildError::Config {
            key: "jlis.ocsp",
            why,
        })?;
        Ok(Self {
            cfg: o.clone(),
            retry_after_secs: cfg.retry_after_secs,
            fetcher,
            breaker: Breaker::new(cfg.breaker.clone(), clock.clone(), Method::Ocsp),
            clock,
            pinned_responder,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The circuit breaker's current state.
    pub fn breaker_state(&self) -> super::BreakerState {
        self.breaker.state()
    }

    fn cache_get(&self, key: &CacheKey, now: DateTime<Utc>) -> Option<ValidityReport> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(key)
            .filter(|e| now < e.expires)
            .map(|e| ValidityReport {
                from_cache: true,
                ..e.report.clone()
            })
    }

    fn cache_put(&self, key: CacheKey, verified: &Verified) {
        let report = &verified.report;
        if self.cfg.cache_ttl_secs == 0 || report.status != Status::Good {
            return;
        }
        let ttl = Duration::seconds(i64::try_from(self.cfg.cache_ttl_secs).unwrap_or(i64::MAX / 4));
        let mut expires = report.checked_at + ttl;
        if let Some(nu) = report.next_update {
            expires = expires.min(nu);
        }
        // Never longer than the answer itself may be used (for a nonce-less answer: thisUpdate + max age).
        expires = expires.min(verified.usable_until);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= self.cfg.cache_max_entries {
            let now = self.clock.now();
            cache.retain(|_, e| e.expires > now);
            if cache.len() >= self.cfg.cache_max_entries {
                // Still full of live entries: skip caching rather than grow without bound.
                return;
            }
        }
        cache.insert(
            key,
            CacheEntry {
                report: report.clone(),
                expires,
            },
        );
    }

    async fn check_inner(&self, target: &RevocationTarget) -> Result<ValidityReport, JlisError> {
        let issuer = ParsedCert::parse(&target.issuer_cert_der, FailureKind::InvalidTarget)
            .map_err(|f| f.into_error(self.retry_after_secs))?;
        let serial = normalise_serial(&target.serial);
        let cert_id = cert_id(&issuer, serial).map_err(|f| f.into_error(self.retry_after_secs))?;
        let key = CacheKey {
            issuer_name_hash: cert_id.issuer_name_hash.as_bytes().to_vec(),
            issuer_key_hash: cert_id.issuer_key_hash.as_bytes().to_vec(),
            serial: serial.to_vec(),
        };
        if let Some(hit) = self.cache_get(&key, self.clock.now()) {
            metrics::counter!("jlis_cache_hits_total", "method" => "ocsp").increment(1);
            return Ok(hit);
        }
        metrics::counter!("jlis_cache_misses_total", "method" => "ocsp").increment(1);

        if let Admit::Reject { retry_after_secs } = self.breaker.admit() {
            return Err(Failure::new(
                FailureKind::BreakerOpen,
                "OCSP responder failed repeatedly; failing fast",
            )
            .into_error(retry_after_secs));
        }

        let result = self.query(&issuer, serial, &cert_id).await;
        match &result {
            Ok(verified) => {
                self.breaker.record_success();
                self.cache_put(key, verified);
            }
            Err(f) => {
                self.breaker.record_failure();
                tracing::warn!(kind = f.kind.as_str(), detail = %f.detail, "OCSP check failed");
            }
        }
        result
            .map(|v| v.report)
            .map_err(|f| f.into_error(self.retry_after_secs))
    }

    async fn query(
        &self,
        issuer: &ParsedCert,
        serial: &[u8],
        cert_id: &CertId,
    ) -> Result<Verified, Failure> {
        let (body, nonce_value) = build_request(cert_id, self.cfg.nonce)?;
        let expect = Expect {
            issuer,
            serial,
            cert_id,
            nonce_value: nonce_value.as_deref(),
        };
        let req = Req::Post {
            url: &self.cfg.url,
            content_type: "application/ocsp-request",
            accept: "application/ocsp-response",
            body,
        };
        self.fetcher
            .fetch(&req, |bytes| {
                verify_response(
                    &bytes,
                    &expect,
                    self.pinned_responder.as_ref(),
                    &self.cfg,
                    self.clock.now(),
                )
            })
            .await
    }
}

#[async_trait::async_trait]
impl ValidityChecker for OcspChecker {
    async fn check(&self, target: &RevocationTarget) -> Result<ValidityReport, JlisError> {
        let started = Instant::now();
        let result = self.check_inner(target).await;
        metrics::counter!("jlis_checks_total", "method" => "ocsp", "outcome" => super::metric_outcome(&result))
            .increment(1);
        metrics::histogram!("jlis_check_duration_seconds", "method" => "ocsp")
            .record(started.elapsed().as_secs_f64());
        result
    }

    fn method(&self) -> Method {
        Method::Ocsp
    }
}

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
fn cert_id(issuer: &ParsedCert, serial: &[u8]) -> Result<CertId, Failure> {
    cert_id_with(issuer, serial, ID_SHA_1)
}

fn cert_id_with(
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
fn build_request(
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
fn verify_response(
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
struct Verified {
    report: ValidityReport,
    usable_until: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    //! Pure verification tests on a real response captured from `openssl ocsp` (see testdata/README.md).
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    const CA: &[u8] = include_bytes!("testdata/ca.der");
    const GOOD: &[u8] = include_bytes!("testdata/good-no-nonce.ocsp.der");
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
