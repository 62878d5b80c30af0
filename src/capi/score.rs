//! Scoring: one image or a batch, into caller buffers.

use std::cell::RefCell;
use std::mem::size_of;

use super::handles::{self, BankHandle, ModelHandle};
use super::images::{image_array, mask, view};
use super::status::{guard, non_null};
use super::types::{
    nexvitad_bank, nexvitad_image, nexvitad_model, nexvitad_region, nexvitad_result, nexvitad_score_options, nexvitad_status,
    nexvitad_roi_source::*, nexvitad_threshold_source::*,
};
use super::versioned::{read_in, struct_size, write_out};
use crate::error::{Error, Result};
use crate::image::ImageView;
use crate::roi::Roi;
use crate::score::{score_batch, score_batch_with, RegionOptions, RoiChoice, RoiSource, ScoreOptions, ScoreResult, Workspace};

/// Images per encoder call in nexvitad_score_batch(): bounds the memory one call takes
/// (about 2 MB of encoder input per image) whatever `n` is.
const BATCH_CHUNK: usize = 16;

thread_local! {
    /// Scoring buffers reused by every call on this thread.
    static WORKSPACE: RefCell<Workspace> = RefCell::new(Workspace::new());
}

/// Scores with this thread's workspace (a fresh one if it is busy or gone).
fn with_workspace<R>(f: impl FnOnce(&mut Workspace) -> R) -> R {
    let mut f = Some(f);
    let reused = WORKSPACE.try_with(|ws| ws.try_borrow_mut().ok().map(|mut ws| (f.take().unwrap())(&mut ws)));
    match reused {
        Ok(Some(r)) => r,
        _ => (f.take().expect("workspace closure already ran"))(&mut Workspace::new()),
    }
}

/// Floats needed for an image's anomaly map.
fn map_floats(v: &ImageView<'_>) -> usize {
    v.width() as usize * v.height() as usize
}

/// Checks a caller map buffer against the image before any work is done.
fn check_map(map: *const f32, len: usize, v: &ImageView<'_>, what: &str, len_name: &str) -> Result<()> {
    let need = map_floats(v);
    if !map.is_null() && len < need {
        return Err(Error::invalid(format!(
            "{len_name} {len} is smaller than the {}x{} map the image needs ({need} floats) for {what}",
            v.width(),
            v.height()
        )));
    }
    Ok(())
}

fn c_result(r: &ScoreResult, size: usize) -> nexvitad_result {
    let t = &r.timings;
    nexvitad_result {
        struct_size: size,
        image_score: r.map.image_score,
        image_threshold: r.image_threshold,
        pixel_threshold: r.pixel_threshold,
        is_anomalous: r.is_anomalous as i32,
        width: r.map.width,
        height: r.map.height,
        prepare_s: t.prepare_s,
        hiera_s: t.hiera_s,
        dinov2_s: t.dinov2_s,
        head_s: t.head_s,
        matching_s: t.matching_s,
        upsample_smooth_s: t.upsample_smooth_s,
        threshold_flags: (if r.image_threshold_from_caller { NEXVITAD_IMAGE_THRESHOLD_FROM_CALLER as u32 } else { 0 })
            | (if r.pixel_threshold_from_caller { NEXVITAD_PIXEL_THRESHOLD_FROM_CALLER as u32 } else { 0 }),
        reserved0: 0,
        region_count: r.regions.len() as u64,
        roi_source: match r.roi {
            RoiSource::None => NEXVITAD_ROI_NONE as u32,
            RoiSource::Bank => NEXVITAD_ROI_FROM_BANK as u32,
            RoiSource::Caller => NEXVITAD_ROI_FROM_CALLER as u32,
        },
        reserved1: 0,
    }
}

/// The model to score with: the bank's own when `model` is NULL (ABI revision 2), else the
/// caller's live handle, which `score_batch` then checks against the bank's fingerprint.
fn scoring_model(model: *const nexvitad_model, bh: &BankHandle) -> Result<std::sync::Arc<ModelHandle>> {
    if model.is_null() {
        Ok(bh.model.clone())
    } else {
        handles::model(model, "model")
    }
}

/// Copies a map into a caller buffer (NULL = not wanted).
///
/// # Safety
/// `dst` is NULL or holds at least `r.map.values.len()` floats (checked by `check_map`).
unsafe fn copy_map(r: &ScoreResult, dst: *mut f32) {
    if !dst.is_null() {
        std::ptr::copy_nonoverlapping(r.map.values.as_ptr(), dst, r.map.values.len());
    }
}

/// Scores one image: its anomaly map at the image's own width x height, its image score,
/// the bank's thresholds and the decision.
///
/// `bank`: a live bank handle. `model`: NULL to score with the model the bank was built or
/// loaded with, which the bank keeps alive (ABI revision 2; check
/// `nexvitad_abi_revision() >= 2`, older libraries refuse NULL), else a live model handle
/// with the bank's fingerprint: the bank's own model or one opened from the same folder
/// (e.g. with other options); its encoders then run the image, and any other model gives
/// NEXVITAD_MISMATCH. Handles may be freed in any order: after nexvitad_model_free() the
/// bank alone still scores with a NULL `model`. `image`: caller-owned, read during the call only. `map_out`:
/// NULL if only the result is wanted, else a caller buffer of `map_len` floats that
/// receives the row-major map (width x height floats; `map_len` may be larger). `out`:
/// caller struct with `struct_size` set; receives the result. Nothing is written unless the
/// call succeeds.
///
/// Thread-safety: any thread; any number of threads may score with the same model and bank
/// at once, with results identical to scoring one at a time.
///
/// Errors: NEXVITAD_INVALID_ARGUMENT (NULL bank, image or out; `model` or `bank` not a live
/// handle of its kind; bad image; map_len below width x height), NEXVITAD_LIMIT_EXCEEDED
/// (image above the model's limits), NEXVITAD_MISMATCH (`model` is not NULL and has another
/// fingerprint than the bank's), NEXVITAD_RUNTIME (ONNX Runtime failed).
#[no_mangle]
pub unsafe extern "C" fn nexvitad_score(
    model: *const nexvitad_model,
    bank: *const nexvitad_bank,
    image: *const nexvitad_image,
    map_out: *mut f32,
    map_len: usize,
    out: *mut nexvitad_result,
) -> nexvitad_status {
    guard("nexvitad_score", || unsafe {
        let bh = handles::bank(bank, "bank")?;
        let mh = scoring_model(model, &bh)?;
        non_null(image, "image")?;
        struct_size(out as *const nexvitad_result, "out")?;
        let v = view(&mh.model, &*image, "image")?;
        check_map(map_out, map_len, &v, "image", "map_len")?;
        let mut r = with_workspace(|ws| score_batch(&mh.model, &bh.bank, std::slice::from_ref(&v), ws))?;
        let r = r.pop().ok_or_else(|| Error::Internal("no result for one image".into()))?;
        copy_map(&r, map_out);
        write_out(out, &c_result(&r, size_of::<nexvitad_result>()), "out")
    })
}

/// Scores `n` images in one call (the encoders run on groups of up to 16 images, which is
/// faster than one at a time on most machines).
///
/// `images`: `n` caller-owned images, any sizes. `maps_out`: NULL if no maps are wanted,
/// else an array of `n` pointers, each NULL (no map for that image) or a buffer of
/// `map_lens[i]` floats that receives image i's row-major map. `map_lens`: `n` lengths;
/// may be NULL only when `maps_out` is NULL. `results`: an array of `n` nexvitad_result;
/// set `results[0].struct_size = sizeof(nexvitad_result)`, which the library also takes as
/// the array's element size and writes into every element. Nothing is written unless the
/// whole call succeeds.
///
/// `model`: as in nexvitad_score(): NULL for the bank's own model (ABI revision 2), else a
/// live model with the bank's fingerprint.
///
/// Thread-safety and errors: as nexvitad_score(); messages name the image index.
#[no_mangle]
pub unsafe extern "C" fn nexvitad_score_batch(
    model: *const nexvitad_model,
    bank: *const nexvitad_bank,
    images: *const nexvitad_image,
    n: usize,
    maps_out: *const *mut f32,
    map_lens: *const usize,
    results: *mut nexvitad_result,
) -> nexvitad_status {
    guard("nexvitad_score_batch", || unsafe { batch(model, bank, images, n, None, maps_out, map_lens, results) })
}

/// nexvitad_score_batch() with per-call options for every image (revision 5): thresholds,
/// the region of interest and `min_region_area` as in nexvitad_score_with_options(). Each
/// result's `region_count` counts that image's defect regions (of at least
/// `min_region_area` pixels); the regions themselves come from
/// nexvitad_score_with_options(), one image at a time. `options` NULL = the defaults.
///
/// Arguments, thread-safety and errors: as nexvitad_score_batch(), plus the option errors of
/// nexvitad_score_with_options().
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn nexvitad_score_batch_with_options(
    model: *const nexvitad_model,
    bank: *const nexvitad_bank,
    images: *const nexvitad_image,
    n: usize,
    options: *const nexvitad_score_options,
    maps_out: *const *mut f32,
    map_lens: *const usize,
    results: *mut nexvitad_result,
) -> nexvitad_status {
    guard("nexvitad_score_batch_with_options", || unsafe {
        let o = if options.is_null() { default_score_options() } else { read_in(options, default_score_options(), "options")? };
        batch(model, bank, images, n, Some(&o), maps_out, map_lens, results)
    })
}

/// The body of both batch calls; `options` None = nexvitad_score_batch() (no regions).
#[allow(clippy::too_many_arguments)]
unsafe fn batch(
    model: *const nexvitad_model,
    bank: *const nexvitad_bank,
    images: *const nexvitad_image,
    n: usize,
    options: Option<&nexvitad_score_options>,
    maps_out: *const *mut f32,
    map_lens: *const usize,
    results: *mut nexvitad_result,
) -> Result<()> {
    let bh = handles::bank(bank, "bank")?;
    let mh = scoring_model(model, &bh)?;
    let imgs = image_array(images, n, "images")?;
    let stride = struct_size(results as *const nexvitad_result, "results")?;
    let roi = match options {
        Some(o) => mask(o.roi, "options->roi")?,
        None => None,
    };
    let opts = match options {
        Some(o) => to_score_options(o, true, roi.as_ref())?,
        None => ScoreOptions::default(),
    };
    if !maps_out.is_null() && map_lens.is_null() {
        return Err(Error::invalid("map_lens is NULL but maps_out is not"));
    }
    let maps: &[*mut f32] = if maps_out.is_null() { &[] } else { std::slice::from_raw_parts(maps_out, n) };
    let lens: &[usize] = if maps_out.is_null() { &[] } else { std::slice::from_raw_parts(map_lens, n) };
    let mut views = Vec::with_capacity(n);
    for (i, im) in imgs.iter().enumerate() {
        let v = view(&mh.model, im, &format!("images[{i}]"))?;
        if let (Some(&m), Some(&len)) = (maps.get(i), lens.get(i)) {
            check_map(m, len, &v, &format!("images[{i}]"), &format!("map_lens[{i}]"))?;
        }
        views.push(v);
    }
    let mut all = Vec::with_capacity(n);
    for chunk in views.chunks(BATCH_CHUNK) {
        all.extend(with_workspace(|ws| score_batch_with(&mh.model, &bh.bank, chunk, &opts, ws))?);
    }
    for (i, r) in all.iter().enumerate() {
        copy_map(r, maps.get(i).copied().unwrap_or(std::ptr::null_mut()));
        let dst = (results as *mut u8).add(i * stride) as *mut nexvitad_result;
        // Element i's struct_size is ours to set: the caller declared the size once, in [0].
        std::ptr::write_unaligned(dst as *mut usize, stride);
        write_out(dst, &c_result(r, stride), "results")?;
    }
    Ok(())
}

/// The defaults nexvitad_score_options_default() writes: the bank's thresholds, every region.
fn default_score_options() -> nexvitad_score_options {
    nexvitad_score_options {
        struct_size: size_of::<nexvitad_score_options>(),
        image_threshold: -1.0,
        pixel_threshold: -1.0,
        min_region_area: 0,
        roi: std::ptr::null(),
        ignore_bank_roi: 0,
        reserved0: 0,
    }
}

/// C score options to the safe API's: a negative threshold is the bank's (the header's
/// "use the default" rule); NaN reaches `ScoreOptions::validate`, which names it.
/// `roi` is the caller's mask, already copied from `o.roi` (see [`mask`]).
fn to_score_options<'a>(o: &nexvitad_score_options, regions: bool, roi: Option<&'a Roi>) -> Result<ScoreOptions<'a>> {
    // Any negative value, -0.0 included, is the bank's; NaN (whatever its sign bit) is kept
    // for `validate` to refuse.
    let threshold = |v: f32| if v.is_sign_negative() && !v.is_nan() { None } else { Some(v) };
    if o.reserved0 != 0 {
        return Err(Error::invalid(format!("options->reserved0 is {}; it must be 0", o.reserved0)));
    }
    let roi = match (roi, o.ignore_bank_roi) {
        (Some(r), 0 | 1) => RoiChoice::Mask(r),
        (None, 0) => RoiChoice::Bank,
        (None, 1) => RoiChoice::Everywhere,
        (_, v) => return Err(Error::invalid(format!("options->ignore_bank_roi is {v}; it must be 0 or 1"))),
    };
    Ok(ScoreOptions {
        image_threshold: threshold(o.image_threshold),
        pixel_threshold: threshold(o.pixel_threshold),
        regions: regions.then_some(RegionOptions { min_area: o.min_region_area }),
        roi,
    })
}

/// Fills `options` with the defaults: the bank's image and pixel thresholds (-1), every
/// region kept (min_region_area 0). Set `options->struct_size` first. (Revision 3.)
///
/// Errors: NEXVITAD_INVALID_ARGUMENT (NULL `options`, bad struct_size).
#[no_mangle]
pub unsafe extern "C" fn nexvitad_score_options_default(options: *mut nexvitad_score_options) -> nexvitad_status {
    guard("nexvitad_score_options_default", || unsafe {
        struct_size(options as *const nexvitad_score_options, "options")?;
        write_out(options, &default_score_options(), "options")
    })
}

/// Scores one image as nexvitad_score() does, with per-call thresholds and defect regions
/// (revision 3; check `nexvitad_abi_revision() >= 3`).
///
/// `options`: NULL for the defaults (the bank's thresholds), else a caller struct with
/// `struct_size` set: a non-negative `image_threshold` decides at that threshold instead
/// of the bank's, a non-negative `pixel_threshold` draws the regions there; the result's
/// `threshold_flags` says which were the caller's and its thresholds are the ones used.
///
/// Regions (connected pieces of the map above the pixel threshold, 8-neighbour, of at
/// least `min_region_area` pixels, highest peak first) are found when `region_count` is
/// not NULL (and `regions` without `region_count` is an error, not silently ignored): `*region_count` (and `out->region_count`) receive how many there are, and the
/// first min(count, `regions_cap`) are written to `regions`, a caller array of
/// `regions_cap` nexvitad_region. Like snprintf, a count above `regions_cap` is not an
/// error: call again with a larger array, or pass `regions` = NULL with `regions_cap` = 0
/// to ask only for the count. nexvitad_region never grows (a larger record would come with
/// a new function), so no element size is passed. No memory crosses the boundary.
///
/// `model`, `bank`, `image`, `map_out`, `map_len`, `out`, thread-safety: as nexvitad_score().
/// Nothing is written unless the call succeeds.
///
/// Region of interest (revision 4): `options->roi` replaces the bank's default ROI for this
/// call; NULL keeps the bank's (or the whole image when `ignore_bank_roi` is 1). Map
/// pixels outside it are 0, and the image score and the regions come from inside; the
/// result's `roi_source` says which ROI applied.
///
/// Errors: as nexvitad_score(), and NEXVITAD_INVALID_ARGUMENT for a NaN or infinite
/// threshold, a bad `options->struct_size`, `regions` NULL with `regions_cap` > 0,
/// `regions` given with `region_count` NULL, a bad `options->roi` (NULL data, 0 width or
/// height, stride below width, all zero: it selects nothing) or `ignore_bank_roi` not 0/1.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn nexvitad_score_with_options(
    model: *const nexvitad_model,
    bank: *const nexvitad_bank,
    image: *const nexvitad_image,
    options: *const nexvitad_score_options,
    map_out: *mut f32,
    map_len: usize,
    regions: *mut nexvitad_region,
    regions_cap: usize,
    region_count: *mut usize,
    out: *mut nexvitad_result,
) -> nexvitad_status {
    guard("nexvitad_score_with_options", || unsafe {
        let bh = handles::bank(bank, "bank")?;
        let mh = scoring_model(model, &bh)?;
        non_null(image, "image")?;
        struct_size(out as *const nexvitad_result, "out")?;
        let o = if options.is_null() { default_score_options() } else { read_in(options, default_score_options(), "options")? };
        if regions.is_null() && regions_cap > 0 {
            return Err(Error::invalid(format!("regions is NULL but regions_cap is {regions_cap}")));
        }
        if !regions.is_null() && region_count.is_null() {
            return Err(Error::invalid("regions is given but region_count is NULL; pass a size_t* to receive how many regions there are"));
        }
        let roi = mask(o.roi, "options->roi")?;
        let opts = to_score_options(&o, !region_count.is_null(), roi.as_ref())?;
        let v = view(&mh.model, &*image, "image")?;
        check_map(map_out, map_len, &v, "image", "map_len")?;
        let mut r = with_workspace(|ws| score_batch_with(&mh.model, &bh.bank, std::slice::from_ref(&v), &opts, ws))?;
        let r = r.pop().ok_or_else(|| Error::Internal("no result for one image".into()))?;
        copy_map(&r, map_out);
        if !region_count.is_null() {
            for (i, g) in r.regions.iter().take(regions_cap).enumerate() {
                *regions.add(i) = nexvitad_region {
                    x: g.x,
                    y: g.y,
                    width: g.width,
                    height: g.height,
                    area: g.area,
                    centroid_x: g.centroid_x,
                    centroid_y: g.centroid_y,
                    peak: g.peak,
                    mean: g.mean,
                };
            }
            *region_count = r.regions.len();
        }
        write_out(out, &c_result(&r, size_of::<nexvitad_result>()), "out")
    })
}
