//! Encoder parity with Python onnxruntime, and the errors a user sees for broken models.

use crate::common::*;
use nexvitad::encoder::ExecutionProvider;
use nexvitad::{Error, Model};

#[test]
fn tiny_encoders_match_python_onnxruntime() {
    let refs = read_safetensors(&root().join("tests/fixtures/encoder/tiny_refs.safetensors"));
    let input = tensor(&refs, "input").into_dimensionality::<ndarray::Ix4>().unwrap();
    let model = tiny_model();
    let (f, _) = model.backbones().run(input.view(), input.view()).expect("run");
    for (s, got) in f.hiera.iter().enumerate() {
        let want = tensor(&refs, &format!("stage{}", s + 1));
        let d = max_abs_diff(&got.clone().into_dyn(), &want);
        assert!(d <= 1e-4, "hiera stage{} differs from Python onnxruntime by {d}", s + 1);
    }
    let want = tensor(&refs, "patch_grid");
    let d = max_abs_diff(&f.dinov2.clone().into_dyn(), &want);
    assert!(d <= 1e-4, "dinov2 patch grid differs from Python onnxruntime by {d}");
}

#[test]
fn batch_results_equal_single_results() {
    let refs = read_safetensors(&root().join("tests/fixtures/encoder/tiny_refs.safetensors"));
    let input = tensor(&refs, "input").into_dimensionality::<ndarray::Ix4>().unwrap();
    let model = tiny_model();
    let (both, _) = model.backbones().run(input.view(), input.view()).unwrap();
    let one = input.slice(ndarray::s![1..2, .., .., ..]);
    let (single, _) = model.backbones().run(one, one).unwrap();
    let d = (&both.hiera[2].slice(ndarray::s![1..2, .., .., ..]) - &single.hiera[2]).mapv(f32::abs).fold(0.0f32, |a, &b| a.max(b));
    assert!(d < 1e-4, "batched and single runs differ by {d}");
}

#[test]
fn io_binding_runs_equal_plain_runs() {
    // CUDA runs go through IoBinding; forcing it on CPU checks that path here, without a GPU.
    let refs = read_safetensors(&root().join("tests/fixtures/encoder/tiny_refs.safetensors"));
    let input = tensor(&refs, "input").into_dimensionality::<ndarray::Ix4>().unwrap();
    let mut o = options();
    o.session.io_binding = Some(true);
    assert!(o.session.binds_io() && !options().session.binds_io());
    let bound = Model::open(&tiny_model_dir(), &o).expect("open with IoBinding");
    let (got, _) = bound.backbones().run(input.view(), input.view()).expect("bound run");
    let (want, _) = tiny_model().backbones().run(input.view(), input.view()).unwrap();
    for (s, (g, w)) in got.hiera.iter().zip(&want.hiera).enumerate() {
        assert_eq!(g, w, "hiera stage{} differs between bound and plain runs", s + 1);
    }
    assert_eq!(got.dinov2, want.dinov2);
    // Twice: the binding's host outputs are not shared between runs.
    let one = input.slice(ndarray::s![0..1, .., .., ..]);
    let (a, _) = bound.backbones().run(one, one).unwrap();
    let (b, _) = bound.backbones().run(input.slice(ndarray::s![1..2, .., .., ..]), input.slice(ndarray::s![1..2, .., .., ..])).unwrap();
    assert_ne!(a.dinov2, b.dinov2);
    assert_eq!(a.dinov2, want.dinov2.slice(ndarray::s![0..1, .., .., ..]));
}

#[test]
fn parallel_encoders_give_the_sequential_features() {
    let refs = read_safetensors(&root().join("tests/fixtures/encoder/tiny_refs.safetensors"));
    let input = tensor(&refs, "input").into_dimensionality::<ndarray::Ix4>().unwrap();
    let (want, _) = tiny_model().backbones().run(input.view(), input.view()).unwrap();
    // The same thread count as the sequential model (ORT's own choice is all cores, which
    // parallel_encoders halves; a thread count may move the last bits of a sum).
    for threads in [1usize, 2] {
        let mut seq = options();
        seq.session.intra_threads = std::num::NonZeroUsize::new(threads);
        let mut par = seq.clone();
        par.session.parallel_encoders = true;
        assert_eq!(par.session.session_threads().map(|t| t.get()), Some(threads), "an explicit thread count is kept per encoder");
        let (a, _) = Model::open(tiny_model_dir(), &seq).unwrap().backbones().run(input.view(), input.view()).unwrap();
        let model = Model::open(tiny_model_dir(), &par).expect("open with parallel encoders");
        for _ in 0..3 {
            let (b, t) = model.backbones().run(input.view(), input.view()).unwrap();
            assert!(t.hiera_s > 0.0 && t.dinov2_s > 0.0, "each encoder's own time is kept");
            for (s, (x, y)) in b.hiera.iter().zip(&a.hiera).enumerate() {
                assert_eq!(x, y, "{threads} thread(s): hiera stage{} differs side by side", s + 1);
            }
            assert_eq!(b.dinov2, a.dinov2, "{threads} thread(s): dinov2 differs side by side");
        }
    }
    // With ORT's own choice each side gets half the cores, at least one.
    let mut half = options();
    half.session.parallel_encoders = true;
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(half.session.session_threads().map(|t| t.get()), Some((cores / 2).max(1)));
    let (c, _) = Model::open(tiny_model_dir(), &half).unwrap().backbones().run(input.view(), input.view()).unwrap();
    let close = |x: &ndarray::Array4<f32>, y: &ndarray::Array4<f32>| x.iter().zip(y).all(|(a, b)| (a - b).abs() <= 1e-4 * (1.0 + b.abs()));
    assert!(close(&c.dinov2, &want.dinov2) && c.hiera.iter().zip(&want.hiera).all(|(x, y)| close(x, y)));
}

#[test]
fn fingerprint_is_stable_and_hex() {
    let a = tiny_model().fingerprint().to_string();
    let b = Model::open(tiny_model_dir(), &options()).unwrap().fingerprint().to_string();
    assert_eq!(a, b);
    assert_eq!(a.len(), 64);
    assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
}

fn open_err(dir: &std::path::Path) -> Error {
    match Model::open(dir, &options()) {
        Ok(_) => panic!("opening {} should fail", dir.display()),
        Err(e) => e,
    }
}

#[test]
fn missing_onnx_file_is_named() {
    let t = tempfile::tempdir().unwrap();
    copy_model(t.path());
    std::fs::remove_file(t.path().join("dinov2.onnx")).unwrap();
    let e = open_err(t.path());
    assert!(matches!(e, Error::Io { .. }), "{e}");
    assert!(e.to_string().contains("dinov2.onnx"), "{e}");
}

#[test]
fn corrupt_onnx_file_is_named() {
    let t = tempfile::tempdir().unwrap();
    copy_model(t.path());
    let p = t.path().join("hiera.onnx");
    let mut bytes = std::fs::read(&p).unwrap();
    bytes.truncate(bytes.len() / 3);
    std::fs::write(&p, &bytes).unwrap();
    let e = open_err(t.path());
    assert!(matches!(e, Error::Format { .. }), "{e}");
    assert!(e.to_string().contains("hiera.onnx"), "{e}");
    std::fs::write(&p, b"").unwrap();
    let e = open_err(t.path());
    assert!(e.to_string().contains("empty"), "{e}");
}

fn edit_manifest(dir: &std::path::Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("model.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

#[test]
fn manifest_that_disagrees_with_graph_is_refused() {
    let t = tempfile::tempdir().unwrap();
    copy_model(t.path());
    edit_manifest(t.path(), |v| v["hiera"]["channels"][2] = serde_json::json!(99));
    let e = open_err(t.path());
    assert!(matches!(e, Error::Mismatch(_)), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("stage3") && msg.contains("99"), "{msg}");

    let t = tempfile::tempdir().unwrap();
    copy_model(t.path());
    edit_manifest(t.path(), |v| v["dinov2"]["output"] = serde_json::json!("tokens"));
    let e = open_err(t.path());
    assert!(matches!(e, Error::Mismatch(_)) && e.to_string().contains("'tokens'"), "{e}");

    let t = tempfile::tempdir().unwrap();
    copy_model(t.path());
    edit_manifest(t.path(), |v| v["hiera"]["input"] = serde_json::json!("pixels"));
    let e = open_err(t.path());
    assert!(e.to_string().contains("no input named 'pixels'"), "{e}");
}

#[test]
fn bad_manifest_fields_are_named() {
    for (edit, needle) in [
        (Box::new(|v: &mut serde_json::Value| v["format_version"] = serde_json::json!(99)) as Box<dyn Fn(&mut serde_json::Value)>, "newer"),
        (Box::new(|v: &mut serde_json::Value| v["surprise"] = serde_json::json!(1)), "surprise"),
        (Box::new(|v: &mut serde_json::Value| { v.as_object_mut().unwrap().remove("fusion"); }), "fusion"),
        (Box::new(|v: &mut serde_json::Value| v["input"]["width"] = serde_json::json!("wide")), "invalid type"),
        (Box::new(|v: &mut serde_json::Value| v["defaults"]["theta"] = serde_json::json!(1.5)), "theta"),
    ] {
        let t = tempfile::tempdir().unwrap();
        copy_model(t.path());
        edit_manifest(t.path(), edit);
        let e = open_err(t.path());
        assert!(matches!(e, Error::Format { .. }), "{e}");
        assert!(e.to_string().contains(needle), "expected '{needle}' in: {e}");
    }
}

#[test]
fn unknown_execution_provider_is_refused() {
    let e = ExecutionProvider::parse("tpu").unwrap_err();
    assert!(e.to_string().contains("unknown execution provider 'tpu'"), "{e}");
    assert!(ExecutionProvider::parse("cuda:x").is_err());
    assert_eq!(ExecutionProvider::parse("cuda:1").unwrap(), ExecutionProvider::Cuda(1));
    assert_eq!(ExecutionProvider::parse("CPU").unwrap(), ExecutionProvider::Cpu);
}

#[test]
fn cuda_request_never_falls_back_to_cpu() {
    // The CPU wheel has no CUDA provider; a build without the feature refuses up front.
    let opts = options().with_execution_provider("cuda:0").unwrap();
    match Model::open(tiny_model_dir(), &opts) {
        Ok(_) => panic!("cuda:0 must not silently run on the CPU"),
        Err(e) => assert!(matches!(e, Error::Unsupported(_)), "{e}"),
    }
}

