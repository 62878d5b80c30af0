//! The shared cross-language fixture: one bank, one image, and the exact score and map
//! checksum the Rust API gives. The C, C++, C# and Go test suites score the same image with
//! the same bank and must reproduce these bits exactly.
//!
//! Regenerate after a deliberate numerical change with
//! `NEXVITAD_REGEN_CROSSLANG=1 cargo test --test crosslang`.

use crate::common::*;
use nexvitad::bank::BankOptions;
use nexvitad::{MemoryBank, PixelFormat, RegionOptions, Roi, RoiChoice, RoiSource, ScoreOptions, TileLayout, Tiling, Workspace};
use sha2::Digest;

const W: u32 = 96;
const H: u32 = 72;

fn dir() -> std::path::PathBuf {
    root().join("tests/fixtures/crosslang")
}

/// The test image: a 96×72 crop of the bundled sample, packed RGB8.
fn image_rgb() -> Vec<u8> {
    let img = image::open(root().join("tests/fixtures/images/sample.png")).unwrap().to_rgb8();
    let crop = image::imageops::crop_imm(&img, 40, 30, W, H).to_image();
    crop.into_raw()
}

/// The region-of-interest fixture's mask, `roi.mask`: 24 × 18 bytes, row-major, 1 = inspect,
/// with a 10 × 6 ignored corner at the top right (a label), scaled by the library to any
/// image.
const ROI_W: u32 = 24;
const ROI_H: u32 = 18;
fn roi_mask() -> Vec<u8> {
    (0..ROI_H).flat_map(|y| (0..ROI_W).map(move |x| u8::from(!(x >= 14 && y < 6)))).collect()
}

fn map_sha256(values: &[f32]) -> String {
    let mut h = sha2::Sha256::new();
    for v in values {
        h.update(v.to_le_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn regenerate() {
    let model = tiny_model();
    let mut goods = Vec::new();
    for p in ["tests/fixtures/images/sample.png", "tests/fixtures/prep/rgb_300x200.png", "tests/fixtures/prep/gray_300x200.png"] {
        goods.push(image::open(root().join(p)).unwrap().to_rgb8());
    }
    let views: Vec<_> = goods
        .iter()
        .map(|g| model.view(g.as_raw(), g.width(), g.height(), g.width() as usize * 3, PixelFormat::Rgb8).unwrap())
        .collect();
    let bank = MemoryBank::build(model, &views, &BankOptions { k: Some(8), ..Default::default() }, &mut |_| true).unwrap();
    bank.save(&dir().join("tiny.bank")).unwrap();
    // The tiled fixture: 48 px tiles at overlap 0.25, one shared bank (6 tiles of the
    // 96 × 72 test image).
    let tiling = Some(Tiling { tile: 48, overlap: 0.25, layout: TileLayout::Shared });
    let tiled = MemoryBank::build(model, &views, &BankOptions { k: Some(8), tiling, ..Default::default() }, &mut |_| true).unwrap();
    tiled.save(&dir().join("tiled.bank")).unwrap();
    // The ROI fixture: the tiny bank's settings with roi.mask as the build's (and so the
    // bank's default) region of interest.
    std::fs::write(dir().join("roi.mask"), roi_mask()).unwrap();
    let roi = Some(Roi::new(&roi_mask(), ROI_W, ROI_H, 0).unwrap());
    let with_roi = MemoryBank::build(model, &views, &BankOptions { k: Some(8), roi, ..Default::default() }, &mut |_| true).unwrap();
    with_roi.save(&dir().join("roi.bank")).unwrap();
    // The growth fixture: a growable bank of the first two good images, and the third as
    // packed RGB8 (grow_add.rgb, its size in expected_grow.json); adding it must give the
    // bank built from all three at once, whose score of image.rgb expected_grow.json holds.
    let grow = BankOptions { k: Some(8), growable: true, ..Default::default() };
    MemoryBank::build(model, &views[..2], &grow, &mut |_| true).unwrap().save(&dir().join("grow2.bank")).unwrap();
    std::fs::write(dir().join("grow_add.rgb"), goods[2].as_raw()).unwrap();
    MemoryBank::build(model, &views, &grow, &mut |_| true).unwrap().save(&dir().join("grow3.bank")).unwrap();
    std::fs::write(dir().join("image.rgb"), image_rgb()).unwrap();
}

#[test]
fn rust_api_reproduces_the_shared_fixture() {
    if std::env::var_os("NEXVITAD_REGEN_CROSSLANG").is_some() {
        regenerate();
    }
    for (bank_file, expected) in [("tiny.bank", "expected.json"), ("tiled.bank", "expected_tiled.json"), ("roi.bank", "expected_roi.json")] {
        check(bank_file, expected);
    }
    // grow3.bank is only the reference for expected_grow.json; the check adds grow_add.rgb
    // to grow2.bank and scores with the result.
    check("grow2.bank+grow_add.rgb", "expected_grow.json");
    let _ = std::fs::remove_file(dir().join("grow3.bank"));
}

/// The third good image of the growth fixture: 300 × 200 packed RGB8.
const GROW_W: u32 = 300;
const GROW_H: u32 = 200;

/// A bank file of the fixture, or `grow2.bank+grow_add.rgb`: grow2.bank with grow_add.rgb
/// added (when regenerating, the reference grow3.bank, which the grown bank must equal).
fn fixture_bank(name: &str) -> MemoryBank {
    let model = tiny_model();
    if name != "grow2.bank+grow_add.rgb" {
        return MemoryBank::load(&dir().join(name), model).expect("load shared bank (regenerate if the model changed)");
    }
    let base = MemoryBank::load(&dir().join("grow2.bank"), model).unwrap();
    assert!(base.is_growable() && base.meta().shots == 2);
    let px = std::fs::read(dir().join("grow_add.rgb")).unwrap();
    let v = model.view(&px, GROW_W, GROW_H, GROW_W as usize * 3, PixelFormat::Rgb8).unwrap();
    let grown = base.add(model, &[v], &mut |_| true).unwrap();
    if let Ok(fresh) = MemoryBank::load(&dir().join("grow3.bank"), model) {
        assert_eq!(grown.vectors(), fresh.vectors(), "grow2 + grow_add = the build on three images");
        assert_eq!(grown.meta(), fresh.meta());
    }
    grown
}

/// Scores image.rgb with `bank_file` and compares with (or, regenerating, writes) `expected`.
fn check(bank_file: &str, expected: &str) {
    let model = tiny_model();
    let bank = fixture_bank(bank_file);
    let px = std::fs::read(dir().join("image.rgb")).unwrap();
    assert_eq!(px, image_rgb(), "image.rgb must be the sample crop");
    let view = model.view(&px, W, H, W as usize * 3, PixelFormat::Rgb8).unwrap();
    let r = nexvitad::score::score(model, &bank, &view, &mut Workspace::new()).unwrap();
    let mut got = serde_json::json!({
        "width": W,
        "height": H,
        "format": "rgb8",
        "image_score_bits": format!("{:08x}", r.map.image_score.to_bits()),
        "image_score": r.map.image_score,
        "image_threshold_bits": format!("{:08x}", r.image_threshold.to_bits()),
        "is_anomalous": r.is_anomalous,
        "map_sha256": map_sha256(&r.map.values),
        "map_len": r.map.values.len(),
    });
    if bank.meta().tiles.is_some() {
        // Defect regions at a caller's pixel threshold (0.8 × the image score, so there are
        // some on this good image), every region kept: each binding reproduces this list.
        let t = r.map.image_score * 0.8;
        let o = ScoreOptions { pixel_threshold: Some(t), regions: Some(RegionOptions { min_area: 0 }), ..Default::default() };
        let x = nexvitad::score::score_with(model, &bank, &view, &o, &mut Workspace::new()).unwrap();
        got["regions_pixel_threshold_bits"] = format!("{:08x}", t.to_bits()).into();
        got["regions"] = x
            .regions
            .iter()
            .map(|g| {
                serde_json::json!({
                    "x": g.x, "y": g.y, "width": g.width, "height": g.height, "area": g.area,
                    "peak_bits": format!("{:08x}", g.peak.to_bits()),
                    "mean_bits": format!("{:08x}", g.mean.to_bits()),
                    "centroid_x_bits": format!("{:08x}", g.centroid_x.to_bits()),
                    "centroid_y_bits": format!("{:08x}", g.centroid_y.to_bits()),
                })
            })
            .collect();
    }
    if bank.is_growable() {
        got["grow_add_width"] = GROW_W.into();
        got["grow_add_height"] = GROW_H.into();
        got["shots"] = bank.meta().shots.into();
        got["pixel_threshold_bits"] = format!("{:08x}", bank.meta().calibration.pixel_threshold.to_bits()).into();
    }
    if let Some(r) = bank.roi() {
        // The ROI bank scores inside its own mask; then the same mask given per call to
        // tiny.bank (which has none), and roi.bank scored with its ROI switched off.
        assert_eq!(r.data(), &roi_mask()[..], "roi.bank keeps roi.mask");
        assert_eq!(std::fs::read(dir().join("roi.mask")).unwrap(), roi_mask(), "roi.mask");
        assert_eq!(r.width(), ROI_W);
        assert_eq!(r.height(), ROI_H);
        assert_eq!(x_roi_source(&r_source(&bank, model, &view, RoiChoice::Bank)), "bank");
        got["roi_width"] = ROI_W.into();
        got["roi_height"] = ROI_H.into();
        let plain = MemoryBank::load(&dir().join("tiny.bank"), model).unwrap();
        let per_call = Roi::new(&roi_mask(), ROI_W, ROI_H, 0).unwrap();
        let c = r_source(&plain, model, &view, RoiChoice::Mask(&per_call));
        assert_eq!(c.roi, RoiSource::Caller);
        got["caller_roi_image_score_bits"] = format!("{:08x}", c.map.image_score.to_bits()).into();
        got["caller_roi_map_sha256"] = map_sha256(&c.map.values).into();
        let off = r_source(&bank, model, &view, RoiChoice::Everywhere);
        assert_eq!(off.roi, RoiSource::None);
        got["ignore_roi_image_score_bits"] = format!("{:08x}", off.map.image_score.to_bits()).into();
        got["ignore_roi_map_sha256"] = map_sha256(&off.map.values).into();
    }
    let path = dir().join(expected);
    if std::env::var_os("NEXVITAD_REGEN_CROSSLANG").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
    }
    let want: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(got, want, "the Rust API no longer reproduces tests/fixtures/crosslang/{expected}");
}

fn r_source(bank: &MemoryBank, model: &nexvitad::Model, view: &nexvitad::ImageView<'_>, roi: RoiChoice<'_>) -> nexvitad::ScoreResult {
    let o = ScoreOptions { roi, ..Default::default() };
    nexvitad::score::score_with(model, bank, view, &o, &mut Workspace::new()).unwrap()
}

fn x_roi_source(r: &nexvitad::ScoreResult) -> &'static str {
    match r.roi {
        RoiSource::None => "none",
        RoiSource::Bank => "bank",
        RoiSource::Caller => "caller",
    }
}
