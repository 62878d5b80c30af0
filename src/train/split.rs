//! The split protocol behind `nexvitad eval-split`: train on the source domains, adapt to
//! one target, then evaluate the target's test set with both bank scorers on the base
//! (untrained) and on the trained head, and with the trained decoder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::bank::{BankOptions, Progress, ScorerKind};
use crate::error::{Error, Result};
use crate::eval::{evaluate_category, EvalOptions};
use crate::metrics::Metrics;
use crate::model::Model;

use super::{train_model, StepStats, TrainConfig, TrainEvent, TrainSpec};

/// How each target is evaluated.
#[derive(Debug, Clone)]
pub struct SplitOptions {
    /// Good target training images in each bank (the first M).
    pub shots: usize,
    /// Bank settings; the scorer field is replaced by each of [`BANK_SCORERS`].
    pub bank: BankOptions,
    /// Also train on the target's test images, unlabeled (off by default: they are the
    /// evaluation set).
    pub target_test: bool,
    /// The feature cache of each training: its folder (a sub-folder per target is used
    /// inside it; `None`: the target's model folder) and memory budget.
    pub cache: super::CacheOptions,
}

/// The bank scorers every row reports.
pub const BANK_SCORERS: [ScorerKind; 2] = [ScorerKind::Sinkhorn, ScorerKind::Full];

/// One target's result.
#[derive(Debug, Clone, Serialize)]
pub struct SplitRow {
    /// Target domain.
    pub target: String,
    /// Source domains trained on (the given list without the target).
    pub sources: Vec<String>,
    /// Normal training images in each bank.
    pub shots: usize,
    /// Training seed.
    pub seed: u64,
    /// Training epochs.
    pub epochs: usize,
    /// Training steps in all.
    pub steps: usize,
    /// Mean loss terms of the last epoch.
    pub final_loss: StepStats,
    /// Seconds encoding the training images.
    pub encode_s: f64,
    /// Seconds training.
    pub train_s: f64,
    /// Size of the training's feature cache on disk, in bytes.
    pub cache_bytes: u64,
    /// The trained model folder.
    pub model: PathBuf,
    /// Bank scorers on the base model's head (the untrained head unless the base model was
    /// itself trained; `base_trained` says which).
    pub base: BTreeMap<String, Metrics>,
    /// Whether the base model's head was itself trained.
    pub base_trained: bool,
    /// Bank scorers on the trained head, and the trained decoder.
    pub trained: BTreeMap<String, Metrics>,
}

/// What [`eval_split_target`] is doing, for progress display.
#[derive(Debug, Clone, Copy)]
pub enum SplitEvent<'a> {
    /// A training event.
    Train(TrainEvent<'a>),
    /// Evaluating `what` (e.g. `trained sinkhorn`).
    Eval {
        /// What is being evaluated.
        what: &'a str,
        /// The bank build's or the scoring's progress.
        progress: Progress,
    },
}

/// Trains on `sources` (minus `target`, so a leave-one-domain-out list can be passed as
/// is), writes the model to `out`, and evaluates `target`.
pub fn eval_split_target(
    model: &Model,
    root: &Path,
    sources: &[String],
    target: &str,
    cfg: &TrainConfig,
    opts: &SplitOptions,
    out: &Path,
    progress: &mut dyn FnMut(SplitEvent<'_>) -> bool,
) -> Result<SplitRow> {
    let srcs: Vec<String> = sources.iter().filter(|s| s.as_str() != target).cloned().collect();
    if srcs.is_empty() {
        return Err(Error::invalid(format!("no source domain left for target '{target}'")));
    }
    let spec = TrainSpec { root: root.to_path_buf(), sources: srcs.clone(), target: target.to_string(), target_test: opts.target_test };
    // Check the domains before spending time on the baseline.
    spec.validate()?;
    // One cache folder per target: each target's training data differs.
    let cache = super::CacheOptions { dir: opts.cache.dir.as_ref().map(|d| d.join(target)), mem_budget: opts.cache.mem_budget };
    let summary = train_model(model, &spec, cfg, out, false, &cache, &mut |e| progress(SplitEvent::Train(e)))?;
    let trained_model = Model::open(out, model.options())?;

    let mut base = BTreeMap::new();
    let mut trained = BTreeMap::new();
    for (label, m, dst) in [("base", model, &mut base), ("trained", &trained_model, &mut trained)] {
        for kind in BANK_SCORERS {
            let what = format!("{label} {}", kind.name());
            let eo = EvalOptions::new(opts.shots, BankOptions { scorer: kind, ..opts.bank.clone() });
            let r = evaluate_category(m, root, target, &eo, &mut |p| progress(SplitEvent::Eval { what: &what, progress: p }))?;
            dst.insert(kind.name().to_string(), r.metrics);
        }
    }
    let what = "trained decoder".to_string();
    let eo = EvalOptions::new(opts.shots, opts.bank.clone());
    let r = super::score::evaluate_decoder(&trained_model, root, target, &eo, &mut |p| progress(SplitEvent::Eval { what: &what, progress: p }))?;
    trained.insert("decoder".to_string(), r.metrics);
    Ok(SplitRow {
        target: target.to_string(),
        sources: srcs,
        shots: opts.shots,
        seed: cfg.seed,
        epochs: cfg.epochs,
        steps: summary.steps,
        final_loss: summary.history.last().copied().unwrap_or_default(),
        encode_s: summary.encode_s,
        train_s: summary.train_s,
        cache_bytes: summary.cache.bytes,
        model: out.to_path_buf(),
        base,
        base_trained: model.head().is_trained(),
        trained,
    })
}
