//! Defect regions: where an anomaly map is above a threshold, as connected pieces with
//! their box, size and scores, so an inspection line can reject a part for a defect of a
//! given size at a given place instead of reading a heatmap.
//!
//! A pixel is defective when its map value is strictly above the threshold (the same `>`
//! as the image decision) and it lies inside the region of interest, if one is given.
//! Defective pixels form regions by 8-connectivity (diagonal neighbours join, as in
//! HALCON's `connection` and scipy's 3 × 3 structure, which the PRO metric also uses).
//! Regions smaller than `min_area` pixels are dropped; the rest are sorted by peak score,
//! highest first (ties: top-most, then left-most), so the first region is the worst.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::kernels::label::label_components;

/// One connected defect region of an anomaly map.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Region {
    /// Left edge of the bounding box, in image pixels.
    pub x: u32,
    /// Top edge of the bounding box.
    pub y: u32,
    /// Bounding-box width (pixels).
    pub width: u32,
    /// Bounding-box height (pixels).
    pub height: u32,
    /// Pixels in the region.
    pub area: u64,
    /// Centroid (mean x of the region's pixel centres, in pixel units: the top-left pixel's
    /// centre is 0.0).
    pub centroid_x: f32,
    /// Centroid, y.
    pub centroid_y: f32,
    /// Highest map value in the region.
    pub peak: f32,
    /// Mean map value over the region.
    pub mean: f32,
}

/// The regions of a `width × height` map above `threshold`, inside `roi` (non-zero =
/// inspect; `None` = everywhere), of at least `min_area` pixels, highest peak first.
pub fn find_regions(values: &[f32], width: usize, height: usize, threshold: f32, min_area: u64, roi: Option<&[u8]>) -> Result<Vec<Region>> {
    if values.len() != width * height || width == 0 || height == 0 {
        return Err(Error::Internal(format!("map of {width}x{height} holds {} values", values.len())));
    }
    if threshold.is_nan() {
        return Err(Error::invalid("region threshold is NaN"));
    }
    if roi.is_some_and(|r| r.len() != values.len()) {
        return Err(Error::Internal("region-of-interest mask differs from the map's size".into()));
    }
    let mask: Vec<bool> = match roi {
        Some(r) => values.iter().zip(r).map(|(&v, &m)| m != 0 && v > threshold).collect(),
        None => values.iter().map(|&v| v > threshold).collect(),
    };
    let (labels, sizes) = label_components(&mask, width, height);
    let n = sizes.len() - 1;
    // Per label: x0, y0, x1, y1, sum x, sum y, peak, sum of values.
    let mut acc = vec![(u32::MAX, u32::MAX, 0u32, 0u32, 0f64, 0f64, f32::MIN, 0f64); n];
    for (i, &l) in labels.iter().enumerate() {
        if l == 0 {
            continue;
        }
        let (x, y) = ((i % width) as u32, (i / width) as u32);
        let a = &mut acc[l as usize - 1];
        a.0 = a.0.min(x);
        a.1 = a.1.min(y);
        a.2 = a.2.max(x);
        a.3 = a.3.max(y);
        a.4 += x as f64;
        a.5 += y as f64;
        a.6 = a.6.max(values[i]);
        a.7 += values[i] as f64;
    }
    let mut out: Vec<Region> = acc
        .iter()
        .zip(&sizes[1..])
        .filter(|(_, &area)| area >= min_area.max(1))
        .map(|(a, &area)| Region {
            x: a.0,
            y: a.1,
            width: a.2 - a.0 + 1,
            height: a.3 - a.1 + 1,
            area,
            centroid_x: (a.4 / area as f64) as f32,
            centroid_y: (a.5 / area as f64) as f32,
            peak: a.6,
            mean: (a.7 / area as f64) as f32,
        })
        .collect();
    out.sort_by(|a, b| b.peak.total_cmp(&a.peak).then(a.y.cmp(&b.y)).then(a.x.cmp(&b.x)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_8_connected_boxed_and_sorted_by_peak() {
        // 6 x 4 map: a diagonal pair (one region), a lone pixel, background 0.
        #[rustfmt::skip]
        let v = [
            0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
            0.0, 2.0, 0.0, 0.0, 0.0, 0.0,
            0.0, 0.0, 3.0, 0.0, 0.0, 5.0,
            0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
        ];
        let r = find_regions(&v, 6, 4, 1.0, 1, None).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].x, r[0].y, r[0].width, r[0].height, r[0].area, r[0].peak), (5, 2, 1, 1, 1, 5.0));
        assert_eq!((r[1].x, r[1].y, r[1].width, r[1].height, r[1].area), (1, 1, 2, 2, 2));
        assert_eq!((r[1].peak, r[1].mean, r[1].centroid_x, r[1].centroid_y), (3.0, 2.5, 1.5, 1.5));
        // min_area drops the lone pixel; the threshold is strict (3.0 is not above 3.0).
        assert_eq!(find_regions(&v, 6, 4, 1.0, 2, None).unwrap().len(), 1);
        assert_eq!(find_regions(&v, 6, 4, 3.0, 1, None).unwrap().len(), 1);
        // A region of interest that excludes the right column removes that region.
        let mut roi = vec![255u8; 24];
        for y in 0..4 {
            roi[y * 6 + 5] = 0;
        }
        let r = find_regions(&v, 6, 4, 1.0, 1, Some(&roi)).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].peak, 3.0);
        assert!(find_regions(&v, 6, 4, f32::NAN, 1, None).is_err());
        assert!(find_regions(&v, 5, 4, 1.0, 1, None).is_err());
    }
}
