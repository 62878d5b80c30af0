//! Memory bank: build, save/load, scoring, thresholds and the errors a user sees.

use std::path::{Path, PathBuf};

use crate::common::*;
use nexvitad::bank::{Augment, BankOptions, ImageScoreMode, ScorerKind};
use nexvitad::eval::{load_image, rgb_view};
use nexvitad::{Error, MemoryBank, PixelFormat, Workspace};

/// A small synthetic dataset, generated once per test binary.
fn dataset() -> &'static Path {
    static D: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    D.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("nexvitad-bank-tests-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let o = nexvitad::data::SynthOptions {
            seed: 7,
            size: 128,
            train_good: 4,
            test_good: 2,
            defects_per_type: 1,
            domains: vec!["stripes".into()],
        };
        nexvitad::data::generate(&dir, &o).expect("synth");
        dir
    })
}

fn train_images() -> Vec<image::RgbImage> {
    let cat = nexvitad::data::open_category(dataset(), "stripes").unwrap();
    cat.train_good.iter().map(|p| load_image(p).unwrap()).collect()
}

fn build(opts: &BankOptions) -> nexvitad::Result<MemoryBank> {
    let model = tiny_model();
    let imgs = train_images();
    let views: Vec<_> = imgs.iter().map(|i| rgb_view(model, i).unwrap()).collect();
    MemoryBank::build(model, &views, opts, &mut |_| true)
}

fn small_opts() -> BankOptions {
    BankOptions { k: Some(8), max_iters: 15, ..Default::default() }
}

#[test]
fn save_load_score_is_bit_identical() {
    let model = tiny_model();
    let bank = build(&small_opts()).unwrap();
    assert_eq!(bank.vectors().nrows(), 8);
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("b.bank");
    bank.save(&p).unwrap();
    let loaded = MemoryBank::load(&p, model).unwrap();
    assert_eq!(loaded.meta(), bank.meta());
    assert_eq!(loaded.vectors(), bank.vectors());
    let cat = nexvitad::data::open_category(dataset(), "stripes").unwrap();
    let img = load_image(&cat.test[0].path).unwrap();
    let mut ws = Workspace::new();
    let a = nexvitad::score::score(model, &bank, &rgb_view(model, &img).unwrap(), &mut ws).unwrap();
    let b = nexvitad::score::score(model, &loaded, &rgb_view(model, &img).unwrap(), &mut ws).unwrap();
    assert_eq!(a.map.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), b.map.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    assert_eq!(a.map.image_score.to_bits(), b.map.image_score.to_bits());
}

#[test]
fn thresholds_come_from_leave_one_out_and_are_reported() {
    let bank = build(&small_opts()).unwrap();
    let c = &bank.meta().calibration;
    assert_eq!(c.method, "leave-one-out");
    assert_eq!(c.normal_image_scores.len(), 4);
    // With 4 shots and FPR 1 %, the image threshold is the largest left-out score.
    let max = c.normal_image_scores.iter().copied().fold(f32::MIN, f32::max);
    assert_eq!(c.image_threshold, max);
    assert!(c.pixel_threshold > c.pixel_quantiles[0] && c.pixel_threshold <= c.pixel_quantiles[3].max(c.pixel_threshold));
    let model = tiny_model();
    let img = &train_images()[0];
    let r = nexvitad::score::score(model, &bank, &rgb_view(model, img).unwrap(), &mut Workspace::new()).unwrap();
    assert_eq!(r.image_threshold, c.image_threshold);
    assert_eq!(r.pixel_threshold, c.pixel_threshold);
    assert_eq!(r.is_anomalous, r.map.image_score > c.image_threshold);
}

#[test]
fn defects_score_higher_than_good_parts_on_average() {
    let model = tiny_model();
    let bank = build(&small_opts()).unwrap();
    let cat = nexvitad::data::open_category(dataset(), "stripes").unwrap();
    let mut ws = Workspace::new();
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for s in &cat.test {
        let img = load_image(&s.path).unwrap();
        let r = nexvitad::score::score(model, &bank, &rgb_view(model, &img).unwrap(), &mut ws).unwrap();
        if s.is_anomalous() { bad.push(r.map.image_score) } else { good.push(r.map.image_score) }
    }
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    assert!(mean(&bad) > mean(&good), "defective {bad:?} vs good {good:?}");
}

#[test]
fn maps_have_the_input_size_for_any_input_size() {
    let model = tiny_model();
    let bank = build(&small_opts()).unwrap();
    let mut ws = Workspace::new();
    for (w, h) in [(320u32, 240u32), (97, 203), (224, 224), (1000, 30)] {
        let px: Vec<u8> = (0..(w * h) as usize).map(|i| ((i * 31) % 256) as u8).collect();
        let view = model.view(&px, w, h, w as usize, PixelFormat::Gray8).unwrap();
        let r = nexvitad::score::score(model, &bank, &view, &mut ws).unwrap();
        assert_eq!((r.map.width, r.map.height), (w, h));
        assert_eq!(r.map.values.len(), (w * h) as usize);
        let max = r.map.values.iter().copied().fold(f32::MIN, f32::max);
        assert_eq!(r.map.image_score, max);
    }
}

#[test]
fn full_and_coreset_scorers_and_top_mean_score() {
    let model = tiny_model();
    let full = build(&BankOptions { scorer: ScorerKind::Full, ..small_opts() }).unwrap();
    let grid = full.meta().grid_h * full.meta().grid_w;
    assert_eq!(full.vectors().nrows(), 4 * grid);
    let core = build(&BankOptions { scorer: ScorerKind::Coreset, coreset_ratio: 0.25, ..small_opts() }).unwrap();
    assert_eq!(core.vectors().nrows(), grid);
    // A training image is in the full bank: its patches are at distance 0 before smoothing.
    let img = &train_images()[1];
    let (grids, _) = model.patch_features(&mut nexvitad::image::Preparer::new(), &[rgb_view(model, img).unwrap()]).unwrap();
    let mut patch = Vec::new();
    full.patch_scores(&grids[0], &mut patch).unwrap();
    assert!(patch.iter().all(|&d| d < 1e-2), "max {}", patch.iter().copied().fold(0.0, f32::max));
    let top = build(&BankOptions { image_score: ImageScoreMode::TopMean { fraction: 0.05 }, ..small_opts() }).unwrap();
    let r = nexvitad::score::score(model, &top, &rgb_view(model, img).unwrap(), &mut Workspace::new()).unwrap();
    let max = r.map.values.iter().copied().fold(f32::MIN, f32::max);
    assert!(r.map.image_score <= max && r.map.image_score > 0.0);
}

#[test]
fn augmentation_multiplies_the_bank() {
    let full = build(&BankOptions { scorer: ScorerKind::Full, augment: Augment { hflip: true, vflip: false, rot90: true }, ..small_opts() }).unwrap();
    let grid = full.meta().grid_h * full.meta().grid_w;
    assert_eq!(full.vectors().nrows(), 4 * 5 * grid);
}

#[test]
fn held_out_calibration_replaces_thresholds() {
    let model = tiny_model();
    let mut bank = build(&small_opts()).unwrap();
    let cat = nexvitad::data::open_category(dataset(), "stripes").unwrap();
    let goods: Vec<_> = cat.test.iter().filter(|s| !s.is_anomalous()).map(|s| load_image(&s.path).unwrap()).collect();
    let views: Vec<_> = goods.iter().map(|i| rgb_view(model, i).unwrap()).collect();
    bank.calibrate_held_out(model, &views, 0.05).unwrap();
    assert_eq!(bank.meta().calibration.method, "held-out");
    assert_eq!(bank.meta().calibration.normal_image_scores.len(), goods.len());
}

#[test]
fn none_means_the_model_default() {
    let m = tiny_model();
    let d = &m.manifest().defaults;
    let o = BankOptions { k: None, sigma: None, target_fpr: None, ..small_opts() };
    let meta = build(&o).unwrap().meta().clone();
    assert_eq!((meta.k, meta.sigma, meta.calibration.target_fpr), (d.k, d.sigma, d.target_fpr));
    // The defaults are the model's, not fixed numbers: a setting that differs from each
    // default is what is recorded when given.
    let given = BankOptions { k: Some(d.k - 1), sigma: Some(d.sigma + 1.0), target_fpr: Some(d.target_fpr / 2.0), ..small_opts() };
    let meta = build(&given).unwrap().meta().clone();
    assert_eq!((meta.k, meta.sigma, meta.calibration.target_fpr), (d.k - 1, d.sigma + 1.0, d.target_fpr / 2.0));
}

#[test]
fn bad_bank_options_are_named() {
    let cases: Vec<(BankOptions, &str)> = vec![
        (BankOptions { k: Some(100_000), ..small_opts() }, "k = 100000 is larger than"),
        (BankOptions { k: Some(0), ..small_opts() }, "k must be > 0 (leave it unset for the model's default, 30)"),
        (BankOptions { sigma: Some(f32::NAN), ..small_opts() }, "sigma NaN"),
        (BankOptions { sigma: Some(-1.0), ..small_opts() }, "sigma -1 must be >= 0 (leave it unset for the model's default, 4 px)"),
        (BankOptions { sigma: Some(1001.0), ..small_opts() }, "sigma 1001 must be finite and at most 1000 px"),
        (BankOptions { sigma: Some(f32::NEG_INFINITY), ..small_opts() }, "sigma -inf must be finite"),
        (BankOptions { target_fpr: Some(0.0), ..small_opts() }, "target_fpr 0 must be in (0, 1)"),
        (BankOptions { target_fpr: Some(1.5), ..small_opts() }, "target_fpr 1.5"),
        (BankOptions { coreset_ratio: 0.0, scorer: ScorerKind::Coreset, ..small_opts() }, "coreset_ratio 0"),
        (BankOptions { epsilon: 0.0, ..small_opts() }, "epsilon 0"),
        (BankOptions { image_score: ImageScoreMode::TopMean { fraction: 2.0 }, ..small_opts() }, "fraction 2"),
        (BankOptions { max_vectors: 10, ..small_opts() }, "max_vectors 10"),
        (BankOptions { batch_size: 0, ..small_opts() }, "batch_size"),
    ];
    for (o, needle) in cases {
        let e = build(&o).expect_err(needle);
        assert!(e.to_string().contains(needle), "expected '{needle}' in: {e}");
    }
}

#[test]
fn zero_images_and_cancel_are_errors() {
    let model = tiny_model();
    let e = MemoryBank::build(model, &[], &small_opts(), &mut |_| true).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)) && e.to_string().contains("at least one normal image"), "{e}");
    let imgs = train_images();
    let views: Vec<_> = imgs.iter().map(|i| rgb_view(model, i).unwrap()).collect();
    let mut calls = 0;
    let e = MemoryBank::build(model, &views, &small_opts(), &mut |p| {
        calls += 1;
        p.phase != nexvitad::bank::Phase::Cluster
    })
    .unwrap_err();
    assert!(matches!(e, Error::Cancelled), "{e}");
    assert!(calls > 0);
}

#[test]
fn damaged_bank_files_are_refused() {
    let model = tiny_model();
    let bank = build(&small_opts()).unwrap();
    let bytes = bank.to_bytes().unwrap();
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("x.bank");
    let try_load = |b: &[u8]| {
        std::fs::write(&p, b).unwrap();
        MemoryBank::load(&p, model).expect_err("damaged bank must not load")
    };
    let e = try_load(&bytes[..bytes.len() / 2]);
    assert!(matches!(e, Error::Format { .. }), "truncated: {e}");
    let e = try_load(b"");
    assert!(e.to_string().contains("empty"), "{e}");
    let mut flipped = bytes.clone();
    flipped[10] ^= 0x5A; // inside the JSON header
    let e = try_load(&flipped);
    assert!(matches!(e, Error::Format { .. }), "bit flip: {e}");
    let e = MemoryBank::load(&t.path().join("missing.bank"), model).unwrap_err();
    assert!(matches!(e, Error::Io { .. }) && e.to_string().contains("missing.bank"), "{e}");
    // A NaN in the data is named as such (checked before the checksum).
    let mut nan = bytes.clone();
    let n = nan.len();
    nan[n - 1] = 0x7F;
    nan[n - 2] = 0xC0;
    let e = try_load(&nan);
    assert!(e.to_string().contains("NaN"), "{e}");
}

/// Bank files had no checksum: a bit flipped in the vectors (a finite value) or a digit changed
/// in the stored thresholds (still valid JSON) loaded without a word, and the bank then scored
/// with silently different prototypes or decided with a different threshold. Now the file
/// carries a SHA-256 of its metadata and vectors, and any such change is a `Format` error;
/// banks written before the checksum (no `sha256` key) still load.
#[test]
fn regression_bank_bit_flip_loads_silently() {
    let model = tiny_model();
    let bank = build(&small_opts()).unwrap();
    let bytes = bank.to_bytes().unwrap();
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("x.bank");
    let load = |b: &[u8]| {
        std::fs::write(&p, b).unwrap();
        MemoryBank::load(&p, model)
    };
    assert_eq!(load(&bytes).unwrap().vectors(), bank.vectors(), "an intact bank loads");
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let data = 8 + header_len;

    // The lowest mantissa bit of one float in the middle of the vectors.
    let mut flipped = bytes.clone();
    let at = data + ((bytes.len() - data) / 2 & !3);
    flipped[at] ^= 1;
    let e = load(&flipped).expect_err("a flipped vector bit must not load");
    assert!(matches!(e, Error::Format { .. }) && e.to_string().contains("checksum"), "{e}");

    // One digit of the image threshold inside the metadata JSON: still a valid number.
    let header = std::str::from_utf8(&bytes[8..data]).unwrap();
    let key = "image_threshold\\\":";
    let pos = header.find(key).expect("threshold in the meta JSON") + key.len();
    let digit = pos + header[pos..].find(|c: char| c.is_ascii_digit()).unwrap();
    let mut edited = bytes.clone();
    edited[8 + digit] = if edited[8 + digit] == b'1' { b'2' } else { b'1' };
    let e = load(&edited).expect_err("a changed threshold must not load");
    assert!(matches!(e, Error::Format { .. }) && e.to_string().contains("checksum"), "{e}");

    // A bank without the checksum key (an older file) still loads.
    let rd = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, st_meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = st_meta.metadata().clone().unwrap();
    assert!(meta.remove("sha256").is_some(), "new banks carry a checksum");
    let v = rd.tensor("vectors").unwrap();
    let old = safetensors::serialize([("vectors", v)], Some(meta)).unwrap();
    assert_eq!(load(&old).unwrap().vectors(), bank.vectors(), "a bank without a checksum loads");
}

#[test]
fn a_bank_from_another_model_is_refused() {
    let bank = build(&small_opts()).unwrap();
    let t = tempfile::tempdir().unwrap();
    copy_model(t.path());
    let p = t.path().join("model.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    v["fusion"]["local_avg"] = serde_json::json!(1);
    std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
    let other = nexvitad::Model::open(t.path(), &options()).unwrap();
    assert_ne!(other.fingerprint(), tiny_model().fingerprint());
    let bp = t.path().join("b.bank");
    bank.save(&bp).unwrap();
    let e = MemoryBank::load(&bp, &other).unwrap_err();
    assert!(matches!(e, Error::Mismatch(_)) && e.to_string().contains("rebuild the bank"), "{e}");
    let img = &train_images()[0];
    let e = nexvitad::score::score(&other, &bank, &rgb_view(&other, img).unwrap(), &mut Workspace::new()).unwrap_err();
    assert!(matches!(e, Error::Mismatch(_)), "{e}");
}

#[test]
fn trained_head_file_round_trips_and_changes_the_fingerprint() {
    let m = tiny_model();
    let bytes = m.head().to_bytes(Default::default()).unwrap();
    let head = nexvitad::fusion::Head::from_bytes(&bytes, Path::new("head.safetensors"), m.manifest()).unwrap();
    assert_eq!(head.stages(), m.head().stages());
    let t = tempfile::tempdir().unwrap();
    copy_model(t.path());
    std::fs::write(t.path().join("head.safetensors"), &bytes).unwrap();
    let trained = nexvitad::Model::open(t.path(), &options()).unwrap();
    assert!(trained.head().is_trained());
    assert_ne!(trained.fingerprint(), m.fingerprint());
    // Same weights, so the same features.
    let img = &train_images()[0];
    let mut p = nexvitad::image::Preparer::new();
    let (a, _) = m.patch_features(&mut p, &[rgb_view(m, img).unwrap()]).unwrap();
    let (b, _) = trained.patch_features(&mut p, &[rgb_view(&trained, img).unwrap()]).unwrap();
    assert_eq!(a[0].data, b[0].data);
    std::fs::write(t.path().join("head.safetensors"), &bytes[..100]).unwrap();
    let e = match nexvitad::Model::open(t.path(), &options()) { Ok(_) => panic!("truncated head loaded"), Err(e) => e };
    assert!(e.to_string().contains("head.safetensors"), "{e}");
}

#[test]
fn recalibrate_moves_thresholds_as_a_build_at_that_fpr_would() {
    let at = |fpr: f32| build(&BankOptions { target_fpr: Some(fpr), ..small_opts() }).unwrap();
    let mut moved = at(0.01);
    assert_eq!(moved.meta().calibration.pixel_tail.len(), 100);
    for fpr in [0.1f32, 0.001, 0.01] {
        moved.recalibrate(fpr).unwrap();
        let fresh = at(fpr);
        let (a, b) = (&moved.meta().calibration, &fresh.meta().calibration);
        assert_eq!((a.target_fpr, a.image_threshold, a.pixel_threshold), (b.target_fpr, b.image_threshold, b.pixel_threshold), "fpr {fpr}");
        assert_eq!(moved.vectors(), fresh.vectors(), "vectors untouched");
    }
    // Between two tail points the stricter (higher) pixel threshold is taken.
    moved.recalibrate(0.0105).unwrap();
    let c = moved.meta().calibration.clone();
    assert_eq!(c.pixel_threshold, at(0.01).meta().calibration.pixel_threshold);
    for bad in [0.0f32, 1.0, -0.1, f32::NAN] {
        let e = moved.recalibrate(bad).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)) && e.to_string().contains("target_fpr"), "{e}");
    }
    // A bank written before the tail existed says what to do.
    let mut old = MemoryBank::load(&root().join("tests/fixtures/crosslang/tiny.bank"), tiny_model()).unwrap();
    let e = old.recalibrate(0.05).unwrap_err().to_string();
    assert!(e.contains("rebuild it (or calibrate it on held-out good images)"), "{e}");
}
