//! The engine: a bounded queue feeding N worker threads, each owning its two ONNX Runtime sessions,
//! and the per-image pipeline they run. The async runtime only enqueues and awaits a oneshot reply.

use super::align::{self, TEMPLATE};
use super::calibration::{CalibrationTable, Threshold};
use super::config::FaceConfig;
use super::decode::{self, DecodeError, Sniffed};
use super::models::{self, FaceInitError, Manifest, Models};
use super::quality::{self, Metrics};
use super::template::{self, ModelMismatch, Template, PREPROCESSING_VERSION};
use super::{FaceAnalysis, FaceError, FaceGeometry, ImageKind, Timings};
use bytes::Bytes;
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use image::RgbImage;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

struct Job {
    image: Bytes,
    kind: ImageKind,
    queued: Instant,
    deadline: Instant,
    reply: oneshot::Sender<Result<FaceAnalysis, FaceError>>,
}

struct Inner {
    tx: Sender<Job>,
    cfg: FaceConfig,
    workers: usize,
    ready: AtomicBool,
    warm: AtomicUsize,
    /// Moving average of a job's service time, in microseconds, for Retry-After.
    avg_job_us: AtomicU64,
    model_id: String,
    model_hash: String,
    calibration: CalibrationTable,
}

/// The face engine. Cheap to clone; the workers stop when the last clone is dropped.
#[derive(Clone)]
pub struct FaceEngine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FaceEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaceEngine")
            .field("model", &self.model_label())
            .field("workers", &self.inner.workers)
            .field("ready", &self.is_ready())
            .finish()
    }
}

impl FaceEngine {
    /// Verifies the model files against the manifest, loads ONNX Runtime, starts the workers (each loads
    /// its sessions; this waits for that) and lets them warm up in the background: `is_ready` turns true
    /// when every worker has run both models once.
    pub fn start(cfg: &FaceConfig) -> Result<FaceEngine, FaceInitError> {
        let manifest = models::manifest()?;
        let det_path = cfg.models_dir.join(&manifest.detector.file);
        let rec_path = cfg.models_dir.join(&manifest.recognizer.file);
        models::verify(&det_path, &manifest.detector, "YuNet detector model")?;
        models::verify(&rec_path, &manifest.recognizer, "SFace recognition model")?;
        let lib = absolute(cfg.effective_ort_library());
        // The pinned library is hash-checked too; an operator's ORT_DYLIB_PATH is their own choice.
        if std::env::var_os("ORT_DYLIB_PATH").is_none_or(|v| v.is_empty()) && lib.is_file() {
            models::verify(&lib, &manifest.runtime, "ONNX Runtime library")?;
        }
        let env = models::environment(&lib)?;
        let calibration = CalibrationTable::committed()
            .map_err(|e| FaceInitError::Manifest(format!("config/face-calibration.toml: {e}")))?;

        let workers = cfg.effective_workers().max(1);
        let (tx, rx) = bounded::<Job>(cfg.queue_capacity.max(1));
        let inner = Arc::new(Inner {
            tx,
            cfg: cfg.clone(),
            workers,
            ready: AtomicBool::new(false),
            warm: AtomicUsize::new(0),
            avg_job_us: AtomicU64::new(50_000),
            model_id: manifest.recognizer.id.clone(),
            model_hash: manifest.recognizer.sha256.clone(),
            calibration,
        });
        let (loaded_tx, loaded_rx) = std::sync::mpsc::channel();
        for i in 0..workers {
            let rx = rx.clone();
            let env = env.clone();
            let (det, rec) = (det_path.clone(), rec_path.clone());
            let loaded_tx = loaded_tx.clone();
            // Workers hold a weak handle, so dropping the last FaceEngine closes the queue and ends them.
            let weak = Arc::downgrade(&inner);
            std::thread::Builder::new()
                .name(format!("face-worker-{i}"))
                .spawn(move || match Models::load(&env, &det, &rec) {
                    Ok(mut m) => {
                        let _ = loaded_tx.send(Ok(()));
                        drop(loaded_tx);
                        worker(&mut m, rx, weak);
                    }
                    Err(e) => {
                        let _ = loaded_tx.send(Err(e));
                    }
                })
                .map_err(|e| FaceInitError::Worker(e.to_string()))?;
        }
        drop(loaded_tx);
        for _ in 0..workers {
            match loaded_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    return Err(FaceInitError::Worker(
                        "a worker exited while loading".into(),
                    ))
                }
            }
        }
        tracing::info!(workers, model = %format!("{}@{}", inner.model_id, &inner.model_hash[..12.min(inner.model_hash.len())]), "face engine started");
        Ok(FaceEngine { inner })
    }

    /// True once every worker has warmed up both models.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    /// Blocks (a thread, not the runtime) until ready or the timeout passes; for tools and tests.
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while !self.is_ready() {
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    pub fn config(&self) -> &FaceConfig {
        &self.inner.cfg
    }

    fn precheck(&self, image: &Bytes, kind: ImageKind) -> Result<(), FaceError> {
        let cfg = &self.inner.cfg;
        let max = match kind {
            ImageKind::Selfie => cfg.selfie_max_bytes,
            ImageKind::ChipPhoto => cfg.chip_photo_max_bytes,
        };
        if image.len() > max {
            return Err(FaceError::TooLarge {
                detail: format!("{} bytes exceeds the limit of {max}", image.len()),
            });
        }
        accepted_format(image, kind)?;
        Ok(())
    }

    fn job(
        &self,
        image: Bytes,
        kind: ImageKind,
    ) -> (Job, oneshot::Receiver<Result<FaceAnalysis, FaceError>>) {
        let (reply, rx) = oneshot::channel();
        let now = Instant::now();
        let deadline = now + Duration::from_millis(self.inner.cfg.job_deadline_ms);
        (
            Job {
                image,
                kind,
                queued: now,
                deadline,
                reply,
            },
            rx,
        )
    }

    fn retry_after_secs(&self) -> u64 {
        let backlog_us = self.inner.avg_job_us.load(Ordering::Relaxed)
            * self.inner.tx.capacity().unwrap_or(1) as u64
            / self.inner.workers as u64;
        backlog_us.div_ceil(1_000_000).max(1)
    }

    /// Analyses one image on the pool. A full queue answers `Overloaded` at once; a job that waits or runs
    /// past its deadline answers `DeadlineExceeded`.
    pub async fn analyze(&self, image: Bytes, kind: ImageKind) -> Result<FaceAnalysis, FaceError> {
        if !self.is_ready() {
            return Err(FaceError::NotReady);
        }
        self.precheck(&image, kind)?;
        let (job, rx) = self.job(image, kind);
        let deadline = job.deadline;
        match self.inner.tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                metrics::counter!("face_jobs_total", "outcome" => "overloaded").increment(1);
                return Err(FaceError::Overloaded {
                    retry_after_secs: self.retry_after_secs(),
                });
            }
            Err(TrySendError::Disconnected(_)) => return Err(FaceError::Internal),
        }
        metrics::gauge!("face_queue_depth").set(self.inner.tx.len() as f64);
        let wait = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(FaceError::Internal),
            // Dropping the receiver tells the worker to skip the job if it has not started.
            Err(_) => Err(FaceError::DeadlineExceeded),
        }
    }

    /// Analyses one image from a plain thread, waiting for queue space (back-pressure instead of
    /// `Overloaded`): for the CLI, calibration and benchmarks. Never call it on the async runtime.
    pub fn analyze_blocking(
        &self,
        image: Bytes,
        kind: ImageKind,
    ) -> Result<FaceAnalysis, FaceError> {
        self.precheck(&image, kind)?;
        let (mut job, rx) = self.job(image, kind);
        // Batch tools queue deliberately; their deadline is generous.
        job.deadline = Instant::now() + Duration::from_secs(3600);
        self.inner.tx.send(job).map_err(|_| FaceError::Internal)?;
        rx.blocking_recv().map_err(|_| FaceError::Internal)?
    }

    /// Cosine similarity of two templates of the same model.
    pub fn compare(&self, a: &Template, b: &Template) -> Result<f32, ModelMismatch> {
        a.cosine(b)
    }

    /// The score threshold for a target false match rate, from the committed calibration table.
    pub fn threshold_for_fmr(&self, fmr: f64) -> Threshold {
        self.inner.calibration.threshold_for_fmr(fmr)
    }

    /// `<model id>@<first 12 hex digits of its SHA-256>`.
    pub fn model_label(&self) -> String {
        format!(
            "{}@{}",
            self.inner.model_id,
            &self.inner.model_hash[..12.min(self.inner.model_hash.len())]
        )
    }

    /// Jobs waiting for a worker.
    pub fn queue_depth(&self) -> usize {
        self.inner.tx.len()
    }

    pub fn workers(&self) -> usize {
        self.inner.workers
    }
}

fn absolute(p: PathBuf) -> PathBuf {
    if p.is_absolute() {
        p
    } else {
        std::env::current_dir().map(|d| d.join(&p)).unwrap_or(p)
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

fn worker(models: &mut Models, rx: Receiver<Job>, engine: std::sync::Weak<Inner>) {
    // Warm-up: the first run of a session allocates and plans; do it before taking traffic.
    let Some(inner) = engine.upgrade() else {
        return;
    };
    let blank = RgbImage::from_pixel(64, 64, image::Rgb([128, 128, 128]));
    let _ = models.detect(&blank, 0.5, 0.3);
    let _ = models.embed(&align::AlignedFace {
        rgb_planar: vec![0.0; 3 * 112 * 112],
        grey: vec![0.0; 112 * 112],
    });
    if inner.warm.fetch_add(1, Ordering::AcqRel) + 1 == inner.workers {
        inner.ready.store(true, Ordering::Release);
        tracing::info!("face engine warm");
    }
    let cfg = inner.cfg.clone();
    let (model_id, model_hash) = (inner.model_id.clone(), inner.model_hash.clone());
    drop(inner);
    while let Ok(job) = rx.recv() {
        let started = Instant::now();
        metrics::gauge!("face_queue_depth").set(rx.len() as f64);
        metrics::histogram!("face_queue_wait_seconds")
            .record(started.duration_since(job.queued).as_secs_f64());
        if job.reply.is_closed() {
            continue;
        }
        if started > job.deadline {
            metrics::counter!("face_jobs_total", "outcome" => "deadline").increment(1);
            let _ = job.reply.send(Err(FaceError::DeadlineExceeded));
            continue;
        }
        let result = run_pipeline(models, &cfg, &job.image, job.kind, &model_id, &model_hash);
        let spent = started.elapsed();
        metrics::histogram!("face_job_seconds").record(spent.as_secs_f64());
        if let Ok(a) = &result {
            let inference = a.timings.detect + a.timings.embed;
            metrics::histogram!("face_inference_seconds").record(inference.as_secs_f64());
        }
        metrics::counter!("face_jobs_total", "outcome" => if result.is_ok() { "ok" } else { "error" }).increment(1);
        if let Some(inner) = engine.upgrade() {
            let old = inner.avg_job_us.load(Ordering::Relaxed);
            let new = (old * 7 + spent.as_micros() as u64) / 8;
            inner.avg_job_us.store(new, Ordering::Relaxed);
        }
        let _ = job.reply.send(result);
    }
}

fn decode_error(e: DecodeError) -> FaceError {
    match e {
        DecodeError::Unsupported(detail) => FaceError::UnsupportedMediaType { detail },
        DecodeError::TooLarge(detail) => FaceError::TooLarge { detail },
        DecodeError::Undecodable(detail) => FaceError::Undecodable { detail },
    }
}

/// Decodes and analyses one image (runs on a worker thread).
pub(crate) fn run_pipeline(
    models: &mut Models,
    cfg: &FaceConfig,
    bytes: &[u8],
    kind: ImageKind,
    model_id: &str,
    model_hash: &str,
) -> Result<FaceAnalysis, FaceError> {
    let t0 = Instant::now();
    let format = accepted_format(bytes, kind)?;
    let max_pixels = match kind {
        ImageKind::Selfie => cfg.selfie_max_pixels,
        ImageKind::ChipPhoto => cfg.chip_photo_max_pixels,
    };
    let img = decode::decode_raster(bytes, format, max_pixels).map_err(decode_error)?;
    let mut timings = Timings {
        decode: t0.elapsed(),
        ..Timings::default()
    };
    analyze_decoded(models, cfg, &img, kind, model_id, model_hash, &mut timings)
}

/// The pipeline after decoding: detect, select, measure, align, embed.
pub(crate) fn analyze_decoded(
    models: &mut Models,
    cfg: &FaceConfig,
    img: &RgbImage,
    kind: ImageKind,
    model_id: &str,
    model_hash: &str,
    timings: &mut Timings,
) -> Result<FaceAnalysis, FaceError> {
    let t = Instant::now();
    let lb = super::detect::letterbox(img);
    timings.preprocess += t.elapsed();
    let t = Instant::now();
    let dets = models
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
    let pose = quality::estimate_pose(&face.landmarks);
    let [le, re, ..] = face.landmarks;
    let inter_eye_px = ((re[0] - le[0]).powi(2) + (re[1] - le[1]).powi(2)).sqrt();
    let (brightness, glare) = quality::box_light(img, &face.bbox);
    let m = align::estimate(&face.landmarks, &TEMPLATE).ok_or(FaceError::Internal)?;
    let aligned = align::warp(img, &m).ok_or(FaceError::Internal)?;
    let sharpness = quality::sharpness(&aligned);
    let metrics = Metrics {
        faces: dets.len(),
        second_face_ratio,
        face,
        pose,
        inter_eye_px,
        brightness,
        glare,
        sharpness,
    };
    let report = quality::evaluate(&metrics, rules, kind);
    timings.postprocess += t.elapsed();
    let t = Instant::now();
    let mut vector = models.embed(&aligned).map_err(internal)?;
    timings.embed += t.elapsed();
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
            bbox: face.bbox,
            landmarks: face.landmarks,
            detection_score: face.score,
            yaw_deg: pose.yaw_deg,
            pitch_deg: pose.pitch_deg,
            roll_deg: pose.roll_deg,
        }),
        timings: *timings,
    })
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
        let det = cfg.models_dir.join(&manifest.detector.file);
        let rec = cfg.models_dir.join(&manifest.recognizer.file);
        models::verify(&det, &manifest.detector, "YuNet detector model")?;
        models::verify(&rec, &manifest.recognizer, "SFace recognition model")?;
        let env = models::environment(&absolute(cfg.effective_ort_library()))?;
        Ok(Bench {
            models: Models::load(&env, &det, &rec)?,
            cfg: cfg.clone(),
            manifest,
        })
    }

    /// Decode only.
    pub fn decode(&self, bytes: &[u8], kind: ImageKind) -> Result<RgbImage, FaceError> {
        let f = accepted_format(bytes, kind)?;
        let max = match kind {
            ImageKind::Selfie => self.cfg.selfie_max_pixels,
            ImageKind::ChipPhoto => self.cfg.chip_photo_max_pixels,
        };
        decode::decode_raster(bytes, f, max).map_err(decode_error)
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

    /// The whole selfie pipeline, bytes to template, with stage timings.
    pub fn pipeline(&mut self, bytes: &[u8], kind: ImageKind) -> Result<FaceAnalysis, FaceError> {
        run_pipeline(
            &mut self.models,
            &self.cfg,
            bytes,
            kind,
            &self.manifest.recognizer.id,
            &self.manifest.recognizer.sha256,
        )
    }
}
