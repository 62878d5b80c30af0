//! Training: one step lowers the loss, candle's head gradients agree with finite
//! differences, the written model reloads into inference bit for bit, a resumed run equals
//! an unbroken one, the decoder scorer, the split protocol, and the errors bad input gets.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::{DType, Device, Tensor, Var};
use crate::common::*;
use nexvitad::fusion::StageParams;
use nexvitad::train::data::Features;
use nexvitad::train::ops::{fuse_batch, grid_from_tensor};
use nexvitad::train::split::{eval_split_target, SplitOptions};
use nexvitad::train::{
    train_model, CacheOptions, PerturbOptions, TrainConfig, TrainData, TrainSpec, Trainer, CACHE_FILE, CHECKPOINT_FILE, DECODER_FILE,
};
use nexvitad::{Error, Model};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

/// Three small synthetic domains (64 px; 3 good train, 1 good test, 4 defective test images).
fn synth_root() -> &'static Path {
    static D: OnceLock<tempfile::TempDir> = OnceLock::new();
    D.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        let o = nexvitad::data::SynthOptions {
            seed: 3,
            size: 64,
            train_good: 3,
            test_good: 1,
            defects_per_type: 1,
            domains: vec!["stripes".into(), "weave".into(), "grain".into()],
        };
        nexvitad::data::generate(d.path(), &o).unwrap();
        d
    })
    .path()
}

fn cfg() -> TrainConfig {
    TrainConfig {
        epochs: 2,
        batch: 4,
        decoder_width: 8,
        checkpoint_every: 0,
        perturb: PerturbOptions { copies: 1, ..Default::default() },
        ..Default::default()
    }
}

fn spec(sources: &[&str], target: &str) -> TrainSpec {
    TrainSpec { root: synth_root().to_path_buf(), sources: sources.iter().map(|s| s.to_string()).collect(), target: target.into(), target_test: false }
}

/// A new, empty folder for a feature cache (one per call: a cache is locked by its user).
fn fresh_cache_dir() -> PathBuf {
    static D: OnceLock<tempfile::TempDir> = OnceLock::new();
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let root = D.get_or_init(|| tempfile::tempdir().unwrap()).path();
    root.join(format!("cache{}", N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)))
}

/// Features of stripes + weave (sources) and grain (target), encoded once per test binary.
fn data() -> TrainData {
    static D: OnceLock<TrainData> = OnceLock::new();
    D.get_or_init(|| TrainData::load(tiny_model(), &spec(&["stripes", "weave"], "grain"), &cfg(), &fresh_cache_dir(), None, &mut |_, _| true).unwrap()).clone()
}

/// The default cache: in the output folder, the default budget.
fn in_out() -> CacheOptions {
    CacheOptions::default()
}

fn no_progress() -> impl FnMut(nexvitad::train::TrainEvent<'_>) -> bool {
    |_| true
}

/// A trained model folder shared by the tests that only read it.
fn trained_dir() -> &'static Path {
    static D: OnceLock<tempfile::TempDir> = OnceLock::new();
    D.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        let c = TrainConfig { epochs: 1, ..cfg() };
        train_model(tiny_model(), &spec(&["stripes", "weave"], "grain"), &c, d.path(), false, &in_out(), &mut no_progress()).unwrap();
        d
    })
    .path()
}

fn read_params(path: &Path) -> Vec<(String, Vec<u32>)> {
    let mut v: Vec<(String, Vec<u32>)> = read_safetensors(path).into_iter().map(|(n, a)| (n, a.iter().map(|x| x.to_bits()).collect())).collect();
    v.sort();
    v
}

#[test]
fn one_training_step_lowers_the_loss_on_a_fixed_batch() {
    let m = tiny_model();
    let mut t = Trainer::new(m.manifest(), m.head(), data(), &cfg()).unwrap();
    let src = [0, 5, 9, 14];
    let tgt = [(0, 0), (1, 0), (2, 0)];
    let (l0, s0) = t.loss(&src, &tgt).unwrap();
    let l0 = l0.to_scalar::<f32>().unwrap();
    assert!((l0 as f64 - s0.loss).abs() < 1e-5 && s0.l_src > 0.0 && (0.0..=1.0).contains(&s0.coverage));
    let before = t.head().unwrap();
    t.train_on(&src, &tgt).unwrap();
    let (l1, _) = t.loss(&src, &tgt).unwrap();
    let l1 = l1.to_scalar::<f32>().unwrap();
    assert!(l1 < l0, "loss {l0} -> {l1} after one step");
    // The head itself learns, adapters included (W_up starts at zero).
    let after = t.head().unwrap();
    for s in 0..4 {
        assert_ne!(after.stages()[s].up_w, before.stages()[s].up_w, "stage {} W_up did not move", s + 1);
        assert_ne!(after.stages()[s].proj_h_w, before.stages()[s].proj_h_w);
    }
    assert!(t.loss(&[99], &tgt).is_err());
}

/// candle's gradients of the head's forward pass against central finite differences, in f64.
#[test]
fn head_gradients_match_finite_differences() {
    let dev = Device::Cpu;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let normal = Normal::new(0.0f64, 0.6).unwrap();
    let mut rand = |shape: &[usize]| {
        let n: usize = shape.iter().product();
        Tensor::from_vec((0..n).map(|_| normal.sample(&mut rng)).collect::<Vec<f64>>(), shape, &dev).unwrap()
    };
    let (b, c, cd, r, half, g) = (2, 6, 5, 3, 4, 2);
    let hiera = rand(&[b, c, 5, 4]);
    let dino = rand(&[b, cd, 3, 3]);
    let weight = rand(&[b, 2 * half, 5, 4]);
    for identity_start in [false, true] {
        let shapes: [Vec<usize>; 8] = [vec![r, c], vec![r], vec![c, r], vec![c], vec![half, c], vec![half], vec![half, cd], vec![half]];
        let vars: Vec<Var> = shapes
            .iter()
            .enumerate()
            .map(|(k, s)| {
                let t = if identity_start && (k == 2 || k == 3) { Tensor::zeros(s.as_slice(), DType::F64, &dev).unwrap() } else { rand(s) };
                Var::from_tensor(&t).unwrap()
            })
            .collect();
        let loss_of = |ts: &[Tensor]| -> Tensor {
            let p = StageParams::from_array([0, 1, 2, 3, 4, 5, 6, 7].map(|k| ts[k].clone()));
            let f = fuse_batch(&p, false, g, &hiera, &dino).unwrap();
            (f.tanh().unwrap() * &weight).unwrap().sum_all().unwrap()
        };
        let live: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let grads = loss_of(&live).backward().unwrap();
        let eps = 1e-6;
        for (k, v) in vars.iter().enumerate() {
            let grad = grads.get(v).unwrap_or_else(|| panic!("no gradient for tensor {k}")).flatten_all().unwrap().to_vec1::<f64>().unwrap();
            let base = v.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap();
            let n = base.len();
            for &i in &[0, n / 2, n - 1] {
                let at = |delta: f64| {
                    let mut x = base.clone();
                    x[i] += delta;
                    let mut ts = live.clone();
                    ts[k] = Tensor::from_vec(x, v.shape(), &dev).unwrap();
                    loss_of(&ts).to_scalar::<f64>().unwrap()
                };
                let fd = (at(eps) - at(-eps)) / (2.0 * eps);
                let tol = 1e-6 + 2e-5 * fd.abs().max(grad[i].abs());
                assert!((grad[i] - fd).abs() <= tol, "identity={identity_start} tensor {k} entry {i}: candle {} vs finite difference {fd}", grad[i]);
            }
        }
        if identity_start {
            // The identity adapter still gets a gradient for W_up: training can leave it.
            let gu = grads.get(&vars[2]).unwrap().abs().unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
            assert!(gu > 1e-6, "W_up gradient is {gu}");
        }
    }
}

#[test]
fn trained_model_folder_reloads_bit_identically() {
    let m = tiny_model();
    let out = trained_dir();
    let trained = Model::open(out, &options()).unwrap();
    assert!(trained.head().is_trained());
    assert_ne!(trained.fingerprint(), m.fingerprint());
    let tr = trained.manifest().training.as_ref().expect("model.json records the training");
    assert_eq!(tr["target"], "grain");
    assert_eq!(tr["sources"], serde_json::json!(["stripes", "weave"]));
    assert_eq!(tr["config"]["theta"], serde_json::json!(0.7));

    // The trainer's final state, restored from the checkpoint, is the head inference loads.
    let c = TrainConfig { epochs: 1, ..cfg() };
    let mut t = Trainer::new(m.manifest(), m.head(), data(), &c).unwrap();
    t.load_checkpoint(&out.join(CHECKPOINT_FILE)).unwrap();
    let head = t.head().unwrap();
    assert_eq!(head.stages(), trained.head().stages());
    assert_ne!(head.stages(), m.head().stages(), "training changed the head");

    let img = nexvitad::data::load_rgb(&synth_root().join("grain/test/good/000.png")).unwrap();
    let view = nexvitad::eval::rgb_view(&trained, &img).unwrap();
    let feats = trained.encode(&[view]).unwrap();
    let a = trained.head().patch_features_reference(&feats, 0).unwrap();
    let b = head.patch_features_reference(&feats, 0).unwrap();
    assert_eq!(a.data, b.data, "inference features differ from the trainer's head");
    // The training forward pass (candle) computes the same fused features as inference.
    let f = Features::from_batch(&feats, 0).unwrap();
    let (hiera, dino) = Features::stack(&[&f]).unwrap();
    for (s, fused) in t.fuse(&hiera, &dino).unwrap().iter().enumerate() {
        let got = grid_from_tensor(fused).unwrap();
        let want = trained.head().fuse(&feats, 0, s + 1).unwrap();
        let scale = want.data.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = got.data.iter().zip(want.data.iter()).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(d <= 1e-5 * scale, "F{}: training and inference differ by {d} (scale {scale})", s + 1);
    }
}

#[test]
fn resume_equals_an_unbroken_run() {
    let m = tiny_model();
    let sp = spec(&["stripes", "weave"], "grain");
    let c = TrainConfig { checkpoint_every: 3, ..cfg() };
    let whole = tempfile::tempdir().unwrap();
    let s = train_model(m, &sp, &c, whole.path(), false, &in_out(), &mut no_progress()).unwrap();
    assert_eq!(s.steps, 8);

    // Stop after 5 steps, as Ctrl-C does.
    let part = tempfile::tempdir().unwrap();
    let mut steps = 0;
    let e = train_model(m, &sp, &c, part.path(), false, &in_out(), &mut |e| {
        if let nexvitad::train::TrainEvent::Step(_) = e {
            steps += 1;
        }
        steps < 5
    })
    .unwrap_err();
    assert!(matches!(e, Error::Cancelled), "{e}");
    assert!(part.path().join(CHECKPOINT_FILE).is_file(), "stopping leaves a checkpoint");
    assert!(!part.path().join("model.json").exists(), "a stopped run is not a model yet");

    // Another folder's run cannot be resumed with other settings, nor a fresh run started over it.
    let other = TrainConfig { theta: 0.8, ..c.clone() };
    assert!(matches!(train_model(m, &sp, &other, part.path(), true, &in_out(), &mut no_progress()), Err(Error::Mismatch(_))));
    let e = train_model(m, &sp, &c, part.path(), false, &in_out(), &mut no_progress()).unwrap_err();
    assert!(e.to_string().contains("--resume"), "{e}");

    let r = train_model(m, &sp, &c, part.path(), true, &in_out(), &mut no_progress()).unwrap();
    assert_eq!((r.cache.encoded, r.cache.reused), (0, r.cache.feature_sets), "the resumed run reuses the stopped run's features");
    assert_eq!(r.steps, 8);
    assert_eq!(r.fingerprint, s.fingerprint);
    for f in ["head.safetensors", DECODER_FILE] {
        assert_eq!(std::fs::read(whole.path().join(f)).unwrap(), std::fs::read(part.path().join(f)).unwrap(), "{f} differs");
    }
    assert_eq!(read_params(&whole.path().join(CHECKPOINT_FILE)), read_params(&part.path().join(CHECKPOINT_FILE)));
    assert_eq!(r.history.len(), 2);
    assert_eq!(r.history[0].loss.to_bits(), s.history[0].loss.to_bits());
}

// ---- The feature cache ----------------------------------------------------------------------

/// Trains one epoch with `cache` into a new folder; the folder and the summary.
fn train_with(cache: &CacheOptions, c: &TrainConfig) -> (tempfile::TempDir, nexvitad::train::TrainSummary) {
    let out = tempfile::tempdir().unwrap();
    let s = train_model(tiny_model(), &spec(&["stripes", "weave"], "grain"), c, out.path(), false, cache, &mut no_progress()).unwrap();
    (out, s)
}

/// The trained head and decoder, byte for byte.
fn model_bytes(dir: &Path) -> Vec<Vec<u8>> {
    ["head.safetensors", DECODER_FILE].iter().map(|f| std::fs::read(dir.join(f)).unwrap()).collect()
}

fn one_epoch() -> TrainConfig {
    TrainConfig { epochs: 1, ..cfg() }
}

/// The smallest budget there is: one step's feature sets (4 sources, 3 targets and 3
/// copies at batch 4), so every other feature set is read from the file at each use.
fn one_step_budget(s: &nexvitad::train::TrainSummary) -> u64 {
    let per_set = s.cache.resident_bytes / s.cache.resident as u64;
    10 * per_set
}

#[test]
fn streaming_from_the_cache_trains_the_same_model_as_holding_it_in_memory() {
    let c = one_epoch();
    let all = CacheOptions { dir: None, mem_budget: Some(1 << 40) };
    let (mem_dir, mem) = train_with(&all, &c);
    assert_eq!(mem.cache.resident, mem.cache.feature_sets, "a large budget holds every feature set");
    assert_eq!((mem.cache.encoded, mem.cache.reused), (22, 0), "16 source images, 3 target images with a copy each");
    assert_eq!(mem.cache.bytes, std::fs::metadata(mem_dir.path().join(CACHE_FILE)).unwrap().len());

    let budget = one_step_budget(&mem);
    let (disk_dir, disk) = train_with(&CacheOptions { dir: None, mem_budget: Some(budget) }, &c);
    assert_eq!(disk.cache.resident, 0, "one step's budget holds nothing beyond the step");
    assert_eq!(model_bytes(mem_dir.path()), model_bytes(disk_dir.path()), "streamed and in-memory training differ");
    assert_eq!(mem.fingerprint, disk.fingerprint);
    // A budget between the two holds part (targets first), with the same result.
    let (mid_dir, mid) = train_with(&CacheOptions { dir: None, mem_budget: Some(budget + 7 * budget / 10) }, &c);
    assert_eq!(mid.cache.resident, 7);
    assert_eq!(model_bytes(mid_dir.path()), model_bytes(mem_dir.path()));
    // Same with the cache encoded by another run (a shared folder): nothing is encoded again.
    let shared = fresh_cache_dir();
    let (_, first) = train_with(&CacheOptions { dir: Some(shared.clone()), mem_budget: None }, &c);
    let (again_dir, again) = train_with(&CacheOptions { dir: Some(shared.clone()), mem_budget: Some(budget) }, &c);
    assert_eq!((first.cache.encoded, again.cache.encoded, again.cache.reused), (22, 0, 22));
    assert!(!again_dir.path().join(CACHE_FILE).exists(), "the cache lives in the given folder");
    assert_eq!(model_bytes(again_dir.path()), model_bytes(mem_dir.path()));
}

#[test]
fn a_cache_of_other_data_or_settings_is_refused_and_left_alone() {
    let shared = fresh_cache_dir();
    let (_, first) = train_with(&CacheOptions { dir: Some(shared.clone()), mem_budget: None }, &one_epoch());
    let before = std::fs::read(shared.join(CACHE_FILE)).unwrap();
    for other in [TrainConfig { seed: 1, ..one_epoch() }, TrainConfig { perturb: PerturbOptions { copies: 2, ..Default::default() }, ..one_epoch() }] {
        let out = tempfile::tempdir().unwrap();
        let e = train_model(tiny_model(), &spec(&["stripes", "weave"], "grain"), &other, out.path(), false, &CacheOptions { dir: Some(shared.clone()), mem_budget: None }, &mut no_progress()).unwrap_err();
        assert!(matches!(e, Error::Mismatch(_)), "{e}");
        let msg = e.to_string();
        assert!(msg.contains(CACHE_FILE) && msg.contains("other data") && msg.contains("target 'grain' from stripes,weave"), "{msg}");
    }
    // Other domains too.
    let out = tempfile::tempdir().unwrap();
    let e = train_model(tiny_model(), &spec(&["stripes"], "grain"), &one_epoch(), out.path(), false, &CacheOptions { dir: Some(shared.clone()), mem_budget: None }, &mut no_progress()).unwrap_err();
    assert!(e.to_string().contains("other data"), "{e}");
    assert_eq!(std::fs::read(shared.join(CACHE_FILE)).unwrap(), before, "a refused cache is not touched");
    assert_eq!(first.cache.feature_sets, 22);
}

#[test]
fn a_truncated_or_corrupt_cache_is_repaired_never_used() {
    let c = one_epoch();
    let shared = fresh_cache_dir();
    let cache = CacheOptions { dir: Some(shared.clone()), mem_budget: None };
    let (ref_dir, first) = train_with(&cache, &c);
    let file = shared.join(CACHE_FILE);
    let per_record = (first.cache.bytes - 4096) / 22;

    // One flipped bit in record 5's payload: that record alone is encoded again.
    let mut bytes = std::fs::read(&file).unwrap();
    let at = (4096 + 5 * per_record + 16 + 1000) as usize;
    bytes[at] ^= 0x10;
    std::fs::write(&file, &bytes).unwrap();
    let (d, s) = train_with(&cache, &c);
    assert_eq!((s.cache.encoded, s.cache.reused, s.cache.rebuilt), (1, 21, false));
    assert_eq!(model_bytes(d.path()), model_bytes(ref_dir.path()));

    // Cut short in the middle of record 14: records 14.. are encoded again.
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.set_len(4096 + 14 * per_record + 100).unwrap();
    drop(f);
    let (d, s) = train_with(&cache, &c);
    assert_eq!((s.cache.encoded, s.cache.reused), (8, 14));
    assert_eq!(std::fs::metadata(&file).unwrap().len(), first.cache.bytes);
    assert_eq!(model_bytes(d.path()), model_bytes(ref_dir.path()));

    // A header that is not a cache's: rebuilt from scratch.
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[..8].copy_from_slice(b"garbage!");
    std::fs::write(&file, &bytes).unwrap();
    let (d, s) = train_with(&cache, &c);
    assert_eq!((s.cache.encoded, s.cache.reused, s.cache.rebuilt), (22, 0, true));
    assert_eq!(model_bytes(d.path()), model_bytes(ref_dir.path()));

    // A record that changes under a running trainer is refused where it is read.
    let d = TrainData::load(tiny_model(), &spec(&["stripes", "weave"], "grain"), &c, &shared, Some(one_step_budget(&first)), &mut |_, _| true).unwrap();
    let r = d.source_samples[3].record;
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[(4096 + r as u64 * per_record + 40) as usize] ^= 1;
    // Written in place (same inode), as a disk error or another program would.
    std::os::unix::fs::FileExt::write_all_at(&std::fs::OpenOptions::new().write(true).open(&file).unwrap(), &bytes[..], 0).unwrap();
    let e = d.features(r).unwrap_err().to_string();
    assert!(e.contains(CACHE_FILE) && e.contains("checksum"), "{e}");
}

#[test]
fn stopping_while_encoding_leaves_a_cache_that_resume_continues() {
    let c = one_epoch();
    let sp = spec(&["stripes", "weave"], "grain");
    let (whole, unbroken) = train_with(&in_out(), &c);
    let part = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    let e = train_model(tiny_model(), &sp, &c, part.path(), false, &in_out(), &mut |e| match e {
        nexvitad::train::TrainEvent::Encode { done, total } => {
            seen.push((done, total));
            done < 9
        }
        _ => panic!("no step may run after a stop while encoding"),
    })
    .unwrap_err();
    assert!(matches!(e, Error::Cancelled), "{e}");
    let stopped_at = seen.last().unwrap().0;
    assert!((9..22).contains(&stopped_at), "{seen:?}");
    assert!(part.path().join(CACHE_FILE).is_file() && !part.path().join(CHECKPOINT_FILE).exists());
    // The folder is a stopped run: a fresh run is refused, --resume continues.
    let e = train_model(tiny_model(), &sp, &c, part.path(), false, &in_out(), &mut no_progress()).unwrap_err();
    assert!(e.to_string().contains("--resume"), "{e}");
    let r = train_model(tiny_model(), &sp, &c, part.path(), true, &in_out(), &mut no_progress()).unwrap();
    assert_eq!((r.cache.reused, r.cache.encoded), (stopped_at, 22 - stopped_at));
    assert_eq!(r.fingerprint, unbroken.fingerprint);
    assert_eq!(model_bytes(part.path()), model_bytes(whole.path()));
    // Resume with nothing to resume from names both.
    let empty = tempfile::tempdir().unwrap();
    let e = train_model(tiny_model(), &sp, &c, empty.path(), true, &in_out(), &mut no_progress()).unwrap_err().to_string();
    assert!(e.contains("no checkpoint") && e.contains("no feature cache"), "{e}");
}

#[test]
fn cache_bad_inputs_give_clear_errors() {
    let sp = spec(&["stripes", "weave"], "grain");
    let run = |cache: CacheOptions| {
        let out = tempfile::tempdir().unwrap();
        let e = train_model(tiny_model(), &sp, &one_epoch(), &out.path().join("m"), false, &cache, &mut no_progress()).unwrap_err();
        (e.to_string(), out)
    };
    let (e, _) = run(CacheOptions { dir: None, mem_budget: Some(0) });
    assert!(e.contains("budget is 0"), "{e}");
    let (e, out) = run(CacheOptions { dir: None, mem_budget: Some(1 << 20) });
    assert!(e.contains("below one training step") && e.contains("10 feature sets"), "{e}");
    assert!(!out.path().join("m").join(CACHE_FILE).exists(), "refused before anything was written");
    let file = tempfile::NamedTempFile::new().unwrap();
    let (e, _) = run(CacheOptions { dir: Some(file.path().to_path_buf()), mem_budget: None });
    assert!(e.contains("is not a folder"), "{e}");
    // A folder nobody may create (even root cannot make folders in /proc).
    let (e, _) = run(CacheOptions { dir: Some(PathBuf::from("/proc/nexvitad-cache")), mem_budget: None });
    assert!(e.contains("cannot create the feature cache folder") && e.contains("/proc/nexvitad-cache"), "{e}");
    // An output folder that cannot be made: named, nothing trained.
    let e = train_model(tiny_model(), &sp, &one_epoch(), Path::new("/proc/nexvitad-out"), false, &in_out(), &mut no_progress()).unwrap_err();
    assert!(matches!(e, Error::Io { .. }) && e.to_string().contains("/proc/nexvitad-out"), "{e}");
    // Two runs on one cache: the second is refused while the first holds it.
    let shared = fresh_cache_dir();
    let held = TrainData::load(tiny_model(), &sp, &one_epoch(), &shared, None, &mut |_, _| true).unwrap();
    let (e, _) = run(CacheOptions { dir: Some(shared.clone()), mem_budget: None });
    assert!(e.contains("in use by another training run"), "{e}");
    drop(held);
    let out = tempfile::tempdir().unwrap();
    train_model(tiny_model(), &sp, &one_epoch(), out.path(), false, &CacheOptions { dir: Some(shared), mem_budget: None }, &mut no_progress()).unwrap();
}

#[test]
fn decoder_scores_the_target_and_refuses_other_heads() {
    let out = trained_dir();
    let trained = Model::open(out, &options()).unwrap();
    let eo = nexvitad::eval::EvalOptions::new(1, nexvitad::BankOptions::default());
    let r = nexvitad::train::score::evaluate_decoder(&trained, synth_root(), "grain", &eo, &mut |_| true).unwrap();
    assert_eq!((r.scorer.as_str(), r.images), ("decoder", 5));
    for v in [Some(r.metrics.image_auroc), r.metrics.pixel_auroc, r.metrics.pixel_ap, r.metrics.pro] {
        assert!(v.is_some_and(|v| (0.0..=1.0).contains(&v)), "{v:?}");
    }
    // The decoder's maps are probabilities.
    let dec = nexvitad::train::score::load_decoder(&trained).unwrap();
    let cat = nexvitad::data::open_category(synth_root(), "grain").unwrap();
    let img = nexvitad::eval::load_image(&cat.test[0].path).unwrap();
    let view = nexvitad::eval::rgb_view(&trained, &img).unwrap();
    let (map, _, _) = nexvitad::train::score::decoder_map(&trained, &dec, &view, 4.0, &mut nexvitad::image::Preparer::new(), &mut nexvitad::map::MapWorkspace::new()).unwrap();
    assert!(map.values.iter().all(|p| (0.0..=1.0).contains(p)));

    let e = nexvitad::train::score::evaluate_decoder(tiny_model(), synth_root(), "grain", &eo, &mut |_| true).unwrap_err();
    assert!(e.to_string().contains(DECODER_FILE), "{e}");

    // σ follows the bank's rule; the options the decoder does not read are not checked.
    let bad_sigma = nexvitad::eval::EvalOptions::new(1, nexvitad::BankOptions { sigma: Some(-1.0), ..Default::default() });
    let e = nexvitad::train::score::evaluate_decoder(&trained, synth_root(), "grain", &bad_sigma, &mut |_| true).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)) && e.to_string().contains("sigma -1 must be >= 0"), "{e}");
    let unread = nexvitad::eval::EvalOptions::new(1, nexvitad::BankOptions { k: Some(0), sigma: Some(0.0), ..Default::default() });
    nexvitad::train::score::evaluate_decoder(&trained, synth_root(), "grain", &unread, &mut |_| true).unwrap();

    // A decoder next to a head it was not trained with is refused.
    let t = tempfile::tempdir().unwrap();
    copy_model(t.path());
    std::fs::copy(out.join(DECODER_FILE), t.path().join(DECODER_FILE)).unwrap();
    let other = Model::open(t.path(), &options()).unwrap();
    let e = nexvitad::train::score::evaluate_decoder(&other, synth_root(), "grain", &eo, &mut |_| true).unwrap_err();
    assert!(matches!(e, Error::Mismatch(_)), "{e}");
}

#[test]
fn eval_split_reports_every_scorer_for_the_target() {
    let out = tempfile::tempdir().unwrap();
    let sources: Vec<String> = ["stripes", "weave", "grain"].iter().map(|s| s.to_string()).collect();
    let opts = SplitOptions { shots: 2, bank: nexvitad::BankOptions::default(), target_test: false, cache: CacheOptions::default() };
    let c = TrainConfig { epochs: 1, ..cfg() };
    let dir: PathBuf = out.path().join("grain");
    let row = eval_split_target(tiny_model(), synth_root(), &sources, "grain", &c, &opts, &dir, &mut |_| true).unwrap();
    assert_eq!(row.sources, ["stripes", "weave"], "the target is left out of its own sources");
    assert_eq!(row.base.keys().collect::<Vec<_>>(), ["full", "sinkhorn"]);
    assert_eq!(row.trained.keys().collect::<Vec<_>>(), ["decoder", "full", "sinkhorn"]);
    assert!(!row.base_trained);
    let json = serde_json::to_value(&row).unwrap();
    assert!(json["trained"]["decoder"]["image_auroc"].is_number() && json["base"]["sinkhorn"]["pro"].is_number());
}

#[test]
fn bad_inputs_give_clear_errors() {
    let m = tiny_model();
    let root = tempfile::tempdir().unwrap();
    let src = synth_root();
    // A domain without defect masks, and one with no images at all.
    for (from, to) in [("stripes/train/good/000.png", "plain/train/good/000.png"), ("stripes/test/good/000.png", "plain/test/good/000.png")] {
        std::fs::create_dir_all(root.path().join(to).parent().unwrap()).unwrap();
        std::fs::copy(src.join(from), root.path().join(to)).unwrap();
    }
    std::fs::create_dir_all(root.path().join("empty/train/good")).unwrap();
    for d in ["stripes", "grain"] {
        copy_tree(&src.join(d), &root.path().join(d));
    }
    let run = |sources: &[&str], target: &str, c: &TrainConfig| {
        let out = tempfile::tempdir().unwrap();
        let sp = TrainSpec { root: root.path().to_path_buf(), sources: sources.iter().map(|s| s.to_string()).collect(), target: target.into(), target_test: false };
        train_model(m, &sp, c, &out.path().join("m"), false, &in_out(), &mut no_progress()).unwrap_err().to_string()
    };
    let e = run(&["plain"], "grain", &cfg());
    assert!(e.contains("'plain'") && e.contains("masks"), "{e}");
    let e = run(&["stripes", "grain"], "grain", &cfg());
    assert!(e.contains("'grain'") && e.contains("also a source"), "{e}");
    let e = run(&["stripes"], "empty", &cfg());
    assert!(e.contains("'empty'") && e.contains("no images"), "{e}");
    let e = run(&["empty"], "grain", &cfg());
    assert!(e.contains("'empty'") && e.contains("no images"), "{e}");
    let e = run(&["stripes"], "missing", &cfg());
    assert!(e.contains("'missing'"), "{e}");
    for theta in [0.0, 1.0, -0.5, 1.5, f64::NAN] {
        let e = run(&["stripes"], "grain", &TrainConfig { theta, ..cfg() });
        assert!(e.contains("theta") && e.contains("(0, 1)"), "theta {theta}: {e}");
    }
    let e = run(&["stripes"], "grain", &TrainConfig { lambda2: -1.0, ..cfg() });
    assert!(e.contains("lambda2"), "{e}");
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Where the checkpoint-kill child saves, and the synthetic root it trains on (the parent's,
/// so both hash the same data and write the same bytes). The child does nothing without them.
const CKPT_CHILD_TARGET: &str = "NEXVITAD_CKPT_CHILD_TARGET";
const CKPT_CHILD_ROOT: &str = "NEXVITAD_CKPT_CHILD_ROOT";
const CKPT_READY: &str = "NEXVITAD-CKPT-CHILD-READY";
/// Which checkpoint the child saves first (0 or 1), alternated between children so the file
/// changes however slowly a loaded machine saves.
const CKPT_CHILD_FIRST: &str = "NEXVITAD_CKPT_CHILD_FIRST";

/// Two trainers: fresh, and after one step (two different checkpoints of one run).
fn two_trainers(root: &Path) -> (Trainer, Trainer) {
    let m = tiny_model();
    let sp = TrainSpec { root: root.to_path_buf(), ..spec(&["stripes", "weave"], "grain") };
    let d = TrainData::load(m, &sp, &cfg(), &fresh_cache_dir(), None, &mut |_, _| true).unwrap();
    let t0 = Trainer::new(m.manifest(), m.head(), d.clone(), &cfg()).unwrap();
    let mut t1 = Trainer::new(m.manifest(), m.head(), d, &cfg()).unwrap();
    t1.step().unwrap();
    (t0, t1)
}

/// The child of [`kill_during_checkpoint_save_leaves_a_loadable_checkpoint`]: saves the two
/// checkpoints in turn over one file until it is killed.
#[test]
#[ignore = "child process of kill_during_checkpoint_save_leaves_a_loadable_checkpoint; does nothing on its own"]
fn crash_child_checkpoints_forever() {
    let (Some(target), Some(root)) = (std::env::var_os(CKPT_CHILD_TARGET), std::env::var_os(CKPT_CHILD_ROOT)) else { return };
    let first: usize = std::env::var(CKPT_CHILD_FIRST).ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let (t0, t1) = two_trainers(Path::new(&root));
    let target = PathBuf::from(target);
    for i in 0usize.. {
        [&t0, &t1][(first + i) % 2].save_checkpoint(&target).expect("child checkpoint");
        if i == 0 {
            println!("\n{CKPT_READY}");
        }
    }
}

/// Crash-safe checkpoints (as banks, see tests/crash_safe.rs): a process SIGKILLed while it
/// writes checkpoints leaves one of the two whole checkpoints, byte for byte, and a run
/// resumes from it.
#[test]
fn kill_during_checkpoint_save_leaves_a_loadable_checkpoint() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    const KILLS: usize = 8;
    let root = synth_root();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (t0, t1) = two_trainers(root);
    let refs: Vec<Vec<u8>> = [&t0, &t1]
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let p = dir.path().join(format!("ref{i}.ckpt"));
            t.save_checkpoint(&p).unwrap();
            std::fs::read(p).unwrap()
        })
        .collect();
    assert_ne!(refs[0], refs[1]);
    let target = dir.path().join(CHECKPOINT_FILE);
    t0.save_checkpoint(&target).unwrap();
    let (mut mid_write, mut saw) = (0, [false; 2]);
    for kill in 0..KILLS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["train::crash_child_checkpoints_forever", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env(CKPT_CHILD_TARGET, &target)
            .env(CKPT_CHILD_ROOT, root)
            .env(CKPT_CHILD_FIRST, ((kill / 2) % 2).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "child exited before saving (kill {kill})");
            if line.trim() == CKPT_READY {
                break;
            }
        }
        if kill % 2 == 0 {
            std::thread::sleep(std::time::Duration::from_millis(7 * kill as u64));
        } else {
            // Aimed: once a temp file exists (the write and its fsync are under way).
            let mut polls = 0;
            while temp_files(&target).is_empty() {
                polls += 1;
                assert!(polls < 600_000, "kill {kill}: the child never started a write");
                std::thread::sleep(std::time::Duration::from_micros(50));
            }
        }
        child.kill().unwrap(); // SIGKILL: nothing of the child's runs after this.
        child.wait().unwrap();
        mid_write += temp_files(&target).len();
        let now = std::fs::read(&target).unwrap();
        let which = [now == refs[0], now == refs[1]];
        assert!(which[0] || which[1], "kill {kill}: the checkpoint is neither whole checkpoint");
        saw[0] |= which[0];
        saw[1] |= which[1];
        let (mut fresh, _) = two_trainers(root);
        fresh.load_checkpoint(&target).unwrap_or_else(|e| panic!("kill {kill}: the checkpoint does not load: {e}"));
        assert_eq!(fresh.global_step(), if which[0] { 0 } else { 1 });
    }
    assert!(mid_write > 0, "no kill landed during a write");
    assert!(saw[0] && saw[1], "the file never changed between the two checkpoints: {saw:?}");
    eprintln!("{KILLS} kills, {mid_write} during a write");
}
