//! The face engine (issue 5): decoding with limits, YuNet detection and SFace embedding on ONNX Runtime
//! in a bounded worker pool, quality checks with stable failure codes, templates, and score thresholds
//! at a target false match rate from a committed calibration table. Knows nothing of HTTP or SQL.
//!
//! See docs/face.md for the pipeline, the metrics and thresholds, and the operator CLI.

pub mod align;
pub mod calibration;
pub mod calibration_1n;
pub mod config;
pub mod decode;
pub mod detect;
pub mod gallery;
pub mod identification;
pub mod jp2gate;
pub mod jpeg_reduced;
pub mod mask;
pub mod mask_mode;
pub mod models;
mod pipeline;
mod pool;
pub mod quality;
pub mod synthetic_mask;
pub mod template;

pub use calibration::{CalibrationTable, Threshold};
pub use config::{FaceConfig, QualityRules};
pub use mask::MaskCrop;
pub use mask_mode::MaskMode;
pub use models::FaceInitError;
pub use pipeline::{accepted_format, display_jpeg, Bench, DISPLAY_MAX_SIDE};
pub use pool::{FaceEngine, PoolStats};
pub use quality::{QualityCheck, QualityFailure, QualityReport, QualityResult};
pub use template::{ModelMismatch, Template, TemplateDecodeError};

use serde::Serialize;
use std::time::Duration;

/// What an image is: a live selfie (JPEG/PNG/WebP, strict quality) or the IC-chip photo (JPEG 2000, looser).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageKind {
    Selfie,
    ChipPhoto,
}

/// Where the chosen face is, in original-image pixels (after EXIF orientation).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FaceGeometry {
    /// x, y, width, height.
    pub bbox: [f32; 4],
    /// Left eye, right eye (as seen in the image), nose tip, left and right mouth corner.
    pub landmarks: [[f32; 2]; 5],
    pub detection_score: f32,
    pub yaw_deg: f32,
    pub pitch_deg: f32,
    pub roll_deg: f32,
}

/// Where a job's time went (on the worker). ONNX Runtime's own time is `detect` + `embed` + `mask`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    pub decode: Duration,
    /// Letterboxing into the detector input.
    pub preprocess: Duration,
    /// YuNet run (plus decoding its outputs and NMS, which are microseconds).
    pub detect: Duration,
    /// Face selection, quality metrics, alignment.
    pub postprocess: Duration,
    /// SFace run.
    pub embed: Duration,
    /// Mask crop and classifier run (selfies only).
    pub mask: Duration,
}

/// The result of analysing one image. `template` and `face` are `None` when no face was found; a template
/// is still computed when other quality checks fail (callers decide on `quality.result`).
#[derive(Debug, Clone)]
pub struct FaceAnalysis {
    pub quality: QualityReport,
    pub template: Option<Template>,
    pub face: Option<FaceGeometry>,
    pub timings: Timings,
}

/// Why an image could not be analysed. HTTP mapping (by the lead): Overloaded → 503 + Retry-After,
/// DeadlineExceeded → 503, NotReady → 503, UnsupportedMediaType → 415, TooLarge → 413, Undecodable → 400
/// or 422 (a truncated image is `Undecodable` with a detail starting "truncated"; a chip photo's errors →
/// 422 invalid_card_data with the detail; the JPEG 2000 gate's refusals arrive as `Undecodable`, or
/// `TooLarge` for the dimensions rule, with a detail naming the rule), TenantQueueFull → 429 rate_limited
/// + Retry-After, WorkerPanicked → 500 internal, Internal → 500.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaceError {
    #[error("the face engine is overloaded; retry after {retry_after_secs} s")]
    Overloaded { retry_after_secs: u64 },
    /// This tenant already holds its share (`face.tenant_queue_share`) of the queue; others are served.
    #[error("this tenant's share of the face queue is full; retry after {retry_after_secs} s")]
    TenantQueueFull { retry_after_secs: u64 },
    #[error("the face analysis did not finish before its deadline")]
    DeadlineExceeded,
    #[error("the face engine is still warming up")]
    NotReady,
    #[error("unsupported media type: {detail}")]
    UnsupportedMediaType { detail: String },
    #[error("image too large: {detail}")]
    TooLarge { detail: String },
    #[error("image cannot be decoded: {detail}")]
    Undecodable { detail: String },
    /// The worker running this job panicked; the job is answered with this, the worker is replaced.
    #[error("the face worker failed on this image")]
    WorkerPanicked,
    #[error("internal error in the face engine")]
    Internal,
}
