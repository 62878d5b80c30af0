//! The library's integration tests, one module per area, built into one test binary: each
//! binary links the whole library (ONNX Runtime bindings, candle, image codecs), so eight
//! binaries cost eight links in every CI run. `tests/limits.rs` stays apart (it installs a
//! counting global allocator) and so does `tests/gpu.rs` (run by scripts/gpu-check.sh).
//!
//! Run one area with `cargo test --test integration bank::`.

#[path = "../common/mod.rs"]
mod common;

mod bank;
mod crash_safe;
mod crosslang;
mod encoder;
mod grow;
mod int8;
mod parity;
mod prep;
mod roi;
mod stress;
mod tiling;
mod train;
