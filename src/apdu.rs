//! The My Number Card's APDU vocabulary (card-data.md A.1, A.2, A.5), shared by the reader
//! (`jpki_face::reader`) and the virtual card (`devcard::vcard`): application ids, file ids, status
//! words, command parsing and building, the TLV header that gives a file's length, and 照合番号B.
//! Pure: no I/O, no PC/SC.

use chrono::{Datelike, NaiveDate};

/// 公的個人認証AP (JPKI).
pub const AID_JPKI: [u8; 10] = [0xD3, 0x92, 0xF0, 0x00, 0x26, 0x01, 0x00, 0x00, 0x00, 0x01];
/// 券面事項確認AP (券面AP).
pub const AID_KENMEN: [u8; 10] = [0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x04, 0x02];
/// 券面事項入力補助AP (入力補助AP).
pub const AID_HOJO: [u8; 10] = [0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x04, 0x08];

/// Elementary files of the JPKI AP.
pub mod jpki {
    pub const SIGN_CERT: u16 = 0x0001;
    pub const SIGN_CA_CERT: u16 = 0x0002;
    pub const TOKEN: u16 = 0x0006;
    pub const AUTH_CERT: u16 = 0x000A;
    pub const AUTH_CA_CERT: u16 = 0x000B;
    pub const AUTH_KEY: u16 = 0x0017;
    pub const AUTH_PIN: u16 = 0x0018;
    pub const SIGN_KEY: u16 = 0x001A;
    pub const SIGN_PASSWORD: u16 = 0x001B;
}

/// Elementary files of the 券面AP.
pub mod kenmen {
    pub const FACE: u16 = 0x0002;
    pub const CVC: u16 = 0x0004;
    /// The rendered My Number (照合番号A only). Never read by this project.
    pub const MY_NUMBER_IMAGE: u16 = 0x0005;
    pub const PIN_B: u16 = 0x0012;
    /// 照合番号A (the My Number itself). Never used by this project.
    pub const PIN_A: u16 = 0x0013;
}

/// Elementary files of the 入力補助AP.
pub mod hojo {
    /// The My Number. Never read by this project.
    pub const MY_NUMBER: u16 = 0x0001;
    pub const ATTRIBUTES: u16 = 0x0002;
    pub const INTEGRITY: u16 = 0x0003;
    pub const CVC: u16 = 0x0004;
    pub const PIN: u16 = 0x0011;
    /// 照合番号A. Never used by this project.
    pub const PIN_A: u16 = 0x0014;
    pub const PIN_B: u16 = 0x0015;
}

/// Status words the card answers (ISO 7816-4 and what the open readers saw on real cards).
pub mod sw {
    pub const OK: u16 = 0x9000;
    /// End of file reached before Le bytes (the bytes up to the end come with it).
    pub const END_OF_FILE: u16 = 0x6282;
    pub const WRONG_LENGTH: u16 = 0x6700;
    pub const INCOMPATIBLE_FILE: u16 = 0x6981;
    pub const SECURITY_NOT_SATISFIED: u16 = 0x6982;
    /// The PIN is blocked (its counter reached zero).
    pub const BLOCKED: u16 = 0x6984;
    pub const CONDITIONS_NOT_SATISFIED: u16 = 0x6985;
    pub const NO_CURRENT_EF: u16 = 0x6986;
    pub const WRONG_DATA: u16 = 0x6A80;
    pub const FUNCTION_NOT_SUPPORTED: u16 = 0x6A81;
    pub const FILE_NOT_FOUND: u16 = 0x6A82;
    pub const WRONG_P1P2: u16 = 0x6A86;
    pub const DATA_NOT_FOUND: u16 = 0x6A88;
    pub const OFFSET_OUTSIDE_EF: u16 = 0x6B00;
    pub const INS_NOT_SUPPORTED: u16 = 0x6D00;
    pub const CLA_NOT_SUPPORTED: u16 = 0x6E00;

    /// `63 Cx`: a PIN check failed or was only asked for; `x` tries remain.
    pub fn retries(sw: u16) -> Option<u8> {
        (sw & 0xFFF0 == 0x63C0).then_some((sw & 0x0F) as u8)
    }

    pub fn retries_sw(left: u8) -> u16 {
        0x63C0 | u16::from(left.min(15))
    }
}

/// The ATR the virtual card presents: the one OpenSC's JPKI driver recognises.
pub const JPKI_ATR: [u8; 9] = [0x3B, 0xE0, 0x00, 0xFF, 0x81, 0x31, 0xFE, 0x45, 0x14];

/// `DigestInfo(SHA-256)` prefix: what the card is given to sign is this ‖ the 32-byte hash.
pub const SHA256_DIGEST_INFO_PREFIX: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// DigestInfo(SHA-256(msg)): the 51 bytes sent in a `80 2A` signing command.
pub fn sha256_digest_info(msg: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut out = SHA256_DIGEST_INFO_PREFIX.to_vec();
    out.extend_from_slice(&Sha256::digest(msg));
    out
}

/// One command APDU, parsed (short and extended lengths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command<'a> {
    pub cla: u8,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    pub data: &'a [u8],
    /// Ne: `None` when absent; 256 (short) or 65536 (extended) for a zero Le.
    pub le: Option<usize>,
}

impl<'a> Command<'a> {
    /// Parses the four ISO 7816-3 cases; a malformed length is `67 00`.
    pub fn parse(apdu: &'a [u8]) -> Result<Self, u16> {
        let (&[cla, ins, p1, p2], body) = apdu.split_first_chunk::<4>().ok_or(sw::WRONG_LENGTH)?;
        let mut cmd = Command {
            cla,
            ins,
            p1,
            p2,
            data: &[],
            le: None,
        };
        match body {
            [] => {}
            [le] => cmd.le = Some(if *le == 0 { 256 } else { usize::from(*le) }),
            [0, rest @ ..] if rest.len() >= 2 => {
                // Extended: Lc or Le in two bytes.
                let n = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                let rest = &rest[2..];
                if rest.is_empty() {
                    cmd.le = Some(if n == 0 { 65536 } else { n });
                } else {
                    if n == 0 || rest.len() < n {
                        return Err(sw::WRONG_LENGTH);
                    }
                    cmd.data = &rest[..n];
                    match &rest[n..] {
                        [] => {}
                        [a, b] => {
                            let le = usize::from(u16::from_be_bytes([*a, *b]));
                            cmd.le = Some(if le == 0 { 65536 } else { le });
                        }
                        _ => return Err(sw::WRONG_LENGTH),
                    }
                }
            }
            [lc, rest @ ..] => {
                let n = usize::from(*lc);
                if rest.len() < n {
                    return Err(sw::WRONG_LENGTH);
                }
                cmd.data = &rest[..n];
                match &rest[n..] {
                    [] => {}
                    [le] => cmd.le = Some(if *le == 0 { 256 } else { usize::from(*le) }),
                    _ => return Err(sw::WRONG_LENGTH),
                }
            }
        }
        Ok(cmd)
    }
}

fn short(cla: u8, ins: u8, p1: u8, p2: u8, data: &[u8], le: Option<u8>) -> Vec<u8> {
    let mut out = vec![cla, ins, p1, p2];
    if !data.is_empty() {
        out.push(u8::try_from(data.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(data);
    }
    if let Some(le) = le {
        out.push(le);
    }
    out
}

/// `00 A4 04 0C Lc AID`: select an application by its DF name, no FCI.
pub fn select_df(aid: &[u8]) -> Vec<u8> {
    short(0x00, 0xA4, 0x04, 0x0C, aid, None)
}

/// `00 A4 02 0C 02 FID`: select an elementary file of the current application.
pub fn select_ef(fid: u16) -> Vec<u8> {
    short(0x00, 0xA4, 0x02, 0x0C, &fid.to_be_bytes(), None)
}

/// `00 B0 P1P2 Le`: read `le` bytes (1–256; 256 is sent as `00`) at `offset` (≤ 0x7FFF) of the current EF.
pub fn read_binary(offset: u16, le: usize) -> Vec<u8> {
    let [p1, p2] = offset.to_be_bytes();
    short(
        0x00,
        0xB0,
        p1 & 0x7F,
        p2,
        &[],
        Some((le.min(256) & 0xFF) as u8),
    )
}

/// `00 20 00 80 Lc PIN`: verify the current PIN EF. Without data it only asks for the counter (`63 Cx`).
pub fn verify(pin: &[u8]) -> Vec<u8> {
    short(0x00, 0x20, 0x00, 0x80, pin, None)
}

/// `80 2A 00 P2 Lc data 00`: compute a signature (PKCS#1 v1.5 padding of `data` by the card).
/// P2 `80` signs with the selected key EF (JPKI), `00` with the application's own key (券面AP).
pub fn sign(p2: u8, data: &[u8]) -> Vec<u8> {
    short(0x80, 0x2A, 0x00, p2, data, Some(0))
}

/// Splits a response into its data and status word (`None` if shorter than two bytes).
pub fn split_response(resp: &[u8]) -> Option<(&[u8], u16)> {
    let (data, sw) = resp.split_last_chunk::<2>()?;
    Some((data, u16::from_be_bytes(*sw)))
}

/// The whole length (header included) of the BER-TLV object that starts `head`: one- or two-byte tag,
/// short or `81`/`82`/`83` length. `None` if `head` is too short to tell or the length form is not one of these.
pub fn tlv_total_len(head: &[u8]) -> Option<usize> {
    let first = *head.first()?;
    let tag_len = if first & 0x1F == 0x1F { 2 } else { 1 };
    let l0 = *head.get(tag_len)?;
    let (len_len, len) = match l0 {
        0x00..=0x7F => (1, usize::from(l0)),
        0x81 => (2, usize::from(*head.get(tag_len + 1)?)),
        0x82 => (
            3,
            usize::from(u16::from_be_bytes([
                *head.get(tag_len + 1)?,
                *head.get(tag_len + 2)?,
            ])),
        ),
        0x83 => (
            4,
            (usize::from(*head.get(tag_len + 1)?) << 16)
                | (usize::from(*head.get(tag_len + 2)?) << 8)
                | usize::from(*head.get(tag_len + 3)?),
        ),
        _ => return None,
    };
    Some(tag_len + len_len + len)
}

/// The Japanese era year (和暦) of a date: 令和 from 2019-05-01, 平成 from 1989-01-08, 昭和 from
/// 1926-12-25, 大正 from 1912-07-30, else 明治. Year 1 of an era is 元年, written 01.
pub fn era_year(d: NaiveDate) -> u32 {
    let ymd = (d.year(), d.month(), d.day());
    let first = if ymd >= (2019, 5, 1) {
        2019
    } else if ymd >= (1989, 1, 8) {
        1989
    } else if ymd >= (1926, 12, 25) {
        1926
    } else if ymd >= (1912, 7, 30) {
        1912
    } else {
        1868
    };
    u32::try_from(d.year() - first + 1).unwrap_or(0)
}

/// Why the parts of 照合番号B do not make one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CollationBError {
    #[error("the card's expiry year must be four digits")]
    ExpiryYear,
    #[error("the security code must be the 4 digits printed on the card")]
    SecurityCode,
}

/// 照合番号B: birth date as 和暦 YYMMDD ‖ the card's expiry year YYYY ‖ the 4-digit security code,
/// 14 ASCII digits (card-data.md §0). Born 1980-02-17 (昭和55), expiry 2035, code 2285 → `55021720352285`.
pub fn collation_b(
    birth: NaiveDate,
    expiry_year: u32,
    security_code: &str,
) -> Result<zeroize::Zeroizing<String>, CollationBError> {
    if !(1000..=9999).contains(&expiry_year) {
        return Err(CollationBError::ExpiryYear);
    }
    if security_code.len() != 4 || !security_code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CollationBError::SecurityCode);
    }
    Ok(zeroize::Zeroizing::new(format!(
        "{:02}{:02}{:02}{expiry_year:04}{security_code}",
        era_year(birth) % 100,
        birth.month(),
        birth.day()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn collation_b_uses_the_era_year() {
        // card-data.md's worked example.
        let b = collation_b(date(1980, 2, 17), 2035, "2285").unwrap();
        assert_eq!(b.as_str(), "55021720352285");
        assert_eq!(
            collation_b(date(1990, 1, 2), 2036, "0042")
                .unwrap()
                .as_str(),
            "02010220360042"
        );
        // Era boundaries: the first days of 平成 and 令和 are year 1 (元年).
        assert_eq!(era_year(date(1989, 1, 7)), 64);
        assert_eq!(era_year(date(1989, 1, 8)), 1);
        assert_eq!(era_year(date(2019, 4, 30)), 31);
        assert_eq!(era_year(date(2019, 5, 1)), 1);
        assert_eq!(era_year(date(1926, 12, 25)), 1);
        assert_eq!(
            collation_b(date(1990, 1, 2), 36, "0042"),
            Err(CollationBError::ExpiryYear)
        );
        assert_eq!(
            collation_b(date(1990, 1, 2), 2036, "42a1"),
            Err(CollationBError::SecurityCode)
        );
    }

    #[test]
    fn commands_parse_in_every_case() {
        let bytes = select_df(&AID_JPKI);
        let c = Command::parse(&bytes).unwrap();
        assert_eq!(
            (c.ins, c.p1, c.p2, c.data, c.le),
            (0xA4, 4, 0x0C, &AID_JPKI[..], None)
        );
        let bytes = read_binary(0x0107, 256);
        let c = Command::parse(&bytes).unwrap();
        assert_eq!((c.p1, c.p2, c.le), (1, 7, Some(256)));
        let bytes = verify(b"");
        let c = Command::parse(&bytes).unwrap();
        assert_eq!((c.ins, c.data, c.le), (0x20, &b""[..], None));
        let bytes = sign(0x80, &[1; 51]);
        let c = Command::parse(&bytes).unwrap();
        assert_eq!((c.cla, c.data.len(), c.le), (0x80, 51, Some(256)));
        let c = Command::parse(&[0, 0xB0, 0, 0, 0, 0x01, 0x00]).unwrap();
        assert_eq!(c.le, Some(256));
        let c = Command::parse(&[0x80, 0x2A, 0, 0x80, 0, 0, 2, 9, 9, 0, 0]).unwrap();
        assert_eq!((c.data, c.le), (&[9u8, 9][..], Some(65536)));
        assert_eq!(Command::parse(&[0, 0xB0, 0]), Err(sw::WRONG_LENGTH));
        assert_eq!(
            Command::parse(&[0, 0x20, 0, 0x80, 5, 1]),
            Err(sw::WRONG_LENGTH)
        );
    }

    #[test]
    fn tlv_lengths_and_status_words() {
        assert_eq!(tlv_total_len(&[0x30, 0x82, 0x04, 0x00]), Some(4 + 0x400));
        assert_eq!(
            tlv_total_len(&[0xFF, 0x20, 0x82, 0x01, 0x00]),
            Some(5 + 256)
        );
        assert_eq!(
            tlv_total_len(&[0x7F, 0x21, 0x82, 0x02, 0x33]),
            Some(5 + 0x233)
        );
        assert_eq!(tlv_total_len(&[0xFF, 0x20, 0x65]), Some(3 + 0x65));
        assert_eq!(tlv_total_len(&[0xFF, 0x30, 0x81, 0x90]), Some(4 + 0x90));
        assert_eq!(tlv_total_len(&[0xFF, 0x20]), None);
        assert_eq!(tlv_total_len(&[0x30, 0x84, 0, 0, 0, 1]), None);
        assert_eq!(sw::retries(0x63C4), Some(4));
        assert_eq!(sw::retries(0x9000), None);
        assert_eq!(
            split_response(&[1, 2, 0x90, 0]),
            Some((&[1u8, 2][..], 0x9000))
        );
        assert_eq!(split_response(&[0x90]), None);
        assert_eq!(sha256_digest_info(b"x").len(), 51);
    }
}
