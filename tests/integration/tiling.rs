//! Tiled banks: native-resolution tiles, shared and per-position banks, stitching, fold
//! calibration, the bank file, and the errors a user sees.

use std::path::{Path, PathBuf};

use crate::common::*;
use image::RgbImage;
use nexvitad::bank::{BankOptions, ScorerKind};
use nexvitad::eval::{load_image, rgb_view};
use nexvitad::{Error, MemoryBank, TileLayout, Tiling, Workspace};

/// 256² weave textures, generated once per test binary.
fn dataset() -> &'static Path {
    static D: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    D.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("nexvitad-tiling-tests-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let o = nexvitad::data::SynthOptions {
            seed: 3,
            size: 256,
            train_good: 19,
            test_good: 2,
            defects_per_type: 1,
            domains: vec!["weave".into()],
        };
        nexvitad::data::generate(&dir, &o).expect("synth");
        dir
    })
}

/// A 2 × 2 mosaic (512²) of the given cells.
fn mosaic(cells: [&RgbImage; 4]) -> RgbImage {
    let mut out = RgbImage::new(512, 512);
    for (i, c) in cells.iter().enumerate() {
        image::imageops::replace(&mut out, *c, 256 * (i % 2) as i64, 256 * (i / 2) as i64);
    }
    out
}

/// Good 512² mosaics of distinct train images and one
/// defective mosaic (its mask too): a 256² defective cell among good ones.
struct Data {
    good: Vec<RgbImage>,
    defective: RgbImage,
    mask: Vec<bool>,
}

fn data() -> &'static Data {
    static D: std::sync::OnceLock<Data> = std::sync::OnceLock::new();
    D.get_or_init(|| {
        let cat = nexvitad::data::open_category(dataset(), "weave").unwrap();
        let train: Vec<RgbImage> = cat.train_good.iter().map(|p| load_image(p).unwrap()).collect();
        // Every cell a different image: mosaics share no tile.
        let good = (0..4).map(|r| mosaic([&train[4 * r], &train[4 * r + 1], &train[4 * r + 2], &train[4 * r + 3]])).collect();
        let bad = cat.test.iter().find(|s| s.mask.is_some()).expect("a defective test image");
        let cell = load_image(&bad.path).unwrap();
        let m = image::open(bad.mask.as_ref().unwrap()).unwrap().to_luma8();
        let defective = mosaic([&train[16], &train[17], &cell, &train[18]]);
        let mut mask = vec![false; 512 * 512];
        for (x, y, p) in m.enumerate_pixels() {
            mask[((y + 256) * 512 + x) as usize] = p[0] > 127;
        }
        Data { good, defective, mask }
    })
}

/// Tiled bank options; small K and few iterations where the test checks structure, not
/// detection quality (that is `tiling_beats_the_whole_image_resize_on_a_small_defect`).
fn tiled(tile: u32, overlap: f32, layout: TileLayout) -> BankOptions {
    BankOptions { k: Some(8), max_iters: 10, tiling: Some(Tiling { tile, overlap, layout }), ..Default::default() }
}

fn build(images: &[RgbImage], opts: &BankOptions) -> nexvitad::Result<MemoryBank> {
    let model = tiny_model();
    let views: Vec<_> = images.iter().map(|i| rgb_view(model, i).unwrap()).collect();
    MemoryBank::build(model, &views, opts, &mut |_| true)
}

fn score(bank: &MemoryBank, img: &RgbImage) -> nexvitad::Result<nexvitad::ScoreResult> {
    let model = tiny_model();
    nexvitad::score::score(model, bank, &rgb_view(model, img)?, &mut Workspace::new())
}

/// Pixel AUROC by ranks (ties averaged), for the defect-mask check below.
fn auroc(values: &[f32], mask: &[bool]) -> f64 {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let (mut rank_sum, mut i) = (0.0f64, 0);
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && values[idx[j + 1]] == values[idx[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += (i..=j).filter(|&k| mask[idx[k]]).count() as f64 * r;
        i = j + 1;
    }
    let pos = mask.iter().filter(|&&m| m).count() as f64;
    let neg = mask.len() as f64 - pos;
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

/// The JSON header of a safetensors file.
fn header(p: &Path) -> String {
    let bytes = std::fs::read(p).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    String::from_utf8(bytes[8..8 + n].to_vec()).unwrap()
}

#[test]
fn shared_tile_bank_scores_at_native_resolution_and_round_trips() {
    let d = data();
    let bank = build(&d.good, &BankOptions { scorer: ScorerKind::Full, ..tiled(224, 0.0, TileLayout::Shared) }).unwrap();
    let tm = bank.meta().tiles.clone().expect("tiled bank records its tiles");
    assert_eq!((tm.tile_w, tm.tile_h), (224, 224));
    assert!(tm.positions.is_none());
    assert_eq!(bank.vectors().nrows(), 4 * 9 * 28 * 28, "full bank: every patch of every tile");
    assert_eq!(bank.meta().calibration.method, "leave-one-out");
    let r = score(&bank, &d.defective).unwrap();
    assert_eq!((r.map.width, r.map.height), (512, 512));
    // The defect lies inside one 256² cell; at native resolution it stands out.
    let a = auroc(&r.map.values, &d.mask);
    assert!(a > 0.8, "pixel AUROC of the tiled map {a}");

    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("tiled.bank");
    bank.save(&p).unwrap();
    let text = header(&p);
    assert!(text.contains("\"format_version\":\"2\""), "tiled banks are format version 2");
    assert!(text.contains("\"tile\":\"224\"") && text.contains("\"tile_layout\":\"shared\""), "plain keys for other readers");
    let loaded = MemoryBank::load(&p, tiny_model()).unwrap();
    assert_eq!(loaded.meta(), bank.meta());
    let r2 = score(&loaded, &d.defective).unwrap();
    assert_eq!(r2.map.values, r.map.values, "a loaded tiled bank scores bit-identically");
}

#[test]
fn whole_image_banks_stay_format_version_1() {
    let d = data();
    let bank = build(&d.good, &BankOptions { k: Some(8), max_iters: 10, ..Default::default() }).unwrap();
    assert!(bank.meta().tiles.is_none());
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("whole.bank");
    bank.save(&p).unwrap();
    let text = header(&p);
    assert!(text.contains("\"format_version\":\"1\"") && !text.contains("\"tile\"") && !text.contains("\\\"tiles\\\""), "{text}");
}

#[test]
fn tiling_beats_the_whole_image_resize_on_a_small_defect() {
    let d = data();
    // The same options but tiling: the crack in one 256² cell of a 512² image is
    // halved by the whole-image resize and found at native resolution (measured here:
    // pixel AUROC 0.21 whole vs 0.79 tiled with Sinkhorn K = 30; 0.35 vs 0.91 with the
    // full bank).
    for scorer in [ScorerKind::Sinkhorn, ScorerKind::Full] {
        let whole = build(&d.good, &BankOptions { scorer, ..Default::default() }).unwrap();
        let tiling = Some(Tiling { tile: 224, overlap: 0.0, layout: TileLayout::Shared });
        let tiles = build(&d.good, &BankOptions { scorer, tiling, ..Default::default() }).unwrap();
        let a_whole = auroc(&score(&whole, &d.defective).unwrap().map.values, &d.mask);
        let a_tiled = auroc(&score(&tiles, &d.defective).unwrap().map.values, &d.mask);
        assert!(a_tiled > a_whole + 0.2, "{scorer:?}: tiled pixel AUROC {a_tiled} vs whole-image {a_whole}");
    }
}

#[test]
fn per_position_bank_has_a_part_per_tile_and_refuses_other_sizes() {
    let d = data();
    let bank = build(&d.good, &tiled(224, 0.25, TileLayout::PerPosition)).unwrap();
    let tm = bank.meta().tiles.clone().unwrap();
    let pos = tm.positions.clone().expect("per-position banks record their positions");
    // 512 px in 224 px tiles every 168 px: 0, 168, 288 (last shifted inward).
    assert_eq!((pos.cols, pos.rows, pos.image_width, pos.image_height), (3, 3, 512, 512));
    assert_eq!(bank.parts(), 9);
    assert_eq!(pos.rows_per_position, vec![8; 9]);
    let r = score(&bank, &d.defective).unwrap();
    assert_eq!(r.map.values.len(), 512 * 512);

    let small = image::imageops::crop_imm(&d.defective, 0, 0, 500, 512).to_image();
    let e = score(&bank, &small).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    assert!(e.to_string().contains("one bank per tile position of 512x512 images; an image of 500x512"), "{e}");

    let mut mixed = d.good.clone();
    mixed[2] = image::imageops::crop_imm(&d.good[2], 0, 0, 480, 512).to_image();
    let e = build(&mixed, &tiled(224, 0.0, TileLayout::PerPosition)).unwrap_err();
    assert!(e.to_string().contains("needs images of one size: images[0] is 512x512, images[2] is 480x512"), "{e}");
    // A shared bank takes mixed sizes.
    let shared = build(&mixed, &tiled(224, 0.0, TileLayout::Shared)).unwrap();
    assert_eq!(score(&shared, &small).unwrap().map.values.len(), 500 * 512);
}

#[test]
fn a_non_square_image_keeps_its_aspect_ratio() {
    // 600 × 300 in 224² tiles at overlap 0.3: 3 × 2 tiles, none squashed, none padded.
    let flat = RgbImage::from_fn(600, 300, |x, y| image::Rgb([(x % 200) as u8, (y % 150) as u8, 90]));
    let bank = build(std::slice::from_ref(&flat), &tiled(224, 0.3, TileLayout::Shared)).unwrap();
    assert_eq!(bank.meta().calibration.method, "in-sample");
    let r = score(&bank, &flat).unwrap();
    assert_eq!((r.map.width, r.map.height), (600, 300));
    assert!(r.map.values.iter().all(|v| v.is_finite() && *v >= 0.0));
    // In-sample: the image is its own bank, so it is not above its own threshold.
    assert!(!r.is_anomalous, "score {} threshold {}", r.map.image_score, r.image_threshold);
}

#[test]
fn calibration_holds_out_images_in_at_most_four_folds() {
    let d = data();
    let mut six = d.good.clone();
    six.push(d.good[0].clone());
    six.push(d.good[1].clone());
    let bank = build(&six, &tiled(256, 0.0, TileLayout::Shared)).unwrap();
    let c = &bank.meta().calibration;
    assert_eq!(c.method, "4-fold");
    assert_eq!(c.normal_image_scores.len(), 6);
    assert!(c.normal_image_scores.iter().all(|v| v.is_finite() && *v > 0.0));
    assert!(c.image_threshold >= c.normal_image_scores.iter().cloned().fold(f32::MIN, f32::max) - 1e-6);
}

#[test]
fn full_and_coreset_scorers_tile_too() {
    let d = data();
    for scorer in [ScorerKind::Full, ScorerKind::Coreset] {
        let o = BankOptions { scorer, coreset_ratio: 0.2, ..tiled(256, 0.0, TileLayout::PerPosition) };
        let bank = build(&d.good[..2], &o).unwrap();
        assert_eq!(bank.parts(), 4);
        let r = score(&bank, &d.defective).unwrap();
        assert!(r.map.image_score.is_finite());
    }
}

#[test]
fn bad_tiling_is_a_clear_error() {
    let d = data();
    let cases: &[(Tiling, &str)] = &[
        (Tiling { tile: 600, overlap: 0.0, layout: TileLayout::Shared }, "images[0]: tile 600x600 is larger than the 512x512 image"),
        (Tiling { tile: 224, overlap: 1.0, layout: TileLayout::Shared }, "tile overlap 1 must be in [0, 1)"),
        (Tiling { tile: 224, overlap: -0.5, layout: TileLayout::Shared }, "tile overlap -0.5 must be in [0, 1)"),
        (Tiling { tile: 224, overlap: f32::NAN, layout: TileLayout::Shared }, "tile overlap NaN must be in [0, 1)"),
        (Tiling { tile: 0, overlap: 0.0, layout: TileLayout::Shared }, "tile must be > 0"),
    ];
    for (t, want) in cases {
        let e = build(&d.good[..1], &BankOptions { tiling: Some(*t), ..Default::default() }).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
        assert!(e.to_string().contains(want), "{e} (expected '{want}')");
    }
    let e = build(&d.good[..1], &tiled(8, 0.9, TileLayout::Shared)).unwrap_err();
    assert!(matches!(e, Error::LimitExceeded(_)) && e.to_string().contains("MAX_TILES"), "{e}");
    let bank = build(&d.good[..1], &tiled(224, 0.0, TileLayout::Shared)).unwrap();
    let tiny = RgbImage::new(100, 512);
    let e = score(&bank, &tiny).unwrap_err();
    assert!(e.to_string().contains("tile 224x224 is larger than the 100x512 image"), "{e}");
}

#[test]
fn tiled_build_can_be_cancelled() {
    let d = data();
    let model = tiny_model();
    let views: Vec<_> = d.good.iter().map(|i| rgb_view(model, i).unwrap()).collect();
    let mut calls = 0;
    let e = MemoryBank::build(model, &views, &tiled(224, 0.0, TileLayout::Shared), &mut |p| {
        calls += 1;
        !(p.phase == nexvitad::bank::Phase::Encode && p.done >= 2)
    })
    .unwrap_err();
    assert!(matches!(e, Error::Cancelled));
    assert!(calls >= 1);
}

#[test]
fn regions_and_caller_thresholds_on_a_tiled_map() {
    use nexvitad::{RegionOptions, ScoreOptions};
    let d = data();
    let model = tiny_model();
    let bank = build(&d.good, &BankOptions { scorer: ScorerKind::Full, ..tiled(224, 0.0, TileLayout::Shared) }).unwrap();
    let view = rgb_view(model, &d.defective).unwrap();
    let mut ws = Workspace::new();
    let plain = nexvitad::score::score(model, &bank, &view, &mut ws).unwrap();
    // Default options: the same result as `score`, no regions, the bank's thresholds.
    let same = nexvitad::score::score_with(model, &bank, &view, &ScoreOptions::default(), &mut ws).unwrap();
    assert_eq!(same.map.values, plain.map.values);
    assert!(same.regions.is_empty() && !same.image_threshold_from_caller && !same.pixel_threshold_from_caller);
    assert_eq!((same.image_threshold, same.pixel_threshold), (bank.meta().calibration.image_threshold, bank.meta().calibration.pixel_threshold));

    // Regions at the bank's pixel threshold: every pixel above it is in exactly one region.
    let all = ScoreOptions { regions: Some(RegionOptions { min_area: 0 }), ..Default::default() };
    let r = nexvitad::score::score_with(model, &bank, &view, &all, &mut ws).unwrap();
    let above = r.map.values.iter().filter(|&&v| v > r.pixel_threshold).count() as u64;
    assert!(above > 0, "the defect is above the bank's pixel threshold");
    assert_eq!(r.regions.iter().map(|g| g.area).sum::<u64>(), above);
    assert!(r.regions.windows(2).all(|w| w[0].peak >= w[1].peak), "sorted by peak");
    for g in &r.regions {
        assert!(g.x + g.width <= 512 && g.y + g.height <= 512 && g.area <= (g.width * g.height) as u64);
        assert!(g.peak > r.pixel_threshold && g.mean <= g.peak && g.mean > r.pixel_threshold);
    }
    // At a threshold just under the defect's own peak a region covers the defect (with
    // the tiny random encoders the bank's 1 % threshold lies above this crack, and image
    // borders score highest: see docs/tiling.md).
    let defect_peak = r.map.values.iter().zip(&d.mask).filter(|(_, &m)| m).map(|(&v, _)| v).fold(f32::MIN, f32::max);
    let o = ScoreOptions { pixel_threshold: Some(defect_peak * 0.95), regions: Some(RegionOptions::default()), ..Default::default() };
    let rd = nexvitad::score::score_with(model, &bank, &view, &o, &mut ws).unwrap();
    let hit = |g: &nexvitad::Region| (g.y..g.y + g.height).any(|y| (g.x..g.x + g.width).any(|x| d.mask[(y * 512 + x) as usize]));
    assert!(rd.regions.iter().any(hit), "no region hits the defect: {:?}", rd.regions);
    // min_area drops small regions.
    let big = ScoreOptions { regions: Some(RegionOptions { min_area: 50 }), ..Default::default() };
    let rb = nexvitad::score::score_with(model, &bank, &view, &big, &mut ws).unwrap();
    assert!(rb.regions.iter().all(|g| g.area >= 50) && rb.regions.len() <= r.regions.len());

    // The line moves the thresholds: the decision and the regions follow, and say so.
    let s = plain.map.image_score;
    for (t, want) in [(s * 0.99, true), (s * 1.01, false)] {
        let o = ScoreOptions { image_threshold: Some(t), pixel_threshold: Some(s * 0.9), regions: Some(RegionOptions::default()), ..Default::default() };
        let x = nexvitad::score::score_with(model, &bank, &view, &o, &mut ws).unwrap();
        assert_eq!(x.is_anomalous, want);
        assert!(x.image_threshold_from_caller && x.pixel_threshold_from_caller);
        assert_eq!((x.image_threshold, x.pixel_threshold), (t, s * 0.9));
        assert!(x.regions.iter().all(|g| g.peak > s * 0.9));
        assert_eq!(x.map.values, plain.map.values, "thresholds never change the map");
    }
    for bad in [f32::NAN, -1.0, f32::INFINITY] {
        let e = nexvitad::score::score_with(model, &bank, &view, &ScoreOptions { image_threshold: Some(bad), ..Default::default() }, &mut ws).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)) && e.to_string().contains("image_threshold"), "{e}");
    }
}

#[test]
fn the_tile_batch_changes_how_tiles_are_grouped_not_the_scores() {
    let d = data();
    let bank = build(&d.good, &tiled(224, 0.25, TileLayout::Shared)).unwrap();
    let base = score(&bank, &d.defective).unwrap();
    assert_eq!(tiny_model().options().effective_tile_batch(), nexvitad::model::DEFAULT_TILE_BATCH.cpu);
    // Two images of 9 tiles: 5 per call leaves a short last call and mixes the images in
    // the second; 256 puts every tile into one call.
    let tiles = bank.meta().tiles.as_ref().unwrap().grid(512, 512).unwrap().len();
    assert!(!(2 * tiles).is_multiple_of(5) && !tiles.is_multiple_of(5), "{tiles} tiles: choose a batch that leaves a remainder");
    for b in [1usize, 5, 256] {
        let opts = nexvitad::ModelOptions { tile_batch: std::num::NonZeroUsize::new(b), ..options() };
        let model = nexvitad::Model::open(tiny_model_dir(), &opts).unwrap();
        assert_eq!(model.options().effective_tile_batch(), b);
        // Two images in one call: the second image's tiles share calls with the first's.
        let views = [rgb_view(&model, &d.defective).unwrap(), rgb_view(&model, &d.good[0]).unwrap()];
        let rs = nexvitad::score::score_batch(&model, &bank, &views, &mut Workspace::new()).unwrap();
        let diff = rs[0].map.values.iter().zip(&base.map.values).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        let range = base.map.values.iter().copied().fold(f32::MIN, f32::max);
        assert!(diff <= 1e-4 * range, "tile_batch {b}: map moved by {diff} (max {range})");
        assert!((rs[0].map.image_score - base.map.image_score).abs() <= 1e-4 * base.map.image_score.abs().max(1.0), "tile_batch {b}: image score");
    }
    let too_many = nexvitad::ModelOptions { tile_batch: std::num::NonZeroUsize::new(nexvitad::model::MAX_TILE_BATCH + 1), ..options() };
    let err = nexvitad::Model::open(tiny_model_dir(), &too_many).err().expect("a tile batch above the cap is refused");
    assert!(matches!(err, Error::InvalidArgument(_)) && err.to_string().contains("tile_batch 257"), "{err}");
}
