//! The reader's APDU sequence run in-process against the virtual card: the card JSON it builds is the one
//! `dev card sign` writes and the server's verifier accepts; wrong, scarce and locked PINs stop it before
//! anything is read; a pulled card is a clear error; the My Number is never asked for.

use super::*;
use crate::devcard::vcard::{CardSecrets, VirtualCard, DEFAULT_SIGN_PASSWORD};

/// The virtual card's own test holder (one hierarchy, one card with the 入力補助AP).
use crate::devcard::vcard::tests::fixture;

/// The virtual card as a transport, logging every command; `pull_after` removes the card.
struct InProcess {
    card: VirtualCard,
    log: Vec<Vec<u8>>,
    pull_after: Option<usize>,
}

impl Transport for InProcess {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, TransportError> {
        if self.pull_after.is_some_and(|n| self.log.len() >= n) {
            return Err(TransportError::CardRemoved);
        }
        self.log.push(apdu.to_vec());
        Ok(self.card.respond(apdu))
    }
}

fn transport(secrets: CardSecrets) -> InProcess {
    let (h, p) = fixture();
    InProcess {
        card: VirtualCard::from_person(h, p, secrets).expect("virtual card"),
        log: Vec::new(),
        pull_after: None,
    }
}

fn creds(password: &str) -> Credentials {
    let (h, p) = fixture();
    let pdir = h.dir().join(&p.0);
    let face = std::fs::read(pdir.join("kenmen-face.bin")).unwrap();
    let rec = crate::card::FaceRecord::parse(&face, 1 << 20).unwrap();
    let code = std::fs::read_to_string(pdir.join("security-code.txt")).unwrap();
    Credentials {
        sign_password: Zeroizing::new(password.into()),
        collation_b: apdu::collation_b(
            rec.birth_date,
            chrono::Datelike::year(&rec.expiry_unauthenticated.unwrap()) as u32,
            &code,
        )
        .unwrap(),
    }
}

const SESSION: &str = "ses_reader_test";
const NONCE: [u8; 32] = [0x42; 32];

fn binding() -> SessionBinding<'static> {
    SessionBinding {
        session_id: SESSION,
        nonce: &NONCE,
    }
}

/// VERIFY commands that carried a PIN (not the empty counter queries).
fn pins_tried(log: &[Vec<u8>]) -> usize {
    log.iter().filter(|c| c[1] == 0x20 && c.len() > 4).count()
}

#[test]
fn the_card_json_is_the_one_dev_card_sign_writes_and_it_verifies() {
    let (h, p) = fixture();
    let mut t = transport(CardSecrets::default());
    let data = read_card(&mut t, &creds(DEFAULT_SIGN_PASSWORD), &binding(), 2, true).unwrap();
    let ours = data.to_json();
    let theirs = h.sign(p, &binding()).unwrap();
    let b64 = |v: &serde_json::Value| B64.decode(v.as_str().unwrap()).unwrap();
    for (ap, fields) in [
        ("kenmen", &["face", "cvc", "card_signature"][..]),
        ("jpki", &["signing_certificate", "signature"][..]),
        ("hojo", &["attributes", "integrity", "cvc"][..]),
    ] {
        let keys = |j: &serde_json::Value| {
            let mut k: Vec<String> = j[ap].as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(keys(&ours), keys(&theirs), "{ap}");
        for f in fields {
            let (a, b) = (b64(&ours[ap][f]), b64(&theirs[ap][f]));
            // Files are read up to the end of their TLV object; the stored files carry filler after it.
            assert_eq!(a, b[..a.len()], "{ap}.{f}");
            assert!(
                b[a.len()..].iter().all(|x| *x == 0xFF || *x == 0),
                "{ap}.{f} filler"
            );
        }
    }
    // PKCS#1 v1.5 is deterministic: the card's signatures are byte for byte the generator's.
    assert_eq!(ours["jpki"]["signature"], theirs["jpki"]["signature"]);
    assert_eq!(
        ours["kenmen"]["card_signature"],
        theirs["kenmen"]["card_signature"]
    );

    let sub = crate::card::parse_card_json(ours.to_string().as_bytes()).unwrap();
    let report = crate::card::verify_card(
        &sub,
        &h.trust_store().unwrap(),
        &crate::card::CardPolicy::default(),
        &binding(),
        chrono::Utc::now(),
    )
    .unwrap();
    assert!(report.failures().is_empty(), "{report:?}");

    // Each PIN tried exactly once; the My Number and 照合番号A never asked for.
    assert_eq!(pins_tried(&t.log), 3);
    assert!(!t.card.my_number_was_selected());
    assert!(!t.log.iter().any(|c| c[1] == 0x20 && c.len() == 5 + 12));
}

#[test]
fn a_wrong_password_costs_one_try_and_stops_the_read() {
    let mut t = transport(CardSecrets::default());
    let err = read_card(&mut t, &creds("WRONG99"), &binding(), 2, true).unwrap_err();
    assert_eq!(
        err,
        ReadError::WrongPin {
            pin: PinKind::SignPassword,
            left: 4
        }
    );
    assert_eq!(t.card.tries_left().0, 4);
    assert_eq!(pins_tried(&t.log), 1);
    // The VERIFY was the last command: nothing read, nothing signed.
    assert_eq!(t.log.last().unwrap()[1], 0x20);
    assert!(!t.log.iter().any(|c| c[1] == 0x2A));
}

#[test]
fn scarce_and_locked_pins_are_refused_before_any_try() {
    for (tries, want) in [
        (
            1,
            ReadError::TooFewTries {
                pin: PinKind::SignPassword,
                left: 1,
                min: 2,
            },
        ),
        (
            0,
            ReadError::Blocked {
                pin: PinKind::SignPassword,
            },
        ),
    ] {
        let mut t = transport(CardSecrets {
            sign_password_tries: tries,
            ..Default::default()
        });
        let err =
            read_card(&mut t, &creds(DEFAULT_SIGN_PASSWORD), &binding(), 2, true).unwrap_err();
        assert_eq!(err, want);
        assert_eq!(pins_tried(&t.log), 0);
    }
    // 照合番号B too, and before the signing password is tried.
    let mut t = transport(CardSecrets {
        collation_b_tries: 1,
        ..Default::default()
    });
    let err = read_card(&mut t, &creds(DEFAULT_SIGN_PASSWORD), &binding(), 2, true).unwrap_err();
    assert!(matches!(
        err,
        ReadError::TooFewTries {
            pin: PinKind::KenmenCollationB,
            ..
        }
    ));
    assert_eq!(pins_tried(&t.log), 0);
    // --min-tries 1 spends the last try on purpose.
    let mut t = transport(CardSecrets {
        sign_password_tries: 1,
        ..Default::default()
    });
    assert!(read_card(&mut t, &creds(DEFAULT_SIGN_PASSWORD), &binding(), 1, true).is_ok());
}

#[test]
fn a_card_pulled_mid_read_is_a_clear_error() {
    let mut full = transport(CardSecrets::default());
    read_card(
        &mut full,
        &creds(DEFAULT_SIGN_PASSWORD),
        &binding(),
        2,
        true,
    )
    .unwrap();
    for n in [3, full.log.len() / 2, full.log.len() - 1] {
        let mut t = transport(CardSecrets::default());
        t.pull_after = Some(n);
        let err =
            read_card(&mut t, &creds(DEFAULT_SIGN_PASSWORD), &binding(), 2, true).unwrap_err();
        assert_eq!(err, ReadError::CardRemoved);
        assert!(err.to_string().contains("removed"));
    }
}

#[test]
fn without_the_hojo_ap_the_json_has_no_hojo() {
    let mut t = transport(CardSecrets::default());
    let data = read_card(&mut t, &creds(DEFAULT_SIGN_PASSWORD), &binding(), 2, false).unwrap();
    assert!(data.to_json().get("hojo").is_none());
    assert_eq!(pins_tried(&t.log), 2);
    assert!(!t.log.iter().any(|c| c.ends_with(&apdu::AID_HOJO)));
}
