//! Tiled inspection at native resolution: where the tiles of an image lie, and how their
//! patch scores are stitched back into one patch map of the whole image.
//!
//! Without tiling every image is resized to the encoders' input (224 × 224 for the shipped
//! models), so a 10 px defect on a 1130 px part shrinks to 2 px, below one patch. With
//! tiling the user says how many image pixels one encoder input covers (`tile`: 224 for
//! native resolution on a 224 model, 448 for a 2× downscale) and by how much neighbouring
//! tiles overlap. See `docs/tiling.md` for the whole path and the measurements.
//!
//! **Placement.** Along each axis tiles start every `step = round(tile × (1 − overlap))`
//! pixels (at least 1); the last tile is shifted inward so that it ends at the image's
//! border. Tiles therefore cover every pixel, never reach outside the image (no black
//! padding) and keep the image's aspect ratio (a tile is resized to the encoder input
//! exactly like a whole image, so a tile has the encoder input's aspect ratio).
//!
//! **Stitching.** The whole image gets a patch map at the tiles' patch pitch
//! (`round(width × grid_w / tile_w)` columns, the same for rows). Each cell of that map takes
//! its value from every tile that covers the cell's centre, from the tile cell under that
//! centre, and combines them by a weighted mean whose weight is a tent over the tile
//! (`min(c + 1, grid_w − c) × min(r + 1, grid_h − r)` for tile cell `(r, c)`): a tile's
//! interior counts more than its border, where the encoders see less context, so overlaps
//! blend without seams. A weighted mean of equal values is that value, so tiles that all
//! score the same stitch into a constant map.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::image::ImageView;

/// Most tiles one image may be cut into; beyond it the tile scores and features of one
/// image alone would take hundreds of megabytes. 4096 tiles of 224 px cover a 64 MP image
/// (the default image limit) with no overlap, or a 4k × 3k image at overlap 0.75.
pub const MAX_TILES: usize = 4096;

/// Where tile banks keep their normal features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TileLayout {
    /// One bank for the tiles of every position: textures, webs, surfaces, where a feature
    /// is normal anywhere on the part.
    Shared,
    /// One bank per tile position: aligned objects, where a feature is normal only at its
    /// place. Images scored must have the size of the images the bank was built from.
    PerPosition,
}

impl TileLayout {
    /// Parses `shared` or `per_position` (`per-position` too), case-insensitive.
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "shared" => Ok(Self::Shared),
            "per_position" => Ok(Self::PerPosition),
            other => Err(Error::invalid(format!("unknown tile bank layout '{other}' (expected shared or per_position)"))),
        }
    }
    /// The snake_case name, as [`TileLayout::parse`] reads it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Shared => "shared",
            Self::PerPosition => "per_position",
        }
    }
}

/// How images are cut into tiles: the user's bank option, stored in the bank file.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Tiling {
    /// Image pixels one encoder input covers, along its width (> 0). The tile's height
    /// follows the encoder input's aspect ratio.
    pub tile: u32,
    /// Share of a tile that overlaps its neighbour, in [0, 1).
    pub overlap: f32,
    /// One bank for all tiles, or one per tile position.
    pub layout: TileLayout,
}

impl Tiling {
    /// Checks the values, naming the one that is wrong.
    pub fn validate(&self) -> Result<()> {
        if self.tile == 0 {
            return Err(Error::invalid("tile must be > 0 pixels (or leave tiling off)"));
        }
        if !(self.overlap.is_finite() && (0.0..1.0).contains(&self.overlap)) {
            return Err(Error::invalid(format!("tile overlap {} must be in [0, 1)", self.overlap)));
        }
        Ok(())
    }

    /// Tile width and height in image pixels for an encoder input of `input_w × input_h`.
    pub fn tile_size(&self, input_w: u32, input_h: u32) -> (u32, u32) {
        let h = ((self.tile as f64 * input_h as f64 / input_w as f64).round() as u32).max(1);
        (self.tile, h)
    }
}

/// The tiles of one image: their size and top-left corners, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileGrid {
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Tile width in image pixels.
    pub tile_w: u32,
    /// Tile height in image pixels.
    pub tile_h: u32,
    /// Left edge of each tile column.
    pub xs: Vec<u32>,
    /// Top edge of each tile row.
    pub ys: Vec<u32>,
}

/// Starts of the tiles along one axis of `len` pixels.
fn starts(len: u32, tile: u32, overlap: f32) -> Vec<u32> {
    let step = ((tile as f64 * (1.0 - overlap as f64)).round() as u32).max(1);
    let n = (len - tile).div_ceil(step) + 1;
    (0..n).map(|i| (i * step).min(len - tile)).collect()
}

impl TileGrid {
    /// The tiles of a `width × height` image for an encoder input of `input_w × input_h`;
    /// refuses a tile larger than the image and more than [`MAX_TILES`] tiles.
    pub fn new(width: u32, height: u32, tiling: &Tiling, input_w: u32, input_h: u32) -> Result<Self> {
        tiling.validate()?;
        let (tile_w, tile_h) = tiling.tile_size(input_w, input_h);
        Self::sized(width, height, tile_w, tile_h, tiling.overlap)
    }

    /// [`TileGrid::new`] with the tile size already known (as a bank file stores it).
    pub fn sized(width: u32, height: u32, tile_w: u32, tile_h: u32, overlap: f32) -> Result<Self> {
        if tile_w == 0 || tile_h == 0 {
            return Err(Error::invalid(format!("tile {tile_w}x{tile_h} must be at least 1x1")));
        }
        if !(overlap.is_finite() && (0.0..1.0).contains(&overlap)) {
            return Err(Error::invalid(format!("tile overlap {overlap} must be in [0, 1)")));
        }
        if tile_w > width || tile_h > height {
            return Err(Error::invalid(format!(
                "tile {tile_w}x{tile_h} is larger than the {width}x{height} image; use a smaller tile or tiling off"
            )));
        }
        let xs = starts(width, tile_w, overlap);
        let ys = starts(height, tile_h, overlap);
        let n = xs.len() * ys.len();
        if n > MAX_TILES {
            return Err(Error::LimitExceeded(format!(
                "a {width}x{height} image in {tile_w}x{tile_h} tiles at overlap {overlap} makes {n} tiles, above the limit of {MAX_TILES} (MAX_TILES); use a larger tile or less overlap"
            )));
        }
        Ok(Self { width, height, tile_w, tile_h, xs, ys })
    }

    /// Number of tiles.
    pub fn len(&self) -> usize {
        self.xs.len() * self.ys.len()
    }
    /// Always false: a grid has at least one tile.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Tile columns.
    pub fn cols(&self) -> usize {
        self.xs.len()
    }
    /// Tile rows.
    pub fn rows(&self) -> usize {
        self.ys.len()
    }
    /// Top-left corner of tile `i` (row-major).
    pub fn origin(&self, i: usize) -> (u32, u32) {
        (self.xs[i % self.cols()], self.ys[i / self.cols()])
    }

    /// The tiles of `image` as views into its buffer, row-major (no pixel is copied).
    pub fn views<'a>(&self, image: &ImageView<'a>) -> Result<Vec<ImageView<'a>>> {
        if (image.width(), image.height()) != (self.width, self.height) {
            return Err(Error::Internal(format!(
                "tile grid for {}x{} used on a {}x{} image",
                self.width,
                self.height,
                image.width(),
                image.height()
            )));
        }
        (0..self.len())
            .map(|i| {
                let (x, y) = self.origin(i);
                image.crop(x, y, self.tile_w, self.tile_h)
            })
            .collect()
    }

    /// Size of the whole image's patch map for tiles whose patch grid is
    /// `grid_w × grid_h`: the tiles' patch pitch over the image, at least 1 × 1.
    pub fn stitched_size(&self, grid_w: usize, grid_h: usize) -> (usize, usize) {
        let w = ((self.width as f64 * grid_w as f64 / self.tile_w as f64).round() as usize).max(1);
        let h = ((self.height as f64 * grid_h as f64 / self.tile_h as f64).round() as usize).max(1);
        (w, h)
    }

    /// Stitches the tiles' patch scores (`tiles.len() == self.len()`, each
    /// `grid_w × grid_h`, row-major) into the image's patch map of
    /// [`TileGrid::stitched_size`], by the tent-weighted mean of the module doc.
    pub fn stitch(&self, tiles: &[&[f32]], grid_w: usize, grid_h: usize, out: &mut Vec<f32>) -> Result<(usize, usize)> {
        if tiles.len() != self.len() || tiles.iter().any(|t| t.len() != grid_w * grid_h) || grid_w == 0 || grid_h == 0 {
            return Err(Error::Internal(format!(
                "stitching {} tile maps into a grid of {} tiles of {grid_w}x{grid_h} patches",
                tiles.len(),
                self.len()
            )));
        }
        let (sw, sh) = self.stitched_size(grid_w, grid_h);
        // For each tile column (row): the first stitched column (row) whose centre it
        // covers, then the tile cell under each covered centre and its tent weight.
        let axis = |n: usize, len: u32, tile: u32, starts: &[u32], g: usize| -> Vec<(usize, Vec<(usize, f32)>)> {
            starts
                .iter()
                .map(|&s0| {
                    let mut first = None;
                    let mut cells = Vec::new();
                    for j in 0..n {
                        let c = (j as f64 + 0.5) * len as f64 / n as f64 - s0 as f64;
                        if c < 0.0 || c >= tile as f64 {
                            continue;
                        }
                        first.get_or_insert(j);
                        let k = ((c * g as f64 / tile as f64) as usize).min(g - 1);
                        cells.push((k, (k + 1).min(g - k) as f32));
                    }
                    (first.unwrap_or(0), cells)
                })
                .collect()
        };
        let col_map = axis(sw, self.width, self.tile_w, &self.xs, grid_w);
        let row_map = axis(sh, self.height, self.tile_h, &self.ys, grid_h);
        out.clear();
        out.resize(sw * sh, 0.0);
        let mut weight = vec![0.0f32; sw * sh];
        for (i, t) in tiles.iter().enumerate() {
            let ((x0, cols), (y0, rows)) = (&col_map[i % self.cols()], &row_map[i / self.cols()]);
            for (dy, &(tr, wr)) in rows.iter().enumerate() {
                let row = &t[tr * grid_w..(tr + 1) * grid_w];
                let at = (y0 + dy) * sw + x0;
                let (o, wt) = (&mut out[at..at + cols.len()], &mut weight[at..at + cols.len()]);
                for (dx, &(tc, wc)) in cols.iter().enumerate() {
                    let w = wr * wc;
                    o[dx] += w * row[tc];
                    wt[dx] += w;
                }
            }
        }
        for (v, w) in out.iter_mut().zip(&weight) {
            if *w <= 0.0 {
                return Err(Error::Internal("a stitched patch is covered by no tile".into()));
            }
            *v /= *w;
        }
        Ok((sw, sh))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::PixelFormat;

    fn t(tile: u32, overlap: f32) -> Tiling {
        Tiling { tile, overlap, layout: TileLayout::Shared }
    }

    /// Every pixel of the image lies in at least one tile, tiles stay inside the image.
    fn covers(w: u32, h: u32, tiling: &Tiling) {
        let g = TileGrid::new(w, h, tiling, 224, 224).unwrap();
        let mut hit = vec![false; (w * h) as usize];
        for i in 0..g.len() {
            let (x0, y0) = g.origin(i);
            assert!(x0 + g.tile_w <= w && y0 + g.tile_h <= h, "tile {i} leaves the {w}x{h} image");
            for y in y0..y0 + g.tile_h {
                for x in x0..x0 + g.tile_w {
                    hit[(y * w + x) as usize] = true;
                }
            }
        }
        assert!(hit.iter().all(|&b| b), "{w}x{h} tile {} overlap {}: pixels missed", tiling.tile, tiling.overlap);
    }

    #[test]
    fn tiles_cover_awkward_sizes() {
        for &(w, h) in &[(224, 224), (225, 225), (449, 224), (1031, 997), (1024, 1024), (224, 4099), (3001, 224), (1130, 460)] {
            for &o in &[0.0, 0.1, 0.25, 0.5, 0.9] {
                covers(w, h, &t(224, o));
            }
        }
        covers(17, 13, &t(7, 0.0));
        covers(1, 50, &t(1, 0.0));
    }

    #[test]
    fn last_tile_is_shifted_inward_not_padded() {
        let g = TileGrid::new(225, 224, &t(224, 0.0), 224, 224).unwrap();
        assert_eq!(g.xs, vec![0, 1]);
        assert_eq!(g.ys, vec![0]);
        let g = TileGrid::new(1024, 1024, &t(256, 0.0), 224, 224).unwrap();
        assert_eq!(g.xs, vec![0, 256, 512, 768]);
        let g = TileGrid::new(1000, 500, &t(200, 0.5), 224, 224).unwrap();
        assert_eq!(g.xs.last(), Some(&800));
        assert_eq!(g.ys, vec![0, 100, 200, 300]);
    }

    #[test]
    fn tile_keeps_the_encoder_aspect_ratio() {
        assert_eq!(t(448, 0.0).tile_size(224, 112), (448, 224));
        assert_eq!(t(224, 0.0).tile_size(224, 224), (224, 224));
    }

    #[test]
    fn bad_tiling_is_refused() {
        let e = TileGrid::new(200, 300, &t(224, 0.0), 224, 224).unwrap_err().to_string();
        assert!(e.contains("larger than the 200x300 image"), "{e}");
        for o in [1.0, 1.5, -0.1, f32::NAN] {
            let e = TileGrid::new(1000, 1000, &t(224, o), 224, 224).unwrap_err().to_string();
            assert!(e.contains("overlap"), "{e}");
        }
        let e = TileGrid::new(16384, 16384, &t(64, 0.5), 224, 224).unwrap_err();
        assert!(matches!(e, Error::LimitExceeded(_)) && e.to_string().contains("MAX_TILES"), "{e}");
        assert!(TileGrid::new(100, 100, &t(0, 0.0), 224, 224).is_err());
        assert!(TileLayout::parse("per-position").is_ok() && TileLayout::parse("grid").is_err());
    }

    #[test]
    fn constant_tiles_stitch_into_a_constant_map() {
        for &(w, h, tile, o) in &[(1024u32, 1024u32, 224u32, 0.0f32), (1130, 460, 224, 0.25), (449, 225, 224, 0.5), (300, 300, 224, 0.1)] {
            let g = TileGrid::new(w, h, &t(tile, o), 224, 224).unwrap();
            let tiles: Vec<Vec<f32>> = vec![vec![0.75; 28 * 28]; g.len()];
            let refs: Vec<&[f32]> = tiles.iter().map(|v| v.as_slice()).collect();
            let mut out = Vec::new();
            let (sw, sh) = g.stitch(&refs, 28, 28, &mut out).unwrap();
            assert_eq!(out.len(), sw * sh);
            assert!(out.iter().all(|&v| (v - 0.75).abs() < 1e-6), "{w}x{h}: seams in a constant map");
        }
    }

    #[test]
    fn stitching_places_each_tile_at_its_position() {
        // Four tiles without overlap: each stitched quadrant is its own tile's values.
        let g = TileGrid::new(448, 448, &t(224, 0.0), 224, 224).unwrap();
        let tiles: Vec<Vec<f32>> = (0..4).map(|i| (0..4).map(|k| (10 * i + k) as f32).collect()).collect();
        let refs: Vec<&[f32]> = tiles.iter().map(|v| v.as_slice()).collect();
        let mut out = Vec::new();
        assert_eq!(g.stitch(&refs, 2, 2, &mut out).unwrap(), (4, 4));
        assert_eq!(out, vec![0., 1., 10., 11., 2., 3., 12., 13., 20., 21., 30., 31., 22., 23., 32., 33.]);
    }

    #[test]
    fn views_borrow_the_right_pixels() {
        let (w, h) = (5u32, 4u32);
        let data: Vec<u8> = (0..w * h).map(|v| v as u8).collect();
        let img = ImageView::packed(&data, w, h, PixelFormat::Gray8).unwrap();
        let g = TileGrid::new(w, h, &t(3, 0.0), 1, 1).unwrap();
        let v = g.views(&img).unwrap();
        assert_eq!(v.len(), 4);
        assert_eq!(v[3].row(0), &[7, 8, 9]);
        assert_eq!(v[3].row(2), &[17, 18, 19]);
    }
}
