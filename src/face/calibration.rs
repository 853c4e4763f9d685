//! Score thresholds at a target false match rate: the committed calibration table, and the maths that
//! builds it from labelled genuine / impostor scores (empirical quantiles, conservative tail
//! extrapolation below what the data can measure) plus a DET plot.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// The committed table, compiled in: thresholds must not drift with the working directory.
pub const COMMITTED_TOML: &str = include_str!("../../config/face-calibration.toml");

/// A decision threshold: accept when `score >= score`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Threshold {
    pub score: f32,
    pub target_fmr: f64,
}

/// How a table point's threshold was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PointMethod {
    /// Measured: at least one impostor pair per 1/FMR, and no tail model was stricter.
    Empirical,
    /// Below what the impostor count can measure (or a tail model was stricter than the data).
    Extrapolated,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationPoint {
    pub target_fmr: f64,
    pub threshold: f32,
    /// Share of genuine pairs below the threshold on the calibration data.
    pub fnmr: f64,
    /// Share of impostor pairs at or above the threshold on the calibration data.
    pub measured_fmr: f64,
    pub method: PointMethod,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationTable {
    pub model: String,
    pub preprocessing_version: u16,
    pub data: String,
    pub genuine_pairs: usize,
    pub impostor_pairs: usize,
    pub rejected_pairs: usize,
    pub rule: String,
    pub point: Vec<CalibrationPoint>,
}

/// The FMRs a table holds, with the standard normal's upper-tail quantile z(FMR).
pub const TARGETS: [(f64, f64); 6] = [
    (1e-1, 1.281_551_6),
    (1e-2, 2.326_347_9),
    (1e-3, 3.090_232_3),
    (1e-4, 3.719_016_5),
    (1e-5, 4.264_890_8),
    (1e-6, 4.753_424_3),
];

impl CalibrationTable {
    pub fn committed() -> Result<CalibrationTable, String> {
        Self::parse(COMMITTED_TOML)
    }

    pub fn parse(toml: &str) -> Result<CalibrationTable, String> {
        use figment::providers::{Format, Toml};
        let t: CalibrationTable = figment::Figment::from(Toml::string(toml))
            .extract()
            .map_err(|e| e.to_string())?;
        if t.point.is_empty() {
            return Err("no calibration points".into());
        }
        if t.point
            .iter()
            .any(|p| !(p.target_fmr > 0.0 && p.target_fmr < 1.0 && p.threshold.is_finite()))
        {
            return Err("a point has an FMR outside (0, 1) or a non-finite threshold".into());
        }
        Ok(t)
    }

    /// The threshold of the table point whose FMR is the largest one not above `fmr` (never looser than
    /// asked); below the table's smallest FMR, its strictest threshold.
    pub fn threshold_for_fmr(&self, fmr: f64) -> Threshold {
        let at_most = self
            .point
            .iter()
            .filter(|p| p.target_fmr <= fmr * (1.0 + 1e-9))
            .max_by(|a, b| a.target_fmr.total_cmp(&b.target_fmr));
        let point = at_most.or_else(|| {
            tracing::warn!(
                fmr,
                "target FMR below the calibration table: using its strictest threshold"
            );
            self.point
                .iter()
                .max_by(|a, b| a.threshold.total_cmp(&b.threshold))
        });
        // An empty table (parse() refuses one) would match nothing rather than everything.
        let score = point.map_or(2.0, |p| p.threshold);
        Threshold {
            score,
            target_fmr: fmr,
        }
    }

    pub fn to_toml(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# Face-match calibration table, written by `jpki-face calibrate` (see docs/accuracy.md).");
        let _ = writeln!(
            s,
            "# Decisions accept when cosine >= threshold. Compiled into the binary."
        );
        let _ = writeln!(s, "model = {:?}", self.model);
        let _ = writeln!(s, "preprocessing_version = {}", self.preprocessing_version);
        let _ = writeln!(s, "data = {:?}", self.data);
        let _ = writeln!(s, "genuine_pairs = {}", self.genuine_pairs);
        let _ = writeln!(s, "impostor_pairs = {}", self.impostor_pairs);
        let _ = writeln!(s, "rejected_pairs = {}", self.rejected_pairs);
        let _ = writeln!(s, "rule = {:?}", self.rule);
        for p in &self.point {
            let method = match p.method {
                PointMethod::Empirical => "empirical",
                PointMethod::Extrapolated => "extrapolated",
            };
            let _ = writeln!(
                s,
                "\n[[point]]\ntarget_fmr = {:e}\nthreshold = {:.4}\nfnmr = {:.4}\nmeasured_fmr = {:.6}\nmethod = \"{method}\"",
                p.target_fmr, p.threshold, p.fnmr, p.measured_fmr
            );
        }
        s
    }
}

pub const RULE: &str = "threshold(FMR) = the empirical one (the smallest 4-decimal value with at most FMR x impostors at or above it) \
whenever FMR x impostors >= 10; below that, a generalised Pareto tail (probability-weighted moments, shape never below 0) fitted to the \
highest TAIL impostor scores, and never below the empirical bound";

/// How many of the highest impostor scores the tail model is fitted to (fewer if there are fewer).
pub const TAIL: usize = 500;

/// Scores of a calibration run: all pairs, and the pairs of which both images are in a labelled subset.
#[derive(Debug, Default, Clone)]
pub struct Scores {
    pub genuine: Vec<f32>,
    pub impostor: Vec<f32>,
    pub subset_genuine: Vec<f32>,
    pub subset_impostor: Vec<f32>,
    pub rejected: usize,
}

impl Scores {
    pub fn push(&mut self, score: f32, same: bool, in_subset: bool) {
        match (same, in_subset) {
            (true, false) => self.genuine.push(score),
            (false, false) => self.impostor.push(score),
            (true, true) => {
                self.genuine.push(score);
                self.subset_genuine.push(score);
            }
            (false, true) => {
                self.impostor.push(score);
                self.subset_impostor.push(score);
            }
        }
    }
}

/// Wilson score interval for `k` successes in `n` trials at 95 % (z = 1.96).
pub fn wilson(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (k, n, z) = (k as f64, n as f64, 1.96f64);
    let p = k / n;
    let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let half = z / (1.0 + z * z / n) * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// The smallest value on the 4-decimal grid that is strictly above `score` (as the f32 comparison sees it).
pub(crate) fn grid_above(score: f32) -> f32 {
    let mut t = ((f64::from(score) * 10_000.0).floor() + 1.0) / 10_000.0;
    while (t as f32) <= score {
        t += 1e-4;
    }
    t as f32
}

/// A generalised Pareto tail over `u` fitted by probability-weighted moments (Hosking & Wallis 1987) to
/// the exceedances `y` (ascending): returns (sigma, xi). The shape is not allowed below 0 (the
/// exponential tail): a light, bounded tail is never extrapolated as such.
fn gpd_pwm(y: &[f64]) -> (f64, f64) {
    let n = y.len() as f64;
    let a0 = y.iter().sum::<f64>() / n;
    let a1 = y
        .iter()
        .enumerate()
        .map(|(i, v)| (1.0 - (i as f64 + 1.0 - 0.35) / n) * v)
        .sum::<f64>()
        / n;
    let d = a0 - 2.0 * a1;
    if d <= 1e-12 {
        return (a0.max(1e-6), 0.0);
    }
    // Hosking's k = -xi.
    let k = a0 / d - 2.0;
    let xi = (-k).max(0.0);
    let sigma = if xi == 0.0 { a0 } else { 2.0 * a0 * a1 / d };
    (sigma.max(1e-6), xi)
}

/// The tail model's threshold for `fmr`, from impostor scores sorted descending.
pub(crate) fn tail_threshold(imp_desc: &[f64], fmr: f64) -> f64 {
    let m = imp_desc.len();
    let n_t = TAIL.min(m.saturating_sub(1)).max(1);
    let u = imp_desc.get(n_t).copied().unwrap_or(0.0);
    let mut y: Vec<f64> = imp_desc[..n_t].iter().map(|v| v - u).collect();
    y.reverse();
    let (sigma, xi) = gpd_pwm(&y);
    let p_u = n_t as f64 / m.max(1) as f64;
    let ratio = (p_u / fmr).max(1.0);
    if xi < 1e-9 {
        u + sigma * ratio.ln()
    } else {
        u + sigma / xi * (ratio.powf(xi) - 1.0)
    }
}

/// Builds the table from genuine and impostor scores (cosine).
pub fn build(
    genuine: &[f32],
    impostor: &[f32],
    model: &str,
    data: &str,
    rejected: usize,
) -> CalibrationTable {
    let mut imp32: Vec<f32> = impostor.to_vec();
    imp32.sort_by(|a, b| b.total_cmp(a)); // descending
    let imp: Vec<f64> = imp32.iter().map(|&v| f64::from(v)).collect();
    let m = imp.len().max(1) as f64;

    let mut points = Vec::new();
    for (fmr, _) in TARGETS {
        let k = (fmr * m + 1e-9).floor() as usize;
        // At most k impostors at or above: just above the (k+1)-th largest.
        let empirical = match imp32.get(k) {
            Some(&s) => grid_above(s),
            None => -1.0,
        };
        let (t32, method) = if k >= 10 {
            (empirical, PointMethod::Empirical)
        } else {
            let tail = tail_threshold(&imp, fmr);
            let t = ((tail * 10_000.0).ceil() / 10_000.0) as f32;
            (t.max(empirical), PointMethod::Extrapolated)
        };
        let fnmr =
            genuine.iter().filter(|&&g| g < t32).count() as f64 / genuine.len().max(1) as f64;
        let measured_fmr = impostor.iter().filter(|&&i| i >= t32).count() as f64 / m;
        points.push(CalibrationPoint {
            target_fmr: fmr,
            threshold: t32,
            fnmr,
            measured_fmr,
            method,
        });
    }
    CalibrationTable {
        model: model.to_string(),
        preprocessing_version: super::template::PREPROCESSING_VERSION,
        data: data.to_string(),
        genuine_pairs: genuine.len(),
        impostor_pairs: impostor.len(),
        rejected_pairs: rejected,
        rule: RULE.replace("TAIL", &TAIL.to_string()),
        point: points,
    }
}

fn pct(v: f64) -> String {
    format!("{:.2} %", v * 100.0)
}

/// A markdown report of a calibration run: per target FMR the threshold, the FMR measured there and the
/// FNMR, each with a 95 % Wilson interval, on all pairs and on the labelled subset.
pub fn report(
    table: &CalibrationTable,
    scores: &Scores,
    rejected_images: &[(String, usize)],
    images: usize,
    subset_name: &str,
) -> String {
    let mut s = String::new();
    let (ng, ni) = (scores.genuine.len(), scores.impostor.len());
    let _ = writeln!(
        s,
        "# Calibration report: {} on {}\n\n{images} images; {ng} genuine and {ni} impostor pairs scored, {} pairs left out (an image failed quality).\n",
        table.model, table.data, scores.rejected
    );
    if !rejected_images.is_empty() {
        let _ = writeln!(
            s,
            "| images left out (first failed check) | images |\n|---|---|"
        );
        for (code, n) in rejected_images {
            let _ = writeln!(s, "| `{code}` | {n} |");
        }
        let _ = writeln!(s);
    }
    let stats = |v: &[f32]| {
        let n = v.len().max(1) as f64;
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let sd = (v
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n)
            .sqrt();
        let (lo, hi) = v
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        format!("mean {mean:.3}, sd {sd:.3}, lowest {lo:.3}, highest {hi:.3}")
    };
    let _ = writeln!(
        s,
        "Genuine scores: {}. Impostor scores: {}.\n",
        stats(&scores.genuine),
        stats(&scores.impostor)
    );
    let _ = writeln!(
        s,
        "| target FMR | threshold | method | impostors ≥ threshold (FMR, 95 % CI) | FNMR (95 % CI) |\n|---|---|---|---|---|"
    );
    for p in &table.point {
        let fa = scores
            .impostor
            .iter()
            .filter(|&&v| v >= p.threshold)
            .count();
        let fr = scores.genuine.iter().filter(|&&v| v < p.threshold).count();
        let (flo, fhi) = wilson(fa, ni);
        let (rlo, rhi) = wilson(fr, ng);
        let _ = writeln!(
            s,
            "| {:e} | {:.4} | {:?} | {fa} ({:.1e}, {:.1e}–{:.1e}) | {} ({}–{}; {fr}/{ng}) |",
            p.target_fmr,
            p.threshold,
            p.method,
            fa as f64 / ni.max(1) as f64,
            flo,
            fhi,
            pct(fr as f64 / ng.max(1) as f64),
            pct(rlo),
            pct(rhi)
        );
    }
    let (sg, si) = (scores.subset_genuine.len(), scores.subset_impostor.len());
    if sg + si > 0 {
        let _ = writeln!(
            s,
            "\n{subset_name} subset (both images in it): {sg} genuine, {si} impostor pairs; genuine {}; impostor {}.\n",
            stats(&scores.subset_genuine),
            stats(&scores.subset_impostor)
        );
        let _ = writeln!(
            s,
            "| target FMR | threshold | {subset_name} impostors ≥ threshold (95 % CI) | {subset_name} FNMR (95 % CI) |\n|---|---|---|---|"
        );
        for p in &table.point {
            let fa = scores
                .subset_impostor
                .iter()
                .filter(|&&v| v >= p.threshold)
                .count();
            let fr = scores
                .subset_genuine
                .iter()
                .filter(|&&v| v < p.threshold)
                .count();
            let (flo, fhi) = wilson(fa, si);
            let (rlo, rhi) = wilson(fr, sg);
            let _ = writeln!(
                s,
                "| {:e} | {:.4} | {fa}/{si} ({:.1e}–{:.1e}) | {} ({}–{}; {fr}/{sg}) |",
                p.target_fmr,
                p.threshold,
                flo,
                fhi,
                pct(fr as f64 / sg.max(1) as f64),
                pct(rlo),
                pct(rhi)
            );
        }
    }
    s
}

/// A DET curve (FNMR against FMR, both log scale) as a standalone SVG, with the table's points marked.
pub fn det_svg(genuine: &[f32], impostor: &[f32], table: &CalibrationTable) -> String {
    let (w, h, l, r, t, b) = (640.0, 480.0, 70.0, 20.0, 40.0, 60.0);
    let (xmin, xmax, ymin, ymax) = (1e-6f64.log10(), 0.0f64, 1e-3f64.log10(), 0.0f64);
    let px = |fmr: f64| l + (fmr.max(1e-6).log10() - xmin) / (xmax - xmin) * (w - l - r);
    let py = |fnmr: f64| t + (1.0 - (fnmr.max(1e-3).log10() - ymin) / (ymax - ymin)) * (h - t - b);
    // Thresholds at log-spaced impostor ranks (the low-FMR end is where the decisions are) and at
    // evenly spaced genuine ranks; rates by binary search in the sorted scores.
    let mut imp: Vec<f32> = impostor.to_vec();
    imp.sort_by(|a, b| a.total_cmp(b));
    let mut gen: Vec<f32> = genuine.to_vec();
    gen.sort_by(|a, b| a.total_cmp(b));
    let (ng, ni) = (gen.len().max(1) as f64, imp.len().max(1) as f64);
    let mut thresholds: Vec<f32> = Vec::new();
    let mut k = 1f64;
    while (k as usize) <= imp.len() {
        thresholds.push(imp[imp.len() - k as usize]);
        k = (k * 1.02).max(k + 1.0);
    }
    thresholds.extend(gen.iter().step_by((gen.len() / 400).max(1)));
    thresholds.sort_by(|a, b| a.total_cmp(b));
    thresholds.dedup();
    let mut path = String::new();
    for th in &thresholds {
        let fmr = (imp.len() - imp.partition_point(|&v| v < *th)) as f64 / ni;
        let fnmr = gen.partition_point(|&v| v < *th) as f64 / ng;
        if fmr <= 0.0 || fnmr <= 0.0 {
            continue;
        }
        let _ = write!(
            path,
            "{}{:.1},{:.1} ",
            if path.is_empty() { "M" } else { "L" },
            px(fmr),
            py(fnmr)
        );
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14">DET: {} on {} ({} genuine / {} impostor pairs)</text>"#,
        w / 2.0,
        table.model,
        table.data,
        table.genuine_pairs,
        table.impostor_pairs
    );
    for e in -6..=0 {
        let x = px(10f64.powi(e));
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{t}" x2="{x:.1}" y2="{}" stroke="#ddd"/><text x="{x:.1}" y="{}" text-anchor="middle">1e{e}</text>"##,
            h - b,
            h - b + 16.0
        );
    }
    for e in -3..=0 {
        let y = py(10f64.powi(e));
        let _ = writeln!(
            s,
            r##"<line x1="{l}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">1e{e}</text>"##,
            w - r,
            l - 6.0,
            y + 4.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">false match rate (FMR)</text>"#,
        (l + w - r) / 2.0,
        h - 15.0
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(18,{}) rotate(-90)" text-anchor="middle">false non-match rate (FNMR)</text>"#,
        (t + h - b) / 2.0
    );
    let _ = writeln!(
        s,
        r##"<rect x="{l}" y="{t}" width="{}" height="{}" fill="none" stroke="#333"/>"##,
        w - l - r,
        h - t - b
    );
    let _ = writeln!(
        s,
        r##"<path d="{path}" fill="none" stroke="#1f5fbf" stroke-width="2"/>"##
    );
    for p in &table.point {
        if p.target_fmr < 1e-6 {
            continue;
        }
        let (x, y) = (px(p.target_fmr), py(p.fnmr));
        let _ = writeln!(
            s,
            r##"<circle cx="{x:.1}" cy="{y:.1}" r="4" fill="#c0392b"/><text x="{:.1}" y="{:.1}">t={:.3} ({:?})</text>"##,
            x + 6.0,
            y - 6.0,
            p.threshold,
            p.method
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n)
            .map(|i| lo + (hi - lo) * i as f32 / (n - 1) as f32)
            .collect()
    }

    #[test]
    fn thresholds_rise_as_fmr_falls_and_never_undercut_the_data() {
        let genuine = spread(1000, 0.3, 0.9);
        let impostor = spread(3000, -0.2, 0.3);
        let t = build(&genuine, &impostor, "m", "d", 0);
        for w in t.point.windows(2) {
            assert!(w[1].threshold >= w[0].threshold, "{:?}", t.point);
        }
        for p in &t.point {
            assert!(p.measured_fmr <= p.target_fmr.max(1.0 / 3000.0), "{p:?}");
        }
        // FMR 1e-4 with 3000 impostors cannot be measured: above the highest impostor score.
        let p4 = t.point.iter().find(|p| p.target_fmr == 1e-4).unwrap();
        assert!(p4.threshold > 0.3 && p4.method == PointMethod::Extrapolated);
    }

    #[test]
    fn lookup_never_returns_a_looser_threshold() {
        let t = build(
            &spread(100, 0.3, 0.9),
            &spread(3000, -0.2, 0.3),
            "m",
            "d",
            0,
        );
        let round = CalibrationTable::parse(&t.to_toml()).expect("round trip");
        let at = |f| round.threshold_for_fmr(f).score;
        assert!(at(5e-4) >= at(1e-3));
        assert_eq!(at(5e-4), at(1e-4));
        assert!(at(1e-7) >= at(1e-6));
        assert_eq!(round.threshold_for_fmr(1e-4).target_fmr, 1e-4);
    }

    #[test]
    fn committed_table_parses() {
        let t = CalibrationTable::committed().expect("committed table is valid");
        assert!(t.threshold_for_fmr(1e-5).score >= t.threshold_for_fmr(1e-4).score);
        // Every cross-identity pair was scored: FMR 1e-4 is measured, not extrapolated.
        assert!(
            t.impostor_pairs as f64 * 1e-4 >= 10.0,
            "{}",
            t.impostor_pairs
        );
        for p in &t.point {
            let measurable = p.target_fmr * t.impostor_pairs as f64 >= 10.0;
            assert_eq!(p.method == PointMethod::Empirical, measurable, "{p:?}");
            assert!(p.measured_fmr <= p.target_fmr, "{p:?}");
        }
    }

    /// Deterministic, roughly normal impostor scores (sum of 12 uniforms from a fixed LCG).
    fn normalish(n: usize, mean: f64, sd: f64, seed: u64) -> Vec<f32> {
        let mut x = seed;
        let mut next = || {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| (mean + sd * ((0..12).map(|_| next()).sum::<f64>() - 6.0)) as f32)
            .collect()
    }

    #[test]
    fn the_threshold_is_the_measured_one_wherever_ten_impostors_lie_above_it() {
        let impostor = normalish(200_000, 0.09, 0.09, 7);
        let genuine = normalish(2_000, 0.65, 0.11, 8);
        let t = build(&genuine, &impostor, "m", "d", 0);
        let above = |th: f32| impostor.iter().filter(|&&v| v >= th).count();
        for p in &t.point {
            let k = (p.target_fmr * impostor.len() as f64 + 1e-9).floor() as usize;
            // Never more impostors at or above than the target allows.
            assert!(above(p.threshold) <= k, "{p:?}");
            if k >= 10 {
                assert_eq!(p.method, PointMethod::Empirical, "{p:?}");
                // Exactly the measured quantile: one grid step lower lets too many impostors through.
                assert!(above(p.threshold - 1e-4) > k, "{p:?}");
                assert_eq!(p.measured_fmr, above(p.threshold) as f64 / 200_000.0);
            } else {
                assert_eq!(p.method, PointMethod::Extrapolated, "{p:?}");
            }
        }
        // 200,000 impostors measure FMR down to 1e-4 (20 above), not 1e-5 (2 above).
        let at = |f: f64| t.point.iter().find(|p| p.target_fmr == f).unwrap();
        assert_eq!(at(1e-4).method, PointMethod::Empirical);
        assert_eq!(at(1e-5).method, PointMethod::Extrapolated);
        assert!(at(1e-5).threshold > at(1e-4).threshold);
    }

    #[test]
    fn the_tail_model_extrapolates_a_normal_tail_close_to_its_true_quantile() {
        // A normal N(0.09, 0.09²) has its 1e-5 upper quantile at 0.09 + 4.265·0.09 = 0.474. Fitted on
        // 200,000 draws, the tail model lands near it and never far below it.
        let impostor = normalish(200_000, 0.09, 0.09, 11);
        let t = build(&[0.9], &impostor, "m", "d", 0);
        let p5 = t.point.iter().find(|p| p.target_fmr == 1e-5).unwrap();
        assert!(p5.threshold > 0.44 && p5.threshold < 0.56, "{p5:?}");
    }

    #[test]
    fn wilson_intervals() {
        let (lo, hi) = wilson(0, 100);
        assert!(lo == 0.0 && (hi - 0.037).abs() < 0.001, "{hi}");
        let (lo, hi) = wilson(50, 100);
        assert!(
            (lo - 0.404).abs() < 0.001 && (hi - 0.596).abs() < 0.001,
            "{lo} {hi}"
        );
        assert_eq!(wilson(0, 0), (0.0, 1.0));
    }
}
