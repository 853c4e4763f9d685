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

pub const RULE: &str = "threshold(FMR) = the empirical quantile when FMR x impostors >= 10; otherwise the max of (a) the \
empirical quantile when FMR x impostors >= 1, else just above the highest impostor score; (b) a normal fit to the impostor scores with 95% upper confidence limits on mean and sd; \
(c) an exponential tail fitted to the top 10% of impostor scores";

/// Builds the table from genuine and impostor scores (cosine).
pub fn build(
    genuine: &[f32],
    impostor: &[f32],
    model: &str,
    data: &str,
    rejected: usize,
) -> CalibrationTable {
    let mut imp: Vec<f64> = impostor.iter().map(|&v| f64::from(v)).collect();
    imp.sort_by(|a, b| b.total_cmp(a)); // descending
    let m = imp.len().max(1) as f64;
    let mean = imp.iter().sum::<f64>() / m;
    let sd = (imp.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (m - 1.0).max(1.0)).sqrt();
    // 95% one-sided upper limits: mean + 1.645 sd/√M; sd·(1 + 1.645/√(2(M−1))) (normal approximation of χ²).
    let mean_up = mean + 1.645 * sd / m.sqrt();
    let sd_up = sd * (1.0 + 1.645 / (2.0 * (m - 1.0)).max(1.0).sqrt());
    // Exponential tail above the 90th percentile u: P(S ≥ t) = 0.1·exp(−(t−u)/β), β = mean excess.
    let k_tail = ((m * 0.1) as usize).max(1).min(imp.len());
    let u = imp.get(k_tail.saturating_sub(1)).copied().unwrap_or(0.0);
    let beta = if k_tail > 0 {
        (imp[..k_tail].iter().map(|v| v - u).sum::<f64>() / k_tail as f64).max(1e-6)
    } else {
        1e-6
    };
    let p_u = k_tail as f64 / m;
    let top = imp.first().copied().unwrap_or(0.0);

    let mut points = Vec::new();
    for (fmr, z) in TARGETS {
        let k = (fmr * m).floor() as usize;
        let empirical = if k >= 1 {
            // At most k impostors at or above: just above the (k+1)-th largest.
            imp.get(k).copied().unwrap_or(top) + 1e-4
        } else {
            top + 1e-4
        };
        let gaussian = mean_up + z * sd_up;
        let tail = u + beta * (p_u / fmr).ln().max(0.0);
        // With at least 10 impostor pairs above it the quantile is measured well enough to use as is;
        // below that, whichever of the data and the two tail models is strictest.
        let (t, method) = if k >= 10 {
            (empirical, PointMethod::Empirical)
        } else {
            (empirical.max(gaussian).max(tail), PointMethod::Extrapolated)
        };
        let t32 = ((t * 10_000.0).ceil() / 10_000.0) as f32;
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
        rule: RULE.to_string(),
        point: points,
    }
}

/// A DET curve (FNMR against FMR, both log scale) as a standalone SVG, with the table's points marked.
pub fn det_svg(genuine: &[f32], impostor: &[f32], table: &CalibrationTable) -> String {
    let (w, h, l, r, t, b) = (640.0, 480.0, 70.0, 20.0, 40.0, 60.0);
    let (xmin, xmax, ymin, ymax) = (1e-4f64.log10(), 0.0f64, 1e-3f64.log10(), 0.0f64);
    let px = |fmr: f64| l + (fmr.max(1e-4).log10() - xmin) / (xmax - xmin) * (w - l - r);
    let py = |fnmr: f64| t + (1.0 - (fnmr.max(1e-3).log10() - ymin) / (ymax - ymin)) * (h - t - b);
    let mut thresholds: Vec<f32> = genuine.iter().chain(impostor).copied().collect();
    thresholds.sort_by(|a, b| a.total_cmp(b));
    thresholds.dedup();
    let (ng, ni) = (genuine.len().max(1) as f64, impostor.len().max(1) as f64);
    let mut path = String::new();
    for th in thresholds.iter().step_by((thresholds.len() / 800).max(1)) {
        let fmr = impostor.iter().filter(|&&s| s >= *th).count() as f64 / ni;
        let fnmr = genuine.iter().filter(|&&s| s < *th).count() as f64 / ng;
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
    for e in -4..=0 {
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
        if p.target_fmr < 1e-4 {
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
    }
}
