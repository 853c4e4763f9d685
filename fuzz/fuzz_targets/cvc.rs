//! Card-verifiable certificate (7F21) parser and the 90/91 key parser.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = jpki_face::card::parse_cvc(data, jpki_face::card::CvcFile::Kenmen);
    let _ = jpki_face::card::parse_card_key(data);
});
