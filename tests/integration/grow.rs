//! Banks that grow: `add` and `merge` give the bank a build from all images at once gives,
//! bit for bit, for every scorer; what cannot grow or merge is refused with a message.

use std::path::Path;

use crate::common::*;
use image::RgbImage;
use nexvitad::bank::{Augment, BankOptions, ScorerKind};
use nexvitad::eval::{load_image, rgb_view};
use nexvitad::{Error, MemoryBank, Roi, TileLayout, Tiling};

fn images() -> &'static [RgbImage] {
    static D: std::sync::OnceLock<Vec<RgbImage>> = std::sync::OnceLock::new();
    D.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("nexvitad-grow-tests-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let o = nexvitad::data::SynthOptions { seed: 9, size: 96, train_good: 8, test_good: 1, defects_per_type: 1, domains: vec!["grain".into()] };
        nexvitad::data::generate(&dir, &o).expect("synth");
        let cat = nexvitad::data::open_category(&dir, "grain").unwrap();
        cat.train_good.iter().map(|p| load_image(p).unwrap()).collect()
    })
}

fn build(imgs: &[RgbImage], o: &BankOptions) -> nexvitad::Result<MemoryBank> {
    let views: Vec<_> = imgs.iter().map(|i| rgb_view(tiny_model(), i)).collect::<nexvitad::Result<_>>()?;
    MemoryBank::build(tiny_model(), &views, o, &mut |_| true)
}

fn add(bank: &MemoryBank, imgs: &[RgbImage]) -> nexvitad::Result<MemoryBank> {
    let views: Vec<_> = imgs.iter().map(|i| rgb_view(tiny_model(), i)).collect::<nexvitad::Result<_>>()?;
    bank.add(tiny_model(), &views, &mut |_| true)
}

/// Two banks are the same: vectors bit for bit, the same metadata (thresholds, normal
/// scores, growth record), the same kept shots (compared through the saved file's bytes of
/// each tensor).
fn assert_same(a: &MemoryBank, b: &MemoryBank, what: &str) {
    let bits = |m: &MemoryBank| m.vectors().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(a), bits(b), "{what}: vectors");
    assert_eq!(a.meta(), b.meta(), "{what}: metadata");
    let reload = |m: &MemoryBank| MemoryBank::from_bytes(&m.to_bytes().unwrap(), Path::new("x.bank")).unwrap();
    let (ra, rb) = (reload(a), reload(b));
    assert_eq!(bits(&ra), bits(&rb), "{what}: vectors after a save");
    assert_eq!(ra.meta(), rb.meta(), "{what}: metadata after a save");
}

#[test]
fn adding_images_equals_building_on_all_of_them() {
    let imgs = images();
    let mut roi_bytes = vec![1u8; 12 * 12];
    roi_bytes[..36].fill(0);
    let roi = Roi::new(&roi_bytes, 12, 12, 0).unwrap();
    let cases = [
        ("full", BankOptions { scorer: ScorerKind::Full, ..Default::default() }),
        ("coreset", BankOptions { scorer: ScorerKind::Coreset, coreset_ratio: 0.2, ..Default::default() }),
        ("sinkhorn", BankOptions { k: Some(12), max_iters: 20, ..Default::default() }),
        ("sinkhorn, hflip and a ROI", BankOptions { k: Some(12), max_iters: 20, augment: Augment { hflip: true, ..Default::default() }, roi: Some(roi), ..Default::default() }),
    ];
    for (name, o) in cases {
        let o = BankOptions { growable: true, ..o };
        let fresh = build(&imgs[..8], &o).unwrap();
        let four = build(&imgs[..4], &o).unwrap();
        assert!(four.is_growable() && fresh.is_growable());
        let grown = add(&four, &imgs[4..8]).unwrap();
        assert_same(&grown, &fresh, &format!("{name}: 4 + 4 vs 8"));
        assert_eq!(grown.meta().shots, 8);
        // One at a time, through a saved file: the same again (one case; each add re-fits).
        if !name.contains("ROI") {
            continue_merge(&four, &fresh, &imgs[4..8], &o, name);
            continue;
        }
        let mut b = four.clone();
        for img in &imgs[4..8] {
            b = MemoryBank::from_bytes(&b.to_bytes().unwrap(), Path::new("b.bank")).unwrap();
            b = add(&b, std::slice::from_ref(img)).unwrap();
        }
        assert_same(&b, &fresh, &format!("{name}: 4 + 1 + 1 + 1 + 1 vs 8"));
        continue_merge(&four, &fresh, &imgs[4..8], &o, name);
    }
}

/// Merging `four` with a bank of `rest` is `fresh`; `growable` changes what is kept, not
/// the bank.
fn continue_merge(four: &MemoryBank, fresh: &MemoryBank, rest: &[RgbImage], o: &BankOptions, name: &str) {
    let other = build(rest, o).unwrap();
    let merged = four.merge(tiny_model(), &other, &mut |_| true).unwrap();
    assert_same(&merged, fresh, &format!("{name}: merge(4, 4) vs 8"));
    let plain = build(&images()[..8], &BankOptions { growable: false, ..o.clone() }).unwrap();
    assert_eq!(plain.vectors(), fresh.vectors(), "{name}: growable changes the vectors");
    assert_eq!(plain.meta().calibration, fresh.meta().calibration, "{name}: growable changes the thresholds");
    assert!(!plain.is_growable());
}

#[test]
fn tiled_banks_grow_to_the_build_on_all_images() {
    let imgs = images();
    let mut roi_bytes = vec![1u8; 12 * 12];
    roi_bytes[..30].fill(0);
    let roi = Roi::new(&roi_bytes, 12, 12, 0).unwrap();
    for layout in [TileLayout::Shared, TileLayout::PerPosition] {
        for (name, scorer, k) in [("full", ScorerKind::Full, None), ("sinkhorn", ScorerKind::Sinkhorn, Some(6))] {
            let o = BankOptions {
                growable: true,
                scorer,
                k,
                max_iters: 10,
                tiling: Some(Tiling { tile: 48, overlap: 0.25, layout }),
                roi: Some(roi.clone()),
                ..Default::default()
            };
            // Five images: fold calibration (four folds) changes its folds as the bank grows.
            let fresh = build(&imgs[..5], &o).unwrap();
            let grown = add(&build(&imgs[..3], &o).unwrap(), &imgs[3..5]).unwrap();
            assert_same(&grown, &fresh, &format!("{layout:?} {name}: 3 + 2 vs 5"));
            let merged = build(&imgs[..1], &o).unwrap().merge(tiny_model(), &build(&imgs[1..5], &o).unwrap(), &mut |_| true).unwrap();
            assert_same(&merged, &fresh, &format!("{layout:?} {name}: merge(1, 4) vs 5"));
        }
    }
}

#[test]
fn what_cannot_grow_or_merge_is_refused() {
    let imgs = images();
    let plain = build(&imgs[..2], &BankOptions { k: Some(4), ..Default::default() }).unwrap();
    let e = add(&plain, &imgs[2..3]).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)) && e.to_string().contains("without `growable`"), "{e}");
    // A per-position bank grows only with images of its size.
    let tiling = Some(Tiling { tile: 48, overlap: 0.0, layout: TileLayout::PerPosition });
    let pp = build(&imgs[..2], &BankOptions { growable: true, tiling, k: Some(4), ..Default::default() }).unwrap();
    let small = image::imageops::crop_imm(&imgs[2], 0, 0, 64, 64).to_image();
    let e = add(&pp, &[small]).unwrap_err();
    assert!(e.to_string().contains("one bank per tile position of 96x96 images; images[0] is 64x64"), "{e}");
    let shared = build(&imgs[..2], &BankOptions { growable: true, k: Some(4), tiling: Some(Tiling { tile: 48, overlap: 0.0, layout: TileLayout::Shared }), ..Default::default() }).unwrap();
    let e = pp.merge(tiny_model(), &shared, &mut |_| true).unwrap_err();
    assert!(matches!(e, Error::Mismatch(_)) && e.to_string().contains("tiling"), "{e}");
    let g = |o: BankOptions| build(&imgs[..2], &BankOptions { growable: true, ..o }).unwrap();
    let a = g(BankOptions { k: Some(4), ..Default::default() });
    let e = a.merge(tiny_model(), &plain, &mut |_| true).unwrap_err();
    assert!(e.to_string().contains("second bank") && e.to_string().contains("growable"), "{e}");
    for (other, what) in [
        (g(BankOptions { k: Some(5), ..Default::default() }), "different k"),
        (g(BankOptions { k: Some(4), seed: 1, ..Default::default() }), "different seed"),
        (g(BankOptions { k: Some(4), sigma: Some(2.0), ..Default::default() }), "different sigma"),
        (g(BankOptions { scorer: ScorerKind::Full, ..Default::default() }), "different scorer"),
        (g(BankOptions { k: Some(4), roi: Some(Roi::new(&[1, 0], 2, 1, 0).unwrap()), ..Default::default() }), "different region of interest"),
    ] {
        let e = a.merge(tiny_model(), &other, &mut |_| true).unwrap_err();
        assert!(matches!(e, Error::Mismatch(_)) && e.to_string().contains(what), "{what}: {e}");
    }
    let e = add(&a, &[]).unwrap_err();
    assert!(e.to_string().contains("no images"), "{e}");
    // A damaged kept-shots tensor is caught by its own checksum.
    let mut bytes = a.to_bytes().unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    let e = MemoryBank::from_bytes(&bytes, Path::new("g.bank")).unwrap_err().to_string();
    assert!(e.contains("checksum"), "{e}");
}
