//! Trust configuration: CVC issuer keys (key-ID → RSA key) and the JPKI signing CA roots.
//!
//! Directory layout read by [`TrustStore::load`] (the `card.trust_dir` setting):
//! ```text
//! cvc-issuers/<KEY-ID as 32 hex digits>.pem      RSA public key, "PUBLIC KEY" or "RSA PUBLIC KEY" PEM
//! cvc-issuers/<KEY-ID as 32 hex digits>.modulus  or: the modulus in hex (exponent 65537)
//! jpki-roots/*.pem                               one or more "CERTIFICATE" blocks (all generations)
//! ```
//! Nothing is built in: without a trust directory every card is `unknown_issuer` / `untrusted_certificate`.

use super::cert::rsa_key;
use super::record::key_id_display;
use super::{rsakey, CardConfig};
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::RsaPublicKey;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use x509_parser::prelude::{FromDer, X509Certificate};

/// A pinned JPKI signing CA certificate.
#[derive(Clone)]
pub struct TrustedRoot {
    pub der: Vec<u8>,
    pub key: RsaPublicKey,
    pub subject_der: Vec<u8>,
    pub subject: String,
    /// basicConstraints present with cA = TRUE.
    pub is_ca: bool,
    /// The root's validity period, Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
}

impl TrustedRoot {
    /// Whether `unix_secs` lies inside the root's validity period.
    pub fn valid_at(&self, unix_secs: i64) -> bool {
        (self.not_before..=self.not_after).contains(&unix_secs)
    }
}

/// The configured trust anchors. Cheap to share behind an `Arc`.
#[derive(Clone)]
pub struct TrustStore {
    cvc_issuers: BTreeMap<[u8; 16], RsaPublicKey>,
    roots: Vec<TrustedRoot>,
    max_face_record_bytes: usize,
    signing_policy_oids: Vec<String>,
}

impl std::fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustStore")
            .field(
                "cvc_issuers",
                &self
                    .cvc_issuers
                    .keys()
                    .map(key_id_display)
                    .collect::<Vec<_>>(),
            )
            .field(
                "roots",
                &self.roots.iter().map(|r| &r.subject).collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {why}")]
    Invalid { path: PathBuf, why: String },
}

impl TrustStore {
    /// No anchors at all: every check that needs one fails closed.
    pub fn empty() -> Self {
        Self {
            cvc_issuers: BTreeMap::new(),
            roots: Vec::new(),
            max_face_record_bytes: CardConfig::default().max_face_record_bytes,
            signing_policy_oids: CardConfig::default().signing_policy_oids,
        }
    }

    /// Reads a trust directory (layout in the module docs). Missing sub-folders are empty, not errors.
    pub fn load(dir: &Path) -> Result<Self, TrustError> {
        let mut store = Self::empty();
        if !dir.is_dir() {
            return Err(TrustError::Invalid {
                path: dir.to_path_buf(),
                why: "not a directory".into(),
            });
        }
        for path in list(&dir.join("cvc-issuers"))? {
            let (Some(stem), Some(ext)) = (
                path.file_stem().and_then(|s| s.to_str()),
                path.extension().and_then(|s| s.to_str()),
            ) else {
                continue;
            };
            if ext != "pem" && ext != "modulus" {
                continue;
            }
            let invalid = |why: String| TrustError::Invalid {
                path: path.clone(),
                why,
            };
            let id: [u8; 16] = hex::decode(stem)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(|| invalid("file name must be the 16-byte key-ID in hex".into()))?;
            let text = read_text(&path)?;
            let key = if ext == "pem" {
                RsaPublicKey::from_public_key_pem(text.trim())
                    .or_else(|_| RsaPublicKey::from_pkcs1_pem(text.trim()))
                    .map_err(|e| invalid(format!("not an RSA public key PEM: {e}")))?
            } else {
                let hex_digits: String = text
                    .chars()
                    .filter(|c| !c.is_whitespace() && *c != ':')
                    .collect();
                let n = hex::decode(hex_digits)
                    .map_err(|e| invalid(format!("modulus is not hex: {e}")))?;
                rsakey::from_parts(&n, &[1, 0, 1]).map_err(|e| invalid(e.to_string()))?
            };
            check_size(&key).map_err(invalid)?;
            store.cvc_issuers.insert(id, key);
        }
        for path in list(&dir.join("jpki-roots"))? {
            if path.extension().and_then(|s| s.to_str()) != Some("pem") {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(|source| TrustError::Io {
                path: path.clone(),
                source,
            })?;
            let mut found = 0;
            for pem in x509_parser::pem::Pem::iter_from_buffer(&bytes) {
                let pem = pem.map_err(|e| TrustError::Invalid {
                    path: path.clone(),
                    why: format!("bad PEM: {e}"),
                })?;
                if pem.label != "CERTIFICATE" {
                    continue;
                }
                store
                    .add_root(&pem.contents)
                    .map_err(|why| TrustError::Invalid {
                        path: path.clone(),
                        why,
                    })?;
                found += 1;
            }
            if found == 0 {
                return Err(TrustError::Invalid {
                    path,
                    why: "no CERTIFICATE in the file".into(),
                });
            }
        }
        Ok(store)
    }

    /// Loads `config.trust_dir` (or nothing) and applies the configured limits and policies.
    pub fn from_config(config: &CardConfig) -> Result<Self, TrustError> {
        config.validate().map_err(|e| TrustError::Invalid {
            path: PathBuf::from(e.key),
            why: e.why,
        })?;
        let mut store = match &config.trust_dir {
            Some(dir) => Self::load(dir)?,
            None => Self::empty(),
        };
        store.max_face_record_bytes = config.max_face_record_bytes;
        store.signing_policy_oids = config.signing_policy_oids.clone();
        Ok(store)
    }

    /// True if `policies` (a certificate's policy OIDs) holds one of the configured signing policies.
    pub fn accepts_policy(&self, policies: &[String]) -> bool {
        policies
            .iter()
            .any(|p| self.signing_policy_oids.iter().any(|want| want == p))
    }

    /// Adds a CVC issuer key (tests and tools).
    pub fn add_cvc_issuer(&mut self, key_id: [u8; 16], key: RsaPublicKey) {
        self.cvc_issuers.insert(key_id, key);
    }

    /// Adds a JPKI signing CA root from DER.
    pub fn add_root(&mut self, der: &[u8]) -> Result<(), String> {
        let (rest, cert) =
            X509Certificate::from_der(der).map_err(|e| format!("not a certificate: {e}"))?;
        if !rest.is_empty() {
            return Err("bytes after the certificate".into());
        }
        let key = rsa_key(&cert)?;
        let is_ca = cert
            .basic_constraints()
            .map_err(|_| "basicConstraints malformed or repeated".to_string())?
            .is_some_and(|bc| bc.value.ca);
        if !is_ca {
            // Kept (so such a card is reported as `root_not_ca`, not `untrusted_chain`), but said loudly.
            tracing::warn!(subject = %cert.subject(), "configured JPKI root has no CA basicConstraints");
        }
        let validity = cert.validity();
        self.roots.push(TrustedRoot {
            der: der.to_vec(),
            key,
            subject_der: cert.subject().as_raw().to_vec(),
            subject: cert.subject().to_string(),
            is_ca,
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
        });
        Ok(())
    }

    pub fn cvc_issuer(&self, key_id: &[u8; 16]) -> Option<&RsaPublicKey> {
        self.cvc_issuers.get(key_id)
    }

    pub fn roots(&self) -> &[TrustedRoot] {
        &self.roots
    }

    pub fn max_face_record_bytes(&self) -> usize {
        self.max_face_record_bytes
    }

    /// Number of CVC issuers and roots, for the startup log.
    pub fn counts(&self) -> (usize, usize) {
        (self.cvc_issuers.len(), self.roots.len())
    }
}

fn check_size(key: &RsaPublicKey) -> Result<(), String> {
    use rsa::traits::PublicKeyParts;
    let bits = key.n().bits();
    if (rsakey::MIN_MODULUS_BITS..=rsakey::MAX_MODULUS_BITS).contains(&bits) {
        Ok(())
    } else {
        Err(format!("{bits}-bit key is outside the accepted sizes"))
    }
}

fn read_text(path: &Path) -> Result<String, TrustError> {
    std::fs::read_to_string(path).map_err(|source| TrustError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Files in `dir`, sorted; an absent directory is empty.
fn list(dir: &Path) -> Result<Vec<PathBuf>, TrustError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(TrustError::Io {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| TrustError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        if entry.path().is_file() {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}
