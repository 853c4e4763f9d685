//! `[jlis]` configuration: which checker runs and how hard it tries before giving up.
//!
//! Every key has a default (see `config/default.toml`), so an empty `[jlis]` section is valid.

use serde::Deserialize;
use std::path::PathBuf;

/// Which validity checker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// RFC 6960 OCSP over HTTP POST (preferred: same-day status).
    #[default]
    Ocsp,
    /// Download CRLs from the configured URLs and look serials up locally.
    Crl,
    /// Development only: answer a fixed status without any network. Refused in production.
    Static,
}

/// The answer of the static (development) checker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StaticStatus {
    #[default]
    Good,
    /// Revoked with reason `keyCompromise` (→ `certificate_revoked`).
    Revoked,
    /// Revoked with reason `affiliationChanged` (→ `identity_changed`).
    AffiliationChanged,
    Unknown,
}

/// Configuration of the validity checker (`[jlis]` in the config).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JlisConfig {
    pub mode: Mode,
    /// Retry-After (seconds) suggested to clients when a check could not be decided,
    /// except when the circuit breaker is open (then its remaining open time is used).
    pub retry_after_secs: u64,
    /// Outbound proxy for responder and CRL requests (`http://host:port`; may hold credentials, so
    /// never printed). Proxy environment variables are ignored: only this key routes traffic.
    pub http_proxy: Option<crate::redact::Secret<String>>,
    pub ocsp: OcspConfig,
    pub crl: CrlConfig,
    pub breaker: BreakerConfig,
    pub static_status: StaticStatus,
}

impl Default for JlisConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Ocsp,
            retry_after_secs: 30,
            http_proxy: None,
            ocsp: OcspConfig::default(),
            crl: CrlConfig::default(),
            breaker: BreakerConfig::default(),
            static_status: StaticStatus::Good,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OcspConfig {
    /// Responder URL (HTTP POST, `application/ocsp-request`).
    pub url: String,
    /// A responder certificate (PEM or DER) trusted directly, besides the CA itself and
    /// CA-issued delegates with id-kp-OCSPSigning. For platforms that sign with their own key.
    pub responder_cert: Option<PathBuf>,
    /// Send a nonce (RFC 8954) with each request.
    pub nonce: bool,
    /// Accept a response that does not echo our nonce (some responders serve pre-signed answers).
    /// A nonce that is echoed but different is always refused.
    pub accept_missing_nonce: bool,
    pub connect_timeout_ms: u64,
    /// Total time for one HTTP attempt (connect, send, read the body).
    pub timeout_ms: u64,
    /// Additional attempts after the first, for transport errors, HTTP 5xx and `tryLater`.
    pub retries: u32,
    /// Backoff before the first retry; doubles on each further retry.
    pub backoff_ms: u64,
    /// Largest response body accepted, in bytes.
    pub max_response_bytes: usize,
    /// When a response has no nextUpdate: how long after thisUpdate it may still be used.
    pub max_age_secs: u64,
    /// Allowed clock difference between us and the responder, in seconds.
    pub max_skew_secs: u64,
    /// Good answers are reused until min(nextUpdate, now + cache_ttl_secs). 0 disables the cache.
    pub cache_ttl_secs: u64,
    /// Most (issuer, serial) entries kept in the good-answer cache.
    pub cache_max_entries: usize,
}

impl Default for OcspConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8888/".into(),
            responder_cert: None,
            nonce: true,
            accept_missing_nonce: false,
            connect_timeout_ms: 2_000,
            timeout_ms: 5_000,
            retries: 2,
            backoff_ms: 200,
            max_response_bytes: 1 << 20,
            max_age_secs: 3_600,
            max_skew_secs: 300,
            cache_ttl_secs: 300,
            cache_max_entries: 100_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CrlConfig {
    /// CRL download URLs (HTTP). Each CRL is matched to a certificate by its issuer name.
    pub urls: Vec<String>,
    /// How often the background task downloads the CRLs again, in seconds.
    pub refresh_secs: u64,
    /// When a CRL has no nextUpdate: how long after thisUpdate it may still be used.
    pub max_age_secs: u64,
    /// Allowed clock difference between us and the CRL issuer, in seconds.
    pub max_skew_secs: u64,
    pub connect_timeout_ms: u64,
    pub timeout_ms: u64,
    pub retries: u32,
    pub backoff_ms: u64,
    /// Largest CRL accepted, in bytes (J-LIS CRLs are large).
    pub max_bytes: usize,
}

impl Default for CrlConfig {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            refresh_secs: 3_600,
            max_age_secs: 86_400,
            max_skew_secs: 300,
            connect_timeout_ms: 5_000,
            timeout_ms: 120_000,
            retries: 2,
            backoff_ms: 1_000,
            max_bytes: 256 << 20,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Consecutive failed checks (after retries) that open the breaker. 0 disables it.
    pub failure_threshold: u32,
    /// How long an open breaker fails fast before letting one trial request through.
    pub open_secs: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_secs: 30,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Settings;

    #[test]
    fn documented_defaults_equal_the_built_in_ones() {
        let s = Settings::from_toml_overrides("").expect("defaults load");
        let built_in = super::JlisConfig::default();
        // Compare through Debug: the structs hold no floats, so this is exact.
        assert_eq!(format!("{:?}", s.jlis), format!("{built_in:?}"));
    }

    #[test]
    fn keys_override() {
        let s = Settings::from_toml_overrides(
            "[jlis]\nmode = \"crl\"\n[jlis.crl]\nurls = [\"http://127.0.0.1:8889/sign.crl\"]\n[jlis.breaker]\nopen_secs = 5",
        )
        .expect("loads");
        assert_eq!(s.jlis.mode, super::Mode::Crl);
        assert_eq!(s.jlis.crl.urls.len(), 1);
        assert_eq!(s.jlis.breaker.open_secs, 5);
        assert_eq!(s.jlis.breaker.failure_threshold, 5);
        assert!(Settings::from_toml_overrides("[jlis]\nmode = \"sometimes\"").is_err());
        // A misspelt key is an error, not a silently ignored safety setting.
        let e =
            Settings::from_toml_overrides("[jlis.ocsp]\naccept_missing_nonces = true").unwrap_err();
        assert!(e.to_string().contains("jlis.ocsp"), "{e}");
    }
}
