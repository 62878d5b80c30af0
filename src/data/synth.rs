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
//!
//! # Opt-in domains
//!
//! [`DOMAINS`] is the default set. [`EXTRA_DOMAINS`] are generated only when named in
//! [`SynthOptions::domains`]; adding them changed nothing in the output of the default
//! domains.
//!
//! * `mosaic` (one of [`LARGE_DOMAINS`]): 1024 × 1024 images, a 4 × 4 mosaic of 256 × 256
//!   cells, each a normal `weave` texture with its own random stream (so its own phase,
//!   angle, colour and brightness). A defective image has exactly one defective cell; its
//!   defect is one of [`DEFECT_TYPES`] drawn at the 256² cell scale, so the defect area is
//!   within [`MIN_DEFECT_FRACTION`]..=[`MAX_DEFECT_FRACTION`] *of the cell*, i.e. 1/16 of
//!   that of the image. This is the high-resolution case where a small defect covers only
//!   a few patches of a downscaled image.
//! * `shaft` (one of [`LARGE_DOMAINS`]): 1024 × 512 (width × height) images of a machined
//!   metal shaft lying horizontally on a dark background: cylinder shading with a specular
//!   band, a turned groove, fine lengthwise machining lines, and per-image brightness,
//!   highlight and a shift of a few pixels. Its defects are [`SHAFT_DEFECT_TYPES`]: `pit`
//!   (1–3 round dark or bright pits, 4–12 px across) and `scratch` (a hairline 1–2 px wide
//!   and 40–200 px long), always on the shaft's surface. They keep the
//!   [`MIN_DEFECT_CONTRAST`] rule but are far below [`MIN_DEFECT_FRACTION`] (which applies
//!   to the other domains): a shaft defect covers at most [`SHAFT_MAX_DEFECT_FRACTION`] of
//!   the image.
//! * `serial`: images of [`SynthOptions::size`] showing the `object` domain's nut, plus a
//!   printed label (a light rectangle of about 1/5 × 1/10 of the image, at a fixed place
//!   in the lower-right corner) whose content, a row of seven-segment digits, is random in
//!   *every* image, good ones included. Defects are those of `object` and never touch the
//!   label. The domain exists to show false positives from varying printed content: a
//!   detector fitted on a few good images has seen only a few serial numbers, so a new
//!   number can raise the anomaly map at the label in good and defective images alike. The generator also
//!   writes `<out>/serial/roi.png` (same size as the images; 255 = inspect, 0 = the label
//!   and a margin of [`SERIAL_ROI_MARGIN`] px around it): multiplying the anomaly map by
//!   this mask (or taking the image score as the maximum over the 255 region) removes
//!   those false positives without hiding any real defect.
//!
//! [`SynthOptions::size`] applies to [`DOMAINS`] and `serial`; the [`LARGE_DOMAINS`] have
//! fixed native sizes and ignore it (see [`image_size`]).

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The texture/object families the generator can draw, one category folder each.
pub const DOMAINS: &[&str] = &["stripes", "weave", "grain", "speckle", "object"];

/// Opt-in domains, generated only when named in [`SynthOptions::domains`] (never by
/// default): `mosaic`, `shaft` (both also in [`LARGE_DOMAINS`]) and `serial`. Disjoint from
/// [`DOMAINS`]; the two lists together are every valid name.
pub const EXTRA_DOMAINS: &[&str] = &["mosaic", "shaft", "serial"];

/// The opt-in domains with a fixed native image size larger than the usual
/// [`SynthOptions::size`]: `mosaic` (1024 × 1024) and `shaft` (1024 × 512, width × height).
/// A subset of [`EXTRA_DOMAINS`].
pub const LARGE_DOMAINS: &[&str] = &["mosaic", "shaft"];

/// Defect types, one `test/<defect>` folder each, of every domain but `shaft`.
pub const DEFECT_TYPES: &[&str] = &["scratch", "spot", "crack", "missing"];

/// Defect types of the `shaft` domain, one `test/<defect>` folder each.
pub const SHAFT_DEFECT_TYPES: &[&str] = &["pit", "scratch"];

/// Upper bound of a `shaft` defect's area (all its pits together) as a fraction of the
/// image area: shaft defects are small on purpose and [`MIN_DEFECT_FRACTION`] does not
/// apply to them.
pub const SHAFT_MAX_DEFECT_FRACTION: f64 = 0.001;

/// Width in pixels of the band around the `serial` label that `roi.png` also excludes.
pub const SERIAL_ROI_MARGIN: u32 = 4;

/// Defect area bounds as a fraction of the image area: visible, but not trivially large.
/// They hold for [`DOMAINS`] and `serial`; for `mosaic` they hold per 256² cell, and
/// `shaft` has its own bound, [`SHAFT_MAX_DEFECT_FRACTION`].
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

/// Side of a `mosaic` image, and of one of its cells.
const MOSAIC_SIZE: usize = 1024;
const MOSAIC_CELL: usize = 256;
/// The texture domain every mosaic cell is drawn with.
const MOSAIC_TEXTURE: Domain = Domain::Weave;
/// Width × height of a `shaft` image.
const SHAFT_W: usize = 1024;
const SHAFT_H: usize = 512;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthOptions {
    /// Seed of every random choice; the same options give the same images.
    pub seed: u64,
    /// Side of the square images in pixels (64..=4096). Ignored by the
    /// [`LARGE_DOMAINS`], which have fixed sizes (see [`image_size`]), but still checked.
    pub size: u32,
    /// Normal training images per domain (at least 1).
    pub train_good: usize,
    /// Normal test images per domain.
    pub test_good: usize,
    /// Defective test images per defect type and domain.
    pub defects_per_type: usize,
    /// Domains to generate, names from [`DOMAINS`] and [`EXTRA_DOMAINS`].
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
    /// (defect type, number of images), in the order of the domain's [`defect_types`].
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

/// The defect types of `domain` (its `test/<defect>` folders), or `None` for an unknown
/// name: [`SHAFT_DEFECT_TYPES`] for `shaft`, [`DEFECT_TYPES`] for every other domain.
pub fn defect_types(domain: &str) -> Option<&'static [&'static str]> {
    Family::parse(domain).map(|f| match f {
        Family::Shaft => SHAFT_DEFECT_TYPES,
        _ => DEFECT_TYPES,
    })
}

/// Width × height in pixels of the images `domain` gets for [`SynthOptions::size`] `size`,
/// or `None` for an unknown name: `(size, size)` except for the [`LARGE_DOMAINS`]
/// (`mosaic` 1024 × 1024, `shaft` 1024 × 512), which ignore `size`.
pub fn image_size(domain: &str, size: u32) -> Option<(u32, u32)> {
    Family::parse(domain).map(|f| f.dims(size))
}

/// A category [`generate`] can write: one of the base renderers (the default [`DOMAINS`]),
/// or one of the opt-in [`EXTRA_DOMAINS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Base(Domain),
    Mosaic,
    Shaft,
    Serial,
}

impl Family {
    fn parse(name: &str) -> Option<Family> {
        Some(match name {
            "mosaic" => Family::Mosaic,
            "shaft" => Family::Shaft,
            "serial" => Family::Serial,
            _ => Family::Base(Domain::parse(name)?),
        })
    }

    /// The defect kinds of this family, one `test/<defect>` folder each.
    fn kinds(self) -> &'static [Kind] {
        match self {
            Family::Shaft => &SHAFT_KINDS,
            _ => &TEXTURE_KINDS,
        }
    }

    /// Width × height of this family's images.
    fn dims(self, size: u32) -> (u32, u32) {
        match self {
            Family::Mosaic => (MOSAIC_SIZE as u32, MOSAIC_SIZE as u32),
            Family::Shaft => (SHAFT_W as u32, SHAFT_H as u32),
            _ => (size, size),
        }
    }
}

/// The base renderers, one per default domain.
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

/// A shaft defect: small, on the machined surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ShaftDefect {
    Pit,
    Scratch,
}

/// A defect type of some domain: one of the shared texture/object defects, or a shaft one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Texture(Defect),
    Shaft(ShaftDefect),
}

const TEXTURE_KINDS: [Kind; 4] = [
    Kind::Texture(DEFECTS[0]),
    Kind::Texture(DEFECTS[1]),
    Kind::Texture(DEFECTS[2]),
    Kind::Texture(DEFECTS[3]),
];
const SHAFT_KINDS: [Kind; 2] = [Kind::Shaft(ShaftDefect::Pit), Kind::Shaft(ShaftDefect::Scratch)];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Texture(d) => d.name(),
            Kind::Shaft(ShaftDefect::Pit) => "pit",
            Kind::Shaft(ShaftDefect::Scratch) => "scratch",
        }
    }
}

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
        domain: Family,
        name: &'a str,
        defect: Option<Kind>,
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
        for &d in domain.kinds() {
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
            test_defective: domain
                .kinds()
                .iter()
                .map(|d| (d.name().to_owned(), opts.defects_per_type))
                .collect(),
        });
        if domain == Family::Serial {
            let size = opts.size as usize;
            let roi: Vec<u8> = serial_roi(size).iter().map(|&m| if m { 255 } else { 0 }).collect();
            write_png(
                &out.join(name).join("roi.png"),
                &roi,
                opts.size,
                opts.size,
                image::ExtendedColorType::L8,
            )?;
        }
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
        let sample = render_sample(&mut rng, job.domain, opts.size, job.defect)?;
        let cat = out.join(job.name);
        write_png(
            &cat.join(&split).join(format!("{stem}.png")),
            &sample.rgb,
            sample.width,
            sample.height,
            image::ExtendedColorType::Rgb8,
        )?;
        if let (Some(d), Some(mask)) = (job.defect, sample.mask) {
            let gray: Vec<u8> = mask.iter().map(|&m| if m { 255 } else { 0 }).collect();
            let path = cat.join("ground_truth").join(d.name()).join(format!("{stem}_mask.png"));
            write_png(&path, &gray, sample.width, sample.height, image::ExtendedColorType::L8)?;
        }
        Ok::<(), Error>(())
    })?;

    Ok(SynthSummary {
        root: out.to_path_buf(),
        domains: summaries,
    })
}

fn validate(opts: &SynthOptions) -> Result<Vec<Family>> {
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
        let d = Family::parse(name).ok_or_else(|| {
            Error::invalid(format!(
                "unknown synthetic domain '{name}' (known: {}, {})",
                DOMAINS.join(", "),
                EXTRA_DOMAINS.join(", ")
            ))
        })?;
        if opts.domains[..i].contains(name) {
            return Err(Error::invalid(format!("synthetic domain '{name}' listed twice")));
        }
        out.push(d);
    }
    Ok(out)
}

/// Writes `raw` (row-major, `width` × `height` pixels of `color`) as a PNG file, creating
/// its folder.
fn write_png(path: &Path, raw: &[u8], width: u32, height: u32, color: image::ExtendedColorType) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create folder", dir, e))?;
    }
    image::save_buffer_with_format(path, raw, width, height, color, image::ImageFormat::Png).map_err(|e| match e {
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

/// One rendered image: RGB8 row-major pixels and, for a defective image, its exact mask.
struct Sample {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
    mask: Option<Vec<bool>>,
}

/// One normal image, and a defect (image + exact mask) when `defect` is given.
fn render_sample(rng: &mut ChaCha8Rng, family: Family, size: u32, defect: Option<Kind>) -> Result<Sample> {
    let (width, height) = family.dims(size);
    let (rgb, mask) = match family {
        Family::Mosaic => render_mosaic(rng, defect)?,
        Family::Shaft => {
            let mut shaft = render_shaft(rng);
            let mask = match defect {
                Some(Kind::Shaft(d)) => Some(apply_shaft_defect(rng, &mut shaft, d)?),
                Some(k) => return Err(kind_mismatch(family, k)),
                None => None,
            };
            (shaft.rgb, mask)
        }
        Family::Base(domain) => {
            let canvas = render_normal(rng, domain, size as usize);
            with_defect(rng, canvas, family, defect)?
        }
        Family::Serial => {
            let canvas = render_serial(rng, size as usize);
            with_defect(rng, canvas, family, defect)?
        }
    };
    if rgb.len() != width as usize * height as usize * 3 {
        return Err(Error::Internal("synthetic image buffer has the wrong length".into()));
    }
    Ok(Sample {
        width,
        height,
        rgb,
        mask,
    })
}

/// `canvas` with a defect of the shared kinds drawn on it when `defect` is given.
fn with_defect(
    rng: &mut ChaCha8Rng,
    mut canvas: Canvas,
    family: Family,
    defect: Option<Kind>,
) -> Result<(Vec<u8>, Option<Vec<bool>>)> {
    let mask = match defect {
        Some(Kind::Texture(d)) => Some(apply_defect(rng, &mut canvas, d)?),
        Some(k) => return Err(kind_mismatch(family, k)),
        None => None,
    };
    Ok((canvas.rgb, mask))
}

fn kind_mismatch(family: Family, kind: Kind) -> Error {
    Error::Internal(format!("synthetic domain {family:?} has no '{}' defect", kind.name()))
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
fn shade(size: usize, rng: &mut ChaCha8Rng, noise: f32, f: impl FnMut(f32, f32) -> Px) -> Vec<u8> {
    shade_wh(size, size, rng, noise, f)
}

/// [`shade`] for a `w` × `h` image.
fn shade_wh(w: usize, h: usize, rng: &mut ChaCha8Rng, noise: f32, mut f: impl FnMut(f32, f32) -> Px) -> Vec<u8> {
    let mut out = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
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

/// Marks pixels of the `w` × `h` `region` whose centre lies within `half_w` of the polyline.
fn stroke(region: &mut [bool], w: usize, h: usize, pts: &[(f32, f32)], half_w: f32) {
    for seg in pts.windows(2) {
        let (a, b) = (seg[0], seg[1]);
        let lo = |u: f32, v: f32, n: usize| ((u.min(v) - half_w - 1.0).max(0.0) as usize).min(n);
        let hi = |u: f32, v: f32, n: usize| ((u.max(v) + half_w + 1.0).max(0.0) as usize).min(n - 1);
        let (x0, x1, y0, y1) = (lo(a.0, b.0, w), hi(a.0, b.0, w), lo(a.1, b.1, h), hi(a.1, b.1, h));
        for y in y0..=y1.max(y0) {
            for x in x0..=x1.max(x0) {
                if x < w && y < h && dist_to_segment((x as f32 + 0.5, y as f32 + 0.5), a, b) <= half_w {
                    region[y * w + x] = true;
                }
            }
        }
    }
}

/// Marks pixels of the `w` × `h` `region` inside an irregular blob: radius
/// `r0 * (1 + sum a_k sin(k theta + phi_k))` (a disc without harmonics).
fn blob(region: &mut [bool], w: usize, h: usize, c: (f32, f32), r0: f32, harmonics: &[(f32, f32, f32)]) {
    let rmax = r0 * (1.0 + harmonics.iter().map(|h| h.0.abs()).sum::<f32>()) + 1.0;
    let clampi = |v: f32, n: usize| (v.max(0.0) as usize).min(n - 1);
    for y in clampi(c.1 - rmax, h)..=clampi(c.1 + rmax, h) {
        for x in clampi(c.0 - rmax, w)..=clampi(c.0 + rmax, w) {
            let (dx, dy) = (x as f32 + 0.5 - c.0, y as f32 + 0.5 - c.1);
            let th = dy.atan2(dx);
            let r = r0 * (1.0 + harmonics.iter().map(|&(a, k, ph)| a * (k * th + ph).sin()).sum::<f32>());
            if dx * dx + dy * dy <= r * r {
                region[y * w + x] = true;
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
                stroke(&mut region, size, size, &pts, half_w);
            }
            Defect::Spot => {
                let area = s * s * (0.006 + 0.022 * rng.random::<f32>());
                let h = random_harmonics(rng, 0.12);
                blob(
                    &mut region,
                    size,
                    size,
                    centre,
                    (area / std::f32::consts::PI).sqrt(),
                    &h,
                );
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
                stroke(&mut region, size, size, &pts, half_w);
                if rng.random_bool(0.5) {
                    let from = pts[pts.len() / 2 + rng.random_range(0..pts.len() / 3 + 1)];
                    let mut b = vec![from];
                    let mut hb = heading + tri(rng).signum() * 0.9;
                    for _ in 0..steps / 3 {
                        hb += 0.7 * tri(rng);
                        let p = *b.last().unwrap_or(&from);
                        b.push((p.0 + step * hb.cos(), p.1 + step * hb.sin()));
                    }
                    stroke(&mut region, size, size, &b, half_w * 0.8);
                }
            }
            Defect::Missing => {
                let area = s * s * (0.008 + 0.022 * rng.random::<f32>());
                let h = random_harmonics(rng, 0.22);
                blob(
                    &mut region,
                    size,
                    size,
                    centre,
                    (area / std::f32::consts::PI).sqrt(),
                    &h,
                );
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

// ---------------------------------------------------------------------------------------
// Opt-in domains: mosaic, shaft, serial

/// A `mosaic` image (RGB8, [`MOSAIC_SIZE`]²): cells of [`MOSAIC_TEXTURE`] rendered at
/// [`MOSAIC_CELL`]² from streams seeded by the image's stream; a defect goes into one
/// random cell, drawn with that cell's stream, and its mask is placed at the cell.
fn render_mosaic(rng: &mut ChaCha8Rng, defect: Option<Kind>) -> Result<(Vec<u8>, Option<Vec<bool>>)> {
    let per_row = MOSAIC_SIZE / MOSAIC_CELL;
    let seeds: Vec<[u8; 32]> = (0..per_row * per_row).map(|_| rng.random()).collect();
    let defective = rng.random_range(0..seeds.len());
    let mut cells: Vec<(Canvas, ChaCha8Rng)> = seeds
        .par_iter()
        .map(|&seed| {
            let mut r = ChaCha8Rng::from_seed(seed);
            (render_normal(&mut r, MOSAIC_TEXTURE, MOSAIC_CELL), r)
        })
        .collect();
    let cell_mask = match defect {
        Some(Kind::Texture(d)) => {
            let (canvas, r) = &mut cells[defective];
            Some(apply_defect(r, canvas, d)?)
        }
        Some(k) => return Err(kind_mismatch(Family::Mosaic, k)),
        None => None,
    };
    let origin = |k: usize| ((k % per_row) * MOSAIC_CELL, (k / per_row) * MOSAIC_CELL);
    let mut rgb = vec![0u8; MOSAIC_SIZE * MOSAIC_SIZE * 3];
    for (k, (canvas, _)) in cells.iter().enumerate() {
        let (cx, cy) = origin(k);
        for (row, src) in canvas.rgb.chunks_exact(MOSAIC_CELL * 3).enumerate() {
            let dst = ((cy + row) * MOSAIC_SIZE + cx) * 3;
            rgb[dst..dst + src.len()].copy_from_slice(src);
        }
    }
    let mask = cell_mask.map(|m| {
        let (cx, cy) = origin(defective);
        let mut full = vec![false; MOSAIC_SIZE * MOSAIC_SIZE];
        for (row, src) in m.chunks_exact(MOSAIC_CELL).enumerate() {
            let dst = (cy + row) * MOSAIC_SIZE + cx;
            full[dst..dst + MOSAIC_CELL].copy_from_slice(src);
        }
        full
    });
    Ok((rgb, mask))
}

/// A rendered `shaft` image ([`SHAFT_W`] × [`SHAFT_H`]) and where defects may go.
struct ShaftCanvas {
    /// RGB8, row-major.
    rgb: Vec<u8>,
    /// The shaft's face away from its silhouette, chamfered ends and groove: every defect
    /// pixel lies here, so defects are on the metal, never on the background.
    surface: Vec<bool>,
    /// Box around `surface` (x0, x1, y0, y1) to draw defect positions from.
    bounds: (f32, f32, f32, f32),
}

/// A machined shaft lying horizontally on a dark background, lit from above: cylinder
/// shading with a specular band, chamfered ends, one turned groove, lengthwise machining
/// lines; per image: brightness, colour, highlight height, marks and a shift of a few px.
fn render_shaft(rng: &mut ChaCha8Rng) -> ShaftCanvas {
    let (w, h) = (SHAFT_W as f32, SHAFT_H as f32);
    let pi = std::f32::consts::PI;
    let bright = 1.0 + 0.05 * tri(rng);
    let metal = jitter(rng, [0.64, 0.66, 0.69], 0.012);
    let bg = jitter(rng, [0.07, 0.07, 0.08], 0.008);
    let (shift_x, shift_y) = (3.0 * tri(rng), 3.0 * tri(rng));
    let radius = 150.0 * (1.0 + 0.004 * tri(rng));
    let cy = h / 2.0 + shift_y;
    let (x0, x1) = (56.0 + shift_x, w - 56.0 + shift_x);
    let (groove_x, groove_half, groove_depth) = (x0 + 0.3 * (x1 - x0), 5.0, 4.0);
    let chamfer = 6.0;
    let highlight = -0.42 + 0.04 * tri(rng);
    // Lengthwise marks: noise across the shaft (by arc length), nearly constant along it.
    let marks = ValueNoise::new(rng, 160);
    let fine: Vec<f32> = (0..400).map(|_| tri(rng)).collect();
    let (lx, lz) = (-0.35f32, 0.94f32);
    let ln = (lx * lx + lz * lz).sqrt();
    let (ly, lz) = (lx / ln, lz / ln);

    let radius_at = |x: f32| {
        let end = (x - x0).min(x1 - x);
        let groove = if (x - groove_x).abs() < groove_half {
            groove_depth
        } else {
            0.0
        };
        radius - (chamfer - end).max(0.0) - groove
    };
    let pixel = |x: f32, y: f32| -> Px {
        let back = scale(bg, bright * (1.0 - 0.3 * ((y - h / 2.0) / h).abs()));
        let end = (x - x0).min(x1 - x);
        let r = radius_at(x);
        let dy = y - cy;
        let cover = (r - dy.abs() + 0.5).clamp(0.0, 1.0) * (end + 0.5).clamp(0.0, 1.0);
        if cover <= 0.0 {
            return back;
        }
        let ny = (dy / r).clamp(-1.0, 1.0);
        let nz = (1.0 - ny * ny).max(0.0).sqrt();
        let diffuse = (ny * ly + nz * lz).max(0.0);
        let spec = 0.42 * (-((ny - highlight) / 0.09).powi(2)).exp() + 0.10 * (-((ny - 0.5) / 0.25).powi(2)).exp();
        let arc = ny.asin() / pi + 0.5;
        let streak = 0.035 * marks.at(x / w * 0.03 + 0.4, arc) + 0.018 * fine[((arc * 399.0) as usize).min(399)];
        let mut lum = 0.16 + 0.58 * diffuse + spec + streak;
        if end < chamfer {
            lum *= 0.72;
        }
        if (x - groove_x).abs() < groove_half {
            lum *= 0.55 + 0.2 * ((x - groove_x) / groove_half).powi(2);
        }
        mix(back, scale(metal, bright * lum), cover)
    };
    let rgb = shade_wh(SHAFT_W, SHAFT_H, rng, 0.012, pixel);

    let margin_end = 24.0;
    let bounds = (x0 + margin_end, x1 - margin_end, cy - 0.8 * radius, cy + 0.8 * radius);
    let mut surface = vec![false; SHAFT_W * SHAFT_H];
    for (i, s) in surface.iter_mut().enumerate() {
        let (x, y) = ((i % SHAFT_W) as f32 + 0.5, (i / SHAFT_W) as f32 + 0.5);
        *s = (bounds.0..=bounds.1).contains(&x)
            && (bounds.2..=bounds.3).contains(&y)
            && (x - groove_x).abs() > groove_half + 8.0;
    }
    ShaftCanvas { rgb, surface, bounds }
}

/// Draws a small shaft defect of `kind` and returns its exact mask: 1–3 round pits 4–12 px
/// across (each dark or bright), or a hairline scratch 1–2 px wide and 40–200 px long;
/// entirely on the shaft's surface, at most [`SHAFT_MAX_DEFECT_FRACTION`] of the image.
fn apply_shaft_defect(rng: &mut ChaCha8Rng, shaft: &mut ShaftCanvas, kind: ShaftDefect) -> Result<Vec<bool>> {
    let (w, h) = (SHAFT_W, SHAFT_H);
    let n = w * h;
    let tau = std::f32::consts::TAU;
    let max_area = (SHAFT_MAX_DEFECT_FRACTION * n as f64) as usize;
    let (bx0, bx1, by0, by1) = shaft.bounds;
    // 0: untouched, 1: darker, 2: brighter.
    let mut paint = vec![0u8; n];
    let mut accepted = false;
    for _ in 0..MAX_SHAPE_ATTEMPTS {
        paint.fill(0);
        let point = |rng: &mut ChaCha8Rng| {
            (
                bx0 + (bx1 - bx0) * rng.random::<f32>(),
                by0 + (by1 - by0) * rng.random::<f32>(),
            )
        };
        match kind {
            ShaftDefect::Pit => {
                for _ in 0..rng.random_range(1..=3) {
                    let c = point(rng);
                    let r = 0.5 * (4.0 + 8.0 * rng.random::<f32>());
                    let tone = if rng.random_bool(0.6) { 1 } else { 2 };
                    let (xa, xb) = ((c.0 - r - 1.0).max(0.0) as usize, ((c.0 + r + 1.0) as usize).min(w - 1));
                    let (ya, yb) = ((c.1 - r - 1.0).max(0.0) as usize, ((c.1 + r + 1.0) as usize).min(h - 1));
                    for y in ya..=yb {
                        for x in xa..=xb {
                            let (dx, dy) = (x as f32 + 0.5 - c.0, y as f32 + 0.5 - c.1);
                            if dx * dx + dy * dy <= r * r {
                                paint[y * w + x] = tone;
                            }
                        }
                    }
                }
            }
            ShaftDefect::Scratch => {
                let c = point(rng);
                let len = 40.0 + 160.0 * rng.random::<f32>();
                let half_w = 0.5 + 0.5 * rng.random::<f32>();
                let mut heading = rng.random::<f32>() * tau;
                let tone = if rng.random_bool(0.5) { 1 } else { 2 };
                let steps = 12;
                let step = len / steps as f32;
                let mut pts = vec![(c.0 - 0.5 * len * heading.cos(), c.1 - 0.5 * len * heading.sin())];
                for _ in 0..steps {
                    heading += 0.05 * tri(rng);
                    let p = pts[pts.len() - 1];
                    pts.push((p.0 + step * heading.cos(), p.1 + step * heading.sin()));
                }
                let mut region = vec![false; n];
                stroke(&mut region, w, h, &pts, half_w);
                for (p, &r) in paint.iter_mut().zip(&region) {
                    if r {
                        *p = tone;
                    }
                }
            }
        }
        let mut area = 0;
        let mut inside = true;
        for (&p, &ok) in paint.iter().zip(&shaft.surface) {
            if p != 0 {
                area += 1;
                inside &= ok;
            }
        }
        if inside && (8..=max_area).contains(&area) {
            accepted = true;
            break;
        }
    }
    if !accepted {
        return Err(Error::Internal(format!(
            "could not place a shaft {} defect after {MAX_SHAPE_ATTEMPTS} attempts",
            Kind::Shaft(kind).name()
        )));
    }
    for (i, &p) in paint.iter().enumerate().filter(|(_, &p)| p != 0) {
        let base_u8 = [shaft.rgb[3 * i], shaft.rgb[3 * i + 1], shaft.rgb[3 * i + 2]];
        let base = base_u8.map(|v| v as f32 / 255.0);
        let darker = p == 1;
        let target = if darker {
            scale(base, 0.35)
        } else {
            mix(base, [1.0, 1.0, 0.98], 0.75)
        };
        let new = visible(base_u8, target.map(to_u8), darker);
        shaft.rgb[3 * i..3 * i + 3].copy_from_slice(&new);
    }
    Ok(paint.iter().map(|&p| p != 0).collect())
}

/// The `serial` label rectangle of a `size`² image: (x0, y0, x1, y1), ends exclusive; about
/// 1/5 × 1/10 of the image in the lower-right corner.
fn serial_label(size: usize) -> (usize, usize, usize, usize) {
    let s = size as f32;
    let (w, h) = ((s / 5.0).round() as usize, (s / 10.0).round() as usize);
    let m = (s * 0.04).round() as usize;
    let (x1, y1) = (size - m, size - m);
    (x1 - w, y1 - h, x1, y1)
}

/// The `serial` region of interest, row-major: `false` on the label and
/// [`SERIAL_ROI_MARGIN`] px around it, `true` (inspect) elsewhere.
fn serial_roi(size: usize) -> Vec<bool> {
    let (x0, y0, x1, y1) = serial_label(size);
    let m = SERIAL_ROI_MARGIN as usize;
    let (x0, y0, x1, y1) = (
        x0.saturating_sub(m),
        y0.saturating_sub(m),
        (x1 + m).min(size),
        (y1 + m).min(size),
    );
    (0..size * size)
        .map(|i| !((x0..x1).contains(&(i % size)) && (y0..y1).contains(&(i / size))))
        .collect()
}

/// Seven-segment digits: segment k (a, b, c, d, e, f, g) is lit when bit k is set.
const SEVEN_SEGMENT: [u8; 10] = [0x3F, 0x06, 0x5B, 0x4F, 0x66, 0x6D, 0x7D, 0x07, 0x7F, 0x6F];
/// Segment ends in the unit glyph box (x right, y down).
const SEGMENTS: [((f32, f32), (f32, f32)); 7] = [
    ((0.0, 0.0), (1.0, 0.0)),
    ((1.0, 0.0), (1.0, 0.5)),
    ((1.0, 0.5), (1.0, 1.0)),
    ((0.0, 1.0), (1.0, 1.0)),
    ((0.0, 0.5), (0.0, 1.0)),
    ((0.0, 0.0), (0.0, 0.5)),
    ((0.0, 0.5), (1.0, 0.5)),
];

/// A `serial` image: the `object` domain's nut plus a label at [`serial_label`] printed with
/// five random digits; defects are then confined to the nut outside [`serial_roi`]'s
/// excluded region.
fn render_serial(rng: &mut ChaCha8Rng, size: usize) -> Canvas {
    let mut canvas = render_normal(rng, Domain::Object, size);
    let (x0, y0, x1, y1) = serial_label(size);
    let (lw, lh) = (x1 - x0, y1 - y0);
    let paper = jitter(rng, [0.90, 0.89, 0.84], 0.015);
    let ink = jitter(rng, [0.10, 0.10, 0.13], 0.02);
    let digits = 5;
    let pad = (lh as f32 * 0.18).max(1.0);
    let cell_w = (lw as f32 - 2.0 * pad) / digits as f32;
    let gh = lh as f32 - 2.0 * pad;
    let gw = (cell_w * 0.55).min(gh * 0.55);
    let half_w = (gh * 0.045).max(0.5);
    let slant = 0.15 * gw;
    let mut glyphs = vec![false; lw * lh];
    for k in 0..digits {
        let digit = rng.random_range(0..10);
        let ox = pad + k as f32 * cell_w + 0.5 * (cell_w - gw) + 0.3 * tri(rng);
        let oy = pad + 0.3 * tri(rng);
        let at = |(u, v): (f32, f32)| (ox + u * gw + (1.0 - v) * slant, oy + v * gh);
        for (bit, &(a, b)) in SEGMENTS.iter().enumerate() {
            if SEVEN_SEGMENT[digit] & (1 << bit) != 0 {
                stroke(&mut glyphs, lw, lh, &[at(a), at(b)], half_w);
            }
        }
    }
    for y in 0..lh {
        for x in 0..lw {
            let edge = x == 0 || y == 0 || x + 1 == lw || y + 1 == lh;
            let c = if glyphs[y * lw + x] {
                ink
            } else if edge {
                scale(paper, 0.8)
            } else {
                paper
            };
            let n = 0.015 * tri(rng);
            let i = ((y0 + y) * size + x0 + x) * 3;
            canvas.rgb[i..i + 3].copy_from_slice(&c.map(|v| to_u8(v + n)));
        }
    }
    if let Some(o) = &mut canvas.object {
        for (s, keep) in o.solid.iter_mut().zip(serial_roi(size)) {
            *s &= keep;
        }
    }
    canvas
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
        let unknown = bad(|o| o.domains = vec!["marble".into()]);
        assert!(unknown.contains("marble"));
        for name in DOMAINS.iter().chain(EXTRA_DOMAINS) {
            assert!(unknown.contains(name), "{unknown}");
        }
        assert!(bad(|o| o.domains = vec!["grain".into(), "grain".into()]).contains("twice"));
        assert!(bad(|o| o.domains.clear()).contains("no synthetic domains"));
    }

    /// 8-connected components of a `w`-wide mask, as pixel counts.
    fn components(mask: &[bool], w: usize) -> Vec<usize> {
        let h = mask.len() / w;
        let mut seen = vec![false; mask.len()];
        let mut out = Vec::new();
        for start in 0..mask.len() {
            if !mask[start] || seen[start] {
                continue;
            }
            seen[start] = true;
            let (mut stack, mut n) = (vec![start], 0);
            while let Some(i) = stack.pop() {
                n += 1;
                let (x, y) = ((i % w) as i64, (i / w) as i64);
                for (dx, dy) in [(-1, -1), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1), (1, 1)] {
                    let (nx, ny) = (x + dx, y + dy);
                    if nx >= 0 && ny >= 0 && (nx as usize) < w && (ny as usize) < h {
                        let j = ny as usize * w + nx as usize;
                        if mask[j] && !seen[j] {
                            seen[j] = true;
                            stack.push(j);
                        }
                    }
                }
            }
            out.push(n);
        }
        out
    }

    /// Masked pixels changed by at least the minimum contrast, all others unchanged.
    fn assert_exact(before: &[u8], after: &[u8], mask: &[bool], what: &str) {
        assert_eq!(before.len(), mask.len() * 3);
        for (i, &m) in mask.iter().enumerate() {
            let (a, b) = (&before[3 * i..3 * i + 3], &after[3 * i..3 * i + 3]);
            let diff = a.iter().zip(b).map(|(&x, &y)| x.abs_diff(y)).max().unwrap();
            if m {
                assert!(
                    diff >= MIN_DEFECT_CONTRAST,
                    "{what}: masked pixel {i} changed by {diff}"
                );
            } else {
                assert_eq!(diff, 0, "{what}: unmasked pixel {i} changed");
            }
        }
    }

    #[test]
    fn data_synth_extra_domains_deterministic_and_sized() {
        let opts = |seed| SynthOptions {
            seed,
            size: 96,
            train_good: 1,
            test_good: 1,
            defects_per_type: 1,
            domains: EXTRA_DOMAINS.iter().map(|d| d.to_string()).collect(),
        };
        let (a, b, c) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let sa = generate(a.path(), &opts(5)).unwrap();
        generate(b.path(), &opts(5)).unwrap();
        generate(c.path(), &opts(6)).unwrap();
        let shaft = sa.domains.iter().find(|d| d.name == "shaft").unwrap();
        assert_eq!(
            shaft.test_defective,
            [("pit".to_string(), 1), ("scratch".to_string(), 1)]
        );
        let mosaic = sa.domains.iter().find(|d| d.name == "mosaic").unwrap();
        assert_eq!(mosaic.test_defective.len(), DEFECT_TYPES.len());
        assert_eq!(sa.total_images(), (2 + 4) + (2 + 2) + (2 + 4));
        let (fa, fb, fc) = (files(a.path()), files(b.path()), files(c.path()));
        // Images, masks and serial/roi.png.
        assert_eq!(fa.len(), (2 + 4 + 4) + (2 + 2 + 2) + (2 + 4 + 4 + 1));
        assert_eq!(fa, fb);
        assert_eq!(
            fa.iter().map(|f| &f.0).collect::<Vec<_>>(),
            fc.iter().map(|f| &f.0).collect::<Vec<_>>()
        );
        for (x, y) in fa.iter().zip(&fc) {
            let name = x.0.to_string_lossy();
            if !name.contains("mask") && !name.contains("roi") {
                assert_ne!(x.1, y.1, "{name}");
            }
        }
        for (name, dims) in [("mosaic", (1024, 1024)), ("shaft", (1024, 512)), ("serial", (96, 96))] {
            assert_eq!(image_size(name, 96), Some(dims));
            let cat = mvtec::open_category(a.path(), name).unwrap();
            for s in &cat.test {
                assert_eq!(
                    mvtec::load_rgb(&s.path).unwrap().dimensions(),
                    dims,
                    "{}",
                    s.path.display()
                );
                if let Some(m) = &s.mask {
                    let mask = mvtec::load_mask(m, dims.0, dims.1).unwrap();
                    assert!(mask.iter().any(|&b| b), "{}", m.display());
                }
            }
        }
        assert_eq!(defect_types("shaft"), Some(SHAFT_DEFECT_TYPES));
        assert_eq!(defect_types("serial"), Some(DEFECT_TYPES));
        assert_eq!(defect_types("marble"), None);
        assert_eq!(image_size("grain", 200), Some((200, 200)));
    }

    #[test]
    fn data_synth_mosaic_defect_in_exactly_one_cell() {
        let cells = MOSAIC_SIZE / MOSAIC_CELL;
        let cell_n = (MOSAIC_CELL * MOSAIC_CELL) as f64;
        for (idx, kind) in TEXTURE_KINDS.into_iter().enumerate() {
            let rng = image_rng(3, "mosaic", kind.name(), idx);
            let (good, none) = render_mosaic(&mut rng.clone(), None).unwrap();
            assert!(none.is_none());
            assert_eq!(good.len(), MOSAIC_SIZE * MOSAIC_SIZE * 3);
            let (bad, mask) = render_mosaic(&mut rng.clone(), Some(kind)).unwrap();
            let mask = mask.unwrap();
            assert_eq!(mask.len(), MOSAIC_SIZE * MOSAIC_SIZE);
            let mut per_cell = vec![0usize; cells * cells];
            for (i, _) in mask.iter().enumerate().filter(|(_, &m)| m) {
                let (x, y) = (i % MOSAIC_SIZE, i / MOSAIC_SIZE);
                per_cell[(y / MOSAIC_CELL) * cells + x / MOSAIC_CELL] += 1;
            }
            let hit: Vec<usize> = (0..per_cell.len()).filter(|&k| per_cell[k] > 0).collect();
            assert_eq!(hit.len(), 1, "{}: cells with defect pixels {hit:?}", kind.name());
            let frac = per_cell[hit[0]] as f64 / cell_n;
            assert!(
                (MIN_DEFECT_FRACTION..=MAX_DEFECT_FRACTION).contains(&frac),
                "{}: {frac}",
                kind.name()
            );
            assert_exact(&good, &bad, &mask, kind.name());
        }
        // Cells differ from one another (each has its own stream).
        let (img, _) = render_mosaic(&mut image_rng(3, "mosaic", "train/good", 0), None).unwrap();
        let cell = |k: usize| -> Vec<u8> {
            let (cx, cy) = ((k % cells) * MOSAIC_CELL, (k / cells) * MOSAIC_CELL);
            (0..MOSAIC_CELL)
                .flat_map(|r| {
                    let s = ((cy + r) * MOSAIC_SIZE + cx) * 3;
                    img[s..s + MOSAIC_CELL * 3].to_vec()
                })
                .collect()
        };
        assert_ne!(cell(0), cell(5));
    }

    #[test]
    fn data_synth_shaft_defects_small_visible_on_surface() {
        let n = SHAFT_W * SHAFT_H;
        for kind in [ShaftDefect::Pit, ShaftDefect::Scratch] {
            for idx in 0..5 {
                let what = format!("{}/{idx}", Kind::Shaft(kind).name());
                let mut rng = image_rng(11, "shaft", Kind::Shaft(kind).name(), idx);
                let mut shaft = render_shaft(&mut rng);
                assert_eq!(shaft.rgb.len(), n * 3);
                let before = shaft.rgb.clone();
                let mask = apply_shaft_defect(&mut rng, &mut shaft, kind).unwrap();
                assert_exact(&before, &shaft.rgb, &mask, &what);
                let comps = components(&mask, SHAFT_W);
                assert!(!comps.is_empty(), "{what}: empty mask");
                match kind {
                    ShaftDefect::Pit => assert!(comps.len() <= 3, "{what}: {comps:?}"),
                    ShaftDefect::Scratch => assert_eq!(comps.len(), 1, "{what}: {comps:?}"),
                }
                let total: usize = comps.iter().sum();
                assert!(
                    total as f64 <= SHAFT_MAX_DEFECT_FRACTION * n as f64,
                    "{what}: {total} px"
                );
                for &c in &comps {
                    assert!((c as f64) < 0.001 * n as f64 && c >= 8, "{what}: component of {c} px");
                }
                for (i, _) in mask.iter().enumerate().filter(|(_, &m)| m) {
                    assert!(shaft.surface[i], "{what}: pixel {i} off the surface");
                    // On the metal: far brighter than the dark background.
                    let lum = before[3 * i..3 * i + 3].iter().map(|&v| v as u32).sum::<u32>() / 3;
                    assert!(lum > 45, "{what}: pixel {i} has background brightness {lum}");
                }
            }
        }
        // The background is dark and the shaft is where it should be.
        let shaft = render_shaft(&mut image_rng(11, "shaft", "train/good", 0));
        let lum = |x: usize, y: usize| shaft.rgb[3 * (y * SHAFT_W + x)] as u32;
        assert!(lum(512, 10) < 40 && lum(512, 500) < 40 && lum(10, 256) < 40);
        assert!(lum(512, 256) > 80);
    }

    #[test]
    fn data_synth_serial_label_varies_and_roi_excludes_it() {
        let size = 160;
        let (x0, y0, x1, y1) = serial_label(size);
        let label_px = |rgb: &[u8]| -> Vec<u8> {
            (y0..y1)
                .flat_map(|y| rgb[(y * size + x0) * 3..(y * size + x1) * 3].to_vec())
                .collect()
        };
        let a = render_serial(&mut image_rng(1, "serial", "train/good", 0), size).rgb;
        let b = render_serial(&mut image_rng(1, "serial", "train/good", 1), size).rgb;
        let (la, lb) = (label_px(&a), label_px(&b));
        let mean_abs = la.iter().zip(&lb).map(|(&x, &y)| x.abs_diff(y) as f64).sum::<f64>() / la.len() as f64;
        assert!(mean_abs > 8.0, "labels nearly identical ({mean_abs})");
        // The label is the object image plus a light patch: same rendering outside it.
        let obj = render_normal(&mut image_rng(1, "serial", "train/good", 0), Domain::Object, size).rgb;
        for i in 0..size * size {
            let (x, y) = (i % size, i / size);
            if !((x0..x1).contains(&x) && (y0..y1).contains(&y)) {
                assert_eq!(a[3 * i..3 * i + 3], obj[3 * i..3 * i + 3]);
            }
        }

        let roi = serial_roi(size);
        let m = SERIAL_ROI_MARGIN as usize;
        for (i, &keep) in roi.iter().enumerate() {
            let (x, y) = (i % size, i / size);
            let excluded = (x0 - m..x1 + m).contains(&x) && (y0 - m..y1 + m).contains(&y);
            assert_eq!(keep, !excluded, "roi at ({x}, {y})");
        }
        for kind in DEFECTS {
            for idx in 0..6 {
                let mut rng = image_rng(2, "serial", kind.name(), idx);
                let mut canvas = render_serial(&mut rng, size);
                let before = canvas.rgb.clone();
                let mask = apply_defect(&mut rng, &mut canvas, kind).unwrap();
                assert_exact(&before, &canvas.rgb, &mask, kind.name());
                assert!(mask.iter().zip(&roi).all(|(&d, &keep)| !d || keep), "{}", kind.name());
            }
        }

        // Written beside the images, and no written mask touches its zero region.
        let dir = tempfile::tempdir().unwrap();
        generate(
            dir.path(),
            &SynthOptions {
                size: size as u32,
                ..small(4, &["serial"])
            },
        )
        .unwrap();
        let png = image::open(dir.path().join("serial/roi.png")).unwrap().into_luma8();
        assert_eq!(png.dimensions(), (size as u32, size as u32));
        let written: Vec<bool> = png.into_raw().iter().map(|&v| v == 255).collect();
        assert_eq!(written, roi);
        let cat = mvtec::open_category(dir.path(), "serial").unwrap();
        let mut masks = 0;
        for s in cat.test.iter().filter_map(|s| s.mask.as_ref()) {
            let mask = mvtec::load_mask(s, size as u32, size as u32).unwrap();
            assert!(mask.iter().zip(&roi).all(|(&d, &keep)| !d || keep), "{}", s.display());
            masks += 1;
        }
        assert_eq!(masks, DEFECT_TYPES.len() * 2);
    }
}
