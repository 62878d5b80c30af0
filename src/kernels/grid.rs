//! Kernels on channel-last feature grids (`[h*w, c]`, one row per patch): exact GELU,
//! half-pixel bilinear resize, channel interleaving, box mean over valid neighbours, and the
//! buffer pool the scoring backend takes its storage from. Every parallel split is by fixed
//! rows, so results are bit-identical on any thread count.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use super::upsample::{bilinear_taps, Tap};

/// Exact GELU, `x Φ(x)`, as torch's default `nn.GELU()`.
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// Reusable `f32` storage: the scoring backend takes every map's buffer from here and gives
/// it back when the map is dropped, so a stream of same-size images stops allocating (large
/// fresh allocations cost page faults: more than the arithmetic of the steps that fill them).
/// An empty pool allocates. Thread-safe (rayon tasks share one).
#[derive(Debug, Default)]
pub struct BufferPool(parking_lot::Mutex<Vec<Vec<f32>>>);

impl BufferPool {
    /// Buffers kept at most (the head of a batch of a few images needs about a dozen).
    const KEEP: usize = 64;

    /// A buffer of `n` floats with unspecified contents (the caller overwrites them all).
    pub fn take(&self, n: usize) -> Vec<f32> {
        let mut v = self.fitting(n);
        // Old contents stay (no refill); only a grown tail is initialised.
        if v.len() >= n {
            v.truncate(n);
        } else {
            v.resize(n, 0.0);
        }
        v
    }

    /// An empty buffer with room for `n` floats.
    pub fn take_empty(&self, n: usize) -> Vec<f32> {
        let mut v = self.fitting(n);
        v.clear();
        v
    }

    /// The smallest kept buffer with room for `n` floats (large buffers stay for large
    /// maps), or a new one.
    fn fitting(&self, n: usize) -> Vec<f32> {
        let mut pool = self.0.lock();
        let best = pool.iter().enumerate().filter(|(_, v)| v.capacity() >= n).min_by_key(|(_, v)| v.capacity()).map(|(i, _)| i);
        match best {
            Some(i) => pool.swap_remove(i),
            None => Vec::with_capacity(n),
        }
    }

    /// Hands a buffer back.
    pub fn give(&self, v: Vec<f32>) {
        if v.capacity() == 0 {
            return;
        }
        let mut pool = self.0.lock();
        if pool.len() < Self::KEEP {
            pool.push(v);
        }
    }

    /// Hands an array's storage back.
    pub fn give_array(&self, a: Array2<f32>) {
        self.give(a.into_raw_vec_and_offset().0);
    }
}

/// Interleaves slices of `g` channels: `[a0..g, b0..g, ag..2g, bg..2g, ...]`.
pub fn interleave(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>, g: usize) -> Array2<f32> {
    let (p, half) = a.dim();
    let (a, b) = (a.as_standard_layout(), b.as_standard_layout());
    let mut out = vec![0.0f32; p * 2 * half];
    interleave_into(contiguous(&a), contiguous(&b), half, g, &mut out);
    Array2::from_shape_vec((p, 2 * half), out).unwrap_or_else(|_| unreachable!("p*2*half floats"))
}

/// The slice of a standard-layout array.
pub(crate) fn contiguous<'s>(a: &'s ndarray::CowArray<'_, f32, ndarray::Ix2>) -> &'s [f32] {
    a.as_slice().unwrap_or_else(|| unreachable!("standard layout arrays are contiguous"))
}

/// [`interleave`] of row-major `[p, half]` slices into `out` (`[p, 2*half]`, every element
/// written), rows split over rayon.
pub(crate) fn interleave_into(a: &[f32], b: &[f32], half: usize, g: usize, out: &mut [f32]) {
    if half == 0 {
        return;
    }
    const ROWS: usize = 64;
    out.par_chunks_mut(ROWS * 2 * half)
        .zip(a.par_chunks(ROWS * half).zip(b.par_chunks(ROWS * half)))
        .for_each(|(o, (a, b))| interleave_rows(o, a, b, half, g.max(1)));
}

super::simd::multiversion! {
    /// Rows of [`interleave_into`].
    fn interleave_rows(out: &mut [f32], a: &[f32], b: &[f32], half: usize, g: usize) {
        for ((orow, ar), br) in out.chunks_exact_mut(2 * half).zip(a.chunks_exact(half)).zip(b.chunks_exact(half)) {
            if g == 1 {
                for ((pair, &x), &y) in orow.chunks_exact_mut(2).zip(ar).zip(br) {
                    pair[0] = x;
                    pair[1] = y;
                }
            } else {
                for ((pair, x), y) in orow.chunks_exact_mut(2 * g).zip(ar.chunks_exact(g)).zip(br.chunks_exact(g)) {
                    pair[..g].copy_from_slice(x);
                    pair[g..].copy_from_slice(y);
                }
            }
        }
    }
}

/// Bilinear resize of a channel-last grid `[sh*sw, c]` → `[dh*dw, c]`.
pub fn resize_bilinear_hwc(x: ArrayView2<'_, f32>, sh: usize, sw: usize, dh: usize, dw: usize) -> Array2<f32> {
    let c = x.ncols();
    if (sh, sw) == (dh, dw) {
        return x.to_owned();
    }
    let x = x.as_standard_layout();
    let mut out = vec![0.0f32; dh * dw * c];
    resize_into(contiguous(&x), c, (sh, sw), (dh, dw), &mut out);
    Array2::from_shape_vec((dh * dw, c), out).unwrap_or_else(|_| unreachable!("dh*dw*c floats"))
}

/// [`resize_bilinear_hwc`] of a row-major slice into `out` (`[dh*dw, c]`, every element
/// written), output rows split over rayon (each element is computed the same way on any
/// thread).
pub(crate) fn resize_into(src: &[f32], c: usize, (sh, sw): (usize, usize), (dh, dw): (usize, usize), out: &mut [f32]) {
    if c == 0 || dh * dw == 0 {
        return;
    }
    // Same sampling table as the anomaly-map upsampling, so both follow one convention.
    let ty = bilinear_taps(dh, sh);
    let tx = bilinear_taps(dw, sw);
    let src_row = |y: usize| &src[y * sw * c..(y + 1) * sw * c];
    out.par_chunks_mut(dw * c).zip(ty.par_iter()).with_min_len(4).for_each_init(
        || vec![0.0f32; sw * c],
        |blend, (orow, t)| resize_row(orow, blend, src_row(t.i0), src_row(t.i1), t.w1, &tx, c),
    );
}

super::simd::multiversion! {
    /// One output row of [`resize_into`]: blend the two source rows `r0`, `r1` (weight `fy`
    /// on `r1`) into `blend` once, then interpolate along x with the taps `tx`.
    fn resize_row(orow: &mut [f32], blend: &mut [f32], r0: &[f32], r1: &[f32], fy: f32, tx: &[Tap], c: usize) {
        for ((r, &a), &b) in blend.iter_mut().zip(r0).zip(r1) {
            *r = a * (1.0 - fy) + b * fy;
        }
        for (o, t) in orow.chunks_exact_mut(c).zip(tx) {
            let fx = t.w1;
            let (a, b) = (&blend[t.i0 * c..(t.i0 + 1) * c], &blend[t.i1 * c..(t.i1 + 1) * c]);
            for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
                *o = a * (1.0 - fx) + b * fx;
            }
        }
    }
}

/// Mean over a `k`×`k` window of valid neighbours (no zero padding), channel-last.
pub fn box_mean_hwc(x: ArrayView2<'_, f32>, h: usize, w: usize, k: usize) -> Array2<f32> {
    let c = x.ncols();
    let x = x.as_standard_layout();
    let mut out = vec![0.0f32; h * w * c];
    let mut tmp = vec![0.0f32; h * w * c];
    box_mean_into(contiguous(&x), c, h, w, k, &mut tmp, &mut out, c, 0);
    Array2::from_shape_vec((h * w, c), out).unwrap_or_else(|_| unreachable!("h*w*c floats"))
}

/// [`box_mean_hwc`] of a row-major `[h*w, c]` slice written into columns `col..col + c` of
/// `out` (`h*w` rows of `stride` floats; those columns all written): a horizontal pass into
/// `tmp` (`h*w*c` floats, contents irrelevant), then a vertical one, each split over rayon
/// by image rows. Every element is summed in the same order on any thread.
#[allow(clippy::too_many_arguments)]
pub(crate) fn box_mean_into(src: &[f32], c: usize, h: usize, w: usize, k: usize, tmp: &mut [f32], out: &mut [f32], stride: usize, col: usize) {
    let r = k / 2;
    if c == 0 || h * w == 0 {
        return;
    }
    tmp.par_chunks_mut(w * c).zip(src.par_chunks(w * c)).for_each(|(t, s)| box_row(t, s, c, r));
    let tmp: &[f32] = tmp;
    out.par_chunks_mut(w * stride).enumerate().for_each(|(y, o)| {
        let (lo, hi) = (y.saturating_sub(r), (y + r).min(h - 1));
        box_column(o, stride, col, &tmp[lo * w * c..(hi + 1) * w * c], w, c, 1.0 / (hi - lo + 1) as f32);
    });
}

super::simd::multiversion! {
    /// Horizontal box-mean pass over one image row `s` (pixels of `c` floats) into `t`.
    fn box_row(t: &mut [f32], s: &[f32], c: usize, r: usize) {
        let w = s.len() / c;
        for (xx, o) in t.chunks_exact_mut(c).enumerate() {
            let (lo, hi) = (xx.saturating_sub(r), (xx + r).min(w - 1));
            let inv = 1.0 / (hi - lo + 1) as f32;
            o.fill(0.0);
            for j in lo..=hi {
                for (o, &v) in o.iter_mut().zip(&s[j * c..(j + 1) * c]) {
                    *o += inv * v;
                }
            }
        }
    }
}

super::simd::multiversion! {
    /// Vertical box-mean pass for one output image row: pixel `x` of `out` (floats
    /// `x*stride + col..+c`) is `inv` times the sum of pixel `x` over the image rows in
    /// `rows` (consecutive rows of `w` pixels of `c` floats), in order.
    fn box_column(out: &mut [f32], stride: usize, col: usize, rows: &[f32], w: usize, c: usize, inv: f32) {
        for xx in 0..w {
            let o = &mut out[xx * stride + col..xx * stride + col + c];
            o.fill(0.0);
            for row in rows.chunks_exact(w * c) {
                for (o, &v) in o.iter_mut().zip(&row[xx * c..(xx + 1) * c]) {
                    *o += inv * v;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleave_alternates_groups() {
        let a = Array2::from_shape_vec((1, 4), vec![0., 1., 2., 3.]).unwrap();
        let b = Array2::from_shape_vec((1, 4), vec![10., 11., 12., 13.]).unwrap();
        assert_eq!(interleave(a.view(), b.view(), 1).row(0).to_vec(), vec![0., 10., 1., 11., 2., 12., 3., 13.]);
        assert_eq!(interleave(a.view(), b.view(), 2).row(0).to_vec(), vec![0., 1., 10., 11., 2., 3., 12., 13.]);
    }

    #[test]
    fn resize_keeps_constants_and_interpolates_midpoints() {
        let x = Array2::from_shape_fn((4, 2), |(p, c)| if c == 0 { 5.0 } else { (p % 2) as f32 });
        let y = resize_bilinear_hwc(x.view(), 2, 2, 4, 4);
        assert!(y.column(0).iter().all(|v| (*v - 5.0).abs() < 1e-6));
        // Output x = 1 maps to source 0.25: 0.75*0 + 0.25*1.
        assert!((y[[1, 1]] - 0.25).abs() < 1e-6, "{}", y[[1, 1]]);
        assert!((y[[0, 1]] - 0.0).abs() < 1e-6 && (y[[3, 1]] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn box_mean_uses_valid_neighbours_only() {
        let x = Array2::from_shape_fn((9, 1), |(p, _)| p as f32);
        let y = box_mean_hwc(x.view(), 3, 3, 3);
        assert!((y[[4, 0]] - 4.0).abs() < 1e-6);
        // Corner (0,0): mean of 0,1,3,4.
        assert!((y[[0, 0]] - 2.0).abs() < 1e-6);
    }

    #[test]
    fn gelu_matches_known_values() {
        assert!((gelu(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((gelu(-1.0) + 0.158_655_3).abs() < 1e-6);
        assert_eq!(gelu(0.0), 0.0);
    }
}
