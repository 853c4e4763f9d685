//! 券面AP face record (EF 0002) parser and its signed-block computation.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(face) = jpki_face::card::FaceRecord::parse(data, 64 * 1024) {
        assert_eq!(face.signed_block().len(), 115);
    }
});
