//! `nexvitad bench`: where the time goes when scoring, measured on the real path.
//!
//! Default mode times `score::score_batch` (the library's one scoring path) image after
//! image and reports per-stage median and p95 milliseconds per image, images/s and peak
//! RSS. `--reference` runs `bench/reference.py` (onnxruntime + numpy/scipy) on the same
//! images, bank, head weights and thread count right after, and prints both side by side
//! with their ratio and the largest map difference. `--kmeans` times Sinkhorn K-means on
//! bank features instead (and, with `--reference`, the numpy/POT implementation of the same
//! iteration on the same data).
//!
//! Batch stages (prepare, encoders, head) are split evenly over the images of a batch, as
//! `StageTimings` reports them. Peak RSS is the kernel's high-water mark (VmHWM), reset via
//! `/proc/self/clear_refs` after set-up so it covers scoring only; the process peak
//! (getrusage) is reported beside it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use clap::Args;
use nexvitad::bank::{BankOptions, MemoryBank, ScorerKind};
use nexvitad::data::{self, SynthOptions};
use nexvitad::{Error, Result};
use serde_json::{json, Value};

use super::ModelArgs;

#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Bank file. Without it a bank is fitted first on `--shots` good images (synthetic
    /// ones, or the first files of `--images`), with `--scorer` and `--k`.
    #[arg(long)]
    bank: Option<PathBuf>,
    /// Folder of images to score (decoded from disk every time). Default: synthetic images.
    #[arg(long)]
    images: Option<PathBuf>,
    /// Images per `score_batch` call (one encoder run per batch).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Measured batches.
    #[arg(long, default_value_t = 20)]
    iters: usize,
    /// Unmeasured batches first (ORT allocations, caches).
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Size of the synthetic images: a side in pixels (`1024`) or width x height
    /// (`2448x2048`, a camera's frame; the square synthetic images are resized to it).
    #[arg(long, default_value = "256", value_parser = parse_size, value_name = "N|WxH")]
    size: (u32, u32),
    /// Good images for a bank fitted here (and, with --kmeans, for the features).
    #[arg(long, default_value_t = 4)]
    shots: usize,
    /// Scorer of a bank fitted here: sinkhorn, full or coreset.
    #[arg(long, default_value = "sinkhorn")]
    scorer: String,
    /// Prototypes of a bank fitted here [default: the model's].
    #[arg(long, value_name = "K")]
    k: Option<usize>,
    /// Tiles of N image pixels for a bank fitted here (0 = whole-image resize); see `fit --tile`.
    #[arg(long, default_value_t = 0, value_name = "N")]
    tile: u32,
    /// Tile overlap for a bank fitted here, in [0, 1).
    #[arg(long, default_value_t = 0.0, value_name = "F")]
    tile_overlap: f32,
    /// shared or per_position, for a bank fitted here.
    #[arg(long, default_value = "shared", value_name = "LAYOUT")]
    tile_bank: String,
    /// Save the bank fitted here (so later runs can load it with --bank).
    #[arg(long)]
    save_bank: Option<PathBuf>,
    /// Also run bench/reference.py on the same images, bank and model, and compare.
    #[arg(long)]
    reference: bool,
    /// Python interpreter for --reference (else $NEXVITAD_PYTHON, else python3).
    #[arg(long, env = "NEXVITAD_PYTHON")]
    python: Option<PathBuf>,
    /// The reference script (default: bench/reference.py of this source tree).
    #[arg(long)]
    reference_script: Option<PathBuf>,
    /// Also time a peer library on the same images and threads: `anomalib` (AnomalyDINO at
    /// 224 and 448, PatchCore at 256; random init; bench/peer_anomalib.py, which needs
    /// `pip install -r bench/requirements-peer.txt` in `--python`'s environment).
    #[arg(long, value_parser = ["anomalib"], value_name = "LIBRARY")]
    peer: Option<String>,
    /// The peer script (default: bench/peer_anomalib.py of this source tree).
    #[arg(long)]
    peer_script: Option<PathBuf>,
    /// The peer's models, comma-separated (default: all of the script's).
    #[arg(long, value_name = "LIST")]
    peer_models: Option<String>,
    /// Time Sinkhorn K-means on the bank features of `--shots` good images instead.
    #[arg(long)]
    kmeans: bool,
    /// With --kmeans: entropic regulariser relative to the mean cost (default: BankOptions').
    #[arg(long)]
    kmeans_epsilon: Option<f32>,
    /// With --kmeans: relative centroid-shift tolerance (default: BankOptions').
    #[arg(long)]
    kmeans_tol: Option<f32>,
    /// With --kmeans: iteration cap (default: BankOptions').
    #[arg(long)]
    kmeans_max_iters: Option<usize>,
    /// With --kmeans: also write the features clustered to this `.npy` file.
    #[arg(long)]
    features_out: Option<PathBuf>,
    /// Let ONNX Runtime's intra-op threads spin between operators (default: off).
    #[arg(long)]
    spin: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// Timing names in report order; each is a per-image duration in seconds.
const TIMINGS: [&str; 8] = ["decode", "prepare", "hiera", "dinov2", "head", "matching", "upsample_smooth", "total"];

/// A scratch folder removed on drop (the binary has no `tempfile`).
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Self> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let p = std::env::temp_dir().join(format!("nexvitad-bench-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).map_err(|e| Error::io("cannot create", &p, e))?;
        Ok(Self(p))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn run(a: BenchArgs) -> Result<()> {
    if a.batch == 0 || a.iters == 0 {
        return Err(Error::invalid("--batch and --iters must be at least 1"));
    }
    // Our own parallel kernels get the same CPU budget as ONNX Runtime (0: rayon's default).
    super::init_thread_pool(a.model.threads);
    let scratch = Scratch::new()?;
    let model = open_model(&a)?;
    let (good, test) = image_sets(&a, &scratch.0)?;
    if a.kmeans {
        return kmeans(&a, &model, &good, &scratch.0);
    }
    let (bank, bank_path) = match &a.bank {
        Some(p) => (MemoryBank::load(p, &model)?, p.clone()),
        None => {
            let bank = fit_bank(&a, &model, &good)?;
            let p = a.save_bank.clone().unwrap_or_else(|| scratch.0.join("bank.safetensors"));
            bank.save(&p)?;
            (bank, p)
        }
    };
    let rss_setup_kb = vm_kb("VmRSS");
    let mut rust = measure(&a, &model, &bank, &test)?;
    // Per megapixel of the scored images (the first image's size; synthetic sets are uniform).
    if let Some(mp) = first_megapixels(&test) {
        let total = rust.json["stages"]["total"]["median_ms"].as_f64().unwrap_or(0.0);
        rust.json["ms_per_megapixel"] = json!(total / mp);
        rust.json["tiles_per_image"] = json!(bank.meta().tiles.as_ref().and_then(|t| {
            let img = data::load_rgb(&test[0]).ok()?;
            t.grid(img.width(), img.height()).ok().map(|g| g.len())
        }));
    }
    let mut report = json!({
        "model": a.model.model.display().to_string(),
        "model_name": model.manifest().name,
        "precision": model.manifest().describe_precision(),
        "onnxruntime_version": nexvitad::onnxruntime_version(),
        "execution_provider": a.model.ep,
        "threads": a.model.threads,
        "rayon_threads": rayon::current_num_threads(),
        "ort_spinning": a.spin,
        "batch": a.batch,
        "tile_batch": model.options().effective_tile_batch(),
        "parallel_encoders": model.options().session.parallel_encoders,
        "bank": { "path": bank_path.display().to_string(), "rows": bank.vectors().nrows(), "dim": bank.meta().dim,
                  "scorer": bank.meta().scorer.name(), "grid": [bank.meta().grid_h, bank.meta().grid_w],
                  "tiles": bank.meta().tiles.as_ref().map(|t| json!({ "tile": [t.tile_w, t.tile_h], "overlap": t.tiling.overlap,
                                                                        "layout": t.tiling.layout.name() })) },
        "images": { "source": a.images.as_ref().map_or("synthetic".to_string(), |p| p.display().to_string()),
                    "distinct": test.len(), "first_size": first_size(&test) },
        "rss_after_setup_mb": rss_setup_kb.map(|k| k as f64 / 1024.0),
        "nexvitad": rust.json,
    });
    if a.reference {
        let head = scratch.0.join("head.safetensors");
        let bytes = model.head().to_bytes(Default::default())?;
        std::fs::write(&head, bytes).map_err(|e| Error::io("cannot write", &head, e))?;
        let maps = scratch.0.join("maps.safetensors");
        let r = run_reference(&a, &head, &bank_path, &test, &maps)?;
        let diff = map_diff(&maps, &rust.first_maps)?;
        let ratio = ratios(&rust.json, &r);
        report["reference"] = r;
        report["reference_over_nexvitad"] = ratio;
        report["max_abs_map_diff"] = json!(diff.0);
        report["max_abs_image_score_diff"] = json!(diff.1);
    }
    if a.peer.is_some() {
        let peer = run_peer(&a, &test)?;
        report["peer_over_nexvitad"] = peer_ratios(&report["nexvitad"], &peer);
        report["peer"] = peer;
    }
    if a.json {
        println!("{report}");
    } else {
        print_table(&report);
    }
    Ok(())
}

/// Opens the model as `ModelArgs::open` does, plus the session settings only bench varies.
fn open_model(a: &BenchArgs) -> Result<nexvitad::Model> {
    let mut opts = a.model.options()?;
    opts.session.intra_op_spinning = a.spin;
    nexvitad::Model::open(&a.model.model, &opts)
}

/// Good images (for fitting) and images to score: from `--images` or synthesised.
fn image_sets(a: &BenchArgs, scratch: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    if let Some(dir) = &a.images {
        let all = data::collect_images(std::slice::from_ref(dir))?;
        let good = all.iter().take(a.shots.max(1)).cloned().collect();
        return Ok((good, all));
    }
    let (w, h) = a.size;
    let opts = SynthOptions {
        seed: 0,
        size: w.min(h),
        train_good: a.shots.max(1),
        test_good: 4,
        defects_per_type: 1,
        domains: vec!["grain".to_string()],
    };
    let root = scratch.join("data");
    data::generate(&root, &opts)?;
    let cat = data::open_category(&root, "grain")?;
    let (good, test): (Vec<PathBuf>, Vec<PathBuf>) = (cat.train_good.clone(), cat.test.iter().map(|s| s.path.clone()).collect());
    if w != h {
        for p in good.iter().chain(&test) {
            let img = image::open(p).map_err(|e| Error::invalid(format!("cannot read '{}': {e}", p.display())))?;
            img.resize_exact(w, h, image::imageops::FilterType::Triangle)
                .save(p)
                .map_err(|e| Error::invalid(format!("cannot write '{}': {e}", p.display())))?;
        }
    }
    Ok((good, test))
}

/// `N` or `WxH`, each side at least 1.
fn parse_size(s: &str) -> std::result::Result<(u32, u32), String> {
    let side = |t: &str| t.trim().parse::<u32>().ok().filter(|&v| v > 0).ok_or_else(|| format!("'{s}' is not a size: give N or WxH (e.g. 1024 or 2448x2048)"));
    match s.split_once(['x', 'X']) {
        Some((w, h)) => Ok((side(w)?, side(h)?)),
        None => side(s).map(|n| (n, n)),
    }
}

/// Megapixels of the first image.
fn first_megapixels(paths: &[PathBuf]) -> Option<f64> {
    let img = data::load_rgb(paths.first()?).ok()?;
    Some(img.width() as f64 * img.height() as f64 / 1e6)
}

fn first_size(paths: &[PathBuf]) -> Value {
    match paths.first().map(|p| data::load_rgb(p)) {
        Some(Ok(img)) => json!([img.width(), img.height()]),
        _ => Value::Null,
    }
}

fn fit_bank(a: &BenchArgs, model: &nexvitad::Model, good: &[PathBuf]) -> Result<MemoryBank> {
    let imgs: Vec<_> = good.iter().map(|p| data::load_rgb(p)).collect::<Result<_>>()?;
    let views: Vec<_> = imgs.iter().map(|i| nexvitad::eval::rgb_view(model, i)).collect::<Result<_>>()?;
    let tiling = match a.tile {
        0 => None,
        tile => Some(nexvitad::Tiling { tile, overlap: a.tile_overlap, layout: nexvitad::TileLayout::parse(&a.tile_bank)? }),
    };
    let opts = BankOptions { scorer: ScorerKind::parse(&a.scorer)?, k: a.k, tiling, ..BankOptions::default() };
    MemoryBank::build(model, &views, &opts, &mut |_| true)
}

/// What one measured run produced.
struct Measured {
    json: Value,
    /// The map and image score of each distinct image, from its first measured pass.
    first_maps: Vec<(Vec<f32>, f32)>,
}

fn measure(a: &BenchArgs, model: &nexvitad::Model, bank: &MemoryBank, paths: &[PathBuf]) -> Result<Measured> {
    let mut ws = nexvitad::Workspace::new();
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); TIMINGS.len()];
    let mut first_maps: Vec<Option<(Vec<f32>, f32)>> = vec![None; paths.len()];
    let (mut wall, mut measured) = (0.0f64, 0usize);
    let mut pos = 0usize;
    let mut reset = false;
    for b in 0..a.warmup + a.iters {
        if b == a.warmup {
            reset = reset_peak_rss();
        }
        let idx: Vec<usize> = (0..a.batch).map(|j| (pos + j) % paths.len()).collect();
        pos += a.batch;
        let t0 = Instant::now();
        let imgs: Vec<_> = idx.iter().map(|&i| data::load_rgb(&paths[i])).collect::<Result<_>>()?;
        let t1 = Instant::now();
        let views: Vec<_> = imgs.iter().map(|i| nexvitad::eval::rgb_view(model, i)).collect::<Result<_>>()?;
        let res = nexvitad::score::score_batch(model, bank, &views, &mut ws)?;
        let t2 = Instant::now();
        if b < a.warmup {
            continue;
        }
        let n = idx.len() as f64;
        for (&i, r) in idx.iter().zip(&res) {
            let t = &r.timings;
            let v = [
                (t1 - t0).as_secs_f64() / n,
                t.prepare_s,
                t.hiera_s,
                t.dinov2_s,
                t.head_s,
                t.matching_s,
                t.upsample_smooth_s,
                (t2 - t0).as_secs_f64() / n,
            ];
            for (s, x) in samples.iter_mut().zip(v) {
                s.push(x);
            }
            // Kept only for the comparison with the reference: at 4096² eight retained maps
            // would be half a gigabyte of the peak RSS this command reports.
            if a.reference && first_maps[i].is_none() {
                first_maps[i] = Some((r.map.values.clone(), r.map.image_score));
            }
        }
        wall += (t2 - t0).as_secs_f64();
        measured += idx.len();
    }
    let stage = |name: &str| -> &[f64] { TIMINGS.iter().position(|s| *s == name).map_or(&[], |i| &samples[i]) };
    let stages: serde_json::Map<String, Value> = TIMINGS.iter().zip(&samples).map(|(name, s)| (name.to_string(), stats_ms(s))).collect();
    let stat = |name: &str, key: &str| stages[name][key].as_f64().unwrap_or(0.0);
    let share = |key: &str| {
        let enc = stat("hiera", key) + stat("dinov2", key);
        let post = stat("head", key) + stat("matching", key) + stat("upsample_smooth", key);
        (post, if enc > 0.0 { 100.0 * post / enc } else { 0.0 })
    };
    let (post, pct) = share("median_ms");
    let (post_min, pct_min) = share("min_ms");
    let json = json!({
        "implementation": "nexvitad (Rust)",
        "images": measured,
        "stages": stages,
        "post_encoder_ms": post,
        "post_encoder_over_encoders_pct": pct,
        // Per image, in measuring order: so runs alternated between models (scripts/int8-eval.sh)
        // can pool their samples into one median.
        "samples_ms": {
            "encoders": stage("hiera").iter().zip(stage("dinov2")).map(|(h, d)| (h + d) * 1e3).collect::<Vec<f64>>(),
            "total": stage("total").iter().map(|t| t * 1e3).collect::<Vec<f64>>(),
        },
        "post_encoder_min_ms": post_min,
        "post_encoder_over_encoders_pct_of_mins": pct_min,
        "images_per_s": if wall > 0.0 { measured as f64 / wall } else { 0.0 },
        "peak_rss_mb": vm_kb("VmHWM").map(|k| k as f64 / 1024.0),
        "peak_rss_scoring_only": reset,
        "process_peak_rss_mb": ru_maxrss_kb() as f64 / 1024.0,
    });
    Ok(Measured { json, first_maps: first_maps.into_iter().flatten().collect() })
}

/// Median, p95 (nearest rank, the higher neighbour) and minimum in milliseconds. On a
/// shared machine other processes only ever add time, so the minimum is the best estimate
/// of the uncontended cost; the median is what a user sees under the same load.
fn stats_ms(s: &[f64]) -> Value {
    if s.is_empty() {
        return json!({ "median_ms": null, "p95_ms": null, "min_ms": null });
    }
    let mut v: Vec<f64> = s.iter().map(|x| x * 1e3).collect();
    v.sort_unstable_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) };
    let p95 = v[((0.95 * (n - 1) as f64).ceil() as usize).min(n - 1)];
    json!({ "median_ms": median, "p95_ms": p95, "min_ms": v[0] })
}

fn python(a: &BenchArgs) -> PathBuf {
    a.python.clone().unwrap_or_else(|| PathBuf::from("python3"))
}

/// A file of this source tree (the CLI crate lives in `cli/`, the scripts at the root).
fn source_file(rel: &str) -> PathBuf {
    let cli = Path::new(env!("CARGO_MANIFEST_DIR"));
    cli.parent().unwrap_or(cli).join(rel)
}

fn reference_script(a: &BenchArgs) -> PathBuf {
    a.reference_script.clone().unwrap_or_else(|| source_file("bench/reference.py"))
}

/// Runs a reference.py sub-command and parses the JSON object it prints last.
fn run_python(a: &BenchArgs, args: &[String]) -> Result<Value> {
    run_script(a, &reference_script(a), args)
}

/// Runs a Python bench script with `--python` and parses the JSON object it prints last.
fn run_script(a: &BenchArgs, script: &Path, args: &[String]) -> Result<Value> {
    let py = python(a);
    let mut cmd = Command::new(&py);
    cmd.arg(script).args(args);
    if a.model.threads > 0 {
        // numpy/scipy BLAS gets the same thread budget as ONNX Runtime and our rayon pool.
        for var in ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"] {
            cmd.env(var, a.model.threads.to_string());
        }
    }
    let out = cmd.output().map_err(|e| Error::io("cannot run the Python reference with", &py, e))?;
    if !out.status.success() {
        return Err(Error::runtime(format!(
            "{} {} failed ({}): {}",
            py.display(),
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().rev().find(|l| l.trim_start().starts_with('{')).unwrap_or("");
    serde_json::from_str(last).map_err(|e| Error::runtime(format!("{} printed no JSON ({e}): {text}", script.display())))
}

/// Runs bench/peer_anomalib.py on the same images and threads: anomalib's AnomalyDINO and
/// PatchCore, random init, batch 1.
fn run_peer(a: &BenchArgs, paths: &[PathBuf]) -> Result<Value> {
    let script = a.peer_script.clone().unwrap_or_else(|| source_file("bench/peer_anomalib.py"));
    let mut args: Vec<String> = vec![
        "--threads".into(),
        a.model.threads.max(1).to_string(),
        "--warmup".into(),
        a.warmup.to_string(),
        "--iters".into(),
        a.iters.to_string(),
    ];
    if let Some(m) = &a.peer_models {
        args.extend(["--models".to_string(), m.clone()]);
    }
    args.extend(paths.iter().map(|p| p.display().to_string()));
    run_script(a, &script, &args).map_err(|e| e.context("--peer anomalib"))
}

/// The peer's models next to ours: ms per image, images/s and how many times faster we are.
fn peer_ratios(ours: &Value, peer: &Value) -> Value {
    let our_ms = ours["stages"]["total"]["median_ms"].as_f64().unwrap_or(f64::NAN);
    let mut out = serde_json::Map::new();
    if let Some(models) = peer["models"].as_object() {
        for (name, m) in models {
            let ms = m["ms_per_image"]["median"].as_f64().unwrap_or(f64::NAN);
            out.insert(name.clone(), json!({ "ms_per_image": ms, "images_per_s": m["images_per_s"], "nexvitad_speedup": ms / our_ms }));
        }
    }
    Value::Object(out)
}

fn run_reference(a: &BenchArgs, head: &Path, bank: &Path, paths: &[PathBuf], maps: &Path) -> Result<Value> {
    let mut args: Vec<String> = vec![
        "pipeline".into(),
        "--model".into(),
        a.model.model.display().to_string(),
        "--head".into(),
        head.display().to_string(),
        "--bank".into(),
        bank.display().to_string(),
        "--threads".into(),
        a.model.threads.to_string(),
        "--batch".into(),
        a.batch.to_string(),
        "--warmup".into(),
        a.warmup.to_string(),
        "--iters".into(),
        a.iters.to_string(),
        "--maps-out".into(),
        maps.display().to_string(),
        // Same ONNX Runtime settings on both sides, so encoder times compare like with like.
        "--ort-spinning".into(),
        u8::from(a.spin).to_string(),
    ];
    args.extend(paths.iter().map(|p| p.display().to_string()));
    run_python(a, &args)
}

/// Largest |difference| between the reference's maps (and image scores) and ours.
fn map_diff(maps: &Path, ours: &[(Vec<f32>, f32)]) -> Result<(f32, f32)> {
    let bytes = std::fs::read(maps).map_err(|e| Error::io("cannot read", maps, e))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| Error::format(maps, e.to_string()))?;
    let f32s = |name: &str| -> Result<Vec<f32>> {
        let t = st.tensor(name).map_err(|e| Error::format(maps, format!("{name}: {e}")))?;
        Ok(t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    };
    let scores = f32s("image_scores")?;
    let (mut dm, mut ds) = (0.0f32, 0.0f32);
    for (i, (map, score)) in ours.iter().enumerate() {
        let theirs = f32s(&format!("map_{i}"))?;
        if theirs.len() != map.len() {
            return Err(Error::Mismatch(format!("reference map {i} has {} values, ours {}", theirs.len(), map.len())));
        }
        dm = map.iter().zip(&theirs).map(|(x, y)| (x - y).abs()).fold(dm, f32::max);
        ds = ds.max((score - scores.get(i).copied().unwrap_or(f32::NAN)).abs());
    }
    Ok((dm, ds))
}

/// Reference median / our median, per stage and for the post-encoder sum.
fn ratios(ours: &Value, theirs: &Value) -> Value {
    let med = |v: &Value, s: &str| v["stages"][s]["median_ms"].as_f64();
    let mut out = serde_json::Map::new();
    for s in TIMINGS {
        if let (Some(o), Some(t)) = (med(ours, s), med(theirs, s)) {
            out.insert(s.to_string(), json!(if o > 0.0 { t / o } else { f64::INFINITY }));
        }
    }
    let post = |v: &Value| ["head", "matching", "upsample_smooth"].iter().map(|s| med(v, s).unwrap_or(0.0)).sum::<f64>();
    out.insert("post_encoder".into(), json!(post(theirs) / post(ours).max(1e-12)));
    // The same from the per-stage minimums (the uncontended estimate on a shared machine).
    let min = |v: &Value, s: &str| v["stages"][s]["min_ms"].as_f64().unwrap_or(0.0);
    let post_min = |v: &Value| ["head", "matching", "upsample_smooth"].iter().map(|s| min(v, s)).sum::<f64>();
    out.insert("post_encoder_of_mins".into(), json!(post_min(theirs) / post_min(ours).max(1e-12)));
    out.insert("total_of_mins".into(), json!(min(theirs, "total") / min(ours, "total").max(1e-12)));
    Value::Object(out)
}

fn print_table(r: &Value) {
    let ours = &r["nexvitad"];
    let theirs = r.get("reference");
    println!(
        "model {} ({}, {}), ONNX Runtime {} on {}, threads {}{} (rayon {}), batch {}, bank {} x {} ({}), {} images from {} (first {})",
        r["model"].as_str().unwrap_or(""),
        r["model_name"].as_str().unwrap_or(""),
        r["precision"].as_str().unwrap_or(""),
        r["onnxruntime_version"].as_str().unwrap_or("?"),
        r["execution_provider"].as_str().unwrap_or(""),
        r["threads"],
        if r["parallel_encoders"] == true { " per encoder, encoders side by side" } else { "" },
        r["rayon_threads"],
        r["batch"],
        r["bank"]["rows"],
        r["bank"]["dim"],
        r["bank"]["scorer"].as_str().unwrap_or(""),
        ours["images"],
        r["images"]["source"].as_str().unwrap_or(""),
        r["images"]["first_size"],
    );
    let f = |v: &Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:.3}"));
    if let Some(t) = theirs {
        println!("{:<16} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8}", "stage (ms/img)", "median", "p95", "min", "ref median", "ref p95", "ref min", "ref/ours");
        for s in TIMINGS {
            println!(
                "{:<16} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8}",
                s,
                f(&ours["stages"][s]["median_ms"]),
                f(&ours["stages"][s]["p95_ms"]),
                f(&ours["stages"][s]["min_ms"]),
                f(&t["stages"][s]["median_ms"]),
                f(&t["stages"][s]["p95_ms"]),
                f(&t["stages"][s]["min_ms"]),
                r["reference_over_nexvitad"][s].as_f64().map_or("-".into(), |x| format!("{x:.2}x")),
            );
        }
    } else {
        println!("{:<16} {:>10} {:>10} {:>10}", "stage (ms/img)", "median", "p95", "min");
        for s in TIMINGS {
            println!("{:<16} {:>10} {:>10} {:>10}", s, f(&ours["stages"][s]["median_ms"]), f(&ours["stages"][s]["p95_ms"]), f(&ours["stages"][s]["min_ms"]));
        }
    }
    println!(
        "post-encoder (head + matching + upsample/smooth): {} ms/img = {}% of encoder time (from minimums: {} ms = {}%)",
        f(&ours["post_encoder_ms"]),
        f(&ours["post_encoder_over_encoders_pct"]),
        f(&ours["post_encoder_min_ms"]),
        f(&ours["post_encoder_over_encoders_pct_of_mins"])
    );
    let tiles = match &r["bank"]["tiles"] {
        Value::Null => "whole-image resize".to_string(),
        t => format!("{} tiles of {} per image, overlap {}, {} bank", ours["tiles_per_image"], t["tile"], t["overlap"], t["layout"].as_str().unwrap_or("")),
    };
    println!("{tiles}: {} ms per megapixel", f(&ours["ms_per_megapixel"]));
    println!(
        "throughput {} images/s; peak RSS while scoring {} MB (process peak {} MB, after set-up {} MB)",
        f(&ours["images_per_s"]),
        f(&ours["peak_rss_mb"]),
        f(&ours["process_peak_rss_mb"]),
        f(&r["rss_after_setup_mb"])
    );
    if let Some(t) = theirs {
        println!(
            "reference: {} images/s, peak RSS {} MB; post-encoder ref/ours {}x; max |map diff| {}, max |image score diff| {}",
            f(&t["images_per_s"]),
            f(&t["peak_rss_mb"]),
            f(&r["reference_over_nexvitad"]["post_encoder"]),
            r["max_abs_map_diff"],
            r["max_abs_image_score_diff"]
        );
    }
    if let Some(p) = r["peer_over_nexvitad"].as_object() {
        let v = &r["peer"]["versions"];
        println!(
            "peer: anomalib {} (torch {}), random init, batch 1, {} threads, same images; decode + preprocess + forward",
            v["anomalib"].as_str().unwrap_or("?"),
            v["torch"].as_str().unwrap_or("?"),
            r["peer"]["threads"]
        );
        println!("{:<24} {:>10} {:>10} {:>18}", "model", "ms/img", "images/s", "nexvitad is faster");
        println!("{:<24} {:>10} {:>10} {:>18}", "nexvitad (this run)", f(&ours["stages"]["total"]["median_ms"]), f(&ours["images_per_s"]), "");
        for (name, m) in p {
            println!("{:<24} {:>10} {:>10} {:>17}x", format!("anomalib {name}"), f(&m["ms_per_image"]), f(&m["images_per_s"]), f(&m["nexvitad_speedup"]));
        }
    }
}

/// `--kmeans`: Sinkhorn K-means on the bank features of the good images.
fn kmeans(a: &BenchArgs, model: &nexvitad::Model, good: &[PathBuf], scratch: &Path) -> Result<()> {
    let imgs: Vec<_> = good.iter().map(|p| data::load_rgb(p)).collect::<Result<_>>()?;
    let views: Vec<_> = imgs.iter().map(|i| nexvitad::eval::rgb_view(model, i)).collect::<Result<_>>()?;
    let mut prep = nexvitad::image::Preparer::new();
    let mut rows = Vec::new();
    for chunk in views.chunks(a.batch.max(1)) {
        let (grids, _) = model.patch_features(&mut prep, chunk)?;
        rows.extend(grids.into_iter().map(|g| g.data));
    }
    let parts: Vec<_> = rows.iter().map(|r| r.view()).collect();
    let x = ndarray::concatenate(ndarray::Axis(0), &parts).map_err(|e| Error::Internal(e.to_string()))?;
    if let Some(p) = &a.features_out {
        write_npy(p, &x)?;
    }
    let k = a.k.unwrap_or(model.manifest().defaults.k);
    let d = BankOptions::default();
    let opts = nexvitad::bank::sinkhorn::KMeansOptions {
        k,
        epsilon: a.kmeans_epsilon.unwrap_or(d.epsilon),
        max_iters: a.kmeans_max_iters.unwrap_or(d.max_iters),
        tol: a.kmeans_tol.unwrap_or(d.tol),
        seed: 0,
        ..Default::default()
    };
    let t = Instant::now();
    let mut marks = Vec::new();
    let r = nexvitad::bank::sinkhorn::sinkhorn_kmeans(x.view(), &opts, &mut |_, _| {
        marks.push(t.elapsed().as_secs_f64());
        true
    })?;
    let secs = t.elapsed().as_secs_f64();
    let cn = nexvitad::kernels::distance::row_sq_norms(r.centroids.view());
    let mut dmin = vec![0.0f32; x.nrows()];
    nexvitad::kernels::distance::min_sq_distances(x.view(), r.centroids.view(), cn.view(), &mut dmin)?;
    let mut report = json!({
        "n": x.nrows(), "d": x.ncols(), "k": k, "threads": a.model.threads, "rayon_threads": rayon::current_num_threads(),
        "options": { "epsilon": opts.epsilon, "max_iters": opts.max_iters, "tol": opts.tol,
                     "sinkhorn_iters": opts.sinkhorn_iters, "sinkhorn_tol": opts.sinkhorn_tol },
        "nexvitad": { "seconds": secs, "iterations": r.iterations, "converged": r.converged, "seconds_at_iteration": marks,
                      "mean_min_sq_dist": dmin.iter().map(|&v| v as f64).sum::<f64>() / dmin.len() as f64 },
    });
    if a.reference {
        let npy = scratch.join("features.npy");
        write_npy(&npy, &x)?;
        let args: Vec<String> = [
            "sinkhorn", "--data", &npy.display().to_string(), "--k", &k.to_string(), "--epsilon", &opts.epsilon.to_string(),
            "--max-iters", &opts.max_iters.to_string(), "--tol", &opts.tol.to_string(),
            "--sinkhorn-iters", &opts.sinkhorn_iters.to_string(), "--sinkhorn-tol", &opts.sinkhorn_tol.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        report["reference"] = run_python(a, &args)?;
    }
    if a.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    }
    Ok(())
}

/// A little-endian f32 C-order `.npy` file (format 1.0).
fn write_npy(path: &Path, x: &ndarray::Array2<f32>) -> Result<()> {
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}", x.nrows(), x.ncols());
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + x.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in x.iter() {
        out.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, out).map_err(|e| Error::io("cannot write", path, e))
}

/// A field of /proc/self/status in kB (`VmHWM`: peak RSS; `VmRSS`: now); `train --json` uses it too.
pub(crate) fn vm_kb(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines().find_map(|l| l.strip_prefix(key).and_then(|r| r.trim_start_matches(':').split_whitespace().next()).and_then(|v| v.parse().ok()))
}

/// Resets the peak-RSS counter (Linux ≥ 4.0); false where that is not possible.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn ru_maxrss_kb() -> i64 {
    // SAFETY: getrusage writes into the struct we pass and reads nothing else.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut u) == 0 {
            u.ru_maxrss
        } else {
            0
        }
    }
}
