//! Decision thresholds from the normal images' own scores.
//!
//! Each shot is scored by a bank fitted without it (leave-one-out), which is what an unseen
//! good part looks like to the final bank. The image threshold is the (1 − FPR) quantile of
//! those image scores (with few shots: their maximum); the pixel threshold is the (1 − FPR)
//! quantile of their pixels. A held-out set of normal images can replace the shots.

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

use super::grow::Shots;
use super::{fit_vectors, MemoryBank, Resolved, Progress, ProgressFn, Phase};
use crate::error::{Error, Result};
use crate::fusion::scoring::FeatureScratch;
use crate::image::{ImageView, Preparer};
use crate::kernels::distance::{nearest_distances, row_sq_norms};
use crate::map::{map_from_patches, MapWorkspace};
use crate::model::Model;
use crate::roi::{inside_cells, inside_values, scatter_inside, Rect, Roi};

/// At most this many pixels are pooled for the pixel quantile (an even subsample beyond).
const MAX_POOLED_PIXELS: usize = 1 << 22;

/// Thresholds and the normal-score statistics they came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// `leave-one-out`, `in-sample` (a single shot: optimistic) or `held-out`.
    pub method: String,
    /// False-positive rate the thresholds aim at, in (0, 1).
    pub target_fpr: f32,
    /// An image whose score exceeds this is anomalous: the (1 − FPR) quantile of the normal image scores.
    pub image_threshold: f32,
    /// The (1 − FPR) quantile of the normal images' pixel scores.
    pub pixel_threshold: f32,
    /// Image scores of the normal images used.
    pub normal_image_scores: Vec<f32>,
    /// Mean of `normal_image_scores`.
    pub image_mean: f32,
    /// Population standard deviation of `normal_image_scores`.
    pub image_std: f32,
    /// Pixel-score quantiles of the normal images: 50 %, 90 %, 99 %, 99.9 %.
    pub pixel_quantiles: [f32; 4],
    /// The normal pixels' upper tail: `[fpr, the (1 − fpr) quantile]` for fpr = 10^(−k/20),
    /// k = 1..=100 (20 steps per decade, 0.89 down to 1e-5), so the bank can be moved to
    /// another target FPR without re-encoding anything ([`MemoryBank::recalibrate`]).
    /// Empty in banks written before it existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pixel_tail: Vec<[f32; 2]>,
}

/// The FPRs of [`Calibration::pixel_tail`].
fn tail_fprs() -> impl Iterator<Item = f32> {
    (1..=100).map(|k| 10f64.powf(-(k as f64) / 20.0) as f32)
}

impl Calibration {
    /// The thresholds for another target FPR, from the stored normal scores: the image
    /// threshold exactly as a build at that FPR would set it; the pixel threshold from
    /// [`Calibration::pixel_tail`] (exact at the tail's FPRs, e.g. 0.1, 0.01, 0.001;
    /// between them the next smaller FPR's, i.e. the stricter threshold).
    pub fn at_fpr(&self, target_fpr: f32) -> Result<Calibration> {
        if !(target_fpr > 0.0 && target_fpr < 1.0) {
            return Err(Error::invalid(format!("target_fpr {target_fpr} must be in (0, 1)")));
        }
        if self.pixel_tail.is_empty() {
            return Err(Error::invalid(
                "this bank was written before banks stored their pixel-score tail; rebuild it (or calibrate it on held-out good images) to change its target FPR",
            ));
        }
        let mut sorted = self.normal_image_scores.clone();
        sorted.sort_unstable_by(f32::total_cmp);
        let pixel = self
            .pixel_tail
            .iter()
            .find(|[f, _]| *f <= target_fpr)
            .or(self.pixel_tail.last())
            .map(|[_, v]| *v)
            .ok_or_else(|| Error::Internal("empty pixel tail".into()))?;
        Ok(Calibration {
            target_fpr,
            image_threshold: quantile_higher(&sorted, 1.0 - target_fpr as f64),
            pixel_threshold: pixel,
            ..self.clone()
        })
    }
}

/// Quantile with numpy's `method="higher"`: an observed value, never interpolated below.
fn quantile_higher(sorted: &[f32], q: f64) -> f32 {
    if sorted.is_empty() {
        return f32::NAN;
    }
    let idx = ((q * (sorted.len() - 1) as f64).ceil() as usize).min(sorted.len() - 1);
    sorted[idx]
}

pub(super) fn summarise(method: &str, target_fpr: f32, image_scores: Vec<f32>, mut pixels: Vec<f32>) -> Result<Calibration> {
    if image_scores.is_empty() || pixels.is_empty() || image_scores.iter().chain(&pixels).any(|v| !v.is_finite()) {
        return Err(Error::Internal("calibration scores are empty or not finite".into()));
    }
    let mut sorted = image_scores.clone();
    sorted.sort_unstable_by(f32::total_cmp);
    pixels.sort_unstable_by(f32::total_cmp);
    let q = 1.0 - target_fpr as f64;
    let n = image_scores.len() as f64;
    let mean = image_scores.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = image_scores.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    Ok(Calibration {
        method: method.into(),
        target_fpr,
        image_threshold: quantile_higher(&sorted, q),
        pixel_threshold: quantile_higher(&pixels, q),
        normal_image_scores: image_scores,
        image_mean: mean as f32,
        image_std: var.sqrt() as f32,
        pixel_quantiles: [0.5, 0.9, 0.99, 0.999].map(|p| quantile_higher(&pixels, p)),
        pixel_tail: tail_fprs().map(|f| [f, quantile_higher(&pixels, 1.0 - f as f64)]).collect(),
    })
}

/// Adds a map's pixels to the pool, evenly subsampled so the pool stays bounded; with a
/// region of interest (`roi`, at the map's size), only the pixels inside it.
pub(super) fn pool_pixels(pool: &mut Vec<f32>, values: &[f32], roi: Option<&[u8]>, images: usize) {
    let budget = (MAX_POOLED_PIXELS / images.max(1)).max(1);
    match roi {
        None => {
            let step = values.len().div_ceil(budget).max(1);
            pool.extend(values.iter().step_by(step));
        }
        Some(px) => {
            let inside = px.iter().filter(|&&m| m != 0).count();
            let step = inside.div_ceil(budget).max(1);
            pool.extend(inside_values(values, px).step_by(step));
        }
    }
}

/// Leave-one-out calibration over the shots (in-sample with a single shot), from the
/// shots' bank rows alone ([`Shots`]): each shot is scored by vectors fitted on the other
/// shots' blocks, its own copy-0 block matched against them. Only its inside patches are
/// matched; the map's edge rule replaces the others ([`crate::roi`]), so nothing beyond
/// the kept rows is needed, which is what lets a growable bank re-calibrate after `add`.
pub(crate) fn leave_one_out(shots: &Shots, roi: Option<&Roi>, opts: &Resolved, progress: ProgressFn<'_>) -> Result<Calibration> {
    let n = shots.shots();
    let blocks = shots.blocks();
    let (gw, gh) = shots.grid;
    let mut ws = MapWorkspace::new();
    let mut image_scores = Vec::with_capacity(n);
    let mut pixels = Vec::new();
    let method = if n == 1 { "in-sample" } else { "leave-one-out" };
    let mut full = Vec::with_capacity(gw * gh);
    for i in 0..n {
        let others: Vec<ArrayView2<f32>> = blocks.iter().enumerate().filter(|(j, _)| n == 1 || j % n != i).map(|(_, g)| g.view()).collect();
        let mut opts_i = opts.clone();
        let rows: usize = others.iter().map(|a| a.nrows()).sum();
        opts_i.k = opts_i.k.min(rows);
        // Clustering progress inside calibration is not reported, only cancellation honoured.
        let mut quiet = |_: Progress| true;
        let (vectors, _, _) = fit_vectors(&others, &opts_i, &mut quiet)?;
        // The held-out shot against the vectors fitted without it (no bank needed).
        let mut patch = Vec::new();
        nearest_distances(blocks[i].view(), vectors.view(), row_sq_norms(vectors.view()).view(), &mut patch)?;
        let [w, h] = shots.sizes[i];
        let px = roi.map(|r| r.at_size(w, h));
        full.clear();
        match &px {
            None => full.extend_from_slice(&patch),
            Some(px) => scatter_inside(&patch, &inside_cells(px, w, Rect { x: 0, y: 0, width: w, height: h }, gw, gh), &mut full)?,
        }
        let map = map_from_patches(&full, gw, gh, w, h, opts.sigma, opts.image_score, px.as_deref(), &mut ws)?;
        image_scores.push(map.image_score);
        pool_pixels(&mut pixels, &map.values, px.as_deref(), n);
        if !progress(Progress { phase: Phase::Calibrate, done: i + 1, total: n }) {
            return Err(Error::Cancelled);
        }
    }
    summarise(method, opts.target_fpr, image_scores, pixels)
}

/// Calibration on held-out normal images scored by the finished bank.
pub(crate) fn held_out(model: &Model, bank: &MemoryBank, images: &[ImageView<'_>], target_fpr: f32) -> Result<Calibration> {
    if images.is_empty() {
        return Err(Error::invalid("held-out calibration needs at least one normal image"));
    }
    if !(target_fpr > 0.0 && target_fpr < 1.0) {
        return Err(Error::invalid(format!("target_fpr {target_fpr} must be in (0, 1)")));
    }
    bank.check_model(model)?;
    let meta = bank.meta();
    let (mut prep, mut scratch, mut ws) = (Preparer::new(), FeatureScratch::default(), MapWorkspace::new());
    let mut image_scores = Vec::new();
    let mut pixels = Vec::new();
    let mut patch = Vec::new();
    for img in images {
        let px = bank.roi().map(|r| r.at_size(img.width(), img.height()));
        let map = if let Some(tm) = &meta.tiles {
            let mut out =
                super::tiles::tiled_maps(model, bank, tm, std::slice::from_ref(img), bank.roi(), &mut prep, &mut scratch, &mut ws, &mut patch)?;
            out.maps.pop().ok_or_else(|| Error::Internal("no map for a held-out image".into()))?
        } else {
            let fill = px.as_ref().map(|p| vec![p.clone()]);
            let (grids, _) = model.patch_features_masked(&mut prep, &mut scratch, std::slice::from_ref(img), fill.as_deref())?;
            let grid = &grids[0];
            bank.patch_scores(grid, &mut patch)?;
            map_from_patches(&patch, grid.w, grid.h, img.width(), img.height(), meta.sigma, meta.image_score, px.as_deref(), &mut ws)?
        };
        image_scores.push(map.image_score);
        pool_pixels(&mut pixels, &map.values, px.as_deref(), images.len());
    }
    summarise("held-out", target_fpr, image_scores, pixels)
}
