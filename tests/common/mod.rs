//! Shared helpers for the integration tests.
#![allow(dead_code)]
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, IxDyn};

/// Repository root (the library's folder; the CLI crate's tests run from `cli/`).
pub fn root() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if d.join("models").is_dir() {
        d
    } else {
        d.parent().map(Path::to_path_buf).unwrap_or(d)
    }
}

/// The ONNX Runtime library the tests use: `$NEXVITAD_ORT_LIBRARY`, else the one
/// `scripts/setup-ort.sh` installs in `.ort/lib`.
pub fn ort_library() -> PathBuf {
    std::env::var_os("NEXVITAD_ORT_LIBRARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".ort/lib/libonnxruntime.so"))
}

/// The committed tiny model folder.
pub fn tiny_model_dir() -> PathBuf {
    root().join("models/tiny")
}

pub fn options() -> nexvitad::ModelOptions {
    nexvitad::ModelOptions { ort_library: Some(ort_library()), ..Default::default() }
}

/// Opens the tiny model once per test binary (opening is cheap, but sessions are not free).
pub fn tiny_model() -> &'static nexvitad::Model {
    static M: std::sync::OnceLock<nexvitad::Model> = std::sync::OnceLock::new();
    M.get_or_init(|| nexvitad::Model::open(tiny_model_dir(), &options()).expect("open tiny model"))
}

/// Reads every f32 tensor of a safetensors file.
pub fn read_safetensors(path: &Path) -> Vec<(String, ArrayD<f32>)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("parse safetensors");
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name} must be f32");
        let data: Vec<f32> = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        out.push((name.to_string(), ArrayD::from_shape_vec(IxDyn(view.shape()), data).expect("shape")));
    }
    out
}

pub fn tensor(all: &[(String, ArrayD<f32>)], name: &str) -> ArrayD<f32> {
    all.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no tensor {name}")).1.clone()
}

pub fn max_abs_diff(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Copies a model folder into a temp dir, so a test can damage it.
pub fn copy_model(dst: &Path) {
    for e in std::fs::read_dir(tiny_model_dir()).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
    }
}

/// Temp files `fsutil::atomic_write` left beside `target` (`.<name>.tmp-<pid>-<seq>`), sorted.
pub fn temp_files(target: &Path) -> Vec<PathBuf> {
    let prefix = format!(".{}.tmp-", target.file_name().unwrap().to_str().unwrap());
    let mut v: Vec<PathBuf> = std::fs::read_dir(target.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(&prefix))
        .collect();
    v.sort();
    v
}
