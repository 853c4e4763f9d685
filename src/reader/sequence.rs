//! The APDU sequence that reads a card for one session (docs/reader.md, "The APDU sequence"):
//! [`preflight`] reads the retry counters without spending a try; [`read_card`] then verifies the signing
//! password and 照合番号B once each, reads the files and has the card sign the session's challenge.

use super::{Transport, TransportError};
use crate::apdu::{self, sw};
use crate::card::{tbs_card, tbs_jpki, SessionBinding};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use zeroize::Zeroizing;

/// The secrets the holder types in. Never printed.
pub struct Credentials {
    /// 署名用電子証明書のパスワード (6–16 characters).
    pub sign_password: Zeroizing<String>,
    /// 照合番号B, 14 digits ([`apdu::collation_b`]).
    pub collation_b: Zeroizing<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials([redacted])")
    }
}

/// Which credential a counter or an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinKind {
    SignPassword,
    KenmenCollationB,
    HojoCollationB,
}

impl std::fmt::Display for PinKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::SignPassword => "the signing password (署名用パスワード)",
            Self::KenmenCollationB => "照合番号B of the 券面AP",
            Self::HojoCollationB => "照合番号B of the 入力補助AP",
        })
    }
}

/// Why a read stopped. Nothing has been sent anywhere when this is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("the card was removed during the read; nothing was sent: hold it still on the reader and start again")]
    CardRemoved,
    #[error("{0}")]
    Transport(String),
    #[error("this is not a My Number Card (no JPKI application)")]
    NotAMyNumberCard,
    #[error("{pin} is locked; it can only be reset at a municipal office")]
    Blocked { pin: PinKind },
    #[error("{pin} has only {left} tries left (at least {min} wanted); not trying it: check it and use --min-tries {left} to spend one, or reset it at a municipal office")]
    TooFewTries { pin: PinKind, left: u8, min: u8 },
    #[error("{pin} is wrong; {left} tries left. Nothing was sent; not retrying")]
    WrongPin { pin: PinKind, left: u8 },
    #[error("{step}: the card answered {sw:04X}")]
    Status { step: &'static str, sw: u16 },
    #[error("{what}: {detail}")]
    BadFile { what: &'static str, detail: String },
}

impl From<TransportError> for ReadError {
    fn from(e: TransportError) -> Self {
        match e {
            TransportError::CardRemoved => Self::CardRemoved,
            TransportError::Other(m) => Self::Transport(m),
        }
    }
}

/// The counters read before any PIN is tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preflight {
    pub sign_password_left: u8,
    pub kenmen_collation_b_left: u8,
    /// `None`: the card has no 入力補助AP (or it was skipped).
    pub hojo_collation_b_left: Option<u8>,
}

/// What was read and signed: the fields of the `card` JSON. Never printed.
pub struct CardData {
    pub kenmen_face: Vec<u8>,
    pub kenmen_cvc: Vec<u8>,
    pub kenmen_card_signature: Vec<u8>,
    pub jpki_certificate: Vec<u8>,
    pub jpki_signature: Vec<u8>,
    pub hojo: Option<HojoData>,
}

pub struct HojoData {
    pub attributes: Vec<u8>,
    /// Holds DF31 (a hash of the My Number): wiped on drop.
    pub integrity: Zeroizing<Vec<u8>>,
    pub cvc: Vec<u8>,
}

impl std::fmt::Debug for CardData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CardData([redacted])")
    }
}

impl CardData {
    /// The `card` JSON of api.md, exactly the shape `jpki-face dev card sign` prints.
    pub fn to_json(&self) -> serde_json::Value {
        let mut json = serde_json::json!({
            "kenmen": {
                "face": B64.encode(&self.kenmen_face),
                "cvc": B64.encode(&self.kenmen_cvc),
                "card_signature": B64.encode(&self.kenmen_card_signature),
            },
            "jpki": {
                "signing_certificate": B64.encode(&self.jpki_certificate),
                "signature": B64.encode(&self.jpki_signature),
            },
        });
        if let Some(h) = &self.hojo {
            json["hojo"] = serde_json::json!({
                "attributes": B64.encode(&h.attributes),
                "integrity": B64.encode(h.integrity.as_slice()),
                "cvc": B64.encode(&h.cvc),
            });
        }
        json
    }
}

/// Sends one command; returns its data and status word.
fn exchange(t: &mut dyn Transport, cmd: &[u8]) -> Result<(Vec<u8>, u16), ReadError> {
    let resp = t.transmit(cmd)?;
    let (data, sw) = apdu::split_response(&resp)
        .ok_or_else(|| ReadError::Transport("a response shorter than a status word".into()))?;
    Ok((data.to_vec(), sw))
}

fn expect_ok(t: &mut dyn Transport, cmd: &[u8], step: &'static str) -> Result<Vec<u8>, ReadError> {
    match exchange(t, cmd)? {
        (data, sw::OK) => Ok(data),
        (_, sw) => Err(ReadError::Status { step, sw }),
    }
}

fn select_ap(t: &mut dyn Transport, aid: &[u8], step: &'static str) -> Result<bool, ReadError> {
    match exchange(t, &apdu::select_df(aid))? {
        (_, sw::OK) => Ok(true),
        (_, sw::FILE_NOT_FOUND) => Ok(false),
        (_, sw) => Err(ReadError::Status { step, sw }),
    }
}

/// Asks a PIN EF's counter with an empty VERIFY (spends nothing).
fn counter(t: &mut dyn Transport, fid: u16, pin: PinKind, min: u8) -> Result<u8, ReadError> {
    expect_ok(t, &apdu::select_ef(fid), "SELECT the PIN file")?;
    let left = match exchange(t, &apdu::verify(&[]))? {
        (_, sw::BLOCKED) => return Err(ReadError::Blocked { pin }),
        // Already verified in this card session: the counter is full.
        (_, sw::OK) => return Ok(u8::MAX),
        (_, s) => match sw::retries(s) {
            Some(0) => return Err(ReadError::Blocked { pin }),
            Some(n) => n,
            None => {
                return Err(ReadError::Status {
                    step: "VERIFY (counter)",
                    sw: s,
                })
            }
        },
    };
    if left < min {
        return Err(ReadError::TooFewTries { pin, left, min });
    }
    Ok(left)
}

/// Selects the JPKI AP (checking the token info), then reads the three counters. Refuses when a counter
/// is below `min_tries` or blocked. `with_hojo = false` skips the 入力補助AP.
pub fn preflight(
    t: &mut dyn Transport,
    min_tries: u8,
    with_hojo: bool,
) -> Result<Preflight, ReadError> {
    if !select_ap(t, &apdu::AID_JPKI, "SELECT the JPKI AP")? {
        return Err(ReadError::NotAMyNumberCard);
    }
    expect_ok(
        t,
        &apdu::select_ef(apdu::jpki::TOKEN),
        "SELECT the token info",
    )?;
    let token = expect_ok(t, &apdu::read_binary(0, 32), "READ the token info")?;
    if !token.starts_with(b"JPKIAP") {
        return Err(ReadError::NotAMyNumberCard);
    }
    let sign_password_left = counter(
        t,
        apdu::jpki::SIGN_PASSWORD,
        PinKind::SignPassword,
        min_tries,
    )?;
    if !select_ap(t, &apdu::AID_KENMEN, "SELECT the 券面AP")? {
        return Err(ReadError::Status {
            step: "SELECT the 券面AP",
            sw: sw::FILE_NOT_FOUND,
        });
    }
    let kenmen_collation_b_left =
        counter(t, apdu::kenmen::PIN_B, PinKind::KenmenCollationB, min_tries)?;
    let hojo_collation_b_left =
        if with_hojo && select_ap(t, &apdu::AID_HOJO, "SELECT the 入力補助AP")? {
            Some(counter(
                t,
                apdu::hojo::PIN_B,
                PinKind::HojoCollationB,
                min_tries,
            )?)
        } else {
            None
        };
    Ok(Preflight {
        sign_password_left,
        kenmen_collation_b_left,
        hojo_collation_b_left,
    })
}

/// Verifies one PIN of the current application, once.
fn verify_pin(
    t: &mut dyn Transport,
    fid: u16,
    secret: &[u8],
    pin: PinKind,
) -> Result<(), ReadError> {
    expect_ok(t, &apdu::select_ef(fid), "SELECT the PIN file")?;
    let cmd = Zeroizing::new(apdu::verify(secret));
    match exchange(t, &cmd)? {
        (_, sw::OK) => Ok(()),
        (_, sw::BLOCKED) => Err(ReadError::Blocked { pin }),
        (_, s) => match sw::retries(s) {
            Some(0) => Err(ReadError::Blocked { pin }),
            Some(left) => Err(ReadError::WrongPin { pin, left }),
            None => Err(ReadError::Status {
                step: "VERIFY",
                sw: s,
            }),
        },
    }
}

/// Largest file READ BINARY's 15-bit offset reaches (plus one last chunk).
const MAX_FILE: usize = 0x7FFF + 1;

/// Reads a whole BER-TLV file of the current application: 7 bytes for the header, then the rest in
/// chunks of at most 256 bytes. Filler after the object is not read.
fn read_file(t: &mut dyn Transport, fid: u16, what: &'static str) -> Result<Vec<u8>, ReadError> {
    expect_ok(t, &apdu::select_ef(fid), what)?;
    let head = match exchange(t, &apdu::read_binary(0, 7))? {
        (d, sw::OK | sw::END_OF_FILE) => d,
        (_, sw) => return Err(ReadError::Status { step: what, sw }),
    };
    let total = apdu::tlv_total_len(&head).ok_or_else(|| ReadError::BadFile {
        what,
        detail: "not a BER-TLV object".into(),
    })?;
    if total > MAX_FILE {
        return Err(ReadError::BadFile {
            what,
            detail: format!("{total} bytes, more than READ BINARY reaches"),
        });
    }
    let mut out = head;
    out.truncate(total);
    while out.len() < total {
        let le = (total - out.len()).min(256);
        let offset = u16::try_from(out.len()).map_err(|_| ReadError::BadFile {
            what,
            detail: "offset out of range".into(),
        })?;
        let chunk = match exchange(t, &apdu::read_binary(offset, le))? {
            (d, sw::OK | sw::END_OF_FILE) => d,
            (_, sw) => return Err(ReadError::Status { step: what, sw }),
        };
        if chunk.is_empty() {
            return Err(ReadError::BadFile {
                what,
                detail: format!("ends at {} of {total} bytes", out.len()),
            });
        }
        out.extend_from_slice(&chunk[..chunk.len().min(le)]);
    }
    Ok(out)
}

fn sign(
    t: &mut dyn Transport,
    p2: u8,
    tbs: &[u8],
    step: &'static str,
) -> Result<Vec<u8>, ReadError> {
    let sig = expect_ok(t, &apdu::sign(p2, &apdu::sha256_digest_info(tbs)), step)?;
    if sig.is_empty() {
        return Err(ReadError::BadFile {
            what: step,
            detail: "empty signature".into(),
        });
    }
    Ok(sig)
}

/// The whole read for one session: preflight, then JPKI (password, certificate, signature over
/// `tbs_jpki`), 券面AP (照合番号B, EF 0002, EF 0004, card signature over `tbs_card`), and the 入力補助AP
/// (照合番号B, EF 0002, 0003, 0004) when the card has it and `with_hojo`.
pub fn read_card(
    t: &mut dyn Transport,
    creds: &Credentials,
    binding: &SessionBinding<'_>,
    min_tries: u8,
    with_hojo: bool,
) -> Result<CardData, ReadError> {
    let pre = preflight(t, min_tries, with_hojo)?;

    // JPKI AP: the signing password opens the certificate and the signing key.
    select_ap(t, &apdu::AID_JPKI, "SELECT the JPKI AP")?;
    verify_pin(
        t,
        apdu::jpki::SIGN_PASSWORD,
        creds.sign_password.as_bytes(),
        PinKind::SignPassword,
    )?;
    let jpki_certificate = read_file(
        t,
        apdu::jpki::SIGN_CERT,
        "the signing certificate (EF 0001)",
    )?;
    expect_ok(
        t,
        &apdu::select_ef(apdu::jpki::SIGN_KEY),
        "SELECT the signing key",
    )?;
    let jpki_signature = sign(t, 0x80, &tbs_jpki(binding), "the JPKI signature")?;

    // 券面AP: 照合番号B opens EF 0002; the card key signs without a PIN.
    select_ap(t, &apdu::AID_KENMEN, "SELECT the 券面AP")?;
    verify_pin(
        t,
        apdu::kenmen::PIN_B,
        creds.collation_b.as_bytes(),
        PinKind::KenmenCollationB,
    )?;
    let kenmen_face = read_file(t, apdu::kenmen::FACE, "the 券面AP record (EF 0002)")?;
    let kenmen_cvc = read_file(t, apdu::kenmen::CVC, "the 券面AP CVC (EF 0004)")?;
    let kenmen_card_signature = sign(t, 0x00, &tbs_card(binding), "the card-present signature")?;

    // 入力補助AP: 照合番号B opens EF 0002 and 0003 (never EF 0001, the My Number).
    let hojo = match pre.hojo_collation_b_left {
        Some(_) => {
            select_ap(t, &apdu::AID_HOJO, "SELECT the 入力補助AP")?;
            verify_pin(
                t,
                apdu::hojo::PIN_B,
                creds.collation_b.as_bytes(),
                PinKind::HojoCollationB,
            )?;
            Some(HojoData {
                attributes: read_file(
                    t,
                    apdu::hojo::ATTRIBUTES,
                    "the 入力補助AP attributes (EF 0002)",
                )?,
                integrity: Zeroizing::new(read_file(
                    t,
                    apdu::hojo::INTEGRITY,
                    "the 入力補助AP integrity record (EF 0003)",
                )?),
                cvc: read_file(t, apdu::hojo::CVC, "the 入力補助AP CVC (EF 0004)")?,
            })
        }
        None => None,
    };
    Ok(CardData {
        kenmen_face,
        kenmen_cvc,
        kenmen_card_signature,
        jpki_certificate,
        jpki_signature,
        hojo,
    })
}

#[cfg(all(test, feature = "devcard"))]
mod tests;
