//! The training feature cache: the frozen encoders' outputs of every training image in one
//! file, with a memory budget.
//!
//! Why a file: the encoders are frozen, so each image (and each perturbed target copy) is
//! encoded once and every epoch reuses its features. They are large: every Hiera stage and
//! the DINOv2 grid, 2.65 MB per image at 224 px with hiera_tiny + ViT-S/14, and the grids
//! grow with the input's area (four times that at 448 px). The paper's eleven source
//! products (≈ 3,900 images) need ≈ 10.5 GB at 224 and about four times that at 448 — more
//! than an inspection PC holds.
//! The cache keeps them on disk and holds in memory only the feature sets that fit the
//! budget ([`CacheOptions::mem_budget`]); the others are read for the step that uses them.
//! Reads go through the page cache, which the kernel gives back under pressure, so the
//! process's own memory no longer grows with the number of images.
//!
//! Why f32 and not f16: reading a feature set back gives exactly the values the encoder
//! produced, so a run from the cache equals a run that kept everything in memory bit for
//! bit, and `--resume` keeps its guarantee (a resumed run equals an unbroken one). f16
//! would halve the file but change every result in the last bits; disk is the cheap side.
//! All five tensors are kept: the head fuses each Hiera stage with the DINOv2 grid.
//!
//! File format (`features.nxcache`, little-endian):
//! * a 4096-byte header: the 16-byte magic `NEXVITAD-FCACHE\0`, a u32 format version, a u32
//!   length, then that many bytes of JSON (`Header`: the data key, the number of records,
//!   the tensor shapes, a description of the run), zero padding;
//! * `records` fixed-size records in encoding order (the source images, then each target
//!   image followed by its perturbed copies): a u32 record magic `NXFR`, the u32 record
//!   index, the u32 CRC-32 of the payload, a u32 zero; then the payload, the five tensors
//!   (H1..H4, DINOv2) as f32 `[C, h, w]`, row-major, one after the other.
//!
//! A record is used only when its magic, index and checksum match; any other record is
//! encoded again. So a run stopped during encoding (Ctrl-C, a kill, a full disk) leaves a
//! cache whose finished records the next run reuses, and a torn, truncated or corrupted
//! record is never read as features. A header that is not ours is rebuilt; a header of
//! other data (another key) is refused, never overwritten: it may be another run's.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use ndarray::Axis;
use serde::{Deserialize, Serialize};

use super::data::Features;
use super::ops::tensor_err;
use crate::encoder::BackboneFeatures;
use crate::error::{Error, Result};
use crate::manifest::Manifest;

/// File name of the cache inside its folder.
pub const CACHE_FILE: &str = "features.nxcache";
/// Version of the file format this library writes and reads.
pub const CACHE_FORMAT_VERSION: u32 = 1;
const MAGIC: &[u8; 16] = b"NEXVITAD-FCACHE\0";
const HEADER_BYTES: u64 = 4096;
const RECORD_MAGIC: u32 = u32::from_le_bytes(*b"NXFR");
const RECORD_HEADER: u64 = 16;
/// The default budget's ceiling, see [`default_mem_budget`].
const DEFAULT_BUDGET_CAP: u64 = 512 << 20;

/// Where the feature cache lives and how much of it stays in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheOptions {
    /// Folder of the cache file; `None`: the training's output folder. A folder shared by
    /// several runs of the same data (e.g. a run per learning rate) encodes the images once.
    pub dir: Option<PathBuf>,
    /// Bytes of feature sets held in memory; `None`: [`default_mem_budget`]. It must hold at
    /// least one training step's feature sets (see [`TrainData::load`](super::TrainData::load)).
    pub mem_budget: Option<u64>,
}

/// The default memory budget: an eighth of the machine's memory, at most 512 MiB (512 MiB
/// when the memory cannot be read). The feature sets are not what limits the speed: an epoch
/// reading most of them from the file through the page cache took 1.02× the time of one
/// holding all of them (docs/performance.md, §9), while the encoders' sessions and candle's
/// activations already take about 1.7 GB at full size; 512 MiB keeps the whole run near
/// 2.5 GB, beside the other programs of an inspection PC.
pub fn default_mem_budget() -> u64 {
    physical_memory().map_or(DEFAULT_BUDGET_CAP, |m| (m / 8).min(DEFAULT_BUDGET_CAP))
}

/// Total memory from /proc/meminfo, in bytes.
fn physical_memory() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Bytes as a person reads them, in powers of 1024 as `--cache-mem` takes them: "4.1 MiB",
/// "16.0 GiB".
pub fn human_bytes(b: u64) -> String {
    const UNITS: [(&str, u64); 4] = [("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    match UNITS.iter().find(|(_, u)| b >= *u) {
        Some((name, u)) => format!("{:.1} {name}", b as f64 / *u as f64),
        None => format!("{b} B"),
    }
}

/// Shapes `[C, h, w]` of the five tensors of one image: Hiera H1..H4, then DINOv2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    shapes: [[usize; 3]; 5],
}

impl Layout {
    /// The shapes the model's encoders produce ([`crate::encoder::output_shapes`]).
    pub fn of(m: &Manifest) -> Self {
        Self { shapes: crate::encoder::output_shapes(m) }
    }

    fn floats(&self) -> usize {
        self.shapes.iter().map(|s| s[0] * s[1] * s[2]).sum()
    }

    /// Bytes of one image's features in memory (and of a record's payload).
    pub fn feature_bytes(&self) -> u64 {
        self.floats() as u64 * 4
    }

    fn record_bytes(&self) -> u64 {
        RECORD_HEADER + self.feature_bytes()
    }
}

/// The JSON of the file header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Header {
    /// The training data's hash ([`super::TrainData::data_hash`]): file list and sizes,
    /// domains, perturbations, seed and base model.
    key: String,
    records: u64,
    shapes: Vec<[usize; 3]>,
    dtype: String,
    /// For people and error messages: the domains and base model it was built for.
    about: String,
}

/// The open cache file (locked against a second run) and the feature sets held in memory.
#[derive(Debug)]
pub struct FeatureCache {
    path: PathBuf,
    file: File,
    layout: Layout,
    records: usize,
    resident: Vec<Option<Features>>,
    resident_bytes: u64,
}

/// What [`FeatureCache::open`] found.
#[derive(Debug)]
pub struct Opened {
    /// The cache, locked.
    pub cache: FeatureCache,
    /// Records to encode (missing, torn or corrupt), ascending.
    pub missing: Vec<usize>,
    /// The file existed but its header was not a readable cache header of this data and
    /// layout; it was rebuilt.
    pub rebuilt: bool,
}

fn write_err(path: &Path, e: std::io::Error) -> Error {
    Error::io("cannot write the training feature cache (free disk space, or put the cache on another disk)", path, e)
}

impl FeatureCache {
    /// Opens the cache for `key` in `dir` (created when missing), checks every record and
    /// returns those that need encoding. A missing file is created with its full size
    /// reserved (a disk too small fails here, before any encoding); a file whose header is
    /// not a cache header is rebuilt; one built for other data is refused (MISMATCH).
    /// `progress(valid_so_far)` is called while existing records are checked; returning
    /// false cancels.
    pub fn open(dir: &Path, key: &str, about: &str, layout: Layout, records: usize, progress: &mut dyn FnMut(usize) -> bool) -> Result<Opened> {
        if dir.exists() && !dir.is_dir() {
            return Err(Error::invalid(format!("feature cache folder '{}' is not a folder", dir.display())));
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create the feature cache folder", dir, e))?;
        let path = dir.join(CACHE_FILE);
        let existed = path.exists();
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(|e| Error::io("cannot open the training feature cache", &path, e))?;
        lock(&file, &path)?;
        let header = Header { key: key.to_string(), records: records as u64, shapes: layout.shapes.to_vec(), dtype: "f32".into(), about: about.to_string() };
        let mut cache = FeatureCache { path, file, layout, records, resident: vec![None; records], resident_bytes: 0 };
        let found = if existed { cache.read_header() } else { None };
        let reusable = match found {
            Some(h) if h.key != key => {
                return Err(Error::Mismatch(format!(
                    "feature cache '{}' holds the features of other data, domains, perturbation settings, seed or base model ({}); \
                     this run is {about}. Delete the file, or choose another cache folder",
                    cache.path.display(),
                    h.about
                )));
            }
            // `about` is for people: a header differing only there is still this data's. A
            // header of our key with another layout cannot come from this library: rebuilt.
            Some(h) => Header { about: header.about.clone(), ..h } == header,
            None => false,
        };
        if !reusable {
            cache.create(&header)?;
        }
        // A file just (re)made holds no record yet: nothing to read back.
        let missing = if reusable { cache.scan(progress)? } else { (0..records).collect() };
        let rebuilt = existed && !reusable;
        Ok(Opened { cache, missing, rebuilt })
    }

    /// The header, when the file starts with a readable one of this format version.
    fn read_header(&self) -> Option<Header> {
        let mut buf = vec![0u8; HEADER_BYTES as usize];
        self.file.read_exact_at(&mut buf, 0).ok()?;
        if &buf[..16] != MAGIC || u32::from_le_bytes(buf[16..20].try_into().ok()?) != CACHE_FORMAT_VERSION {
            return None;
        }
        let n = u32::from_le_bytes(buf[20..24].try_into().ok()?) as usize;
        serde_json::from_slice(buf.get(24..24 + n)?).ok()
    }

    /// Empties the file, writes `header` and reserves the records' space.
    fn create(&mut self, header: &Header) -> Result<()> {
        let json = serde_json::to_vec(header).map_err(|e| Error::Internal(e.to_string()))?;
        let mut buf = vec![0u8; HEADER_BYTES as usize];
        if 24 + json.len() > buf.len() {
            return Err(Error::invalid(format!("feature cache header of {} bytes does not fit: domain names too long", json.len())));
        }
        buf[..16].copy_from_slice(MAGIC);
        buf[16..20].copy_from_slice(&CACHE_FORMAT_VERSION.to_le_bytes());
        buf[20..24].copy_from_slice(&(json.len() as u32).to_le_bytes());
        buf[24..24 + json.len()].copy_from_slice(&json);
        let len = self.file_len_wanted();
        let res = (|| {
            self.file.set_len(0)?;
            self.file.write_all_at(&buf, 0)?;
            reserve(&self.file, len)
        })();
        if let Err(e) = res {
            // Nothing half-made stays behind: the next run starts from an empty folder.
            let _ = std::fs::remove_file(&self.path);
            let need = human_bytes(len);
            let e = std::io::Error::new(e.kind(), format!("{e}; the cache needs {need} for {} feature sets of {}", self.records, human_bytes(self.layout.feature_bytes())));
            return Err(write_err(&self.path, e));
        }
        Ok(())
    }

    fn file_len_wanted(&self) -> u64 {
        HEADER_BYTES + self.records as u64 * self.layout.record_bytes()
    }

    fn offset(&self, r: usize) -> u64 {
        HEADER_BYTES + r as u64 * self.layout.record_bytes()
    }

    /// Indices of the records that do not verify, checking each in file order.
    fn scan(&self, progress: &mut dyn FnMut(usize) -> bool) -> Result<Vec<usize>> {
        let len = self.file.metadata().map_err(|e| Error::io("cannot read the training feature cache", &self.path, e))?.len();
        if len < self.file_len_wanted() {
            // Truncated (or reserved without fallocate): extend; the holes fail their check.
            reserve(&self.file, self.file_len_wanted()).map_err(|e| write_err(&self.path, e))?;
        }
        let mut missing = Vec::new();
        let mut buf = vec![0u8; self.layout.record_bytes() as usize];
        let mut valid = 0;
        for r in 0..self.records {
            if self.read_record(r, &mut buf).is_ok() {
                valid += 1;
                if !progress(valid) {
                    return Err(Error::Cancelled);
                }
            } else {
                missing.push(r);
            }
        }
        Ok(missing)
    }

    /// Reads record `r` into `buf` and checks it; the error says what did not match.
    fn read_record(&self, r: usize, buf: &mut [u8]) -> std::result::Result<(), String> {
        self.file.read_exact_at(buf, self.offset(r)).map_err(|e| e.to_string())?;
        let word = |i: usize| u32::from_le_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
        if word(0) != RECORD_MAGIC || word(4) as usize != r {
            return Err("not a written record".into());
        }
        if crc32fast::hash(&buf[RECORD_HEADER as usize..]) != word(8) {
            return Err("checksum mismatch".into());
        }
        Ok(())
    }

    /// Writes image `i` of an encoded batch as record `r`.
    pub fn write(&self, r: usize, f: &BackboneFeatures, i: usize) -> Result<()> {
        let views = [&f.hiera[0], &f.hiera[1], &f.hiera[2], &f.hiera[3], &f.dinov2];
        let mut buf = Vec::with_capacity(self.layout.record_bytes() as usize);
        buf.resize(RECORD_HEADER as usize, 0);
        for (a, shape) in views.iter().zip(&self.layout.shapes) {
            let v = a.index_axis(Axis(0), i);
            if v.shape() != shape {
                return Err(Error::Internal(format!("encoder output {:?} is not the cache layout {shape:?}", v.shape())));
            }
            for x in v.iter() {
                buf.extend_from_slice(&x.to_le_bytes());
            }
        }
        let crc = crc32fast::hash(&buf[RECORD_HEADER as usize..]);
        buf[0..4].copy_from_slice(&RECORD_MAGIC.to_le_bytes());
        buf[4..8].copy_from_slice(&(r as u32).to_le_bytes());
        buf[8..12].copy_from_slice(&crc.to_le_bytes());
        self.file.write_all_at(&buf, self.offset(r)).map_err(|e| write_err(&self.path, e))
    }

    /// Flushes the written records to the disk.
    pub fn sync(&self) -> Result<()> {
        self.file.sync_data().map_err(|e| write_err(&self.path, e))
    }

    /// Reads record `r` from the file (not the memory copy).
    fn load(&self, r: usize) -> Result<Features> {
        let mut buf = vec![0u8; self.layout.record_bytes() as usize];
        self.read_record(r, &mut buf).map_err(|why| {
            Error::format(&self.path, format!("feature set {r} no longer verifies ({why}): the file changed during the run; run again to re-encode it"))
        })?;
        let mut at = RECORD_HEADER as usize;
        let mut next = |s: &[usize; 3]| -> Result<Tensor> {
            let n = s[0] * s[1] * s[2];
            let v: Vec<f32> = buf[at..at + 4 * n].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            at += 4 * n;
            Tensor::from_vec(v, (1, s[0], s[1], s[2]), &Device::Cpu).map_err(tensor_err)
        };
        let sh = &self.layout.shapes;
        Ok(Features { hiera: [next(&sh[0])?, next(&sh[1])?, next(&sh[2])?, next(&sh[3])?], dino: next(&sh[4])? })
    }

    /// Holds the first `n` records of `order` in memory.
    pub fn hold(&mut self, order: impl IntoIterator<Item = usize>, n: usize) -> Result<()> {
        for r in order.into_iter().take(n) {
            if self.resident[r].is_none() {
                self.resident[r] = Some(self.load(r)?);
                self.resident_bytes += self.layout.feature_bytes();
            }
        }
        Ok(())
    }

    /// The features of record `r`: the memory copy when held, else read from the file.
    pub fn get(&self, r: usize) -> Result<Features> {
        match self.resident.get(r) {
            Some(Some(f)) => Ok(f.clone()),
            Some(None) => self.load(r),
            None => Err(Error::Internal(format!("feature set {r} is outside the cache's {}", self.records))),
        }
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Its size on disk.
    pub fn file_bytes(&self) -> u64 {
        self.file_len_wanted()
    }
    /// Feature sets held in memory, and their bytes.
    pub fn resident(&self) -> (usize, u64) {
        (self.resident.iter().filter(|r| r.is_some()).count(), self.resident_bytes)
    }
    /// Records in the file.
    pub fn records(&self) -> usize {
        self.records
    }
    /// The tensor shapes.
    pub fn layout(&self) -> Layout {
        self.layout
    }
}

/// Takes an exclusive lock on the cache for this run: two runs writing one cache would
/// tear each other's records.
fn lock(file: &File, path: &Path) -> Result<()> {
    // SAFETY: flock on a valid, open descriptor.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == ErrorKind::WouldBlock {
            return Err(Error::invalid(format!(
                "feature cache '{}' is in use by another training run; wait for it, or choose another cache folder",
                path.display()
            )));
        }
        // File systems without flock: run unlocked rather than not at all.
    }
    Ok(())
}

/// Makes the file `len` bytes long with its blocks allocated where the file system can, so
/// a full disk shows now rather than half-way through encoding.
fn reserve(file: &File, len: u64) -> std::io::Result<()> {
    let cur = file.metadata()?.len();
    if cur >= len {
        return Ok(());
    }
    // SAFETY: posix_fallocate on a valid, open descriptor.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), cur as libc::off_t, (len - cur) as libc::off_t) };
    match rc {
        0 => Ok(()),
        libc::EOPNOTSUPP | libc::EINVAL => file.set_len(len),
        e => Err(std::io::Error::from_raw_os_error(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_reads_well() {
        assert_eq!(human_bytes(4_300_000), "4.1 MiB");
        assert_eq!(human_bytes(16 << 30), "16.0 GiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(512), "512 B");
    }

    #[test]
    fn default_budget_is_an_eighth_of_memory_at_most_512_mib() {
        let b = default_mem_budget();
        assert!(b > 0 && b <= DEFAULT_BUDGET_CAP, "{b}");
        if let Some(m) = physical_memory() {
            assert_eq!(b, (m / 8).min(DEFAULT_BUDGET_CAP));
        }
    }
}
