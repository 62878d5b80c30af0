//! nexvitad: few-shot cross-domain defect detection (NexViTAD).
//!
//! The one path data takes:
//! `image::prepare -> encoder::Backbones -> fusion::Head -> bank::features -> bank::MemoryBank -> score`.
pub mod error;
pub mod metrics;
pub mod bank;
pub mod score;
pub mod data;
pub mod viz;

pub use error::{Error, Result};
