//! The compact copy of a gallery that a search scans: each unit row as 128 `i8` codes with its own
//! scale, and a proven bound on how far the compact score can be from the exact `f32` one.
//!
//! A search streams 128 bytes per row instead of 512 (the scan is memory-bound), computes an
//! approximate score, and re-ranks in exact `f32` only the rows whose approximate score plus the bound
//! reaches the cut-off. Because the bound is an upper bound on the error, no row that the exact scan
//! would return is ever skipped: the result equals the exact search by construction.
//!
//! ## The bound
//! Row `r` (the stored unit `f32` row) is coded as `a = round(r / s_r)` with `s_r = max|r_i| / 127`,
//! so `r̂ = s_r·a` and `e_r = r − r̂`; `E_r = ‖e_r‖₂` is computed in `f64` at insert and stored rounded
//! **up**. The query `q` is coded the same way in `i16` (`s_q = max|q_i| / 32767`, `E_q = ‖q − q̂‖₂`).
//! The integer dot product `I = Σ a_i·b_i` is exact (|I| ≤ 128·127·32767 < 2³¹), and `r̂·q̂ = s_r·s_q·I`.
//! Then
//!
//! `r·q = r̂·q̂ + r̂·e_q + e_r·q`, so by Cauchy–Schwarz
//! `|r·q − r̂·q̂| ≤ ‖r̂‖·E_q + E_r·‖q‖ ≤ (1 + δ + E_r)·E_q + E_r·(1 + δ)`
//!
//! where `‖r‖, ‖q‖ ≤ 1 + δ` (unit vectors rounded to `f32`: δ < 1e-6). The exact kernel's own `f32`
//! rounding is at most γ₂₀·‖r‖·‖q‖ < 2e-6 (each of its 8 lanes sums 16 products, then 3 pairwise
//! additions), and computing the approximate score and the bound in `f32` adds a few units in the last
//! place of numbers below 2 (< 1e-6). [`SLACK`] = 1e-4 covers all of these (and δ) fifty times over, so
//!
//! `exact_f32(r, q) ≤ s_r·s_q·I + E_r·(1 + E_q) + E_q + SLACK`.
//!
//! On random unit vectors E_r is about 0.006 and E_q about 3e-5: a row is re-ranked only if its
//! approximate score is within about 0.006 of the cut-off. Skewed rows (one large component) get a
//! larger E_r, never a wrong one; the unit tests check the bound against worst-case queries.

use super::DIM;

/// The largest row code: codes lie in −127..=127.
const ROW_MAX: f32 = 127.0;
/// The largest query code: codes lie in −32767..=32767.
const QUERY_MAX: f32 = 32767.0;
/// Covers every floating-point rounding in the bound (see the module comment), with a wide margin.
pub const SLACK: f32 = 1e-4;

/// One row's compact form.
#[derive(Clone, Copy)]
pub(super) struct RowCode {
    pub code: [i8; DIM],
    pub scale: f32,
    /// ‖r − scale·code‖₂, rounded up.
    pub err: f32,
}

/// A query's compact form and the constants of its bound: `upper = approx + row_err·c1 + c0`.
#[derive(Clone)]
pub(super) struct QueryCode {
    pub code: [i16; DIM],
    pub scale: f32,
    c1: f32,
    c0: f32,
}

/// `x` as an `f32` not below it.
fn f32_up(x: f64) -> f32 {
    let y = x as f32;
    if f64::from(y) < x {
        f32::from_bits(y.to_bits() + 1)
    } else {
        y
    }
}

/// Codes `v` (finite, not all zero) with `max_code` levels each side; returns the scale and
/// ‖v − scale·codes‖₂ rounded up, computed in `f64` from the `f32` scale actually used.
fn code_vector<T: Copy>(
    v: &[f32; DIM],
    max_code: f32,
    out: &mut [T; DIM],
    cast: impl Fn(f32) -> T,
) -> (f32, f32) {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let scale = max / max_code;
    let mut err2 = 0.0f64;
    for (o, &x) in out.iter_mut().zip(v) {
        let c = (x / scale).round().clamp(-max_code, max_code);
        *o = cast(c);
        let e = f64::from(x) - f64::from(scale) * f64::from(c);
        err2 += e * e;
    }
    // The f64 sum and root are exact to ~1e-16 relative: one part in a million up is plenty.
    (scale, f32_up(err2.sqrt() * (1.0 + 1e-6)))
}

/// The compact form of a unit row.
pub(super) fn code_row(r: &[f32; DIM]) -> RowCode {
    let mut code = [0i8; DIM];
    let (scale, err) = code_vector(r, ROW_MAX, &mut code, |c| c as i8);
    RowCode { code, scale, err }
}

/// The compact form of a unit query and its bound constants.
pub(super) fn code_query(q: &[f32; DIM]) -> QueryCode {
    let mut code = [0i16; DIM];
    let (scale, err) = code_vector(q, QUERY_MAX, &mut code, |c| c as i16);
    QueryCode {
        code,
        scale,
        c1: f32_up(1.0 + f64::from(err)),
        c0: f32_up(f64::from(err) + f64::from(SLACK)),
    }
}

impl QueryCode {
    /// An upper bound on the exact `f32` score of a row, from its integer dot product with this query.
    #[inline(always)]
    pub fn upper(&self, dot: i32, row_scale: f32, row_err: f32) -> f32 {
        dot as f32 * (row_scale * self.scale) + (row_err * self.c1 + self.c0)
    }

    /// The approximate score alone (for tests and diagnostics).
    #[cfg(test)]
    pub fn approx(&self, dot: i32, row_scale: f32) -> f32 {
        dot as f32 * (row_scale * self.scale)
    }
}

/// The integer kernel: `Σ a_i·b_i`, exact in `i32`. Sixteen independent lanes over fixed-size rows:
/// LLVM vectorises it (sign-extending loads and packed multiply-adds) with no bounds checks.
#[inline(always)]
pub(super) fn int_dot(a: &[i8; DIM], b: &[i16; DIM]) -> i32 {
    const L: usize = 16;
    let mut acc = [0i32; L];
    for (x, y) in a.chunks_exact(L).zip(b.chunks_exact(L)) {
        for l in 0..L {
            acc[l] += i32::from(x[l]) * i32::from(y[l]);
        }
    }
    acc.iter().sum()
}

/// Upper bounds of a block of rows against one query, into `out` (same length as the block).
#[inline]
pub(super) fn block_upper(
    codes: &[[i8; DIM]],
    scales: &[f32],
    errs: &[f32],
    q: &QueryCode,
    out: &mut [f32],
) {
    for (((c, &s), &e), o) in codes.iter().zip(scales).zip(errs).zip(out.iter_mut()) {
        *o = q.upper(int_dot(c, &q.code), s, e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn unit(v: &[f32]) -> [f32; DIM] {
        let n = v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
        let mut out = [0.0; DIM];
        for (o, &x) in out.iter_mut().zip(v) {
            *o = (f64::from(x) / n) as f32;
        }
        out
    }

    fn random_unit(rng: &mut StdRng) -> [f32; DIM] {
        let v: Vec<f32> = (0..DIM).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        unit(&v)
    }

    /// The exact f32 kernel of the gallery (the reference the bound must cover).
    fn exact(a: &[f32; DIM], b: &[f32; DIM]) -> f32 {
        super::super::dot(a, b)
    }

    /// Checks the bound both ways (the approximation is symmetric) and returns the slack left.
    fn check(r: &[f32; DIM], q: &[f32; DIM]) -> f32 {
        let rc = code_row(r);
        let qc = code_query(q);
        let dot = int_dot(&rc.code, &qc.code);
        let approx = qc.approx(dot, rc.scale);
        let upper = qc.upper(dot, rc.scale, rc.err);
        let radius = upper - approx;
        let e = exact(r, q);
        assert!(e <= upper, "exact {e} above the bound {upper}");
        assert!(e >= approx - radius, "exact {e} below {}", approx - radius);
        radius - (e - approx).abs()
    }

    #[test]
    fn codes_reconstruct_the_row_within_the_stored_error() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..2000 {
            let r = random_unit(&mut rng);
            let c = code_row(&r);
            assert!(c.code.iter().any(|&x| x.unsigned_abs() == 127));
            let e2: f64 = r
                .iter()
                .zip(&c.code)
                .map(|(&x, &a)| (f64::from(x) - f64::from(c.scale) * f64::from(a)).powi(2))
                .sum();
            assert!(e2.sqrt() <= f64::from(c.err));
            // Rounding to the nearest code: at most half a step per component.
            assert!(f64::from(c.err) <= f64::from(c.scale) / 2.0 * (DIM as f64).sqrt() + 1e-6);
        }
    }

    #[test]
    fn the_bound_holds_on_random_rows_and_queries() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut tightest = f32::MAX;
        for _ in 0..20_000 {
            let r = random_unit(&mut rng);
            // Near-duplicates as well as unrelated pairs.
            let q = if rng.gen_bool(0.5) {
                random_unit(&mut rng)
            } else {
                let v: Vec<f32> = r.iter().map(|x| x + rng.gen_range(-0.05..0.05)).collect();
                unit(&v)
            };
            tightest = tightest.min(check(&r, &q));
        }
        assert!(tightest >= 0.0);
    }

    #[test]
    fn the_bound_holds_against_the_worst_query_for_each_row() {
        // For a row, the query that maximises |e_r·q| is e_r's own direction, and r itself maximises
        // the score: both, and mixtures, on ordinary and skewed rows.
        let mut rng = StdRng::seed_from_u64(3);
        let mut rows: Vec<[f32; DIM]> = (0..300).map(|_| random_unit(&mut rng)).collect();
        // Skewed: one large component and tiny ones that all round to zero (the largest E_r).
        let mut spike = vec![1e-3f32; DIM];
        spike[5] = 1.0;
        rows.push(unit(&spike));
        // A component at half a code step (a rounding tie).
        let mut two = vec![0.0f32; DIM];
        two[0] = 1.0;
        two[1] = 0.5 / 127.0;
        rows.push(unit(&two));
        rows.push(unit(&[1.0; DIM]));
        rows.push(unit(
            &(0..DIM)
                .map(|i| if i % 2 == 0 { 1.0 } else { -0.999 })
                .collect::<Vec<_>>(),
        ));
        let mut largest_err = 0.0f32;
        for r in &rows {
            let rc = code_row(r);
            largest_err = largest_err.max(rc.err);
            let e: Vec<f32> = r
                .iter()
                .zip(&rc.code)
                .map(|(&x, &a)| (f64::from(x) - f64::from(rc.scale) * f64::from(a)) as f32)
                .collect();
            if e.iter().all(|&x| x == 0.0) {
                continue;
            }
            let worst = unit(&e);
            for mix in [0.0f32, 0.3, 0.7, 1.0] {
                let v: Vec<f32> = worst.iter().zip(r).map(|(w, x)| w + mix * x).collect();
                if v.iter().all(|x| x.abs() < 1e-3) {
                    // The error points along -r and the mix cancels it: no direction left.
                    continue;
                }
                let q = unit(&v);
                let left = check(r, &q);
                if mix == 0.0 {
                    // The worst query meets the bound up to the slack: it is tight, not just safe.
                    assert!(left < 3.0 * SLACK, "slack left {left}, err {}", rc.err);
                }
                let qn: Vec<f32> = q.iter().map(|x| -x).collect();
                check(r, &unit(&qn));
            }
        }
        assert!(
            largest_err > 0.01,
            "the spiky row should show a large error"
        );
    }

    #[test]
    fn the_integer_kernel_is_exact() {
        let mut rng = StdRng::seed_from_u64(4);
        let mut a = [0i8; DIM];
        let mut b = [0i16; DIM];
        for _ in 0..200 {
            a.iter_mut().for_each(|x| *x = rng.gen_range(-127..=127));
            b.iter_mut()
                .for_each(|x| *x = rng.gen_range(-32767..=32767));
            let want: i64 = a
                .iter()
                .zip(&b)
                .map(|(&x, &y)| i64::from(x) * i64::from(y))
                .sum();
            assert_eq!(i64::from(int_dot(&a, &b)), want);
        }
        // The extreme: every product at its largest, same sign.
        assert_eq!(
            i64::from(int_dot(&[127; DIM], &[32767; DIM])),
            128 * 127 * 32767
        );
        assert_eq!(
            i64::from(int_dot(&[-127; DIM], &[32767; DIM])),
            -128 * 127 * 32767
        );
    }
}
