//! The committed INT8 fixture (`tests/fixtures/int8/tiny-dynamic`, `tools/quantize.py
//! --mode dynamic` of models/tiny): it opens, says what it is, scores, refuses the fp32
//! model's banks, and its maps stay within the documented drift bound of its fp32 source.

use std::path::PathBuf;

use crate::common::*;
use nexvitad::bank::BankOptions;
use nexvitad::eval::{compare_models, load_image, rgb_view, EvalOptions, MAP_DRIFT_BOUND};
use nexvitad::{Error, MemoryBank, Model, Workspace};

fn int8_dir() -> PathBuf {
    root().join("tests/fixtures/int8/tiny-dynamic")
}

fn int8_model() -> &'static Model {
    static M: std::sync::OnceLock<Model> = std::sync::OnceLock::new();
    M.get_or_init(|| Model::open(int8_dir(), &options()).expect("open the INT8 fixture"))
}

/// A small synthetic category (seconds to evaluate with the tiny encoders).
fn dataset() -> &'static std::path::Path {
    static D: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    D.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("nexvitad-int8-tests-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let o = nexvitad::data::SynthOptions { seed: 5, size: 224, train_good: 6, test_good: 3, defects_per_type: 1, domains: vec!["grain".into()] };
        nexvitad::data::generate(&dir, &o).expect("synth");
        dir
    })
}

fn small_bank() -> BankOptions {
    BankOptions { k: Some(10), max_iters: 15, ..Default::default() }
}

#[test]
fn the_int8_fixture_opens_says_its_precision_and_scores() {
    let m = int8_model();
    let p = m.manifest().precision.as_ref().expect("model.json has a precision record");
    assert_eq!((p.weights.as_str(), p.method.as_str()), ("int8", "dynamic"));
    assert!(p.describe().starts_with("int8 dynamic"), "{}", p.describe());
    assert_ne!(m.fingerprint(), tiny_model().fingerprint(), "quantized encoders are another model");

    let cat = nexvitad::data::open_category(dataset(), "grain").unwrap();
    let good: Vec<_> = cat.train_good.iter().take(4).map(|p| load_image(p).unwrap()).collect();
    let views: Vec<_> = good.iter().map(|i| rgb_view(m, i).unwrap()).collect();
    let bank = MemoryBank::build(m, &views, &small_bank(), &mut |_| true).unwrap();
    let img = load_image(&cat.test[0].path).unwrap();
    let r = nexvitad::score::score(m, &bank, &rgb_view(m, &img).unwrap(), &mut Workspace::new()).unwrap();
    assert_eq!((r.map.width, r.map.height), (img.width(), img.height()));
    assert!(r.map.values.iter().all(|v| v.is_finite()) && r.map.image_score > 0.0);

    // A bank of the fp32 source is refused, and the message says why.
    let fp32_views: Vec<_> = good.iter().map(|i| rgb_view(tiny_model(), i).unwrap()).collect();
    let fp32_bank = MemoryBank::build(tiny_model(), &fp32_views, &small_bank(), &mut |_| true).unwrap();
    let err = nexvitad::score::score(m, &fp32_bank, &rgb_view(m, &img).unwrap(), &mut Workspace::new()).unwrap_err();
    assert!(matches!(err, Error::Mismatch(_)), "{err}");
    assert!(err.to_string().contains("encoders are int8 dynamic") && err.to_string().contains("built again"), "{err}");
}

#[test]
fn int8_maps_stay_within_the_documented_drift_of_fp32() {
    let opts = EvalOptions::new(6, small_bank());
    let c = compare_models(tiny_model(), int8_model(), dataset(), "grain", &opts, &mut |_| true).unwrap();
    let d = &c.drift;
    assert_eq!(d.images, 3 + 4, "3 good and one image per defect type of `grain`");
    assert!(d.within_bound, "INT8 drift {d:?} beyond the bound (mean {}, pixels {})", MAP_DRIFT_BOUND.mean_abs, MAP_DRIFT_BOUND.pixel_disagreement);
    assert!(d.mean_abs > 0.0, "the maps differ at all (else the fixture is not quantized)");
    assert!(d.max_abs >= d.mean_abs && (0.0..=1.0).contains(&d.pixel_disagreement));
    let pixel = c.pixel_auroc_delta.expect("grain has masks");
    assert!(pixel.abs() <= 0.02, "pixel AUROC moved by {pixel}");

    // The measure is not blind: the fp32 model against itself has no drift at all.
    let same = compare_models(tiny_model(), tiny_model(), dataset(), "grain", &opts, &mut |_| true).unwrap();
    assert_eq!((same.drift.max_abs, same.drift.pixel_disagreement, same.drift.image_disagreement), (0.0, 0.0, 0));
}
