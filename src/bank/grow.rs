//! Banks that grow: adding good images to a bank, and merging two banks.
//!
//! A bank is fitted and calibrated from its *shots*: the bank rows of each normal image (of
//! each of its tiles, for a tiled bank) and of each augmented copy, only the patches inside
//! the region of interest, one block per feature grid, ordered copy by copy, image by image,
//! tile by tile ([`Shots`]). Building, adding and merging all
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
//! and `merge` with a message saying so. Tiled banks grow the same way (their tiling, and
//! for a per-position bank its one image size, must match).

use ndarray::{s, Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use super::{calibrate, copies, encode_normals, fit_vectors, inside_rows, BankMeta, BankOptions, MemoryBank, ProgressFn, Resolved};
use crate::error::{Error, Result};
use crate::image::ImageView;
use crate::model::Model;
use crate::roi::{inside_cells, Rect};

/// The shots of a bank: every feature grid's kept rows, copy by copy, image by image, tile by
/// tile, with each image's size (the module doc).
#[derive(Debug, Clone)]
pub(crate) struct Shots {
    /// All grids' kept rows, concatenated in grid order.
    pub rows: Array2<f32>,
    /// Kept rows of each grid: `copies × Σ tiles` entries, `[copy][image][tile]`.
    pub grid_rows: Vec<usize>,
    /// Grids per tile: the original and its augmented copies.
    pub copies: usize,
    /// Width and height of each image, for the calibration maps (and its tiles).
    pub sizes: Vec<[u32; 2]>,
    /// Tiles of each image (1 for a whole-image bank).
    pub tiles: Vec<usize>,
    /// The feature grid every tile or image was encoded to, `(w, h)`.
    pub grid: (usize, usize),
}

/// What a growable bank records besides its shots' rows: enough to fit and calibrate again
/// exactly as the build did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Growth {
    /// Width and height of each shot.
    pub sizes: Vec<[u32; 2]>,
    /// Kept rows of each feature grid, `[copy][image][tile]`.
    pub grid_rows: Vec<usize>,
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
    /// Shots from the kept rows of each grid, in grid order.
    pub fn new(rows: &[ArrayView2<'_, f32>], copies: usize, sizes: Vec<[u32; 2]>, tiles: Vec<usize>, grid: (usize, usize)) -> Result<Self> {
        if rows.iter().all(|r| r.nrows() == 0) {
            return Err(Error::invalid("the region of interest covers no patch of the images; widen it"));
        }
        let all = ndarray::concatenate(Axis(0), rows).map_err(|e| Error::Internal(format!("concatenate shots: {e}")))?;
        Ok(Self { rows: all, grid_rows: rows.iter().map(|v| v.nrows()).collect(), copies, sizes, tiles, grid })
    }

    /// Number of shots (images).
    pub fn shots(&self) -> usize {
        self.sizes.len()
    }

    /// Grids per copy: the tiles of all images.
    fn per_copy(&self) -> usize {
        self.tiles.iter().sum()
    }

    /// Each grid's kept rows, in grid order.
    pub fn blocks(&self) -> Vec<ArrayView2<'_, f32>> {
        let mut at = 0;
        self.grid_rows
            .iter()
            .map(|&n| {
                at += n;
                self.rows.slice(s![at - n..at, ..])
            })
            .collect()
    }

    /// Encodes `images` (opts resolved) into shots: each image (or each of its tiles) and
    /// its copies, with the region of interest's ignored area filled before encoding and
    /// only the patches inside it kept ([`crate::roi`]).
    pub fn encode(model: &Model, images: &[ImageView<'_>], opts: &Resolved, progress: ProgressFn<'_>) -> Result<Self> {
        if let Some(tiling) = &opts.tiling {
            return super::tiles::encode_shots(model, images, opts, tiling, progress);
        }
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
        Self::new(&views, 1 + copies(&opts.augment).len(), images.iter().map(|im| [im.width(), im.height()]).collect(), vec![1; n], grid)
    }

    /// `self`'s shots followed by `other`'s, grid order kept: copy by copy, this record's
    /// images, then the other's (exactly the grids of encoding all images at once).
    pub fn append(&self, other: &Shots) -> Result<Self> {
        if self.copies != other.copies || self.grid != other.grid || self.rows.ncols() != other.rows.ncols() {
            return Err(Error::Internal("appending shots of another layout".into()));
        }
        let (a, b) = (self.blocks(), other.blocks());
        let (na, nb) = (self.per_copy(), other.per_copy());
        let mut views = Vec::with_capacity(a.len() + b.len());
        for c in 0..self.copies {
            views.extend_from_slice(&a[c * na..(c + 1) * na]);
            views.extend_from_slice(&b[c * nb..(c + 1) * nb]);
        }
        let sizes = self.sizes.iter().chain(&other.sizes).copied().collect();
        let tiles = self.tiles.iter().chain(&other.tiles).copied().collect();
        Self::new(&views, self.copies, sizes, tiles, self.grid)
    }
}

/// Fits and calibrates a bank from its shots (opts resolved): the one path of `build`,
/// `add` and `merge`, whole-image or tiled.
pub(crate) fn from_shots(model: &Model, shots: Shots, opts: &Resolved, progress: ProgressFn<'_>) -> Result<MemoryBank> {
    if shots.rows.nrows() > opts.max_vectors {
        return Err(Error::LimitExceeded(format!(
            "{} images make {} bank rows, above max_vectors {}",
            shots.shots(),
            shots.rows.nrows(),
            opts.max_vectors
        )));
    }
    let (vectors, mut meta) = match &opts.tiling {
        Some(tiling) => super::tiles::fit_shots(model, &shots, opts, tiling, progress)?,
        None => {
            let (vectors, iterations, converged) = fit_vectors(&shots.blocks(), opts, progress)?;
            let calibration = calibrate::leave_one_out(&shots, opts.roi.as_ref(), opts, progress)?;
            let grid = crate::fusion::Grid { h: shots.grid.1, w: shots.grid.0, data: Array2::zeros((0, vectors.ncols())) };
            let meta = BankMeta::fitted(model, opts, &grid, &vectors, shots.shots(), (iterations, converged), calibration);
            (vectors, meta)
        }
    };
    let mut kept = None;
    if opts.growable {
        meta.growth = Some(Growth {
            sizes: shots.sizes.clone(),
            grid_rows: shots.grid_rows.clone(),
            epsilon: opts.epsilon,
            max_iters: opts.max_iters,
            tol: opts.tol,
            coreset_ratio: opts.coreset_ratio,
        });
        // The full scorer's vectors are its shots (a shared or whole-image bank's, in order;
        // a per-position bank regroups them by position, so it keeps them apart).
        let per_position = meta.tiles.as_ref().is_some_and(|t| t.positions.is_some());
        if opts.scorer != super::ScorerKind::Full || per_position {
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
            k: Some(m.k),
            epsilon: g.epsilon,
            max_iters: g.max_iters,
            tol: g.tol,
            coreset_ratio: g.coreset_ratio,
            sigma: Some(m.sigma),
            image_score: m.image_score,
            augment: m.augment,
            target_fpr: Some(m.calibration.target_fpr),
            seed: m.seed,
            roi: self.roi().cloned(),
            tiling: m.tiles.as_ref().map(|t| t.tiling),
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
        let tiles = shot_tiles(self.meta(), &g.sizes).ok()?;
        Some(Shots { rows, grid_rows: g.grid_rows.clone(), copies, sizes: g.sizes.clone(), tiles, grid: (self.meta().grid_w, self.meta().grid_h) })
    }

    fn require_growable(&self, what: &str) -> Result<(BankOptions, Shots)> {
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
        if let Some(p) = self.meta().tiles.as_ref().and_then(|t| t.positions.as_ref()) {
            if let Some((i, [w, h])) = new.sizes.iter().enumerate().find(|(_, s)| **s != [p.image_width, p.image_height]) {
                return Err(Error::invalid(format!(
                    "adding images: this bank keeps one bank per tile position of {}x{} images; images[{i}] is {w}x{h}",
                    p.image_width, p.image_height
                )));
            }
        }
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
            ("tiling", tiling_key(ma) != tiling_key(mb)),
        ];
        if let Some((name, _)) = differs.iter().find(|(_, d)| *d) {
            return Err(Error::Mismatch(format!("merging banks built with different {name}; only banks built with the same settings merge")));
        }
        let opts = a_opts.resolved(model)?;
        from_shots(model, a.append(&b)?, &opts, progress)
    }
}

/// The tiling, tile width and height, and a per-position bank's image size.
type TilingKey = (crate::tiling::Tiling, u32, u32, Option<(u32, u32)>);

/// What must match for two banks' tiles to merge: the tiling, the tile size, and for a
/// per-position bank its one image size (not its rows per position, which grow).
fn tiling_key(m: &BankMeta) -> Option<TilingKey> {
    m.tiles.as_ref().map(|t| (t.tiling, t.tile_w, t.tile_h, t.positions.as_ref().map(|p| (p.image_width, p.image_height))))
}

/// Tiles of each shot of a bank: 1 for a whole-image bank.
fn shot_tiles(m: &BankMeta, sizes: &[[u32; 2]]) -> Result<Vec<usize>> {
    match &m.tiles {
        None => Ok(vec![1; sizes.len()]),
        Some(t) => sizes.iter().map(|&[w, h]| t.grid(w, h).map(|g| g.len())).collect(),
    }
}

/// Checks a stored growth record against the bank it came with.
pub(crate) fn check_growth(m: &BankMeta, shots_rows: usize) -> std::result::Result<(), String> {
    let g = m.growth.as_ref().ok_or("no growth record")?;
    if g.sizes.is_empty() || g.sizes.iter().any(|[w, h]| *w == 0 || *h == 0) {
        return Err("growth record: no shots, or a shot of size 0".into());
    }
    let tiles: usize = shot_tiles(m, &g.sizes).map_err(|e| format!("growth record: {e}"))?.iter().sum();
    let copies = 1 + copies(&m.augment).len();
    if g.grid_rows.len() != copies * tiles {
        return Err(format!("growth record: {} grids for {} shots of {tiles} tiles in all and {copies} copies", g.grid_rows.len(), g.sizes.len()));
    }
    if g.grid_rows.iter().sum::<usize>() != shots_rows {
        return Err(format!("growth record: grids of {} rows in all, but {shots_rows} shot rows", g.grid_rows.iter().sum::<usize>()));
    }
    Ok(())
}
