//! One error type for the whole library.
//!
//! Every variant maps to exactly one C status code (see `Error::status`), so the C ABI,
//! the bindings and the CLI all report the same class of failure for the same cause.

use std::path::{Path, PathBuf};

/// Everything that can go wrong in nexvitad. Messages name the offending input.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A caller-supplied argument or option is out of range or malformed.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A file could not be read or written.
    #[error("{op} '{}': {source}", path.display())]
    Io {
        /// What was being done (e.g. `cannot read model manifest`).
        op: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file exists but its content is not what it must be (corrupt, truncated, wrong format).
    #[error("bad file '{}': {msg}", path.display())]
    Format {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// Two artefacts that must belong together do not (bank from another model, graph vs manifest).
    #[error("mismatch: {0}")]
    Mismatch(String),
    /// ONNX Runtime could not be loaded, or failed while running a model.
    #[error("onnx runtime: {0}")]
    Runtime(String),
    /// A request that this build or machine cannot serve (e.g. CUDA without a CUDA build).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A configured limit (image size, bank size, memory per call) would be exceeded.
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    /// A progress callback asked to stop.
    #[error("cancelled")]
    Cancelled,
    /// A bug in nexvitad (a caught panic, a broken invariant).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }

    /// Shorthand for [`Error::Format`].
    pub fn format(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::Format { path: path.as_ref().to_path_buf(), msg: msg.into() }
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(op: &'static str, path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io { op, path: path.as_ref().to_path_buf(), source }
    }

    /// Shorthand for [`Error::Runtime`].
    pub fn runtime(msg: impl Into<String>) -> Self {
        Error::Runtime(msg.into())
    }

    /// The same error with `what: ` before its message (e.g. which image of a batch), so
    /// the class of failure — and the C status code — stays the same.
    pub fn context(self, what: impl std::fmt::Display) -> Self {
        match self {
            Error::InvalidArgument(m) => Error::InvalidArgument(format!("{what}: {m}")),
            Error::Format { path, msg } => Error::Format { path, msg: format!("{what}: {msg}") },
            Error::Mismatch(m) => Error::Mismatch(format!("{what}: {m}")),
            Error::Runtime(m) => Error::Runtime(format!("{what}: {m}")),
            Error::Unsupported(m) => Error::Unsupported(format!("{what}: {m}")),
            Error::LimitExceeded(m) => Error::LimitExceeded(format!("{what}: {m}")),
            Error::Internal(m) => Error::Internal(format!("{what}: {m}")),
            other => other,
        }
    }
}
