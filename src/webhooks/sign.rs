//! Standard Webhooks signatures (which Stripe-style receivers verify the same way):
//! `webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, several signatures
//! separated by spaces while a rotated secret is in its grace period. The secret is shown to the RP
//! as `whsec_<base64 of the 32 key bytes>`; the HMAC key is those bytes.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

pub const SECRET_PREFIX: &str = "whsec_";

/// A fresh signing key.
pub fn new_key() -> Zeroizing<[u8; 32]> {
    Zeroizing::new(crate::domain::random_bytes::<32>())
}

/// How the RP is shown the key.
pub fn secret_text(key: &[u8]) -> String {
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// One `v1,<base64>` signature.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header value: one signature per valid key, current key first.
pub fn header(keys: &[&[u8]], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|k| signature(k, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        // The test vector of the Standard Webhooks specification's reference libraries.
        let key = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = signature(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn header_carries_one_signature_per_key_and_the_secret_its_prefix() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let h = header(&[&a, &b], "evt_x", 10, b"{}");
        let parts: Vec<&str> = h.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], signature(&a, "evt_x", 10, b"{}"));
        assert_eq!(parts[1], signature(&b, "evt_x", 10, b"{}"));
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
        assert_ne!(parts[0], parts[1]);
        let text = secret_text(&a);
        assert!(text.starts_with("whsec_"));
        assert_eq!(STANDARD.decode(&text[6..]).unwrap(), a);
        // Any change of id, time or body changes the signature.
        assert_ne!(signature(&a, "evt_y", 10, b"{}"), parts[0]);
        assert_ne!(signature(&a, "evt_x", 11, b"{}"), parts[0]);
        assert_ne!(signature(&a, "evt_x", 10, b"{ }"), parts[0]);
    }
}
