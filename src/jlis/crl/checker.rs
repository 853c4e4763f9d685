//! The CRL checker: downloads the configured CRLs (through the circuit breaker; parsing off the
//! executor), keeps each until its nextUpdate, refreshes them in the background, refuses a replayed
//! older CRL by its number, and answers by serial.

use super::document::{cert_dp_names, key_id, number_lt, skew, LoadedCrl, ScopeKey};
use crate::jlis::breaker::{Admit, Breaker};
use crate::jlis::clock::Clock;
use crate::jlis::fetch::{FetchSettings, Fetcher, Req};
use crate::jlis::x509::{normalise_serial, ParsedCert};
use crate::jlis::{
    BuildError, CrlConfig, Failure, FailureKind, JlisConfig, JlisError, Method, RevocationTarget,
    Status, ValidityChecker, ValidityReport,
};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

/// (SHA-256 of the verifying CA key, scope) → the highest CRL number verified.
type NumberMarks = HashMap<([u8; 32], ScopeKey), Vec<u8>>;

pub struct CrlChecker {
    cfg: CrlConfig,
    retry_after_secs: u64,
    fetcher: Fetcher,
    breaker: Breaker,
    clock: Arc<dyn Clock>,
    crls: Mutex<HashMap<String, Arc<LoadedCrl>>>,
    /// Canonical distribution point name → URL (from `jlis.crl.distribution_points`).
    dp_urls: Vec<(String, String)>,
    /// The highest CRL number verified per (CA key, scope).
    numbers: Mutex<NumberMarks>,
    /// One download round at a time; a check that waited on it reuses what it fetched.
    download: tokio::sync::Mutex<()>,
}

impl CrlChecker {
    /// Builds the checker; inside a Tokio runtime it also starts the background refresh task,
    /// which downloads every CRL at once and then every `refresh_secs`, and stops when the
    /// checker is dropped.
    pub fn start(cfg: &JlisConfig, clock: Arc<dyn Clock>) -> Result<Arc<Self>, BuildError> {
        let c = &cfg.crl;
        cfg.validate()?;
        if c.urls.is_empty() && c.distribution_points.is_empty() {
            return Err(BuildError::Config {
                key: "jlis.crl.urls",
                why: "at least one URL is needed in crl mode (here or in jlis.crl.distribution_points)"
                    .into(),
            });
        }
        let mut dp_urls = Vec::new();
        for dp in &c.distribution_points {
            let name = crate::jlis::config::canonical_dp_name(&dp.name).map_err(|why| {
                BuildError::Config {
                    key: "jlis.crl.distribution_points.name",
                    why,
                }
            })?;
            dp_urls.push((name, dp.url.clone()));
        }
        let fetcher = Fetcher::new(
            Method::Crl,
            FetchSettings {
                connect_timeout_ms: c.connect_timeout_ms,
                timeout_ms: c.timeout_ms,
                retries: c.retries,
                backoff_ms: c.backoff_ms,
                max_bytes: c.max_bytes,
            },
            cfg.http_proxy.as_ref(),
        )
        .map_err(|why| BuildError::Config {
            key: "jlis.crl",
            why,
        })?;
        let checker = Arc::new(Self {
            cfg: c.clone(),
            retry_after_secs: cfg.retry_after_secs,
            fetcher,
            breaker: Breaker::new(cfg.breaker.clone(), clock.clone(), Method::Crl),
            clock,
            crls: Mutex::new(HashMap::new()),
            dp_urls,
            numbers: Mutex::new(HashMap::new()),
            download: tokio::sync::Mutex::new(()),
        });
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(refresh_loop(Arc::downgrade(&checker), c.refresh_secs));
        }
        Ok(checker)
    }

    /// The circuit breaker's current state (it guards downloads).
    pub fn breaker_state(&self) -> crate::jlis::BreakerState {
        self.breaker.state()
    }

    fn loaded(&self, url: &str) -> Option<Arc<LoadedCrl>> {
        self.crls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(url)
            .cloned()
    }

    /// Downloads the CRL at `url` unless, while we waited for our turn, another task fetched it
    /// (at or after `since`) or, with `reuse_fresh`, a still-fresh copy is there.
    async fn download(
        &self,
        url: &str,
        since: DateTime<Utc>,
        reuse_fresh: bool,
    ) -> Result<Arc<LoadedCrl>, Failure> {
        let _guard = self.download.lock().await;
        let now = self.clock.now();
        if let Some(existing) = self
            .loaded(url)
            .filter(|c| c.fetched_at >= since || (reuse_fresh && !c.is_stale(now, &self.cfg)))
        {
            return Ok(existing);
        }
        if let Admit::Reject { .. } = self.breaker.admit() {
            return Err(Failure::new(
                FailureKind::BreakerOpen,
                "CRL downloads failed repeatedly; failing fast",
            ));
        }
        let fetched_at = self.clock.now();
        let result = self.fetcher.fetch(&Req::Get { url }, Ok).await;
        let result = match result {
            Ok(bytes) => {
                let url_owned = url.to_string();
                // Large CRLs take a while to parse: keep that off the async executor.
                tokio::task::spawn_blocking(move || LoadedCrl::parse(&url_owned, bytes, fetched_at))
                    .await
                    .unwrap_or_else(|e| {
                        Err(Failure::new(
                            FailureKind::Malformed,
                            format!("CRL parser: {e}"),
                        ))
                    })
            }
            Err(f) => Err(f),
        };
        let result = result.and_then(|crl| self.refuse_regression(url, crl));
        match result {
            Ok(crl) => {
                self.breaker.record_success();
                let crl = Arc::new(crl);
                metrics::gauge!("jlis_crl_entries", "url" => url.to_string())
                    .set(crl.revoked.len() as f64);
                metrics::gauge!("jlis_crl_next_update_timestamp_seconds", "url" => url.to_string())
                    .set(crl.expiry(self.cfg.max_age_secs).timestamp() as f64);
                self.crls
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(url.to_string(), crl.clone());
                Ok(crl)
            }
            Err(f) => {
                self.breaker.record_failure();
                tracing::warn!(url, kind = f.kind.as_str(), detail = %f.detail, "CRL download failed");
                Err(f)
            }
        }
    }

    /// Refuses a download whose CRL number is lower than that of the verified copy it would replace
    /// (same scope): a replayed older CRL must not evict a newer one.
    fn refuse_regression(&self, url: &str, new: LoadedCrl) -> Result<LoadedCrl, Failure> {
        if let (Some(old), Some(new_number)) = (self.loaded(url), &new.number) {
            if let Some(old_number) = &old.number {
                if old.verified_by_any()
                    && old.scope_key()? == new.scope_key()?
                    && number_lt(new_number, old_number)
                {
                    return Err(Failure::new(
                        FailureKind::CrlNumberRegressed,
                        format!(
                            "CRL from {url}: number {} is lower than the {} already held; kept the newer",
                            hex::encode(new_number),
                            hex::encode(old_number)
                        ),
                    ));
                }
            }
        }
        Ok(new)
    }

    /// Records a verified CRL's number for its scope; refuses it if a higher one was seen before.
    /// The scope includes the verifying CA key: J-LIS CA generations share one name but number apart.
    fn note_number(&self, crl: &LoadedCrl, issuer: &ParsedCert) -> Result<(), Failure> {
        let Some(number) = &crl.number else {
            return Err(Failure::new(
                FailureKind::Malformed,
                format!(
                    "CRL from {} has no cRLNumber (RFC 5280 5.2.3), so a replayed older CRL could not be told apart",
                    crl.url
                ),
            ));
        };
        let key = (key_id(issuer)?, crl.scope_key()?);
        let mut numbers = self.numbers.lock().unwrap_or_else(|e| e.into_inner());
        match numbers.get(&key) {
            Some(highest) if number_lt(number, highest) => Err(Failure::new(
                FailureKind::CrlNumberRegressed,
                format!(
                    "CRL from {}: number {} is lower than {} seen before for this scope",
                    crl.url,
                    hex::encode(number),
                    hex::encode(highest)
                ),
            )),
            _ => {
                numbers.insert(key, number.clone());
                Ok(())
            }
        }
    }

    /// Every URL the configuration names, each once.
    fn all_urls(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for url in self
            .cfg
            .urls
            .iter()
            .chain(self.dp_urls.iter().map(|(_, u)| u))
        {
            if !out.contains(&url.as_str()) {
                out.push(url);
            }
        }
        out
    }

    /// The URLs to ask for a certificate with these distribution point names: the configured URL of
    /// its distribution point if one is mapped, else the complete-CRL URLs.
    fn urls_for(&self, cert_dps: Option<&[String]>) -> Vec<&str> {
        if let Some(names) = cert_dps {
            if let Some((_, url)) = self.dp_urls.iter().find(|(n, _)| names.contains(n)) {
                return vec![url.as_str()];
            }
        }
        self.cfg.urls.iter().map(String::as_str).collect()
    }

    /// Downloads every configured CRL again (failures keep the previous copy).
    pub async fn refresh_all(&self) {
        let since = self.clock.now();
        for url in self.all_urls() {
            let _ = self.download(url, since, false).await;
        }
    }

    async fn check_inner(&self, target: &RevocationTarget) -> Result<ValidityReport, Failure> {
        let issuer = ParsedCert::parse(&target.issuer_cert_der, FailureKind::InvalidTarget)?;
        let serial = normalise_serial(&target.serial);
        if serial.is_empty() {
            return Err(Failure::new(
                FailureKind::InvalidTarget,
                "serial is zero or empty",
            ));
        }
        let cert_dps = match &target.crl_distribution_points {
            Some(der) => Some(cert_dp_names(der, &issuer.cert.tbs_certificate.subject)?),
            None => None,
        };
        let urls = self.urls_for(cert_dps.as_deref());
        if urls.is_empty() {
            return Err(Failure::new(
                FailureKind::NoCrlForIssuer,
                "the certificate's distribution point is not configured and no complete-CRL URL is",
            ));
        }
        let started = self.clock.now();
        // A failure about a CRL of this very issuer says more than a download failure elsewhere.
        let mut issuer_failure: Option<Failure> = None;
        let mut download_failure: Option<Failure> = None;
        for url in urls {
            let mut from_cache = true;
            let crl = match self.loaded(url) {
                Some(c) if !c.is_stale(started, &self.cfg) => c,
                _ => {
                    from_cache = false;
                    match self.download(url, started, true).await {
                        Ok(c) => c,
                        Err(f) => {
                            download_failure = Some(f);
                            continue;
                        }
                    }
                }
            };
            if crl.issuer != issuer.cert.tbs_certificate.subject {
                continue;
            }
            // Several CA generations may share a name: a CRL that does not fit this CA is skipped,
            // and reported only if no other CRL answers.
            let now = self.clock.now();
            if crl.this_update > now + skew(&self.cfg) {
                issuer_failure = Some(Failure::new(
                    FailureKind::NotYetValid,
                    format!(
                        "CRL from {url}: thisUpdate {} is in the future",
                        crl.this_update
                    ),
                ));
                continue;
            }
            if crl.is_stale(now, &self.cfg) {
                issuer_failure = Some(Failure::new(
                    FailureKind::Stale,
                    format!(
                        "CRL from {url} expired at {} and no fresher one could be downloaded",
                        crl.expiry(self.cfg.max_age_secs)
                    ),
                ));
                continue;
            }
            if let Err(f) = verify_off_executor(&crl, &issuer).await {
                issuer_failure = Some(f);
                continue;
            }
            if let Err(f) = crl
                .check_scope(cert_dps.as_deref())
                .and_then(|()| self.note_number(&crl, &issuer))
            {
                issuer_failure = Some(f);
                continue;
            }
            let status = match crl.revoked.get(serial) {
                Some((reason, at)) => Status::Revoked {
                    reason: *reason,
                    revoked_at: *at,
                },
                None => Status::Good,
            };
            return Ok(ValidityReport {
                status,
                method: Method::Crl,
                checked_at: now,
                this_update: crl.this_update,
                next_update: crl.next_update,
                responder: Some(format!("{} via {}", crl.issuer_text, crl.url)),
                from_cache,
            });
        }
        Err(issuer_failure.or(download_failure).unwrap_or_else(|| {
            Failure::new(
                FailureKind::NoCrlForIssuer,
                format!(
                    "none of the configured CRLs is issued by {}",
                    issuer.subject_string()
                ),
            )
        }))
    }
}

/// Verifies the CRL's signature; the first time for a key hashes the whole CRL, so it runs on the
/// blocking pool.
async fn verify_off_executor(crl: &Arc<LoadedCrl>, issuer: &ParsedCert) -> Result<(), Failure> {
    if crl.is_verified_by(issuer)? {
        return Ok(());
    }
    let (crl, issuer) = (crl.clone(), issuer.clone());
    tokio::task::spawn_blocking(move || crl.verify(&issuer))
        .await
        .unwrap_or_else(|e| {
            Err(Failure::new(
                FailureKind::Malformed,
                format!("CRL verifier: {e}"),
            ))
        })
}

async fn refresh_loop(checker: Weak<CrlChecker>, refresh_secs: u64) {
    let period = std::time::Duration::from_secs(refresh_secs.max(1));
    loop {
        match checker.upgrade() {
            Some(c) => c.refresh_all().await,
            None => return,
        }
        tokio::time::sleep(period).await;
    }
}

#[async_trait::async_trait]
impl ValidityChecker for CrlChecker {
    async fn check(&self, target: &RevocationTarget) -> Result<ValidityReport, JlisError> {
        let started = Instant::now();
        let result = self.check_inner(target).await.map_err(|f| {
            let retry_after = match f.kind {
                FailureKind::BreakerOpen => self.cfg_breaker_retry_after(),
                _ => self.retry_after_secs,
            };
            tracing::warn!(kind = f.kind.as_str(), detail = %f.detail, "CRL check failed");
            f.into_error(retry_after)
        });
        if let Ok(r) = &result {
            if r.from_cache {
                metrics::counter!("jlis_cache_hits_total", "method" => "crl").increment(1);
            }
        }
        metrics::counter!("jlis_checks_total", "method" => "crl", "outcome" => crate::jlis::metric_outcome(&result))
            .increment(1);
        metrics::histogram!("jlis_check_duration_seconds", "method" => "crl")
            .record(started.elapsed().as_secs_f64());
        result
    }

    fn method(&self) -> Method {
        Method::Crl
    }
}

impl CrlChecker {
    fn cfg_breaker_retry_after(&self) -> u64 {
        match self.breaker.state() {
            crate::jlis::BreakerState::Open { until } => {
                u64::try_from((until - self.clock.now()).num_seconds())
                    .unwrap_or(0)
                    .max(1)
            }
            _ => self.retry_after_secs,
        }
    }
}
