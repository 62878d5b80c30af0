//! `nexvitad eval-split`: the cross-domain protocol. For each target: train on the sources
//! (minus the target), adapt to the target, evaluate it with the bank scorers on the base
//! and the trained head and with the decoder. One JSON row per target.
use std::path::PathBuf;

use clap::Args;
use indicatif::ProgressBar;
use nexvitad::train::split::{eval_split_target, SplitEvent, SplitOptions, SplitRow};
use nexvitad::train::{CACHE_FILE, CHECKPOINT_FILE, DECODER_FILE};

use super::train::{install_stop_handler, stop_requested, TrainBars, TrainOpts};
use super::ModelArgs;

#[derive(Args)]
pub struct EvalSplitArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Dataset root (MVTec AD layout).
    #[arg(long)]
    data: PathBuf,
    /// Source domains, comma-separated; each target is left out of its own sources.
    #[arg(long, value_delimiter = ',', required = true)]
    sources: Vec<String>,
    /// Target domains, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    targets: Vec<String>,
    /// Good target images in each bank.
    #[arg(long, default_value_t = 4)]
    shots: usize,
    /// Folder for the trained models, one sub-folder per target (replaced when it holds an
    /// earlier eval-split model).
    #[arg(long, default_value = "out/eval-split")]
    out: PathBuf,
    #[command(flatten)]
    train: TrainOpts,
    /// Prototypes of the sinkhorn scorer, > 0 [default: the model's; 30 in the method].
    #[arg(long, value_name = "K")]
    k: Option<usize>,
    /// Gaussian sigma of the maps in pixels, in [0, 1000] [default: the model's; 4 in the
    /// method].
    #[arg(long, value_name = "PX", allow_negative_numbers = true)]
    sigma: Option<f32>,
    /// Print one JSON object per target.
    #[arg(long)]
    json: bool,
}

/// Removes `dir` only when it is a training folder written by us (a finished model, or a
/// stopped run's checkpoint), so a mistyped --out never deletes unrelated files.
fn clear_previous(dir: &std::path::Path) -> nexvitad::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let empty = std::fs::read_dir(dir).map(|mut d| d.next().is_none()).unwrap_or(false);
    // A run stopped while encoding leaves only its feature cache.
    let ours = empty || dir.join(CHECKPOINT_FILE).is_file() || dir.join(CACHE_FILE).is_file() || (dir.join(DECODER_FILE).is_file() && dir.join("model.json").is_file());
    if !ours {
        return Err(nexvitad::Error::invalid(format!(
            "'{}' exists and is not an earlier eval-split model; choose another --out",
            dir.display()
        )));
    }
    std::fs::remove_dir_all(dir).map_err(|e| nexvitad::Error::io("cannot clear", dir, e))
}

fn print_rows(rows: &[SplitRow]) {
    println!(
        "{:<10} {:<9} {:<9} {:>8} {:>9} {:>9} {:>8}",
        "target", "head", "scorer", "img AUC", "pix AUC", "pix AP", "PRO"
    );
    for r in rows {
        for (head, map) in [("base", &r.base), ("trained", &r.trained)] {
            for (scorer, m) in map {
                println!(
                    "{:<10} {:<9} {:<9} {:>8.3} {} {} {}",
                    r.target,
                    head,
                    scorer,
                    m.image_auroc,
                    super::eval::cell(m.pixel_auroc, 9),
                    super::eval::cell(m.pixel_ap, 9),
                    super::eval::cell(m.pro, 8)
                );
            }
        }
    }
}

pub fn run(a: EvalSplitArgs) -> nexvitad::Result<()> {
    a.train.apply_threads();
    super::init_thread_pool(0);
    let model = a.model.open()?;
    let cfg = a.train.config(&model);
    cfg.validate()?;
    // Banks use the training seed too, so one --seed fixes the whole row.
    let bank = nexvitad::BankOptions { k: a.k, sigma: a.sigma, seed: a.train.seed, ..Default::default() };
    let opts = SplitOptions { shots: a.shots, bank, target_test: a.train.target_test, cache: a.train.cache() };
    install_stop_handler();
    let mut rows = Vec::new();
    for t in &a.targets {
        let out = a.out.join(t);
        clear_previous(&out)?;
        let mut train_bars = TrainBars::new(t, a.json);
        let eval_bar = if a.json { ProgressBar::hidden() } else { ProgressBar::new(0) };
        let row = eval_split_target(&model, &a.data, &a.sources, t, &cfg, &opts, &out, &mut |e| match e {
            SplitEvent::Train(e) => train_bars.update(e),
            SplitEvent::Eval { what, progress } => {
                train_bars.finish();
                eval_bar.set_length(progress.total as u64);
                eval_bar.set_position(progress.done as u64);
                eval_bar.set_message(format!("{t}: {what}"));
                !stop_requested()
            }
        });
        train_bars.finish();
        eval_bar.finish_and_clear();
        if let Err(nexvitad::Error::Cancelled) = &row {
            eprintln!("stopped during target '{t}'; rows above are complete");
        }
        let row = row?;
        if a.json {
            println!("{}", serde_json::to_string(&row).map_err(|e| nexvitad::Error::Internal(e.to_string()))?);
        }
        rows.push(row);
    }
    if !a.json {
        print_rows(&rows);
    }
    Ok(())
}
