//! The `FF20` records with a `DF21` offset table (券面AP EF 0002 and 入力補助AP EF 0002) and the
//! other fixed-shape card files (`FF30` integrity, `7F21` CVC).

use super::rsakey::{self, KeyError};
use super::tlv::{self, Tlv};
use super::InvalidCardData;
use rsa::RsaPublicKey;

/// A parsed `FF20 { DF21 offsets, DF22 … }` record: the children in tag order, `DF21` first.
#[derive(Debug, Clone)]
pub struct OffsetRecord<'a> {
    /// `children[0]` is DF21; `children[i]` has tag `DF21 + i`.
    pub children: Vec<Tlv<'a>>,
    /// The FF20 value from DF22 to its end: what the 入力補助AP's DF32 digest covers.
    pub after_offsets: &'a [u8],
}

/// The checks both record shapes share: size cap, the outer tag, only filler after it, and exactly
/// `count` children. Returns the record, its header length and the children with their offsets.
fn read_record<'a>(
    bytes: &'a [u8],
    outer: u16,
    file: &'static str,
    count: usize,
    max_bytes: usize,
) -> Result<(Tlv<'a>, usize, Vec<tlv::Located<'a>>), InvalidCardData> {
    if bytes.len() > max_bytes {
        return Err(InvalidCardData::new(
            file,
            format!("{} bytes, more than the {max_bytes} allowed", bytes.len()),
        ));
    }
    let (record, rest) =
        tlv::read(bytes, 0).map_err(|e| InvalidCardData::new(file, e.to_string()))?;
    if record.tag != outer {
        return Err(InvalidCardData::new(
            file,
            format!("starts with tag {:04X}, want {outer:04X}", record.tag),
        ));
    }
    if !tlv::is_filler(rest) {
        return Err(InvalidCardData::new(
            file,
            "bytes other than 00/FF filler after the record",
        ));
    }
    let header = record.raw.len() - record.value.len();
    let items = tlv::read_all(record.value, header, count)
        .map_err(|e| InvalidCardData::new(file, e.to_string()))?;
    if items.len() != count {
        return Err(InvalidCardData::new(
            file,
            format!("{} elements, want {}", items.len(), count),
        ));
    }
    Ok((record, header, items))
}

/// Parses `outer` (e.g. `FF20`) holding exactly `names.len()` children tagged `DF21`, `DF22`, … in order.
///
/// Checks: total size ≤ `max_bytes`; only `00`/`FF` filler after the record; every DF21 offset equals
/// where the element really starts (counted from the start of the file). `names[i]` names child `DF21+i`
/// in errors; `file` names the file.
pub fn parse_offset_record<'a>(
    bytes: &'a [u8],
    outer: u16,
    file: &'static str,
    names: &'static [&'static str],
    max_bytes: usize,
) -> Result<OffsetRecord<'a>, InvalidCardData> {
    let (record, header, items) = read_record(bytes, outer, file, names.len(), max_bytes)?;
    for (i, (item, name)) in items.iter().zip(names).enumerate() {
        let want = 0xDF21 + i as u16;
        if item.tlv.tag != want {
            return Err(InvalidCardData::new(
                name,
                format!("found tag {:04X} here", item.tlv.tag),
            ));
        }
    }
    let table = items.first().map(|l| l.tlv.value).unwrap_or(&[]);
    let offsets_name = names.first().copied().unwrap_or(file);
    let expected = items.len().saturating_sub(1);
    if table.len() != expected * 2 {
        return Err(InvalidCardData::new(
            offsets_name,
            format!("{} bytes, want {}", table.len(), expected * 2),
        ));
    }
    for (pair, item) in table.chunks_exact(2).zip(items.iter().skip(1)) {
        let claimed = usize::from(u16::from_be_bytes([pair[0], pair[1]]));
        if claimed != item.offset {
            return Err(InvalidCardData::new(
                offsets_name,
                format!(
                    "offset of {:04X} is {claimed}, but it starts at {}",
                    item.tlv.tag, item.offset
                ),
            ));
        }
    }
    let after_offsets = match items.get(1) {
        Some(first) => record.value.get(first.offset - header..).unwrap_or(&[]),
        None => &[],
    };
    Ok(OffsetRecord {
        children: items.iter().map(|l| l.tlv).collect(),
        after_offsets,
    })
}

/// Parses a fixed list of primitive TLVs under `outer`, in order, with filler allowed after.
pub fn parse_fixed<'a>(
    bytes: &'a [u8],
    outer: u16,
    file: &'static str,
    tags: &[(u16, &'static str)],
    max_bytes: usize,
) -> Result<Vec<Tlv<'a>>, InvalidCardData> {
    let (_, _, items) = read_record(bytes, outer, file, tags.len(), max_bytes)?;
    for (item, (tag, name)) in items.iter().zip(tags) {
        if item.tlv.tag != *tag {
            return Err(InvalidCardData::new(
                name,
                format!("found tag {:04X} here", item.tlv.tag),
            ));
        }
    }
    Ok(items.into_iter().map(|l| l.tlv).collect())
}

/// A card-verifiable certificate `7F21 { 5F4E body, 5F37 signature }`.
#[derive(Clone)]
pub struct Cvc<'a> {
    /// The 16-byte key-ID of the key that signed this CVC (looked up in the trust table).
    pub issuer_key_id: [u8; 16],
    /// The 16-byte key-ID of the certified key.
    pub subject_key_id: [u8; 16],
    /// The certified key: it signs the data records (DF28, DF33).
    pub subject_key: RsaPublicKey,
    /// The 5F4E value: what 5F37 signs.
    pub body: &'a [u8],
    pub signature: &'a [u8],
}

impl std::fmt::Debug for Cvc<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cvc")
            .field("issuer_key_id", &key_id_display(&self.issuer_key_id))
            .field("subject_key_id", &key_id_display(&self.subject_key_id))
            .finish_non_exhaustive()
    }
}

/// The largest CVC accepted (a 2048-bit one is 565 bytes; 4096-bit keys fit too).
pub const MAX_CVC_BYTES: usize = 2048;

/// Which application a CVC belongs to: it names the CVC in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CvcFile {
    /// 券面AP EF 0004 (`kenmen.cvc`).
    Kenmen,
    /// 入力補助AP EF 0004 (`hojo.cvc`).
    Hojo,
}

impl CvcFile {
    fn names(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::Kenmen => ("kenmen.cvc", "kenmen.cvc/5F4E", "kenmen.cvc/5F37"),
            Self::Hojo => ("hojo.cvc", "hojo.cvc/5F4E", "hojo.cvc/5F37"),
        }
    }
}

/// Parses a CVC `7F21 { 5F4E issuerId(16) ‖ subjectId(16) ‖ 90/91 key, 5F37 signature }`.
pub fn parse_cvc(bytes: &[u8], which: CvcFile) -> Result<Cvc<'_>, InvalidCardData> {
    let (file, body_name, sig_name) = which.names();
    let parts = parse_fixed(
        bytes,
        0x7F21,
        file,
        &[(0x5F4E, body_name), (0x5F37, sig_name)],
        MAX_CVC_BYTES,
    )?;
    let (body, signature) = match parts.as_slice() {
        [b, s] => (b.value, s.value),
        _ => return Err(InvalidCardData::new(file, "want 5F4E and 5F37")),
    };
    let (ids, key) = body.split_at_checked(32).ok_or_else(|| {
        InvalidCardData::new(
            body_name,
            format!("{} bytes, too short for two key-IDs", body.len()),
        )
    })?;
    let mut issuer_key_id = [0u8; 16];
    let mut subject_key_id = [0u8; 16];
    issuer_key_id.copy_from_slice(&ids[..16]);
    subject_key_id.copy_from_slice(&ids[16..]);
    let subject_key = rsakey::parse_card_key(key)
        .map_err(|e: KeyError| InvalidCardData::new(body_name, e.to_string()))?;
    if signature.is_empty() {
        return Err(InvalidCardData::new(sig_name, "empty signature"));
    }
    Ok(Cvc {
        issuer_key_id,
        subject_key_id,
        subject_key,
        body,
        signature,
    })
}

/// Builds a 16-byte key-ID the way the cards do: 7 ASCII digits, `08 05`, 3 ASCII digits, zero padding.
pub fn make_key_id(authority: &str, serial: &str) -> [u8; 16] {
    let mut id = [0u8; 16];
    let a = authority.as_bytes();
    let s = serial.as_bytes();
    for (dst, src) in id.iter_mut().zip(a.iter().take(7)) {
        *dst = *src;
    }
    id[7] = 0x08;
    id[8] = 0x05;
    for (dst, src) in id[9..12].iter_mut().zip(s.iter().take(3)) {
        *dst = *src;
    }
    id
}

/// Human form of a key-ID: `6000023/001` when it has the usual shape, hex otherwise.
pub fn key_id_display(id: &[u8; 16]) -> String {
    let digits = |b: &[u8]| b.iter().all(u8::is_ascii_digit);
    if digits(&id[..7]) && id[7..9] == [0x08, 0x05] && digits(&id[9..12]) {
        format!(
            "{}/{}",
            String::from_utf8_lossy(&id[..7]),
            String::from_utf8_lossy(&id[9..12])
        )
    } else {
        hex::encode_upper(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: &[&str] = &["t/DF21", "t/DF22", "t/DF23"];

    fn sample() -> Vec<u8> {
        // FF20 0F | DF21 04 0009 000D | DF22 01 'A' | DF23 01 'B'  (offsets from the file start)
        vec![
            0xFF, 0x20, 0x0F, 0xDF, 0x21, 0x04, 0x00, 0x09, 0x00, 0x0D, 0xDF, 0x22, 0x01, b'A',
            0xDF, 0x23, 0x01, b'B',
        ]
    }

    fn fixed_offsets(mut v: Vec<u8>) -> Vec<u8> {
        v[7] = 0x0A;
        v[9] = 0x0E;
        v
    }

    #[test]
    fn offsets_are_checked_against_real_positions() {
        let good = fixed_offsets(sample());
        let rec = parse_offset_record(&good, 0xFF20, "t", NAMES, 1024).unwrap();
        assert_eq!(rec.children.len(), 3);
        assert_eq!(rec.after_offsets, &good[10..]);
        let err = parse_offset_record(&sample(), 0xFF20, "t", NAMES, 1024).unwrap_err();
        assert_eq!(err.element, "t/DF21");
    }

    #[test]
    fn filler_is_ignored_but_garbage_and_size_are_not() {
        let mut padded = fixed_offsets(sample());
        padded.extend([0xFF, 0xFF, 0x00]);
        assert!(parse_offset_record(&padded, 0xFF20, "t", NAMES, 1024).is_ok());
        let mut garbage = fixed_offsets(sample());
        garbage.push(0x42);
        assert!(parse_offset_record(&garbage, 0xFF20, "t", NAMES, 1024)
            .unwrap_err()
            .detail
            .contains("filler"));
        assert!(parse_offset_record(&padded, 0xFF20, "t", NAMES, 10)
            .unwrap_err()
            .detail
            .contains("allowed"));
        let good = fixed_offsets(sample());
        let err =
            parse_offset_record(&good[..good.len() - 1], 0xFF20, "t", NAMES, 1024).unwrap_err();
        assert_eq!(err.element, "t");
    }

    #[test]
    fn key_ids_display_like_the_card() {
        let id = make_key_id("6000023", "001");
        assert_eq!(key_id_display(&id), "6000023/001");
        assert_eq!(key_id_display(&[0xAB; 16]), "AB".repeat(16));
    }
}
