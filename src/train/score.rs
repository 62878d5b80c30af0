//! The decoder as a scorer (the paper's ablation): the trained target segmentation head's
//! defect probability replaces the memory-bank distance; upsampling, smoothing and the
//! image score are the bank path's own.

use std::path::Path;

use crate::bank::{ImageScoreMode, Progress, ProgressFn, Phase};
use crate::data;
use crate::error::{Error, Result};
use crate::eval::{check_test_set, load_image, median, rgb_view, Accumulator, EvalOptions, EvalReport};
use crate::image::Preparer;
use crate::model::Model;
use crate::map::{map_from_patches, AnomalyMap, MapWorkspace};

use super::decoder::{Decoder, DECODER_FILE};

/// Loads a trained model's decoder, refusing one trained with another head.
pub fn load_decoder(model: &Model) -> Result<Decoder> {
    let path = model.dir().join(DECODER_FILE);
    if !path.is_file() {
        return Err(Error::invalid(format!(
            "model folder '{}' has no {DECODER_FILE}: the decoder scorer needs a model written by `nexvitad train`",
            model.dir().display()
        )));
    }
    let dec = Decoder::load(&path)?;
    if dec.fingerprint() != Some(model.fingerprint()) {
        return Err(Error::Mismatch(format!(
            "'{}' was trained with another head than this model's (fingerprint differs)",
            path.display()
        )));
    }
    Ok(dec)
}

/// The decoder's anomaly map of one image (defect probability, upsampled and smoothed).
pub fn decoder_map(model: &Model, dec: &Decoder, img: &crate::image::ImageView<'_>, sigma: f32, prep: &mut Preparer, ws: &mut MapWorkspace) -> Result<(AnomalyMap, f64, f64)> {
    let t0 = std::time::Instant::now();
    let batch = model.prepare(prep, std::slice::from_ref(img))?;
    let (feats, _) = model.encode_prepared(&batch)?;
    let t1 = std::time::Instant::now();
    let fused = super::ops::fused_tensors(model.head(), &feats, 0)?;
    let (_, _, gh, gw) = fused[0].dims4().map_err(super::ops::tensor_err)?;
    let probs = dec.probabilities(&fused)?;
    let map = map_from_patches(&probs, gw, gh, img.width(), img.height(), sigma, ImageScoreMode::Max, None, ws)?;
    Ok((map, (t1 - t0).as_secs_f64(), t1.elapsed().as_secs_f64()))
}

/// Scores a category's test images with the trained decoder and computes the metrics.
/// σ is `opts.bank.sigma` (`None`: the model's default), checked as a bank build checks it;
/// shots and the other bank options do not apply and are not checked. Overlays (if asked) use the probability scale [0, 1].
pub fn evaluate_decoder(model: &Model, root: &Path, category: &str, opts: &EvalOptions, progress: ProgressFn<'_>) -> Result<EvalReport> {
    let dec = load_decoder(model)?;
    let sigma = opts.bank.sigma_or_default(model)?;
    let cat = data::open_category(root, category)?;
    check_test_set(&cat)?;
    // Probabilities: 0.5 is the decoder's own decision boundary.
    let threshold = 0.5;
    let mut acc = Accumulator::new(category, opts, threshold, Some((0.0, 1.0)))?;
    let mut ws = MapWorkspace::new();
    let mut prep = Preparer::new();
    let (mut enc, mut sc) = (Vec::new(), Vec::new());
    let total = cat.test.len();
    for (i, s) in cat.test.iter().enumerate() {
        let img = load_image(&s.path)?;
        let (map, e, t) = decoder_map(model, &dec, &rgb_view(model, &img)?, sigma, &mut prep, &mut ws)?;
        enc.push(e * 1e3);
        sc.push(t * 1e3);
        acc.add(s, &img, &map)?;
        if !progress(Progress { phase: Phase::Encode, done: i + 1, total }) {
            return Err(Error::Cancelled);
        }
    }
    Ok(EvalReport {
        scorer: "decoder".into(),
        encode_ms: median(&mut enc),
        score_ms: median(&mut sc),
        pixel_threshold: threshold,
        ..acc.finish()?
    })
}
