//! The region of interest: an 8-bit mask saying which parts of an image are inspected
//! (non-zero) and which are not (0: a serial-number label, a fixture, the background).
//!
//! A mask may have any size; it is laid over the image by scaling (nearest neighbour: the
//! mask pixel under each image pixel's centre), so one mask drawn at the camera's full
//! resolution serves images of that camera at any size.
//!
//! **How the edge is treated** (the one rule, used by the bank build, the maps, calibration
//! and the regions alike):
//! - The encoders never see the ignored area: before encoding, its pixels are set to the
//!   normalisation mean (a constant), in the bank's shots and in every image scored with
//!   that bank. A patch that straddles the edge then sees the same constant beside it on
//!   every part, instead of digits that change from part to part, so it does not light up
//!   (the encoders look a little beyond each patch, so without this the edge would).
//!   The fill follows the ROI the bank was built with; a per-call ROI only confines the
//!   map, the score and the regions.
//! - A *patch* (one cell of a feature grid, laid evenly over the image or tile it comes
//!   from) is inside when **any** of its pixels is inside. Only inside patches enter a bank,
//!   so features of the ignored area never become "normal"; a patch that straddles the edge
//!   does enter, and is scored, so a defect touching the edge still counts.
//! - Before the patch scores are upsampled and smoothed, the scores of patches wholly
//!   outside are replaced by the median of the inside ones: a neutral value, so neither the
//!   ignored area's own (unmatched, high) scores nor zeros bleed across the edge through
//!   the smoothing. The mask edge therefore does not light up.
//! - After smoothing, map pixels outside the mask are 0; the image score, the defect
//!   regions and the calibration's pixel statistics come from the pixels inside only.

use crate::error::{Error, Result};

/// Largest mask side accepted, as for images.
pub const MAX_ROI_SIDE: u32 = 1 << 16;

/// An owned region-of-interest mask: `width × height` bytes, row-major, 1 = inspect and
/// 0 = ignore (any non-zero input byte becomes 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roi {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

impl Roi {
    /// A mask from `height` rows of `width` bytes, `stride` bytes apart (0 = packed).
    /// Refuses an empty size, a short buffer and a mask that selects no pixel (nothing
    /// would be inspected: certainly a mistake).
    pub fn new(data: &[u8], width: u32, height: u32, stride: usize) -> Result<Self> {
        if width == 0 || height == 0 {
            return Err(Error::invalid(format!("ROI mask is {width}x{height}; it must be at least 1x1")));
        }
        if width > MAX_ROI_SIDE || height > MAX_ROI_SIDE {
            return Err(Error::LimitExceeded(format!("ROI mask {width}x{height} is larger than {MAX_ROI_SIDE} on a side")));
        }
        let (w, h) = (width as usize, height as usize);
        let stride = if stride == 0 { w } else { stride };
        if stride < w {
            return Err(Error::invalid(format!("ROI mask stride {stride} is smaller than its width {width}")));
        }
        let need = stride as u64 * (h as u64 - 1) + w as u64;
        if (data.len() as u64) < need {
            return Err(Error::invalid(format!(
                "ROI mask buffer holds {} bytes; a {width}x{height} mask with stride {stride} needs {need}",
                data.len()
            )));
        }
        let mut packed = Vec::with_capacity(w * h);
        for y in 0..h {
            packed.extend(data[y * stride..y * stride + w].iter().map(|&b| u8::from(b != 0)));
        }
        if !packed.contains(&1) {
            return Err(Error::invalid(format!(
                "ROI mask {width}x{height} is all zero: it selects no pixel to inspect (non-zero = inspect)"
            )));
        }
        Ok(Self { width, height, data: packed })
    }

    /// Mask width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }
    /// Mask height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }
    /// The mask, row-major, 1 = inspect, 0 = ignore.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The mask laid over a `width × height` image: one byte per image pixel (1 = inspect),
    /// the mask pixel under each image pixel's centre.
    pub fn at_size(&self, width: u32, height: u32) -> Vec<u8> {
        let (w, h) = (width as usize, height as usize);
        let xs: Vec<usize> = (0..w).map(|x| nearest_index(x, w, self.width as usize)).collect();
        let mut out = Vec::with_capacity(w * h);
        for y in 0..h {
            let row = nearest_index(y, h, self.height as usize) * self.width as usize;
            out.extend(xs.iter().map(|&x| self.data[row + x]));
        }
        out
    }
}

/// The source index under the centre of destination pixel `i` of `n`, for a source of `m`
/// (nearest-neighbour scaling, as masks are laid over images and encoder inputs).
pub fn nearest_index(i: usize, n: usize, m: usize) -> usize {
    (((2 * i + 1) * m) / (2 * n)).min(m - 1)
}

/// A rectangle in image pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// Which cells of a `grid_w × grid_h` patch grid laid evenly over `rect` are inside, for a
/// mask already at the image's size (`pixels`, `image_width` wide, from [`Roi::at_size`]):
/// a cell is inside when any of its pixels is (the module's rule). Row-major.
pub fn inside_cells(pixels: &[u8], image_width: u32, rect: Rect, grid_w: usize, grid_h: usize) -> Vec<bool> {
    let iw = image_width as usize;
    let span = |c: usize, n: usize, len: u32| -> (usize, usize) {
        let len = len as usize;
        let a = c * len / n;
        let b = ((c + 1) * len).div_ceil(n).clamp(a + 1, len);
        (a, b)
    };
    let mut out = Vec::with_capacity(grid_w * grid_h);
    for cy in 0..grid_h {
        let (y0, y1) = span(cy, grid_h, rect.height);
        for cx in 0..grid_w {
            let (x0, x1) = span(cx, grid_w, rect.width);
            let any = (y0..y1).any(|y| {
                let row = (rect.y as usize + y) * iw + rect.x as usize;
                pixels[row + x0..row + x1].contains(&1)
            });
            out.push(any);
        }
    }
    out
}

/// A patch grid's scores from the scores of its inside cells only (`inside`, in cell order,
/// one per `true` of `cells`), appended to `out`; outside cells get 0, which the map's edge
/// rule replaces before smoothing.
pub fn scatter_inside(inside: &[f32], cells: &[bool], out: &mut Vec<f32>) -> Result<()> {
    if cells.iter().filter(|&&c| c).count() != inside.len() {
        return Err(Error::Internal(format!("{} scores for {} inside cells", inside.len(), cells.iter().filter(|&&c| c).count())));
    }
    let mut it = inside.iter();
    out.extend(cells.iter().map(|&c| if c { *it.next().unwrap_or(&0.0) } else { 0.0 }));
    Ok(())
}

/// The pixels of `values` inside `mask` (same length), in order.
pub fn inside_values<'a>(values: &'a [f32], mask: &'a [u8]) -> impl Iterator<Item = f32> + 'a {
    values.iter().zip(mask).filter(|(_, &m)| m != 0).map(|(&v, _)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_checks_and_packs() {
        assert!(Roi::new(&[0, 0, 0, 0], 2, 2, 0).unwrap_err().to_string().contains("all zero"));
        assert!(Roi::new(&[1, 1, 1], 2, 2, 0).unwrap_err().to_string().contains("needs 4"));
        assert!(Roi::new(&[1; 8], 4, 2, 3).unwrap_err().to_string().contains("stride 3"));
        assert!(Roi::new(&[], 0, 2, 0).unwrap_err().to_string().contains("0x2"));
        // Stride 3: the third byte of each row is padding and is not read.
        let r = Roi::new(&[0, 255, 9, 7, 0], 2, 2, 3).unwrap();
        assert_eq!(r.data(), &[0, 1, 1, 0]);
    }

    #[test]
    fn at_size_is_nearest_neighbour() {
        let r = Roi::new(&[1, 0], 2, 1, 0).unwrap();
        assert_eq!(r.at_size(4, 2), vec![1, 1, 0, 0, 1, 1, 0, 0]);
        assert_eq!(r.at_size(1, 1), vec![0], "the centre of a 1-pixel image falls on the mask's second pixel");
        assert_eq!(r.at_size(2, 1), vec![1, 0]);
    }

    #[test]
    fn a_cell_is_inside_when_any_pixel_is() {
        // 4x4 image, only pixel (3, 3) inspected; 2x2 grid: only the bottom-right cell.
        let mut px = vec![0u8; 16];
        px[15] = 1;
        let rect = Rect { x: 0, y: 0, width: 4, height: 4 };
        assert_eq!(inside_cells(&px, 4, rect, 2, 2), vec![false, false, false, true]);
        // A sub-rectangle (a tile) at (2, 2) of 2x2 with a 2x2 grid: one pixel per cell.
        let tile = Rect { x: 2, y: 2, width: 2, height: 2 };
        assert_eq!(inside_cells(&px, 4, tile, 2, 2), vec![false, false, false, true]);
        // More cells than pixels: each cell still reads at least one pixel.
        let one = Rect { x: 3, y: 3, width: 1, height: 1 };
        assert_eq!(inside_cells(&px, 4, one, 2, 2), vec![true; 4]);
    }
}
