//! The log sink: one process-wide callback, called synchronously on the thread that logs.
//!
//! The callback runs under a read lock, so nexvitad_set_log_callback() (a write) returns only
//! once no thread is still inside the old callback: after it returns, the old `user` pointer
//! is no longer used and may be freed. A callback that logs through nexvitad again (by
//! calling a nexvitad function) is not re-entered; such nested messages are dropped.

use std::cell::Cell;
use std::ffi::{c_int, c_void, CString};

use once_cell::sync::Lazy;
use parking_lot::RwLock;

use super::status::guard;
use super::types::{nexvitad_log_cb, nexvitad_log_level, nexvitad_status};
use crate::error::Error;

/// The callback and its `user` pointer (kept as an address: the caller vouches for it).
type Sink = (unsafe extern "C" fn(*mut c_void, c_int, *const std::ffi::c_char), usize);

static SINK: Lazy<RwLock<Option<Sink>>> = Lazy::new(|| RwLock::new(None));

thread_local! {
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

/// Sends one message to the sink, if there is one.
pub(crate) fn log(level: nexvitad_log_level, msg: &str) {
    if IN_CALLBACK.with(Cell::get) {
        return;
    }
    // `read_recursive`: a callback may call into nexvitad, which may log (dropped above)
    // while a writer waits; a fair read lock would deadlock there.
    let sink = SINK.read_recursive();
    if let Some((cb, user)) = *sink {
        let Ok(c) = CString::new(msg.replace('\0', "?")) else { return };
        IN_CALLBACK.with(|f| f.set(true));
        // SAFETY: the caller registered `cb` for exactly this signature and vouches for `user`.
        unsafe { cb(user as *mut c_void, level as c_int, c.as_ptr()) };
        IN_CALLBACK.with(|f| f.set(false));
    }
}

/// Sets (or, with `cb` = NULL, removes) the process-wide log callback.
///
/// The library logs at NEXVITAD_LOG_INFO when a model is opened and when a bank is built,
/// loaded or saved, and at NEXVITAD_LOG_WARN when something succeeded in a way the caller
/// may not want (Sinkhorn K-means stopped at max_iters without converging). Errors are not
/// logged: they come back as status codes with nexvitad_last_error(). Without a callback
/// the library writes nothing anywhere.
///
/// `user` is passed back to every call of `cb`; the library never dereferences it. When
/// this function returns, no thread is still running the previous callback, so its `user`
/// may be freed.
///
/// Thread-safety: may be called from any thread, but not from inside the log callback
/// itself (that returns NEXVITAD_INVALID_ARGUMENT instead of deadlocking).
///
/// Errors: NEXVITAD_INVALID_ARGUMENT when called from inside the log callback.
#[no_mangle]
pub unsafe extern "C" fn nexvitad_set_log_callback(cb: nexvitad_log_cb, user: *mut c_void) -> nexvitad_status {
    guard("nexvitad_set_log_callback", || {
        if IN_CALLBACK.with(Cell::get) {
            return Err(Error::invalid("cb: nexvitad_set_log_callback cannot be called from inside the log callback"));
        }
        *SINK.write() = cb.map(|f| (f, user as usize));
        Ok(())
    })
}
