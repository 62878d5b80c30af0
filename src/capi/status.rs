//! Status codes, the thread's last error message, and the guard every entry point runs in.

use std::any::Any;
use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use super::types::nexvitad_status::{self, *};
use crate::error::{Error, Result};

thread_local! {
    /// The message of the last failed call on this thread ("" after a successful one).
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// One status per error variant; the match is exhaustive so a new variant cannot be
/// forgotten here.
pub(crate) fn status_of(e: &Error) -> nexvitad_status {
    match e {
        Error::InvalidArgument(_) => NEXVITAD_INVALID_ARGUMENT,
        Error::Io { .. } => NEXVITAD_IO,
        Error::Format { .. } => NEXVITAD_FORMAT,
        Error::Mismatch(_) => NEXVITAD_MISMATCH,
        Error::Runtime(_) => NEXVITAD_RUNTIME,
        Error::Unsupported(_) => NEXVITAD_UNSUPPORTED,
        Error::LimitExceeded(_) => NEXVITAD_LIMIT_EXCEEDED,
        Error::Cancelled => NEXVITAD_CANCELLED,
        Error::Internal(_) => NEXVITAD_INTERNAL,
    }
}

/// The C name of a status value.
pub(crate) fn status_name(status: c_int) -> &'static CStr {
    match status {
        0 => c"NEXVITAD_OK",
        1 => c"NEXVITAD_INVALID_ARGUMENT",
        2 => c"NEXVITAD_IO",
        3 => c"NEXVITAD_FORMAT",
        4 => c"NEXVITAD_MISMATCH",
        5 => c"NEXVITAD_RUNTIME",
        6 => c"NEXVITAD_UNSUPPORTED",
        7 => c"NEXVITAD_LIMIT_EXCEEDED",
        8 => c"NEXVITAD_CANCELLED",
        9 => c"NEXVITAD_INTERNAL",
        _ => c"NEXVITAD_UNKNOWN_STATUS",
    }
}

fn set_last_error(msg: &str) {
    // A message cannot carry a NUL into C; none of ours should, but never fail over it.
    let c = CString::new(msg.replace('\0', "?")).unwrap_or_default();
    // `try_with`: during thread teardown the slot may already be gone; then there is no
    // one left to read the message.
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = c);
}

/// Pointer to this thread's last error message; valid until the next nexvitad call on this
/// thread (which replaces the string).
pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR.try_with(|e| e.borrow().as_ptr()).unwrap_or(c"".as_ptr())
}

/// The text of a panic payload.
fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_string()
    }
}

/// Runs one entry point's body: clears the last error, converts `Err` to its status and
/// message (prefixed with the function name), and turns a panic into NEXVITAD_INTERNAL so
/// it never unwinds into C.
pub(crate) fn guard(func: &str, body: impl FnOnce() -> Result<()>) -> nexvitad_status {
    set_last_error("");
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => NEXVITAD_OK,
        Ok(Err(e)) => {
            set_last_error(&format!("{func}: {e}"));
            status_of(&e)
        }
        Err(payload) => {
            set_last_error(&format!("{func}: internal error: panic: {}", panic_message(payload.as_ref())));
            // Dropping a payload could itself panic; keep that inside too.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            NEXVITAD_INTERNAL
        }
    }
}

/// Fails with a message naming `param` when `p` is NULL.
pub(crate) fn non_null<T>(p: *const T, param: &str) -> Result<()> {
    if p.is_null() {
        return Err(Error::invalid(format!("{param} is NULL")));
    }
    Ok(())
}

/// A caller's NUL-terminated string as bytes.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string.
unsafe fn c_bytes<'a>(p: *const c_char, param: &str) -> Result<&'a [u8]> {
    non_null(p, param)?;
    Ok(CStr::from_ptr(p).to_bytes())
}

/// A caller's path (any bytes but NUL, as POSIX allows); empty is refused.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string.
pub(crate) unsafe fn c_path(p: *const c_char, param: &str) -> Result<PathBuf> {
    let b = c_bytes(p, param)?;
    if b.is_empty() {
        return Err(Error::invalid(format!("{param} is an empty string")));
    }
    Ok(PathBuf::from(OsStr::from_bytes(b)))
}

/// A caller's UTF-8 string.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string.
pub(crate) unsafe fn c_str<'a>(p: *const c_char, param: &str) -> Result<&'a str> {
    std::str::from_utf8(c_bytes(p, param)?).map_err(|_| Error::invalid(format!("{param} is not valid UTF-8")))
}

/// Prefixes an argument or limit error with the parameter it came from, keeping its class.
pub(crate) fn in_param(e: Error, param: &str) -> Error {
    match e {
        Error::InvalidArgument(m) => Error::InvalidArgument(format!("{param}: {m}")),
        Error::LimitExceeded(m) => Error::LimitExceeded(format!("{param}: {m}")),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last() -> String {
        unsafe { CStr::from_ptr(last_error_ptr()) }.to_string_lossy().into_owned()
    }

    #[test]
    fn guard_maps_errors_and_panics() {
        assert_eq!(guard("f", || Err(Error::invalid("x is NULL"))), NEXVITAD_INVALID_ARGUMENT);
        assert_eq!(last(), "f: invalid argument: x is NULL");
        assert_eq!(guard("g", || Ok(())), NEXVITAD_OK);
        assert_eq!(last(), "", "a successful call clears the message");
        assert_eq!(guard("h", || panic!("boom {}", 42)), NEXVITAD_INTERNAL);
        assert!(last().contains("h: internal error: panic: boom 42"), "{}", last());
        assert_eq!(guard("c", || Err(Error::Cancelled)), NEXVITAD_CANCELLED);
    }

    #[test]
    fn every_status_has_a_name() {
        for s in 0..=9 {
            assert!(status_name(s).to_str().unwrap().starts_with("NEXVITAD_"));
            assert_ne!(status_name(s), c"NEXVITAD_UNKNOWN_STATUS", "{s}");
        }
        assert_eq!(status_name(-1), c"NEXVITAD_UNKNOWN_STATUS");
        assert_eq!(status_name(NEXVITAD_MISMATCH as c_int), c"NEXVITAD_MISMATCH");
    }

    #[test]
    fn messages_with_nul_are_kept() {
        let _ = guard("n", || Err(Error::invalid("a\0b")));
        assert!(last().ends_with("a?b"));
    }
}
