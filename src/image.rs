//! Caller pixels and their preparation for the encoders.
//!
//! [`ImageView`] borrows the caller's buffer (no copy until preparation), so a machine-vision
//! application can hand over a camera frame or an OpenCV/HALCON image as it is, with its own
//! pixel order and row padding. [`Preparer`] resizes it to the encoder's input size with
//! `fast_image_resize` (Pillow-compatible bilinear convolution) and normalises it into NCHW f32.

use fast_image_resize as fr;
use ndarray::{Array4, ArrayViewMut3, Axis};

use crate::error::{Error, Result};

/// Pixel layouts accepted from callers. Values are the C ABI's `nexvitad_pixel_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum PixelFormat {
    /// One byte per pixel, gray; used for all three encoder channels.
    Gray8 = 0,
    /// Three bytes per pixel: R, G, B.
    Rgb8 = 1,
    /// Three bytes per pixel: B, G, R (OpenCV's order).
    Bgr8 = 2,
    /// Four bytes per pixel: R, G, B, alpha (ignored).
    Rgba8 = 3,
    /// Four bytes per pixel: B, G, R, alpha (ignored).
    Bgra8 = 4,
}

impl PixelFormat {
    /// Every format, for tests and tools.
    pub const ALL: [PixelFormat; 5] = [Self::Gray8, Self::Rgb8, Self::Bgr8, Self::Rgba8, Self::Bgra8];

    /// Bytes per pixel.
    pub fn channels(self) -> usize {
        match self {
            Self::Gray8 => 1,
            Self::Rgb8 | Self::Bgr8 => 3,
            Self::Rgba8 | Self::Bgra8 => 4,
        }
    }

    /// From the C ABI's integer code; unknown codes are an error naming the value.
    pub fn from_code(code: u32) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|f| *f as u32 == code)
            .ok_or_else(|| Error::invalid(format!("unknown pixel format {code} (expected 0=GRAY8, 1=RGB8, 2=BGR8, 3=RGBA8, 4=BGRA8)")))
    }

    /// Index of the R, G and B bytes inside one pixel (gray repeats its one byte).
    fn rgb_offsets(self) -> [usize; 3] {
        match self {
            Self::Gray8 => [0, 0, 0],
            Self::Rgb8 | Self::Rgba8 => [0, 1, 2],
            Self::Bgr8 | Self::Bgra8 => [2, 1, 0],
        }
    }

    fn fr_type(self) -> fr::PixelType {
        match self {
            Self::Gray8 => fr::PixelType::U8,
            Self::Rgb8 | Self::Bgr8 => fr::PixelType::U8x3,
            Self::Rgba8 | Self::Bgra8 => fr::PixelType::U8x4,
        }
    }

    /// Lower-case name as used in messages and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gray8 => "gray8",
            Self::Rgb8 => "rgb8",
            Self::Bgr8 => "bgr8",
            Self::Rgba8 => "rgba8",
            Self::Bgra8 => "bgra8",
        }
    }
}

/// Caps that protect a host process from absurd or hostile image sizes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageLimits {
    /// Largest accepted width or height.
    pub max_side: u32,
    /// Largest accepted width × height.
    pub max_pixels: u64,
}

impl Default for ImageLimits {
    fn default() -> Self {
        // 16k per side and 64 MP cover every industrial camera we know of, while keeping a
        // full-resolution f32 anomaly map (256 MB at the cap) allocatable.
        Self { max_side: 16384, max_pixels: 64 << 20 }
    }
}

/// A borrowed image: the caller keeps ownership of the pixels.
#[derive(Debug, Clone, Copy)]
pub struct ImageView<'a> {
    data: &'a [u8],
    width: u32,
    height: u32,
    stride: usize,
    format: PixelFormat,
}

impl<'a> ImageView<'a> {
    /// Validates and wraps a caller buffer. `stride` is the distance in bytes between rows
    /// (at least `width × channels`); the last row needs only `width × channels` bytes.
    pub fn new(data: &'a [u8], width: u32, height: u32, stride: usize, format: PixelFormat) -> Result<Self> {
        Self::with_limits(data, width, height, stride, format, &ImageLimits::default())
    }

    /// Like [`ImageView::new`] with explicit size caps.
    pub fn with_limits(
        data: &'a [u8],
        width: u32,
        height: u32,
        stride: usize,
        format: PixelFormat,
        limits: &ImageLimits,
    ) -> Result<Self> {
        if width == 0 || height == 0 {
            return Err(Error::invalid(format!("image size {width}x{height}: width and height must be > 0")));
        }
        if width > limits.max_side || height > limits.max_side {
            return Err(Error::LimitExceeded(format!(
                "image size {width}x{height} exceeds the maximum side {} (ImageLimits::max_side)",
                limits.max_side
            )));
        }
        if width as u64 * height as u64 > limits.max_pixels {
            return Err(Error::LimitExceeded(format!(
                "image size {width}x{height} exceeds the maximum of {} pixels (ImageLimits::max_pixels)",
                limits.max_pixels
            )));
        }
        let row = width as usize * format.channels();
        if stride < row {
            return Err(Error::invalid(format!(
                "stride {stride} is smaller than one row of {width} {} pixels ({row} bytes)",
                format.name()
            )));
        }
        let needed = stride
            .checked_mul(height as usize - 1)
            .and_then(|v| v.checked_add(row))
            .ok_or_else(|| Error::invalid(format!("stride {stride} × height {height} overflows")))?;
        if data.len() < needed {
            return Err(Error::invalid(format!(
                "pixel buffer holds {} bytes, but a {width}x{height} {} image with stride {stride} needs {needed}",
                data.len(),
                format.name()
            )));
        }
        Ok(Self { data, width, height, stride, format })
    }

    /// A tightly packed image (stride = width × channels).
    pub fn packed(data: &'a [u8], width: u32, height: u32, format: PixelFormat) -> Result<Self> {
        Self::new(data, width, height, width as usize * format.channels(), format)
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }
    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }
    /// Bytes from the start of one row to the start of the next.
    pub fn stride(&self) -> usize {
        self.stride
    }
    /// The pixel layout.
    pub fn format(&self) -> PixelFormat {
        self.format
    }
    /// The caller's whole buffer, row padding included.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The `w × h` rectangle at `(x, y)` as a view into the same buffer (no copy): a tile.
    pub fn crop(&self, x: u32, y: u32, w: u32, h: u32) -> Result<ImageView<'a>> {
        if w == 0 || h == 0 || x as u64 + w as u64 > self.width as u64 || y as u64 + h as u64 > self.height as u64 {
            return Err(Error::invalid(format!(
                "crop {w}x{h} at ({x}, {y}) does not lie inside the {}x{} image",
                self.width, self.height
            )));
        }
        let start = y as usize * self.stride + x as usize * self.format.channels();
        Ok(ImageView { data: &self.data[start..], width: w, height: h, stride: self.stride, format: self.format })
    }

    /// One row's pixel bytes, without padding.
    pub fn row(&self, y: u32) -> &'a [u8] {
        let start = y as usize * self.stride;
        &self.data[start..start + self.width as usize * self.format.channels()]
    }

    /// The pixels as one contiguous buffer: borrowed when already packed, else copied.
    fn packed_bytes(&self) -> std::borrow::Cow<'a, [u8]> {
        let row = self.width as usize * self.format.channels();
        if self.stride == row {
            std::borrow::Cow::Borrowed(&self.data[..row * self.height as usize])
        } else {
            let mut v = Vec::with_capacity(row * self.height as usize);
            for y in 0..self.height {
                v.extend_from_slice(self.row(y));
            }
            std::borrow::Cow::Owned(v)
        }
    }
}

/// Per-channel normalisation `(x / 255 - mean) / std`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalization {
    /// Per-channel R, G, B mean (on the 0..1 scale).
    pub mean: [f32; 3],
    /// Per-channel R, G, B standard deviation (on the 0..1 scale).
    pub std: [f32; 3],
}

/// Resizes and normalises images into encoder input tensors. Holds the resizer's scratch
/// buffers, so one `Preparer` per thread avoids re-allocating them for every image.
pub struct Preparer {
    resizer: fr::Resizer,
    resized: Vec<u8>,
}

impl Default for Preparer {
    fn default() -> Self {
        Self::new()
    }
}

impl Preparer {
    /// A preparer with empty scratch buffers (they grow on first use).
    pub fn new() -> Self {
        Self { resizer: fr::Resizer::new(), resized: Vec::new() }
    }

    /// Prepares a batch into a new `[N, 3, height, width]` tensor.
    pub fn prepare_batch(
        &mut self,
        images: &[ImageView<'_>],
        width: u32,
        height: u32,
        norm: &Normalization,
    ) -> Result<Array4<f32>> {
        let mut out = Array4::<f32>::zeros((images.len(), 3, height as usize, width as usize));
        for (img, slot) in images.iter().zip(out.axis_iter_mut(Axis(0))) {
            self.prepare_into(img, slot, norm)?;
        }
        Ok(out)
    }

    /// Prepares one image into `out` (`[3, height, width]`), whose size sets the target size.
    pub fn prepare_into(&mut self, img: &ImageView<'_>, mut out: ArrayViewMut3<'_, f32>, norm: &Normalization) -> Result<()> {
        let (c, h, w) = out.dim();
        if c != 3 || h == 0 || w == 0 {
            return Err(Error::invalid(format!("prepare target must be [3, h, w] with h, w > 0, got [{c}, {h}, {w}]")));
        }
        let ch = img.format.channels();
        let src = img.packed_bytes();
        let resized: &[u8] = if img.width as usize == w && img.height as usize == h {
            &src
        } else {
            self.resized.resize(w * h * ch, 0);
            let src_ref = fr::images::ImageRef::new(img.width, img.height, &src, img.format.fr_type())
                .map_err(|e| Error::Internal(format!("resize source: {e}")))?;
            let mut dst = fr::images::Image::from_slice_u8(w as u32, h as u32, &mut self.resized, img.format.fr_type())
                .map_err(|e| Error::Internal(format!("resize target: {e}")))?;
            // Alpha is ignored (parts are opaque); without use_alpha(false) the resizer would
            // premultiply it and darken pixels that a camera marked transparent.
            let opts = fr::ResizeOptions::new()
                .resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Bilinear))
                .use_alpha(false);
            self.resizer
                .resize(&src_ref, &mut dst, &opts)
                .map_err(|e| Error::Internal(format!("resize: {e}")))?;
            &self.resized
        };
        let offs = img.format.rgb_offsets();
        for k in 0..3 {
            let scale = 1.0 / (255.0 * norm.std[k]);
            let bias = -norm.mean[k] / norm.std[k];
            let mut plane = out.index_axis_mut(Axis(0), k);
            let plane = plane
                .as_slice_mut()
                .ok_or_else(|| Error::Internal("prepare target plane is not contiguous".into()))?;
            for (dst, px) in plane.iter_mut().zip(resized.chunks_exact(ch)) {
                *dst = px[offs[k]] as f32 * scale + bias;
            }
        }
        Ok(())
    }
}
