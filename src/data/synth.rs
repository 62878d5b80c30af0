//! Deterministic synthetic defect datasets in the MVTec AD layout, for demos and tests.
//!
//! Each domain is a family of *normal* images that vary like real production images do
//! (phase, small rotation, brightness, sensor noise); defects are drawn on top of a normal
//! image and the mask is exactly the set of pixels the defect changed: every masked pixel
//! differs from the defect-free image by at least [`MIN_DEFECT_CONTRAST`] in some
//! channel, and no other pixel changes.
//!
//! Every image has its own ChaCha8 stream seeded from (seed, domain, split, index), so any
//! single image can be regenerated on its own and generation order (rayon) does not
//! matter. Output is byte-identical for the same options on the same platform (the
//! textures use the platform's `sin`/`exp`).

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The texture/object families the generator can draw, one category folder each.
pub const DOMAINS: &[&str] = &["stripes", "weave", "grain", "speckle", "object"];

/// Defect types, one `test/<defect>` folder each.
pub const DEFECT_TYPES: &[&str] = &["scratch", "spot", "crack", "missing"];

/// Defect area bounds as a fraction of the image area: visible, but not trivially large.
pub const MIN_DEFECT_FRACTION: f64 = 0.003;
/// See [`MIN_DEFECT_FRACTION`].
pub const MAX_DEFECT_FRACTION: f64 = 0.04;

/// Every defect pixel differs from the normal image by at least this much (8-bit) in at
/// least one channel, so the mask is exactly the changed pixels and the change is visible.
pub const MIN_DEFECT_CONTRAST: u8 = 32;

const MIN_SIZE: u32 = 64;
const MAX_SIZE: u32 = 4096;
const MAX_COUNT: usize = 10_000;
const MAX_SHAPE_ATTEMPTS: usize = 200;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthOptions {
    /// Seed of every random choice; the same options give the same images.
    pub seed: u64,
    /// Side of the square images in pixels (64..=4096).
    pub size: u32,
    /// Normal training images per domain (at least 1).
    pub train_good: usize,
    /// Normal test images per domain.
    pub test_good: usize,
    /// Defective test images per defect type and domain.
    pub defects_per_type: usize,
    /// Domains to generate, a subset of [`DOMAINS`].
    pub domains: Vec<String>,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            seed: 0,
            size: 256,
            train_good: 10,
            test_good: 6,
            defects_per_type: 3,
            domains: DOMAINS.iter().map(|d| d.to_string()).collect(),
        }
    }
}

/// Counts written for one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainSummary {
    /// Domain name, the category folder's name.
    pub name: String,
    /// Normal training images written.
    pub train_good: usize,
    /// Normal test images written.
    pub test_good: usize,
    /// (defect type, number of images), in [`DEFECT_TYPES`] order.
    pub test_defective: Vec<(String, usize)>,
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthSummary {
    /// The output folder; each domain is a category under it.
    pub root: PathBuf,
    /// One summary per generated domain.
    pub domains: Vec<DomainSummary>,
}

impl SynthSummary {
    /// Number of images written (masks not counted).
    pub fn total_images(&self) -> usize {
        self.domains
            .iter()
            .map(|d| d.train_good + d.test_good + d.test_defective.iter().map(|(_, n)| n).sum::<usize>())
            .sum()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Domain {
    Stripes,
    Weave,
    Grain,
    Speckle,
    Object,
}

impl Domain {
    fn parse(name: &str) -> Option<Domain> {
        Some(match name {
            "stripes" => Domain::Stripes,
            "weave" => Domain::Weave,
            "grain" => Domain::Grain,
            "speckle" => Domain::Speckle,
            "object" => Domain::Object,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Defect {
    Scratch,
    Spot,
    Crack,
    Missing,
}

const DEFECTS: [Defect; 4] = [Defect::Scratch, Defect::Spot, Defect::Crack, Defect::Missing];

impl Defect {
    fn name(self) -> &'static str {
        match self {
            Defect::Scratch => "scratch",
            Defect::Spot => "spot",
            Defect::Crack => "crack",
            Defect::Missing => "missing",
        }
    }
}

/// Writes the MVTec-layout dataset described by `opts` under `out` (created if needed).
///
/// Refuses to write into an existing, non-empty `<out>/<domain>` folder so that a stale
/// earlier run can never mix into the new set.
pub fn generate(out: &Path, opts: &SynthOptions) -> Result<SynthSummary> {
    let domains = validate(opts)?;
    for name in &opts.domains {
        let dir = out.join(name);
        if let Ok(mut rd) = std::fs::read_dir(&dir) {
            if rd.next().is_some() {
                return Err(Error::invalid(format!(
                    "'{}' already exists and is not empty; remove it or choose another output folder",
                    dir.display()
                )));
            }
        }
    }

    struct Job<'a> {
        domain: Domain,
        name: &'a str,
        defect: Option<Defect>,
        train: bool,
        index: usize,
    }
    let mut jobs = Vec::new();
    let mut summaries = Vec::new();
    for (&domain, name) in domains.iter().zip(&opts.domains) {
        let name = name.as_str();
        jobs.extend((0..opts.train_good).map(|index| Job {
            domain,
            name,
            defect: None,
            train: true,
            index,
        }));
        jobs.extend((0..opts.test_good).map(|index| Job {
            domain,
            name,
            defect: None,
            train: false,
            index,
        }));
        for d in DEFECTS {
            jobs.extend((0..opts.defects_per_type).map(|index| Job {
                domain,
                name,
                defect: Some(d),
                train: false,
                index,
            }));
        }
        summaries.push(DomainSummary {
            name: name.to_owned(),
            train_good: opts.train_good,
            test_good: opts.test_good,
            test_defective: DEFECTS
                .iter()
                .map(|d| (d.name().to_owned(), opts.defects_per_type))
                .collect(),
        });
    }

    let max_count = opts.train_good.max(opts.test_good).max(opts.defects_per_type);
    let digits = max_count.saturating_sub(1).to_string().len().max(3);
    jobs.par_iter().try_for_each(|job| {
        let split = match (job.train, job.defect) {
            (true, _) => "train/good".to_owned(),
            (false, None) => "test/good".to_owned(),
            (false, Some(d)) => format!("test/{}", d.name()),
        };
        let stem = format!("{:0digits$}", job.index);
        let mut rng = image_rng(opts.seed, job.name, &split, job.index);
        let (img, mask) = render_sample(&mut rng, job.domain, opts.size, job.defect)?;
        let cat = out.join(job.name);
        write_png(
            &cat.join(&split).join(format!("{stem}.png")),
            img.as_raw(),
            opts.size,
            image::ExtendedColorType::Rgb8,
        )?;
        if let (Some(d), Some(mask)) = (job.defect, mask) {
            let gray: Vec<u8> = mask.iter().map(|&m| if m { 255 } else { 0 }).collect();
            let path = cat.join("ground_truth").join(d.name()).join(format!("{stem}_mask.png"));
            write_png(&path, &gray, opts.size, image::ExtendedColorType::L8)?;
        }
        Ok::<(), Error>(())
    })?;

    Ok(SynthSummary {
        root: out.to_path_buf(),
        domains: summaries,
    })
}

fn validate(opts: &SynthOptions) -> Result<Vec<Domain>> {
    if !(MIN_SIZE..=MAX_SIZE).contains(&opts.size) {
        return Err(Error::invalid(format!(
            "synthetic image size {} is outside {MIN_SIZE}..={MAX_SIZE}",
            opts.size
        )));
    }
    if opts.train_good == 0 {
        return Err(Error::invalid("synthetic train_good must be at least 1"));
    }
    for (what, n) in [
        ("train_good", opts.train_good),
        ("test_good", opts.test_good),
        ("defects_per_type", opts.defects_per_type),
    ] {
        if n > MAX_COUNT {
            return Err(Error::invalid(format!("synthetic {what} = {n} exceeds {MAX_COUNT}")));
        }
    }
    if opts.domains.is_empty() {
        return Err(Error::invalid("no synthetic domains selected"));
    }
    let mut out = Vec::new();
    for (i, name) in opts.domains.iter().enumerate() {
        let d = Domain::parse(name).ok_or_else(|| {
            Error::invalid(format!(
                "unknown synthetic domain '{name}' (known: {})",
                DOMAINS.join(", ")
            ))
        })?;
        if opts.domains[..i].contains(name) {
            return Err(Error::invalid(format!("synthetic domain '{name}' listed twice")));
        }
        out.push(d);
    }
    Ok(out)
}

fn write_png(path: &Path, raw: &[u8], size: u32, color: image::ExtendedColorType) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create folder", dir, e))?;
    }
    image::save_buffer_with_format(path, raw, size, size, color, image::ImageFormat::Png).map_err(|e| match e {
        image::ImageError::IoError(io) => Error::io("write image", path, io),
        other => Error::format(path, format!("cannot encode PNG: {other}")),
    })
}

/// The RNG of one image: independent of every other image and of generation order.
fn image_rng(seed: u64, domain: &str, split: &str, index: usize) -> ChaCha8Rng {
    let mut h = Sha256::new();
    h.update(format!("nexvitad-synth/v1\0{seed}\0{domain}\0{split}\0{index}").as_bytes());
    ChaCha8Rng::from_seed(h.finalize().into())
}

/// One normal image, and a defect (image + exact mask) when `defect` is given.
fn render_sample(
    rng: &mut ChaCha8Rng,
    domain: Domain,
    size: u32,
    defect: Option<Defect>,
) -> Result<(image::RgbImage, Option<Vec<bool>>)> {
    let mut canvas = render_normal(rng, domain, size as usize);
    let mask = match defect {
        Some(d) => Some(apply_defect(rng, &mut canvas, d)?),
        None => None,
    };
    let img = image::RgbImage::from_raw(size, size, canvas.rgb)
        .ok_or_else(|| Error::Internal("synthetic image buffer has the wrong length".into()))?;
    Ok((img, mask))
}

// ---------------------------------------------------------------------------------------
// Normal images

type Px = [f32; 3];

/// A rendered normal image and where defects may be placed on it.
struct Canvas {
    size: usize,
    /// RGB8, row-major.
    rgb: Vec<u8>,
    /// For the object domain: the object's geometry, its fully covered pixels (defects are
    /// confined to the object) and the plain background (what a missing piece reveals).
    object: Option<ObjectInfo>,
}

struct ObjectInfo {
    cx: f32,
    cy: f32,
    r_in: f32,
    r_out: f32,
    solid: Vec<bool>,
    background: Vec<u8>,
}

fn mix(a: Px, b: Px, t: f32) -> Px {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

fn scale(a: Px, k: f32) -> Px {
    [a[0] * k, a[1] * k, a[2] * k]
}

fn to_u8(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0 + 0.5) as u8
}

/// Triangular noise in [-1, 1]: cheap, zero-mean, no distribution crate needed.
fn tri(rng: &mut impl Rng) -> f32 {
    rng.random::<f32>() - rng.random::<f32>()
}

fn jitter(rng: &mut impl Rng, c: Px, amount: f32) -> Px {
    c.map(|v| v + amount * tri(rng))
}

fn smoothstep(t: f32) -> f32 {
    let t = t.clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// Smoothly interpolated random lattice values in [-1, 1] over the unit square.
struct ValueNoise {
    n: usize,
    v: Vec<f32>,
}

impl ValueNoise {
    fn new(rng: &mut impl Rng, n: usize) -> Self {
        ValueNoise {
            n,
            v: (0..(n + 1) * (n + 1)).map(|_| tri(rng)).collect(),
        }
    }

    fn at(&self, u: f32, v: f32) -> f32 {
        let n = self.n;
        let (x, y) = (u.clamp(0.0, 1.0) * n as f32, v.clamp(0.0, 1.0) * n as f32);
        let (i, j) = ((x as usize).min(n - 1), (y as usize).min(n - 1));
        let (fx, fy) = (smoothstep(x - i as f32), smoothstep(y - j as f32));
        let g = |a: usize, b: usize| self.v[b * (n + 1) + a];
        let top = g(i, j) + (g(i + 1, j) - g(i, j)) * fx;
        let bot = g(i, j + 1) + (g(i + 1, j + 1) - g(i, j + 1)) * fx;
        top + (bot - top) * fy
    }
}

/// Evaluates `f(x, y)` at every pixel centre (row-major), adds sensor noise, quantises.
fn shade(size: usize, rng: &mut ChaCha8Rng, noise: f32, mut f: impl FnMut(f32, f32) -> Px) -> Vec<u8> {
    let mut out = Vec::with_capacity(size * size * 3);
    for y in 0..size {
        for x in 0..size {
            let c = f(x as f32 + 0.5, y as f32 + 0.5);
            let n = noise * tri(rng);
            out.extend(c.map(|v| to_u8(v + n)));
        }
    }
    out
}

fn render_normal(rng: &mut ChaCha8Rng, domain: Domain, size: usize) -> Canvas {
    let s = size as f32;
    let tau = std::f32::consts::TAU;
    let deg = std::f32::consts::PI / 180.0;
    let bright = 1.0 + 0.06 * tri(rng);
    let mut object = None;
    let rgb = match domain {
        Domain::Stripes => {
            // Printed/woven bands: sinusoidal, softened, with a faint fine ribbing.
            let c1 = jitter(rng, [0.18, 0.30, 0.55], 0.02);
            let c2 = jitter(rng, [0.86, 0.80, 0.62], 0.02);
            let a = (28.0 + 4.0 * tri(rng)) * deg;
            let period = s / 9.0 * (1.0 + 0.04 * tri(rng));
            let phase = rng.random::<f32>() * tau;
            let (ca, sa) = (a.cos(), a.sin());
            shade(size, rng, 0.02, |x, y| {
                let t = (x * ca + y * sa) / period;
                let v = smoothstep(0.5 + 0.6 * (tau * t + phase).sin());
                let rib = 0.03 * (tau * t * 7.0).sin();
                scale(mix(c1, c2, v), bright + rib)
            })
        }
        Domain::Weave => {
            // Plain weave: warp and weft threads alternate over/under on a checkerboard.
            let warp = jitter(rng, [0.78, 0.64, 0.46], 0.02);
            let weft = jitter(rng, [0.70, 0.57, 0.41], 0.02);
            let a = 2.0 * tri(rng) * deg;
            let p = s / 14.0 * (1.0 + 0.03 * tri(rng));
            let (ox, oy) = (rng.random::<f32>() * 2.0 * p, rng.random::<f32>() * 2.0 * p);
            let (ca, sa) = (a.cos(), a.sin());
            shade(size, rng, 0.025, |x, y| {
                let u = (x * ca + y * sa + ox) / p;
                let v = (-x * sa + y * ca + oy) / p;
                let (i, j) = (u.floor() as i64, v.floor() as i64);
                let (fu, fv) = (u - i as f32, v - j as f32);
                let pi = std::f32::consts::PI;
                let (c, across, along) = if (i + j).rem_euclid(2) == 0 {
                    (weft, fv, fu)
                } else {
                    (warp, fu, fv)
                };
                let lum = (pi * across).sin().powf(0.7) * (0.82 + 0.18 * (pi * along).sin());
                scale(c, bright * (0.12 + 0.88 * lum))
            })
        }
        Domain::Grain => {
            // Plank cut through growth rings: elongated rings around a centre off the image,
            // distorted by low-frequency noise, plus fine fibres along the grain.
            let light = jitter(rng, [0.80, 0.60, 0.38], 0.02);
            let dark = jitter(rng, [0.52, 0.33, 0.17], 0.02);
            let cx = -s * (0.4 + 0.4 * rng.random::<f32>());
            let cy = s * (0.2 + 0.6 * rng.random::<f32>());
            let period = s / 11.0 * (1.0 + 0.05 * tri(rng));
            let warp = ValueNoise::new(rng, 4);
            let fibre = ValueNoise::new(rng, 48);
            shade(size, rng, 0.015, |x, y| {
                let d = ((x - cx).powi(2) + (3.0 * (y - cy)).powi(2)).sqrt();
                let d = d + 0.6 * period * warp.at(x / s, y / s);
                let ring = (d / period).fract();
                let v = smoothstep(ring / 0.35) * (1.0 - smoothstep((ring - 0.6) / 0.4));
                let f = 0.05 * fibre.at(x / s * 0.15 + 0.4, y / s);
                scale(mix(dark, light, v), bright + f)
            })
        }
        Domain::Speckle => {
            // Granite: mottled base with many small light, dark and pink grains.
            let base = jitter(rng, [0.55, 0.55, 0.57], 0.02);
            let tint = ValueNoise::new(rng, 6);
            let mut px: Vec<Px> = (0..size * size)
                .map(|i| {
                    let (x, y) = ((i % size) as f32 + 0.5, (i / size) as f32 + 0.5);
                    scale(base, bright * (1.0 + 0.08 * tint.at(x / s, y / s)))
                })
                .collect();
            let grains: [Px; 3] = [[0.12, 0.12, 0.13], [0.92, 0.91, 0.90], [0.72, 0.55, 0.52]];
            let k = s / 256.0;
            for _ in 0..size * size / 28 {
                let (gx, gy) = (rng.random::<f32>() * s, rng.random::<f32>() * s);
                let r = k * (0.6 + 1.6 * rng.random::<f32>());
                let pick = rng.random::<f32>();
                let c = grains[if pick < 0.45 {
                    0
                } else if pick < 0.85 {
                    1
                } else {
                    2
                }];
                let c = jitter(rng, c, 0.05);
                let (x0, x1) = (
                    ((gx - r - 1.0).max(0.0)) as usize,
                    ((gx + r + 1.0) as usize).min(size - 1),
                );
                let (y0, y1) = (
                    ((gy - r - 1.0).max(0.0)) as usize,
                    ((gy + r + 1.0) as usize).min(size - 1),
                );
                for y in y0..=y1 {
                    for x in x0..=x1 {
                        let d = ((x as f32 + 0.5 - gx).powi(2) + (y as f32 + 0.5 - gy).powi(2)).sqrt();
                        let cover = (r + 0.5 - d).clamp(0.0, 1.0);
                        if cover > 0.0 {
                            let p = &mut px[y * size + x];
                            *p = mix(*p, c, cover);
                        }
                    }
                }
            }
            let mut i = 0;
            shade(size, rng, 0.03, |_, _| {
                i += 1;
                px[i - 1]
            })
        }
        Domain::Object => {
            // A hex nut on a plain matte background, lit from the top left, with small
            // position, size and rotation jitter.
            let bg = jitter(rng, [0.30, 0.32, 0.35], 0.015);
            let metal = jitter(rng, [0.66, 0.68, 0.72], 0.015);
            let cx = s * (0.5 + 0.02 * tri(rng));
            let cy = s * (0.5 + 0.02 * tri(rng));
            let apothem = s * 0.30 * (1.0 + 0.02 * tri(rng));
            let hole = s * 0.12 * (1.0 + 0.02 * tri(rng));
            let rot = 8.0 * tri(rng) * deg;
            let dirs: Vec<(f32, f32)> = (0..3)
                .map(|k| rot + k as f32 * 60.0 * deg)
                .map(|a| (a.cos(), a.sin()))
                .collect();
            let background = |x: f32, y: f32| -> Px {
                let r = ((x - s / 2.0).powi(2) + (y - s / 2.0).powi(2)).sqrt() / s;
                scale(bg, bright * (1.04 - 0.25 * r * r))
            };
            // Signed distance to the nut outline (negative inside) and to the hole edge.
            let geometry = |x: f32, y: f32| -> (f32, f32, f32) {
                let (dx, dy) = (x - cx, y - cy);
                let r = (dx * dx + dy * dy).sqrt();
                let hex = dirs
                    .iter()
                    .map(|&(c, s)| (dx * c + dy * s).abs())
                    .fold(0.0f32, f32::max);
                ((hex - apothem).max(r - 1.1 * apothem), r - hole, r)
            };
            let nut = |x: f32, y: f32| -> Px {
                let (outer, hole_d, r) = geometry(x, y);
                let (dx, dy) = ((x - cx) / apothem, (y - cy) / apothem);
                let light = 0.76 - 0.16 * (dx * 0.6 + dy * 0.8);
                let bevel = if outer > -0.08 * apothem { 0.10 } else { 0.0 };
                let thread = if hole_d < 0.25 * hole {
                    -0.18 + 0.05 * (r * 2.2).sin()
                } else {
                    0.0
                };
                let c = scale(metal, bright * (light + bevel + thread));
                let cover = (0.5 - outer).clamp(0.0, 1.0) * (0.5 + hole_d).clamp(0.0, 1.0);
                mix(background(x, y), c, cover)
            };
            let rgb = shade(size, rng, 0.015, nut);
            let mut solid = vec![false; size * size];
            let mut back = Vec::with_capacity(size * size * 3);
            for y in 0..size {
                for x in 0..size {
                    let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
                    let (outer, hole_d, _) = geometry(px, py);
                    solid[y * size + x] = outer < -1.0 && hole_d > 1.0;
                    back.extend(background(px, py).map(to_u8));
                }
            }
            object = Some(ObjectInfo {
                cx,
                cy,
                r_in: hole * 1.3,
                r_out: apothem * 0.95,
                solid,
                background: back,
            });
            rgb
        }
    };
    Canvas { size, rgb, object }
}

// ---------------------------------------------------------------------------------------
// Defects

fn dist_to_segment(p: (f32, f32), a: (f32, f32), b: (f32, f32)) -> f32 {
    let (vx, vy) = (b.0 - a.0, b.1 - a.1);
    let (wx, wy) = (p.0 - a.0, p.1 - a.1);
    let len2 = vx * vx + vy * vy;
    let t = if len2 > 0.0 {
        ((wx * vx + wy * vy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (dx, dy) = (wx - t * vx, wy - t * vy);
    (dx * dx + dy * dy).sqrt()
}

/// Marks pixels whose centre lies within `half_w` of the polyline.
fn stroke(region: &mut [bool], size: usize, pts: &[(f32, f32)], half_w: f32) {
    for seg in pts.windows(2) {
        let (a, b) = (seg[0], seg[1]);
        let lo = |u: f32, v: f32| ((u.min(v) - half_w - 1.0).max(0.0) as usize).min(size);
        let hi = |u: f32, v: f32| ((u.max(v) + half_w + 1.0).max(0.0) as usize).min(size - 1);
        let (x0, x1, y0, y1) = (lo(a.0, b.0), hi(a.0, b.0), lo(a.1, b.1), hi(a.1, b.1));
        for y in y0..=y1.max(y0) {
            for x in x0..=x1.max(x0) {
                if x < size && y < size && dist_to_segment((x as f32 + 0.5, y as f32 + 0.5), a, b) <= half_w {
                    region[y * size + x] = true;
                }
            }
        }
    }
}

/// Marks pixels inside an irregular blob: radius `r0 * (1 + sum a_k sin(k theta + phi_k))`.
fn blob(region: &mut [bool], size: usize, c: (f32, f32), r0: f32, harmonics: &[(f32, f32, f32)]) {
    let rmax = r0 * (1.0 + harmonics.iter().map(|h| h.0.abs()).sum::<f32>()) + 1.0;
    let clampi = |v: f32| (v.max(0.0) as usize).min(size - 1);
    for y in clampi(c.1 - rmax)..=clampi(c.1 + rmax) {
        for x in clampi(c.0 - rmax)..=clampi(c.0 + rmax) {
            let (dx, dy) = (x as f32 + 0.5 - c.0, y as f32 + 0.5 - c.1);
            let th = dy.atan2(dx);
            let r = r0 * (1.0 + harmonics.iter().map(|&(a, k, ph)| a * (k * th + ph).sin()).sum::<f32>());
            if dx * dx + dy * dy <= r * r {
                region[y * size + x] = true;
            }
        }
    }
}

fn random_harmonics(rng: &mut impl Rng, amp: f32) -> Vec<(f32, f32, f32)> {
    (2..=4)
        .map(|k| {
            (
                amp * rng.random::<f32>(),
                k as f32,
                rng.random::<f32>() * std::f32::consts::TAU,
            )
        })
        .collect()
}

/// Draws a defect of `kind` into `canvas` and returns its exact mask.
fn apply_defect(rng: &mut ChaCha8Rng, canvas: &mut Canvas, kind: Defect) -> Result<Vec<bool>> {
    let size = canvas.size;
    let s = size as f32;
    let n = size * size;
    let tau = std::f32::consts::TAU;
    let (min_area, max_area) = (
        (MIN_DEFECT_FRACTION * n as f64).ceil() as usize,
        (MAX_DEFECT_FRACTION * n as f64) as usize,
    );

    let mut region = vec![false; n];
    let mut accepted = false;
    for _ in 0..MAX_SHAPE_ATTEMPTS {
        region.fill(false);
        let centre = match &canvas.object {
            Some(o) => {
                let (rho, phi) = (
                    o.r_in + (o.r_out - o.r_in) * rng.random::<f32>(),
                    rng.random::<f32>() * tau,
                );
                (o.cx + rho * phi.cos(), o.cy + rho * phi.sin())
            }
            None => (
                s * (0.2 + 0.6 * rng.random::<f32>()),
                s * (0.2 + 0.6 * rng.random::<f32>()),
            ),
        };
        match kind {
            Defect::Scratch => {
                let len = s * (0.25 + 0.25 * rng.random::<f32>());
                let half_w = 0.5 * (s * (0.008 + 0.006 * rng.random::<f32>())).max(1.5);
                let heading = rng.random::<f32>() * tau;
                let pts: Vec<(f32, f32)> = if rng.random_bool(0.5) {
                    let (dx, dy) = (0.5 * len * heading.cos(), 0.5 * len * heading.sin());
                    vec![(centre.0 - dx, centre.1 - dy), (centre.0 + dx, centre.1 + dy)]
                } else {
                    // Arc of radius R through `centre`, sweeping len / R radians.
                    let radius = len / (0.6 + 0.8 * rng.random::<f32>());
                    let sweep = len / radius;
                    let (ox, oy) = (centre.0 - radius * heading.cos(), centre.1 - radius * heading.sin());
                    (0..=24)
                        .map(|i| heading - sweep / 2.0 + sweep * i as f32 / 24.0)
                        .map(|a| (ox + radius * a.cos(), oy + radius * a.sin()))
                        .collect()
                };
                stroke(&mut region, size, &pts, half_w);
            }
            Defect::Spot => {
                let area = s * s * (0.006 + 0.022 * rng.random::<f32>());
                let h = random_harmonics(rng, 0.12);
                blob(&mut region, size, centre, (area / std::f32::consts::PI).sqrt(), &h);
            }
            Defect::Crack => {
                let half_w = 0.5 * (s * (0.007 + 0.006 * rng.random::<f32>())).max(1.5);
                let step = s * 0.02;
                let mut heading = rng.random::<f32>() * tau;
                let steps = (s * (0.3 + 0.2 * rng.random::<f32>()) / step) as usize;
                let mut pts = vec![centre];
                for _ in 0..steps {
                    heading += 0.7 * tri(rng);
                    let p = *pts.last().unwrap_or(&centre);
                    pts.push((p.0 + step * heading.cos(), p.1 + step * heading.sin()));
                }
                stroke(&mut region, size, &pts, half_w);
                if rng.random_bool(0.5) {
                    let from = pts[pts.len() / 2 + rng.random_range(0..pts.len() / 3 + 1)];
                    let mut b = vec![from];
                    let mut hb = heading + tri(rng).signum() * 0.9;
                    for _ in 0..steps / 3 {
                        hb += 0.7 * tri(rng);
                        let p = *b.last().unwrap_or(&from);
                        b.push((p.0 + step * hb.cos(), p.1 + step * hb.sin()));
                    }
                    stroke(&mut region, size, &b, half_w * 0.8);
                }
            }
            Defect::Missing => {
                let area = s * s * (0.008 + 0.022 * rng.random::<f32>());
                let h = random_harmonics(rng, 0.22);
                blob(&mut region, size, centre, (area / std::f32::consts::PI).sqrt(), &h);
            }
        }
        if let Some(o) = &canvas.object {
            for (r, &ok) in region.iter_mut().zip(&o.solid) {
                *r &= ok;
            }
        }
        let area = region.iter().filter(|&&b| b).count();
        if (min_area..=max_area).contains(&area) {
            accepted = true;
            break;
        }
    }
    if !accepted {
        return Err(Error::Internal(format!(
            "could not place a {} defect within the area bounds after {MAX_SHAPE_ATTEMPTS} attempts",
            kind.name()
        )));
    }

    // Colour the region. Each kind has a target colour; `visible` then guarantees the
    // minimum contrast so the mask equals the set of changed pixels.
    let spot_palette: [Px; 4] = [
        [0.62, 0.26, 0.06],
        [0.10, 0.22, 0.62],
        [0.20, 0.50, 0.15],
        [0.90, 0.85, 0.20],
    ];
    let pick = rng.random_range(0..spot_palette.len());
    let spot = jitter(rng, spot_palette[pick], 0.04);
    let bright_scratch = rng.random_bool(0.5);
    let hole: Px = jitter(rng, [0.07, 0.06, 0.06], 0.01);
    let darker = match kind {
        Defect::Scratch => !bright_scratch,
        Defect::Spot => spot.iter().sum::<f32>() < 1.2,
        Defect::Crack | Defect::Missing => true,
    };
    for (i, _) in region.iter().enumerate().filter(|(_, &b)| b) {
        let base_u8 = [canvas.rgb[3 * i], canvas.rgb[3 * i + 1], canvas.rgb[3 * i + 2]];
        let base = base_u8.map(|v| v as f32 / 255.0);
        let target: Px = match kind {
            Defect::Scratch if bright_scratch => mix(base, [1.0, 1.0, 0.98], 0.7),
            Defect::Scratch => scale(base, 0.3),
            Defect::Spot => mix(base, spot, 0.8),
            Defect::Crack => scale(base, 0.2),
            Defect::Missing => match &canvas.object {
                Some(o) => {
                    [o.background[3 * i], o.background[3 * i + 1], o.background[3 * i + 2]].map(|v| v as f32 / 255.0)
                }
                None => hole.map(|v| v + 0.02 * tri(rng)),
            },
        };
        let new = visible(base_u8, target.map(to_u8), darker);
        canvas.rgb[3 * i..3 * i + 3].copy_from_slice(&new);
    }
    Ok(region)
}

/// Returns `new` if it differs from `base` by at least [`MIN_DEFECT_CONTRAST`] in some
/// channel; otherwise pushes every channel of `base` by that amount (darker if asked and
/// possible), so a defect pixel is never invisible or unchanged.
fn visible(base: [u8; 3], new: [u8; 3], darker: bool) -> [u8; 3] {
    let m = MIN_DEFECT_CONTRAST;
    if base.iter().zip(&new).any(|(&b, &n)| b.abs_diff(n) >= m) {
        return new;
    }
    base.map(|b| {
        if (darker && b >= m) || b > 255 - m {
            b - m
        } else {
            b + m
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::mvtec;

    fn small(seed: u64, domains: &[&str]) -> SynthOptions {
        SynthOptions {
            seed,
            size: 96,
            train_good: 2,
            test_good: 1,
            defects_per_type: 2,
            domains: domains.iter().map(|d| d.to_string()).collect(),
        }
    }

    fn files(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push((p.strip_prefix(root).unwrap().to_path_buf(), std::fs::read(&p).unwrap()));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn data_synth_same_seed_identical_different_seed_differs() {
        let (a, b, c) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let opts = small(5, DOMAINS);
        let sa = generate(a.path(), &opts).unwrap();
        generate(b.path(), &opts).unwrap();
        generate(c.path(), &small(6, DOMAINS)).unwrap();
        let (fa, fb, fc) = (files(a.path()), files(b.path()), files(c.path()));
        assert_eq!(fa.len(), 5 * (2 + 1 + 4 * 2 * 2));
        assert_eq!(sa.total_images(), 5 * (2 + 1 + 4 * 2));
        assert_eq!(fa, fb);
        // Same file names, different content for every normal image of the other seed.
        assert_eq!(
            fa.iter().map(|f| &f.0).collect::<Vec<_>>(),
            fc.iter().map(|f| &f.0).collect::<Vec<_>>()
        );
        for (x, y) in fa.iter().zip(&fc) {
            if !x.0.to_string_lossy().contains("mask") {
                assert_ne!(x.1, y.1, "{}", x.0.display());
            }
        }
    }

    #[test]
    fn data_synth_images_differ_within_a_domain() {
        for &d in DOMAINS {
            let dom = Domain::parse(d).unwrap();
            let mut r0 = image_rng(1, d, "train/good", 0);
            let mut r1 = image_rng(1, d, "train/good", 1);
            let a = render_normal(&mut r0, dom, 64).rgb;
            let b = render_normal(&mut r1, dom, 64).rgb;
            let mean_abs = a.iter().zip(&b).map(|(&x, &y)| x.abs_diff(y) as f64).sum::<f64>() / a.len() as f64;
            assert!(mean_abs > 2.0, "{d}: images nearly identical ({mean_abs})");
        }
    }

    #[test]
    fn data_synth_masks_exact_and_within_bounds() {
        // Many draws per domain and defect type at two sizes.
        for size in [64usize, 160] {
            let n = (size * size) as f64;
            for &d in DOMAINS {
                let dom = Domain::parse(d).unwrap();
                for kind in DEFECTS {
                    for idx in 0..6 {
                        let mut rng = image_rng(9, d, kind.name(), idx);
                        let mut canvas = render_normal(&mut rng, dom, size);
                        let before = canvas.rgb.clone();
                        let mask = apply_defect(&mut rng, &mut canvas, kind).unwrap();
                        let area = mask.iter().filter(|&&b| b).count() as f64 / n;
                        assert!(
                            (MIN_DEFECT_FRACTION..=MAX_DEFECT_FRACTION).contains(&area),
                            "{d}/{}: area {area}",
                            kind.name()
                        );
                        for (i, &m) in mask.iter().enumerate() {
                            let (a, b) = (&before[3 * i..3 * i + 3], &canvas.rgb[3 * i..3 * i + 3]);
                            let diff = a.iter().zip(b).map(|(&x, &y)| x.abs_diff(y)).max().unwrap();
                            if m {
                                assert!(
                                    diff >= MIN_DEFECT_CONTRAST,
                                    "{d}/{}: masked pixel {i} changed by {diff}",
                                    kind.name()
                                );
                            } else {
                                assert_eq!(diff, 0, "{d}/{}: unmasked pixel {i} changed", kind.name());
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn data_synth_output_opens_as_mvtec() {
        let dir = tempfile::tempdir().unwrap();
        let sum = generate(dir.path(), &small(3, &["object", "weave"])).unwrap();
        assert_eq!(sum.domains.len(), 2);
        assert_eq!(mvtec::list_categories(dir.path()).unwrap(), ["object", "weave"]);
        for name in ["object", "weave"] {
            let cat = mvtec::open_category(dir.path(), name).unwrap();
            assert_eq!(cat.train_good.len(), 2);
            assert_eq!(cat.test.len(), 1 + 4 * 2);
            for s in &cat.test {
                let img = mvtec::load_rgb(&s.path).unwrap();
                assert_eq!(img.dimensions(), (96, 96));
                match &s.mask {
                    None => assert!(!s.is_anomalous()),
                    Some(m) => {
                        let mask = mvtec::load_mask(m, 96, 96).unwrap();
                        let frac = mask.iter().filter(|&&b| b).count() as f64 / (96.0 * 96.0);
                        assert!(
                            (MIN_DEFECT_FRACTION..=MAX_DEFECT_FRACTION).contains(&frac),
                            "{}",
                            m.display()
                        );
                        let raw = image::open(m).unwrap().into_luma8().into_raw();
                        assert!(raw.iter().all(|&v| v == 0 || v == 255));
                    }
                }
            }
            let good_masks = dir.path().join(name).join("ground_truth/good");
            assert!(!good_masks.exists());
        }
        // A second run into the same folder is refused rather than mixing sets.
        let e = generate(dir.path(), &small(4, &["weave"])).unwrap_err().to_string();
        assert!(e.contains("not empty"), "{e}");
    }

    #[test]
    fn data_synth_rejects_bad_options() {
        let dir = tempfile::tempdir().unwrap();
        let bad = |f: fn(&mut SynthOptions)| {
            let mut o = small(0, &["grain"]);
            f(&mut o);
            generate(dir.path(), &o).unwrap_err().to_string()
        };
        assert!(bad(|o| o.size = 8).contains("size"));
        assert!(bad(|o| o.train_good = 0).contains("train_good"));
        assert!(bad(|o| o.domains = vec!["marble".into()]).contains("marble"));
        assert!(bad(|o| o.domains = vec!["grain".into(), "grain".into()]).contains("twice"));
        assert!(bad(|o| o.domains.clear()).contains("no synthetic domains"));
    }
}
