//! From patch scores to an anomaly map: bilinear upsampling of the patch grid to the scored
//! image's own size, Gaussian smoothing with σ in image pixels, and the image score (the
//! map's maximum, or the mean of its top fraction). Shared by scoring, calibration and the
//! decoder scorer, so all three draw maps and image scores the same way. With a region of
//! interest, the map follows the edge rule of [`crate::roi`]: wholly-outside patches take
//! the inside median before smoothing, pixels outside are 0 after, and the image score
//! comes from the inside.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::kernels::upsample::{apply_separable, gaussian_blur, max_f32, upsample_bilinear, AxisOp};
use crate::roi::{inside_cells, inside_values, Rect};
use crate::tiling::TileGrid;

/// A per-pixel anomaly map at the scored image's own size, row-major.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnomalyMap {
    /// Width in pixels, the scored image's.
    pub width: u32,
    /// Height in pixels, the scored image's.
    pub height: u32,
    /// `width × height` smoothed anomaly values, row-major; larger means more anomalous.
    pub values: Vec<f32>,
    /// Max of the map, or the top-fraction mean, as the bank says.
    pub image_score: f32,
}

/// How the image score is drawn from its anomaly map.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum ImageScoreMode {
    /// The map's maximum (the method's choice).
    Max,
    /// Mean of the top `fraction` of map values (0 < fraction ≤ 1); steadier on noisy maps.
    TopMean {
        /// Share of the map's values averaged, in (0, 1].
        fraction: f32,
    },
}

/// Reusable buffers for drawing maps: the blur scratch, the top-mean selection buffer and
/// the fused upsample+blur operators of the last map size (a stream of same-size images
/// reuses them). One per thread.
#[derive(Debug, Default)]
pub struct MapWorkspace {
    scratch: Vec<f32>,
    select: Vec<f32>,
    op_x: AxisOp,
    op_y: AxisOp,
    stitched: Vec<f32>,
    filled: Vec<f32>,
}

impl MapWorkspace {
    /// An empty workspace; buffers grow on first use.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Upsamples a patch-score grid to `width`×`height`, smooths it with σ, and draws the
/// image score. `roi`: the region of interest at the image's size (one byte per pixel,
/// non-zero = inspect, as [`crate::roi::Roi::at_size`] gives), or `None` for everywhere.
#[allow(clippy::too_many_arguments)]
pub fn map_from_patches(
    patch: &[f32],
    grid_w: usize,
    grid_h: usize,
    width: u32,
    height: u32,
    sigma: f32,
    mode: ImageScoreMode,
    roi: Option<&[u8]>,
    ws: &mut MapWorkspace,
) -> Result<AnomalyMap> {
    if patch.len() != grid_w * grid_h || patch.is_empty() {
        return Err(Error::Internal(format!("patch grid {grid_w}x{grid_h} holds {} values", patch.len())));
    }
    if !(sigma.is_finite() && sigma >= 0.0) {
        return Err(Error::invalid(format!("sigma {sigma} must be finite and >= 0")));
    }
    let (w, h) = (width as usize, height as usize);
    let mut filled = std::mem::take(&mut ws.filled);
    let patch = match roi {
        None => patch,
        Some(px) => {
            if px.len() != w * h {
                return Err(Error::Internal(format!("ROI of {} pixels for a {width}x{height} map", px.len())));
            }
            fill_outside(patch, px, width, height, grid_w, grid_h, &mut filled)?;
            &filled[..]
        }
    };
    let mut values = vec![0.0f32; w * h];
    let max = if fused_ops(ws, grid_w, grid_h, w, h, sigma) {
        apply_separable(patch, grid_w, grid_h, &ws.op_x, &ws.op_y, &mut ws.scratch, &mut values)
    } else {
        upsample_bilinear(patch, grid_w, grid_h, &mut values, w, h);
        if sigma > 0.0 {
            gaussian_blur(&mut values, w, h, sigma, &mut ws.scratch);
        }
        max_f32(&values)
    };
    ws.filled = filled;
    let image_score = match roi {
        None => match mode {
            ImageScoreMode::Max => max,
            _ => image_score(&values, mode, &mut ws.select),
        },
        Some(px) => {
            for (v, &m) in values.iter_mut().zip(px) {
                if m == 0 {
                    *v = 0.0;
                }
            }
            let inside: Vec<f32> = inside_values(&values, px).collect();
            image_score(&inside, mode, &mut ws.select)
        }
    };
    Ok(AnomalyMap { width, height, values, image_score })
}

/// `patch` with the scores of patches wholly outside the ROI (`px`, at the image's size)
/// replaced by the median of the inside ones, into `out` (the edge rule of [`crate::roi`]).
fn fill_outside(patch: &[f32], px: &[u8], width: u32, height: u32, grid_w: usize, grid_h: usize, out: &mut Vec<f32>) -> Result<()> {
    let cells = inside_cells(px, width, Rect { x: 0, y: 0, width, height }, grid_w, grid_h);
    let mut inside: Vec<f32> = patch.iter().zip(&cells).filter(|(_, &c)| c).map(|(&v, _)| v).collect();
    if inside.is_empty() {
        return Err(Error::invalid("the region of interest covers none of the image's pixels"));
    }
    let mid = inside.len() / 2;
    let median = *inside.select_nth_unstable_by(mid, f32::total_cmp).1;
    out.clear();
    out.extend(patch.iter().zip(&cells).map(|(&v, &c)| if c { v } else { median }));
    Ok(())
}

/// The anomaly map of a tiled image: its tiles' patch scores (`tiles`, each
/// `grid_w × grid_h`, in the grid's row-major tile order, concatenated) stitched into one
/// patch map of the whole image ([`TileGrid::stitch`]), then upsampled to the image's size,
/// smoothed with σ in image pixels and scored, as [`map_from_patches`] does for one grid
/// (`roi` as there).
#[allow(clippy::too_many_arguments)]
pub fn map_from_tiles(
    tiles: &[f32],
    grid_w: usize,
    grid_h: usize,
    tile_grid: &TileGrid,
    sigma: f32,
    mode: ImageScoreMode,
    roi: Option<&[u8]>,
    ws: &mut MapWorkspace,
) -> Result<AnomalyMap> {
    let per = grid_w * grid_h;
    if per == 0 || tiles.len() != per * tile_grid.len() {
        return Err(Error::Internal(format!("{} tile scores for {} tiles of {grid_w}x{grid_h}", tiles.len(), tile_grid.len())));
    }
    let refs: Vec<&[f32]> = tiles.chunks_exact(per).collect();
    let mut stitched = std::mem::take(&mut ws.stitched);
    let r = tile_grid.stitch(&refs, grid_w, grid_h, &mut stitched).and_then(|(sw, sh)| {
        map_from_patches(&stitched, sw, sh, tile_grid.width, tile_grid.height, sigma, mode, roi, ws)
    });
    ws.stitched = stitched;
    r
}

/// Makes sure `ws` holds the fused upsample+blur operators for this size and σ; false
/// when they would be too large (then the two-step kernels run instead).
fn fused_ops(ws: &mut MapWorkspace, gw: usize, gh: usize, w: usize, h: usize, sigma: f32) -> bool {
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
        ImageScoreMode::Max => max_f32(values),
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


#[cfg(test)]
mod tests {
    use super::*;

    /// The edge rule: the ignored area's own high scores do not bleed into the inside
    /// through the smoothing, and the image score comes from the inside.
    #[test]
    fn scores_outside_the_roi_do_not_bleed_across_its_edge() {
        // 4x4 patches over 64x64 pixels; the left two patch columns are ignored and score 100.
        let patch: Vec<f32> = (0..16).map(|i| if i % 4 < 2 { 100.0 } else { 1.0 + (i / 4) as f32 * 0.01 }).collect();
        let roi: Vec<u8> = (0..64 * 64).map(|i| u8::from(i % 64 >= 32)).collect();
        let mut ws = MapWorkspace::new();
        let m = map_from_patches(&patch, 4, 4, 64, 64, 4.0, ImageScoreMode::Max, Some(&roi), &mut ws).unwrap();
        let inside_max = m.values.iter().zip(&roi).filter(|(_, &r)| r != 0).map(|(&v, _)| v).fold(0.0, f32::max);
        assert!(inside_max <= 1.04, "inside max {inside_max}: the ignored area bled in");
        assert_eq!(m.image_score, inside_max);
        assert!(m.values.iter().zip(&roi).all(|(&v, &r)| r != 0 || v == 0.0));
        // Without the ROI the same scores light up the inside next to the edge.
        let plain = map_from_patches(&patch, 4, 4, 64, 64, 4.0, ImageScoreMode::Max, None, &mut ws).unwrap();
        assert!(plain.values[32] > 10.0);
        // Top-mean over the inside only.
        let t = map_from_patches(&patch, 4, 4, 64, 64, 4.0, ImageScoreMode::TopMean { fraction: 1.0 }, Some(&roi), &mut ws).unwrap();
        assert!(t.image_score > 0.9 && t.image_score < 1.05, "{}", t.image_score);
    }
}
