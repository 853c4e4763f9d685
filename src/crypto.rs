//! Envelope encryption of personal data and face templates; crypto-shredding on delete.

use base64::Engine;

/// Parses a key-encryption key: base64 of exactly 32 bytes.
pub fn parse_kek(b64: &str) -> Result<[u8; 32], String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| "not valid base64".to_string())?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| format!("must be 32 bytes, got {}", bytes.len()))
}
