//! Verified claims for the relying party: an enrollment's verified identity as OpenID Connect for
//! Identity Assurance 1.0 `verified_claims` under the `jp_aml` trust framework, signed by the
//! service's own claims key (ES256, compact JWS) and verifiable with the published JWKS.
//!
//! Pure: the settings, the keys (signing, JWKS), the document and the `claims` request parameter.
//! Reading the enrollment and auditing the access is `usecase::claims`; the routes are `http::claims`.

mod document;
mod keys;

pub use document::{
    discovery, Address, AssuranceProcess, CheckDetail, CheckMethod, ClaimName, ClaimSet, Claims,
    ClaimsPayload, Discovery, DocumentDetails, DocumentEvidence, DocumentIssuer, Evidence,
    EvidenceInput, SignatureEvidence, Verification, VerifiedClaims, DOCUMENT_TYPE, TRUST_FRAMEWORK,
};
pub use keys::{generate_pkcs8_b64, ClaimsKeyError, ClaimsKeys, Jwk, Jwks, KeySource};

use crate::domain::Environment;
use crate::redact::Secret;
use serde::Deserialize;
use std::path::PathBuf;

/// What `sub` of a claims token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectSource {
    /// The enrollment id (`enr_…`).
    #[default]
    EnrollmentId,
    /// The RP's own `subject_ref` given when the session was opened; the enrollment id when none was.
    SubjectRef,
}

/// A retired claims key whose public half stays in the JWKS, so tokens it signed still verify.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviousClaimsKey {
    pub key_id: String,
    /// The public key: base64 of the SubjectPublicKeyInfo DER (P-256).
    pub public_key: String,
    /// RFC 3339; after this the key is no longer published. Unset: until it is removed from the list.
    #[serde(default)]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

/// `[claims]`: owned here; `config` only layers and aggregates it.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClaimsSettings {
    /// `iss` of every claims token.
    pub issuer: String,
    /// `sub` of every claims token.
    pub subject: SubjectSource,
    /// The ES256 signing key: base64 of a PKCS#8 DER P-256 private key. Required in production.
    pub signing_key: Option<Secret<String>>,
    /// `kid` of the signing key.
    pub key_id: String,
    /// Retired keys still published in the JWKS during their grace period.
    pub previous_keys: Vec<PreviousClaimsKey>,
    /// Where a development signing key is generated and kept when `signing_key` is unset.
    pub dev_key_file: PathBuf,
}

impl Default for ClaimsSettings {
    fn default() -> Self {
        Self {
            issuer: "http://127.0.0.1:8080".into(),
            subject: SubjectSource::EnrollmentId,
            signing_key: None,
            key_id: "claims-1".into(),
            previous_keys: Vec::new(),
            dev_key_file: PathBuf::from("data/dev-claims-key.b64"),
        }
    }
}

impl ClaimsSettings {
    /// Checks every key; the error names the key it is about.
    pub fn validate(&self, env: Environment) -> Result<(), (String, String)> {
        let err = |key: &str, why: &str| Err((key.to_string(), why.to_string()));
        if self.issuer.trim().is_empty() {
            return err("claims.issuer", "must not be empty");
        }
        if env == Environment::Production && !self.issuer.starts_with("https://") {
            return err(
                "claims.issuer",
                "must be an https:// URL when environment = \"production\"",
            );
        }
        if self.key_id.trim().is_empty() {
            return err("claims.key_id", "must not be empty");
        }
        match &self.signing_key {
            Some(key) => {
                keys::parse_signing_key(key.expose()).map_err(|why| {
                    ("claims.signing_key".to_string(), why)
                })?;
            }
            None if env == Environment::Production => {
                return err(
                    "claims.signing_key",
                    "required when environment = \"production\" (base64 of a PKCS#8 DER P-256 private key; see README)",
                )
            }
            None => {}
        }
        for (i, old) in self.previous_keys.iter().enumerate() {
            if old.key_id.trim().is_empty() || old.key_id == self.key_id {
                return Err((
                    format!("claims.previous_keys[{i}].key_id"),
                    "must be non-empty and differ from claims.key_id".into(),
                ));
            }
            keys::parse_public_key(&old.public_key)
                .map_err(|why| (format!("claims.previous_keys[{i}].public_key"), why))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_refuses_a_missing_key_and_names_it() {
        let s = ClaimsSettings {
            issuer: "https://ekyc.example.jp".into(),
            ..ClaimsSettings::default()
        };
        let (key, _) = s.validate(Environment::Production).unwrap_err();
        assert_eq!(key, "claims.signing_key");
        assert!(s.validate(Environment::Development).is_ok());
    }

    #[test]
    fn a_bad_key_is_named() {
        let s = ClaimsSettings {
            signing_key: Some(Secret::new("bm90IGEga2V5".into())),
            ..ClaimsSettings::default()
        };
        assert_eq!(
            s.validate(Environment::Development).unwrap_err().0,
            "claims.signing_key"
        );
        let s = ClaimsSettings {
            previous_keys: vec![PreviousClaimsKey {
                key_id: "old".into(),
                public_key: "AAAA".into(),
                until: None,
            }],
            ..ClaimsSettings::default()
        };
        assert_eq!(
            s.validate(Environment::Development).unwrap_err().0,
            "claims.previous_keys[0].public_key"
        );
    }

    /// Made by the `openssl` commands of config/default.toml (a test key, used nowhere else).
    const OPENSSL_PKCS8: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgAdgHQUI+hIo/84nCE2b6lhkel47JIyF9D/GA4UiX4W6hRANCAASscJzom240oK/zYQ8AZwrnt8uagGOT9ejhz8oUUQ6TMuYxq1Uj8+FmgG5/ozo0W+RZ9Wa+im6bCefXLZU10CW6";
    const OPENSSL_SPKI: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAErHCc6JtuNKCv82EPAGcK57fLmoBjk/Xo4c/KFFEOkzLmMatVI/PhZoBuf6M6NFvkWfVmvopumwnn1y2VNdAlug==";

    #[test]
    fn keys_made_by_the_documented_openssl_commands_are_accepted() {
        let private = keys::parse_signing_key(OPENSSL_PKCS8).unwrap();
        let public = keys::parse_public_key(OPENSSL_SPKI).unwrap();
        assert_eq!(private.verifying_key(), &public);
    }

    #[test]
    fn documented_defaults_equal_the_code_defaults_and_production_names_the_key() {
        let s = crate::config::Settings::from_toml_overrides("")
            .unwrap()
            .claims;
        let d = ClaimsSettings::default();
        assert_eq!(
            (&s.issuer, s.subject, &s.key_id, &s.dev_key_file),
            (&d.issuer, d.subject, &d.key_id, &d.dev_key_file)
        );
        assert!(s.signing_key.is_none() && s.previous_keys.is_empty());
        let e = crate::config::Settings::from_toml_overrides(
            "environment = \"production\"\n[crypto]\nkek = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n[card]\ntrust_dir = \"/etc/jpki-face/trust\"\n[server]\nmetrics_token = \"0123456789abcdef0123\"\n[claims]\nissuer = \"https://ekyc.example.jp\"",
        )
        .unwrap_err();
        assert!(e.to_string().contains("claims.signing_key"), "{e}");
    }

    #[test]
    fn the_key_is_never_printed() {
        let s = ClaimsSettings {
            signing_key: Some(Secret::new("c2VjcmV0LWtleQ==".into())),
            ..ClaimsSettings::default()
        };
        assert!(!format!("{s:?}").contains("c2VjcmV0"));
    }
}
