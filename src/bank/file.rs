//! The bank file: one safetensors file, readable from Python with the `safetensors` package.
//!
//! Tensor `vectors` (`[n, D]` f32: prototypes, or the full/coreset bank). Metadata (all
//! strings, as safetensors requires): `format` = `nexvitad-bank`, `format_version`, and
//! `meta`, the JSON of [`BankMeta`] (fingerprint, grid, K, σ, scorer, thresholds, normal
//! score statistics). The most used fields are repeated as plain keys for other readers:
//! `fingerprint`, `scorer`, `k`, `sigma`, `grid_h`, `grid_w`, `dim`, `image_threshold`,
//! `pixel_threshold`, `image_score`. `sha256` is a checksum of `meta` and the vectors (see
//! `content_sha256`): a bank whose bytes changed on disk is refused instead of scoring with
//! silently different prototypes or thresholds. Files without it (written before it existed)
//! still load. A bank with a default region of interest also holds tensor `roi` (`[h, w]`
//! u8, 1 = inspect), which the checksum covers too. A growable Sinkhorn or coreset bank also
//! holds tensor `shots` (`[rows, D]` f32, see `bank::grow`) with its own checksum
//! `shots_sha256`, so readers that predate it still load and score the bank.

use std::collections::HashMap;
use std::path::Path;

use ndarray::Array2;
use sha2::{Digest, Sha256};

use super::{BankMeta, MemoryBank};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::roi::Roi;
use crate::tensors::{self, Named, NamedU8};

/// Bank file format version written by this build.
/// Version 2 added tiled banks (`meta.tiles`), version 3 a default region of interest
/// (`meta.roi` and tensor `roi`); a bank is written with the lowest version that holds it,
/// so banks without either are still version 1.
pub const BANK_FORMAT_VERSION: u32 = 3;
/// Default cap on a bank file's size.
pub const DEFAULT_MAX_BANK_BYTES: u64 = 8 << 30;

impl MemoryBank {
    /// The bank as safetensors bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let m = self.meta();
        let json = serde_json::to_string(m).map_err(|e| Error::Internal(format!("bank metadata: {e}")))?;
        let mut meta = HashMap::new();
        meta.insert("format".to_string(), "nexvitad-bank".to_string());
        // A higher version only for what older readers would misread (tiles, a default
        // ROI); whole-image banks without a ROI stay version 1, byte for byte as before.
        let version = if m.roi.is_some() {
            3
        } else if m.tiles.is_some() {
            2
        } else {
            1
        };
        meta.insert("format_version".to_string(), version.to_string());
        meta.insert("meta".to_string(), json.clone());
        meta.insert("fingerprint".to_string(), m.fingerprint.clone());
        meta.insert("scorer".to_string(), m.scorer.name().to_string());
        meta.insert("k".to_string(), m.k.to_string());
        meta.insert("sigma".to_string(), m.sigma.to_string());
        meta.insert("grid_h".to_string(), m.grid_h.to_string());
        meta.insert("grid_w".to_string(), m.grid_w.to_string());
        meta.insert("dim".to_string(), m.dim.to_string());
        meta.insert("image_threshold".to_string(), m.calibration.image_threshold.to_string());
        meta.insert("pixel_threshold".to_string(), m.calibration.pixel_threshold.to_string());
        meta.insert("image_score".to_string(), serde_json::to_string(&m.image_score).unwrap_or_default());
        if let Some(t) = &m.tiles {
            meta.insert("tile".to_string(), t.tiling.tile.to_string());
            meta.insert("tile_overlap".to_string(), t.tiling.overlap.to_string());
            meta.insert("tile_layout".to_string(), t.tiling.layout.name().to_string());
        }
        let v = self.vectors().as_standard_layout();
        let data = v.as_slice().ok_or_else(|| Error::Internal("bank vectors not contiguous".into()))?;
        let roi = self.roi().map(Roi::data).unwrap_or(&[]);
        meta.insert("sha256".to_string(), content_sha256(&json, data, roi));
        let shots_std = self.kept_shots().map(|a| a.as_standard_layout());
        let shots_data = match &shots_std {
            Some(a) => Some(a.as_slice().ok_or_else(|| Error::Internal("bank shots not contiguous".into()))?),
            None => None,
        };
        let mut vectors = vec![Named { name: "vectors".into(), shape: vec![v.nrows(), v.ncols()], data }];
        if let (Some(a), Some(d)) = (&shots_std, shots_data) {
            meta.insert("shots_sha256".to_string(), content_sha256("shots", d, &[]));
            vectors.push(Named { name: "shots".into(), shape: vec![a.nrows(), a.ncols()], data: d });
        }
        match self.roi() {
            None => tensors::to_bytes(&vectors, meta),
            Some(r) => {
                let mask = [NamedU8 { name: "roi".into(), shape: vec![r.height() as usize, r.width() as usize], data: r.data() }];
                tensors::to_bytes_with_u8(&vectors, &mask, meta)
            }
        }
    }

    /// Saves atomically (temp file, fsync, rename): a crash never leaves a half-written bank.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::fsutil::atomic_write(path, &self.to_bytes()?)
    }

    /// Parses bank bytes; `path` only names the source in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let rd = tensors::Reader::parse(bytes, path)?;
        if rd.metadata().get("format").map(String::as_str) != Some("nexvitad-bank") {
            return Err(Error::format(path, "not a nexvitad bank (metadata 'format' is not 'nexvitad-bank')"));
        }
        let v: u32 = rd.meta_parse("format_version")?;
        if v == 0 || v > BANK_FORMAT_VERSION {
            return Err(Error::format(path, format!("bank format_version {v} is not one this nexvitad reads (1..={BANK_FORMAT_VERSION})")));
        }
        let meta_json = rd.meta("meta")?;
        let meta: BankMeta = serde_json::from_str(meta_json).map_err(|e| Error::format(path, format!("bank metadata: {e}")))?;
        validate_meta(&meta).map_err(|m| Error::format(path, m))?;
        let (shape, data) = rd.f32("vectors", &[None, Some(meta.dim)])?;
        let roi = match meta.roi {
            None => None,
            Some([w, h]) => {
                let (s, bytes) = rd.u8("roi", 2)?;
                if s != [h as usize, w as usize] {
                    return Err(Error::format(path, format!("tensor 'roi' is {}x{}, the metadata says {w}x{h}", s[1], s[0])));
                }
                Some(Roi::new(&bytes, w, h, 0).map_err(|e| Error::format(path, format!("tensor 'roi': {e}")))?)
            }
        };
        let shots = match (&meta.growth, meta.scorer) {
            (Some(_), s) if s != super::ScorerKind::Full => {
                let (sh, d) = rd.f32("shots", &[None, Some(meta.dim)])?;
                if rd.metadata().get("shots_sha256").map(String::as_str) != Some(&content_sha256("shots", &d, &[])) {
                    return Err(Error::format(path, "the bank's kept shots do not match their checksum (metadata 'shots_sha256'): the file is damaged"));
                }
                Some(Array2::from_shape_vec((sh[0], sh[1]), d).map_err(|e| Error::format(path, e.to_string()))?)
            }
            _ => None,
        };
        if let Some(want) = rd.metadata().get("sha256") {
            if content_sha256(meta_json, &data, roi.as_ref().map(Roi::data).unwrap_or(&[])) != *want {
                return Err(Error::format(
                    path,
                    "the bank's contents do not match its checksum (metadata 'sha256'): the file is damaged; restore it or rebuild the bank",
                ));
            }
        }
        if shape[0] == 0 {
            return Err(Error::format(path, "the bank holds no vectors"));
        }
        let vectors = Array2::from_shape_vec((shape[0], shape[1]), data).map_err(|e| Error::format(path, e.to_string()))?;
        MemoryBank::from_parts(vectors, meta)
            .and_then(|b| b.with_roi(roi))
            .and_then(|b| b.with_shots(shots))
            .map_err(|e| Error::format(path, e.to_string()))
    }

    /// Loads a bank file and checks it was built by `model`.
    pub fn load(path: &Path, model: &Model) -> Result<Self> {
        let bank = Self::load_unchecked(path, DEFAULT_MAX_BANK_BYTES)?;
        bank.check_model(model)?;
        Ok(bank)
    }

    /// Loads a bank file without a model check (for inspection tools), with a size cap.
    pub fn load_unchecked(path: &Path, max_bytes: u64) -> Result<Self> {
        let bytes = crate::fsutil::read_capped(path, "cannot read bank", max_bytes)?;
        if bytes.is_empty() {
            return Err(Error::format(path, "the bank file is empty"));
        }
        Self::from_bytes(&bytes, path)
    }
}

/// SHA-256 (lowercase hex) of the bank's `meta` JSON, a NUL byte, the vectors as
/// little-endian f32 and the ROI mask's bytes (none without one, so older banks keep their
/// checksum): everything a score depends on besides the model.
fn content_sha256(meta_json: &str, vectors: &[f32], roi: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(meta_json.as_bytes());
    h.update([0u8]);
    let mut buf = Vec::with_capacity(16 * 1024 * 4);
    for chunk in vectors.chunks(16 * 1024) {
        buf.clear();
        buf.extend(chunk.iter().flat_map(|x| x.to_le_bytes()));
        h.update(&buf);
    }
    h.update(roi);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn validate_meta(m: &BankMeta) -> std::result::Result<(), String> {
    if m.fingerprint.len() != 64 || !m.fingerprint.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err("fingerprint must be 64 hex digits".into());
    }
    if m.dim == 0 || m.grid_h == 0 || m.grid_w == 0 || m.grid_h > 4096 || m.grid_w > 4096 {
        return Err(format!("bank dim {} / grid {}x{} out of range", m.dim, m.grid_w, m.grid_h));
    }
    if !(m.sigma.is_finite() && m.sigma >= 0.0 && m.sigma <= 1000.0) {
        return Err(format!("sigma {} out of range", m.sigma));
    }
    if let super::ImageScoreMode::TopMean { fraction } = m.image_score {
        if !(fraction > 0.0 && fraction <= 1.0) {
            return Err(format!("top-mean fraction {fraction} out of range"));
        }
    }
    if let Some(t) = &m.tiles {
        t.tiling.validate().map_err(|e| e.to_string())?;
        if t.tile_w == 0 || t.tile_h == 0 || t.tile_w > 16384 || t.tile_h > 16384 {
            return Err(format!("tile {}x{} out of range", t.tile_w, t.tile_h));
        }
    }
    if let Some([w, h]) = m.roi {
        if w == 0 || h == 0 || w > crate::roi::MAX_ROI_SIDE || h > crate::roi::MAX_ROI_SIDE {
            return Err(format!("ROI {w}x{h} out of range"));
        }
    }
    let c = &m.calibration;
    if !c.image_threshold.is_finite() || !c.pixel_threshold.is_finite() {
        return Err("thresholds must be finite".into());
    }
    Ok(())
}
