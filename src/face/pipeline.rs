//! The per-image pipeline one worker runs for one job: decode (with limits) → detect → select the
//! face and measure quality → align → embed into a template. Also the checks made before a job is
//! queued (format, the JPEG 2000 gate), and [`Bench`], the pipeline without the pool for benchmarks.

use super::align::{self, TEMPLATE};
use super::config::FaceConfig;
use super::decode::{self, DecodeError, DecodeLimits, Sniffed};
use super::jp2gate::{self, GateLimits};
use super::mask::MaskCrop;
use super::models::{self, absolute, FaceInitError, Manifest, ModelPaths, Models};
use super::quality::{self, Metrics};
use super::template::{self, Template, PREPROCESSING_VERSION};
use super::{FaceAnalysis, FaceError, FaceGeometry, ImageKind, Timings};
use image::RgbImage;
use std::time::Instant;

/// The JPEG 2000 gate with the configured chip-photo bounds; its refusal is `Undecodable` (`TooLarge` for
/// the dimensions rule) with a detail naming the rule.
pub(super) fn check_chip_photo(
    cfg: &FaceConfig,
    image: &[u8],
) -> Result<jp2gate::Jp2Header, FaceError> {
    jp2gate::check(image, &GateLimits::chip_photo(cfg.chip_photo_max_side_px))
        .map_err(|e| decode_error(DecodeError::Refused(e)))
}

fn decode_limits(cfg: &FaceConfig, kind: ImageKind) -> DecodeLimits {
    match kind {
        ImageKind::Selfie => DecodeLimits::new(cfg.selfie_max_pixels),
        ImageKind::ChipPhoto => DecodeLimits {
            max_pixels: cfg.chip_photo_max_pixels,
            jp2: GateLimits::chip_photo(cfg.chip_photo_max_side_px),
        },
    }
}

/// Which formats each kind accepts: selfies are camera images, the chip photo is JPEG 2000.
pub fn accepted_format(image: &[u8], kind: ImageKind) -> Result<Sniffed, FaceError> {
    let sniffed = decode::sniff(image);
    match (kind, sniffed) {
        (ImageKind::Selfie, Some(f @ (Sniffed::Jpeg | Sniffed::Png | Sniffed::WebP))) => Ok(f),
        (ImageKind::ChipPhoto, Some(f @ (Sniffed::Jp2 | Sniffed::J2k))) => Ok(f),
        (ImageKind::Selfie, _) => Err(FaceError::UnsupportedMediaType {
            detail: "a selfie must be JPEG, PNG or WebP".into(),
        }),
        (ImageKind::ChipPhoto, _) => Err(FaceError::UnsupportedMediaType {
            detail: "the chip photo must be JPEG 2000 (JP2 or J2K)".into(),
        }),
    }
}

fn decode_error(e: DecodeError) -> FaceError {
    match e {
        DecodeError::Unsupported(detail) => FaceError::UnsupportedMediaType { detail },
        DecodeError::TooLarge(detail) => FaceError::TooLarge { detail },
        DecodeError::Undecodable(detail) => FaceError::Undecodable { detail },
        DecodeError::Truncated(detail) => FaceError::Undecodable {
            detail: format!("truncated: {detail}"),
        },
        DecodeError::Refused(e) if e.rule == jp2gate::GateRule::Dimensions => FaceError::TooLarge {
            detail: e.to_string(),
        },
        DecodeError::Refused(e) => FaceError::Undecodable {
            detail: e.to_string(),
        },
    }
}

/// The sessions one job runs on.
pub(super) enum Sessions<'a> {
    /// Every stage in turn on one set.
    One(&'a mut Models),
    /// The job is alone in the pool: detection and the recogniser on `wide` (several intra-op threads),
    /// and the mask classifier on `narrow`'s one-thread session, on a thread of its own while the
    /// recogniser runs. The recogniser's threads leave gaps between operators that the classifier fills
    /// (measured: a 600×800 selfie job 29.7 ms against 33.4 ms with the classifier on `wide` after the
    /// recogniser; docs/performance.md). Same sessions' outputs, so the same results.
    Idle {
        wide: &'a mut Models,
        narrow: &'a mut Models,
    },
}

/// Decodes and analyses one image (runs on a worker thread).
pub(super) fn run_pipeline(
    models: Sessions<'_>,
    cfg: &FaceConfig,
    bytes: &[u8],
    kind: ImageKind,
    model_id: &str,
    model_hash: &str,
) -> Result<FaceAnalysis, FaceError> {
    let t0 = Instant::now();
    let format = accepted_format(bytes, kind)?;
    // A large JPEG selfie is decoded no larger than twice what the detector needs (jpeg_reduced).
    let reduce_for = (kind == ImageKind::Selfie).then_some(super::detect::MAX_SIDE as u32);
    let decoded = decode::decode_photo(bytes, format, &decode_limits(cfg, kind), reduce_for)
        .map_err(decode_error)?;
    let mut timings = Timings {
        decode: t0.elapsed(),
        ..Timings::default()
    };
    analyze_decoded(
        models,
        cfg,
        &decoded,
        kind,
        model_id,
        model_hash,
        &mut timings,
    )
}

/// Longest side of a review evidence photo (issue 22): enough for a person to compare two faces.
pub const DISPLAY_MAX_SIDE: u32 = 640;

/// An image the pipeline accepted, decoded the way the pipeline decodes it (same formats, limits and
/// JPEG 2000 gate) and re-encoded as a browser-displayable JPEG whose longest side is at most
/// [`DISPLAY_MAX_SIDE`]: the review evidence keeps this, never the client's bytes. CPU work: call it
/// off the async executor.
pub fn display_jpeg(cfg: &FaceConfig, bytes: &[u8], kind: ImageKind) -> Result<Vec<u8>, FaceError> {
    let format = accepted_format(bytes, kind)?;
    let decoded = decode::decode_photo(
        bytes,
        format,
        &decode_limits(cfg, kind),
        Some(DISPLAY_MAX_SIDE),
    )
    .map_err(decode_error)?;
    let image = decoded.image;
    let (w, h) = image.dimensions();
    let longest = w.max(h);
    let image = if longest > DISPLAY_MAX_SIDE {
        let scale = f64::from(DISPLAY_MAX_SIDE) / f64::from(longest);
        let nw = ((f64::from(w) * scale).round() as u32).max(1);
        let nh = ((f64::from(h) * scale).round() as u32).max(1);
        image::imageops::resize(&image, nw, nh, image::imageops::FilterType::Triangle)
    } else {
        image
    };
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&image)
        .map_err(|e| {
            tracing::error!(error = %e, "evidence: JPEG encoding failed");
            FaceError::Internal
        })?;
    Ok(out)
}

/// The pipeline after decoding: detect, select, measure, align, embed.
pub(super) fn analyze_decoded(
    mut models: Sessions<'_>,
    cfg: &FaceConfig,
    photo: &decode::Decoded,
    kind: ImageKind,
    model_id: &str,
    model_hash: &str,
    timings: &mut Timings,
) -> Result<FaceAnalysis, FaceError> {
    // Detection, light and alignment work in the decoded pixels; every size checked or reported is
    // the original's (`px_scale` is 1 unless a large JPEG was decoded reduced).
    let img = &photo.image;
    let t = Instant::now();
    let lb = super::detect::letterbox(img);
    timings.preprocess += t.elapsed();
    let t = Instant::now();
    let detector = match &mut models {
        Sessions::One(m) => &mut **m,
        Sessions::Idle { wide, .. } => &mut **wide,
    };
    let dets = detector
        .detect_letterboxed(&lb, cfg.detection_threshold, cfg.nms_iou)
        .map_err(internal)?;
    timings.detect += t.elapsed();
    let rules = match kind {
        ImageKind::Selfie => &cfg.selfie,
        ImageKind::ChipPhoto => &cfg.chip_photo,
    };
    let t = Instant::now();
    // The main face is the largest; a second one of comparable size makes the image ambiguous.
    let mut by_size: Vec<_> = dets.iter().collect();
    by_size.sort_by(|a, b| (b.bbox[2] * b.bbox[3]).total_cmp(&(a.bbox[2] * a.bbox[3])));
    let Some(&face) = by_size.first().copied() else {
        timings.postprocess += t.elapsed();
        return Ok(FaceAnalysis {
            quality: quality::no_face_report(kind),
            template: None,
            face: None,
            timings: *timings,
        });
    };
    let second_face_ratio = by_size
        .get(1)
        .map_or(0.0, |s| s.bbox[2] / face.bbox[2].max(1e-3));
    // In the original's pixels, for the rules and the report.
    let original = face.scaled(photo.px_scale);
    timings.postprocess += t.elapsed();
    // Never the chip photo: it is the card's, nobody can retake it.
    let mask_plan = (kind == ImageKind::Selfie).then_some(MaskPlan {
        crop: cfg.mask_crop,
        blend: cfg.mask_blend,
        second_from: cfg.mask_second_from,
    });
    // The measurements and the alignment run beside the mask check (on an idle pool), then SFace.
    let (mask, (measured, mut vector)) = with_mask_beside(
        models,
        img,
        &face,
        mask_plan,
        timings,
        |recognizer, timings| {
            let t = Instant::now();
            let pose = quality::estimate_pose(&face.landmarks);
            let [le, re, ..] = original.landmarks;
            let inter_eye_px = ((re[0] - le[0]).powi(2) + (re[1] - le[1]).powi(2)).sqrt();
            let (brightness, glare) = quality::box_light(img, &face.bbox);
            let m = align::estimate(&face.landmarks, &TEMPLATE).ok_or(FaceError::Internal)?;
            let aligned = align::warp(img, &m).ok_or(FaceError::Internal)?;
            let sharpness = quality::sharpness(&aligned);
            timings.postprocess += t.elapsed();
            let t = Instant::now();
            let vector = recognizer.embed(&aligned).map_err(internal)?;
            timings.embed += t.elapsed();
            Ok(((pose, inter_eye_px, brightness, glare, sharpness), vector))
        },
    )?;
    let (pose, inter_eye_px, brightness, glare, sharpness) = measured;
    let t = Instant::now();
    let metrics = Metrics {
        faces: dets.len(),
        second_face_ratio,
        face: original,
        pose,
        inter_eye_px,
        brightness,
        glare,
        sharpness,
        mask,
    };
    let report = quality::evaluate(&metrics, rules, kind);
    timings.postprocess += t.elapsed();
    template::l2_normalise(&mut vector);
    Ok(FaceAnalysis {
        quality: report,
        template: Some(Template {
            model_id: model_id.to_string(),
            model_hash: model_hash.to_string(),
            preprocessing_version: PREPROCESSING_VERSION,
            vector,
        }),
        face: Some(FaceGeometry {
            bbox: original.bbox,
            landmarks: original.landmarks,
            detection_score: face.score,
            yaw_deg: pose.yaw_deg,
            pitch_deg: pose.pitch_deg,
            roll_deg: pose.roll_deg,
        }),
        timings: *timings,
    })
}

/// p(mask) of the chosen face (when a crop is given: selfies), and what `main` computes with the
/// recogniser's sessions (the measurements, the alignment and the embedding). On an idle pool
/// ([`Sessions::Idle`]) the mask check runs on a thread of its own, started before `main`, so it
/// overlaps the single-threaded measurements as well as SFace; otherwise one after the other.
fn with_mask_beside<T: Send>(
    models: Sessions<'_>,
    img: &RgbImage,
    face: &super::detect::Detection,
    mask_plan: Option<MaskPlan>,
    timings: &mut Timings,
    main: impl FnOnce(&mut Models, &mut Timings) -> Result<T, FaceError>,
) -> Result<(Option<f32>, T), FaceError> {
    let (recognizer, classifier) = match models {
        Sessions::One(m) => {
            let mask = match mask_plan {
                Some(plan) => Some(mask_probability(m, img, face, plan, timings)?),
                None => None,
            };
            return Ok((mask, main(m, timings)?));
        }
        Sessions::Idle { wide, narrow } => (wide, narrow),
    };
    let Some(plan) = mask_plan else {
        return Ok((None, main(recognizer, timings)?));
    };
    let mut mask_timings = Timings::default();
    let (mask, out) = std::thread::scope(|s| {
        let side = std::thread::Builder::new()
            .name("face-mask".into())
            .spawn_scoped(s, || {
                mask_probability(classifier, img, face, plan, &mut mask_timings)
            });
        let out = main(recognizer, timings);
        let mask = match side {
            // A panic in the classifier goes on to the worker's catch_unwind, as it would inline.
            Ok(handle) => handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(e) => {
                tracing::error!(error = %e, "face engine: no thread for the mask check");
                Err(FaceError::Internal)
            }
        };
        (mask, out)
    });
    timings.mask += mask_timings.mask;
    Ok((Some(mask?), out?))
}

/// How a selfie's mask check runs (`[face]`: `mask_crop`, `mask_blend`, `mask_second_from`).
#[derive(Debug, Clone, Copy)]
struct MaskPlan {
    crop: MaskCrop,
    blend: f32,
    second_from: f32,
}

/// p(mask) of the chosen face, on the configured crop of the decoded photo: the first classifier's,
/// blended with the second's when the first is above `second_from` ([`super::mask::asks_second`]).
fn mask_probability(
    models: &mut Models,
    img: &RgbImage,
    face: &super::detect::Detection,
    plan: MaskPlan,
    timings: &mut Timings,
) -> Result<f32, FaceError> {
    let ask = |first: f32| super::mask::asks_second(first, plan.blend, plan.second_from);
    Ok(mask_scores(models, img, face, plan.crop, ask, timings)?.blended(plan.blend))
}

/// Both classifiers' p(mask) on one crop; the second only when `ask_second(first's p)`.
fn mask_scores(
    models: &mut Models,
    img: &RgbImage,
    face: &super::detect::Detection,
    crop: MaskCrop,
    ask_second: impl Fn(f32) -> bool,
    timings: &mut Timings,
) -> Result<super::mask::MaskScores, FaceError> {
    let t = Instant::now();
    let input = crop
        .input(img, &face.bbox, &face.landmarks)
        .ok_or(FaceError::Internal)?;
    let first = models.mask(&input).map_err(internal)?;
    let second = if ask_second(first) {
        let input = crop
            .second_input(img, &face.bbox, &face.landmarks)
            .ok_or(FaceError::Internal)?;
        Some(models.mask_second(&input).map_err(internal)?)
    } else {
        None
    };
    timings.mask += t.elapsed();
    Ok(super::mask::MaskScores { first, second })
}

fn internal(e: ort::Error) -> FaceError {
    tracing::error!(error = %e, "face inference failed");
    FaceError::Internal
}

/// Direct, single-threaded access to the pipeline without the pool: for benchmarks that time the stages.
pub struct Bench {
    models: Models,
    cfg: FaceConfig,
    manifest: Manifest,
}

impl Bench {
    pub fn new(cfg: &FaceConfig) -> Result<Bench, FaceInitError> {
        let manifest = models::manifest()?;
        let paths = ModelPaths::verified(&cfg.models_dir, &manifest)?;
        let env = models::environment(&absolute(cfg.effective_ort_library()))?;
        Ok(Bench {
            models: Models::load(&env, &paths, 1)?,
            cfg: cfg.clone(),
            manifest,
        })
    }

    /// Decode only.
    pub fn decode(&self, bytes: &[u8], kind: ImageKind) -> Result<RgbImage, FaceError> {
        let f = accepted_format(bytes, kind)?;
        decode::decode_raster(bytes, f, &decode_limits(&self.cfg, kind)).map_err(decode_error)
    }

    /// Letterbox + YuNet + decoding of its outputs.
    pub fn detect(&mut self, img: &RgbImage) -> Result<Vec<super::detect::Detection>, FaceError> {
        self.models
            .detect(img, self.cfg.detection_threshold, self.cfg.nms_iou)
            .map_err(internal)
    }

    /// SFace alone on an aligned crop of the given face.
    pub fn embed(
        &mut self,
        img: &RgbImage,
        face: &super::detect::Detection,
    ) -> Result<Vec<f32>, FaceError> {
        let m = align::estimate(&face.landmarks, &TEMPLATE).ok_or(FaceError::Internal)?;
        let aligned = align::warp(img, &m).ok_or(FaceError::Internal)?;
        self.models.embed(&aligned).map_err(internal)
    }

    /// The largest face of a decoded photo and both classifiers' p(mask) on each crop (for `face
    /// mask-eval --crops`); `None` when no face is found.
    pub fn mask_by_crop(
        &mut self,
        img: &RgbImage,
        crops: &[MaskCrop],
    ) -> Result<Option<(super::detect::Detection, Vec<super::mask::MaskScores>)>, FaceError> {
        let dets = self.detect(img)?;
        let Some(face) = dets
            .iter()
            .max_by(|a, b| (a.bbox[2] * a.bbox[3]).total_cmp(&(b.bbox[2] * b.bbox[3])))
        else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(crops.len());
        for &crop in crops {
            let mut t = Timings::default();
            out.push(mask_scores(
                &mut self.models,
                img,
                face,
                crop,
                |_| true,
                &mut t,
            )?);
        }
        Ok(Some((*face, out)))
    }

    /// The whole selfie pipeline, bytes to template, with stage timings.
    pub fn pipeline(&mut self, bytes: &[u8], kind: ImageKind) -> Result<FaceAnalysis, FaceError> {
        run_pipeline(
            Sessions::One(&mut self.models),
            &self.cfg,
            bytes,
            kind,
            &self.manifest.recognizer.id,
            self.manifest.recognizer.template_hash(),
        )
    }
}
