//! `jpki-face calibrate`: embeds a labelled image folder on the face engine, scores the pairs
//! (printed one a line), and writes the calibration table, the DET plot and the report built by
//! [`crate::face::calibration`] (the maths lives there).

use super::start_engine as start;
use super::CalibrateArgs;
use crate::face::calibration::{self, CalibrationTable};
use crate::face::{FaceConfig, FaceEngine, FaceError, ImageKind, QualityCheck, Template};
use anyhow::{bail, Context};
use bytes::Bytes;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// What calibration learned about one image.
#[derive(Clone)]
pub(super) enum Embedded {
    Template(Template),
    Rejected(String),
}

/// A labelled pair of image paths (relative to `--images`).
struct Pair {
    a: String,
    b: String,
    same: bool,
}

fn read_pair_list(path: &Path) -> anyhow::Result<Vec<Pair>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut pairs = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let [a, b, same] = cols[..] else {
            bail!("{}:{}: want a<TAB>b<TAB>same", path.display(), n + 1);
        };
        let same = match same.trim() {
            "1" | "true" => true,
            "0" | "false" => false,
            other => bail!(
                "{}:{}: `same` must be 1 or 0, not {other:?}",
                path.display(),
                n + 1
            ),
        };
        pairs.push(Pair {
            a: a.to_string(),
            b: b.to_string(),
            same,
        });
    }
    Ok(pairs)
}

/// Every image under `<root>/<identity>/`, sorted, as (relative path, identity).
pub(super) fn list_identity_folders(root: &Path) -> anyhow::Result<Vec<(String, String)>> {
    const EXT: [&str; 6] = ["jpg", "jpeg", "png", "webp", "jp2", "j2k"];
    let mut images = Vec::new();
    for dir in std::fs::read_dir(root).with_context(|| format!("listing {}", root.display()))? {
        let dir = dir?;
        if !dir.path().is_dir() {
            continue;
        }
        let identity = dir.file_name().to_string_lossy().into_owned();
        for f in std::fs::read_dir(dir.path())? {
            let f = f?;
            let name = f.file_name().to_string_lossy().into_owned();
            let ext = name.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
            if f.path().is_file() && EXT.contains(&ext.as_str()) {
                images.push((format!("{identity}/{name}"), identity.clone()));
            }
        }
    }
    images.sort();
    Ok(images)
}

/// Paths flagged in a column of `<root>/manifest.tsv` (header line; `path` and e.g. `east_asian`
/// columns, 1 = in the subset), if the file has that column.
fn subset_from_manifest(root: &Path, column: &str) -> Option<std::collections::HashSet<String>> {
    let text = std::fs::read_to_string(root.join("manifest.tsv")).ok()?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next()?.split('\t').collect();
    let path_col = header.iter().position(|h| *h == "path")?;
    let flag_col = header.iter().position(|h| *h == column)?;
    Some(
        lines
            .filter_map(|l| {
                let c: Vec<&str> = l.split('\t').collect();
                if c.get(flag_col).map(|v| v.trim()) == Some("1") {
                    c.get(path_col).map(|p| p.to_string())
                } else {
                    None
                }
            })
            .collect(),
    )
}

pub(super) fn run(args: CalibrateArgs, cfg: &FaceConfig) -> anyhow::Result<()> {
    let listed = match &args.pairs {
        Some(p) => Some(read_pair_list(p)?),
        None => None,
    };
    let images: Vec<String> = match &listed {
        Some(pairs) => {
            let mut v: Vec<String> = pairs
                .iter()
                .flat_map(|p| [p.a.clone(), p.b.clone()])
                .collect();
            v.sort();
            v.dedup();
            v
        }
        None => list_identity_folders(&args.images)?
            .into_iter()
            .map(|(path, _)| path)
            .collect(),
    };
    if images.is_empty() {
        bail!("no images found under {}", args.images.display());
    }

    let engine = start(cfg)?;
    eprintln!(
        "calibrate: {} images, {}, {} workers",
        images.len(),
        match &listed {
            Some(p) => format!("{} listed pairs", p.len()),
            None => "every pair (identity = folder)".to_string(),
        },
        engine.workers()
    );
    let started = std::time::Instant::now();
    let results = embed_all(&engine, &args.images, &images);
    eprintln!(
        "calibrate: embedded {} images in {:.1} s",
        images.len(),
        started.elapsed().as_secs_f64()
    );

    let subset = subset_from_manifest(&args.images, "east_asian");
    let in_subset = |p: &str| subset.as_ref().is_some_and(|s| s.contains(p));
    let mut scores = calibration::Scores::default();
    let mut rejected_images: HashMap<String, usize> = HashMap::new();
    for r in results.values() {
        if let Embedded::Rejected(code) = r {
            *rejected_images.entry(code.clone()).or_default() += 1;
        }
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut score_pair =
        |a: &str, b: &str, same: bool, out: &mut dyn Write| -> anyhow::Result<()> {
            let same_s = u8::from(same);
            match (results.get(a), results.get(b)) {
                (Some(Embedded::Template(ta)), Some(Embedded::Template(tb))) => {
                    let score = engine.compare(ta, tb)?;
                    writeln!(out, "{a} {b} {same_s} {score:.4}")?;
                    scores.push(score, same, in_subset(a) && in_subset(b));
                }
                (ra, rb) => {
                    scores.rejected += 1;
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
            Ok(())
        };
    match &listed {
        Some(pairs) => {
            for p in pairs {
                score_pair(&p.a, &p.b, p.same, &mut out)?;
            }
        }
        None => {
            let identity = |p: &str| p.split('/').next().unwrap_or("").to_string();
            for (i, a) in images.iter().enumerate() {
                for b in &images[i + 1..] {
                    score_pair(a, b, identity(a) == identity(b), &mut out)?;
                }
            }
        }
    }
    out.flush()?;
    drop(out);
    if scores.genuine.is_empty() || scores.impostor.is_empty() {
        bail!("calibration needs both genuine and impostor pairs with faces");
    }
    let table = calibration::build(
        &scores.genuine,
        &scores.impostor,
        &engine.model_label(),
        &args.data,
        scores.rejected,
    );
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let table_path = args.out.join("face-calibration.toml");
    std::fs::write(&table_path, table.to_toml())?;
    // Sanity: what we wrote must load as the engine will load it.
    CalibrationTable::parse(&table.to_toml()).map_err(anyhow::Error::msg)?;
    std::fs::write(
        args.out.join("face-det.svg"),
        calibration::det_svg(&scores.genuine, &scores.impostor, &table),
    )?;
    let mut rejected: Vec<(String, usize)> = rejected_images.into_iter().collect();
    rejected.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    std::fs::write(
        args.out.join("report.md"),
        calibration::report(&table, &scores, &rejected, images.len(), "East-Asian"),
    )?;
    eprintln!(
        "calibrate: {} genuine, {} impostor, {} rejected pairs; wrote {}, face-det.svg and report.md",
        scores.genuine.len(),
        scores.impostor.len(),
        scores.rejected,
        table_path.display()
    );
    for p in &table.point {
        eprintln!(
            "  FMR {:>7.0e}: threshold {:.4}  FNMR {:.4}  measured FMR {:.2e}  ({:?})",
            p.target_fmr, p.threshold, p.fnmr, p.measured_fmr, p.method
        );
    }
    Ok(())
}

/// Analyses each image once on the pool; feeder threads keep every worker busy (analyze_blocking waits
/// for room).
pub(super) fn embed_all(
    engine: &FaceEngine,
    root: &Path,
    images: &[String],
) -> HashMap<String, Embedded> {
    let results: Mutex<HashMap<String, Embedded>> = Mutex::new(HashMap::new());
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..engine.workers() * 2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(rel) = images.get(i) else { break };
                let r = match std::fs::read(root.join(rel)) {
                    Err(e) => Embedded::Rejected(format!("unreadable ({e})")),
                    Ok(bytes) => {
                        match engine.analyze_blocking(Bytes::from(bytes), ImageKind::Selfie) {
                            // Bystanders are common in news photos and the labelled face is the largest: a
                            // second face does not make the template wrong, so calibration ignores that check.
                            // The mask check (issue 25) does not touch the template either: ignored too, so
                            // its few false alarms on these unmasked photos do not change the table.
                            Ok(a) => match (
                                a.quality.failed.iter().find(|f| {
                                    !matches!(
                                        f.check,
                                        QualityCheck::MultipleFaces | QualityCheck::Mask
                                    )
                                }),
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
    results.into_inner().unwrap_or_else(|p| p.into_inner())
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
