//! The claims keys: the current ES256 signing key with its `kid`, and the public keys published in
//! the JWKS (the current one and retired ones in their grace period). A token is a compact JWS
//! (RFC 7515) `base64url(header).base64url(payload).base64url(r || s)`, small enough to write here.

use super::ClaimsSettings;
use crate::domain::Environment;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum ClaimsKeyError {
    #[error("{key}: {why}")]
    Config { key: String, why: String },
    #[error("claims key file {path}: {why}")]
    KeyFile { path: PathBuf, why: String },
}

/// How the signing key was obtained, so start-up can say so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Configured,
    DevFileLoaded(PathBuf),
    DevFileGenerated(PathBuf),
}

pub(crate) fn parse_signing_key(b64: &str) -> Result<SigningKey, String> {
    let der = Zeroizing::new(
        STANDARD
            .decode(b64.trim())
            .map_err(|_| "not valid base64".to_string())?,
    );
    SigningKey::from_pkcs8_der(&der).map_err(|_| "not a PKCS#8 DER P-256 private key".to_string())
}

pub(crate) fn parse_public_key(b64: &str) -> Result<VerifyingKey, String> {
    let der = STANDARD
        .decode(b64.trim())
        .map_err(|_| "not valid base64".to_string())?;
    VerifyingKey::from_public_key_der(&der)
        .map_err(|_| "not a SubjectPublicKeyInfo DER P-256 public key".to_string())
}

/// One public key of the JWKS (RFC 7517, EC P-256).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Jwk {
    /// `EC`
    pub kty: String,
    /// `P-256`
    pub crv: String,
    /// base64url of the 32-byte x coordinate.
    pub x: String,
    /// base64url of the 32-byte y coordinate.
    pub y: String,
    pub kid: String,
    /// `sig`
    #[serde(rename = "use")]
    pub use_: String,
    /// `ES256`
    pub alg: String,
}

/// `GET /.well-known/jwks.json`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Jwks {
    /// The current signing key first, then retired keys still in their grace period.
    pub keys: Vec<Jwk>,
}

fn jwk(kid: &str, key: &VerifyingKey) -> Jwk {
    let point = key.to_encoded_point(false);
    // An uncompressed point always has both coordinates.
    let coord =
        |c: Option<&p256::FieldBytes>| c.map(|c| URL_SAFE_NO_PAD.encode(c)).unwrap_or_default();
    Jwk {
        kty: "EC".into(),
        crv: "P-256".into(),
        x: coord(point.x()),
        y: coord(point.y()),
        kid: kid.to_string(),
        use_: "sig".into(),
        alg: "ES256".into(),
    }
}

struct Published {
    kid: String,
    key: VerifyingKey,
    until: Option<chrono::DateTime<chrono::Utc>>,
}

/// The signing key and the published keys. `Debug` never shows a private key.
pub struct ClaimsKeys {
    kid: String,
    signer: SigningKey,
    previous: Vec<Published>,
}

impl std::fmt::Debug for ClaimsKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ClaimsKeys(kid={}, {} previous, [redacted])",
            self.kid,
            self.previous.len()
        )
    }
}

impl ClaimsKeys {
    pub fn new(kid: &str, signer: SigningKey) -> Self {
        Self {
            kid: kid.to_string(),
            signer,
            previous: Vec::new(),
        }
    }

    /// Publishes a retired key until `until` (forever when `None`).
    pub fn with_previous(
        mut self,
        kid: &str,
        key: VerifyingKey,
        until: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Self {
        self.previous.push(Published {
            kid: kid.to_string(),
            key,
            until,
        });
        self
    }

    /// From the settings. Without a configured key, development generates one into
    /// `claims.dev_key_file` (or reads it back); production is refused, naming the key.
    pub fn from_settings(
        cfg: &ClaimsSettings,
        env: Environment,
    ) -> Result<(Self, KeySource), ClaimsKeyError> {
        let config = |key: &str, why: String| ClaimsKeyError::Config {
            key: key.to_string(),
            why,
        };
        let (signer, source) = match &cfg.signing_key {
            Some(b64) => (
                parse_signing_key(b64.expose()).map_err(|why| config("claims.signing_key", why))?,
                KeySource::Configured,
            ),
            None if env == Environment::Production => {
                return Err(config(
                    "claims.signing_key",
                    "required when environment = \"production\"".into(),
                ))
            }
            None => load_or_create_dev_key(&cfg.dev_key_file)?,
        };
        let mut keys = Self::new(&cfg.key_id, signer);
        for (i, old) in cfg.previous_keys.iter().enumerate() {
            let key = parse_public_key(&old.public_key)
                .map_err(|why| config(&format!("claims.previous_keys[{i}].public_key"), why))?;
            keys = keys.with_previous(&old.key_id, key, old.until);
        }
        Ok((keys, source))
    }

    /// `kid` of the signing key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The compact JWS of `payload` (ES256, `typ: JWT`, this key's `kid`).
    pub fn sign(&self, payload: &impl Serialize) -> Result<String, serde_json::Error> {
        let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(payload)?)
        );
        // ECDSA over SHA-256; the JWS form is r || s, 32 bytes each (RFC 7518 §3.4).
        let signature: Signature = self.signer.sign(signing_input.as_bytes());
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        ))
    }

    /// The keys a receiver verifies with, at `now`: the current one, then retired ones whose grace
    /// period has not ended.
    pub fn jwks(&self, now: chrono::DateTime<chrono::Utc>) -> Jwks {
        let current = jwk(&self.kid, self.signer.verifying_key());
        let previous = self
            .previous
            .iter()
            .filter(|p| p.until.is_none_or(|until| now < until))
            .map(|p| jwk(&p.kid, &p.key));
        Jwks {
            keys: std::iter::once(current).chain(previous).collect(),
        }
    }
}

/// A fresh P-256 key as the configuration takes it: base64 of its PKCS#8 DER.
pub fn generate_pkcs8_b64() -> Zeroizing<String> {
    let key = SigningKey::random(&mut rand::rngs::OsRng);
    // Encoding a freshly generated key cannot fail.
    let der = key
        .to_pkcs8_der()
        .map(|d| Zeroizing::new(d.as_bytes().to_vec()))
        .unwrap_or_default();
    Zeroizing::new(STANDARD.encode(der.as_slice()))
}

fn load_or_create_dev_key(path: &Path) -> Result<(SigningKey, KeySource), ClaimsKeyError> {
    let file_err = |why: String| ClaimsKeyError::KeyFile {
        path: path.to_path_buf(),
        why,
    };
    let read = || -> Result<SigningKey, ClaimsKeyError> {
        let text =
            Zeroizing::new(std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?);
        parse_signing_key(&text).map_err(file_err)
    };
    if path.exists() {
        return Ok((read()?, KeySource::DevFileLoaded(path.to_path_buf())));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| file_err(e.to_string()))?;
    }
    // Written whole to a private temporary file, then linked into place: a process starting at the
    // same moment either wins the link or reads the winner's complete file.
    let b64 = generate_pkcs8_b64();
    let tmp = path.with_extension(format!("tmp-{}", hex::encode(rand::random::<[u8; 6]>())));
    write_private(&tmp, b64.as_bytes()).map_err(|e| file_err(e.to_string()))?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok((
            parse_signing_key(&b64).map_err(file_err)?,
            KeySource::DevFileGenerated(path.to_path_buf()),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok((read()?, KeySource::DevFileLoaded(path.to_path_buf())))
        }
        Err(e) => Err(file_err(e.to_string())),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier;

    fn keys() -> ClaimsKeys {
        ClaimsKeys::new("k1", parse_signing_key(&generate_pkcs8_b64()).unwrap())
    }

    #[test]
    fn a_token_verifies_with_its_jwk_and_a_flipped_byte_does_not() {
        let keys = keys();
        let token = keys.sign(&serde_json::json!({"sub": "enr_x"})).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], "k1");
        let jwk = &keys.jwks(chrono::Utc::now()).keys[0];
        let mut sec1 = vec![4u8];
        sec1.extend(URL_SAFE_NO_PAD.decode(&jwk.x).unwrap());
        sec1.extend(URL_SAFE_NO_PAD.decode(&jwk.y).unwrap());
        let public = VerifyingKey::from_sec1_bytes(&sec1).unwrap();
        let sig = Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
        let input = format!("{}.{}", parts[0], parts[1]);
        assert!(public.verify(input.as_bytes(), &sig).is_ok());
        let mut tampered = input.into_bytes();
        tampered[5] ^= 1;
        assert!(public.verify(&tampered, &sig).is_err());
    }

    #[test]
    fn retired_keys_are_published_during_their_grace_period_only() {
        let old = parse_signing_key(&generate_pkcs8_b64()).unwrap();
        let now = chrono::Utc::now();
        let keys = keys()
            .with_previous(
                "k0",
                *old.verifying_key(),
                Some(now + chrono::Duration::hours(1)),
            )
            .with_previous(
                "k-1",
                *old.verifying_key(),
                Some(now - chrono::Duration::hours(1)),
            );
        let kids: Vec<String> = keys.jwks(now).keys.into_iter().map(|k| k.kid).collect();
        assert_eq!(kids, ["k1", "k0"]);
        assert!(!format!("{keys:?}").contains("SigningKey"));
    }

    #[test]
    fn dev_key_is_generated_once_then_reused_and_production_refuses_none() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ClaimsSettings {
            dev_key_file: dir.path().join("sub/claims.b64"),
            ..ClaimsSettings::default()
        };
        let (k1, s1) = ClaimsKeys::from_settings(&cfg, Environment::Development).unwrap();
        let (k2, s2) = ClaimsKeys::from_settings(&cfg, Environment::Development).unwrap();
        assert!(matches!(s1, KeySource::DevFileGenerated(_)));
        assert!(matches!(s2, KeySource::DevFileLoaded(_)));
        let now = chrono::Utc::now();
        assert_eq!(k1.jwks(now).keys, k2.jwks(now).keys);
        let e = ClaimsKeys::from_settings(&cfg, Environment::Production).unwrap_err();
        assert!(e.to_string().contains("claims.signing_key"), "{e}");
    }
}
