//! Whole verification on arbitrary files: the input is split into the five required fields.
#![no_main]
use jpki_face::card::{verify_card, CardPolicy, CardSubmission, SessionBinding, TrustStore};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Five fields separated by the first four 0xA5 bytes.
    let mut parts = data.splitn(5, |b| *b == 0xA5).map(<[u8]>::to_vec);
    let mut next = || parts.next().unwrap_or_default();
    let sub = CardSubmission {
        kenmen_face: next(),
        kenmen_cvc: next(),
        kenmen_card_signature: next(),
        jpki_certificate: next(),
        jpki_signature: next(),
        hojo: None,
    };
    let nonce = [0u8; 32];
    let binding = SessionBinding {
        session_id: "ses_fuzz",
        nonce: &nonce,
    };
    let _ = verify_card(&sub, &TrustStore::empty(), &CardPolicy::default(), &binding, chrono::Utc::now());
});
