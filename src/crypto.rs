//! Envelope encryption of personal data and face templates; crypto-shredding on delete.
//!
//! Each enrollment gets a random 256-bit data key (DEK). Records (identity, templates, the revocation
//! target) are sealed with AES-256-GCM under that DEK; the DEK is stored only wrapped by a
//! key-encryption key (KEK) from the configuration, tagged with the KEK's id so KEKs can rotate.
//! The associated data binds tenant, enrollment and record kind, so a ciphertext moved to another
//! row or another kind fails to open. Deleting the wrapped DEK destroys every record it sealed.

use crate::domain::Environment;
use crate::redact::Secret;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;
use std::path::PathBuf;
use zeroize::Zeroizing;

const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;

/// Parses a key-encryption key: base64 of exactly 32 bytes.
pub fn parse_kek(b64: &str) -> Result<[u8; 32], String> {
    let bytes = Zeroizing::new(
        STANDARD
            .decode(b64.trim())
            .map_err(|_| "not valid base64".to_string())?,
    );
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| format!("must be 32 bytes of base64, got {} bytes", bytes.len()))
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("unknown key-encryption key id")]
    UnknownKek,
    #[error("ciphertext does not open under this key and context")]
    Integrity,
    #[error("malformed ciphertext")]
    Malformed,
    #[error("key file: {0}")]
    KeyFile(String),
}

/// `[crypto]`: owned here; `config` only layers and aggregates it.
#[derive(Debug, Clone, Deserialize)]
pub struct CryptoSettings {
    /// Base64 of 32 bytes.
    #[serde(default)]
    pub kek: Option<Secret<String>>,
    pub kek_id: String,
    #[serde(default)]
    pub previous_keks: Vec<PreviousKek>,
    pub dev_key_file: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PreviousKek {
    pub id: String,
    pub key: Secret<String>,
}

/// What a sealed record is; part of the associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    Identity,
    Template,
    /// The certificate's serial, issuer and validity: what a status check needs and what reveals a person.
    RevocationTarget,
    /// A stored Idempotency-Key answer that holds the enrollment's identity.
    IdempotentAnswer,
    /// A watchlist entry's label and the reason it was listed (issue 21).
    WatchlistLabel,
    WatchlistReason,
    /// A photo of the review evidence (issue 22): chip photo or selfie as JPEG.
    ReviewChipPhoto,
    ReviewSelfie,
    /// A reviewer's note.
    ReviewNote,
}

impl RecordKind {
    fn label(self) -> &'static str {
        match self {
            RecordKind::Identity => "identity",
            RecordKind::Template => "template",
            RecordKind::RevocationTarget => "revocation_target",
            RecordKind::IdempotentAnswer => "idempotent_answer",
            RecordKind::WatchlistLabel => "watchlist_label",
            RecordKind::WatchlistReason => "watchlist_reason",
            RecordKind::ReviewChipPhoto => "review_chip_photo",
            RecordKind::ReviewSelfie => "review_selfie",
            RecordKind::ReviewNote => "review_note",
        }
    }
}

/// Which enrollment of which tenant a key or record belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    pub tenant_id: &'a crate::domain::TenantId,
    pub enrollment_id: &'a crate::domain::EnrollmentId,
}

/// What a data key and the records it seals are bound to (part of the associated data).
pub trait KeyOwner {
    fn aad(&self, what: &str) -> Vec<u8>;
}

/// A watchlist entry of a tenant (issue 21): its own data key, like an enrollment's.
#[derive(Debug, Clone, Copy)]
pub struct EntryOwner<'a> {
    pub tenant_id: &'a crate::domain::TenantId,
    pub entry_id: &'a str,
}

impl KeyOwner for EntryOwner<'_> {
    fn aad(&self, what: &str) -> Vec<u8> {
        let mut aad = b"jpki-face/v1\0".to_vec();
        for part in [self.tenant_id.as_str(), "watchlist", self.entry_id, what] {
            aad.extend_from_slice(part.as_bytes());
            aad.push(0);
        }
        aad
    }
}

impl KeyOwner for Owner<'_> {
    fn aad(&self, what: &str) -> Vec<u8> {
        let mut aad = b"jpki-face/v1\0".to_vec();
        for part in [self.tenant_id.as_str(), self.enrollment_id.as_str(), what] {
            aad.extend_from_slice(part.as_bytes());
            aad.push(0);
        }
        aad
    }
}

/// Which session of which tenant a short-lived record belongs to: the selfie kept by the selfie
/// step (`usecase::selfie_step`) until the session is used. Its own domain label, so nothing sealed for
/// a session opens as an enrollment's record, or the other way round.
#[derive(Debug, Clone, Copy)]
pub struct SessionOwner<'a> {
    pub tenant_id: &'a crate::domain::TenantId,
    pub session_id: &'a crate::domain::SessionId,
}

impl SessionOwner<'_> {
    fn aad(&self, what: &str) -> Vec<u8> {
        let mut aad = b"jpki-face/session/v1\0".to_vec();
        for part in [self.tenant_id.as_str(), self.session_id.as_str(), what] {
            aad.extend_from_slice(part.as_bytes());
            aad.push(0);
        }
        aad
    }
}

/// A data key wrapped by a KEK: what the store keeps.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub kek_id: String,
    pub blob: Vec<u8>,
}

impl std::fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WrappedKey({}, [redacted])", self.kek_id)
    }
}

/// A per-enrollment data key in memory (zeroised on drop).
pub struct DataKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

fn seal_with(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new(key.into());
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        // AES-GCM encryption fails only for inputs beyond 64 GiB, which never reach here.
        .unwrap_or_default();
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
    out.push(FORMAT_V1);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

fn open_with(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let (&version, rest) = sealed.split_first().ok_or(CryptoError::Malformed)?;
    if version != FORMAT_V1 || rest.len() < NONCE_LEN + 16 {
        return Err(CryptoError::Malformed);
    }
    let (nonce, ct) = rest.split_at(NONCE_LEN);
    Aes256Gcm::new(key.into())
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .map_err(|_| CryptoError::Integrity)
}

impl DataKey {
    pub fn seal(&self, owner: impl KeyOwner, kind: RecordKind, plaintext: &[u8]) -> Vec<u8> {
        seal_with(&self.0, &owner.aad(kind.label()), plaintext)
    }

    pub fn open(
        &self,
        owner: impl KeyOwner,
        kind: RecordKind,
        sealed: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        open_with(&self.0, &owner.aad(kind.label()), sealed)
    }

    /// Seals the selfie kept with a session (the selfie step) under that session's data key.
    pub fn seal_for_session(&self, owner: SessionOwner<'_>, plaintext: &[u8]) -> Vec<u8> {
        seal_with(&self.0, &owner.aad("session_selfie"), plaintext)
    }

    pub fn open_for_session(
        &self,
        owner: SessionOwner<'_>,
        sealed: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        open_with(&self.0, &owner.aad("session_selfie"), sealed)
    }
}

/// The configured KEKs: the current one wraps new keys, previous ones still unwrap old keys.
pub struct KeyRing {
    current_id: String,
    keys: HashMap<String, Zeroizing<[u8; 32]>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "KeyRing(current={}, {} keys, [redacted])",
            self.current_id,
            self.keys.len()
        )
    }
}

/// How the current KEK was obtained, so start-up can say so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KekSource {
    Configured,
    DevFileLoaded(std::path::PathBuf),
    DevFileGenerated(std::path::PathBuf),
}

impl KeyRing {
    pub fn new(current_id: &str, current: [u8; 32]) -> Self {
        let mut keys = HashMap::new();
        keys.insert(current_id.to_string(), Zeroizing::new(current));
        Self {
            current_id: current_id.to_string(),
            keys,
        }
    }

    pub fn with_previous(mut self, id: &str, key: [u8; 32]) -> Self {
        self.keys
            .entry(id.to_string())
            .or_insert_with(|| Zeroizing::new(key));
        self
    }

    /// Builds the ring from the settings. Without a configured KEK, development generates one into
    /// `crypto.dev_key_file` (or reads it back); production was already refused by validation.
    pub fn from_settings(
        cfg: &CryptoSettings,
        env: Environment,
    ) -> Result<(Self, KekSource), CryptoError> {
        let (current, source) = match &cfg.kek {
            Some(kek) => (
                parse_kek(kek.expose()).map_err(CryptoError::KeyFile)?,
                KekSource::Configured,
            ),
            None if env == Environment::Production => {
                return Err(CryptoError::KeyFile(
                    "crypto.kek is required in production".into(),
                ))
            }
            None => load_or_create_dev_key(&cfg.dev_key_file)?,
        };
        let mut ring = Self::new(&cfg.kek_id, current);
        for old in &cfg.previous_keks {
            ring = ring.with_previous(
                &old.id,
                parse_kek(old.key.expose()).map_err(CryptoError::KeyFile)?,
            );
        }
        Ok((ring, source))
    }

    pub fn current_id(&self) -> &str {
        &self.current_id
    }

    /// A fresh data key for an enrollment and its wrapped form for the store.
    pub fn new_data_key(&self, owner: impl KeyOwner) -> (DataKey, WrappedKey) {
        let mut dek = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(dek.as_mut());
        let kek = &self.keys[&self.current_id];
        let blob = seal_with(kek, &owner.aad("dek"), dek.as_ref());
        (
            DataKey(dek),
            WrappedKey {
                kek_id: self.current_id.clone(),
                blob,
            },
        )
    }

    /// A fresh data key for one session's kept selfie and its wrapped form for the store.
    pub fn new_session_key(&self, owner: SessionOwner<'_>) -> (DataKey, WrappedKey) {
        let mut dek = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(dek.as_mut());
        let kek = &self.keys[&self.current_id];
        let blob = seal_with(kek, &owner.aad("dek"), dek.as_ref());
        (
            DataKey(dek),
            WrappedKey {
                kek_id: self.current_id.clone(),
                blob,
            },
        )
    }

    pub fn unwrap_session_key(
        &self,
        owner: SessionOwner<'_>,
        wrapped: &WrappedKey,
    ) -> Result<DataKey, CryptoError> {
        let kek = self
            .keys
            .get(&wrapped.kek_id)
            .ok_or(CryptoError::UnknownKek)?;
        let raw = Zeroizing::new(open_with(kek, &owner.aad("dek"), &wrapped.blob)?);
        let key = <[u8; 32]>::try_from(raw.as_slice()).map_err(|_| CryptoError::Malformed)?;
        Ok(DataKey(Zeroizing::new(key)))
    }

    /// Seals a short-lived record that belongs to no enrollment key (stored idempotent answers)
    /// directly under the current KEK; `context` parts are bound as associated data.
    pub fn seal_system(&self, context: &[&str], plaintext: &[u8]) -> Vec<u8> {
        let mut sealed = self.current_id.as_bytes().to_vec();
        sealed.push(0);
        sealed.extend(seal_with(
            &self.keys[&self.current_id],
            &system_aad(context),
            plaintext,
        ));
        sealed
    }

    pub fn open_system(&self, context: &[&str], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let split = sealed
            .iter()
            .position(|&b| b == 0)
            .ok_or(CryptoError::Malformed)?;
        let kek_id = std::str::from_utf8(&sealed[..split]).map_err(|_| CryptoError::Malformed)?;
        let kek = self.keys.get(kek_id).ok_or(CryptoError::UnknownKek)?;
        open_with(kek, &system_aad(context), &sealed[split + 1..])
    }

    pub fn unwrap_key(
        &self,
        owner: impl KeyOwner,
        wrapped: &WrappedKey,
    ) -> Result<DataKey, CryptoError> {
        let kek = self
            .keys
            .get(&wrapped.kek_id)
            .ok_or(CryptoError::UnknownKek)?;
        let raw = Zeroizing::new(open_with(kek, &owner.aad("dek"), &wrapped.blob)?);
        let key = <[u8; 32]>::try_from(raw.as_slice()).map_err(|_| CryptoError::Malformed)?;
        Ok(DataKey(Zeroizing::new(key)))
    }
}

fn system_aad(context: &[&str]) -> Vec<u8> {
    let mut aad = b"jpki-face/system/v1\0".to_vec();
    for part in context {
        aad.extend_from_slice(part.as_bytes());
        aad.push(0);
    }
    aad
}

fn load_or_create_dev_key(path: &Path) -> Result<([u8; 32], KekSource), CryptoError> {
    if path.exists() {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CryptoError::KeyFile(format!("{}: {e}", path.display())))?;
        let key = parse_kek(&text)
            .map_err(|e| CryptoError::KeyFile(format!("{}: {e}", path.display())))?;
        return Ok((key, KekSource::DevFileLoaded(path.to_path_buf())));
    }
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| CryptoError::KeyFile(format!("{}: {e}", dir.display())))?;
    }
    write_private(path, STANDARD.encode(key).as_bytes())
        .map_err(|e| CryptoError::KeyFile(format!("{}: {e}", path.display())))?;
    Ok((key, KekSource::DevFileGenerated(path.to_path_buf())))
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

    use crate::domain::{EnrollmentId, TenantId};
    use std::sync::LazyLock;

    static TEN_A: LazyLock<TenantId> = LazyLock::new(TenantId::new);
    static TEN_B: LazyLock<TenantId> = LazyLock::new(TenantId::new);
    static ENR_1: LazyLock<EnrollmentId> = LazyLock::new(EnrollmentId::new);

    fn owner() -> Owner<'static> {
        Owner {
            tenant_id: &TEN_A,
            enrollment_id: &ENR_1,
        }
    }

    #[test]
    fn seal_and_open_round_trip() {
        let ring = KeyRing::new("k1", [7; 32]);
        let (dek, wrapped) = ring.new_data_key(owner());
        let sealed = dek.seal(owner(), RecordKind::Identity, b"yamada taro");
        assert!(!sealed.windows(6).any(|w| w == b"yamada"));
        let dek2 = ring.unwrap_key(owner(), &wrapped).unwrap();
        assert_eq!(
            dek2.open(owner(), RecordKind::Identity, &sealed).unwrap(),
            b"yamada taro"
        );
    }

    #[test]
    fn a_session_record_is_bound_to_its_session_and_never_opens_as_an_enrollment_record() {
        use crate::domain::SessionId;
        let ring = KeyRing::new("k1", [7; 32]);
        let (s1, s2) = (SessionId::new(), SessionId::new());
        let owner = SessionOwner {
            tenant_id: &TEN_A,
            session_id: &s1,
        };
        let (dek, wrapped) = ring.new_session_key(owner);
        let sealed = dek.seal_for_session(owner, b"selfie evidence");
        let dek2 = ring.unwrap_session_key(owner, &wrapped).unwrap();
        assert_eq!(
            dek2.open_for_session(owner, &sealed).unwrap(),
            b"selfie evidence"
        );
        let other_session = SessionOwner {
            tenant_id: &TEN_A,
            session_id: &s2,
        };
        assert!(ring.unwrap_session_key(other_session, &wrapped).is_err());
        assert!(dek2.open_for_session(other_session, &sealed).is_err());
        let other_tenant = SessionOwner {
            tenant_id: &TEN_B,
            session_id: &s1,
        };
        assert!(dek2.open_for_session(other_tenant, &sealed).is_err());
        // An enrollment's wrapping of the same bytes is another domain.
        assert!(ring.unwrap_key(owner_of_enrollment(), &wrapped).is_err());
    }

    fn owner_of_enrollment() -> Owner<'static> {
        owner()
    }

    #[test]
    fn context_is_bound() {
        let ring = KeyRing::new("k1", [7; 32]);
        let (dek, wrapped) = ring.new_data_key(owner());
        let sealed = dek.seal(owner(), RecordKind::Identity, b"x");
        let other = Owner {
            tenant_id: &TEN_B,
            enrollment_id: &ENR_1,
        };
        assert!(matches!(
            dek.open(other, RecordKind::Identity, &sealed),
            Err(CryptoError::Integrity)
        ));
        assert!(matches!(
            dek.open(owner(), RecordKind::Template, &sealed),
            Err(CryptoError::Integrity)
        ));
        assert!(matches!(
            ring.unwrap_key(other, &wrapped),
            Err(CryptoError::Integrity)
        ));
    }

    #[test]
    fn system_records_are_bound_to_their_context() {
        let ring = KeyRing::new("k1", [3; 32]);
        let sealed = ring.seal_system(&["ten_a", "idem-1"], b"{\"client_token\":\"jfc_x\"}");
        assert_eq!(
            ring.open_system(&["ten_a", "idem-1"], &sealed).unwrap(),
            b"{\"client_token\":\"jfc_x\"}"
        );
        assert!(ring.open_system(&["ten_b", "idem-1"], &sealed).is_err());
    }

    #[test]
    fn rotation_keeps_old_keys_readable() {
        let old = KeyRing::new("k1", [1; 32]);
        let (_, wrapped) = old.new_data_key(owner());
        let new = KeyRing::new("k2", [2; 32]).with_previous("k1", [1; 32]);
        assert!(new.unwrap_key(owner(), &wrapped).is_ok());
        assert!(matches!(
            KeyRing::new("k2", [2; 32]).unwrap_key(owner(), &wrapped),
            Err(CryptoError::UnknownKek)
        ));
    }

    #[test]
    fn dev_key_is_generated_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dev.b64");
        let (k1, s1) = load_or_create_dev_key(&path).unwrap();
        let (k2, s2) = load_or_create_dev_key(&path).unwrap();
        assert_eq!(k1, k2);
        assert!(matches!(s1, KekSource::DevFileGenerated(_)));
        assert!(matches!(s2, KekSource::DevFileLoaded(_)));
    }
}
