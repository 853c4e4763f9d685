//! JPEG 2000 (JP2) chip photos for the face tests and benchmarks: the test-card generator's encoder,
//! which uses only openjp2's safe API (no raw pointers here).
use image::RgbImage;

/// Lossy JP2 at the given compression ratio.
pub fn encode(img: &RgbImage, ratio: f32) -> Vec<u8> {
    jpki_face::devcard::encode_jp2(img, ratio).expect("JPEG 2000 encoding")
}
