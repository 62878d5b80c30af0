//! Numeric kernels: the leaf every other module may use and that uses nothing of the crate
//! but [`crate::error`]. What is here is plain arithmetic on slices and matrices; what it
//! means (the method) lives in the modules above.
//!
//! - `upsample`: bilinear taps, anomaly-map upsampling and Gaussian smoothing, fused
//!   separable operators;
//! - `grid`: channel-last feature-grid kernels (GELU, resize, interleave, box mean) and the
//!   buffer pool;
//! - `matmul`: f32 products through `gemm`, split by fixed row blocks;
//! - `distance`: squared Euclidean distances and nearest-row distances through GEMM;
//! - `label`: 8-connected component labelling of binary masks;
//! - `simd`: runtime dispatch of hot loops to AVX-512/AVX2 builds of the same code.

pub mod distance;
pub mod grid;
pub mod label;
pub mod matmul;
pub(crate) mod simd;
pub mod upsample;
