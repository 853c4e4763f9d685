//! A drawn placeholder portrait for test cards that need no real face.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A drawn placeholder portrait: background, head, eyes, mouth. Deterministic from `seed`.
pub fn synthetic_face(seed: u64) -> image::RgbImage {
    let mut rng = StdRng::seed_from_u64(seed);
    let bg = [
        rng.gen_range(150..230u8),
        rng.gen_range(150..230u8),
        rng.gen_range(180..250u8),
    ];
    let skin = [
        rng.gen_range(190..240u8),
        rng.gen_range(150..200u8),
        rng.gen_range(120..170u8),
    ];
    let (w, h) = (240u32, 320u32);
    image::RgbImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (x as f32 - 120.0, y as f32 - 150.0);
        let head = (fx / 70.0).powi(2) + (fy / 95.0).powi(2) <= 1.0;
        let eye = |cx: f32| ((x as f32 - cx).powi(2) + (y as f32 - 130.0).powi(2)) <= 64.0;
        let mouth = (x as f32 - 120.0).abs() < 25.0 && (y as f32 - 195.0).abs() < 4.0;
        if head && (eye(95.0) || eye(145.0) || mouth) {
            image::Rgb([40, 30, 30])
        } else if head {
            image::Rgb(skin)
        } else {
            image::Rgb(bg)
        }
    })
}
