//! The reference backend of [`fuse_stage`](super::fuse_stage): one image, channel-last
//! `[h*w, c]` maps, ndarray products. Simple and obviously right; [`Head::fuse`] and
//! [`Head::patch_features_reference`] run on it, and tests hold the training backend
//! (candle) and the scoring backend ([`super::scoring`]) to it.
//!
//! [`Head::fuse`]: super::Head::fuse
//! [`Head::patch_features_reference`]: super::Head::patch_features_reference

use ndarray::{Array1, Array2};

use super::FusionOps;
use crate::kernels::grid::{gelu, interleave, resize_bilinear_hwc};

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

