//! The candle backend of the fusion head's forward pass ([`crate::fusion::fuse_stage`]), and
//! the tensor helpers the decoder shares with it.
//!
//! Maps are channel-first batches `[B, C, h*w]`, so a 1x1 convolution is one GEMM per image
//! and the bilinear resize is two GEMMs with fixed interpolation matrices: everything is a
//! differentiable candle op, and autodiff provides every gradient.

use candle_core::{DType, Device, Tensor};
use ndarray::{Array2, ArrayView3};

use crate::encoder::BackboneFeatures;
use crate::error::{Error, Result};
use crate::fusion::{fuse_stage, FusionOps, Grid, Head};

/// A candle failure is a broken invariant of ours (shapes come from the manifest).
pub(crate) fn tensor_err(e: candle_core::Error) -> Error {
    Error::Internal(format!("tensor op: {e}"))
}

/// The training backend of [`fuse_stage`]: `[B, C, h*w]` candle tensors; weights are
/// `[out, in]` matrices and `[out]` vectors (plain tensors or the trainer's `Var`s).
#[derive(Debug, Clone, Copy, Default)]
pub struct CandleOps;

impl FusionOps for CandleOps {
    type Map = Tensor;
    type Mat = Tensor;
    type Vec = Tensor;
    type Error = candle_core::Error;

    fn linear(&self, x: &Tensor, w: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
        conv1x1(x, w, b)
    }
    fn gelu(&self, x: Tensor) -> candle_core::Result<Tensor> {
        x.gelu_erf()
    }
    fn add(&self, a: Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
        a + b
    }
    fn resize(&self, x: Tensor, src: (usize, usize), dst: (usize, usize)) -> candle_core::Result<Tensor> {
        let (n, c, _) = x.dims3()?;
        let y = Resize::new(src, dst)?.apply(&x.reshape((n, c, src.0, src.1))?)?;
        y.reshape((n, c, dst.0 * dst.1))
    }
    fn interleave(&self, a: &Tensor, b: &Tensor, group: usize) -> candle_core::Result<Tensor> {
        let (n, half, p) = a.dims3()?;
        if group == 0 || half % group != 0 {
            candle_core::bail!("interleave group {group} does not divide {half} channels");
        }
        let a = a.reshape((n, half / group, group, p))?;
        let b = b.reshape((n, half / group, group, p))?;
        Tensor::stack(&[a, b], 2)?.reshape((n, 2 * half, p))
    }
}

/// F_s `[B, d_s, h, w]` of a batch: Hiera stage `[B, C_s, h, w]`, DINOv2 `[B, C_d, dh, dw]`.
pub fn fuse_batch(p: &crate::fusion::StageParams<Tensor, Tensor>, skip_adapter: bool, group: usize, hiera: &Tensor, dino: &Tensor) -> candle_core::Result<Tensor> {
    let (b, c, h, w) = hiera.dims4()?;
    let (_, cd, dh, dw) = dino.dims4()?;
    let x = hiera.reshape((b, c, h * w))?;
    let y = dino.reshape((b, cd, dh * dw))?;
    let f = fuse_stage(&CandleOps, p, skip_adapter, group, x, (h, w), &y, (dh, dw))?;
    let d = f.dim(1)?;
    f.reshape((b, d, h, w))
}

/// A 1x1 convolution of `x` `[B, C_in, P]`: `W x + b` with `W` `[C_out, C_in]`, `b` `[C_out]`.
pub fn conv1x1(x: &Tensor, w: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    w.broadcast_matmul(x)?.broadcast_add(&b.unsqueeze(1)?)
}

/// Half-pixel bilinear resampling (edge clamped) of `[N, C, h, w]` maps to `[N, C, H, W]`,
/// as two fixed interpolation matrices (one per axis): a pair of GEMMs that autodiff
/// differentiates like any other op. Same sampling table as the anomaly-map upsampling.
#[derive(Debug, Clone)]
pub struct Resize {
    src: (usize, usize),
    dst: (usize, usize),
    /// `[H, h]`: output rows from source rows.
    ry: Tensor,
    /// `[w, W]`: source columns to output columns (transposed: it multiplies on the right).
    rx_t: Tensor,
}

impl Resize {
    /// The resampling from a `src` = (h, w) grid to a `dst` = (H, W) grid.
    pub fn new(src: (usize, usize), dst: (usize, usize)) -> candle_core::Result<Self> {
        if src.0 == 0 || src.1 == 0 || dst.0 == 0 || dst.1 == 0 {
            candle_core::bail!("cannot resize a {}x{} grid to {}x{}", src.0, src.1, dst.0, dst.1);
        }
        let ry = Tensor::from_vec(interpolation_matrix(dst.0, src.0), (dst.0, src.0), &Device::Cpu)?;
        let rx_t = Tensor::from_vec(interpolation_matrix(dst.1, src.1), (dst.1, src.1), &Device::Cpu)?.t()?.contiguous()?;
        Ok(Self { src, dst, ry, rx_t })
    }

    /// Resamples `x` `[N, C, h, w]` (any float dtype); the identity when both grids agree.
    pub fn apply(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (n, c, h, w) = x.dims4()?;
        if (h, w) != self.src {
            candle_core::bail!("resize built for a {:?} grid got {h}x{w}", self.src);
        }
        if self.src == self.dst {
            return Ok(x.clone());
        }
        let (ry, rx_t) = if x.dtype() == DType::F32 { (self.ry.clone(), self.rx_t.clone()) } else { (self.ry.to_dtype(x.dtype())?, self.rx_t.to_dtype(x.dtype())?) };
        let (hh, ww) = self.dst;
        let t = x.reshape((n * c * h, w))?.matmul(&rx_t)?.reshape((n * c, h, ww))?;
        ry.broadcast_matmul(&t)?.reshape((n, c, hh, ww))
    }
}

/// `[n_dst, n_src]` row-stochastic matrix of half-pixel bilinear interpolation.
pub fn interpolation_matrix(n_dst: usize, n_src: usize) -> Vec<f32> {
    let mut m = vec![0.0f32; n_dst * n_src];
    for (o, t) in crate::kernels::upsample::bilinear_taps(n_dst, n_src).iter().enumerate() {
        let row = &mut m[o * n_src..(o + 1) * n_src];
        if t.i0 == t.i1 {
            row[t.i0] = 1.0;
        } else {
            row[t.i0] = 1.0 - t.w1;
            row[t.i1] = t.w1;
        }
    }
    m
}

/// A batch-of-one NCHW tensor from one image's `[c, h, w]` features.
pub fn nchw_tensor(x: ArrayView3<'_, f32>) -> Result<Tensor> {
    let (c, h, w) = x.dim();
    let v = match x.as_slice() {
        Some(s) => s.to_vec(),
        None => x.iter().copied().collect(),
    };
    Tensor::from_vec(v, (1, c, h, w), &Device::Cpu).map_err(tensor_err)
}

/// The channel-last grid of a `[1, d, h, w]` tensor.
pub fn grid_from_tensor(f: &Tensor) -> Result<Grid> {
    let (n, d, h, w) = f.dims4().map_err(tensor_err)?;
    if n != 1 {
        return Err(Error::Internal(format!("expected one image, got a batch of {n}")));
    }
    let v = f.flatten_all().and_then(|t| t.to_dtype(DType::F32)).and_then(|t| t.to_vec1::<f32>()).map_err(tensor_err)?;
    let cf = Array2::from_shape_vec((d, h * w), v).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(Grid { h, w, data: cf.t().as_standard_layout().into_owned() })
}

/// A `[1, c, h, w]` tensor from a channel-last grid.
pub fn tensor_from_grid(g: &Grid) -> Result<Tensor> {
    let c = g.data.ncols();
    let v: Vec<f32> = g.data.t().iter().copied().collect();
    Tensor::from_vec(v, (1, c, g.h, g.w), &Device::Cpu).map_err(tensor_err)
}

/// F1..F4 of image `i` of a batch through the inference head, as `[1, d_s, h_s, w_s]`
/// tensors (the decoder's input when it scores).
pub fn fused_tensors(head: &Head, feats: &BackboneFeatures, i: usize) -> Result<Vec<Tensor>> {
    (1..=4).map(|s| tensor_from_grid(&head.fuse(feats, i, s)?)).collect()
}

/// A head's weights as candle tensors (copies), per stage.
pub fn stage_tensors(head: &Head) -> Result<Vec<crate::fusion::StageParams<Tensor, Tensor>>> {
    let m = |a: &Array2<f32>| Tensor::from_vec(a.as_standard_layout().iter().copied().collect::<Vec<f32>>(), a.dim(), &Device::Cpu);
    let v = |a: &ndarray::Array1<f32>| Tensor::from_vec(a.to_vec(), a.len(), &Device::Cpu);
    head.stages()
        .iter()
        .map(|w| {
            Ok(crate::fusion::StageParams {
                down_w: m(&w.down_w)?,
                down_b: v(&w.down_b)?,
                up_w: m(&w.up_w)?,
                up_b: v(&w.up_b)?,
                proj_h_w: m(&w.proj_h_w)?,
                proj_h_b: v(&w.proj_h_b)?,
                proj_d_w: m(&w.proj_d_w)?,
                proj_d_b: v(&w.proj_d_b)?,
            })
        })
        .collect::<candle_core::Result<Vec<_>>>()
        .map_err(tensor_err)
}

/// Copies candle stage weights out as inference weights.
pub fn stage_weights(p: &crate::fusion::StageParams<Tensor, Tensor>) -> Result<crate::fusion::StageWeights> {
    let m = |t: &Tensor| -> Result<Array2<f32>> {
        let (r, c) = t.dims2().map_err(tensor_err)?;
        let v = t.flatten_all().and_then(|f| f.to_vec1::<f32>()).map_err(tensor_err)?;
        Array2::from_shape_vec((r, c), v).map_err(|e| Error::Internal(e.to_string()))
    };
    let v = |t: &Tensor| -> Result<ndarray::Array1<f32>> { Ok(ndarray::Array1::from_vec(t.to_vec1::<f32>().map_err(tensor_err)?)) };
    Ok(crate::fusion::StageParams {
        down_w: m(&p.down_w)?,
        down_b: v(&p.down_b)?,
        up_w: m(&p.up_w)?,
        up_b: v(&p.up_b)?,
        proj_h_w: m(&p.proj_h_w)?,
        proj_h_b: v(&p.proj_h_b)?,
        proj_d_w: m(&p.proj_d_w)?,
        proj_d_b: v(&p.proj_d_b)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fusion::{NdarrayOps, StageWeights};
    use crate::kernels::grid::resize_bilinear_hwc;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};

    fn random(shape: (usize, usize), rng: &mut rand_chacha::ChaCha8Rng, scale: f32) -> Array2<f32> {
        let n = Normal::new(0.0f32, scale).unwrap();
        Array2::from_shape_fn(shape, |_| n.sample(rng))
    }

    fn random_stage(c: usize, cd: usize, r: usize, half: usize, rng: &mut rand_chacha::ChaCha8Rng) -> StageWeights {
        let v = |n: usize, rng: &mut rand_chacha::ChaCha8Rng| random((1, n), rng, 0.3).row(0).to_owned();
        StageWeights {
            down_w: random((r, c), rng, 0.5),
            down_b: v(r, rng),
            up_w: random((c, r), rng, 0.5),
            up_b: v(c, rng),
            proj_h_w: random((half, c), rng, 0.5),
            proj_h_b: v(half, rng),
            proj_d_w: random((half, cd), rng, 0.5),
            proj_d_b: v(half, rng),
        }
    }

    fn max_rel_diff(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
        assert_eq!(a.dim(), b.dim());
        let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
        a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs())) / scale
    }

    fn head_of(stages: Vec<StageWeights>) -> Head {
        let mut m = crate::manifest::Manifest::parse(&std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/models/tiny/model.json")).unwrap()).unwrap();
        m.fusion.interleave_group = 1;
        Head::from_stages(&m, stages, true)
    }

    #[test]
    fn candle_backend_matches_inference_backend() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let (c, cd, r, half) = (12, 10, 4, 6);
        for &(identity, g, (h, w), (dh, dw)) in &[(false, 1, (14, 10), (5, 4)), (false, 3, (4, 4), (7, 6)), (true, 2, (6, 6), (6, 6))] {
            let mut st = random_stage(c, cd, r, half, &mut rng);
            if identity {
                st.up_w.fill(0.0);
                st.up_b.fill(0.0);
            }
            let hiera = random((c, h * w), &mut rng, 1.0).into_shape_with_order((c, h, w)).unwrap();
            let dino = random((cd, dh * dw), &mut rng, 1.0).into_shape_with_order((cd, dh, dw)).unwrap();
            let cl = |x: &ndarray::Array3<f32>| {
                let (c, h, w) = x.dim();
                x.to_shape((c, h * w)).unwrap().t().to_owned()
            };
            let Ok(want) = fuse_stage(&NdarrayOps, &st, identity, g, cl(&hiera), (h, w), &cl(&dino), (dh, dw));
            let p = stage_tensors(&head_of(vec![st.clone(), st.clone(), st.clone(), st.clone()])).unwrap().remove(0);
            let ht = nchw_tensor(hiera.view()).unwrap();
            let dt = nchw_tensor(dino.view()).unwrap();
            let got = grid_from_tensor(&fuse_batch(&p, identity, g, &ht, &dt).unwrap()).unwrap();
            assert_eq!((got.h, got.w), (h, w));
            let d = max_rel_diff(&got.data, &want);
            assert!(d < 1e-5, "identity={identity} g={g}: relative difference {d}");
            if identity {
                // Skipping an exact-identity adapter must not change the result.
                let full = grid_from_tensor(&fuse_batch(&p, false, g, &ht, &dt).unwrap()).unwrap();
                assert_eq!(full.data, got.data);
            }
            // A batch of two gives each image its own result.
            let h2 = Tensor::cat(&[&ht, &(&ht * 2.0).unwrap()], 0).unwrap();
            let d2 = Tensor::cat(&[&dt, &dt], 0).unwrap();
            let both = fuse_batch(&p, identity, g, &h2, &d2).unwrap();
            let first = grid_from_tensor(&both.narrow(0, 0, 1).unwrap()).unwrap();
            assert!(max_rel_diff(&first.data, &want) < 1e-5);
        }
    }

    #[test]
    fn interleave_alternates_groups() {
        let a = Tensor::from_vec(vec![0f32, 1., 2., 3.], (1, 4, 1), &Device::Cpu).unwrap();
        let b = Tensor::from_vec(vec![10f32, 11., 12., 13.], (1, 4, 1), &Device::Cpu).unwrap();
        let flat = |t: Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(flat(CandleOps.interleave(&a, &b, 1).unwrap()), vec![0., 10., 1., 11., 2., 12., 3., 13.]);
        assert_eq!(flat(CandleOps.interleave(&a, &b, 2).unwrap()), vec![0., 1., 10., 11., 2., 3., 12., 13.]);
        assert!(CandleOps.interleave(&a, &b, 3).is_err());
    }

    #[test]
    fn resize_matrices_match_the_map_kernel() {
        let m = interpolation_matrix(7, 3);
        for row in m.chunks(3) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
        let x = Array2::from_shape_fn((3 * 5, 2), |(p, c)| (p * 7 + c * 3) as f32 % 5.0);
        let want = resize_bilinear_hwc(x.view(), 3, 5, 8, 4);
        let t = tensor_from_grid(&Grid { h: 3, w: 5, data: x.clone() }).unwrap();
        let got = grid_from_tensor(&Resize::new((3, 5), (8, 4)).unwrap().apply(&t).unwrap()).unwrap();
        assert!(max_rel_diff(&got.data, &want) < 1e-6);
        assert_eq!(grid_from_tensor(&t).unwrap().data, x);
    }
}
