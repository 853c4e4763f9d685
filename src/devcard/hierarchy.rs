//! The test hierarchy on disk: init, open, the static files (trust directory, CA, OCSP signer, CRL) and
//! revocation. Issuing and signing cards is in [`super::person`], the card files in [`super::records`].

use super::keys::{self, write_atomic};
use super::lock::DirLock;
use super::pki::{self, CertParams, Revoked};
use super::records::cvc;
use super::PersonId;
use crate::card::{self, make_key_id};
use anyhow::{anyhow, bail, Context, Result};
use chrono::Utc;
use der::{Encode, EncodePem};
use rsa::pkcs8::LineEnding;
use rsa::RsaPrivateKey;
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
pub(super) const WRONG_ISSUER_DN: &str =
    "OU=Japan Agency for Local Authority Information Systems,OU=JPKI for digital signature,O=JPKI-OTHER,C=JP";

/// Where the test certificates point for revocation checks (an `openssl ocsp` responder, a CRL server).
pub const DEFAULT_OCSP_URL: &str = "http://127.0.0.1:8888";
pub const DEFAULT_CRL_URL: &str = "http://127.0.0.1:8889/crl.der";

pub(super) const YEAR: i64 = 365 * 86_400;

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
    pub(super) dir: PathBuf,
    pub(super) seed: u64,
    pub(super) key_cache: Option<PathBuf>,
    pub(super) kenmen_root: RsaPrivateKey,
    pub(super) hojo_root: RsaPrivateKey,
    pub(super) municipal: RsaPrivateKey,
    pub(super) ca: RsaPrivateKey,
    pub(super) rogue_ca: RsaPrivateKey,
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
            &cvc(
                &self.kenmen_root,
                KENMEN_ROOT_KEY_ID,
                MUNICIPAL_KEY_ID,
                &municipal,
            )?,
        )?;
        write_atomic(
            &self.dir.join("hojo-cvc.bin"),
            &cvc(
                &self.hojo_root,
                HOJO_ROOT_KEY_ID,
                MUNICIPAL_KEY_ID,
                &municipal,
            )?,
        )?;
        write_atomic(
            &self.dir.join("unknown-cvc.bin"),
            &cvc(
                &self.kenmen_root,
                UNKNOWN_ROOT_KEY_ID,
                MUNICIPAL_KEY_ID,
                &municipal,
            )?,
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
pub(super) fn serial_from(seed: u64, label: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(b"jpki-face devcard serial");
    h.update(seed.to_be_bytes());
    h.update(label.as_bytes());
    let mut s = h.finalize()[..16].to_vec();
    s[0] = (s[0] & 0x7F).max(1);
    s
}
