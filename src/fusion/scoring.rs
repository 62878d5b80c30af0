//! Patch features on the scoring path (banks are built and images scored with these): the
//! fusion head's one forward pass, [`crate::fusion::fuse_stage`], run on [`ScoringOps`], a
//! backend built for speed.
//!
//! It computes what [`Head::patch_features_reference`] (the [`crate::fusion::NdarrayOps`] backend)
//! computes, to f32 rounding (tests hold them within 1e-5 relative), with less work per
//! image:
//! - encoder maps enter the head in place, as transposed (channel-last) views of the
//!   encoder's `[c, h*w]` output: no channel-last copies (the GEMM reads any strides);
//! - 1x1 convolutions are `gemm`-crate products (see [`crate::kernels::matmul`]) accumulated onto
//!   outputs pre-filled with the bias, split over rayon by fixed row blocks;
//! - the bank scales are fused in parallel, and their local averaging writes straight into
//!   the columns of the patch features ([`crate::fusion::patch_grid`]);
//! - every map's storage comes from the [`FeatureScratch`]'s [`BufferPool`] and goes back
//!   to it, the returned grid's too once the caller recycles it: a stream of images
//!   allocates nothing after the first.
//!
//! Every split is by fixed blocks, so results are bit-identical whatever the thread count.

use ndarray::{Array1, Array2, ArrayView2, ArrayView3, Axis};
use rayon::prelude::*;

use crate::encoder::BackboneFeatures;
use crate::error::{Error, Result};
use super::{fuse_stage, patch_grid, FusionOps, Grid, Head};
use crate::kernels::grid::{gelu, interleave_into, resize_into, BufferPool};

/// Rows per parallel GEMM task: large enough to keep the micro-kernel busy, small enough
/// that one image's products split over both cores.
const GEMM_ROWS: usize = 112;

/// A map of [`ScoringOps`]: channel-last `[patches, channels]`, either an encoder output
/// read in place (a transposed view) or a row-major array whose storage goes back to the
/// pool when the map is dropped.
pub struct ScoringMap<'a> {
    data: MapData<'a>,
    pool: &'a BufferPool,
}

enum MapData<'a> {
    View(ArrayView2<'a, f32>),
    Owned(Array2<f32>),
}

impl<'a> ScoringMap<'a> {
    fn owned(a: Array2<f32>, pool: &'a BufferPool) -> Self {
        Self { data: MapData::Owned(a), pool }
    }

    /// The map as a `[patches, channels]` view.
    pub fn view(&self) -> ArrayView2<'_, f32> {
        match &self.data {
            MapData::View(v) => v.view(),
            MapData::Owned(a) => a.view(),
        }
    }

    /// The map as an owned row-major array (storage from the pool when it was a view).
    pub fn into_array(mut self) -> Array2<f32> {
        let empty = MapData::View(ArrayView2::from_shape((0, 0), &[]).unwrap_or_else(|_| unreachable!("empty view")));
        match std::mem::replace(&mut self.data, empty) {
            MapData::Owned(a) => a,
            MapData::View(v) => standard(v, self.pool),
        }
    }

    /// The row-major contents (copied into pool storage when this is a strided view).
    fn contiguous(&self) -> std::borrow::Cow<'_, [f32]> {
        match &self.data {
            MapData::Owned(a) if a.is_standard_layout() => std::borrow::Cow::Borrowed(a.as_slice().unwrap_or_default()),
            _ => std::borrow::Cow::Owned(standard(self.view(), self.pool).into_raw_vec_and_offset().0),
        }
    }
}

impl Drop for ScoringMap<'_> {
    fn drop(&mut self) {
        if let MapData::Owned(a) = std::mem::replace(&mut self.data, MapData::View(ArrayView2::from_shape((0, 0), &[]).unwrap_or_else(|_| unreachable!("empty view")))) {
            self.pool.give_array(a);
        }
    }
}

/// A row-major copy of `v` in pool storage.
fn standard(v: ArrayView2<'_, f32>, pool: &BufferPool) -> Array2<f32> {
    let mut buf = pool.take_empty(v.len());
    buf.extend(v.iter().copied());
    Array2::from_shape_vec(v.dim(), buf).unwrap_or_else(|_| unreachable!("rows*cols floats"))
}

/// The scoring backend of [`fuse_stage`]. Weights are the head's own `[out, in]` matrices,
/// read transposed in place; map storage comes from a [`BufferPool`].
#[derive(Debug, Clone, Copy)]
pub struct ScoringOps<'a> {
    /// Where map storage comes from and goes back to.
    pub pool: &'a BufferPool,
}

impl<'a> ScoringOps<'a> {
    /// An encoder map `[c, h, w]` (one image) as a channel-last `[h*w, c]` map: a transposed
    /// view of the same memory when it is contiguous (it always is for ORT outputs), else
    /// a copy.
    pub fn input(&self, x: ArrayView3<'a, f32>) -> ScoringMap<'a> {
        let (c, h, w) = x.dim();
        match x.into_shape_with_order((c, h * w)) {
            Ok(v) => ScoringMap { data: MapData::View(v.reversed_axes()), pool: self.pool },
            Err(_) => {
                let mut buf = self.pool.take_empty(c * h * w);
                buf.extend(x.permuted_axes([1, 2, 0]).iter().copied());
                ScoringMap::owned(Array2::from_shape_vec((h * w, c), buf).unwrap_or_else(|_| unreachable!("c*h*w floats")), self.pool)
            }
        }
    }
}

impl<'a> FusionOps for ScoringOps<'a> {
    type Map = ScoringMap<'a>;
    type Mat = Array2<f32>;
    type Vec = Array1<f32>;
    type Error = Error;

    fn linear(&self, x: &ScoringMap<'a>, w: &Array2<f32>, b: &Array1<f32>) -> Result<ScoringMap<'a>> {
        let x = x.view();
        let (p, n) = (x.nrows(), w.nrows());
        if x.ncols() != w.ncols() || b.len() != n {
            return Err(Error::Internal(format!(
                "fusion head: a {}-channel map meets a [{n}, {}] weight with {} biases",
                x.ncols(),
                w.ncols(),
                b.len()
            )));
        }
        // The bias pre-fills the output; the product accumulates onto it.
        let bias = b.as_standard_layout();
        let bias = bias.as_slice().unwrap_or_else(|| unreachable!("standard layout arrays are contiguous"));
        let mut data = self.pool.take_empty(p * n);
        for _ in 0..p {
            data.extend_from_slice(bias);
        }
        let mut out = Array2::from_shape_vec((p, n), data).unwrap_or_else(|_| unreachable!("p*n floats"));
        crate::kernels::matmul::par_rows(x, w.t(), out.view_mut(), true, GEMM_ROWS);
        Ok(ScoringMap::owned(out, self.pool))
    }
    fn gelu(&self, x: ScoringMap<'a>) -> Result<ScoringMap<'a>> {
        let mut a = x.into_array();
        if let Some(v) = a.as_slice_mut() {
            v.par_chunks_mut(4096).for_each(|c| c.iter_mut().for_each(|v| *v = gelu(*v)));
        }
        Ok(ScoringMap::owned(a, self.pool))
    }
    fn add(&self, a: ScoringMap<'a>, b: &ScoringMap<'a>) -> Result<ScoringMap<'a>> {
        let b = b.view();
        if a.view().dim() != b.dim() {
            return Err(Error::Internal(format!("fusion head: adding maps of shapes {:?} and {:?}", a.view().dim(), b.dim())));
        }
        let mut a = a.into_array();
        ndarray::Zip::from(&mut a).and(&b).par_for_each(|x, &y| *x += y);
        Ok(ScoringMap::owned(a, self.pool))
    }
    fn resize(&self, x: ScoringMap<'a>, src: (usize, usize), dst: (usize, usize)) -> Result<ScoringMap<'a>> {
        let c = x.view().ncols();
        if x.view().nrows() != src.0 * src.1 {
            return Err(Error::Internal(format!("fusion head: a map of {} patches is not a {}x{} grid", x.view().nrows(), src.0, src.1)));
        }
        if src == dst {
            return Ok(x);
        }
        let mut out = self.pool.take(dst.0 * dst.1 * c);
        resize_into(&x.contiguous(), c, src, dst, &mut out);
        Ok(ScoringMap::owned(Array2::from_shape_vec((dst.0 * dst.1, c), out).unwrap_or_else(|_| unreachable!("dh*dw*c floats")), self.pool))
    }
    fn interleave(&self, a: &ScoringMap<'a>, b: &ScoringMap<'a>, group: usize) -> Result<ScoringMap<'a>> {
        let (p, half) = a.view().dim();
        if b.view().dim() != (p, half) {
            return Err(Error::Internal(format!("fusion head: interleaving maps of shapes {:?} and {:?}", a.view().dim(), b.view().dim())));
        }
        let mut out = self.pool.take(p * 2 * half);
        interleave_into(&a.contiguous(), &b.contiguous(), half, group, &mut out);
        Ok(ScoringMap::owned(Array2::from_shape_vec((p, 2 * half), out).unwrap_or_else(|_| unreachable!("p*2*half floats")), self.pool))
    }
}

/// Buffers [`patch_features`] reuses across images: map storage, and the storage of
/// patch-feature grids the caller hands back with [`FeatureScratch::recycle`]. One per
/// scoring thread.
#[derive(Debug, Default)]
pub struct FeatureScratch {
    pool: BufferPool,
}

impl FeatureScratch {
    /// Hands a grid's storage back for the next image.
    pub fn recycle(&mut self, g: Grid) {
        self.pool.give_array(g.data);
    }
}

/// Patch features of image `i` of a batch through `head`: [`Head::patch_features_reference`]
/// on the scoring backend (equal to it to f32 rounding).
pub fn patch_features(head: &Head, feats: &BackboneFeatures, i: usize, ws: &mut FeatureScratch) -> Result<Grid> {
    let n = feats.dinov2.dim().0;
    if i >= n {
        return Err(Error::invalid(format!("image index {i} is outside the batch of {n}")));
    }
    let (scales, stages) = (head.bank_scales(), head.stages());
    for &sc in scales {
        let s = sc.checked_sub(1).filter(|s| *s < 4 && *s < stages.len()).ok_or_else(|| Error::invalid(format!("bank scale {sc} is not in 1..=4")))?;
        if feats.hiera[s].dim().0 != n {
            return Err(Error::Internal(format!("Hiera stage {sc} holds {} images, DINOv2 {n}", feats.hiera[s].dim().0)));
        }
    }
    let ops = ScoringOps { pool: &ws.pool };
    // One entry into the thread pool for the whole image: every parallel step below then
    // runs on pool threads, where forking is cheap (entering from outside costs a wake-up).
    rayon::scope(|_| {
        let dino = feats.dinov2.index_axis(Axis(0), i);
        let dino_grid = (dino.dim().1, dino.dim().2);
        let y = ops.input(dino);
        let identity = head.identity_adapters();
        let parts = scales
            .par_iter()
            .map(|&sc| {
                let s = sc - 1;
                let x = feats.hiera[s].index_axis(Axis(0), i);
                let grid = (x.dim().1, x.dim().2);
                let f = fuse_stage(&ops, &stages[s], identity[s], head.interleave_group(), ops.input(x), grid, &y, dino_grid)?;
                Ok(Grid { h: grid.0, w: grid.1, data: f.into_array() })
            })
            .collect::<Result<Vec<_>>>()?;
        let out = patch_grid(&parts, head.local_avg(), ops.pool);
        for p in parts {
            ops.pool.give_array(p.data);
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fusion::StageWeights;
    use crate::manifest::Manifest;
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
        let mut ws = FeatureScratch::default();
        for i in 0..feats.dinov2.dim().0 {
            let want = head.patch_features_reference(feats, i).unwrap();
            // Twice, the second time in the first one's recycled buffer (filled with junk):
            // reused storage must not leak into the result.
            for round in 0..2 {
                let got = patch_features(head, feats, i, &mut ws).unwrap();
                assert_eq!((got.h, got.w, got.data.dim()), (want.h, want.w, want.data.dim()));
                assert_eq!(got.data.ncols(), Head::patch_dim(m));
                let scale = want.data.iter().fold(0.0f32, |a, v| a.max(v.abs()));
                let d = got.data.iter().zip(want.data.iter()).fold(0.0f32, |a, (x, y)| a.max((x - y).abs()));
                assert!(d <= 1e-5 * scale.max(1.0), "image {i} round {round}: max diff {d} (scale {scale})");
                let mut junk = got;
                junk.data.fill(f32::NAN);
                ws.recycle(junk);
            }
        }
    }

    #[test]
    fn scoring_backend_equals_reference_patch_features() {
        let m = manifest();
        let feats = features(&m, 2, 1);
        assert_same(&Head::untrained(&m, 3), &m, &feats);
        assert_same(&trained_like(&m, 4), &m, &feats);
    }

    #[test]
    fn scoring_backend_follows_the_manifest_fusion_settings() {
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
    fn scoring_backend_is_bit_identical_on_any_thread_count() {
        let m = manifest();
        let feats = features(&m, 1, 7);
        let head = trained_like(&m, 8);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| patch_features(&head, &feats, 0, &mut FeatureScratch::default()).unwrap())
        };
        let one = run(1);
        for t in [2, 3, 5] {
            assert_eq!(run(t).data, one.data, "{t} threads");
        }
    }

    #[test]
    fn scoring_backend_copies_maps_it_cannot_view() {
        let m = manifest();
        let feats = features(&m, 2, 9);
        let head = trained_like(&m, 10);
        // The same values in channel-last memory: no `[c, h*w]` view of it exists.
        let nhwc = |a: &ndarray::Array4<f32>| a.view().permuted_axes([0, 2, 3, 1]).as_standard_layout().into_owned().permuted_axes([0, 3, 1, 2]);
        let strided = BackboneFeatures { hiera: feats.hiera.each_ref().map(nhwc), dinov2: nhwc(&feats.dinov2) };
        assert!(strided.dinov2.as_slice().is_none());
        let mut ws = FeatureScratch::default();
        for i in 0..2 {
            assert_eq!(patch_features(&head, &strided, i, &mut ws).unwrap().data, patch_features(&head, &feats, i, &mut ws).unwrap().data);
        }
    }

    #[test]
    fn scoring_backend_rejects_bad_input() {
        let m = manifest();
        let feats = features(&m, 1, 3);
        let head = Head::untrained(&m, 1);
        assert!(patch_features(&head, &feats, 1, &mut FeatureScratch::default()).is_err());
        // Encoder maps whose width disagrees with the head's weights.
        let mut narrow = features(&m, 1, 3);
        narrow.dinov2 = narrow.dinov2.slice_move(ndarray::s![.., 1.., .., ..]).to_owned();
        let e = patch_features(&head, &narrow, 0, &mut FeatureScratch::default()).unwrap_err();
        // A shape the model's own encoders cannot produce: a bug, not another model's bank.
        assert!(matches!(e, Error::Internal(_)), "{e}");
    }
}
