//! nexvitad: few-shot cross-domain defect detection (NexViTAD; the method in our words is
//! `docs/method.md`).
//!
//! The one path data takes: `image` (caller pixels → encoder input) → `encoder` (Hiera,
//! DINOv2) → `fusion` (patch features) → `bank` (nearest-row distances) → `map` (anomaly
//! map, image score) → `score` (decision). Each module uses only the layers below it; the
//! README's Layout section has the picture and `src/layering.rs` checks it.
#![deny(missing_docs)]

pub mod bank;
mod capi;
pub mod data;
pub mod encoder;
pub mod error;
pub mod eval;
mod fsutil;
pub mod fusion;
pub mod image;
/// Numeric kernels, public for the benchmarks and the CLI's `bench`; not a stable API.
#[doc(hidden)]
pub mod kernels;
pub mod manifest;
pub mod map;
pub mod metrics;
pub mod model;
mod runtime;
pub mod regions;
pub mod roi;
pub mod score;
mod tensors;
pub mod tiling;
pub mod train;
pub mod viz;

#[cfg(test)]
mod layering;

pub use error::{Error, Result};
pub use image::{ImageLimits, ImageView, PixelFormat};
pub use manifest::Manifest;
pub use bank::{BankOptions, MemoryBank, ScorerKind};
pub use model::{Model, ModelOptions};
pub use runtime::loaded_version as onnxruntime_version;
pub use map::AnomalyMap;
pub use regions::Region;
pub use roi::Roi;
pub use score::{RegionOptions, RoiChoice, RoiSource, ScoreOptions, ScoreResult, Workspace};
pub use tiling::{TileLayout, Tiling};
