//! BER-TLV reader: one TLV and a whole list.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((tlv, rest)) = jpki_face::card::tlv::read(data, 0) {
        assert_eq!(tlv.raw.len() + rest.len(), data.len());
    }
    let _ = jpki_face::card::tlv::read_all(data, 0, 64);
});
