//! The 1:N score threshold: a cosine cut-off for a target false positive identification rate (FPIR,
//! the share of searches by a person NOT in the gallery that return at least one candidate) at a
//! given gallery size.
//!
//! PLACEHOLDER (issue 21, branch `i21`): the measured 1:N calibration (gallery + distractors) is
//! written on branch `i21q`, which replaces this file at merge. Until then this derives the cut-off
//! from the committed 1:1 table with the union bound FPIR <= N x FMR, i.e. FMR = FPIR / N, and never
//! goes below the table's strictest point: conservative (it errs towards fewer candidates), not
//! calibrated.

use super::CalibrationTable;
use std::sync::OnceLock;

/// The cosine score a candidate must reach for `target_fpir` over a gallery of `gallery_size`.
pub fn threshold_for_fpir(target_fpir: f64, gallery_size: usize) -> f32 {
    static POINTS: OnceLock<Vec<(f64, f32)>> = OnceLock::new();
    let points = POINTS.get_or_init(|| {
        CalibrationTable::committed()
            .map(|t| {
                t.point
                    .iter()
                    .map(|p| (p.target_fmr, p.threshold))
                    .collect()
            })
            .unwrap_or_default()
    });
    let fmr = target_fpir / gallery_size.max(1) as f64;
    let strictest = points
        .iter()
        .map(|&(_, t)| t)
        .fold(f32::NEG_INFINITY, f32::max);
    if !fmr.is_finite() || fmr <= 0.0 || points.is_empty() {
        // No table, or nonsense asked: match nothing rather than everything.
        return if points.is_empty() { 2.0 } else { strictest };
    }
    points
        .iter()
        .filter(|&&(f, _)| f <= fmr * (1.0 + 1e-9))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map_or(strictest, |&(_, t)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_larger_gallery_or_a_smaller_fpir_never_lowers_the_threshold() {
        let mut last = f32::NEG_INFINITY;
        for n in [1usize, 10, 100, 10_000, 1_000_000] {
            let t = threshold_for_fpir(1e-2, n);
            assert!(t >= last, "{n}: {t} < {last}");
            last = t;
        }
        assert!(threshold_for_fpir(1e-3, 1000) >= threshold_for_fpir(1e-2, 1000));
        assert!(threshold_for_fpir(f64::NAN, 10) > 0.5);
    }
}
