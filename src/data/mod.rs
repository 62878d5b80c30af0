//! Datasets: the MVTec AD folder layout (reading, image and mask loading) and a
//! deterministic synthetic generator writing that same layout for demos and tests.
pub mod mvtec;
pub mod synth;

pub use mvtec::{
    collect_images, image_dimensions, list_categories, load_mask, load_rgb, load_roi, open_category, Category, Sample, IMAGE_EXTENSIONS,
};
pub use synth::{
    defect_types, generate, image_size, DomainSummary, SynthOptions, SynthSummary, DEFECT_TYPES, DOMAINS,
    EXTRA_DOMAINS, LARGE_DOMAINS, SERIAL_ROI_MARGIN, SHAFT_DEFECT_TYPES, SHAFT_MAX_DEFECT_FRACTION,
};
