//! The CUDA execution provider against the CPU one. Needs a GPU, a build with
//! `--features cuda` and a CUDA build of ONNX Runtime (`NEXVITAD_ORT_LIBRARY`), so every
//! test here is `#[ignore]`d; scripts/gpu-check.sh runs them with `--ignored`.
//!
//! `NEXVITAD_GPU_MODEL` picks the model folder (default models/tiny). Tolerances are
//! relative to the largest magnitude compared: 2 % for encoder outputs and anomaly maps.
//! The CUDA EP may use TF32 matrix products (10-bit mantissa, relative error ~1e-3 per
//! product) and other convolution/attention kernels than the CPU EP; through the
//! random-weight backbones that compounds to well under 1 %, while a wrong layout,
//! provider or input would differ by far more than 2 %.
mod common;

use std::path::PathBuf;

use common::*;
use nexvitad::bank::{BankOptions, MemoryBank};
use nexvitad::{Model, ModelOptions, PixelFormat, Workspace};

fn model_dir() -> PathBuf {
    std::env::var_os("NEXVITAD_GPU_MODEL").map(PathBuf::from).unwrap_or_else(tiny_model_dir)
}

fn open(ep: &str) -> Model {
    let opts = ModelOptions { ort_library: Some(ort_library()), ..Default::default() }.with_execution_provider(ep).unwrap();
    Model::open(model_dir(), &opts).unwrap_or_else(|e| panic!("open {} with {ep}: {e}", model_dir().display()))
}

fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let peak = a.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
    a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs())) / peak
}

fn image(w: u32, h: u32, seed: u32) -> Vec<u8> {
    (0..w * h)
        .flat_map(|i| {
            let (x, y) = (i % w, i / w);
            let v = ((x * 7 + y * 3 + seed * 11) % 251) as u8;
            [v, v.wrapping_mul(3), 255 - v]
        })
        .collect()
}

#[test]
#[ignore = "needs a CUDA GPU, --features cuda and a CUDA build of ONNX Runtime (scripts/gpu-check.sh)"]
fn cuda_matches_cpu() {
    let cpu = open("cpu");
    let gpu = open("cuda:0");
    assert_eq!(cpu.fingerprint(), gpu.fingerprint(), "the execution provider must not change the model identity");
    let (w, h) = (320u32, 240u32);
    let pixels: Vec<Vec<u8>> = (0..3).map(|s| image(w, h, s)).collect();
    let views: Vec<_> = pixels.iter().map(|p| cpu.view(p, w, h, w as usize * 3, PixelFormat::Rgb8).unwrap()).collect();

    // Encoder outputs, batch of 3.
    let a = cpu.encode(&views).unwrap();
    let b = gpu.encode(&views).unwrap();
    for s in 0..4 {
        let d = rel_diff(a.hiera[s].as_slice().unwrap(), b.hiera[s].as_slice().unwrap());
        eprintln!("hiera stage{}: relative max diff {d:.2e}", s + 1);
        assert!(d < 0.02, "hiera stage{}: {d}", s + 1);
    }
    let d = rel_diff(a.dinov2.as_slice().unwrap(), b.dinov2.as_slice().unwrap());
    eprintln!("dinov2: relative max diff {d:.2e}");
    assert!(d < 0.02, "dinov2: {d}");

    // Anomaly maps from one bank (fitted on the CPU), scored by both.
    let bank = MemoryBank::build(&cpu, &views[..2], &BankOptions { k: Some(8), ..Default::default() }, &mut |_| true).unwrap();
    let (mut wa, mut wb) = (Workspace::new(), Workspace::new());
    let ra = nexvitad::score::score(&cpu, &bank, &views[2], &mut wa).unwrap();
    let rb = nexvitad::score::score(&gpu, &bank, &views[2], &mut wb).unwrap();
    let d = rel_diff(&ra.map.values, &rb.map.values);
    eprintln!("anomaly map: relative max diff {d:.2e}; image scores {} / {}", ra.map.image_score, rb.map.image_score);
    assert!(d < 0.02, "anomaly map: {d}");
}

#[test]
#[ignore = "needs a CUDA GPU, --features cuda and a CUDA build of ONNX Runtime (scripts/gpu-check.sh)"]
fn cuda_bad_device_is_an_error_not_a_cpu_fallback() {
    let opts = ModelOptions { ort_library: Some(ort_library()), ..Default::default() }.with_execution_provider("cuda:63").unwrap();
    match Model::open(model_dir(), &opts) {
        Ok(_) => panic!("cuda:63 opened; the provider must fail rather than fall back to the CPU"),
        Err(e) => eprintln!("cuda:63 refused as expected: {e}"),
    }
}
