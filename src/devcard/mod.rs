//! The test-card generator behind `jpki-face dev card …` (issue 3). Development and tests only.
//!
//! It makes real-shaped data with our own keys: a CVC root and municipal key (key-IDs `9000023/001`,
//! `9000033/001`), a `O=JPKI-TEST` signing CA with an OCSP signer, index.txt and CRL, and per person the
//! signing certificate with the JPKI SAN profile, the 券面AP record with a JPEG 2000 photo, and optionally the
//! 入力補助AP records. See docs/card.md for a walk-through.

mod hierarchy;
mod jp2;
mod keys;
mod lock;
mod mutate;
mod person;
mod pki;
mod portrait;
mod records;
pub mod vcard;

pub use hierarchy::{
    TestHierarchy, DEFAULT_CRL_URL, DEFAULT_OCSP_URL, HOJO_ROOT_KEY_ID, KENMEN_ROOT_KEY_ID,
    UNKNOWN_ROOT_KEY_ID,
};
pub use jp2::encode_rgb as encode_jp2;
pub use mutate::{mutate, Mutant};
pub use person::{Defect, PersonId, PersonRecord, PersonSpec, PhotoSource};
pub use portrait::synthetic_face;
pub use x509_cert::ext::pkix::CrlReason;

use crate::card::{SessionBinding, Sex};
use anyhow::{bail, Context, Result};
use base64::Engine;
use chrono::NaiveDate;
use std::path::PathBuf;

/// `jpki-face dev card …`
#[derive(Debug, clap::Subcommand)]
pub enum DevCardCommand {
    /// Create a test trust hierarchy in DIR (set `card.trust_dir` to DIR/trust).
    Init {
        /// Directory for the hierarchy (created if missing; reopened if it holds one with the same seed).
        dir: PathBuf,
        /// Seed for every key and serial (same seed, same keys).
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Issue a test card; prints the person id (a folder under DIR).
    Issue {
        /// The hierarchy directory made by `init`.
        dir: PathBuf,
        /// Face photo, JPEG or PNG; encoded as JPEG 2000 into DF27.
        #[arg(
            long,
            required_unless_present = "photo_raw",
            conflicts_with = "photo_raw"
        )]
        photo: Option<PathBuf>,
        /// A file whose bytes go into DF27 exactly as they are (no decoding, no re-encoding), signed like
        /// any photo: for tests with crafted or hostile chip photos.
        #[arg(long, value_name = "FILE")]
        photo_raw: Option<PathBuf>,
        /// Family and given name; a space between them becomes U+3000 as on the card.
        #[arg(long, default_value = "山田 太郎")]
        name: String,
        /// YYYY-MM-DD
        #[arg(long, default_value = "1990-01-02")]
        birth_date: String,
        #[arg(long, value_enum, default_value = "male")]
        sex: SexArg,
        #[arg(long, default_value = "東京都千代田区霞が関２－１－２")]
        address: String,
        /// Also write the 入力補助AP attribute, integrity and CVC files.
        #[arg(long)]
        with_hojo: bool,
        /// Seed for this person's keys (default: the person number).
        #[arg(long)]
        seed: Option<u64>,
        /// Issue a deliberately defective card.
        #[arg(long, value_enum)]
        defect: Option<Defect>,
        /// Encode the chip photo in greyscale.
        #[arg(long)]
        greyscale: bool,
    },
    /// Sign a session's challenge; prints the `card` JSON of the enrollment API.
    Sign {
        /// The hierarchy directory made by `init`.
        dir: PathBuf,
        /// The person id printed by `issue` (e.g. `person-0001`).
        person: String,
        #[arg(long)]
        session_id: String,
        /// The session nonce as the API returns it (base64url of 32 bytes).
        #[arg(long)]
        nonce: String,
        /// Apply a byte-level mutant to the output (negative tests).
        #[arg(long, value_enum)]
        mutant: Option<Mutant>,
    },
    /// Revoke a person's certificate: updates index.txt and re-issues the CRL.
    Revoke {
        /// The hierarchy directory made by `init`.
        dir: PathBuf,
        /// The person id printed by `issue` (e.g. `person-0001`).
        person: String,
        #[arg(long, value_enum)]
        reason: ReasonArg,
    },
    /// Serve a person's card as a virtual My Number Card behind vpcd (PC/SC), until vpcd goes away.
    Serve(vcard::ServeArgs),
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SexArg {
    Male,
    Female,
    NotKnown,
    NotApplicable,
}

/// RFC 5280 reasons with OpenSSL's names.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
#[value(rename_all = "verbatim")]
pub enum ReasonArg {
    #[value(name = "unspecified")]
    Unspecified,
    #[value(name = "keyCompromise")]
    KeyCompromise,
    #[value(name = "CACompromise")]
    CaCompromise,
    #[value(name = "affiliationChanged")]
    AffiliationChanged,
    #[value(name = "superseded")]
    Superseded,
    #[value(name = "cessationOfOperation")]
    CessationOfOperation,
    #[value(name = "certificateHold")]
    CertificateHold,
}

impl From<ReasonArg> for CrlReason {
    fn from(r: ReasonArg) -> Self {
        match r {
            ReasonArg::Unspecified => CrlReason::Unspecified,
            ReasonArg::KeyCompromise => CrlReason::KeyCompromise,
            ReasonArg::CaCompromise => CrlReason::CaCompromise,
            ReasonArg::AffiliationChanged => CrlReason::AffiliationChanged,
            ReasonArg::Superseded => CrlReason::Superseded,
            ReasonArg::CessationOfOperation => CrlReason::CessationOfOperation,
            ReasonArg::CertificateHold => CrlReason::CertificateHold,
        }
    }
}

/// Decodes a session nonce: base64url (the API's form) or standard base64, 32 bytes.
pub fn decode_nonce(s: &str) -> Result<[u8; 32]> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
    let bytes = [URL_SAFE_NO_PAD, URL_SAFE, STANDARD]
        .iter()
        .find_map(|e| e.decode(s.trim()).ok())
        .context("--nonce is not base64url")?;
    bytes
        .try_into()
        .map_err(|v: Vec<u8>| anyhow::anyhow!("--nonce decodes to {} bytes, want 32", v.len()))
}

pub fn run(cmd: DevCardCommand) -> Result<()> {
    match cmd {
        DevCardCommand::Init { dir, seed } => {
            let h = TestHierarchy::init(&dir, seed)?;
            println!("test hierarchy in {}", dir.display());
            println!(
                "trust it with:  [card] trust_dir = \"{}\"",
                h.trust_dir().display()
            );
            println!("OCSP responder: openssl ocsp -index {0}/index.txt -port 8888 -rsigner {0}/ocsp.pem -rkey {0}/ocsp.key -CA {0}/ca.pem", dir.display());
            Ok(())
        }
        DevCardCommand::Issue {
            dir,
            photo,
            photo_raw,
            name,
            birth_date,
            sex,
            address,
            with_hojo,
            seed,
            defect,
            greyscale,
        } => {
            let h = TestHierarchy::open(&dir)?;
            let photo = match (photo, photo_raw) {
                (_, Some(raw)) => PhotoSource::Raw(
                    std::fs::read(&raw)
                        .with_context(|| format!("--photo-raw {}", raw.display()))?,
                ),
                (Some(photo), None) => {
                    if !photo.is_file() {
                        bail!("--photo {}: no such file", photo.display());
                    }
                    PhotoSource::File(photo)
                }
                (None, None) => bail!("give --photo or --photo-raw"),
            };
            let birth_date = NaiveDate::parse_from_str(&birth_date, "%Y-%m-%d")
                .context("--birth-date: want YYYY-MM-DD")?;
            let sex = match sex {
                SexArg::Male => Sex::Male,
                SexArg::Female => Sex::Female,
                SexArg::NotKnown => Sex::NotKnown,
                SexArg::NotApplicable => Sex::NotApplicable,
            };
            let spec = PersonSpec {
                photo,
                name: name.replace(' ', "\u{3000}"),
                birth_date,
                sex,
                address,
                with_hojo,
                seed,
                defect,
                greyscale,
            };
            println!("{}", h.issue(&spec)?);
            Ok(())
        }
        DevCardCommand::Sign {
            dir,
            person,
            session_id,
            nonce,
            mutant,
        } => {
            let h = TestHierarchy::open(&dir)?;
            let nonce = decode_nonce(&nonce)?;
            let mut json = h.sign(
                &PersonId(person),
                &SessionBinding {
                    session_id: &session_id,
                    nonce: &nonce,
                },
            )?;
            if let Some(m) = mutant {
                json = mutate(&json, m)?;
            }
            println!("{}", serde_json::to_string_pretty(&json)?);
            Ok(())
        }
        DevCardCommand::Revoke {
            dir,
            person,
            reason,
        } => {
            let h = TestHierarchy::open(&dir)?;
            h.revoke(&PersonId(person.clone()), reason.into())?;
            println!("revoked {person}; index.txt and crl.der updated");
            Ok(())
        }
        DevCardCommand::Serve(args) => vcard::serve(args),
    }
}
