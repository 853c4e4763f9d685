//! RSA public keys in the card's `90 <exponent> 91 <modulus>` form, and the signature primitives the checks use.

use super::tlv;
use rsa::{BigUint, Pkcs1v15Sign, RsaPublicKey};
use sha2::{Digest, Sha256};

/// Smallest modulus accepted: the JPKI law requires RSA of at least 2048 bits.
pub const MIN_MODULUS_BITS: usize = 2048;
/// Largest modulus accepted; bounds the work a hostile key can cause.
pub const MAX_MODULUS_BITS: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not a `90 exponent, 91 modulus` pair: {0}")]
    Shape(String),
    #[error("modulus of {0} bits is outside {MIN_MODULUS_BITS}..={MAX_MODULUS_BITS}")]
    Size(usize),
    #[error("not a usable RSA key")]
    Invalid,
}

/// Parses `90 LL exponent 91 LL modulus` filling `bytes` exactly.
pub fn parse_card_key(bytes: &[u8]) -> Result<RsaPublicKey, KeyError> {
    let items = tlv::read_all(bytes, 0, 3).map_err(|e| KeyError::Shape(e.to_string()))?;
    let [e, n] = items.as_slice() else {
        return Err(KeyError::Shape(format!("{} elements, want 2", items.len())));
    };
    if e.tlv.tag != 0x90 || n.tlv.tag != 0x91 {
        return Err(KeyError::Shape(format!(
            "tags {:02X} {:02X}, want 90 91",
            e.tlv.tag, n.tlv.tag
        )));
    }
    from_parts(n.tlv.value, e.tlv.value)
}

/// Builds a key from big-endian modulus and exponent bytes, enforcing the size bounds.
pub fn from_parts(modulus: &[u8], exponent: &[u8]) -> Result<RsaPublicKey, KeyError> {
    let n = BigUint::from_bytes_be(modulus);
    let bits = n.bits();
    if !(MIN_MODULUS_BITS..=MAX_MODULUS_BITS).contains(&bits) {
        return Err(KeyError::Size(bits));
    }
    if exponent.len() > 8 {
        return Err(KeyError::Invalid);
    }
    RsaPublicKey::new(n, BigUint::from_bytes_be(exponent)).map_err(|_| KeyError::Invalid)
}

/// Encodes a key in the card's `90/91` form (used by the test-card generator).
pub fn encode_card_key(key: &RsaPublicKey) -> Vec<u8> {
    use rsa::traits::PublicKeyParts;
    let e = key.e().to_bytes_be();
    let n = key.n().to_bytes_be();
    let mut out = Vec::with_capacity(n.len() + e.len() + 8);
    push_tlv(&mut out, 0x90, &e);
    push_tlv(&mut out, 0x91, &n);
    out
}

/// Appends one TLV with a one- or two-byte tag and the shortest length form.
pub fn push_tlv(out: &mut Vec<u8>, tag: u16, value: &[u8]) {
    if tag > 0xFF {
        out.extend_from_slice(&tag.to_be_bytes());
    } else {
        out.push(tag as u8);
    }
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len <= 0xFF {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        let len = u16::try_from(len).unwrap_or(u16::MAX);
        out.push(0x82);
        out.extend_from_slice(&len.to_be_bytes());
    }
    out.extend_from_slice(value);
}

/// RSASSA-PKCS1-v1_5 with SHA-256 over `message`.
pub fn verify_sha256(key: &RsaPublicKey, message: &[u8], signature: &[u8]) -> bool {
    let digest = Sha256::digest(message);
    key.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, signature)
        .is_ok()
}

/// PKCS#1 v1.5 type-1 padding over `block` exactly as given (no DigestInfo added): the 券面AP's DF28
/// signs a non-standard 96-byte-digest DigestInfo this way.
pub fn verify_unprefixed(key: &RsaPublicKey, block: &[u8], signature: &[u8]) -> bool {
    key.verify(Pkcs1v15Sign::new_unprefixed(), block, signature)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_wrong_shapes_and_sizes() {
        assert!(matches!(
            parse_card_key(&[0x91, 0x01, 0x05, 0x90, 0x01, 0x03]),
            Err(KeyError::Shape(_))
        ));
        assert!(matches!(
            parse_card_key(&[0x90, 0x01, 0x03]),
            Err(KeyError::Shape(_))
        ));
        // A 1024-bit modulus is refused whatever else is right.
        let mut small = vec![0x90, 0x03, 1, 0, 1, 0x91, 0x81, 0x80, 0xC1];
        small.extend(std::iter::repeat_n(0x11u8, 127));
        assert_eq!(parse_card_key(&small), Err(KeyError::Size(1024)));
    }

    #[test]
    fn round_trips_the_card_form() {
        let mut n = vec![0xC3u8];
        n.extend(std::iter::repeat_n(0x5Au8, 254));
        n.push(0x01); // odd, 2048 bits
        let key = from_parts(&n, &[1, 0, 1]).unwrap();
        let enc = encode_card_key(&key);
        assert_eq!(&enc[..9], &[0x90, 0x03, 1, 0, 1, 0x91, 0x82, 0x01, 0x00]);
        assert_eq!(parse_card_key(&enc).unwrap(), key);
    }
}
