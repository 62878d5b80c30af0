//! f32 matrix products on the scoring path, through the `gemm` crate.
//!
//! Why `gemm` and not ndarray's `matrixmultiply`: it reads any strides, so encoder maps are
//! multiplied in place, transposed, without a channel-last copy, and for the head's and
//! matching's shapes (a few hundred rows, 30-384 columns) it was the faster of the two. The
//! crate is already in the tree (candle's CPU matmul uses the same version).
//!
//! ## Same bits on every machine
//! Both GEMM crates are built without their AVX-512 kernels (`gemm`'s `x86-v4`,
//! `matrixmultiply`'s `avx512`): those sum each product in another order than the AVX2/FMA
//! kernels, so an AVX-512 machine and an AVX2 one gave maps that differed in the last bits
//! (found when the cross-language fixture, made on an AVX-512 machine, failed on an AVX2
//! one). With the AVX2/FMA kernels on both, a bank and an image give the same map on any
//! x86-64 machine with AVX2 and FMA (every x86 server and PC CPU since 2013-2015); older
//! CPUs fall back to SSE kernels and may differ in the last bits. The cost is small: these
//! products are a fraction of the post-encoder work, itself about 1 % of the encoders.
//!
//! Products are split over rayon by fixed row blocks ([`par_rows`]), each block a
//! single-threaded `gemm` call: every output element is summed in the same order whatever
//! the thread count, so results are bit-identical with 1 or N threads.

use ndarray::{ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;

/// `c = c + a · b` when `accumulate`, else `c = a · b`; any strides. Single-threaded.
///
/// Panics if the shapes disagree (callers own every shape; a mismatch is a bug).
pub fn matmul(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>, c: &mut ArrayViewMut2<'_, f32>, accumulate: bool) {
    let ((m, k), (k2, n)) = (a.dim(), b.dim());
    assert!(k == k2 && c.dim() == (m, n), "matmul: [{m}x{k}] · [{k2}x{n}] into {:?}", c.dim());
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.fill(0.0);
        }
        return;
    }
    let (sa, sb) = (a.strides(), b.strides());
    let sc = [c.strides()[0], c.strides()[1]];
    // SAFETY: the three views are valid for their shapes and strides (ndarray guarantees
    // it), `c` is borrowed mutably so it cannot alias `a` or `b`, and `gemm` reads and
    // writes only elements inside those shapes. `read_dst = false` never reads `c`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            sc[1],
            sc[0],
            accumulate,
            a.as_ptr(),
            sa[1],
            sa[0],
            b.as_ptr(),
            sb[1],
            sb[0],
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// [`matmul`] split over rayon by blocks of `block` rows of `a` and `c` (one task when
/// `a` has at most `block` rows: a thread hop costs more than a small product).
pub fn par_rows(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>, mut c: ArrayViewMut2<'_, f32>, accumulate: bool, block: usize) {
    let block = block.max(1);
    if a.nrows() <= block {
        matmul(a, b, &mut c, accumulate);
        return;
    }
    a.axis_chunks_iter(Axis(0), block)
        .into_par_iter()
        .zip(c.axis_chunks_iter_mut(Axis(0), block).into_par_iter())
        .for_each(|(ab, mut cb)| matmul(ab, b, &mut cb, accumulate));
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};

    fn random(r: usize, c: usize, seed: u64) -> Array2<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        Array2::from_shape_fn((r, c), |_| rng.random_range(-1.0..1.0f32))
    }

    #[test]
    fn matches_ndarray_for_every_layout() {
        let (m, k, n) = (37, 19, 23);
        let a = random(m, k, 1);
        let b = random(k, n, 2);
        let want = a.dot(&b);
        let at = a.t().as_standard_layout().into_owned(); // [k, m], read transposed below
        let bt = b.t().as_standard_layout().into_owned();
        for (av, bv) in [(a.view(), b.view()), (at.t(), b.view()), (a.view(), bt.t()), (at.t(), bt.t())] {
            let mut c = Array2::from_elem((m, n), 1.0f32);
            matmul(av, bv, &mut c.view_mut(), true);
            let d = (&c - &want).mapv(|v| (v - 1.0).abs()).fold(0.0f32, |x, y| x.max(*y));
            assert!(d < 1e-5, "accumulate: {d}");
            let mut ct = Array2::from_elem((n, m), f32::NAN);
            matmul(av, bv, &mut ct.view_mut().reversed_axes(), false);
            let d = (&ct.t() - &want).mapv(f32::abs).fold(0.0f32, |x, y| x.max(*y));
            assert!(d < 1e-5, "overwrite into a transposed view: {d}");
        }
    }

    #[test]
    fn row_blocks_equal_one_product_to_the_bit() {
        let a = random(300, 40, 3);
        let b = random(40, 17, 4);
        let mut one = Array2::zeros((300, 17));
        let mut split = Array2::zeros((300, 17));
        matmul(a.view(), b.view(), &mut one.view_mut(), false);
        par_rows(a.view(), b.view(), split.view_mut(), false, 64);
        // Same blocks on a one-thread pool: the thread count never changes a bit.
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let mut serial = Array2::zeros((300, 17));
        pool.install(|| par_rows(a.view(), b.view(), serial.view_mut(), false, 64));
        assert_eq!(split, serial);
        let d = (&one - &split).mapv(f32::abs).fold(0.0f32, |x, y| x.max(*y));
        assert!(d < 1e-5, "{d}");
    }

    #[test]
    fn empty_inner_dimension_gives_zeros_or_keeps_c() {
        let a = Array2::<f32>::zeros((3, 0));
        let b = Array2::<f32>::zeros((0, 2));
        let mut c = Array2::from_elem((3, 2), 5.0f32);
        matmul(a.view(), b.view(), &mut c.view_mut(), true);
        assert!(c.iter().all(|v| *v == 5.0));
        matmul(a.view(), b.view(), &mut c.view_mut(), false);
        assert!(c.iter().all(|v| *v == 0.0));
    }
}
