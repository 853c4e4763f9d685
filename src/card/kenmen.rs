//! The 券面AP card-face record (EF 0002, `FF20`) and its three-hash issuer signature (card-data.md §0 steps 1, 3).

use super::record::{self, OffsetRecord};
use super::rsakey;
use super::tlv::Tlv;
use super::InvalidCardData;
use chrono::NaiveDate;
use rsa::RsaPublicKey;
use sha2::{Digest, Sha256};

pub(crate) const NAMES: &[&str] = &[
    "kenmen.face/DF21",
    "kenmen.face/DF22",
    "kenmen.face/DF23",
    "kenmen.face/DF24",
    "kenmen.face/DF25",
    "kenmen.face/DF26",
    "kenmen.face/DF27",
    "kenmen.face/DF28",
    "kenmen.face/DF29",
    "kenmen.face/DF2A",
];

/// The DigestInfo header for the 96-byte (3 × SHA-256) digest: SHA-256's OID with an `04 60` octet string.
pub const THREE_HASH_DIGEST_INFO_PREFIX: [u8; 19] = [
    0x30, 0x71, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x60,
];

/// A strictly parsed card-face record. Borrowed from the submitted bytes.
#[derive(Clone)]
pub struct FaceRecord<'a> {
    pub birth_date: NaiveDate,
    pub sex: super::Sex,
    /// DF24: the card's own key, which proves the card is present (not the data signer).
    pub card_key: RsaPublicKey,
    /// DF27: the face photo (JPEG 2000), handed to the face engine as is.
    pub photo: &'a [u8],
    /// DF28: the issuer's signature over the three hashes.
    pub signature: &'a [u8],
    /// DF29: card expiry. Not covered by DF28, so informational only.
    pub expiry_unauthenticated: Option<NaiveDate>,
    record: OffsetRecord<'a>,
}

impl std::fmt::Debug for FaceRecord<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FaceRecord([redacted])")
    }
}

impl<'a> FaceRecord<'a> {
    /// Parses EF 0002 of the 券面AP. Every element must be present, in order, with a correct offset.
    pub fn parse(bytes: &'a [u8], max_bytes: usize) -> Result<Self, InvalidCardData> {
        let record = record::parse_offset_record(bytes, 0xFF20, "kenmen.face", NAMES, max_bytes)?;
        let el = |i: usize| -> &'a [u8] { record.children.get(i).map(|t| t.value).unwrap_or(&[]) };
        let birth_date = parse_yyyymmdd(el(1))
            .ok_or_else(|| InvalidCardData::new(NAMES[1], "not a YYYYMMDD date"))?;
        let sex = match el(2) {
            [d] => super::Sex::from_code(*d)
                .ok_or_else(|| InvalidCardData::new(NAMES[2], "not a sex code"))?,
            _ => return Err(InvalidCardData::new(NAMES[2], "want one digit")),
        };
        let card_key = rsakey::parse_card_key(el(3))
            .map_err(|e| InvalidCardData::new(NAMES[3], e.to_string()))?;
        if el(6).is_empty() {
            return Err(InvalidCardData::new(NAMES[6], "empty photo"));
        }
        if el(7).is_empty() {
            return Err(InvalidCardData::new(NAMES[7], "empty signature"));
        }
        let expiry_unauthenticated = parse_yyyymmdd(el(8));
        Ok(Self {
            birth_date,
            sex,
            card_key,
            photo: el(6),
            signature: el(7),
            expiry_unauthenticated,
            record,
        })
    }

    fn raw(&self, i: usize) -> &'a [u8] {
        self.record
            .children
            .get(i)
            .map(|t: &Tlv<'a>| t.raw)
            .unwrap_or(&[])
    }

    /// The 115-byte block DF28 signs: DigestInfo header ‖ H(DF22‖DF23‖DF24) ‖ H(DF25‖DF26) ‖ H(DF27),
    /// each hash over the full TLVs.
    pub fn signed_block(&self) -> Vec<u8> {
        three_hash_block(&self.record.children)
    }

    /// Verifies DF28 with the data-signing key from the CVC.
    pub fn verify_issuer_signature(&self, issuer_key: &RsaPublicKey) -> bool {
        rsakey::verify_unprefixed(issuer_key, &self.signed_block(), self.signature)
    }

    /// The full TLV (tag, length, value) of element `tag` (`0xDF21`…`0xDF2A`); empty for other tags.
    pub fn element_raw(&self, tag: u16) -> &'a [u8] {
        self.raw(usize::from(tag.wrapping_sub(0xDF21)))
    }
}

/// Computes the DF28 block from the children `DF21..` (only DF22–DF27 are used).
pub fn three_hash_block(children: &[Tlv<'_>]) -> Vec<u8> {
    let raw = |i: usize| children.get(i).map(|t| t.raw).unwrap_or(&[]);
    let mut block = Vec::with_capacity(115);
    block.extend_from_slice(&THREE_HASH_DIGEST_INFO_PREFIX);
    let mut h = Sha256::new();
    h.update(raw(1));
    h.update(raw(2));
    h.update(raw(3));
    block.extend_from_slice(&h.finalize());
    let mut h = Sha256::new();
    h.update(raw(4));
    h.update(raw(5));
    block.extend_from_slice(&h.finalize());
    block.extend_from_slice(&Sha256::digest(raw(6)));
    block
}

/// `YYYYMMDD` in ASCII digits.
pub fn parse_yyyymmdd(b: &[u8]) -> Option<NaiveDate> {
    if b.len() != 8 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let s = std::str::from_utf8(b).ok()?;
    NaiveDate::parse_from_str(s, "%Y%m%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_strict() {
        assert_eq!(
            parse_yyyymmdd(b"19800217"),
            NaiveDate::from_ymd_opt(1980, 2, 17)
        );
        assert_eq!(parse_yyyymmdd(b"19800230"), None);
        assert_eq!(parse_yyyymmdd(b"1980021"), None);
        assert_eq!(parse_yyyymmdd(b"+9800217"), None);
    }
}
