//! The 入力補助AP records: attributes (EF 0002, `FF20`) and their integrity record (EF 0003, `FF30`).
//!
//! DF31 in the integrity record is SHA-256 of the My Number file, which is brute-forceable, so it is treated
//! as the My Number itself: it stays in a zeroised buffer, is used only to rebuild the signed bytes, and is
//! never compared, logged or returned.

use super::record;
use super::rsakey;
use super::InvalidCardData;
use chrono::NaiveDate;
use rsa::RsaPublicKey;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

pub(crate) const NAMES: &[&str] = &[
    "hojo.attributes/DF21",
    "hojo.attributes/DF22",
    "hojo.attributes/DF23",
    "hojo.attributes/DF24",
    "hojo.attributes/DF25",
];

/// Cap for the attribute and integrity files (the real EF 0002 is a few hundred bytes).
pub const MAX_HOJO_BYTES: usize = 4096;

/// 基本4情報 as the 入力補助AP stores them.
#[derive(Clone)]
pub struct HojoAttributes<'a> {
    pub name: &'a str,
    pub address: &'a str,
    pub birth_date: NaiveDate,
    pub sex: super::Sex,
    /// The FF20 value from DF22 on: DF32 is its SHA-256.
    pub digest_input: &'a [u8],
}

impl std::fmt::Debug for HojoAttributes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HojoAttributes([redacted])")
    }
}

impl<'a> HojoAttributes<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, InvalidCardData> {
        let rec =
            record::parse_offset_record(bytes, 0xFF20, "hojo.attributes", NAMES, MAX_HOJO_BYTES)?;
        let el = |i: usize| -> &'a [u8] { rec.children.get(i).map(|t| t.value).unwrap_or(&[]) };
        let text = |i: usize| -> Result<&'a str, InvalidCardData> {
            std::str::from_utf8(el(i)).map_err(|_| InvalidCardData::new(NAMES[i], "not UTF-8"))
        };
        let birth_date = super::kenmen::parse_yyyymmdd(el(3))
            .ok_or_else(|| InvalidCardData::new(NAMES[3], "not a YYYYMMDD date"))?;
        let sex = match el(4) {
            [d] => super::Sex::from_code(*d)
                .ok_or_else(|| InvalidCardData::new(NAMES[4], "not a sex code"))?,
            _ => return Err(InvalidCardData::new(NAMES[4], "want one digit")),
        };
        Ok(Self {
            name: text(1)?,
            address: text(2)?,
            birth_date,
            sex,
            digest_input: rec.after_offsets,
        })
    }
}

/// The integrity record. DF31 is held zeroised and never exposed.
pub struct HojoIntegrity {
    signed: Zeroizing<Vec<u8>>,
    attributes_digest: [u8; 32],
    signature: Vec<u8>,
}

impl std::fmt::Debug for HojoIntegrity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HojoIntegrity([redacted])")
    }
}

impl HojoIntegrity {
    pub fn parse(bytes: &[u8]) -> Result<Self, InvalidCardData> {
        let parts = record::parse_fixed(
            bytes,
            0xFF30,
            "hojo.integrity",
            &[
                (0xDF31, "hojo.integrity/DF31"),
                (0xDF32, "hojo.integrity/DF32"),
                (0xDF33, "hojo.integrity/DF33"),
            ],
            MAX_HOJO_BYTES,
        )?;
        let [df31, df32, df33] = parts.as_slice() else {
            return Err(InvalidCardData::new(
                "hojo.integrity",
                "want DF31, DF32, DF33",
            ));
        };
        if df31.value.len() != 32 {
            return Err(InvalidCardData::new("hojo.integrity/DF31", "want 32 bytes"));
        }
        let attributes_digest: [u8; 32] = df32
            .value
            .try_into()
            .map_err(|_| InvalidCardData::new("hojo.integrity/DF32", "want 32 bytes"))?;
        if df33.value.is_empty() {
            return Err(InvalidCardData::new(
                "hojo.integrity/DF33",
                "empty signature",
            ));
        }
        // DF33 signs the DF31 and DF32 TLVs; keep that byte string (it contains DF31) zeroised.
        let mut signed = Zeroizing::new(Vec::with_capacity(df31.raw.len() + df32.raw.len()));
        signed.extend_from_slice(df31.raw);
        signed.extend_from_slice(df32.raw);
        Ok(Self {
            signed,
            attributes_digest,
            signature: df33.value.to_vec(),
        })
    }

    /// True if DF33 verifies with `key` and DF32 is the digest of these attributes.
    pub fn verify(&self, key: &RsaPublicKey, attributes: &HojoAttributes<'_>) -> bool {
        let digest_ok =
            Sha256::digest(attributes.digest_input).as_slice() == self.attributes_digest;
        digest_ok && rsakey::verify_sha256(key, &self.signed, &self.signature)
    }
}
