//! The training loop: fusion head + decoder + heads as candle `Var`s, one AdamW, checkpoints.
//!
//! Every random choice (initialisation, epoch order, which perturbed copy a step uses) is
//! derived from `(seed, what, epoch, step)`, so a checkpoint needs only the weights, the
//! optimiser state and the position to continue exactly as an unbroken run would.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::ParamsAdamW;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use super::data::{derive_seed, Features, Flip, PerturbOptions, TrainData};
use super::decoder::{head_logits, head_prefixes, trunk_names, Trunk, TARGET_PL, TARGET_SEG};
use super::loss;
use super::optim::AdamW;
use crate::error::{Error, Result};
use super::ops::{fuse_batch, stage_tensors, stage_weights, tensor_err};
use crate::fusion::{Head, StageParams, StageWeights, STAGE_TENSOR_NAMES};
use crate::manifest::Manifest;

/// Checkpoint file format version.
pub const CHECKPOINT_FORMAT_VERSION: u32 = 1;
/// File name of the checkpoint inside the output folder.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
const MAX_CHECKPOINT_BYTES: u64 = 4 << 30;

const TAG_INIT: u64 = 2;
const TAG_EPOCH_SRC: u64 = 3;
const TAG_EPOCH_TGT: u64 = 4;
const TAG_COPY: u64 = 5;

/// Prior defect share the segmentation heads start from (their bias is its logit), so
/// early steps are not dominated by the overwhelmingly normal pixels.
const PRIOR_DEFECT: f64 = 0.05;

/// How to train. Every field is an option of `nexvitad train`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the source images (at least 1).
    pub epochs: usize,
    /// Source images per step (and as many target images, each with a perturbed copy).
    pub batch: usize,
    /// AdamW learning rate (finite, > 0).
    pub lr: f64,
    /// AdamW decoupled weight decay (finite, >= 0).
    pub weight_decay: f64,
    /// Confidence a pseudo label needs (max class probability), in (0, 1).
    pub theta: f64,
    /// Weight of the pseudo-label term.
    pub lambda1: f64,
    /// Weight of the consistency term.
    pub lambda2: f64,
    /// Seed of the weight initialisation, the batch order and the perturbations.
    pub seed: u64,
    /// Channels of the decoder trunk.
    pub decoder_width: usize,
    /// Steps between checkpoints (0: only when stopped and at the end).
    pub checkpoint_every: usize,
    /// Perturbations of the target copies (consistency loss).
    pub perturb: PerturbOptions,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 4,
            batch: 8,
            lr: 1e-3,
            weight_decay: 0.01,
            theta: 0.7,
            lambda1: 1.0,
            lambda2: 0.5,
            seed: 0,
            decoder_width: 32,
            checkpoint_every: 20,
            perturb: PerturbOptions::default(),
        }
    }
}

impl TrainConfig {
    /// The defaults with θ, λ1 and λ2 taken from `model.json` (`defaults`). The model stores
    /// them as f32; each becomes the f64 of its shortest decimal form (0.7f32 → 0.7, not
    /// 0.699999988…), so a run started from the CLI and one started through the C ABI record
    /// the same configuration in `model.json` and can resume each other's checkpoints.
    pub fn for_model(manifest: &Manifest) -> Self {
        let d = &manifest.defaults;
        let decimal = |x: f32| x.to_string().parse().unwrap_or(x as f64);
        Self { theta: decimal(d.theta), lambda1: decimal(d.lambda1), lambda2: decimal(d.lambda2), ..Self::default() }
    }

    /// Rejects values that cannot train (each error names the option).
    pub fn validate(&self) -> Result<()> {
        if !(self.theta > 0.0 && self.theta < 1.0) {
            return Err(Error::invalid(format!("theta {} must be in (0, 1): it is the confidence a pseudo label needs", self.theta)));
        }
        for (n, v) in [("lambda1", self.lambda1), ("lambda2", self.lambda2)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::invalid(format!("{n} {v} must be finite and >= 0")));
            }
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::invalid(format!("learning rate {} must be finite and > 0", self.lr)));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::invalid(format!("weight decay {} must be finite and >= 0", self.weight_decay)));
        }
        if self.epochs == 0 {
            return Err(Error::invalid("epochs must be at least 1"));
        }
        if self.batch == 0 {
            return Err(Error::invalid("batch must be at least 1"));
        }
        if self.decoder_width == 0 {
            return Err(Error::invalid("decoder width must be at least 1"));
        }
        self.perturb.validate()
    }

    /// The settings a resumed run must share with the stopped one (all but the length and
    /// the checkpoint interval).
    fn resume_key(&self) -> serde_json::Value {
        let mut c = self.clone();
        c.epochs = 0;
        c.checkpoint_every = 0;
        serde_json::to_value(c).unwrap_or_default()
    }
}

/// Loss terms of one step (or their mean over steps).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StepStats {
    /// Total `L_src + λ1·L_pl + λ2·L_cons`.
    pub loss: f64,
    /// Source segmentation loss (BCE + Dice).
    pub l_src: f64,
    /// Pseudo-label cross-entropy on the confident target pixels.
    pub l_pl: f64,
    /// Consistency: mean squared difference between predictions on a target image and its perturbed copy.
    pub l_cons: f64,
    /// Share of target F1-grid cells whose pseudo label passed θ.
    pub coverage: f64,
}

impl StepStats {
    fn add(&mut self, o: &StepStats) {
        self.loss += o.loss;
        self.l_src += o.l_src;
        self.l_pl += o.l_pl;
        self.l_cons += o.l_cons;
        self.coverage += o.coverage;
    }
    fn scaled(&self, k: f64) -> StepStats {
        StepStats { loss: self.loss * k, l_src: self.l_src * k, l_pl: self.l_pl * k, l_cons: self.l_cons * k, coverage: self.coverage * k }
    }
}

/// Where the run stands: the next step to take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Position {
    /// Epoch, from 0.
    pub epoch: usize,
    /// Step within the epoch, from 0.
    pub step: usize,
}

/// What the progress callback sees after each step.
#[derive(Debug, Clone, Copy)]
pub struct StepProgress {
    /// The step's epoch, from 0.
    pub epoch: usize,
    /// Epochs of the run.
    pub epochs: usize,
    /// Steps done in this epoch, of `steps_per_epoch`.
    pub step: usize,
    /// See `step`.
    pub steps_per_epoch: usize,
    /// Steps done in the whole run, of `total_steps`.
    pub global_step: usize,
    /// `epochs × steps_per_epoch`.
    pub total_steps: usize,
    /// Loss terms of this step.
    pub stats: StepStats,
    /// Running mean over this epoch's steps so far.
    pub epoch_mean: StepStats,
}

/// The trainer: parameters, optimiser and data.
pub struct Trainer {
    cfg: TrainConfig,
    data: TrainData,
    manifest: Manifest,
    names: Vec<String>,
    vars: HashMap<String, Var>,
    opt: AdamW,
    pos: Position,
    history: Vec<StepStats>,
    epoch_sum: StepStats,
}

/// N(0, std) values from `rng`.
fn gaussian(rng: &mut ChaCha8Rng, n: usize, std: f64) -> Vec<f32> {
    let d = Normal::new(0.0f64, std).unwrap_or_else(|_| Normal::new(0.0, 1.0).expect("unit normal"));
    (0..n).map(|_| d.sample(rng) as f32).collect()
}

impl Trainer {
    /// A new run starting from `head` (the base model's head: its trained weights, or the
    /// seeded untrained head) with freshly initialised decoder and heads.
    pub fn new(manifest: &Manifest, head: &Head, data: TrainData, cfg: &TrainConfig) -> Result<Self> {
        cfg.validate()?;
        if data.source_samples.is_empty() || data.target_samples.is_empty() {
            return Err(Error::invalid("training needs source and target images"));
        }
        let dev = Device::Cpu;
        let mut names = Vec::new();
        let mut vars = HashMap::new();
        let mut add = |name: String, t: Tensor| -> Result<()> {
            vars.insert(name.clone(), Var::from_tensor(&t).map_err(tensor_err)?);
            names.push(name);
            Ok(())
        };
        for (s, p) in stage_tensors(head)?.iter().enumerate() {
            for (n, t) in STAGE_TENSOR_NAMES.iter().zip(p.to_array()) {
                add(format!("head.stage{}.{n}", s + 1), t.copy().map_err(tensor_err)?)?;
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(cfg.seed, &[TAG_INIT]));
        let w = cfg.decoder_width;
        let t = |v: Vec<f32>, shape: &[usize]| Tensor::from_vec(v, shape, &dev).map_err(tensor_err);
        for (s, &d) in manifest.fusion.shared_dims.iter().enumerate() {
            add(format!("decoder.lateral{}.weight", s + 1), t(gaussian(&mut rng, w * d, (1.0 / d as f64).sqrt()), &[w, d])?)?;
            add(format!("decoder.lateral{}.bias", s + 1), t(vec![0.0; w], &[w])?)?;
        }
        // He initialisation for the ReLU convolution.
        add("decoder.smooth.weight".into(), t(gaussian(&mut rng, w * w * 9, (2.0 / (9 * w) as f64).sqrt()), &[w, w, 3, 3])?)?;
        add("decoder.smooth.bias".into(), t(vec![0.0; w], &[w])?)?;
        let prior = (PRIOR_DEFECT / (1.0 - PRIOR_DEFECT)).ln() as f32;
        for p in head_prefixes(data.sources.len()) {
            add(format!("{p}.weight"), t(gaussian(&mut rng, w, (1.0 / w as f64).sqrt()), &[1, w])?)?;
            add(format!("{p}.bias"), t(vec![prior], &[1])?)?;
        }
        debug_assert!(trunk_names().iter().all(|n| vars.contains_key(n)));
        let params = ParamsAdamW { lr: cfg.lr, weight_decay: cfg.weight_decay, ..ParamsAdamW::default() };
        let opt = AdamW::new(names.iter().map(|n| (n.clone(), vars[n].clone())).collect(), params).map_err(tensor_err)?;
        Ok(Self { cfg: cfg.clone(), data, manifest: manifest.clone(), names, vars, opt, pos: Position::default(), history: Vec::new(), epoch_sum: StepStats::default() })
    }

    /// The training settings.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }
    /// The encoded training images.
    pub fn data(&self) -> &TrainData {
        &self.data
    }
    /// The next step to take.
    pub fn position(&self) -> Position {
        self.pos
    }
    /// Mean loss terms of each finished epoch.
    pub fn history(&self) -> &[StepStats] {
        &self.history
    }

    /// Source steps per epoch (the last batch may be short).
    pub fn steps_per_epoch(&self) -> usize {
        self.data.source_samples.len().div_ceil(self.cfg.batch)
    }

    fn var(&self, name: &str) -> Result<&Tensor> {
        self.vars.get(name).map(|v| v.as_tensor()).ok_or_else(|| Error::Internal(format!("no parameter '{name}'")))
    }

    /// The head's weights as the forward pass reads them (the live `Var`s).
    fn stage_params(&self) -> Result<Vec<StageParams<Tensor, Tensor>>> {
        (1..=4)
            .map(|s| {
                let get = |n: &str| self.var(&format!("head.stage{s}.{n}")).cloned();
                let t = [
                    get(STAGE_TENSOR_NAMES[0])?,
                    get(STAGE_TENSOR_NAMES[1])?,
                    get(STAGE_TENSOR_NAMES[2])?,
                    get(STAGE_TENSOR_NAMES[3])?,
                    get(STAGE_TENSOR_NAMES[4])?,
                    get(STAGE_TENSOR_NAMES[5])?,
                    get(STAGE_TENSOR_NAMES[6])?,
                    get(STAGE_TENSOR_NAMES[7])?,
                ];
                Ok(StageParams::from_array(t))
            })
            .collect()
    }

    fn trunk(&self) -> Result<Trunk> {
        Trunk::from_lookup(&|n| self.vars.get(n).map(|v| v.as_tensor().clone()))
    }

    /// The current head as inference loads it.
    pub fn head(&self) -> Result<Head> {
        let stages = self.stage_params()?.iter().map(stage_weights).collect::<Result<Vec<StageWeights>>>()?;
        Ok(Head::from_stages(&self.manifest, stages, true))
    }

    /// Fused scales F1..F4 of a stacked batch, through the shared forward pass.
    pub fn fuse(&self, hiera: &[Tensor; 4], dino: &Tensor) -> Result<Vec<Tensor>> {
        let group = self.manifest.fusion.interleave_group;
        self.stage_params()?
            .iter()
            .zip(hiera)
            .map(|(p, h)| fuse_batch(p, false, group, h, dino).map_err(tensor_err))
            .collect()
    }

    /// The images step `pos` uses: source indices, target indices and each target's copy.
    pub fn batch_of(&self, pos: Position) -> (Vec<usize>, Vec<(usize, usize)>) {
        let seed = self.cfg.seed;
        let (ns, nt) = (self.data.source_samples.len(), self.data.target_samples.len());
        let mut ps: Vec<usize> = (0..ns).collect();
        ps.shuffle(&mut ChaCha8Rng::seed_from_u64(derive_seed(seed, &[TAG_EPOCH_SRC, pos.epoch as u64])));
        let mut pt: Vec<usize> = (0..nt).collect();
        pt.shuffle(&mut ChaCha8Rng::seed_from_u64(derive_seed(seed, &[TAG_EPOCH_TGT, pos.epoch as u64])));
        let b = self.cfg.batch;
        let src = ps[(pos.step * b).min(ns)..((pos.step + 1) * b).min(ns)].to_vec();
        let bt = b.min(nt);
        let copies = self.cfg.perturb.copies as u64;
        let tgt = (0..bt)
            .map(|k| {
                let i = pt[(pos.step * bt + k) % nt];
                let c = derive_seed(seed, &[TAG_COPY, pos.epoch as u64, pos.step as u64, k as u64]) % copies;
                (i, c as usize)
            })
            .collect();
        (src, tgt)
    }

    /// The loss of one batch and its terms (the graph stays attached for `backward`).
    pub fn loss(&self, src: &[usize], tgt: &[(usize, usize)]) -> Result<(Tensor, StepStats)> {
        let d = &self.data;
        if src.is_empty() || tgt.is_empty() {
            return Err(Error::invalid("a training batch needs source and target images"));
        }
        if let Some(&i) = src.iter().find(|&&i| i >= d.source_samples.len()) {
            return Err(Error::invalid(format!("source image {i} is outside the {} source images", d.source_samples.len())));
        }
        if let Some(&(i, c)) = tgt.iter().find(|&&(i, c)| i >= d.target_samples.len() || c >= d.target_samples[i].copies.len()) {
            return Err(Error::invalid(format!("target image {i} copy {c} does not exist")));
        }
        let (bs, bt) = (src.len(), tgt.len());
        // Read from the feature cache (memory or disk) in the batch's order, so a cached run
        // sees the same values in the same places as one that holds everything in memory.
        let mut records: Vec<usize> = src.iter().map(|&i| d.source_samples[i].record).collect();
        records.extend(tgt.iter().map(|&(i, _)| d.target_samples[i].clean));
        records.extend(tgt.iter().map(|&(i, c)| d.target_samples[i].copies[c].0));
        let items = records.iter().map(|&r| d.features(r)).collect::<Result<Vec<Features>>>()?;
        let (hiera, dino) = Features::stack(&items.iter().collect::<Vec<_>>())?;
        drop(items);
        let fused = self.fuse(&hiera, &dino)?;
        let z = self.trunk()?.forward(&fused).map_err(tensor_err)?;
        let (gh, gw) = d.grid;
        let p = gh * gw;
        let te = tensor_err;

        // L_src: each source image through its own domain's head, plus the pseudo-labelling
        // head (which learns defects from every source), both BCE + Dice against the masks.
        let z_src = z.narrow(0, 0, bs).map_err(te)?;
        let ns = d.sources.len();
        let ws = Tensor::cat(&(0..ns).map(|i| self.var(&format!("seg.source{i}.weight")).cloned()).collect::<Result<Vec<_>>>()?, 0).map_err(te)?;
        let bsrc = Tensor::cat(&(0..ns).map(|i| self.var(&format!("seg.source{i}.bias")).cloned()).collect::<Result<Vec<_>>>()?, 0).map_err(te)?;
        let all = head_logits_multi(&z_src, &ws, &bsrc).map_err(te)?; // [bs, ns, p]
        let mut onehot = vec![0f32; bs * ns];
        for (k, &i) in src.iter().enumerate() {
            onehot[k * ns + d.source_samples[i].domain] = 1.0;
        }
        let onehot = Tensor::from_vec(onehot, (bs, ns, 1), &Device::Cpu).map_err(te)?;
        let seg_src = all.broadcast_mul(&onehot).and_then(|t| t.sum(1)).map_err(te)?;
        let masks: Vec<f32> = src.iter().flat_map(|&i| d.source_samples[i].mask.iter().copied()).collect();
        let masks = Tensor::from_vec(masks, (bs, p), &Device::Cpu).map_err(te)?;
        let (pl_w, pl_b) = (self.var(&format!("{TARGET_PL}.weight"))?, self.var(&format!("{TARGET_PL}.bias"))?);
        let pl_src = head_logits(&z_src, pl_w, pl_b).map_err(te)?;
        let l_src = (loss::bce_dice(&seg_src, &masks).map_err(te)? + loss::bce_dice(&pl_src, &masks).map_err(te)?).map_err(te)?;

        // L_pl: confident pseudo labels of the target images train the target head.
        let z_t = z.narrow(0, bs, bt).map_err(te)?;
        let z_p = z.narrow(0, bs + bt, bt).map_err(te)?;
        let (tw, tb) = (self.var(&format!("{TARGET_SEG}.weight"))?, self.var(&format!("{TARGET_SEG}.bias"))?);
        let (labels, weights) = loss::pseudo_labels(&head_logits(&z_t, pl_w, pl_b).map_err(te)?, self.cfg.theta).map_err(te)?;
        let seg_t = head_logits(&z_t, tw, tb).map_err(te)?;
        let l_pl = loss::pseudo_label_loss(&seg_t, &labels, &weights).map_err(te)?;

        // L_cons: the target head on the perturbed copy, flipped back, against the clean image.
        let seg_p = head_logits(&z_p, tw, tb).map_err(te)?;
        let flips: Vec<Flip> = tgt.iter().map(|&(i, c)| d.target_samples[i].copies[c].1).collect();
        let seg_p = unflip(&seg_p, &flips, gh, gw).map_err(te)?;
        let l_cons = loss::consistency_loss(&seg_t, &seg_p).map_err(te)?;

        let total = (&l_src + (&l_pl * self.cfg.lambda1).map_err(te)?).map_err(te)?;
        let total = (total + (&l_cons * self.cfg.lambda2).map_err(te)?).map_err(te)?;
        let scalar = |t: &Tensor| t.to_dtype(DType::F64).and_then(|t| t.to_scalar::<f64>()).map_err(te);
        let coverage = scalar(&weights.mean_all().map_err(te)?)?;
        let stats = StepStats { loss: scalar(&total)?, l_src: scalar(&l_src)?, l_pl: scalar(&l_pl)?, l_cons: scalar(&l_cons)?, coverage };
        Ok((total, stats))
    }

    /// One optimiser update on a given batch (source indices; target indices with the
    /// perturbed copy each uses). Does not move the run's position.
    pub fn train_on(&mut self, src: &[usize], tgt: &[(usize, usize)]) -> Result<StepStats> {
        let (total, stats) = self.loss(src, tgt)?;
        if !stats.loss.is_finite() {
            return Err(Error::Internal(format!("training diverged: loss is {} at epoch {} step {}", stats.loss, self.pos.epoch, self.pos.step)));
        }
        let grads = total.backward().map_err(tensor_err)?;
        self.opt.step(&grads).map_err(tensor_err)?;
        Ok(stats)
    }

    /// Runs the next step and advances the position.
    pub fn step(&mut self) -> Result<StepStats> {
        let (src, tgt) = self.batch_of(self.pos);
        let stats = self.train_on(&src, &tgt)?;
        self.epoch_sum.add(&stats);
        self.pos.step += 1;
        if self.pos.step == self.steps_per_epoch() {
            self.history.push(self.epoch_sum.scaled(1.0 / self.pos.step as f64));
            self.epoch_sum = StepStats::default();
            self.pos = Position { epoch: self.pos.epoch + 1, step: 0 };
        }
        Ok(stats)
    }

    /// Trains until `epochs` are done. After every step `progress` is called; returning
    /// false stops the run with [`Error::Cancelled`] after writing the checkpoint. A
    /// checkpoint is also written every `checkpoint_every` steps.
    pub fn run(&mut self, checkpoint: Option<&Path>, progress: &mut dyn FnMut(&StepProgress) -> bool) -> Result<()> {
        let spe = self.steps_per_epoch();
        let total_steps = spe * self.cfg.epochs;
        while self.pos.epoch < self.cfg.epochs {
            let epoch = self.pos.epoch;
            let stats = self.step()?;
            let global_step = self.global_step();
            let done = if self.pos.epoch != epoch { spe } else { self.pos.step };
            let epoch_mean = if self.pos.epoch != epoch { *self.history.last().unwrap_or(&stats) } else { self.epoch_sum.scaled(1.0 / done as f64) };
            let keep_going = progress(&StepProgress { epoch, epochs: self.cfg.epochs, step: done, steps_per_epoch: spe, global_step, total_steps, stats, epoch_mean });
            if let Some(path) = checkpoint {
                let every = self.cfg.checkpoint_every;
                if !keep_going || (every > 0 && global_step % every == 0) {
                    self.save_checkpoint(path)?;
                }
            }
            if !keep_going {
                return Err(Error::Cancelled);
            }
        }
        Ok(())
    }

    /// Steps taken since the start of the run.
    pub fn global_step(&self) -> usize {
        self.pos.epoch * self.steps_per_epoch() + self.pos.step
    }

    /// Writes weights, optimiser state, position and configuration (atomically).
    pub fn save_checkpoint(&self, path: &Path) -> Result<()> {
        let mut list: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
        let flat = |t: &Tensor| t.flatten_all().and_then(|f| f.to_vec1::<f32>()).map_err(tensor_err);
        for s in self.opt.slots() {
            list.push((format!("param/{}", s.name), s.var.dims().to_vec(), flat(s.var.as_tensor())?));
            list.push((format!("adam_m/{}", s.name), s.m.dims().to_vec(), flat(s.m.as_tensor())?));
            list.push((format!("adam_v/{}", s.name), s.v.dims().to_vec(), flat(s.v.as_tensor())?));
        }
        let named: Vec<crate::tensors::Named<'_>> = list.iter().map(|(n, s, d)| crate::tensors::Named { name: n.clone(), shape: s.clone(), data: d }).collect();
        let mut meta = HashMap::new();
        meta.insert("format".to_string(), "nexvitad-train-checkpoint".to_string());
        meta.insert("format_version".to_string(), CHECKPOINT_FORMAT_VERSION.to_string());
        meta.insert("optimizer_step".to_string(), self.opt.step_count().to_string());
        meta.insert("position".to_string(), serde_json::to_string(&self.pos).unwrap_or_default());
        meta.insert("history".to_string(), serde_json::to_string(&self.history).unwrap_or_default());
        meta.insert("epoch_sum".to_string(), serde_json::to_string(&self.epoch_sum).unwrap_or_default());
        meta.insert("config".to_string(), serde_json::to_string(&self.cfg).unwrap_or_default());
        meta.insert("data_hash".to_string(), self.data.data_hash.clone());
        meta.insert("sources".to_string(), serde_json::to_string(&self.data.sources).unwrap_or_default());
        meta.insert("target".to_string(), self.data.target.clone());
        let bytes = crate::fusion::canonical_safetensors(crate::tensors::to_bytes(&named, meta)?)?;
        crate::fsutil::atomic_write(path, &bytes)
    }

    /// Continues from a checkpoint written by a run with the same data and settings (the
    /// number of epochs and the checkpoint interval may differ).
    pub fn load_checkpoint(&mut self, path: &Path) -> Result<()> {
        let bytes = crate::fsutil::read_capped(path, "cannot read checkpoint", MAX_CHECKPOINT_BYTES)?;
        let rd = crate::tensors::Reader::parse(&bytes, path)?;
        if rd.metadata().get("format").map(String::as_str) != Some("nexvitad-train-checkpoint") {
            return Err(Error::format(path, "metadata 'format' is not 'nexvitad-train-checkpoint'"));
        }
        let v: u32 = rd.meta_parse("format_version")?;
        if v > CHECKPOINT_FORMAT_VERSION {
            return Err(Error::format(path, format!("checkpoint format_version {v} is newer than this nexvitad reads")));
        }
        let cfg: TrainConfig = serde_json::from_str(rd.meta("config")?).map_err(|e| Error::format(path, format!("config: {e}")))?;
        if cfg.resume_key() != self.cfg.resume_key() {
            return Err(Error::Mismatch(format!(
                "checkpoint '{}' was written with other training settings ({}); resume with the same options",
                path.display(),
                serde_json::to_string(&cfg).unwrap_or_default()
            )));
        }
        if rd.meta("data_hash")? != self.data.data_hash {
            return Err(Error::Mismatch(format!(
                "checkpoint '{}' was written for other data, domains or base model; resume with the same --data, --sources, --target and --model",
                path.display()
            )));
        }
        let pos: Position = serde_json::from_str(rd.meta("position")?).map_err(|e| Error::format(path, format!("position: {e}")))?;
        let history: Vec<StepStats> = serde_json::from_str(rd.meta("history")?).map_err(|e| Error::format(path, format!("history: {e}")))?;
        let epoch_sum: StepStats = serde_json::from_str(rd.meta("epoch_sum")?).map_err(|e| Error::format(path, format!("epoch_sum: {e}")))?;
        let step_t: usize = rd.meta_parse("optimizer_step")?;
        let read = |name: &str, like: &Var| -> Result<Tensor> {
            let shape: Vec<Option<usize>> = like.dims().iter().map(|&d| Some(d)).collect();
            let (s, data) = rd.f32(name, &shape)?;
            Tensor::from_vec(data, s, &Device::Cpu).map_err(tensor_err)
        };
        let mut moments = HashMap::new();
        for n in &self.names {
            let var = &self.vars[n];
            var.set(&read(&format!("param/{n}"), var)?).map_err(tensor_err)?;
            moments.insert(n.clone(), (read(&format!("adam_m/{n}"), var)?, read(&format!("adam_v/{n}"), var)?));
        }
        self.opt.restore(step_t, &|n| moments.get(n).cloned()).map_err(tensor_err)?;
        self.pos = pos;
        self.history = history;
        self.epoch_sum = epoch_sum;
        Ok(())
    }

    /// Named tensors of the decoder and every head, for `decoder.safetensors`.
    pub fn decoder_tensors(&self) -> Result<Vec<(String, Vec<usize>, Vec<f32>)>> {
        self.names
            .iter()
            .filter(|n| !n.starts_with("head."))
            .map(|n| {
                let t = self.var(n)?;
                Ok((n.clone(), t.dims().to_vec(), t.flatten_all().and_then(|f| f.to_vec1::<f32>()).map_err(tensor_err)?))
            })
            .collect()
    }

    /// Every parameter's values, by name (tests compare runs with this).
    pub fn parameters(&self) -> Result<Vec<(String, Vec<f32>)>> {
        self.names.iter().map(|n| Ok((n.clone(), self.var(n)?.flatten_all().and_then(|f| f.to_vec1::<f32>()).map_err(tensor_err)?))).collect()
    }
}

/// Logits of several 1x1 heads at once: `w` `[k, width]`, `b` `[k]` → `[B, k, P]`.
fn head_logits_multi(z: &Tensor, w: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    let (n, c, h, wd) = z.dims4()?;
    super::ops::conv1x1(&z.reshape((n, c, h * wd))?, w, b)
}

/// Maps predictions `[B, h*w]` on flipped copies back to the original geometry.
pub fn unflip(x: &Tensor, flips: &[Flip], h: usize, w: usize) -> candle_core::Result<Tensor> {
    let rev = |n: usize| Tensor::from_vec((0..n as u32).rev().collect::<Vec<u32>>(), n, &Device::Cpu);
    let (rh, rw) = (rev(h)?, rev(w)?);
    let rows = flips
        .iter()
        .enumerate()
        .map(|(k, f)| {
            let mut t = x.narrow(0, k, 1)?.reshape((1, h, w))?;
            if f.h {
                t = t.index_select(&rw, 2)?;
            }
            if f.v {
                t = t.index_select(&rh, 1)?;
            }
            t.reshape((1, h * w))
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    Tensor::cat(&rows, 0)
}
