//! Training: options and nexvitad_train() over [`crate::train::train_model`].

use std::ffi::{c_char, c_void};
use std::mem::size_of;
use std::path::Path;

use super::handles;
use super::log::log;
use super::status::{c_path, c_str, guard, non_null};
use super::types::{
    nexvitad_log_level, nexvitad_model, nexvitad_status, nexvitad_train_options, nexvitad_train_phase,
    nexvitad_train_progress, nexvitad_train_progress_cb, nexvitad_train_result,
};
use super::versioned::{read_in, struct_size, write_out};
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::train::{train_model, CacheOptions, PerturbOptions, StepStats, TrainConfig, TrainEvent, TrainSpec, CHECKPOINT_FILE};

/// `lambda1`/`lambda2` value nexvitad_train_options_default() writes: negative = "the
/// model's default".
const MODEL_DEFAULT_LAMBDA: f64 = -1.0;

/// The defaults nexvitad_train_options_default() writes: `TrainConfig::default()` with theta,
/// lambda1, lambda2 left to the model (as `nexvitad train` does when they are not given).
fn default_train_options() -> nexvitad_train_options {
    let d = TrainConfig::default();
    let sat = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    nexvitad_train_options {
        struct_size: size_of::<nexvitad_train_options>(),
        epochs: sat(d.epochs),
        batch: sat(d.batch),
        lr: d.lr,
        weight_decay: d.weight_decay,
        theta: 0.0,
        lambda1: MODEL_DEFAULT_LAMBDA,
        lambda2: MODEL_DEFAULT_LAMBDA,
        seed: d.seed,
        decoder_width: sat(d.decoder_width),
        checkpoint_every: sat(d.checkpoint_every),
        copies: sat(d.perturb.copies),
        flips: d.perturb.flips as u32,
        noise_std: d.perturb.noise_std,
        jitter: d.perturb.jitter,
        resume: 0,
        target_test: 0,
        cache_dir: std::ptr::null(),
        cache_mem: 0,
    }
}

/// A 0/1 flag field.
fn flag(v: u32, field: &str) -> Result<bool> {
    match v {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(Error::invalid(format!("options->{field} is {v}; it must be 0 or 1"))),
    }
}

/// The feature cache options: NULL folder = the output folder, 0 bytes = the default.
///
/// # Safety
/// `o.cache_dir` is NULL or NUL-terminated.
unsafe fn to_cache_options(o: &nexvitad_train_options) -> Result<CacheOptions> {
    let dir = if o.cache_dir.is_null() { None } else { Some(c_path(o.cache_dir, "options->cache_dir")?) };
    Ok(CacheOptions { dir, mem_budget: (o.cache_mem != 0).then_some(o.cache_mem) })
}

/// C options to the safe API's `TrainConfig` (values checked by `TrainConfig::validate`,
/// prefixed with "options"), plus the resume and target-test flags.
fn to_train_config(o: &nexvitad_train_options, manifest: &Manifest) -> Result<(TrainConfig, bool, bool)> {
    // The "use the default" rule of the header: 0 selects the default, except where 0 is a
    // real setting (weight_decay, lambda1, lambda2, noise_std, jitter, flips); there any
    // negative value does. NaN is never a default: `validate` refuses it. checkpoint_every
    // has no default value (every u32 is a real setting).
    let c = TrainConfig::for_model(manifest);
    let count = |v: u32, def: usize| if v == 0 { def } else { v as usize };
    let neg = |v: f64, def: f64| if v < 0.0 { def } else { v };
    let flips = if (o.flips as i32) < 0 { c.perturb.flips } else { flag(o.flips, "flips")? };
    let cfg = TrainConfig {
        epochs: count(o.epochs, c.epochs),
        batch: count(o.batch, c.batch),
        lr: if o.lr == 0.0 { c.lr } else { o.lr },
        weight_decay: neg(o.weight_decay, c.weight_decay),
        theta: if o.theta == 0.0 { c.theta } else { o.theta },
        lambda1: neg(o.lambda1, c.lambda1),
        lambda2: neg(o.lambda2, c.lambda2),
        seed: o.seed,
        decoder_width: count(o.decoder_width, c.decoder_width),
        checkpoint_every: o.checkpoint_every as usize,
        perturb: PerturbOptions {
            copies: count(o.copies, c.perturb.copies),
            noise_std: neg(o.noise_std, c.perturb.noise_std),
            jitter: neg(o.jitter, c.perturb.jitter),
            flips,
        },
    };
    cfg.validate().map_err(|e| super::status::in_param(e, "options"))?;
    Ok((cfg, flag(o.resume, "resume")?, flag(o.target_test, "target_test")?))
}

/// The caller's `n` domain names.
///
/// # Safety
/// `sources` is NULL or points to `n` pointers, each NULL or NUL-terminated.
unsafe fn source_names(sources: *const *const c_char, n: usize) -> Result<Vec<String>> {
    if n == 0 {
        return Err(Error::invalid("n_sources is 0; training needs at least one labelled source domain"));
    }
    non_null(sources, "sources")?;
    (0..n).map(|i| c_str(*sources.add(i), &format!("sources[{i}]")).map(str::to_string)).collect()
}

/// The C progress record of one event.
fn progress_record(e: &TrainEvent<'_>) -> nexvitad_train_progress {
    let sat = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    let zero = StepStats::default();
    let (phase, epoch, epochs, step, spe, done, total, s, m) = match e {
        TrainEvent::Encode { done, total } => (nexvitad_train_phase::NEXVITAD_TRAIN_ENCODE, 0, 0, 0, 0, *done, *total, zero, zero),
        TrainEvent::Step(p) => (
            nexvitad_train_phase::NEXVITAD_TRAIN_STEP,
            p.epoch,
            p.epochs,
            p.step,
            p.steps_per_epoch,
            p.global_step,
            p.total_steps,
            p.stats,
            p.epoch_mean,
        ),
    };
    nexvitad_train_progress {
        struct_size: size_of::<nexvitad_train_progress>(),
        phase: phase as u32,
        epoch: sat(epoch),
        epochs: sat(epochs),
        step: sat(step),
        steps_per_epoch: sat(spe),
        reserved0: 0,
        done: done as u64,
        total: total as u64,
        loss: s.loss,
        l_src: s.l_src,
        l_pl: s.l_pl,
        l_cons: s.l_cons,
        coverage: s.coverage,
        mean_loss: m.loss,
        mean_l_src: m.l_src,
        mean_l_pl: m.l_pl,
        mean_l_cons: m.l_cons,
        mean_coverage: m.coverage,
    }
}

/// Fills `options` with the defaults of `nexvitad train`: 4 epochs, batch 8, lr 1e-3,
/// weight decay 0.01, theta 0 and lambda1, lambda2 -1 (= the model's model.json values, normally 0.7,
/// 1.0, 0.5), seed 0, decoder width 32, a checkpoint every 20 steps, 2 perturbed copies
/// per target image with flips, noise 8, jitter 0.2, resume 0, target_test 0.
///
/// Set `options->struct_size = sizeof(nexvitad_train_options)` first; only fields within it
/// are written.
///
/// Thread-safety: any thread. Errors: NEXVITAD_INVALID_ARGUMENT (NULL or bad struct_size).
#[no_mangle]
pub unsafe extern "C" fn nexvitad_train_options_default(options: *mut nexvitad_train_options) -> nexvitad_status {
    guard("nexvitad_train_options_default", || unsafe { write_out(options, &default_train_options(), "options") })
}

/// Trains `model`'s fusion head on labelled source domains and one unlabeled target domain
/// (adapters and projections through a multi-task decoder with pseudo-labels and a
/// consistency loss; the encoders stay frozen) and writes the trained model to `out_dir`.
/// Minutes or more on CPU for real data; use `cb` to show progress or cancel.
///
/// `model`: a live model handle, the base model (its head, trained or not, is the start).
/// `data_root`: a dataset folder in MVTec AD layout, one sub-folder per domain. `sources`:
/// `n_sources` (>= 1) distinct domain names, each with defective test images and masks
/// (`<domain>/test/<defect>/<stem>.png` with `<domain>/ground_truth/<defect>/<stem>_mask.png`; its
/// good images count as all-normal). `target`: the unlabeled domain to adapt to (its
/// train/good images; with options->target_test also its test images; its masks are never
/// read); it must not be among the sources. `out_dir`: the new model folder; it must be new
/// or empty, unless options->resume is 1. `options`: NULL for the defaults, else read
/// during the call only. Strings are NUL-terminated and read during the call only.
/// `cb`: NULL, or called with `user` on the calling thread after each encoded image and
/// each step; returning non-zero cancels. `result`: NULL, or (with its struct_size set)
/// receives the run's summary on success; untouched on failure.
///
/// What is written to `out_dir`: hiera.onnx and dinov2.onnx (hard links to the base
/// model's, copies where linking fails), head.safetensors (the trained head),
/// decoder.safetensors (the decoder and its heads), model.json (the base model's, plus a
/// `training` record of the data, domains and options) and checkpoint.safetensors
/// (weights, optimiser state and position). Each file is written atomically (temp file,
/// sync, rename), model.json last: a folder with a model.json always holds its head, and
/// only after success is `out_dir` a model folder for nexvitad_model_open() (its banks
/// must be built with it: the fingerprint differs from the base model's).
///
/// Checkpoints: every options->checkpoint_every steps, when cancelled after a step, and at
/// the end. Cancelling (`cb` returns non-zero) returns NEXVITAD_CANCELLED and leaves the
/// checkpoint of the last finished step, or when cancelled while encoding the feature sets
/// encoded so far in the feature cache. Calling again with the same model, data, domains
/// and options plus options->resume = 1 continues from there; the finished model is then
/// bit-identical to that of an unbroken run (`epochs` may be raised to train longer).
///
/// Feature cache (revision 7): the encoder outputs of every image and perturbed copy go to
/// `features.nxcache` in options->cache_dir (NULL: `out_dir`), each record checksummed:
/// a resumed call reuses every record that verifies and encodes only the others (a
/// truncated or corrupt file is repaired, never read as features). Up to options->cache_mem
/// bytes of them stay in memory, the rest are read from the file at each step; the trained
/// model is the same bit for bit whatever the budget. The file's space is reserved before
/// encoding, so a disk too small fails at once (NEXVITAD_IO, naming the size needed) and
/// leaves no cache behind.
///
/// Deterministic: the same base model, data, domains and options (seed included) give the
/// same files, bit for bit, with the same number of compute threads. Training runs on the
/// CPU through candle; its kernel threads come from the environment variable
/// CANDLE_NUM_THREADS (read at each call; unset = every core; 1 is fastest on a few busy
/// cores), the encoders from the model's options.
///
/// Thread-safety: any thread; trainings on one model may run concurrently (and so may
/// scoring with it), but never two into the same `out_dir`.
///
/// Errors: NEXVITAD_INVALID_ARGUMENT (NULL pointer or empty string, n_sources = 0, a
/// repeated source, the target among the sources, a domain that is missing or has no
/// images, a source without masks, `out_dir` not empty without resume, resume without a
/// checkpoint or feature cache, an option out of range such as theta outside (0, 1), a
/// cache_mem below one step's feature sets, a cache in use by another run - the message
/// names it),
/// NEXVITAD_IO (data_root missing, a file unreadable or unwritable), NEXVITAD_FORMAT (a
/// corrupt image or checkpoint), NEXVITAD_MISMATCH (resume with a checkpoint of other
/// data or options; a feature cache in cache_dir of other data), NEXVITAD_CANCELLED (the callback returned non-zero), NEXVITAD_RUNTIME
/// (ONNX Runtime failed), NEXVITAD_INTERNAL (training diverged: the loss is not finite).
#[no_mangle]
pub unsafe extern "C" fn nexvitad_train(
    model: *const nexvitad_model,
    data_root: *const c_char,
    sources: *const *const c_char,
    n_sources: usize,
    target: *const c_char,
    out_dir: *const c_char,
    options: *const nexvitad_train_options,
    cb: nexvitad_train_progress_cb,
    user: *mut c_void,
    result: *mut nexvitad_train_result,
) -> nexvitad_status {
    guard("nexvitad_train", || unsafe {
        let mh = handles::model(model, "model")?;
        let root = c_path(data_root, "data_root")?;
        let sources = source_names(sources, n_sources)?;
        let target = c_str(target, "target")?.to_string();
        let out = c_path(out_dir, "out_dir")?;
        if !result.is_null() {
            struct_size(result as *const nexvitad_train_result, "result")?;
        }
        let opts = if options.is_null() { default_train_options() } else { read_in(options, default_train_options(), "options")? };
        let (cfg, resume, target_test) = to_train_config(&opts, mh.model.manifest())?;
        let cache = to_cache_options(&opts)?;
        let spec = TrainSpec { root: root.clone(), sources, target, target_test };
        spec.validate()?;
        // A missing root is a file-system error, not a domain one: say so before any domain.
        std::fs::read_dir(&root).map_err(|e| Error::io("cannot read the data root", &root, e))?;

        let mut progress = |e: TrainEvent<'_>| match cb {
            None => true,
            Some(f) => {
                let record = progress_record(&e);
                f(user, &record) == 0
            }
        };
        let cache_file = cache.dir.clone().unwrap_or_else(|| out.clone()).join(crate::train::CACHE_FILE);
        let summary = match train_model(&mh.model, &spec, &cfg, &out, resume, &cache, &mut progress) {
            Err(Error::Cancelled) => {
                log_cancelled(&out, &cache_file);
                return Err(Error::Cancelled);
            }
            other => other?,
        };
        let last = summary.history.last().copied().unwrap_or_default();
        let sat = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        log(
            nexvitad_log_level::NEXVITAD_LOG_INFO,
            &format!(
                "trained '{}' <- {} into '{}': {} steps ({} in this call), last epoch loss {:.4}, coverage {:.1}%, fingerprint {}",
                summary.target,
                summary.sources.join(","),
                out.display(),
                summary.steps,
                summary.steps_run,
                last.loss,
                100.0 * last.coverage,
                &summary.fingerprint[..12.min(summary.fingerprint.len())]
            ),
        );
        if !result.is_null() {
            let value = nexvitad_train_result {
                struct_size: size_of::<nexvitad_train_result>(),
                steps: summary.steps as u64,
                steps_run: summary.steps_run as u64,
                epochs: sat(cfg.epochs),
                steps_per_epoch: sat(summary.steps_per_epoch),
                source_images: sat(summary.source_images),
                target_images: sat(summary.target_images),
                loss: last.loss,
                l_src: last.l_src,
                l_pl: last.l_pl,
                l_cons: last.l_cons,
                coverage: last.coverage,
                encode_s: summary.encode_s,
                train_s: summary.train_s,
                cache_bytes: summary.cache.bytes,
                encoded: summary.cache.encoded as u64,
                reused: summary.cache.reused as u64,
            };
            write_out(result, &value, "result")?;
        }
        Ok(())
    })
}

/// Tells the log where a cancelled run stands.
fn log_cancelled(out: &Path, cache_file: &Path) {
    let ckpt = out.join(CHECKPOINT_FILE);
    let msg = if ckpt.is_file() {
        format!("training cancelled; checkpoint in '{}': call again with options->resume = 1 to continue", ckpt.display())
    } else if cache_file.is_file() {
        format!(
            "training cancelled while encoding; the feature sets encoded so far are in '{}': call again with options->resume = 1 to continue",
            cache_file.display()
        )
    } else {
        "training cancelled before anything was encoded; nothing to resume".to_string()
    };
    log(nexvitad_log_level::NEXVITAD_LOG_INFO, &msg);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/models/tiny/model.json"))).unwrap()
    }

    #[test]
    fn defaults_map_to_the_cli_defaults() {
        let m = manifest();
        let (cfg, resume, target_test) = to_train_config(&default_train_options(), &m).unwrap();
        let want = TrainConfig::for_model(&m);
        assert_eq!(cfg, want);
        assert_eq!((cfg.theta, cfg.lambda1, cfg.lambda2), (0.7, 1.0, 0.5));
        assert!(!resume && !target_test);
    }

    #[test]
    fn explicit_values_win_and_bad_ones_name_the_field() {
        let m = manifest();
        let mut o = default_train_options();
        (o.theta, o.lambda1, o.lambda2, o.resume) = (0.9, 0.0, 2.0, 1);
        let (cfg, resume, _) = to_train_config(&o, &m).unwrap();
        assert_eq!((cfg.theta, cfg.lambda1, cfg.lambda2, resume), (0.9, 0.0, 2.0, true));
        for theta in [1.0, 1.5, -0.2, f64::NAN] {
            o.theta = theta;
            let e = to_train_config(&o, &m).unwrap_err().to_string();
            assert!(e.contains("options: theta") && e.contains("(0, 1)"), "{e}");
        }
        let mut o = default_train_options();
        o.lambda2 = f64::NAN;
        assert!(to_train_config(&o, &m).unwrap_err().to_string().contains("lambda2 NaN"));
        let mut o = default_train_options();
        o.flips = 2;
        assert!(to_train_config(&o, &m).unwrap_err().to_string().contains("options->flips is 2"));
        let mut o = default_train_options();
        o.lr = -1.0;
        assert!(to_train_config(&o, &m).unwrap_err().to_string().contains("learning rate -1"));
    }

    #[test]
    fn the_default_rule_zero_or_negative() {
        let m = manifest();
        let want = to_train_config(&default_train_options(), &m).unwrap().0;
        // 0 = default where 0 is not a setting; negative = default where it is.
        let mut o = default_train_options();
        (o.epochs, o.batch, o.lr, o.decoder_width, o.copies, o.theta) = (0, 0, 0.0, 0, 0, 0.0);
        (o.weight_decay, o.lambda1, o.lambda2, o.noise_std, o.jitter, o.flips) = (-1.0, -0.5, -7.0, -1.0, -1e-9, u32::MAX);
        assert_eq!(to_train_config(&o, &m).unwrap().0, want);
        // Where 0 is a real setting, it stays 0.
        let mut o = default_train_options();
        (o.weight_decay, o.lambda1, o.lambda2, o.noise_std, o.jitter, o.flips) = (0.0, 0.0, 0.0, 0.0, 0.0, 0);
        let cfg = to_train_config(&o, &m).unwrap().0;
        assert_eq!((cfg.weight_decay, cfg.lambda1, cfg.lambda2, cfg.perturb.noise_std, cfg.perturb.jitter), (0.0, 0.0, 0.0, 0.0, 0.0));
        assert!(!cfg.perturb.flips);
    }
}
