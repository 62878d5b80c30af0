//! Crash-safe file writing.
//!
//! A bank or a head that took minutes to build must survive a crash or a power cut during
//! its save: we write a temp file in the same directory, fsync it, rename it over the target
//! (atomic on POSIX), then fsync the directory so the rename itself is durable. Readers of
//! the target therefore see the old file or the new one, never a mix.
//!
//! Temp files are named `.<name>.tmp-<pid>-<seq>`: the process id keeps processes apart and
//! a process-wide counter keeps threads apart, so concurrent saves of one path never write
//! into the same temp file (the last rename wins, every save succeeds). Temp files are created
//! with `O_EXCL`, so a file or symlink planted at that name is never written through.
//!
//! A process killed mid-save leaves its temp file behind. Each save first removes the temp
//! files of the same target whose process no longer exists, so at most the in-flight ones
//! remain. A process that is not ours to see (another PID namespace sharing the folder) can
//! look dead: removing its in-flight temp file makes its rename fail with an error, and the
//! target stays intact either way.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Per-process sequence number of temp files.
static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// At most this many bytes of the target's name go into its temp file's name, so the temp
/// name stays within the usual 255-byte name limit whatever the target is called.
const TEMP_NAME_PREFIX_MAX: usize = 128;

/// Writes `bytes` to `path` atomically. On any error the old file (if any) is untouched and
/// the temp file is removed.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid(format!("'{}' is not a file path", path.display())))?;
    let prefix = temp_prefix(&name.to_string_lossy());
    remove_stale_temps(&dir, &prefix);
    let (tmp, mut f) = create_temp(&dir, &prefix).map_err(|e| Error::io("cannot write", path, e))?;
    let res = (|| -> std::io::Result<()> {
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        // Durability of the rename; failure to open a directory (odd filesystems) is not fatal.
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    res.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("cannot write", path, e)
    })
}

/// `.<name>.tmp-`, with `name` cut to [`TEMP_NAME_PREFIX_MAX`] bytes on a char boundary.
fn temp_prefix(name: &str) -> String {
    let mut end = name.len().min(TEMP_NAME_PREFIX_MAX);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!(".{}.tmp-", &name[..end])
}

/// Creates a fresh temp file `<prefix><pid>-<seq>` with `O_EXCL`, skipping names that exist.
fn create_temp(dir: &Path, prefix: &str) -> std::io::Result<(PathBuf, std::fs::File)> {
    let pid = std::process::id();
    let mut last = None;
    for _ in 0..16 {
        let seq = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!("{prefix}{pid}-{seq}"));
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free temp file name")))
}

/// Best effort: removes `<prefix><pid>-<seq>` files in `dir` left by processes that no
/// longer exist. Errors are ignored: a leftover temp file wastes space but harms nothing.
fn remove_stale_temps(dir: &Path, prefix: &str) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let own = std::process::id();
    for entry in rd.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(prefix)) else { continue };
        let Some((pid, seq)) = rest.split_once('-') else { continue };
        let (Ok(pid), Ok(_)) = (pid.parse::<u32>(), seq.parse::<u64>()) else { continue };
        if pid != own && !process_exists(pid) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether a process with this id exists (a zombie counts). Unknown means "exists".
#[cfg(unix)]
fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return true };
    if pid <= 0 {
        return true;
    }
    // Signal 0 checks existence and permission without sending anything.
    // SAFETY: kill(2) with signal 0 has no effect on the target process.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

#[cfg(not(unix))]
fn process_exists(_pid: u32) -> bool {
    true
}

/// Reads a whole file with a size cap, so a hostile path (a device, a huge file, a file that
/// grows while we read it, a `/proc` file claiming size 0) cannot exhaust memory.
pub fn read_capped(path: &Path, what: &'static str, max_bytes: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    // Non-blocking open: a FIFO at `path` must be refused below, not wait for a writer.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut opts, libc::O_NONBLOCK);
    let f = opts.open(path).map_err(|e| Error::io(what, path, e))?;
    let meta = f.metadata().map_err(|e| Error::io(what, path, e))?;
    if !meta.is_file() {
        return Err(Error::format(path, "not a regular file"));
    }
    let too_big = |len: u64| {
        Error::LimitExceeded(format!("'{}' is {len} bytes, above the limit of {max_bytes} bytes", path.display()))
    };
    if meta.len() > max_bytes {
        return Err(too_big(meta.len()));
    }
    // The size can change after `metadata`: read at most one byte past the cap to tell.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    f.take(max_bytes.saturating_add(1)).read_to_end(&mut bytes).map_err(|e| Error::io(what, path, e))?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_big(bytes.len() as u64));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsutil_temp_prefix_is_bounded_and_char_safe() {
        assert_eq!(temp_prefix("b.bank"), ".b.bank.tmp-");
        let long = "é".repeat(200);
        let p = temp_prefix(&long);
        assert!(p.len() <= TEMP_NAME_PREFIX_MAX + 6, "{}", p.len());
        assert!(p.starts_with(".é") && p.ends_with(".tmp-"));
    }

    #[test]
    fn fsutil_process_exists() {
        assert!(process_exists(std::process::id()));
        // Above any pid_max Linux allows (4194304).
        assert!(!process_exists(2_000_000_000));
    }

    #[test]
    fn fsutil_read_capped_refuses_big_and_non_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, [0u8; 10]).unwrap();
        assert_eq!(read_capped(&p, "read", 10).unwrap().len(), 10);
        assert!(matches!(read_capped(&p, "read", 9), Err(Error::LimitExceeded(_))));
        assert!(matches!(read_capped(dir.path(), "read", 9), Err(Error::Format { .. })));
        // A /proc file reports size 0 but has content: the cap still holds.
        let proc_file = Path::new("/proc/self/status");
        if proc_file.exists() {
            assert!(matches!(read_capped(proc_file, "read", 8), Err(Error::LimitExceeded(_))));
        }
        // A FIFO with no writer is refused at once instead of blocking the caller.
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(read_capped(&fifo, "read", 9), Err(Error::Format { .. })));
    }
}
