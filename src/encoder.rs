//! The two frozen backbones, run by ONNX Runtime.
//!
//! `Backbones` owns one ORT session per encoder. It checks both graphs against `model.json`
//! when it opens them (so a mismatched export fails at load, not at the first image) and
//! again checks every output's shape at run time.

use std::num::NonZeroUsize;
use std::path::Path;

use ndarray::{Array4, ArrayView4, Ix4};
use ort::memory::{AllocationDevice, AllocatorType, MemoryInfo, MemoryType};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::{TensorRef, ValueType};
use parking_lot::Mutex;
use sha2::Digest;

use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::runtime::Runtime;

/// Where the encoders run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutionProvider {
    /// The host CPU.
    Cpu,
    /// CUDA device index.
    Cuda(i32),
}

impl ExecutionProvider {
    /// Parses `cpu` or `cuda:N` (`cuda` alone means device 0).
    pub fn parse(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        if t == "cpu" || t.is_empty() {
            return Ok(Self::Cpu);
        }
        if t == "cuda" {
            return Ok(Self::Cuda(0));
        }
        if let Some(n) = t.strip_prefix("cuda:") {
            return n
                .parse::<i32>()
                .ok()
                .filter(|d| *d >= 0)
                .map(Self::Cuda)
                .ok_or_else(|| Error::invalid(format!("execution provider '{s}': device index must be a non-negative integer")));
        }
        Err(Error::invalid(format!("unknown execution provider '{s}' (expected 'cpu' or 'cuda:N')")))
    }
}

impl std::fmt::Display for ExecutionProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cpu => write!(f, "cpu"),
            Self::Cuda(d) => write!(f, "cuda:{d}"),
        }
    }
}

/// ORT session settings taken from the model options.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    /// Where the encoders run.
    pub execution_provider: ExecutionProvider,
    /// Intra-op threads per session; `None` lets ONNX Runtime choose (all physical cores).
    pub intra_threads: Option<NonZeroUsize>,
    /// Graph optimisation level 0 (off) ..= 3 (all).
    pub optimization_level: u8,
    /// Let ONNX Runtime's intra-op threads busy-wait between operators. Off by default:
    /// after a run the spinning threads keep the cores busy for a while, which slows the
    /// post-encoder work that follows and anything else the host runs (docs/performance.md).
    pub intra_op_spinning: bool,
    /// Run the encoders through ONNX Runtime's IoBinding: the input is handed over once per
    /// run and every output is bound to host memory, so a CUDA run writes its results
    /// straight to where the fusion head reads them instead of returning device tensors.
    /// `None` (the default) binds exactly when the provider is CUDA; on CPU binding gains
    /// nothing (ORT then clones the borrowed input once more), so it is off there unless
    /// forced, which the tests do to exercise the path without a GPU.
    pub io_binding: Option<bool>,
    /// Run Hiera and DINOv2 at the same time, each on its own thread, instead of one after
    /// the other. Off by default. At batch 1 on a CPU with few cores each encoder alone
    /// leaves the cores partly idle (small matrix products split over threads wait on one
    /// another); two encoders side by side with half the threads each fill them: 1.05-1.31x
    /// for the fp32 encoders on 2 cores, never slower (docs/performance.md, section 8). With `intra_threads`
    /// `None` each session then gets half the cores (at least one) instead of all of them.
    pub parallel_encoders: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            execution_provider: ExecutionProvider::Cpu,
            intra_threads: None,
            optimization_level: 3,
            intra_op_spinning: false,
            io_binding: None,
            parallel_encoders: false,
        }
    }
}

impl SessionConfig {
    /// Intra-op threads each session is opened with (`None`: ONNX Runtime's choice).
    pub fn session_threads(&self) -> Option<NonZeroUsize> {
        match (self.intra_threads, self.parallel_encoders) {
            (None, true) => NonZeroUsize::new(std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))),
            (t, _) => t,
        }
    }

    /// Whether runs go through IoBinding (see [`SessionConfig::io_binding`]).
    pub fn binds_io(&self) -> bool {
        self.io_binding.unwrap_or(matches!(self.execution_provider, ExecutionProvider::Cuda(_)))
    }
}

/// Shapes `[C, h, w]` of one image's encoder outputs: Hiera H1..H4 (input size over each
/// stage's stride), then the DINOv2 grid (its own input size over the patch). The encoder
/// checks its outputs against them; training's feature cache lays its records out by them.
pub fn output_shapes(m: &Manifest) -> [[usize; 3]; 5] {
    let (w, h) = (m.input.width as usize, m.input.height as usize);
    let st = |s: usize| [m.hiera.channels[s], h / m.hiera.strides[s], w / m.hiera.strides[s]];
    let d = &m.dinov2;
    [st(0), st(1), st(2), st(3), [d.channels, d.height as usize / d.patch_size, d.width as usize / d.patch_size]]
}

/// Frozen backbone outputs for a batch: Hiera stages H1..H4 and the DINOv2 patch grid, NCHW.
#[derive(Debug, Clone)]
pub struct BackboneFeatures {
    /// Hiera stages H1..H4, `[N, C_s, H/stride_s, W/stride_s]`.
    pub hiera: [Array4<f32>; 4],
    /// DINOv2 patch grid, `[N, C, H/patch, W/patch]` of DINOv2's own input size.
    pub dinov2: Array4<f32>,
}

/// Time spent in each encoder for one call, in seconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct EncoderTimings {
    /// Seconds in the Hiera session.
    pub hiera_s: f64,
    /// Seconds in the DINOv2 session.
    pub dinov2_s: f64,
}

/// The two ORT sessions. Sessions are behind mutexes because `ort`'s `run` takes `&mut`;
/// each run already uses all intra-op threads, so serialising whole runs costs little.
pub struct Backbones {
    hiera: Mutex<Session>,
    dinov2: Mutex<Session>,
    manifest: Manifest,
    /// Run through IoBinding ([`SessionConfig::binds_io`]).
    bind_io: bool,
    /// SHA-256 of the two ONNX files as loaded, for the model fingerprint.
    pub file_hashes: [[u8; 32]; 2],
    /// Run the two sessions side by side ([`SessionConfig::parallel_encoders`]).
    parallel: bool,
}

impl Backbones {
    /// Opens `hiera.onnx` and `dinov2.onnx` in `dir` and checks them against `manifest`.
    pub fn open(rt: &Runtime, dir: &Path, manifest: &Manifest, cfg: &SessionConfig) -> Result<Self> {
        let hiera_path = dir.join(&manifest.hiera.file);
        let dino_path = dir.join(&manifest.dinov2.file);
        let (hiera, hiera_hash) = open_session(rt, &hiera_path, cfg)?;
        let (dinov2, dino_hash) = open_session(rt, &dino_path, cfg)?;
        let (w, h) = (manifest.input.width as i64, manifest.input.height as i64);
        check_input(&hiera, &hiera_path, &manifest.hiera.input, w, h)?;
        for s in 0..4 {
            let st = manifest.hiera.strides[s] as i64;
            let dims = [manifest.hiera.channels[s] as i64, h / st, w / st];
            check_output(&hiera, &hiera_path, &manifest.hiera.outputs[s], &dims)?;
        }
        let d = &manifest.dinov2;
        check_input(&dinov2, &dino_path, &d.input, d.width as i64, d.height as i64)?;
        let p = d.patch_size as i64;
        check_output(&dinov2, &dino_path, &d.output, &[d.channels as i64, d.height as i64 / p, d.width as i64 / p])?;
        Ok(Self {
            hiera: Mutex::new(hiera),
            dinov2: Mutex::new(dinov2),
            manifest: manifest.clone(),
            bind_io: cfg.binds_io(),
            file_hashes: [hiera_hash, dino_hash],
            parallel: cfg.parallel_encoders,
        })
    }

    /// Runs both encoders. `hiera_in` is `[N,3,H,W]` at the manifest's input size; `dino_in`
    /// is at the DINOv2 size (often the same tensor).
    pub fn run(&self, hiera_in: ArrayView4<'_, f32>, dino_in: ArrayView4<'_, f32>) -> Result<(BackboneFeatures, EncoderTimings)> {
        let m = &self.manifest;
        let n = hiera_in.dim().0;
        if n == 0 || dino_in.dim().0 != n {
            return Err(Error::invalid(format!("encoder batch sizes must be equal and > 0 (hiera {n}, dinov2 {})", dino_in.dim().0)));
        }
        let hiera_names: Vec<&str> = m.hiera.outputs.iter().map(String::as_str).collect();
        let run_hiera = || -> Result<(Vec<Array4<f32>>, f64)> {
            let t = std::time::Instant::now();
            let mut s = self.hiera.lock();
            let out = run_session(&mut s, self.bind_io, &m.hiera.input, hiera_in, &hiera_names)?;
            Ok((out, t.elapsed().as_secs_f64()))
        };
        let run_dino = || -> Result<(Vec<Array4<f32>>, f64)> {
            let t = std::time::Instant::now();
            let mut s = self.dinov2.lock();
            let out = run_session(&mut s, self.bind_io, &m.dinov2.input, dino_in, &[m.dinov2.output.as_str()])?;
            Ok((out, t.elapsed().as_secs_f64()))
        };
        let ((hiera_out, hiera_s), (mut dino_out, dinov2_s)) = if self.parallel {
            // Each encoder's time is its own run; the two overlap.
            std::thread::scope(|scope| {
                let h = scope.spawn(run_hiera);
                let d = run_dino();
                let h = h.join().map_err(|_| Error::Internal("the Hiera encoder thread panicked".into()))?;
                Ok::<_, Error>((h?, d?))
            })?
        } else {
            (run_hiera()?, run_dino()?)
        };
        let shapes = output_shapes(m);
        let with_batch = |[c, y, x]: [usize; 3]| [n, c, y, x];
        let mut it = hiera_out.into_iter();
        let mut next_stage = |s: usize| -> Result<Array4<f32>> {
            let a = it.next().ok_or_else(|| Error::Internal("missing hiera output".into()))?;
            expect_shape(&a, with_batch(shapes[s]), &m.hiera.outputs[s])?;
            Ok(a)
        };
        let hiera = [next_stage(0)?, next_stage(1)?, next_stage(2)?, next_stage(3)?];
        let dino = dino_out.pop().ok_or_else(|| Error::Internal("missing dinov2 output".into()))?;
        expect_shape(&dino, with_batch(shapes[4]), &m.dinov2.output)?;
        Ok((
            BackboneFeatures { hiera, dinov2: dino },
            EncoderTimings { hiera_s, dinov2_s },
        ))
    }

    /// Graph input/output names and shapes, for `nexvitad info`.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (label, s) in [("hiera", &self.hiera), ("dinov2", &self.dinov2)] {
            let s = s.lock();
            for i in s.inputs() {
                out.push_str(&format!("  {label} input  {:<12} {}\n", i.name(), describe_type(i.dtype())));
            }
            for o in s.outputs() {
                out.push_str(&format!("  {label} output {:<12} {}\n", o.name(), describe_type(o.dtype())));
            }
        }
        out
    }
}

fn describe_type(t: &ValueType) -> String {
    match t {
        ValueType::Tensor { ty, shape, .. } => {
            let dims: Vec<String> = shape.iter().map(|d| if *d < 0 { "?".into() } else { d.to_string() }).collect();
            format!("{ty:?}[{}]", dims.join(", "))
        }
        other => format!("{other}"),
    }
}

/// Largest ONNX file accepted: protobuf's own 2 GiB message limit.
pub const MAX_ONNX_BYTES: u64 = 2 << 30;

fn open_session(rt: &Runtime, path: &Path, cfg: &SessionConfig) -> Result<(Session, [u8; 32])> {
    // Capped at protobuf's 2 GiB limit (larger models need external data files, which this
    // loader does not take): a device, FIFO or huge file must not hang or exhaust the host.
    let bytes = crate::fsutil::read_capped(path, "cannot read ONNX model", MAX_ONNX_BYTES)?;
    if bytes.is_empty() {
        return Err(Error::format(path, "the ONNX file is empty"));
    }
    let level = match cfg.optimization_level {
        0 => GraphOptimizationLevel::Disable,
        1 => GraphOptimizationLevel::Level1,
        2 => GraphOptimizationLevel::Level2,
        3 => GraphOptimizationLevel::All,
        l => return Err(Error::invalid(format!("graph optimisation level {l} is not in 0..=3"))),
    };
    let builder_err = |e: ort::Error<ort::session::builder::SessionBuilder>| Error::runtime(format!("session options for '{}': {e}", path.display()));
    let mut b = Session::builder(&rt.env).map_err(|e| Error::runtime(format!("session builder: {e}")))?;
    b = b.with_optimization_level(level).map_err(builder_err)?;
    if let Some(threads) = cfg.session_threads() {
        b = b.with_intra_threads(threads.get()).map_err(builder_err)?;
    }
    b = b.with_intra_op_spinning(cfg.intra_op_spinning).map_err(builder_err)?;
    b = register_provider(b, cfg.execution_provider, path)?;
    let session = b
        .commit_from_memory(&bytes)
        .map_err(|e| Error::format(path, format!("ONNX Runtime cannot load this model: {e}")))?;
    Ok((session, sha2::Sha256::digest(&bytes).into()))
}

#[cfg(feature = "cuda")]
fn register_provider(
    b: ort::session::builder::SessionBuilder,
    ep: ExecutionProvider,
    path: &Path,
) -> Result<ort::session::builder::SessionBuilder> {
    match ep {
        ExecutionProvider::Cpu => Ok(b),
        ExecutionProvider::Cuda(dev) => {
            let cuda = ort::ep::CUDA::default().with_device_id(dev).build().error_on_failure();
            b.with_execution_providers([cuda]).map_err(|e| {
                Error::Unsupported(format!(
                    "CUDA execution provider (device {dev}) for '{}' could not be registered: {e}. The ONNX Runtime library must be a CUDA build (onnxruntime-gpu) with its CUDA/cuDNN libraries on the loader path",
                    path.display()
                ))
            })
        }
    }
}

#[cfg(not(feature = "cuda"))]
fn register_provider(
    b: ort::session::builder::SessionBuilder,
    ep: ExecutionProvider,
    _path: &Path,
) -> Result<ort::session::builder::SessionBuilder> {
    match ep {
        ExecutionProvider::Cpu => Ok(b),
        ExecutionProvider::Cuda(dev) => Err(Error::Unsupported(format!(
            "execution provider cuda:{dev} was requested, but this nexvitad was built without the `cuda` feature (rebuild with `--features cuda`); not falling back to CPU"
        ))),
    }
}

fn tensor_dims<'a>(s: &'a Session, name: &str, outputs: bool, path: &Path) -> Result<&'a [i64]> {
    let list = if outputs { s.outputs() } else { s.inputs() };
    let kind = if outputs { "output" } else { "input" };
    let found = list.iter().find(|o| o.name() == name).ok_or_else(|| {
        let names: Vec<&str> = list.iter().map(|o| o.name()).collect();
        Error::Mismatch(format!(
            "'{}' has no {kind} named '{name}' (model.json); its {kind}s are {names:?}",
            path.display()
        ))
    })?;
    match found.dtype() {
        ValueType::Tensor { ty: ort::value::TensorElementType::Float32, shape, .. } => Ok(shape),
        other => Err(Error::Mismatch(format!(
            "'{}' {kind} '{name}' is {other}, expected a float32 tensor",
            path.display()
        ))),
    }
}

fn check_input(s: &Session, path: &Path, name: &str, w: i64, h: i64) -> Result<()> {
    let dims = tensor_dims(s, name, false, path)?;
    let ok = dims.len() == 4 && dim_ok(dims[1], 3) && dim_ok(dims[2], h) && dim_ok(dims[3], w);
    if !ok {
        return Err(Error::Mismatch(format!(
            "'{}' input '{name}' has shape {dims:?}, but model.json says [N, 3, {h}, {w}]",
            path.display()
        )));
    }
    Ok(())
}

fn check_output(s: &Session, path: &Path, name: &str, chw: &[i64; 3]) -> Result<()> {
    let dims = tensor_dims(s, name, true, path)?;
    let ok = dims.len() == 4 && dims[1..].iter().zip(chw).all(|(&d, &e)| dim_ok(d, e));
    if !ok {
        return Err(Error::Mismatch(format!(
            "'{}' output '{name}' has shape {dims:?}, but model.json implies [N, {}, {}, {}]",
            path.display(),
            chw[0],
            chw[1],
            chw[2]
        )));
    }
    Ok(())
}

/// A graph dimension matches if it is the expected value or dynamic (-1).
fn dim_ok(actual: i64, expected: i64) -> bool {
    actual < 0 || actual == expected
}

fn run_session(s: &mut Session, bind_io: bool, input: &str, x: ArrayView4<'_, f32>, outputs: &[&str]) -> Result<Vec<Array4<f32>>> {
    let x = x.as_standard_layout();
    let t = TensorRef::from_array_view(&x).map_err(|e| Error::runtime(format!("input tensor: {e}")))?;
    let failed = |e: ort::Error| Error::runtime(format!("running the encoder failed: {e}"));
    if bind_io {
        // An owned tensor: ort 2.0.0-rc.15 clones a *borrowed* input on `bind_input` through
        // an internal identity session whose own binding re-enters the same lock, which
        // deadlocks (found by `io_binding_runs_equal_plain_runs`). The copy is one prepared
        // batch, nothing next to the device transfer it feeds.
        drop(t);
        let owned = ort::value::Tensor::from_array(x.into_owned()).map_err(|e| Error::runtime(format!("input tensor: {e}")))?;
        let mut b = s.create_binding().map_err(failed)?;
        b.bind_input(input, &owned).map_err(failed)?;
        let host = MemoryInfo::new(AllocationDevice::CPU, 0, AllocatorType::Device, MemoryType::Default).map_err(failed)?;
        for name in outputs {
            b.bind_output_to_device(*name, &host).map_err(failed)?;
        }
        let out = s.run_binding(&b).map_err(failed)?;
        return extract_outputs(&out, outputs);
    }
    let out = s.run(ort::inputs![input => t]).map_err(failed)?;
    extract_outputs(&out, outputs)
}

fn extract_outputs(out: &ort::session::SessionOutputs<'_>, outputs: &[&str]) -> Result<Vec<Array4<f32>>> {
    outputs
        .iter()
        .map(|name| {
            let v = out.get(name).ok_or_else(|| Error::Runtime(format!("encoder produced no output '{name}'")))?;
            let a = v
                .try_extract_array::<f32>()
                .map_err(|e| Error::Runtime(format!("output '{name}': {e}")))?;
            a.into_dimensionality::<Ix4>()
                .map(|a| a.to_owned())
                .map_err(|_| Error::Runtime(format!("output '{name}' is not 4-D")))
        })
        .collect()
}

fn expect_shape(a: &Array4<f32>, want: [usize; 4], name: &str) -> Result<()> {
    let d = a.dim();
    if [d.0, d.1, d.2, d.3] != want {
        return Err(Error::Runtime(format!("encoder output '{name}' has shape {:?}, expected {want:?}", [d.0, d.1, d.2, d.3])));
    }
    Ok(())
}
