//! Squared Euclidean distances between row sets, computed with GEMM.
//!
//! `||x - c||^2 = ||x||^2 + ||c||^2 - 2 x·c`: the cross term for a block of rows is one matrix
//! product, which runs at GEMM speed instead of a per-pair loop. Rows are processed in fixed
//! blocks so memory stays bounded and results do not depend on the number of threads.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;

use crate::error::{Error, Result};

/// Rows of `x` per GEMM block: a 1024 x K block of products stays small for any K we use.
pub(crate) const BLOCK_ROWS: usize = 1024;

/// Rows of `c` per GEMM tile in [`min_sq_distances`]: a full-scorer bank can hold millions
/// of rows, and one `[BLOCK_ROWS, all rows]` product would make the memory of one score grow
/// with the bank (12 GB for 4M rows). Tiles bound it to 16 MiB per block; the minimum over
/// tiles is exact, so results do not depend on the tile size.
pub(crate) const TILE_COLS: usize = 4096;

/// Squared L2 norm of every row.
pub fn row_sq_norms(x: ArrayView2<f32>) -> Array1<f32> {
    x.rows().into_iter().map(|r| r.dot(&r)).collect()
}

fn check_shapes(x: &ArrayView2<f32>, c: &ArrayView2<f32>, c_norms: &ArrayView1<f32>) -> Result<()> {
    if x.ncols() != c.ncols() {
        return Err(Error::Mismatch(format!(
            "distance: points have {} dims but centres have {}",
            x.ncols(),
            c.ncols()
        )));
    }
    if c_norms.len() != c.nrows() {
        return Err(Error::Mismatch(format!(
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
        return Err(Error::Mismatch(format!(
            "min_sq_distances: output has {} slots for {} points",
            out.len(),
            x.nrows()
        )));
    }
    min_sq_distances_tiled(x, c, c_norms, out, TILE_COLS);
    Ok(())
}

/// [`min_sq_distances`] with `tile` rows of `c` per GEMM (shapes already checked).
fn min_sq_distances_tiled(x: ArrayView2<f32>, c: ArrayView2<f32>, c_norms: ArrayView1<f32>, out: &mut [f32], tile: usize) {
    out.par_chunks_mut(BLOCK_ROWS)
        .zip(x.axis_chunks_iter(Axis(0), BLOCK_ROWS).into_par_iter())
        .for_each(|(o, xb)| {
            let mut best = vec![f32::INFINITY; xb.nrows()];
            let mut prod = Array2::<f32>::zeros((xb.nrows(), tile.min(c.nrows())));
            for (ct, cnt) in c.axis_chunks_iter(Axis(0), tile).zip(c_norms.axis_chunks_iter(Axis(0), tile)) {
                let mut p = prod.slice_mut(ndarray::s![.., ..ct.nrows()]);
                general_mat_mul(-2.0, &xb, &ct.t(), 0.0, &mut p);
                for (b, pr) in best.iter_mut().zip(p.rows()) {
                    let m = pr.iter().zip(cnt.iter()).map(|(&p, &cn)| p + cn).fold(f32::INFINITY, f32::min);
                    *b = b.min(m);
                }
            }
            for ((slot, xr), &m) in o.iter_mut().zip(xb.rows()).zip(&best) {
                let xn = xr.dot(&xr);
                *slot = (xn + m).max(0.0);
            }
        });
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
    fn bank_min_sq_distances_tiles_are_bit_identical() {
        // Tiles of 1, 3 and 64 rows (the last one partial) against a single tile.
        let x = random(BLOCK_ROWS + 9, 24, 8);
        let c = random(131, 24, 9);
        let cn = row_sq_norms(c.view());
        let mut whole = vec![0.0; x.nrows()];
        min_sq_distances_tiled(x.view(), c.view(), cn.view(), &mut whole, c.nrows());
        for tile in [1, 3, 64] {
            let mut tiled = vec![0.0; x.nrows()];
            min_sq_distances_tiled(x.view(), c.view(), cn.view(), &mut tiled, tile);
            let same = whole.iter().zip(&tiled).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "tile {tile} changes results");
        }
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
