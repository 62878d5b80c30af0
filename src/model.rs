//! A model folder opened for use: manifest, encoders, fusion head and fingerprint.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::encoder::{BackboneFeatures, Backbones, EncoderTimings, ExecutionProvider, SessionConfig};
use crate::error::{Error, Result};
use crate::fusion::{Grid, Head};
use crate::image::{ImageLimits, ImageView, Normalization, Preparer};
use crate::manifest::Manifest;
use crate::runtime;
use crate::fusion::scoring::{self, FeatureScratch};

/// How to open a model. `Default` gives CPU, ORT's own thread count and full optimisation.
#[derive(Debug, Clone, Default)]
pub struct ModelOptions {
    /// Explicit `libonnxruntime.so`; otherwise the search order of the runtime loader (`NEXVITAD_ORT_LIBRARY`, then the places the README lists).
    pub ort_library: Option<PathBuf>,
    /// ORT session settings (execution provider, threads, optimisation level).
    pub session: SessionConfig,
    /// Caps on accepted image sizes.
    pub image_limits: ImageLimits,
    /// Tiles per encoder call when scoring tiled images; `None` = [`DEFAULT_TILE_BATCH`]
    /// for the execution provider. The tiles of one image, and of the next images of a
    /// batch, fill each call. On the CPU larger calls are hardly faster (ONNX Runtime already
    /// spreads one tile over all threads) and hold more activations; on a GPU they keep the
    /// device busy. See docs/performance.md, "Throughput with tiles".
    pub tile_batch: Option<NonZeroUsize>,
}

/// Largest accepted [`ModelOptions::tile_batch`]: one encoder call of this many tiles at
/// 448 px already holds gigabytes of activations.
pub const MAX_TILE_BATCH: usize = 256;

impl ModelOptions {
    /// Tiles per encoder call for this execution provider when `tile_batch` is `None`. On
    /// the CPU 4: the tile batches measured differ by at most 17 % (8 against 1, fp32, at
    /// 2448 x 2048; mostly within the noise between runs), and 4 holds half the activations of 8; on a GPU 16, to keep the device busy
    /// (docs/performance.md, "Throughput with tiles").
    pub fn default_tile_batch(&self) -> usize {
        match self.session.execution_provider {
            ExecutionProvider::Cpu => DEFAULT_TILE_BATCH.cpu,
            _ => DEFAULT_TILE_BATCH.gpu,
        }
    }

    /// The tiles per encoder call in effect (`tile_batch`, else the provider's default).
    pub fn effective_tile_batch(&self) -> usize {
        self.tile_batch.map_or_else(|| self.default_tile_batch(), NonZeroUsize::get)
    }

    /// Sets the execution provider from `cpu` / `cuda:N`.
    pub fn with_execution_provider(mut self, ep: &str) -> Result<Self> {
        self.session.execution_provider = ExecutionProvider::parse(ep)?;
        Ok(self)
    }
}

/// Default tiles per encoder call, per kind of execution provider.
pub struct TileBatchDefaults {
    /// On the CPU.
    pub cpu: usize,
    /// On a GPU provider.
    pub gpu: usize,
}

/// See [`ModelOptions::tile_batch`].
pub const DEFAULT_TILE_BATCH: TileBatchDefaults = TileBatchDefaults { cpu: 4, gpu: 16 };

/// An opened model. Immutable after opening and safe to share between threads.
pub struct Model {
    dir: PathBuf,
    manifest: Manifest,
    backbones: Backbones,
    head: Head,
    fingerprint: String,
    options: ModelOptions,
}

/// File name of the trained head inside a model folder.
pub const HEAD_FILE: &str = "head.safetensors";

/// Seconds spent per stage for a batch (summed over its images).
#[derive(Debug, Clone, Copy, Default)]
pub struct FeatureTimings {
    /// Seconds resizing and normalising the images.
    pub prepare_s: f64,
    /// Seconds in the Hiera session.
    pub hiera_s: f64,
    /// Seconds in the DINOv2 session.
    pub dinov2_s: f64,
    /// Seconds in the fusion head, patch features included.
    pub head_s: f64,
}

/// Encoder inputs prepared for one batch; DINOv2's is absent when it equals Hiera's size.
pub struct PreparedBatch {
    /// Hiera's input, `[N, 3, height, width]` of the manifest's `input` size.
    pub hiera: ndarray::Array4<f32>,
    /// DINOv2's input at its own size; `None` when that equals Hiera's, which then serves both.
    pub dinov2: Option<ndarray::Array4<f32>>,
}

impl Model {
    /// Opens the model folder `dir` (`model.json`, the two ONNX files, optional `head.safetensors`).
    pub fn open(dir: impl AsRef<Path>, options: &ModelOptions) -> Result<Self> {
        let dir = dir.as_ref();
        // Say what is wrong: a missing (or unreachable) folder gets the OS's reason, a file
        // in its place ENOTDIR.
        let meta = std::fs::metadata(dir).map_err(|e| Error::io("cannot open model folder", dir, e))?;
        if !meta.is_dir() {
            return Err(Error::io("cannot open model folder", dir, std::io::Error::from_raw_os_error(libc::ENOTDIR)));
        }
        if let Some(b) = options.tile_batch.filter(|b| b.get() > MAX_TILE_BATCH) {
            return Err(Error::invalid(format!("tile_batch {b} is above the largest accepted, {MAX_TILE_BATCH}")));
        }
        let manifest = Manifest::load(&dir.join("model.json"))?;
        let rt = runtime::runtime(options.ort_library.as_deref())?;
        let backbones = Backbones::open(rt, dir, &manifest, &options.session)?;
        let head_path = dir.join(HEAD_FILE);
        let (head, fingerprint) = if head_path.exists() {
            let (head, bytes) = Head::load(&head_path, &manifest)?;
            let fp = fingerprint(&manifest, &backbones.file_hashes, Some(&bytes));
            (head, fp)
        } else {
            // The untrained projection is seeded from the model itself, so every process
            // that opens this folder gets the same head and the same features.
            let fp = fingerprint(&manifest, &backbones.file_hashes, None);
            let seed = u64::from_str_radix(&fp[..16], 16).unwrap_or(0);
            (Head::untrained(&manifest, seed), fp)
        };
        Ok(Self { dir: dir.to_path_buf(), manifest, backbones, head, fingerprint, options: options.clone() })
    }

    /// The model folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// The parsed `model.json`.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    /// The two encoder sessions.
    pub fn backbones(&self) -> &Backbones {
        &self.backbones
    }
    /// The fusion head (trained, or the untrained projection seeded from the model).
    pub fn head(&self) -> &Head {
        &self.head
    }
    /// The options the model was opened with.
    pub fn options(&self) -> &ModelOptions {
        &self.options
    }
    /// Hex SHA-256 over the backbone files, the fusion configuration and the head weights.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    fn normalization(&self) -> Normalization {
        Normalization { mean: self.manifest.input.mean, std: self.manifest.input.std }
    }

    /// Validates caller pixels against this model's image limits.
    pub fn view<'a>(&self, data: &'a [u8], width: u32, height: u32, stride: usize, format: crate::image::PixelFormat) -> Result<ImageView<'a>> {
        ImageView::with_limits(data, width, height, stride, format, &self.options.image_limits)
    }

    /// Resizes and normalises a batch for both encoders; the DINOv2 tensor is made only
    /// when its input size differs from Hiera's.
    pub fn prepare(&self, preparer: &mut Preparer, images: &[ImageView<'_>]) -> Result<PreparedBatch> {
        self.prepare_masked(preparer, images, None)
    }

    /// [`Model::prepare`], then, where `fill` gives a mask for an image (one byte per pixel
    /// of that image, 0 = ignored), the ignored pixels of its encoder inputs are set to the
    /// normalisation mean (0 after normalising): the encoders then see a constant there
    /// instead of content that changes from part to part (see [`crate::roi`]).
    pub fn prepare_masked(&self, preparer: &mut Preparer, images: &[ImageView<'_>], fill: Option<&[Vec<u8>]>) -> Result<PreparedBatch> {
        let lim = &self.options.image_limits;
        for (i, im) in images.iter().enumerate() {
            if im.width() > lim.max_side || im.height() > lim.max_side || im.width() as u64 * im.height() as u64 > lim.max_pixels {
                return Err(Error::LimitExceeded(format!("image {i} ({}x{}) exceeds the model's image limits", im.width(), im.height())));
            }
        }
        let norm = self.normalization();
        let i = &self.manifest.input;
        let d = &self.manifest.dinov2;
        let hiera = preparer.prepare_batch(images, i.width, i.height, &norm)?;
        let dinov2 = if (d.width, d.height) == (i.width, i.height) {
            None
        } else {
            Some(preparer.prepare_batch(images, d.width, d.height, &norm)?)
        };
        let mut batch = PreparedBatch { hiera, dinov2 };
        if let Some(masks) = fill {
            if masks.len() != images.len() {
                return Err(Error::Internal(format!("{} fill masks for {} images", masks.len(), images.len())));
            }
            for (i, (im, m)) in images.iter().zip(masks).enumerate() {
                for t in std::iter::once(&mut batch.hiera).chain(batch.dinov2.as_mut()) {
                    fill_outside(t.index_axis_mut(ndarray::Axis(0), i), m, im.width(), im.height())?;
                }
            }
        }
        Ok(batch)
    }

    /// Runs both frozen encoders on a prepared batch.
    pub fn encode_prepared(&self, batch: &PreparedBatch) -> Result<(BackboneFeatures, EncoderTimings)> {
        let dino = batch.dinov2.as_ref().unwrap_or(&batch.hiera);
        self.backbones.run(batch.hiera.view(), dino.view())
    }

    /// Patch features (the vectors banks store and scoring compares; computed by
    /// [`scoring::patch_features`]) of each image of a batch, with timings.
    pub fn patch_features(&self, preparer: &mut Preparer, images: &[ImageView<'_>]) -> Result<(Vec<Grid>, FeatureTimings)> {
        self.patch_features_with(preparer, &mut FeatureScratch::default(), images)
    }

    /// [`Model::patch_features`] with caller-owned head buffers (a scoring stream hands its
    /// grids back with [`FeatureScratch::recycle`] and reuses them).
    pub fn patch_features_with(
        &self,
        preparer: &mut Preparer,
        scratch: &mut FeatureScratch,
        images: &[ImageView<'_>],
    ) -> Result<(Vec<Grid>, FeatureTimings)> {
        self.patch_features_masked(preparer, scratch, images, None)
    }

    /// [`Model::patch_features_with`] with the ignored pixels of each image filled as
    /// [`Model::prepare_masked`] does.
    pub fn patch_features_masked(
        &self,
        preparer: &mut Preparer,
        scratch: &mut FeatureScratch,
        images: &[ImageView<'_>],
        fill: Option<&[Vec<u8>]>,
    ) -> Result<(Vec<Grid>, FeatureTimings)> {
        if images.is_empty() {
            return Err(Error::invalid("no images given"));
        }
        let t0 = std::time::Instant::now();
        let batch = self.prepare_masked(preparer, images, fill)?;
        let prepare_s = t0.elapsed().as_secs_f64();
        let (feats, enc) = self.encode_prepared(&batch)?;
        let t1 = std::time::Instant::now();
        let grids = (0..images.len()).map(|i| scoring::patch_features(&self.head, &feats, i, scratch)).collect::<Result<Vec<_>>>()?;
        let head_s = t1.elapsed().as_secs_f64();
        Ok((grids, FeatureTimings { prepare_s, hiera_s: enc.hiera_s, dinov2_s: enc.dinov2_s, head_s }))
    }

    /// Patch features of an already prepared batch (used for augmented copies).
    pub fn patch_features_prepared(&self, batch: &PreparedBatch) -> Result<Vec<Grid>> {
        let (feats, _) = self.encode_prepared(batch)?;
        let mut scratch = FeatureScratch::default();
        (0..batch.hiera.dim().0).map(|i| scoring::patch_features(&self.head, &feats, i, &mut scratch)).collect()
    }

    /// Prepares and encodes a batch of images.
    pub fn encode(&self, images: &[ImageView<'_>]) -> Result<BackboneFeatures> {
        if images.is_empty() {
            return Err(Error::invalid("no images to encode"));
        }
        let mut p = Preparer::new();
        let batch = self.prepare(&mut p, images)?;
        Ok(self.encode_prepared(&batch)?.0)
    }
}

/// Sets to 0 (the normalised mean) the pixels of one prepared image `[3, H, W]` whose
/// source footprint in the `width × height` image touches a pixel that is 0 in `mask`: the
/// footprint is the pixels the resize reads for that pixel, widened by one for the
/// interpolation, so no ignored pixel leaks into the encoder input through the resize.
fn fill_outside(mut t: ndarray::ArrayViewMut3<'_, f32>, mask: &[u8], width: u32, height: u32) -> Result<()> {
    let (w, h) = (width as usize, height as usize);
    if mask.len() != w * h {
        return Err(Error::Internal(format!("fill mask of {} bytes for a {width}x{height} image", mask.len())));
    }
    let (channels, th, tw) = t.dim();
    let span = |i: usize, n: usize, m: usize| ((i * m / n).saturating_sub(1), (((i + 1) * m).div_ceil(n) + 1).min(m));
    // Per source row: does any ignored pixel fall in each target column's span?
    let cols: Vec<(usize, usize)> = (0..tw).map(|x| span(x, tw, w)).collect();
    let row_hits: Vec<Vec<bool>> = (0..h)
        .map(|y| {
            let r = &mask[y * w..(y + 1) * w];
            cols.iter().map(|&(a, b)| r[a..b].contains(&0)).collect()
        })
        .collect();
    for y in 0..th {
        let (a, b) = span(y, th, h);
        for x in 0..tw {
            if row_hits[a..b].iter().any(|r| r[x]) {
                for c in 0..channels {
                    t[[c, y, x]] = 0.0;
                }
            }
        }
    }
    Ok(())
}

/// The model fingerprint: what a bank records to refuse scoring with any other model.
pub(crate) fn fingerprint(manifest: &Manifest, backbone_hashes: &[[u8; 32]; 2], head: Option<&[u8]>) -> String {
    let mut h = Sha256::new();
    h.update(b"nexvitad-model-v1\0");
    for b in backbone_hashes {
        h.update(b);
    }
    // The fusion configuration changes the feature space as much as the weights do.
    h.update(serde_json::to_vec(&manifest.fusion).unwrap_or_default());
    match head {
        Some(bytes) => {
            h.update(b"head\0");
            h.update(bytes);
        }
        None => h.update(b"untrained-head\0"),
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
