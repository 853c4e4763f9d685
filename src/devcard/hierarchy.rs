//! The test hierarchy on disk: init, issue, sign, revoke. The CLI and the tests both drive this.

use super::jp2;
use super::keys::{self, write_atomic};
use super::pki::{self, CertParams, Revoked, SanIdentity};
use crate::card::{self, make_key_id, push_tlv, SessionBinding, Sex};
use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::{Datelike, NaiveDate, Utc};
use der::{Encode, EncodePem};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rsa::pkcs8::LineEnding;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use x509_cert::ext::pkix::CrlReason;

/// Key-IDs of the test CVC roots (they stand in for J-LIS's `5000023` and `5000033`).
pub const KENMEN_ROOT_KEY_ID: (&str, &str) = ("9000023", "001");
pub const HOJO_ROOT_KEY_ID: (&str, &str) = ("9000033", "001");
/// The municipal data-signing key the CVCs certify.
pub const MUNICIPAL_KEY_ID: (&str, &str) = ("9131001", "000");
/// A key-ID no trust directory contains: the `unknown_cvc_issuer` defect.
pub const UNKNOWN_ROOT_KEY_ID: (&str, &str) = ("9000023", "999");

/// The issuer DN of the `wrong-issuer-name` defect: the test CA's key signs, but this name is not its subject.
const WRONG_ISSUER_DN: &str =
    "OU=Japan Agency for Local Authority Information Systems,OU=JPKI for digital signature,O=JPKI-OTHER,C=JP";

/// Where the test certificates point for revocation checks (an `openssl ocsp` responder, a CRL server).
pub const DEFAULT_OCSP_URL: &str = "http://127.0.0.1:8888";
pub const DEFAULT_CRL_URL: &str = "http://127.0.0.1:8889/crl.der";

const YEAR: i64 = 365 * 86_400;

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

#[derive(Debug, Serialize, Deserialize)]
struct HierarchyFile {
    seed: u64,
    format: u32,
}

/// A test hierarchy: CVC roots and a municipal key, a JPKI-TEST signing CA, an OCSP signer, index.txt and a CRL.
///
/// Layout of the directory (all paths relative to it):
/// - `trust/`: set `card.trust_dir` to this (`cvc-issuers/`, `jpki-roots/`);
/// - `ca.pem`, `ocsp.pem`, `ocsp.key`, `index.txt`: for `openssl ocsp -index index.txt -rsigner ocsp.pem -rkey ocsp.key -CA ca.pem`;
/// - `crl.der` / `crl.pem`: the current CRL; `untrusted-ca.pem`: a look-alike CA nobody trusts;
/// - `keys/`: cached private keys; `person-NNNN/`: one folder per issued card.
pub struct TestHierarchy {
    dir: PathBuf,
    seed: u64,
    key_cache: Option<PathBuf>,
    kenmen_root: RsaPrivateKey,
    hojo_root: RsaPrivateKey,
    municipal: RsaPrivateKey,
    ca: RsaPrivateKey,
    rogue_ca: RsaPrivateKey,
}

impl std::fmt::Debug for TestHierarchy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestHierarchy")
            .field("dir", &self.dir)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

impl TestHierarchy {
    /// Creates the hierarchy in `dir`, or reopens it if it was made with the same seed.
    pub fn init(dir: &Path, seed: u64) -> Result<Self> {
        Self::init_with_key_cache(dir, seed, None)
    }

    /// As [`Self::init`], sharing generated keys through `key_cache` (tests point it at the target directory).
    pub fn init_with_key_cache(dir: &Path, seed: u64, key_cache: Option<&Path>) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        // Test processes may share one hierarchy: only one of them creates it.
        let _lock = DirLock::acquire(dir)?;
        let marker = dir.join("hierarchy.json");
        if let Ok(text) = std::fs::read_to_string(&marker) {
            let existing: HierarchyFile = serde_json::from_str(&text).context("hierarchy.json")?;
            if existing.seed != seed {
                bail!(
                    "{} already holds a hierarchy with seed {}",
                    dir.display(),
                    existing.seed
                );
            }
            return Self::load(dir, seed, key_cache);
        }
        let h = Self::load(dir, seed, key_cache)?;
        h.write_static_files()?;
        write_atomic(
            &marker,
            serde_json::to_string_pretty(&HierarchyFile { seed, format: 1 })?.as_bytes(),
        )?;
        Ok(h)
    }

    /// Opens an existing hierarchy.
    pub fn open(dir: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(dir.join("hierarchy.json")).with_context(|| {
            format!(
                "{} is not a test hierarchy (run `jpki-face dev card init` first)",
                dir.display()
            )
        })?;
        let file: HierarchyFile = serde_json::from_str(&text).context("hierarchy.json")?;
        Self::load(dir, file.seed, None)
    }

    fn load(dir: &Path, seed: u64, key_cache: Option<&Path>) -> Result<Self> {
        let kdir = dir.join("keys");
        let k = |label: &str| keys::key(&kdir, key_cache, seed, label);
        Ok(Self {
            dir: dir.to_path_buf(),
            seed,
            key_cache: key_cache.map(Path::to_path_buf),
            kenmen_root: k("cvc-root-kenmen")?,
            hojo_root: k("cvc-root-hojo")?,
            municipal: k("cvc-municipal")?,
            ca: k("jpki-test-ca")?,
            rogue_ca: k("untrusted-ca")?,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory to set as `card.trust_dir`.
    pub fn trust_dir(&self) -> PathBuf {
        self.dir.join("trust")
    }

    /// A card configuration trusting this hierarchy.
    pub fn card_config(&self) -> card::CardConfig {
        card::CardConfig {
            trust_dir: Some(self.trust_dir()),
            ..Default::default()
        }
    }

    /// The trust store the server would load for this hierarchy.
    pub fn trust_store(&self) -> Result<card::TrustStore> {
        Ok(card::TrustStore::from_config(&self.card_config())?)
    }

    fn ca_validity(&self) -> (i64, i64) {
        // Fixed from the seed's creation day would be nicer, but certificates must be valid "now".
        let now = Utc::now().timestamp();
        (now - 86_400, now + 10 * YEAR)
    }

    fn write_static_files(&self) -> Result<()> {
        let (nb, na) = self.ca_validity();
        let ca_name = pki::name(pki::CA_DN)?;
        let serial = |label: &str| serial_from(self.seed, label);
        let ca = pki::ca_cert(CertParams {
            serial: &serial("ca"),
            subject: ca_name.clone(),
            issuer: ca_name.clone(),
            not_before: nb,
            not_after: na,
            subject_key: &self.ca.to_public_key(),
            issuer_key: &self.ca,
        })?;
        let ca_pem = ca.to_pem(LineEnding::LF)?;
        write_atomic(&self.dir.join("ca.pem"), ca_pem.as_bytes())?;
        let rogue = pki::ca_cert(CertParams {
            serial: &serial("untrusted-ca"),
            subject: ca_name.clone(),
            issuer: ca_name.clone(),
            not_before: nb,
            not_after: na,
            subject_key: &self.rogue_ca.to_public_key(),
            issuer_key: &self.rogue_ca,
        })?;
        write_atomic(
            &self.dir.join("untrusted-ca.pem"),
            rogue.to_pem(LineEnding::LF)?.as_bytes(),
        )?;

        let ocsp_key = keys::key(
            &self.dir.join("keys"),
            self.key_cache.as_deref(),
            self.seed,
            "ocsp",
        )?;
        let ocsp = pki::ocsp_cert(CertParams {
            serial: &serial("ocsp"),
            subject: pki::name(pki::OCSP_DN)?,
            issuer: ca_name,
            not_before: nb,
            not_after: Utc::now().timestamp() + YEAR,
            subject_key: &ocsp_key.to_public_key(),
            issuer_key: &self.ca,
        })?;
        write_atomic(
            &self.dir.join("ocsp.pem"),
            ocsp.to_pem(LineEnding::LF)?.as_bytes(),
        )?;
        keys::write_pem(&self.dir.join("ocsp.key"), &ocsp_key)?;

        // Trust directory: both CVC roots and the CA.
        let trust = self.trust_dir();
        for ((auth, num), key) in [
            (KENMEN_ROOT_KEY_ID, &self.kenmen_root),
            (HOJO_ROOT_KEY_ID, &self.hojo_root),
        ] {
            use rsa::pkcs8::EncodePublicKey;
            let pem = key.to_public_key().to_public_key_pem(LineEnding::LF)?;
            let file = format!("{}.pem", hex::encode_upper(make_key_id(auth, num)));
            write_atomic(&trust.join("cvc-issuers").join(file), pem.as_bytes())?;
        }
        write_atomic(
            &trust.join("jpki-roots").join("jpki-test-ca.pem"),
            ca_pem.as_bytes(),
        )?;

        // The CVCs certifying the municipal key, and the unknown-issuer one.
        let municipal = self.municipal.to_public_key();
        write_atomic(
            &self.dir.join("kenmen-cvc.bin"),
            &cvc(&self.kenmen_root, KENMEN_ROOT_KEY_ID, &municipal)?,
        )?;
        write_atomic(
            &self.dir.join("hojo-cvc.bin"),
            &cvc(&self.hojo_root, HOJO_ROOT_KEY_ID, &municipal)?,
        )?;
        write_atomic(
            &self.dir.join("unknown-cvc.bin"),
            &cvc(&self.kenmen_root, UNKNOWN_ROOT_KEY_ID, &municipal)?,
        )?;

        write_atomic(&self.dir.join("index.txt"), b"")?;
        write_atomic(&self.dir.join("index.txt.attr"), b"unique_subject = no\n")?;
        write_atomic(&self.dir.join("crlnumber"), b"0\n")?;
        self.write_crl()?;
        let snippet = format!(
            "# Trust this test hierarchy (development only).\n[card]\ntrust_dir = \"{}\"\n",
            self.trust_dir().display()
        );
        write_atomic(&self.dir.join("config-snippet.toml"), snippet.as_bytes())?;
        Ok(())
    }

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
        let img = match &spec.photo {
            PhotoSource::File(p) => image::open(p)
                .with_context(|| format!("{}: not a readable JPEG or PNG", p.display()))?,
            PhotoSource::Synthetic => image::DynamicImage::ImageRgb8(synthetic_face(pseed)),
        };
        let photo = jp2::encode(&img, spec.greyscale, &pdir.join("photo.jp2"))?;
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
        let face = kenmen_face(
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

    /// Marks the person's certificate revoked in index.txt (OpenSSL format, with the reason) and re-issues the CRL.
    pub fn revoke(&self, person: &PersonId, reason: CrlReason) -> Result<()> {
        let _lock = DirLock::acquire(&self.dir)?;
        let record = self.person(person)?;
        if !record.in_index {
            bail!("{person}'s certificate was not issued by the test CA (untrusted-ca defect)");
        }
        let index = self.dir.join("index.txt");
        let text = std::fs::read_to_string(&index)?;
        let when = pki::index_time(Utc::now().timestamp())?;
        let mut found = false;
        let mut out = String::new();
        for line in text.lines() {
            let mut cols: Vec<String> = line.split('\t').map(str::to_string).collect();
            if cols.len() == 6 && cols[3] == record.serial_hex {
                if cols[0] == "R" {
                    bail!("{person} is already revoked");
                }
                cols[0] = "R".into();
                cols[2] = format!("{when},{}", pki::reason_name(reason));
                found = true;
            }
            out.push_str(&cols.join("\t"));
            out.push('\n');
        }
        if !found {
            bail!("{person}'s serial is not in index.txt");
        }
        write_atomic(&index, out.as_bytes())?;
        self.write_crl()
    }

    /// Rebuilds `crl.der`/`crl.pem` from index.txt with the next CRL number.
    fn write_crl(&self) -> Result<()> {
        let text = std::fs::read_to_string(self.dir.join("index.txt")).unwrap_or_default();
        let mut revoked = Vec::new();
        for line in text.lines() {
            let cols: Vec<&str> = line.split('\t').collect();
            let [status, _, rev, serial, ..] = cols.as_slice() else {
                continue;
            };
            if *status != "R" {
                continue;
            }
            let (at, reason) = rev.split_once(',').unwrap_or((rev, "unspecified"));
            revoked.push(Revoked {
                serial: hex::decode(serial)?,
                at: pki::parse_index_time(at).context("bad revocation time in index.txt")?,
                reason: pki::reason_from_name(reason).unwrap_or(CrlReason::Unspecified),
            });
        }
        let number_path = self.dir.join("crlnumber");
        let number: u32 = std::fs::read_to_string(&number_path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
            + 1;
        let crl = pki::crl(
            pki::name(pki::CA_DN)?,
            &self.ca,
            &revoked,
            Utc::now().timestamp(),
            number,
        )?;
        let der = crl.to_der()?;
        write_atomic(&self.dir.join("crl.der"), &der)?;
        let pem = der::pem::encode_string("X509 CRL", LineEnding::LF, &der)
            .map_err(|e| anyhow!("{e}"))?;
        write_atomic(&self.dir.join("crl.pem"), pem.as_bytes())?;
        write_atomic(&number_path, format!("{number}\n").as_bytes())?;
        Ok(())
    }
}

/// A positive 16-byte serial derived from the seed (the first byte 0x01–0x7F, so the hex has no sign byte).
fn serial_from(seed: u64, label: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(b"jpki-face devcard serial");
    h.update(seed.to_be_bytes());
    h.update(label.as_bytes());
    let mut s = h.finalize()[..16].to_vec();
    s[0] = (s[0] & 0x7F).max(1);
    s
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

/// `7F21 { 5F4E issuerId ‖ subjectId ‖ 90/91 key, 5F37 sig }` signed by `root`.
fn cvc(
    root: &RsaPrivateKey,
    issuer: (&str, &str),
    subject_key: &rsa::RsaPublicKey,
) -> Result<Vec<u8>> {
    let mut body = Vec::with_capacity(297);
    body.extend_from_slice(&make_key_id(issuer.0, issuer.1));
    body.extend_from_slice(&make_key_id(MUNICIPAL_KEY_ID.0, MUNICIPAL_KEY_ID.1));
    body.extend_from_slice(&card::encode_card_key(subject_key));
    let sig = pki::sign_sha256(root, &body)?;
    let mut inner = Vec::new();
    push_tlv(&mut inner, 0x5F4E, &body);
    push_tlv(&mut inner, 0x5F37, &sig);
    let mut out = Vec::new();
    push_tlv(&mut out, 0x7F21, &inner);
    Ok(out)
}

/// Wraps `children` (full TLVs tagged DF22, DF23, …) as `FF20 { DF21 offsets, children }`.
pub(crate) fn offset_record(children: &[Vec<u8>]) -> Vec<u8> {
    let body_len: usize = children.iter().map(Vec::len).sum();
    let df21_len = 3 + 2 * children.len();
    let value_len = df21_len + body_len;
    let header = 2 + if value_len < 0x80 {
        1
    } else if value_len <= 0xFF {
        2
    } else {
        3
    };
    let mut offsets = Vec::with_capacity(2 * children.len());
    let mut at = header + df21_len;
    for c in children {
        offsets.extend_from_slice(&u16::try_from(at).unwrap_or(u16::MAX).to_be_bytes());
        at += c.len();
    }
    let mut value = Vec::with_capacity(value_len);
    push_tlv(&mut value, 0xDF21, &offsets);
    for c in children {
        value.extend_from_slice(c);
    }
    let mut out = Vec::with_capacity(header + value_len);
    push_tlv(&mut out, 0xFF20, &value);
    out
}

fn tlv(tag: u16, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    push_tlv(&mut v, tag, value);
    v
}

#[allow(clippy::too_many_arguments)]
fn kenmen_face(
    issuer: &RsaPrivateKey,
    birth: NaiveDate,
    sex: Sex,
    card_key: &RsaPrivateKey,
    photo: &[u8],
    name: &str,
    address: &str,
    expiry: NaiveDate,
    rng: &mut StdRng,
) -> Result<Vec<u8>> {
    let mut children = vec![
        tlv(0xDF22, birth.format("%Y%m%d").to_string().as_bytes()),
        tlv(0xDF23, &[sex.code()]),
        tlv(0xDF24, &card::encode_card_key(&card_key.to_public_key())),
        tlv(0xDF25, &text_png(name, 256, 32)?),
        tlv(0xDF26, &text_png(address, 512, 48)?),
        tlv(0xDF27, photo),
    ];
    let mut with_offsets = vec![tlv(0xDF21, &[])];
    with_offsets.extend(children.iter().cloned());
    let parsed: Vec<card::tlv::Tlv<'_>> = with_offsets
        .iter()
        .filter_map(|raw| card::tlv::read(raw, 0).ok().map(|(t, _)| t))
        .collect();
    let block = card::three_hash_block(&parsed);
    let sig = issuer.sign(Pkcs1v15Sign::new_unprefixed(), &block)?;
    children.push(tlv(0xDF28, &sig));
    children.push(tlv(0xDF29, expiry.format("%Y%m%d").to_string().as_bytes()));
    let code: String = (0..4)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect();
    children.push(tlv(0xDF2A, &text_png(&code, 24, 12)?));
    let mut out = offset_record(&children);
    // Real EF 0002 files are padded with filler to their allocated size.
    out.resize(out.len().div_ceil(256) * 256, 0xFF);
    Ok(out)
}

fn hojo_files(
    issuer: &RsaPrivateKey,
    name: &str,
    address: &str,
    birth: NaiveDate,
    sex: Sex,
    rng: &mut StdRng,
) -> Result<(Vec<u8>, Vec<u8>)> {
    let attrs = offset_record(&[
        tlv(0xDF22, name.as_bytes()),
        tlv(0xDF23, address.as_bytes()),
        tlv(0xDF24, birth.format("%Y%m%d").to_string().as_bytes()),
        tlv(0xDF25, &[sex.code()]),
    ]);
    let (record, _) = card::tlv::read(&attrs, 0).map_err(|e| anyhow!("{e}"))?;
    let header = record.raw.len() - record.value.len();
    let df21_len = 3 + 8;
    let digest_input = attrs
        .get(header + df21_len..)
        .context("attributes too short")?;
    // DF31 stands for SHA-256 of the My Number file; here it is random, and the server never compares it.
    let df31: [u8; 32] = rng.gen();
    let mut signed = tlv(0xDF31, &df31);
    signed.extend_from_slice(&tlv(0xDF32, &Sha256::digest(digest_input)));
    let sig = pki::sign_sha256(issuer, &signed)?;
    let mut inner = signed;
    inner.extend_from_slice(&tlv(0xDF33, &sig));
    let mut integrity = tlv(0xFF30, &inner);
    integrity.resize(integrity.len().div_ceil(64) * 64, 0x00);
    let mut attrs = attrs;
    attrs.resize(attrs.len().div_ceil(64) * 64, 0xFF);
    Ok((attrs, integrity))
}

/// A small black-on-white PNG standing in for the card's rendered text (its pattern depends on the text).
fn text_png(text: &str, w: u32, h: u32) -> Result<Vec<u8>> {
    let digest = Sha256::digest(text.as_bytes());
    let img = image::GrayImage::from_fn(w, h, |x, y| {
        let bit = digest[((x / 8 + y / 8) % 32) as usize] >> (x % 8) & 1;
        image::Luma([if bit == 1 && y > 2 && y + 2 < h {
            0
        } else {
            255
        }])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)?;
    Ok(out.into_inner())
}

/// A drawn placeholder portrait: background, head, eyes, mouth. Deterministic from `seed`.
pub fn synthetic_face(seed: u64) -> image::RgbImage {
    let mut rng = StdRng::seed_from_u64(seed);
    let bg = [
        rng.gen_range(150..230u8),
        rng.gen_range(150..230u8),
        rng.gen_range(180..250u8),
    ];
    let skin = [
        rng.gen_range(190..240u8),
        rng.gen_range(150..200u8),
        rng.gen_range(120..170u8),
    ];
    let (w, h) = (240u32, 320u32);
    image::RgbImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (x as f32 - 120.0, y as f32 - 150.0);
        let head = (fx / 70.0).powi(2) + (fy / 95.0).powi(2) <= 1.0;
        let eye = |cx: f32| ((x as f32 - cx).powi(2) + (y as f32 - 130.0).powi(2)) <= 64.0;
        let mouth = (x as f32 - 120.0).abs() < 25.0 && (y as f32 - 195.0).abs() < 4.0;
        if head && (eye(95.0) || eye(145.0) || mouth) {
            image::Rgb([40, 30, 30])
        } else if head {
            image::Rgb(skin)
        } else {
            image::Rgb(bg)
        }
    })
}

/// A lock shared by threads and processes: the directory `DIR/.lock` exists while it is held.
///
/// `create_dir` is atomic, so exactly one holder wins; a lock older than two minutes is taken to be left over
/// from a crashed process and is broken.
struct DirLock {
    path: PathBuf,
}

impl DirLock {
    fn acquire(dir: &Path) -> Result<Self> {
        let path = dir.join(".lock");
        let start = std::time::Instant::now();
        loop {
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(Self { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stale = std::fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > std::time::Duration::from_secs(120));
                    if stale {
                        let _ = std::fs::remove_dir(&path);
                        continue;
                    }
                    if start.elapsed() > std::time::Duration::from_secs(180) {
                        bail!("{} is held by another process", path.display());
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(e).with_context(|| format!("create {}", path.display())),
            }
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.path);
    }
}
