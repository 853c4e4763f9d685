//! The `card` JSON decoder (My Number refusal, base64).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = jpki_face::card::parse_card_json(data);
});
