//! The OCSP checker: asks the responder (through the circuit breaker), verifies the answer with
//! [`super::document`] and caches good answers per (issuer, serial).

use super::document::{verify_response, Expect, Verified};
use super::request::{build_request, cert_id};
use crate::jlis::breaker::{Admit, Breaker};
use crate::jlis::clock::Clock;
use crate::jlis::fetch::{FetchSettings, Fetcher, Req};
use crate::jlis::x509::{load_cert_file, normalise_serial, ParsedCert};
use crate::jlis::{
    BuildError, Failure, FailureKind, JlisConfig, JlisError, Method, OcspConfig, RevocationTarget,
    Status, ValidityChecker, ValidityReport,
};
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use x509_ocsp::CertId;

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
    pub fn breaker_state(&self) -> crate::jlis::BreakerState {
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
        metrics::counter!("jlis_checks_total", "method" => "ocsp", "outcome" => crate::jlis::metric_outcome(&result))
            .increment(1);
        metrics::histogram!("jlis_check_duration_seconds", "method" => "ocsp")
            .record(started.elapsed().as_secs_f64());
        result
    }

    fn method(&self) -> Method {
        Method::Ocsp
    }
}
