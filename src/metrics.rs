//! Evaluation metrics with MVTec AD conventions: image AUROC, pixel AUROC, pixel AP, PRO, F1-max.
//!
//! Every ranking metric is computed from one sorted pass (O(n log n)) that collapses tied scores
//! into a single threshold, so ties are treated exactly as scikit-learn's `roc_auc_score` /
//! `average_precision_score` and the official MVTec `compute_pro` treat them. The committed
//! references in `tests/fixtures/metrics/` (made by `make_refs.py` from sklearn and a
//! reimplementation of MVTec's script) pin this down.

use rayon::slice::ParallelSliceMut;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::kernels::label::label_components;

/// One anomaly map with its ground-truth mask, both row-major `height x width`.
#[derive(Debug, Clone, Copy)]
pub struct MapSample<'a> {
    /// Anomaly values, `height × width`.
    pub values: &'a [f32],
    /// Ground truth, `height × width`; `true` marks a defective pixel.
    pub mask: &'a [bool],
    /// Map width in pixels.
    pub width: usize,
    /// Map height in pixels.
    pub height: usize,
}

/// All metrics of one evaluation. Values are fractions in [0, 1].
///
/// Pixel metrics need ground-truth masks; they are `None` (JSON `null`) when no defective
/// test image has one (image-level OK/NG labels only).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Metrics {
    /// Area under the ROC curve of the image scores (defective = positive).
    pub image_auroc: f64,
    /// Average precision of the image scores (defective = positive).
    pub image_ap: f64,
    /// Image-level maximum F1 over all thresholds.
    pub f1_max: f64,
    /// Area under the ROC curve of the pixel scores; `None` without masks.
    pub pixel_auroc: Option<f64>,
    /// Average precision of the pixel scores; `None` without masks.
    pub pixel_ap: Option<f64>,
    /// Area under the PRO curve up to FPR 0.3, normalised by 0.3.
    pub pro: Option<f64>,
}

/// The image-level part of [`Metrics`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageMetrics {
    /// See [`Metrics::image_auroc`].
    pub auroc: f64,
    /// See [`Metrics::image_ap`].
    pub ap: f64,
    /// See [`Metrics::f1_max`].
    pub f1_max: f64,
}

/// The pixel-level part of [`Metrics`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PixelMetrics {
    /// See [`Metrics::pixel_auroc`].
    pub auroc: f64,
    /// See [`Metrics::pixel_ap`].
    pub ap: f64,
    /// See [`Metrics::pro`].
    pub pro: f64,
}

impl Metrics {
    /// Joins image metrics with pixel metrics, if there are any.
    pub fn new(image: ImageMetrics, pixel: Option<PixelMetrics>) -> Self {
        Self {
            image_auroc: image.auroc,
            image_ap: image.ap,
            f1_max: image.f1_max,
            pixel_auroc: pixel.map(|p| p.auroc),
            pixel_ap: pixel.map(|p| p.ap),
            pro: pixel.map(|p| p.pro),
        }
    }
}

/// The FPR limit MVTec AD uses for PRO.
pub const PRO_FPR_LIMIT: f64 = 0.3;

/// Cumulative (true positive, false positive) counts at each distinct threshold, from the
/// highest score down: entry j counts every sample with score >= the j-th distinct score.
struct Curve {
    tp: Vec<u64>,
    fp: Vec<u64>,
    n_pos: u64,
    n_neg: u64,
}

fn check_scores(what: &str, scores: &[f32], labels: &[bool]) -> Result<()> {
    if scores.len() != labels.len() {
        return Err(Error::invalid(format!(
            "{what}: {} scores but {} labels",
            scores.len(),
            labels.len()
        )));
    }
    if scores.is_empty() {
        return Err(Error::invalid(format!("{what}: no scores")));
    }
    if let Some(i) = scores.iter().position(|s| s.is_nan()) {
        return Err(Error::invalid(format!("{what}: score {i} is NaN")));
    }
    Ok(())
}

/// Sorts (score, label) pairs by descending score and accumulates counts per distinct score.
/// `-0.0` and `0.0` compare equal and so form one threshold, as in numpy.
fn curve(pairs: &mut [(f32, bool)]) -> Curve {
    pairs.par_sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    let (mut tp, mut fp) = (Vec::new(), Vec::new());
    let (mut t, mut f) = (0u64, 0u64);
    for (i, &(s, l)) in pairs.iter().enumerate() {
        if l {
            t += 1;
        } else {
            f += 1;
        }
        // Close a threshold group at its last member.
        if i + 1 == pairs.len() || pairs[i + 1].0 != s {
            tp.push(t);
            fp.push(f);
        }
    }
    Curve { tp, fp, n_pos: t, n_neg: f }
}

fn build_curve(what: &str, scores: &[f32], labels: &[bool]) -> Result<Curve> {
    check_scores(what, scores, labels)?;
    let mut pairs: Vec<(f32, bool)> = scores.iter().copied().zip(labels.iter().copied()).collect();
    Ok(curve(&mut pairs))
}

impl Curve {
    fn need_both(&self, what: &str) -> Result<()> {
        if self.n_pos == 0 || self.n_neg == 0 {
            return Err(Error::invalid(format!(
                "{what}: needs both classes, got {} positive and {} negative samples",
                self.n_pos, self.n_neg
            )));
        }
        Ok(())
    }

    fn need_pos(&self, what: &str) -> Result<()> {
        if self.n_pos == 0 {
            return Err(Error::invalid(format!("{what}: no positive samples")));
        }
        Ok(())
    }

    /// Trapezoidal area under the ROC curve. The doubled area is an integer, so this is exact
    /// up to the final division (ties contribute a half, as in sklearn).
    fn auroc(&self) -> f64 {
        let (mut area2, mut tp0, mut fp0) = (0u128, 0u64, 0u64);
        for (&tp, &fp) in self.tp.iter().zip(&self.fp) {
            area2 += (fp - fp0) as u128 * (tp + tp0) as u128;
            tp0 = tp;
            fp0 = fp;
        }
        area2 as f64 / (2.0 * self.n_pos as f64 * self.n_neg as f64)
    }

    /// sklearn's step-sum AP: sum over thresholds of (recall increase) x precision.
    fn average_precision(&self) -> f64 {
        let (mut ap, mut tp0) = (0.0f64, 0u64);
        for (&tp, &fp) in self.tp.iter().zip(&self.fp) {
            if tp > tp0 {
                ap += (tp - tp0) as f64 / self.n_pos as f64 * (tp as f64 / (tp + fp) as f64);
            }
            tp0 = tp;
        }
        ap
    }

    /// max over thresholds of 2PR/(P+R) = 2TP / (TP + FP + #positives).
    fn f1_max(&self) -> f64 {
        self.tp
            .iter()
            .zip(&self.fp)
            .map(|(&tp, &fp)| 2.0 * tp as f64 / (tp + fp + self.n_pos) as f64)
            .fold(0.0, f64::max)
    }
}

/// Area under the ROC curve, identical to `sklearn.metrics.roc_auc_score`.
/// Errors when lengths differ, inputs are empty, a score is NaN, or only one class is present.
pub fn auroc(scores: &[f32], labels: &[bool]) -> Result<f64> {
    let c = build_curve("auroc", scores, labels)?;
    c.need_both("auroc")?;
    Ok(c.auroc())
}

/// Average precision, identical to `sklearn.metrics.average_precision_score`.
/// Needs at least one positive (with no negatives it is 1.0, as in sklearn).
pub fn average_precision(scores: &[f32], labels: &[bool]) -> Result<f64> {
    let c = build_curve("average_precision", scores, labels)?;
    c.need_pos("average_precision")?;
    Ok(c.average_precision())
}

/// Maximum F1 over all thresholds of the precision-recall curve. Needs at least one positive.
pub fn f1_max(scores: &[f32], labels: &[bool]) -> Result<f64> {
    let c = build_curve("f1_max", scores, labels)?;
    c.need_pos("f1_max")?;
    Ok(c.f1_max())
}

fn check_map(i: usize, m: &MapSample) -> Result<()> {
    let n = m.width.checked_mul(m.height).filter(|&n| n > 0).ok_or_else(|| {
        Error::invalid(format!("map {i}: bad size {}x{}", m.width, m.height))
    })?;
    if m.values.len() != n || m.mask.len() != n {
        return Err(Error::invalid(format!(
            "map {i}: {}x{} needs {n} values and mask pixels, got {} and {}",
            m.width,
            m.height,
            m.values.len(),
            m.mask.len()
        )));
    }
    if let Some(p) = m.values.iter().position(|v| v.is_nan()) {
        return Err(Error::invalid(format!("map {i}: value {p} is NaN")));
    }
    Ok(())
}

/// Normalised area under the per-region-overlap curve up to `fpr_limit`, as in the official
/// MVTec AD evaluation (`compute_pro` + `trapezoid(..., x_max=fpr_limit) / fpr_limit`).
///
/// Regions are the 8-connected components of every mask. At each distinct threshold t
/// (exact curve, no binning): PRO(t) = mean over all regions of the fraction of the region's
/// pixels with value >= t, FPR(t) = fraction of normal pixels with value >= t. The curve runs
/// from (0,0) to (1,1), is integrated by trapezoids up to `fpr_limit` with linear interpolation
/// at the limit, and divided by `fpr_limit`.
pub fn pro_auc(samples: &[MapSample], fpr_limit: f64) -> Result<f64> {
    check_fpr_limit(fpr_limit)?;
    if samples.is_empty() {
        return Err(Error::invalid("pro_auc: no maps"));
    }
    // Each pixel carries a global region id (0 = normal pixel); the weight of a region pixel is
    // 1 / region size.
    let total: usize = samples.iter().map(|m| m.values.len()).sum();
    let mut pixels: Vec<(f32, u32)> = Vec::with_capacity(total);
    let mut inv_size = vec![0.0f64];
    for (i, m) in samples.iter().enumerate() {
        check_map(i, m)?;
        let (labels, sizes) = label_components(m.mask, m.width, m.height);
        let base = inv_size.len() as u32 - 1;
        inv_size.extend(sizes[1..].iter().map(|&s| 1.0 / s as f64));
        pixels.extend(
            m.values.iter().zip(&labels).map(|(&v, &l)| (v, if l == 0 { 0 } else { base + l })),
        );
    }
    let n_regions = (inv_size.len() - 1) as u64;
    let n_ok = pixels.iter().filter(|p| p.1 == 0).count() as u64;
    pixels.par_sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    // One point per distinct value, from the highest down.
    let (mut fp, mut pro_sum) = (0u64, 0.0f64);
    let points = pixels.iter().enumerate().filter_map(|(i, &(v, region))| {
        if region == 0 {
            fp += 1;
        } else {
            pro_sum += inv_size[region as usize];
        }
        (i + 1 == pixels.len() || pixels[i + 1].0 != v).then_some((fp, pro_sum))
    });
    pro_area(points, n_ok, n_regions, fpr_limit)
}

fn check_fpr_limit(fpr_limit: f64) -> Result<()> {
    if !(fpr_limit > 0.0 && fpr_limit <= 1.0) {
        return Err(Error::invalid(format!("pro_auc: fpr_limit {fpr_limit} must be in (0, 1]")));
    }
    Ok(())
}

/// The one integration of the PRO curve, shared by the exact and the binned computation.
/// `points` are cumulative (normal pixels at or above the threshold, sum over region pixels at
/// or above it of 1 / region size), one per threshold from the highest down.
fn pro_area(points: impl Iterator<Item = (u64, f64)>, n_ok: u64, n_regions: u64, fpr_limit: f64) -> Result<f64> {
    if n_regions == 0 {
        return Err(Error::invalid("pro_auc: the masks contain no defect region"));
    }
    if n_ok == 0 {
        return Err(Error::invalid("pro_auc: the masks contain no normal pixel"));
    }
    // Walk the curve, integrating segment by segment until FPR passes the limit.
    let (n_ok, n_regions) = (n_ok as f64, n_regions as f64);
    let (mut x0, mut y0, mut area) = (0.0f64, 0.0f64, 0.0f64);
    let mut segment = |x1: f64, y1: f64| -> bool {
        if x1 > fpr_limit {
            let y_lim = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0);
            area += 0.5 * (y_lim + y0) * (fpr_limit - x0);
            return false;
        }
        area += 0.5 * (y1 + y0) * (x1 - x0);
        x0 = x1;
        y0 = y1;
        true
    };
    let mut open = true;
    for (fp, pro_sum) in points {
        let x = (fp as f64 / n_ok).clamp(0.0, 1.0);
        let y = (pro_sum / n_regions).clamp(0.0, 1.0);
        if !segment(x, y) {
            open = false;
            break;
        }
    }
    if open {
        // MVTec appends (1, 1); the last real point already has FPR 1, so this only matters
        // when fpr_limit == 1.
        segment(1.0, 1.0);
    }
    Ok(area / fpr_limit)
}

/// Image AUROC, AP and F1-max from one score per image. Both classes are needed.
pub fn image_metrics(scores: &[f32], labels: &[bool]) -> Result<ImageMetrics> {
    let img = build_curve("image scores", scores, labels)?;
    img.need_both("image scores")?;
    Ok(ImageMetrics { auroc: img.auroc(), ap: img.average_precision(), f1_max: img.f1_max() })
}

/// Pixel AUROC, AP and PRO (FPR limit 0.3) from all pixels of all maps pooled, exactly.
pub fn pixel_metrics(maps: &[MapSample]) -> Result<PixelMetrics> {
    if maps.is_empty() {
        return Err(Error::invalid("evaluate: no anomaly maps"));
    }
    let total: usize = maps.iter().map(|m| m.values.len()).sum();
    let mut pairs = Vec::with_capacity(total);
    for (i, m) in maps.iter().enumerate() {
        check_map(i, m)?;
        pairs.extend(m.values.iter().copied().zip(m.mask.iter().copied()));
    }
    let px = curve(&mut pairs);
    drop(pairs);
    px.need_both("pixel scores")?;
    Ok(PixelMetrics { auroc: px.auroc(), ap: px.average_precision(), pro: pro_auc(maps, PRO_FPR_LIMIT)? })
}

/// Computes all metrics exactly: image AUROC, AP and F1-max from image scores, and pixel
/// AUROC, pixel AP and PRO (FPR limit 0.3) from all pixels of all maps pooled.
pub fn evaluate(image_scores: &[f32], image_labels: &[bool], maps: &[MapSample]) -> Result<Metrics> {
    let image = image_metrics(image_scores, image_labels)?;
    Ok(Metrics::new(image, Some(pixel_metrics(maps)?)))
}

/// Bits of a pixel value's order key kept by the binned accumulator: 2^20 bins, i.e. the sign,
/// the exponent and the 11 leading mantissa bits. Values within a relative 2^-11 (≈ 0.05 %) of
/// each other can share a bin, and a bin acts as one tied threshold.
const BIN_BITS: u32 = 20;

/// A monotone map from f32 to u32 (IEEE total order, -0 folded into +0), so that binning by
/// the top bits keeps the order of values.
fn order_key(v: f32) -> u32 {
    let b = if v == 0.0 { 0.0f32.to_bits() } else { v.to_bits() };
    if b >> 31 == 1 {
        !b
    } else {
        b | 0x8000_0000
    }
}

/// Pixel metrics accumulated map by map, so an evaluation need not keep its maps.
///
/// *Binned* (the default): per-bin counts of normal and defect pixels and per-bin sums of
/// 1 / region size for PRO, over 2^20 bins of the value's order key (scale-free: no range
/// is needed up front). Memory is fixed (24 MiB of bins, touched lazily) whatever the number
/// of images; AUROC, AP and PRO come from the same curves as the exact metrics with each bin
/// one threshold (tests hold them within 1e-3 of exact on the synthetic set).
/// *Exact*: keeps every map and mask and computes the exact metrics at the end; memory grows
/// with the test set (for small sets and for checking).
pub struct PixelAccumulator {
    inner: Acc,
    images: usize,
}

enum Acc {
    Exact(Vec<(Vec<f32>, Vec<bool>, usize, usize)>),
    Binned { pos: Vec<u64>, neg: Vec<u64>, pro: Vec<f64>, n_regions: u64 },
}

impl PixelAccumulator {
    /// A binned (bounded-memory) accumulator, or an exact one that keeps every map.
    pub fn new(exact: bool) -> Self {
        let inner = if exact {
            Acc::Exact(Vec::new())
        } else {
            let n = 1usize << BIN_BITS;
            Acc::Binned { pos: vec![0; n], neg: vec![0; n], pro: vec![0.0; n], n_regions: 0 }
        };
        Self { inner, images: 0 }
    }

    /// Maps added so far.
    pub fn images(&self) -> usize {
        self.images
    }

    /// Adds one map with its ground-truth mask (row-major `height x width`).
    pub fn add(&mut self, m: MapSample<'_>) -> Result<()> {
        check_map(self.images, &m)?;
        match &mut self.inner {
            Acc::Exact(v) => v.push((m.values.to_vec(), m.mask.to_vec(), m.width, m.height)),
            Acc::Binned { pos, neg, pro, n_regions } => {
                let (labels, sizes) = label_components(m.mask, m.width, m.height);
                *n_regions += sizes.len() as u64 - 1;
                let inv: Vec<f64> = sizes.iter().map(|&s| if s == 0 { 0.0 } else { 1.0 / s as f64 }).collect();
                for (&v, &l) in m.values.iter().zip(&labels) {
                    let b = (order_key(v) >> (32 - BIN_BITS)) as usize;
                    if l == 0 {
                        neg[b] += 1;
                    } else {
                        pos[b] += 1;
                        pro[b] += inv[l as usize];
                    }
                }
            }
        }
        self.images += 1;
        Ok(())
    }

    /// Pixel AUROC, AP and PRO of everything added. Errors without defect or normal pixels.
    pub fn finish(self) -> Result<PixelMetrics> {
        match self.inner {
            Acc::Exact(v) => {
                let maps: Vec<MapSample<'_>> =
                    v.iter().map(|(values, mask, w, h)| MapSample { values, mask, width: *w, height: *h }).collect();
                pixel_metrics(&maps)
            }
            Acc::Binned { pos, neg, pro, n_regions } => {
                if self.images == 0 {
                    return Err(Error::invalid("evaluate: no anomaly maps"));
                }
                // Bins from the highest value down; each non-empty bin is one threshold.
                let bins = || (0..pos.len()).rev().filter(|&b| pos[b] + neg[b] > 0);
                let (mut t, mut f) = (0u64, 0u64);
                let (mut tp, mut fp) = (Vec::new(), Vec::new());
                for b in bins() {
                    t += pos[b];
                    f += neg[b];
                    tp.push(t);
                    fp.push(f);
                }
                let px = Curve { tp, fp, n_pos: t, n_neg: f };
                px.need_both("pixel scores")?;
                let (mut fpc, mut sum) = (0u64, 0.0f64);
                let points = bins().map(|b| {
                    fpc += neg[b];
                    sum += pro[b];
                    (fpc, sum)
                });
                let pro = pro_area(points, f, n_regions, PRO_FPR_LIMIT)?;
                Ok(PixelMetrics { auroc: px.auroc(), ap: px.average_precision(), pro })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    const REFS: &str = include_str!("../tests/fixtures/metrics/refs.json");

    #[derive(Deserialize)]
    struct ScoreCase {
        name: String,
        scores: Vec<f32>,
        labels: Vec<u8>,
        auroc: f64,
        ap: f64,
        f1_max: f64,
    }

    #[derive(Deserialize)]
    struct MapCase {
        name: String,
        width: usize,
        height: usize,
        /// One flat row-major array per map.
        values: Vec<Vec<f32>>,
        masks: Vec<Vec<u8>>,
        /// Number of 8-connected regions per mask.
        regions: Vec<usize>,
        fpr_limit: f64,
        pro: f64,
        pixel_auroc: f64,
        pixel_ap: f64,
    }

    #[derive(Deserialize)]
    struct Refs {
        score_cases: Vec<ScoreCase>,
        map_cases: Vec<MapCase>,
    }

    fn refs() -> Refs {
        serde_json::from_str(REFS).expect("refs.json parses")
    }

    fn bools(v: &[u8]) -> Vec<bool> {
        v.iter().map(|&b| b != 0).collect()
    }

    #[test]
    fn metrics_score_cases_match_sklearn() {
        let r = refs();
        assert!(r.score_cases.len() >= 5);
        for c in &r.score_cases {
            let l = bools(&c.labels);
            let a = auroc(&c.scores, &l).unwrap();
            let p = average_precision(&c.scores, &l).unwrap();
            let f = f1_max(&c.scores, &l).unwrap();
            assert!((a - c.auroc).abs() < 1e-6, "{}: auroc {a} vs {}", c.name, c.auroc);
            assert!((p - c.ap).abs() < 1e-6, "{}: ap {p} vs {}", c.name, c.ap);
            assert!((f - c.f1_max).abs() < 1e-6, "{}: f1 {f} vs {}", c.name, c.f1_max);
        }
    }

    #[test]
    fn metrics_map_cases_match_mvtec_reference() {
        let r = refs();
        assert!(!r.map_cases.is_empty());
        for c in &r.map_cases {
            let masks: Vec<Vec<bool>> = c.masks.iter().map(|m| bools(m)).collect();
            let samples: Vec<MapSample> = c
                .values
                .iter()
                .zip(&masks)
                .map(|(v, m)| MapSample { values: v, mask: m, width: c.width, height: c.height })
                .collect();
            for (m, &n) in masks.iter().zip(&c.regions) {
                let (_, sizes) = label_components(m, c.width, c.height);
                assert_eq!(sizes.len() - 1, n, "{}: region count", c.name);
            }
            let pro = pro_auc(&samples, c.fpr_limit).unwrap();
            assert!((pro - c.pro).abs() < 1e-6, "{}: pro {pro} vs {}", c.name, c.pro);
            let flat_v: Vec<f32> = c.values.concat();
            let flat_m: Vec<bool> = masks.concat();
            let pa = auroc(&flat_v, &flat_m).unwrap();
            let pp = average_precision(&flat_v, &flat_m).unwrap();
            assert!((pa - c.pixel_auroc).abs() < 1e-6, "{}: pixel auroc", c.name);
            assert!((pp - c.pixel_ap).abs() < 1e-6, "{}: pixel ap", c.name);
        }
    }

    #[test]
    fn metrics_evaluate_pools_pixels() {
        let r = refs();
        let c = r.map_cases.iter().find(|c| c.fpr_limit == PRO_FPR_LIMIT).expect("a 0.3 case");
        let masks: Vec<Vec<bool>> = c.masks.iter().map(|m| bools(m)).collect();
        let samples: Vec<MapSample> = c
            .values
            .iter()
            .zip(&masks)
            .map(|(v, m)| MapSample { values: v, mask: m, width: c.width, height: c.height })
            .collect();
        let img_scores: Vec<f32> =
            c.values.iter().map(|v| v.iter().copied().fold(f32::MIN, f32::max)).collect();
        let img_labels: Vec<bool> = masks.iter().map(|m| m.iter().any(|&b| b)).collect();
        let m = evaluate(&img_scores, &img_labels, &samples).unwrap();
        assert!((m.pro.unwrap() - c.pro).abs() < 1e-6);
        assert!((m.pixel_auroc.unwrap() - c.pixel_auroc).abs() < 1e-6);
        assert!((m.pixel_ap.unwrap() - c.pixel_ap).abs() < 1e-6);
        assert_eq!(m.image_auroc, auroc(&img_scores, &img_labels).unwrap());
        assert_eq!(m.image_ap, average_precision(&img_scores, &img_labels).unwrap());
        assert_eq!(m.f1_max, f1_max(&img_scores, &img_labels).unwrap());
        // The binned accumulator agrees with the exact pooled metrics on the reference case,
        // and the exact accumulator is the exact computation.
        for exact in [false, true] {
            let mut acc = PixelAccumulator::new(exact);
            for s in &samples {
                acc.add(*s).unwrap();
            }
            let p = acc.finish().unwrap();
            let tol: f64 = if exact { 1e-6 } else { 1e-3 };
            assert!((p.auroc - c.pixel_auroc).abs() <= tol, "exact={exact}: auroc {} vs {}", p.auroc, c.pixel_auroc);
            assert!((p.ap - c.pixel_ap).abs() <= tol, "exact={exact}: ap {} vs {}", p.ap, c.pixel_ap);
            assert!((p.pro - c.pro).abs() <= tol, "exact={exact}: pro {} vs {}", p.pro, c.pro);
        }
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains("\"pixel_ap\""));
    }

    #[test]
    fn metrics_perfect_and_inverted() {
        let s = [0.1, 0.2, 0.3, 0.8, 0.9];
        let l = [false, false, false, true, true];
        assert_eq!(auroc(&s, &l).unwrap(), 1.0);
        assert_eq!(average_precision(&s, &l).unwrap(), 1.0);
        assert_eq!(f1_max(&s, &l).unwrap(), 1.0);
        let inv: Vec<bool> = l.iter().map(|b| !b).collect();
        assert_eq!(auroc(&s, &inv).unwrap(), 0.0);
        // All tied: the ROC is the diagonal.
        assert_eq!(auroc(&[0.5; 4], &[true, false, true, false]).unwrap(), 0.5);
    }

    #[test]
    fn metrics_perfect_pro() {
        let (w, h) = (6, 5);
        let mask: Vec<bool> = (0..w * h).map(|p| p % w < 2 && p / w < 2).collect();
        let values: Vec<f32> = mask.iter().map(|&m| if m { 1.0 } else { 0.0 }).collect();
        let s = [MapSample { values: &values, mask: &mask, width: w, height: h }];
        assert!((pro_auc(&s, 0.3).unwrap() - 1.0).abs() < 1e-12);
        let inv: Vec<f32> = values.iter().map(|v| 1.0 - v).collect();
        let s = [MapSample { values: &inv, mask: &mask, width: w, height: h }];
        assert!(pro_auc(&s, 0.3).unwrap().abs() < 1e-12);
    }

    #[test]
    fn metrics_components_use_8_connectivity() {
        // Two diagonal pixels touch (one region); a separate pixel far away is another.
        #[rustfmt::skip]
        let m = [
            true,  false, false, false,
            false, true,  false, true,
            false, false, false, false,
        ];
        let (labels, sizes) = label_components(&m, 4, 3);
        assert_eq!(sizes, vec![0, 2, 1]);
        assert_eq!(labels[0], labels[5]);
        assert_ne!(labels[0], labels[7]);
    }

    /// Smooth random maps with blob defects (seeded), like anomaly maps: binned vs exact.
    #[test]
    fn metrics_binned_matches_exact_on_random_maps() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let (w, h) = (64usize, 48usize);
        let mut maps = Vec::new();
        for i in 0..12 {
            let (cx, cy, r) = (rng.random_range(8..56) as f32, rng.random_range(8..40) as f32, rng.random_range(2..7) as f32);
            let defective = i % 3 != 0;
            let mut values = vec![0.0f32; w * h];
            let mut mask = vec![false; w * h];
            for y in 0..h {
                for x in 0..w {
                    let d2 = (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2);
                    let inside = defective && d2 <= r * r;
                    mask[y * w + x] = inside;
                    let bump = if defective { 1.2 * (-d2 / (2.0 * r * r)).exp() } else { 0.0 };
                    values[y * w + x] = 2.0 + bump + rng.random_range(0.0..2.0f32);
                }
            }
            maps.push((values, mask));
        }
        let samples: Vec<MapSample> = maps.iter().map(|(v, m)| MapSample { values: v, mask: m, width: w, height: h }).collect();
        let exact = pixel_metrics(&samples).unwrap();
        let mut acc = PixelAccumulator::new(false);
        for s in &samples {
            acc.add(*s).unwrap();
        }
        assert_eq!(acc.images(), samples.len());
        let b = acc.finish().unwrap();
        assert!((b.auroc - exact.auroc).abs() <= 1e-3, "auroc {} vs {}", b.auroc, exact.auroc);
        assert!((b.ap - exact.ap).abs() <= 1e-3, "ap {} vs {}", b.ap, exact.ap);
        assert!((b.pro - exact.pro).abs() <= 1e-3, "pro {} vs {}", b.pro, exact.pro);
        // Not a trivial case: the metrics are neither perfect nor chance.
        assert!(exact.auroc > 0.6 && exact.auroc < 0.999 && exact.pro > 0.1 && exact.pro < 0.99, "{exact:?}");
    }

    #[test]
    fn metrics_order_key_is_monotone() {
        let v = [f32::NEG_INFINITY, -3.5, -1e-30, -0.0, 0.0, 1e-30, 0.25, 1.0, 7.5, f32::INFINITY];
        for p in v.windows(2) {
            assert!(order_key(p[0]) <= order_key(p[1]), "{} {}", p[0], p[1]);
        }
        assert_eq!(order_key(-0.0), order_key(0.0));
    }

    #[test]
    fn metrics_binned_needs_both_pixel_classes() {
        let v = [1.0f32; 6];
        let m = [false; 6];
        let mut acc = PixelAccumulator::new(false);
        acc.add(MapSample { values: &v, mask: &m, width: 3, height: 2 }).unwrap();
        assert!(acc.finish().is_err());
        assert!(PixelAccumulator::new(false).finish().is_err());
        let mut acc = PixelAccumulator::new(false);
        assert!(acc.add(MapSample { values: &v, mask: &m, width: 2, height: 2 }).is_err(), "size mismatch");
    }

    #[test]
    fn metrics_bad_inputs_are_errors() {
        assert!(auroc(&[0.1, 0.2], &[true]).is_err());
        assert!(auroc(&[], &[]).is_err());
        assert!(auroc(&[0.1, 0.2], &[true, true]).is_err());
        assert!(auroc(&[0.1, 0.2], &[false, false]).is_err());
        assert!(auroc(&[0.1, f32::NAN], &[true, false]).is_err());
        assert!(average_precision(&[0.1, 0.2], &[false, false]).is_err());
        assert!(f1_max(&[0.1, 0.2], &[false, false]).is_err());
        let v = [0.0f32; 6];
        let m = [false; 6];
        let s = [MapSample { values: &v, mask: &m, width: 3, height: 2 }];
        assert!(pro_auc(&s, 0.3).is_err(), "no regions");
        let s = [MapSample { values: &v, mask: &m, width: 4, height: 2 }];
        assert!(pro_auc(&s, 0.3).is_err(), "size mismatch");
        let m2 = [true, false, false, false, false, false];
        let s = [MapSample { values: &v, mask: &m2, width: 3, height: 2 }];
        assert!(pro_auc(&s, 0.0).is_err(), "fpr_limit 0");
        assert!(pro_auc(&s, 0.3).is_ok());
        assert!(evaluate(&[0.1, 0.2], &[true, false], &[]).is_err());
    }
}
