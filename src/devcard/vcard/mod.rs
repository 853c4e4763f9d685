//! A virtual My Number Card (issue 24): any test-card person answering APDUs as the card does, for the
//! reader and independent clients (OpenSC, jpki-cli) to talk to through PC/SC. Development only.
//!
//! [`VirtualCard::respond`] is the whole card: a pure state machine from command APDU to response APDU
//! (unit-tested here without PC/SC); [`serve`] puts it behind vpcd, the virtual PC/SC reader. What it
//! holds and answers follows card-data.md A.2 and A.5:
//! - JPKI AP: signing certificate (EF 0001, behind the signing password EF 001B), its CA (0002), token
//!   info (0006), authentication certificate and CA (000A, 000B), the signing key 001A and the
//!   authentication key 0017 (behind the PIN 0018);
//! - 券面AP: EF 0002 (behind 照合番号B EF 0012, or 照合番号A EF 0013), EF 0004 CVC, and the card-present
//!   signature `80 2A 00 00` with the card key (DF24); INTERNAL AUTHENTICATE answers `69 85`;
//! - 入力補助AP (for persons issued `--with-hojo`): EF 0001 (the My Number: only behind the 4-digit PIN
//!   EF 0011 or 照合番号A EF 0014; the reader never asks for it), EF 0002 and 0003 (behind 照合番号B EF 0015
//!   or the PIN), EF 0004 CVC.
//!
//! PINs have retry counters (`63 Cx`; an empty VERIFY asks without spending a try), block at zero
//! (`69 84`), and a correct PIN restores the counter. READ BINARY honours any offset and Le (`62 82` with
//! what is left past the end, `6B 00` beyond it). Every command may be repeated. Security status is per
//! application and is lost on a new application select, a reset or power off; counters are not.

mod vpcd;

pub use vpcd::{serve, ServeArgs};

use super::keys;
use super::pki::{self, CertParams, SanIdentity};
use super::{PersonId, TestHierarchy};
use crate::apdu::{self, sw, Command};
use anyhow::{bail, Context, Result};
use chrono::Utc;
use der::{DecodePem, Encode};
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use zeroize::Zeroizing;

/// The virtual card's signing password unless `serve --sign-password-env` names another.
pub const DEFAULT_SIGN_PASSWORD: &str = "ABC123";
/// The virtual card's 4-digit PINs (利用者証明用 and 入力補助AP).
pub const DEFAULT_PIN: &str = "1234";

/// Tries of each credential when the card is new (card-data.md A.2; 照合番号A/B unconfirmed, 10).
pub const SIGN_PASSWORD_TRIES: u8 = 5;
pub const PIN_TRIES: u8 = 3;
pub const COLLATION_TRIES: u8 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ap {
    Jpki,
    Kenmen,
    Hojo,
}

/// A PIN file: which application, which EF, the secret, and its counter.
struct Pin {
    ap: Ap,
    fid: u16,
    secret: Zeroizing<Vec<u8>>,
    max: u8,
    left: u8,
}

/// A readable file and which PIN EFs (any one of them) open it; an empty list means no PIN.
struct File {
    ap: Ap,
    fid: u16,
    bytes: Vec<u8>,
    opened_by: &'static [u16],
}

/// A private key EF: signs with `80 2A 00 80` once `opened_by` is verified.
struct KeyEf {
    ap: Ap,
    fid: u16,
    key: RsaPrivateKey,
    opened_by: u16,
}

/// Initial counters and secrets of a virtual card.
#[derive(Clone)]
pub struct CardSecrets {
    pub sign_password: Zeroizing<String>,
    pub pin: Zeroizing<String>,
    /// Tries left at power-on of the first session (tests start a card nearly or fully locked).
    pub sign_password_tries: u8,
    pub collation_b_tries: u8,
}

impl Default for CardSecrets {
    fn default() -> Self {
        Self {
            sign_password: Zeroizing::new(DEFAULT_SIGN_PASSWORD.into()),
            pin: Zeroizing::new(DEFAULT_PIN.into()),
            sign_password_tries: SIGN_PASSWORD_TRIES,
            collation_b_tries: COLLATION_TRIES,
        }
    }
}

impl std::fmt::Debug for CardSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CardSecrets([redacted])")
    }
}

/// One virtual card: its files, keys, PINs, and the session state (selected AP and EF, verified PINs).
pub struct VirtualCard {
    files: Vec<File>,
    keys: Vec<KeyEf>,
    pins: Vec<Pin>,
    /// The 券面AP's own key (DF24): `80 2A 00 00` in the 券面AP.
    card_key: RsaPrivateKey,
    has_hojo: bool,
    ap: Option<Ap>,
    ef: Option<u16>,
    verified: Vec<u16>,
    /// Every EF ever selected, per application (tests check what a reader asked for).
    selected_log: Vec<(Option<Ap>, u16)>,
}

impl std::fmt::Debug for VirtualCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualCard")
            .field("has_hojo", &self.has_hojo)
            .finish_non_exhaustive()
    }
}

impl VirtualCard {
    /// The card of `person` in hierarchy `h`. Generates (once, cached in the person's folder) the
    /// authentication key and certificate the generator does not issue.
    pub fn from_person(h: &TestHierarchy, person: &PersonId, secrets: CardSecrets) -> Result<Self> {
        let record = h.person(person)?;
        let pdir = h.dir().join(&person.0);
        let read = |f: &str| std::fs::read(pdir.join(f)).with_context(|| format!("{person}/{f}"));
        let load_key = |f: &str| -> Result<RsaPrivateKey> {
            use rsa::pkcs8::DecodePrivateKey;
            Ok(RsaPrivateKey::from_pkcs8_pem(
                &std::fs::read_to_string(pdir.join(f)).with_context(|| format!("{person}/{f}"))?,
            )?)
        };
        let face = read("kenmen-face.bin")?;
        let security_code =
            std::fs::read_to_string(pdir.join("security-code.txt")).with_context(|| {
                format!("{person} has no security-code.txt: issue it again with this version")
            })?;
        let parsed = crate::card::FaceRecord::parse(&face, 1 << 20)
            .map_err(|e| anyhow::anyhow!("{person}/kenmen-face.bin: {e}"))?;
        let expiry = parsed
            .expiry_unauthenticated
            .context("the 券面AP record has no expiry (DF29)")?;
        let collation_b = apdu::collation_b(
            parsed.birth_date,
            chrono::Datelike::year(&expiry).try_into().unwrap_or(0),
            security_code.trim(),
        )?;

        // The authentication key and certificate (利用者証明用): not part of what the server receives.
        let auth_key = keys::key(
            &h.dir().join("keys"),
            h.key_cache.as_deref(),
            h.seed,
            &format!("person-{}-auth", record.seed),
        )?;
        let auth_cert_path = pdir.join("auth-cert.der");
        let auth_cert = match std::fs::read(&auth_cert_path) {
            Ok(der) => der,
            Err(_) => {
                let der = auth_certificate(h, &auth_key, &record.serial_hex)?;
                keys::write_atomic(&auth_cert_path, &der)?;
                der
            }
        };
        let ca_der = x509_cert::Certificate::from_pem(
            std::fs::read(h.dir().join("ca.pem")).context("ca.pem")?,
        )?
        .to_der()?;
        // Token info: a card's starts `JPKIAPICCTOKEN`; readers ask for 20, 32 or 160 bytes.
        let mut token = b"JPKIAPICCTOKEN2".to_vec();
        token.resize(32, b' ');
        token.resize(160, 0);

        let my_number = synthetic_my_number(h.seed, record.seed);
        let mut my_number_file = vec![0xFF, 0x10, 0x0C];
        my_number_file.extend_from_slice(my_number.as_bytes());
        my_number_file.resize(17, 0xFF);

        let mut files = vec![
            file(
                Ap::Jpki,
                apdu::jpki::SIGN_CERT,
                read("cert.der")?,
                &[apdu::jpki::SIGN_PASSWORD],
            ),
            file(Ap::Jpki, apdu::jpki::SIGN_CA_CERT, ca_der.clone(), &[]),
            file(Ap::Jpki, apdu::jpki::TOKEN, token, &[]),
            file(Ap::Jpki, apdu::jpki::AUTH_CERT, auth_cert, &[]),
            file(Ap::Jpki, apdu::jpki::AUTH_CA_CERT, ca_der, &[]),
            file(
                Ap::Kenmen,
                apdu::kenmen::FACE,
                face,
                &[apdu::kenmen::PIN_B, apdu::kenmen::PIN_A],
            ),
            file(Ap::Kenmen, apdu::kenmen::CVC, read("kenmen-cvc.bin")?, &[]),
        ];
        let mut pins = vec![
            pin(
                Ap::Jpki,
                apdu::jpki::SIGN_PASSWORD,
                secrets.sign_password.as_bytes(),
                SIGN_PASSWORD_TRIES,
                secrets.sign_password_tries,
            ),
            pin(
                Ap::Jpki,
                apdu::jpki::AUTH_PIN,
                secrets.pin.as_bytes(),
                PIN_TRIES,
                PIN_TRIES,
            ),
            pin(
                Ap::Kenmen,
                apdu::kenmen::PIN_B,
                collation_b.as_bytes(),
                COLLATION_TRIES,
                secrets.collation_b_tries,
            ),
            pin(
                Ap::Kenmen,
                apdu::kenmen::PIN_A,
                my_number.as_bytes(),
                COLLATION_TRIES,
                COLLATION_TRIES,
            ),
        ];
        if record.with_hojo {
            files.extend([
                file(
                    Ap::Hojo,
                    apdu::hojo::MY_NUMBER,
                    my_number_file,
                    &[apdu::hojo::PIN, apdu::hojo::PIN_A],
                ),
                file(
                    Ap::Hojo,
                    apdu::hojo::ATTRIBUTES,
                    read("hojo-attributes.bin")?,
                    &[apdu::hojo::PIN, apdu::hojo::PIN_B],
                ),
                file(
                    Ap::Hojo,
                    apdu::hojo::INTEGRITY,
                    read("hojo-integrity.bin")?,
                    &[apdu::hojo::PIN, apdu::hojo::PIN_A, apdu::hojo::PIN_B],
                ),
                file(Ap::Hojo, apdu::hojo::CVC, read("hojo-cvc.bin")?, &[]),
            ]);
            pins.extend([
                pin(
                    Ap::Hojo,
                    apdu::hojo::PIN,
                    secrets.pin.as_bytes(),
                    PIN_TRIES,
                    PIN_TRIES,
                ),
                pin(
                    Ap::Hojo,
                    apdu::hojo::PIN_A,
                    my_number.as_bytes(),
                    COLLATION_TRIES,
                    COLLATION_TRIES,
                ),
                pin(
                    Ap::Hojo,
                    apdu::hojo::PIN_B,
                    collation_b.as_bytes(),
                    COLLATION_TRIES,
                    secrets.collation_b_tries,
                ),
            ]);
        }
        Ok(Self {
            files,
            keys: vec![
                KeyEf {
                    ap: Ap::Jpki,
                    fid: apdu::jpki::SIGN_KEY,
                    key: load_key("jpki.key")?,
                    opened_by: apdu::jpki::SIGN_PASSWORD,
                },
                KeyEf {
                    ap: Ap::Jpki,
                    fid: apdu::jpki::AUTH_KEY,
                    key: auth_key,
                    opened_by: apdu::jpki::AUTH_PIN,
                },
            ],
            pins,
            card_key: load_key("card.key")?,
            has_hojo: record.with_hojo,
            ap: None,
            ef: None,
            verified: Vec::new(),
            selected_log: Vec::new(),
        })
    }

    /// Power off, power on or reset: the session state is lost, the counters stay.
    pub fn reset(&mut self) {
        self.ap = None;
        self.ef = None;
        self.verified.clear();
    }

    /// The ATR (what OpenSC's JPKI driver matches).
    pub fn atr(&self) -> &'static [u8] {
        &apdu::JPKI_ATR
    }

    /// Tries left of the 券面AP's 照合番号B and of the signing password (for tests).
    pub fn tries_left(&self) -> (u8, u8) {
        let left = |ap, fid| {
            self.pins
                .iter()
                .find(|p| p.ap == ap && p.fid == fid)
                .map_or(0, |p| p.left)
        };
        (
            left(Ap::Jpki, apdu::jpki::SIGN_PASSWORD),
            left(Ap::Kenmen, apdu::kenmen::PIN_B),
        )
    }

    /// Whether any reader ever selected a My Number file or a 照合番号A PIN.
    pub fn my_number_was_selected(&self) -> bool {
        self.selected_log.iter().any(|(ap, fid)| {
            matches!(
                (ap, *fid),
                (Some(Ap::Hojo), apdu::hojo::MY_NUMBER | apdu::hojo::PIN_A)
                    | (
                        Some(Ap::Kenmen),
                        apdu::kenmen::MY_NUMBER_IMAGE | apdu::kenmen::PIN_A
                    )
            )
        })
    }

    /// Answers one command APDU: response data ‖ SW1 SW2.
    pub fn respond(&mut self, apdu_bytes: &[u8]) -> Vec<u8> {
        let (mut data, sw) = match Command::parse(apdu_bytes) {
            Ok(cmd) => self.dispatch(&cmd),
            Err(sw) => (Vec::new(), sw),
        };
        data.extend_from_slice(&sw.to_be_bytes());
        data
    }

    fn dispatch(&mut self, c: &Command<'_>) -> (Vec<u8>, u16) {
        match (c.cla, c.ins) {
            (0x00, 0xA4) => (Vec::new(), self.select(c)),
            (0x00, 0xB0) => self.read_binary(c),
            (0x00, 0x20) => (Vec::new(), self.verify(c)),
            (0x80, 0x2A) => self.sign(c),
            (0x00, 0x88) => (Vec::new(), sw::CONDITIONS_NOT_SATISFIED),
            (0x00 | 0x80, _) => (Vec::new(), sw::INS_NOT_SUPPORTED),
            _ => (Vec::new(), sw::CLA_NOT_SUPPORTED),
        }
    }

    fn select(&mut self, c: &Command<'_>) -> u16 {
        match c.p1 {
            0x04 => {
                let ap = match c.data {
                    d if d == apdu::AID_JPKI => Ap::Jpki,
                    d if d == apdu::AID_KENMEN => Ap::Kenmen,
                    d if d == apdu::AID_HOJO && self.has_hojo => Ap::Hojo,
                    _ => return sw::FILE_NOT_FOUND,
                };
                if self.ap != Some(ap) {
                    self.verified.clear();
                }
                self.ap = Some(ap);
                self.ef = None;
                sw::OK
            }
            0x00 if c.data == [0x3F, 0x00] || c.data.is_empty() => {
                self.reset();
                sw::OK
            }
            0x02 | 0x00 => {
                let Ok(fid) = <[u8; 2]>::try_from(c.data).map(u16::from_be_bytes) else {
                    return sw::WRONG_LENGTH;
                };
                let Some(ap) = self.ap else {
                    return sw::FILE_NOT_FOUND;
                };
                self.selected_log.push((Some(ap), fid));
                let exists = self.files.iter().any(|f| f.ap == ap && f.fid == fid)
                    || self.keys.iter().any(|k| k.ap == ap && k.fid == fid)
                    || self.pins.iter().any(|p| p.ap == ap && p.fid == fid);
                if !exists {
                    return sw::FILE_NOT_FOUND;
                }
                self.ef = Some(fid);
                sw::OK
            }
            _ => sw::WRONG_P1P2,
        }
    }

    fn read_binary(&mut self, c: &Command<'_>) -> (Vec<u8>, u16) {
        if c.p1 & 0x80 != 0 {
            // Short EF identifiers are not used by any reader of this card.
            return (Vec::new(), sw::FUNCTION_NOT_SUPPORTED);
        }
        let (Some(ap), Some(fid)) = (self.ap, self.ef) else {
            return (Vec::new(), sw::NO_CURRENT_EF);
        };
        let Some(file) = self.files.iter().find(|f| f.ap == ap && f.fid == fid) else {
            // A key or PIN EF.
            return (Vec::new(), sw::INCOMPATIBLE_FILE);
        };
        if !file.opened_by.is_empty() && !file.opened_by.iter().any(|p| self.verified.contains(p)) {
            return (Vec::new(), sw::SECURITY_NOT_SATISFIED);
        }
        let offset = usize::from(u16::from_be_bytes([c.p1, c.p2]));
        let want = c.le.unwrap_or(256);
        if offset > file.bytes.len() {
            return (Vec::new(), sw::OFFSET_OUTSIDE_EF);
        }
        let end = (offset + want).min(file.bytes.len());
        let out = file.bytes[offset..end].to_vec();
        (
            out,
            if end - offset < want {
                sw::END_OF_FILE
            } else {
                sw::OK
            },
        )
    }

    fn verify(&mut self, c: &Command<'_>) -> u16 {
        if c.p1 != 0x00 || c.p2 != 0x80 {
            return sw::WRONG_P1P2;
        }
        let (Some(ap), Some(fid)) = (self.ap, self.ef) else {
            return sw::NO_CURRENT_EF;
        };
        let Some(pin) = self.pins.iter_mut().find(|p| p.ap == ap && p.fid == fid) else {
            return sw::INCOMPATIBLE_FILE;
        };
        if pin.left == 0 {
            return sw::BLOCKED;
        }
        if c.data.is_empty() {
            return if self.verified.contains(&fid) {
                sw::OK
            } else {
                sw::retries_sw(pin.left)
            };
        }
        use subtle::ConstantTimeEq;
        if bool::from(c.data.ct_eq(pin.secret.as_slice())) {
            pin.left = pin.max;
            if !self.verified.contains(&fid) {
                self.verified.push(fid);
            }
            sw::OK
        } else {
            pin.left -= 1;
            self.verified.retain(|v| *v != fid);
            sw::retries_sw(pin.left)
        }
    }

    fn sign(&mut self, c: &Command<'_>) -> (Vec<u8>, u16) {
        if c.p1 != 0x00 {
            // P1 01–05 (the card hashes, or PSS) are documented by one source only.
            return (Vec::new(), sw::WRONG_P1P2);
        }
        if c.data.is_empty() || c.data.len() > 245 {
            return (Vec::new(), sw::WRONG_LENGTH);
        }
        let Some(ap) = self.ap else {
            return (Vec::new(), sw::CONDITIONS_NOT_SATISFIED);
        };
        let key = match (ap, c.p2) {
            (Ap::Kenmen, 0x00) => &self.card_key,
            (_, 0x80) => {
                let Some(fid) = self.ef else {
                    return (Vec::new(), sw::NO_CURRENT_EF);
                };
                let Some(k) = self.keys.iter().find(|k| k.ap == ap && k.fid == fid) else {
                    return (Vec::new(), sw::CONDITIONS_NOT_SATISFIED);
                };
                if !self.verified.contains(&k.opened_by) {
                    return (Vec::new(), sw::SECURITY_NOT_SATISFIED);
                }
                &k.key
            }
            (_, 0x00) => return (Vec::new(), sw::DATA_NOT_FOUND),
            _ => return (Vec::new(), sw::WRONG_P1P2),
        };
        // PKCS#1 v1.5 type-1 padding of exactly what was sent, as the card does.
        match key.sign(Pkcs1v15Sign::new_unprefixed(), c.data) {
            Ok(sig) => (sig, sw::OK),
            Err(_) => (Vec::new(), sw::WRONG_DATA),
        }
    }
}

fn file(ap: Ap, fid: u16, bytes: Vec<u8>, opened_by: &'static [u16]) -> File {
    File {
        ap,
        fid,
        bytes,
        opened_by,
    }
}

fn pin(ap: Ap, fid: u16, secret: &[u8], max: u8, left: u8) -> Pin {
    Pin {
        ap,
        fid,
        secret: Zeroizing::new(secret.to_vec()),
        max,
        left: left.min(max),
    }
}

/// A 12-digit number with a valid check digit, from the seeds: the virtual card's My Number (never leaves it
/// through this project's reader).
fn synthetic_my_number(seed: u64, person_seed: u64) -> Zeroizing<String> {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(format!("jpki-face vcard my number {seed} {person_seed}"));
    let digits: Vec<u32> = h.iter().take(11).map(|b| u32::from(*b) % 10).collect();
    // 番号法施行令 8条: weights 2–7 from the right, check digit 11 − (sum mod 11), 0 when that is ≥ 10.
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| d * if i < 6 { i as u32 + 2 } else { i as u32 - 4 })
        .sum();
    let check = match 11 - sum % 11 {
        10 | 11 => 0,
        c => c,
    };
    let mut s: String = digits.iter().map(|d| char::from(b'0' + *d as u8)).collect();
    s.push(char::from(b'0' + check as u8));
    Zeroizing::new(s)
}

/// The 利用者証明用 certificate: the test CA certifies the authentication key (digitalSignature only).
fn auth_certificate(h: &TestHierarchy, key: &RsaPrivateKey, serial_hex: &str) -> Result<Vec<u8>> {
    let mut serial = hex::decode(serial_hex).context("person serial")?;
    if serial.is_empty() {
        bail!("person has no serial");
    }
    // Another serial than the signing certificate's.
    serial[0] = (serial[0] ^ 0x40).clamp(1, 0x7F);
    let now = Utc::now().timestamp();
    let cert = pki::signing_cert(
        CertParams {
            serial: &serial,
            subject: pki::name(&format!(
                "CN=AUTH{},C=JP",
                &serial_hex[..12.min(serial_hex.len())]
            ))?,
            issuer: pki::name(pki::CA_DN)?,
            not_before: now - 3600,
            not_after: now + 5 * super::hierarchy::YEAR,
            subject_key: &key.to_public_key(),
            issuer_key: &h.ca,
        },
        &SanIdentity {
            name: "",
            name_alt: "",
            sex: "",
            birth: "",
            address: "",
            address_alt: "",
        },
        pki::auth_key_usage(),
        super::DEFAULT_OCSP_URL,
        super::DEFAULT_CRL_URL,
    )?;
    Ok(cert.to_der()?)
}

#[cfg(test)]
pub(crate) mod tests;
