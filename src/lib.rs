//! nexvitad: few-shot cross-domain defect detection (NexViTAD).
//!
//! The one path data takes:
//! `image::Preparer -> encoder::Backbones -> fusion::Head -> bank::features -> bank::MemoryBank -> score`.
pub mod bank;
pub mod capi;
pub mod data;
pub mod encoder;
pub mod error;
pub mod eval;
pub mod fsutil;
pub mod fusion;
pub mod image;
pub mod kernels;
pub mod manifest;
pub mod map;
pub mod metrics;
pub mod model;
pub mod runtime;
pub mod score;
pub mod tensors;
pub mod train;
pub mod viz;

#[cfg(test)]
mod layering;

pub use error::{Error, Result};
pub use image::{ImageLimits, ImageView, PixelFormat};
pub use manifest::Manifest;
pub use bank::{BankOptions, MemoryBank, ScorerKind};
pub use model::{Model, ModelOptions};
pub use map::AnomalyMap;
pub use score::{ScoreResult, Workspace};
