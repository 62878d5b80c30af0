//! The three loss terms of `L = L_src + λ1·L_pl + λ2·L_cons` (see docs/method.md, Training),
//! on logits shaped `[B, P]` (one row per image, one column per F1-grid cell).
//!
//! All are built from candle ops, so autodiff differentiates them; each has a hand-computed
//! tiny case in the tests.

use candle_core::{DType, Result, Tensor};

/// Additive smoothing of the Dice ratio: keeps a batch without defects (Σy = 0) well
/// defined (it then pushes the predictions towards zero instead of dividing by zero).
pub const DICE_SMOOTH: f64 = 1.0;

/// Per-element binary cross-entropy of `logits` against targets `y` in [0, 1], in the
/// overflow-free form `max(x, 0) − x·y + log(1 + e^{−|x|})`.
pub fn bce_elements(logits: &Tensor, y: &Tensor) -> Result<Tensor> {
    let soft = ((logits.abs()?.neg()?.exp()? + 1.0)?).log()?;
    (logits.relu()? - (logits * y)?)? + soft
}

/// Mean binary cross-entropy over all elements.
pub fn bce_with_logits(logits: &Tensor, y: &Tensor) -> Result<Tensor> {
    bce_elements(logits, y)?.mean_all()
}

/// Soft Dice loss over the whole batch, `1 − (2Σpy + s)/(Σp + Σy + s)` with
/// `p = sigmoid(logits)`, sums over every pixel of every image.
///
/// Over the batch rather than per image (a choice): most source images are good, and a
/// per-image Dice of an all-normal mask is `1 − s/(Σp + s)`, close to 1 until every
/// probability of the image is near zero, which drowns the defects' term.
pub fn dice_loss(logits: &Tensor, y: &Tensor) -> Result<Tensor> {
    let p = candle_nn::ops::sigmoid(logits)?;
    let inter = (&p * y)?.sum_all()?;
    let denom = ((p.sum_all()? + y.sum_all()?)? + DICE_SMOOTH)?;
    let ratio = (((inter * 2.0)? + DICE_SMOOTH)? / denom)?;
    ratio.neg()? + 1.0
}

/// The supervised source term for one head: BCE + Dice against (soft) masks.
pub fn bce_dice(logits: &Tensor, y: &Tensor) -> Result<Tensor> {
    bce_with_logits(logits, y)? + dice_loss(logits, y)?
}

/// Pseudo labels from the pseudo-labelling head: `(labels, weights)` with label 1 where the
/// defect probability exceeds 0.5, and weight 1 only where the larger of the two class
/// probabilities exceeds `theta`. Computed without gradient (the labels are targets).
pub fn pseudo_labels(pl_logits: &Tensor, theta: f64) -> Result<(Tensor, Tensor)> {
    let p = candle_nn::ops::sigmoid(&pl_logits.detach())?;
    let labels = p.ge(0.5)?.to_dtype(p.dtype())?;
    let conf = p.maximum(&(p.neg()? + 1.0)?)?;
    let weights = conf.gt(theta)?.to_dtype(p.dtype())?;
    Ok((labels, weights))
}

/// `L_pl`: cross-entropy of the target segmentation head on the pseudo-labelled pixels only
/// (mean over those; zero when none passes θ).
pub fn pseudo_label_loss(seg_logits: &Tensor, labels: &Tensor, weights: &Tensor) -> Result<Tensor> {
    let n = weights.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    let total = (bce_elements(seg_logits, labels)? * weights)?.sum_all()?;
    total / n.max(1.0)
}

/// `L_cons`: mean squared difference of the defect probabilities on an image and on its
/// perturbed copy (already mapped back to the image's geometry).
pub fn consistency_loss(logits: &Tensor, logits_perturbed: &Tensor) -> Result<Tensor> {
    let a = candle_nn::ops::sigmoid(logits)?;
    let b = candle_nn::ops::sigmoid(logits_perturbed)?;
    (a - b)?.sqr()?.mean_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(v: &[f64], shape: (usize, usize)) -> Tensor {
        Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
    }
    fn s(x: &Tensor) -> f64 {
        x.to_scalar::<f64>().unwrap()
    }
    fn sig(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    #[test]
    fn bce_matches_hand_computation() {
        // x = [0, 2, -3], y = [1, 0, 0.25]:
        // 0: log 2; 1: 2 + log(1 + e^-2); 2: 0 + 0.75 + log(1 + e^-3) ... written out:
        let x = t(&[0.0, 2.0, -3.0], (1, 3));
        let y = t(&[1.0, 0.0, 0.25], (1, 3));
        let want = [
            std::f64::consts::LN_2,
            2.0 + (1.0 + (-2.0f64).exp()).ln(),
            3.0 * 0.25 + (1.0 + (-3.0f64).exp()).ln(),
        ];
        let got = s(&bce_with_logits(&x, &y).unwrap());
        assert!((got - want.iter().sum::<f64>() / 3.0).abs() < 1e-12, "{got}");
        // Equals the textbook -[y log p + (1-y) log(1-p)].
        let textbook: f64 = [(0.0, 1.0), (2.0, 0.0), (-3.0, 0.25)]
            .iter()
            .map(|&(x, y): &(f64, f64)| -(y * sig(x).ln() + (1.0 - y) * (1.0 - sig(x)).ln()))
            .sum::<f64>()
            / 3.0;
        assert!((got - textbook).abs() < 1e-12);
        // Huge logits stay finite.
        let big = bce_with_logits(&t(&[1000.0, -1000.0], (1, 2)), &t(&[0.0, 1.0], (1, 2))).unwrap();
        assert!((s(&big) - 1000.0).abs() < 1e-9);
    }

    #[test]
    fn dice_matches_hand_computation() {
        // p = [σ(0), σ(0), σ(ln 3), σ(ln 3)] = [.5, .5, .75, .75], y = [1, 0, 0, 0]:
        // Σpy = .5, Σp = 2.5, Σy = 1: 1 - (2·.5 + 1)/(2.5 + 1 + 1) = 1 - 2/4.5.
        let l3 = 3.0f64.ln();
        let x = t(&[0.0, 0.0, l3, l3], (2, 2));
        let y = t(&[1.0, 0.0, 0.0, 0.0], (2, 2));
        let got = s(&dice_loss(&x, &y).unwrap());
        assert!((got - (1.0 - 2.0 / 4.5)).abs() < 1e-12, "{got}");
        // A perfect, confident prediction has (almost) no Dice loss; an all-normal batch
        // predicted all-normal neither.
        let sure = t(&[30.0, -30.0, -30.0, -30.0], (2, 2));
        assert!(s(&dice_loss(&sure, &y).unwrap()) < 1e-9);
        let none = t(&[0.0; 4], (2, 2));
        assert!(s(&dice_loss(&t(&[-30.0; 4], (2, 2)), &none).unwrap()) < 1e-9);
        let both = s(&bce_dice(&x, &y).unwrap());
        assert!((both - got - s(&bce_with_logits(&x, &y).unwrap())).abs() < 1e-12);
    }

    #[test]
    fn pseudo_labels_keep_confident_pixels_only() {
        // Probabilities .9, .2, .6, .05 with θ = .7: labels 1,0,1,0; confident: yes, yes, no, yes.
        let logit = |p: f64| (p / (1.0 - p)).ln();
        let pl = t(&[logit(0.9), logit(0.2), logit(0.6), logit(0.05)], (1, 4));
        let (lab, w) = pseudo_labels(&pl, 0.7).unwrap();
        assert_eq!(lab.flatten_all().unwrap().to_vec1::<f64>().unwrap(), [1.0, 0.0, 1.0, 0.0]);
        assert_eq!(w.flatten_all().unwrap().to_vec1::<f64>().unwrap(), [1.0, 1.0, 0.0, 1.0]);
        // Target head logits 0, 1, 5, -2: CE on pixels 0, 1, 3 only:
        // log 2, 1 + log(1 + e^-1), log(1 + e^-2); mean over the 3.
        let seg = t(&[0.0, 1.0, 5.0, -2.0], (1, 4));
        let got = s(&pseudo_label_loss(&seg, &lab, &w).unwrap());
        let want = (std::f64::consts::LN_2 + 1.0 + (1.0 + (-1.0f64).exp()).ln() + (1.0 + (-2.0f64).exp()).ln()) / 3.0;
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        // Nothing confident: the term is zero, not NaN.
        let (lab, w) = pseudo_labels(&pl, 0.99).unwrap();
        assert_eq!(s(&pseudo_label_loss(&seg, &lab, &w).unwrap()), 0.0);
    }

    #[test]
    fn consistency_matches_hand_computation() {
        // σ(0) = .5 vs σ(ln 3) = .75 and σ(0) vs σ(0): ((.25)² + 0)/2.
        let a = t(&[0.0, 0.0], (1, 2));
        let b = t(&[3.0f64.ln(), 0.0], (1, 2));
        let got = s(&consistency_loss(&a, &b).unwrap());
        assert!((got - 0.03125).abs() < 1e-12, "{got}");
    }
}
