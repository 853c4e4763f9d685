//! Whole card verification against the trust store of a test hierarchy, so signatures and chains are
//! reached: either five raw fields, or a patch of one field of a genuine, correctly signed card.
#![no_main]
use jpki_face::card::{parse_card_json, verify_card, CardPolicy, CardSubmission, SessionBinding, TrustStore};
use jpki_face::devcard::{PersonSpec, TestHierarchy};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

#[path = "common/mod.rs"]
mod common;

const NONCE: [u8; 32] = [0x5A; 32];

fn binding() -> SessionBinding<'static> {
    SessionBinding {
        session_id: "ses_fuzz",
        nonce: &NONCE,
    }
}

/// The trust store of a test hierarchy and a genuine card signed for `binding()`.
fn fixture() -> &'static (TrustStore, CardSubmission) {
    static F: OnceLock<(TrustStore, CardSubmission)> = OnceLock::new();
    F.get_or_init(|| {
        let base = std::env::temp_dir().join("jpki-face-fuzz");
        let dir = base.join(format!("hierarchy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let h = TestHierarchy::init_with_key_cache(&dir, 7, Some(&base.join("keys")))
            .expect("test hierarchy");
        let person = h
            .issue(&PersonSpec {
                with_hojo: true,
                ..Default::default()
            })
            .expect("issue");
        let json = h.sign(&person, &binding()).expect("sign");
        let sub = parse_card_json(json.to_string().as_bytes()).expect("genuine card parses");
        let trust = h.trust_store().expect("trust store");
        let report = verify_card(&sub, &trust, &CardPolicy::default(), &binding(), chrono::Utc::now()).expect("genuine");
        assert_eq!(report.card_data.result, jpki_face::card::CardDataResult::Valid);
        let _ = std::fs::remove_dir_all(&dir);
        (trust, sub)
    })
}

fuzz_target!(|data: &[u8]| {
    let (trust, genuine) = fixture();
    let sub = match data.split_first() {
        Some((&m, rest)) if m & 1 == 1 => {
            let mut sub = genuine.clone();
            let field = match (m >> 1) % 7 {
                0 => &mut sub.kenmen_face,
                1 => &mut sub.kenmen_cvc,
                2 => &mut sub.kenmen_card_signature,
                3 => &mut sub.jpki_certificate,
                4 => &mut sub.jpki_signature,
                5 => match sub.hojo.as_mut() {
                    Some(h) => &mut h.attributes,
                    None => return,
                },
                _ => match sub.hojo.as_mut() {
                    Some(h) => &mut h.integrity,
                    None => return,
                },
            };
            *field = common::patched(field, rest);
            sub
        }
        _ => {
            // Five fields separated by the first four 0xA5 bytes.
            let mut parts = data.splitn(5, |b| *b == 0xA5).map(<[u8]>::to_vec);
            let mut next = || parts.next().unwrap_or_default();
            CardSubmission {
                kenmen_face: next(),
                kenmen_cvc: next(),
                kenmen_card_signature: next(),
                jpki_certificate: next(),
                jpki_signature: next(),
                hojo: None,
            }
        }
    };
    let _ = verify_card(&sub, trust, &CardPolicy::default(), &binding(), chrono::Utc::now());
});
