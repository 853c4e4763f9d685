//! Operator commands: `jpki-face face compare A B` and `jpki-face calibrate`.

use super::calibration::{self, CalibrationTable};
use super::{FaceAnalysis, FaceEngine, FaceError, ImageKind};
use anyhow::{bail, Context};
use bytes::Bytes;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// `jpki-face face …`
#[derive(Debug, clap::Subcommand)]
pub enum FaceCommand {
    /// Compare the faces in two image files (JPEG/PNG/WebP/JP2) and print JSON.
    Compare { a: PathBuf, b: PathBuf },
}

/// `jpki-face calibrate …`
#[derive(Debug, clap::Args)]
pub struct CalibrateArgs {
    /// Labelled pair list: `a<TAB>b<TAB>same`, one header line.
    #[arg(long)]
    pub pairs: PathBuf,
    /// Folder the pair paths are relative to.
    #[arg(long)]
    pub images: PathBuf,
    /// Where the calibration table and the DET plot are written.
    #[arg(long)]
    pub out: PathBuf,
}

fn start(settings: &crate::config::Settings) -> anyhow::Result<FaceEngine> {
    let engine = FaceEngine::start(&settings.face).context("starting the face engine")?;
    if !engine.wait_ready(Duration::from_secs(120)) {
        bail!("the face engine did not warm up within 120 s");
    }
    Ok(engine)
}

/// JPEG 2000 files are analysed as chip photos, everything else as selfies.
fn kind_of(bytes: &[u8]) -> ImageKind {
    match super::decode::sniff(bytes) {
        Some(super::decode::Sniffed::Jp2 | super::decode::Sniffed::J2k) => ImageKind::ChipPhoto,
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

pub fn run_face_command(
    cmd: FaceCommand,
    settings: &crate::config::Settings,
) -> anyhow::Result<()> {
    match cmd {
        FaceCommand::Compare { a, b } => {
            let engine = start(settings)?;
            let fa = analyze_file(&engine, &a)?;
            let fb = analyze_file(&engine, &b)?;
            let threshold = engine.threshold_for_fmr(settings.face.enrollment_target_fmr);
            let score = match (&fa.template, &fb.template) {
                (Some(ta), Some(tb)) => Some(engine.compare(ta, tb)?),
                _ => None,
            };
            let quality_ok = fa.quality.result == super::QualityResult::Pass
                && fb.quality.result == super::QualityResult::Pass;
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
    quality: super::QualityReport,
    face: Option<super::FaceGeometry>,
}

/// What calibration learned about one image.
#[derive(Clone)]
enum Embedded {
    Template(super::Template),
    Rejected(String),
}

pub fn run_calibrate(
    args: CalibrateArgs,
    settings: &crate::config::Settings,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.pairs)
        .with_context(|| format!("reading {}", args.pairs.display()))?;
    let mut pairs = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let [a, b, same] = cols[..] else {
            bail!("{}:{}: want a<TAB>b<TAB>same", args.pairs.display(), n + 1);
        };
        let same = match same.trim() {
            "1" | "true" => true,
            "0" | "false" => false,
            other => bail!(
                "{}:{}: `same` must be 1 or 0, not {other:?}",
                args.pairs.display(),
                n + 1
            ),
        };
        pairs.push((a.to_string(), b.to_string(), same));
    }
    let mut images: Vec<String> = pairs
        .iter()
        .flat_map(|(a, b, _)| [a.clone(), b.clone()])
        .collect();
    images.sort();
    images.dedup();

    let engine = start(settings)?;
    eprintln!(
        "calibrate: {} pairs, {} images, {} workers",
        pairs.len(),
        images.len(),
        engine.workers()
    );
    let started = std::time::Instant::now();
    // Each image is embedded once; feeder threads keep every worker busy (analyze_blocking waits for room).
    let results: Mutex<HashMap<String, Embedded>> = Mutex::new(HashMap::new());
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..engine.workers() * 2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(rel) = images.get(i) else { break };
                let r = match std::fs::read(args.images.join(rel)) {
                    Err(e) => Embedded::Rejected(format!("unreadable ({e})")),
                    Ok(bytes) => {
                        match engine.analyze_blocking(Bytes::from(bytes), ImageKind::Selfie) {
                            // Bystanders are common in news photos and the labelled face is the largest: a
                            // second face does not make the template wrong, so calibration ignores that check.
                            Ok(a) => match (
                                a.quality
                                    .failed
                                    .iter()
                                    .find(|f| f.check != super::QualityCheck::MultipleFaces),
                                a.template,
                            ) {
                                (None, Some(t)) => Embedded::Template(t),
                                (Some(f), _) => Embedded::Rejected(f.code()),
                                (None, None) => Embedded::Rejected("no_template".into()),
                            },
                            Err(e) => Embedded::Rejected(error_code(&e).to_string()),
                        }
                    }
                };
                results
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(rel.clone(), r);
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    eprintln!(
        "calibrate: embedded {} images in {:.1} s",
        images.len(),
        started.elapsed().as_secs_f64()
    );

    let (mut genuine, mut impostor, mut rejected) = (Vec::new(), Vec::new(), 0usize);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for (a, b, same) in &pairs {
        let same_s = if *same { 1 } else { 0 };
        match (results.get(a), results.get(b)) {
            (Some(Embedded::Template(ta)), Some(Embedded::Template(tb))) => {
                let score = engine.compare(ta, tb)?;
                writeln!(out, "{a} {b} {same_s} {score:.4}")?;
                if *same {
                    genuine.push(score);
                } else {
                    impostor.push(score);
                }
            }
            (ra, rb) => {
                rejected += 1;
                let code = [ra, rb]
                    .into_iter()
                    .find_map(|r| match r {
                        Some(Embedded::Rejected(c)) => Some(c.clone()),
                        _ => None,
                    })
                    .unwrap_or_else(|| "missing".into());
                writeln!(out, "{a} {b} {same_s} {code}")?;
            }
        }
    }
    if genuine.is_empty() || impostor.is_empty() {
        bail!("calibration needs both genuine and impostor pairs with faces");
    }
    let table = calibration::build(
        &genuine,
        &impostor,
        &engine.model_label(),
        "LFW-gray + web photos",
        rejected,
    );
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let table_path = args.out.join("face-calibration.toml");
    std::fs::write(&table_path, table.to_toml())?;
    // Sanity: what we wrote must load as the engine will load it.
    CalibrationTable::parse(&table.to_toml()).map_err(anyhow::Error::msg)?;
    std::fs::write(
        args.out.join("face-det.svg"),
        calibration::det_svg(&genuine, &impostor, &table),
    )?;
    eprintln!(
        "calibrate: {} genuine, {} impostor, {} rejected pairs; wrote {} and face-det.svg",
        genuine.len(),
        impostor.len(),
        rejected,
        table_path.display()
    );
    for p in &table.point {
        eprintln!(
            "  FMR {:>7.0e}: threshold {:.4}  FNMR {:.4}  measured FMR {:.5}  ({:?})",
            p.target_fmr, p.threshold, p.fnmr, p.measured_fmr, p.method
        );
    }
    Ok(())
}

fn error_code(e: &FaceError) -> &'static str {
    match e {
        FaceError::Overloaded { .. } => "overloaded",
        FaceError::DeadlineExceeded => "deadline_exceeded",
        FaceError::NotReady => "not_ready",
        FaceError::UnsupportedMediaType { .. } => "unsupported_media_type",
        FaceError::TooLarge { .. } => "too_large",
        FaceError::Undecodable { .. } => "undecodable",
        FaceError::TenantQueueFull { .. } => "tenant_queue_full",
        FaceError::WorkerPanicked => "worker_panicked",
        FaceError::Internal => "internal",
    }
}
