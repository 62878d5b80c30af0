//! Scoring: an image's patch features (the model), their distances to the nearest bank rows
//! (the bank), the anomaly map drawn from them ([`crate::map`]), and the decision against
//! the bank's thresholds.

use std::time::Instant;

use serde::Serialize;

use crate::bank::{tiles, MemoryBank};
use crate::error::{Error, Result};
use crate::fusion::scoring::FeatureScratch;
use crate::image::{ImageView, Preparer};
use crate::map::{map_from_patches, AnomalyMap, MapWorkspace};
use crate::model::Model;
use crate::regions::{find_regions, Region};
use crate::roi::Roi;

/// Seconds spent in each part of scoring one image (batch parts are split evenly over the
/// batch).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Timings {
    /// Resizing and normalising the image.
    pub prepare_s: f64,
    /// The Hiera encoder.
    pub hiera_s: f64,
    /// The DINOv2 encoder.
    pub dinov2_s: f64,
    /// The fusion head, patch features included.
    pub head_s: f64,
    /// Nearest-row distances to the bank.
    pub matching_s: f64,
    /// Upsampling, smoothing and drawing the image score.
    pub upsample_smooth_s: f64,
}

/// One scored image: its map, and the decision against the bank's thresholds.
#[derive(Debug, Clone, Serialize)]
pub struct ScoreResult {
    /// The anomaly map and its image score.
    pub map: AnomalyMap,
    /// The bank's image threshold.
    pub image_threshold: f32,
    /// The bank's pixel threshold: map values above it mark defective pixels at the bank's target FPR.
    pub pixel_threshold: f32,
    /// `image_score > image_threshold`.
    pub is_anomalous: bool,
    /// Whether `image_threshold` is the caller's ([`ScoreOptions::image_threshold`]) rather
    /// than the bank's.
    pub image_threshold_from_caller: bool,
    /// Whether `pixel_threshold` is the caller's rather than the bank's.
    pub pixel_threshold_from_caller: bool,
    /// Defect regions at `pixel_threshold`, highest peak first; empty unless
    /// [`ScoreOptions::regions`] asked for them.
    pub regions: Vec<Region>,
    /// Which region of interest the map, score and regions were confined to.
    pub roi: RoiSource,
    /// Where the time went.
    pub timings: Timings,
}

/// Which region of interest a score call uses.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum RoiChoice<'a> {
    /// The bank's default ROI ([`MemoryBank::roi`]), or the whole image if it has none.
    #[default]
    Bank,
    /// The whole image, even if the bank has a default ROI.
    Everywhere,
    /// This mask instead of the bank's (any size: it is scaled to each image). It confines
    /// the map, the image score and the regions; the encoders still see the bank's own ROI
    /// filled, as when the bank was built ([`crate::roi`]).
    Mask(&'a Roi),
}

/// Which region of interest a score was confined to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RoiSource {
    /// None: the whole image.
    #[default]
    None,
    /// The bank's default ROI.
    Bank,
    /// The caller's mask ([`RoiChoice::Mask`]).
    Caller,
}

impl<'a> RoiChoice<'a> {
    /// The mask this choice means for `bank`, and where it came from.
    fn resolve(self, bank: &'a MemoryBank) -> (Option<&'a Roi>, RoiSource) {
        match self {
            RoiChoice::Bank => match bank.roi() {
                Some(r) => (Some(r), RoiSource::Bank),
                None => (None, RoiSource::None),
            },
            RoiChoice::Everywhere => (None, RoiSource::None),
            RoiChoice::Mask(r) => (Some(r), RoiSource::Caller),
        }
    }
}

/// Per-call choices; `Default` decides at the bank's thresholds, in the bank's region of
/// interest, and finds no regions.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ScoreOptions<'a> {
    /// Decide at this image threshold instead of the bank's (finite, >= 0): a line
    /// engineer's setting that needs no rebuild.
    pub image_threshold: Option<f32>,
    /// Draw regions at this pixel threshold instead of the bank's (finite, >= 0).
    pub pixel_threshold: Option<f32>,
    /// Find defect regions ([`crate::regions`]) of at least `min_area` pixels.
    pub regions: Option<RegionOptions>,
    /// The region of interest: the bank's (default), none, or the caller's.
    pub roi: RoiChoice<'a>,
}

/// What [`ScoreOptions::regions`] asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegionOptions {
    /// Smallest region kept, in pixels (0 and 1 keep every region).
    pub min_area: u64,
}

impl ScoreOptions<'_> {
    /// Checks the overrides, naming the one that is wrong.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [("image_threshold", self.image_threshold), ("pixel_threshold", self.pixel_threshold)] {
            if let Some(t) = v {
                if !(t.is_finite() && t >= 0.0) {
                    return Err(Error::invalid(format!("{name} {t} must be finite and >= 0")));
                }
            }
        }
        Ok(())
    }
}

/// The decision and regions of one map under `opts` and the bank's calibration; `roi` is
/// the region of interest at the map's size.
fn decide(
    map: AnomalyMap,
    cal: &crate::bank::Calibration,
    opts: &ScoreOptions,
    roi: (Option<&[u8]>, RoiSource),
    timings: Timings,
) -> Result<ScoreResult> {
    let image_threshold = opts.image_threshold.unwrap_or(cal.image_threshold);
    let pixel_threshold = opts.pixel_threshold.unwrap_or(cal.pixel_threshold);
    let regions = match opts.regions {
        Some(r) => find_regions(&map.values, map.width as usize, map.height as usize, pixel_threshold, r.min_area, roi.0)?,
        None => Vec::new(),
    };
    Ok(ScoreResult {
        is_anomalous: map.image_score > image_threshold,
        image_threshold,
        pixel_threshold,
        image_threshold_from_caller: opts.image_threshold.is_some(),
        pixel_threshold_from_caller: opts.pixel_threshold.is_some(),
        regions,
        roi: roi.1,
        map,
        timings,
    })
}

/// Reusable buffers for the post-encoder work, so scoring a stream of images allocates
/// only the output map. One per thread.
#[derive(Default)]
pub struct Workspace {
    patch: Vec<f32>,
    preparer: Preparer,
    features: FeatureScratch,
    map: MapWorkspace,
}

impl Workspace {
    /// An empty workspace; buffers grow on first use.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Scores a batch of images with a bank. The bank must come from this model. With a tiled
/// bank the tiles of all images of the batch share the encoder calls.
pub fn score_batch(model: &Model, bank: &MemoryBank, images: &[ImageView<'_>], ws: &mut Workspace) -> Result<Vec<ScoreResult>> {
    score_batch_with(model, bank, images, &ScoreOptions::default(), ws)
}

/// [`score_batch`] with per-call thresholds and regions.
pub fn score_batch_with(
    model: &Model,
    bank: &MemoryBank,
    images: &[ImageView<'_>],
    opts: &ScoreOptions,
    ws: &mut Workspace,
) -> Result<Vec<ScoreResult>> {
    opts.validate()?;
    bank.check_model(model)?;
    if images.is_empty() {
        return Err(Error::invalid("no images to score"));
    }
    let meta = bank.meta();
    let cal = &meta.calibration;
    let (roi, roi_source) = opts.roi.resolve(bank);
    let roi_at = |w: u32, h: u32| roi.map(|r| r.at_size(w, h));
    if let Some(tm) = &meta.tiles {
        let t = tiles::tiled_maps(model, bank, tm, images, roi, &mut ws.preparer, &mut ws.features, &mut ws.map, &mut ws.patch)?;
        let n = images.len() as f64;
        let ft = t.features;
        let timings = Timings {
            prepare_s: ft.prepare_s / n,
            hiera_s: ft.hiera_s / n,
            dinov2_s: ft.dinov2_s / n,
            head_s: ft.head_s / n,
            matching_s: t.matching_s / n,
            upsample_smooth_s: t.map_s / n,
        };
        return t
            .maps
            .into_iter()
            .map(|map| {
                let px = roi_at(map.width, map.height);
                decide(map, cal, opts, (px.as_deref(), roi_source), timings)
            })
            .collect();
    }
    // The encoders see the bank's own region of interest filled, as when it was built (a
    // per-call ROI only confines the map, score and regions).
    let fill: Option<Vec<Vec<u8>>> = bank.roi().map(|r| images.iter().map(|im| r.at_size(im.width(), im.height())).collect());
    let (grids, ft) = model.patch_features_masked(&mut ws.preparer, &mut ws.features, images, fill.as_deref())?;
    let n = images.len() as f64;
    let mut out = Vec::with_capacity(images.len());
    for (i, (img, grid)) in images.iter().zip(&grids).enumerate() {
        if (grid.h, grid.w) != (meta.grid_h, meta.grid_w) {
            return Err(Error::Internal(format!(
                "feature grid {}x{} differs from the bank's {}x{}",
                grid.w, grid.h, meta.grid_w, meta.grid_h
            )));
        }
        let t0 = Instant::now();
        bank.patch_scores(grid, &mut ws.patch)?;
        let t1 = Instant::now();
        // The bank's own ROI was laid over this image for the encoders already.
        let computed;
        let px: Option<&[u8]> = match (roi_source, &fill) {
            (RoiSource::Bank, Some(f)) => Some(&f[i]),
            _ => {
                computed = roi_at(img.width(), img.height());
                computed.as_deref()
            }
        };
        let map = map_from_patches(&ws.patch, grid.w, grid.h, img.width(), img.height(), meta.sigma, meta.image_score, px, &mut ws.map)?;
        let t2 = Instant::now();
        out.push(decide(
            map,
            cal,
            opts,
            (px, roi_source),
            Timings {
                prepare_s: ft.prepare_s / n,
                hiera_s: ft.hiera_s / n,
                dinov2_s: ft.dinov2_s / n,
                head_s: ft.head_s / n,
                matching_s: (t1 - t0).as_secs_f64(),
                upsample_smooth_s: (t2 - t1).as_secs_f64(),
            },
        )?);
    }
    for g in grids {
        ws.features.recycle(g);
    }
    Ok(out)
}

/// Scores one image with per-call thresholds and regions.
pub fn score_with(model: &Model, bank: &MemoryBank, image: &ImageView<'_>, opts: &ScoreOptions, ws: &mut Workspace) -> Result<ScoreResult> {
    let mut v = score_batch_with(model, bank, std::slice::from_ref(image), opts, ws)?;
    v.pop().ok_or_else(|| Error::Internal("empty score batch".into()))
}

/// Scores one image.
pub fn score(model: &Model, bank: &MemoryBank, image: &ImageView<'_>, ws: &mut Workspace) -> Result<ScoreResult> {
    let mut v = score_batch(model, bank, std::slice::from_ref(image), ws)?;
    v.pop().ok_or_else(|| Error::Internal("empty score batch".into()))
}
