//! Evaluating a bank on one MVTec-layout category: fit on M good training images, score
//! every test image, compute the MVTec AD metrics.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::bank::{BankOptions, MemoryBank, Progress, ProgressFn};
use crate::data::{self, Category};
use crate::error::{Error, Result};
use crate::image::{ImageView, PixelFormat};
use crate::metrics::{self, MapSample, Metrics};
use crate::model::Model;
use crate::score::{self, AnomalyMap, Workspace};

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Normal training images used for the bank (the first M, in file-name order).
    pub shots: usize,
    pub bank: BankOptions,
}

/// One scored test image.
#[derive(Debug, Clone)]
pub struct ScoredSample {
    pub path: PathBuf,
    pub defect: String,
    pub map: AnomalyMap,
    pub mask: Vec<bool>,
}

/// The result of [`evaluate_category`]; `--json` prints the flattened summary.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub category: String,
    #[serde(flatten)]
    pub metrics: Metrics,
    pub images: usize,
    pub shots: usize,
    pub k: usize,
    pub scorer: String,
    /// Median per image: preparation + both encoders.
    pub encode_ms: f64,
    /// Median per image: fusion head + matching + upsampling and smoothing.
    pub score_ms: f64,
    pub fit_s: f64,
    pub image_threshold: f32,
    pub pixel_threshold: f32,
    #[serde(skip)]
    pub samples: Vec<ScoredSample>,
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

/// Fits a bank on the category's first `shots` good training images and scores its test set.
/// `progress` sees the bank build's stages, then `Stage::Calibrate`-free scoring steps
/// reported as `Stage::Encode` over the test images.
pub fn evaluate_category(model: &Model, root: &Path, category: &str, opts: &EvalOptions, progress: ProgressFn<'_>) -> Result<EvalReport> {
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
    if cat.test.is_empty() {
        return Err(Error::invalid(format!("category '{category}' has no test images")));
    }
    let train: Vec<image::RgbImage> = cat.train_good[..opts.shots].iter().map(|p| load_image(p)).collect::<Result<_>>()?;
    let views: Vec<ImageView<'_>> = train.iter().map(|im| rgb_view(model, im)).collect::<Result<_>>()?;
    let t0 = std::time::Instant::now();
    let bank = MemoryBank::build(model, &views, &opts.bank, progress)?;
    let fit_s = t0.elapsed().as_secs_f64();

    let mut ws = Workspace::new();
    let mut samples = Vec::with_capacity(cat.test.len());
    let mut enc = Vec::new();
    let mut sc = Vec::new();
    let total = cat.test.len();
    for (i, s) in cat.test.iter().enumerate() {
        let img = load_image(&s.path)?;
        let mask = match &s.mask {
            Some(m) => data::load_mask(m, img.width(), img.height())?,
            None => vec![false; img.width() as usize * img.height() as usize],
        };
        let r = score::score(model, &bank, &rgb_view(model, &img)?, &mut ws)?;
        let t = r.timings;
        enc.push((t.prepare_s + t.hiera_s + t.dinov2_s) * 1e3);
        sc.push((t.head_s + t.matching_s + t.upsample_smooth_s) * 1e3);
        samples.push(ScoredSample { path: s.path.clone(), defect: s.defect.clone(), map: r.map, mask });
        if !progress(Progress { stage: crate::bank::Stage::Encode, done: i + 1, total }) {
            return Err(Error::Cancelled);
        }
    }
    let image_scores: Vec<f32> = samples.iter().map(|s| s.map.image_score).collect();
    let labels: Vec<bool> = samples.iter().map(|s| s.defect != data::mvtec::GOOD).collect();
    let maps: Vec<MapSample<'_>> = samples
        .iter()
        .map(|s| MapSample { values: &s.map.values, mask: &s.mask, width: s.map.width as usize, height: s.map.height as usize })
        .collect();
    let m = metrics::evaluate(&image_scores, &labels, &maps)?;
    let meta = bank.meta().clone();
    Ok(EvalReport {
        category: category.to_string(),
        metrics: m,
        images: samples.len(),
        shots: opts.shots,
        k: if meta.scorer == crate::bank::ScorerKind::Sinkhorn { meta.k } else { bank.vectors().nrows() },
        scorer: meta.scorer.name().to_string(),
        encode_ms: median(&mut enc),
        score_ms: median(&mut sc),
        fit_s,
        image_threshold: meta.calibration.image_threshold,
        pixel_threshold: meta.calibration.pixel_threshold,
        samples,
        bank: Some(bank),
    })
}
