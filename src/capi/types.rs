//! The C ABI's plain data types. Only integers, floats and pointers cross the boundary: a
//! C caller can put any bit pattern in a field, and a Rust `enum` or `bool` field would make
//! an unexpected value undefined behaviour. The enums below exist for their constants; the
//! structs carry their values as `uint32_t` and the library checks them.
//!
//! Versioned structs (`struct_size` first) follow one layout rule, checked by the tests in
//! `versioned.rs`: no padding anywhere, so every byte below `sizeof` belongs to a field and
//! a field added at the end always starts at or after the old `sizeof`.
#![allow(non_camel_case_types)]
// The enums exist for their constants in the C header (cbindgen reads them); Rust code
// uses the integer values, so rustc sees them as unused.
#![allow(dead_code)]

use std::ffi::{c_char, c_int, c_void};

/// Status returned by every function that can fail. Each value is one class of failure;
/// nexvitad_last_error() holds the detailed message, which names the offending argument,
/// file or limit.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nexvitad_status {
    /// Success.
    NEXVITAD_OK = 0,
    /// An argument is NULL, out of range or malformed (the message names the parameter).
    NEXVITAD_INVALID_ARGUMENT = 1,
    /// A file or folder could not be read or written.
    NEXVITAD_IO = 2,
    /// A file exists but is corrupt, truncated or of the wrong kind.
    NEXVITAD_FORMAT = 3,
    /// Two things that must belong together do not (a bank built by another model).
    NEXVITAD_MISMATCH = 4,
    /// ONNX Runtime could not be loaded or failed while running the model.
    NEXVITAD_RUNTIME = 5,
    /// The request needs something this build or machine lacks (e.g. CUDA).
    NEXVITAD_UNSUPPORTED = 6,
    /// A configured limit (image size, bank size) would be exceeded.
    NEXVITAD_LIMIT_EXCEEDED = 7,
    /// A progress callback returned non-zero; nothing was produced (except the checkpoint a
    /// cancelled nexvitad_train() leaves to resume from).
    NEXVITAD_CANCELLED = 8,
    /// A bug in nexvitad (a caught panic); the message says where. Please report it.
    NEXVITAD_INTERNAL = 9,
}

/// An opened model: the encoders, the fusion head and the model fingerprint.
///
/// Opaque: only ever handled through a pointer returned by nexvitad_model_open().
/// Immutable once opened; one handle may be used from any number of threads at once.
pub struct nexvitad_model {
    _opaque: [u8; 0],
}

/// A memory bank of normal features plus its decision thresholds.
///
/// Opaque: only ever handled through a pointer returned by nexvitad_bank_build() or
/// nexvitad_bank_load(). Immutable; usable from any number of threads at once. A bank
/// keeps its model alive, so the model may be freed first.
pub struct nexvitad_bank {
    _opaque: [u8; 0],
}

/// Pixel layouts accepted in nexvitad_image.format (8 bits per channel).
#[repr(u32)]
#[derive(Debug, Clone, Copy)]
pub enum nexvitad_pixel_format {
    /// One byte per pixel, gray.
    NEXVITAD_PIXEL_GRAY8 = 0,
    /// Three bytes per pixel, R G B.
    NEXVITAD_PIXEL_RGB8 = 1,
    /// Three bytes per pixel, B G R (OpenCV's default).
    NEXVITAD_PIXEL_BGR8 = 2,
    /// Four bytes per pixel, R G B A (alpha ignored).
    NEXVITAD_PIXEL_RGBA8 = 3,
    /// Four bytes per pixel, B G R A (alpha ignored).
    NEXVITAD_PIXEL_BGRA8 = 4,
}

/// How patches are matched against the bank (nexvitad_bank_options.scorer).
#[repr(u32)]
#[derive(Debug, Clone, Copy)]
pub enum nexvitad_scorer {
    /// K prototypes from Sinkhorn K-means (the method's choice, default).
    NEXVITAD_SCORER_SINKHORN = 0,
    /// Every normal patch vector (exact nearest neighbour; largest bank).
    NEXVITAD_SCORER_FULL = 1,
    /// A greedy-coreset subsample of the normal patch vectors.
    NEXVITAD_SCORER_CORESET = 2,
}

/// How the image score is drawn from the anomaly map (nexvitad_bank_options.image_score_mode).
#[repr(u32)]
#[derive(Debug, Clone, Copy)]
pub enum nexvitad_image_score_mode {
    /// The map's maximum (default).
    NEXVITAD_IMAGE_SCORE_MAX = 0,
    /// Mean of the top `image_score_top_fraction` of the map's values.
    NEXVITAD_IMAGE_SCORE_TOP_MEAN = 1,
}

/// Bits of nexvitad_bank_options.augment: extra copies of each normal image in the bank.
#[repr(u32)]
#[derive(Debug, Clone, Copy)]
pub enum nexvitad_augment {
    /// Mirror left-right.
    NEXVITAD_AUGMENT_HFLIP = 1,
    /// Mirror top-bottom.
    NEXVITAD_AUGMENT_VFLIP = 2,
    /// Rotations by 90, 180 and 270 degrees (needs a square encoder input).
    NEXVITAD_AUGMENT_ROT90 = 4,
}

/// Where a tiled bank keeps its normal features (nexvitad_bank_options.tile_layout).
#[repr(u32)]
#[derive(Debug, Clone, Copy)]
pub enum nexvitad_tile_layout {
    /// One bank for the tiles of every position (textures, webs, surfaces); default.
    NEXVITAD_TILE_SHARED = 0,
    /// One bank per tile position (aligned objects); scores only images of the size it
    /// was built from.
    NEXVITAD_TILE_PER_POSITION = 1,
}

/// The `stage` argument of a nexvitad_progress_cb: the phase a bank build (or an
/// evaluation) is in, as nexvitad_train_phase is a training run's. The Rust API calls it
/// `bank::Phase`; the C name is kept for ABI 1.
#[repr(u32)]
#[derive(Debug, Clone, Copy)]
pub enum nexvitad_stage {
    /// Running the encoders over the normal images (`total` = number of images, or of
    /// tiles for a tiled bank).
    NEXVITAD_STAGE_ENCODE = 0,
    /// Sinkhorn K-means iterations (`total` = the iteration cap).
    NEXVITAD_STAGE_CLUSTER = 1,
    /// Leave-one-out calibration of the thresholds (`total` = number of images).
    NEXVITAD_STAGE_CALIBRATE = 2,
}

/// The `level` argument of a nexvitad_log_cb.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nexvitad_log_level {
    /// Something worth knowing (a model opened, a bank built or saved).
    NEXVITAD_LOG_INFO = 1,
    /// Something that worked but may not be what was wanted (k-means did not converge).
    NEXVITAD_LOG_WARN = 2,
}

/// A caller-owned image. The library reads the pixels during the call only and never keeps
/// the pointer. Not versioned: this layout is fixed for ABI version 1.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct nexvitad_image {
    /// First byte of the top row. Must not be NULL. The buffer must hold at least
    /// `stride * (height - 1) + width * bytes_per_pixel` bytes.
    pub data: *const u8,
    /// Width in pixels, > 0.
    pub width: u32,
    /// Height in pixels, > 0.
    pub height: u32,
    /// Bytes from the start of one row to the next; 0 means tightly packed
    /// (`width * bytes_per_pixel`). Must not be smaller than one row.
    pub stride: usize,
    /// A nexvitad_pixel_format value.
    pub format: u32,
}

/// A caller-owned region-of-interest mask (revision 4): one byte per pixel, non-zero =
/// inspect, 0 = ignore. Any size: it is scaled to each image (nearest neighbour), so one
/// mask drawn at the camera's resolution serves every image of that camera. The library
/// copies what it keeps (a bank's default ROI) and never keeps the pointer. Not versioned:
/// this layout is fixed.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct nexvitad_mask {
    /// First byte of the top row. Must not be NULL. The buffer must hold at least
    /// `stride * (height - 1) + width` bytes.
    pub data: *const u8,
    /// Width in pixels, > 0.
    pub width: u32,
    /// Height in pixels, > 0.
    pub height: u32,
    /// Bytes from the start of one row to the next; 0 means `width`.
    pub stride: usize,
}

/// How to open a model. Set `struct_size = sizeof(nexvitad_options)`, then call
/// nexvitad_options_default() and change what you need. Fields beyond `struct_size` are
/// neither read nor written, so a program built against an older header keeps working.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct nexvitad_options {
    /// sizeof(nexvitad_options) as the caller compiled it. Set it before any call.
    pub struct_size: usize,
    /// Path of libonnxruntime.so to load, or NULL to search: $NEXVITAD_ORT_LIBRARY,
    /// $ORT_DYLIB_PATH, then the folder holding libnexvitad.so. A process loads ONNX Runtime
    /// once; a later model asking for a different file fails with NEXVITAD_RUNTIME.
    /// Read during nexvitad_model_open() only (the caller keeps ownership).
    pub ort_library: *const c_char,
    /// "cpu" (the default; NULL also means "cpu") or "cuda:N" (needs a CUDA build of
    /// ONNX Runtime). Read during nexvitad_model_open() only.
    pub execution_provider: *const c_char,
    /// ONNX Runtime intra-op threads per session; 0 lets ONNX Runtime choose.
    pub intra_threads: u32,
    /// Graph optimisation level: 0 off (a real setting), 1 basic, 2 extended, 3 all; a
    /// negative value stored in it (e.g. -1, read as int32_t) = the default (3).
    pub optimization_level: u32,
    /// Largest accepted image width or height; 0 = library default (16384).
    pub max_image_side: u32,
    /// Reserved, must be 0.
    pub reserved0: u32,
    /// Largest accepted width x height; 0 = library default (64 Mi pixels).
    pub max_image_pixels: u64,
    /// Tiles per encoder call when scoring tiled images (revision 6); 0 = the default for
    /// the execution provider (4 on the CPU, 16 on CUDA), at most 256. The tiles of one
    /// image, and of the next images of a batch, fill each call. Larger calls hold more
    /// memory and are not faster on the CPU; on a GPU they keep the device busy.
    pub tile_batch: u32,
    /// 1 = run the two encoders side by side, each on its own thread, instead of one after
    /// the other (revision 6); 0 = off, the default. Faster at batch 1 on CPUs with few cores
    /// (1.05-1.31x on 2 cores for the fp32 encoders). With intra_threads 0 each encoder then gets
    /// half the cores.
    pub parallel_encoders: u32,
}

/// How to build a bank. Set `struct_size = sizeof(nexvitad_bank_options)`, then call
/// nexvitad_bank_options_default() and change what you need. The defaults follow the
/// method: Sinkhorn K-means, K and sigma from the model's model.json, image score = max.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct nexvitad_bank_options {
    /// sizeof(nexvitad_bank_options) as the caller compiled it.
    pub struct_size: usize,
    /// A nexvitad_scorer value.
    pub scorer: u32,
    /// Prototypes for the Sinkhorn scorer; 0 = the model's default (30).
    pub k: u32,
    /// Entropic regulariser of Sinkhorn, relative to the mean cost; > 0; 0 = the default (0.05).
    pub epsilon: f32,
    /// K-means iteration cap; 0 = the default (50).
    pub max_iters: u32,
    /// K-means relative centroid-shift tolerance; >= 0 (0 is a real setting: run to
    /// max_iters); negative = the default (1e-4).
    pub tol: f32,
    /// Share of vectors kept by the coreset scorer, in (0, 1]; 0 = the default (0.1).
    pub coreset_ratio: f32,
    /// Gaussian smoothing sigma in pixels of the scored image, finite, <= 1000 (0 is a real
    /// setting: no smoothing); negative = the model's default. NaN is an error.
    pub sigma: f32,
    /// A nexvitad_image_score_mode value.
    pub image_score_mode: u32,
    /// Fraction for NEXVITAD_IMAGE_SCORE_TOP_MEAN, in (0, 1]; 0 = the default (0.1);
    /// ignored for MAX.
    pub image_score_top_fraction: f32,
    /// OR of nexvitad_augment bits; 0 = no augmentation.
    pub augment: u32,
    /// False-positive rate the stored thresholds aim at, in (0, 1); 0 = the model's default.
    pub target_fpr: f32,
    /// Images per encoder call; 0 = the default (4).
    pub batch_size: u32,
    /// Seed of every random choice; the same seed and images give the same bank.
    pub seed: u64,
    /// Cap on bank vectors (images x copies x patches), to bound memory; 0 = the default
    /// (4 Mi).
    pub max_vectors: u64,
    /// Tiling (revision 3): image pixels one encoder input covers, along its width (the
    /// tile's height follows the encoder input's aspect ratio). 0 = off, the default: each
    /// image is resized whole to the encoder input. E.g. 224 on a 224 model = native
    /// resolution, 448 = half resolution. A tile larger than an image is an error.
    pub tile: u32,
    /// Share of a tile that overlaps its neighbour, in [0, 1) (0 = none, the default);
    /// ignored when `tile` is 0.
    pub tile_overlap: f32,
    /// A nexvitad_tile_layout value; ignored when `tile` is 0.
    pub tile_layout: u32,
    /// Reserved, must be 0.
    pub reserved1: u32,
    /// Region of interest (revision 4): only patches inside it enter the bank, and the
    /// bank keeps a copy as the default ROI of every score call (saved with it). NULL = the
    /// whole image, the default. Read during nexvitad_bank_build() only. A mask that
    /// selects no pixel is NEXVITAD_INVALID_ARGUMENT. See "Region of interest" at the top.
    pub roi: *const nexvitad_mask,
    /// 1 = keep the shots' features in the bank, so good images can be added later
    /// (nexvitad_bank_add()) and banks merged (nexvitad_bank_merge()) with the result of a
    /// build from all images at once (revision 5). Costs file size for the Sinkhorn and
    /// coreset scorers (about 12 MB for 8 shots at 224 px); nothing for FULL. Tiled banks
    /// grow too (a per-position bank only with images of its size). 0 = the default (no).
    pub growable: u32,
    /// Reserved, must be 0.
    pub reserved2: u32,
}

/// What a bank holds (nexvitad_bank_get_info()). Set `struct_size = sizeof(nexvitad_bank_info)`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct nexvitad_bank_info {
    /// sizeof(nexvitad_bank_info) as the caller compiled it.
    pub struct_size: usize,
    /// A nexvitad_scorer value.
    pub scorer: u32,
    /// Prototypes asked for (Sinkhorn scorer).
    pub k: u32,
    /// Width of each bank vector.
    pub dim: u32,
    /// Patch grid of the bank features, width.
    pub grid_w: u32,
    /// Patch grid of the bank features, height.
    pub grid_h: u32,
    /// Number of normal images the bank was built from.
    pub shots: u32,
    /// Rows stored in the bank.
    pub vectors: u64,
    /// Gaussian smoothing sigma in pixels.
    pub sigma: f32,
    /// Image scores above this are anomalous.
    pub image_threshold: f32,
    /// Pixels scoring above this are anomalous (for defect masks).
    pub pixel_threshold: f32,
    /// False-positive rate the thresholds aim at.
    pub target_fpr: f32,
    /// A nexvitad_image_score_mode value.
    pub image_score_mode: u32,
    /// Fraction for NEXVITAD_IMAGE_SCORE_TOP_MEAN (0 for MAX).
    pub image_score_top_fraction: f32,
    /// OR of nexvitad_augment bits used when building.
    pub augment: u32,
    /// 1 if Sinkhorn K-means converged within max_iters, else 0 (0 for other scorers).
    pub converged: u32,
    /// Sinkhorn K-means iterations run (0 for other scorers).
    pub iterations: u32,
    /// Reserved, written as 0.
    pub reserved0: u32,
    /// Seed the bank was built with.
    pub seed: u64,
    /// Tile width in image pixels (revision 3); 0 = whole images resized to the encoder
    /// input (no tiling).
    pub tile: u32,
    /// Tile height in image pixels; 0 without tiling.
    pub tile_h: u32,
    /// Share of a tile that overlaps its neighbour; 0 without tiling.
    pub tile_overlap: f32,
    /// A nexvitad_tile_layout value (0 without tiling).
    pub tile_layout: u32,
    /// NEXVITAD_TILE_PER_POSITION: tile columns and rows, and the one image size the bank
    /// scores; all 0 for other banks, which score any size.
    pub tile_cols: u32,
    /// See `tile_cols`.
    pub tile_rows: u32,
    /// See `tile_cols`.
    pub image_width: u32,
    /// See `tile_cols`.
    pub image_height: u32,
    /// Size of the bank's default region of interest (revision 4); 0 x 0 = none. Read it
    /// with nexvitad_bank_get_roi().
    pub roi_width: u32,
    /// See `roi_width`.
    pub roi_height: u32,
    /// 1 if the bank is growable (nexvitad_bank_add(), nexvitad_bank_merge()), else 0
    /// (revision 5).
    pub growable: u32,
    /// Reserved, written as 0.
    pub reserved1: u32,
}

/// The outcome of scoring one image. Set `struct_size = sizeof(nexvitad_result)`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct nexvitad_result {
    /// sizeof(nexvitad_result) as the caller compiled it.
    pub struct_size: usize,
    /// The image's anomaly score (the map's max, or its top-fraction mean).
    pub image_score: f32,
    /// The bank's image threshold.
    pub image_threshold: f32,
    /// The bank's pixel threshold (compare map values with it for a defect mask).
    pub pixel_threshold: f32,
    /// 1 if image_score > image_threshold, else 0.
    pub is_anomalous: i32,
    /// Width of the anomaly map (= the input image's width).
    pub width: u32,
    /// Height of the anomaly map (= the input image's height).
    pub height: u32,
    /// Seconds spent resizing and normalising (batch time split evenly over its images).
    pub prepare_s: f64,
    /// Seconds in the Hiera encoder.
    pub hiera_s: f64,
    /// Seconds in the DINOv2 encoder.
    pub dinov2_s: f64,
    /// Seconds in the fusion head.
    pub head_s: f64,
    /// Seconds matching patches against the bank.
    pub matching_s: f64,
    /// Seconds upsampling and smoothing the map.
    pub upsample_smooth_s: f64,
    /// Where the thresholds above came from (revision 3): OR of
    /// nexvitad_threshold_source bits; 0 = both are the bank's.
    pub threshold_flags: u32,
    /// Reserved, written as 0.
    pub reserved0: u32,
    /// Defect regions found (revision 3; nexvitad_score_with_options() with regions asked
    /// for), which may exceed the caller's array; 0 otherwise.
    pub region_count: u64,
    /// Which region of interest the map, score and regions were confined to (revision 4):
    /// a nexvitad_roi_source value.
    pub roi_source: u32,
    /// Reserved, written as 0.
    pub reserved1: u32,
}

/// Values of nexvitad_result.roi_source (revision 4).
#[repr(u32)]
#[derive(Debug, Clone, Copy)]
pub enum nexvitad_roi_source {
    /// No region of interest: the whole image.
    NEXVITAD_ROI_NONE = 0,
    /// The bank's default ROI (given at nexvitad_bank_build()).
    NEXVITAD_ROI_FROM_BANK = 1,
    /// The caller's nexvitad_score_options.roi.
    NEXVITAD_ROI_FROM_CALLER = 2,
}

/// Bits of nexvitad_result.threshold_flags.
#[repr(u32)]
#[derive(Debug, Clone, Copy)]
pub enum nexvitad_threshold_source {
    /// `image_threshold` is the caller's (nexvitad_score_options.image_threshold).
    NEXVITAD_IMAGE_THRESHOLD_FROM_CALLER = 1,
    /// `pixel_threshold` is the caller's (nexvitad_score_options.pixel_threshold).
    NEXVITAD_PIXEL_THRESHOLD_FROM_CALLER = 2,
}

/// Per-call scoring choices (revision 3). Set `struct_size = sizeof(nexvitad_score_options)`
/// and call nexvitad_score_options_default(), or follow the option table at the top.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct nexvitad_score_options {
    /// sizeof(nexvitad_score_options) as the caller compiled it.
    pub struct_size: usize,
    /// Decide at this image threshold instead of the bank's: finite, >= 0 (0 is a real
    /// setting); negative (-0.0 too) = the bank's. NaN and infinity are errors.
    pub image_threshold: f32,
    /// Draw defect regions at this pixel threshold instead of the bank's: finite, >= 0;
    /// negative (-0.0 too) = the bank's. NaN and infinity are errors.
    pub pixel_threshold: f32,
    /// Smallest defect region kept, in pixels; 0 = keep every region.
    pub min_region_area: u64,
    /// Region of interest for this call (revision 4), replacing the bank's default: map
    /// pixels outside are 0, and the image score and regions come from inside. NULL = the
    /// bank's default ROI (or the whole image if it has none). Read during the call only.
    pub roi: *const nexvitad_mask,
    /// 1 = score the whole image even if the bank has a default ROI (when `roi` is NULL);
    /// 0 = the default. Other values are NEXVITAD_INVALID_ARGUMENT.
    pub ignore_bank_roi: u32,
    /// Reserved, must be 0.
    pub reserved0: u32,
}

/// One defect region: a connected (8-neighbour) piece of the map above the pixel
/// threshold (revision 3). Arrays of it are filled by nexvitad_score_with_options().
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct nexvitad_region {
    /// Bounding box: left edge, in image pixels.
    pub x: u32,
    /// Bounding box: top edge.
    pub y: u32,
    /// Bounding box: width.
    pub width: u32,
    /// Bounding box: height.
    pub height: u32,
    /// Pixels in the region.
    pub area: u64,
    /// Centroid x (pixel centres; the top-left pixel's centre is 0.0).
    pub centroid_x: f32,
    /// Centroid y.
    pub centroid_y: f32,
    /// Highest map value in the region.
    pub peak: f32,
    /// Mean map value over the region.
    pub mean: f32,
}

/// The `phase` of a nexvitad_train_progress.
#[repr(u32)]
#[derive(Debug, Clone, Copy)]
pub enum nexvitad_train_phase {
    /// Encoding the training images once each (and each perturbed target copy):
    /// `done` of `total` images; the loss fields are 0.
    NEXVITAD_TRAIN_ENCODE = 0,
    /// A training step finished: `done` of `total` steps of the whole run (a resumed run
    /// starts past 0), with this step's loss terms and the epoch's running means.
    NEXVITAD_TRAIN_STEP = 1,
}

/// How to train (nexvitad_train()). Set `struct_size = sizeof(nexvitad_train_options)`, then
/// call nexvitad_train_options_default() and change what you need. The defaults are those of
/// `nexvitad train`: 4 epochs, batch 8, AdamW lr 1e-3 / weight decay 0.01, theta, lambda1, lambda2 from the
/// model's model.json (0.7, 1.0, 0.5), seed 0, decoder width 32, a checkpoint every 20
/// steps, 2 perturbed copies per target image (noise 8, jitter 0.2, flips).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct nexvitad_train_options {
    /// sizeof(nexvitad_train_options) as the caller compiled it.
    pub struct_size: usize,
    /// Passes over the source images; 0 = the default (4).
    pub epochs: u32,
    /// Source images per step (plus as many target images and their perturbed copies);
    /// 0 = the default (8).
    pub batch: u32,
    /// AdamW learning rate; finite, > 0; 0 = the default (1e-3).
    pub lr: f64,
    /// AdamW decoupled weight decay; finite, >= 0 (0 is a real setting); negative = the
    /// default (0.01).
    pub weight_decay: f64,
    /// Pseudo-label confidence threshold theta, in (0, 1); 0 = the model's default.
    pub theta: f64,
    /// Weight lambda1 of the pseudo-label loss, finite, >= 0 (0 is a real setting);
    /// negative = the model's default. NaN is an error.
    pub lambda1: f64,
    /// Weight lambda2 of the consistency loss, finite, >= 0 (0 is a real setting);
    /// negative = the model's default. NaN is an error.
    pub lambda2: f64,
    /// Seed of initialisation, batch order and perturbations: the same seed, data and
    /// options give the same model, bit for bit.
    pub seed: u64,
    /// Channels of the decoder trunk; 0 = the default (32).
    pub decoder_width: u32,
    /// Steps between checkpoints; 0 = only when cancelled and at the end (a real setting).
    /// The one field with no "use the default" value: every uint32_t value is a real
    /// setting; nexvitad_train_options_default() writes the default (20).
    pub checkpoint_every: u32,
    /// Perturbed copies per target image (each encoded once); 0 = the default (2).
    pub copies: u32,
    /// 1: the perturbed copies may be flipped (mapped back before comparing); 0: no flips
    /// (a real setting); a negative value stored in it (e.g. -1) = the default (1).
    pub flips: u32,
    /// Pixel noise std of the perturbed copies, in 8-bit levels; finite, >= 0 (0 is a real
    /// setting); negative = the default (8).
    pub noise_std: f64,
    /// Colour jitter of the perturbed copies (brightness/contrast 1 +/- j, gains 1 +/- j/2),
    /// in [0, 1) (0 is a real setting); negative = the default (0.2).
    pub jitter: f64,
    /// 1: continue the run whose checkpoint is in `out_dir` (same data and options; only
    /// `epochs` and `checkpoint_every` may differ); 0: start a new run in a new or empty folder.
    pub resume: u32,
    /// 1: also train on the target's test images, unlabeled (their masks are never read).
    pub target_test: u32,
    /// Folder of the feature cache (revision 7), `features.nxcache`: every training image's
    /// encoder outputs, written once and reused by a resumed run; NULL = `out_dir`. A
    /// folder shared by runs on the same data encodes the images once; a cache there of
    /// other data is refused (NEXVITAD_MISMATCH), never overwritten. It stays after the run
    /// (a resume with more epochs reuses it); delete it when the model is final.
    pub cache_dir: *const c_char,
    /// Bytes of feature sets held in memory (revision 7); the others are read from the
    /// cache file when a step uses them, so memory stops growing with the number of images.
    /// 0 = the default: 1/8 of the machine's memory, at most 512 MiB. It must hold one
    /// step's feature sets (min(batch, source images) + 2 x min(batch, target images)
    /// images) or the call fails with NEXVITAD_INVALID_ARGUMENT naming the least.
    pub cache_mem: u64,
}

/// What a training run reports to its callback. Written by the library; `struct_size` is
/// the library's sizeof(nexvitad_train_progress): a program built against a newer header
/// must read only the fields that lie below it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct nexvitad_train_progress {
    /// sizeof(nexvitad_train_progress) of the library that wrote it.
    pub struct_size: usize,
    /// A nexvitad_train_phase value.
    pub phase: u32,
    /// The step's epoch, counted from 0 (0 while encoding).
    pub epoch: u32,
    /// Epochs of the run.
    pub epochs: u32,
    /// Steps done in this epoch (1..=steps_per_epoch; 0 while encoding).
    pub step: u32,
    /// Steps per epoch (0 while encoding).
    pub steps_per_epoch: u32,
    /// Reserved, written as 0.
    pub reserved0: u32,
    /// ENCODE: images encoded; STEP: steps done in the whole run.
    pub done: u64,
    /// ENCODE: images to encode; STEP: steps of the whole run (epochs x steps_per_epoch).
    pub total: u64,
    /// This step's loss L = L_src + lambda1*L_pl + lambda2*L_cons.
    pub loss: f64,
    /// This step's supervised source loss (BCE + Dice).
    pub l_src: f64,
    /// This step's pseudo-label loss.
    pub l_pl: f64,
    /// This step's consistency loss.
    pub l_cons: f64,
    /// This step's pseudo-label coverage: share of target cells whose label passed theta, in [0, 1].
    pub coverage: f64,
    /// Running mean of `loss` over this epoch's steps so far.
    pub mean_loss: f64,
    /// Running mean of `l_src` over this epoch.
    pub mean_l_src: f64,
    /// Running mean of `l_pl` over this epoch.
    pub mean_l_pl: f64,
    /// Running mean of `l_cons` over this epoch.
    pub mean_l_cons: f64,
    /// Running mean of `coverage` over this epoch.
    pub mean_coverage: f64,
}

/// The outcome of nexvitad_train(). Set `struct_size = sizeof(nexvitad_train_result)`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct nexvitad_train_result {
    /// sizeof(nexvitad_train_result) as the caller compiled it.
    pub struct_size: usize,
    /// Steps of the whole run (epochs x steps_per_epoch).
    pub steps: u64,
    /// Steps this call ran (fewer than `steps` after a resume).
    pub steps_run: u64,
    /// Epochs of the run.
    pub epochs: u32,
    /// Steps per epoch.
    pub steps_per_epoch: u32,
    /// Source images trained on (good and defective).
    pub source_images: u32,
    /// Target images trained on (each with its perturbed copies).
    pub target_images: u32,
    /// Mean loss of the last epoch.
    pub loss: f64,
    /// Mean L_src of the last epoch.
    pub l_src: f64,
    /// Mean L_pl of the last epoch.
    pub l_pl: f64,
    /// Mean L_cons of the last epoch.
    pub l_cons: f64,
    /// Mean pseudo-label coverage of the last epoch.
    pub coverage: f64,
    /// Seconds spent encoding the images (once per call).
    pub encode_s: f64,
    /// Seconds spent in training steps in this call.
    pub train_s: f64,
    /// Size of the feature cache file, in bytes (revision 7).
    pub cache_bytes: u64,
    /// Feature sets (images and perturbed copies) this call encoded (revision 7).
    pub encoded: u64,
    /// Feature sets this call found in the cache, from a stopped or earlier run (revision 7).
    pub reused: u64,
}

/// Progress of a long call. `stage` is a nexvitad_stage value; `done` of `total` steps of it
/// are finished. Return 0 to continue, non-zero to cancel: the call then returns
/// NEXVITAD_CANCELLED and produces nothing. Called on the thread that made the call; must
/// not throw (C++) or longjmp out.
pub type nexvitad_progress_cb = Option<unsafe extern "C" fn(user: *mut c_void, stage: c_int, done: usize, total: usize) -> c_int>;

/// Receives the library's log messages. `level` is a nexvitad_log_level value; `message` is
/// valid only during the call. Called on whichever thread logs, possibly from several
/// threads at once, so it must be thread-safe; it must not call
/// nexvitad_set_log_callback() and must not throw.
pub type nexvitad_log_cb = Option<unsafe extern "C" fn(user: *mut c_void, level: c_int, message: *const c_char)>;

/// Progress of nexvitad_train(), after each encoded image and each training step.
/// `progress` is valid during the call only. Return 0 to continue, non-zero to cancel: the
/// call then returns NEXVITAD_CANCELLED (after a step: with a checkpoint written, so the run
/// can be resumed). Called on the thread that called nexvitad_train(); must not throw (C++)
/// or longjmp out.
pub type nexvitad_train_progress_cb = Option<unsafe extern "C" fn(user: *mut c_void, progress: *const nexvitad_train_progress) -> c_int>;
