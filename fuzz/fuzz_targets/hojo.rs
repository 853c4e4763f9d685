//! 入力補助AP attribute (EF 0002) and integrity (EF 0003) parsers.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = jpki_face::card::HojoAttributes::parse(data);
    let _ = jpki_face::card::HojoIntegrity::parse(data);
});
