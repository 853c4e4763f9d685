//! Synthetic masked faces for tests and measurement (issue 25): a mask texture (insightface-rk's
//! `mask_{black,blue,green,white}.jpg`, fetched by `make models` into `models/mask-textures/`) pasted
//! along the five landmarks of a detected face, from the nose bridge to the chin.
//!
//! Never used on a request: `jpki-face face mask-synth` and the tests make masked images at run time
//! from photos read by path; no generated face is kept in the repository.

use image::RgbImage;

/// The mask textures `make models` installs (file names in `models/mask-textures/`).
pub const TEXTURES: [&str; 4] = [
    "mask_black.jpg",
    "mask_blue.jpg",
    "mask_green.jpg",
    "mask_white.jpg",
];

/// Where the mask sits, in units of the face: `v` runs from the eye line (0) to the mouth line (1)
/// along the face's vertical axis, `u` across it in inter-eye distances from the eyes' midpoint.
const TOP: f32 = 0.42;
/// The mask's lower edge, below the mouth (the chin).
const BOTTOM: f32 = 1.6;
/// Where the sides start to round towards the chin.
const ROUND_FROM: f32 = 0.95;
/// Half the mask's width across the cheeks, in inter-eye distances.
const HALF_WIDTH: f32 = 1.0;

/// Pastes `texture` over the lower face given by `landmarks` (left eye, right eye, nose, left and right
/// mouth corner, in `img`'s pixels). The texture is stretched over the mask's shape; the photo's light
/// shows through a little so the mask is not flat. `None` for a degenerate face.
pub fn put_on(img: &RgbImage, landmarks: &[[f32; 2]; 5], texture: &RgbImage) -> Option<RgbImage> {
    let [le, re, _, lm, rm] = *landmarks;
    let eye_mid = [(le[0] + re[0]) / 2.0, (le[1] + re[1]) / 2.0];
    let mouth_mid = [(lm[0] + rm[0]) / 2.0, (lm[1] + rm[1]) / 2.0];
    let ied = ((re[0] - le[0]).powi(2) + (re[1] - le[1]).powi(2)).sqrt();
    if !(ied.is_finite() && ied > 2.0) || texture.width() < 2 || texture.height() < 2 {
        return None;
    }
    let ex = [(re[0] - le[0]) / ied, (re[1] - le[1]) / ied];
    // Perpendicular to the eye line, pointing to the mouth.
    let mut ey = [-ex[1], ex[0]];
    let to_mouth = [mouth_mid[0] - eye_mid[0], mouth_mid[1] - eye_mid[1]];
    let mut m = to_mouth[0] * ey[0] + to_mouth[1] * ey[1];
    if m < 0.0 {
        ey = [-ey[0], -ey[1]];
        m = -m;
    }
    if m < 1.0 {
        return None;
    }
    let half_w = HALF_WIDTH * ied;
    let inside = |u: f32, v: f32| -> bool {
        if !(TOP..=BOTTOM).contains(&v) {
            return false;
        }
        let hw = if v <= ROUND_FROM {
            half_w
        } else {
            let t = (v - ROUND_FROM) / (BOTTOM - ROUND_FROM);
            half_w * (1.0 - t * t).max(0.0).sqrt()
        };
        u.abs() <= hw
    };
    let mut out = img.clone();
    // Bounding box of the mask in the photo.
    let corners = [
        (-half_w, TOP * m),
        (half_w, TOP * m),
        (-half_w, BOTTOM * m),
        (half_w, BOTTOM * m),
    ]
    .map(|(u, v)| {
        [
            eye_mid[0] + u * ex[0] + v * ey[0],
            eye_mid[1] + u * ex[1] + v * ey[1],
        ]
    });
    let (w, h) = (img.width() as i64, img.height() as i64);
    let x0 = (corners
        .iter()
        .map(|c| c[0])
        .fold(f32::MAX, f32::min)
        .floor() as i64)
        .clamp(0, w);
    let x1 = (corners.iter().map(|c| c[0]).fold(f32::MIN, f32::max).ceil() as i64).clamp(0, w);
    let y0 = (corners
        .iter()
        .map(|c| c[1])
        .fold(f32::MAX, f32::min)
        .floor() as i64)
        .clamp(0, h);
    let y1 = (corners.iter().map(|c| c[1]).fold(f32::MIN, f32::max).ceil() as i64).clamp(0, h);
    let (tw, th) = (texture.width() as f32, texture.height() as f32);
    for y in y0..y1 {
        for x in x0..x1 {
            let d = [x as f32 + 0.5 - eye_mid[0], y as f32 + 0.5 - eye_mid[1]];
            let u = d[0] * ex[0] + d[1] * ex[1];
            let v = (d[0] * ey[0] + d[1] * ey[1]) / m;
            if !inside(u, v) {
                continue;
            }
            let tx = ((u + half_w) / (2.0 * half_w) * (tw - 1.0)).clamp(0.0, tw - 1.0);
            let ty = ((v - TOP) / (BOTTOM - TOP) * (th - 1.0)).clamp(0.0, th - 1.0);
            let t = texture.get_pixel(tx as u32, ty as u32).0;
            let p = out.get_pixel_mut(x as u32, y as u32);
            for (o, &tc) in p.0.iter_mut().zip(t.iter()) {
                *o = (0.85 * f32::from(tc) + 0.15 * f32::from(*o)).round() as u8;
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::face::align::TEMPLATE;

    #[test]
    fn covers_nose_to_chin_and_leaves_the_eyes() {
        let img = RgbImage::from_pixel(112, 130, image::Rgb([10, 10, 10]));
        let tex = RgbImage::from_pixel(8, 4, image::Rgb([250, 250, 250]));
        let out = put_on(&img, &TEMPLATE, &tex).expect("a face");
        // Eyes untouched; mouth covered (mostly texture).
        assert_eq!(out.get_pixel(38, 51).0, [10, 10, 10]);
        assert!(out.get_pixel(56, 92).0[0] > 200);
        // Nose tip covered, forehead not.
        assert!(out.get_pixel(56, 75).0[0] > 200);
        assert_eq!(out.get_pixel(56, 20).0, [10, 10, 10]);
        assert!(put_on(&img, &[[5.0, 5.0]; 5], &tex).is_none());
    }
}
