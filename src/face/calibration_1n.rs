//! The maths of a 1:N calibration run (`jpki-face calibrate --distractors`): from mate and non-mate
//! searches of one gallery, FNIR at a measured FPIR, the per-comparison FMR table behind
//! [`super::identification::threshold_for_fpir`], and how FPIR grows with the gallery size. No I/O.

use super::calibration::{grid_above, tail_threshold, wilson};
use super::identification::{fmr_in, threshold_in};
use std::fmt::Write as _;

/// A search whose probe's identity is enrolled: its mate's score and rank (1-based) in the search.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MateSearch {
    pub mate_score: f32,
    pub mate_rank: usize,
}

/// A search whose probe's identity is not enrolled: every score it got, highest first.
#[derive(Debug, Clone, PartialEq)]
pub struct NonMateSearch {
    pub scores_desc: Vec<f32>,
}

impl NonMateSearch {
    pub fn new(mut scores: Vec<f32>) -> NonMateSearch {
        scores.sort_by(|a, b| b.total_cmp(a));
        NonMateSearch {
            scores_desc: scores,
        }
    }

    pub fn max(&self) -> f32 {
        self.scores_desc
            .first()
            .copied()
            .unwrap_or(f32::NEG_INFINITY)
    }

    /// How many of its scores are at or above `t`.
    fn at_least(&self, t: f32) -> usize {
        self.scores_desc.partition_point(|&s| s >= t)
    }

    /// The chance that a search of a random `n` of its gallery entries returns a candidate at `t`:
    /// 1 − C(N − k, n) / C(N, n) with k entries at or above `t` (exact, no sampling).
    fn hit_chance(&self, t: f32, n: usize) -> f64 {
        let big_n = self.scores_desc.len();
        let k = self.at_least(t);
        if k == 0 || n == 0 {
            return 0.0;
        }
        if n > big_n - k {
            return 1.0;
        }
        let mut miss = 1.0f64;
        for i in 0..n {
            miss *= (big_n - k - i) as f64 / (big_n - i) as f64;
            if miss < 1e-300 {
                return 1.0;
            }
        }
        1.0 - miss
    }
}

/// FNIR at threshold `t` with at most `limit` candidates: the share of mate searches whose mate is not
/// among the candidates (score below `t`, or outranked by `limit` others).
pub fn fnir(mates: &[MateSearch], t: f32, limit: usize) -> (usize, f64) {
    let missed = mates
        .iter()
        .filter(|m| m.mate_score < t || m.mate_rank > limit)
        .count();
    (missed, missed as f64 / mates.len().max(1) as f64)
}

/// The share of non-mate searches that return a candidate at `t` (on the whole gallery).
pub fn fpir(non_mates: &[NonMateSearch], t: f32) -> (usize, f64) {
    let hits = non_mates.iter().filter(|s| s.max() >= t).count();
    (hits, hits as f64 / non_mates.len().max(1) as f64)
}

/// The expected FPIR at `t` of a gallery of `n` entries drawn at random from the measured one.
pub fn fpir_at_size(non_mates: &[NonMateSearch], t: f32, n: usize) -> f64 {
    non_mates.iter().map(|s| s.hit_chance(t, n)).sum::<f64>() / non_mates.len().max(1) as f64
}

/// The smallest 4-decimal threshold at which at most ⌊fpir · searches⌋ non-mate searches return a
/// candidate (the measured FPIR threshold; `None` when fewer than one search per 1/fpir).
pub fn measured_threshold(non_mates: &[NonMateSearch], fpir: f64) -> Option<f32> {
    let mut maxes: Vec<f32> = non_mates.iter().map(NonMateSearch::max).collect();
    maxes.sort_by(|a, b| b.total_cmp(a));
    let k = (fpir * maxes.len() as f64 + 1e-9).floor() as usize;
    if k == 0 {
        return None;
    }
    maxes.get(k).map(|&s| grid_above(s))
}

/// The per-comparison FMR table, half a decade apart from 1e-1 down to `1e{min_log10}`: the threshold
/// of each FMR over all non-mate comparisons `pooled` (any order), empirical where at least ten lie
/// at or above it, else the 1:1 table's generalised Pareto tail; made non-decreasing.
pub fn fmr_table(pooled: &[f32], min_log10: f64) -> Vec<(f64, f32)> {
    let mut desc32 = pooled.to_vec();
    desc32.sort_by(|a, b| b.total_cmp(a));
    let desc: Vec<f64> = desc32.iter().map(|&v| f64::from(v)).collect();
    let m = desc.len().max(1) as f64;
    let mut table: Vec<(f64, f32)> = Vec::new();
    let mut x = -1.0;
    while x >= min_log10 - 1e-9 {
        let fmr = 10f64.powf(x);
        let k = (fmr * m + 1e-9).floor() as usize;
        let empirical = desc32.get(k).map_or(-1.0, |&s| grid_above(s));
        let t = if k >= 10 {
            empirical
        } else {
            let tail = (tail_threshold(&desc, fmr) * 10_000.0).ceil() / 10_000.0;
            (tail as f32).max(empirical).min(1.0)
        };
        let t = table.last().map_or(t, |&(_, prev)| t.max(prev));
        table.push((x, t));
        x -= 0.5;
    }
    table
}

/// FPIR(t, N) under the model: 1 − (1 − FMR(t))^N with FMR read from `table`.
pub fn model_fpir(table: &[(f64, f32)], t: f32, n: usize) -> f64 {
    let fmr = fmr_in(table, t);
    -(n as f64 * (-fmr).ln_1p()).exp_m1()
}

/// The model's threshold for `fpir` at gallery size `n` on `table`.
pub fn model_threshold(table: &[(f64, f32)], fpir: f64, n: usize) -> f32 {
    let fmr = -(f64::ln_1p(-fpir) / n.max(1) as f64).exp_m1();
    threshold_in(table, fmr)
}

/// Everything a run measured, for the report.
pub struct Run<'a> {
    pub data: &'a str,
    pub model: &'a str,
    pub gallery: usize,
    pub enrolled_identities: usize,
    pub distractors: usize,
    pub held_out_identities: usize,
    pub mates: &'a [MateSearch],
    /// Probes of held-out identities, then the distractors' leave-one-out searches.
    pub non_mates: &'a [NonMateSearch],
    pub held_out_probes: usize,
    pub pooled_comparisons: usize,
    pub table: &'a [(f64, f32)],
    pub limit: usize,
    pub rejected_images: &'a [(String, usize)],
}

fn pct(v: f64) -> String {
    format!("{:.2} %", v * 100.0)
}

/// The markdown report of a run: FNIR at measured FPIRs, the model against the measurement, the FMR
/// table, and the extrapolation to larger galleries.
pub fn report(r: &Run<'_>) -> String {
    let mut s = String::new();
    let (nm, nn) = (r.mates.len(), r.non_mates.len());
    let _ = writeln!(
        s,
        "# 1:N calibration report: {} on {}\n\nGallery: {} templates = {} enrolled identities (one photo each) + {} distractors; {} identities held out.\n\
         Mate searches: {nm}. Non-mate searches: {nn} ({} photos of held-out identities against the whole gallery, {} distractors against the gallery without themselves).\n\
         Non-mate comparisons pooled for the FMR table: {}. Candidates per search: at most {}.\n",
        r.model, r.data, r.gallery, r.enrolled_identities, r.distractors, r.held_out_identities,
        r.held_out_probes, nn - r.held_out_probes, r.pooled_comparisons, r.limit
    );
    if !r.rejected_images.is_empty() {
        let _ = writeln!(
            s,
            "| images left out (first failed check) | images |\n|---|---|"
        );
        for (code, n) in r.rejected_images {
            let _ = writeln!(s, "| `{code}` | {n} |");
        }
        let _ = writeln!(s);
    }
    let rank1 = r.mates.iter().filter(|m| m.mate_rank == 1).count();
    let _ = writeln!(
        s,
        "Rank-1 identification rate (no threshold): {} ({rank1}/{nm}).\n",
        pct(rank1 as f64 / nm.max(1) as f64)
    );
    let _ = writeln!(
        s,
        "## FNIR at a measured FPIR (gallery of {})\n\n| target FPIR | threshold | method | non-mate searches with a candidate (FPIR, 95 % CI) | FNIR (95 % CI; count) |\n|---|---|---|---|---|",
        r.gallery
    );
    for target in [1e-1, 1e-2, 1e-3] {
        let (t, method) = match measured_threshold(r.non_mates, target) {
            Some(t) => (t, "measured"),
            None => (model_threshold(r.table, target, r.gallery), "model"),
        };
        let (fp, fpr) = fpir(r.non_mates, t);
        let (fl, fh) = wilson(fp, nn);
        let (miss, fnr) = fnir(r.mates, t, r.limit);
        let (ml, mh) = wilson(miss, nm);
        let _ = writeln!(
            s,
            "| {target:e} | {t:.4} | {method} | {fp} ({fpr:.1e}, {fl:.1e}–{fh:.1e}) | {} ({}–{}; {miss}/{nm}) |",
            pct(fnr),
            pct(ml),
            pct(mh)
        );
    }
    let _ = writeln!(
        s,
        "\n## The model against the measurement\n\nFPIR(t, N) = 1 − (1 − FMR(t))^N with FMR from the table below, against the FPIR measured on galleries of N entries drawn at random from this one (exact expectation over the draws).\n\n| t | N | measured FPIR | model FPIR | model / measured |\n|---|---|---|---|---|"
    );
    for target in [1e-1, 1e-2, 1e-3] {
        let t = model_threshold(r.table, target, r.gallery);
        for n in [100, 1000, r.gallery] {
            let n = n.min(r.gallery);
            let measured = fpir_at_size(r.non_mates, t, n);
            let model = model_fpir(r.table, t, n);
            let ratio = if measured > 0.0 {
                format!("{:.2}", model / measured)
            } else {
                "—".into()
            };
            let _ = writeln!(
                s,
                "| {t:.4} | {n} | {measured:.2e} | {model:.2e} | {ratio} |"
            );
        }
    }
    let _ = writeln!(
        s,
        "\n## Thresholds and FNIR by gallery size (model)\n\nThe threshold for a target FPIR at gallery size N, from the table; FNIR here counts mates scoring below it (a rank cut-off at larger N is not measured).\n\n| N | threshold at FPIR 1e-2 | FNIR | threshold at FPIR 1e-3 | FNIR |\n|---|---|---|---|---|"
    );
    for n in [1_000, r.gallery, 10_000, 100_000, 1_000_000] {
        let (t2, t3) = (
            model_threshold(r.table, 1e-2, n),
            model_threshold(r.table, 1e-3, n),
        );
        let f2 = fnir(r.mates, t2, usize::MAX).1;
        let f3 = fnir(r.mates, t3, usize::MAX).1;
        let _ = writeln!(s, "| {n} | {t2:.4} | {} | {t3:.4} | {} |", pct(f2), pct(f3));
    }
    let _ = writeln!(
        s,
        "\n## The FMR table (per non-mate comparison)\n\n```rust\npub const TABLE: [(f64, f32); {}] = [",
        r.table.len()
    );
    for (x, t) in r.table {
        let _ = writeln!(s, "    ({x:.1}, {t:.4}),");
    }
    let _ = writeln!(s, "];\n```");
    let max_scores: Vec<f32> = r.non_mates.iter().map(NonMateSearch::max).collect();
    let mean = max_scores.iter().map(|&v| f64::from(v)).sum::<f64>() / nn.max(1) as f64;
    let hi = max_scores.iter().copied().fold(f32::MIN, f32::max);
    let mate_mean = r.mates.iter().map(|m| f64::from(m.mate_score)).sum::<f64>() / nm.max(1) as f64;
    let _ = writeln!(
        s,
        "\nBest non-mate score per non-mate search: mean {mean:.3}, highest {hi:.3}. Mate score: mean {mate_mean:.3}."
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: u64) -> impl FnMut() -> f64 {
        let mut x = seed;
        move || {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// Non-mate searches with independent, roughly normal scores N(0.09, 0.09²).
    fn independent(searches: usize, gallery: usize, seed: u64) -> Vec<NonMateSearch> {
        let mut next = lcg(seed);
        (0..searches)
            .map(|_| {
                NonMateSearch::new(
                    (0..gallery)
                        .map(|_| {
                            (0.09 + 0.09 * ((0..12).map(|_| next()).sum::<f64>() - 6.0)) as f32
                        })
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn fnir_counts_low_scores_and_outranked_mates() {
        let mates = [
            MateSearch {
                mate_score: 0.7,
                mate_rank: 1,
            },
            MateSearch {
                mate_score: 0.5,
                mate_rank: 3,
            },
            MateSearch {
                mate_score: 0.3,
                mate_rank: 1,
            },
            MateSearch {
                mate_score: 0.8,
                mate_rank: 12,
            },
        ];
        assert_eq!(fnir(&mates, 0.4, 10), (2, 0.5));
        assert_eq!(fnir(&mates, 0.4, 2).0, 3);
        assert_eq!(fnir(&mates, 0.2, usize::MAX).0, 0);
    }

    #[test]
    fn hit_chance_is_the_exact_subset_probability() {
        let s = NonMateSearch::new(vec![0.9, 0.1, 0.2, 0.8, 0.0]);
        assert_eq!(s.max(), 0.9);
        // Two of five at or above 0.5: a random pair misses both with C(3,2)/C(5,2) = 3/10.
        assert!((s.hit_chance(0.5, 2) - 0.7).abs() < 1e-12);
        assert_eq!(s.hit_chance(0.5, 5), 1.0);
        assert_eq!(s.hit_chance(0.95, 5), 0.0);
        assert!((s.hit_chance(0.5, 1) - 0.4).abs() < 1e-12);
    }

    #[test]
    fn the_measured_threshold_lets_through_at_most_the_target() {
        let nm = independent(2000, 50, 1);
        for f in [1e-1, 1e-2, 3e-3] {
            let t = measured_threshold(&nm, f).unwrap();
            let k = (f * 2000.0 + 1e-9).floor() as usize;
            assert!(fpir(&nm, t).0 <= k);
            assert!(
                fpir(&nm, t - 1e-4).0 > k,
                "one grid step lower lets more through"
            );
        }
        assert!(measured_threshold(&nm, 1e-4).is_none());
    }

    #[test]
    fn on_independent_scores_the_model_predicts_the_measured_fpir() {
        // The model's one assumption is independence; where it holds, the table and the formula must
        // reproduce the FPIR measured on the whole gallery and on random sub-galleries.
        let nm = independent(3000, 400, 2);
        let pooled: Vec<f32> = nm.iter().flat_map(|s| s.scores_desc.clone()).collect();
        let table = fmr_table(&pooled, -8.0);
        for w in table.windows(2) {
            assert!(w[1].1 >= w[0].1 && w[1].0 < w[0].0);
        }
        for target in [1e-1, 3e-2] {
            let t = model_threshold(&table, target, 400);
            let measured = fpir(&nm, t).1;
            assert!(
                (measured / target - 1.0).abs() < 0.35,
                "{target}: {measured}"
            );
            for n in [10, 100, 400] {
                let m = fpir_at_size(&nm, t, n);
                let p = model_fpir(&table, t, n);
                assert!((p / m - 1.0).abs() < 0.35, "n {n}: model {p} measured {m}");
            }
        }
        // Growth: a bigger gallery needs a higher threshold for the same FPIR.
        assert!(model_threshold(&table, 1e-2, 1_000_000) > model_threshold(&table, 1e-2, 1000));
    }

    #[test]
    fn the_report_has_its_sections() {
        let nm = independent(500, 100, 3);
        let pooled: Vec<f32> = nm.iter().flat_map(|s| s.scores_desc.clone()).collect();
        let table = fmr_table(&pooled, -12.0);
        assert_eq!(table.len(), 23);
        let mates = vec![
            MateSearch {
                mate_score: 0.6,
                mate_rank: 1
            };
            10
        ];
        let text = report(&Run {
            data: "d",
            model: "m",
            gallery: 100,
            enrolled_identities: 10,
            distractors: 90,
            held_out_identities: 5,
            mates: &mates,
            non_mates: &nm,
            held_out_probes: 20,
            pooled_comparisons: pooled.len(),
            table: &table,
            limit: 10,
            rejected_images: &[],
        });
        for want in [
            "FNIR at a measured FPIR",
            "The model against",
            "by gallery size",
            "pub const TABLE",
        ] {
            assert!(text.contains(want), "{want}");
        }
    }
}
