//! Map kernels: bilinear upsampling and Gaussian smoothing at the image's own resolution,
//! separately or fused into one separable operator per axis ([`AxisOp`]).

// Map kernels
//
// Self-contained kernels applied to every scored image at the image's own resolution
// (often 1024x1024), so they avoid per-pixel allocation and keep their inner loops as
// whole-row slice operations that the compiler vectorises. Both match the Python
// reference stack (torch/OpenCV bilinear, scipy.ndimage.gaussian_filter) to float32
// rounding; tests/fixtures/score/make_refs.py holds the references.

use rayon::prelude::*;

/// Maps at or above this many pixels are processed with rayon over rows. Each output
/// element is computed by the same sequence of operations either way, so serial and
/// parallel results are bit-identical.
const PARALLEL_MIN_PIXELS: usize = 1 << 16;

/// One source neighbour pair and the weight of the second, for one output coordinate.
#[derive(Clone, Copy)]
pub(crate) struct Tap {
    pub(crate) i0: usize,
    pub(crate) i1: usize,
    pub(crate) w1: f32,
}

/// Half-pixel-centre sampling table: output `x` reads source coordinate
/// `(x + 0.5) * n_src / n_dst - 0.5`, clamped to `[0, n_src - 1]`, exactly as OpenCV
/// `INTER_LINEAR` and torch `align_corners=False` do.
pub(crate) fn bilinear_taps(n_dst: usize, n_src: usize) -> Vec<Tap> {
    (0..n_dst)
        .map(|x| {
            let (i0, i1, w1) = bilinear_tap(x, n_dst, n_src);
            Tap { i0, i1, w1: w1 as f32 }
        })
        .collect()
}

/// The one definition of the sampling rule above, for output `x`: the two source indices
/// and the weight of the second, in f64 ([`bilinear_taps`] stores it as f32, [`AxisOp`]
/// composes it in f64).
fn bilinear_tap(x: usize, n_dst: usize, n_src: usize) -> (usize, usize, f64) {
    let scale = n_src as f64 / n_dst as f64;
    let s = ((x as f64 + 0.5) * scale - 0.5).max(0.0);
    let i0 = (s.floor() as usize).min(n_src - 1);
    let i1 = (i0 + 1).min(n_src - 1);
    (i0, i1, (s - i0 as f64).clamp(0.0, 1.0))
}

/// Bilinear resize of a row-major `sw x sh` map into `dst` (`dw x dh`), half-pixel
/// centres (torch `interpolate(..., align_corners=False)`, OpenCV `INTER_LINEAR`).
///
/// Separable: the source rows are first interpolated horizontally once each (there are
/// few of them: the patch grid), then every output row is a blend of two of those rows.
///
/// # Panics
/// If `src.len() != sw * sh`, `dst.len() != dw * dh`, or the source is empty while the
/// destination is not. These are caller bugs (sizes come from the model), not user input.
pub fn upsample_bilinear(src: &[f32], sw: usize, sh: usize, dst: &mut [f32], dw: usize, dh: usize) {
    assert_eq!(src.len(), sw * sh, "upsample_bilinear: src length != sw*sh");
    assert_eq!(dst.len(), dw * dh, "upsample_bilinear: dst length != dw*dh");
    if dst.is_empty() {
        return;
    }
    assert!(
        sw > 0 && sh > 0,
        "upsample_bilinear: empty source, non-empty destination"
    );

    let cols = bilinear_taps(dw, sw);
    let rows = bilinear_taps(dh, sh);

    // Horizontal pass over every source row: sh x dw.
    let mut wide = vec![0.0f32; sh * dw];
    for (srow, wrow) in src.chunks_exact(sw).zip(wide.chunks_exact_mut(dw)) {
        for (o, t) in wrow.iter_mut().zip(&cols) {
            let a = srow[t.i0];
            *o = a + (srow[t.i1] - a) * t.w1;
        }
    }

    // Vertical pass: each output row blends two horizontally interpolated rows.
    let blend_row = |(y, out): (usize, &mut [f32])| {
        let t = rows[y];
        let a = &wide[t.i0 * dw..(t.i0 + 1) * dw];
        let b = &wide[t.i1 * dw..(t.i1 + 1) * dw];
        for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
            *o = a + (b - a) * t.w1;
        }
    };
    if dw * dh >= PARALLEL_MIN_PIXELS {
        dst.par_chunks_exact_mut(dw).enumerate().for_each(blend_row);
    } else {
        dst.chunks_exact_mut(dw).enumerate().for_each(blend_row);
    }
}

/// Index of `i` in a line of length `n` extended by half-sample symmetric reflection
/// (`d c b a | a b c d | d c b a | ...`), repeated as often as needed so that kernels
/// longer than the line behave like scipy's `mode="reflect"`.
#[inline]
fn reflect(i: isize, n: usize) -> usize {
    let p = 2 * n as isize;
    let m = i.rem_euclid(p);
    if m < n as isize {
        m as usize
    } else {
        (p - 1 - m) as usize
    }
}

/// Normalised Gaussian weights of radius `round(4 sigma)` (scipy's `truncate=4.0`:
/// `int(4 * sigma + 0.5)`), computed in f64 like scipy, then stored as f32.
fn gaussian_weights(sigma: f32) -> Vec<f32> {
    gaussian_weights_f64(sigma).into_iter().map(|v| v as f32).collect()
}

/// [`gaussian_weights`] before rounding to f32 (the one definition of the kernel).
fn gaussian_weights_f64(sigma: f32) -> Vec<f64> {
    let s = sigma as f64;
    let r = (4.0 * s + 0.5) as isize;
    let w: Vec<f64> = (-r..=r).map(|x| (-0.5 * (x * x) as f64 / (s * s)).exp()).collect();
    let sum: f64 = w.iter().sum();
    w.into_iter().map(|v| v / sum).collect()
}

/// In-place separable Gaussian blur of a row-major `w x h` map, identical (to float32
/// rounding) to `scipy.ndimage.gaussian_filter(map, sigma, mode="reflect", truncate=4.0)`.
///
/// `scratch` is reused between calls to avoid reallocating a full-size buffer per image;
/// its content on return is unspecified. Large maps are processed with rayon over rows,
/// with results bit-identical to the serial path.
///
/// `sigma == 0` leaves `buf` unchanged. The caller validates sigma: a negative or
/// non-finite sigma is a bug here (debug assertion), and must be rejected with a clear
/// error where it enters (options, bank metadata).
///
/// # Panics
/// If `buf.len() != w * h`.
pub fn gaussian_blur(buf: &mut [f32], w: usize, h: usize, sigma: f32, scratch: &mut Vec<f32>) {
    blur_impl(buf, w, h, sigma, scratch, w * h >= PARALLEL_MIN_PIXELS);
}

fn blur_impl(buf: &mut [f32], w: usize, h: usize, sigma: f32, scratch: &mut Vec<f32>, parallel: bool) {
    assert_eq!(buf.len(), w * h, "gaussian_blur: buf length != w*h");
    debug_assert!(
        sigma.is_finite() && sigma >= 0.0,
        "gaussian_blur: sigma must be finite and >= 0"
    );
    if !(sigma > 0.0 && sigma.is_finite()) || buf.is_empty() {
        return;
    }
    let weights = gaussian_weights(sigma);
    let r = weights.len() / 2;

    scratch.clear();
    scratch.extend_from_slice(buf);

    // Axis 0 (down the columns), as scipy does first: every output row is a weighted sum
    // of whole source rows, so the inner loop runs along contiguous memory.
    {
        let src: &[f32] = scratch;
        let column_pass = |(y, out): (usize, &mut [f32])| {
            out.fill(0.0);
            for (k, &wk) in weights.iter().enumerate() {
                let sy = reflect(y as isize + k as isize - r as isize, h);
                let s = &src[sy * w..(sy + 1) * w];
                for (o, &v) in out.iter_mut().zip(s) {
                    *o += wk * v;
                }
            }
        };
        if parallel {
            buf.par_chunks_exact_mut(w).enumerate().for_each(column_pass);
        } else {
            buf.chunks_exact_mut(w).enumerate().for_each(column_pass);
        }
    }

    scratch.copy_from_slice(buf);

    // Axis 1 (along the rows): the interior is a sum of shifted slices; only the 2r
    // border pixels per row need reflected indices.
    {
        let src: &[f32] = scratch;
        let row_pass = |(y, out): (usize, &mut [f32])| {
            let s = &src[y * w..(y + 1) * w];
            let border = |x: usize| -> f32 {
                let mut acc = 0.0f32;
                for (k, &wk) in weights.iter().enumerate() {
                    acc += wk * s[reflect(x as isize + k as isize - r as isize, w)];
                }
                acc
            };
            if w > 2 * r {
                let interior = &mut out[r..w - r];
                interior.fill(0.0);
                for (k, &wk) in weights.iter().enumerate() {
                    for (o, &v) in interior.iter_mut().zip(&s[k..k + w - 2 * r]) {
                        *o += wk * v;
                    }
                }
                for x in (0..r).chain(w - r..w) {
                    out[x] = border(x);
                }
            } else {
                for (x, o) in out.iter_mut().enumerate() {
                    *o = border(x);
                }
            }
        };
        if parallel {
            buf.par_chunks_exact_mut(w).enumerate().for_each(row_pass);
        } else {
            buf.chunks_exact_mut(w).enumerate().for_each(row_pass);
        }
    }
}


/// One axis of a separable linear map operator: output `o` is
/// `sum_j w[o * len + j] * src[lo[o] + j]`, a short dense run of source samples.
///
/// Bilinear upsampling and Gaussian smoothing are both linear and separable, so along one
/// axis "upsample n_src → n_dst, then blur with σ (reflect borders)" is one `n_dst × n_src`
/// matrix `G·U`. Its rows are short: an output pixel sees only the few grid cells within
/// `4σ` pixels of it (2-5 cells for σ = 4 px at typical upsampling factors), so applying
/// the product costs a handful of multiply-adds per pixel instead of the `2 + 2·(8σ+1)`
/// of upsampling and then blurring at full resolution.
#[derive(Debug, Clone, Default)]
pub struct AxisOp {
    n_dst: usize,
    n_src: usize,
    sigma_bits: u32,
    len: usize,
    lo: Vec<usize>,
    w: Vec<f32>,
}

/// Largest accepted weight table (entries) before [`AxisOp::upsample_blur`] declines and
/// callers fall back to the two-step path; only reached for absurd σ / size combinations.
const MAX_OP_ENTRIES: usize = 1 << 24;

impl AxisOp {
    /// The operator "bilinear resize `n_src` → `n_dst` (half-pixel centres, as
    /// [`upsample_bilinear`]), then Gaussian σ with scipy's `mode="reflect", truncate=4`
    /// (as [`gaussian_blur`])" along one axis. Weights are composed in f64. `sigma == 0` is
    /// the plain resize. `None` if the table would exceed [`MAX_OP_ENTRIES`] entries.
    pub fn upsample_blur(n_dst: usize, n_src: usize, sigma: f32) -> Option<Self> {
        if n_dst == 0 || n_src == 0 || !(sigma.is_finite() && sigma >= 0.0) {
            return None;
        }
        let tap = |x: usize| bilinear_tap(x, n_dst, n_src);
        let g: Vec<f64> = if sigma > 0.0 { gaussian_weights_f64(sigma) } else { vec![1.0] };
        let r = (g.len() / 2) as isize;
        // Row by row into a dense accumulator; only the touched range is cleared afterwards.
        let mut acc = vec![0.0f64; n_src];
        let mut rows: Vec<(usize, Vec<f64>)> = Vec::with_capacity(n_dst);
        let mut len = 1;
        for o in 0..n_dst {
            let (mut lo, mut hi) = (usize::MAX, 0usize);
            for (k, &gk) in g.iter().enumerate() {
                let y = reflect(o as isize + k as isize - r, n_dst);
                let (i0, i1, w1) = tap(y);
                acc[i0] += gk * (1.0 - w1);
                acc[i1] += gk * w1;
                lo = lo.min(i0);
                hi = hi.max(i1);
            }
            let run = acc[lo..=hi].to_vec();
            acc[lo..=hi].fill(0.0);
            len = len.max(run.len());
            rows.push((lo, run));
        }
        if n_dst.checked_mul(len).is_none_or(|n| n > MAX_OP_ENTRIES) {
            return None;
        }
        let mut op = Self { n_dst, n_src, sigma_bits: sigma.to_bits(), len, lo: Vec::with_capacity(n_dst), w: vec![0.0; n_dst * len] };
        for (o, (lo, run)) in rows.into_iter().enumerate() {
            // Every row gets the same length; shift the start left where it would overrun.
            let start = lo.min(n_src - len);
            let wrow = &mut op.w[o * len..(o + 1) * len];
            for (j, v) in run.into_iter().enumerate() {
                wrow[lo - start + j] = v as f32;
            }
            op.lo.push(start);
        }
        Some(op)
    }

    /// Whether this operator is the one [`AxisOp::upsample_blur`] builds for these arguments.
    pub fn is_for(&self, n_dst: usize, n_src: usize, sigma: f32) -> bool {
        self.n_dst == n_dst && self.n_src == n_src && self.sigma_bits == sigma.to_bits()
    }

    /// Source samples each output reads.
    pub fn taps(&self) -> usize {
        self.len
    }
}

/// Applies `ox` along rows and `oy` along columns to the row-major `sw × sh` grid `src`,
/// writing the `ox.n_dst × oy.n_dst` result into `dst`, and returns the result's maximum.
/// `tmp` is scratch (reused between calls). Large outputs are processed with rayon over
/// rows; each output value is computed by the same operations either way.
///
/// # Panics
/// If the operators do not fit the sizes (`ox.n_src != sw`, `oy.n_src != sh`, or `dst`
/// not `ox.n_dst * oy.n_dst` long); callers build the operators from those sizes.
pub fn apply_separable(src: &[f32], sw: usize, sh: usize, ox: &AxisOp, oy: &AxisOp, tmp: &mut Vec<f32>, dst: &mut [f32]) -> f32 {
    assert!(ox.n_src == sw && oy.n_src == sh && src.len() == sw * sh, "apply_separable: operators do not fit the source");
    let (dw, dh) = (ox.n_dst, oy.n_dst);
    assert_eq!(dst.len(), dw * dh, "apply_separable: dst length");
    // Along x, on the few source rows: sh × dw.
    tmp.clear();
    tmp.resize(sh * dw, 0.0);
    let lx = ox.len;
    for (srow, trow) in src.chunks_exact(sw).zip(tmp.chunks_exact_mut(dw)) {
        for ((t, &lo), w) in trow.iter_mut().zip(&ox.lo).zip(ox.w.chunks_exact(lx)) {
            *t = w.iter().zip(&srow[lo..lo + lx]).map(|(a, b)| a * b).sum();
        }
    }
    // Along y: every output row is a short weighted sum of whole rows of `tmp`.
    let tmp: &[f32] = tmp;
    let ly = oy.len;
    let row = |(y, out): (usize, &mut [f32])| -> f32 {
        let lo = oy.lo[y];
        let w = &oy.w[y * ly..(y + 1) * ly];
        let first = &tmp[lo * dw..(lo + 1) * dw];
        for (o, &v) in out.iter_mut().zip(first) {
            *o = w[0] * v;
        }
        for (j, &wj) in w.iter().enumerate().skip(1) {
            let s = &tmp[(lo + j) * dw..(lo + j + 1) * dw];
            for (o, &v) in out.iter_mut().zip(s) {
                *o += wj * v;
            }
        }
        max_f32(out)
    };
    if dw * dh >= PARALLEL_MIN_PIXELS * 4 {
        dst.par_chunks_exact_mut(dw).enumerate().map(row).reduce(|| f32::NEG_INFINITY, f32::max)
    } else {
        dst.chunks_exact_mut(dw).enumerate().map(row).fold(f32::NEG_INFINITY, f32::max)
    }
}

/// Maximum of a slice (NEG_INFINITY when empty), in eight independent lanes so the
/// compiler vectorises it; NaN-free input assumed (maps are finite).
pub fn max_f32(v: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let chunks = v.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l = if x > *l { x } else { *l };
        }
    }
    rest.iter().copied().chain(lanes).fold(f32::NEG_INFINITY, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn refs() -> Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/score/refs.json");
        let text = std::fs::read_to_string(path).expect("tests/fixtures/score/refs.json");
        serde_json::from_str(&text).expect("refs.json parses")
    }

    fn floats(v: &Value) -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    }

    fn dim(v: &Value, k: &str) -> usize {
        v[k].as_u64().unwrap() as usize
    }

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    #[test]
    fn upsample_matches_numpy_reference() {
        let r = refs();
        let cases = r["upsample"].as_array().unwrap();
        assert!(cases.len() >= 3);
        for c in cases {
            let (sw, sh, dw, dh) = (dim(c, "sw"), dim(c, "sh"), dim(c, "dw"), dim(c, "dh"));
            let src = floats(&c["src"]);
            let want = floats(&c["out"]);
            let mut got = vec![f32::NAN; dw * dh];
            upsample_bilinear(&src, sw, sh, &mut got, dw, dh);
            let d = max_abs_diff(&got, &want);
            assert!(d <= 1e-5, "{sw}x{sh} -> {dw}x{dh}: max abs diff {d}");
        }
    }

    #[test]
    fn upsample_identity_and_constant() {
        let src: Vec<f32> = (0..12).map(|i| i as f32 * 0.25).collect();
        let mut dst = vec![0.0; 12];
        upsample_bilinear(&src, 4, 3, &mut dst, 4, 3);
        assert_eq!(dst, src);
        let c = vec![0.7f32; 6];
        let mut big = vec![0.0; 50 * 40];
        upsample_bilinear(&c, 3, 2, &mut big, 50, 40);
        assert!(big.iter().all(|&v| (v - 0.7).abs() < 1e-6));
    }

    #[test]
    fn upsample_large_parallel_path_matches_reference_formula() {
        // 16x16 -> 300x260 crosses the parallel threshold; compare with a direct scalar
        // evaluation of the half-pixel formula.
        let (sw, sh, dw, dh) = (16, 16, 300, 260);
        let src: Vec<f32> = (0..sw * sh).map(|i| ((i * 37) % 101) as f32 / 100.0).collect();
        let mut dst = vec![0.0; dw * dh];
        upsample_bilinear(&src, sw, sh, &mut dst, dw, dh);
        let coord = |x: usize, n_dst: usize, n_src: usize| {
            let s = (((x as f64) + 0.5) * n_src as f64 / n_dst as f64 - 0.5).max(0.0);
            let i0 = (s.floor() as usize).min(n_src - 1);
            (i0, (i0 + 1).min(n_src - 1), s - i0 as f64)
        };
        for y in (0..dh).step_by(7) {
            for x in (0..dw).step_by(5) {
                let (y0, y1, wy) = coord(y, dh, sh);
                let (x0, x1, wx) = coord(x, dw, sw);
                let p = |yy: usize, xx: usize| src[yy * sw + xx] as f64;
                let top = p(y0, x0) * (1.0 - wx) + p(y0, x1) * wx;
                let bot = p(y1, x0) * (1.0 - wx) + p(y1, x1) * wx;
                let want = top * (1.0 - wy) + bot * wy;
                assert!((dst[y * dw + x] as f64 - want).abs() < 1e-5, "({x},{y})");
            }
        }
    }

    #[test]
    fn blur_matches_scipy_reference() {
        let r = refs();
        let cases = r["blur"].as_array().unwrap();
        assert!(cases.len() >= 3);
        let mut scratch = Vec::new();
        for c in cases {
            let (w, h) = (dim(c, "w"), dim(c, "h"));
            let sigma = c["sigma"].as_f64().unwrap() as f32;
            let mut buf = floats(&c["src"]);
            let want = floats(&c["out"]);
            gaussian_blur(&mut buf, w, h, sigma, &mut scratch);
            let d = max_abs_diff(&buf, &want);
            assert!(d <= 1e-5, "{w}x{h} sigma {sigma}: max abs diff {d}");
        }
    }

    #[test]
    fn blur_sigma_zero_is_noop() {
        let orig: Vec<f32> = (0..20).map(|i| (i as f32).sin()).collect();
        let mut buf = orig.clone();
        gaussian_blur(&mut buf, 5, 4, 0.0, &mut Vec::new());
        assert_eq!(buf, orig);
    }

    #[test]
    fn blur_preserves_mean_and_constant() {
        // Reflect borders conserve mass, so the mean survives; a constant stays constant.
        let (w, h) = (37, 23);
        let orig: Vec<f32> = (0..w * h).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
        let mut buf = orig.clone();
        gaussian_blur(&mut buf, w, h, 2.5, &mut Vec::new());
        let mean = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        assert!((mean(&buf) - mean(&orig)).abs() < 1e-5);
        assert_ne!(buf, orig);
        let mut c = vec![0.25f32; w * h];
        gaussian_blur(&mut c, w, h, 4.0, &mut Vec::new());
        assert!(c.iter().all(|&v| (v - 0.25).abs() < 1e-6));
    }

    #[test]
    fn blur_serial_and_parallel_identical() {
        let (w, h) = (300, 257);
        let orig: Vec<f32> = (0..w * h)
            .map(|i| ((i * 2654435761usize) % 4093) as f32 / 4093.0)
            .collect();
        let mut a = orig.clone();
        let mut b = orig.clone();
        let mut scratch = Vec::new();
        blur_impl(&mut a, w, h, 4.0, &mut scratch, false);
        blur_impl(&mut b, w, h, 4.0, &mut scratch, true);
        assert_ne!(a, orig);
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    }

    #[test]
    fn fused_upsample_blur_matches_scipy_reference() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/score/fused_refs.json");
        let r: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("fused_refs.json")).unwrap();
        let cases = r["fused"].as_array().unwrap();
        assert!(cases.len() >= 6);
        let mut tmp = Vec::new();
        for c in cases {
            let (sw, sh, dw, dh) = (dim(c, "sw"), dim(c, "sh"), dim(c, "dw"), dim(c, "dh"));
            let sigma = c["sigma"].as_f64().unwrap() as f32;
            let src = floats(&c["src"]);
            let want = floats(&c["out"]);
            let ox = AxisOp::upsample_blur(dw, sw, sigma).unwrap();
            let oy = AxisOp::upsample_blur(dh, sh, sigma).unwrap();
            let mut got = vec![f32::NAN; dw * dh];
            let max = apply_separable(&src, sw, sh, &ox, &oy, &mut tmp, &mut got);
            let d = max_abs_diff(&got, &want);
            assert!(d <= 1e-5, "{sw}x{sh} -> {dw}x{dh} sigma {sigma}: max abs diff {d}");
            assert_eq!(max, got.iter().copied().fold(f32::NEG_INFINITY, f32::max));
        }
    }

    #[test]
    fn fused_equals_two_step_kernels_serial_and_parallel() {
        // 28x28 -> 700x600 crosses the parallel threshold; 28x28 -> 230x250 does not.
        let (sw, sh) = (28, 28);
        let src: Vec<f32> = (0..sw * sh).map(|i| ((i * 7919) % 1009) as f32 / 97.0).collect();
        let mut tmp = Vec::new();
        for (dw, dh) in [(700, 600), (230, 250)] {
            let mut two = vec![0.0; dw * dh];
            upsample_bilinear(&src, sw, sh, &mut two, dw, dh);
            gaussian_blur(&mut two, dw, dh, 4.0, &mut Vec::new());
            let ox = AxisOp::upsample_blur(dw, sw, 4.0).unwrap();
            let oy = AxisOp::upsample_blur(dh, sh, 4.0).unwrap();
            assert!(ox.taps() <= 6 && oy.taps() <= 6, "taps {} {}", ox.taps(), oy.taps());
            let mut fused = vec![0.0; dw * dh];
            apply_separable(&src, sw, sh, &ox, &oy, &mut tmp, &mut fused);
            let scale = two.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let d = max_abs_diff(&fused, &two);
            assert!(d <= 1e-5 * scale, "{dw}x{dh}: {d} (scale {scale})");
        }
    }

    #[test]
    fn axis_op_identifies_its_arguments_and_rejects_bad_ones() {
        let op = AxisOp::upsample_blur(100, 28, 4.0).unwrap();
        assert!(op.is_for(100, 28, 4.0));
        assert!(!op.is_for(100, 28, 3.0) && !op.is_for(101, 28, 4.0) && !op.is_for(100, 27, 4.0));
        assert!(AxisOp::upsample_blur(0, 28, 4.0).is_none());
        assert!(AxisOp::upsample_blur(10, 0, 4.0).is_none());
        assert!(AxisOp::upsample_blur(10, 3, f32::NAN).is_none());
        // Each row of the operator is a weighted average (resize and blur both preserve constants).
        for row in op.w.chunks_exact(op.taps()) {
            let s: f32 = row.iter().sum();
            assert!((s - 1.0).abs() < 1e-5, "row sum {s}");
        }
    }

    #[test]
    fn max_f32_matches_fold() {
        for n in [0usize, 1, 7, 8, 9, 100] {
            let v: Vec<f32> = (0..n).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
            assert_eq!(max_f32(&v), v.iter().copied().fold(f32::NEG_INFINITY, f32::max));
        }
    }
}
