//! The test-card generator behind `jpki-face dev card …` (issue 3; the command is `cli::dev`).
//! Development and tests only.
//!
//! It makes real-shaped data with our own keys: a CVC root and municipal key (key-IDs `9000023/001`,
//! `9000033/001`), a `O=JPKI-TEST` signing CA with an OCSP signer, index.txt and CRL, and per person the
//! signing certificate with the JPKI SAN profile, the 券面AP record with a JPEG 2000 photo, and optionally the
//! 入力補助AP records. See docs/card.md for a walk-through.

mod hierarchy;
mod jp2;
mod keys;
mod lock;
mod mutate;
mod person;
mod pki;
mod portrait;
mod records;
pub mod vcard;

pub use hierarchy::{
    TestHierarchy, DEFAULT_CRL_URL, DEFAULT_OCSP_URL, HOJO_ROOT_KEY_ID, KENMEN_ROOT_KEY_ID,
    UNKNOWN_ROOT_KEY_ID,
};
pub use jp2::encode_rgb as encode_jp2;
pub use mutate::{mutate, Mutant};
pub use person::{Defect, PersonId, PersonRecord, PersonSpec, PhotoSource};
pub use portrait::synthetic_face;
pub use x509_cert::ext::pkix::CrlReason;

use anyhow::{Context, Result};
use base64::Engine;

/// Decodes a session nonce: base64url (the API's form) or standard base64, 32 bytes.
pub fn decode_nonce(s: &str) -> Result<[u8; 32]> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
    let bytes = [URL_SAFE_NO_PAD, URL_SAFE, STANDARD]
        .iter()
        .find_map(|e| e.decode(s.trim()).ok())
        .context("--nonce is not base64url")?;
    bytes
        .try_into()
        .map_err(|v: Vec<u8>| anyhow::anyhow!("--nonce decodes to {} bytes, want 32", v.len()))
}
