//! YuNet pre- and post-processing: letterbox into a BGR input sized to the photo, decode the three
//! strides' outputs into boxes + 5 landmarks, non-maximum suppression. The ONNX call itself is in `models`.
//!
//! The derived YuNet file (models/manifest.toml) takes any input whose sides are multiples of 32. The
//! input is the photo scaled so its longer side lies in [`MIN_SIDE`, `MAX_SIDE`] (aspect kept), each
//! side rounded up to a multiple of 32 with zero padding right and bottom: a 3:4 selfie runs at 480×640
//! instead of 640×640, at the same scale as before. Landmarks are mapped back to original pixels by the
//! same scale. Small photos are still scaled up to 640: detecting a 250×250 news photo at its own size
//! (256×256) lost landmark precision that showed in the FNMR gate (docs/accuracy.md).

use image::RgbImage;

/// The largest detector input side (YuNet's training size).
pub const MAX_SIDE: usize = 640;
/// Photos smaller than this (longer side) are scaled up to it.
pub const MIN_SIDE: usize = 640;
pub const STRIDES: [usize; 3] = [8, 16, 32];

/// One detected face in original-image pixels.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Detection {
    /// x, y, width, height.
    pub bbox: [f32; 4],
    /// Left eye, right eye (as seen in the image), nose, left and right mouth corner.
    pub landmarks: [[f32; 2]; 5],
    pub score: f32,
}

impl Detection {
    /// The same face in a picture `k` times as large (box and landmarks; the score is kept).
    pub fn scaled(&self, k: f32) -> Detection {
        let [x, y, w, h] = self.bbox;
        Detection {
            bbox: [x * k, y * k, w * k, h * k],
            landmarks: self.landmarks.map(|[px, py]| [px * k, py * k]),
            score: self.score,
        }
    }
}

/// The letterboxed input tensor (1×3×height×width, BGR, 0..255) and the scale that maps back.
pub struct Letterbox {
    pub data: Vec<f32>,
    pub scale: f32,
    /// Input width and height, multiples of 32.
    pub width: usize,
    pub height: usize,
}

/// The scale and the input size (width, height; multiples of 32) for a `w`×`h` photo.
pub fn input_size(w: usize, h: usize, min_side: usize, max_side: usize) -> (f32, usize, usize) {
    let long = w.max(h).max(1) as f32;
    let scale = (min_side as f32 / long)
        .max(1.0)
        .min(max_side as f32 / long);
    let up32 = |v: usize| (v.div_ceil(32) * 32).clamp(32, max_side.max(32));
    let ow = ((w as f32 * scale).round() as usize).max(1);
    let oh = ((h as f32 * scale).round() as usize).max(1);
    (scale, up32(ow), up32(oh))
}

/// [`letterbox_sized`] with the default input sizing.
pub fn letterbox(img: &RgbImage) -> Letterbox {
    letterbox_sized(img, MIN_SIDE, MAX_SIDE)
}

/// Resizes the image by [`input_size`]'s scale into a zero-padded input by bilinear sampling, straight
/// into planar BGR floats: one pass, no intermediate image.
pub fn letterbox_sized(img: &RgbImage, min_side: usize, max_side: usize) -> Letterbox {
    let (scale, iw, ih) = input_size(
        img.width() as usize,
        img.height() as usize,
        min_side,
        max_side,
    );
    letterbox_into(img, scale, iw, ih)
}

/// The fixed square input of the original YuNet file (`side`×`side`, 640 upstream): for comparisons.
pub fn letterbox_square(img: &RgbImage, side: usize) -> Letterbox {
    let (w, h) = (img.width().max(1) as f32, img.height().max(1) as f32);
    letterbox_into(img, (side as f32 / w).min(side as f32 / h), side, side)
}

fn letterbox_into(img: &RgbImage, scale: f32, iw: usize, ih: usize) -> Letterbox {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let plane = iw * ih;
    let mut data = vec![0f32; 3 * plane];
    if w == 0 || h == 0 {
        return Letterbox {
            data,
            scale: 1.0,
            width: iw,
            height: ih,
        };
    }
    let ow = ((w as f32 * scale).round() as usize).clamp(1, iw);
    let oh = ((h as f32 * scale).round() as usize).clamp(1, ih);
    let raw = img.as_raw();
    let inv = 1.0 / scale;
    // Horizontal sample positions are the same for every row: compute them once.
    let xs: Vec<(usize, usize, f32)> = (0..ow)
        .map(|x| {
            let sx = ((x as f32 + 0.5) * inv - 0.5).clamp(0.0, (w - 1) as f32);
            let x0 = sx.floor() as usize;
            (x0, (x0 + 1).min(w - 1), sx - x0 as f32)
        })
        .collect();
    // Bilinear sampling is separable: blend the two source rows once per output row (w pixels), then
    // sample that blended row horizontally (ow pixels).
    let (b_plane, rest) = data.split_at_mut(plane);
    let (g_plane, r_plane) = rest.split_at_mut(plane);
    let mut blended = vec![0f32; w * 3];
    for y in 0..oh {
        let sy = ((y as f32 + 0.5) * inv - 0.5).clamp(0.0, (h - 1) as f32);
        let y0 = sy.floor() as usize;
        let y1 = (y0 + 1).min(h - 1);
        let fy = sy - y0 as f32;
        let r0 = &raw[y0 * w * 3..(y0 + 1) * w * 3];
        let r1 = &raw[y1 * w * 3..(y1 + 1) * w * 3];
        for ((v, &a), &b) in blended.iter_mut().zip(r0).zip(r1) {
            *v = f32::from(a) + (f32::from(b) - f32::from(a)) * fy;
        }
        let row = y * iw;
        let (bs, gs, rs) = (
            &mut b_plane[row..row + ow],
            &mut g_plane[row..row + ow],
            &mut r_plane[row..row + ow],
        );
        for (x, &(x0, x1, fx)) in xs.iter().enumerate() {
            let (p, q) = (&blended[x0 * 3..x0 * 3 + 3], &blended[x1 * 3..x1 * 3 + 3]);
            // RGB source → BGR planes.
            rs[x] = p[0] + (q[0] - p[0]) * fx;
            gs[x] = p[1] + (q[1] - p[1]) * fx;
            bs[x] = p[2] + (q[2] - p[2]) * fx;
        }
    }
    Letterbox {
        data,
        scale,
        width: iw,
        height: ih,
    }
}

/// The raw outputs of one stride: `cls`, `obj` (N), `bbox` (N×4), `kps` (N×10), N = (width/s)·(height/s).
pub struct StrideOutput<'a> {
    pub stride: usize,
    pub cls: &'a [f32],
    pub obj: &'a [f32],
    pub bbox: &'a [f32],
    pub kps: &'a [f32],
}

/// Decodes the strides into detections above `threshold`, in original pixels, after NMS; best first.
pub fn decode(
    outputs: &[StrideOutput<'_>],
    input: (usize, usize),
    scale: f32,
    threshold: f32,
    nms_iou: f32,
) -> Vec<Detection> {
    let mut found = Vec::new();
    for out in outputs {
        let s = out.stride as f32;
        let cols = input.0 / out.stride;
        let n = cols * (input.1 / out.stride);
        if out.cls.len() < n
            || out.obj.len() < n
            || out.bbox.len() < n * 4
            || out.kps.len() < n * 10
        {
            continue;
        }
        for i in 0..n {
            let score = (out.cls[i].clamp(0.0, 1.0) * out.obj[i].clamp(0.0, 1.0)).sqrt();
            if score < threshold {
                continue;
            }
            let (col, row) = ((i % cols) as f32, (i / cols) as f32);
            let b = &out.bbox[i * 4..i * 4 + 4];
            let cx = (col + b[0]) * s;
            let cy = (row + b[1]) * s;
            let bw = b[2].min(10.0).exp() * s;
            let bh = b[3].min(10.0).exp() * s;
            let k = &out.kps[i * 10..i * 10 + 10];
            let mut landmarks = [[0f32; 2]; 5];
            for (j, lm) in landmarks.iter_mut().enumerate() {
                *lm = [
                    (col + k[2 * j]) * s / scale,
                    (row + k[2 * j + 1]) * s / scale,
                ];
            }
            found.push(Detection {
                bbox: [
                    (cx - bw / 2.0) / scale,
                    (cy - bh / 2.0) / scale,
                    bw / scale,
                    bh / scale,
                ],
                landmarks,
                score,
            });
        }
    }
    nms(found, nms_iou)
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let x1 = a[0].max(b[0]);
    let y1 = a[1].max(b[1]);
    let x2 = (a[0] + a[2]).min(b[0] + b[2]);
    let y2 = (a[1] + a[3]).min(b[1] + b[3]);
    let inter = (x2 - x1).max(0.0) * (y2 - y1).max(0.0);
    let union = a[2] * a[3] + b[2] * b[3] - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

fn nms(mut dets: Vec<Detection>, max_iou: f32) -> Vec<Detection> {
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Detection> = Vec::new();
    for d in dets {
        if kept.iter().all(|k| iou(&k.bbox, &d.bbox) <= max_iou) {
            kept.push(d);
        }
        if kept.len() >= 50 {
            break;
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letterbox_keeps_aspect_and_pads_right_bottom() {
        let img = RgbImage::from_pixel(320, 150, image::Rgb([10, 20, 30]));
        let lb = letterbox_sized(&img, 256, 640);
        assert_eq!((lb.scale, lb.width, lb.height), (1.0, 320, 160));
        let plane = lb.width * lb.height;
        assert_eq!(lb.data.len(), 3 * plane);
        // Inside: BGR order.
        assert_eq!(lb.data[0], 30.0);
        assert_eq!(lb.data[plane], 20.0);
        assert_eq!(lb.data[2 * plane], 10.0);
        // Below row 150: padding.
        assert_eq!(lb.data[155 * lb.width + 10], 0.0);
        assert_eq!(lb.data[149 * lb.width + 10], 30.0);
    }

    #[test]
    fn input_is_sized_to_the_photo_in_multiples_of_32() {
        // The defaults: longer side 640, the other one rounded up to a multiple of 32.
        assert_eq!(input_size(300, 400, MIN_SIDE, MAX_SIDE), (1.6, 480, 640));
        assert_eq!(input_size(600, 800, MIN_SIDE, MAX_SIDE), (0.8, 480, 640));
        assert_eq!(input_size(250, 250, MIN_SIDE, MAX_SIDE), (2.56, 640, 640));
        assert_eq!(input_size(640, 455, MIN_SIDE, MAX_SIDE), (1.0, 640, 480));
        // With a lower minimum: native size, rounded up; small ones scaled up to the minimum.
        assert_eq!(input_size(300, 400, 256, 640), (1.0, 320, 416));
        assert_eq!(input_size(250, 250, 256, 640), (1.024, 256, 256));
        assert_eq!(input_size(128, 64, 256, 640), (2.0, 256, 128));
        // A 12-megapixel selfie: scaled down to the cap, aspect kept.
        let (s, w, h) = input_size(4000, 3000, 256, 640);
        assert!(
            (s - 0.16).abs() < 1e-6 && (w, h) == (640, 480),
            "{s} {w} {h}"
        );
        // The cap itself, and a degenerate strip.
        assert_eq!(input_size(640, 640, 256, 640), (1.0, 640, 640));
        assert_eq!(input_size(5000, 1, 256, 640).1, 640);
        assert_eq!(input_size(5000, 1, 256, 640).2, 32);
    }

    #[test]
    fn letterbox_scales_down_large_photos_into_the_cap() {
        let img = RgbImage::from_pixel(1280, 960, image::Rgb([200, 100, 50]));
        let lb = letterbox_sized(&img, 256, 640);
        assert_eq!((lb.scale, lb.width, lb.height), (0.5, 640, 480));
        assert!(lb.data.iter().take(640 * 480).all(|&v| v == 50.0));
    }

    #[test]
    fn decode_maps_anchor_back_and_nms_merges() {
        let cols = 640 / 32;
        let n = cols * cols;
        let mut cls = vec![0.0; n];
        let mut obj = vec![0.0; n];
        let mut bbox = vec![0.0; n * 4];
        let kps = vec![0.0; n * 10];
        // Two overlapping candidates at (col 2, row 3) and (col 3, row 3), box 64×64 px.
        for (i, score) in [(3 * cols + 2, 0.9f32), (3 * cols + 3, 0.8)] {
            cls[i] = score;
            obj[i] = score;
            bbox[i * 4 + 2] = 2f32.ln() * 2.0; // exp = 4 → ×32 = 128 px
            bbox[i * 4 + 3] = 2f32.ln() * 2.0;
        }
        let out = StrideOutput {
            stride: 32,
            cls: &cls,
            obj: &obj,
            bbox: &bbox,
            kps: &kps,
        };
        let dets = decode(&[out], (640, 640), 2.0, 0.5, 0.3);
        assert_eq!(dets.len(), 1);
        let d = dets[0];
        assert!((d.score - 0.9).abs() < 1e-6);
        // Centre (64, 96) in input pixels → (32, 48) in the original; width 128 → 64.
        assert!((d.bbox[0] - 0.0).abs() < 1e-3 && (d.bbox[2] - 64.0).abs() < 1e-3);
        assert!((d.bbox[1] - 16.0).abs() < 1e-3);
        assert_eq!(d.landmarks[0], [32.0, 48.0]);
    }
}
