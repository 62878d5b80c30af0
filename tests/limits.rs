//! Configurable caps: image size, bank size, file sizes and memory per call. Exceeding one
//! is an `Error::LimitExceeded` (or a clear error for non-files), never an abort, a hang or
//! an allocation sized by the hostile input.
//!
//! This binary installs a counting global allocator to check "memory per call": the largest
//! single allocation made while one call runs.
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use common::*;
use ndarray::Array2;
use nexvitad::bank::{BankMeta, BankOptions, ScorerKind};
use nexvitad::{Error, ImageLimits, ImageView, MemoryBank, Model, ModelOptions, PixelFormat, Workspace};
use rand::{Rng, SeedableRng};

/// Records the largest single allocation while `TRACK` is on.
struct Tracking;

static TRACK: AtomicBool = AtomicBool::new(false);
static LARGEST: AtomicUsize = AtomicUsize::new(0);
/// Serialises the measured sections, so another test's allocations do not count.
static MEASURE: Mutex<()> = Mutex::new(());

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if TRACK.load(Ordering::Relaxed) {
            LARGEST.fetch_max(l.size(), Ordering::Relaxed);
        }
        System.alloc(l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        if TRACK.load(Ordering::Relaxed) {
            LARGEST.fetch_max(l.size(), Ordering::Relaxed);
        }
        System.alloc_zeroed(l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if TRACK.load(Ordering::Relaxed) {
            LARGEST.fetch_max(new, Ordering::Relaxed);
        }
        System.realloc(p, l, new)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
}

#[global_allocator]
static ALLOC: Tracking = Tracking;

/// Runs `f` and returns its result with the largest single allocation made meanwhile.
fn largest_alloc<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let _g = MEASURE.lock().unwrap_or_else(|e| e.into_inner());
    LARGEST.store(0, Ordering::SeqCst);
    TRACK.store(true, Ordering::SeqCst);
    let r = f();
    TRACK.store(false, Ordering::SeqCst);
    (r, LARGEST.load(Ordering::SeqCst))
}

const MIB: usize = 1 << 20;

fn limited_model(limits: ImageLimits) -> Model {
    Model::open(tiny_model_dir(), &ModelOptions { image_limits: limits, ..options() }).expect("open tiny model")
}

/// A Sinkhorn-sized or full-sized bank for the tiny model with random vectors (28x28 grid).
fn random_bank(model: &Model, rows: usize) -> MemoryBank {
    let dim = nexvitad::fusion::Head::patch_dim(model.manifest());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let vectors = Array2::from_shape_simple_fn((rows, dim), || rng.random::<f32>());
    let mut meta: BankMeta = serde_json::from_str(&format!(
        r#"{{"fingerprint":"{}","grid_h":28,"grid_w":28,"dim":{dim},"scorer":"full","k":0,"sigma":4.0,
        "image_score":{{"mode":"max"}},"augment":{{"hflip":false,"vflip":false,"rot90":false}},"shots":1,"seed":0,
        "iterations":0,"converged":false,"calibration":{{"method":"in-sample","target_fpr":0.01,"image_threshold":1.0,
        "pixel_threshold":1.0,"normal_image_scores":[1.0],"image_mean":1.0,"image_std":0.0,"pixel_quantiles":[0,0,0,0]}}}}"#,
        model.fingerprint()
    ))
    .expect("bank meta json");
    meta.scorer = ScorerKind::Full;
    MemoryBank::from_parts(vectors, meta).unwrap()
}

fn gray(w: u32, h: u32) -> Vec<u8> {
    (0..w as usize * h as usize).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn image_side_and_pixel_caps_are_limit_errors() {
    let lim = ImageLimits { max_side: 64, max_pixels: 64 * 48 };
    let px = gray(65, 65);
    let e = ImageView::with_limits(&px, 65, 10, 65, PixelFormat::Gray8, &lim).unwrap_err();
    assert!(matches!(e, Error::LimitExceeded(ref m) if m.contains("max_side")), "{e}");
    let e = ImageView::with_limits(&px, 64, 64, 64, PixelFormat::Gray8, &lim).unwrap_err();
    assert!(matches!(e, Error::LimitExceeded(ref m) if m.contains("max_pixels")), "{e}");
    assert!(ImageView::with_limits(&px, 64, 48, 64, PixelFormat::Gray8, &lim).is_ok());
    // 100000 x 100000 is refused by the default caps before anything is allocated or read.
    let e = ImageView::new(&[], 100_000, 100_000, 300_000, PixelFormat::Rgb8).unwrap_err();
    assert!(matches!(e, Error::LimitExceeded(_)), "{e}");
    // With the caps lifted, the empty buffer is still caught: no read past its end.
    let open = ImageLimits { max_side: u32::MAX, max_pixels: u64::MAX };
    let e = ImageView::with_limits(&[], 100_000, 100_000, 300_000, PixelFormat::Rgb8, &open).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(ref m) if m.contains("needs")), "{e}");
    let e = ImageView::with_limits(&[0; 16], u32::MAX, u32::MAX, usize::MAX, PixelFormat::Rgba8, &open).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(ref m) if m.contains("overflows")), "{e}");
}

#[test]
fn model_limits_apply_to_views_and_to_scoring() {
    let model = limited_model(ImageLimits { max_side: 64, max_pixels: 64 * 64 });
    let bank = random_bank(&model, 30);
    let px = gray(96, 96);
    let e = model.view(&px, 96, 96, 96, PixelFormat::Gray8).unwrap_err();
    assert!(matches!(e, Error::LimitExceeded(_)), "{e}");
    // A view made under the default caps is still held to the model's caps when scored,
    // and refused before its anomaly map is allocated.
    let big = gray(4000, 4000);
    let view = ImageView::new(&big, 4000, 4000, 4000, PixelFormat::Gray8).unwrap();
    let (r, largest) = largest_alloc(|| nexvitad::score::score(&model, &bank, &view, &mut Workspace::new()));
    assert!(matches!(r, Err(Error::LimitExceeded(_))), "{:?}", r.err());
    assert!(largest < MIB, "a refused call allocated {largest} bytes (a 4000x4000 map is 64 MB)");
    let ok = model.view(&px, 64, 64, 96, PixelFormat::Gray8).unwrap();
    let r = nexvitad::score::score(&model, &bank, &ok, &mut Workspace::new()).unwrap();
    assert_eq!((r.map.width, r.map.height, r.map.values.len()), (64, 64, 64 * 64));
}

#[test]
fn score_memory_follows_the_image_size() {
    let model = tiny_model();
    let bank = random_bank(model, 30);
    let px = gray(1024, 768);
    let view = model.view(&px, 1024, 768, 1024, PixelFormat::Gray8).unwrap();
    let mut ws = Workspace::new();
    let (r, largest) = largest_alloc(|| nexvitad::score::score(model, &bank, &view, &mut ws));
    r.unwrap();
    // The map (and the blur scratch, the same size) are the largest buffers: 4 bytes a pixel.
    let map = 1024 * 768 * 4;
    assert!(largest >= map && largest <= map + MIB, "largest allocation {largest} for a {map}-byte map");
}

/// Regression: matching computed one `[patches, bank rows]` product per block of 1024
/// patches, so the memory of one score grew with the bank: a full-scorer bank at the default
/// `max_vectors` (4M rows) asked for ~12 GB per call and aborted the process.
#[test]
fn regression_score_matching_memory_grows_with_bank() {
    let model = tiny_model();
    // 160k rows x 64 dims: the old product for one image was 784 x 160k x 4 B = 500 MB.
    let bank = random_bank(model, 160_000);
    let px = gray(96, 96);
    let view = model.view(&px, 96, 96, 96, PixelFormat::Gray8).unwrap();
    let mut ws = Workspace::new();
    let (r, largest) = largest_alloc(|| nexvitad::score::score(model, &bank, &view, &mut ws));
    assert!(r.unwrap().map.image_score.is_finite());
    assert!(largest < 32 * MIB, "one score allocated {largest} bytes at once with a 160k-row bank");
}

#[test]
fn bank_vector_cap_is_a_limit_error() {
    let model = tiny_model();
    let px = gray(96, 96);
    let views = vec![model.view(&px, 96, 96, 96, PixelFormat::Gray8).unwrap(); 2];
    let opts = BankOptions { k: Some(4), max_vectors: 1000, ..Default::default() };
    let e = MemoryBank::build(model, &views, &opts, &mut |_| true).unwrap_err();
    assert!(matches!(e, Error::LimitExceeded(ref m) if m.contains("max_vectors")), "{e}");
}

/// Regression: `k` is only checked against the vector count, and Sinkhorn K-means allocates
/// two N x K matrices, so `k` near N over a few dozen images asked for many GB at once and
/// aborted the process instead of returning an error.
#[test]
fn regression_bank_sinkhorn_huge_k_aborts() {
    let model = tiny_model();
    let px: Vec<Vec<u8>> = (0..30u32).map(|i| gray(96 + i, 96)).collect();
    let views: Vec<_> = px.iter().zip(0..).map(|(p, i)| model.view(p, 96 + i, 96, 96 + i as usize, PixelFormat::Gray8).unwrap()).collect();
    let n = 30 * 28 * 28; // 23520 vectors: N x N x 8 B = 4.4 GB
    let opts = BankOptions { k: Some(n), ..Default::default() };
    let (r, largest) = largest_alloc(|| MemoryBank::build(model, &views, &opts, &mut |_| true));
    let e = r.unwrap_err();
    assert!(matches!(e, Error::LimitExceeded(ref m) if m.contains("k = 23520")), "{e}");
    assert!(largest < 256 * MIB, "refused build allocated {largest} bytes at once");
}

/// A sparse file of `len` bytes: huge on paper, nothing on disk.
fn sparse(path: &Path, len: u64) {
    std::fs::File::create(path).unwrap().set_len(len).unwrap();
}

#[test]
fn bank_file_size_caps_are_limit_errors() {
    let model = tiny_model();
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("huge.bank");
    sparse(&p, nexvitad::bank::file::DEFAULT_MAX_BANK_BYTES + 1);
    let e = MemoryBank::load(&p, model).unwrap_err();
    assert!(matches!(e, Error::LimitExceeded(_)), "{e}");
    let small = t.path().join("small.bank");
    random_bank(model, 40).save(&small).unwrap();
    let e = MemoryBank::load_unchecked(&small, 1000).unwrap_err();
    assert!(matches!(e, Error::LimitExceeded(ref m) if m.contains("1000")), "{e}");
    assert!(MemoryBank::load_unchecked(&small, u64::MAX).is_ok());
}

#[test]
fn head_file_size_cap_is_a_limit_error() {
    let t = tempfile::tempdir().unwrap();
    copy_model(t.path());
    sparse(&t.path().join("head.safetensors"), (1 << 30) + 1);
    let e = Model::open(t.path(), &options()).err().expect("a 1 GiB head must be refused");
    assert!(matches!(e, Error::LimitExceeded(_)), "{e}");
}

/// Regression: `model.json` and the ONNX files were read with an unbounded `fs::read`, so a
/// model folder whose file is a device (`/dev/zero`), a FIFO or a huge file made
/// `Model::open` read forever, block, or abort on memory.
#[test]
fn regression_model_open_reads_model_files_unbounded() {
    for victim in ["model.json", "hiera.onnx", "dinov2.onnx"] {
        for (what, make) in [("/dev/zero", 0), ("fifo", 1), ("huge", 2)] {
            let t = tempfile::tempdir().unwrap();
            copy_model(t.path());
            let p = t.path().join(victim);
            std::fs::remove_file(&p).unwrap();
            match make {
                0 => std::os::unix::fs::symlink("/dev/zero", &p).unwrap(),
                1 => {
                    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
                    // SAFETY: a valid NUL-terminated path.
                    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
                }
                _ => sparse(&p, 4 << 30),
            }
            let e = Model::open(t.path(), &options()).err().unwrap_or_else(|| panic!("{victim} as {what} opened"));
            let ok = match make {
                2 => matches!(e, Error::LimitExceeded(_)),
                _ => matches!(e, Error::Format { .. }),
            };
            assert!(ok, "{victim} as {what}: {e}");
            assert!(e.to_string().contains(victim), "{victim} as {what}: the error does not name the file: {e}");
        }
    }
}

/// Regression (found by the `manifest` fuzz target): widths in `model.json` were only checked
/// for being non-zero and even, and `Model::open` allocates the untrained fusion head from
/// them, so a typo such as `"shared_dims": [16, 3222222222222, 32, 32]` aborted the process.
#[test]
fn regression_manifest_huge_shared_dims_abort() {
    let text = std::fs::read_to_string(tiny_model_dir().join("model.json")).unwrap();
    let mut m: serde_json::Value = serde_json::from_str(&text).unwrap();
    m["fusion"]["shared_dims"][1] = serde_json::json!(3_222_222_222_222u64);
    let bad = serde_json::to_vec(&m).unwrap();
    let e = nexvitad::Manifest::parse(&bad).unwrap_err();
    assert!(e.contains("fusion head") && e.contains("weights"), "{e}");
    let t = tempfile::tempdir().unwrap();
    copy_model(t.path());
    std::fs::write(t.path().join("model.json"), &bad).unwrap();
    let (r, largest) = largest_alloc(|| Model::open(t.path(), &options()));
    let e = r.err().expect("the model must not open");
    assert!(matches!(e, Error::Format { .. }) && e.to_string().contains("model.json"), "{e}");
    assert!(largest < 64 * MIB, "refused open allocated {largest} bytes at once");
    // The crash input the fuzzer found, kept in the seed corpus, is refused too.
    let found = root().join("fuzz/corpus/manifest/regression-huge-shared-dims-crash-2f7c9caa");
    assert!(nexvitad::Manifest::parse(&std::fs::read(found).unwrap()).is_err());
    // The tiny model itself still parses; a scale listed twice is refused.
    assert!(nexvitad::Manifest::parse(text.as_bytes()).is_ok());
    m["fusion"]["shared_dims"][1] = serde_json::json!(32);
    m["fusion"]["bank_scales"] = serde_json::json!([2, 3, 2]);
    let e = nexvitad::Manifest::parse(&serde_json::to_vec(&m).unwrap()).unwrap_err();
    assert!(e.contains("twice"), "{e}");
}

#[test]
fn decode_size_caps_refuse_before_allocating() {
    use image::ImageEncoder;
    let t = tempfile::tempdir().unwrap();
    // A valid PNG header claiming 16000 x 16000 RGBA16 (2 GB decoded), under the side cap
    // but over the decoder's allocation cap; a 20000-pixel side is over the side cap.
    for (w, h) in [(16_000u32, 16_000u32), (20_000, 10)] {
        let mut bytes = Vec::new();
        image::codecs::png::PngEncoder::new(&mut bytes)
            .write_image(&[0u8; 8], 1, 1, image::ExtendedColorType::Rgba16)
            .unwrap();
        bytes[16..20].copy_from_slice(&w.to_be_bytes());
        bytes[20..24].copy_from_slice(&h.to_be_bytes());
        let crc = crc32fast::hash(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        let p = t.path().join(format!("claim{w}.png"));
        std::fs::write(&p, &bytes).unwrap();
        let (r, largest) = largest_alloc(|| nexvitad::data::load_rgb(&p));
        // A file is reported as a bad file whose message names the exceeded limit.
        let e = r.unwrap_err();
        assert!(matches!(e, Error::Format { .. }) && e.to_string().contains("limit"), "{w}x{h}: {e}");
        assert!(largest < MIB, "{w}x{h}: refused decode allocated {largest} bytes");
    }
}
