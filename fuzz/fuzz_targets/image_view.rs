//! Caller pixel buffers: arbitrary size, stride, pixel format, limits and bytes into
//! `ImageView::with_limits`, then the `Preparer` (resize + normalise) on what it accepts.
//! The view must refuse anything its buffer cannot back, so reading rows and preparing
//! never go out of bounds. Output sizes are kept small so a run cannot exhaust memory.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use nexvitad::image::{Normalization, Preparer};
use nexvitad::{ImageLimits, ImageView, PixelFormat};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    width: u32,
    height: u32,
    stride: usize,
    format: u32,
    max_side: u32,
    max_pixels: u64,
    /// Encoder input size to prepare into, reduced to 1..=64 per side.
    target_w: u8,
    target_h: u8,
    pixels: &'a [u8],
}

fuzz_target!(|inp: Input<'_>| {
    let Ok(format) = PixelFormat::from_code(inp.format) else { return };
    let limits = ImageLimits { max_side: inp.max_side, max_pixels: inp.max_pixels };
    let Ok(view) = ImageView::with_limits(inp.pixels, inp.width, inp.height, inp.stride, format, &limits) else { return };
    // Accepted: the claimed geometry must fit the limits and the buffer.
    assert!(view.width() <= limits.max_side && view.height() <= limits.max_side);
    assert!(view.width() as u64 * view.height() as u64 <= limits.max_pixels);
    let row = view.width() as usize * format.channels();
    assert!(view.stride() >= row);
    assert!((view.height() as usize - 1) * view.stride() + row <= inp.pixels.len());
    for y in [0, view.height() / 2, view.height() - 1] {
        assert_eq!(view.row(y).len(), row);
    }
    let (tw, th) = (u32::from(inp.target_w % 64) + 1, u32::from(inp.target_h % 64) + 1);
    let norm = Normalization { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
    let t = Preparer::new().prepare_batch(&[view], tw, th, &norm).expect("an accepted view prepares");
    assert_eq!(t.shape(), &[1, 3, th as usize, tw as usize]);
    assert!(t.iter().all(|v| v.is_finite()));
});
