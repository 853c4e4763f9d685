//! A test person: what to put on the card ([`PersonSpec`]), issuing the card files, and signing a
//! session's challenge into the `card` JSON of api.md.

use super::hierarchy::{
    serial_from, TestHierarchy, DEFAULT_CRL_URL, DEFAULT_OCSP_URL, WRONG_ISSUER_DN, YEAR,
};
use super::jp2;
use super::keys::{self, write_atomic};
use super::lock::DirLock;
use super::pki::{self, CertParams, SanIdentity};
use super::portrait::synthetic_face;
use super::records::{hojo_files, kenmen_face};
use crate::card::{self, SessionBinding, Sex};
use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::{Datelike, NaiveDate, Utc};
use der::{Encode, EncodePem};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rsa::pkcs8::LineEnding;
use rsa::RsaPrivateKey;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A person's folder name under the hierarchy directory, e.g. `person-0001`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PersonId(pub String);

impl std::fmt::Display for PersonId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where the chip photo comes from.
#[derive(Debug, Clone)]
pub enum PhotoSource {
    /// A JPEG or PNG file.
    File(PathBuf),
    /// A drawn placeholder face (not a real face: detectors will not find it).
    Synthetic,
    /// These bytes as DF27, exactly as they are: not decoded, not re-encoded (crafted or hostile chip
    /// photos in a validly signed card).
    Raw(Vec<u8>),
}

/// Deliberate defects that need the issuing keys (byte-level mutants are [`super::mutate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Defect {
    /// Certificate validity ended yesterday → certificate `expired`.
    ExpiredCertificate,
    /// Certificate validity starts in 30 days → certificate `not_yet_valid`.
    NotYetValidCertificate,
    /// Certificate issued by a CA with the same DN but not in the trust dir → certificate `untrusted_chain`.
    UntrustedCa,
    /// The 券面AP CVC names issuer `9000023/999` → card_data `unknown_issuer`.
    UnknownCvcIssuer,
    /// Signed by the test CA's key but naming another issuer DN → certificate `wrong_issuer`.
    WrongIssuerName,
    /// keyUsage without nonRepudiation (an authentication certificate's) → certificate `bad_key_usage`.
    BadKeyUsage,
    /// The 入力補助AP name differs from the SAN name (correctly signed) → consistency `mismatch` [name].
    NameMismatch,
    /// The 券面AP birth date differs from the SAN (correctly signed) → consistency `mismatch` [birth_date].
    BirthDateMismatch,
}

/// What to put on a test card.
#[derive(Debug, Clone)]
pub struct PersonSpec {
    pub photo: PhotoSource,
    /// Family and given name separated by U+3000, as on the card.
    pub name: String,
    pub birth_date: NaiveDate,
    pub sex: Sex,
    /// With full-width digits, as on the card.
    pub address: String,
    pub with_hojo: bool,
    /// Seeds this person's keys and serial; default: derived from the person number.
    pub seed: Option<u64>,
    pub defect: Option<Defect>,
    /// Encode the chip photo as greyscale (real cards may be); default colour.
    pub greyscale: bool,
}

impl Default for PersonSpec {
    fn default() -> Self {
        Self {
            photo: PhotoSource::Synthetic,
            name: "山田\u{3000}太郎".into(),
            birth_date: NaiveDate::from_ymd_opt(1990, 1, 2).unwrap_or_default(),
            sex: Sex::Male,
            address: "東京都千代田区霞が関２－１－２".into(),
            with_hojo: false,
            seed: None,
            defect: None,
            greyscale: false,
        }
    }
}

/// What `person.json` records about an issued card.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PersonRecord {
    pub id: PersonId,
    pub seed: u64,
    /// Upper-case hex, as in index.txt.
    pub serial_hex: String,
    pub with_hojo: bool,
    pub defect: Option<Defect>,
    /// Whether the certificate is in index.txt (not for the untrusted-CA defect).
    pub in_index: bool,
}

impl TestHierarchy {
    /// Issues a card: certificate, 券面AP record, optional 入力補助AP records. Returns the new folder's name.
    pub fn issue(&self, spec: &PersonSpec) -> Result<PersonId> {
        let _lock = DirLock::acquire(&self.dir)?;
        // Claim the next free folder; create_dir fails if another process took it first.
        let (id, pdir) = (1..10_000)
            .find_map(|n| {
                let id = format!("person-{n:04}");
                let p = self.dir.join(&id);
                std::fs::create_dir(&p).ok().map(|_| (PersonId(id), p))
            })
            .context("no free person folder")?;
        let number: u64 = id.0.trim_start_matches("person-").parse().unwrap_or(0);
        let pseed = spec.seed.unwrap_or(number);
        let kdir = self.dir.join("keys");
        let card_key = keys::key(
            &kdir,
            self.key_cache.as_deref(),
            self.seed,
            &format!("person-{pseed}-card"),
        )?;
        let jpki_key = keys::key(
            &kdir,
            self.key_cache.as_deref(),
            self.seed,
            &format!("person-{pseed}-jpki"),
        )?;
        keys::write_pem(&pdir.join("card.key"), &card_key)?;
        keys::write_pem(&pdir.join("jpki.key"), &jpki_key)?;
        let mut rng = StdRng::seed_from_u64(self.seed ^ pseed.rotate_left(17) ^ 0x4A50_4B49);

        // Signing certificate.
        let serial = serial_from(self.seed, &format!("person-{pseed}-{number}"));
        let serial_hex = hex::encode_upper(&serial);
        let now = Utc::now().timestamp();
        let (nb, na) = match spec.defect {
            Some(Defect::ExpiredCertificate) => (now - 6 * YEAR, now - 86_400),
            Some(Defect::NotYetValidCertificate) => (now + 30 * 86_400, now + 5 * YEAR),
            _ => (now - 3600, now + 5 * YEAR),
        };
        let issuance_id = format!("TEST{}", &serial_hex[..12.min(serial_hex.len())]);
        let subject = pki::name(&format!("CN={issuance_id},L=Chiyoda-ku,L=Tokyo-to,C=JP"))?;
        let birth = format!(
            "{}{}",
            era_digit(spec.birth_date),
            spec.birth_date.format("%Y%m%d")
        );
        let sex = [spec.sex.code()];
        let sex = std::str::from_utf8(&sex)?;
        let san = SanIdentity {
            name: &spec.name,
            name_alt: "",
            sex,
            birth: &birth,
            address: &spec.address,
            address_alt: "",
        };
        let untrusted = spec.defect == Some(Defect::UntrustedCa);
        let issuer_key = if untrusted { &self.rogue_ca } else { &self.ca };
        let issuer_dn = if spec.defect == Some(Defect::WrongIssuerName) {
            WRONG_ISSUER_DN
        } else {
            pki::CA_DN
        };
        let cert = pki::signing_cert(
            CertParams {
                serial: &serial,
                subject,
                issuer: pki::name(issuer_dn)?,
                not_before: nb,
                not_after: na,
                subject_key: &jpki_key.to_public_key(),
                issuer_key,
            },
            &san,
            if spec.defect == Some(Defect::BadKeyUsage) {
                pki::auth_key_usage()
            } else {
                pki::signing_key_usage()
            },
            DEFAULT_OCSP_URL,
            DEFAULT_CRL_URL,
        )?;
        write_atomic(&pdir.join("cert.der"), &cert.to_der()?)?;
        write_atomic(
            &pdir.join("cert.pem"),
            cert.to_pem(LineEnding::LF)?.as_bytes(),
        )?;

        // 券面AP.
        let photo = match &spec.photo {
            PhotoSource::Raw(bytes) => {
                write_atomic(&pdir.join("photo.bin"), bytes)?;
                bytes.clone()
            }
            PhotoSource::File(p) => {
                let img = image::open(p)
                    .with_context(|| format!("{}: not a readable JPEG or PNG", p.display()))?;
                jp2::encode(&img, spec.greyscale, &pdir.join("photo.jp2"))?
            }
            PhotoSource::Synthetic => jp2::encode(
                &image::DynamicImage::ImageRgb8(synthetic_face(pseed)),
                spec.greyscale,
                &pdir.join("photo.jp2"),
            )?,
        };
        let card_birth = match spec.defect {
            Some(Defect::BirthDateMismatch) => {
                spec.birth_date.succ_opt().unwrap_or(spec.birth_date)
            }
            _ => spec.birth_date,
        };
        let expiry = NaiveDate::from_ymd_opt(
            Utc::now().year() + 10,
            card_birth.month(),
            card_birth.day().min(28),
        )
        .unwrap_or(card_birth);
        let (face, security_code) = kenmen_face(
            &self.municipal,
            card_birth,
            spec.sex,
            &card_key,
            &photo,
            &spec.name,
            &spec.address,
            expiry,
            &mut rng,
        )?;
        write_atomic(&pdir.join("kenmen-face.bin"), &face)?;
        // The virtual card (`dev card serve`) needs it for 照合番号B, as the holder reads it off the card.
        write_atomic(&pdir.join("security-code.txt"), security_code.as_bytes())?;
        let cvc_file = if spec.defect == Some(Defect::UnknownCvcIssuer) {
            "unknown-cvc.bin"
        } else {
            "kenmen-cvc.bin"
        };
        std::fs::copy(self.dir.join(cvc_file), pdir.join("kenmen-cvc.bin"))?;

        // 入力補助AP.
        let with_hojo = spec.with_hojo || spec.defect == Some(Defect::NameMismatch);
        if with_hojo {
            let name = match spec.defect {
                Some(Defect::NameMismatch) => format!(
                    "{}\u{3000}次郎",
                    spec.name.split('\u{3000}').next().unwrap_or("山田")
                ),
                _ => spec.name.clone(),
            };
            let (attrs, integrity) = hojo_files(
                &self.municipal,
                &name,
                &spec.address,
                spec.birth_date,
                spec.sex,
                &mut rng,
            )?;
            write_atomic(&pdir.join("hojo-attributes.bin"), &attrs)?;
            write_atomic(&pdir.join("hojo-integrity.bin"), &integrity)?;
            std::fs::copy(self.dir.join("hojo-cvc.bin"), pdir.join("hojo-cvc.bin"))?;
        }

        if !untrusted {
            let line = format!(
                "V\t{}\t\t{}\tunknown\t{}\n",
                pki::index_time(na)?,
                serial_hex,
                pki::oneline_dn(&[
                    ("C", "JP"),
                    ("L", "Tokyo-to"),
                    ("L", "Chiyoda-ku"),
                    ("CN", &issuance_id)
                ])
            );
            let index = self.dir.join("index.txt");
            let mut text = std::fs::read_to_string(&index).unwrap_or_default();
            text.push_str(&line);
            write_atomic(&index, text.as_bytes())?;
        }
        let record = PersonRecord {
            id: id.clone(),
            seed: pseed,
            serial_hex,
            with_hojo,
            defect: spec.defect,
            in_index: !untrusted,
        };
        write_atomic(
            &pdir.join("person.json"),
            serde_json::to_string_pretty(&record)?.as_bytes(),
        )?;
        Ok(id)
    }

    fn person_dir(&self, person: &PersonId) -> Result<PathBuf> {
        let valid = person.0.starts_with("person-")
            && person
                .0
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let dir = self.dir.join(&person.0);
        if !valid || !dir.join("person.json").is_file() {
            bail!("no person {person} in {}", self.dir.display());
        }
        Ok(dir)
    }

    pub fn person(&self, person: &PersonId) -> Result<PersonRecord> {
        let text = std::fs::read_to_string(self.person_dir(person)?.join("person.json"))?;
        Ok(serde_json::from_str(&text)?)
    }

    /// Signs `tbs_card` and `tbs_jpki` for a session and returns the `card` JSON of api.md.
    pub fn sign(
        &self,
        person: &PersonId,
        binding: &SessionBinding<'_>,
    ) -> Result<serde_json::Value> {
        let pdir = self.person_dir(person)?;
        let record = self.person(person)?;
        let read = |f: &str| std::fs::read(pdir.join(f)).with_context(|| format!("{person}/{f}"));
        let load_key = |f: &str| -> Result<RsaPrivateKey> {
            use rsa::pkcs8::DecodePrivateKey;
            Ok(RsaPrivateKey::from_pkcs8_pem(&std::fs::read_to_string(
                pdir.join(f),
            )?)?)
        };
        let card_sig = pki::sign_sha256(&load_key("card.key")?, &card::tbs_card(binding))?;
        let jpki_sig = pki::sign_sha256(&load_key("jpki.key")?, &card::tbs_jpki(binding))?;
        let mut json = serde_json::json!({
            "kenmen": {
                "face": B64.encode(read("kenmen-face.bin")?),
                "cvc": B64.encode(read("kenmen-cvc.bin")?),
                "card_signature": B64.encode(card_sig),
            },
            "jpki": {
                "signing_certificate": B64.encode(read("cert.der")?),
                "signature": B64.encode(jpki_sig),
            },
        });
        if record.with_hojo {
            json["hojo"] = serde_json::json!({
                "attributes": B64.encode(read("hojo-attributes.bin")?),
                "integrity": B64.encode(read("hojo-integrity.bin")?),
                "cvc": B64.encode(read("hojo-cvc.bin")?),
            });
        }
        Ok(json)
    }
}

/// The JPKI era digit for the SAN birth date: 1 明治, 2 大正, 3 昭和, 4 平成, 5 令和.
fn era_digit(d: NaiveDate) -> char {
    let ymd = (d.year(), d.month(), d.day());
    if ymd >= (2019, 5, 1) {
        '5'
    } else if ymd >= (1989, 1, 8) {
        '4'
    } else if ymd >= (1926, 12, 25) {
        '3'
    } else if ymd >= (1912, 7, 30) {
        '2'
    } else {
        '1'
    }
}
