//! Image preparation against Pillow's bilinear resize, for every pixel format and padded strides.

use crate::common::*;
use nexvitad::image::{ImageLimits, Normalization, Preparer};
use nexvitad::{Error, ImageView, PixelFormat};

const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Re-packs RGB pixels into `format` with `pad` extra bytes at the end of each row.
fn pack(rgb: &[u8], w: usize, h: usize, format: PixelFormat, pad: usize) -> (Vec<u8>, usize) {
    let ch = format.channels();
    let stride = w * ch + pad;
    let mut out = vec![0xAAu8; stride * h];
    for y in 0..h {
        for x in 0..w {
            let p = &rgb[(y * w + x) * 3..][..3];
            let o = &mut out[y * stride + x * ch..][..ch];
            match format {
                PixelFormat::Gray8 => o[0] = p[0],
                PixelFormat::Rgb8 => o.copy_from_slice(p),
                PixelFormat::Bgr8 => o.copy_from_slice(&[p[2], p[1], p[0]]),
                PixelFormat::Rgba8 => o.copy_from_slice(&[p[0], p[1], p[2], 77]),
                PixelFormat::Bgra8 => o.copy_from_slice(&[p[2], p[1], p[0], 77]),
            }
        }
    }
    (out, stride)
}

fn check(stem: &str, formats: &[PixelFormat]) {
    let refs = read_safetensors(&root().join("tests/fixtures/prep/refs.safetensors"));
    let want = tensor(&refs, stem);
    let img = image::open(root().join(format!("tests/fixtures/prep/{stem}.png"))).unwrap().to_rgb8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    let norm = Normalization { mean: MEAN, std: STD };
    let mut prep = Preparer::new();
    for &f in formats {
        for pad in [0usize, 13] {
            let (buf, stride) = pack(img.as_raw(), w, h, f, pad);
            let view = ImageView::new(&buf, w as u32, h as u32, stride, f).unwrap();
            let got = prep.prepare_batch(&[view], 224, 224, &norm).unwrap().into_dyn();
            assert_eq!(got.shape(), want.shape());
            // Compare in pixel units (x / 255), where the tolerance is one grey level.
            let mut worst = 0.0f32;
            for c in 0..3 {
                let g = got.index_axis(ndarray::Axis(1), c);
                let r = want.index_axis(ndarray::Axis(1), c);
                for (a, b) in g.iter().zip(r.iter()) {
                    worst = worst.max(((a - b) * STD[c]).abs());
                }
            }
            assert!(worst <= 1.0 / 255.0 + 1e-5, "{stem} as {} (pad {pad}): max diff {worst} > 1/255", f.name());
        }
    }
}

#[test]
fn rgb_upscale_matches_pillow_for_colour_formats() {
    check("rgb_37x23", &[PixelFormat::Rgb8, PixelFormat::Bgr8, PixelFormat::Rgba8, PixelFormat::Bgra8]);
}

#[test]
fn rgb_downscale_matches_pillow_for_colour_formats() {
    check("rgb_300x200", &[PixelFormat::Rgb8, PixelFormat::Bgr8, PixelFormat::Rgba8, PixelFormat::Bgra8]);
}

#[test]
fn gray_matches_pillow() {
    check("gray_300x200", &[PixelFormat::Gray8]);
}

#[test]
fn same_size_input_is_not_resampled() {
    let px: Vec<u8> = (0..224 * 224 * 3).map(|i| (i * 7 % 251) as u8).collect();
    let view = ImageView::packed(&px, 224, 224, PixelFormat::Rgb8).unwrap();
    let norm = Normalization { mean: [0.0; 3], std: [1.0; 3] };
    let t = Preparer::new().prepare_batch(&[view], 224, 224, &norm).unwrap();
    assert!((t[[0, 1, 5, 9]] - px[(5 * 224 + 9) * 3 + 1] as f32 / 255.0).abs() < 1e-6);
}

#[test]
fn bad_image_views_are_refused_with_a_reason() {
    let buf = vec![0u8; 100];
    let cases: Vec<(Result<ImageView<'_>, Error>, &str)> = vec![
        (ImageView::new(&buf, 0, 0, 0, PixelFormat::Rgb8), "width and height must be > 0"),
        (ImageView::new(&buf, 10, 0, 30, PixelFormat::Rgb8), "width and height must be > 0"),
        (ImageView::new(&buf, 10, 2, 29, PixelFormat::Rgb8), "stride 29 is smaller than one row"),
        (ImageView::new(&buf, 10, 4, 30, PixelFormat::Rgb8), "needs 120"),
        (ImageView::new(&buf, 100000, 100000, 300000, PixelFormat::Rgb8), "maximum side"),
        (ImageView::new(&buf, 8000, 9000, 8000, PixelFormat::Gray8), "pixels"),
        (ImageView::new(&buf, 2, 3, usize::MAX, PixelFormat::Gray8), "overflows"),
    ];
    for (res, needle) in cases {
        let e = res.expect_err(needle);
        assert!(e.to_string().contains(needle), "expected '{needle}' in: {e}");
    }
    let e = PixelFormat::from_code(9).unwrap_err();
    assert!(e.to_string().contains("unknown pixel format 9"), "{e}");
    let small = ImageLimits { max_side: 64, max_pixels: 1000 };
    assert!(matches!(ImageView::with_limits(&buf, 65, 1, 65, PixelFormat::Gray8, &small), Err(Error::LimitExceeded(_))));
}

#[test]
fn one_pixel_image_prepares() {
    let px = [10u8, 20, 30];
    let view = ImageView::packed(&px, 1, 1, PixelFormat::Rgb8).unwrap();
    let norm = Normalization { mean: [0.0; 3], std: [1.0; 3] };
    let t = Preparer::new().prepare_batch(&[view], 224, 224, &norm).unwrap();
    assert!((t[[0, 2, 100, 100]] - 30.0 / 255.0).abs() < 1e-6);
}
