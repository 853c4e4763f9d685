//! End-to-end card verification against the test-card generator: a valid card passes every check, and every
//! mutant of issue 3 item 7 gives its own documented result.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::{Duration, NaiveDate, Utc};
use jpki_face::card::{
    self, parse_card_json, verify_card, CardDataResult, CardPolicy, CardReport, CertificateResult,
    ConsistencyResult, HojoBindingResult, HojoResult, IdentityField, InvalidCardData,
    PresenceResult, SessionBinding, Sex, TrustStore,
};
use jpki_face::devcard::{mutate, Defect, Mutant, PersonId, PersonSpec, TestHierarchy};

#[path = "support/card_certs.rs"]
mod card_certs;
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

/// Verified under the default policy (the 入力補助AP is required).
fn check(json: &Value) -> Result<CardReport, InvalidCardData> {
    check_with(json, &CardPolicy::default())
}

fn check_with(json: &Value, policy: &CardPolicy) -> Result<CardReport, InvalidCardData> {
    let sub = parse_card_json(json.to_string().as_bytes()).expect("card JSON parses");
    verify_card(&sub, &trust(), policy, &binding(), Utc::now())
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
    assert_eq!(report.hojo_binding.result, HojoBindingResult::Bound);
    assert!(report.failures().is_empty());
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
    // …and the certificate's CRL distribution point, for the CRL scope check.
    let dps = target
        .crl_distribution_points
        .as_ref()
        .expect("the test certificates name a distribution point");
    assert!(
        dps.windows(b"crl.der".len()).any(|w| w == b"crl.der"),
        "the URI is in the extension value"
    );
    assert_eq!(format!("{target:?}"), "RevocationTarget([redacted])");

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
    assert_eq!(
        r.failures().iter().map(|r| r.code()).collect::<Vec<_>>(),
        vec!["invalid_signature"]
    );
    assert!(!r.passed());
}

#[test]
fn a_swapped_card_key_fails_the_data_and_presence_checks() {
    let r = check(&mutate(&signed(valid_person()), Mutant::SwapCardKey).unwrap()).unwrap();
    assert_eq!(r.card_data.result, CardDataResult::InvalidSignature);
    assert_eq!(r.card_present.result, PresenceResult::InvalidSignature);
    assert_eq!(
        r.failures().iter().map(|r| r.code()).collect::<Vec<_>>(),
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
    let err =
        verify_card(&sub, &store, &CardPolicy::default(), &binding(), Utc::now()).unwrap_err();
    assert_eq!(err.element, "kenmen.face");
    assert!(err.detail.contains("2000"));
}

#[test]
fn an_unknown_cvc_key_id_is_unknown_issuer_not_bad_signature() {
    let p = issue(PersonSpec {
        with_hojo: true,
        defect: Some(Defect::UnknownCvcIssuer),
        ..Default::default()
    });
    let r = check(&signed(&p)).unwrap();
    assert_eq!(r.card_data.result, CardDataResult::UnknownIssuer);
    assert_eq!(r.card_data.issuer_key_id, "9000023/999");
    assert_eq!(
        r.failures().iter().map(|r| r.code()).collect::<Vec<_>>(),
        vec!["unknown_issuer"]
    );
}

#[test]
fn certificate_validity_is_checked_at_the_given_time() {
    let p = issue(PersonSpec {
        with_hojo: true,
        defect: Some(Defect::ExpiredCertificate),
        ..Default::default()
    });
    let r = check(&signed(&p)).unwrap();
    assert_eq!(r.certificate.result, CertificateResult::Expired);
    assert_eq!(
        r.failures().iter().map(|r| r.code()).collect::<Vec<_>>(),
        vec!["certificate_expired"]
    );
    assert!(r.revocation_target.is_some(), "the chain itself verified");

    let p = issue(PersonSpec {
        with_hojo: true,
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
    let r = verify_card(&sub, &trust(), &CardPolicy::default(), &binding(), later).unwrap();
    assert_eq!(r.certificate.result, CertificateResult::Expired);
}

#[test]
fn a_certificate_from_an_untrusted_ca_does_not_chain() {
    let p = issue(PersonSpec {
        with_hojo: true,
        defect: Some(Defect::UntrustedCa),
        ..Default::default()
    });
    let r = check(&signed(&p)).unwrap();
    assert_eq!(r.certificate.result, CertificateResult::UntrustedChain);
    assert!(r.revocation_target.is_none());
    assert_eq!(
        r.failures().iter().map(|r| r.code()).collect::<Vec<_>>(),
        vec!["untrusted_certificate"]
    );
}

#[test]
fn the_issuer_name_and_key_usage_are_checked() {
    let p = issue(PersonSpec {
        with_hojo: true,
        defect: Some(Defect::WrongIssuerName),
        ..Default::default()
    });
    let r = check(&signed(&p)).unwrap();
    assert_eq!(r.certificate.result, CertificateResult::WrongIssuer);
    assert!(r.certificate.issuer.contains("JPKI-OTHER"));
    assert_eq!(
        r.failures().iter().map(|r| r.code()).collect::<Vec<_>>(),
        vec!["certificate_wrong_issuer"]
    );

    let p = issue(PersonSpec {
        with_hojo: true,
        defect: Some(Defect::BadKeyUsage),
        ..Default::default()
    });
    let r = check(&signed(&p)).unwrap();
    assert_eq!(r.certificate.result, CertificateResult::BadKeyUsage);
    assert_eq!(
        r.failures().iter().map(|r| r.code()).collect::<Vec<_>>(),
        vec!["certificate_bad_key_usage"]
    );
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
    let r = verify_card(&sub, &store, &CardPolicy::default(), &binding(), Utc::now()).unwrap();
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
        r.failures().iter().map(|r| r.code()).collect::<Vec<_>>(),
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
        with_hojo: true,
        defect: Some(Defect::NameMismatch),
        ..Default::default()
    });
    let r = check(&signed(&p)).unwrap();
    assert_eq!(
        r.hojo.as_ref().map(|h| h.result),
        Some(HojoResult::Valid),
        "the 入力補助AP data is genuine"
    );
    // Issue 11: the 入力補助AP comparisons are the hojo binding's, not the 券面AP consistency's.
    assert_eq!(r.consistency.result, ConsistencyResult::Match);
    assert_eq!(r.hojo_binding.result, HojoBindingResult::Mismatch);
    assert_eq!(
        r.hojo_binding.certificate_mismatched,
        vec![IdentityField::Name]
    );
    assert!(r.hojo_binding.kenmen_mismatched.is_empty());
    assert_eq!(
        r.failures().iter().map(|r| r.code()).collect::<Vec<_>>(),
        vec!["hojo_mismatch"]
    );
    let json = serde_json::to_value(&r.hojo_binding).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"result": "mismatch", "certificate_mismatched": ["name"], "kenmen_mismatched": []})
    );
}

#[test]
fn a_birth_date_mismatch_between_card_face_and_certificate_is_reported() {
    let p = issue(PersonSpec {
        with_hojo: true,
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
    // The 入力補助AP (genuine, the SAN's birth date) disagrees with the 券面AP too.
    assert_eq!(
        r.hojo_binding.kenmen_mismatched,
        vec![IdentityField::BirthDate]
    );
    assert!(r.hojo_binding.certificate_mismatched.is_empty());
    assert_eq!(
        r.failures().iter().map(|r| r.code()).collect::<Vec<_>>(),
        vec!["identity_mismatch", "hojo_mismatch"]
    );
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
    assert_eq!(r.consistency.result, ConsistencyResult::Match);
    assert_eq!(
        r.hojo_binding.certificate_mismatched,
        vec![IdentityField::Sex]
    );
    assert_eq!(r.hojo_binding.kenmen_mismatched, vec![IdentityField::Sex]);
    assert_eq!(
        r.failures().iter().map(|r| r.code()).collect::<Vec<_>>(),
        vec!["invalid_hojo_signature", "hojo_mismatch"]
    );
}

#[test]
fn an_empty_trust_store_trusts_nothing() {
    let sub = parse_card_json(signed(valid_person()).to_string().as_bytes()).unwrap();
    let r = verify_card(
        &sub,
        &TrustStore::empty(),
        &CardPolicy::default(),
        &binding(),
        Utc::now(),
    )
    .unwrap();
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
            if let Ok(r) = verify_card(&sub, &trust(), &CardPolicy::default(), &binding(), Utc::now()) {
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

// ---- Issue 11: one physical card ----

/// A second card whose holder has the victim's birth date and sex (the defaults) but another name and address.
fn second_person() -> &'static PersonId {
    static P: OnceLock<PersonId> = OnceLock::new();
    P.get_or_init(|| {
        issue(PersonSpec {
            name: "佐藤\u{3000}花子".into(),
            address: "大阪府大阪市北区中之島１－３－２０".into(),
            with_hojo: true,
            ..Default::default()
        })
    })
}

/// The victim's JPKI part with the 券面AP (and, if `hojo_from` is given, the 入力補助AP) of other cards.
fn stitched(kenmen_from: &PersonId, hojo_from: Option<&PersonId>) -> Value {
    let mut card = signed(valid_person());
    let other = signed(kenmen_from);
    card["kenmen"] = other["kenmen"].clone();
    match hojo_from {
        Some(p) => card["hojo"] = signed(p)["hojo"].clone(),
        None => {
            card.as_object_mut().unwrap().remove("hojo");
        }
    }
    card
}

#[test]
fn a_stitched_submission_is_rejected_naming_the_failed_binding() {
    // Someone holding the victim's card (JPKI signature) reads the 券面AP and 入力補助AP of a second card
    // whose holder shares the victim's birth date and sex.
    let r = check(&stitched(second_person(), Some(second_person()))).unwrap();
    assert_eq!(
        r.card_data.result,
        CardDataResult::Valid,
        "the 券面AP is genuine"
    );
    assert_eq!(r.card_present.result, PresenceResult::Valid);
    assert_eq!(r.certificate.result, CertificateResult::Valid);
    assert_eq!(r.hojo.as_ref().map(|h| h.result), Some(HojoResult::Valid));
    assert_eq!(
        r.consistency.result,
        ConsistencyResult::Match,
        "birth date and sex agree"
    );
    assert_eq!(r.hojo_binding.result, HojoBindingResult::Mismatch);
    assert_eq!(
        r.hojo_binding.certificate_mismatched,
        vec![IdentityField::Name, IdentityField::Address]
    );
    assert_eq!(
        r.failures().iter().map(|r| r.code()).collect::<Vec<_>>(),
        vec!["hojo_mismatch"]
    );

    // The same stitch without any 入力補助AP records: refused by default…
    let bare = stitched(second_person(), None);
    let r = check(&bare).unwrap();
    assert_eq!(r.hojo_binding.result, HojoBindingResult::HojoRequired);
    assert_eq!(
        r.failures().iter().map(|r| r.code()).collect::<Vec<_>>(),
        vec!["hojo_required"]
    );
    // …and accepted under require_hojo = false: the documented cost of switching the binding off
    // (docs/card.md, "The one-card binding").
    let r = check_with(
        &bare,
        &CardPolicy {
            require_hojo: false,
        },
    )
    .unwrap();
    assert_eq!(r.hojo_binding.result, HojoBindingResult::NotRequired);
    assert!(
        r.passed(),
        "{:?}",
        r.failures().iter().map(|r| r.code()).collect::<Vec<_>>()
    );
    assert_ne!(
        r.chip_photo,
        check(&signed(valid_person())).unwrap().chip_photo,
        "the accepted photo is the second card's"
    );
}

#[test]
fn the_victims_own_hojo_with_a_second_cards_kenmen_is_not_detected() {
    // The documented limit (docs/card.md): nothing the API receives ties the 券面AP to the same card as
    // the 入力補助AP beyond birth date and sex, so an attacker with the victim's card can send its
    // 入力補助AP too. This test keeps that statement true; if it starts failing, update the docs.
    let r = check(&stitched(second_person(), Some(valid_person()))).unwrap();
    assert_eq!(r.hojo_binding.result, HojoBindingResult::Bound);
    assert!(
        r.passed(),
        "{:?}",
        r.failures().iter().map(|r| r.code()).collect::<Vec<_>>()
    );
}

#[test]
fn a_genuine_card_without_hojo_needs_the_policy_switched_off() {
    let p = issue(PersonSpec::default());
    let card = signed(&p);
    let r = check(&card).unwrap();
    assert_eq!(r.hojo, None);
    assert_eq!(
        r.failures().iter().map(|r| r.code()).collect::<Vec<_>>(),
        vec!["hojo_required"]
    );
    let json = serde_json::to_value(&r.hojo_binding).unwrap();
    assert_eq!(json["result"], "hojo_required");
    let r = check_with(
        &card,
        &CardPolicy {
            require_hojo: false,
        },
    )
    .unwrap();
    assert!(
        r.passed(),
        "{:?}",
        r.failures().iter().map(|r| r.code()).collect::<Vec<_>>()
    );
}

#[test]
fn a_hojo_with_another_sex_than_the_kenmen_names_both_bindings() {
    // A second holder with the victim's birth date but the other sex: the 入力補助AP (victim's) and the
    // 券面AP (second card) disagree on sex, and so do the SAN and the 券面AP.
    let other = issue(PersonSpec {
        sex: Sex::Female,
        with_hojo: true,
        ..Default::default()
    });
    let r = check(&stitched(&other, Some(valid_person()))).unwrap();
    assert_eq!(r.consistency.mismatched, vec![IdentityField::Sex]);
    assert_eq!(r.hojo_binding.kenmen_mismatched, vec![IdentityField::Sex]);
    assert!(r.hojo_binding.certificate_mismatched.is_empty());
    assert_eq!(
        r.failures().iter().map(|r| r.code()).collect::<Vec<_>>(),
        vec!["identity_mismatch", "hojo_mismatch"]
    );
}

// ---- Issue 11: certificate policy, critical extensions, the root ----

/// The valid person's card with its signing certificate edited and re-signed by the test CA.
fn with_edited_certificate(
    edit: impl FnOnce(&mut x509_cert::certificate::TbsCertificate),
) -> Value {
    let mut card = signed(valid_person());
    let der = B64
        .decode(card["jpki"]["signing_certificate"].as_str().unwrap())
        .unwrap();
    let edited = card_certs::resign(&der, &card_certs::ca_key(hierarchy().dir()), edit);
    card["jpki"]["signing_certificate"] = Value::String(B64.encode(edited));
    card
}

const POLICIES: &str = "2.5.29.32";

#[test]
fn re_signing_an_unchanged_certificate_keeps_it_valid() {
    // The control for the tests below: the edit-and-re-sign helper alone changes nothing.
    let r = check(&with_edited_certificate(|_| {})).unwrap();
    assert_eq!(r.certificate.result, CertificateResult::Valid);
    assert!(
        r.passed(),
        "{:?}",
        r.failures().iter().map(|r| r.code()).collect::<Vec<_>>()
    );
}

#[test]
fn an_unknown_critical_extension_makes_the_certificate_invalid() {
    let r = check(&with_edited_certificate(|tbs| {
        card_certs::extensions(tbs).push(card_certs::null_extension("1.3.6.1.4.1.55555.1", true));
    }))
    .unwrap();
    assert_eq!(
        r.certificate.result,
        CertificateResult::UnknownCriticalExtension
    );
    assert_eq!(
        r.certificate.unknown_critical_extensions,
        vec!["1.3.6.1.4.1.55555.1"]
    );
    assert_eq!(
        r.failures().iter().map(|r| r.code()).collect::<Vec<_>>(),
        vec!["certificate_unknown_critical_extension"]
    );
    let json = serde_json::to_value(&r.certificate).unwrap();
    assert_eq!(json["result"], "unknown_critical_extension");

    // The same extension, not critical, may be ignored.
    let r = check(&with_edited_certificate(|tbs| {
        card_certs::extensions(tbs).push(card_certs::null_extension("1.3.6.1.4.1.55555.1", false));
    }))
    .unwrap();
    assert_eq!(r.certificate.result, CertificateResult::Valid);

    // J-LIS marks certificatePolicies critical: that is processed, not unknown.
    let r = check(&with_edited_certificate(|tbs| {
        for e in card_certs::extensions(tbs).iter_mut() {
            if e.extn_id.to_string() == POLICIES {
                e.critical = true;
            }
        }
    }))
    .unwrap();
    assert_eq!(r.certificate.result, CertificateResult::Valid);
}

#[test]
fn the_signing_policy_is_required_and_configurable() {
    let without = with_edited_certificate(|tbs| card_certs::replace_extension(tbs, POLICIES, None));
    let r = check(&without).unwrap();
    assert_eq!(r.certificate.result, CertificateResult::PolicyMissing);
    assert_eq!(
        r.failures().iter().map(|r| r.code()).collect::<Vec<_>>(),
        vec!["certificate_policy_missing"]
    );

    // The genuine certificate carries 1.2.392.200149.8.5.1.1.20; a deployment that accepts only the
    // J-LIS test environment's policy refuses it.
    let cfg = card::CardConfig {
        signing_policy_oids: vec!["1.2.392.200149.8.5.1.0.20".into()],
        ..hierarchy().card_config()
    };
    let store = TrustStore::from_config(&cfg).unwrap();
    let sub = parse_card_json(signed(valid_person()).to_string().as_bytes()).unwrap();
    let r = verify_card(&sub, &store, &CardPolicy::default(), &binding(), Utc::now()).unwrap();
    assert_eq!(r.certificate.result, CertificateResult::PolicyMissing);
    // Listing both accepts it again.
    let cfg = card::CardConfig {
        signing_policy_oids: vec![
            "1.2.392.200149.8.5.1.0.20".into(),
            card::JPKI_SIGNING_POLICY_OID.into(),
        ],
        ..hierarchy().card_config()
    };
    let store = TrustStore::from_config(&cfg).unwrap();
    let r = verify_card(&sub, &store, &CardPolicy::default(), &binding(), Utc::now()).unwrap();
    assert_eq!(r.certificate.result, CertificateResult::Valid);
    // An empty list would switch the check off: refused when the store is built.
    let cfg = card::CardConfig {
        signing_policy_oids: vec![],
        ..hierarchy().card_config()
    };
    let err = TrustStore::from_config(&cfg).unwrap_err().to_string();
    assert!(err.contains("card.signing_policy_oids"), "{err}");
}

/// The genuine card checked against a trust directory whose root is the test CA after `edit`.
fn check_against_root(
    label: &str,
    edit: impl FnOnce(&mut x509_cert::certificate::TbsCertificate),
) -> CardReport {
    let h = hierarchy();
    let ca = card_certs::pem_file_der(&h.dir().join("ca.pem"));
    let root = card_certs::resign(&ca, &card_certs::ca_key(h.dir()), edit);
    let dir = card_certs::trust_dir_with_root(&h.trust_dir(), &root, label);
    let store = TrustStore::load(&dir).unwrap();
    let sub = parse_card_json(signed(valid_person()).to_string().as_bytes()).unwrap();
    let r = verify_card(&sub, &store, &CardPolicy::default(), &binding(), Utc::now()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    r
}

fn utc(unix: i64) -> x509_cert::time::Time {
    x509_cert::time::Time::UtcTime(
        der::asn1::UtcTime::from_unix_duration(std::time::Duration::from_secs(
            u64::try_from(unix).unwrap(),
        ))
        .unwrap(),
    )
}

#[test]
fn the_roots_validity_and_ca_flag_are_checked() {
    // Control: the unchanged root, re-signed, verifies the card.
    let r = check_against_root("same", |_| {});
    assert_eq!(r.certificate.result, CertificateResult::Valid);

    let now = Utc::now().timestamp();
    let r = check_against_root("expired", |tbs| {
        tbs.validity.not_before = utc(now - 20 * 86_400);
        tbs.validity.not_after = utc(now - 86_400);
    });
    assert_eq!(r.certificate.result, CertificateResult::RootNotValid);
    assert_eq!(
        r.failures().iter().map(|r| r.code()).collect::<Vec<_>>(),
        vec!["certificate_root_not_valid"]
    );
    assert!(r.revocation_target.is_some(), "the chain itself verified");

    let r = check_against_root("future", |tbs| {
        tbs.validity.not_before = utc(now + 86_400);
    });
    assert_eq!(r.certificate.result, CertificateResult::RootNotValid);

    let r = check_against_root("not-ca", |tbs| {
        card_certs::replace_extension(tbs, "2.5.29.19", None);
    });
    assert_eq!(r.certificate.result, CertificateResult::RootNotCa);
    assert_eq!(
        r.failures().iter().map(|r| r.code()).collect::<Vec<_>>(),
        vec!["certificate_root_not_ca"]
    );

    let r = check_against_root("ca-false", |tbs| {
        let bc = x509_cert::ext::pkix::BasicConstraints {
            ca: false,
            path_len_constraint: None,
        };
        let ext = x509_cert::ext::Extension {
            extn_id: "2.5.29.19".parse().unwrap(),
            critical: true,
            extn_value: der::asn1::OctetString::new(der::Encode::to_der(&bc).unwrap()).unwrap(),
        };
        card_certs::replace_extension(tbs, "2.5.29.19", Some(ext));
    });
    assert_eq!(r.certificate.result, CertificateResult::RootNotCa);
}
