//! The fusion head: adapters (Eq. 1), projections into a shared subspace (Eq. 2) and channel
//! interleaving (Eq. 3), turning Hiera stages H1..H4 and the DINOv2 grid D into F1..F4.
//!
//! Feature maps here are *channel-last* (`[h*w, c]`, one row per patch): every step is then a
//! matrix product over patches (GEMM), and patch features come out as the rows the memory
//! bank stores. Only the scales the caller asks for are computed.
//!
//! ## `head.safetensors`
//! For each stage `s` in 1..=4, with Hiera width `C_s`, DINOv2 width `C_d`, shared width `d_s`
//! and bottleneck `r` (all from `model.json`), f32 tensors:
//!
//! | name | shape | role |
//! |---|---|---|
//! | `stage{s}.adapter.down.weight` | `[r, C_s]` | W_down (1x1 conv) |
//! | `stage{s}.adapter.down.bias` | `[r]` | |
//! | `stage{s}.adapter.up.weight` | `[C_s, r]` | W_up; zero = identity adapter |
//! | `stage{s}.adapter.up.bias` | `[C_s]` | |
//! | `stage{s}.proj_hiera.weight` | `[d_s/2, C_s]` | P_h (1x1 conv) |
//! | `stage{s}.proj_hiera.bias` | `[d_s/2]` | |
//! | `stage{s}.proj_dinov2.weight` | `[d_s/2, C_d]` | P_d (1x1 conv, applied before resizing: both are linear) |
//! | `stage{s}.proj_dinov2.bias` | `[d_s/2]` | |
//!
//! Metadata: `format = "nexvitad-head"`, `format_version = "1"`. The adapter uses exact (erf)
//! GELU. The DINOv2 grid is resized to each stage's grid with half-pixel bilinear
//! interpolation (edge clamped); interleaving takes slices of `interleave_group` channels
//! alternately from P_h and P_d.
//!
//! ## One forward pass, three backends
//! [`fuse_stage`] is the only definition of Eq. 1-3 (see `docs/method.md`). It is written
//! against [`FusionOps`], five primitives (1x1 convolution, exact GELU, sum, bilinear resize,
//! interleave), and runs on three backends:
//! - [`NdarrayOps`] (`reference`): one image, plain ndarray products; the reference the
//!   other two are tested against ([`Head::fuse`], [`Head::patch_features_reference`]);
//! - [`scoring::ScoringOps`]: the scoring path's fast backend (strided GEMMs on the encoder
//!   maps in place, pooled buffers, parallel scales); [`scoring::patch_features`] is what
//!   banks store and scoring compares;
//! - `train::ops::CandleOps`: training, where candle's autodiff differentiates the very same
//!   composition. Why not candle for inference too: its CPU matmul asks
//!   `num_cpus::get_physical()` (which re-reads `/proc/cpuinfo`, ~50 µs) on every call unless
//!   `RAYON_NUM_THREADS` is set, which made patch features 2-4x slower on the tiny model.
//!
//! Tests require the backends to agree to 1e-5 (relative).
//!
//! ## Patch features
//! The vectors a memory bank stores and a scored image is compared with: the fused scales
//! listed in `model.json` (`bank_scales`), each resized to the first one's grid, averaged
//! over a `local_avg` window and concatenated per patch ([`patch_grid`]).

mod head;
mod reference;
pub mod scoring;

pub use head::{Head, StageParams, StageWeights, HEAD_FORMAT_VERSION, STAGE_TENSOR_NAMES};
pub(crate) use head::canonical_safetensors;
pub use reference::NdarrayOps;

use ndarray::Array2;

use crate::kernels::grid::{box_mean_into, contiguous, resize_into, BufferPool};

/// The primitives Eq. 1-3 are made of. A backend chooses its map layout; [`fuse_stage`]
/// only composes these.
pub trait FusionOps {
    /// Feature maps of one or more images.
    type Map;
    /// A `[out, in]` weight matrix.
    type Mat;
    /// A bias vector.
    type Vec;
    /// The backend's error.
    type Error;
    /// 1x1 convolution: `W x + b` at every patch.
    fn linear(&self, x: &Self::Map, w: &Self::Mat, b: &Self::Vec) -> Result<Self::Map, Self::Error>;
    /// Exact (erf) GELU, elementwise.
    fn gelu(&self, x: Self::Map) -> Result<Self::Map, Self::Error>;
    /// Elementwise sum.
    fn add(&self, a: Self::Map, b: &Self::Map) -> Result<Self::Map, Self::Error>;
    /// Half-pixel bilinear resize (edge clamped) from a `src` to a `dst` (h, w) grid.
    fn resize(&self, x: Self::Map, src: (usize, usize), dst: (usize, usize)) -> Result<Self::Map, Self::Error>;
    /// Channel slices of `group` taken alternately from `a` and `b` (Eq. 3).
    fn interleave(&self, a: &Self::Map, b: &Self::Map, group: usize) -> Result<Self::Map, Self::Error>;
}

/// Eq. 1-3 for one stage: the Hiera map `hiera` on its `grid` and the DINOv2 map `dino` on
/// `dino_grid` give the fused F_s on `grid`.
///
/// The head's one forward pass, run by every backend (module docs). `skip_adapter` may be set only when W_up and b_up are zero (the adapter is then
/// exactly the identity); training never sets it, so W_up still receives its gradient.
#[allow(clippy::too_many_arguments)]
pub fn fuse_stage<O: FusionOps>(
    o: &O,
    p: &StageParams<O::Mat, O::Vec>,
    skip_adapter: bool,
    group: usize,
    hiera: O::Map,
    grid: (usize, usize),
    dino: &O::Map,
    dino_grid: (usize, usize),
) -> Result<O::Map, O::Error> {
    // Eq. 1: A = H + (W_up GELU(W_down H + b_down) + b_up).
    let a = if skip_adapter {
        hiera
    } else {
        let z = o.gelu(o.linear(&hiera, &p.down_w, &p.down_b)?)?;
        o.add(o.linear(&z, &p.up_w, &p.up_b)?, &hiera)?
    };
    // Eq. 2: P_h on the adapted stage; P_d on the DINOv2 grid, then resized to the stage
    // grid (projection and resize are both linear; projecting first is cheaper).
    let ph = o.linear(&a, &p.proj_h_w, &p.proj_h_b)?;
    let pd = o.resize(o.linear(dino, &p.proj_d_w, &p.proj_d_b)?, dino_grid, grid)?;
    // Eq. 3.
    o.interleave(&ph, &pd, group)
}

/// A channel-last feature grid: `data` is `[h*w, c]`, row `y*w + x` is patch (y, x).
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    /// Grid height in patches.
    pub h: usize,
    /// Grid width in patches.
    pub w: usize,
    /// Patch vectors, `[h*w, c]`.
    pub data: Array2<f32>,
}

/// Patch features from fused scales: each part resized to the first part's grid (the patch
/// grid), averaged over a `local_avg` window (valid neighbours only) and written into its
/// columns of the output, in order. Every buffer, the output's included, comes from `pool`.
pub fn patch_grid(parts: &[Grid], local_avg: usize, pool: &BufferPool) -> Grid {
    let Some(first) = parts.first() else { return Grid { h: 0, w: 0, data: Array2::zeros((0, 0)) } };
    let (h, w) = (first.h, first.w);
    let dim: usize = parts.iter().map(|g| g.data.ncols()).sum();
    let mut out = pool.take(h * w * dim);
    let mut col = 0;
    for g in parts {
        let d = g.data.ncols();
        let part = g.data.as_standard_layout();
        let mut resized = None;
        let src = if (g.h, g.w) == (h, w) {
            contiguous(&part)
        } else {
            let mut r = pool.take(h * w * d);
            resize_into(contiguous(&part), d, (g.h, g.w), (h, w), &mut r);
            &resized.insert(r)[..]
        };
        if local_avg > 1 {
            let mut tmp = pool.take(h * w * d);
            box_mean_into(src, d, h, w, local_avg, &mut tmp, &mut out, dim, col);
            pool.give(tmp);
        } else if d > 0 {
            for (o, s) in out.chunks_exact_mut(dim).zip(src.chunks_exact(d)) {
                o[col..col + d].copy_from_slice(s);
            }
        }
        if let Some(r) = resized {
            pool.give(r);
        }
        col += d;
    }
    let out = Array2::from_shape_vec((h * w, dim), out).unwrap_or_else(|_| unreachable!("h*w*dim floats"));
    Grid { h, w, data: out }
}

