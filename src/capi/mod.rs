//! The stable C ABI of `libnexvitad.so` / `libnexvitad.a`; `include/nexvitad.h` is generated
//! from this module by cbindgen (see `build.rs`), and the doc comments here are the header's
//! documentation.
//!
//! This layer only converts: C types to the safe API and back. Rules every entry point keeps:
//! - it runs inside [`status::guard`]: the thread's last error is reset, an `Err` becomes its
//!   status code plus message, and a panic becomes `NEXVITAD_INTERNAL` (never unwinding into C;
//!   this needs `panic = "unwind"`, the default, which the release profile must keep);
//! - every pointer is checked for NULL, and handles are looked up in a registry
//!   ([`handles`]) instead of being dereferenced;
//! - outputs (`*out`, maps, result structs) are written only once everything has succeeded;
//! - versioned structs are read and written field by field within their `struct_size`
//!   ([`versioned`]).
//!
//! The safety contract of each `unsafe extern "C"` function is its pointer documentation,
//! written for C readers in the header (what must be valid, for how long, who owns it).
#![allow(clippy::missing_safety_doc)]

// Declaration order is the header's order: types first, then the functions by topic.
pub mod types;
pub mod status;
pub mod versioned;
pub mod handles;
pub mod images;
pub mod log;
pub mod model;
pub mod bank;
pub mod score;
pub mod train;

use std::ffi::{c_char, c_int};

pub use types::*;

/// The C ABI version this header describes; nexvitad_abi_version() returns the library's.
/// It changes only when an existing function, struct field or constant changes meaning or
/// layout; additions (new functions, fields appended to struct_size structs) keep it and
/// raise NEXVITAD_ABI_REVISION instead.
pub const NEXVITAD_ABI_VERSION: u32 = 1;

/// The additions this header has on top of NEXVITAD_ABI_VERSION; nexvitad_abi_revision()
/// returns the library's. Revisions only add, so a library of revision R serves every
/// program built against a header of revision <= R with the same NEXVITAD_ABI_VERSION.
///   0: the first release of ABI version 1 (models, banks, scoring, logging).
///   1: training: nexvitad_train(), nexvitad_train_options_default() and the
///      nexvitad_train_* types.
///   2: nexvitad_score() and nexvitad_score_batch() accept a NULL model (the bank's own);
///      every option field follows the "use the default" rule of the table at the top
///      (values that were errors before now select the default; no valid value changed).
///   3: tiled banks: nexvitad_bank_options grows `tile`, `tile_overlap`, `tile_layout`
///      (nexvitad_tile_layout), nexvitad_bank_info grows the tiling it was built with. A
///      tiled bank file is format version 2, which older libraries refuse.
///      Inspection outputs: nexvitad_score_with_options() (per-call thresholds, defect
///      regions into a caller array), nexvitad_score_options(_default), nexvitad_region;
///      nexvitad_result grows `threshold_flags` and `region_count`.
///   4: regions of interest: nexvitad_mask; nexvitad_bank_options grows `roi` (the bank
///      keeps it as its default), nexvitad_score_options grows `roi` and
///      `ignore_bank_roi`, nexvitad_result grows `roi_source` (nexvitad_roi_source),
///      nexvitad_bank_info grows `roi_width`/`roi_height`; nexvitad_bank_get_roi().
///      A bank with a ROI is format version 3, which older libraries refuse.
///      nexvitad_bank_recalibrate(): thresholds at another target FPR without re-encoding.
///   5: banks that grow: nexvitad_bank_options grows `growable`, nexvitad_bank_info grows
///      `growable`; nexvitad_bank_add() and nexvitad_bank_merge();
///      nexvitad_score_batch_with_options().
///   6: nexvitad_options grows `tile_batch` (tiles per encoder call when scoring tiled
///      images) and `parallel_encoders` (the two encoders side by side).
///   7: the training feature cache: nexvitad_train_options grows `cache_dir` and
///      `cache_mem`, nexvitad_train_result grows `cache_bytes`, `encoded` and `reused`;
///      options->resume = 1 also continues a run cancelled while encoding.
pub const NEXVITAD_ABI_REVISION: u32 = 7;

/// The library version, e.g. "0.1.0". Static storage; never NULL. Any thread.
#[no_mangle]
pub extern "C" fn nexvitad_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}

/// The C ABI version of the loaded library. A program should check at start-up that it
/// equals the NEXVITAD_ABI_VERSION it was compiled with. Any thread.
#[no_mangle]
pub extern "C" fn nexvitad_abi_version() -> u32 {
    NEXVITAD_ABI_VERSION
}

/// The ABI revision of the loaded library (see NEXVITAD_ABI_REVISION). A program that uses a
/// function added in revision R should check `nexvitad_abi_revision() >= R` before calling
/// it: with lazy symbol binding an older library would otherwise fail only at that call.
/// (Libraries of revision 0 lack this function too; `dlsym` tells them apart.) Any thread.
#[no_mangle]
pub extern "C" fn nexvitad_abi_revision() -> u32 {
    NEXVITAD_ABI_REVISION
}

/// The message of the last failed nexvitad call on the calling thread, naming what was
/// wrong; "" when the last call succeeded. Never NULL.
///
/// The string is owned by the library and stays valid until the next nexvitad call on the
/// same thread (nexvitad_last_error(), nexvitad_status_name(), nexvitad_version() and
/// nexvitad_abi_version() do not count). Each thread has its own message.
#[no_mangle]
pub extern "C" fn nexvitad_last_error() -> *const c_char {
    status::last_error_ptr()
}

/// The name of a status code, e.g. "NEXVITAD_MISMATCH"; "NEXVITAD_UNKNOWN_STATUS" for a
/// value that is not one. Static storage; never NULL. Any thread.
#[no_mangle]
pub extern "C" fn nexvitad_status_name(status: c_int) -> *const c_char {
    status::status_name(status).as_ptr()
}

/// Test hook, deliberately left out of the public header (cbindgen.toml `[export] exclude`):
/// panics inside the library and returns what the panic became, which in a correct build is
/// always NEXVITAD_INTERNAL with nexvitad_last_error() containing "deliberate panic". The
/// symbol stays exported so the C tests (tests/c/selftest.h) and the bindings' tests can prove
/// the shipped binary turns panics into status codes. Not part of the supported API.
#[no_mangle]
pub extern "C" fn nexvitad_selftest_panic() -> nexvitad_status {
    status::guard("nexvitad_selftest_panic", || panic!("deliberate panic (nexvitad_selftest_panic)"))
}

// Every promise of the header ("no panic crosses this API") rests on `catch_unwind` in
// `status::guard`, which does nothing when panics abort. Refuse to build such a library
// (fuzz targets, built by cargo-fuzz with `--cfg fuzzing`, never go through the C ABI).
#[allow(unexpected_cfgs)]
mod panic_strategy_guard {
    #[cfg(all(panic = "abort", not(fuzzing)))]
    compile_error!(
        "nexvitad's C ABI needs panic = \"unwind\": with panic = \"abort\" a bug would abort the host process \
         instead of returning NEXVITAD_INTERNAL (keep the default panic strategy in every profile)"
    );
}
