//! Sinkhorn K-means (docs/method.md, "Patch features and the memory bank", step 3): prototypes of the normal-feature bank.
//!
//! Each iteration assigns points to centroids by an entropic optimal-transport plan with
//! uniform marginals (every point carries mass 1/N, every centroid receives mass 1/K), then
//! moves each centroid to the plan-weighted mean of the points. The uniform column marginal
//! keeps every prototype in use, which plain k-means does not.
//!
//! Sinkhorn runs in the log domain (dual potentials, log-sum-exp) so small regularisers do not
//! underflow. One iteration costs N·K exponentials: the column update is derived from the
//! column sums the row update already produced (`v_k += log b - log colsum_k`, algebraically
//! POT's `v = log b - logsumexp_i(u_i - C_ik/eps)`), falling back to an exact log-sum-exp when a
//! column sum underflows. Work is split into fixed row chunks whose partial sums are added in
//! chunk order, so results are bit-identical whatever the number of threads.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::kernels::distance::{row_sq_norms, sq_distances_into};
use crate::error::{Error, Result};

/// Rows per parallel work unit. Fixed, so floating-point sums have a fixed order.
const CHUNK: usize = 512;

/// Feature columns per parallel task of the centroid update `Pᵀ X`.
const CENTROID_COLS: usize = 128;

/// Column sums below this are treated as underflowed (log would lose all precision).
const TINY_COLSUM: f64 = 1e-280;

/// An entropic transport plan between N points (rows) and K centres (columns).
#[derive(Debug, Clone)]
pub struct SinkhornPlan {
    /// N x K; rows sum to 1/N exactly (up to f32 rounding), columns to 1/K within tolerance.
    pub plan: Array2<f32>,
    /// Sinkhorn iterations run (one column update + one row update each).
    pub iterations: usize,
    /// Whether the column marginals reached the tolerance.
    pub converged: bool,
}

/// Working state of one Sinkhorn solve. `u`, `v` are the dual potentials divided by eps
/// (log scalings): plan_ik = exp(u_i + v_k - C_ik / eps).
struct Solve<'a> {
    cost: ArrayView2<'a, f32>,
    inv_eps: f64,
    u: Vec<f64>,
    v: Vec<f64>,
    colsum: Vec<f64>,
    /// Row updates run in f32 ([`fast_rows`]: f32 arguments and [`exp_f32`], f64 potentials
    /// and column totals) instead of f64 throughout; the plan is stored as f32 either way.
    /// K-means uses it; [`sinkhorn_log`] stays exact.
    fast_exp: bool,
}

/// `e^x` for `x <= 0` in f32, written so the compiler vectorises loops over it (no calls,
/// no branches): Cody-Waite reduction `x = n ln2 + r`, |r| <= ln2/2, and Cephes' `expf`
/// polynomial on `r` (relative error about 1e-7), scaled by `2^n` through the exponent bits.
/// Inputs below -87.3 give about 1e-38 instead of a denormal or 0: negligible next to
/// the row's largest term, which is 1.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 0.0);
    let t = x * LOG2E + MAGIC;
    let n = t - MAGIC;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1) * r + 5.000_000_1e-1;
    let e = p * r * r + r + 1.0;
    // The rounded integer n (-126..=0) sits in t's low mantissa bits, offset by 2^22.
    let ni = (t.to_bits() as i32) - 0x4B40_0000;
    e * f32::from_bits(((ni + 127) as u32) << 23)
}

/// Rows of the K-means row update per f32 partial column sum before it is added to the
/// f64 total: bounds the f32 accumulation error to about 64 ulp.
const PART_ROWS: usize = 64;

/// The row update of K-means' Sinkhorn in f32 on contiguous row-major blocks (`plan` and
/// `cost` hold `u.len()` rows of `v32.len()` columns): per row, `e = v - c / eps`, its max
/// `m`, `t = exp(e - m)`, `s = Σ t`, `u = log a - m - ln s` (f64) and plan `t · a / s`.
/// Returns the block's column sums (f64). f32 arguments carry ~1e-7 relative error, far
/// below the 1e-3 marginal tolerance K-means asks of Sinkhorn. Dispatches to an AVX2 build of
/// the same code where the CPU has it; both compute identical bits (no reassociation, no
/// fused multiply-add), so results never depend on the machine or the thread count.
fn fast_rows(plan: &mut [f32], cost: &[f32], u: &mut [f64], v32: &[f32], inv_eps: f32, log_a: f64, a: f64) -> Vec<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { fast_rows_avx2(plan, cost, u, v32, inv_eps, log_a, a) };
        }
    }
    fast_rows_body(plan, cost, u, v32, inv_eps, log_a, a)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fast_rows_avx2(plan: &mut [f32], cost: &[f32], u: &mut [f64], v32: &[f32], inv_eps: f32, log_a: f64, a: f64) -> Vec<f64> {
    fast_rows_body(plan, cost, u, v32, inv_eps, log_a, a)
}

#[inline(always)]
fn fast_rows_body(plan: &mut [f32], cost: &[f32], u: &mut [f64], v32: &[f32], inv_eps: f32, log_a: f64, a: f64) -> Vec<f64> {
    let k = v32.len();
    let mut total = vec![0.0f64; k];
    let mut part = vec![0.0f32; k];
    let mut t = vec![0.0f32; k];
    for (r, ((prow, crow), ui)) in plan.chunks_exact_mut(k).zip(cost.chunks_exact(k)).zip(u.iter_mut()).enumerate() {
        let mut m = f32::NEG_INFINITY;
        for ((tk, &c), &vk) in t.iter_mut().zip(crow).zip(v32) {
            *tk = vk - c * inv_eps;
            m = if *tk > m { *tk } else { m };
        }
        // Eight fixed lanes, then the lanes in order: vectorises, and the order never changes.
        let mut lanes = [0.0f32; 8];
        let mut chunks = t.chunks_exact_mut(8);
        for ch in &mut chunks {
            for (l, x) in lanes.iter_mut().zip(ch.iter_mut()) {
                *x = exp_f32(*x - m);
                *l += *x;
            }
        }
        let mut s = 0.0f64;
        for x in chunks.into_remainder() {
            *x = exp_f32(*x - m);
            s += *x as f64;
        }
        s += lanes.iter().map(|&l| l as f64).sum::<f64>();
        *ui = log_a - m as f64 - s.ln();
        let scale = (a / s) as f32;
        for ((p, &tk), acc) in prow.iter_mut().zip(&t).zip(part.iter_mut()) {
            *p = tk * scale;
            *acc += *p;
        }
        if (r + 1) % PART_ROWS == 0 {
            for (tot, p) in total.iter_mut().zip(part.iter_mut()) {
                *tot += *p as f64;
                *p = 0.0;
            }
        }
    }
    for (tot, p) in total.iter_mut().zip(&part) {
        *tot += *p as f64;
    }
    total
}

impl Solve<'_> {
    fn log_a(&self) -> f64 {
        -(self.cost.nrows() as f64).ln()
    }

    fn log_b(&self) -> f64 {
        -(self.cost.ncols() as f64).ln()
    }

    /// Row update: u_i = log a - logsumexp_k(v_k - C_ik/eps). Writes the resulting plan (whose
    /// rows then sum to a) and its column sums.
    fn row_update(&mut self, mut plan: ArrayViewMut2<f32>) {
        let (k, inv_eps, log_a, fast) = (self.v.len(), self.inv_eps, self.log_a(), self.fast_exp);
        let a = log_a.exp();
        let v = &self.v;
        let v32: Vec<f32> = v.iter().map(|&x| x as f32).collect();
        let partials: Vec<Vec<f64>> = plan
            .axis_chunks_iter_mut(Axis(0), CHUNK)
            .into_par_iter()
            .zip(self.cost.axis_chunks_iter(Axis(0), CHUNK).into_par_iter())
            .zip(self.u.par_chunks_mut(CHUNK))
            .map(|((mut pb, cb), ub)| {
                if fast {
                    if let (Some(p), Some(c)) = (pb.as_slice_mut(), cb.as_slice()) {
                        return fast_rows(p, c, ub, &v32, inv_eps as f32, log_a, a);
                    }
                }
                let mut part = vec![0.0f64; k];
                let mut e = vec![0.0f64; k];
                for ((mut prow, crow), ui) in pb.rows_mut().into_iter().zip(cb.rows()).zip(ub) {
                    let mut m = f64::NEG_INFINITY;
                    for ((ek, &c), &vk) in e.iter_mut().zip(crow.iter()).zip(v) {
                        *ek = vk - c as f64 * inv_eps;
                        m = if *ek > m { *ek } else { m };
                    }
                    let mut s = 0.0;
                    for ek in e.iter_mut() {
                        *ek = (*ek - m).exp();
                        s += *ek;
                    }
                    *ui = log_a - m - s.ln();
                    let scale = a / s;
                    for ((p, &ek), acc) in prow.iter_mut().zip(&e).zip(part.iter_mut()) {
                        let val = ek * scale;
                        *p = val as f32;
                        *acc += val;
                    }
                }
                part
            })
            .collect();
        self.colsum.fill(0.0);
        for part in partials {
            for (s, p) in self.colsum.iter_mut().zip(part) {
                *s += p;
            }
        }
    }

    /// Exact column update: v_k = log b - logsumexp_i(u_i - C_ik/eps), two passes (max, sum).
    fn exact_column_update(&mut self) {
        let (k, inv_eps) = (self.v.len(), self.inv_eps);
        let u = &self.u;
        let z = |c: f32, ui: f64| ui - c as f64 * inv_eps;
        let maxes: Vec<Vec<f64>> = self
            .cost
            .axis_chunks_iter(Axis(0), CHUNK)
            .into_par_iter()
            .zip(u.par_chunks(CHUNK))
            .map(|(cb, ub)| {
                let mut m = vec![f64::NEG_INFINITY; k];
                for (crow, &ui) in cb.rows().into_iter().zip(ub) {
                    for (mk, &c) in m.iter_mut().zip(crow.iter()) {
                        *mk = mk.max(z(c, ui));
                    }
                }
                m
            })
            .collect();
        let mut m = vec![f64::NEG_INFINITY; k];
        for part in maxes {
            for (a, b) in m.iter_mut().zip(part) {
                *a = a.max(b);
            }
        }
        let sums: Vec<Vec<f64>> = self
            .cost
            .axis_chunks_iter(Axis(0), CHUNK)
            .into_par_iter()
            .zip(u.par_chunks(CHUNK))
            .map(|(cb, ub)| {
                let mut s = vec![0.0f64; k];
                for (crow, &ui) in cb.rows().into_iter().zip(ub) {
                    for ((sk, &c), &mk) in s.iter_mut().zip(crow.iter()).zip(&m) {
                        *sk += (z(c, ui) - mk).exp();
                    }
                }
                s
            })
            .collect();
        let mut s = vec![0.0f64; k];
        for part in sums {
            for (a, b) in s.iter_mut().zip(part) {
                *a += b;
            }
        }
        let log_b = self.log_b();
        for ((vk, mk), sk) in self.v.iter_mut().zip(m).zip(s) {
            *vk = log_b - mk - sk.ln();
        }
    }

    /// Runs up to `max_iter` iterations. With `warm == false` the first column update starts
    /// from u = 0, as POT does; otherwise `self.v` is the starting column potential.
    /// Returns (iterations, converged); `plan` and `colsum` hold the last row update's plan.
    fn run(&mut self, mut plan: ArrayViewMut2<f32>, max_iter: usize, tol: f64, warm: bool) -> (usize, bool) {
        let b = 1.0 / self.v.len() as f64;
        let log_b = self.log_b();
        if !warm {
            self.u.fill(0.0);
            self.exact_column_update();
        }
        for it in 1..=max_iter {
            self.row_update(plan.view_mut());
            let err = self.colsum.iter().map(|s| (s - b).abs()).fold(0.0, f64::max);
            if err < tol * b {
                return (it, true);
            }
            if it == max_iter {
                break;
            }
            if self.colsum.iter().all(|&s| s > TINY_COLSUM) {
                for (vk, s) in self.v.iter_mut().zip(&self.colsum) {
                    *vk += log_b - s.ln();
                }
            } else {
                self.exact_column_update();
            }
        }
        (max_iter, false)
    }
}

fn check_finite(what: &str, x: ArrayView2<f32>) -> Result<()> {
    match x.indexed_iter().find(|(_, v)| !v.is_finite()) {
        Some(((i, j), v)) => Err(Error::invalid(format!("{what}[{i}, {j}] is not finite ({v})"))),
        None => Ok(()),
    }
}

/// Entropic optimal transport with uniform marginals (rows 1/N, columns 1/K) for an N x K
/// `cost`, solved by log-domain Sinkhorn with the absolute regulariser `epsilon` (POT's `reg`;
/// same iteration as `ot.sinkhorn(..., method='sinkhorn_log')`).
///
/// Stops when every column sum is within `tol / K` of `1/K`, checked after each row update,
/// or after `max_iter` iterations (then `converged` is false).
pub fn sinkhorn_log(cost: ArrayView2<f32>, epsilon: f32, max_iter: usize, tol: f32) -> Result<SinkhornPlan> {
    let (n, k) = cost.dim();
    if n == 0 || k == 0 {
        return Err(Error::invalid(format!("sinkhorn_log: cost matrix is {n} x {k}, needs at least 1 x 1")));
    }
    if !(epsilon > 0.0 && epsilon.is_finite()) {
        return Err(Error::invalid(format!("sinkhorn_log: epsilon must be positive and finite, got {epsilon}")));
    }
    if max_iter == 0 {
        return Err(Error::invalid("sinkhorn_log: max_iter must be at least 1"));
    }
    if !(tol >= 0.0 && tol.is_finite()) {
        return Err(Error::invalid(format!("sinkhorn_log: tol must be >= 0 and finite, got {tol}")));
    }
    check_finite("sinkhorn_log: cost", cost)?;
    let mut solve = Solve {
        cost,
        inv_eps: 1.0 / epsilon as f64,
        u: vec![0.0; n],
        v: vec![0.0; k],
        colsum: vec![0.0; k],
        fast_exp: false,
    };
    let mut plan = Array2::zeros((n, k));
    let (iterations, converged) = solve.run(plan.view_mut(), max_iter, tol as f64, false);
    Ok(SinkhornPlan { plan, iterations, converged })
}

/// Options of [`sinkhorn_kmeans`].
#[derive(Debug, Clone, PartialEq)]
pub struct KMeansOptions {
    /// Number of prototypes K.
    pub k: usize,
    /// Entropic regulariser, *relative*: each iteration uses `epsilon * mean(C)` where C is that
    /// iteration's squared-distance matrix, so the same value works whatever the feature scale.
    /// Smaller is closer to hard assignment (and needs more Sinkhorn iterations).
    pub epsilon: f32,
    /// Maximum K-means iterations.
    pub max_iters: usize,
    /// Stop when the largest centroid move divided by the mean centroid norm is below this.
    pub tol: f32,
    /// Maximum Sinkhorn iterations per K-means iteration.
    pub sinkhorn_iters: usize,
    /// Sinkhorn tolerance on column sums, relative to 1/K.
    pub sinkhorn_tol: f32,
    /// Seed of the k-means++ start (ChaCha8).
    pub seed: u64,
}

impl Default for KMeansOptions {
    fn default() -> Self {
        Self { k: 30, epsilon: 0.05, max_iters: 50, tol: 1e-4, sinkhorn_iters: 100, sinkhorn_tol: 1e-3, seed: 0 }
    }
}

/// Output of [`sinkhorn_kmeans`].
#[derive(Debug, Clone)]
pub struct KMeansResult {
    /// K x D prototypes.
    pub centroids: Array2<f32>,
    /// K-means iterations run.
    pub iterations: usize,
    /// Whether the centroid shift fell below `tol` before `max_iters`.
    pub converged: bool,
}

fn check_options(n: usize, d: usize, o: &KMeansOptions) -> Result<()> {
    let bad = |m: String| Err(Error::invalid(format!("sinkhorn_kmeans: {m}")));
    if n == 0 || d == 0 {
        return bad(format!("input is {n} x {d}, needs at least one point of at least one dimension"));
    }
    if o.k == 0 {
        return bad("option k must be at least 1".into());
    }
    if o.k > n {
        return bad(format!("option k = {} exceeds the number of points ({n})", o.k));
    }
    if !(o.epsilon > 0.0 && o.epsilon.is_finite()) {
        return bad(format!("option epsilon must be positive and finite, got {}", o.epsilon));
    }
    if o.max_iters == 0 {
        return bad("option max_iters must be at least 1".into());
    }
    if !(o.tol >= 0.0 && o.tol.is_finite()) {
        return bad(format!("option tol must be >= 0 and finite, got {}", o.tol));
    }
    if o.sinkhorn_iters == 0 {
        return bad("option sinkhorn_iters must be at least 1".into());
    }
    if !(o.sinkhorn_tol >= 0.0 && o.sinkhorn_tol.is_finite()) {
        return bad(format!("option sinkhorn_tol must be >= 0 and finite, got {}", o.sinkhorn_tol));
    }
    Ok(())
}

/// k-means++ seeding: first centre uniform, then each next one drawn with probability
/// proportional to the squared distance to the nearest centre chosen so far. If every point
/// coincides with a chosen centre, draws uniformly.
fn kmeans_pp(x: ArrayView2<f32>, x_norms: &Array1<f32>, k: usize, rng: &mut ChaCha8Rng) -> Array2<f32> {
    let n = x.nrows();
    let mut centroids = Array2::zeros((k, x.ncols()));
    let mut d2 = vec![f64::INFINITY; n];
    let mut pick = rng.random_range(0..n);
    for j in 0..k {
        let c = x.row(pick);
        centroids.row_mut(j).assign(&c);
        if j + 1 == k {
            break;
        }
        let cn = x_norms[pick];
        let dots = x.dot(&c);
        for ((d, &dot), &xn) in d2.iter_mut().zip(dots.iter()).zip(x_norms.iter()) {
            *d = d.min((xn + cn - 2.0 * dot).max(0.0) as f64);
        }
        let total: f64 = d2.iter().sum();
        pick = if total > 0.0 {
            let r = rng.random::<f64>() * total;
            let mut acc = 0.0;
            // Last point with positive weight guards against rounding at the top end.
            let mut chosen = d2.iter().rposition(|&d| d > 0.0).unwrap_or(0);
            for (i, &d) in d2.iter().enumerate() {
                acc += d;
                if acc > r && d > 0.0 {
                    chosen = i;
                    break;
                }
            }
            chosen
        } else {
            rng.random_range(0..n)
        };
    }
    centroids
}

/// Sinkhorn K-means on the rows of `x` (N x D), see the module docs and [`KMeansOptions`].
///
/// Starts from k-means++ (seeded), then repeats: squared-distance cost by GEMM, entropic plan
/// by [`sinkhorn_log`]'s solver (warm-started from the previous iteration's column
/// potential), centroids = Pᵀ X / column sums. `progress(done, max_iters)` is called after
/// every iteration; returning false cancels with [`Error::Cancelled`].
/// Deterministic: the same input and seed give bit-identical centroids.
pub fn sinkhorn_kmeans(
    x: ArrayView2<f32>,
    opts: &KMeansOptions,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<KMeansResult> {
    let (n, d) = x.dim();
    check_options(n, d, opts)?;
    check_finite("sinkhorn_kmeans: input", x)?;
    let x_norms = row_sq_norms(x);
    if let Some(i) = x_norms.iter().position(|v| !v.is_finite()) {
        return Err(Error::invalid(format!("sinkhorn_kmeans: input row {i} is too large (its squared norm overflows f32)")));
    }
    let k = opts.k;
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut centroids = kmeans_pp(x, &x_norms, k, &mut rng);

    let mut cost = Array2::<f32>::zeros((n, k));
    let mut plan = Array2::<f32>::zeros((n, k));
    let mut next = Array2::<f32>::zeros((k, d));
    // Column dual potential g (in cost units) carried between iterations as a warm start.
    let mut g: Option<Vec<f64>> = None;
    let mut u = vec![0.0; n];
    for it in 1..=opts.max_iters {
        let c_norms = row_sq_norms(centroids.view());
        sq_distances_into(x, x_norms.view(), centroids.view(), c_norms.view(), cost.view_mut());
        let mean_cost = cost.iter().map(|&c| c as f64).sum::<f64>() / (n * k) as f64;
        // All points on their centroids: any regulariser gives the same (uniform) answer.
        let eps = if mean_cost > 0.0 { opts.epsilon as f64 * mean_cost } else { opts.epsilon as f64 };
        let warm = g.is_some();
        let v = g.as_ref().map_or_else(|| vec![0.0; k], |g| g.iter().map(|gk| gk / eps).collect());
        let mut solve = Solve { cost: cost.view(), inv_eps: 1.0 / eps, u, v, colsum: vec![0.0; k], fast_exp: true };
        solve.run(plan.view_mut(), opts.sinkhorn_iters, opts.sinkhorn_tol as f64, warm);
        g = Some(solve.v.iter().map(|vk| vk * eps).collect());
        u = solve.u;

        // Pᵀ X, split over column blocks of X: each block is an independent product, so
        // the result does not depend on the thread count.
        next.axis_chunks_iter_mut(Axis(1), CENTROID_COLS)
            .into_par_iter()
            .zip(x.axis_chunks_iter(Axis(1), CENTROID_COLS).into_par_iter())
            .for_each(|(mut nb, xb)| general_mat_mul(1.0, &plan.t(), &xb, 0.0, &mut nb));
        let (mut shift, mut norm_sum) = (0.0f64, 0.0f64);
        for ((mut row, old), &mass) in next.rows_mut().into_iter().zip(centroids.rows()).zip(&solve.colsum) {
            if mass > TINY_COLSUM {
                row.mapv_inplace(|v| (v as f64 / mass) as f32);
            } else {
                // A prototype that received no mass stays where it was.
                row.assign(&old);
            }
            let moved: f64 = row.iter().zip(old.iter()).map(|(&a, &b)| ((a - b) as f64).powi(2)).sum();
            shift = shift.max(moved.sqrt());
            norm_sum += row.iter().map(|&a| (a as f64).powi(2)).sum::<f64>().sqrt();
        }
        std::mem::swap(&mut centroids, &mut next);
        if !progress(it, opts.max_iters) {
            return Err(Error::Cancelled);
        }
        let mean_norm = norm_sum / k as f64;
        if shift <= opts.tol as f64 * mean_norm {
            return Ok(KMeansResult { centroids, iterations: it, converged: true });
        }
    }
    Ok(KMeansResult { centroids, iterations: opts.max_iters, converged: false })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct PotCase {
        name: String,
        n: usize,
        k: usize,
        reg: f32,
        cost: Vec<f32>,
        plan: Vec<f64>,
    }

    #[derive(Deserialize)]
    struct Refs {
        cases: Vec<PotCase>,
    }

    /// `n_blobs` Gaussian blobs of `per` points each (std 0.5) around well-separated means.
    fn blobs(n_blobs: usize, per: usize, dim: usize, seed: u64) -> (Array2<f32>, Array2<f32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let means = Array2::from_shape_fn((n_blobs, dim), |_| rng.random_range(-20.0..20.0f32));
        let mut x = Array2::zeros((n_blobs * per, dim));
        for (i, mut row) in x.rows_mut().into_iter().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                // Sum of uniforms: roughly Gaussian, std 0.5.
                let noise: f32 = (0..12).map(|_| rng.random::<f32>()).sum::<f32>() - 6.0;
                *v = means[[i % n_blobs, j]] + 0.5 * noise;
            }
        }
        (x, means)
    }

    fn dist(a: ndarray::ArrayView1<f32>, b: ndarray::ArrayView1<f32>) -> f32 {
        a.iter().zip(b.iter()).map(|(x, y)| (x - y) * (x - y)).sum::<f32>().sqrt()
    }

    #[test]
    fn bank_sinkhorn_matches_pot() {
        let refs: Refs = serde_json::from_str(include_str!("../../tests/fixtures/sinkhorn/refs.json")).unwrap();
        assert!(!refs.cases.is_empty());
        for c in &refs.cases {
            let cost = Array2::from_shape_vec((c.n, c.k), c.cost.clone()).unwrap();
            let out = sinkhorn_log(cost.view(), c.reg, 100_000, 1e-9).unwrap();
            assert!(out.converged, "{}: did not converge", c.name);
            let scale = 1.0 / (c.n * c.k) as f64;
            let diff = out.plan.iter().zip(&c.plan).map(|(&a, &b)| (a as f64 - b).abs()).fold(0.0, f64::max);
            assert!(diff < 1e-6 * scale, "{}: max diff {diff} (scale {scale})", c.name);
        }
    }

    #[test]
    fn bank_sinkhorn_marginals() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let (n, k) = (1300, 7); // more than two row chunks
        let cost = Array2::from_shape_fn((n, k), |_| rng.random_range(0.0..5.0f32));
        let tol = 1e-4;
        let out = sinkhorn_log(cost.view(), 0.5, 1000, tol).unwrap();
        assert!(out.converged);
        for col in out.plan.columns() {
            let s: f64 = col.iter().map(|&v| v as f64).sum();
            assert!((s - 1.0 / k as f64).abs() < 1.01 * tol as f64 / k as f64, "column sum {s}");
        }
        for row in out.plan.rows() {
            let s: f64 = row.iter().map(|&v| v as f64).sum();
            assert!((s - 1.0 / n as f64).abs() < 1e-6 / n as f64, "row sum {s}");
        }
        // Too few iterations: reported, not hidden.
        let short = sinkhorn_log(cost.view(), 0.01, 1, 1e-9).unwrap();
        assert!(!short.converged);
        assert_eq!(short.iterations, 1);
    }

    #[test]
    fn bank_sinkhorn_small_epsilon_stays_finite() {
        // Costs / eps reach 1e5: a plain (non-log) Sinkhorn would underflow to 0/0.
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let cost = Array2::from_shape_fn((40, 4), |_| rng.random_range(0.0..100.0f32));
        let out = sinkhorn_log(cost.view(), 1e-3, 5000, 1e-3).unwrap();
        assert!(out.plan.iter().all(|v| v.is_finite() && *v >= 0.0));
        let total: f32 = out.plan.sum();
        assert!((total - 1.0).abs() < 1e-4, "total mass {total}");
    }

    #[test]
    fn bank_sinkhorn_underflowed_column_falls_back_to_exact_update() {
        // Warm start v = 0 with one column 1e4/eps costlier than the others: after the first row
        // update that column's sum underflows to 0, so the cheap update (log of the sum) is
        // impossible and the exact log-sum-exp path must take over.
        let (n, k) = (50, 3);
        let cost = Array2::from_shape_fn((n, k), |(i, j)| if j == 2 { 1e4 } else { (i % 7) as f32 * 0.1 });
        let mut plan = Array2::zeros((n, k));
        let mut s = Solve { cost: cost.view(), inv_eps: 1.0, u: vec![0.0; n], v: vec![0.0; k], colsum: vec![0.0; k], fast_exp: false };
        s.row_update(plan.view_mut());
        assert!(s.colsum[2] <= TINY_COLSUM, "setup: column 2 should underflow");
        let (_, converged) = s.run(plan.view_mut(), 500, 1e-6, true);
        assert!(converged);
        for col in plan.columns() {
            let sum: f64 = col.iter().map(|&v| v as f64).sum();
            assert!((sum - 1.0 / k as f64).abs() < 1e-5, "column sum {sum}");
        }
    }

    #[test]
    fn bank_exp_f32_is_accurate() {
        assert_eq!(exp_f32(0.0), 1.0);
        let mut worst = 0.0f64;
        for i in 0..=200_000 {
            let x = -87.0 * i as f64 / 200_000.0;
            let got = exp_f32(x as f32) as f64;
            let want = (x as f32 as f64).exp();
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 3e-7, "max relative error {worst}");
        // Far below the range: tiny and finite, never NaN or negative.
        for x in [-88.0f32, -1e3, -1e30, f32::NEG_INFINITY] {
            let v = exp_f32(x);
            assert!((0.0..1e-37).contains(&v), "{x}: {v}");
        }
    }

    #[test]
    fn bank_sinkhorn_fast_exp_matches_exact() {
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        let (n, k) = (1500, 9);
        let cost = Array2::from_shape_fn((n, k), |_| rng.random_range(0.0..30.0f32));
        let solve = |fast: bool| {
            let mut s = Solve { cost: cost.view(), inv_eps: 1.0 / 0.7, u: vec![0.0; n], v: vec![0.0; k], colsum: vec![0.0; k], fast_exp: fast };
            let mut plan = Array2::zeros((n, k));
            let (it, conv) = s.run(plan.view_mut(), 500, 1e-6, false);
            (plan, it, conv)
        };
        let (exact, it_e, ce) = solve(false);
        let (fast, it_f, cf) = solve(true);
        assert!(ce && cf);
        assert!(it_e.abs_diff(it_f) <= 1, "iterations {it_e} vs {it_f}");
        let scale = 1.0 / (n * k) as f32;
        let d = exact.iter().zip(fast.iter()).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(d < 1e-5 * scale, "max plan difference {d} (scale {scale})");
    }

    #[test]
    fn bank_fast_rows_same_bits_with_and_without_avx2() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (n, k) = (300, 30);
        let cost: Vec<f32> = (0..n * k).map(|_| rng.random_range(0.0..40.0f32)).collect();
        let v32: Vec<f32> = (0..k).map(|_| rng.random_range(-5.0..5.0f32)).collect();
        let run = |avx: bool| {
            let (mut plan, mut u) = (vec![0.0f32; n * k], vec![0.0f64; n]);
            let sums = if avx {
                fast_rows(&mut plan, &cost, &mut u, &v32, 1.3, -(n as f64).ln(), 1.0 / n as f64)
            } else {
                fast_rows_body(&mut plan, &cost, &mut u, &v32, 1.3, -(n as f64).ln(), 1.0 / n as f64)
            };
            (plan, u, sums)
        };
        let (p1, u1, s1) = run(true);
        let (p2, u2, s2) = run(false);
        assert!(p1.iter().zip(&p2).all(|(a, b)| a.to_bits() == b.to_bits()));
        assert!(u1.iter().zip(&u2).all(|(a, b)| a.to_bits() == b.to_bits()));
        assert!(s1.iter().zip(&s2).all(|(a, b)| a.to_bits() == b.to_bits()));
        // Rows sum to a = 1/n.
        for row in p1.chunks_exact(k) {
            let r: f64 = row.iter().map(|&x| x as f64).sum();
            assert!((r * n as f64 - 1.0).abs() < 1e-5, "row sum {r}");
        }
    }

    #[test]
    fn bank_sinkhorn_bad_inputs() {
        let c = Array2::<f32>::ones((3, 2));
        assert!(sinkhorn_log(c.view(), 0.0, 10, 1e-3).is_err());
        assert!(sinkhorn_log(c.view(), f32::NAN, 10, 1e-3).is_err());
        assert!(sinkhorn_log(c.view(), 0.1, 0, 1e-3).is_err());
        assert!(sinkhorn_log(Array2::<f32>::zeros((0, 2)).view(), 0.1, 10, 1e-3).is_err());
        let mut bad = c.clone();
        bad[[1, 1]] = f32::INFINITY;
        assert!(sinkhorn_log(bad.view(), 0.1, 10, 1e-3).is_err());
    }

    #[test]
    fn bank_kmeans_recovers_blobs() {
        let (x, means) = blobs(5, 60, 8, 3);
        for seed in 0..3 {
            let opts = KMeansOptions { k: 5, seed, ..Default::default() };
            let mut calls = 0;
            let r = sinkhorn_kmeans(x.view(), &opts, &mut |i, total| {
                calls += 1;
                assert_eq!((i, total), (calls, opts.max_iters));
                true
            })
            .unwrap();
            assert!(r.converged, "seed {seed}: not converged after {} iterations", r.iterations);
            assert_eq!(calls, r.iterations);
            let mut used = [false; 5];
            for c in r.centroids.rows() {
                let (j, d) = (0..5)
                    .map(|j| (j, dist(c, means.row(j))))
                    .min_by(|a, b| a.1.total_cmp(&b.1))
                    .unwrap();
                assert!(d < 0.5, "seed {seed}: centroid {d} from nearest mean");
                assert!(!used[j], "seed {seed}: two centroids on blob {j}");
                used[j] = true;
            }
        }
    }

    #[test]
    fn bank_kmeans_deterministic() {
        let (x, _) = blobs(6, 400, 16, 9); // 2400 rows: several chunks
        let opts = KMeansOptions { k: 12, max_iters: 8, ..Default::default() };
        let run = |o: &KMeansOptions| sinkhorn_kmeans(x.view(), o, &mut |_, _| true).unwrap();
        let a = run(&opts);
        let b = run(&opts);
        assert!(a.centroids.iter().zip(b.centroids.iter()).all(|(p, q)| p.to_bits() == q.to_bits()));
        assert_eq!(a.iterations, b.iterations);
        let c = run(&KMeansOptions { seed: 1, ..opts.clone() });
        assert!(a.centroids != c.centroids, "different seeds gave identical centroids");
        // Same bits when rayon runs on one thread.
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let d = pool.install(|| run(&opts));
        assert!(a.centroids.iter().zip(d.centroids.iter()).all(|(p, q)| p.to_bits() == q.to_bits()));
    }

    #[test]
    fn bank_kmeans_cancel_and_errors() {
        let (x, _) = blobs(3, 10, 4, 1);
        let opts = KMeansOptions { k: 3, ..Default::default() };
        let r = sinkhorn_kmeans(x.view(), &opts, &mut |i, _| i < 2);
        assert!(matches!(r, Err(Error::Cancelled)));
        let err = |o: KMeansOptions, x: ArrayView2<f32>| match sinkhorn_kmeans(x, &o, &mut |_, _| true) {
            Err(Error::InvalidArgument(m)) => m,
            other => panic!("expected InvalidArgument, got {other:?}"),
        };
        assert!(err(KMeansOptions { k: 0, ..opts.clone() }, x.view()).contains("k"));
        assert!(err(KMeansOptions { k: 31, ..opts.clone() }, x.view()).contains("exceeds"));
        assert!(err(KMeansOptions { epsilon: 0.0, ..opts.clone() }, x.view()).contains("epsilon"));
        assert!(err(KMeansOptions { epsilon: -1.0, ..opts.clone() }, x.view()).contains("epsilon"));
        assert!(err(opts.clone(), Array2::<f32>::zeros((0, 4)).view()).contains("0 x 4"));
        assert!(err(opts.clone(), Array2::<f32>::zeros((5, 0)).view()).contains("5 x 0"));
        let mut bad = x.clone();
        bad[[2, 1]] = f32::NAN;
        assert!(err(opts.clone(), bad.view()).contains("not finite"));
    }

    #[test]
    fn bank_kmeans_identical_points() {
        // Degenerate but valid: all points equal, so every centroid is that point.
        let x = Array2::from_elem((20, 3), 1.5f32);
        let r = sinkhorn_kmeans(x.view(), &KMeansOptions { k: 4, ..Default::default() }, &mut |_, _| true).unwrap();
        assert!(r.centroids.iter().all(|&v| (v - 1.5).abs() < 1e-6));
        assert!(r.converged);
    }
}
