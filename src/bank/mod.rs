//! The memory bank: normal patch features of a few good target images, and how to fit it.
//!
//! Two scorers: (a) Sinkhorn K-means prototypes (K, default 30, the method's choice), and
//! (b) the full bank, optionally greedy-coreset subsampled, scored by exact nearest
//! neighbour. Either way the bank is a `[n, D]` matrix of vectors and a patch's score is its
//! distance to the nearest row, so one scoring path serves both.

pub mod calibrate;
pub mod coreset;
pub mod file;
mod grow;
pub mod sinkhorn;
pub mod tiles;

use std::ops::Range;

use ndarray::{s, Array1, Array2, Array4, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fusion::Grid;
use crate::kernels::distance;
use crate::image::{ImageView, Preparer};
use crate::model::{Model, PreparedBatch};
use crate::roi::Roi;
use crate::tiling::Tiling;

pub use calibrate::Calibration;
pub use grow::Growth;
pub use tiles::{Positions, TileMeta};
pub use crate::map::ImageScoreMode;

/// How patches are matched against the bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScorerKind {
    /// K prototypes from Sinkhorn K-means.
    Sinkhorn,
    /// Every normal patch vector.
    Full,
    /// A greedy-coreset subsample of the normal patch vectors.
    Coreset,
}

impl ScorerKind {
    /// Parses a scorer name, case-insensitive; `prototypes` is another name for `sinkhorn`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sinkhorn" | "prototypes" => Ok(Self::Sinkhorn),
            "full" => Ok(Self::Full),
            "coreset" => Ok(Self::Coreset),
            other => Err(Error::invalid(format!("unknown scorer '{other}' (expected sinkhorn, full or coreset)"))),
        }
    }
    /// The lowercase name, as [`ScorerKind::parse`] reads it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sinkhorn => "sinkhorn",
            Self::Full => "full",
            Self::Coreset => "coreset",
        }
    }
}

/// Extra copies of each normal image for few-shot banks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Augment {
    /// Add a left-right mirrored copy of each image.
    pub hflip: bool,
    /// Add an upside-down mirrored copy of each image.
    pub vflip: bool,
    /// 90/180/270° rotations; needs a square encoder input.
    pub rot90: bool,
}

/// What a bank build is doing, for progress callbacks: its phase, as training's progress
/// has phases. (The C header's name for it is `nexvitad_stage`, kept for ABI 1; "stage"
/// elsewhere in the code is a Hiera level.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Encoding the normal images (`done` and `total` count images); evaluation also
    /// reports the scoring of its test images as this phase.
    Encode = 0,
    /// Sinkhorn K-means (`done` counts iterations, `total` is the iteration cap).
    Cluster = 1,
    /// Leave-one-out calibration of the thresholds (`done` and `total` count shots).
    Calibrate = 2,
}

/// One progress report: `done` of `total` steps of `phase`.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// The phase the build is in.
    pub phase: Phase,
    /// Steps of `phase` finished.
    pub done: usize,
    /// Steps of `phase` in all.
    pub total: usize,
}

/// Progress callback; returning `false` cancels the build with [`Error::Cancelled`].
pub type ProgressFn<'a> = &'a mut dyn FnMut(Progress) -> bool;

/// How to build a bank. `Default` follows the method: Sinkhorn K-means, K and σ from
/// `model.json`, image score = max, thresholds at the manifest's target FPR.
#[derive(Debug, Clone, PartialEq)]
pub struct BankOptions {
    /// How patches are matched against the bank.
    pub scorer: ScorerKind,
    /// Prototypes K of the Sinkhorn scorer (> 0); `None` = the model's default.
    pub k: Option<usize>,
    /// Entropic regulariser relative to the mean cost (see `sinkhorn::KMeansOptions`).
    pub epsilon: f32,
    /// K-means iteration cap and relative centroid-shift tolerance.
    pub max_iters: usize,
    /// Relative centroid-shift tolerance (finite, >= 0).
    pub tol: f32,
    /// Share of vectors kept by the coreset scorer, in (0, 1].
    pub coreset_ratio: f32,
    /// Gaussian σ in pixels of the scored image, in [0, 1000] (0 = no smoothing);
    /// `None` = the model's default.
    pub sigma: Option<f32>,
    /// How the image score is drawn from the map.
    pub image_score: ImageScoreMode,
    /// Extra flipped or rotated copies of each normal image.
    pub augment: Augment,
    /// False-positive rate the stored thresholds aim at, in (0, 1); `None` = the model's
    /// default.
    pub target_fpr: Option<f32>,
    /// Seed of every random choice (k-means++ start, coreset).
    pub seed: u64,
    /// Images encoded per encoder call.
    pub batch_size: usize,
    /// Cap on bank vectors (M × copies × patches), to bound memory.
    pub max_vectors: usize,
    /// Cut images into tiles at native resolution instead of resizing them whole;
    /// `None` (the default) resizes each image to the encoder input.
    pub tiling: Option<Tiling>,
    /// Region of interest: only patches inside it enter the bank (see [`crate::roi`] for
    /// the edge rule), and the bank keeps it as the default mask of every score call.
    /// `None` (the default) inspects the whole image.
    pub roi: Option<Roi>,
    /// Keep the shots' features in the bank so that good images can be added later and banks
    /// merged, with the result of a fresh build ([`MemoryBank::add`], [`MemoryBank::merge`]);
    /// costs bank-file size for the Sinkhorn and coreset scorers.
    pub growable: bool,
}

impl Default for BankOptions {
    fn default() -> Self {
        Self {
            scorer: ScorerKind::Sinkhorn,
            k: None,
            epsilon: 0.05,
            max_iters: 50,
            tol: 1e-4,
            coreset_ratio: 0.1,
            sigma: None,
            image_score: ImageScoreMode::Max,
            augment: Augment::default(),
            target_fpr: None,
            seed: 0,
            batch_size: 4,
            max_vectors: 4 << 20,
            tiling: None,
            roi: None,
            growable: false,
        }
    }
}

/// Bank options with the model's defaults filled in and every value checked: what the
/// build steps read. It dereferences to the options as given, so `k`, `sigma` and
/// `target_fpr` read here are the resolved numbers and every other field is the caller's.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    opts: BankOptions,
    /// Prototypes K (Sinkhorn).
    pub k: usize,
    /// Gaussian σ in pixels.
    pub sigma: f32,
    /// Target false-positive rate of the thresholds.
    pub target_fpr: f32,
}

impl std::ops::Deref for Resolved {
    type Target = BankOptions;
    fn deref(&self) -> &BankOptions {
        &self.opts
    }
}

impl BankOptions {
    /// σ, or the model's when `None`, checked: the one option the decoder scorer also reads
    /// (`train::score`), so both paths share this rule.
    pub(crate) fn sigma_or_default(&self, model: &Model) -> Result<f32> {
        let d = model.manifest().defaults.sigma;
        let sigma = self.sigma.unwrap_or(d);
        if sigma < 0.0 && sigma.is_finite() {
            return Err(Error::invalid(format!("sigma {sigma} must be >= 0 (leave it unset for the model's default, {d} px)")));
        }
        if !(sigma.is_finite() && sigma <= 1000.0) {
            return Err(Error::invalid(format!("sigma {sigma} must be finite and at most 1000 px")));
        }
        Ok(sigma)
    }

    /// Fills model defaults and checks every value, naming the one that is wrong.
    pub(crate) fn resolved(&self, model: &Model) -> Result<Resolved> {
        let d = &model.manifest().defaults;
        let o = self;
        // A value that only the safe API and the CLI can give (C maps its "use the default"
        // values to `None`) says how to get the default.
        let k = o.k.unwrap_or(d.k);
        if k == 0 {
            return Err(Error::invalid(format!("k must be > 0 (leave it unset for the model's default, {})", d.k)));
        }
        let sigma = o.sigma_or_default(model)?;
        let target_fpr = o.target_fpr.unwrap_or(d.target_fpr);
        if target_fpr == 0.0 {
            return Err(Error::invalid(format!("target_fpr 0 must be in (0, 1) (leave it unset for the model's default, {})", d.target_fpr)));
        }
        if !(target_fpr > 0.0 && target_fpr < 1.0) {
            return Err(Error::invalid(format!("target_fpr {target_fpr} must be in (0, 1)")));
        }
        if !(o.epsilon.is_finite() && o.epsilon > 0.0) {
            return Err(Error::invalid(format!("epsilon {} must be finite and > 0", o.epsilon)));
        }
        if o.max_iters == 0 {
            return Err(Error::invalid("max_iters must be > 0"));
        }
        if !(o.tol.is_finite() && o.tol >= 0.0) {
            return Err(Error::invalid(format!("tol {} must be finite and >= 0", o.tol)));
        }
        if !(o.coreset_ratio > 0.0 && o.coreset_ratio <= 1.0) {
            return Err(Error::invalid(format!("coreset_ratio {} must be in (0, 1]", o.coreset_ratio)));
        }
        if let ImageScoreMode::TopMean { fraction } = o.image_score {
            if !(fraction > 0.0 && fraction <= 1.0) {
                return Err(Error::invalid(format!("top-mean fraction {fraction} must be in (0, 1]")));
            }
        }
        if o.batch_size == 0 {
            return Err(Error::invalid("batch_size must be > 0"));
        }
        let i = &model.manifest().input;
        let di = &model.manifest().dinov2;
        if o.augment.rot90 && (i.width != i.height || di.width != di.height) {
            return Err(Error::invalid("rot90 augmentation needs a square encoder input"));
        }
        if let Some(t) = &o.tiling {
            t.validate()?;
        }
        Ok(Resolved { opts: o.clone(), k, sigma, target_fpr })
    }
}

/// What a bank file records besides its vectors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BankMeta {
    /// Fingerprint of the model that built it; scoring with any other model is refused.
    pub fingerprint: String,
    /// Patch grid height of the bank's features.
    pub grid_h: usize,
    /// Patch grid width of the bank's features.
    pub grid_w: usize,
    /// Width of each bank vector.
    pub dim: usize,
    /// The scorer the bank was fitted for.
    pub scorer: ScorerKind,
    /// Prototypes asked for (Sinkhorn) — the stored row count may differ for other scorers.
    pub k: usize,
    /// Gaussian σ of the anomaly map, in pixels of the scored image (the model default resolved).
    pub sigma: f32,
    /// How the image score is drawn from the map.
    pub image_score: ImageScoreMode,
    /// Copies added per normal image.
    pub augment: Augment,
    /// Normal images the bank was built from.
    pub shots: usize,
    /// Seed of the random choices (k-means++ start, coreset).
    pub seed: u64,
    /// Sinkhorn K-means iterations run and whether it converged (0/false for other scorers).
    pub iterations: usize,
    /// See `iterations`.
    pub converged: bool,
    /// Decision thresholds and the normal-score statistics behind them.
    pub calibration: Calibration,
    /// How images are cut into tiles; `None` = whole images resized to the encoder input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tiles: Option<TileMeta>,
    /// `[width, height]` of the bank's default region of interest (the mask itself is the
    /// file's `roi` tensor); `None` = none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roi: Option<[u32; 2]>,
    /// A growable bank's record of its shots ([`MemoryBank::add`]); `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub growth: Option<Growth>,
}

impl BankMeta {
    /// The record of a bank just fitted by `model` with the resolved `opts` on `shots`
    /// images whose feature grids look like `grid`; `fit` is the clustering's iterations
    /// and convergence. Whole-image (`tiles` None); a tiled build sets `tiles` after.
    pub(crate) fn fitted(
        model: &Model,
        opts: &Resolved,
        grid: &Grid,
        vectors: &Array2<f32>,
        shots: usize,
        fit: (usize, bool),
        calibration: Calibration,
    ) -> Self {
        Self {
            fingerprint: model.fingerprint().to_string(),
            grid_h: grid.h,
            grid_w: grid.w,
            dim: vectors.ncols(),
            scorer: opts.scorer,
            k: opts.k,
            sigma: opts.sigma,
            image_score: opts.image_score,
            augment: opts.augment,
            shots,
            seed: opts.seed,
            iterations: fit.0,
            converged: fit.1,
            calibration,
            tiles: None,
            roi: opts.roi.as_ref().map(|r| [r.width(), r.height()]),
            growth: None,
        }
    }
}

/// A fitted memory bank. Immutable; shared freely between scoring threads.
#[derive(Debug, Clone)]
pub struct MemoryBank {
    vectors: Array2<f32>,
    norms: Array1<f32>,
    meta: BankMeta,
    /// Rows of each part: one part, or one per tile position.
    parts: Vec<Range<usize>>,
    /// The default region of interest of every score call (`meta.roi` is its size).
    roi: Option<Roi>,
    /// A growable Sinkhorn or coreset bank's shots (a growable full bank's are its vectors).
    shots: Option<Array2<f32>>,
}

impl MemoryBank {
    /// Builds a bank from M normal images of the target product.
    pub fn build(model: &Model, images: &[ImageView<'_>], opts: &BankOptions, progress: ProgressFn<'_>) -> Result<Self> {
        if images.is_empty() {
            return Err(Error::invalid("a memory bank needs at least one normal image (got 0)"));
        }
        let opts = opts.resolved(model)?;
        let shots = grow::Shots::encode(model, images, &opts, progress)?;
        grow::from_shots(model, shots, &opts, progress)
    }

    /// Attaches a growable bank's shots (`None` for a full-scorer bank, whose vectors are its
    /// shots, and for banks that are not growable), checked against `meta.growth`.
    pub(crate) fn with_shots(mut self, shots: Option<Array2<f32>>) -> Result<Self> {
        if self.meta.growth.is_some() {
            let rows = shots.as_ref().map_or(self.vectors.nrows(), |s| s.nrows());
            grow::check_growth(&self.meta, rows).map_err(Error::Internal)?;
            if shots.as_ref().is_some_and(|s| s.ncols() != self.meta.dim) {
                return Err(Error::Internal("shots of another width than the bank".into()));
            }
        } else if shots.is_some() {
            return Err(Error::Internal("shots given for a bank that is not growable".into()));
        }
        self.shots = shots;
        Ok(self)
    }

    /// A growable Sinkhorn or coreset bank's shots, `[rows, dim]`.
    pub(crate) fn kept_shots(&self) -> Option<&Array2<f32>> {
        self.shots.as_ref()
    }

    /// Whether good images can be added to this bank ([`MemoryBank::add`]).
    pub fn is_growable(&self) -> bool {
        self.meta.growth.is_some()
    }

    /// Attaches the default region of interest `meta.roi` describes.
    pub(crate) fn with_roi(mut self, roi: Option<Roi>) -> Result<Self> {
        if self.meta.roi != roi.as_ref().map(|r| [r.width(), r.height()]) {
            return Err(Error::Internal(format!("bank metadata says ROI {:?}, the mask is {:?}", self.meta.roi, roi.map(|r| (r.width(), r.height())))));
        }
        self.roi = roi;
        Ok(self)
    }

    /// The bank's default region of interest, applied to every score call that does not
    /// give its own ([`crate::score::RoiChoice`]).
    pub fn roi(&self) -> Option<&Roi> {
        self.roi.as_ref()
    }

    /// Assembles a bank from stored parts, checking they agree.
    pub fn from_parts(vectors: Array2<f32>, meta: BankMeta) -> Result<Self> {
        let mut meta = meta;
        if meta.dim == 0 {
            meta.dim = vectors.ncols();
        }
        if vectors.nrows() == 0 || vectors.ncols() != meta.dim {
            return Err(Error::Internal(format!(
                "bank has {} vectors of width {}, metadata says width {}",
                vectors.nrows(),
                vectors.ncols(),
                meta.dim
            )));
        }
        let parts = match meta.tiles.as_ref().and_then(|t| t.positions.as_ref()) {
            None => vec![Range { start: 0, end: vectors.nrows() }],
            Some(p) => {
                let want = p.cols as usize * p.rows as usize;
                if p.rows_per_position.len() != want || p.rows_per_position.contains(&0) || p.rows_per_position.iter().sum::<usize>() != vectors.nrows() {
                    return Err(Error::Internal(format!(
                        "per-position bank: {} positions ({}x{} expected) with {} rows in all, but {} vectors",
                        p.rows_per_position.len(),
                        p.cols,
                        p.rows,
                        p.rows_per_position.iter().sum::<usize>(),
                        vectors.nrows()
                    )));
                }
                let mut at = 0;
                p.rows_per_position.iter().map(|&n| { at += n; at - n..at }).collect()
            }
        };
        let norms = distance::row_sq_norms(vectors.view());
        Ok(Self { vectors, norms, meta, parts, roi: None, shots: None })
    }

    /// Per-patch scores of a patch-feature grid: the Euclidean distance of each patch
    /// vector to its nearest bank row, into `out`. A per-position tile bank has a bank per
    /// tile position: use [`MemoryBank::patch_scores_at`].
    pub fn patch_scores(&self, grid: &Grid, out: &mut Vec<f32>) -> Result<()> {
        if self.parts.len() != 1 {
            return Err(Error::invalid("this bank keeps one bank per tile position; score tiles with patch_scores_at"));
        }
        self.patch_scores_at(0, grid, out)
    }

    /// [`MemoryBank::patch_scores`] against part `part`: the tile position's own bank in a
    /// per-position tile bank (tile index within the image, row-major), 0 otherwise.
    pub fn patch_scores_at(&self, part: usize, grid: &Grid, out: &mut Vec<f32>) -> Result<()> {
        if grid.data.ncols() != self.meta.dim {
            return Err(Error::Internal(format!("features have width {}, the bank {}", grid.data.ncols(), self.meta.dim)));
        }
        let r = self.parts.get(part).ok_or_else(|| Error::Internal(format!("bank part {part} of {}", self.parts.len())))?;
        distance::nearest_distances(grid.data.view(), self.vectors.slice(s![r.clone(), ..]), self.norms.slice(s![r.clone()]), out)
    }

    /// Number of parts: tile positions of a per-position tile bank, else 1.
    pub fn parts(&self) -> usize {
        self.parts.len()
    }

    /// The bank rows, `[n, dim]`.
    pub fn vectors(&self) -> &Array2<f32> {
        &self.vectors
    }
    /// Squared L2 norm of each bank row, precomputed for the distance kernel.
    pub fn norms(&self) -> &Array1<f32> {
        &self.norms
    }
    /// What the bank records besides its vectors.
    pub fn meta(&self) -> &BankMeta {
        &self.meta
    }

    /// Replaces the thresholds with ones computed from a held-out set of normal images.
    /// The bank's default region of interest applies, as it does when scoring.
    pub fn calibrate_held_out(&mut self, model: &Model, images: &[ImageView<'_>], target_fpr: f32) -> Result<()> {
        self.check_model(model)?;
        self.meta.calibration = calibrate::held_out(model, self, images, target_fpr)?;
        Ok(())
    }

    /// Moves the bank's thresholds to another target false-positive rate, from the normal
    /// scores it stored when it was calibrated: nothing is re-encoded (see
    /// [`Calibration::at_fpr`]). The calibration method is kept.
    pub fn recalibrate(&mut self, target_fpr: f32) -> Result<()> {
        self.meta.calibration = self.meta.calibration.at_fpr(target_fpr)?;
        Ok(())
    }

    /// Refuses a model other than the one that built this bank.
    pub fn check_model(&self, model: &Model) -> Result<()> {
        if self.meta.fingerprint != model.fingerprint() {
            let precision = match &model.manifest().precision {
                Some(p) => format!(
                    " (the open model's encoders are {} {}: a bank built with the fp32 model, or another quantization, must be built again with it)",
                    p.weights, p.method
                ),
                None => String::new(),
            };
            return Err(Error::Mismatch(format!(
                "this bank was built by model {}…, not by the open model {}…; rebuild the bank with this model{precision}",
                &self.meta.fingerprint[..self.meta.fingerprint.len().min(12)],
                &model.fingerprint()[..12]
            )));
        }
        Ok(())
    }
}

/// Encodes the normal images (and their augmented copies) into bank feature grids, in
/// batches. Grids come back in image order, copies after their originals. `fill`: each
/// image's region of interest at its size, whose ignored pixels the encoders see as a
/// constant ([`Model::prepare_masked`]).
pub(crate) fn encode_normals(
    model: &Model,
    images: &[ImageView<'_>],
    fill: Option<&[Vec<u8>]>,
    unit: &str,
    opts: &Resolved,
    progress: ProgressFn<'_>,
) -> Result<Vec<Grid>> {
    let per_image = 1 + copies(&opts.augment).len();
    let grid = {
        let m = model.manifest();
        let s = m.hiera.strides[m.fusion.bank_scales[0] - 1];
        (m.input.height as usize / s) * (m.input.width as usize / s)
    };
    let total = images.len() * per_image * grid;
    if total > opts.max_vectors {
        return Err(Error::LimitExceeded(format!(
            "{} {unit} × {per_image} copies × {grid} patches = {total} bank vectors, above max_vectors {}",
            images.len(),
            opts.max_vectors
        )));
    }
    let mut preparer = Preparer::new();
    let mut originals = Vec::with_capacity(images.len());
    let mut extra = Vec::new();
    for (bi, chunk) in images.chunks(opts.batch_size).enumerate() {
        let at = bi * opts.batch_size;
        let batch = model.prepare_masked(&mut preparer, chunk, fill.map(|f| &f[at..at + chunk.len()]))?;
        originals.extend(model.patch_features_prepared(&batch)?);
        for aug in copies(&opts.augment) {
            extra.push(model.patch_features_prepared(&augment_batch(&batch, aug))?);
        }
        let done = (bi * opts.batch_size + chunk.len()).min(images.len());
        if !progress(Progress { phase: Phase::Encode, done, total: images.len() }) {
            return Err(Error::Cancelled);
        }
    }
    // Keep the originals first: calibration takes image i's grid at index i.
    let n_aug = copies(&opts.augment).len();
    let mut out = originals;
    let batches = images.len().div_ceil(opts.batch_size);
    for a in 0..n_aug {
        for b in 0..batches {
            out.extend(extra[b * n_aug + a].iter().cloned());
        }
    }
    Ok(out)
}

/// The rows of each feature grid that enter the bank: those of patches inside the region of
/// interest ([`crate::roi`]). `feats` holds `originals` grids, then each augmented copy's in
/// the same order ([`encode_normals`]); `cells(o)` gives original `o`'s inside cells,
/// row-major, which each copy flips or rotates as its pixels were.
pub(crate) fn inside_rows(feats: &[Grid], originals: usize, augment: &Augment, cells: impl Fn(usize) -> Vec<bool>) -> Vec<Array2<f32>> {
    let kinds = copies(augment);
    let base: Vec<Vec<bool>> = (0..originals).map(&cells).collect();
    feats
        .iter()
        .enumerate()
        .map(|(g, f)| {
            let (o, c) = (g % originals, g / originals);
            let m = ndarray::Array2::from_shape_vec((f.h, f.w), base[o].clone()).expect("cells of the grid's shape");
            let m = if c == 0 { m } else { copy_cells(m, kinds[c - 1]) };
            let idx: Vec<usize> = m.iter().enumerate().filter(|(_, &inside)| inside).map(|(i, _)| i).collect();
            f.data.select(Axis(0), &idx)
        })
        .collect()
}

/// A cell mask flipped or rotated as [`augment_batch`] moves the pixels.
fn copy_cells(m: Array2<bool>, c: Copy) -> Array2<bool> {
    match c {
        Copy::HFlip => m.slice(s![.., ..;-1]).to_owned(),
        Copy::VFlip => m.slice(s![..;-1, ..]).to_owned(),
        Copy::Rot(k) => {
            let mut r = m;
            for _ in 0..k {
                let tr = r.view().reversed_axes();
                r = tr.slice(s![..;-1, ..]).as_standard_layout().into_owned();
            }
            r
        }
    }
}

/// The geometric copies an `Augment` asks for.
fn copies(a: &Augment) -> Vec<Copy> {
    let mut v = Vec::new();
    if a.hflip {
        v.push(Copy::HFlip);
    }
    if a.vflip {
        v.push(Copy::VFlip);
    }
    if a.rot90 {
        v.extend([Copy::Rot(1), Copy::Rot(2), Copy::Rot(3)]);
    }
    v
}

#[derive(Debug, Clone, Copy)]
enum Copy {
    HFlip,
    VFlip,
    Rot(u8),
}

/// Applies a flip or rotation to prepared tensors; resizing commutes with these, so this
/// equals augmenting the pixels and preparing again, without decoding twice.
fn augment_batch(b: &PreparedBatch, c: Copy) -> PreparedBatch {
    let f = |t: &Array4<f32>| -> Array4<f32> {
        match c {
            Copy::HFlip => t.slice(ndarray::s![.., .., .., ..;-1]).to_owned(),
            Copy::VFlip => t.slice(ndarray::s![.., .., ..;-1, ..]).to_owned(),
            Copy::Rot(k) => {
                let mut r = t.clone();
                for _ in 0..k {
                    // 90° counter-clockwise: transpose then flip vertically.
                    let tr = r.view().permuted_axes([0, 1, 3, 2]);
                    r = tr.slice(ndarray::s![.., .., ..;-1, ..]).as_standard_layout().into_owned();
                }
                r
            }
        }
    };
    PreparedBatch { hiera: f(&b.hiera), dinov2: b.dinov2.as_ref().map(f) }
}

/// Cap on the cost and plan matrices of Sinkhorn K-means (2 x N x K f32), so a large `k` over
/// many vectors is refused instead of aborting the process on an allocation it cannot make.
pub const MAX_SINKHORN_BYTES: u64 = 4 << 30;

/// Turns per-image grids into the bank's vectors with the chosen scorer.
pub(crate) fn fit_vectors(per_image: &[ArrayView2<'_, f32>], opts: &Resolved, progress: ProgressFn<'_>) -> Result<(Array2<f32>, usize, bool)> {
    let all = ndarray::concatenate(Axis(0), per_image).map_err(|e| Error::Internal(format!("concatenate bank: {e}")))?;
    let n = all.nrows();
    match opts.scorer {
        ScorerKind::Full => Ok((all, 0, false)),
        ScorerKind::Coreset => {
            let m = ((n as f64 * opts.coreset_ratio as f64).ceil() as usize).clamp(1, n);
            let idx = coreset::greedy_coreset(all.view(), m, opts.seed)?;
            Ok((all.select(Axis(0), &idx), 0, false))
        }
        ScorerKind::Sinkhorn => {
            if opts.k > n {
                return Err(Error::invalid(format!("k = {} is larger than the {n} bank vectors; lower k or add images", opts.k)));
            }
            let need = 8 * n as u128 * opts.k as u128;
            if need > MAX_SINKHORN_BYTES as u128 {
                return Err(Error::LimitExceeded(format!(
                    "Sinkhorn K-means with k = {} over {n} bank vectors needs {:.1} GiB for its cost and plan matrices, above the {} GiB cap (MAX_SINKHORN_BYTES); lower k or use fewer images",
                    opts.k,
                    need as f64 / (1u64 << 30) as f64,
                    MAX_SINKHORN_BYTES >> 30
                )));
            }
            let km = sinkhorn::KMeansOptions {
                k: opts.k,
                epsilon: opts.epsilon,
                max_iters: opts.max_iters,
                tol: opts.tol,
                seed: opts.seed,
                ..Default::default()
            };
            let mut cb = |done: usize, total: usize| progress(Progress { phase: Phase::Cluster, done, total });
            let r = sinkhorn::sinkhorn_kmeans(all.view(), &km, &mut cb)?;
            Ok((r.centroids, r.iterations, r.converged))
        }
    }
}
