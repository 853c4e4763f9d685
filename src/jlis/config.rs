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
    /// Complete-CRL download URLs (HTTP), for certificates whose CRL distribution point is not in
    /// `distribution_points`. Each CRL is matched to a certificate by its issuer name and scope.
    pub urls: Vec<String>,
    /// CRL URLs by the certificate's CRL distribution point (`[[jlis.crl.distribution_points]]`).
    /// The URL a certificate names is never fetched: its distribution point only selects an entry here.
    pub distribution_points: Vec<CrlDistributionPoint>,
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
            distribution_points: Vec::new(),
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

/// One CRL partition: which certificates it is for, and where to download it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrlDistributionPoint {
    /// The distribution point name as the certificate carries it: `URI:http://…`, or `DirName:` and the
    /// directory name in RFC 4514 form (most specific first), e.g.
    /// `DirName:CN=Chiyoda-ku,OU=Tokyo-to,OU=CRL Distribution Points,OU=JPKI for digital signature,O=JPKI,C=JP`.
    pub name: String,
    /// Where to download that partition's complete CRL (http:// or https://).
    pub url: String,
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

/// Canonical text of a distribution point name, as [`CrlDistributionPoint::name`] writes it.
pub(crate) fn canonical_dp_name(name: &str) -> Result<String, String> {
    if let Some(uri) = name.strip_prefix("URI:") {
        check_url(uri)?;
        Ok(format!("URI:{uri}"))
    } else if let Some(dn) = name.strip_prefix("DirName:") {
        use std::str::FromStr;
        let parsed = x509_cert::name::Name::from_str(dn)
            .map_err(|e| format!("{dn:?} is not an RFC 4514 name: {e}"))?;
        Ok(format!("DirName:{parsed}"))
    } else {
        Err(format!("{name:?}: want `URI:…` or `DirName:…`"))
    }
}

fn check_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?}: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!("{url:?}: must be an http:// or https:// URL"));
    }
    Ok(())
}

impl JlisConfig {
    /// Checks every value; the error names the key. Called when the settings load and again when a
    /// checker is built.
    pub fn validate(&self) -> Result<(), super::BuildError> {
        let bad = |key: &'static str, why: String| Err(super::BuildError::Config { key, why });
        if let Err(why) = check_url(&self.ocsp.url) {
            return bad("jlis.ocsp.url", why);
        }
        for (key, value) in [
            ("jlis.ocsp.max_age_secs", self.ocsp.max_age_secs),
            ("jlis.ocsp.connect_timeout_ms", self.ocsp.connect_timeout_ms),
            ("jlis.ocsp.timeout_ms", self.ocsp.timeout_ms),
            ("jlis.crl.max_age_secs", self.crl.max_age_secs),
            ("jlis.crl.refresh_secs", self.crl.refresh_secs),
            ("jlis.crl.connect_timeout_ms", self.crl.connect_timeout_ms),
            ("jlis.crl.timeout_ms", self.crl.timeout_ms),
        ] {
            if value == 0 {
                return bad(key, "must be at least 1".into());
            }
        }
        for (key, value) in [
            ("jlis.ocsp.max_skew_secs", self.ocsp.max_skew_secs),
            ("jlis.crl.max_skew_secs", self.crl.max_skew_secs),
        ] {
            if value > 86_400 {
                return bad(key, "must be at most 86400".into());
            }
        }
        for url in &self.crl.urls {
            if let Err(why) = check_url(url) {
                return bad("jlis.crl.urls", why);
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, dp) in self.crl.distribution_points.iter().enumerate() {
            let name = match canonical_dp_name(&dp.name) {
                Ok(n) => n,
                Err(why) => {
                    return bad("jlis.crl.distribution_points.name", format!("[{i}]: {why}"))
                }
            };
            if !seen.insert(name) {
                return bad(
                    "jlis.crl.distribution_points.name",
                    format!("[{i}]: {:?} is listed twice", dp.name),
                );
            }
            if let Err(why) = check_url(&dp.url) {
                return bad("jlis.crl.distribution_points.url", format!("[{i}]: {why}"));
            }
        }
        if self.mode == Mode::Crl
            && self.crl.urls.is_empty()
            && self.crl.distribution_points.is_empty()
        {
            return bad(
                "jlis.crl.urls",
                "at least one URL is needed in crl mode (here or in jlis.crl.distribution_points)"
                    .into(),
            );
        }
        Ok(())
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

    #[test]
    fn distribution_points_load_and_bad_values_name_their_key() {
        let s = Settings::from_toml_overrides(
            "[jlis]\nmode = \"crl\"\n[[jlis.crl.distribution_points]]\nname = \"DirName:CN=Chiyoda-ku,OU=Tokyo-to,O=JPKI,C=JP\"\nurl = \"http://127.0.0.1:8889/chiyoda.crl\"\n",
        )
        .expect("loads");
        assert_eq!(s.jlis.crl.distribution_points.len(), 1);
        assert!(s.jlis.validate().is_ok());
        let err = |toml: &str| Settings::from_toml_overrides(toml).unwrap_err().to_string();
        let e = err("[jlis.ocsp]\nurl = \"ftp://x/\"");
        assert!(e.contains("jlis.ocsp.url"), "{e}");
        let e = err("[jlis.ocsp]\nmax_age_secs = 0");
        assert!(e.contains("jlis.ocsp.max_age_secs"), "{e}");
        let e = err("[jlis.crl]\nurls = [\"not a url\"]");
        assert!(e.contains("jlis.crl.urls"), "{e}");
        let e = err(
            "[[jlis.crl.distribution_points]]\nname = \"http://x/crl\"\nurl = \"http://x/crl\"",
        );
        assert!(e.contains("jlis.crl.distribution_points.name"), "{e}");
        let e = err("[[jlis.crl.distribution_points]]\nname = \"URI:http://x/crl\"\nurl = \"x\"");
        assert!(e.contains("jlis.crl.distribution_points.url"), "{e}");
        let e = err("[[jlis.crl.distribution_points]]\nname = \"URI:http://x/a\"\nurl = \"http://x/a\"\n[[jlis.crl.distribution_points]]\nname = \"URI:http://x/a\"\nurl = \"http://x/b\"");
        assert!(e.contains("twice"), "{e}");
        let e = err("[jlis]\nmode = \"crl\"");
        assert!(e.contains("jlis.crl.urls"), "{e}");
        // Loading the settings runs the same checks.
        let e = Settings::from_toml_overrides("[jlis.crl]\nmax_age_secs = 0").unwrap_err();
        assert!(e.to_string().contains("jlis.crl.max_age_secs"), "{e}");
    }

    #[test]
    fn directory_names_are_compared_in_canonical_form() {
        let a = super::canonical_dp_name("DirName:CN=Chiyoda-ku,OU=Tokyo-to,O=JPKI,C=JP").unwrap();
        assert_eq!(a, "DirName:CN=Chiyoda-ku,OU=Tokyo-to,O=JPKI,C=JP");
        assert!(super::canonical_dp_name("DirName:not a name").is_err());
        assert!(super::canonical_dp_name("URI:http://127.0.0.1/x.crl").is_ok());
    }
}
