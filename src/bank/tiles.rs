//! Banks over tiles ([`crate::tiling`]): building one bank for all tiles or one per tile
//! position, calibrating it by holding out whole images, and the anomaly maps of tiled
//! images, which scoring and held-out calibration share.
//!
//! **Calibration that scales.** The whole-image bank calibrates by leave-one-out: one refit
//! per shot. A tiled bank holds out *images* (all their tiles together), in at most
//! [`CALIBRATION_FOLDS`] folds (image `i` in fold `i mod F`): with up to four shots that
//! is leave-one-image-out, with more it is F-fold. Each fold refits the bank once on the
//! other folds' tiles, so the cost is at most F + 1 fits, each linear in the number of
//! tiles: fit time grows linearly with the images and their tiles, not with their square.

use std::ops::Range;
use std::time::Instant;

use ndarray::{s, Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use super::calibrate::{pool_pixels, summarise, Calibration};
use super::grow::Shots;
use super::{encode_normals, fit_vectors, inside_rows, BankMeta, MemoryBank, Progress, ProgressFn, Resolved, Phase};
use crate::error::{Error, Result};
use crate::fusion::scoring::FeatureScratch;
use crate::fusion::Grid;
use crate::image::{ImageView, Preparer};
use crate::kernels::distance::{nearest_distances, row_sq_norms};
use crate::map::{map_from_tiles, AnomalyMap, MapWorkspace};
use crate::model::{FeatureTimings, Model};
use crate::roi::{inside_cells, scatter_inside, Rect, Roi};
use crate::tiling::{TileGrid, TileLayout, Tiling};

/// Most folds a tiled bank's calibration holds images out in (see the module doc).
pub const CALIBRATION_FOLDS: usize = 4;

/// What a tiled bank records about its tiles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TileMeta {
    /// The tiling the bank was built with.
    pub tiling: Tiling,
    /// Tile width in image pixels (the tiling's `tile`).
    pub tile_w: u32,
    /// Tile height in image pixels (follows the encoder input's aspect ratio).
    pub tile_h: u32,
    /// Per-position banks: the one image size they accept and each position's rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positions: Option<Positions>,
}

/// The tile positions of a per-position bank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Positions {
    /// Width of the images the bank was built from, the only width it scores.
    pub image_width: u32,
    /// Height of the images the bank was built from, the only height it scores.
    pub image_height: u32,
    /// Tile columns.
    pub cols: u32,
    /// Tile rows.
    pub rows: u32,
    /// Bank rows of each position, row-major; the bank's vectors are these parts in order.
    pub rows_per_position: Vec<usize>,
}

impl TileMeta {
    /// The tile grid of a `width × height` image; a per-position bank refuses any size but
    /// its own.
    pub fn grid(&self, width: u32, height: u32) -> Result<TileGrid> {
        if let Some(p) = &self.positions {
            if (width, height) != (p.image_width, p.image_height) {
                return Err(Error::invalid(format!(
                    "this bank keeps one bank per tile position of {}x{} images; an image of {width}x{height} cannot be scored with it (give {}x{} images, or build a shared tile bank)",
                    p.image_width, p.image_height, p.image_width, p.image_height
                )));
            }
        }
        TileGrid::sized(width, height, self.tile_w, self.tile_h, self.tiling.overlap)
    }
}

/// The tile grids of the shots, each checked; a per-position bank needs one size.
fn shot_grids(images: &[ImageView<'_>], tiling: &Tiling, tile_w: u32, tile_h: u32) -> Result<Vec<TileGrid>> {
    let first = (images[0].width(), images[0].height());
    images
        .iter()
        .enumerate()
        .map(|(i, im)| {
            if tiling.layout == TileLayout::PerPosition && (im.width(), im.height()) != first {
                return Err(Error::invalid(format!(
                    "a per_position tile bank needs images of one size: images[0] is {}x{}, images[{i}] is {}x{}",
                    first.0,
                    first.1,
                    im.width(),
                    im.height()
                )));
            }
            TileGrid::sized(im.width(), im.height(), tile_w, tile_h, tiling.overlap).map_err(|e| e.context(format!("images[{i}]")))
        })
        .collect()
}

/// Encodes images into the shots of a tiled bank (`opts` resolved, `opts.tiling ==
/// Some(*tiling)`): every tile of every image and copy, only its patches inside the region
/// of interest, in grids ordered copy by copy, image by image, tile by tile.
pub(crate) fn encode_shots(model: &Model, images: &[ImageView<'_>], opts: &Resolved, tiling: &Tiling, progress: ProgressFn<'_>) -> Result<Shots> {
    let input = &model.manifest().input;
    let (tile_w, tile_h) = tiling.tile_size(input.width, input.height);
    let grids = shot_grids(images, tiling, tile_w, tile_h)?;
    let mut views = Vec::new();
    for (g, im) in grids.iter().zip(images) {
        views.extend(g.views(im)?);
    }
    let roi_px: Option<Vec<Vec<u8>>> = opts.roi.as_ref().map(|r| images.iter().map(|im| r.at_size(im.width(), im.height())).collect());
    let fill = roi_px.as_ref().map(|px| tile_masks(&grids, px));
    let feats = encode_normals(model, &views, fill.as_deref(), "tiles", opts, progress)?;
    let parts = parts_of(tiling, &grids[0]);
    let kept = match &roi_px {
        None => None,
        Some(px) => Some(roi_rows(&feats, &grids, px, images, parts, opts)?),
    };
    let rows: Vec<ArrayView2<f32>> = match &kept {
        Some(k) => k.iter().map(|a| a.view()).collect(),
        None => feats.iter().map(|g| g.data.view()).collect(),
    };
    Shots::new(
        &rows,
        feats.len() / grids.iter().map(TileGrid::len).sum::<usize>(),
        images.iter().map(|im| [im.width(), im.height()]).collect(),
        grids.iter().map(TileGrid::len).collect(),
        (feats[0].w, feats[0].h),
    )
}

/// Banks a tiled bank keeps: one, or one per tile position.
fn parts_of(tiling: &Tiling, first: &TileGrid) -> usize {
    match tiling.layout {
        TileLayout::Shared => 1,
        TileLayout::PerPosition => first.len(),
    }
}

/// Fits and calibrates a tiled bank from its shots (`opts` resolved, `opts.tiling ==
/// Some(*tiling)`); the vectors and the record, ROI and growth not yet attached.
pub(crate) fn fit_shots(model: &Model, shots: &Shots, opts: &Resolved, tiling: &Tiling, progress: ProgressFn<'_>) -> Result<(Array2<f32>, BankMeta)> {
    let input = &model.manifest().input;
    let (tile_w, tile_h) = tiling.tile_size(input.width, input.height);
    let grids: Vec<TileGrid> = shots
        .sizes
        .iter()
        .enumerate()
        .map(|(i, &[w, h])| TileGrid::sized(w, h, tile_w, tile_h, tiling.overlap).map_err(|e| e.context(format!("images[{i}]"))))
        .collect::<Result<_>>()?;
    let parts = parts_of(tiling, &grids[0]);
    let blocks = shots.blocks();
    let (vectors, rows, iterations, converged) = fit_parts(&blocks, |_| true, parts, opts, false, progress)?;
    let calibration = calibrate_folds(shots, &grids, opts.roi.as_ref(), parts, opts, progress)?;
    let [w0, h0] = shots.sizes[0];
    let positions = (tiling.layout == TileLayout::PerPosition).then(|| Positions {
        image_width: w0,
        image_height: h0,
        cols: grids[0].cols() as u32,
        rows: grids[0].rows() as u32,
        rows_per_position: rows,
    });
    let grid = Grid { h: shots.grid.1, w: shots.grid.0, data: Array2::zeros((0, vectors.ncols())) };
    let mut meta = BankMeta::fitted(model, opts, &grid, &vectors, shots.shots(), (iterations, converged), calibration);
    meta.tiles = Some(TileMeta { tiling: *tiling, tile_w, tile_h, positions });
    Ok((vectors, meta))
}

/// Each tile's part of the region of interest (`px`: the mask at each image's size), at the
/// tile's size, in the order of the tiles of all images.
fn tile_masks(grids: &[TileGrid], px: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (g, m) in grids.iter().zip(px) {
        let w = g.width as usize;
        for t in 0..g.len() {
            let (x, y) = g.origin(t);
            let (x, y) = (x as usize, y as usize);
            let mut tile = Vec::with_capacity(g.tile_w as usize * g.tile_h as usize);
            for r in y..y + g.tile_h as usize {
                tile.extend_from_slice(&m[r * w + x..r * w + x + g.tile_w as usize]);
            }
            out.push(tile);
        }
    }
    out
}

/// The rows of each tile's features inside the region of interest (`px`: the mask at each
/// image's size). A shared bank with no inside patch at all is refused; in a per-position
/// bank a position wholly outside keeps all its rows, so it still has a bank to match its
/// tiles against (their scores are masked out of every map).
fn roi_rows(feats: &[Grid], grids: &[TileGrid], px: &[Vec<u8>], images: &[ImageView<'_>], parts: usize, opts: &Resolved) -> Result<Vec<Array2<f32>>> {
    let mut owner = Vec::new();
    for (i, g) in grids.iter().enumerate() {
        owner.extend((0..g.len()).map(|t| (i, t)));
    }
    let (gw, gh) = (feats[0].w, feats[0].h);
    let mut kept = inside_rows(feats, owner.len(), &opts.augment, |o| {
        let (i, t) = owner[o];
        let (x, y) = grids[i].origin(t);
        inside_cells(&px[i], images[i].width(), Rect { x, y, width: grids[i].tile_w, height: grids[i].tile_h }, gw, gh)
    });
    for p in 0..parts {
        if kept.iter().enumerate().filter(|(g, _)| g % parts == p).all(|(_, k)| k.nrows() == 0) {
            if parts == 1 {
                return Err(Error::invalid("the region of interest covers no patch of the images' tiles; widen it"));
            }
            for (g, k) in kept.iter_mut().enumerate().filter(|(g, _)| g % parts == p) {
                *k = feats[g].data.clone();
            }
        }
    }
    Ok(kept)
}

/// Fits the bank of each part on the feature grids `keep` selects. Grid `g` belongs to
/// part `g mod parts` (with one part per position every image has the same tiles, and
/// augmented copies follow their originals in whole rounds). `clamp_k` lowers k to the
/// vectors a part has (calibration folds); the final bank refuses instead.
fn fit_parts(
    feats: &[ArrayView2<'_, f32>],
    keep: impl Fn(usize) -> bool,
    parts: usize,
    opts: &Resolved,
    clamp_k: bool,
    progress: ProgressFn<'_>,
) -> Result<(Array2<f32>, Vec<usize>, usize, bool)> {
    let mut fitted = Vec::with_capacity(parts);
    let (mut iterations, mut converged) = (0, true);
    for p in 0..parts {
        let views: Vec<ArrayView2<f32>> = feats.iter().enumerate().filter(|(g, _)| g % parts == p && keep(*g)).map(|(_, f)| f.view()).collect();
        let n: usize = views.iter().map(|v| v.nrows()).sum();
        let mut o = opts.clone();
        if clamp_k {
            o.k = o.k.min(n);
        }
        let (v, it, conv) = fit_vectors(&views, &o, progress).map_err(|e| if parts > 1 { e.context(format!("tile position {p}")) } else { e })?;
        iterations = iterations.max(it);
        converged &= conv;
        fitted.push(v);
    }
    let rows = fitted.iter().map(|v| v.nrows()).collect();
    let views: Vec<_> = fitted.iter().map(|v| v.view()).collect();
    let all = ndarray::concatenate(Axis(0), &views).map_err(|e| Error::Internal(format!("concatenate tile banks: {e}")))?;
    Ok((all, rows, iterations, converged))
}

/// Rows of each part from their counts.
fn ranges(rows: &[usize]) -> Vec<Range<usize>> {
    let mut at = 0;
    rows.iter()
        .map(|&n| {
            at += n;
            at - n..at
        })
        .collect()
}

/// Thresholds of a tiled bank from its shots, held out by image in folds (module doc).
/// Each held-out tile's kept rows are matched and scattered back to their cells (the
/// others are replaced by the map's edge rule), so the shots alone suffice.
fn calibrate_folds(shots: &Shots, grids: &[TileGrid], roi: Option<&Roi>, parts: usize, opts: &Resolved, progress: ProgressFn<'_>) -> Result<Calibration> {
    let m = shots.shots();
    let folds = m.min(CALIBRATION_FOLDS);
    let originals: usize = grids.iter().map(TileGrid::len).sum();
    let mut owner = Vec::with_capacity(originals);
    let mut first_tile = Vec::with_capacity(m);
    for (i, g) in grids.iter().enumerate() {
        first_tile.push(owner.len());
        owner.extend(std::iter::repeat_n(i, g.len()));
    }
    let rows = shots.blocks();
    let (gw, gh) = shots.grid;
    let mut ws = MapWorkspace::new();
    let (mut image_scores, mut pixels, mut patch, mut tile_scores) = (vec![0.0f32; m], Vec::new(), Vec::new(), Vec::new());
    let mut done = 0;
    for f in 0..folds {
        let held = |i: usize| m > 1 && i % folds == f;
        // Clustering progress inside calibration is not reported, only cancellation honoured.
        let mut quiet = |_: Progress| true;
        let (vectors, part_rows, _, _) = fit_parts(&rows, |g| !held(owner[g % originals]), parts, opts, true, &mut quiet)?;
        let norms = row_sq_norms(vectors.view());
        let ranges = ranges(&part_rows);
        for i in (0..m).filter(|&i| m == 1 || held(i)) {
            let px = roi.map(|r| r.at_size(grids[i].width, grids[i].height));
            tile_scores.clear();
            for t in 0..grids[i].len() {
                let r = ranges[if parts == 1 { 0 } else { t }].clone();
                let kept = rows[first_tile[i] + t];
                nearest_distances(kept, vectors.slice(s![r.clone(), ..]), norms.slice(s![r]), &mut patch)?;
                match (&px, kept.nrows() == gw * gh) {
                    (None, _) | (_, true) => tile_scores.extend_from_slice(&patch),
                    (Some(px), false) => {
                        let (x, y) = grids[i].origin(t);
                        let cells = inside_cells(px, grids[i].width, Rect { x, y, width: grids[i].tile_w, height: grids[i].tile_h }, gw, gh);
                        scatter_inside(&patch, &cells, &mut tile_scores)?;
                    }
                }
            }
            let map = map_from_tiles(&tile_scores, gw, gh, &grids[i], opts.sigma, opts.image_score, px.as_deref(), &mut ws)?;
            image_scores[i] = map.image_score;
            pool_pixels(&mut pixels, &map.values, px.as_deref(), m);
            done += 1;
            if !progress(Progress { phase: Phase::Calibrate, done, total: m }) {
                return Err(Error::Cancelled);
            }
        }
    }
    let method = match m {
        1 => "in-sample".to_string(),
        _ if folds == m => "leave-one-out".to_string(),
        _ => format!("{folds}-fold"),
    };
    summarise(&method, opts.target_fpr, image_scores, pixels)
}

/// Maps of tiled images and where the time went.
pub(crate) struct TiledMaps {
    /// One map per image, in order.
    pub maps: Vec<AnomalyMap>,
    /// Preparation, encoders and head, summed over the batch.
    pub features: FeatureTimings,
    /// Seconds matching tiles against the bank.
    pub matching_s: f64,
    /// Seconds stitching, upsampling, smoothing and drawing image scores.
    pub map_s: f64,
}

/// The anomaly maps of `images` against a tiled bank: tiles of all images go through the
/// encoders in calls of the model's tile batch ([`crate::ModelOptions::tile_batch`]), each tile is matched against its part,
/// and each image's tiles are stitched into its map, inside `roi` if one is given.
#[allow(clippy::too_many_arguments)]
pub(crate) fn tiled_maps(
    model: &Model,
    bank: &MemoryBank,
    tm: &TileMeta,
    images: &[ImageView<'_>],
    roi: Option<&Roi>,
    prep: &mut Preparer,
    scratch: &mut FeatureScratch,
    ws: &mut MapWorkspace,
    patch: &mut Vec<f32>,
) -> Result<TiledMaps> {
    let meta = bank.meta();
    let grids: Vec<TileGrid> = images
        .iter()
        .enumerate()
        .map(|(i, im)| tm.grid(im.width(), im.height()).map_err(|e| if images.len() > 1 { e.context(format!("images[{i}]")) } else { e }))
        .collect::<Result<_>>()?;
    let mut views = Vec::new();
    let mut part = Vec::new();
    for (g, im) in grids.iter().zip(images) {
        views.extend(g.views(im)?);
        part.extend((0..g.len()).map(|t| if bank.parts() == 1 { 0 } else { t }));
    }
    // The encoders see the bank's own region of interest filled, as when it was built.
    let fill = bank.roi().map(|r| {
        let px: Vec<Vec<u8>> = grids.iter().map(|g| r.at_size(g.width, g.height)).collect();
        tile_masks(&grids, &px)
    });
    let per = meta.grid_w * meta.grid_h;
    let mut scores = Vec::with_capacity(views.len() * per);
    let mut features = FeatureTimings::default();
    let mut matching_s = 0.0;
    let per_call = model.options().effective_tile_batch();
    for (c, chunk) in views.chunks(per_call).enumerate() {
        let at = c * per_call;
        let (gs, t) = model.patch_features_masked(prep, scratch, chunk, fill.as_ref().map(|f| &f[at..at + chunk.len()]))?;
        features.prepare_s += t.prepare_s;
        features.hiera_s += t.hiera_s;
        features.dinov2_s += t.dinov2_s;
        features.head_s += t.head_s;
        let t0 = Instant::now();
        for (j, g) in gs.into_iter().enumerate() {
            if (g.h, g.w) != (meta.grid_h, meta.grid_w) {
                return Err(Error::Internal(format!("tile feature grid {}x{} differs from the bank's {}x{}", g.w, g.h, meta.grid_w, meta.grid_h)));
            }
            bank.patch_scores_at(part[at + j], &g, patch)?;
            scores.extend_from_slice(patch);
            scratch.recycle(g);
        }
        matching_s += t0.elapsed().as_secs_f64();
    }
    let t0 = Instant::now();
    let mut maps = Vec::with_capacity(images.len());
    let mut at = 0;
    for g in &grids {
        let n = g.len() * per;
        let px = roi.map(|r| r.at_size(g.width, g.height));
        maps.push(map_from_tiles(&scores[at..at + n], meta.grid_w, meta.grid_h, g, meta.sigma, meta.image_score, px.as_deref(), ws)?);
        at += n;
    }
    Ok(TiledMaps { maps, features, matching_s, map_s: t0.elapsed().as_secs_f64() })
}
