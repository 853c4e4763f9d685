//! The pinned models: the manifest (compiled in), SHA-256 checks, the ONNX Runtime environment and the
//! per-worker sessions, and the raw YuNet / SFace calls.

use super::align::{AlignedFace, SIDE};
use super::detect::{self, Detection, StrideOutput};
use image::RgbImage;
use ort::session::Session;
use ort::value::TensorRef;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// `models/manifest.toml`, compiled in so a binary checks the exact files it was built for.
pub const MANIFEST_TOML: &str = include_str!("../../models/manifest.toml");

/// A file the service loads. For the two models it is derived from `original` by the recipe `derive`
/// (scripts/fetch-models.sh); `sha256` always pins the file that is loaded.
#[derive(Debug, Clone, Deserialize)]
pub struct ManifestEntry {
    pub id: String,
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
    pub license: String,
    pub source: String,
    #[serde(default)]
    pub derive: Option<String>,
    #[serde(default)]
    pub original: Option<OriginalEntry>,
    /// What templates made with this file carry as their `model_hash` when it is not the file's own
    /// hash: a derived file proven to compute the same outputs as the one the templates were made with
    /// (SFace's PRelu split, models/manifest.toml).
    #[serde(default)]
    pub template_hash: Option<String>,
}

impl ManifestEntry {
    /// The model identity templates carry: `template_hash`, or the loaded file's own hash.
    pub fn template_hash(&self) -> &str {
        self.template_hash.as_deref().unwrap_or(&self.sha256)
    }
}

/// The pinned upstream file a derived model is made from.
#[derive(Debug, Clone, Deserialize)]
pub struct OriginalEntry {
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
    pub source: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub detector: ManifestEntry,
    pub recognizer: ManifestEntry,
    pub runtime: ManifestEntry,
    /// The face-mask classifier (run on selfies only, see [`super::mask`]).
    pub mask_classifier: ManifestEntry,
    /// The second mask classifier, blended with the first (`face.mask_blend`, [`super::mask::blend`]).
    pub mask_classifier_second: ManifestEntry,
    /// The recogniser file the templates were made with (not loaded; tests compare against it).
    pub recognizer_reference: ManifestEntry,
}

/// Why the engine could not start. Every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum FaceInitError {
    #[error("models/manifest.toml is malformed: {0}")]
    Manifest(String),
    #[error("{path}: missing ({what}); run scripts/fetch-models.sh (make models)")]
    Missing { what: &'static str, path: PathBuf },
    #[error("{path}: SHA-256 mismatch (expected {expected}, found {found}); refusing to start; re-run scripts/fetch-models.sh")]
    HashMismatch {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("{path}: cannot be read: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ONNX Runtime library {path} could not be loaded: {detail}")]
    Runtime { path: PathBuf, detail: String },
    #[error("model {file} could not be loaded: {detail}")]
    Session { file: String, detail: String },
    #[error("face worker thread could not start: {0}")]
    Worker(String),
}

pub fn manifest() -> Result<Manifest, FaceInitError> {
    use figment::providers::{Format, Toml};
    figment::Figment::from(Toml::string(MANIFEST_TOML))
        .extract()
        .map_err(|e| FaceInitError::Manifest(e.to_string()))
}

pub fn sha256_file(path: &Path) -> Result<String, FaceInitError> {
    let io = |source| FaceInitError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Checks that the file exists and has the pinned hash.
pub fn verify(path: &Path, entry: &ManifestEntry, what: &'static str) -> Result<(), FaceInitError> {
    if !path.is_file() {
        return Err(FaceInitError::Missing {
            what,
            path: path.to_path_buf(),
        });
    }
    let found = sha256_file(path)?;
    if found != entry.sha256 {
        return Err(FaceInitError::HashMismatch {
            path: path.to_path_buf(),
            expected: entry.sha256.clone(),
            found,
        });
    }
    Ok(())
}

/// One process-wide ONNX Runtime environment; the library is loaded once.
static ENV: Mutex<Option<ort::environment::Environment>> = Mutex::new(None);

/// A relative path (the ONNX Runtime library's) made absolute against the working directory.
pub(super) fn absolute(p: PathBuf) -> PathBuf {
    if p.is_absolute() {
        p
    } else {
        std::env::current_dir().map(|d| d.join(&p)).unwrap_or(p)
    }
}

pub fn environment(lib: &Path) -> Result<ort::environment::Environment, FaceInitError> {
    // Checked even when a runtime is already loaded, so a wrong path is always reported.
    if !lib.is_file() {
        return Err(FaceInitError::Missing {
            what: "ONNX Runtime library",
            path: lib.to_path_buf(),
        });
    }
    let mut guard = ENV.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(env) = guard.as_ref() {
        return Ok(env.clone());
    }
    let runtime = |detail: String| FaceInitError::Runtime {
        path: lib.to_path_buf(),
        detail,
    };
    if !lib.is_file() {
        return Err(FaceInitError::Missing {
            what: "ONNX Runtime library",
            path: lib.to_path_buf(),
        });
    }
    let env = ort::init_from(lib)
        .map_err(|e| runtime(e.to_string()))?
        .with_name("jpki-face")
        .build()
        .map_err(|e| runtime(e.to_string()))?;
    *guard = Some(env.clone());
    Ok(env)
}

/// The files a worker loads its sessions from (all four checked against the manifest first).
#[derive(Debug, Clone)]
pub struct ModelPaths {
    pub detector: PathBuf,
    pub recognizer: PathBuf,
    pub mask: PathBuf,
    pub mask_second: PathBuf,
}

impl ModelPaths {
    /// The manifest's files in `dir`, each checked against its pinned SHA-256.
    pub fn verified(dir: &Path, manifest: &Manifest) -> Result<ModelPaths, FaceInitError> {
        let paths = ModelPaths {
            detector: dir.join(&manifest.detector.file),
            recognizer: dir.join(&manifest.recognizer.file),
            mask: dir.join(&manifest.mask_classifier.file),
            mask_second: dir.join(&manifest.mask_classifier_second.file),
        };
        verify(&paths.detector, &manifest.detector, "YuNet detector model")?;
        verify(
            &paths.recognizer,
            &manifest.recognizer,
            "SFace recognition model",
        )?;
        verify(
            &paths.mask,
            &manifest.mask_classifier,
            "face-mask classifier model",
        )?;
        verify(
            &paths.mask_second,
            &manifest.mask_classifier_second,
            "second face-mask classifier model",
        )?;
        Ok(paths)
    }
}

/// The sessions a worker owns; `run` needs `&mut`, so they are never shared.
pub struct Models {
    detector: Session,
    recognizer: Session,
    /// The two mask classifiers; absent from the idle-pool set ([`Models::load_without_mask`]).
    mask: Option<MaskSessions>,
}

struct MaskSessions {
    first: Session,
    second: Session,
}

fn session(
    env: &ort::environment::Environment,
    path: &Path,
    threads: usize,
) -> Result<Session, FaceInitError> {
    let err = |detail: String| FaceInitError::Session {
        file: path.display().to_string(),
        detail,
    };
    Session::builder(env)
        .map_err(|e| err(e.to_string()))?
        .with_intra_threads(threads)
        .map_err(|e| err(e.to_string()))?
        // Pool threads that spin after a run would take the core another worker needs.
        .with_intra_op_spinning(false)
        .map_err(|e| err(e.to_string()))?
        .with_inter_threads(1)
        .map_err(|e| err(e.to_string()))?
        .commit_from_file(path)
        .map_err(|e| err(e.to_string()))
}

/// p(mask) of a classifier whose output `probs` is [p_mask, p_no_mask].
fn p_mask(session: &mut Session, input: TensorRef<'_, f32>) -> Result<f32, ort::Error> {
    let outputs = session.run(ort::inputs!["input" => input])?;
    let v = outputs
        .get("probs")
        .ok_or_else(|| ort::Error::new("the mask classifier has no output probs"))?;
    let probs = v.try_extract_tensor::<f32>()?.1;
    probs
        .first()
        .copied()
        .ok_or_else(|| ort::Error::new("the mask classifier gave no probability"))
}

impl Models {
    /// Loads the sessions with `threads` intra-op threads each (1 for the pool's regular sessions).
    pub fn load(
        env: &ort::environment::Environment,
        paths: &ModelPaths,
        threads: usize,
    ) -> Result<Models, FaceInitError> {
        Self::load_set(env, paths, threads, true)
    }

    /// The detector and the recogniser only: the idle pool's set, whose jobs run the mask classifier
    /// on the regular set's one-thread session, alongside the recogniser.
    pub fn load_without_mask(
        env: &ort::environment::Environment,
        paths: &ModelPaths,
        threads: usize,
    ) -> Result<Models, FaceInitError> {
        Self::load_set(env, paths, threads, false)
    }

    fn load_set(
        env: &ort::environment::Environment,
        paths: &ModelPaths,
        threads: usize,
        with_mask: bool,
    ) -> Result<Models, FaceInitError> {
        Ok(Models {
            detector: session(env, &paths.detector, threads)?,
            recognizer: session(env, &paths.recognizer, threads)?,
            mask: if with_mask {
                Some(MaskSessions {
                    first: session(env, &paths.mask, threads)?,
                    second: session(env, &paths.mask_second, threads)?,
                })
            } else {
                None
            },
        })
    }

    pub fn has_mask(&self) -> bool {
        self.mask.is_some()
    }

    /// Runs the first mask classifier on one prepared crop ([`super::mask::MaskInput`]); returns
    /// p(mask).
    pub fn mask(&mut self, crop: &super::mask::MaskInput) -> Result<f32, ort::Error> {
        let side = super::mask::INPUT_SIDE;
        let input = TensorRef::from_array_view(([1usize, side, side, 3], crop.nhwc.as_slice()))?;
        p_mask(&mut self.mask_sessions()?.first, input)
    }

    /// Runs the second mask classifier on its input ([`super::mask::SecondMaskInput`]); returns
    /// p(mask).
    pub fn mask_second(&mut self, crop: &super::mask::SecondMaskInput) -> Result<f32, ort::Error> {
        let side = super::mask::SECOND_INPUT_SIDE;
        let input = TensorRef::from_array_view(([1usize, 3, side, side], crop.nchw.as_slice()))?;
        p_mask(&mut self.mask_sessions()?.second, input)
    }

    fn mask_sessions(&mut self) -> Result<&mut MaskSessions, ort::Error> {
        self.mask
            .as_mut()
            .ok_or_else(|| ort::Error::new("this session set has no mask classifier"))
    }

    /// Runs YuNet on a letterboxed input and decodes the detections.
    pub fn detect(
        &mut self,
        img: &RgbImage,
        threshold: f32,
        nms_iou: f32,
    ) -> Result<Vec<Detection>, ort::Error> {
        let lb = detect::letterbox(img);
        self.detect_letterboxed(&lb, threshold, nms_iou)
    }

    pub fn detect_letterboxed(
        &mut self,
        lb: &detect::Letterbox,
        threshold: f32,
        nms_iou: f32,
    ) -> Result<Vec<Detection>, ort::Error> {
        let input =
            TensorRef::from_array_view(([1usize, 3, lb.height, lb.width], lb.data.as_slice()))?;
        let outputs = self.detector.run(ort::inputs!["input" => input])?;
        let get = |name: String| -> Result<&[f32], ort::Error> {
            let v = outputs
                .get(&name)
                .ok_or_else(|| ort::Error::new(format!("YuNet has no output {name}")))?;
            Ok(v.try_extract_tensor::<f32>()?.1)
        };
        let mut strides = Vec::with_capacity(3);
        for s in detect::STRIDES {
            strides.push(StrideOutput {
                stride: s,
                cls: get(format!("cls_{s}"))?,
                obj: get(format!("obj_{s}"))?,
                bbox: get(format!("bbox_{s}"))?,
                kps: get(format!("kps_{s}"))?,
            });
        }
        Ok(detect::decode(
            &strides,
            (lb.width, lb.height),
            lb.scale,
            threshold,
            nms_iou,
        ))
    }

    /// Runs SFace on an aligned crop; returns the raw (not yet normalised) 128-d embedding.
    pub fn embed(&mut self, face: &AlignedFace) -> Result<Vec<f32>, ort::Error> {
        let input =
            TensorRef::from_array_view(([1usize, 3, SIDE, SIDE], face.rgb_planar.as_slice()))?;
        let outputs = self.recognizer.run(ort::inputs!["data" => input])?;
        let v = outputs
            .get("fc1")
            .ok_or_else(|| ort::Error::new("SFace has no output fc1"))?;
        Ok(v.try_extract_tensor::<f32>()?.1.to_vec())
    }
}
