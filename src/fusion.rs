//! The fusion head: adapters (Eq. 1), projections into a shared subspace (Eq. 2) and channel
//! interleaving (Eq. 3), turning Hiera stages H1..H4 and the DINOv2 grid D into F1..F4.
//!
//! Feature maps here are *channel-last* (`[h*w, c]`, one row per patch): every step is then a
//! matrix product over patches (GEMM), and bank features come out as the rows the memory bank
//! stores. Only the scales the caller asks for are computed.
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
//! ## One forward pass, two backends
//! [`fuse_stage`] is the only definition of Eq. 1-3. It is written against [`FusionOps`],
//! five primitives (1x1 convolution, exact GELU, sum, bilinear resize, interleave), and runs
//! on two backends: [`NdarrayOps`] here for inference (channel-last, single-threaded GEMMs)
//! and `train::ops::CandleOps` for training, where candle's autodiff differentiates the very
//! same composition. Why not candle for inference too: candle's CPU matmul asks
//! `num_cpus::get_physical()` (which re-reads `/proc/cpuinfo`, ~50 µs) on every call unless
//! `RAYON_NUM_THREADS` is set, which made bank features 2-4x slower on the tiny model. A test
//! requires both backends to agree to 1e-5 (relative).

use std::collections::HashMap;
use std::path::Path;

use ndarray::{Array1, Array2, ArrayView2, ArrayView3, Axis};
use rayon::prelude::*;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

use crate::encoder::BackboneFeatures;
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::score::kernels::{bilinear_taps, Tap};
use crate::tensors::{self, Named};

/// Head file format version.
pub const HEAD_FORMAT_VERSION: u32 = 1;
/// Cap on a head file's size (the full model's head is a few MB).
const MAX_HEAD_BYTES: u64 = 1 << 30;

/// Weights of one stage, generic over the backend's matrix (`M`) and vector (`V`) types.
/// Matrices are `[out, in]`, as 1x1 convolutions store them.
#[derive(Debug, Clone, PartialEq)]
pub struct StageParams<M, V> {
    pub down_w: M,
    pub down_b: V,
    pub up_w: M,
    pub up_b: V,
    pub proj_h_w: M,
    pub proj_h_b: V,
    pub proj_d_w: M,
    pub proj_d_b: V,
}

/// A stage's weights as inference (and `head.safetensors`) holds them.
pub type StageWeights = StageParams<Array2<f32>, Array1<f32>>;

/// Names of a stage's tensors in `head.safetensors` (after the `stage{s}.` prefix), in the
/// order of [`StageParams::to_array`].
pub const STAGE_TENSOR_NAMES: [&str; 8] = [
    "adapter.down.weight",
    "adapter.down.bias",
    "adapter.up.weight",
    "adapter.up.bias",
    "proj_hiera.weight",
    "proj_hiera.bias",
    "proj_dinov2.weight",
    "proj_dinov2.bias",
];

impl<T> StageParams<T, T> {
    /// From the 8 tensors in [`STAGE_TENSOR_NAMES`] order.
    pub fn from_array(t: [T; 8]) -> Self {
        let [down_w, down_b, up_w, up_b, proj_h_w, proj_h_b, proj_d_w, proj_d_b] = t;
        Self { down_w, down_b, up_w, up_b, proj_h_w, proj_h_b, proj_d_w, proj_d_b }
    }

    /// The 8 tensors in [`STAGE_TENSOR_NAMES`] order.
    pub fn to_array(&self) -> [&T; 8] {
        [&self.down_w, &self.down_b, &self.up_w, &self.up_b, &self.proj_h_w, &self.proj_h_b, &self.proj_d_w, &self.proj_d_b]
    }
}

/// The primitives Eq. 1-3 are made of. A backend chooses its map layout; [`fuse_stage`]
/// only composes these.
pub trait FusionOps {
    /// Feature maps of one or more images.
    type Map;
    /// A `[out, in]` weight matrix.
    type Mat;
    /// A bias vector.
    type Vec;
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
/// The head's one forward pass: inference runs it with [`NdarrayOps`], training with
/// candle. `skip_adapter` may be set only when W_up and b_up are zero (the adapter is then
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

/// The inference backend: one image, channel-last `[h*w, c]` maps, ndarray GEMMs.
#[derive(Debug, Clone, Copy, Default)]
pub struct NdarrayOps;

impl FusionOps for NdarrayOps {
    type Map = Array2<f32>;
    type Mat = Array2<f32>;
    type Vec = Array1<f32>;
    type Error = std::convert::Infallible;

    fn linear(&self, x: &Array2<f32>, w: &Array2<f32>, b: &Array1<f32>) -> Result<Array2<f32>, Self::Error> {
        Ok(x.dot(&w.t()) + b)
    }
    fn gelu(&self, mut x: Array2<f32>) -> Result<Array2<f32>, Self::Error> {
        x.mapv_inplace(gelu);
        Ok(x)
    }
    fn add(&self, mut a: Array2<f32>, b: &Array2<f32>) -> Result<Array2<f32>, Self::Error> {
        a += b;
        Ok(a)
    }
    fn resize(&self, x: Array2<f32>, src: (usize, usize), dst: (usize, usize)) -> Result<Array2<f32>, Self::Error> {
        Ok(resize_bilinear_hwc(x.view(), src.0, src.1, dst.0, dst.1))
    }
    fn interleave(&self, a: &Array2<f32>, b: &Array2<f32>, group: usize) -> Result<Array2<f32>, Self::Error> {
        Ok(interleave(a.view(), b.view(), group))
    }
}

/// A channel-last feature grid: `data` is `[h*w, c]`, row `y*w + x` is patch (y, x).
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    pub h: usize,
    pub w: usize,
    pub data: Array2<f32>,
}

/// The fusion head. Immutable once built; shared by every scoring thread.
#[derive(Debug, Clone)]
pub struct Head {
    stages: Vec<StageWeights>,
    group: usize,
    bank_scales: Vec<usize>,
    local_avg: usize,
    trained: bool,
    /// Per stage: W_up and b_up are all zero, so the adapter is the identity and is skipped.
    identity: [bool; 4],
}

impl Head {
    /// The untrained head: identity adapters (W_up = 0) and fixed random projections drawn
    /// from N(0, 1/C_in) with `seed`, which keeps expected norms and makes runs repeat exactly.
    pub fn untrained(m: &Manifest, seed: u64) -> Self {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let f = &m.fusion;
        let r = f.adapter_bottleneck;
        let mut gauss = |rows: usize, cols: usize| -> Array2<f32> {
            let n = Normal::new(0.0f32, (1.0 / cols as f32).sqrt()).unwrap_or_else(|_| Normal::new(0.0, 1.0).expect("unit normal"));
            Array2::from_shape_fn((rows, cols), |_| n.sample(&mut rng))
        };
        let stages = (0..4)
            .map(|s| {
                let c = m.hiera.channels[s];
                let half = f.shared_dims[s] / 2;
                StageWeights {
                    down_w: gauss(r, c),
                    down_b: Array1::zeros(r),
                    up_w: Array2::zeros((c, r)),
                    up_b: Array1::zeros(c),
                    proj_h_w: gauss(half, c),
                    proj_h_b: Array1::zeros(half),
                    proj_d_w: gauss(half, m.dinov2.channels),
                    proj_d_b: Array1::zeros(half),
                }
            })
            .collect();
        Self::from_stages(m, stages, false)
    }

    /// Builds a head from explicit weights (training writes these).
    pub fn from_stages(m: &Manifest, stages: Vec<StageWeights>, trained: bool) -> Self {
        let mut identity = [false; 4];
        for (s, w) in stages.iter().enumerate().take(4) {
            identity[s] = w.up_w.iter().all(|v| *v == 0.0) && w.up_b.iter().all(|v| *v == 0.0);
        }
        Self {
            stages,
            group: m.fusion.interleave_group,
            bank_scales: m.fusion.bank_scales.clone(),
            local_avg: m.fusion.local_avg,
            trained,
            identity,
        }
    }

    /// Whether the weights came from training (a `head.safetensors`).
    pub fn is_trained(&self) -> bool {
        self.trained
    }

    pub fn stages(&self) -> &[StageWeights] {
        &self.stages
    }

    /// Reads `head.safetensors` bytes, checking every name and shape against the manifest.
    pub fn from_bytes(bytes: &[u8], path: &Path, m: &Manifest) -> Result<Self> {
        let rd = tensors::Reader::parse(bytes, path)?;
        if rd.metadata().get("format").map(String::as_str) != Some("nexvitad-head") {
            return Err(Error::format(path, "metadata 'format' is not 'nexvitad-head'"));
        }
        let v: u32 = rd.meta_parse("format_version")?;
        if v > HEAD_FORMAT_VERSION {
            return Err(Error::format(path, format!("head format_version {v} is newer than this nexvitad reads ({HEAD_FORMAT_VERSION})")));
        }
        let r = m.fusion.adapter_bottleneck;
        let cd = m.dinov2.channels;
        let mut stages = Vec::with_capacity(4);
        for s in 0..4 {
            let c = m.hiera.channels[s];
            let half = m.fusion.shared_dims[s] / 2;
            let mat = |name: &str, rows: usize, cols: usize| -> Result<Array2<f32>> {
                let (_, d) = rd.f32(&format!("stage{}.{name}", s + 1), &[Some(rows), Some(cols)])?;
                Array2::from_shape_vec((rows, cols), d).map_err(|e| Error::Internal(e.to_string()))
            };
            let vec = |name: &str, n: usize| -> Result<Array1<f32>> {
                let (_, d) = rd.f32(&format!("stage{}.{name}", s + 1), &[Some(n)])?;
                Ok(Array1::from_vec(d))
            };
            stages.push(StageWeights {
                down_w: mat("adapter.down.weight", r, c)?,
                down_b: vec("adapter.down.bias", r)?,
                up_w: mat("adapter.up.weight", c, r)?,
                up_b: vec("adapter.up.bias", c)?,
                proj_h_w: mat("proj_hiera.weight", half, c)?,
                proj_h_b: vec("proj_hiera.bias", half)?,
                proj_d_w: mat("proj_dinov2.weight", half, cd)?,
                proj_d_b: vec("proj_dinov2.bias", half)?,
            });
        }
        Ok(Self::from_stages(m, stages, true))
    }

    /// Serialises the weights as `head.safetensors` bytes.
    pub fn to_bytes(&self, extra_meta: HashMap<String, String>) -> Result<Vec<u8>> {
        let mut list = Vec::new();
        for (s, w) in self.stages.iter().enumerate() {
            let p = |n: &str| format!("stage{}.{n}", s + 1);
            let m2 = |a: &Array2<f32>| a.as_slice().map(<[f32]>::to_vec).unwrap_or_else(|| a.iter().copied().collect());
            for (name, shape, data) in [
                (p("adapter.down.weight"), w.down_w.shape().to_vec(), m2(&w.down_w)),
                (p("adapter.down.bias"), vec![w.down_b.len()], w.down_b.to_vec()),
                (p("adapter.up.weight"), w.up_w.shape().to_vec(), m2(&w.up_w)),
                (p("adapter.up.bias"), vec![w.up_b.len()], w.up_b.to_vec()),
                (p("proj_hiera.weight"), w.proj_h_w.shape().to_vec(), m2(&w.proj_h_w)),
                (p("proj_hiera.bias"), vec![w.proj_h_b.len()], w.proj_h_b.to_vec()),
                (p("proj_dinov2.weight"), w.proj_d_w.shape().to_vec(), m2(&w.proj_d_w)),
                (p("proj_dinov2.bias"), vec![w.proj_d_b.len()], w.proj_d_b.to_vec()),
            ] {
                list.push((name, shape, data));
            }
        }
        let named: Vec<Named<'_>> = list.iter().map(|(n, s, d)| Named { name: n.clone(), shape: s.clone(), data: d }).collect();
        let mut meta = extra_meta;
        meta.insert("format".into(), "nexvitad-head".into());
        meta.insert("format_version".into(), HEAD_FORMAT_VERSION.to_string());
        canonical_safetensors(tensors::to_bytes(&named, meta)?)
    }

    /// Loads a head file with a size cap.
    pub fn load(path: &Path, m: &Manifest) -> Result<(Self, Vec<u8>)> {
        let bytes = crate::fsutil::read_capped(path, "cannot read head weights", MAX_HEAD_BYTES)?;
        let head = Self::from_bytes(&bytes, path, m)?;
        Ok((head, bytes))
    }

    /// Fused features F_s (1-based `scale`) of image `i` of a batch, channel-last.
    pub fn fuse(&self, feats: &BackboneFeatures, i: usize, scale: usize) -> Result<Grid> {
        if !(1..=4).contains(&scale) || self.stages.len() != 4 {
            return Err(Error::invalid(format!("fused scale {scale} is not in 1..=4")));
        }
        let n = feats.dinov2.dim().0;
        if i >= n {
            return Err(Error::invalid(format!("image index {i} is outside the batch of {n}")));
        }
        let dino = feats.dinov2.index_axis(Axis(0), i);
        let hiera = feats.hiera[scale - 1].index_axis(Axis(0), i);
        Ok(self.fuse_stage(scale - 1, hiera, dino))
    }

    fn fuse_stage(&self, s: usize, hiera: ArrayView3<'_, f32>, dino: ArrayView3<'_, f32>) -> Grid {
        let (c, h, wd) = hiera.dim();
        let (cd, dh, dw) = dino.dim();
        let x = channel_last(hiera, c, h * wd);
        let y = channel_last(dino, cd, dh * dw);
        let Ok(data) = fuse_stage(&NdarrayOps, &self.stages[s], self.identity[s], self.group, x, (h, wd), &y, (dh, dw));
        Grid { h, w: wd, data }
    }

    /// Per stage: whether the adapter is exactly the identity (W_up = 0 and b_up = 0).
    pub fn identity_adapters(&self) -> [bool; 4] {
        self.identity
    }

    /// Bank features of image `i`: the configured fused scales on the first one's grid,
    /// concatenated and averaged over a `local_avg` window (valid neighbours only); see
    /// [`bank_grid`]. The scoring path computes the same with
    /// [`crate::score::features::bank_features`].
    pub fn bank_features(&self, feats: &BackboneFeatures, i: usize) -> Result<Grid> {
        let parts = self.bank_scales.iter().map(|&sc| self.fuse(feats, i, sc)).collect::<Result<Vec<_>>>()?;
        Ok(bank_grid(&parts, self.local_avg, &BufferPool::default()))
    }

    /// The fused scales bank features are made of (1-based, in order).
    pub fn bank_scales(&self) -> &[usize] {
        &self.bank_scales
    }

    /// Channels per interleaved slice (Eq. 3).
    pub fn interleave_group(&self) -> usize {
        self.group
    }

    /// Side of the local averaging window of bank features (1 = none).
    pub fn local_avg(&self) -> usize {
        self.local_avg
    }

    /// Width of bank feature vectors for a manifest.
    pub fn bank_dim(m: &Manifest) -> usize {
        m.fusion.bank_scales.iter().map(|&s| m.fusion.shared_dims[s - 1]).sum()
    }
}

/// Rewrites a safetensors header with its keys sorted (same tensors, same data bytes).
///
/// The `safetensors` crate writes the metadata map in `HashMap` order, so two saves of the
/// same weights could differ byte for byte, and a trained model's fingerprint (a hash of
/// `head.safetensors`) would change from run to run.
pub(crate) fn canonical_safetensors(bytes: Vec<u8>) -> Result<Vec<u8>> {
    use std::collections::BTreeMap;
    let bad = |m: &str| Error::Internal(format!("canonical safetensors: {m}"));
    let n = bytes.get(..8).map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as usize).ok_or_else(|| bad("short file"))?;
    let header = bytes.get(8..8 + n).ok_or_else(|| bad("short header"))?;
    let top: BTreeMap<String, serde_json::Value> = serde_json::from_slice(header).map_err(|e| bad(&e.to_string()))?;
    let mut sorted = BTreeMap::new();
    for (k, v) in top {
        let v = if k == "__metadata__" {
            let m: BTreeMap<String, String> = serde_json::from_value(v).map_err(|e| bad(&e.to_string()))?;
            serde_json::to_value(m).map_err(|e| bad(&e.to_string()))?
        } else {
            v
        };
        sorted.insert(k, v);
    }
    let mut h = serde_json::to_vec(&sorted).map_err(|e| bad(&e.to_string()))?;
    // Keep the data section 8-byte aligned, as the crate does.
    while h.len() % 8 != 0 {
        h.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + h.len() + bytes.len() - 8 - n);
    out.extend_from_slice(&(h.len() as u64).to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(&bytes[8 + n..]);
    Ok(out)
}

/// Exact GELU, `x Φ(x)`, as torch's default `nn.GELU()`.
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// `[c, h, w]` → `[h*w, c]` (owned, contiguous).
fn channel_last(x: ArrayView3<'_, f32>, c: usize, p: usize) -> Array2<f32> {
    let std = x.as_standard_layout();
    let flat = std.to_shape((c, p)).map(|v| v.t().to_owned());
    flat.unwrap_or_else(|_| Array2::zeros((p, c)))
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

crate::simd::multiversion! {
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

crate::simd::multiversion! {
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
fn box_mean_into(src: &[f32], c: usize, h: usize, w: usize, k: usize, tmp: &mut [f32], out: &mut [f32], stride: usize, col: usize) {
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

crate::simd::multiversion! {
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

crate::simd::multiversion! {
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

/// Bank features from fused scales: each part resized to the first part's grid (the bank
/// grid), averaged over a `local_avg` window (valid neighbours only) and written into its
/// columns of the output, in order. Every buffer, the output's included, comes from `pool`.
pub fn bank_grid(parts: &[Grid], local_avg: usize, pool: &BufferPool) -> Grid {
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
    fn head_bytes_are_canonical() {
        let m = crate::manifest::Manifest::parse(&std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/models/tiny/model.json")).unwrap()).unwrap();
        let h = Head::untrained(&m, 5);
        let meta: HashMap<String, String> = (0..12).map(|i| (format!("key{i}"), format!("v{i}"))).collect();
        let a = h.to_bytes(meta.clone()).unwrap();
        // HashMaps with other insertion histories (other hash seeds) give the same bytes.
        for _ in 0..4 {
            let shuffled: HashMap<String, String> = meta.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            assert_eq!(h.to_bytes(shuffled).unwrap(), a);
        }
        let back = Head::from_bytes(&a, Path::new("h"), &m).unwrap();
        assert_eq!(back.stages(), h.stages());
        assert_eq!(a.len() % 8, 0);
    }

    #[test]
    fn gelu_matches_known_values() {
        assert!((gelu(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((gelu(-1.0) + 0.158_655_3).abs() < 1e-6);
        assert_eq!(gelu(0.0), 0.0);
    }
}
