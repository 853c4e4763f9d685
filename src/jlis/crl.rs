//! CRL checker: downloads the CRLs at the configured URLs, keeps them in memory until their
//! nextUpdate, refreshes them in the background, and answers by serial.
//!
//! A CRL is used only after its signature verifies against the CA certificate of the chain being
//! checked (the issuer names must match too). A CRL past its nextUpdate is never read as "good":
//! the check fails with `stale` until a fresh one is downloaded.
//!
//! Scope (RFC 5280 §5.2.5, §6.3.3): which URL is asked is chosen from `jlis.crl.distribution_points`
//! by the certificate's CRL distribution point (never the URL the certificate names); a CRL with an
//! issuingDistributionPoint answers only for a certificate whose distribution point it names; delta
//! CRLs, indirect CRLs, reason-partitioned CRLs and unknown critical CRL or entry extensions are
//! refused; and a CRL whose number is lower than one already seen for the same scope is refused.

use super::breaker::{Admit, Breaker};
use super::clock::Clock;
use super::fetch::{FetchSettings, Fetcher, Req};
use super::x509::{normalise_serial, time_to_chrono, ParsedCert, RawSigned};
use super::{
    BuildError, CrlConfig, Failure, FailureKind, JlisConfig, JlisError, Method, RevocationReason,
    RevocationTarget, Status, ValidityChecker, ValidityReport,
};
use chrono::{DateTime, Duration, Utc};
use const_oid::db::rfc5280 as oids;
use const_oid::ObjectIdentifier;
use der::{Decode, Encode};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::crl::{BaseCrlNumber, CrlDistributionPoints, IssuingDistributionPoint};
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{CrlNumber, CrlReason};
use x509_cert::name::Name;

/// CRL extensions this checker knows (RFC 5280 §5.2); the IDP and the delta indicator are acted on.
const KNOWN_CRL_EXTENSIONS: &[ObjectIdentifier] = &[
    oids::ID_CE_AUTHORITY_KEY_IDENTIFIER,
    oids::ID_CE_ISSUER_ALT_NAME,
    oids::ID_CE_CRL_NUMBER,
    oids::ID_CE_DELTA_CRL_INDICATOR,
    oids::ID_CE_ISSUING_DISTRIBUTION_POINT,
    oids::ID_CE_FRESHEST_CRL,
    oids::ID_PE_AUTHORITY_INFO_ACCESS,
];

/// CRL entry extensions this checker knows (RFC 5280 §5.3). certificateIssuer (indirect CRLs) is not
/// among them: its entries would be about another CA's certificates.
const KNOWN_ENTRY_EXTENSIONS: &[ObjectIdentifier] = &[
    oids::ID_CE_CRL_REASONS,
    oids::ID_CE_INVALIDITY_DATE,
    oids::ID_CE_HOLD_INSTRUCTION_CODE,
];

/// One downloaded, parsed CRL.
struct LoadedCrl {
    url: String,
    der: Vec<u8>,
    issuer: Name,
    issuer_text: String,
    this_update: DateTime<Utc>,
    next_update: Option<DateTime<Utc>>,
    /// Normalised serial → (reason, revocation time).
    revoked: HashMap<Vec<u8>, (RevocationReason, DateTime<Utc>)>,
    /// cRLNumber, big-endian without leading zeros.
    number: Option<Vec<u8>>,
    /// deltaCRLIndicator's BaseCRLNumber: present only on a delta CRL.
    delta_base: Option<Vec<u8>>,
    issuing_distribution_point: Option<IssuingDistributionPoint>,
    /// The issuingDistributionPoint's DER (empty without one): with the issuer, the CRL's scope.
    scope_der: Vec<u8>,
    /// The first critical CRL or entry extension this checker does not know, if any.
    unknown_critical: Option<String>,
    fetched_at: DateTime<Utc>,
    /// SHA-256 of the SPKIs this CRL's signature has verified against (verification is memoised:
    /// hashing a large CRL on every check would be wasteful).
    verified_keys: Mutex<HashSet<[u8; 32]>>,
}

impl LoadedCrl {
    fn parse(url: &str, der: Vec<u8>, fetched_at: DateTime<Utc>) -> Result<Self, Failure> {
        let crl = CertificateList::from_der(&der)
            .map_err(|e| Failure::new(FailureKind::Malformed, format!("CRL from {url}: {e}")))?;
        let tbs = crl.tbs_cert_list;
        let malformed = |what: &str, e: der::Error| {
            Failure::new(
                FailureKind::Malformed,
                format!("CRL from {url}: {what}: {e}"),
            )
        };
        let mut unknown_critical = None;
        let mut revoked = HashMap::new();
        for rc in tbs.revoked_certificates.unwrap_or_default() {
            let exts = rc.crl_entry_extensions.as_deref().unwrap_or_default();
            if let Some(e) = exts
                .iter()
                .find(|e| e.critical && !KNOWN_ENTRY_EXTENSIONS.contains(&e.extn_id))
            {
                unknown_critical.get_or_insert_with(|| format!("entry extension {}", e.extn_id));
            }
            let reason = exts
                .iter()
                .find(|e| e.extn_id == oids::ID_CE_CRL_REASONS)
                .and_then(|e| CrlReason::from_der(e.extn_value.as_bytes()).ok())
                .map(RevocationReason::from_x509)
                .unwrap_or(RevocationReason::Unspecified);
            let at = time_to_chrono(rc.revocation_date.to_unix_duration())?;
            revoked.insert(
                normalise_serial(rc.serial_number.as_bytes()).to_vec(),
                (reason, at),
            );
        }
        let mut number = None;
        let mut delta_base = None;
        let mut issuing_distribution_point = None;
        let mut scope_der = Vec::new();
        let mut seen = HashSet::new();
        for e in tbs.crl_extensions.as_deref().unwrap_or_default() {
            if !seen.insert(e.extn_id) {
                return Err(Failure::new(
                    FailureKind::Malformed,
                    format!("CRL from {url}: extension {} appears twice", e.extn_id),
                ));
            }
            let value = e.extn_value.as_bytes();
            match e.extn_id {
                oids::ID_CE_CRL_NUMBER => {
                    let n = CrlNumber::from_der(value).map_err(|e| malformed("cRLNumber", e))?;
                    number = Some(normalise_serial(n.0.as_bytes()).to_vec());
                }
                oids::ID_CE_DELTA_CRL_INDICATOR => {
                    let n = BaseCrlNumber::from_der(value)
                        .map_err(|e| malformed("deltaCRLIndicator", e))?;
                    delta_base = Some(normalise_serial(n.0.as_bytes()).to_vec());
                }
                oids::ID_CE_ISSUING_DISTRIBUTION_POINT => {
                    issuing_distribution_point = Some(
                        IssuingDistributionPoint::from_der(value)
                            .map_err(|e| malformed("issuingDistributionPoint", e))?,
                    );
                    scope_der = value.to_vec();
                }
                id if e.critical && !KNOWN_CRL_EXTENSIONS.contains(&id) => {
                    unknown_critical.get_or_insert_with(|| format!("CRL extension {id}"));
                }
                _ => {}
            }
        }
        Ok(Self {
            url: url.to_string(),
            issuer_text: tbs.issuer.to_string(),
            issuer: tbs.issuer,
            this_update: time_to_chrono(tbs.this_update.to_unix_duration())?,
            next_update: match tbs.next_update {
                Some(t) => Some(time_to_chrono(t.to_unix_duration())?),
                None => None,
            },
            revoked,
            number,
            delta_base,
            issuing_distribution_point,
            scope_der,
            unknown_critical,
            fetched_at,
            der,
            verified_keys: Mutex::new(HashSet::new()),
        })
    }

    /// What the CRL-number high-water mark is kept by: issuer, issuingDistributionPoint, delta or not.
    fn scope_key(&self) -> Result<ScopeKey, Failure> {
        let issuer = self
            .issuer
            .to_der()
            .map_err(|e| Failure::new(FailureKind::Malformed, format!("CRL issuer: {e}")))?;
        Ok((issuer, self.scope_der.clone(), self.delta_base.is_some()))
    }

    /// Whether some issuer key has verified this CRL's signature.
    fn verified_by_any(&self) -> bool {
        !self
            .verified_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// RFC 5280 §6.3.3 (b): refuses a CRL that does not cover `cert_dps`, an end-entity certificate
    /// with these distribution point names (`None`: the certificate has no cRLDistributionPoints).
    fn check_scope(&self, cert_dps: Option<&[String]>) -> Result<(), Failure> {
        let scope = |why: String| {
            Err(Failure::new(
                FailureKind::CrlScopeMismatch,
                format!("CRL from {}: {why}", self.url),
            ))
        };
        if let Some(what) = &self.unknown_critical {
            return Err(Failure::new(
                FailureKind::UnknownCriticalExtension,
                format!("CRL from {}: critical {what} is not understood", self.url),
            ));
        }
        if self.delta_base.is_some() {
            return Err(Failure::new(
                FailureKind::DeltaCrl,
                format!(
                    "CRL from {} is a delta CRL; it is never used without its base",
                    self.url
                ),
            ));
        }
        let Some(idp) = &self.issuing_distribution_point else {
            // No issuingDistributionPoint: a complete CRL for every certificate of the issuer.
            return Ok(());
        };
        if idp.only_contains_ca_certs || idp.only_contains_attribute_certs {
            return scope("it covers only CA or attribute certificates".into());
        }
        if idp.only_some_reasons.is_some() {
            return scope("it covers only some revocation reasons".into());
        }
        if idp.indirect_crl {
            return scope("indirect CRLs are not supported".into());
        }
        let Some(dpn) = &idp.distribution_point else {
            return Ok(());
        };
        let crl_names = dp_name_keys(dpn, &self.issuer);
        match cert_dps {
            None => {
                scope("it is one partition, and the certificate names no distribution point".into())
            }
            Some(names) if names.iter().any(|n| crl_names.contains(n)) => Ok(()),
            Some(_) => scope(
                "its issuingDistributionPoint is not the certificate's CRL distribution point"
                    .into(),
            ),
        }
    }

    /// The instant after which this CRL may no longer be used.
    fn expiry(&self, max_age_secs: u64) -> DateTime<Utc> {
        self.next_update.unwrap_or_else(|| {
            self.this_update
                + Duration::seconds(i64::try_from(max_age_secs).unwrap_or(i64::MAX / 4))
        })
    }

    fn is_stale(&self, now: DateTime<Utc>, cfg: &CrlConfig) -> bool {
        now - skew(cfg) > self.expiry(cfg.max_age_secs)
    }

    fn is_verified_by(&self, issuer: &ParsedCert) -> Result<bool, Failure> {
        let key_id = key_id(issuer)?;
        Ok(self
            .verified_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&key_id))
    }

    fn verify(&self, issuer: &ParsedCert) -> Result<(), Failure> {
        if self.is_verified_by(issuer)? {
            return Ok(());
        }
        let key_id = key_id(issuer)?;
        RawSigned::parse(&self.der)?
            .verify_with(issuer.spki())
            .map_err(|f| Failure::new(f.kind, format!("CRL from {}: {}", self.url, f.detail)))?;
        self.verified_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key_id);
        Ok(())
    }
}

/// (issuer DER, issuingDistributionPoint DER, is a delta CRL).
type ScopeKey = (Vec<u8>, Vec<u8>, bool);

/// (SHA-256 of the verifying CA key, scope) → the highest CRL number verified.
type NumberMarks = HashMap<([u8; 32], ScopeKey), Vec<u8>>;

/// `a < b` for big-endian numbers without leading zeros.
fn number_lt(a: &[u8], b: &[u8]) -> bool {
    (a.len(), a) < (b.len(), b)
}

/// Canonical text of each name in a distribution point name (the form `jlis.crl.distribution_points`
/// is written in); a name relative to the CRL issuer is made absolute with `issuer`.
fn dp_name_keys(dpn: &DistributionPointName, issuer: &Name) -> Vec<String> {
    match dpn {
        DistributionPointName::FullName(names) => {
            names.iter().filter_map(general_name_key).collect()
        }
        DistributionPointName::NameRelativeToCRLIssuer(rdn) => {
            let mut full = issuer.clone();
            full.0.push(rdn.clone());
            vec![format!("DirName:{full}")]
        }
    }
}

fn general_name_key(name: &GeneralName) -> Option<String> {
    match name {
        GeneralName::UniformResourceIdentifier(uri) => Some(format!("URI:{}", uri.as_str())),
        GeneralName::DirectoryName(dn) => Some(format!("DirName:{dn}")),
        _ => None,
    }
}

/// The names of a certificate's CRL distribution points. Points that name another CRL issuer
/// (indirect CRLs) or only some reasons are left out: no CRL this checker accepts covers them.
fn cert_dp_names(der: &[u8], issuer: &Name) -> Result<Vec<String>, Failure> {
    let dps = CrlDistributionPoints::from_der(der).map_err(|e| {
        Failure::new(
            FailureKind::InvalidTarget,
            format!("cRLDistributionPoints: {e}"),
        )
    })?;
    Ok(dps
        .0
        .iter()
        .filter(|dp: &&DistributionPoint| dp.crl_issuer.is_none() && dp.reasons.is_none())
        .filter_map(|dp| dp.distribution_point.as_ref())
        .flat_map(|dpn| dp_name_keys(dpn, issuer))
        .collect())
}

fn key_id(issuer: &ParsedCert) -> Result<[u8; 32], Failure> {
    let spki_der = issuer
        .spki()
        .to_der()
        .map_err(|e| Failure::new(FailureKind::InvalidTarget, format!("issuer key: {e}")))?;
    Ok(Sha256::digest(&spki_der).into())
}

fn skew(cfg: &CrlConfig) -> Duration {
    Duration::seconds(i64::try_from(cfg.max_skew_secs).unwrap_or(i64::MAX / 4))
}

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
            let name =
                super::config::canonical_dp_name(&dp.name).map_err(|why| BuildError::Config {
                    key: "jlis.crl.distribution_points.name",
                    why,
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
    pub fn breaker_state(&self) -> super::BreakerState {
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
        metrics::counter!("jlis_checks_total", "method" => "crl", "outcome" => super::metric_outcome(&result))
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
            super::BreakerState::Open { until } => {
                u64::try_from((until - self.clock.now()).num_seconds())
                    .unwrap_or(0)
                    .max(1)
            }
            _ => self.retry_after_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    //! Pure tests on a CRL made by `openssl ca -gencrl` (see testdata/README.md).
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    const CA: &[u8] = include_bytes!("testdata/ca.der");
    const CRL: &[u8] = include_bytes!("testdata/sign.crl");

    fn ca() -> ParsedCert {
        ParsedCert::parse(CA, FailureKind::InvalidTarget).unwrap()
    }

    fn parse_and_verify(der: &[u8]) -> Result<LoadedCrl, Failure> {
        let crl = LoadedCrl::parse("test", der.to_vec(), Utc::now())?;
        crl.verify(&ca())?;
        Ok(crl)
    }

    #[test]
    fn the_openssl_crl_parses_verifies_and_answers() {
        let crl = parse_and_verify(CRL).unwrap();
        let this_update = Utc.with_ymd_and_hms(2026, 11, 25, 13, 3, 58).unwrap();
        assert_eq!(crl.this_update, this_update);
        assert_eq!(crl.next_update, Some(this_update + Duration::days(1)));
        assert_eq!(crl.issuer, ca().cert.tbs_certificate.subject);
        assert_eq!(
            crl.revoked.get(&[0x10, 0x01][..]).map(|r| r.0),
            Some(RevocationReason::KeyCompromise)
        );
        assert_eq!(
            crl.revoked.get(&[0x10, 0x02][..]).map(|r| r.0),
            Some(RevocationReason::AffiliationChanged)
        );
        assert!(!crl.revoked.contains_key(&[0x10, 0x00][..]));
        assert_eq!(crl.revoked.len(), 2);
        // Verified once, then memoised for this key.
        assert!(crl.is_verified_by(&ca()).unwrap());
        let cfg = CrlConfig::default();
        assert!(!crl.is_stale(this_update + Duration::hours(23), &cfg));
        assert!(crl.is_stale(
            this_update + Duration::days(1) + Duration::seconds(301),
            &cfg
        ));
    }

    #[test]
    fn every_single_bit_flip_is_refused() {
        for i in 0..CRL.len() {
            for bit in [0x01u8, 0x80] {
                let mut der = CRL.to_vec();
                der[i] ^= bit;
                if let Ok(crl) = parse_and_verify(&der) {
                    panic!(
                        "flip of bit {bit:#x} at byte {i} was accepted ({} entries)",
                        crl.revoked.len()
                    );
                }
            }
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(der in proptest::collection::vec(any::<u8>(), 0..2048)) {
            prop_assert!(parse_and_verify(&der).is_err());
        }

        #[test]
        fn truncations_are_refused(cut in 0usize..540) {
            let end = cut.min(CRL.len().saturating_sub(1));
            prop_assert!(parse_and_verify(&CRL[..end]).is_err());
        }
    }
}
