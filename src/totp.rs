//! One-time passwords of RFC 6238 (TOTP) over RFC 4226 (HOTP), as authenticator apps compute them:
//! HMAC-SHA-1, 6 digits, 30-second steps, the step before and after now accepted for clock drift.
//! Pure: the caller keeps the last accepted step per operator and refuses a step it has seen (replay).

use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// Seconds per time step (RFC 6238 `X`).
pub const STEP_SECS: i64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Steps either side of now a code may come from.
pub const SKEW_STEPS: i64 = 1;
/// Bytes of a new secret: 160 bits, the HMAC-SHA-1 block's natural key size (RFC 4226 §4).
pub const SECRET_BYTES: usize = 20;

/// HOTP (RFC 4226 §5.3): the dynamically truncated HMAC-SHA-1 of the counter, `digits` long.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    // HMAC accepts keys of every length, so this cannot fail.
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    binary % 10u32.pow(digits)
}

/// The time step of a Unix time (seconds).
pub fn step_of(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(STEP_SECS)
}

/// The code of `step`, zero-padded to [`DIGITS`].
pub fn code_of_step(secret: &[u8], step: i64) -> String {
    format!(
        "{:0width$}",
        hotp(secret, step.max(0) as u64, DIGITS),
        width = DIGITS as usize
    )
}

/// The step within ±[`SKEW_STEPS`] of `unix_secs` whose code is `code`, if any. Every candidate is
/// compared (in constant time), whichever matches.
pub fn matching_step(secret: &[u8], code: &str, unix_secs: i64) -> Option<i64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_of(unix_secs);
    let mut found = None;
    for step in (now - SKEW_STEPS)..=(now + SKEW_STEPS) {
        let expected = code_of_step(secret, step);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// A new random secret.
pub fn new_secret() -> [u8; SECRET_BYTES] {
    crate::domain::random_bytes::<SECRET_BYTES>()
}

/// The secret as authenticator apps take it: RFC 4648 base32, upper case, no padding.
pub fn secret_base32(secret: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(secret)
}

/// The `otpauth://` URI of a secret (what a QR code would carry). `account` is a login name, which
/// the console restricts to characters that need no escaping.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    format!(
        "otpauth://totp/{issuer}:{account}?secret={}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        secret_base32(secret)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, the SHA-1 column (8 digits, the ASCII seed "12345678901234567890").
    #[test]
    fn rfc6238_appendix_b_sha1_vectors() {
        let seed = b"12345678901234567890";
        for (time, expected) in [
            (59_i64, 94_287_082_u32),
            (1_111_111_109, 7_081_804),
            (1_111_111_111, 14_050_471),
            (1_234_567_890, 89_005_924),
            (2_000_000_000, 69_279_037),
            (20_000_000_000, 65_353_130),
        ] {
            assert_eq!(hotp(seed, step_of(time) as u64, 8), expected, "T = {time}");
        }
    }

    /// RFC 4226 appendix D: HOTP counters 0..9 with the same seed, 6 digits.
    #[test]
    fn rfc4226_appendix_d_vectors() {
        let expected = [
            755_224, 287_082, 359_152, 969_429, 338_314, 254_676, 287_922, 162_583, 399_871,
            520_489,
        ];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(hotp(b"12345678901234567890", counter as u64, 6), *code);
        }
    }

    #[test]
    fn codes_match_within_one_step_only() {
        let secret = b"12345678901234567890";
        let now = 1_111_111_111;
        let step = step_of(now);
        for delta in -1..=1 {
            let code = code_of_step(secret, step + delta);
            assert_eq!(matching_step(secret, &code, now), Some(step + delta));
        }
        assert_eq!(
            matching_step(secret, &code_of_step(secret, step + 2), now),
            None
        );
        assert_eq!(
            matching_step(secret, &code_of_step(secret, step - 2), now),
            None
        );
        assert_eq!(matching_step(secret, "12345", now), None);
        assert_eq!(matching_step(secret, "abcdef", now), None);
        assert_eq!(code_of_step(secret, 1).len(), 6);
    }

    #[test]
    fn secrets_print_as_unpadded_base32_in_the_uri() {
        assert_eq!(
            secret_base32(b"12345678901234567890"),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        let uri = otpauth_uri("jpki-face", "alice", b"12345678901234567890");
        assert_eq!(
            uri,
            "otpauth://totp/jpki-face:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=jpki-face&algorithm=SHA1&digits=6&period=30"
        );
    }
}
