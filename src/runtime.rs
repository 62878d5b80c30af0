//! Finding and loading ONNX Runtime.
//!
//! nexvitad never links ONNX Runtime at build time and never downloads it: it loads the
//! shared library at run time (`ort`'s `load-dynamic`). A process can hold only one ONNX
//! Runtime library and one environment, so both live in a process-wide cell that is filled
//! once, by the first successful load.

use std::ffi::CStr;
use std::path::{Path, PathBuf};

use once_cell::sync::OnceCell;
use parking_lot::Mutex;

use crate::error::{Error, Result};

/// The ONNX Runtime version the setup step installs and the tests are run against.
pub const ORT_VERSION: &str = "1.32.0";

/// The process-wide environment and the library it came from.
pub struct Runtime {
    pub env: ort::environment::Environment,
    /// Canonical path of the loaded `libonnxruntime.so`.
    pub library: PathBuf,
    /// Its version, e.g. `1.32.0`.
    pub version: String,
}

static RUNTIME: OnceCell<Runtime> = OnceCell::new();
static LOAD_LOCK: Mutex<()> = Mutex::new(());

/// Returns the loaded runtime, loading it on first use.
///
/// Search order: `explicit`, `$NEXVITAD_ORT_LIBRARY`, `$ORT_DYLIB_PATH`, then
/// `libonnxruntime.so` beside the module that holds nexvitad (our `.so`, or the executable
/// when linked statically). The first candidate that exists is loaded; if none loads, the
/// error names every path tried and why each failed.
pub fn runtime(explicit: Option<&Path>) -> Result<&'static Runtime> {
    if let Some(rt) = RUNTIME.get() {
        return check_same_library(rt, explicit).map(|_| rt);
    }
    let _guard = LOAD_LOCK.lock();
    if let Some(rt) = RUNTIME.get() {
        return check_same_library(rt, explicit).map(|_| rt);
    }
    let mut tried = Vec::new();
    for cand in candidates(explicit) {
        match load(&cand.path) {
            Ok(rt) => {
                let _ = RUNTIME.set(rt);
                return RUNTIME.get().ok_or_else(|| Error::Internal("runtime cell empty after set".into()));
            }
            Err(why) => {
                tried.push(format!("{} ({}): {why}", cand.path.display(), cand.source));
                // An explicit path is a demand, not a hint: do not fall through to others.
                if cand.source == "options" {
                    break;
                }
            }
        }
    }
    if tried.is_empty() {
        tried.push("no candidate path (set NEXVITAD_ORT_LIBRARY to libonnxruntime.so)".into());
    }
    Err(Error::runtime(format!(
        "could not load ONNX Runtime {ORT_VERSION}; tried: {}. Run `make ort` (scripts/setup-ort.sh) or set NEXVITAD_ORT_LIBRARY",
        tried.join("; ")
    )))
}

/// The version string of the loaded ONNX Runtime, if one is loaded.
pub fn loaded_version() -> Option<&'static str> {
    RUNTIME.get().map(|rt| rt.version.as_str())
}

/// Reads `OrtGetApiBase()->GetVersionString()` from an already loaded library.
fn library_version(path: &Path) -> Option<String> {
    #[repr(C)]
    struct ApiBase {
        get_api: unsafe extern "C" fn(u32) -> *const libc::c_void,
        get_version_string: unsafe extern "C" fn() -> *const libc::c_char,
    }
    let c_path = std::ffi::CString::new(path.as_os_str().to_string_lossy().as_bytes()).ok()?;
    // SAFETY: RTLD_NOLOAD only returns a handle to a library that is already loaded (by ort);
    // OrtGetApiBase has this signature in every ONNX Runtime release.
    unsafe {
        let h = libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD);
        if h.is_null() {
            return None;
        }
        let sym = libc::dlsym(h, c"OrtGetApiBase".as_ptr());
        let out = if sym.is_null() {
            None
        } else {
            let f: unsafe extern "C" fn() -> *const ApiBase = std::mem::transmute(sym);
            let base = f();
            if base.is_null() {
                None
            } else {
                let v = ((*base).get_version_string)();
                (!v.is_null()).then(|| CStr::from_ptr(v).to_string_lossy().into_owned())
            }
        };
        libc::dlclose(h);
        out
    }
}

fn check_same_library(rt: &Runtime, explicit: Option<&Path>) -> Result<()> {
    if let Some(p) = explicit {
        let want = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        if want != rt.library {
            return Err(Error::runtime(format!(
                "ONNX Runtime is already loaded from '{}' in this process; a process can load only one, so '{}' cannot be used",
                rt.library.display(),
                p.display()
            )));
        }
    }
    Ok(())
}

struct Candidate {
    path: PathBuf,
    source: &'static str,
}

fn candidates(explicit: Option<&Path>) -> Vec<Candidate> {
    let mut out = Vec::new();
    if let Some(p) = explicit {
        out.push(Candidate { path: p.to_path_buf(), source: "options" });
        return out;
    }
    for var in ["NEXVITAD_ORT_LIBRARY", "ORT_DYLIB_PATH"] {
        if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            out.push(Candidate { path: PathBuf::from(v), source: if var == "ORT_DYLIB_PATH" { "ORT_DYLIB_PATH" } else { "NEXVITAD_ORT_LIBRARY" } });
        }
    }
    if let Some(dir) = own_module_dir() {
        out.push(Candidate { path: dir.join("libonnxruntime.so"), source: "beside nexvitad" });
    }
    out
}

/// Loads one candidate; returns a short reason on failure. Never panics.
fn load(path: &Path) -> std::result::Result<Runtime, String> {
    if !path.exists() {
        return Err("no such file".into());
    }
    let abs = std::fs::canonicalize(path).map_err(|e| e.to_string())?;
    let abs2 = abs.clone();
    let loaded = std::panic::catch_unwind(move || -> std::result::Result<ort::environment::Environment, String> {
        let builder = ort::init_from(&abs2).map_err(|e| e.to_string())?;
        builder.with_name("nexvitad").with_telemetry(false).build().map_err(|e| e.to_string())
    });
    match loaded {
        Ok(Ok(env)) => {
            let version = library_version(&abs).unwrap_or_else(|| "unknown".into());
            Ok(Runtime { env, library: abs, version })
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err("loading panicked inside ort".into()),
    }
}

/// The folder of the shared object (or executable) that contains this function.
fn own_module_dir() -> Option<PathBuf> {
    // SAFETY: dladdr only reads loader tables; the address is a function in this module.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        let addr = own_module_dir as *const libc::c_void;
        if libc::dladdr(addr, &mut info) == 0 || info.dli_fname.is_null() {
            return None;
        }
        let name = CStr::from_ptr(info.dli_fname).to_string_lossy().into_owned();
        let p = PathBuf::from(name);
        let p = std::fs::canonicalize(&p).unwrap_or(p);
        p.parent().map(Path::to_path_buf)
    }
}
