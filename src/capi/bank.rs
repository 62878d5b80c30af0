//! Bank handles: options, build, save, load, info, free.

use std::ffi::{c_char, c_int, c_void};
use std::mem::size_of;

use super::handles::{self, BankHandle};
use super::images::{image_array, mask, view};
use super::log::log;
use super::status::{c_path, guard, non_null};
use super::types::{
    nexvitad_augment::*, nexvitad_bank, nexvitad_bank_info, nexvitad_bank_options, nexvitad_image, nexvitad_log_level,
    nexvitad_model, nexvitad_progress_cb, nexvitad_status,
};
use super::versioned::{read_in, write_out};
use crate::bank::{Augment, BankOptions, ImageScoreMode, MemoryBank, Progress, ScorerKind};
use crate::error::{Error, Result};
use crate::tiling::{TileLayout, Tiling};

fn scorer_code(s: ScorerKind) -> u32 {
    match s {
        ScorerKind::Sinkhorn => 0,
        ScorerKind::Full => 1,
        ScorerKind::Coreset => 2,
    }
}

fn image_score_codes(m: ImageScoreMode) -> (u32, f32) {
    match m {
        ImageScoreMode::Max => (0, 0.0),
        ImageScoreMode::TopMean { fraction } => (1, fraction),
    }
}

fn augment_bits(a: Augment) -> u32 {
    let bit = |on: bool, b| if on { b as u32 } else { 0 };
    bit(a.hflip, NEXVITAD_AUGMENT_HFLIP) | bit(a.vflip, NEXVITAD_AUGMENT_VFLIP) | bit(a.rot90, NEXVITAD_AUGMENT_ROT90)
}

/// `image_score_top_fraction` when 0 (the default of NEXVITAD_IMAGE_SCORE_TOP_MEAN).
const DEFAULT_TOP_FRACTION: f32 = 0.1;

/// The defaults nexvitad_bank_options_default() writes: the safe API's `BankOptions::default()`,
/// with the header's "use the default" values (0, -1, 0) where it has `None` (`k`, `sigma`,
/// `target_fpr`: the model's).
fn default_bank_options() -> nexvitad_bank_options {
    let d = BankOptions::default();
    let (mode, fraction) = image_score_codes(d.image_score);
    nexvitad_bank_options {
        struct_size: size_of::<nexvitad_bank_options>(),
        scorer: scorer_code(d.scorer),
        k: 0,
        epsilon: d.epsilon,
        max_iters: d.max_iters as u32,
        tol: d.tol,
        coreset_ratio: d.coreset_ratio,
        sigma: -1.0,
        image_score_mode: mode,
        image_score_top_fraction: if fraction > 0.0 { fraction } else { DEFAULT_TOP_FRACTION },
        augment: augment_bits(d.augment),
        target_fpr: 0.0,
        batch_size: d.batch_size as u32,
        seed: d.seed,
        max_vectors: d.max_vectors as u64,
        tile: 0,
        tile_overlap: 0.0,
        tile_layout: 0,
        reserved1: 0,
        roi: std::ptr::null(),
        growable: 0,
        reserved2: 0,
    }
}

/// C bank options to the safe API's. Enum codes and flag bits are checked here; value
/// ranges by `BankOptions::resolved` (during the build), which names the field.
///
/// The "use the default" rule of the header: 0 selects the default, except in `tol` and
/// `sigma`, where 0 is a real setting and any negative value selects the default (`k`, `sigma`
/// and `target_fpr` are the model's: they become the safe API's `None`). NaN is never a
/// default: it reaches `resolved`, which refuses it.
///
/// # Safety
/// `o.roi` is NULL or a readable nexvitad_mask (see [`mask`]).
unsafe fn to_bank_options(o: &nexvitad_bank_options) -> Result<BankOptions> {
    let d = BankOptions::default();
    let or_default = |v: f32, def: f32| if v == 0.0 { def } else { v };
    let neg_default = |v: f32, def: f32| if v < 0.0 { def } else { v };
    let scorer = match o.scorer {
        0 => ScorerKind::Sinkhorn,
        1 => ScorerKind::Full,
        2 => ScorerKind::Coreset,
        s => return Err(Error::invalid(format!("options->scorer {s} is not a nexvitad_scorer (0 SINKHORN, 1 FULL, 2 CORESET)"))),
    };
    let image_score = match o.image_score_mode {
        0 => ImageScoreMode::Max,
        1 => ImageScoreMode::TopMean { fraction: or_default(o.image_score_top_fraction, DEFAULT_TOP_FRACTION) },
        m => return Err(Error::invalid(format!("options->image_score_mode {m} is not a nexvitad_image_score_mode (0 MAX, 1 TOP_MEAN)"))),
    };
    let known = NEXVITAD_AUGMENT_HFLIP as u32 | NEXVITAD_AUGMENT_VFLIP as u32 | NEXVITAD_AUGMENT_ROT90 as u32;
    if o.augment & !known != 0 {
        return Err(Error::invalid(format!("options->augment {:#x} has bits that are not nexvitad_augment flags", o.augment)));
    }
    let max_vectors = match o.max_vectors {
        0 => d.max_vectors,
        v => usize::try_from(v)
            .map_err(|_| Error::invalid(format!("options->max_vectors {v} does not fit this machine's size_t")))?,
    };
    if o.tile_overlap.is_nan() {
        return Err(Error::invalid("options->tile_overlap is NaN"));
    }
    let tiling = match o.tile {
        0 => None,
        tile => {
            let layout = match o.tile_layout {
                0 => TileLayout::Shared,
                1 => TileLayout::PerPosition,
                l => return Err(Error::invalid(format!("options->tile_layout {l} is not a nexvitad_tile_layout (0 SHARED, 1 PER_POSITION)"))),
            };
            if !(o.tile_overlap.is_finite() && (0.0..1.0).contains(&o.tile_overlap)) {
                return Err(Error::invalid(format!("options->tile_overlap {} must be in [0, 1)", o.tile_overlap)));
            }
            Some(Tiling { tile, overlap: o.tile_overlap, layout })
        }
    };
    if o.reserved1 != 0 {
        return Err(Error::invalid(format!("options->reserved1 is {}; it must be 0", o.reserved1)));
    }
    let roi = mask(o.roi, "options->roi")?;
    let growable = match o.growable {
        0 => false,
        1 => true,
        v => return Err(Error::invalid(format!("options->growable is {v}; it must be 0 or 1"))),
    };
    if o.reserved2 != 0 {
        return Err(Error::invalid(format!("options->reserved2 is {}; it must be 0", o.reserved2)));
    }
    Ok(BankOptions {
        growable,
        tiling,
        roi,
        scorer,
        k: (o.k != 0).then_some(o.k as usize),
        epsilon: or_default(o.epsilon, d.epsilon),
        max_iters: if o.max_iters == 0 { d.max_iters } else { o.max_iters as usize },
        tol: neg_default(o.tol, d.tol),
        coreset_ratio: or_default(o.coreset_ratio, d.coreset_ratio),
        // Any negative sigma (not only -1) is the model's; NaN is not negative, so it is kept
        // and refused by `resolved`.
        sigma: if o.sigma < 0.0 { None } else { Some(o.sigma) },
        image_score,
        augment: Augment {
            hflip: o.augment & NEXVITAD_AUGMENT_HFLIP as u32 != 0,
            vflip: o.augment & NEXVITAD_AUGMENT_VFLIP as u32 != 0,
            rot90: o.augment & NEXVITAD_AUGMENT_ROT90 as u32 != 0,
        },
        target_fpr: (o.target_fpr != 0.0).then_some(o.target_fpr),
        seed: o.seed,
        batch_size: if o.batch_size == 0 { d.batch_size } else { o.batch_size as usize },
        max_vectors,
    })
}

/// Logs what a new or loaded bank holds; `what` says which ("built bank", ...).
fn log_bank(what: &str, b: &MemoryBank) {
    let m = b.meta();
    log(
        nexvitad_log_level::NEXVITAD_LOG_INFO,
        &format!(
            "{what}: scorer {}{}, {} vectors of width {}, grid {}x{}, {} shots, image threshold {}, pixel threshold {}",
            m.scorer.name(),
            m.tiles.as_ref().map_or(String::new(), |t| format!(
                ", {}x{} tiles at overlap {} ({})",
                t.tile_w,
                t.tile_h,
                t.tiling.overlap,
                t.tiling.layout.name()
            )),
            b.vectors().nrows(),
            m.dim,
            m.grid_w,
            m.grid_h,
            m.shots,
            m.calibration.image_threshold,
            m.calibration.pixel_threshold
        ),
    );
}

/// Fills `options` with the defaults: Sinkhorn K-means with the model's K (0 = model
/// default), epsilon 0.05, 50 iterations, tol 1e-4, coreset ratio 0.1, the model's sigma
/// (-1), image score = max (top fraction 0.1 if switched to TOP_MEAN), no augmentation,
/// the model's target FPR (0), seed 0, batch size 4, at most 4 Mi bank vectors. (A struct
/// of zeros except `sigma` and `tol` < 0 means the same: see the option table at the top.)
///
/// Set `options->struct_size = sizeof(nexvitad_bank_options)` first; only fields within it
/// are written.
///
/// Thread-safety: any thread. Errors: NEXVITAD_INVALID_ARGUMENT (NULL or bad struct_size).
#[no_mangle]
pub unsafe extern "C" fn nexvitad_bank_options_default(options: *mut nexvitad_bank_options) -> nexvitad_status {
    guard("nexvitad_bank_options_default", || unsafe { write_out(options, &default_bank_options(), "options") })
}

/// Builds a memory bank from `n` normal (defect-free) images of the product: encodes them,
/// fits the bank (Sinkhorn K-means prototypes by default) and calibrates the decision
/// thresholds by leave-one-out over the images. Minutes for many large images on CPU; use
/// `cb` to show progress or cancel.
///
/// `model`: a live model handle. `images`: `n` caller-owned images (any sizes and formats
/// mixed), read during the call only. `options`: NULL for the defaults, else read during
/// the call only. `cb`: NULL, or called after each batch/iteration on the calling thread
/// with `user`; returning non-zero cancels. `out`: receives the new bank on success, owned
/// by the caller (nexvitad_bank_free()); untouched on any failure, including cancellation.
///
/// The result depends only on the images, the options (including the seed) and the model:
/// building twice gives the same bank.
///
/// Thread-safety: any thread; builds on one model may run concurrently.
///
/// Errors: NEXVITAD_INVALID_ARGUMENT (NULL pointer, n = 0, bad image or option, k larger
/// than the number of patch vectors), NEXVITAD_LIMIT_EXCEEDED (image above the model's
/// limits, more than max_vectors bank vectors), NEXVITAD_CANCELLED (the callback returned
/// non-zero), NEXVITAD_RUNTIME (ONNX Runtime failed).
#[no_mangle]
pub unsafe extern "C" fn nexvitad_bank_build(
    model: *const nexvitad_model,
    images: *const nexvitad_image,
    n: usize,
    options: *const nexvitad_bank_options,
    cb: nexvitad_progress_cb,
    user: *mut c_void,
    out: *mut *mut nexvitad_bank,
) -> nexvitad_status {
    guard("nexvitad_bank_build", || unsafe {
        non_null(out, "out")?;
        let mh = handles::model(model, "model")?;
        let imgs = image_array(images, n, "images")?;
        let views = imgs
            .iter()
            .enumerate()
            .map(|(i, im)| view(&mh.model, im, &format!("images[{i}]")))
            .collect::<Result<Vec<_>>>()?;
        let opts = if options.is_null() { default_bank_options() } else { read_in(options, default_bank_options(), "options")? };
        let opts = to_bank_options(&opts)?;
        let mut progress = |p: Progress| match cb {
            None => true,
            Some(f) => f(user, p.phase as c_int, p.done, p.total) == 0,
        };
        let bank = MemoryBank::build(&mh.model, &views, &opts, &mut progress)?;
        log_bank("built bank", &bank);
        if opts.scorer == ScorerKind::Sinkhorn && !bank.meta().converged {
            log(
                nexvitad_log_level::NEXVITAD_LOG_WARN,
                &format!(
                    "Sinkhorn K-means stopped at max_iters {} without converging (tol {}); the prototypes may be less stable",
                    opts.max_iters, opts.tol
                ),
            );
        }
        *out = handles::insert_bank(BankHandle { bank, model: mh });
        Ok(())
    })
}

/// Saves the bank to `path` (a safetensors file, readable from Python). The write is
/// atomic: a temp file beside `path` is written, synced and renamed over it, so a crash
/// never leaves a half-written bank and an existing file is replaced only on success.
///
/// `path`: NUL-terminated, read during the call only.
///
/// Thread-safety: any thread; do not save two banks to the same path at the same moment.
///
/// Errors: NEXVITAD_INVALID_ARGUMENT (NULL or empty argument, not a live bank),
/// NEXVITAD_IO (cannot write).
#[no_mangle]
pub unsafe extern "C" fn nexvitad_bank_save(bank: *const nexvitad_bank, path: *const c_char) -> nexvitad_status {
    guard("nexvitad_bank_save", || unsafe {
        let b = handles::bank(bank, "bank")?;
        let path = c_path(path, "path")?;
        b.bank.save(&path)?;
        log(nexvitad_log_level::NEXVITAD_LOG_INFO, &format!("saved bank to '{}'", path.display()));
        Ok(())
    })
}

/// Loads a bank saved by nexvitad_bank_save() and checks that `model` built it.
///
/// `model`: a live model handle (the bank keeps it alive). `path`: NUL-terminated, read
/// during the call only. `out`: receives the new bank on success, owned by the caller
/// (nexvitad_bank_free()); untouched on failure.
///
/// Thread-safety: any thread.
///
/// Errors: NEXVITAD_INVALID_ARGUMENT (NULL or empty argument), NEXVITAD_IO (missing or
/// unreadable file), NEXVITAD_FORMAT (not a bank, corrupt or truncated),
/// NEXVITAD_MISMATCH (built by another model), NEXVITAD_LIMIT_EXCEEDED (file above 8 GiB).
#[no_mangle]
pub unsafe extern "C" fn nexvitad_bank_load(
    model: *const nexvitad_model,
    path: *const c_char,
    out: *mut *mut nexvitad_bank,
) -> nexvitad_status {
    guard("nexvitad_bank_load", || unsafe {
        non_null(out, "out")?;
        let mh = handles::model(model, "model")?;
        let path = c_path(path, "path")?;
        let bank = MemoryBank::load(&path, &mh.model)?;
        log_bank(&format!("loaded bank '{}'", path.display()), &bank);
        *out = handles::insert_bank(BankHandle { bank, model: mh });
        Ok(())
    })
}

/// Describes the bank: scorer, sizes, sigma, thresholds, build settings.
///
/// Set `info->struct_size = sizeof(nexvitad_bank_info)` first; only fields within it are
/// written, and nothing is written on failure.
///
/// Thread-safety: any thread. Errors: NEXVITAD_INVALID_ARGUMENT (NULL, bad struct_size, not
/// a live bank).
#[no_mangle]
pub unsafe extern "C" fn nexvitad_bank_get_info(bank: *const nexvitad_bank, info: *mut nexvitad_bank_info) -> nexvitad_status {
    guard("nexvitad_bank_get_info", || unsafe {
        let b = handles::bank(bank, "bank")?;
        let m = b.bank.meta();
        let (mode, fraction) = image_score_codes(m.image_score);
        let sat = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        let pos = m.tiles.as_ref().and_then(|t| t.positions.as_ref());
        let value = nexvitad_bank_info {
            struct_size: size_of::<nexvitad_bank_info>(),
            scorer: scorer_code(m.scorer),
            k: sat(m.k),
            dim: sat(m.dim),
            grid_w: sat(m.grid_w),
            grid_h: sat(m.grid_h),
            shots: sat(m.shots),
            vectors: b.bank.vectors().nrows() as u64,
            sigma: m.sigma,
            image_threshold: m.calibration.image_threshold,
            pixel_threshold: m.calibration.pixel_threshold,
            target_fpr: m.calibration.target_fpr,
            image_score_mode: mode,
            image_score_top_fraction: fraction,
            augment: augment_bits(m.augment),
            converged: m.converged as u32,
            iterations: sat(m.iterations),
            reserved0: 0,
            seed: m.seed,
            tile: m.tiles.as_ref().map_or(0, |t| t.tile_w),
            tile_h: m.tiles.as_ref().map_or(0, |t| t.tile_h),
            tile_overlap: m.tiles.as_ref().map_or(0.0, |t| t.tiling.overlap),
            tile_layout: match m.tiles.as_ref().map(|t| t.tiling.layout) {
                Some(TileLayout::PerPosition) => 1,
                _ => 0,
            },
            tile_cols: pos.map_or(0, |p| p.cols),
            tile_rows: pos.map_or(0, |p| p.rows),
            image_width: pos.map_or(0, |p| p.image_width),
            image_height: pos.map_or(0, |p| p.image_height),
            roi_width: b.bank.roi().map_or(0, |r| r.width()),
            roi_height: b.bank.roi().map_or(0, |r| r.height()),
            growable: b.bank.is_growable() as u32,
            reserved1: 0,
        };
        write_out(info, &value, "info")
    })
}

/// Copies the bank's default region of interest into `out`, `roi_width * roi_height` bytes
/// (nexvitad_bank_info), row-major, 1 = inspect and 0 = ignore (revision 4).
///
/// `out_len`: bytes `out` holds; at least the mask's size. Nothing is written on failure.
///
/// Thread-safety: any thread. Errors: NEXVITAD_INVALID_ARGUMENT (NULL `out`, not a live
/// bank, a bank without a ROI, `out_len` smaller than the mask).
#[no_mangle]
pub unsafe extern "C" fn nexvitad_bank_get_roi(bank: *const nexvitad_bank, out: *mut u8, out_len: usize) -> nexvitad_status {
    guard("nexvitad_bank_get_roi", || unsafe {
        let b = handles::bank(bank, "bank")?;
        non_null(out, "out")?;
        let r = b.bank.roi().ok_or_else(|| Error::invalid("this bank has no region of interest (nexvitad_bank_info.roi_width is 0)"))?;
        let need = r.data().len();
        if out_len < need {
            return Err(Error::invalid(format!("out_len {out_len} is smaller than the {}x{} mask ({need} bytes)", r.width(), r.height())));
        }
        std::ptr::copy_nonoverlapping(r.data().as_ptr(), out, need);
        Ok(())
    })
}

/// A copy of `bank` whose thresholds aim at another false-positive rate (revision 4):
/// computed from the normal-image scores the bank stored when it was built, so nothing is
/// re-encoded and it takes microseconds. The image threshold is exactly what a build at
/// `target_fpr` would set; the pixel threshold comes from the stored tail of normal pixel
/// scores (20 points per decade from 0.89 down to 1e-5; between two points, the stricter).
/// Save the new bank with nexvitad_bank_save() to keep it.
///
/// `target_fpr`: in (0, 1). `out`: receives the new bank (same model, vectors and ROI),
/// owned by the caller; untouched on failure. The original bank is unchanged (banks are
/// immutable, so threads scoring with it are unaffected).
///
/// Thread-safety: any thread. Errors: NEXVITAD_INVALID_ARGUMENT (NULL `out`, not a live
/// bank, `target_fpr` outside (0, 1) or NaN, a bank saved before banks stored their
/// pixel-score tail: rebuild it).
#[no_mangle]
pub unsafe extern "C" fn nexvitad_bank_recalibrate(bank: *const nexvitad_bank, target_fpr: f32, out: *mut *mut nexvitad_bank) -> nexvitad_status {
    guard("nexvitad_bank_recalibrate", || unsafe {
        non_null(out, "out")?;
        let b = handles::bank(bank, "bank")?;
        let mut copy = b.bank.clone();
        copy.recalibrate(target_fpr)?;
        let c = &copy.meta().calibration;
        log(
            nexvitad_log_level::NEXVITAD_LOG_INFO,
            &format!("recalibrated bank to target FPR {target_fpr}: image threshold {}, pixel threshold {}", c.image_threshold, c.pixel_threshold),
        );
        *out = handles::insert_bank(BankHandle { bank: copy, model: b.model.clone() });
        Ok(())
    })
}

/// A new bank: `bank` with `n` more good images, fitted and calibrated again (leave-one-out
/// over all its images) exactly as nexvitad_bank_build() would from all of them at once:
/// the result equals that build bit for bit (revision 5). The bank must be growable
/// (nexvitad_bank_options.growable); the new images get its augmentation and region of
/// interest. `bank` is unchanged (handles are immutable); save the new one to keep it.
///
/// `images`, `cb`, `user`: as nexvitad_bank_build() (encoding, then clustering and
/// calibration over all images). `out`: the new bank, owned by the caller; untouched on
/// failure.
///
/// Thread-safety: any thread. Errors: NEXVITAD_INVALID_ARGUMENT (NULL argument, n = 0, a
/// bad image, a bank that is not growable, an image of another size than a per-position
/// tile bank's), NEXVITAD_LIMIT_EXCEEDED (more than max_vectors rows), NEXVITAD_CANCELLED,
/// NEXVITAD_RUNTIME.
#[no_mangle]
pub unsafe extern "C" fn nexvitad_bank_add(
    bank: *const nexvitad_bank,
    images: *const nexvitad_image,
    n: usize,
    cb: nexvitad_progress_cb,
    user: *mut c_void,
    out: *mut *mut nexvitad_bank,
) -> nexvitad_status {
    guard("nexvitad_bank_add", || unsafe {
        non_null(out, "out")?;
        let b = handles::bank(bank, "bank")?;
        let imgs = image_array(images, n, "images")?;
        let views = imgs
            .iter()
            .enumerate()
            .map(|(i, im)| view(&b.model.model, im, &format!("images[{i}]")))
            .collect::<Result<Vec<_>>>()?;
        let mut progress = |p: Progress| match cb {
            None => true,
            Some(f) => f(user, p.phase as c_int, p.done, p.total) == 0,
        };
        let grown = b.bank.add(&b.model.model, &views, &mut progress)?;
        log_bank(&format!("added {n} images to a bank"), &grown);
        *out = handles::insert_bank(BankHandle { bank: grown, model: b.model.clone() });
        Ok(())
    })
}

/// A new bank from the images of two growable banks, `a`'s first: bit for bit the bank
/// nexvitad_bank_build() makes from all of them at once, fitted and calibrated again
/// (revision 5). Both banks must come from the same model and agree on every setting that
/// shapes a bank (scorer, k, sigma, image score, augmentation, seed, target FPR, Sinkhorn
/// and coreset parameters, region of interest, tiling); the first that differs is named.
///
/// `cb`, `user`: clustering and calibration progress, as nexvitad_bank_build(). `out`: the
/// new bank, owned by the caller, scoring with `a`'s model; untouched on failure.
///
/// Thread-safety: any thread. Errors: NEXVITAD_INVALID_ARGUMENT (NULL argument, a bank that
/// is not growable), NEXVITAD_MISMATCH (banks of different models or settings),
/// NEXVITAD_LIMIT_EXCEEDED, NEXVITAD_CANCELLED.
#[no_mangle]
pub unsafe extern "C" fn nexvitad_bank_merge(
    a: *const nexvitad_bank,
    b: *const nexvitad_bank,
    cb: nexvitad_progress_cb,
    user: *mut c_void,
    out: *mut *mut nexvitad_bank,
) -> nexvitad_status {
    guard("nexvitad_bank_merge", || unsafe {
        non_null(out, "out")?;
        let ha = handles::bank(a, "a")?;
        let hb = handles::bank(b, "b")?;
        let mut progress = |p: Progress| match cb {
            None => true,
            Some(f) => f(user, p.phase as c_int, p.done, p.total) == 0,
        };
        let merged = ha.bank.merge(&ha.model.model, &hb.bank, &mut progress)?;
        log_bank("merged two banks", &merged);
        *out = handles::insert_bank(BankHandle { bank: merged, model: ha.model.clone() });
        Ok(())
    })
}

/// Releases a bank handle (and, if it was the last user, its model). NULL is a no-op.
///
/// Thread-safety: any thread, but not while another thread still passes the same handle.
///
/// Errors: NEXVITAD_INVALID_ARGUMENT when `bank` is not a live bank handle (already freed,
/// a model handle, or a stray pointer); nothing is freed then.
#[no_mangle]
pub unsafe extern "C" fn nexvitad_bank_free(bank: *mut nexvitad_bank) -> nexvitad_status {
    guard("nexvitad_bank_free", || handles::free_bank(bank))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_options_round_trip_to_the_safe_defaults() {
        let o = unsafe { to_bank_options(&default_bank_options()) }.unwrap();
        assert_eq!(o, BankOptions::default());
    }

    #[test]
    fn bad_codes_name_the_field() {
        let mut o = default_bank_options();
        o.scorer = 9;
        assert!(unsafe { to_bank_options(&o) }.unwrap_err().to_string().contains("options->scorer 9"));
        let mut o = default_bank_options();
        o.image_score_mode = 2;
        assert!(unsafe { to_bank_options(&o) }.unwrap_err().to_string().contains("options->image_score_mode 2"));
        let mut o = default_bank_options();
        o.augment = 8 | 1;
        assert!(unsafe { to_bank_options(&o) }.unwrap_err().to_string().contains("options->augment 0x9"));
        o.augment = 1 | 4;
        let a = unsafe { to_bank_options(&o) }.unwrap().augment;
        assert!(a.hflip && !a.vflip && a.rot90);
        assert_eq!(augment_bits(a), 5);
    }
}
