//! `nexvitad train`: adapt the fusion head to labelled sources and an unlabeled target.
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use nexvitad::train::{train_model, CacheOptions, PerturbOptions, TrainConfig, TrainEvent, TrainSpec, TrainSummary, CACHE_FILE, CHECKPOINT_FILE};

use super::ModelArgs;

/// Training options shared by `train` and `eval-split`. Unset θ/λ come from `model.json`.
#[derive(Args, Clone)]
pub struct TrainOpts {
    /// Passes over the source images.
    #[arg(long, default_value_t = TrainConfig::default().epochs)]
    pub epochs: usize,
    /// Source images per step (plus as many target images and their perturbed copies).
    #[arg(long, default_value_t = TrainConfig::default().batch)]
    pub batch: usize,
    /// AdamW learning rate.
    #[arg(long, default_value_t = TrainConfig::default().lr)]
    pub lr: f64,
    /// AdamW decoupled weight decay.
    #[arg(long, default_value_t = TrainConfig::default().weight_decay)]
    pub weight_decay: f64,
    /// Pseudo-label confidence threshold, in (0, 1) (default: model.json, 0.7).
    #[arg(long)]
    pub theta: Option<f64>,
    /// Weight of the pseudo-label loss (default: model.json, 1.0).
    #[arg(long)]
    pub lambda1: Option<f64>,
    /// Weight of the consistency loss (default: model.json, 0.5).
    #[arg(long)]
    pub lambda2: Option<f64>,
    /// Seed of initialisation, batch order and perturbations.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Channels of the decoder.
    #[arg(long, default_value_t = TrainConfig::default().decoder_width)]
    pub decoder_width: usize,
    /// Steps between checkpoints (0: only on stop and at the end).
    #[arg(long, default_value_t = TrainConfig::default().checkpoint_every)]
    pub checkpoint_every: usize,
    /// Perturbed copies per target image (each encoded once).
    #[arg(long, default_value_t = PerturbOptions::default().copies)]
    pub copies: usize,
    /// Pixel noise std of the perturbed copies (8-bit levels).
    #[arg(long, default_value_t = PerturbOptions::default().noise_std)]
    pub noise: f64,
    /// Colour jitter of the perturbed copies (brightness/contrast 1 ± j, gains 1 ± j/2).
    #[arg(long, default_value_t = PerturbOptions::default().jitter)]
    pub jitter: f64,
    /// No flips in the perturbed copies.
    #[arg(long)]
    pub no_flips: bool,
    /// Also train on the target's test images, unlabeled (their masks are never read).
    #[arg(long)]
    pub target_test: bool,
    /// Folder of the feature cache (every training image's encoder outputs, written once,
    /// reused by --resume). Default: the --out folder. A folder shared by runs on the same
    /// data encodes the images once.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Memory for feature sets, e.g. 512M, 2G (powers of 1024); the rest are read from the
    /// cache file at each step. Default: 1/8 of RAM, at most 512 MiB.
    #[arg(long, value_name = "SIZE", value_parser = parse_bytes)]
    pub cache_mem: Option<u64>,
    /// Threads of candle's elementwise kernels (CANDLE_NUM_THREADS wins when set). Its CPU
    /// pool spin-waits, which costs more than it gains on a few busy cores.
    #[arg(long, default_value_t = 1)]
    pub candle_threads: usize,
}

impl TrainOpts {
    /// Sets candle's thread counts from the environment's point of view. Must run before
    /// any thread is started (it is the first thing `train` and `eval-split` do).
    /// `RAYON_NUM_THREADS` is set to the machine's parallelism (rayon's own default) when
    /// unset, because candle otherwise re-counts physical cores from /proc on every matmul.
    pub fn apply_threads(&self) {
        if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
            std::env::set_var("CANDLE_NUM_THREADS", self.candle_threads.max(1).to_string());
        }
        if std::env::var_os("RAYON_NUM_THREADS").is_none() {
            let n = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            std::env::set_var("RAYON_NUM_THREADS", n.to_string());
        }
    }

    /// The feature cache options.
    pub fn cache(&self) -> CacheOptions {
        CacheOptions { dir: self.cache_dir.clone(), mem_budget: self.cache_mem }
    }

    pub fn config(&self, model: &nexvitad::Model) -> TrainConfig {
        let d = TrainConfig::for_model(model.manifest());
        TrainConfig {
            epochs: self.epochs,
            batch: self.batch,
            lr: self.lr,
            weight_decay: self.weight_decay,
            theta: self.theta.unwrap_or(d.theta),
            lambda1: self.lambda1.unwrap_or(d.lambda1),
            lambda2: self.lambda2.unwrap_or(d.lambda2),
            seed: self.seed,
            decoder_width: self.decoder_width,
            checkpoint_every: self.checkpoint_every,
            perturb: PerturbOptions { copies: self.copies, noise_std: self.noise, jitter: self.jitter, flips: !self.no_flips },
        }
    }
}

/// A byte count: digits (a decimal point allowed) and an optional K, M, G or T (powers of
/// 1024; a trailing "B" or "iB" is accepted), e.g. `512M`, `1.5G`, `1073741824`.
pub fn parse_bytes(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let body = lower.strip_suffix("ib").or_else(|| lower.strip_suffix('b')).unwrap_or(&lower);
    let (num, mult) = match body.chars().last() {
        Some('k') => (&body[..body.len() - 1], 1u64 << 10),
        Some('m') => (&body[..body.len() - 1], 1 << 20),
        Some('g') => (&body[..body.len() - 1], 1 << 30),
        Some('t') => (&body[..body.len() - 1], 1 << 40),
        _ => (body, 1),
    };
    let v: f64 = num.trim().parse().map_err(|_| format!("'{s}' is not a size: give bytes, or a number with K, M, G or T (e.g. 512M, 2G)"))?;
    if !(v.is_finite() && v >= 0.0) || v * mult as f64 >= u64::MAX as f64 {
        return Err(format!("'{s}' is not a size: it must be a finite number >= 0"));
    }
    Ok((v * mult as f64).round() as u64)
}

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Dataset root (MVTec AD layout).
    #[arg(long)]
    data: PathBuf,
    /// Labelled source domains, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    sources: Vec<String>,
    /// The unlabeled target domain.
    #[arg(long)]
    target: String,
    /// Output model folder (new or empty; with --resume, the stopped run's folder).
    #[arg(long)]
    out: PathBuf,
    /// Continue the run whose checkpoint is in --out.
    #[arg(long)]
    resume: bool,
    #[command(flatten)]
    train: TrainOpts,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Set by Ctrl-C; the training loop stops after the current step and writes a checkpoint.
static STOP: AtomicBool = AtomicBool::new(false);

/// Installs the Ctrl-C handler once: the first press asks the run to stop cleanly, a
/// second one exits at once.
pub fn install_stop_handler() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if STOP.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("\nstopping after this step (writing a checkpoint); press Ctrl-C again to abort");
        });
    });
}

/// Whether Ctrl-C was pressed.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Progress bars for a training run: encoding, then steps with the loss terms.
pub struct TrainBars {
    bar: ProgressBar,
    phase: u8,
}

impl TrainBars {
    pub fn new(label: &str, quiet: bool) -> Self {
        let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(0) };
        bar.set_prefix(label.to_string());
        Self { bar, phase: 0 }
    }

    /// The library callback: false once Ctrl-C was pressed.
    pub fn update(&mut self, e: TrainEvent<'_>) -> bool {
        match e {
            TrainEvent::Encode { done, total } => {
                if self.phase != 1 {
                    self.phase = 1;
                    self.bar.set_style(
                        ProgressStyle::with_template("{prefix:>10} encode [{bar:30}] {pos}/{len} images {per_sec} {elapsed}<{eta}")
                            .unwrap_or_else(|_| ProgressStyle::default_bar())
                            .progress_chars("=> "),
                    );
                }
                self.bar.set_length(total as u64);
                self.bar.set_position(done as u64);
            }
            TrainEvent::Step(p) => {
                if self.phase != 2 {
                    self.phase = 2;
                    self.bar.set_style(
                        ProgressStyle::with_template("{prefix:>10} train [{bar:30}] {pos}/{len} {elapsed}<{eta} {msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_bar())
                            .progress_chars("=> "),
                    );
                    self.bar.set_length(p.total_steps as u64);
                }
                self.bar.set_position(p.global_step as u64);
                let m = &p.epoch_mean;
                self.bar.set_message(format!(
                    "epoch {}/{} L {:.3} src {:.3} pl {:.3} cons {:.4} cov {:.0}%",
                    p.epoch + 1,
                    p.epochs,
                    m.loss,
                    m.l_src,
                    m.l_pl,
                    m.l_cons,
                    100.0 * m.coverage
                ));
            }
        }
        !stop_requested()
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

pub fn print_summary(s: &TrainSummary) {
    println!("trained {} <- {} ({} source images, {} target images)", s.target, s.sources.join(","), s.source_images, s.target_images);
    println!("{:>6} {:>8} {:>8} {:>8} {:>9} {:>9}", "epoch", "loss", "L_src", "L_pl", "L_cons", "coverage");
    for (e, h) in s.history.iter().enumerate() {
        println!("{:>6} {:>8.4} {:>8.4} {:>8.4} {:>9.5} {:>8.1}%", e + 1, h.loss, h.l_src, h.l_pl, h.l_cons, 100.0 * h.coverage);
    }
    let per_epoch = if s.steps_run > 0 { s.train_s / s.steps_run as f64 * s.steps_per_epoch as f64 } else { 0.0 };
    let c = &s.cache;
    let hb = nexvitad::train::cache::human_bytes;
    let held = if c.resident == c.feature_sets {
        format!("all held in memory ({} of the {} budget)", hb(c.resident_bytes), hb(c.mem_budget))
    } else {
        format!("{} held in memory ({} of the {} budget), the others read from the file at each step", c.resident, hb(c.resident_bytes), hb(c.mem_budget))
    };
    println!(
        "feature cache {} ({}, {} feature sets: {} encoded, {} reused{}); {held}",
        c.path.display(),
        hb(c.bytes),
        c.feature_sets,
        c.encoded,
        c.reused,
        if c.rebuilt { ", its corrupt header rebuilt" } else { "" },
    );
    println!(
        "{} steps ({} in this run); encoding {:.1} s (once), training {:.1} s ({:.1} s/epoch); model in {} (fingerprint {}…)",
        s.steps,
        s.steps_run,
        s.encode_s,
        s.train_s,
        per_epoch,
        s.out.display(),
        &s.fingerprint[..12.min(s.fingerprint.len())]
    );
}

pub fn run(a: TrainArgs) -> nexvitad::Result<()> {
    a.train.apply_threads();
    super::init_thread_pool(0);
    let model = a.model.open()?;
    let cfg = a.train.config(&model);
    let spec = TrainSpec { root: a.data.clone(), sources: a.sources.clone(), target: a.target.clone(), target_test: a.train.target_test };
    install_stop_handler();
    let mut bars = TrainBars::new(&a.target, a.json);
    let cache = a.train.cache();
    let res = train_model(&model, &spec, &cfg, &a.out, a.resume, &cache, &mut |e| bars.update(e));
    bars.finish();
    match res {
        Ok(s) => {
            if a.json {
                let mut v = serde_json::to_value(&s).map_err(|e| nexvitad::Error::Internal(e.to_string()))?;
                v["peak_rss_bytes"] = serde_json::json!(super::bench::vm_kb("VmHWM").map(|kb| kb * 1024));
                println!("{v}");
            } else {
                print_summary(&s);
            }
            Ok(())
        }
        Err(nexvitad::Error::Cancelled) => {
            let ckpt = a.out.join(CHECKPOINT_FILE);
            let cache_file = cache.dir.clone().unwrap_or_else(|| a.out.clone()).join(CACHE_FILE);
            if ckpt.is_file() {
                eprintln!("stopped; checkpoint in {}. Continue with the same command plus --resume.", ckpt.display());
            } else if cache_file.is_file() {
                eprintln!(
                    "stopped while encoding; the feature sets encoded so far are in {}. Continue with the same command plus --resume.",
                    cache_file.display()
                );
            } else {
                eprintln!("stopped before anything was encoded; nothing to resume.");
            }
            Err(nexvitad::Error::Cancelled)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap's own consistency checks over every sub-command (duplicate option names between
    /// flattened groups, bad defaults) run only on demand: demand them.
    #[test]
    fn command_line_definition_is_consistent() {
        super::super::Cli::command().debug_assert();
    }

    #[test]
    fn sizes_parse_in_powers_of_1024() {
        use super::parse_bytes;
        assert_eq!(parse_bytes("512M"), Ok(512 << 20));
        assert_eq!(parse_bytes("2G"), Ok(2 << 30));
        assert_eq!(parse_bytes("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_bytes("64kb"), Ok(64 << 10));
        assert_eq!(parse_bytes("1073741824"), Ok(1 << 30));
        assert_eq!(parse_bytes("0"), Ok(0));
        for bad in ["", "G", "-1G", "lots", "1e400", "nanM"] {
            assert!(parse_bytes(bad).unwrap_err().contains("is not a size"), "{bad}");
        }
    }
}
