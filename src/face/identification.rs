//! The 1:N decision threshold: a cosine cut-off for a gallery search such that a probe of someone who
//! is **not** in the gallery returns any candidate with probability ≈ the target FPIR (false positive
//! identification rate per search), for a gallery of a given size.
//!
//! Model (docs/accuracy.md, "1:N identification"): a non-mate search returns a candidate when at least
//! one of the N non-mate scores reaches the threshold t, so with FMR(t) the chance that one non-mate
//! comparison reaches t, FPIR(t, N) = 1 − (1 − FMR(t))^N. Inverting: the per-comparison FMR to aim at
//! is 1 − (1 − FPIR)^(1/N) ≈ FPIR / N, and t is the impostor-score quantile at that FMR, read from
//! [`TABLE`]: measured by `jpki-face calibrate --distractors` on the 3.6 million non-mate comparisons
//! of the 1:N run on "LFW-gray + web photos" (docs/accuracy.md, "1:N identification"): empirical where
//! at least ten non-mate scores lie above, below that the 1:1 table's generalised Pareto tail and never
//! below "just above the highest non-mate score seen" (0.7518, a pair of twins), which is why the
//! table is flat from 1e-7 to 1e-9. Interpolated linearly in log10(FMR). The independence assumption
//! was checked on the run: model and measured FPIR agree within 15 % at 1e-1 … 1e-3 for galleries of
//! 100 … 2,535 (the model is 14 % optimistic at 1e-3). Beyond the data it is extrapolation.

/// The measured points: (log10 FMR per non-mate comparison, cosine threshold), FMR decreasing.
/// Written from the 1:N calibration run's output (`identification-table.txt`); see docs/accuracy.md.
pub const TABLE: [(f64, f32); 23] = [
    (-1.0, 0.2027),
    (-1.5, 0.2541),
    (-2.0, 0.2959),
    (-2.5, 0.3324),
    (-3.0, 0.3646),
    (-3.5, 0.3932),
    (-4.0, 0.4205),
    (-4.5, 0.4445),
    (-5.0, 0.4699),
    (-5.5, 0.4906),
    (-6.0, 0.5277),
    (-6.5, 0.6855),
    (-7.0, 0.7518),
    (-7.5, 0.7518),
    (-8.0, 0.7518),
    (-8.5, 0.7518),
    (-9.0, 0.7518),
    (-9.5, 0.7702),
    (-10.0, 0.8116),
    (-10.5, 0.8550),
    (-11.0, 0.9004),
    (-11.5, 0.9479),
    (-12.0, 0.9976),
];

/// Target FPIRs outside this range are clamped into it (0 or NaN asks for the strictest).
pub const FPIR_RANGE: (f64, f64) = (1e-6, 0.5);

/// The per-comparison FMR that gives `target_fpir` over `gallery_size` independent non-mates.
pub fn fmr_for_fpir(target_fpir: f64, gallery_size: usize) -> f64 {
    let fpir = if target_fpir.is_nan() {
        FPIR_RANGE.0
    } else {
        target_fpir.clamp(FPIR_RANGE.0, FPIR_RANGE.1)
    };
    let n = gallery_size.max(1) as f64;
    // 1 − (1 − f)^(1/n), without cancellation for small f or large n.
    -(f64::ln_1p(-fpir) / n).exp_m1()
}

/// The cosine threshold at per-comparison `fmr` in [`TABLE`]: see [`threshold_in`].
pub fn threshold_for_fmr(fmr: f64) -> f32 {
    threshold_in(&TABLE, fmr)
}

/// The cosine threshold at per-comparison `fmr` in `table` ((log10 FMR, threshold), FMR decreasing, at
/// least two points): linear in log10(FMR) between points; above the table's largest FMR its loosest
/// point (never looser than measured); below its smallest, the last segment's slope continued (the
/// exponential tail the table ends on), never above 1.
pub fn threshold_in(table: &[(f64, f32)], fmr: f64) -> f32 {
    let x = if fmr > 0.0 { fmr.log10() } else { -300.0 };
    let (x0, t0) = table[0];
    if x >= x0 {
        return t0;
    }
    for w in table.windows(2) {
        let ((xa, ta), (xb, tb)) = (w[0], w[1]);
        if x >= xb {
            let f = (xa - x) / (xa - xb);
            return (f64::from(ta) + f * (f64::from(tb) - f64::from(ta))) as f32;
        }
    }
    let ((xa, ta), (xb, tb)) = (table[table.len() - 2], table[table.len() - 1]);
    let slope = (f64::from(tb) - f64::from(ta)) / (xa - xb);
    (f64::from(tb) + slope * (xb - x)).min(1.0) as f32
}

/// The inverse of [`threshold_in`] on the table's range: the per-comparison FMR at cosine `t`
/// (log-linear between points; the ends clamp to the table's first and last FMR).
pub fn fmr_in(table: &[(f64, f32)], t: f32) -> f64 {
    let (x0, t0) = table[0];
    if t <= t0 {
        return 10f64.powf(x0);
    }
    for w in table.windows(2) {
        let ((xa, ta), (xb, tb)) = (w[0], w[1]);
        if t <= tb {
            let f = if tb > ta {
                f64::from(t - ta) / f64::from(tb - ta)
            } else {
                1.0
            };
            return 10f64.powf(xa + f * (xb - xa));
        }
    }
    10f64.powf(table[table.len() - 1].0)
}

/// The cosine cut-off for a 1:N search of a gallery of `gallery_size` templates so that a non-mate
/// probe returns any candidate with probability ≈ `target_fpir`. Non-decreasing in `gallery_size`,
/// non-increasing in `target_fpir`; a target outside [`FPIR_RANGE`] is clamped into it, a gallery of
/// 0 counts as 1.
pub fn threshold_for_fpir(target_fpir: f64, gallery_size: usize) -> f32 {
    threshold_for_fmr(fmr_for_fpir(target_fpir, gallery_size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_ordered() {
        for w in TABLE.windows(2) {
            assert!(w[1].0 < w[0].0, "FMR must decrease: {w:?}");
            assert!(w[1].1 >= w[0].1, "thresholds must not fall: {w:?}");
        }
        assert!(TABLE.iter().all(|&(_, t)| (-1.0..=1.0).contains(&t)));
    }

    #[test]
    fn monotone_in_gallery_size_and_in_fpir() {
        let sizes = [
            0usize,
            1,
            2,
            10,
            100,
            1_000,
            2_711,
            10_000,
            100_000,
            1_000_000,
            10_000_000,
            usize::MAX,
        ];
        let fpirs = [
            0.0, 1e-9, 1e-6, 1e-5, 1e-4, 1e-3, 3e-3, 1e-2, 0.1, 0.5, 0.9, 1.0,
        ];
        for &f in &fpirs {
            for w in sizes.windows(2) {
                let (a, b) = (threshold_for_fpir(f, w[0]), threshold_for_fpir(f, w[1]));
                assert!(b >= a, "fpir {f}: size {} → {a}, size {} → {b}", w[0], w[1]);
            }
        }
        for &n in &sizes {
            for w in fpirs.windows(2) {
                let (a, b) = (threshold_for_fpir(w[0], n), threshold_for_fpir(w[1], n));
                assert!(b <= a, "size {n}: fpir {} → {a}, fpir {} → {b}", w[0], w[1]);
            }
        }
        // Strictly rising over the range that matters.
        assert!(threshold_for_fpir(1e-2, 1_000_000) > threshold_for_fpir(1e-2, 10_000));
        assert!(threshold_for_fpir(1e-3, 10_000) > threshold_for_fpir(1e-2, 10_000));
    }

    #[test]
    fn clamping_outside_the_measured_range_is_sane() {
        // Out-of-range or meaningless targets land on the range's ends, never on a looser cut-off.
        assert_eq!(
            threshold_for_fpir(f64::NAN, 1000),
            threshold_for_fpir(1e-6, 1000)
        );
        assert_eq!(
            threshold_for_fpir(0.0, 1000),
            threshold_for_fpir(1e-6, 1000)
        );
        assert_eq!(
            threshold_for_fpir(-1.0, 1000),
            threshold_for_fpir(1e-6, 1000)
        );
        assert_eq!(threshold_for_fpir(1.0, 1000), threshold_for_fpir(0.5, 1000));
        assert_eq!(threshold_for_fpir(0.01, 0), threshold_for_fpir(0.01, 1));
        // A tiny gallery with a loose target asks for an FMR above the table: its loosest point.
        assert_eq!(threshold_for_fpir(0.5, 1), TABLE[0].1);
        // Far beyond the table: finite, at most 1, at least the table's strictest point.
        for n in [1_000_000_000usize, usize::MAX] {
            let t = threshold_for_fpir(1e-6, n);
            assert!(
                t.is_finite() && t <= 1.0 && t >= TABLE[TABLE.len() - 1].1,
                "{t}"
            );
        }
    }

    #[test]
    fn the_model_inverts_fpir_over_independent_comparisons() {
        for (fpir, n) in [(1e-2, 1usize), (1e-3, 1000), (1e-2, 1_000_000), (0.3, 50)] {
            let fmr = fmr_for_fpir(fpir, n);
            let back = 1.0 - (1.0 - fmr).powf(n as f64);
            assert!((back - fpir).abs() < fpir * 1e-6, "{fpir} {n}: {back}");
        }
        // ≈ FPIR / N for small FPIR.
        let fmr = fmr_for_fpir(1e-3, 1_000_000);
        assert!((fmr / 1e-9 - 1.0).abs() < 1e-3, "{fmr}");
    }

    #[test]
    fn table_points_are_returned_exactly_and_interpolated_between() {
        for &(x, t) in &TABLE {
            assert_eq!(threshold_for_fmr(10f64.powf(x)), t, "at 1e{x}");
        }
        let (a, b) = (TABLE[1], TABLE[2]);
        let mid = threshold_for_fmr(10f64.powf((a.0 + b.0) / 2.0));
        assert!(mid > a.1 && mid < b.1);
    }
}
