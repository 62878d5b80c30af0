//! Pictures of anomaly maps for people: colour-mapped maps, overlays on the inspected
//! image with the ground-truth outline, and crash-safe PNG writing.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use image::RgbImage;

use crate::error::{Error, Result};

/// Colour of the ground-truth mask outline: pure green is absent from turbo's dark and red
/// ends and from most inspected surfaces, so the outline stays readable over both.
pub const CONTOUR_COLOR: [u8; 3] = [0, 255, 0];

/// Google's Turbo colour map (perceptually ordered, dark blue -> green -> dark red) at
/// `t` in [0, 1], using its published degree-5 polynomial approximation (Apache-2.0),
/// which avoids carrying the 256-entry table; it is close in the body of the range and
/// slightly darker than the table at the two ends.
pub fn turbo(t: f32) -> [u8; 3] {
    let x = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) as f64 };
    let (x2, x3) = (x * x, x * x * x);
    let (x4, x5) = (x2 * x2, x3 * x2);
    let poly = |c: [f64; 6]| c[0] + c[1] * x + c[2] * x2 + c[3] * x3 + c[4] * x4 + c[5] * x5;
    let r = poly([
        0.13572138,
        4.61539260,
        -42.66032258,
        132.13108234,
        -152.94239396,
        59.28637943,
    ]);
    let g = poly([0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604]);
    let b = poly([
        0.10667330,
        12.64194608,
        -60.58204836,
        110.36276771,
        -89.90310912,
        27.34824973,
    ]);
    [r, g, b].map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
}

fn check_range(lo: f32, hi: f32) -> Result<()> {
    if lo.is_finite() && hi.is_finite() && hi > lo {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "colour range needs finite lo < hi, got lo={lo}, hi={hi}"
        )))
    }
}

fn check_len(what: &str, len: usize, w: u32, h: u32) -> Result<()> {
    if len as u64 == w as u64 * h as u64 {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{what} has {len} values but the image is {w}x{h} ({} pixels)",
            w as u64 * h as u64
        )))
    }
}

/// Colour-maps a row-major `w x h` map with Turbo; values are normalised by `[lo, hi]` and
/// clamped (NaN shows as `lo`). Use fixed `lo`/`hi` (e.g. from calibration) to make
/// pictures of different images comparable.
pub fn colorize(map: &[f32], w: u32, h: u32, lo: f32, hi: f32) -> Result<RgbImage> {
    check_len("anomaly map", map.len(), w, h)?;
    check_range(lo, hi)?;
    let inv = 1.0 / (hi - lo);
    let raw: Vec<u8> = map.iter().flat_map(|&v| turbo((v - lo) * inv)).collect();
    RgbImage::from_raw(w, h, raw).ok_or_else(|| Error::Internal("colorize: buffer size".into()))
}

/// The map colour-mapped (see [`colorize`]) and blended 50 % over `image`, with the
/// 1-pixel inner outline of `mask` (if given) drawn in [`CONTOUR_COLOR`]. `map` and
/// `mask` are row-major at the image's size.
pub fn heatmap_overlay(image: &RgbImage, map: &[f32], lo: f32, hi: f32, mask: Option<&[bool]>) -> Result<RgbImage> {
    let (w, h) = image.dimensions();
    let mut out = colorize(map, w, h, lo, hi)?;
    if let Some(m) = mask {
        check_len("ground-truth mask", m.len(), w, h)?;
    }
    for (o, i) in out.pixels_mut().zip(image.pixels()) {
        for c in 0..3 {
            o.0[c] = (o.0[c] as u16 + i.0[c] as u16).div_ceil(2) as u8;
        }
    }
    if let Some(m) = mask {
        let (wu, hu) = (w as usize, h as usize);
        let at = |x: usize, y: usize| m[y * wu + x];
        for y in 0..hu {
            for x in 0..wu {
                // A mask pixel is on the outline if a 4-neighbour is outside the mask or
                // outside the image.
                let edge = at(x, y)
                    && (x == 0
                        || y == 0
                        || x + 1 == wu
                        || y + 1 == hu
                        || !at(x - 1, y)
                        || !at(x + 1, y)
                        || !at(x, y - 1)
                        || !at(x, y + 1));
                if edge {
                    out.put_pixel(x as u32, y as u32, image::Rgb(CONTOUR_COLOR));
                }
            }
        }
    }
    Ok(out)
}

/// Draws each region's bounding box (2 px, clipped to the image) on an overlay: white for
/// the worst region (the first), magenta for the others, so a reviewer sees what the line
/// would reject without reading the heatmap's colours.
pub fn draw_regions(img: &mut RgbImage, regions: &[crate::regions::Region]) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    for (i, g) in regions.iter().enumerate().rev() {
        let colour = if i == 0 { image::Rgb([255, 255, 255]) } else { image::Rgb([255, 0, 255]) };
        let (x0, y0) = (g.x as i64 - 1, g.y as i64 - 1);
        let (x1, y1) = (g.x as i64 + g.width as i64, g.y as i64 + g.height as i64);
        let mut put = |x: i64, y: i64| {
            if (0..w).contains(&x) && (0..h).contains(&y) {
                img.put_pixel(x as u32, y as u32, colour);
            }
        };
        for t in 0..2 {
            for x in x0 - t..=x1 + t {
                put(x, y0 - t);
                put(x, y1 + t);
            }
            for y in y0 - t..=y1 + t {
                put(x0 - t, y);
                put(x1 + t, y);
            }
        }
    }
}

/// Colour of the region-of-interest outline: cyan, dashed, so it is told apart from the
/// ground-truth outline ([`CONTOUR_COLOR`]) and from the region boxes.
pub const ROI_COLOR: [u8; 3] = [0, 255, 255];

/// Draws the outline of a region of interest (`roi`: one byte per image pixel, non-zero =
/// inspect) as a dashed 1-pixel line just inside it, and dims the ignored area to half its
/// brightness, so a reviewer sees what was not inspected.
pub fn draw_roi(img: &mut RgbImage, roi: &[u8]) -> Result<()> {
    let (w, h) = img.dimensions();
    check_len("region-of-interest mask", roi.len(), w, h)?;
    let (wu, hu) = (w as usize, h as usize);
    let inside = |x: usize, y: usize| roi[y * wu + x] != 0;
    for y in 0..hu {
        for x in 0..wu {
            if !inside(x, y) {
                let p = img.get_pixel_mut(x as u32, y as u32);
                p.0 = p.0.map(|c| c / 2);
                continue;
            }
            // On the edge: a 4-neighbour inside the image but outside the ROI.
            let edge = (x > 0 && !inside(x - 1, y)) || (x + 1 < wu && !inside(x + 1, y)) || (y > 0 && !inside(x, y - 1)) || (y + 1 < hu && !inside(x, y + 1));
            if edge && ((x + y) / 4) % 2 == 0 {
                img.put_pixel(x as u32, y as u32, image::Rgb(ROI_COLOR));
            }
        }
    }
    Ok(())
}

/// Draws the image score against its threshold as a bar along the top edge: the bar's
/// scale runs from 0 to twice the threshold (the threshold is the white tick in the
/// middle), filled green up to the score when the image passes and red when it is
/// anomalous, so the decision and its margin read at a glance.
pub fn draw_score_bar(img: &mut RgbImage, score: f32, threshold: f32, anomalous: bool) {
    let (w, h) = img.dimensions();
    let bar = (h / 32).clamp(4, 16).min(h);
    let scale = if threshold > 0.0 && threshold.is_finite() { 2.0 * threshold } else { score.abs().max(1e-6) * 2.0 };
    let fill = ((score / scale).clamp(0.0, 1.0) * w as f32).round() as u32;
    let tick = (w / 2).min(w.saturating_sub(1));
    let colour = if anomalous { [220, 30, 30] } else { [40, 190, 60] };
    for y in 0..bar {
        for x in 0..w {
            let c = if x.abs_diff(tick) <= 1 {
                [255, 255, 255]
            } else if x < fill {
                colour
            } else {
                [40, 40, 40]
            };
            img.put_pixel(x, y, image::Rgb(c));
        }
    }
}

/// Writes `img` as a PNG so that `path` is either the old file or the complete new one,
/// never a torn write: encode to a temporary file in the same folder, fsync, rename.
pub fn save_png_atomic(img: &RgbImage, path: &Path) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid(format!("'{}' does not name a file", path.display())))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = dir.join(format!(
        ".{}.{}-{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));

    let write = || -> Result<()> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| Error::io("create", &tmp, e))?;
        let mut writer = BufWriter::new(file);
        img.write_with_encoder(image::codecs::png::PngEncoder::new(&mut writer))
            .map_err(|e| match e {
                image::ImageError::IoError(io) => Error::io("write", &tmp, io),
                other => Error::format(path, format!("cannot encode PNG: {other}")),
            })?;
        writer.flush().map_err(|e| Error::io("write", &tmp, e))?;
        let file = writer
            .into_inner()
            .map_err(|e| Error::io("write", &tmp, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io("sync", &tmp, e))?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(|e| Error::io("rename into", path, e))
    };
    let result = write();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    } else if cfg!(unix) {
        // Persist the rename itself; best effort (not every filesystem allows it).
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viz_turbo_ends_and_middle() {
        let (lo, mid, hi) = (turbo(0.0), turbo(0.5), turbo(1.0));
        let blue = turbo(0.1);
        assert!(
            lo.iter().map(|&c| c as u32).sum::<u32>() < 120,
            "low end is dark: {lo:?}"
        );
        assert!(
            blue[2] > 200 && blue[2] > blue[0] && blue[2] > blue[1],
            "low range is blue: {blue:?}"
        );
        assert!(hi[0] > hi[1] && hi[0] > hi[2], "high end is red: {hi:?}");
        assert!(mid[1] > 200 && mid[1] > mid[2], "middle is green: {mid:?}");
        assert_eq!(turbo(-3.0), lo);
        assert_eq!(turbo(7.0), hi);
        assert_eq!(turbo(f32::NAN), lo);
    }

    #[test]
    fn viz_colorize_normalises_and_checks() {
        let img = colorize(&[0.0, 5.0, 10.0, 20.0, -1.0, f32::NAN], 3, 2, 0.0, 10.0).unwrap();
        assert_eq!(img.dimensions(), (3, 2));
        assert_eq!(img.get_pixel(0, 0).0, turbo(0.0));
        assert_eq!(img.get_pixel(1, 0).0, turbo(0.5));
        assert_eq!(img.get_pixel(2, 0).0, turbo(1.0));
        assert_eq!(img.get_pixel(0, 1).0, turbo(1.0));
        assert_eq!(img.get_pixel(1, 1).0, turbo(0.0));
        assert!(colorize(&[0.0; 5], 3, 2, 0.0, 1.0).is_err());
        assert!(colorize(&[0.0; 6], 3, 2, 1.0, 1.0).is_err());
        assert!(colorize(&[0.0; 6], 3, 2, 0.0, f32::INFINITY).is_err());
    }

    #[test]
    fn viz_overlay_blends_and_draws_contour() {
        let (w, h) = (8u32, 6u32);
        let image = RgbImage::from_pixel(w, h, image::Rgb([100, 100, 100]));
        let map = vec![0.0f32; (w * h) as usize];
        // A 4x3 block at x 2..6, y 1..4.
        let mask: Vec<bool> = (0..w * h)
            .map(|i| (2..6).contains(&(i % w)) && (1..4).contains(&(i / w)))
            .collect();
        let out = heatmap_overlay(&image, &map, 0.0, 1.0, Some(&mask)).unwrap();
        assert_eq!(out.dimensions(), (w, h));
        let blend = turbo(0.0).map(|c| (c as u16 + 100).div_ceil(2) as u8);
        assert_eq!(out.get_pixel(0, 0).0, blend);
        assert_eq!(out.get_pixel(2, 1).0, CONTOUR_COLOR);
        assert_eq!(out.get_pixel(5, 3).0, CONTOUR_COLOR);
        // Interior of a 4x3 block: (3,2) and (4,2) are not on the outline.
        assert_eq!(out.get_pixel(3, 2).0, blend);
        assert_eq!(out.get_pixel(1, 2).0, blend);
        // Mask touching the image border is outlined there too.
        let full = vec![true; (w * h) as usize];
        let out = heatmap_overlay(&image, &map, 0.0, 1.0, Some(&full)).unwrap();
        assert_eq!(out.get_pixel(0, 3).0, CONTOUR_COLOR);
        assert_eq!(out.get_pixel(3, 3).0, blend);
    }

    #[test]
    fn viz_overlay_rejects_bad_lengths() {
        let image = RgbImage::new(4, 4);
        let e = heatmap_overlay(&image, &[0.0; 15], 0.0, 1.0, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("15") && e.contains("4x4"), "{e}");
        let e = heatmap_overlay(&image, &[0.0; 16], 0.0, 1.0, Some(&[false; 3]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("mask"), "{e}");
    }

    #[test]
    fn viz_save_png_atomic_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.png");
        let img = RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8 * 40, y as u8 * 80, 9]));
        save_png_atomic(&img, &path).unwrap();
        save_png_atomic(&img, &path).unwrap(); // replaces an existing file
        assert_eq!(image::open(&path).unwrap().into_rgb8(), img);
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["out.png"], "no temporary file left behind");
        assert!(save_png_atomic(&img, &dir.path().join("missing/out.png")).is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
