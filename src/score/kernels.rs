//! Map kernels: bilinear upsampling and Gaussian smoothing at the image's own resolution.

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
    let scale = n_src as f64 / n_dst as f64;
    (0..n_dst)
        .map(|x| {
            let s = ((x as f64 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (s.floor() as usize).min(n_src - 1);
            let i1 = (i0 + 1).min(n_src - 1);
            Tap {
                i0,
                i1,
                w1: (s - i0 as f64).clamp(0.0, 1.0) as f32,
            }
        })
        .collect()
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
    let s = sigma as f64;
    let r = (4.0 * s + 0.5) as isize;
    let w: Vec<f64> = (-r..=r).map(|x| (-0.5 * (x * x) as f64 / (s * s)).exp()).collect();
    let sum: f64 = w.iter().sum();
    w.iter().map(|v| (v / sum) as f32).collect()
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
}
