//! Strict BER-TLV reader for the card files (券面AP, 入力補助AP, CVC).
//!
//! Only what the My Number Card uses is accepted: one- or two-byte tags (`DF21`, `7F21`, `5F4E`, …) and
//! definite lengths up to two length bytes (`82 LL LL`, so at most 65 535). Every read is bounds-checked,
//! nothing is allocated from a length field, and errors say where the problem is.

use std::fmt;

/// One TLV, borrowing from the input.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The tag as written: `0x90` for one byte, `0xDF21` for two.
    pub tag: u16,
    /// The value bytes.
    pub value: &'a [u8],
    /// The whole TLV (tag, length and value): the signatures cover these bytes.
    pub raw: &'a [u8],
}

impl fmt::Debug for Tlv<'_> {
    // Values can be personal data; print only the shape.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tlv({:04X}, {} bytes)", self.tag, self.value.len())
    }
}

impl Tlv<'_> {
    /// Constructed tags have bit 6 of the first tag byte set (`FF20`, `7F21`).
    pub fn is_constructed(&self) -> bool {
        let first = if self.tag > 0xFF {
            (self.tag >> 8) as u8
        } else {
            self.tag as u8
        };
        first & 0x20 != 0
    }
}

/// Why a TLV could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlvError {
    #[error("input ends inside the tag at byte {0}")]
    TruncatedTag(usize),
    #[error("tag at byte {0} is longer than two bytes")]
    TagTooLong(usize),
    #[error("input ends inside the length at byte {0}")]
    TruncatedLength(usize),
    #[error("unsupported length form {form:#04X} at byte {at}")]
    BadLengthForm { at: usize, form: u8 },
    #[error("value at byte {at} claims {len} bytes but only {available} remain")]
    TruncatedValue {
        at: usize,
        len: usize,
        available: usize,
    },
}

/// Reads one TLV at the start of `buf`. Returns it and the bytes after it.
///
/// `base` is the offset of `buf` in the whole file, used only in error messages.
pub fn read(buf: &[u8], base: usize) -> Result<(Tlv<'_>, &[u8]), TlvError> {
    let first = *buf.first().ok_or(TlvError::TruncatedTag(base))?;
    let mut pos = 1;
    let tag = if first & 0x1F == 0x1F {
        let second = *buf.get(1).ok_or(TlvError::TruncatedTag(base + 1))?;
        // A set high bit would announce a third tag byte; no card file uses one.
        if second & 0x80 != 0 {
            return Err(TlvError::TagTooLong(base));
        }
        pos = 2;
        u16::from(first) << 8 | u16::from(second)
    } else {
        u16::from(first)
    };
    let len_at = base + pos;
    let form = *buf.get(pos).ok_or(TlvError::TruncatedLength(len_at))?;
    pos += 1;
    let len = match form {
        0x00..=0x7F => usize::from(form),
        0x81 => {
            let b = *buf.get(pos).ok_or(TlvError::TruncatedLength(len_at))?;
            pos += 1;
            usize::from(b)
        }
        0x82 => {
            let hi = *buf.get(pos).ok_or(TlvError::TruncatedLength(len_at))?;
            let lo = *buf.get(pos + 1).ok_or(TlvError::TruncatedLength(len_at))?;
            pos += 2;
            usize::from(hi) << 8 | usize::from(lo)
        }
        // 0x80 is the indefinite form (not allowed in these files); 0x83+ would exceed any card file.
        _ => return Err(TlvError::BadLengthForm { at: len_at, form }),
    };
    let available = buf.len().saturating_sub(pos);
    if len > available {
        return Err(TlvError::TruncatedValue {
            at: base + pos,
            len,
            available,
        });
    }
    let end = pos + len;
    let value = buf.get(pos..end).ok_or(TlvError::TruncatedValue {
        at: base + pos,
        len,
        available,
    })?;
    let raw = buf.get(..end).ok_or(TlvError::TruncatedValue {
        at: base + pos,
        len,
        available,
    })?;
    let rest = buf.get(end..).unwrap_or(&[]);
    Ok((Tlv { tag, value, raw }, rest))
}

/// A TLV together with its offset from the start of the file.
#[derive(Debug, Clone, Copy)]
pub struct Located<'a> {
    pub offset: usize,
    pub tlv: Tlv<'a>,
}

/// Reads a sequence of TLVs that fills `buf` exactly (the children of a constructed TLV).
///
/// `base` is the offset of `buf` in the file. At most `max_items` are read, so a hostile file
/// full of empty TLVs cannot make the list grow without bound.
pub fn read_all(
    buf: &[u8],
    base: usize,
    max_items: usize,
) -> Result<Vec<Located<'_>>, TlvListError> {
    let mut out = Vec::new();
    let mut rest = buf;
    while !rest.is_empty() {
        if out.len() >= max_items {
            return Err(TlvListError::TooMany(max_items));
        }
        let offset = base + (buf.len() - rest.len());
        let (tlv, next) = read(rest, offset).map_err(TlvListError::Tlv)?;
        out.push(Located { offset, tlv });
        rest = next;
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlvListError {
    #[error(transparent)]
    Tlv(TlvError),
    #[error("more than {0} elements")]
    TooMany(usize),
}

/// True if every byte is `00` or `FF`: the filler that pads a card file to its fixed size.
pub fn is_filler(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0x00 || b == 0xFF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_one_and_two_byte_tags_and_all_length_forms() {
        let (t, rest) = read(&[0x90, 0x03, 1, 0, 1, 0xAA], 0).unwrap();
        assert_eq!(
            (t.tag, t.value, rest),
            (0x90, &[1u8, 0, 1][..], &[0xAAu8][..])
        );
        let mut long = vec![0xDF, 0x27, 0x82, 0x01, 0x00];
        long.extend(std::iter::repeat_n(7u8, 256));
        let (t, rest) = read(&long, 0).unwrap();
        assert_eq!(
            (t.tag, t.value.len(), t.raw.len(), rest.len()),
            (0xDF27, 256, 261, 0)
        );
        let (t, _) = read(&[0x5F, 0x37, 0x81, 0x01, 9], 0).unwrap();
        assert_eq!((t.tag, t.value), (0x5F37, &[9u8][..]));
        assert!(!t.is_constructed());
        let (t, _) = read(&[0xFF, 0x20, 0x00], 0).unwrap();
        assert!(t.is_constructed());
    }

    #[test]
    fn rejects_what_cards_never_contain() {
        assert_eq!(read(&[], 4), Err(TlvError::TruncatedTag(4)));
        assert_eq!(read(&[0xDF], 0), Err(TlvError::TruncatedTag(1)));
        assert_eq!(
            read(&[0xDF, 0x81, 0x01, 0x00], 0),
            Err(TlvError::TagTooLong(0))
        );
        assert_eq!(
            read(&[0xDF, 0x21, 0x80], 0),
            Err(TlvError::BadLengthForm { at: 2, form: 0x80 })
        );
        assert_eq!(
            read(&[0xDF, 0x21, 0x83, 0, 0, 1], 0),
            Err(TlvError::BadLengthForm { at: 2, form: 0x83 })
        );
        assert_eq!(
            read(&[0xDF, 0x21, 0x82, 0x01], 0),
            Err(TlvError::TruncatedLength(2))
        );
        assert_eq!(
            read(&[0xDF, 0x21, 0x05, 1, 2], 10),
            Err(TlvError::TruncatedValue {
                at: 13,
                len: 5,
                available: 2
            })
        );
    }

    #[test]
    fn read_all_reports_offsets_and_caps_the_count() {
        let bytes = [0xDF, 0x22, 0x01, b'1', 0xDF, 0x23, 0x00];
        let items = read_all(&bytes, 100, 8).unwrap();
        assert_eq!(
            items
                .iter()
                .map(|l| (l.offset, l.tlv.tag))
                .collect::<Vec<_>>(),
            vec![(100, 0xDF22), (104, 0xDF23)]
        );
        assert_eq!(
            read_all(&[0x01, 0x00, 0x01, 0x00, 0x01, 0x00], 0, 2).unwrap_err(),
            TlvListError::TooMany(2)
        );
        assert!(is_filler(&[0, 0xFF, 0]) && !is_filler(&[0, 1]));
    }

    proptest! {
        #[test]
        fn never_panics_and_stays_in_bounds(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok((t, rest)) = read(&bytes, 0) {
                prop_assert!(t.raw.len() + rest.len() == bytes.len());
                prop_assert!(t.value.len() <= t.raw.len());
            }
            let _ = read_all(&bytes, 0, 64);
        }
    }
}
