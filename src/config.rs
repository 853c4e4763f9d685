//! Layered configuration: compiled-in defaults → `config/local.toml` or `--config FILE` → environment.
//!
//! Environment variables are `JPKI_FACE__SECTION__KEY` (double underscores separate the levels).
//! Everything is validated in [`Settings::load`]; each error names the key it is about.

pub use crate::crypto::{CryptoSettings, PreviousKek};
pub use crate::domain::Environment;
use crate::redact::Secret;
pub use crate::telemetry::{LogFormat, LogSettings};
pub use crate::usecase::{
    IdempotencySettings, SessionSettings, UseCaseSettings, VerificationSettings,
};
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::Path;

/// The documented defaults, compiled in so the binary runs from any directory.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub environment: Environment,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub sessions: SessionSettings,
    pub crypto: CryptoSettings,
    pub idempotency: IdempotencySettings,
    pub log: LogSettings,
    #[serde(default)]
    pub card: crate::card::CardConfig,
    #[serde(default)]
    pub jlis: crate::jlis::JlisConfig,
    #[serde(default)]
    pub face: crate::face::FaceConfig,
    #[serde(default)]
    pub liveness: crate::liveness::LivenessConfig,
    #[serde(default)]
    pub verification: VerificationSettings,
    #[serde(default)]
    pub webhooks: crate::webhooks::WebhookSettings,
    #[serde(default)]
    pub status_checks: crate::usecase::scheduled::StatusCheckSettings,
    #[serde(default)]
    pub retention: crate::usecase::retention::RetentionSettings,
    #[serde(default)]
    pub claims: crate::claims::ClaimsSettings,
    #[serde(default)]
    pub search: crate::usecase::search::SearchSettings,
    #[serde(default)]
    pub review: crate::usecase::review::ReviewSettings,
    pub console: crate::usecase::operators::ConsoleSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub bind: String,
    pub body_limit_bytes: usize,
    pub card_json_limit_bytes: usize,
    /// How long a graceful shutdown drains in-flight requests before closing what is left.
    pub shutdown_grace_secs: u64,
    /// A request (headers, body and answer) that takes longer answers 503 `deadline_exceeded`.
    pub request_deadline_secs: u64,
    /// A client must send a request's headers within this time; also the idle keep-alive timeout.
    pub header_timeout_secs: u64,
    /// Open connections at most; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Requests per second per tenant (token bucket, per replica); 0 disables.
    pub tenant_rate_per_sec: f64,
    /// The bucket's size: the burst a tenant may send at once.
    pub tenant_burst: f64,
    /// Failed authentications per second one client address may make (refill); 0 disables.
    pub auth_failures_per_sec: f64,
    /// How many failed authentications an address may make at once before it must wait.
    pub auth_failure_burst: f64,
    /// Load balancers whose `X-Forwarded-For` is believed (the per-address failed-auth budget then
    /// counts the client they name, not the balancer). Empty: the TCP peer is the client.
    #[serde(default)]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// When set, `GET /metrics` needs `Authorization: Bearer <token>`; required in production.
    #[serde(default)]
    pub metrics_token: Option<Secret<String>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    /// May carry a password, so it is never printed.
    pub url: Secret<String>,
    pub max_connections: u32,
    pub acquire_timeout_secs: u64,
}

impl Settings {
    /// The slices the use cases read: they never see the whole configuration.
    pub fn use_cases(&self) -> UseCaseSettings {
        UseCaseSettings {
            environment: self.environment,
            sessions: self.sessions.clone(),
            idempotency: self.idempotency.clone(),
            verification: self.verification.clone(),
            face: self.face.clone(),
            liveness: self.liveness.clone(),
            webhooks: self.webhooks.clone(),
            status_checks: self.status_checks.clone(),
            retention: self.retention.clone(),
            claims: self.claims.clone(),
            search: self.search.clone(),
            review: self.review.clone(),
            console: self.console.clone(),
        }
    }
}

/// A configuration error; the message always names the key.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    fn key(key: &str, why: impl std::fmt::Display) -> Self {
        Self(format!("`{key}`: {why}"))
    }
}

impl Settings {
    /// Loads defaults, then `file` (or `config/local.toml` if present), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        match file {
            Some(path) => {
                if !path.exists() {
                    return Err(ConfigError(format!(
                        "--config {}: no such file",
                        path.display()
                    )));
                }
                figment = figment.merge(Toml::file(path));
            }
            None => figment = figment.merge(Toml::file("config/local.toml")),
        }
        figment = figment.merge(Env::prefixed("JPKI_FACE__").split("__"));
        Self::from_figment(figment)
    }

    /// Defaults plus the given TOML text: for tests and tools.
    pub fn from_toml_overrides(toml: &str) -> Result<Self, ConfigError> {
        Self::from_toml_layers(&[toml])
    }

    /// Defaults plus several TOML layers, later ones winning.
    pub fn from_toml_layers(layers: &[&str]) -> Result<Self, ConfigError> {
        let figment = layers
            .iter()
            .fold(Figment::from(Toml::string(DEFAULT_TOML)), |f, layer| {
                f.merge(Toml::string(layer))
            });
        Self::from_figment(figment)
    }

    fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let settings: Settings = figment.extract().map_err(|e| {
            // figment names the key path in its error; keep only that and the reason.
            let key = e.path.join(".");
            ConfigError::key(if key.is_empty() { "(root)" } else { &key }, e.kind)
        })?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.bind_addr()?;
        self.card
            .validate()
            .map_err(|e| ConfigError::key(e.key, e.why))?;
        self.jlis.validate().map_err(|e| match e {
            crate::jlis::BuildError::Config { key, why } => ConfigError::key(key, why),
            other => ConfigError(other.to_string()),
        })?;
        self.webhooks
            .validate()
            .and_then(|()| self.status_checks.validate())
            .and_then(|()| self.retention.validate())
            .and_then(|()| self.search.validate())
            .and_then(|()| self.review.validate())
            .and_then(|()| self.console.validate(self.environment))
            .map_err(|(key, why)| ConfigError::key(key, why))?;
        let url = self.database.url.expose();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(ConfigError::key(
                "database.url",
                "must start with sqlite:// or postgres://",
            ));
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError::key(
                "database.max_connections",
                "must be at least 1",
            ));
        }
        if self.sessions.ttl_secs == 0 || self.sessions.ttl_secs > 86_400 {
            return Err(ConfigError::key(
                "sessions.ttl_secs",
                "must be between 1 and 86400",
            ));
        }
        if self.server.request_deadline_secs == 0 || self.server.request_deadline_secs > 3600 {
            return Err(ConfigError::key(
                "server.request_deadline_secs",
                "must be between 1 and 3600",
            ));
        }
        if self.server.header_timeout_secs == 0 || self.server.header_timeout_secs > 600 {
            return Err(ConfigError::key(
                "server.header_timeout_secs",
                "must be between 1 and 600",
            ));
        }
        if self.server.max_connections == 0 {
            return Err(ConfigError::key(
                "server.max_connections",
                "must be at least 1",
            ));
        }
        let rate = self.server.tenant_rate_per_sec;
        if rate.is_nan() || rate < 0.0 || rate.is_infinite() {
            return Err(ConfigError::key(
                "server.tenant_rate_per_sec",
                "must be a number >= 0 (0 disables)",
            ));
        }
        let burst = self.server.tenant_burst;
        if rate > 0.0 && (burst.is_nan() || burst < 1.0) {
            return Err(ConfigError::key(
                "server.tenant_burst",
                "must be at least 1",
            ));
        }
        let (rate, burst) = (
            self.server.auth_failures_per_sec,
            self.server.auth_failure_burst,
        );
        if rate.is_nan() || rate < 0.0 || rate.is_infinite() {
            return Err(ConfigError::key(
                "server.auth_failures_per_sec",
                "must be a number >= 0 (0 disables)",
            ));
        }
        if rate > 0.0 && (burst.is_nan() || burst < 1.0) {
            return Err(ConfigError::key(
                "server.auth_failure_burst",
                "must be at least 1",
            ));
        }
        if self.idempotency.reservation_secs <= self.server.request_deadline_secs {
            return Err(ConfigError::key(
                "idempotency.reservation_secs",
                "must be longer than server.request_deadline_secs (a running request keeps its key)",
            ));
        }
        if self.server.body_limit_bytes < 1024 {
            return Err(ConfigError::key(
                "server.body_limit_bytes",
                "must be at least 1024",
            ));
        }
        if let Some(kek) = &self.crypto.kek {
            crate::crypto::parse_kek(kek.expose())
                .map_err(|e| ConfigError::key("crypto.kek", e))?;
        }
        for (i, old) in self.crypto.previous_keks.iter().enumerate() {
            crate::crypto::parse_kek(old.key.expose())
                .map_err(|e| ConfigError::key(&format!("crypto.previous_keks[{i}].key"), e))?;
        }
        if self.crypto.kek_id.is_empty() {
            return Err(ConfigError::key("crypto.kek_id", "must not be empty"));
        }
        if self.environment == Environment::Production {
            for (key, value) in [
                ("face.test_panic_marker", &self.face.test_panic_marker),
                ("face.test_stall_marker", &self.face.test_stall_marker),
            ] {
                if value.is_some() {
                    return Err(ConfigError::key(
                        key,
                        "a test-only fault hook; refused when environment = \"production\"",
                    ));
                }
            }
        }
        if self.environment == Environment::Production {
            if self.crypto.kek.is_none() {
                return Err(ConfigError::key(
                    "crypto.kek",
                    "required when environment = \"production\" (32 random bytes, base64; JPKI_FACE__CRYPTO__KEK)",
                ));
            }
            if self.card.trust_dir.is_none() {
                return Err(ConfigError::key(
                    "card.trust_dir",
                    "required when environment = \"production\": the CVC issuer keys and JPKI roots to trust (docs/card.md; JPKI_FACE__CARD__TRUST_DIR)",
                ));
            }
            if self.server.metrics_token.is_none() {
                return Err(ConfigError::key(
                    "server.metrics_token",
                    "required when environment = \"production\": /metrics is served only with this bearer token (JPKI_FACE__SERVER__METRICS_TOKEN)",
                ));
            }
        }
        if self
            .server
            .metrics_token
            .as_ref()
            .is_some_and(|t| t.expose().len() < 16)
        {
            return Err(ConfigError::key(
                "server.metrics_token",
                "must be at least 16 characters",
            ));
        }
        self.claims
            .validate(self.environment)
            .map_err(|(key, why)| ConfigError::key(&key, why))?;
        Ok(())
    }

    pub fn bind_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.server
            .bind
            .parse()
            .map_err(|e| ConfigError::key("server.bind", format!("{e} (want HOST:PORT)")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_validate() {
        let s = Settings::from_toml_overrides("").expect("defaults are valid");
        assert_eq!(s.server.bind, "127.0.0.1:8080");
        assert_eq!(s.sessions.ttl_secs, 600);
        assert_eq!(s.environment, Environment::Development);
    }

    #[test]
    fn errors_name_the_key() {
        let e = Settings::from_toml_overrides("[server]\nbind = \"nonsense\"").unwrap_err();
        assert!(e.to_string().contains("server.bind"), "{e}");
        let e = Settings::from_toml_overrides("[sessions]\nttl_secs = \"ten\"").unwrap_err();
        assert!(e.to_string().contains("sessions.ttl_secs"), "{e}");
        let e = Settings::from_toml_overrides("[crypto]\nkek = \"c2hvcnQ=\"").unwrap_err();
        assert!(e.to_string().contains("crypto.kek"), "{e}");
    }

    #[test]
    fn production_refuses_the_face_fault_hooks() {
        let e = Settings::from_toml_overrides(
            "environment = \"production\"\n[crypto]\nkek = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n[face]\ntest_panic_marker = \"ffd8\"",
        )
        .unwrap_err();
        assert!(e.to_string().contains("face.test_panic_marker"), "{e}");
    }

    #[test]
    fn documented_defaults_of_webhooks_status_checks_and_retention_equal_the_code_defaults() {
        let s = Settings::from_toml_overrides("").expect("defaults");
        assert_eq!(s.webhooks, crate::webhooks::WebhookSettings::default());
        assert_eq!(
            s.status_checks,
            crate::usecase::scheduled::StatusCheckSettings::default()
        );
        assert_eq!(
            s.retention,
            crate::usecase::retention::RetentionSettings::default()
        );
        for (toml, key) in [
            ("[webhooks]\nmax_attempts = 0", "webhooks.max_attempts"),
            ("[webhooks]\nlease_secs = 1", "webhooks.lease_secs"),
            (
                "[status_checks]\ninterval_secs = 0",
                "status_checks.interval_secs",
            ),
            (
                "[retention]\nrejected_retention_secs = 0",
                "retention.rejected_retention_secs",
            ),
        ] {
            let e = Settings::from_toml_overrides(toml).unwrap_err();
            assert!(e.to_string().contains(key), "{e}");
        }
    }

    #[test]
    fn production_requires_a_kek_a_trust_configuration_and_a_metrics_token() {
        let e = Settings::from_toml_overrides("environment = \"production\"").unwrap_err();
        assert!(e.to_string().contains("crypto.kek"), "{e}");
        let kek = "[crypto]\nkek = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n";
        let e = Settings::from_toml_layers(&["environment = \"production\"", kek]).unwrap_err();
        assert!(e.to_string().contains("card.trust_dir"), "{e}");
        let trust = "[card]\ntrust_dir = \"/etc/jpki-face/trust\"\n";
        let e =
            Settings::from_toml_layers(&["environment = \"production\"", kek, trust]).unwrap_err();
        assert!(e.to_string().contains("server.metrics_token"), "{e}");
        let token = "[server]\nmetrics_token = \"0123456789abcdef0123\"\n";
        let e = Settings::from_toml_layers(&["environment = \"production\"", kek, trust, token])
            .unwrap_err();
        assert!(e.to_string().contains("`claims."), "{e}");
        let claims_key = crate::claims::generate_pkcs8_b64();
        let claims_key = claims_key.as_str();
        let claims = format!(
            "[claims]\nissuer = \"https://ekyc.example.jp\"\nsigning_key = \"{claims_key}\"\n"
        );
        Settings::from_toml_layers(&["environment = \"production\"", kek, trust, token, &claims])
            .expect("a complete production configuration");
    }

    #[test]
    fn database_url_is_not_printed() {
        let s = Settings::from_toml_overrides("[database]\nurl = \"postgres://u:hunter2@h/db\"")
            .unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
