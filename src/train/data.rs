//! Training data: labelled source domains, the unlabeled target domain, perturbed copies of
//! the target images, and the frozen backbone features of every one of them.
//!
//! The encoders are frozen, so each image is encoded exactly once per perturbation, here,
//! before the first step, into the feature cache ([`super::cache`]); epochs then read the
//! features from it (about 0.4 MB per image for the tiny fixture model, 2.65 MB for the
//! full-size encoders at 224 px).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Tensor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::data::{self, mvtec::GOOD};
use crate::encoder::BackboneFeatures;
use crate::error::{Error, Result};
use super::cache::{self, FeatureCache, Layout};
use super::ops::{nchw_tensor, tensor_err};
use super::TrainConfig;
use crate::image::{ImageView, PixelFormat, Preparer};
use crate::model::Model;

/// Which domains to train on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSpec {
    /// Dataset root (MVTec AD layout).
    pub root: PathBuf,
    /// Labelled source domains (need defective test images with masks).
    pub sources: Vec<String>,
    /// The unlabeled target domain.
    pub target: String,
    /// Also use the target's test images, unlabeled (their masks are never read).
    pub target_test: bool,
}

impl TrainSpec {
    /// Checks the domain lists themselves (the folders are checked when loading).
    pub fn validate(&self) -> Result<()> {
        if self.sources.is_empty() {
            return Err(Error::invalid("training needs at least one source domain"));
        }
        for (i, s) in self.sources.iter().enumerate() {
            if s.trim().is_empty() {
                return Err(Error::invalid("a source domain name is empty"));
            }
            if self.sources[..i].contains(s) {
                return Err(Error::invalid(format!("source domain '{s}' is listed twice")));
            }
        }
        if self.target.trim().is_empty() {
            return Err(Error::invalid("the target domain name is empty"));
        }
        if self.sources.contains(&self.target) {
            return Err(Error::invalid(format!(
                "target domain '{}' is also a source domain: the target must be unlabeled, remove it from the sources",
                self.target
            )));
        }
        Ok(())
    }
}

/// Perturbations of the target copies used by the consistency loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerturbOptions {
    /// Perturbed copies per target image (each encoded once).
    pub copies: usize,
    /// Std of additive Gaussian pixel noise, in 8-bit levels.
    pub noise_std: f64,
    /// Brightness, contrast and per-channel gain are drawn from `1 ± jitter`.
    pub jitter: f64,
    /// Allow random horizontal / vertical flips (mapped back before comparing).
    pub flips: bool,
}

impl Default for PerturbOptions {
    fn default() -> Self {
        Self { copies: 2, noise_std: 8.0, jitter: 0.2, flips: true }
    }
}

impl PerturbOptions {
    /// Rejects values that cannot train (each error names the option).
    pub fn validate(&self) -> Result<()> {
        if self.copies == 0 {
            return Err(Error::invalid("perturbed copies must be at least 1 (the consistency loss compares an image with a copy)"));
        }
        if !(self.noise_std.is_finite() && self.noise_std >= 0.0) {
            return Err(Error::invalid(format!("noise std {} must be finite and >= 0", self.noise_std)));
        }
        if !(self.jitter.is_finite() && (0.0..1.0).contains(&self.jitter)) {
            return Err(Error::invalid(format!("colour jitter {} must be in [0, 1)", self.jitter)));
        }
        Ok(())
    }
}

/// Flips applied to a perturbed copy; predictions on it are flipped back the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Flip {
    /// Left-right flip.
    pub h: bool,
    /// Upside-down flip.
    pub v: bool,
}

/// One drawn perturbation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Perturbation {
    /// Flips, applied last.
    pub flip: Flip,
    /// Brightness factor, in `1 ± jitter`.
    pub brightness: f32,
    /// Contrast factor about the channel mean, in `1 ± jitter`.
    pub contrast: f32,
    /// R, G, B gains, each in `1 ± jitter / 2`.
    pub gains: [f32; 3],
    /// Std of the additive Gaussian noise, in 8-bit levels (0: none).
    pub noise_std: f32,
    /// Seed of the noise.
    pub noise_seed: u64,
}

impl Perturbation {
    /// The perturbation of copy `c` of target image `t`: one seed per (run seed, image, copy),
    /// so it can be drawn again at any time (the flips when listing, the pixels when encoding).
    pub fn of_copy(o: &PerturbOptions, seed: u64, t: usize, c: usize) -> Self {
        Self::draw(o, derive_seed(seed, &[TAG_PERTURB, t as u64, c as u64]))
    }

    /// Draws a perturbation from `seed`.
    pub fn draw(o: &PerturbOptions, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut u = |j: f64| if j > 0.0 { rng.random_range(1.0 - j..=1.0 + j) as f32 } else { 1.0 };
        let brightness = u(o.jitter);
        let contrast = u(o.jitter);
        let gains = [u(o.jitter / 2.0), u(o.jitter / 2.0), u(o.jitter / 2.0)];
        let flip = if o.flips { Flip { h: rng.random_bool(0.5), v: rng.random_bool(0.5) } } else { Flip::default() };
        Self { flip, brightness, contrast, gains, noise_std: o.noise_std as f32, noise_seed: rng.random() }
    }

    /// The perturbed copy of `img`: colour jitter (contrast about the channel mean, then
    /// brightness and channel gain), Gaussian noise, then the flips.
    pub fn apply(&self, img: &image::RgbImage) -> image::RgbImage {
        let n = (img.width() as usize * img.height() as usize).max(1);
        let mut mean = [0f64; 3];
        for p in img.pixels() {
            for k in 0..3 {
                mean[k] += p.0[k] as f64;
            }
        }
        let mean = mean.map(|m| (m / n as f64) as f32);
        let mut rng = ChaCha8Rng::seed_from_u64(self.noise_seed);
        let noise = Normal::new(0.0f32, self.noise_std.max(f32::MIN_POSITIVE)).ok();
        let mut out = img.clone();
        for p in out.pixels_mut() {
            for k in 0..3 {
                let mut v = ((p.0[k] as f32 - mean[k]) * self.contrast + mean[k]) * self.brightness * self.gains[k];
                if self.noise_std > 0.0 {
                    if let Some(nd) = &noise {
                        v += nd.sample(&mut rng);
                    }
                }
                p.0[k] = v.round().clamp(0.0, 255.0) as u8;
            }
        }
        if self.flip.h {
            image::imageops::flip_horizontal_in_place(&mut out);
        }
        if self.flip.v {
            image::imageops::flip_vertical_in_place(&mut out);
        }
        out
    }
}

/// Frozen backbone outputs of one image: Hiera stages `[1, C_s, h_s, w_s]` and the DINOv2
/// grid `[1, C_d, dh, dw]`.
#[derive(Debug, Clone)]
pub struct Features {
    /// Hiera stages H1..H4, `[1, C_s, h_s, w_s]`.
    pub hiera: [Tensor; 4],
    /// DINOv2 patch grid, `[1, C_d, dh, dw]`.
    pub dino: Tensor,
}

impl Features {
    /// Image `i` of an encoded batch.
    pub fn from_batch(f: &BackboneFeatures, i: usize) -> Result<Self> {
        use ndarray::Axis;
        let h = |s: usize| nchw_tensor(f.hiera[s].index_axis(Axis(0), i));
        Ok(Self { hiera: [h(0)?, h(1)?, h(2)?, h(3)?], dino: nchw_tensor(f.dinov2.index_axis(Axis(0), i))? })
    }

    /// Stacks images into one batch: per stage `[B, C_s, h_s, w_s]`, DINOv2 `[B, C_d, dh, dw]`.
    pub fn stack(items: &[&Features]) -> Result<([Tensor; 4], Tensor)> {
        let cat = |f: &dyn Fn(&Features) -> Tensor| Tensor::cat(&items.iter().map(|x| f(x)).collect::<Vec<_>>(), 0).map_err(tensor_err);
        Ok(([cat(&|x| x.hiera[0].clone())?, cat(&|x| x.hiera[1].clone())?, cat(&|x| x.hiera[2].clone())?, cat(&|x| x.hiera[3].clone())?], cat(&|x| x.dino.clone())?))
    }
}

/// A labelled source image.
#[derive(Debug, Clone)]
pub struct SourceSample {
    /// The image file.
    pub path: PathBuf,
    /// Index into [`TrainData::sources`].
    pub domain: usize,
    /// Share of defect pixels in each F1-grid cell (row-major); all zero for good images.
    pub mask: Vec<f32>,
    /// Its record in the feature cache ([`TrainData::features`]).
    pub record: usize,
}

/// An unlabeled target image and its perturbed copies.
#[derive(Debug, Clone)]
pub struct TargetSample {
    /// The image file.
    pub path: PathBuf,
    /// The feature-cache record of the image itself.
    pub clean: usize,
    /// The record of each perturbed copy, with the flips to map its predictions back.
    pub copies: Vec<(usize, Flip)>,
}

/// Everything a [`crate::train::Trainer`] reads. Cloning shares the feature cache.
#[derive(Debug, Clone)]
pub struct TrainData {
    /// Source domains, in order; [`SourceSample::domain`] indexes them.
    pub sources: Vec<String>,
    /// Target domain.
    pub target: String,
    /// Labelled source images.
    pub source_samples: Vec<SourceSample>,
    /// Unlabelled target images.
    pub target_samples: Vec<TargetSample>,
    /// The F1 grid (h, w): where the decoder predicts and the masks live.
    pub grid: (usize, usize),
    /// Hash of the file listing, the perturbation settings, the seed and the base model: a
    /// checkpoint resumes, and a feature cache is reused, only on the same data.
    pub data_hash: String,
    /// The encoded features, on disk and (within the budget) in memory.
    cache: Arc<FeatureCache>,
    /// What loading did: feature sets encoded and reused.
    pub load_stats: LoadStats,
}

/// What [`TrainData::load`] did with the feature cache.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LoadStats {
    /// Feature sets encoded by this load.
    pub encoded: usize,
    /// Feature sets reused from the cache (written by an earlier, stopped or finished, run).
    pub reused: usize,
    /// The cache file existed but was not a cache (corrupt header): it was rebuilt.
    pub rebuilt: bool,
    /// The memory budget in effect, in bytes.
    pub mem_budget: u64,
}

/// Progress of feature encoding: images done of total.
pub type EncodeProgress<'a> = &'a mut dyn FnMut(usize, usize) -> bool;

/// Deterministic sub-seed from a seed and a path of integers (SplitMix64 steps), so every
/// random choice can be recomputed from (seed, what, where) without carrying RNG state.
pub fn derive_seed(seed: u64, parts: &[u64]) -> u64 {
    let mut x = seed;
    for &p in parts.iter().chain(std::iter::once(&0x9e37_79b9_7f4a_7c15)) {
        x = x.wrapping_add(p).wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x = z ^ (z >> 31);
    }
    x
}

/// Seed tag of the target perturbations.
const TAG_PERTURB: u64 = 1;

/// Area share of `true` pixels of a `width x height` mask in each cell of a `gh x gw` grid.
pub fn mask_to_grid(mask: &[bool], width: usize, height: usize, gh: usize, gw: usize) -> Vec<f32> {
    let mut hits = vec![0u32; gh * gw];
    let mut count = vec![0u32; gh * gw];
    for y in 0..height {
        let cy = (y * gh / height.max(1)).min(gh - 1);
        for x in 0..width {
            let cx = (x * gw / width.max(1)).min(gw - 1);
            count[cy * gw + cx] += 1;
            hits[cy * gw + cx] += mask[y * width + x] as u32;
        }
    }
    hits.iter().zip(&count).map(|(&h, &c)| if c == 0 { 0.0 } else { h as f32 / c as f32 }).collect()
}

/// The F1 grid of a model: input size over the first Hiera stride.
pub fn f1_grid(model: &Model) -> (usize, usize) {
    let m = model.manifest();
    (m.input.height as usize / m.hiera.strides[0], m.input.width as usize / m.hiera.strides[0])
}

/// Where record `r`'s image comes from.
#[derive(Debug, Clone, Copy)]
enum Origin {
    /// Source image `i` of the listing.
    Source(usize),
    /// Target image `t` itself.
    Clean(usize),
    /// Perturbed copy `c` of target image `t`.
    Copy(usize, usize),
}

impl TrainData {
    /// Reads the domains, checks them, draws the target perturbations and makes sure every
    /// image's features are in the feature cache in `cache_dir`: feature sets a stopped or
    /// earlier run left there are reused (after their checksums are verified), the others
    /// are encoded in batches of the model's tile batch, images decoded batch by batch.
    /// Then as many feature sets as `mem_budget` allows are held in memory, the target's
    /// first (every step reads target images; sources once per epoch).
    ///
    /// The budget (`None`: [`cache::default_mem_budget`]) must hold one training step's
    /// feature sets, `min(batch, sources) + 2 · min(batch, targets)` of them: the step
    /// stacks them into one batch.
    pub fn load(model: &Model, spec: &TrainSpec, cfg: &TrainConfig, cache_dir: &Path, mem_budget: Option<u64>, progress: EncodeProgress<'_>) -> Result<Self> {
        spec.validate()?;
        let perturb = &cfg.perturb;
        perturb.validate()?;
        let seed = cfg.seed;
        let grid = f1_grid(model);
        let mut hasher = Sha256::new();
        hasher.update(b"nexvitad-train-data-v1\0");
        hasher.update(model.fingerprint().as_bytes());
        hasher.update(serde_json::to_vec(perturb).unwrap_or_default());
        hasher.update(seed.to_le_bytes());
        let note = |h: &mut Sha256, p: &Path| {
            let rel = p.strip_prefix(&spec.root).unwrap_or(p);
            h.update(rel.to_string_lossy().as_bytes());
            h.update(std::fs::metadata(p).map(|m| m.len()).unwrap_or(0).to_le_bytes());
        };

        // Sources: every image with its mask (good images: all normal).
        let mut src_list: Vec<(PathBuf, usize, Option<PathBuf>)> = Vec::new();
        for (d, name) in spec.sources.iter().enumerate() {
            let cat = data::open_category(&spec.root, name).map_err(|e| Error::invalid(format!("source domain '{name}': {e}")))?;
            let defective = cat.test.iter().filter(|s| s.defect != GOOD && s.mask.is_some()).count();
            if defective == 0 {
                return Err(Error::invalid(format!(
                    "source domain '{name}' has no defective images with masks (expected test/<defect>/*.png with ground_truth/<defect>/<stem>_mask.png): a source must be labelled"
                )));
            }
            hasher.update(format!("source\0{name}\0").as_bytes());
            for p in &cat.train_good {
                src_list.push((p.clone(), d, None));
            }
            for s in &cat.test {
                // A defective image without a mask would train as all-normal: refuse it.
                if s.is_anomalous() && s.mask.is_none() {
                    return Err(Error::invalid(format!(
                        "source domain '{name}': defective test image '{}' has no ground-truth mask (expected ground_truth/{}/<stem>_mask.png): every defective source image must be labelled",
                        s.path.display(),
                        s.defect
                    )));
                }
                src_list.push((s.path.clone(), d, s.mask.clone()));
            }
        }
        // Target: unlabeled images only.
        let tcat = data::open_category(&spec.root, &spec.target).map_err(|e| Error::invalid(format!("target domain '{}': {e}", spec.target)))?;
        let mut tgt_list: Vec<PathBuf> = tcat.train_good.clone();
        if spec.target_test {
            tgt_list.extend(tcat.test.iter().map(|s| s.path.clone()));
        }
        if tgt_list.is_empty() {
            return Err(Error::invalid(format!("target domain '{}' has no images", spec.target)));
        }
        hasher.update(format!("target\0{}\0", spec.target).as_bytes());
        for (p, _, m) in &src_list {
            note(&mut hasher, p);
            if let Some(m) = m {
                note(&mut hasher, m);
            }
        }
        for p in &tgt_list {
            note(&mut hasher, p);
        }
        let data_hash: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();

        // The records, in file order, and the budget: checked before anything is encoded.
        let per_target = 1 + perturb.copies;
        let mut origins: Vec<Origin> = (0..src_list.len()).map(Origin::Source).collect();
        for t in 0..tgt_list.len() {
            origins.push(Origin::Clean(t));
            origins.extend((0..perturb.copies).map(|c| Origin::Copy(t, c)));
        }
        let layout = Layout::of(model.manifest());
        let per_set = layout.feature_bytes();
        let step_sets = (cfg.batch.min(src_list.len()) + 2 * cfg.batch.min(tgt_list.len())) as u64;
        let budget = match mem_budget {
            Some(b) => b,
            None => cache::default_mem_budget().max(step_sets * per_set),
        };
        if budget < step_sets * per_set {
            return Err(Error::invalid(format!(
                "feature cache memory budget {} ({budget} bytes) is below one training step: {step_sets} feature sets of {} ({} bytes); raise it or lower the batch",
                cache::human_bytes(budget),
                cache::human_bytes(per_set),
                step_sets * per_set
            )));
        }

        // Masks: read now (small: one value per F1 cell), from the image's header size.
        let mut masks = Vec::with_capacity(src_list.len());
        for (p, _, m) in &src_list {
            masks.push(match m {
                Some(mp) => {
                    let (w, h) = data::image_dimensions(p)?;
                    mask_to_grid(&data::load_mask(mp, w, h)?, w as usize, h as usize, grid.0, grid.1)
                }
                None => vec![0.0; grid.0 * grid.1],
            });
        }
        let flips: Vec<Vec<Flip>> = (0..tgt_list.len())
            .map(|t| (0..perturb.copies).map(|c| Perturbation::of_copy(perturb, seed, t, c).flip).collect())
            .collect();

        let about = format!("target '{}' from {} with base model {}…, seed {seed}", spec.target, spec.sources.join(","), &model.fingerprint()[..12.min(model.fingerprint().len())]);
        let total = origins.len();
        let opened = FeatureCache::open(cache_dir, &data_hash, &about, layout, total, &mut |valid| progress(valid, total))?;
        let mut cache = opened.cache;
        let reused = total - opened.missing.len();

        // Encode what is missing, decoding images one batch at a time.
        let batch = model.options().effective_tile_batch().max(1);
        let mut prep = Preparer::new();
        let mut done = reused;
        let mut last_target: Option<(usize, image::RgbImage)> = None;
        for chunk in opened.missing.chunks(batch) {
            let mut images = Vec::with_capacity(chunk.len());
            for &r in chunk {
                images.push(match origins[r] {
                    Origin::Source(i) => data::load_rgb(&src_list[i].0)?,
                    // A target image and its copies are consecutive records: decode it once.
                    Origin::Clean(t) | Origin::Copy(t, _) => {
                        let img = match last_target.take() {
                            Some((lt, img)) if lt == t => img,
                            _ => data::load_rgb(&tgt_list[t])?,
                        };
                        let out = match origins[r] {
                            Origin::Copy(_, c) => Perturbation::of_copy(perturb, seed, t, c).apply(&img),
                            _ => img.clone(),
                        };
                        last_target = Some((t, img));
                        out
                    }
                });
            }
            let views = images
                .iter()
                .map(|im| model.view(im.as_raw(), im.width(), im.height(), im.width() as usize * 3, PixelFormat::Rgb8))
                .collect::<Result<Vec<ImageView<'_>>>>()?;
            let prepared = model.prepare(&mut prep, &views)?;
            let (f, _) = model.encode_prepared(&prepared)?;
            for (i, &r) in chunk.iter().enumerate() {
                cache.write(r, &f, i)?;
            }
            done += chunk.len();
            if !progress(done, total) {
                // What is written stays valid: `--resume` continues from it.
                cache.sync()?;
                return Err(Error::Cancelled);
            }
        }
        if !opened.missing.is_empty() {
            cache.sync()?;
        }

        // Hold what the budget allows beyond one step: targets first, then sources.
        let room = ((budget - step_sets * per_set) / per_set) as usize;
        let n_src = src_list.len();
        cache.hold((n_src..total).chain(0..n_src), room)?;

        let source_samples = src_list
            .into_iter()
            .zip(masks)
            .enumerate()
            .map(|(i, ((path, domain, _), mask))| SourceSample { path, domain, mask, record: i })
            .collect();
        let target_samples = tgt_list
            .into_iter()
            .zip(flips)
            .enumerate()
            .map(|(t, (path, fl))| {
                let clean = n_src + t * per_target;
                TargetSample { path, clean, copies: fl.into_iter().enumerate().map(|(c, f)| (clean + 1 + c, f)).collect() }
            })
            .collect();
        Ok(Self {
            sources: spec.sources.clone(),
            target: spec.target.clone(),
            source_samples,
            target_samples,
            grid,
            data_hash,
            cache: Arc::new(cache),
            load_stats: LoadStats { encoded: opened.missing.len(), reused, rebuilt: opened.rebuilt, mem_budget: budget },
        })
    }

    /// The features of cache record `r` ([`SourceSample::record`], [`TargetSample::clean`],
    /// [`TargetSample::copies`]): from memory when held, else read from the cache file.
    pub fn features(&self, r: usize) -> Result<Features> {
        self.cache.get(r)
    }

    /// The feature cache.
    pub fn cache(&self) -> &FeatureCache {
        &self.cache
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_to_grid_gives_area_shares() {
        // 4x4 mask, 2x2 grid: top-left cell has 1 of 4 pixels set, bottom-right all 4.
        let mut m = vec![false; 16];
        m[0] = true;
        for &(x, y) in &[(2, 2), (3, 2), (2, 3), (3, 3)] {
            m[y * 4 + x] = true;
        }
        assert_eq!(mask_to_grid(&m, 4, 4, 2, 2), vec![0.25, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn perturbation_is_seeded_and_flips() {
        let img = image::RgbImage::from_fn(6, 4, |x, y| image::Rgb([(x * 40) as u8, (y * 60) as u8, 128]));
        let o = PerturbOptions { copies: 1, noise_std: 0.0, jitter: 0.0, flips: true };
        let mut seen = std::collections::HashSet::new();
        for s in 0..16 {
            let p = Perturbation::draw(&o, s);
            assert_eq!(p, Perturbation::draw(&o, s));
            let out = p.apply(&img);
            // No noise and no jitter: exactly the flipped image.
            let x = if p.flip.h { 5 - 1 } else { 1 };
            let y = if p.flip.v { 3 - 2 } else { 2 };
            assert_eq!(out.get_pixel(x, y), img.get_pixel(1, 2));
            seen.insert((p.flip.h, p.flip.v));
        }
        assert_eq!(seen.len(), 4, "all four flip combinations occur");
        let noisy = Perturbation::draw(&PerturbOptions::default(), 3).apply(&img);
        assert_ne!(noisy, img);
    }

    #[test]
    fn spec_rejects_target_among_sources_and_duplicates() {
        let s = |src: &[&str], t: &str| TrainSpec { root: ".".into(), sources: src.iter().map(|x| x.to_string()).collect(), target: t.into(), target_test: false };
        let e = s(&["a", "b"], "b").validate().unwrap_err().to_string();
        assert!(e.contains("'b'") && e.contains("also a source"), "{e}");
        assert!(s(&["a", "a"], "b").validate().unwrap_err().to_string().contains("twice"));
        assert!(s(&[], "b").validate().is_err());
        assert!(s(&["a"], "b").validate().is_ok());
    }

    #[test]
    fn derived_seeds_differ_by_path() {
        assert_ne!(derive_seed(1, &[1, 2]), derive_seed(1, &[2, 1]));
        assert_ne!(derive_seed(1, &[1]), derive_seed(2, &[1]));
        assert_eq!(derive_seed(5, &[3, 4]), derive_seed(5, &[3, 4]));
    }
}
