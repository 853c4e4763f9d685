//! `jpki-face face compare A B`: both images through the face engine, the score against the
//! enrollment threshold, and both faces' quality, as JSON.

use super::{start_engine as start, FaceCommand};
use crate::face::decode::{self, Sniffed};
use crate::face::{
    FaceAnalysis, FaceConfig, FaceEngine, FaceGeometry, ImageKind, QualityReport, QualityResult,
};
use anyhow::{bail, Context};
use bytes::Bytes;
use std::path::Path;

/// JPEG 2000 files are analysed as chip photos, everything else as selfies.
fn kind_of(bytes: &[u8]) -> ImageKind {
    match decode::sniff(bytes) {
        Some(Sniffed::Jp2 | Sniffed::J2k) => ImageKind::ChipPhoto,
        _ => ImageKind::Selfie,
    }
}

fn analyze_file(engine: &FaceEngine, path: &Path) -> anyhow::Result<FaceAnalysis> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let kind = kind_of(&bytes);
    engine
        .analyze_blocking(Bytes::from(bytes), kind)
        .with_context(|| format!("analysing {}", path.display()))
}

pub(super) fn run(cmd: FaceCommand, cfg: &FaceConfig) -> anyhow::Result<()> {
    match cmd {
        FaceCommand::Compare { a, b } => {
            let engine = start(cfg)?;
            let fa = analyze_file(&engine, &a)?;
            let fb = analyze_file(&engine, &b)?;
            let threshold = engine.threshold_for_fmr(cfg.enrollment_target_fmr);
            let score = match (&fa.template, &fb.template) {
                (Some(ta), Some(tb)) => Some(engine.compare(ta, tb)?),
                _ => None,
            };
            let quality_ok = fa.quality.result == QualityResult::Pass
                && fb.quality.result == QualityResult::Pass;
            let decision = match score {
                None => "quality_failed",
                Some(_) if !quality_ok => "quality_failed",
                Some(s) if s >= threshold.score => "match",
                Some(_) => "no_match",
            };
            let side = |file: &Path, f: &FaceAnalysis| Side {
                file: file.display().to_string(),
                quality: f.quality.clone(),
                face: f.face,
            };
            let out = CompareOutput {
                score: score.map(|s| (s * 10_000.0).round() / 10_000.0),
                threshold: threshold.score,
                target_fmr: threshold.target_fmr,
                decision,
                model: engine.model_label(),
                a: side(&a, &fa),
                b: side(&b, &fb),
            };
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
        FaceCommand::MaskEval(_) | FaceCommand::MaskSynth(_) => {
            bail!("dispatched by cli::run to cli::mask_eval")
        }
    }
}

#[derive(serde::Serialize)]
struct CompareOutput {
    score: Option<f32>,
    threshold: f32,
    target_fmr: f64,
    decision: &'static str,
    model: String,
    a: Side,
    b: Side,
}

#[derive(serde::Serialize)]
struct Side {
    file: String,
    quality: QualityReport,
    face: Option<FaceGeometry>,
}
