//! Evaluating a bank on one MVTec-layout category: fit on M good training images, score
//! every test image, compute the MVTec AD metrics.
//!
//! Memory does not grow with the test set: each image is scored, added to the metric
//! accumulators (and drawn as a heatmap overlay if asked) and dropped. Pixel metrics are
//! binned unless [`EvalOptions::exact`] asks to keep every map (see
//! [`metrics::PixelAccumulator`]).
//!
//! Image-level labels are enough: a category whose defective test images have no
//! ground-truth masks (OK/NG folders, the usual case on a line) gets the image metrics and
//! `None` pixel metrics, with a note saying why. With some masks missing, pixel metrics use
//! the good images and the defective images that have masks, and the report counts them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::bank::{BankOptions, MemoryBank, Progress, ProgressFn, Phase};
use crate::data::{self, Category, Sample};
use crate::error::{Error, Result};
use crate::image::{ImageView, PixelFormat};
use crate::metrics::{self, MapSample, Metrics, PixelAccumulator};
use crate::model::Model;
use crate::map::AnomalyMap;
use crate::score::{self, Workspace};

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Normal training images used for the bank (the first M, in file-name order).
    pub shots: usize,
    /// How the bank is built.
    pub bank: BankOptions,
    /// Exact pixel metrics: keep every map until the end (memory grows with the test set).
    /// Default: binned, bounded memory (within 1e-3 of exact).
    pub exact: bool,
    /// Write heatmap overlays while scoring.
    pub heatmaps: Option<HeatmapOutput>,
}

impl EvalOptions {
    /// `shots` images, the bank options, binned metrics, no heatmaps.
    pub fn new(shots: usize, bank: BankOptions) -> Self {
        Self { shots, bank, exact: false, heatmaps: None }
    }
}

/// Where heatmap overlays go: `<dir>/<category>/<defect>_<stem>.png`, at most `per_kind`
/// per defect folder (first in file-name order).
#[derive(Debug, Clone)]
pub struct HeatmapOutput {
    /// Output folder.
    pub dir: PathBuf,
    /// Overlays per defect folder (`good` included).
    pub per_kind: usize,
}

/// The result of [`evaluate_category`]; `--json` prints it flattened.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// The evaluated category.
    pub category: String,
    /// The evaluation metrics.
    #[serde(flatten)]
    pub metrics: Metrics,
    /// Share of test images whose decision at the bank's own image threshold
    /// (`score > image_threshold`) matches their label.
    pub image_accuracy: f64,
    /// Share of the good test images (held out: never in the bank) whose score exceeds the
    /// bank's image threshold: the false-positive rate the line would see; `null` without
    /// good test images.
    pub good_flagged_rate: Option<f64>,
    /// Test images scored.
    pub images: usize,
    /// Good and defective test images.
    pub good_images: usize,
    /// See `good_images`.
    pub defective_images: usize,
    /// Defective test images with a ground-truth mask (those that enter the pixel metrics,
    /// with every good image).
    pub masked_defective: usize,
    /// `"binned"` or `"exact"`; `null` when there are no pixel metrics.
    pub pixel_metrics: Option<&'static str>,
    /// Why pixel metrics are missing or partial; `null` when every defective image had a mask.
    pub pixel_note: Option<String>,
    /// Normal training images in the bank.
    pub shots: usize,
    /// Prototypes K for Sinkhorn; for the other scorers, the bank's row count.
    pub k: usize,
    /// Scorer name (`sinkhorn`, `full` or `coreset`).
    pub scorer: String,
    /// Median per image: preparation + both encoders.
    pub encode_ms: f64,
    /// Median per image: fusion head + matching + upsampling and smoothing.
    pub score_ms: f64,
    /// Seconds to build the bank (encoding, fitting, calibration).
    pub fit_s: f64,
    /// The bank's image threshold.
    pub image_threshold: f32,
    /// The bank's pixel threshold.
    pub pixel_threshold: f32,
    /// Defect regions at the bank's pixel threshold ([`crate::regions`], every size): the
    /// share of ground-truth defects (8-connected pieces of the masks) that at least one
    /// region touches; `null` without masks or for the decoder scorer.
    pub region_recall: Option<f64>,
    /// Ground-truth defects counted for `region_recall`.
    pub region_defects: usize,
    /// Mean number of regions on a defective test image; `null` when there is none.
    pub regions_per_defective: Option<f64>,
    /// Mean number of regions on a good test image (false alarms per image); `null` when
    /// there is none.
    pub regions_per_good: Option<f64>,
    /// Size of the region of interest the bank was built with (`null`: the whole image).
    pub roi: Option<[u32; 2]>,
    /// Heatmap overlays written.
    #[serde(skip)]
    pub heatmaps: Vec<PathBuf>,
    /// The bank that was built, for reuse by the caller (not serialised).
    #[serde(skip)]
    pub bank: Option<MemoryBank>,
}

/// Loads an image file as an RGB8 buffer plus its view parameters.
pub fn load_image(path: &Path) -> Result<image::RgbImage> {
    data::load_rgb(path)
}

/// A view over a decoded RGB image.
pub fn rgb_view<'a>(model: &Model, img: &'a image::RgbImage) -> Result<ImageView<'a>> {
    model.view(img.as_raw(), img.width(), img.height(), img.width() as usize * 3, PixelFormat::Rgb8)
}

/// Median of timings (sorts `v`); 0 for none.
pub(crate) fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Checks that a category's test set can be evaluated at all: image metrics need good and
/// defective test images.
pub(crate) fn check_test_set(cat: &Category) -> Result<()> {
    let name = &cat.name;
    if cat.test.is_empty() {
        return Err(Error::invalid(format!(
            "category '{name}' has no test images (expected {}/test/good/*.png and {}/test/<defect>/*.png)",
            cat.root.display(),
            cat.root.display()
        )));
    }
    let defective = cat.test.iter().filter(|s| s.is_anomalous()).count();
    if defective == 0 {
        return Err(Error::invalid(format!(
            "category '{name}' has only good test images ({}): image AUROC needs defective ones too, in test/<defect>/",
            cat.test.len()
        )));
    }
    if defective == cat.test.len() {
        return Err(Error::invalid(format!(
            "category '{name}' has no good test images (test/good/ is missing or empty): image AUROC needs both good and defective ones"
        )));
    }
    Ok(())
}

/// Collects scored test images into metrics, one at a time, and writes heatmap overlays.
/// Shared by the bank scorers and the decoder scorer.
pub(crate) struct Accumulator<'a> {
    category: &'a str,
    scores: Vec<f32>,
    labels: Vec<bool>,
    pixels: PixelAccumulator,
    exact: bool,
    defective: usize,
    masked_defective: usize,
    heat: Option<(&'a HeatmapOutput, f32, f32)>,
    heat_counts: HashMap<String, usize>,
    heatmaps: Vec<PathBuf>,
    image_threshold: f32,
    correct: usize,
    good_flagged: usize,
    regions: Option<RegionTally>,
}

/// Region counts of [`EvalReport::region_recall`] and its neighbours.
struct RegionTally {
    pixel_threshold: f32,
    roi: Option<crate::roi::Roi>,
    defects: usize,
    hit: usize,
    on_defective: usize,
    on_good: usize,
}

impl<'a> Accumulator<'a> {
    /// `heat_range` is the colour scale of the overlays (`None`: no overlays even if asked).
    pub(crate) fn new(category: &'a str, opts: &'a EvalOptions, image_threshold: f32, heat_range: Option<(f32, f32)>) -> Result<Self> {
        let heat = match (&opts.heatmaps, heat_range) {
            (Some(h), Some((lo, hi))) => {
                let dir = h.dir.join(category);
                std::fs::create_dir_all(&dir).map_err(|e| Error::io("create folder", &dir, e))?;
                Some((h, lo, hi))
            }
            _ => None,
        };
        Ok(Self {
            category,
            scores: Vec::new(),
            labels: Vec::new(),
            pixels: PixelAccumulator::new(opts.exact),
            exact: opts.exact,
            defective: 0,
            masked_defective: 0,
            heat,
            heat_counts: HashMap::new(),
            heatmaps: Vec::new(),
            image_threshold,
            correct: 0,
            good_flagged: 0,
            regions: None,
        })
    }

    /// Also counts defect regions at `pixel_threshold` inside `roi` (the bank's).
    pub(crate) fn with_regions(mut self, pixel_threshold: f32, roi: Option<crate::roi::Roi>) -> Self {
        self.regions = Some(RegionTally { pixel_threshold, roi, defects: 0, hit: 0, on_defective: 0, on_good: 0 });
        self
    }

    /// Adds one scored test image: its score, its map with its mask (a good image's mask is
    /// empty; a defective image without a mask stays out of the pixel metrics), its overlay.
    pub(crate) fn add(&mut self, s: &Sample, img: &image::RgbImage, map: &AnomalyMap) -> Result<()> {
        let anomalous = s.is_anomalous();
        self.scores.push(map.image_score);
        self.labels.push(anomalous);
        self.correct += usize::from((map.image_score > self.image_threshold) == anomalous);
        self.good_flagged += usize::from(!anomalous && map.image_score > self.image_threshold);
        let (w, h) = (img.width(), img.height());
        let mask = match (&s.mask, anomalous) {
            (Some(m), _) => Some(data::load_mask(m, w, h)?),
            (None, false) => Some(vec![false; w as usize * h as usize]),
            (None, true) => None,
        };
        if anomalous {
            self.defective += 1;
            self.masked_defective += usize::from(mask.is_some());
        }
        if let Some(mask) = &mask {
            self.pixels.add(MapSample { values: &map.values, mask, width: map.width as usize, height: map.height as usize })?;
        }
        let roi_px = self.regions.as_ref().and_then(|t| t.roi.as_ref()).map(|r| r.at_size(w, h));
        let mut found = Vec::new();
        if let Some(t) = &mut self.regions {
            let (wu, hu) = (w as usize, h as usize);
            found = crate::regions::find_regions(&map.values, wu, hu, t.pixel_threshold, 0, roi_px.as_deref())?;
            if anomalous {
                t.on_defective += found.len();
            } else {
                t.on_good += found.len();
            }
            if let (true, Some(m)) = (anomalous, &mask) {
                let (labels, sizes) = crate::kernels::label::label_components(m, wu, hu);
                let mut hit = vec![false; sizes.len()];
                for (&l, &v) in labels.iter().zip(&map.values) {
                    if l != 0 && v > t.pixel_threshold {
                        hit[l as usize] = true;
                    }
                }
                t.defects += sizes.len() - 1;
                t.hit += hit.iter().filter(|&&x| x).count();
            }
        }
        if let Some((h, lo, hi)) = self.heat {
            let c = self.heat_counts.entry(s.defect.clone()).or_insert(0);
            if *c < h.per_kind {
                *c += 1;
                let mut ov = crate::viz::heatmap_overlay(img, &map.values, lo, hi, mask.as_deref())?;
                if let Some(px) = &roi_px {
                    crate::viz::draw_roi(&mut ov, px)?;
                }
                crate::viz::draw_regions(&mut ov, &found);
                crate::viz::draw_score_bar(&mut ov, map.image_score, self.image_threshold, map.image_score > self.image_threshold);
                let stem = s.path.file_stem().map(|x| x.to_string_lossy().into_owned()).unwrap_or_default();
                let p = h.dir.join(self.category).join(format!("{}_{stem}.png", s.defect));
                crate::viz::save_png_atomic(&ov, &p)?;
                self.heatmaps.push(p);
            }
        }
        Ok(())
    }

    /// The report of the test set: metrics, counts and the note. The scorer's own fields
    /// (shots, k, scorer, timings, pixel threshold, bank) are left empty for the caller to
    /// fill with struct-update syntax; the image threshold is the one decisions were made at.
    pub(crate) fn finish(self) -> Result<EvalReport> {
        let image = metrics::image_metrics(&self.scores, &self.labels)?;
        let images = self.scores.len();
        let (defective, masked) = (self.defective, self.masked_defective);
        let (pixel, note) = if masked == 0 {
            let note = format!(
                "pixel metrics not available: none of the {defective} defective test images has a ground-truth mask (ground_truth/<defect>/<stem>_mask.png); image metrics only"
            );
            (None, Some(note))
        } else {
            let note = (masked < defective).then(|| {
                format!(
                    "pixel metrics from {masked} of {defective} defective test images (those with ground-truth masks) and the {} good ones",
                    images - defective
                )
            });
            (Some(self.pixels.finish()?), note)
        };
        let good = images - defective;
        let t = self.regions.as_ref();
        Ok(EvalReport {
            region_recall: t.filter(|t| t.defects > 0).map(|t| t.hit as f64 / t.defects as f64),
            region_defects: t.map_or(0, |t| t.defects),
            regions_per_defective: t.filter(|_| defective > 0).map(|t| t.on_defective as f64 / defective as f64),
            regions_per_good: t.filter(|_| good > 0).map(|t| t.on_good as f64 / good as f64),
            roi: t.and_then(|t| t.roi.as_ref()).map(|r| [r.width(), r.height()]),
            category: self.category.to_string(),
            metrics: Metrics::new(image, pixel),
            image_accuracy: self.correct as f64 / images as f64,
            good_flagged_rate: (images > defective).then(|| self.good_flagged as f64 / (images - defective) as f64),
            images,
            good_images: images - defective,
            defective_images: defective,
            masked_defective: masked,
            pixel_metrics: pixel.map(|_| if self.exact { "exact" } else { "binned" }),
            pixel_note: note,
            shots: 0,
            k: 0,
            scorer: String::new(),
            encode_ms: 0.0,
            score_ms: 0.0,
            fit_s: 0.0,
            image_threshold: self.image_threshold,
            pixel_threshold: self.image_threshold,
            heatmaps: self.heatmaps,
            bank: None,
        })
    }
}

/// Colour range of a bank's heatmaps: the normal median at the cold end, the pixel threshold
/// in the middle of the scale.
pub fn heat_range(bank: &MemoryBank) -> (f32, f32) {
    let c = &bank.meta().calibration;
    let lo = c.pixel_quantiles[0];
    let hi = c.pixel_threshold + (c.pixel_threshold - lo).max(1e-6);
    (lo, hi)
}

/// Fits a bank on the category's first `shots` good training images and scores its test set.
/// `progress` sees the bank build's phases, then the scoring of the test images reported as
/// `Phase::Encode`.
pub fn evaluate_category(model: &Model, root: &Path, category: &str, opts: &EvalOptions, progress: ProgressFn<'_>) -> Result<EvalReport> {
    evaluate_with(model, root, category, opts, progress, &mut |_, _, _| Ok(()))
}

/// Each test image as scored: the decoded image, its result and the bank.
type OnScored<'a> = dyn FnMut(&image::RgbImage, &score::ScoreResult, &MemoryBank) -> Result<()> + 'a;

/// [`evaluate_category`], handing every scored test image to `on_scored` as it goes (so a
/// comparison can use it without decoding and scoring it again).
fn evaluate_with(
    model: &Model,
    root: &Path,
    category: &str,
    opts: &EvalOptions,
    progress: ProgressFn<'_>,
    on_scored: &mut OnScored<'_>,
) -> Result<EvalReport> {
    let cat: Category = data::open_category(root, category)?;
    if opts.shots == 0 {
        return Err(Error::invalid("shots must be at least 1"));
    }
    if cat.train_good.len() < opts.shots {
        return Err(Error::invalid(format!(
            "category '{category}' has {} good training images, fewer than shots = {}",
            cat.train_good.len(),
            opts.shots
        )));
    }
    check_test_set(&cat)?;
    let train: Vec<image::RgbImage> = cat.train_good[..opts.shots].iter().map(|p| load_image(p)).collect::<Result<_>>()?;
    let views: Vec<ImageView<'_>> = train.iter().map(|im| rgb_view(model, im)).collect::<Result<_>>()?;
    let t0 = std::time::Instant::now();
    let bank = MemoryBank::build(model, &views, &opts.bank, progress)?;
    let fit_s = t0.elapsed().as_secs_f64();
    drop(views);
    drop(train);
    let meta = bank.meta().clone();

    let mut acc = Accumulator::new(category, opts, meta.calibration.image_threshold, Some(heat_range(&bank)))?
        .with_regions(meta.calibration.pixel_threshold, bank.roi().cloned());
    let mut ws = Workspace::new();
    let (mut enc, mut sc) = (Vec::new(), Vec::new());
    let total = cat.test.len();
    for (i, s) in cat.test.iter().enumerate() {
        let img = load_image(&s.path)?;
        let r = score::score(model, &bank, &rgb_view(model, &img)?, &mut ws)?;
        let t = r.timings;
        enc.push((t.prepare_s + t.hiera_s + t.dinov2_s) * 1e3);
        sc.push((t.head_s + t.matching_s + t.upsample_smooth_s) * 1e3);
        acc.add(s, &img, &r.map)?;
        on_scored(&img, &r, &bank)?;
        if !progress(Progress { phase: Phase::Encode, done: i + 1, total }) {
            return Err(Error::Cancelled);
        }
    }
    Ok(EvalReport {
        shots: opts.shots,
        k: if meta.scorer == crate::bank::ScorerKind::Sinkhorn { meta.k } else { bank.vectors().nrows() },
        scorer: meta.scorer.name().to_string(),
        encode_ms: median(&mut enc),
        score_ms: median(&mut sc),
        fit_s,
        pixel_threshold: meta.calibration.pixel_threshold,
        bank: Some(bank),
        ..acc.finish()?
    })
}

/// How far a candidate model's anomaly maps move from a reference model's on the same
/// images: an INT8 export against its fp32 source, say. Each model has its own bank (built
/// from the same good images), and each map is divided by its own bank's pixel threshold
/// before comparing, so 1.0 is each model's decision level and the differences read as
/// fractions of it. What a line cares about is whether a pixel or an image lands on the same
/// side of its threshold; raw distances of two encoders are not on one scale.
#[derive(Debug, Clone, Serialize)]
pub struct MapDrift {
    /// Test images compared.
    pub images: usize,
    /// Largest per-pixel difference of the normalised maps.
    pub max_abs: f64,
    /// Mean per-pixel difference of the normalised maps.
    pub mean_abs: f64,
    /// Fraction of pixels above its threshold in one model and not in the other.
    pub pixel_disagreement: f64,
    /// Largest difference of the image scores, each divided by its bank's image threshold.
    pub image_score_max_abs: f64,
    /// Images flagged by one model and not the other.
    pub image_disagreement: usize,
    /// Whether the drift is within [`MAP_DRIFT_BOUND`].
    pub within_bound: bool,
}

/// The documented bound on [`MapDrift`] (docs/performance.md, "INT8 encoders"): the mean
/// normalised map difference and the share of pixels whose decision changes.
pub struct DriftBound {
    /// Largest accepted [`MapDrift::mean_abs`].
    pub mean_abs: f64,
    /// Largest accepted [`MapDrift::pixel_disagreement`].
    pub pixel_disagreement: f64,
}

/// See [`DriftBound`]. Chosen from measurements (docs/performance.md, section 8): the full-size
/// encoders quantized dynamically or statically, with pixel AUROC within 0.006 of fp32, moved
/// their maps by 0.023–0.026 of the threshold on average and flipped 0.6–1.2 % of pixels (the
/// flips sit where the map is near the threshold); a model with another fusion is far beyond.
pub const MAP_DRIFT_BOUND: DriftBound = DriftBound { mean_abs: 0.05, pixel_disagreement: 0.02 };

/// A reference and a candidate model evaluated on one category, and how far apart their
/// maps are.
#[derive(Debug, Serialize)]
pub struct ModelComparison {
    /// The reference model's report (e.g. fp32).
    pub reference: EvalReport,
    /// The candidate model's report (e.g. INT8).
    pub candidate: EvalReport,
    /// Candidate image AUROC minus the reference's.
    pub image_auroc_delta: f64,
    /// Candidate pixel AUROC minus the reference's, when the category has masks.
    pub pixel_auroc_delta: Option<f64>,
    /// How far the maps move.
    pub drift: MapDrift,
}

/// Evaluates `reference` and `candidate` on one category with the same options (each fits
/// its own bank on the same good images) and measures how far the candidate's maps move
/// ([`MapDrift`]). While the candidate scores each test image, the reference scores it too
/// with its own bank, so maps are compared as they come and memory does not grow with the
/// test set (three scorings per image: the reference's own evaluation needs its bank first).
/// `progress` sees both evaluations. Heatmap overlays (`opts.heatmaps`) are the candidate's.
pub fn compare_models(
    reference: &Model,
    candidate: &Model,
    root: &Path,
    category: &str,
    opts: &EvalOptions,
    progress: ProgressFn<'_>,
) -> Result<ModelComparison> {
    let ref_opts = EvalOptions { heatmaps: None, ..opts.clone() };
    let mut a = evaluate_category(reference, root, category, &ref_opts, progress).map_err(|e| e.context("reference model"))?;
    let bank_a = a.bank.take().ok_or_else(|| Error::Internal("evaluation kept no bank".into()))?;
    let norm = |t: f32| if t > 0.0 { t as f64 } else { 1.0 };
    let (pa, ia) = (norm(bank_a.meta().calibration.pixel_threshold), norm(bank_a.meta().calibration.image_threshold));
    let mut ws_a = Workspace::new();
    let (mut max_abs, mut sum_abs, mut pixels, mut disagree) = (0.0f64, 0.0f64, 0usize, 0usize);
    let (mut score_max, mut images, mut image_disagreement) = (0.0f64, 0usize, 0usize);
    let mut compare = |img: &image::RgbImage, rb: &score::ScoreResult, bank_b: &MemoryBank| -> Result<()> {
        let ra = score::score(reference, &bank_a, &rgb_view(reference, img)?, &mut ws_a)?;
        let (pb, ib) = (norm(bank_b.meta().calibration.pixel_threshold), norm(bank_b.meta().calibration.image_threshold));
        // Above the threshold = anomalous, as scoring decides (`score > threshold`).
        for (&x, &y) in ra.map.values.iter().zip(&rb.map.values) {
            let (x, y) = (x as f64 / pa, y as f64 / pb);
            let d = (x - y).abs();
            max_abs = max_abs.max(d);
            sum_abs += d;
            disagree += usize::from((x > 1.0) != (y > 1.0));
        }
        pixels += ra.map.values.len();
        let (sa, sb) = (ra.map.image_score as f64 / ia, rb.map.image_score as f64 / ib);
        score_max = score_max.max((sa - sb).abs());
        image_disagreement += usize::from((sa > 1.0) != (sb > 1.0));
        images += 1;
        Ok(())
    };
    let mut b = evaluate_with(candidate, root, category, opts, progress, &mut compare).map_err(|e| e.context("candidate model"))?;
    b.bank = None;
    let mean_abs = sum_abs / pixels.max(1) as f64;
    let pixel_disagreement = disagree as f64 / pixels.max(1) as f64;
    let drift = MapDrift {
        images,
        max_abs,
        mean_abs,
        pixel_disagreement,
        image_score_max_abs: score_max,
        image_disagreement,
        within_bound: mean_abs <= MAP_DRIFT_BOUND.mean_abs && pixel_disagreement <= MAP_DRIFT_BOUND.pixel_disagreement,
    };
    let pixel_auroc_delta = match (a.metrics.pixel_auroc, b.metrics.pixel_auroc) {
        (Some(x), Some(y)) => Some(y - x),
        _ => None,
    };
    Ok(ModelComparison {
        image_auroc_delta: b.metrics.image_auroc - a.metrics.image_auroc,
        pixel_auroc_delta,
        reference: a,
        candidate: b,
        drift,
    })
}
