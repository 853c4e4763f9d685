//! JPKI signing certificate parser (DER, RSA key, SAN identity profile).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = jpki_face::card::SigningCertificate::parse(data);
});
