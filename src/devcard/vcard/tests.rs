//! The virtual card's answers, APDU by APDU, without PC/SC.

use super::*;
use crate::devcard::PersonSpec;
use rsa::pkcs8::DecodePrivateKey;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// One hierarchy and one card holder (with the 入力補助AP) for every test here.
pub(crate) fn fixture() -> &'static (TestHierarchy, PersonId) {
    static F: OnceLock<(TestHierarchy, PersonId)> = OnceLock::new();
    F.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("jpki-face-vcard-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cache = std::env::temp_dir().join("jpki-face-devcard-keys");
        let h = TestHierarchy::init_with_key_cache(&dir, 24, Some(&cache)).expect("hierarchy");
        let person = h
            .issue(&PersonSpec {
                with_hojo: true,
                ..Default::default()
            })
            .expect("issue");
        (h, person)
    })
}

fn card() -> VirtualCard {
    let (h, p) = fixture();
    VirtualCard::from_person(h, p, CardSecrets::default()).expect("virtual card")
}

fn person_file(name: &str) -> Vec<u8> {
    let (h, p) = fixture();
    std::fs::read(h.dir().join(&p.0).join(name)).expect("person file")
}

/// Sends a command; returns (data, SW).
fn tx(c: &mut VirtualCard, cmd: &[u8]) -> (Vec<u8>, u16) {
    let r = c.respond(cmd);
    let (d, sw) = apdu::split_response(&r).expect("a status word");
    (d.to_vec(), sw)
}

fn collation_b() -> Zeroizing<String> {
    let face = person_file("kenmen-face.bin");
    let rec = crate::card::FaceRecord::parse(&face, 1 << 20).unwrap();
    let code = String::from_utf8(person_file("security-code.txt")).unwrap();
    apdu::collation_b(
        rec.birth_date,
        chrono::Datelike::year(&rec.expiry_unauthenticated.unwrap()) as u32,
        &code,
    )
    .unwrap()
}

#[test]
fn the_jpki_ap_guards_the_certificate_with_the_signing_password() {
    let mut c = card();
    assert_eq!(
        tx(&mut c, &apdu::select_df(&[0xA0, 0, 0, 0, 1])).1,
        sw::FILE_NOT_FOUND
    );
    assert_eq!(
        tx(&mut c, &apdu::select_ef(apdu::jpki::SIGN_CERT)).1,
        sw::FILE_NOT_FOUND
    );
    assert_eq!(tx(&mut c, &apdu::select_df(&apdu::AID_JPKI)).1, sw::OK);
    // Token info at any of the lengths readers ask for.
    assert_eq!(tx(&mut c, &apdu::select_ef(apdu::jpki::TOKEN)).1, sw::OK);
    for le in [20, 32, 160] {
        let (d, s) = tx(&mut c, &apdu::read_binary(0, le));
        assert_eq!((d.len(), s), (le, sw::OK));
        assert!(d.starts_with(b"JPKIAPICCTOKEN"));
    }
    // The certificate needs the password; the CA certificates do not.
    assert_eq!(
        tx(&mut c, &apdu::select_ef(apdu::jpki::SIGN_CERT)).1,
        sw::OK
    );
    assert_eq!(
        tx(&mut c, &apdu::read_binary(0, 7)).1,
        sw::SECURITY_NOT_SATISFIED
    );
    for fid in [
        apdu::jpki::SIGN_CA_CERT,
        apdu::jpki::AUTH_CERT,
        apdu::jpki::AUTH_CA_CERT,
    ] {
        tx(&mut c, &apdu::select_ef(fid));
        let (d, s) = tx(&mut c, &apdu::read_binary(0, 7));
        assert_eq!((d[0], s), (0x30, sw::OK));
    }
    // The counter: asked, spent, restored.
    assert_eq!(
        tx(&mut c, &apdu::select_ef(apdu::jpki::SIGN_PASSWORD)).1,
        sw::OK
    );
    assert_eq!(tx(&mut c, &apdu::verify(&[])).1, 0x63C5);
    assert_eq!(
        tx(&mut c, &apdu::verify(&[])).1,
        0x63C5,
        "asking spends nothing"
    );
    assert_eq!(tx(&mut c, &apdu::verify(b"WRONG1")).1, 0x63C4);
    assert_eq!(c.tries_left().0, 4);
    assert_eq!(
        tx(&mut c, &apdu::verify(DEFAULT_SIGN_PASSWORD.as_bytes())).1,
        sw::OK
    );
    assert_eq!(c.tries_left().0, 5);
    // Repeated, as jpki-cli sends everything twice.
    assert_eq!(
        tx(&mut c, &apdu::verify(DEFAULT_SIGN_PASSWORD.as_bytes())).1,
        sw::OK
    );
    assert_eq!(tx(&mut c, &apdu::verify(&[])).1, sw::OK);

    // Any offset and Le; past the end 62 82 with the rest, beyond it 6B 00.
    let cert = person_file("cert.der");
    tx(&mut c, &apdu::select_ef(apdu::jpki::SIGN_CERT));
    let mut read = Vec::new();
    for (off, le) in [(0usize, 7usize), (7, 256), (263, 100), (363, 1)] {
        let (d, s) = tx(&mut c, &apdu::read_binary(off as u16, le));
        assert_eq!((d.as_slice(), s), (&cert[off..off + le], sw::OK));
        read.extend_from_slice(&d);
    }
    assert_eq!(read, cert[..364]);
    let (d, s) = tx(&mut c, &apdu::read_binary(cert.len() as u16 - 3, 256));
    assert_eq!(
        (d.as_slice(), s),
        (&cert[cert.len() - 3..], sw::END_OF_FILE)
    );
    assert_eq!(
        tx(&mut c, &apdu::read_binary(cert.len() as u16 + 1, 1)).1,
        sw::OFFSET_OUTSIDE_EF
    );
    // Keys are not readable.
    tx(&mut c, &apdu::select_ef(apdu::jpki::SIGN_KEY));
    assert_eq!(
        tx(&mut c, &apdu::read_binary(0, 1)).1,
        sw::INCOMPATIBLE_FILE
    );
    // A reset forgets the password, not the counter.
    c.reset();
    tx(&mut c, &apdu::select_df(&apdu::AID_JPKI));
    tx(&mut c, &apdu::select_ef(apdu::jpki::SIGN_CERT));
    assert_eq!(
        tx(&mut c, &apdu::read_binary(0, 7)).1,
        sw::SECURITY_NOT_SATISFIED
    );
}

#[test]
fn a_pin_locks_at_zero_and_stays_locked() {
    let mut c = card();
    tx(&mut c, &apdu::select_df(&apdu::AID_JPKI));
    tx(&mut c, &apdu::select_ef(apdu::jpki::SIGN_PASSWORD));
    for left in (0..5).rev() {
        assert_eq!(tx(&mut c, &apdu::verify(b"NOTIT9")).1, sw::retries_sw(left));
    }
    assert_eq!(
        tx(&mut c, &apdu::verify(DEFAULT_SIGN_PASSWORD.as_bytes())).1,
        sw::BLOCKED
    );
    assert_eq!(tx(&mut c, &apdu::verify(&[])).1, sw::BLOCKED);
    c.reset();
    tx(&mut c, &apdu::select_df(&apdu::AID_JPKI));
    tx(&mut c, &apdu::select_ef(apdu::jpki::SIGN_PASSWORD));
    assert_eq!(tx(&mut c, &apdu::verify(&[])).1, sw::BLOCKED);
    // A card started locked.
    let (h, p) = fixture();
    let secrets = CardSecrets {
        sign_password_tries: 0,
        ..Default::default()
    };
    let mut c = VirtualCard::from_person(h, p, secrets).unwrap();
    tx(&mut c, &apdu::select_df(&apdu::AID_JPKI));
    tx(&mut c, &apdu::select_ef(apdu::jpki::SIGN_PASSWORD));
    assert_eq!(tx(&mut c, &apdu::verify(&[])).1, sw::BLOCKED);
}

#[test]
fn both_signing_forms_sign_what_they_are_given() {
    let (h, p) = fixture();
    let pdir = h.dir().join(&p.0);
    let key = |f: &str| {
        RsaPrivateKey::from_pkcs8_pem(&std::fs::read_to_string(pdir.join(f)).unwrap())
            .unwrap()
            .to_public_key()
    };
    let msg = b"challenge";
    let di = apdu::sha256_digest_info(msg);
    let mut c = card();
    // JPKI: the selected key EF, behind the password.
    tx(&mut c, &apdu::select_df(&apdu::AID_JPKI));
    tx(&mut c, &apdu::select_ef(apdu::jpki::SIGN_KEY));
    assert_eq!(
        tx(&mut c, &apdu::sign(0x80, &di)).1,
        sw::SECURITY_NOT_SATISFIED
    );
    assert_eq!(tx(&mut c, &apdu::sign(0x00, &di)).1, sw::DATA_NOT_FOUND);
    tx(&mut c, &apdu::select_ef(apdu::jpki::SIGN_PASSWORD));
    tx(&mut c, &apdu::verify(DEFAULT_SIGN_PASSWORD.as_bytes()));
    tx(&mut c, &apdu::select_ef(apdu::jpki::SIGN_KEY));
    let (sig, s) = tx(&mut c, &apdu::sign(0x80, &di));
    assert_eq!((sig.len(), s), (256, sw::OK));
    key("jpki.key")
        .verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(msg), &sig)
        .expect("a sha256WithRSA signature by the JPKI key");
    // A SHA-1 DigestInfo (jpki-cli) is signed as given, too.
    let mut sha1_di = vec![
        0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2B, 0x0E, 0x03, 0x02, 0x1A, 0x05, 0x00, 0x04, 0x14,
    ];
    sha1_di.extend_from_slice(&[7; 20]);
    assert_eq!(tx(&mut c, &apdu::sign(0x80, &sha1_di)).1, sw::OK);
    // The authentication key needs its own PIN.
    tx(&mut c, &apdu::select_ef(apdu::jpki::AUTH_KEY));
    assert_eq!(
        tx(&mut c, &apdu::sign(0x80, &di)).1,
        sw::SECURITY_NOT_SATISFIED
    );
    tx(&mut c, &apdu::select_ef(apdu::jpki::AUTH_PIN));
    assert_eq!(tx(&mut c, &apdu::verify(DEFAULT_PIN.as_bytes())).1, sw::OK);
    tx(&mut c, &apdu::select_ef(apdu::jpki::AUTH_KEY));
    assert_eq!(tx(&mut c, &apdu::sign(0x80, &di)).1, sw::OK);

    // 券面AP: the card key, no PIN; INTERNAL AUTHENTICATE is refused as on a real card.
    tx(&mut c, &apdu::select_df(&apdu::AID_KENMEN));
    let (sig, s) = tx(&mut c, &apdu::sign(0x00, &di));
    assert_eq!(s, sw::OK);
    key("card.key")
        .verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(msg), &sig)
        .expect("signed by the DF24 card key");
    assert_eq!(
        tx(&mut c, &[0x00, 0x88, 0x00, 0x00, 0x02, 1, 2, 0x00]).1,
        sw::CONDITIONS_NOT_SATISFIED
    );
    assert_eq!(tx(&mut c, &apdu::sign(0x00, &[0; 246])).1, sw::WRONG_LENGTH);
    assert_eq!(tx(&mut c, &[0x00, 0xCA, 0, 0, 0]).1, sw::INS_NOT_SUPPORTED);
    assert_eq!(tx(&mut c, &[0x90, 0xB0, 0, 0, 0]).1, sw::CLA_NOT_SUPPORTED);
}

#[test]
fn collation_b_opens_the_kenmen_and_hojo_records_but_never_the_my_number() {
    let b = collation_b();
    let mut c = card();
    tx(&mut c, &apdu::select_df(&apdu::AID_KENMEN));
    tx(&mut c, &apdu::select_ef(apdu::kenmen::FACE));
    assert_eq!(
        tx(&mut c, &apdu::read_binary(0, 7)).1,
        sw::SECURITY_NOT_SATISFIED
    );
    tx(&mut c, &apdu::select_ef(apdu::kenmen::PIN_B));
    assert_eq!(
        tx(&mut c, &apdu::verify(&[])).1,
        sw::retries_sw(COLLATION_TRIES)
    );
    assert_eq!(
        tx(&mut c, &apdu::verify(b"00000000000000")).1,
        sw::retries_sw(COLLATION_TRIES - 1)
    );
    assert_eq!(tx(&mut c, &apdu::verify(b.as_bytes())).1, sw::OK);
    tx(&mut c, &apdu::select_ef(apdu::kenmen::FACE));
    let (d, s) = tx(&mut c, &apdu::read_binary(0, 5));
    assert_eq!((&d[..2], s), (&[0xFF, 0x20][..], sw::OK));
    tx(&mut c, &apdu::select_ef(apdu::kenmen::CVC));
    assert_eq!(
        tx(&mut c, &apdu::read_binary(0, 256)).0,
        person_file("kenmen-cvc.bin")[..256]
    );

    tx(&mut c, &apdu::select_df(&apdu::AID_HOJO));
    tx(&mut c, &apdu::select_ef(apdu::hojo::PIN_B));
    assert_eq!(tx(&mut c, &apdu::verify(b.as_bytes())).1, sw::OK);
    tx(&mut c, &apdu::select_ef(apdu::hojo::ATTRIBUTES));
    let (d, s) = tx(&mut c, &apdu::read_binary(0, 64));
    assert_eq!(
        (d.as_slice(), s),
        (&person_file("hojo-attributes.bin")[..64], sw::OK)
    );
    tx(&mut c, &apdu::select_ef(apdu::hojo::INTEGRITY));
    assert_eq!(tx(&mut c, &apdu::read_binary(0, 2)).0, [0xFF, 0x30]);
    // 照合番号B does not open the My Number.
    assert!(!c.my_number_was_selected());
    tx(&mut c, &apdu::select_ef(apdu::hojo::MY_NUMBER));
    assert_eq!(
        tx(&mut c, &apdu::read_binary(0, 17)).1,
        sw::SECURITY_NOT_SATISFIED
    );
    assert!(c.my_number_was_selected());
    // A person issued without the 入力補助AP has none.
    let (h, _) = fixture();
    let bare = h.issue(&PersonSpec::default()).unwrap();
    let mut c = VirtualCard::from_person(h, &bare, CardSecrets::default()).unwrap();
    assert_eq!(
        tx(&mut c, &apdu::select_df(&apdu::AID_HOJO)).1,
        sw::FILE_NOT_FOUND
    );
}

#[test]
fn the_synthetic_my_number_is_twelve_digits() {
    let n = synthetic_my_number(1, 1);
    assert_eq!(n.len(), 12);
    assert!(n.bytes().all(|b| b.is_ascii_digit()));
}
