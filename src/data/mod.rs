//! Datasets: the MVTec AD folder layout (reading, image and mask loading) and a
//! deterministic synthetic generator writing that same layout for demos and tests.
pub mod mvtec;
pub mod synth;

pub use mvtec::{
    collect_images, list_categories, load_mask, load_rgb, open_category, Category, Sample, IMAGE_EXTENSIONS,
};
pub use synth::{generate, DomainSummary, SynthOptions, SynthSummary, DEFECT_TYPES, DOMAINS};
