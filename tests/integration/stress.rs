//! Concurrency stress: 8 threads score on one shared `Model` and `MemoryBank` while other
//! threads build banks and save/load them. Every result must be bit-identical to the serial
//! score of the same input, every rebuilt bank identical to the first, and the test must
//! finish (no deadlock).
//!
//! `NEXVITAD_STRESS_SCALE` scales the scores per thread (1.0 = the full 8 x 200, the default:
//! about 35 s in a debug build on 2 cores); `stress_soak_8x1000` (ignored by default) runs
//! five times as long.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;
use nexvitad::bank::BankOptions;
use nexvitad::score::score;
use nexvitad::{MemoryBank, Model, PixelFormat, Workspace};

const THREADS: usize = 8;
const FULL_SCORES_PER_THREAD: usize = 200;
const DEFAULT_SCALE: f64 = 1.0;
/// A hang guard, not a speed check: far above any healthy run, it turns a deadlock into a
/// failed test run instead of a CI job that never ends.
const HANG_GUARD: Duration = Duration::from_secs(30 * 60);

fn dataset() -> &'static Path {
    static D: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    D.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("nexvitad-stress-tests-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let o = nexvitad::data::SynthOptions {
            seed: 11,
            size: 96,
            train_good: 3,
            test_good: 2,
            defects_per_type: 1,
            domains: vec!["stripes".into()],
        };
        nexvitad::data::generate(&dir, &o).expect("synth");
        dir
    })
}

/// One scoring input: packed pixels in some format.
struct Input {
    pixels: Vec<u8>,
    width: u32,
    height: u32,
    format: PixelFormat,
}

impl Input {
    fn view<'a>(&'a self, model: &Model) -> nexvitad::ImageView<'a> {
        let stride = self.width as usize * self.format.channels();
        model.view(&self.pixels, self.width, self.height, stride, self.format).expect("view")
    }
}

/// The test images as RGB8 and as BGRA8 (two different preparation paths).
fn inputs() -> Vec<Input> {
    let cat = nexvitad::data::open_category(dataset(), "stripes").unwrap();
    let mut out = Vec::new();
    for s in &cat.test {
        let img = nexvitad::data::load_rgb(&s.path).unwrap();
        let (width, height) = img.dimensions();
        let bgra: Vec<u8> = img.pixels().flat_map(|p| [p.0[2], p.0[1], p.0[0], 255]).collect();
        out.push(Input { pixels: img.into_raw(), width, height, format: PixelFormat::Rgb8 });
        out.push(Input { pixels: bgra, width, height, format: PixelFormat::Bgra8 });
    }
    out
}

fn bank_options() -> BankOptions {
    BankOptions { k: Some(8), max_iters: 10, ..Default::default() }
}

fn build_bank(model: &Model) -> MemoryBank {
    let cat = nexvitad::data::open_category(dataset(), "stripes").unwrap();
    let imgs: Vec<_> = cat.train_good.iter().map(|p| nexvitad::data::load_rgb(p).unwrap()).collect();
    let views: Vec<_> = imgs.iter().map(|i| nexvitad::eval::rgb_view(model, i).unwrap()).collect();
    MemoryBank::build(model, &views, &bank_options(), &mut |_| true).expect("build bank")
}

/// A score reduced to its bits, so comparisons are exact.
#[derive(Debug, PartialEq, Eq)]
struct Bits {
    map: Vec<u32>,
    image_score: u32,
    anomalous: bool,
}

fn score_bits(model: &Model, bank: &MemoryBank, input: &Input, ws: &mut Workspace) -> Bits {
    let r = score(model, bank, &input.view(model), ws).expect("score");
    Bits {
        map: r.map.values.iter().map(|v| v.to_bits()).collect(),
        image_score: r.map.image_score.to_bits(),
        anomalous: r.is_anomalous,
    }
}

fn same_bank(a: &MemoryBank, b: &MemoryBank) -> bool {
    a.meta() == b.meta() && a.vectors().iter().zip(b.vectors().iter()).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Counts a scorer thread out when it ends, panicking or not, so the build and I/O threads
/// (which run until every scorer is done) cannot spin forever after a failure.
struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn scale_from_env() -> f64 {
    match std::env::var("NEXVITAD_STRESS_SCALE") {
        Ok(s) => s.parse::<f64>().ok().filter(|v| v.is_finite() && *v > 0.0).unwrap_or_else(|| {
            panic!("NEXVITAD_STRESS_SCALE='{s}' must be a positive number (1.0 = 8 threads x 200 scores)")
        }),
        Err(_) => DEFAULT_SCALE,
    }
}

fn run_stress(per_thread: usize) {
    let model = tiny_model();
    let bank = build_bank(model);
    let inputs = inputs();
    assert!(inputs.len() >= 4, "need several inputs, got {}", inputs.len());
    let mut ws = Workspace::new();
    let serial: Vec<Bits> = inputs.iter().map(|i| score_bits(model, &bank, i, &mut ws)).collect();
    // Different inputs must give different maps, or the comparisons below prove little.
    assert_ne!(serial[0], serial[2]);

    let tmp = tempfile::tempdir().unwrap();
    let scorers_left = AtomicUsize::new(THREADS);
    let done = AtomicBool::new(false);
    let (builds, loads, scores) = (AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0));
    let start = Instant::now();
    std::thread::scope(|outer| {
        // Hang guard: aborts the whole run (with a message) if the workers never finish.
        outer.spawn(|| {
            while !done.load(Ordering::Acquire) {
                if start.elapsed() > HANG_GUARD {
                    eprintln!("stress: no progress after {HANG_GUARD:?}: deadlock suspected");
                    std::process::abort();
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        // Workers; `done` is set even when one panics, so the guard stops and the panic shows.
        let workers = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| std::thread::scope(|sc| {
            for t in 0..THREADS {
                let (bank, inputs, serial) = (&bank, &inputs, &serial);
                let (scorers_left, scores) = (&scorers_left, &scores);
                sc.spawn(move || {
                    let _leave = Leave(scorers_left);
                    let mut ws = Workspace::new();
                    for i in 0..per_thread {
                        let k = (t * 7 + i) % inputs.len();
                        let got = score_bits(model, bank, &inputs[k], &mut ws);
                        assert!(got == serial[k], "thread {t}, score {i}: input {k} differs from its serial score");
                        scores.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            // Bank builds alongside (encoder sessions, rayon K-means, calibration), at least one.
            sc.spawn(|| loop {
                let b = build_bank(model);
                assert!(same_bank(&b, &bank), "a bank built under load differs from the first");
                builds.fetch_add(1, Ordering::Relaxed);
                if scorers_left.load(Ordering::Acquire) == 0 {
                    break;
                }
            });
            // Saves and loads alongside; each loaded bank scores like the original.
            sc.spawn(|| {
                let mut ws = Workspace::new();
                for n in 0usize.. {
                    let p = tmp.path().join(format!("b{}.bank", n % 2));
                    bank.save(&p).unwrap();
                    let loaded = MemoryBank::load(&p, model).unwrap();
                    assert!(same_bank(&loaded, &bank), "a loaded bank differs from the saved one");
                    let k = n % inputs.len();
                    assert!(score_bits(model, &loaded, &inputs[k], &mut ws) == serial[k], "loaded bank scores differently");
                    loads.fetch_add(1, Ordering::Relaxed);
                    if scorers_left.load(Ordering::Acquire) == 0 {
                        break;
                    }
                }
            });
        })));
        done.store(true, Ordering::Release);
        if let Err(p) = workers {
            std::panic::resume_unwind(p);
        }
    });
    let (b, l, s) = (builds.into_inner(), loads.into_inner(), scores.into_inner());
    assert_eq!(s, THREADS * per_thread);
    assert!(b >= 1 && l >= 1);
    eprintln!(
        "stress: {THREADS} threads x {per_thread} scores = {s} scores, {b} bank builds, {l} save/load/score cycles, {:.1} s",
        start.elapsed().as_secs_f64()
    );
}

#[test]
fn stress_shared_model_and_bank() {
    let per_thread = ((FULL_SCORES_PER_THREAD as f64 * scale_from_env()).round() as usize).max(1);
    run_stress(per_thread);
}

#[test]
#[ignore = "a soak run, 8 x 1000 scores: minutes in a debug build"]
fn stress_soak_8x1000() {
    run_stress(5 * FULL_SCORES_PER_THREAD);
}
