//! Reading and writing structs that start with `size_t struct_size`.
//!
//! A caller compiled against an older header passes a smaller struct. The library must then
//! touch only the bytes the caller owns: a field is read (or written) only when it lies
//! entirely below `struct_size`; fields beyond keep their defaults (or are left alone).
//! A `struct_size` larger than this library's struct means the program was built against a
//! newer header than the library it loaded; that is refused rather than half-understood.

use std::mem::{offset_of, size_of};

use super::types::{
    nexvitad_bank_info, nexvitad_bank_options, nexvitad_options, nexvitad_result, nexvitad_score_options, nexvitad_train_options, nexvitad_train_progress,
    nexvitad_train_result,
};
use crate::error::{Error, Result};

/// A `#[repr(C)]` struct made of plain integers, floats and pointers (every bit pattern
/// valid), whose first field is `struct_size: usize`.
///
/// # Safety
/// `fields()` must list every field after `struct_size` with its true offset and size.
pub(crate) unsafe trait Versioned: Copy {
    /// The C name, for messages.
    const NAME: &'static str;
    /// `(offset, size)` of each field after `struct_size`, in declaration order.
    fn fields() -> Vec<(usize, usize)>;
}

/// Size of a field, from an accessor closure (there is no `size_of_field!` in std).
fn field_size<T, F>(_: fn(&T) -> &F) -> usize {
    size_of::<F>()
}

macro_rules! versioned {
    ($t:ty, [$($f:ident),* $(,)?]) => {
        unsafe impl Versioned for $t {
            const NAME: &'static str = stringify!($t);
            fn fields() -> Vec<(usize, usize)> {
                vec![$((offset_of!($t, $f), field_size(|s: &$t| &s.$f))),*]
            }
        }
    };
}

versioned!(nexvitad_options, [ort_library, execution_provider, intra_threads, optimization_level, max_image_side, reserved0, max_image_pixels, tile_batch, parallel_encoders]);
versioned!(nexvitad_bank_options, [
    scorer, k, epsilon, max_iters, tol, coreset_ratio, sigma, image_score_mode, image_score_top_fraction, augment,
    target_fpr, batch_size, seed, max_vectors, tile, tile_overlap, tile_layout, reserved1, roi, growable, reserved2,
]);
versioned!(nexvitad_bank_info, [
    scorer, k, dim, grid_w, grid_h, shots, vectors, sigma, image_threshold, pixel_threshold, target_fpr,
    image_score_mode, image_score_top_fraction, augment, converged, iterations, reserved0, seed, tile, tile_h, tile_overlap,
    tile_layout, tile_cols, tile_rows, image_width, image_height, roi_width, roi_height, growable, reserved1,
]);
versioned!(nexvitad_result, [
    image_score, image_threshold, pixel_threshold, is_anomalous, width, height, prepare_s, hiera_s, dinov2_s, head_s,
    matching_s, upsample_smooth_s, threshold_flags, reserved0, region_count, roi_source, reserved1,
]);
versioned!(nexvitad_score_options, [image_threshold, pixel_threshold, min_region_area, roi, ignore_bank_roi, reserved0]);
versioned!(nexvitad_train_options, [
    epochs, batch, lr, weight_decay, theta, lambda1, lambda2, seed, decoder_width, checkpoint_every, copies, flips, noise_std,
    jitter, resume, target_test, cache_dir, cache_mem,
]);
versioned!(nexvitad_train_progress, [
    phase, epoch, epochs, step, steps_per_epoch, reserved0, done, total, loss, l_src, l_pl, l_cons, coverage, mean_loss,
    mean_l_src, mean_l_pl, mean_l_cons, mean_coverage,
]);
versioned!(nexvitad_train_result, [
    steps, steps_run, epochs, steps_per_epoch, source_images, target_images, loss, l_src, l_pl, l_cons, coverage, encode_s,
    train_s, cache_bytes, encoded, reused,
]);

/// Checks the pointer and reads its `struct_size`.
///
/// # Safety
/// `p` is NULL or points to at least `size_of::<usize>()` readable bytes.
pub(crate) unsafe fn struct_size<T: Versioned>(p: *const T, param: &str) -> Result<usize> {
    if p.is_null() {
        return Err(Error::invalid(format!("{param} is NULL")));
    }
    let size = std::ptr::read_unaligned(p as *const usize);
    check_size::<T>(size, param)?;
    Ok(size)
}

/// Validates a `struct_size` value against this library's `T`.
pub(crate) fn check_size<T: Versioned>(size: usize, param: &str) -> Result<()> {
    let (name, ours) = (T::NAME, size_of::<T>());
    if size < size_of::<usize>() {
        return Err(Error::invalid(format!(
            "{param}->struct_size is {size}; set it to sizeof({name}) ({ours} in this library's nexvitad.h)"
        )));
    }
    if size > ours {
        return Err(Error::invalid(format!(
            "{param}->struct_size {size} is larger than this library's {name} ({ours} bytes): the program was built \
             against a newer nexvitad.h than the libnexvitad it loaded"
        )));
    }
    Ok(())
}

/// Reads a caller struct: fields within its `struct_size` come from the caller, the rest
/// from `defaults`.
///
/// # Safety
/// `p` is NULL or points to `struct_size` readable bytes.
pub(crate) unsafe fn read_in<T: Versioned>(p: *const T, defaults: T, param: &str) -> Result<T> {
    let size = struct_size(p, param)?;
    let mut out = defaults;
    copy_fields::<T>(p as *const u8, &mut out as *mut T as *mut u8, size);
    Ok(out)
}

/// Writes `value`'s fields that lie within the caller's `struct_size`; `struct_size` itself
/// and any bytes beyond it are left untouched.
///
/// # Safety
/// `p` is NULL or points to `struct_size` writable bytes.
pub(crate) unsafe fn write_out<T: Versioned>(p: *mut T, value: &T, param: &str) -> Result<()> {
    let size = struct_size(p as *const T, param)?;
    copy_fields::<T>(value as *const T as *const u8, p as *mut u8, size);
    Ok(())
}

/// Copies the fields that end at or below `size` bytes.
///
/// # Safety
/// `src` and `dst` are valid for `size` bytes (and `size <= size_of::<T>()`).
unsafe fn copy_fields<T: Versioned>(src: *const u8, dst: *mut u8, size: usize) {
    for (off, len) in T::fields() {
        if off + len <= size {
            std::ptr::copy_nonoverlapping(src.add(off), dst.add(off), len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The growth rule: fields tile the struct exactly (no padding), so a field appended
    /// later can never land inside an older struct's trailing padding.
    fn assert_no_padding<T: Versioned>() {
        let mut end = size_of::<usize>();
        for (off, len) in T::fields() {
            assert_eq!(off, end, "{}: padding before the field at offset {off}", T::NAME);
            end = off + len;
        }
        assert_eq!(end, size_of::<T>(), "{}: trailing padding", T::NAME);
    }

    #[test]
    fn versioned_structs_have_no_padding() {
        assert_no_padding::<nexvitad_options>();
        assert_no_padding::<nexvitad_bank_options>();
        assert_no_padding::<nexvitad_bank_info>();
        assert_no_padding::<nexvitad_result>();
        assert_no_padding::<nexvitad_score_options>();
        assert_no_padding::<nexvitad_train_options>();
        assert_no_padding::<nexvitad_train_progress>();
        assert_no_padding::<nexvitad_train_result>();
    }

    fn sample_options(fill: u32) -> nexvitad_bank_options {
        nexvitad_bank_options {
            struct_size: size_of::<nexvitad_bank_options>(),
            scorer: fill,
            k: fill,
            epsilon: fill as f32,
            max_iters: fill,
            tol: fill as f32,
            coreset_ratio: fill as f32,
            sigma: fill as f32,
            image_score_mode: fill,
            image_score_top_fraction: fill as f32,
            augment: fill,
            target_fpr: fill as f32,
            batch_size: fill,
            seed: fill as u64,
            max_vectors: fill as u64,
            tile: fill,
            tile_overlap: fill as f32,
            tile_layout: fill,
            reserved1: fill,
            roi: std::ptr::null(),
            growable: fill,
            reserved2: fill,
        }
    }

    #[test]
    fn read_in_takes_only_fields_within_struct_size() {
        let defaults = sample_options(7);
        // An "old caller" that knows the fields up to and including `max_iters` (24 bytes).
        let mut caller = sample_options(1);
        caller.struct_size = offset_of!(nexvitad_bank_options, max_iters) + 4;
        let got = unsafe { read_in(&caller, defaults, "options") }.unwrap();
        assert_eq!((got.scorer, got.k, got.epsilon, got.max_iters), (1, 1, 1.0, 1));
        assert_eq!((got.tol, got.batch_size, got.seed, got.max_vectors), (7.0, 7, 7, 7));
        // A size that cuts a field in half does not read that field.
        caller.struct_size = offset_of!(nexvitad_bank_options, seed) + 4;
        let got = unsafe { read_in(&caller, defaults, "options") }.unwrap();
        assert_eq!((got.batch_size, got.seed), (1, 7));
        // A revision-2 caller (the struct ended at max_vectors) keeps the tiling defaults.
        caller.struct_size = offset_of!(nexvitad_bank_options, max_vectors) + 8;
        let got = unsafe { read_in(&caller, defaults, "options") }.unwrap();
        assert_eq!((got.max_vectors, got.tile, got.tile_layout, got.reserved1), (1, 7, 7, 7));
    }

    #[test]
    fn write_out_stays_within_struct_size() {
        let value = sample_options(5);
        let mut caller = sample_options(9);
        caller.struct_size = offset_of!(nexvitad_bank_options, tol);
        unsafe { write_out(&mut caller, &value, "options") }.unwrap();
        assert_eq!(caller.struct_size, offset_of!(nexvitad_bank_options, tol), "struct_size is the caller's");
        assert_eq!((caller.scorer, caller.max_iters), (5, 5));
        assert_eq!((caller.tol, caller.max_vectors), (9.0, 9), "fields beyond struct_size untouched");
    }

    #[test]
    fn bad_struct_sizes_are_named() {
        let mut o = sample_options(0);
        o.struct_size = 4;
        let e = unsafe { read_in(&o, o, "options") }.unwrap_err().to_string();
        assert!(e.contains("options->struct_size is 4") && e.contains("sizeof(nexvitad_bank_options)"), "{e}");
        o.struct_size = size_of::<nexvitad_bank_options>() + 8;
        let e = unsafe { read_in(&o, o, "options") }.unwrap_err().to_string();
        assert!(e.contains("newer nexvitad.h"), "{e}");
        let e = unsafe { read_in(std::ptr::null::<nexvitad_bank_options>(), o, "opts") }.unwrap_err().to_string();
        assert!(e.contains("opts is NULL"), "{e}");
    }
}
