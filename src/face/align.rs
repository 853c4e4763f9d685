//! 5-point similarity alignment onto the ArcFace 112×112 template, the crop SFace expects.

use image::RgbImage;

pub const SIDE: usize = 112;

/// Where the five landmarks go in the 112×112 crop (left eye, right eye, nose, mouth corners).
pub const TEMPLATE: [[f32; 2]; 5] = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];

/// A similarity transform `dst = [a -b; b a]·src + t`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    pub a: f32,
    pub b: f32,
    pub tx: f32,
    pub ty: f32,
}

/// Least-squares similarity (rotation, uniform scale, translation) from `src` to `dst`: Umeyama's
/// solution restricted to 2-D, where it has this closed form and never reflects.
pub fn estimate(src: &[[f32; 2]; 5], dst: &[[f32; 2]; 5]) -> Option<Similarity> {
    let n = src.len() as f64;
    let (mut msx, mut msy, mut mdx, mut mdy) = (0f64, 0f64, 0f64, 0f64);
    for (s, d) in src.iter().zip(dst) {
        msx += f64::from(s[0]);
        msy += f64::from(s[1]);
        mdx += f64::from(d[0]);
        mdy += f64::from(d[1]);
    }
    msx /= n;
    msy /= n;
    mdx /= n;
    mdy /= n;
    let (mut num_a, mut num_b, mut den) = (0f64, 0f64, 0f64);
    for (s, d) in src.iter().zip(dst) {
        let (sx, sy) = (f64::from(s[0]) - msx, f64::from(s[1]) - msy);
        let (dx, dy) = (f64::from(d[0]) - mdx, f64::from(d[1]) - mdy);
        num_a += sx * dx + sy * dy;
        num_b += sx * dy - sy * dx;
        den += sx * sx + sy * sy;
    }
    if den < 1e-9 || !den.is_finite() {
        return None;
    }
    let a = num_a / den;
    let b = num_b / den;
    let tx = mdx - (a * msx - b * msy);
    let ty = mdy - (b * msx + a * msy);
    Some(Similarity {
        a: a as f32,
        b: b as f32,
        tx: tx as f32,
        ty: ty as f32,
    })
}

/// The aligned face: planar RGB floats 0..255 (SFace's input) and a grey copy for the sharpness metric.
pub struct AlignedFace {
    pub rgb_planar: Vec<f32>,
    pub grey: Vec<f32>,
}

/// Warps the image into the 112×112 crop by inverse mapping with bilinear sampling; outside is black.
pub fn warp(img: &RgbImage, m: &Similarity) -> Option<AlignedFace> {
    let det = m.a * m.a + m.b * m.b;
    if det <= f32::EPSILON || !det.is_finite() {
        return None;
    }
    // Inverse of [a -b; b a] is [a b; -b a] / det.
    let (ia, ib) = (m.a / det, m.b / det);
    let (w, h) = (img.width() as i64, img.height() as i64);
    let raw = img.as_raw();
    let plane = SIDE * SIDE;
    let mut rgb = vec![0f32; 3 * plane];
    let mut grey = vec![0f32; plane];
    let px = |x: i64, y: i64, c: usize| -> f32 {
        if x < 0 || y < 0 || x >= w || y >= h {
            0.0
        } else {
            raw.get(((y * w + x) * 3) as usize + c)
                .map_or(0.0, |&v| f32::from(v))
        }
    };
    for y in 0..SIDE {
        for x in 0..SIDE {
            let (dx, dy) = (x as f32 - m.tx, y as f32 - m.ty);
            let sx = ia * dx + ib * dy;
            let sy = -ib * dx + ia * dy;
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = (sx - x0, sy - y0);
            let (x0, y0) = (x0 as i64, y0 as i64);
            let mut v = [0f32; 3];
            for (c, vc) in v.iter_mut().enumerate() {
                let top = px(x0, y0, c) * (1.0 - fx) + px(x0 + 1, y0, c) * fx;
                let bottom = px(x0, y0 + 1, c) * (1.0 - fx) + px(x0 + 1, y0 + 1, c) * fx;
                *vc = top * (1.0 - fy) + bottom * fy;
                rgb[c * plane + y * SIDE + x] = *vc;
            }
            grey[y * SIDE + x] = 0.299 * v[0] + 0.587 * v[1] + 0.114 * v[2];
        }
    }
    Some(AlignedFace {
        rgb_planar: rgb,
        grey,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_known_similarity() {
        // Rotate by 30°, scale 2, translate (5, -3).
        let (c, s) = (
            30f32.to_radians().cos() * 2.0,
            30f32.to_radians().sin() * 2.0,
        );
        let dst = TEMPLATE.map(|p| [c * p[0] - s * p[1] + 5.0, s * p[0] + c * p[1] - 3.0]);
        let m = estimate(&TEMPLATE, &dst).expect("well-posed");
        assert!((m.a - c).abs() < 1e-4 && (m.b - s).abs() < 1e-4, "{m:?}");
        assert!(
            (m.tx - 5.0).abs() < 1e-3 && (m.ty + 3.0).abs() < 1e-3,
            "{m:?}"
        );
    }

    #[test]
    fn degenerate_points_are_refused() {
        assert!(estimate(&[[1.0, 1.0]; 5], &TEMPLATE).is_none());
    }

    #[test]
    fn identity_warp_copies_pixels() {
        let img = RgbImage::from_fn(112, 112, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let id = Similarity {
            a: 1.0,
            b: 0.0,
            tx: 0.0,
            ty: 0.0,
        };
        let f = warp(&img, &id).expect("invertible");
        assert_eq!(f.rgb_planar[10 * SIDE + 20], 20.0);
        assert_eq!(f.rgb_planar[SIDE * SIDE + 10 * SIDE + 20], 10.0);
        assert_eq!(f.rgb_planar[2 * SIDE * SIDE + 5], 7.0);
    }
}
