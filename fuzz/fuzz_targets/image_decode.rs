//! The selfie decoders (JPEG, PNG, WebP) behind their checks: structure walk to the end marker, the
//! header's pixel count and the memory budget.
#![no_main]
use image::{ImageFormat, RgbImage};
use jpki_face::face::decode::{budget_bytes, decode_raster, sniff, DecodeLimits, Sniffed};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

#[path = "common/mod.rs"]
mod common;

const MAX_PIXELS: u64 = 1 << 22;

fn samples() -> &'static [Vec<u8>; 3] {
    static S: OnceLock<[Vec<u8>; 3]> = OnceLock::new();
    S.get_or_init(|| {
        let img = RgbImage::from_fn(48, 40, |x, y| image::Rgb([(x * 5) as u8, (y * 6) as u8, 120]));
        let enc = |f: ImageFormat| {
            let mut out = std::io::Cursor::new(Vec::new());
            img.write_to(&mut out, f).expect("encode the sample");
            out.into_inner()
        };
        [enc(ImageFormat::Jpeg), enc(ImageFormat::Png), enc(ImageFormat::WebP)]
    })
}

fuzz_target!(|data: &[u8]| {
    let bytes = match data.split_first() {
        Some((m, rest)) if m % 4 != 0 => common::patched(&samples()[usize::from(m % 4) - 1], rest),
        _ => data.to_vec(),
    };
    let Some(format @ (Sniffed::Jpeg | Sniffed::Png | Sniffed::WebP)) = sniff(&bytes) else {
        return;
    };
    if let Ok(img) = decode_raster(&bytes, format, &DecodeLimits::new(MAX_PIXELS)) {
        let pixels = u64::from(img.width()) * u64::from(img.height());
        assert!(pixels <= MAX_PIXELS);
        assert!(pixels * 3 <= budget_bytes(MAX_PIXELS));
    }
});
