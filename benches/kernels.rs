//! Criterion benchmarks of the post-encoder kernels (no ONNX Runtime needed):
//! Sinkhorn K-means (N = 25k, D = 512, K = 30), matching (784 and 3136 patches × 30
//! prototypes, and 784 × a full 25k bank), the fused bank-feature head at full-size
//! widths, upsampling + Gaussian σ = 4 at 1024², and image preparation per pixel format.
//!
//! `cargo bench --bench kernels` runs them all; `cargo bench --bench kernels -- matching`
//! one group. Where an optimisation replaced a path that still exists (two-step map
//! kernels, `Head::patch_features_reference`), both are measured side by side.
//!
//! Inputs are seeded random data, so runs compare like with like.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::{Array2, Array4};
use nexvitad::kernels::distance::{min_sq_distances, row_sq_norms};
use nexvitad::bank::sinkhorn::{sinkhorn_kmeans, KMeansOptions};
use nexvitad::map::ImageScoreMode;
use nexvitad::encoder::BackboneFeatures;
use nexvitad::fusion::Head;
use nexvitad::image::{ImageView, Normalization, PixelFormat, Preparer};
use nexvitad::fusion::scoring::{patch_features, FeatureScratch};
use nexvitad::kernels::upsample::{gaussian_blur, upsample_bilinear};
use nexvitad::map::{map_from_patches, MapWorkspace};
use nexvitad::Manifest;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// The full-size model's manifest (hiera_tiny_224 + vit_small_patch14_dinov2 at 224), as
/// `tools/export_onnx.py` writes it; only the shapes matter here.
const FULL224: &str = r#"{
  "format_version": 1, "name": "bench-full224",
  "input": {"width": 224, "height": 224, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
  "hiera": {"file": "hiera.onnx", "input": "image", "outputs": ["stage1", "stage2", "stage3", "stage4"],
            "channels": [96, 192, 384, 768], "strides": [4, 8, 16, 32]},
  "dinov2": {"file": "dinov2.onnx", "input": "image", "output": "patch_grid", "channels": 384,
             "patch_size": 14, "width": 224, "height": 224},
  "fusion": {"shared_dims": [128, 256, 256, 256], "adapter_bottleneck": 64, "bank_scales": [2, 3], "local_avg": 3},
  "defaults": {"k": 30, "sigma": 4.0, "theta": 0.7, "lambda1": 1.0, "lambda2": 0.5, "target_fpr": 0.01},
  "provenance": {"hiera": "shapes only", "dinov2": "shapes only", "pretrained": false, "exporter": "bench", "seed": 0}
}"#;

/// `clusters` Gaussian blobs in `d` dimensions (means N(0, 1), within-blob std 0.35), a
/// stand-in for patch features: many well-populated modes, none perfectly separated.
fn mixture(n: usize, d: usize, clusters: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let unit = Normal::new(0.0f32, 1.0).expect("unit normal");
    let means = Array2::from_shape_fn((clusters, d), |_| unit.sample(&mut rng));
    let mut x = Array2::zeros((n, d));
    for (i, mut row) in x.rows_mut().into_iter().enumerate() {
        let c = i % clusters;
        for (j, v) in row.iter_mut().enumerate() {
            *v = means[[c, j]] + 0.35 * unit.sample(&mut rng);
        }
    }
    x
}

fn random(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((rows, cols), |_| rng.random_range(-1.0..1.0f32))
}

fn sinkhorn(c: &mut Criterion) {
    let x = mixture(25_088, 512, 60, 1);
    let mut g = c.benchmark_group("sinkhorn_kmeans");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(20));
    g.bench_function("n25088_d512_k30", |b| {
        b.iter(|| {
            let r = sinkhorn_kmeans(x.view(), &KMeansOptions { k: 30, ..Default::default() }, &mut |_, _| true).expect("kmeans");
            black_box(r.iterations)
        })
    });
    g.finish();
}

fn matching(c: &mut Criterion) {
    let mut g = c.benchmark_group("matching");
    // 224 input: 28x28 = 784 patches; 448 input: 56x56 = 3136; full bank: 32 shots x 784.
    for (name, patches, bank_rows) in [("784x30x512", 784, 30), ("3136x30x512", 3136, 30), ("784x25088x512_full", 784, 25_088)] {
        let x = random(patches, 512, 2);
        let bank = random(bank_rows, 512, 3);
        let norms = row_sq_norms(bank.view());
        let mut out = vec![0.0f32; patches];
        g.throughput(Throughput::Elements(patches as u64));
        if bank_rows > 1000 {
            g.sample_size(20);
        }
        g.bench_function(name, |b| {
            b.iter(|| {
                min_sq_distances(x.view(), bank.view(), norms.view(), &mut out).expect("distances");
                black_box(out[0])
            })
        });
    }
    g.finish();
}

fn head(c: &mut Criterion) {
    let m = Manifest::parse(FULL224.as_bytes()).expect("manifest");
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut map = |c: usize, s: usize| Array4::from_shape_fn((1, c, s, s), |_| rng.random_range(-2.0..2.0f32));
    let feats = BackboneFeatures { hiera: [map(96, 56), map(192, 28), map(384, 14), map(768, 7)], dinov2: map(384, 16) };
    let head = Head::untrained(&m, 7);
    let mut scratch = FeatureScratch::default();
    let mut g = c.benchmark_group("head_full224");
    g.bench_function("scoring_backend", |b| {
        b.iter(|| {
            let grid = patch_features(&head, &feats, 0, &mut scratch).expect("features");
            black_box(grid.h);
            scratch.recycle(grid);
        })
    });
    g.bench_function("fusion_head_patch_features_reference", |b| b.iter(|| black_box(head.patch_features_reference(&feats, 0).expect("features").h)));
    g.finish();

    // The same head after the process sat idle for 70 ms (as it does while the two encoders
    // run, one image at a time): only the head's own time is counted. Shows what idle cores,
    // sleeping rayon workers and cold caches cost it, next to the hot figure above.
    let mut g = c.benchmark_group("head_full224_after_70ms_idle");
    g.sample_size(40).warm_up_time(Duration::from_millis(50)).measurement_time(Duration::from_millis(50));
    g.bench_function("scoring_backend", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                std::thread::sleep(Duration::from_millis(70));
                let t = std::time::Instant::now();
                let grid = patch_features(&head, &feats, 0, &mut scratch).expect("features");
                total += t.elapsed();
                black_box(grid.h);
                scratch.recycle(grid);
            }
            total
        })
    });
    g.finish();
}

fn maps(c: &mut Criterion) {
    let patch: Vec<f32> = (0..28 * 28).map(|i| ((i * 7919) % 1009) as f32 / 100.0).collect();
    let mut g = c.benchmark_group("upsample_blur_sigma4");
    for side in [256usize, 1024] {
        g.throughput(Throughput::Elements((side * side) as u64));
        let mut ws = MapWorkspace::new();
        g.bench_with_input(BenchmarkId::new("fused_map_from_patches", side), &side, |b, &s| {
            b.iter(|| black_box(map_from_patches(&patch, 28, 28, s as u32, s as u32, 4.0, ImageScoreMode::Max, None, &mut ws).expect("map").image_score))
        });
        let mut buf = vec![0.0f32; side * side];
        let mut scratch = Vec::new();
        g.bench_with_input(BenchmarkId::new("two_step_kernels", side), &side, |b, &s| {
            b.iter(|| {
                upsample_bilinear(&patch, 28, 28, &mut buf, s, s);
                gaussian_blur(&mut buf, s, s, 4.0, &mut scratch);
                black_box(buf[0])
            })
        });
    }
    g.finish();
}

fn prepare(c: &mut Criterion) {
    let (w, h) = (1024u32, 1024u32);
    let norm = Normalization { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
    let mut g = c.benchmark_group("prepare_1024_to_224");
    for f in PixelFormat::ALL {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let data: Vec<u8> = (0..w as usize * h as usize * f.channels()).map(|_| rng.random()).collect();
        let view = ImageView::packed(&data, w, h, f).expect("view");
        let mut prep = Preparer::new();
        g.bench_function(f.name(), |b| b.iter(|| black_box(prep.prepare_batch(&[view], 224, 224, &norm).expect("prepare")[[0, 0, 0, 0]])));
    }
    g.finish();
}

criterion_group!(benches, matching, head, maps, prepare, sinkhorn);
criterion_main!(benches);
