//! Sub-commands. Each module parses nothing itself: clap does, and the module calls the library.
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

mod info;
mod demo;

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
    /// Run the main job on built-in defaults.
    Demo(demo::DemoArgs),
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
}

impl ModelArgs {
    pub fn open(&self) -> nexvitad::Result<nexvitad::Model> {
        let mut opts = nexvitad::ModelOptions::default().with_execution_provider(&self.ep)?;
        opts.session.intra_threads = self.threads;
        opts.ort_library = self.ort.clone();
        nexvitad::Model::open(&self.model, &opts)
    }
}

/// Parses the command line, runs it, and returns the process exit code.
pub fn run() -> i32 {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Command::Info(a) => info::run(a),
        Command::Demo(a) => demo::run(a),
    };
    match res {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("nexvitad: error: {e}");
            1
        }
    }
}
