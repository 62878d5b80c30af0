//! Model handles: options, open, fingerprint, free.

use std::ffi::{c_char, CString};
use std::mem::size_of;

use super::handles::{self, ModelHandle};
use super::log::log;
use super::status::{c_path, c_str, guard, non_null};
use super::types::{nexvitad_log_level, nexvitad_model, nexvitad_options, nexvitad_status};
use super::versioned::{read_in, write_out};
use crate::encoder::ExecutionProvider;
use crate::error::{Error, Result};
use crate::image::ImageLimits;
use crate::model::{Model, ModelOptions, MAX_TILE_BATCH};
use std::num::NonZeroUsize;

/// The defaults nexvitad_options_default() writes.
fn default_options() -> nexvitad_options {
    let d = ModelOptions::default();
    nexvitad_options {
        struct_size: size_of::<nexvitad_options>(),
        ort_library: std::ptr::null(),
        execution_provider: c"cpu".as_ptr(),
        intra_threads: d.session.intra_threads.map_or(0, |t| t.get() as u32),
        optimization_level: d.session.optimization_level as u32,
        max_image_side: d.image_limits.max_side,
        reserved0: 0,
        max_image_pixels: d.image_limits.max_pixels,
        tile_batch: 0,
        parallel_encoders: 0,
    }
}

/// C options to the safe API's, naming the field that is wrong.
///
/// # Safety
/// The string fields are NULL or NUL-terminated.
unsafe fn to_model_options(o: &nexvitad_options) -> Result<ModelOptions> {
    let mut m = ModelOptions::default();
    if !o.ort_library.is_null() {
        m.ort_library = Some(c_path(o.ort_library, "options->ort_library")?);
    }
    if !o.execution_provider.is_null() {
        let ep = c_str(o.execution_provider, "options->execution_provider")?;
        m.session.execution_provider =
            ExecutionProvider::parse(ep).map_err(|e| super::status::in_param(e, "options->execution_provider"))?;
    }
    m.session.intra_threads = NonZeroUsize::new(o.intra_threads as usize);
    m.session.optimization_level = match o.optimization_level {
        l @ 0..=3 => l as u8,
        // The option rule: 0 is a real setting here (off), so a negative value (as int32_t,
        // e.g. -1 stored in the uint32_t) means the default.
        l if (l as i32) < 0 => m.session.optimization_level,
        l => {
            return Err(Error::invalid(format!(
                "options->optimization_level {l} is not in 0..=3 (or negative, e.g. -1, for the default)"
            )))
        }
    };
    let d = ImageLimits::default();
    m.image_limits = ImageLimits {
        max_side: if o.max_image_side == 0 { d.max_side } else { o.max_image_side },
        max_pixels: if o.max_image_pixels == 0 { d.max_pixels } else { o.max_image_pixels },
    };
    if o.reserved0 != 0 {
        return Err(Error::invalid(format!("options->reserved0 is {}; it must be 0", o.reserved0)));
    }
    m.session.parallel_encoders = match o.parallel_encoders {
        0 => false,
        1 => true,
        v => return Err(Error::invalid(format!("options->parallel_encoders is {v}; it must be 0 (off) or 1 (on)"))),
    };
    m.tile_batch = match o.tile_batch as usize {
        0 => None,
        n if n > MAX_TILE_BATCH => {
            return Err(Error::invalid(format!("options->tile_batch {n} is above the largest accepted, {MAX_TILE_BATCH} (0 = the default)")))
        }
        n => NonZeroUsize::new(n),
    };
    Ok(m)
}

/// Fills `options` with the defaults: ONNX Runtime found by search, CPU, ONNX Runtime's own
/// thread count, full graph optimisation, the default image limits.
///
/// Set `options->struct_size = sizeof(nexvitad_options)` first; only fields within it are
/// written. String fields receive pointers to static strings (or NULL), never to be freed.
///
/// Thread-safety: any thread. Errors: NEXVITAD_INVALID_ARGUMENT when `options` is NULL or
/// its struct_size is too small or larger than this library knows.
#[no_mangle]
pub unsafe extern "C" fn nexvitad_options_default(options: *mut nexvitad_options) -> nexvitad_status {
    guard("nexvitad_options_default", || unsafe { write_out(options, &default_options(), "options") })
}

/// Opens the model folder `dir` (model.json, hiera.onnx, dinov2.onnx, optional
/// head.safetensors), loading ONNX Runtime on first use.
///
/// `dir`: NUL-terminated path, read during the call only. `options`: NULL for the
/// defaults, else read during the call only. `out`: receives the new handle on success,
/// which the caller owns and releases with nexvitad_model_free(); untouched on failure.
///
/// Thread-safety: any thread; several models may be opened at once. The handle is
/// immutable and may be used from any number of threads at once.
///
/// Errors: NEXVITAD_INVALID_ARGUMENT (NULL `dir` or `out`, bad option), NEXVITAD_IO (folder
/// or file missing), NEXVITAD_FORMAT (bad model.json or ONNX file), NEXVITAD_MISMATCH
/// (ONNX graphs disagree with model.json), NEXVITAD_RUNTIME (ONNX Runtime not found or not
/// loadable), NEXVITAD_UNSUPPORTED (execution provider not available).
#[no_mangle]
pub unsafe extern "C" fn nexvitad_model_open(
    dir: *const c_char,
    options: *const nexvitad_options,
    out: *mut *mut nexvitad_model,
) -> nexvitad_status {
    guard("nexvitad_model_open", || unsafe {
        non_null(out, "out")?;
        let dir = c_path(dir, "dir")?;
        let opts = if options.is_null() { default_options() } else { read_in(options, default_options(), "options")? };
        let opts = to_model_options(&opts)?;
        let model = Model::open(&dir, &opts)?;
        let fingerprint = CString::new(model.fingerprint()).map_err(|e| Error::Internal(e.to_string()))?;
        log(
            nexvitad_log_level::NEXVITAD_LOG_INFO,
            &format!(
                "opened model '{}' from '{}' (fingerprint {}, execution provider {}, ONNX Runtime {})",
                model.manifest().name,
                dir.display(),
                &model.fingerprint()[..12],
                opts.session.execution_provider,
                crate::runtime::loaded_version().unwrap_or("?"),
            ),
        );
        *out = handles::insert_model(ModelHandle { model, fingerprint });
        Ok(())
    })
}

/// The model's fingerprint: 64 lowercase hex digits identifying the encoders, the fusion
/// configuration and the head. A bank records it and refuses any other model.
///
/// Returns a string owned by the model, valid until nexvitad_model_free(model); NULL (with
/// nexvitad_last_error() set) when `model` is not a live model handle.
///
/// Thread-safety: any thread.
#[no_mangle]
pub unsafe extern "C" fn nexvitad_model_fingerprint(model: *const nexvitad_model) -> *const c_char {
    let mut ptr = std::ptr::null();
    guard("nexvitad_model_fingerprint", || {
        let m = handles::model(model, "model")?;
        // The CString lives inside the handle; the registry's Arc keeps it until the free.
        ptr = m.fingerprint.as_ptr();
        Ok(())
    });
    ptr
}

/// Releases a model handle. NULL is a no-op. Banks built or loaded with the model keep
/// what they need, so they remain usable.
///
/// Thread-safety: any thread, but not while another thread is still passing the same handle
/// to nexvitad (the library stays memory-safe then, but the other call may fail).
///
/// Errors: NEXVITAD_INVALID_ARGUMENT when `model` is not a live model handle (already
/// freed, a bank handle, or a stray pointer); nothing is freed then.
#[no_mangle]
pub unsafe extern "C" fn nexvitad_model_free(model: *mut nexvitad_model) -> nexvitad_status {
    guard("nexvitad_model_free", || handles::free_model(model))
}
