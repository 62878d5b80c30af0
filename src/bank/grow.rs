//! Banks that grow: adding good images to a bank, and merging two banks.
//!
//! A whole-image bank is fitted and calibrated from its *shots*: the bank rows of each normal
//! image and each of its augmented copies (the patches inside the region of interest), in
//! blocks ordered copy by copy, image by image ([`Shots`]). Building, adding and merging all
//! go through that one record: a build encodes the images into it; `add` encodes the new
//! images and appends their blocks after the old ones, copy by copy; `merge` interleaves two
//! records the same way. Then the same fit (full, coreset or Sinkhorn K-means, with the
//! same seed) and the same leave-one-out calibration run on the result. A bank grown from 4
//! to 8 images is therefore the bank built from the 8 at once, bit for bit, whatever the
//! scorer: nothing is approximated.
//!
//! The price is storage: a *growable* bank ([`BankOptions::growable`]) keeps its shots in
//! the bank file (tensor `shots`, `[rows, dim]` f32; for the full scorer the vectors are the
//! shots and nothing extra is stored), so a Sinkhorn bank of 8 shots at 224 px grows from
//! tens of kilobytes to about 12 MB. The rows are capped like every bank by
//! [`BankOptions::max_vectors`]. Banks built without `growable` stay small and refuse `add`
//! and `merge` with a message saying so. Tiled banks cannot grow yet.

use ndarray::{s, Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use super::{calibrate, copies, encode_normals, fit_vectors, inside_rows, BankMeta, BankOptions, MemoryBank, ProgressFn};
use crate::error::{Error, Result};
use crate::image::ImageView;
use crate::model::Model;
use crate::roi::{inside_cells, Rect};

/// The shots of a whole-image bank: every block of bank rows, copy by copy and image by
/// image, with each image's size (the module doc).
#[derive(Debug, Clone)]
pub(crate) struct Shots {
    /// All blocks' rows, concatenated in block order.
    pub rows: Array2<f32>,
    /// Rows of each block: `copies × shots` entries, `[copy][shot]`.
    pub block_rows: Vec<usize>,
    /// Blocks per image: the image and its augmented copies.
    pub copies: usize,
    /// Width and height of each shot, for the calibration maps.
    pub sizes: Vec<[u32; 2]>,
    /// The feature grid every shot was encoded to, `(w, h)`.
    pub grid: (usize, usize),
}

/// What a growable bank records besides its shots' rows: enough to fit and calibrate again
/// exactly as the build did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Growth {
    /// Width and height of each shot.
    pub sizes: Vec<[u32; 2]>,
    /// Rows of each block, `[copy][shot]`.
    pub block_rows: Vec<usize>,
    /// Sinkhorn's entropic regulariser, relative to the mean cost.
    pub epsilon: f32,
    /// K-means iteration cap.
    pub max_iters: usize,
    /// K-means relative centroid-shift tolerance.
    pub tol: f32,
    /// Share of vectors the coreset scorer keeps.
    pub coreset_ratio: f32,
}

impl Shots {
    /// Number of shots (images).
    pub fn shots(&self) -> usize {
        self.sizes.len()
    }

    /// Each block's rows, in block order.
    pub fn blocks(&self) -> Vec<ArrayView2<'_, f32>> {
        let mut at = 0;
        self.block_rows
            .iter()
            .map(|&n| {
                at += n;
                self.rows.slice(s![at - n..at, ..])
            })
            .collect()
    }

    /// Encodes `images` (opts resolved, whole-image) into shots: each image and its copies,
    /// with the region of interest's ignored area filled before encoding and only the
    /// patches inside it kept ([`crate::roi`]).
    pub fn encode(model: &Model, images: &[ImageView<'_>], opts: &BankOptions, progress: ProgressFn<'_>) -> Result<Self> {
        let roi_px: Option<Vec<Vec<u8>>> = opts.roi.as_ref().map(|r| images.iter().map(|im| r.at_size(im.width(), im.height())).collect());
        let grids = encode_normals(model, images, roi_px.as_deref(), "images", opts, progress)?;
        let n = images.len();
        let grid = (grids[0].w, grids[0].h);
        let kept = roi_px.as_ref().map(|px| {
            inside_rows(&grids, n, &opts.augment, |i| {
                let (w, h) = (images[i].width(), images[i].height());
                inside_cells(&px[i], w, Rect { x: 0, y: 0, width: w, height: h }, grid.0, grid.1)
            })
        });
        let views: Vec<ArrayView2<f32>> = match &kept {
            Some(k) => k.iter().map(|a| a.view()).collect(),
            None => grids.iter().map(|g| g.data.view()).collect(),
        };
        if views.iter().all(|r| r.nrows() == 0) {
            return Err(Error::invalid("the region of interest covers no patch of the images; widen it"));
        }
        let rows = ndarray::concatenate(Axis(0), &views).map_err(|e| Error::Internal(format!("concatenate shots: {e}")))?;
        Ok(Self {
            rows,
            block_rows: views.iter().map(|v| v.nrows()).collect(),
            copies: 1 + copies(&opts.augment).len(),
            sizes: images.iter().map(|im| [im.width(), im.height()]).collect(),
            grid,
        })
    }

    /// `self`'s shots followed by `other`'s, block order kept: copy by copy, this record's
    /// images, then the other's (exactly the blocks of encoding all images at once).
    pub fn append(&self, other: &Shots) -> Result<Self> {
        if self.copies != other.copies || self.grid != other.grid || self.rows.ncols() != other.rows.ncols() {
            return Err(Error::Internal("appending shots of another layout".into()));
        }
        let (a, b) = (self.blocks(), other.blocks());
        let (na, nb) = (self.shots(), other.shots());
        let mut views = Vec::with_capacity(a.len() + b.len());
        for c in 0..self.copies {
            views.extend_from_slice(&a[c * na..(c + 1) * na]);
            views.extend_from_slice(&b[c * nb..(c + 1) * nb]);
        }
        let rows = ndarray::concatenate(Axis(0), &views).map_err(|e| Error::Internal(format!("concatenate shots: {e}")))?;
        Ok(Self {
            rows,
            block_rows: views.iter().map(|v| v.nrows()).collect(),
            copies: self.copies,
            sizes: self.sizes.iter().chain(&other.sizes).copied().collect(),
            grid: self.grid,
        })
    }
}

/// Fits and calibrates a whole-image bank from its shots (opts resolved). The one path of
/// `build`, `add` and `merge`.
pub(crate) fn from_shots(model: &Model, shots: Shots, opts: &BankOptions, progress: ProgressFn<'_>) -> Result<MemoryBank> {
    if shots.rows.nrows() > opts.max_vectors {
        return Err(Error::LimitExceeded(format!(
            "{} images make {} bank rows, above max_vectors {}",
            shots.shots(),
            shots.rows.nrows(),
            opts.max_vectors
        )));
    }
    let (vectors, iterations, converged) = fit_vectors(&shots.blocks(), opts, progress)?;
    let calibration = calibrate::leave_one_out(&shots, opts.roi.as_ref(), opts, progress)?;
    let grid = crate::fusion::Grid { h: shots.grid.1, w: shots.grid.0, data: Array2::zeros((0, vectors.ncols())) };
    let mut meta = BankMeta::fitted(model, opts, &grid, &vectors, shots.shots(), (iterations, converged), calibration);
    let mut kept = None;
    if opts.growable {
        meta.growth = Some(Growth {
            sizes: shots.sizes.clone(),
            block_rows: shots.block_rows.clone(),
            epsilon: opts.epsilon,
            max_iters: opts.max_iters,
            tol: opts.tol,
            coreset_ratio: opts.coreset_ratio,
        });
        // The full scorer's vectors are its shots: nothing more to keep.
        if opts.scorer != super::ScorerKind::Full {
            kept = Some(shots.rows);
        }
    }
    MemoryBank::from_parts(vectors, meta)?.with_roi(opts.roi.clone())?.with_shots(kept)
}

impl MemoryBank {
    /// The options this bank was built with, as far as fitting and calibration need them;
    /// `None` unless it is growable.
    fn growth_options(&self) -> Option<BankOptions> {
        let m = self.meta();
        let g = m.growth.as_ref()?;
        Some(BankOptions {
            scorer: m.scorer,
            k: m.k,
            epsilon: g.epsilon,
            max_iters: g.max_iters,
            tol: g.tol,
            coreset_ratio: g.coreset_ratio,
            sigma: m.sigma,
            image_score: m.image_score,
            augment: m.augment,
            target_fpr: m.calibration.target_fpr,
            seed: m.seed,
            roi: self.roi().cloned(),
            growable: true,
            ..BankOptions::default()
        })
    }

    /// This bank's shots, if it kept them.
    fn shots_record(&self) -> Option<Shots> {
        let g = self.meta().growth.as_ref()?;
        let rows = match self.kept_shots() {
            Some(r) => r.clone(),
            None => self.vectors().clone(),
        };
        let copies = 1 + copies(&self.meta().augment).len();
        Some(Shots { rows, block_rows: g.block_rows.clone(), copies, sizes: g.sizes.clone(), grid: (self.meta().grid_w, self.meta().grid_h) })
    }

    fn require_growable(&self, what: &str) -> Result<(BankOptions, Shots)> {
        if self.meta().tiles.is_some() {
            return Err(Error::invalid(format!("{what}: tiled banks cannot grow yet; build the bank again from all the images")));
        }
        match (self.growth_options(), self.shots_record()) {
            (Some(o), Some(s)) => Ok((o, s)),
            _ => Err(Error::invalid(format!(
                "{what}: this bank was built without `growable`, so it did not keep its shots' features; build it again with growable (fit --growable) to add images later"
            ))),
        }
    }

    /// A new bank: this one with more good images, fitted and calibrated again (leave-one-out
    /// over all shots) as if built from all of them at once, which it equals bit for bit
    /// (see the module doc). The bank must be growable and come from `model`; the new images
    /// get the bank's augmentation and region of interest. `self` is unchanged.
    pub fn add(&self, model: &Model, images: &[ImageView<'_>], progress: ProgressFn<'_>) -> Result<MemoryBank> {
        self.check_model(model)?;
        let (opts, old) = self.require_growable("adding images")?;
        if images.is_empty() {
            return Err(Error::invalid("adding images: no images given"));
        }
        let opts = opts.resolved(model)?;
        let new = Shots::encode(model, images, &opts, progress)?;
        if new.grid != old.grid || new.rows.ncols() != old.rows.ncols() {
            return Err(Error::Internal(format!("new shots on a {:?} grid of width {}, the bank's {:?} of {}", new.grid, new.rows.ncols(), old.grid, old.rows.ncols())));
        }
        from_shots(model, old.append(&new)?, &opts, progress)
    }

    /// A new bank from this bank's shots followed by `other`'s, fitted and calibrated again:
    /// bit for bit the bank built from both banks' images at once (this one's first). Both
    /// must be growable and agree on the model and on every setting that shapes a bank
    /// (scorer, k, σ, image score, augmentation, seed, target FPR, fitting parameters, region
    /// of interest); the first one that differs is named.
    pub fn merge(&self, model: &Model, other: &MemoryBank, progress: ProgressFn<'_>) -> Result<MemoryBank> {
        self.check_model(model)?;
        if other.meta().fingerprint != self.meta().fingerprint {
            return Err(Error::Mismatch(format!(
                "merging banks of different models ({}… and {}…); build both with the same model",
                &self.meta().fingerprint[..12],
                &other.meta().fingerprint[..12.min(other.meta().fingerprint.len())]
            )));
        }
        let (a_opts, a) = self.require_growable("merging (first bank)")?;
        let (b_opts, b) = other.require_growable("merging (second bank)")?;
        let (ma, mb) = (self.meta(), other.meta());
        let differs: [(&str, bool); 11] = [
            ("scorer", ma.scorer != mb.scorer),
            ("k", ma.k != mb.k),
            ("sigma", ma.sigma != mb.sigma),
            ("image score", ma.image_score != mb.image_score),
            ("augmentation", ma.augment != mb.augment),
            ("seed", ma.seed != mb.seed),
            ("target FPR", a_opts.target_fpr != b_opts.target_fpr),
            ("Sinkhorn/coreset parameters", (a_opts.epsilon, a_opts.max_iters, a_opts.tol, a_opts.coreset_ratio) != (b_opts.epsilon, b_opts.max_iters, b_opts.tol, b_opts.coreset_ratio)),
            ("region of interest", self.roi() != other.roi()),
            ("feature grid", (ma.grid_w, ma.grid_h, ma.dim) != (mb.grid_w, mb.grid_h, mb.dim)),
            ("tiling", ma.tiles != mb.tiles),
        ];
        if let Some((name, _)) = differs.iter().find(|(_, d)| *d) {
            return Err(Error::Mismatch(format!("merging banks built with different {name}; only banks built with the same settings merge")));
        }
        let opts = a_opts.resolved(model)?;
        from_shots(model, a.append(&b)?, &opts, progress)
    }
}

/// Checks a stored growth record against the bank it came with.
pub(crate) fn check_growth(g: &Growth, augment: &super::Augment, shots_rows: usize) -> std::result::Result<(), String> {
    let copies = 1 + copies(augment).len();
    if g.block_rows.len() != copies * g.sizes.len() || g.sizes.is_empty() {
        return Err(format!("growth record: {} blocks for {} shots of {copies} copies", g.block_rows.len(), g.sizes.len()));
    }
    if g.block_rows.iter().sum::<usize>() != shots_rows {
        return Err(format!("growth record: blocks of {} rows in all, but {shots_rows} shot rows", g.block_rows.iter().sum::<usize>()));
    }
    if g.sizes.iter().any(|[w, h]| *w == 0 || *h == 0) {
        return Err("growth record: a shot of size 0".into());
    }
    Ok(())
}
