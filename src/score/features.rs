//! Bank features on the scoring path: the fusion head's inference forward pass, compiled
//! once from its weights into a few large matrix products.
//!
//! [`crate::fusion::Head::bank_features`] is the definition (and what training uses); this
//! computes the same features (tests assert equality to f32 rounding) with less work per
//! image:
//! - the encoder maps are read in place as transposed views (no channel-last copies); the
//!   GEMM packs them anyway;
//! - the DINOv2 projections of every bank scale are one product `D · [W_d(s1); W_d(s2)]ᵀ`;
//! - biases are pre-filled into the outputs (GEMM with β = 1) and the projections are written
//!   straight into their interleaved columns of the concatenated bank feature;
//! - products are split over rayon by row blocks, so both cores work on them;
//! - every buffer lives in a reusable [`FeatureScratch`].

use std::ops::Range;

use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;

use crate::encoder::BackboneFeatures;
use crate::error::{Error, Result};
use crate::fusion::{gelu, Grid, Head};
use crate::manifest::Manifest;

use super::kernels::bilinear_taps;

/// Rows per parallel GEMM task: large enough to keep the micro-kernel busy.
const GEMM_ROWS: usize = 128;

/// One bank scale's weights, laid out for `X · Wᵀ` products (`[in, out]`).
#[derive(Debug, Clone)]
struct ScalePlan {
    /// 0-based Hiera stage.
    stage: usize,
    /// Adapter as (W_downᵀ, b_down, W_upᵀ, b_up); `None` when W_up and b_up are zero.
    adapter: Option<(Array2<f32>, Array1<f32>, Array2<f32>, Array1<f32>)>,
    proj_h_t: Array2<f32>,
    proj_h_b: Array1<f32>,
    /// This scale's columns in the stacked DINOv2 projection.
    dino_cols: Range<usize>,
    half: usize,
    /// First column of this scale in the concatenated bank feature.
    col: usize,
}

/// The head's bank-feature forward pass, compiled from a [`Head`]. Immutable; shared by
/// every scoring thread (each brings its own [`FeatureScratch`]).
#[derive(Debug, Clone)]
pub struct InferenceHead {
    scales: Vec<ScalePlan>,
    /// Stacked DINOv2 projections of every bank scale, `[C_d, Σ half]`, and their biases.
    dino_t: Array2<f32>,
    dino_b: Array1<f32>,
    group: usize,
    local_avg: usize,
    dim: usize,
}

/// Per-thread buffers of [`InferenceHead::bank_features`].
#[derive(Default)]
pub struct FeatureScratch {
    dino: Vec<f32>,
    ph: Vec<f32>,
    pd: Vec<f32>,
    fused: Vec<f32>,
    adapter_z: Vec<f32>,
    adapter_a: Vec<f32>,
    concat: Vec<f32>,
    rows: Vec<f32>,
    boxed: Vec<f32>,
}

impl InferenceHead {
    /// Compiles `head` (built for `m`) for inference.
    pub fn new(head: &Head, m: &Manifest) -> Result<Self> {
        let stages = head.stages();
        if stages.len() != 4 {
            return Err(Error::Internal(format!("fusion head has {} stages, expected 4", stages.len())));
        }
        let f = &m.fusion;
        let mut scales = Vec::with_capacity(f.bank_scales.len());
        let (mut dino_rows, mut dino_b) = (Vec::new(), Vec::new());
        let (mut dcol, mut col) = (0usize, 0usize);
        for &sc in &f.bank_scales {
            let s = sc.checked_sub(1).filter(|s| *s < 4).ok_or_else(|| Error::invalid(format!("bank scale {sc} is not in 1..=4")))?;
            let w = &stages[s];
            let half = w.proj_h_w.nrows();
            if w.proj_d_w.nrows() != half || w.proj_d_w.ncols() != m.dinov2.channels {
                return Err(Error::Mismatch(format!("stage {sc}: projection shapes disagree with the manifest")));
            }
            let identity = w.up_w.iter().all(|v| *v == 0.0) && w.up_b.iter().all(|v| *v == 0.0);
            let adapter = (!identity).then(|| (w.down_w.t().to_owned(), w.down_b.clone(), w.up_w.t().to_owned(), w.up_b.clone()));
            dino_rows.push(w.proj_d_w.view());
            dino_b.extend(w.proj_d_b.iter().copied());
            scales.push(ScalePlan {
                stage: s,
                adapter,
                proj_h_t: w.proj_h_w.t().as_standard_layout().into_owned(),
                proj_h_b: w.proj_h_b.clone(),
                dino_cols: dcol..dcol + half,
                half,
                col,
            });
            dcol += half;
            col += 2 * half;
        }
        let stacked = ndarray::concatenate(Axis(0), &dino_rows).map_err(|e| Error::Internal(format!("stack projections: {e}")))?;
        Ok(Self {
            scales,
            dino_t: stacked.t().as_standard_layout().into_owned(),
            dino_b: Array1::from_vec(dino_b),
            group: f.interleave_group.max(1),
            local_avg: f.local_avg,
            dim: col,
        })
    }

    /// Width of the bank features.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Bank features of image `i` of a batch: equal (to f32 rounding) to
    /// [`Head::bank_features`] of the head this was compiled from.
    pub fn bank_features(&self, feats: &BackboneFeatures, i: usize, ws: &mut FeatureScratch) -> Result<Grid> {
        let n = feats.dinov2.dim().0;
        if i >= n || self.scales.iter().any(|p| feats.hiera[p.stage].dim().0 != n) {
            return Err(Error::invalid(format!("image index {i} is outside the batch of {n}")));
        }
        let dino = feats.dinov2.index_axis(Axis(0), i);
        let (cd, dh, dw) = dino.dim();
        if cd != self.dino_t.nrows() {
            return Err(Error::Mismatch(format!("DINOv2 grid has {cd} channels, the head expects {}", self.dino_t.nrows())));
        }
        let dino = dino.as_standard_layout();
        let y = dino.to_shape((cd, dh * dw)).map_err(|e| Error::Internal(e.to_string()))?;
        // All scales' DINOv2 projections in one product: [dh*dw, Σ half].
        gemm_bias(y.t(), self.dino_t.view(), &self.dino_b, &mut ws.dino);
        let dstride = self.dino_t.ncols();

        let first = feats.hiera[self.scales[0].stage].dim();
        let (gh, gw) = (first.2, first.3);
        let p = gh * gw;
        ws.concat.clear();
        ws.concat.resize(p * self.dim, 0.0);
        for plan in &self.scales {
            let hm = feats.hiera[plan.stage].index_axis(Axis(0), i);
            let (c, h, w) = hm.dim();
            let hm = hm.as_standard_layout();
            let x = hm.to_shape((c, h * w)).map_err(|e| Error::Internal(e.to_string()))?;
            let x = x.t();
            let half = plan.half;
            match &plan.adapter {
                None => gemm_bias(x, plan.proj_h_t.view(), &plan.proj_h_b, &mut ws.ph),
                Some(ad) => {
                    adapter(x, ad, &mut ws.adapter_z, &mut ws.adapter_a);
                    let a = ArrayView2::from_shape((h * w, c), &ws.adapter_a[..]).map_err(|e| Error::Internal(e.to_string()))?;
                    gemm_bias(a, plan.proj_h_t.view(), &plan.proj_h_b, &mut ws.ph)
                }
            }
            let src = Strided { data: &ws.dino, stride: dstride, off: plan.dino_cols.start, c: half };
            resize_hwc(src, dh, dw, h, w, &mut ws.pd, &mut ws.rows);
            if (h, w) == (gh, gw) {
                interleave_into(&ws.ph, &ws.pd, half, self.group, &mut ws.concat, self.dim, plan.col);
            } else {
                ws.fused.clear();
                ws.fused.resize(h * w * 2 * half, 0.0);
                interleave_into(&ws.ph, &ws.pd, half, self.group, &mut ws.fused, 2 * half, 0);
                let src = Strided { data: &ws.fused, stride: 2 * half, off: 0, c: 2 * half };
                resize_hwc(src, h, w, gh, gw, &mut ws.pd, &mut ws.rows);
                for (dst, row) in ws.concat.chunks_exact_mut(self.dim).zip(ws.pd.chunks_exact(2 * half)) {
                    dst[plan.col..plan.col + 2 * half].copy_from_slice(row);
                }
            }
        }
        let data = if self.local_avg > 1 {
            box_mean(&ws.concat, gh, gw, self.dim, self.local_avg, &mut ws.boxed)
        } else {
            Array2::from_shape_vec((p, self.dim), ws.concat.clone()).map_err(|e| Error::Internal(e.to_string()))?
        };
        Ok(Grid { h: gh, w: gw, data })
    }
}

/// `a · b + bias` (bias broadcast over rows) into `buf` as a row-major `[a.rows, b.cols]`
/// matrix, split over rayon by row blocks.
fn gemm_bias(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>, bias: &Array1<f32>, buf: &mut Vec<f32>) {
    let (m, n) = (a.nrows(), b.ncols());
    buf.clear();
    buf.reserve(m * n);
    for _ in 0..m {
        buf.extend(bias.iter().copied());
    }
    let mut c = ArrayViewMut2::from_shape((m, n), &mut buf[..]).expect("buffer holds m × n");
    let task = |(ab, mut cb): (ArrayView2<f32>, ArrayViewMut2<f32>)| general_mat_mul(1.0, &ab, &b, 1.0, &mut cb);
    if m <= GEMM_ROWS {
        task((a, c.view_mut()));
    } else {
        a.axis_chunks_iter(Axis(0), GEMM_ROWS)
            .into_par_iter()
            .zip(c.axis_chunks_iter_mut(Axis(0), GEMM_ROWS).into_par_iter())
            .for_each(task);
    }
}

/// Eq. 1: `A = X + (GELU(X W_downᵀ + b_down) W_upᵀ + b_up)`, into `a_buf` (`[m, c]`).
fn adapter(
    x: ArrayView2<'_, f32>,
    (down_t, down_b, up_t, up_b): &(Array2<f32>, Array1<f32>, Array2<f32>, Array1<f32>),
    z_buf: &mut Vec<f32>,
    a_buf: &mut Vec<f32>,
) {
    let (m, c) = x.dim();
    gemm_bias(x, down_t.view(), down_b, z_buf);
    for v in z_buf.iter_mut() {
        *v = gelu(*v);
    }
    let z = ArrayView2::from_shape((m, down_t.ncols()), &z_buf[..]).expect("adapter bottleneck");
    gemm_bias(z, up_t.view(), up_b, a_buf);
    let mut a = ArrayViewMut2::from_shape((m, c), &mut a_buf[..]).expect("adapter output");
    a += &x;
}

/// Columns `off..off + c` of a row-major matrix with `stride` floats per row.
#[derive(Clone, Copy)]
struct Strided<'a> {
    data: &'a [f32],
    stride: usize,
    off: usize,
    c: usize,
}

impl Strided<'_> {
    fn row(&self, q: usize) -> &[f32] {
        &self.data[q * self.stride + self.off..q * self.stride + self.off + self.c]
    }
}

/// Writes `[a0..g, b0..g, ag..2g, bg..2g, ...]` of every row of `a`, `b` (`[p, half]`,
/// row-major) into columns `off..off + 2·half` of `dst` (`stride` floats per row).
fn interleave_into(a: &[f32], b: &[f32], half: usize, g: usize, dst: &mut [f32], stride: usize, off: usize) {
    for ((drow, ar), br) in dst.chunks_exact_mut(stride).zip(a.chunks_exact(half)).zip(b.chunks_exact(half)) {
        let o = &mut drow[off..off + 2 * half];
        if g == 1 {
            for ((pair, &x), &y) in o.chunks_exact_mut(2).zip(ar).zip(br) {
                pair[0] = x;
                pair[1] = y;
            }
        } else {
            for ((pair, x), y) in o.chunks_exact_mut(2 * g).zip(ar.chunks_exact(g)).zip(br.chunks_exact(g)) {
                pair[..g].copy_from_slice(x);
                pair[g..].copy_from_slice(y);
            }
        }
    }
}

/// Bilinear resize of a channel-last grid (`sh*sw` rows of `src.c` channels) to `dh*dw`
/// rows, into `out` (row-major), with the sampling table and operation order of
/// [`crate::fusion::resize_bilinear_hwc`]. `row` is scratch.
fn resize_hwc(src: Strided<'_>, sh: usize, sw: usize, dh: usize, dw: usize, out: &mut Vec<f32>, row: &mut Vec<f32>) {
    let c = src.c;
    out.clear();
    out.resize(dh * dw * c, 0.0);
    if (sh, sw) == (dh, dw) {
        for (q, o) in out.chunks_exact_mut(c).enumerate() {
            o.copy_from_slice(src.row(q));
        }
        return;
    }
    let ty = bilinear_taps(dh, sh);
    let tx = bilinear_taps(dw, sw);
    row.clear();
    row.resize(sw * c, 0.0);
    for (t, out_row) in ty.iter().zip(out.chunks_exact_mut(dw * c)) {
        let fy = t.w1;
        for (xx, r) in row.chunks_exact_mut(c).enumerate() {
            let (a, b) = (src.row(t.i0 * sw + xx), src.row(t.i1 * sw + xx));
            for ((r, &a), &b) in r.iter_mut().zip(a).zip(b) {
                *r = a * (1.0 - fy) + b * fy;
            }
        }
        for (o, tx) in out_row.chunks_exact_mut(c).zip(&tx) {
            let fx = tx.w1;
            let (a, b) = (&row[tx.i0 * c..(tx.i0 + 1) * c], &row[tx.i1 * c..(tx.i1 + 1) * c]);
            for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
                *o = a * (1.0 - fx) + b * fx;
            }
        }
    }
}

/// Mean over a `k`×`k` window of valid neighbours of a row-major `[h*w, c]` grid, with the
/// operation order of [`crate::fusion::box_mean_hwc`] (horizontal pass, then vertical).
fn box_mean(src: &[f32], h: usize, w: usize, c: usize, k: usize, tmp: &mut Vec<f32>) -> Array2<f32> {
    let r = k / 2;
    tmp.clear();
    tmp.resize(h * w * c, 0.0);
    tmp.par_chunks_mut(w * c).enumerate().for_each(|(y, trow)| {
        for (xx, o) in trow.chunks_exact_mut(c).enumerate() {
            let (lo, hi) = (xx.saturating_sub(r), (xx + r).min(w - 1));
            let inv = 1.0 / (hi - lo + 1) as f32;
            for j in lo..=hi {
                let s = &src[(y * w + j) * c..(y * w + j + 1) * c];
                for (o, &v) in o.iter_mut().zip(s) {
                    *o += inv * v;
                }
            }
        }
    });
    let mut out = Array2::<f32>::zeros((h * w, c));
    let tmp: &[f32] = tmp;
    if let Some(o) = out.as_slice_mut() {
        o.par_chunks_mut(w * c).enumerate().for_each(|(y, orow)| {
            let (lo, hi) = (y.saturating_sub(r), (y + r).min(h - 1));
            let inv = 1.0 / (hi - lo + 1) as f32;
            for j in lo..=hi {
                for (o, &v) in orow.iter_mut().zip(&tmp[j * w * c..(j + 1) * w * c]) {
                    *o += inv * v;
                }
            }
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fusion::StageWeights;
    use ndarray::Array4;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn manifest() -> Manifest {
        Manifest::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny/model.json")).unwrap()
    }

    fn features(m: &Manifest, n: usize, seed: u64) -> BackboneFeatures {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (w, h) = (m.input.width as usize, m.input.height as usize);
        let mut map = |c: usize, hh: usize, ww: usize| Array4::from_shape_fn((n, c, hh, ww), |_| rng.random_range(-2.0..2.0f32));
        let hiera = [0, 1, 2, 3].map(|s| map(m.hiera.channels[s], h / m.hiera.strides[s], w / m.hiera.strides[s]));
        let d = &m.dinov2;
        let dinov2 = map(d.channels, d.height as usize / d.patch_size, d.width as usize / d.patch_size);
        BackboneFeatures { hiera, dinov2 }
    }

    /// A head whose adapters are not the identity (as after training).
    fn trained_like(m: &Manifest, seed: u64) -> Head {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let base = Head::untrained(m, seed);
        let stages: Vec<StageWeights> = base
            .stages()
            .iter()
            .map(|w| {
                let mut w = w.clone();
                w.up_w.mapv_inplace(|_| rng.random_range(-0.3..0.3f32));
                w.up_b.mapv_inplace(|_| rng.random_range(-0.1..0.1f32));
                w.down_b.mapv_inplace(|_| rng.random_range(-0.1..0.1f32));
                w.proj_h_b.mapv_inplace(|_| rng.random_range(-0.1..0.1f32));
                w.proj_d_b.mapv_inplace(|_| rng.random_range(-0.1..0.1f32));
                w
            })
            .collect();
        Head::from_stages(m, stages, true)
    }

    fn assert_same(head: &Head, m: &Manifest, feats: &BackboneFeatures) {
        let fast = InferenceHead::new(head, m).unwrap();
        let mut ws = FeatureScratch::default();
        for i in 0..feats.dinov2.dim().0 {
            let want = head.bank_features(feats, i).unwrap();
            // Twice with the same scratch: reused buffers must not leak into the result.
            for _ in 0..2 {
                let got = fast.bank_features(feats, i, &mut ws).unwrap();
                assert_eq!((got.h, got.w, got.data.dim()), (want.h, want.w, want.data.dim()));
                assert_eq!(got.data.ncols(), fast.dim());
                let scale = want.data.iter().fold(0.0f32, |a, v| a.max(v.abs()));
                let d = got.data.iter().zip(want.data.iter()).fold(0.0f32, |a, (x, y)| a.max((x - y).abs()));
                assert!(d <= 1e-5 * scale.max(1.0), "image {i}: max diff {d} (scale {scale})");
            }
        }
    }

    #[test]
    fn inference_head_equals_head_bank_features() {
        let m = manifest();
        let feats = features(&m, 2, 1);
        assert_same(&Head::untrained(&m, 3), &m, &feats);
        assert_same(&trained_like(&m, 4), &m, &feats);
    }

    #[test]
    fn inference_head_follows_the_manifest_fusion_settings() {
        // Other scale order and count, wider interleave groups, no local averaging.
        let mut m = manifest();
        m.fusion.bank_scales = vec![3, 1, 2];
        m.fusion.interleave_group = 2;
        m.fusion.local_avg = 1;
        let feats = features(&m, 1, 2);
        assert_same(&trained_like(&m, 5), &m, &feats);
        m.fusion.bank_scales = vec![4];
        m.fusion.local_avg = 5;
        assert_same(&Head::untrained(&m, 6), &m, &feats);
    }

    #[test]
    fn inference_head_rejects_a_bad_image_index() {
        let m = manifest();
        let feats = features(&m, 1, 3);
        let fast = InferenceHead::new(&Head::untrained(&m, 1), &m).unwrap();
        assert!(fast.bank_features(&feats, 1, &mut FeatureScratch::default()).is_err());
    }
}
