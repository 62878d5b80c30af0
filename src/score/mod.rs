//! Turning patch features into an anomaly map: nearest-bank distance per patch, bilinear
//! upsampling to the input image's own size, Gaussian smoothing, image score.

pub mod features;
pub mod kernels;

use std::time::Instant;

use serde::Serialize;

pub use kernels::{apply_separable, gaussian_blur, upsample_bilinear, AxisOp};

use crate::bank::{distance, ImageScoreMode, MemoryBank};
use crate::error::{Error, Result};
use crate::fusion::Grid;
use crate::image::{ImageView, Preparer};
use crate::model::Model;

/// A per-pixel anomaly map at the scored image's own size, row-major.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnomalyMap {
    pub width: u32,
    pub height: u32,
    pub values: Vec<f32>,
    /// Max of the map, or the top-fraction mean, as the bank says.
    pub image_score: f32,
}

/// Seconds spent per stage for one image (batch stages are split evenly over the batch).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StageTimings {
    pub prepare_s: f64,
    pub hiera_s: f64,
    pub dinov2_s: f64,
    pub head_s: f64,
    pub matching_s: f64,
    pub upsample_smooth_s: f64,
}

/// One scored image: its map, and the decision against the bank's thresholds.
#[derive(Debug, Clone, Serialize)]
pub struct ScoreResult {
    pub map: AnomalyMap,
    pub image_threshold: f32,
    pub pixel_threshold: f32,
    /// `image_score > image_threshold`.
    pub is_anomalous: bool,
    pub timings: StageTimings,
}

/// Reusable buffers for the post-encoder work, so scoring a stream of images allocates
/// only the output map. One per thread.
#[derive(Default)]
pub struct Workspace {
    patch: Vec<f32>,
    scratch: Vec<f32>,
    select: Vec<f32>,
    preparer: Preparer,
    features: features::FeatureScratch,
    /// Upsample+blur operators of the last map size (a stream of same-size images reuses them).
    op_x: AxisOp,
    op_y: AxisOp,
}

impl Workspace {
    pub fn new() -> Self {
        Self::default()
    }
}

/// Per-patch scores: the Euclidean distance of each patch vector to its nearest bank row.
pub fn patch_scores(bank: &MemoryBank, grid: &Grid, out: &mut Vec<f32>) -> Result<()> {
    if grid.data.ncols() != bank.meta().dim {
        return Err(Error::Mismatch(format!(
            "features have width {}, the bank {}",
            grid.data.ncols(),
            bank.meta().dim
        )));
    }
    out.resize(grid.data.nrows(), 0.0);
    distance::min_sq_distances(grid.data.view(), bank.vectors().view(), bank.norms().view(), out)?;
    for v in out.iter_mut() {
        *v = v.sqrt();
    }
    Ok(())
}

/// Upsamples a patch-score grid to `width`×`height`, smooths it with σ, and draws the
/// image score.
pub fn map_from_patches(
    patch: &[f32],
    grid_w: usize,
    grid_h: usize,
    width: u32,
    height: u32,
    sigma: f32,
    mode: ImageScoreMode,
    ws: &mut Workspace,
) -> Result<AnomalyMap> {
    if patch.len() != grid_w * grid_h || patch.is_empty() {
        return Err(Error::Internal(format!("patch grid {grid_w}x{grid_h} holds {} values", patch.len())));
    }
    if !(sigma.is_finite() && sigma >= 0.0) {
        return Err(Error::invalid(format!("sigma {sigma} must be finite and >= 0")));
    }
    let (w, h) = (width as usize, height as usize);
    let mut values = vec![0.0f32; w * h];
    let max = if fused_ops(ws, grid_w, grid_h, w, h, sigma) {
        apply_separable(patch, grid_w, grid_h, &ws.op_x, &ws.op_y, &mut ws.scratch, &mut values)
    } else {
        upsample_bilinear(patch, grid_w, grid_h, &mut values, w, h);
        if sigma > 0.0 {
            gaussian_blur(&mut values, w, h, sigma, &mut ws.scratch);
        }
        kernels::max_f32(&values)
    };
    let image_score = match mode {
        ImageScoreMode::Max => max,
        _ => image_score(&values, mode, &mut ws.select),
    };
    Ok(AnomalyMap { width, height, values, image_score })
}

/// Makes sure `ws` holds the fused upsample+blur operators for this size and σ; false
/// when they would be too large (then the two-step kernels run instead).
fn fused_ops(ws: &mut Workspace, gw: usize, gh: usize, w: usize, h: usize, sigma: f32) -> bool {
    for (op, n_dst, n_src) in [(&mut ws.op_x, w, gw), (&mut ws.op_y, h, gh)] {
        if !op.is_for(n_dst, n_src, sigma) {
            match AxisOp::upsample_blur(n_dst, n_src, sigma) {
                Some(o) => *op = o,
                None => {
                    *op = AxisOp::default();
                    return false;
                }
            }
        }
    }
    true
}

/// The image score of a map.
pub fn image_score(values: &[f32], mode: ImageScoreMode, select: &mut Vec<f32>) -> f32 {
    match mode {
        ImageScoreMode::Max => kernels::max_f32(values),
        ImageScoreMode::TopMean { fraction } => {
            let k = ((values.len() as f64 * fraction as f64).ceil() as usize).clamp(1, values.len());
            select.clear();
            select.extend_from_slice(values);
            let idx = values.len() - k;
            select.select_nth_unstable_by(idx, f32::total_cmp);
            // Summed in a fixed order (sorted) so the score does not depend on the selection's layout.
            let top = &mut select[idx..];
            top.sort_unstable_by(f32::total_cmp);
            (top.iter().map(|&v| v as f64).sum::<f64>() / k as f64) as f32
        }
    }
}

/// Scores a batch of images with a bank. The bank must come from this model.
pub fn score_batch(model: &Model, bank: &MemoryBank, images: &[ImageView<'_>], ws: &mut Workspace) -> Result<Vec<ScoreResult>> {
    bank.check_model(model)?;
    if images.is_empty() {
        return Err(Error::invalid("no images to score"));
    }
    let (grids, ft) = model.bank_features_with(&mut ws.preparer, &mut ws.features, images)?;
    let n = images.len() as f64;
    let meta = bank.meta();
    let cal = &meta.calibration;
    let mut out = Vec::with_capacity(images.len());
    for (img, grid) in images.iter().zip(&grids) {
        if (grid.h, grid.w) != (meta.grid_h, meta.grid_w) {
            return Err(Error::Mismatch(format!(
                "feature grid {}x{} differs from the bank's {}x{}",
                grid.w, grid.h, meta.grid_w, meta.grid_h
            )));
        }
        let t0 = Instant::now();
        let mut patch = std::mem::take(&mut ws.patch);
        patch_scores(bank, grid, &mut patch)?;
        let t1 = Instant::now();
        let map = map_from_patches(&patch, grid.w, grid.h, img.width(), img.height(), meta.sigma, meta.image_score, ws)?;
        ws.patch = patch;
        let t2 = Instant::now();
        out.push(ScoreResult {
            is_anomalous: map.image_score > cal.image_threshold,
            image_threshold: cal.image_threshold,
            pixel_threshold: cal.pixel_threshold,
            map,
            timings: StageTimings {
                prepare_s: ft.prepare_s / n,
                hiera_s: ft.hiera_s / n,
                dinov2_s: ft.dinov2_s / n,
                head_s: ft.head_s / n,
                matching_s: (t1 - t0).as_secs_f64(),
                upsample_smooth_s: (t2 - t1).as_secs_f64(),
            },
        });
    }
    for g in grids {
        ws.features.recycle(g);
    }
    Ok(out)
}

/// Scores one image.
pub fn score(model: &Model, bank: &MemoryBank, image: &ImageView<'_>, ws: &mut Workspace) -> Result<ScoreResult> {
    let mut v = score_batch(model, bank, std::slice::from_ref(image), ws)?;
    v.pop().ok_or_else(|| Error::Internal("empty score batch".into()))
}
