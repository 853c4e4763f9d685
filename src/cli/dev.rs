//! `jpki-face dev card init|issue|sign|revoke`: the test-card generator ([`crate::devcard`]) on the
//! command line.

use super::{DevCardCommand, SexArg};
use crate::card::{SessionBinding, Sex};
use crate::devcard::{decode_nonce, mutate, PersonId, PersonSpec, PhotoSource, TestHierarchy};
use anyhow::{bail, Context, Result};
use chrono::NaiveDate;

pub(super) fn run(cmd: DevCardCommand) -> Result<()> {
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
        DevCardCommand::Serve(args) => crate::devcard::vcard::serve(args),
    }
}
