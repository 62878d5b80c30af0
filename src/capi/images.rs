//! C images to borrowed `ImageView`s.

use crate::error::{Error, Result};
use crate::image::{ImageView, PixelFormat};
use crate::model::Model;

use super::status::in_param;
use super::types::{nexvitad_image, nexvitad_mask};
use crate::roi::Roi;

/// Most images one call accepts: bounds the caller's array before it is read.
pub(crate) const MAX_IMAGES_PER_CALL: usize = 1 << 20;

/// The caller's array of `n` images, checked for NULL and size before it is touched.
///
/// # Safety
/// `images` is NULL or points to `n` readable `nexvitad_image`s.
pub(crate) unsafe fn image_array<'a>(images: *const nexvitad_image, n: usize, param: &str) -> Result<&'a [nexvitad_image]> {
    if images.is_null() {
        return Err(Error::invalid(format!("{param} is NULL")));
    }
    if n == 0 {
        return Err(Error::invalid(format!("n is 0: {param} must hold at least one image")));
    }
    if n > MAX_IMAGES_PER_CALL {
        return Err(Error::invalid(format!("n {n} is above the {MAX_IMAGES_PER_CALL} images one call accepts")));
    }
    Ok(std::slice::from_raw_parts(images, n))
}

/// Wraps one C image, applying the model's image limits. Sizes, limits and stride are
/// checked before the pixel slice is formed, so no slice ever extends past what a
/// well-formed caller buffer of those dimensions holds.
///
/// # Safety
/// `img.data` points to at least `stride * (height - 1) + width * bytes_per_pixel` bytes
/// when the dimensions pass the checks.
pub(crate) unsafe fn view<'a>(model: &Model, img: &nexvitad_image, param: &str) -> Result<ImageView<'a>> {
    let format = PixelFormat::from_code(img.format).map_err(|e| in_param(e, &format!("{param}.format")))?;
    if img.data.is_null() {
        return Err(Error::invalid(format!("{param}.data is NULL")));
    }
    let (w, h) = (img.width, img.height);
    if w == 0 || h == 0 {
        return Err(Error::invalid(format!("{param}: image size {w}x{h}: width and height must be > 0")));
    }
    let lim = &model.options().image_limits;
    if w > lim.max_side || h > lim.max_side || w as u64 * h as u64 > lim.max_pixels {
        return Err(Error::LimitExceeded(format!(
            "{param}: image size {w}x{h} exceeds the model's limits ({} per side, {} pixels; see nexvitad_options)",
            lim.max_side, lim.max_pixels
        )));
    }
    let row = w as usize * format.channels();
    let stride = if img.stride == 0 { row } else { img.stride };
    if stride < row {
        return Err(Error::invalid(format!(
            "{param}.stride {stride} is smaller than one row of {w} {} pixels ({row} bytes)",
            format.name()
        )));
    }
    let needed = stride
        .checked_mul(h as usize - 1)
        .and_then(|v| v.checked_add(row))
        .filter(|&v| v <= isize::MAX as usize)
        .ok_or_else(|| Error::invalid(format!("{param}.stride {stride} × height {h} overflows the address space")))?;
    let data = std::slice::from_raw_parts(img.data, needed);
    model.view(data, w, h, stride, format).map_err(|e| in_param(e, param))
}

/// Copies a C region-of-interest mask (NULL = none). Size and stride are checked before
/// the byte slice is formed, as for images.
///
/// # Safety
/// `m` is NULL or points to a readable `nexvitad_mask` whose `data` holds at least
/// `stride * (height - 1) + width` bytes when the dimensions pass the checks.
pub(crate) unsafe fn mask(m: *const nexvitad_mask, param: &str) -> Result<Option<Roi>> {
    if m.is_null() {
        return Ok(None);
    }
    let m = &*m;
    if m.data.is_null() {
        return Err(Error::invalid(format!("{param}->data is NULL")));
    }
    let (w, h) = (m.width, m.height);
    if w == 0 || h == 0 {
        return Err(Error::invalid(format!("{param}: mask size {w}x{h}: width and height must be > 0")));
    }
    if w > crate::roi::MAX_ROI_SIDE || h > crate::roi::MAX_ROI_SIDE {
        return Err(Error::LimitExceeded(format!("{param}: mask size {w}x{h} is above {} per side", crate::roi::MAX_ROI_SIDE)));
    }
    let stride = if m.stride == 0 { w as usize } else { m.stride };
    if stride < w as usize {
        return Err(Error::invalid(format!("{param}->stride {stride} is smaller than its width {w}")));
    }
    let needed = stride
        .checked_mul(h as usize - 1)
        .and_then(|v| v.checked_add(w as usize))
        .filter(|&v| v <= isize::MAX as usize)
        .ok_or_else(|| Error::invalid(format!("{param}->stride {stride} × height {h} overflows the address space")))?;
    let data = std::slice::from_raw_parts(m.data, needed);
    Roi::new(data, w, h, stride).map(Some).map_err(|e| in_param(e, param))
}
