//! Regions of interest: what enters the bank, what the map and score show, the bank's
//! default against a per-call mask, the bank file, tiles, and the errors a user sees.

use std::path::{Path, PathBuf};

use crate::common::*;
use image::RgbImage;
use nexvitad::bank::{Augment, BankOptions, ScorerKind};
use nexvitad::eval::{load_image, rgb_view};
use nexvitad::{Error, MemoryBank, RegionOptions, Roi, RoiChoice, RoiSource, ScoreOptions, TileLayout, Tiling, Workspace};

/// The synthetic `serial` domain at 128²: a nut with a printed label whose digits change
/// from image to image, and its `roi.png` that excludes the label.
fn dataset() -> &'static Path {
    static D: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    D.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("nexvitad-roi-tests-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let o = nexvitad::data::SynthOptions {
            seed: 5,
            size: 128,
            train_good: 6,
            test_good: 4,
            defects_per_type: 1,
            domains: vec!["serial".into()],
        };
        nexvitad::data::generate(&dir, &o).expect("synth");
        dir
    })
}

struct Data {
    train: Vec<RgbImage>,
    test_good: Vec<RgbImage>,
    roi: Roi,
}

fn data() -> &'static Data {
    static D: std::sync::OnceLock<Data> = std::sync::OnceLock::new();
    D.get_or_init(|| {
        let cat = nexvitad::data::open_category(dataset(), "serial").unwrap();
        let train = cat.train_good.iter().map(|p| load_image(p).unwrap()).collect();
        let test_good = cat.test.iter().filter(|s| s.mask.is_none()).map(|s| load_image(&s.path).unwrap()).collect();
        let m = image::open(dataset().join("serial/roi.png")).unwrap().to_luma8();
        let roi = Roi::new(m.as_raw(), m.width(), m.height(), 0).unwrap();
        Data { train, test_good, roi }
    })
}

fn build(images: &[RgbImage], o: BankOptions) -> nexvitad::Result<MemoryBank> {
    let views: Vec<_> = images.iter().map(|i| rgb_view(tiny_model(), i)).collect::<nexvitad::Result<_>>()?;
    MemoryBank::build(tiny_model(), &views, &o, &mut |_| true)
}

fn score(bank: &MemoryBank, img: &RgbImage, roi: RoiChoice<'_>) -> nexvitad::ScoreResult {
    let o = ScoreOptions { roi, regions: Some(RegionOptions::default()), ..Default::default() };
    nexvitad::score::score_with(tiny_model(), bank, &rgb_view(tiny_model(), img).unwrap(), &o, &mut Workspace::new()).unwrap()
}

/// Inside cells of the tiny model's bank grid for the serial ROI, counted the library's way
/// (any pixel inside), from the mask itself.
fn inside_cells(roi: &Roi, size: u32, grid: usize) -> usize {
    let px = roi.at_size(size, size);
    let s = size as usize;
    (0..grid * grid)
        .filter(|&c| {
            let (cx, cy) = (c % grid, c / grid);
            let span = |i: usize| (i * s / grid, ((i + 1) * s).div_ceil(grid));
            let ((x0, x1), (y0, y1)) = (span(cx), span(cy));
            (y0..y1).any(|y| (x0..x1).any(|x| px[y * s + x] != 0))
        })
        .count()
}

#[test]
fn only_patches_inside_enter_the_bank() {
    let d = data();
    let full = build(&d.train[..3], BankOptions { scorer: ScorerKind::Full, ..Default::default() }).unwrap();
    let with = build(&d.train[..3], BankOptions { scorer: ScorerKind::Full, roi: Some(d.roi.clone()), ..Default::default() }).unwrap();
    let g = full.meta().grid_w;
    let per_image = full.vectors().nrows() / 3;
    assert_eq!(per_image, g * full.meta().grid_h);
    let inside = inside_cells(&d.roi, 128, g);
    assert!(inside < per_image, "the label covers some patches wholly ({inside} of {per_image} inside)");
    assert_eq!(with.vectors().nrows(), 3 * inside);
    assert_eq!(with.roi(), Some(&d.roi));
    assert_eq!(with.meta().roi, Some([d.roi.width(), d.roi.height()]));
    // A mirrored copy keeps the mirrored cells: as many rows again.
    let aug = Augment { hflip: true, ..Default::default() };
    let flipped = build(&d.train[..3], BankOptions { scorer: ScorerKind::Full, roi: Some(d.roi.clone()), augment: aug, ..Default::default() }).unwrap();
    assert_eq!(flipped.vectors().nrows(), 6 * inside);
}

#[test]
fn the_map_is_zero_outside_and_the_score_comes_from_inside() {
    let d = data();
    let bank = build(&d.train[..4], BankOptions { roi: Some(d.roi.clone()), ..Default::default() }).unwrap();
    let img = &d.test_good[0];
    let r = score(&bank, img, RoiChoice::Bank);
    assert_eq!(r.roi, RoiSource::Bank);
    let px = d.roi.at_size(img.width(), img.height());
    let outside: Vec<f32> = r.map.values.iter().zip(&px).filter(|(_, &m)| m == 0).map(|(&v, _)| v).collect();
    assert!(!outside.is_empty());
    assert!(outside.iter().all(|&v| v == 0.0), "map pixels outside the ROI are 0");
    let inside_max = r.map.values.iter().zip(&px).filter(|(_, &m)| m != 0).map(|(&v, _)| v).fold(f32::MIN, f32::max);
    assert_eq!(r.map.image_score, inside_max);
    assert!(inside_max > 0.0);
    for g in &r.regions {
        let (cx, cy) = (g.centroid_x.round() as usize, g.centroid_y.round() as usize);
        assert!(g.area > 0 && cx < 128 && cy < 128);
    }
    // The same bank with its ROI switched off, and with the mask given per call.
    let off = score(&bank, img, RoiChoice::Everywhere);
    assert_eq!(off.roi, RoiSource::None);
    assert!(off.map.values.iter().zip(&px).any(|(&v, &m)| m == 0 && v > 0.0));
    let caller = score(&bank, img, RoiChoice::Mask(&d.roi));
    assert_eq!(caller.roi, RoiSource::Caller);
    assert_eq!(caller.map.values, r.map.values, "the same mask given per call gives the same map");
}

#[test]
fn what_happens_outside_the_roi_does_not_count() {
    // Scribble over the ignored area (the label and its band) with saturated noise: without
    // a ROI the score rises; with the ROI the encoders never see the ignored area, so the
    // map does not change at all, and the mask's edge is no hotter than without a ROI.
    let d = data();
    let plain = build(&d.train, BankOptions::default()).unwrap();
    let masked = build(&d.train, BankOptions { roi: Some(d.roi.clone()), ..Default::default() }).unwrap();
    let px = d.roi.at_size(128, 128);
    let clean = &d.test_good[0];
    let mut noisy = clean.clone();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for (i, p) in noisy.pixels_mut().enumerate() {
        if px[i] == 0 {
            for c in p.0.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *c = if state & 1 == 0 { 0 } else { 255 };
            }
        }
    }
    let s = |b: &MemoryBank, img: &RgbImage| score(b, img, RoiChoice::Bank);
    let (p0, p1) = (s(&plain, clean).map.image_score, s(&plain, &noisy).map.image_score);
    let (m0, m1) = (s(&masked, clean), s(&masked, &noisy));
    assert!(p1 > p0, "without a ROI the scribble raises the score");
    assert_eq!(m1.map.values, m0.map.values, "with the ROI the encoders never see the scribble: the map does not change");
    // The ring just inside the mask edge (3 px) is no hotter with the ROI than without it:
    // masking adds no edge of its own (what does rise there is the patches' view of the
    // scribble, see docs/inspection.md on margins).
    let at = |x: i64, y: i64| (0..128).contains(&x) && (0..128).contains(&y) && px[(y * 128 + x) as usize] != 0;
    let ring: Vec<usize> = (0..128 * 128)
        .filter(|&i| {
            let (x, y) = ((i % 128) as i64, (i / 128) as i64);
            at(x, y) && (-3..=3).any(|dy| (-3..=3).any(|dx| (0..128).contains(&(x + dx)) && (0..128).contains(&(y + dy)) && !at(x + dx, y + dy)))
        })
        .collect();
    assert!(!ring.is_empty());
    let ring_mean = |m: &[f32]| ring.iter().map(|&i| m[i]).sum::<f32>() / ring.len() as f32;
    for (img, m) in [(clean, &m0), (&noisy, &m1)] {
        let (with, without) = (ring_mean(&m.map.values), ring_mean(&s(&plain, img).map.values));
        assert!(with <= without * 1.05, "edge ring mean {with} with the ROI, {without} without");
    }
}

#[test]
fn the_bank_file_keeps_the_roi_and_its_checksum_covers_it() {
    let d = data();
    let bank = build(&d.train[..2], BankOptions { roi: Some(d.roi.clone()), ..Default::default() }).unwrap();
    let bytes = bank.to_bytes().unwrap();
    let back = MemoryBank::from_bytes(&bytes, Path::new("roi.bank")).unwrap();
    assert_eq!(back.roi(), Some(&d.roi));
    assert_eq!(back.vectors(), bank.vectors());
    let header = String::from_utf8_lossy(&bytes[..4096.min(bytes.len())]).to_string();
    assert!(header.contains("\"format_version\":\"3\""), "a bank with a ROI is format 3");
    // Flip one mask byte (the roi tensor is the file's last bytes): the checksum refuses it.
    let mut bad = bytes.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let e = MemoryBank::from_bytes(&bad, Path::new("roi.bank")).unwrap_err().to_string();
    assert!(e.contains("checksum"), "{e}");
    // Recalibration keeps the ROI.
    let mut r = back.clone();
    r.recalibrate(0.001).unwrap();
    assert_eq!(r.roi(), Some(&d.roi));
    // Without a ROI the bank is still format 1.
    let plain = build(&d.train[..2], BankOptions::default()).unwrap().to_bytes().unwrap();
    assert!(String::from_utf8_lossy(&plain[..4096.min(plain.len())]).contains("\"format_version\":\"1\""));
}

#[test]
fn tiled_banks_use_the_roi_per_tile() {
    let d = data();
    for layout in [TileLayout::Shared, TileLayout::PerPosition] {
        let tiling = Some(Tiling { tile: 64, overlap: 0.0, layout });
        let full = build(&d.train[..2], BankOptions { scorer: ScorerKind::Full, tiling, ..Default::default() }).unwrap();
        let with = build(&d.train[..2], BankOptions { scorer: ScorerKind::Full, tiling, roi: Some(d.roi.clone()), ..Default::default() }).unwrap();
        assert!(with.vectors().nrows() < full.vectors().nrows(), "{layout:?}: the label's patches are left out");
        let r = score(&with, &d.test_good[0], RoiChoice::Bank);
        let px = d.roi.at_size(128, 128);
        assert!(r.map.values.iter().zip(&px).all(|(&v, &m)| m != 0 || v == 0.0), "{layout:?}: zero outside");
    }
    // A per-position bank whose ROI leaves one tile position wholly outside still builds
    // (that position keeps its patches) and scores 0 there.
    let mut corner = vec![1u8; 128 * 128];
    for y in 0..64 {
        for x in 64..128 {
            corner[y * 128 + x] = 0;
        }
    }
    let roi = Roi::new(&corner, 128, 128, 0).unwrap();
    let tiling = Some(Tiling { tile: 64, overlap: 0.0, layout: TileLayout::PerPosition });
    let bank = build(&d.train[..2], BankOptions { tiling, roi: Some(roi), ..Default::default() }).unwrap();
    let r = score(&bank, &d.test_good[0], RoiChoice::Bank);
    assert!(r.map.values.iter().zip(&corner).all(|(&v, &m)| m != 0 || v == 0.0));
}

#[test]
fn bad_masks_are_refused_with_a_message() {
    let d = data();
    let e = Roi::new(&[0; 16], 4, 4, 0).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)) && e.to_string().contains("all zero"), "{e}");
    // A mask whose few inspected pixels vanish when scaled down to the image.
    let mut speck = vec![0u8; 1024 * 1024];
    speck[0] = 1;
    let tiny = Roi::new(&speck, 1024, 1024, 0).unwrap();
    let e = build(&d.train[..2], BankOptions { roi: Some(tiny.clone()), ..Default::default() }).unwrap_err();
    assert!(e.to_string().contains("covers no patch") || e.to_string().contains("covers none"), "{e}");
    let bank = build(&d.train[..2], BankOptions::default()).unwrap();
    let o = ScoreOptions { roi: RoiChoice::Mask(&tiny), ..Default::default() };
    let e = nexvitad::score::score_with(tiny_model(), &bank, &rgb_view(tiny_model(), &d.test_good[0]).unwrap(), &o, &mut Workspace::new()).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)) && e.to_string().contains("region of interest"), "{e}");
}
