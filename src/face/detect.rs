//! YuNet pre- and post-processing: letterbox into the 640×640 BGR input, decode the three strides'
//! outputs into boxes + 5 landmarks, non-maximum suppression. The ONNX call itself is in `models`.

use image::RgbImage;

/// YuNet's fixed input side.
pub const INPUT: usize = 640;
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

/// The letterboxed input tensor (1×3×640×640, BGR, 0..255) and the scale that maps back.
pub struct Letterbox {
    pub data: Vec<f32>,
    pub scale: f32,
}

/// Resizes the image to fit 640×640 (padding right/bottom with zeros) by bilinear sampling, straight into
/// planar BGR floats: one pass, no intermediate image.
pub fn letterbox(img: &RgbImage) -> Letterbox {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let plane = INPUT * INPUT;
    let mut data = vec![0f32; 3 * plane];
    if w == 0 || h == 0 {
        return Letterbox { data, scale: 1.0 };
    }
    let scale = (INPUT as f32 / w as f32).min(INPUT as f32 / h as f32);
    let ow = ((w as f32 * scale).round() as usize).clamp(1, INPUT);
    let oh = ((h as f32 * scale).round() as usize).clamp(1, INPUT);
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
    // sample that blended row horizontally (ow pixels). Half the arithmetic of blending four source
    // pixels per output pixel when upscaling, which is the common case (selfies are small here).
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
        let row = y * INPUT;
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
    Letterbox { data, scale }
}

/// The raw outputs of one stride: `cls`, `obj` (N), `bbox` (N×4), `kps` (N×10), N = (640/s)².
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
    scale: f32,
    threshold: f32,
    nms_iou: f32,
) -> Vec<Detection> {
    let mut found = Vec::new();
    for out in outputs {
        let s = out.stride as f32;
        let cols = INPUT / out.stride;
        let n = cols * cols;
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
        let img = RgbImage::from_pixel(320, 160, image::Rgb([10, 20, 30]));
        let lb = letterbox(&img);
        assert_eq!(lb.scale, 2.0);
        let plane = INPUT * INPUT;
        // Inside: BGR order.
        assert_eq!(lb.data[0], 30.0);
        assert_eq!(lb.data[plane], 20.0);
        assert_eq!(lb.data[2 * plane], 10.0);
        // Below row 320: padding.
        assert_eq!(lb.data[400 * INPUT + 10], 0.0);
    }

    #[test]
    fn decode_maps_anchor_back_and_nms_merges() {
        let cols = INPUT / 32;
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
        let dets = decode(&[out], 2.0, 0.5, 0.3);
        assert_eq!(dets.len(), 1);
        let d = dets[0];
        assert!((d.score - 0.9).abs() < 1e-6);
        // Centre (64, 96) in input pixels → (32, 48) in the original; width 128 → 64.
        assert!((d.bbox[0] - 0.0).abs() < 1e-3 && (d.bbox[2] - 64.0).abs() < 1e-3);
        assert!((d.bbox[1] - 16.0).abs() < 1e-3);
        assert_eq!(d.landmarks[0], [32.0, 48.0]);
    }
}
