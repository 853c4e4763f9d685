//! The gate, then openjp2 on what it accepts (the production path of a chip photo's decode).
#![no_main]
use jpki_face::face::decode::{decode_jpeg2000, DecodeLimits};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

#[path = "common/mod.rs"]
mod common;

fn sample() -> &'static [u8] {
    static S: OnceLock<Vec<u8>> = OnceLock::new();
    S.get_or_init(|| {
        let img = image::imageops::thumbnail(&jpki_face::devcard::synthetic_face(2), 60, 80);
        jpki_face::devcard::encode_jp2(&img, 20.0).expect("encode the sample")
    })
}

fuzz_target!(|data: &[u8]| {
    let bytes = match data.split_first() {
        Some((m, rest)) if m & 1 == 1 => common::patched(sample(), rest),
        _ => data.to_vec(),
    };
    if let Ok(img) = decode_jpeg2000(&bytes, &DecodeLimits::new(4_000_000)) {
        assert!(img.width() <= 1024 && img.height() <= 1024);
    }
});
