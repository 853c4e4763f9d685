//! End-to-end card verification against the test-card generator: a valid card passes every check, and every
//! mutant of issue 3 item 7 gives its own documented result.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::{Duration, NaiveDate, Utc};
use jpki_face::card::{
    self, parse_card_json, verify_card, CardDataResult, CardReport, CertificateResult,
    ConsistencyResult, HojoResult, IdentityField, InvalidCardData, PresenceResult, SessionBinding,
    Sex, TrustStore,
};
use jpki_face::devcard::{mutate, Defect, Mutant, PersonId, PersonSpec, TestHierarchy};
use proptest::prelude::*;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::OnceLock;

const SESSION: &str = "ses_test_0001";
const NONCE: [u8; 32] = [0x5A; 32];

fn binding() -> SessionBinding<'static> {
    SessionBinding {
        session_id: SESSION,
        nonce: &NONCE,
    }
}

/// One hierarchy per test process; keys are shared with other test binaries through a cache.
fn hierarchy() -> &'static TestHierarchy {
    static H: OnceLock<TestHierarchy> = OnceLock::new();
    H.get_or_init(|| {
        let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let dir = tmp.join(format!("card-verify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TestHierarchy::init_with_key_cache(&dir, 7, Some(&tmp.join("devcard-keys")))
            .expect("test hierarchy")
    })
}

fn trust() -> TrustStore {
    hierarchy().trust_store().expect("trust store loads")
}

fn issue(spec: PersonSpec) -> PersonId {
    hierarchy().issue(&spec).expect("issue")
}

fn signed(person: &PersonId) -> Value {
    hierarchy().sign(person, &binding()).expect("sign")
}

fn check(json: &Value) -> Result<CardReport, InvalidCardData> {
    let sub = parse_card_json(json.to_string().as_bytes()).expect("card JSON parses");
    verify_card(&sub, &trust(), &binding(), Utc::now())
}

fn valid_person() -> &'static PersonId {
    static P: OnceLock<PersonId> = OnceLock::new();
    P.get_or_init(|| {
        issue(PersonSpec {
            with_hojo: true,
            ..Default::default()
        })
    })
}

#[test]
fn a_genuine_card_passes_every_check() {
    let report = check(&signed(valid_person())).expect("parses");
    assert_eq!(report.card_data.result, CardDataResult::Valid);
    assert_eq!(report.card_data.issuer_key_id, "9000023/001");
    assert_eq!(report.card_present.result, PresenceResult::Valid);
    assert_eq!(report.certificate.result, CertificateResult::Valid);
    assert_eq!(
        report.hojo.as_ref().map(|h| h.result),
        Some(HojoResult::Valid)
    );
    assert_eq!(
        report.hojo.as_ref().map(|h| h.issuer_key_id.as_str()),
        Some("9000033/001")
    );
    assert_eq!(report.consistency.result, ConsistencyResult::Match);
    assert!(report.failure_codes().is_empty());
    assert!(report.passed());
    assert!(
        report.certificate.issuer.contains("O=JPKI-TEST"),
        "{}",
        report.certificate.issuer
    );

    let id = &report.identity;
    assert_eq!(id.name, "山田\u{3000}太郎");
    assert_eq!(id.birth_date, NaiveDate::from_ymd_opt(1990, 1, 2).unwrap());
    assert_eq!(id.sex, Sex::Male);
    assert_eq!(id.address, "東京都千代田区霞が関２－１－２");
    assert_eq!((id.name_alt.as_str(), id.address_alt.as_str()), ("", ""));

    // The chip photo is a JP2 file the decoder reads.
    assert!(report
        .chip_photo
        .starts_with(&[0, 0, 0, 0x0C, 0x6A, 0x50, 0x20, 0x20]));
    let img = jpeg2k::Image::from_bytes(&report.chip_photo).expect("DF27 decodes");
    assert!(img.width() > 0 && img.height() > 0);

    // What the revocation adapter needs: the serial and the DER of the configured root.
    let target = report.revocation_target.as_ref().expect("chain verified");
    assert_eq!(hex::encode_upper(&target.serial), report.certificate.serial);
    let ca_pem = std::fs::read(hierarchy().dir().join("ca.pem")).unwrap();
    let ca = x509_parser::pem::parse_x509_pem(&ca_pem).unwrap().1;
    assert_eq!(target.issuer_cert_der, ca.contents);

    // Personal data never reaches Debug output.
    let debug = format!("{report:?}");
    assert!(
        !debug.contains("山田") && !debug.contains("1990") && !debug.contains("東京"),
        "{debug}"
    );

    // The API's words.
    let json = serde_json::to_value(&report.card_data).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"result": "valid", "issuer_key_id": "9000023/001"})
    );
    let json = serde_json::to_value(&report.identity).unwrap();
    assert_eq!(json["birth_date"], "1990-01-02");
    assert_eq!(json["sex"], "male");
}

#[test]
fn a_flipped_photo_bit_breaks_the_issuer_signature_only() {
    let r = check(&mutate(&signed(valid_person()), Mutant::FlipPhotoBit).unwrap()).unwrap();
    assert_eq!(r.card_data.result, CardDataResult::InvalidSignature);
    assert_eq!(r.card_present.result, PresenceResult::Valid);
    assert_eq!(r.certificate.result, CertificateResult::Valid);
    assert_eq!(r.failure_codes(), vec!["invalid_signature"]);
    assert!(!r.passed());
}

#[test]
fn a_swapped_card_key_fails_the_data_and_presence_checks() {
    let r = check(&mutate(&signed(valid_person()), Mutant::SwapCardKey).unwrap()).unwrap();
    assert_eq!(r.card_data.result, CardDataResult::InvalidSignature);
    assert_eq!(r.card_present.result, PresenceResult::InvalidSignature);
    assert_eq!(
        r.failure_codes(),
        vec!["invalid_signature", "card_not_present"]
    );
}

#[test]
fn structural_mutants_are_invalid_card_data_naming_the_element() {
    let card = signed(valid_person());
    let err = check(&mutate(&card, Mutant::WrongOffset).unwrap()).unwrap_err();
    assert_eq!(err.element, "kenmen.face/DF21");
    assert_eq!(err.code(), "invalid_card_data");
    assert!(err.detail.contains("DF27"), "{}", err.detail);
    let err = check(&mutate(&card, Mutant::Truncated).unwrap()).unwrap_err();
    assert_eq!(err.element, "kenmen.face");
    let err = check(&mutate(&card, Mutant::TrailingGarbage).unwrap()).unwrap_err();
    assert_eq!(err.element, "kenmen.face");
    assert!(err.detail.contains("filler"));
}

#[test]
fn filler_after_the_record_is_accepted() {
    let mut card = signed(valid_person());
    let mut face = B64
        .decode(card["kenmen"]["face"].as_str().unwrap())
        .unwrap();
    face.extend([0x00, 0xFF, 0xFF, 0x00]);
    card["kenmen"]["face"] = Value::String(B64.encode(face));
    assert_eq!(
        check(&card).unwrap().card_data.result,
        CardDataResult::Valid
    );
}

#[test]
fn the_face_record_size_cap_is_configurable() {
    let cfg = card::CardConfig {
        max_face_record_bytes: 2000,
        ..hierarchy().card_config()
    };
    let store = TrustStore::from_config(&cfg).unwrap();
    let sub = parse_card_json(signed(valid_person()).to_string().as_bytes()).unwrap();
    let err = verify_card(&sub, &store, &binding(), Utc::now()).unwrap_err();
    assert_eq!(err.element, "kenmen.face");
    assert!(err.detail.contains("2000"));
}

#[test]
fn an_unknown_cvc_key_id_is_unknown_issuer_not_bad_signature() {
    let p = issue(PersonSpec {
        defect: Some(Defect::UnknownCvcIssuer),
        ..Default::default()
    });
    let r = check(&signed(&p)).unwrap();
    assert_eq!(r.card_data.result, CardDataResult::UnknownIssuer);
    assert_eq!(r.card_data.issuer_key_id, "9000023/999");
    assert_eq!(r.failure_codes(), vec!["unknown_issuer"]);
}

#[test]
fn certificate_validity_is_checked_at_the_given_time() {
    let p = issue(PersonSpec {
        defect: Some(Defect::ExpiredCertificate),
        ..Default::default()
    });
    let r = check(&signed(&p)).unwrap();
    assert_eq!(r.certificate.result, CertificateResult::Expired);
    assert_eq!(r.failure_codes(), vec!["certificate_expired"]);
    assert!(r.revocation_target.is_some(), "the chain itself verified");

    let p = issue(PersonSpec {
        defect: Some(Defect::NotYetValidCertificate),
        ..Default::default()
    });
    assert_eq!(
        check(&signed(&p)).unwrap().certificate.result,
        CertificateResult::NotYetValid
    );

    // A genuine card checked six years from now is expired: `now` is really used.
    let sub = parse_card_json(signed(valid_person()).to_string().as_bytes()).unwrap();
    let later = Utc::now() + Duration::days(6 * 365);
    let r = verify_card(&sub, &trust(), &binding(), later).unwrap();
    assert_eq!(r.certificate.result, CertificateResult::Expired);
}

#[test]
fn a_certificate_from_an_untrusted_ca_does_not_chain() {
    let p = issue(PersonSpec {
        defect: Some(Defect::UntrustedCa),
        ..Default::default()
    });
    let r = check(&signed(&p)).unwrap();
    assert_eq!(r.certificate.result, CertificateResult::UntrustedChain);
    assert!(r.revocation_target.is_none());
    assert_eq!(r.failure_codes(), vec!["untrusted_certificate"]);
}

#[test]
fn the_issuer_name_and_key_usage_are_checked() {
    let p = issue(PersonSpec {
        defect: Some(Defect::WrongIssuerName),
        ..Default::default()
    });
    let r = check(&signed(&p)).unwrap();
    assert_eq!(r.certificate.result, CertificateResult::WrongIssuer);
    assert!(r.certificate.issuer.contains("JPKI-OTHER"));
    assert_eq!(r.failure_codes(), vec!["certificate_wrong_issuer"]);

    let p = issue(PersonSpec {
        defect: Some(Defect::BadKeyUsage),
        ..Default::default()
    });
    let r = check(&signed(&p)).unwrap();
    assert_eq!(r.certificate.result, CertificateResult::BadKeyUsage);
    assert_eq!(r.failure_codes(), vec!["certificate_bad_key_usage"]);
}

#[test]
fn trust_dirs_accept_moduli_and_name_bad_files() {
    use rsa::traits::PublicKeyParts;
    let h = hierarchy();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("card-trust-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("cvc-issuers")).unwrap();
    std::fs::create_dir_all(dir.join("jpki-roots")).unwrap();
    // The 券面AP root given as a bare modulus, the way J-LIS keys usually circulate.
    let pem_name = std::fs::read_dir(h.trust_dir().join("cvc-issuers"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.starts_with(&hex::encode_upper(card::make_key_id("9000023", "001"))))
        .unwrap();
    let pem = std::fs::read_to_string(h.trust_dir().join("cvc-issuers").join(&pem_name)).unwrap();
    let key =
        <rsa::RsaPublicKey as rsa::pkcs8::DecodePublicKey>::from_public_key_pem(&pem).unwrap();
    let modulus = hex::encode(key.n().to_bytes_be());
    let id = pem_name.trim_end_matches(".pem");
    std::fs::write(
        dir.join("cvc-issuers").join(format!("{id}.modulus")),
        format!("{modulus}\n"),
    )
    .unwrap();
    std::fs::copy(
        h.dir().join("ca.pem"),
        dir.join("jpki-roots").join("ca.pem"),
    )
    .unwrap();
    let store = TrustStore::load(&dir).unwrap();
    assert_eq!(store.counts(), (1, 1));
    let sub = parse_card_json(signed(valid_person()).to_string().as_bytes()).unwrap();
    let r = verify_card(&sub, &store, &binding(), Utc::now()).unwrap();
    assert_eq!(r.card_data.result, CardDataResult::Valid);
    assert_eq!(r.certificate.result, CertificateResult::Valid);
    assert_eq!(
        r.hojo.as_ref().map(|x| x.result),
        Some(HojoResult::UnknownIssuer),
        "9000033 not configured"
    );

    // A file name that is not a key-ID, and a PEM without a certificate, are refused with their path.
    std::fs::write(dir.join("cvc-issuers").join("root.pem"), &pem).unwrap();
    let err = TrustStore::load(&dir).unwrap_err().to_string();
    assert!(err.contains("root.pem") && err.contains("key-ID"), "{err}");
    std::fs::remove_file(dir.join("cvc-issuers").join("root.pem")).unwrap();
    std::fs::write(dir.join("jpki-roots").join("empty.pem"), "nothing here").unwrap();
    let err = TrustStore::load(&dir).unwrap_err().to_string();
    assert!(err.contains("empty.pem"), "{err}");
    assert!(TrustStore::load(&dir.join("missing")).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn signatures_over_another_sessions_nonce_are_rejected() {
    let other = [0x11u8; 32];
    let json = hierarchy()
        .sign(
            valid_person(),
            &SessionBinding {
                session_id: SESSION,
                nonce: &other,
            },
        )
        .unwrap();
    let r = check(&json).unwrap();
    assert_eq!(r.card_present.result, PresenceResult::InvalidSignature);
    assert_eq!(r.certificate.result, CertificateResult::InvalidSignature);
    assert_eq!(r.card_data.result, CardDataResult::Valid);
    assert_eq!(
        r.failure_codes(),
        vec!["card_not_present", "invalid_jpki_signature"]
    );
    // Same nonce, other session id: also rejected (the id is part of the signed bytes).
    let json = hierarchy()
        .sign(
            valid_person(),
            &SessionBinding {
                session_id: "ses_other",
                nonce: &NONCE,
            },
        )
        .unwrap();
    assert_eq!(
        check(&json).unwrap().card_present.result,
        PresenceResult::InvalidSignature
    );
}

#[test]
fn a_name_mismatch_between_applications_is_reported() {
    let p = issue(PersonSpec {
        defect: Some(Defect::NameMismatch),
        ..Default::default()
    });
    let r = check(&signed(&p)).unwrap();
    assert_eq!(
        r.hojo.as_ref().map(|h| h.result),
        Some(HojoResult::Valid),
        "the 入力補助AP data is genuine"
    );
    assert_eq!(r.consistency.result, ConsistencyResult::Mismatch);
    assert_eq!(r.consistency.mismatched, vec![IdentityField::Name]);
    assert_eq!(r.failure_codes(), vec!["identity_mismatch"]);
    let json = serde_json::to_value(&r.consistency).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"result": "mismatch", "mismatched": ["name"]})
    );
}

#[test]
fn a_birth_date_mismatch_between_card_face_and_certificate_is_reported() {
    let p = issue(PersonSpec {
        defect: Some(Defect::BirthDateMismatch),
        ..Default::default()
    });
    let r = check(&signed(&p)).unwrap();
    assert_eq!(
        r.card_data.result,
        CardDataResult::Valid,
        "the 券面AP data is genuine"
    );
    assert_eq!(r.consistency.mismatched, vec![IdentityField::BirthDate]);
}

#[test]
fn tampered_hojo_attributes_fail_the_integrity_check() {
    let mut card = signed(valid_person());
    let mut attrs = B64
        .decode(card["hojo"]["attributes"].as_str().unwrap())
        .unwrap();
    // DF25 (sex) is the last element: change '1' to '2'.
    let pos = attrs
        .windows(3)
        .rposition(|w| w == [0xDF, 0x25, 0x01])
        .unwrap()
        + 3;
    attrs[pos] = b'2';
    card["hojo"]["attributes"] = Value::String(B64.encode(attrs));
    let r = check(&card).unwrap();
    assert_eq!(
        r.hojo.as_ref().map(|h| h.result),
        Some(HojoResult::InvalidSignature)
    );
    assert_eq!(r.consistency.mismatched, vec![IdentityField::Sex]);
    assert_eq!(
        r.failure_codes(),
        vec!["invalid_hojo_signature", "identity_mismatch"]
    );
}

#[test]
fn an_empty_trust_store_trusts_nothing() {
    let sub = parse_card_json(signed(valid_person()).to_string().as_bytes()).unwrap();
    let r = verify_card(&sub, &TrustStore::empty(), &binding(), Utc::now()).unwrap();
    assert_eq!(r.card_data.result, CardDataResult::UnknownIssuer);
    assert_eq!(r.certificate.result, CertificateResult::UntrustedChain);
    assert_eq!(
        r.hojo.as_ref().map(|h| h.result),
        Some(HojoResult::UnknownIssuer)
    );
}

#[test]
fn hierarchies_are_deterministic_from_the_seed() {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let cache = tmp.join("devcard-keys");
    let a = tmp.join(format!("card-det-a-{}", std::process::id()));
    let b = tmp.join(format!("card-det-b-{}", std::process::id()));
    for d in [&a, &b] {
        let _ = std::fs::remove_dir_all(d);
        TestHierarchy::init_with_key_cache(d, 7, Some(&cache)).unwrap();
    }
    for f in ["trust/cvc-issuers", "kenmen-cvc.bin", "ocsp.key"] {
        let read = |d: &PathBuf| -> Vec<u8> {
            let p = d.join(f);
            if p.is_dir() {
                let mut names: Vec<_> = std::fs::read_dir(&p)
                    .unwrap()
                    .map(|e| e.unwrap().file_name())
                    .collect();
                names.sort();
                format!("{names:?}").into_bytes()
            } else {
                std::fs::read(p).unwrap()
            }
        };
        assert_eq!(read(&a), read(&b), "{f}");
    }
    // Reopening with another seed is refused rather than mixing keys.
    assert!(TestHierarchy::init_with_key_cache(&a, 8, Some(&cache)).is_err());
    let _ = std::fs::remove_dir_all(&a);
    let _ = std::fs::remove_dir_all(&b);
}

/// Offset of DF29 in a genuine face record: everything before it is covered by DF28.
fn signed_end(face: &[u8]) -> usize {
    let (record, _) = card::tlv::read(face, 0).unwrap();
    let header = record.raw.len() - record.value.len();
    let items = card::tlv::read_all(record.value, header, 16).unwrap();
    items.iter().find(|l| l.tlv.tag == 0xDF29).unwrap().offset
}

#[test]
fn concurrent_users_share_one_hierarchy() {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.join(format!("card-shared-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cache = tmp.join("devcard-keys");
    let ids: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    let h = TestHierarchy::init_with_key_cache(&dir, 7, Some(&cache)).unwrap();
                    h.issue(&PersonSpec::default()).unwrap().0
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, vec!["person-0001", "person-0002", "person-0003"]);
    let index = std::fs::read_to_string(dir.join("index.txt")).unwrap();
    assert_eq!(
        index.lines().filter(|l| l.starts_with("V\t")).count(),
        3,
        "{index}"
    );
    assert!(!dir.join(".lock").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random edits of a genuine face record never panic: they parse and fail a check, or are invalid card data.
    #[test]
    fn edited_face_records_never_panic(edits in proptest::collection::vec((any::<u16>(), any::<u8>()), 1..6),
                                       cut in any::<u16>()) {
        let card = signed(valid_person());
        let original = B64.decode(card["kenmen"]["face"].as_str().unwrap()).unwrap();
        let mut face = original.clone();
        for (pos, byte) in edits {
            let i = usize::from(pos) % face.len();
            face[i] = byte;
        }
        if cut % 4 == 0 {
            face.truncate(usize::from(cut) % face.len());
        }
        let _ = card::FaceRecord::parse(&face, 64 * 1024);
        let mut edited = card.clone();
        edited["kenmen"]["face"] = Value::String(B64.encode(&face));
        if let Ok(sub) = parse_card_json(edited.to_string().as_bytes()) {
            if let Ok(r) = verify_card(&sub, &trust(), &binding(), Utc::now()) {
                // DF29, DF2A and the filler are outside DF28 (card-data.md A.4); any change before DF29 must
                // fail the issuer signature.
                let df29 = signed_end(&original);
                let changed_signed_part = face.get(..df29) != original.get(..df29);
                if changed_signed_part {
                    prop_assert_ne!(r.card_data.result, CardDataResult::Valid);
                }
            }
        }
    }
}
