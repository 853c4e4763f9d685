//! `[face]` configuration: where the models are, the pool's size and limits, and every quality threshold.

use serde::Deserialize;
use std::path::PathBuf;

/// Configuration of the face engine (`[face]` in the config). Defaults are documented in `config/default.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct FaceConfig {
    /// Folder holding the two `.onnx` files named in `models/manifest.toml`.
    pub models_dir: PathBuf,
    /// The ONNX Runtime shared library; the `ORT_DYLIB_PATH` environment variable overrides it.
    pub ort_library: PathBuf,
    /// Inference worker threads; 0 = number of CPU cores.
    pub workers: usize,
    /// Intra-op threads of each worker's second set of sessions, used for a job only when it is the
    /// only one in the pool (no other worker busy, nothing queued); 1 = no second set (every job on
    /// one thread). Default 2: one request alone uses two cores.
    pub idle_intra_threads: usize,
    /// Jobs that may wait for a worker; beyond that `analyze` answers `Overloaded` at once.
    pub queue_capacity: usize,
    /// A job not finished this long after it was queued fails with `DeadlineExceeded`.
    pub job_deadline_ms: u64,
    pub selfie_max_bytes: usize,
    /// Largest selfie in decoded pixels (width × height), checked from the header before decoding.
    pub selfie_max_pixels: u64,
    pub chip_photo_max_bytes: usize,
    pub chip_photo_max_pixels: u64,
    /// Largest chip-photo width or height, checked by the JPEG 2000 gate before the decoder runs.
    pub chip_photo_max_side_px: u32,
    /// Largest fraction of `queue_capacity` one tenant may hold (queued or running) through
    /// `analyze_for`; past it that tenant gets `TenantQueueFull`.
    pub tenant_queue_share: f64,
    /// TEST ONLY: hex bytes; an image starting with them makes its worker panic. Must be unset in production.
    pub test_panic_marker: Option<String>,
    /// TEST ONLY: hex bytes; an image starting with them stalls its worker until the job is abandoned.
    /// Must be unset in production.
    pub test_stall_marker: Option<String>,
    /// Detector candidates below this score are discarded before NMS.
    pub detection_threshold: f32,
    /// IoU above which overlapping detections are merged.
    pub nms_iou: f32,
    /// Target false match rate for enrollment decisions (selfie vs chip photo).
    pub enrollment_target_fmr: f64,
    /// Target false match rate for transaction-time re-verification.
    pub transaction_target_fmr: f64,
    /// Quality rules for selfies.
    pub selfie: QualityRules,
    /// Quality rules for the IC-chip photo (small, greyscale, posed: looser).
    pub chip_photo: QualityRules,
    /// The crop of the selfie the mask classifiers read (measured: docs/accuracy.md, "Mask check").
    pub mask_crop: super::mask::MaskCrop,
    /// The second mask classifier's share of the blended p(mask), in log-odds (0 = the first alone,
    /// and the second is not run; 1 = the second alone): `face::mask::blend`.
    pub mask_blend: f32,
    /// The second mask classifier is asked only when the first one's p(mask) is above this (below it
    /// the face reads as bare and the blend is the first's p); -1 asks it every time.
    pub mask_second_from: f32,
}

/// Thresholds of the quality checks; each failing check yields one failure code.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct QualityRules {
    /// A second face at least this fraction of the main face's width makes the image ambiguous.
    pub multiple_faces_min_ratio: f32,
    /// Smallest distance between the eye centres, in original pixels.
    pub min_inter_eye_px: f32,
    /// Mean luminance of the face box, 0..1.
    pub min_brightness: f32,
    pub max_brightness: f32,
    /// Sharpness = v / (v + 100), v = variance of the Laplacian of the aligned 112×112 grey crop.
    pub min_sharpness: f32,
    pub max_yaw_deg: f32,
    pub max_pitch_deg: f32,
    pub max_roll_deg: f32,
    /// Largest share of saturated pixels (all channels ≥ 250) in the face box.
    pub max_glare: f32,
    /// Smallest detector score for the chosen face.
    pub min_detection_score: f32,
    /// `mask`: largest p(mask) of the mask classifier (selfies only; the chip photo is never checked)
    /// for a face whose detector score is at least `mask_score_pivot`.
    pub max_mask: f32,
    /// Below this detector score the mask threshold is lowered (`face::mask::MaskRule`).
    pub mask_score_pivot: f32,
    /// How much: log-odds of the threshold taken off per unit of score below the pivot (0 = a plain
    /// threshold on p(mask)).
    pub mask_score_weight: f32,
}

impl Default for FaceConfig {
    fn default() -> Self {
        Self {
            models_dir: PathBuf::from("models"),
            ort_library: PathBuf::from("models/libonnxruntime.so.1.31.1"),
            workers: 0,
            idle_intra_threads: 2,
            queue_capacity: 64,
            job_deadline_ms: 10_000,
            selfie_max_bytes: 8 * 1024 * 1024,
            selfie_max_pixels: 40_000_000,
            chip_photo_max_bytes: 64 * 1024,
            chip_photo_max_pixels: 4_000_000,
            chip_photo_max_side_px: 1024,
            tenant_queue_share: 0.5,
            test_panic_marker: None,
            test_stall_marker: None,
            detection_threshold: 0.5,
            nms_iou: 0.3,
            enrollment_target_fmr: 1e-4,
            transaction_target_fmr: 1e-5,
            selfie: QualityRules::default(),
            chip_photo: QualityRules::chip_photo(),
            mask_crop: super::mask::MaskCrop::Box,
            mask_blend: DEFAULT_MASK_BLEND,
            mask_second_from: DEFAULT_MASK_SECOND_FROM,
        }
    }
}

/// The selfie's mask threshold on the blended p(mask), chosen on half of the measured photos in
/// docs/accuracy.md ("Mask check: two classifiers").
pub const DEFAULT_MAX_MASK: f32 = 0.9;
/// The detector score below which the mask threshold is lowered, and by how much (same table).
pub const DEFAULT_MASK_SCORE_PIVOT: f32 = 0.9;
pub const DEFAULT_MASK_SCORE_WEIGHT: f32 = 30.0;
/// The second mask classifier's share of the blend (same table).
pub const DEFAULT_MASK_BLEND: f32 = 0.4;
/// Below this p(mask) of the first classifier the second is not asked (same section).
pub const DEFAULT_MASK_SECOND_FROM: f32 = 0.05;

impl Default for QualityRules {
    fn default() -> Self {
        Self {
            multiple_faces_min_ratio: 0.5,
            min_inter_eye_px: 30.0,
            min_brightness: 0.2,
            max_brightness: 0.85,
            min_sharpness: 0.25,
            max_yaw_deg: 30.0,
            max_pitch_deg: 25.0,
            max_roll_deg: 25.0,
            max_glare: 0.05,
            min_detection_score: 0.7,
            max_mask: DEFAULT_MAX_MASK,
            mask_score_pivot: DEFAULT_MASK_SCORE_PIVOT,
            mask_score_weight: DEFAULT_MASK_SCORE_WEIGHT,
        }
    }
}

impl QualityRules {
    /// Looser defaults for the chip photo: it is small and fixed, and the person cannot retake it.
    pub fn chip_photo() -> Self {
        Self {
            multiple_faces_min_ratio: 0.5,
            min_inter_eye_px: 15.0,
            min_brightness: 0.1,
            max_brightness: 0.95,
            min_sharpness: 0.1,
            max_yaw_deg: 40.0,
            max_pitch_deg: 35.0,
            max_roll_deg: 35.0,
            max_glare: 0.2,
            min_detection_score: 0.5,
            // Never: the chip photo is not run through the mask classifier at all.
            max_mask: 1.0,
            mask_score_pivot: DEFAULT_MASK_SCORE_PIVOT,
            mask_score_weight: 0.0,
        }
    }
}

impl FaceConfig {
    /// Worker count with 0 resolved to the number of cores.
    pub fn effective_workers(&self) -> usize {
        if self.workers == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            self.workers
        }
    }

    /// The ONNX Runtime library path after the `ORT_DYLIB_PATH` override.
    pub fn effective_ort_library(&self) -> PathBuf {
        match std::env::var_os("ORT_DYLIB_PATH") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => self.ort_library.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_defaults_equal_the_code_defaults() {
        let s = crate::config::Settings::from_toml_overrides("").expect("defaults load");
        assert_eq!(s.face, FaceConfig::default());
    }

    #[test]
    fn keys_override_one_by_one() {
        let s = crate::config::Settings::from_toml_overrides(
            "[face]\nworkers = 3\n[face.selfie]\nmin_inter_eye_px = 50.0\n",
        )
        .expect("loads");
        assert_eq!(s.face.workers, 3);
        assert_eq!(s.face.effective_workers(), 3);
        assert_eq!(s.face.selfie.min_inter_eye_px, 50.0);
        assert_eq!(s.face.selfie.max_glare, QualityRules::default().max_glare);
        assert_eq!(s.face.chip_photo, QualityRules::chip_photo());
    }
}
