//! `jpki-face face mask-eval DIR` and `jpki-face face mask-synth`: measuring the selfie mask check on a
//! labelled folder (detection rate on masked faces, false-alarm rate on unmasked ones, a threshold
//! table), and making synthetic masked faces to measure and test with (docs/accuracy.md, "Mask check").

use super::start_engine as start;
use crate::face::mask::MaskRule;
use crate::face::synthetic_mask;
use crate::face::{Bench, FaceConfig, ImageKind, MaskCrop, QualityCheck};
use anyhow::{bail, Context};
use bytes::Bytes;
use image::RgbImage;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// `face mask-eval` options.
#[derive(Debug, clap::Args)]
pub struct MaskEvalArgs {
    /// Folder of images. Sub-folders named `with_mask`/`masked` hold masked faces and
    /// `without_mask`/`unmasked` unmasked ones (nested folders are read too); see `--label`.
    pub dir: PathBuf,
    /// Label every image under DIR instead of reading the sub-folder names (e.g. `unmasked` for a
    /// folder of ordinary portraits, to count false alarms).
    #[arg(long, value_enum)]
    pub label: Option<Label>,
    /// Add this margin (fraction of the longer side, on each side, edge pixels repeated) around each
    /// photo before analysis: tight face crops give the detector no room otherwise.
    #[arg(long, default_value_t = 0.0)]
    pub pad: f32,
    /// Also compare the classifier's crops (single-threaded, without the service's quality rules).
    #[arg(long)]
    pub crops: bool,
    /// Only this half of the images: within each label, images sorted by a hash of their path under
    /// DIR go alternately to `a` and `b` (a fixed split, to choose thresholds on one half and report
    /// on the other).
    #[arg(long, value_enum)]
    pub half: Option<Half>,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// `face mask-synth` options.
#[derive(Debug, clap::Args)]
pub struct MaskSynthArgs {
    /// A folder of face photos (read recursively).
    pub images: PathBuf,
    /// Where to write `<name>.<texture>.png`, one per photo (textures taken in turn).
    #[arg(long)]
    pub out: PathBuf,
    /// The mask textures (installed by `make models`).
    #[arg(long, default_value = "models/mask-textures")]
    pub textures: PathBuf,
    /// At most this many photos.
    #[arg(long)]
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    Masked,
    Unmasked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Half {
    A,
    B,
}

/// FNV-1a (64 bits): a stable hash of a path for the split, the same on every machine and version.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The half of each image: per label, sorted by the hash of the path relative to `root` (with `/`
/// separators), alternately `a` and `b`; so each half holds half of each label.
fn halves(labelled: &[(PathBuf, Label)], root: &Path) -> Vec<Half> {
    let key = |p: &Path| {
        let rel = p.strip_prefix(root).unwrap_or(p);
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        fnv1a(parts.join("/").as_bytes())
    };
    let mut out = vec![Half::A; labelled.len()];
    for label in [Label::Masked, Label::Unmasked] {
        let mut of: Vec<(u64, usize)> = labelled
            .iter()
            .enumerate()
            .filter(|(_, (_, l))| *l == label)
            .map(|(i, (p, _))| (key(p), i))
            .collect();
        of.sort();
        for (n, (_, i)) in of.into_iter().enumerate() {
            out[i] = if n % 2 == 0 { Half::A } else { Half::B };
        }
    }
    out
}

fn label_of(path: &Path, root: &Path) -> Option<Label> {
    let rel = path.strip_prefix(root).ok()?;
    for part in rel.components() {
        let name = part.as_os_str().to_string_lossy().to_ascii_lowercase();
        match name.as_str() {
            "with_mask" | "masked" | "mask" => return Some(Label::Masked),
            "without_mask" | "unmasked" | "no_mask" => return Some(Label::Unmasked),
            _ => {}
        }
    }
    None
}

fn is_image(p: &Path) -> bool {
    matches!(
        p.extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .as_deref(),
        Some("jpg" | "jpeg" | "png" | "webp")
    )
}

/// Every image file under `dir`, sorted.
pub(super) fn images_under(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if is_image(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The photo with `pad` × its longer side added on each side (edge pixels repeated).
fn padded(img: &RgbImage, pad: f32) -> RgbImage {
    let m = (img.width().max(img.height()) as f32 * pad).round() as i64;
    if m <= 0 {
        return img.clone();
    }
    let (w, h) = (img.width() as i64, img.height() as i64);
    RgbImage::from_fn((w + 2 * m) as u32, (h + 2 * m) as u32, |x, y| {
        let sx = (x as i64 - m).clamp(0, w - 1) as u32;
        let sy = (y as i64 - m).clamp(0, h - 1) as u32;
        *img.get_pixel(sx, sy)
    })
}

fn png(img: &RgbImage) -> anyhow::Result<Vec<u8>> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)?;
    Ok(out.into_inner())
}

/// What the service made of one image.
#[derive(Debug, Clone, serde::Serialize)]
struct Row {
    file: String,
    label: Label,
    half: Half,
    /// p(mask); `None` when no face was found.
    p_mask: Option<f32>,
    /// The detector's score of the face (the mask rule lowers its threshold for unsure faces).
    detection_score: Option<f32>,
    /// The service's own verdict at the configured threshold (`selfie_mask` among the failures).
    refused_mask: bool,
    /// Any quality failure at all (a retake for another reason).
    quality_failed: bool,
    /// The failure codes (to see what else, e.g. glare or blur, the photos fail).
    failed: Vec<String>,
    /// Wall time of the mask check (crop and classifiers) in this job, in ms; its CPU time when the
    /// pool runs one job at a time on one thread (`JPKI_FACE__FACE__WORKERS=1`,
    /// `JPKI_FACE__FACE__IDLE_INTRA_THREADS=1`).
    mask_ms: f64,
    /// With `--crops`: the blended p(mask) on each crop (`MaskCrop::ALL` order), and each classifier's own.
    by_crop: Option<Vec<f32>>,
    by_crop_first: Option<Vec<f32>>,
    by_crop_second: Option<Vec<Option<f32>>>,
    /// With `--crops`: the face those crops were cut from, in the pixels of the (padded) photo as
    /// decoded at full size: box `[x, y, w, h]` and the five landmarks (for analysis outside).
    face: Option<FaceGeometry>,
}

#[derive(Debug, Clone, serde::Serialize)]
struct FaceGeometry {
    bbox: [f32; 4],
    landmarks: [[f32; 2]; 5],
    score: f32,
}

const THRESHOLDS: [f32; 12] = [
    0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99,
];

#[derive(Debug, serde::Serialize)]
struct TableRow {
    threshold: f32,
    /// Masked faces with p(mask) above the threshold, among all masked images (no face = not caught).
    caught: f64,
    /// Unmasked faces with p(mask) above the threshold, among all unmasked images.
    false_alarm: f64,
}

/// Caught and false-alarm rates at each threshold; `flags(row, t)` says whether a row is flagged at `t`.
fn table(rows: &[Row], flags: impl Fn(&Row, f32) -> bool) -> Vec<TableRow> {
    let rate = |label: Label, t: f32| {
        let of: Vec<&Row> = rows.iter().filter(|r| r.label == label).collect();
        if of.is_empty() {
            return f64::NAN;
        }
        of.iter().filter(|r| flags(r, t)).count() as f64 / of.len() as f64
    };
    THRESHOLDS
        .iter()
        .map(|&t| TableRow {
            threshold: t,
            caught: rate(Label::Masked, t),
            false_alarm: rate(Label::Unmasked, t),
        })
        .collect()
}

fn pct(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else {
        format!("{:.1} %", v * 100.0)
    }
}

pub(super) fn eval(args: MaskEvalArgs, cfg: &FaceConfig) -> anyhow::Result<()> {
    let files = images_under(&args.dir)?;
    let labelled: Vec<(PathBuf, Label)> = files
        .into_iter()
        .filter_map(|p| {
            let l = args.label.or_else(|| label_of(&p, &args.dir))?;
            Some((p, l))
        })
        .collect();
    let split = halves(&labelled, &args.dir);
    let labelled: Vec<(PathBuf, Label, Half)> = labelled
        .into_iter()
        .zip(split)
        .map(|((p, l), h)| (p, l, h))
        .filter(|(_, _, h)| args.half.is_none_or(|want| want == *h))
        .collect();
    if labelled.is_empty() {
        bail!(
            "no labelled images under {} (sub-folders with_mask/without_mask, or --label)",
            args.dir.display()
        );
    }
    let engine = start(cfg)?;
    let next = AtomicUsize::new(0);
    let rows = Mutex::new(Vec::with_capacity(labelled.len()));
    let errors = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..engine.workers() {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((path, label, half)) = labelled.get(i) else {
                    return;
                };
                let result = (|| -> anyhow::Result<Row> {
                    let bytes = std::fs::read(path)?;
                    let bytes = if args.pad > 0.0 {
                        let img = image::load_from_memory(&bytes)?.to_rgb8();
                        png(&padded(&img, args.pad))?
                    } else {
                        bytes
                    };
                    let a = engine.analyze_blocking(Bytes::from(bytes), ImageKind::Selfie)?;
                    Ok(Row {
                        file: path.display().to_string(),
                        label: *label,
                        half: *half,
                        p_mask: a.quality.mask,
                        detection_score: a.face.as_ref().map(|f| f.detection_score),
                        refused_mask: a.quality.has(QualityCheck::Mask),
                        quality_failed: !a.quality.failed.is_empty(),
                        failed: a.quality.failed.iter().map(|f| f.code()).collect(),
                        mask_ms: a.timings.mask.as_secs_f64() * 1000.0,
                        by_crop: None,
                        by_crop_first: None,
                        by_crop_second: None,
                        face: None,
                    })
                })();
                match result {
                    Ok(r) => rows.lock().unwrap_or_else(|p| p.into_inner()).push(r),
                    Err(e) => errors
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(format!("{}: {e:#}", path.display())),
                }
            });
        }
    });
    let mut rows = rows.into_inner().unwrap_or_else(|p| p.into_inner());
    rows.sort_by(|a, b| a.file.cmp(&b.file));
    let errors = errors.into_inner().unwrap_or_else(|p| p.into_inner());
    drop(engine);
    if args.crops {
        let mut bench = Bench::new(cfg)?;
        for r in rows.iter_mut() {
            let img = image::open(&r.file)?.to_rgb8();
            let img = padded(&img, args.pad);
            if let Some((face, scores)) = bench.mask_by_crop(&img, &MaskCrop::ALL)? {
                r.by_crop = Some(scores.iter().map(|s| s.blended(cfg.mask_blend)).collect());
                r.by_crop_first = Some(scores.iter().map(|s| s.first).collect());
                r.by_crop_second = Some(scores.iter().map(|s| s.second).collect());
                r.face = Some(FaceGeometry {
                    bbox: face.bbox,
                    landmarks: face.landmarks,
                    score: face.score,
                });
            }
        }
    }
    report(&args, cfg, &rows, &errors)
}

fn report(
    args: &MaskEvalArgs,
    cfg: &FaceConfig,
    rows: &[Row],
    errors: &[String],
) -> anyhow::Result<()> {
    let count = |l: Label| rows.iter().filter(|r| r.label == l).count();
    let no_face = |l: Label| {
        rows.iter()
            .filter(|r| r.label == l && r.p_mask.is_none())
            .count()
    };
    let refused = |l: Label| {
        rows.iter()
            .filter(|r| r.label == l && r.refused_mask)
            .count()
    };
    let any_fail = |l: Label| {
        rows.iter()
            .filter(|r| r.label == l && r.quality_failed)
            .count()
    };
    let rule_at = |t: f32| MaskRule {
        max_mask: t,
        score_pivot: cfg.selfie.mask_score_pivot,
        score_weight: cfg.selfie.mask_score_weight,
    };
    // The service's rule with `max_mask` at each threshold, and p(mask) alone for comparison.
    let flagged = |p: Option<f32>, r: &Row, t: f32| match (p, r.detection_score) {
        (Some(p), Some(s)) => rule_at(t).is_masked(p, s),
        _ => false,
    };
    let service = table(rows, |r, t| flagged(r.p_mask, r, t));
    let p_alone = table(rows, |r, t| r.p_mask.is_some_and(|p| p > t));
    let crops: Vec<(MaskCrop, Vec<TableRow>)> = if args.crops {
        MaskCrop::ALL
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let p = |r: &Row| r.by_crop.as_ref().and_then(|v| v.get(i).copied());
                (c, table(rows, |r, t| flagged(p(r), r, t)))
            })
            .collect()
    } else {
        Vec::new()
    };
    let ratio = |a: usize, b: usize| {
        if b == 0 {
            f64::NAN
        } else {
            a as f64 / b as f64
        }
    };
    let (masked, unmasked) = (count(Label::Masked), count(Label::Unmasked));
    if args.json {
        let out = serde_json::json!({
            "dir": args.dir.display().to_string(),
            "pad": args.pad,
            "crop": cfg.mask_crop,
            "half": args.half,
            "max_mask": cfg.selfie.max_mask,
            "mask_score_pivot": cfg.selfie.mask_score_pivot,
            "mask_score_weight": cfg.selfie.mask_score_weight,
            "mask_blend": cfg.mask_blend,
            "masked": masked,
            "unmasked": unmasked,
            "no_face": {"masked": no_face(Label::Masked), "unmasked": no_face(Label::Unmasked)},
            "detection_rate": ratio(refused(Label::Masked), masked),
            "false_alarm_rate": ratio(refused(Label::Unmasked), unmasked),
            "any_quality_failure": {"masked": any_fail(Label::Masked), "unmasked": any_fail(Label::Unmasked)},
            "table": service,
            "table_p_mask_alone": p_alone,
            "crops": crops.iter().map(|(c, t)| serde_json::json!({"crop": c, "table": t})).collect::<Vec<_>>(),
            "errors": errors,
            "rows": rows,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let half = match args.half {
        Some(Half::A) => ", half a",
        Some(Half::B) => ", half b",
        None => "",
    };
    println!(
        "{}{half}: {masked} masked, {unmasked} unmasked (pad {}, crop {}, mask_blend {}, max_mask {}, \
         mask_score_pivot {}, mask_score_weight {})",
        args.dir.display(),
        args.pad,
        cfg.mask_crop.as_str(),
        cfg.mask_blend,
        cfg.selfie.max_mask,
        cfg.selfie.mask_score_pivot,
        cfg.selfie.mask_score_weight
    );
    println!(
        "detection rate (selfie_mask on masked): {}   false-alarm rate (selfie_mask on unmasked): {}",
        pct(ratio(refused(Label::Masked), masked)),
        pct(ratio(refused(Label::Unmasked), unmasked))
    );
    println!(
        "no face found: {} masked, {} unmasked; any quality failure: {} masked, {} unmasked",
        no_face(Label::Masked),
        no_face(Label::Unmasked),
        any_fail(Label::Masked),
        any_fail(Label::Unmasked)
    );
    let mut mask_ms: Vec<f64> = rows
        .iter()
        .filter(|r| r.p_mask.is_some())
        .map(|r| r.mask_ms)
        .collect();
    mask_ms.sort_by(f64::total_cmp);
    if let Some(median) = mask_ms.get(mask_ms.len() / 2) {
        println!(
            "mask check per face: median {median:.2} ms, mean {:.2} ms (wall time in its job)",
            mask_ms.iter().sum::<f64>() / mask_ms.len() as f64
        );
    }
    let print = |name: &str, t: &[TableRow]| {
        println!("\n{name}\nthreshold  caught    false alarm");
        for r in t {
            println!(
                "{:>9}  {:>8}  {:>8}",
                r.threshold,
                pct(r.caught),
                pct(r.false_alarm)
            );
        }
    };
    for label in [Label::Masked, Label::Unmasked] {
        let mut by_code = std::collections::BTreeMap::<&str, usize>::new();
        for r in rows.iter().filter(|r| r.label == label) {
            for c in &r.failed {
                *by_code.entry(c.as_str()).or_default() += 1;
            }
        }
        if !by_code.is_empty() {
            println!("quality failures on {label:?} images: {by_code:?}");
        }
    }
    print(
        &format!(
            "service rule (crop {}, threshold = max_mask at detector score >= {}, lowered by {} \
             log-odds per unit below)",
            cfg.mask_crop.as_str(),
            cfg.selfie.mask_score_pivot,
            cfg.selfie.mask_score_weight
        ),
        &service,
    );
    print(
        &format!("p(mask) alone (crop {})", cfg.mask_crop.as_str()),
        &p_alone,
    );
    for (c, t) in &crops {
        print(&format!("crop {} (service rule)", c.as_str()), t);
    }
    for e in errors {
        eprintln!("error: {e}");
    }
    Ok(())
}

pub(super) fn synth(args: MaskSynthArgs, cfg: &FaceConfig) -> anyhow::Result<()> {
    let textures: Vec<(String, RgbImage)> = synthetic_mask::TEXTURES
        .iter()
        .map(|name| {
            let p = args.textures.join(name);
            let img = image::open(&p)
                .with_context(|| format!("{} (run make models)", p.display()))?
                .to_rgb8();
            Ok((name.trim_end_matches(".jpg").to_string(), img))
        })
        .collect::<anyhow::Result<_>>()?;
    std::fs::create_dir_all(&args.out)?;
    let mut bench = Bench::new(cfg)?;
    let files = images_under(&args.images)?;
    let mut made = 0usize;
    for (i, path) in files.iter().enumerate() {
        if args.limit.is_some_and(|l| made >= l) {
            break;
        }
        let img = image::open(path)
            .with_context(|| format!("{}", path.display()))?
            .to_rgb8();
        let dets = bench.detect(&img)?;
        let Some(face) = dets
            .iter()
            .max_by(|a, b| (a.bbox[2] * a.bbox[3]).total_cmp(&(b.bbox[2] * b.bbox[3])))
        else {
            continue;
        };
        let (tname, tex) = &textures[i % textures.len()];
        let Some(masked) = synthetic_mask::put_on(&img, &face.landmarks, tex) else {
            continue;
        };
        let stem = path
            .strip_prefix(&args.images)
            .unwrap_or(path)
            .with_extension("")
            .to_string_lossy()
            .replace(['/', '\\'], "__");
        masked.save(args.out.join(format!("{stem}.{tname}.png")))?;
        made += 1;
    }
    eprintln!("mask-synth: {made} masked images in {}", args.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_split_each_label_evenly_and_stay_fixed() {
        let root = Path::new("/data");
        let labelled: Vec<(PathBuf, Label)> = (0..7)
            .map(|i| (root.join(format!("with_mask/{i}.jpg")), Label::Masked))
            .chain((0..4).map(|i| (root.join(format!("without_mask/{i}.jpg")), Label::Unmasked)))
            .collect();
        let h = halves(&labelled, root);
        let count = |label, half| {
            labelled
                .iter()
                .zip(&h)
                .filter(|((_, l), x)| *l == label && **x == half)
                .count()
        };
        assert_eq!(
            (count(Label::Masked, Half::A), count(Label::Masked, Half::B)),
            (4, 3)
        );
        assert_eq!(
            (
                count(Label::Unmasked, Half::A),
                count(Label::Unmasked, Half::B)
            ),
            (2, 2)
        );
        // The split depends on the path under the root only, not on where the folder is.
        let moved: Vec<(PathBuf, Label)> = labelled
            .iter()
            .map(|(p, l)| {
                (
                    Path::new("/elsewhere").join(p.strip_prefix(root).unwrap()),
                    *l,
                )
            })
            .collect();
        assert_eq!(halves(&moved, Path::new("/elsewhere")), h);
        // FNV-1a's published test vector.
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
