//! Training: adapt the fusion head (adapters Eq. 1, projections Eq. 2) to labelled source
//! domains and one unlabeled target domain through a multi-task decoder (docs/method.md,
//! Training).
//!
//! * Gradients come from candle's autodiff over the same [`crate::fusion::fuse_stage`] that
//!   inference runs; the optimiser is AdamW (see [`optim`] for why it is candle-nn's update
//!   with its state exposed).
//! * Backbones are frozen, so [`data::TrainData::load`] encodes each image once per
//!   perturbation into the feature cache ([`cache`]: one file, a memory budget) and every
//!   epoch, and a `--resume`d run, reuses those features.
//! * Loss `L = L_src + λ1·L_pl + λ2·L_cons` ([`loss`]):
//!   - `L_src`: each source image through its domain's segmentation head, BCE + Dice
//!     against its mask (good images: all-normal). The target's pseudo-labelling head is
//!     supervised by the same masks from every source (**choice**: the paper does not say
//!     what teaches it; the sources are the only labels there are), so it is a
//!     domain-general defect detector.
//!   - `L_pl`: that head labels the target images; cells whose larger class probability
//!     exceeds θ get its label, and the target segmentation head is trained on them (CE).
//!   - `L_cons`: MSE between the target head's probabilities on a target image and on a
//!     perturbed copy (noise, colour jitter, flips mapped back).
//! * Output ([`train_model`]): a new model folder (backbones linked, `head.safetensors`,
//!   `decoder.safetensors`, `model.json` with a `training` record) and a checkpoint that
//!   `--resume` continues from to the same result as an unbroken run.

pub mod cache;
pub mod data;
pub mod decoder;
pub mod loss;
pub mod ops;
pub mod optim;
pub mod score;
pub mod split;
pub mod trainer;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use cache::{CacheOptions, CACHE_FILE};
pub use data::{LoadStats, PerturbOptions, TrainData, TrainSpec};
pub use decoder::{Decoder, DECODER_FILE};
pub use trainer::{Position, StepProgress, StepStats, TrainConfig, Trainer, CHECKPOINT_FILE};

use crate::error::{Error, Result};
use crate::model::{Model, HEAD_FILE};

/// What a training run reports to its caller.
#[derive(Debug, Clone, Copy)]
pub enum TrainEvent<'a> {
    /// Encoding the images (once per perturbation): `done` of `total`.
    Encode {
        /// Images and perturbed copies encoded so far.
        done: usize,
        /// Images and perturbed copies to encode in all.
        total: usize,
    },
    /// A step finished.
    Step(&'a StepProgress),
}

/// Callback for [`train_model`]; returning `false` stops the run (a checkpoint is written).
pub type TrainProgressFn<'a> = &'a mut dyn FnMut(TrainEvent<'_>) -> bool;

/// The result of [`train_model`].
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    /// The trained model folder.
    pub out: PathBuf,
    /// Source domains, in order.
    pub sources: Vec<String>,
    /// Target domain.
    pub target: String,
    /// Labelled source images trained on.
    pub source_images: usize,
    /// Unlabelled target images trained on.
    pub target_images: usize,
    /// Steps taken in all, a resumed run's earlier steps included.
    pub steps: usize,
    /// Steps this call ran (fewer than `steps` after `--resume`) and steps per epoch.
    pub steps_run: usize,
    /// See `steps_run`.
    pub steps_per_epoch: usize,
    /// Mean loss terms of each epoch.
    pub history: Vec<StepStats>,
    /// Seconds spent encoding (once) and training.
    pub encode_s: f64,
    /// See `encode_s`.
    pub train_s: f64,
    /// The feature cache: where, how large, what this call encoded and reused, what it held
    /// in memory.
    pub cache: CacheSummary,
    /// Fingerprint of the trained model (its banks must be built with it).
    pub fingerprint: String,
}

/// The feature cache of a training run, as [`TrainSummary`] reports it.
#[derive(Debug, Clone, Serialize)]
pub struct CacheSummary {
    /// The cache file.
    pub path: PathBuf,
    /// Its size on disk, in bytes.
    pub bytes: u64,
    /// Feature sets in it (source images, target images and their perturbed copies).
    pub feature_sets: usize,
    /// Feature sets this call encoded.
    pub encoded: usize,
    /// Feature sets this call found in the cache (from a stopped or earlier run).
    pub reused: usize,
    /// The cache file existed with a corrupt header and was rebuilt.
    pub rebuilt: bool,
    /// The memory budget in effect, in bytes.
    pub mem_budget: u64,
    /// Feature sets held in memory; the others were read from the file at each use.
    pub resident: usize,
    /// Bytes of the feature sets held in memory.
    pub resident_bytes: u64,
}

/// Trains `model`'s head on `spec` and writes the trained model folder `out`.
///
/// `out` must be new or empty unless `resume` is set, in which case it must hold the
/// checkpoint of a run with the same data and settings, or the feature cache of a run
/// stopped while encoding (it then starts from the first step without re-encoding what is
/// cached). The backbones are hard-linked from the base model (copied where linking fails).
/// The feature cache stays in `cache.dir` (default: `out`) after the run, so a `--resume`
/// with more epochs does not encode again; delete it when the model is final.
pub fn train_model(model: &Model, spec: &TrainSpec, cfg: &TrainConfig, out: &Path, resume: bool, cache: &CacheOptions, progress: TrainProgressFn<'_>) -> Result<TrainSummary> {
    spec.validate()?;
    cfg.validate()?;
    if cache.mem_budget == Some(0) {
        return Err(Error::invalid("feature cache memory budget is 0; it must hold at least one training step's feature sets (leave it unset for the default)"));
    }
    let ckpt = out.join(CHECKPOINT_FILE);
    let cache_dir = cache.dir.clone().unwrap_or_else(|| out.to_path_buf());
    if resume {
        if !ckpt.is_file() && !cache_dir.join(CACHE_FILE).is_file() {
            return Err(Error::invalid(format!(
                "cannot resume: no checkpoint '{}' and no feature cache '{}'",
                ckpt.display(),
                cache_dir.join(CACHE_FILE).display()
            )));
        }
    } else if out.exists() {
        let empty = std::fs::read_dir(out).map_err(|e| Error::io("cannot list", out, e))?.next().is_none();
        if !empty {
            return Err(Error::invalid(format!(
                "output folder '{}' is not empty; choose a new folder, or pass --resume to continue its run",
                out.display()
            )));
        }
    }
    if out.exists() && !out.is_dir() {
        return Err(Error::invalid(format!("output '{}' is not a folder", out.display())));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io("cannot create", out, e))?;
    if std::fs::canonicalize(out).ok() == std::fs::canonicalize(model.dir()).ok() {
        return Err(Error::invalid("the output folder must differ from the base model folder"));
    }

    let t0 = std::time::Instant::now();
    let data = TrainData::load(model, spec, cfg, &cache_dir, cache.mem_budget, &mut |done, total| progress(TrainEvent::Encode { done, total }))?;
    let encode_s = t0.elapsed().as_secs_f64();
    let (n_src, n_tgt) = (data.source_samples.len(), data.target_samples.len());
    let (resident, resident_bytes) = data.cache().resident();
    let cache_summary = CacheSummary {
        path: data.cache().path().to_path_buf(),
        bytes: data.cache().file_bytes(),
        feature_sets: data.cache().records(),
        encoded: data.load_stats.encoded,
        reused: data.load_stats.reused,
        rebuilt: data.load_stats.rebuilt,
        mem_budget: data.load_stats.mem_budget,
        resident,
        resident_bytes,
    };
    let mut trainer = Trainer::new(model.manifest(), model.head(), data, cfg)?;
    if resume && ckpt.is_file() {
        trainer.load_checkpoint(&ckpt)?;
    }
    let first_step = trainer.global_step();
    link_backbones(model, out)?;
    let t1 = std::time::Instant::now();
    trainer.run(Some(&ckpt), &mut |p| progress(TrainEvent::Step(p)))?;
    let train_s = t1.elapsed().as_secs_f64();
    trainer.save_checkpoint(&ckpt)?;
    let fingerprint = write_outputs(model, spec, &trainer, out)?;
    Ok(TrainSummary {
        out: out.to_path_buf(),
        sources: spec.sources.clone(),
        target: spec.target.clone(),
        source_images: n_src,
        target_images: n_tgt,
        steps: trainer.global_step(),
        steps_run: trainer.global_step() - first_step,
        steps_per_epoch: trainer.steps_per_epoch(),
        history: trainer.history().to_vec(),
        encode_s,
        train_s,
        cache: cache_summary,
        fingerprint,
    })
}

/// `p` made absolute (as given where that fails).
fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Hard-links (or copies) the two ONNX files into `out`.
fn link_backbones(model: &Model, out: &Path) -> Result<()> {
    let m = model.manifest();
    for name in [&m.hiera.file, &m.dinov2.file] {
        let src = model.dir().join(name);
        let dst = out.join(name);
        if dst.exists() {
            continue;
        }
        if std::fs::hard_link(&src, &dst).is_err() {
            let tmp = out.join(format!(".{name}.tmp-{}", std::process::id()));
            std::fs::copy(&src, &tmp).map_err(|e| Error::io("cannot copy backbone", &src, e))?;
            std::fs::rename(&tmp, &dst).map_err(|e| Error::io("cannot write", &dst, e))?;
        }
    }
    Ok(())
}

/// Writes `head.safetensors`, `decoder.safetensors` and `model.json` (each atomically;
/// the manifest last, so a folder with a manifest always has its head). Returns the
/// trained model's fingerprint.
fn write_outputs(model: &Model, spec: &TrainSpec, trainer: &Trainer, out: &Path) -> Result<String> {
    let head = trainer.head()?;
    let mut hm = std::collections::HashMap::new();
    hm.insert("target".to_string(), spec.target.clone());
    hm.insert("sources".to_string(), serde_json::to_string(&spec.sources).unwrap_or_default());
    let head_bytes = head.to_bytes(hm.clone())?;
    crate::fsutil::atomic_write(&out.join(HEAD_FILE), &head_bytes)?;
    let fingerprint = crate::model::fingerprint(model.manifest(), &model.backbones().file_hashes, Some(&head_bytes));

    let list = trainer.decoder_tensors()?;
    let named: Vec<crate::tensors::Named<'_>> = list.iter().map(|(n, s, d)| crate::tensors::Named { name: n.clone(), shape: s.clone(), data: d }).collect();
    let mut dm = hm;
    dm.insert("format".to_string(), "nexvitad-decoder".to_string());
    dm.insert("format_version".to_string(), decoder::DECODER_FORMAT_VERSION.to_string());
    dm.insert("fingerprint".to_string(), fingerprint.clone());
    let bytes = crate::fusion::canonical_safetensors(crate::tensors::to_bytes(&named, dm)?)?;
    crate::fsutil::atomic_write(&out.join(DECODER_FILE), &bytes)?;

    let mut manifest = model.manifest().clone();
    manifest.training = Some(serde_json::json!({
        "sources": spec.sources,
        "target": spec.target,
        "target_test_images": spec.target_test,
        // Absolute, so the record still says where they were when the folder is moved.
        "data_root": absolute(&spec.root),
        "base_model": absolute(model.dir()),
        "base_fingerprint": model.fingerprint(),
        "config": trainer.config(),
        "steps": trainer.global_step(),
        "epoch_losses": trainer.history(),
        "source_images": trainer.data().source_samples.len(),
        "target_images": trainer.data().target_samples.len(),
    }));
    crate::fsutil::atomic_write(&out.join("model.json"), manifest.to_json().as_bytes())?;
    Ok(fingerprint)
}
