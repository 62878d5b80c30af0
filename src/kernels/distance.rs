//! Squared Euclidean distances between row sets, computed with GEMM.
//!
//! `||x - c||^2 = ||x||^2 + ||c||^2 - 2 x·c`: the cross term for a block of rows is one matrix
//! product, which runs at GEMM speed instead of a per-pair loop. Rows are processed in fixed
//! blocks so memory stays bounded and results do not depend on the number of threads.

use std::cell::RefCell;

use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, ArrayView1, ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;

use crate::error::{Error, Result};

/// Rows of `x` per GEMM block in [`sq_distances_into`] (Sinkhorn K-means' full N × K cost).
pub(crate) const BLOCK_ROWS: usize = 1024;

/// Rows of `x` (patches) per parallel task in [`min_sq_distances`]: small enough that one
/// image's 784 patches split over two or more threads, large enough for GEMM efficiency.
const MATCH_ROWS: usize = 128;

/// Bank rows per GEMM tile in [`min_sq_distances`]: with a full bank (tens of thousands of
/// rows) the product block stays at `MATCH_ROWS × MATCH_COLS` floats (1 MiB) instead of
/// growing with the bank.
const MATCH_COLS: usize = 2048;

thread_local! {
    /// Per-thread product tile, reused across calls so matching allocates nothing.
    static TILE: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Squared L2 norm of every row.
pub fn row_sq_norms(x: ArrayView2<f32>) -> Array1<f32> {
    x.rows().into_iter().map(|r| r.dot(&r)).collect()
}

fn check_shapes(x: &ArrayView2<f32>, c: &ArrayView2<f32>, c_norms: &ArrayView1<f32>) -> Result<()> {
    if x.ncols() != c.ncols() {
        return Err(Error::Internal(format!(
            "distance: points have {} dims but centres have {}",
            x.ncols(),
            c.ncols()
        )));
    }
    if c_norms.len() != c.nrows() {
        return Err(Error::Internal(format!(
            "distance: {} centre norms for {} centres",
            c_norms.len(),
            c.nrows()
        )));
    }
    Ok(())
}

/// For every row of `x`, the minimum over rows of `c` of the squared distance, clamped at 0
/// (rounding can make the expanded form slightly negative). `c_norms` are the squared row
/// norms of `c` (see [`row_sq_norms`]), passed in so a fixed bank computes them once.
/// Errors if dimensions disagree, `c` is empty, or `out` does not have one slot per row of `x`.
pub fn min_sq_distances(
    x: ArrayView2<f32>,
    c: ArrayView2<f32>,
    c_norms: ArrayView1<f32>,
    out: &mut [f32],
) -> Result<()> {
    check_shapes(&x, &c, &c_norms)?;
    if c.nrows() == 0 {
        return Err(Error::invalid("min_sq_distances: no centres"));
    }
    if out.len() != x.nrows() {
        return Err(Error::Internal(format!(
            "min_sq_distances: output has {} slots for {} points",
            out.len(),
            x.nrows()
        )));
    }
    let block = |(o, xb): (&mut [f32], ArrayView2<f32>)| {
        TILE.with_borrow_mut(|tile| min_block(xb, c, c_norms, o, tile));
    };
    // One block: no fork-join (a thread hop costs more than a small product).
    if x.nrows() <= MATCH_ROWS {
        block((out, x));
    } else {
        out.par_chunks_mut(MATCH_ROWS).zip(x.axis_chunks_iter(Axis(0), MATCH_ROWS).into_par_iter()).for_each(block);
    }
    Ok(())
}

/// For every row of `x`, the Euclidean distance to the nearest row of `c`: the square root of
/// [`min_sq_distances`], into `out` (resized to one slot per row of `x`).
pub fn nearest_distances(x: ArrayView2<f32>, c: ArrayView2<f32>, c_norms: ArrayView1<f32>, out: &mut Vec<f32>) -> Result<()> {
    out.resize(x.nrows(), 0.0);
    min_sq_distances(x, c, c_norms, out)?;
    for v in out.iter_mut() {
        *v = v.sqrt();
    }
    Ok(())
}

/// [`min_sq_distances`] for one block of rows, tiling the centres by [`MATCH_COLS`].
/// The running minimum visits centres in index order, so the result does not depend on
/// the tiling or the thread that runs it.
fn min_block(xb: ArrayView2<f32>, c: ArrayView2<f32>, c_norms: ArrayView1<f32>, out: &mut [f32], tile: &mut Vec<f32>) {
    let rows = xb.nrows();
    out.fill(f32::INFINITY);
    for (cb, nb) in c.axis_chunks_iter(Axis(0), MATCH_COLS).zip(c_norms.axis_chunks_iter(Axis(0), MATCH_COLS)) {
        let cols = cb.nrows();
        tile.resize(rows * cols, 0.0);
        let mut prod = ArrayViewMut2::from_shape((rows, cols), &mut tile[..rows * cols]).expect("tile has rows × cols floats");
        crate::kernels::matmul::matmul(xb, cb.t(), &mut prod, false);
        let nb = nb.as_slice().map(std::borrow::Cow::Borrowed).unwrap_or_else(|| std::borrow::Cow::Owned(nb.to_vec()));
        for (slot, pr) in out.iter_mut().zip(tile.chunks_exact(cols)) {
            let mut m = *slot;
            for (&p, &cn) in pr.iter().zip(nb.iter()) {
                // -2 x·c (scaling by a power of two is exact) + ||c||².
                let v = -2.0 * p + cn;
                m = if v < m { v } else { m };
            }
            *slot = m;
        }
    }
    for (slot, xr) in out.iter_mut().zip(xb.rows()) {
        *slot = (xr.dot(&xr) + *slot).max(0.0);
    }
}

/// Fills `out` (N x K) with all squared distances between rows of `x` (norms `x_norms`) and
/// rows of `c` (norms `c_norms`), clamped at 0. Callers check shapes.
pub(crate) fn sq_distances_into(
    x: ArrayView2<f32>,
    x_norms: ArrayView1<f32>,
    c: ArrayView2<f32>,
    c_norms: ArrayView1<f32>,
    mut out: ArrayViewMut2<f32>,
) {
    debug_assert_eq!(out.dim(), (x.nrows(), c.nrows()));
    out.axis_chunks_iter_mut(Axis(0), BLOCK_ROWS)
        .into_par_iter()
        .zip(x.axis_chunks_iter(Axis(0), BLOCK_ROWS).into_par_iter())
        .zip(x_norms.axis_chunks_iter(Axis(0), BLOCK_ROWS).into_par_iter())
        .for_each(|((mut ob, xb), nb)| {
            general_mat_mul(-2.0, &xb, &c.t(), 0.0, &mut ob);
            for (mut row, &xn) in ob.rows_mut().into_iter().zip(nb.iter()) {
                for (v, &cn) in row.iter_mut().zip(c_norms.iter()) {
                    *v = (*v + xn + cn).max(0.0);
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Array2::from_shape_fn((rows, cols), |_| rng.random_range(-1.0..1.0f32))
    }

    fn naive(x: &Array2<f32>, c: &Array2<f32>, i: usize, k: usize) -> f32 {
        x.row(i).iter().zip(c.row(k).iter()).map(|(a, b)| (a - b) * (a - b)).sum()
    }

    #[test]
    fn bank_min_sq_distances_matches_naive_loop() {
        // More than one block, and a last block that is not full.
        let x = random(2 * BLOCK_ROWS + 37, 19, 1);
        let c = random(7, 19, 2);
        let cn = row_sq_norms(c.view());
        let mut out = vec![0.0; x.nrows()];
        min_sq_distances(x.view(), c.view(), cn.view(), &mut out).unwrap();
        for (i, &got) in out.iter().enumerate() {
            let want = (0..c.nrows()).map(|k| naive(&x, &c, i, k)).fold(f32::INFINITY, f32::min);
            assert!((got - want).abs() < 1e-4 * (1.0 + want), "row {i}: {got} vs {want}");
        }
    }

    #[test]
    fn bank_min_sq_distances_tiles_large_banks_exactly() {
        // More centres than one tile, the nearest one in the last, partial tile; more rows
        // than one block. Compared with the naive loop, and across thread counts bit for bit.
        let x = random(3 * MATCH_ROWS + 5, 6, 8);
        let mut c = random(MATCH_COLS + 300, 6, 9);
        c.row_mut(MATCH_COLS + 299).assign(&x.row(7));
        let cn = row_sq_norms(c.view());
        let mut out = vec![0.0; x.nrows()];
        min_sq_distances(x.view(), c.view(), cn.view(), &mut out).unwrap();
        assert!(out[7] < 1e-5, "row 7 sits on a centre: {}", out[7]);
        for (i, &got) in out.iter().enumerate().step_by(13) {
            let want = (0..c.nrows()).map(|k| naive(&x, &c, i, k)).fold(f32::INFINITY, f32::min);
            assert!((got - want).abs() < 1e-4 * (1.0 + want), "row {i}: {got} vs {want}");
        }
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let mut one = vec![0.0; x.nrows()];
        pool.install(|| min_sq_distances(x.view(), c.view(), cn.view(), &mut one)).unwrap();
        assert!(out.iter().zip(&one).all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    #[test]
    fn bank_min_sq_distances_zero_for_members() {
        let c = random(5, 8, 3);
        let cn = row_sq_norms(c.view());
        let mut out = vec![1.0; 5];
        min_sq_distances(c.view(), c.view(), cn.view(), &mut out).unwrap();
        assert!(out.iter().all(|&d| (0.0..1e-5).contains(&d)), "{out:?}");
    }

    #[test]
    fn bank_sq_distances_into_matches_naive_loop() {
        let x = random(BLOCK_ROWS + 5, 11, 4);
        let c = random(4, 11, 5);
        let (xn, cn) = (row_sq_norms(x.view()), row_sq_norms(c.view()));
        let mut out = Array2::zeros((x.nrows(), c.nrows()));
        sq_distances_into(x.view(), xn.view(), c.view(), cn.view(), out.view_mut());
        for i in 0..x.nrows() {
            for k in 0..c.nrows() {
                let want = naive(&x, &c, i, k);
                assert!((out[[i, k]] - want).abs() < 1e-4 * (1.0 + want));
            }
        }
    }

    #[test]
    fn bank_min_sq_distances_shape_errors() {
        let x = random(3, 4, 6);
        let c = random(2, 5, 7);
        let cn = row_sq_norms(c.view());
        assert!(min_sq_distances(x.view(), c.view(), cn.view(), &mut [0.0; 3]).is_err());
        let c = random(2, 4, 7);
        let cn = row_sq_norms(c.view());
        assert!(min_sq_distances(x.view(), c.view(), cn.view(), &mut [0.0; 2]).is_err());
        assert!(min_sq_distances(x.view(), c.view(), cn.slice(ndarray::s![..1]), &mut [0.0; 3]).is_err());
        let empty = Array2::<f32>::zeros((0, 4));
        let en = row_sq_norms(empty.view());
        assert!(min_sq_distances(x.view(), empty.view(), en.view(), &mut [0.0; 3]).is_err());
    }
}
