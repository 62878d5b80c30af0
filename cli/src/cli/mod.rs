//! Sub-commands. Each module parses nothing itself: clap does, and the module calls the library.
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

mod bankargs;
mod bank;
mod bench;
mod demo;
mod eval;
mod eval_split;
mod fit;
mod info;
mod progress;
mod score;
mod synth;
mod train;

/// Few-shot cross-domain defect detection (NexViTAD).
#[derive(Parser)]
#[command(name = "nexvitad", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a model's manifest, its backbone outputs' shapes and its fingerprint.
    Info(info::InfoArgs),
    /// Run the main job on built-in defaults: synth -> fit -> eval on every domain.
    Demo(demo::DemoArgs),
    /// Write the synthetic multi-domain dataset (MVTec AD layout).
    Synth(synth::SynthArgs),
    /// Build a memory bank from good images.
    Fit(fit::FitArgs),
    /// Score images with a bank.
    Score(score::ScoreArgs),
    /// Evaluate a category: image/pixel AUROC, pixel AP, PRO, F1-max.
    Eval(eval::EvalArgs),
    /// Train the fusion head on labelled sources and an unlabeled target domain.
    Train(train::TrainArgs),
    /// Cross-domain protocol: train on sources, adapt to each target, evaluate every scorer.
    EvalSplit(eval_split::EvalSplitArgs),
    /// Measure where scoring time goes (per stage), throughput and peak RSS.
    Bench(bench::BenchArgs),
    /// Work on a bank file: `bank calibrate --bank B --fpr F` moves its thresholds.
    Bank(bank::BankArgs),
}

/// Options shared by every command that opens a model.
#[derive(Args, Clone)]
pub struct ModelArgs {
    /// Model folder (model.json, hiera.onnx, dinov2.onnx).
    #[arg(long, default_value = "models/tiny", env = "NEXVITAD_MODEL")]
    pub model: PathBuf,
    /// Execution provider: cpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub ep: String,
    /// Intra-op threads per encoder (0 = ONNX Runtime's choice).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Path to libonnxruntime.so (else NEXVITAD_ORT_LIBRARY, ORT_DYLIB_PATH, beside nexvitad).
    #[arg(long)]
    pub ort: Option<PathBuf>,
    /// Tiles per encoder call when scoring tiled images (default: 4 on cpu, 16 on cuda).
    #[arg(long, value_name = "N")]
    pub tile_batch: Option<std::num::NonZeroUsize>,
    /// Run the two encoders side by side, each with half the threads (faster at batch 1
    /// on CPUs with few cores; --threads is then per encoder).
    #[arg(long)]
    pub parallel_encoders: bool,
}

impl ModelArgs {
    /// The options these arguments give (bench adds its own session settings).
    pub fn options(&self) -> nexvitad::Result<nexvitad::ModelOptions> {
        let mut opts = nexvitad::ModelOptions::default().with_execution_provider(&self.ep)?;
        opts.session.intra_threads = std::num::NonZeroUsize::new(self.threads);
        opts.ort_library = self.ort.clone();
        opts.tile_batch = self.tile_batch;
        opts.session.parallel_encoders = self.parallel_encoders;
        Ok(opts)
    }

    pub fn open(&self) -> nexvitad::Result<nexvitad::Model> {
        nexvitad::Model::open(&self.model, &self.options()?)
    }
}

/// Parses the command line, runs it, and returns the process exit code.
/// Builds rayon's global pool with the main thread as one of its `threads` workers (0 =
/// rayon's default: `RAYON_NUM_THREADS`, else the core count). Ignored if the pool exists.
///
/// Why: while ONNX Runtime runs the encoders, rayon's workers fall asleep; a parallel step
/// started from a thread outside the pool (the head, matching) then waits for a worker to
/// wake before any work starts, image after image. With the main thread inside the pool the
/// step starts at once on it and the other workers join as they wake. `nexvitad bench` at 224
/// on 2 cores: head 1.25 → 0.75 ms and matching 0.25 → 0.13 ms per image
/// (docs/performance.md). Safe here because the CLI calls rayon from its main thread only: no
/// job is ever left waiting for the main thread while it is busy elsewhere.
pub(crate) fn init_thread_pool(threads: usize) {
    let _ = rayon::ThreadPoolBuilder::new().num_threads(threads).use_current_thread().build_global();
}

pub fn run() -> i32 {
    let cli = Cli::parse();
    // Training sets its thread environment first and then builds the pool; bench sizes it.
    if !matches!(cli.cmd, Command::Train(_) | Command::EvalSplit(_) | Command::Bench(_) | Command::Bank(_)) {
        init_thread_pool(0);
    }
    // Most commands succeed with 0; `eval --reference-model` says 2 when maps drift too far.
    let res = match cli.cmd {
        Command::Info(a) => info::run(a).map(|()| 0),
        Command::Demo(a) => demo::run(a).map(|()| 0),
        Command::Synth(a) => synth::run(a).map(|()| 0),
        Command::Fit(a) => fit::run(a).map(|()| 0),
        Command::Score(a) => score::run(a).map(|()| 0),
        Command::Eval(a) => eval::run(a),
        Command::Train(a) => train::run(a).map(|()| 0),
        Command::EvalSplit(a) => eval_split::run(a).map(|()| 0),
        Command::Bench(a) => bench::run(a).map(|()| 0),
        Command::Bank(a) => bank::run(a).map(|()| 0),
    };
    match res {
        Ok(code) => code,
        // Ctrl-C: the shell's convention (128 + SIGINT); the command said what it left.
        Err(nexvitad::Error::Cancelled) => 130,
        Err(e) => {
            eprintln!("nexvitad: error: {e}");
            1
        }
    }
}
