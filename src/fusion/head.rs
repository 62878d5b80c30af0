//! The fusion head's weights and their file, `head.safetensors` (format in the
//! [module docs](super)), and the reference forward pass on [`NdarrayOps`].

use std::collections::HashMap;
use std::path::Path;

use ndarray::{Array1, Array2, ArrayView3, Axis};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

use super::{fuse_stage, patch_grid, Grid, NdarrayOps};
use crate::encoder::BackboneFeatures;
use crate::error::{Error, Result};
use crate::kernels::grid::BufferPool;
use crate::manifest::Manifest;
use crate::tensors::{self, Named};

/// Head file format version.
pub const HEAD_FORMAT_VERSION: u32 = 1;
/// Cap on a head file's size (the full model's head is a few MB).
const MAX_HEAD_BYTES: u64 = 1 << 30;

/// Weights of one stage, generic over the backend's matrix (`M`) and vector (`V`) types.
/// Matrices are `[out, in]`, as 1x1 convolutions store them.
#[derive(Debug, Clone, PartialEq)]
pub struct StageParams<M, V> {
    /// Adapter down-projection W_down, `[r, C_s]` (Eq. 1).
    pub down_w: M,
    /// Adapter down-projection bias b_down, `[r]`.
    pub down_b: V,
    /// Adapter up-projection W_up, `[C_s, r]` (Eq. 1).
    pub up_w: M,
    /// Adapter up-projection bias b_up, `[C_s]`.
    pub up_b: V,
    /// Hiera projection P_h, `[d_s / 2, C_s]` (Eq. 2).
    pub proj_h_w: M,
    /// Hiera projection bias, `[d_s / 2]`.
    pub proj_h_b: V,
    /// DINOv2 projection P_d, `[d_s / 2, C_d]` (Eq. 2).
    pub proj_d_w: M,
    /// DINOv2 projection bias, `[d_s / 2]`.
    pub proj_d_b: V,
}

/// A stage's weights as inference (and `head.safetensors`) holds them.
pub type StageWeights = StageParams<Array2<f32>, Array1<f32>>;

/// Names of a stage's tensors in `head.safetensors` (after the `stage{s}.` prefix), in the
/// order of [`StageParams::to_array`].
pub const STAGE_TENSOR_NAMES: [&str; 8] = [
    "adapter.down.weight",
    "adapter.down.bias",
    "adapter.up.weight",
    "adapter.up.bias",
    "proj_hiera.weight",
    "proj_hiera.bias",
    "proj_dinov2.weight",
    "proj_dinov2.bias",
];

impl<M, V> StageParams<M, V> {
    /// The same stage with `fm` applied to its four matrices and `fv` to its four vectors
    /// (the one place besides [`StageParams::from_array`] that names every field).
    pub fn try_map<M2, V2, E>(self, mut fm: impl FnMut(M) -> Result<M2, E>, mut fv: impl FnMut(V) -> Result<V2, E>) -> Result<StageParams<M2, V2>, E> {
        Ok(StageParams {
            down_w: fm(self.down_w)?,
            down_b: fv(self.down_b)?,
            up_w: fm(self.up_w)?,
            up_b: fv(self.up_b)?,
            proj_h_w: fm(self.proj_h_w)?,
            proj_h_b: fv(self.proj_h_b)?,
            proj_d_w: fm(self.proj_d_w)?,
            proj_d_b: fv(self.proj_d_b)?,
        })
    }

    /// References to the tensors.
    pub fn as_ref(&self) -> StageParams<&M, &V> {
        StageParams {
            down_w: &self.down_w,
            down_b: &self.down_b,
            up_w: &self.up_w,
            up_b: &self.up_b,
            proj_h_w: &self.proj_h_w,
            proj_h_b: &self.proj_h_b,
            proj_d_w: &self.proj_d_w,
            proj_d_b: &self.proj_d_b,
        }
    }
}

/// Shapes of stage `s`'s tensors (0-based), in [`STAGE_TENSOR_NAMES`] order, for a manifest:
/// Hiera width `C_s`, DINOv2 width `C_d`, half the shared width `d_s/2`, bottleneck `r`.
pub fn stage_shapes(m: &Manifest, s: usize) -> [Vec<usize>; 8] {
    let (c, cd, r) = (m.hiera.channels[s], m.dinov2.channels, m.fusion.adapter_bottleneck);
    let half = m.fusion.shared_dims[s] / 2;
    [vec![r, c], vec![r], vec![c, r], vec![c], vec![half, c], vec![half], vec![half, cd], vec![half]]
}

impl<T> StageParams<T, T> {
    /// From the 8 tensors in [`STAGE_TENSOR_NAMES`] order.
    pub fn from_array(t: [T; 8]) -> Self {
        let [down_w, down_b, up_w, up_b, proj_h_w, proj_h_b, proj_d_w, proj_d_b] = t;
        Self { down_w, down_b, up_w, up_b, proj_h_w, proj_h_b, proj_d_w, proj_d_b }
    }

    /// The 8 tensors in [`STAGE_TENSOR_NAMES`] order, by value.
    pub fn into_array(self) -> [T; 8] {
        [self.down_w, self.down_b, self.up_w, self.up_b, self.proj_h_w, self.proj_h_b, self.proj_d_w, self.proj_d_b]
    }

    /// The 8 tensors in [`STAGE_TENSOR_NAMES`] order.
    pub fn to_array(&self) -> [&T; 8] {
        [&self.down_w, &self.down_b, &self.up_w, &self.up_b, &self.proj_h_w, &self.proj_h_b, &self.proj_d_w, &self.proj_d_b]
    }
}

/// The fusion head. Immutable once built; shared by every scoring thread.
#[derive(Debug, Clone)]
pub struct Head {
    stages: Vec<StageWeights>,
    group: usize,
    bank_scales: Vec<usize>,
    local_avg: usize,
    trained: bool,
    /// Per stage: W_up and b_up are all zero, so the adapter is the identity and is skipped.
    identity: [bool; 4],
}

impl Head {
    /// The untrained head: identity adapters (W_up = 0) and fixed random projections drawn
    /// from N(0, 1/C_in) with `seed`, which keeps expected norms and makes runs repeat exactly.
    pub fn untrained(m: &Manifest, seed: u64) -> Self {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let f = &m.fusion;
        let r = f.adapter_bottleneck;
        let mut gauss = |rows: usize, cols: usize| -> Array2<f32> {
            let n = Normal::new(0.0f32, (1.0 / cols as f32).sqrt()).unwrap_or_else(|_| Normal::new(0.0, 1.0).expect("unit normal"));
            Array2::from_shape_fn((rows, cols), |_| n.sample(&mut rng))
        };
        let stages = (0..4)
            .map(|s| {
                let c = m.hiera.channels[s];
                let half = f.shared_dims[s] / 2;
                StageWeights {
                    down_w: gauss(r, c),
                    down_b: Array1::zeros(r),
                    up_w: Array2::zeros((c, r)),
                    up_b: Array1::zeros(c),
                    proj_h_w: gauss(half, c),
                    proj_h_b: Array1::zeros(half),
                    proj_d_w: gauss(half, m.dinov2.channels),
                    proj_d_b: Array1::zeros(half),
                }
            })
            .collect();
        Self::from_stages(m, stages, false)
    }

    /// Builds a head from explicit weights (training writes these).
    pub fn from_stages(m: &Manifest, stages: Vec<StageWeights>, trained: bool) -> Self {
        let mut identity = [false; 4];
        for (s, w) in stages.iter().enumerate().take(4) {
            identity[s] = w.up_w.iter().all(|v| *v == 0.0) && w.up_b.iter().all(|v| *v == 0.0);
        }
        Self {
            stages,
            group: m.fusion.interleave_group,
            bank_scales: m.fusion.bank_scales.clone(),
            local_avg: m.fusion.local_avg,
            trained,
            identity,
        }
    }

    /// Whether the weights came from training (a `head.safetensors`).
    pub fn is_trained(&self) -> bool {
        self.trained
    }

    /// The weights of the four stages, in order.
    pub fn stages(&self) -> &[StageWeights] {
        &self.stages
    }

    /// Reads `head.safetensors` bytes, checking every name and shape against the manifest.
    pub fn from_bytes(bytes: &[u8], path: &Path, m: &Manifest) -> Result<Self> {
        let rd = tensors::Reader::parse(bytes, path)?;
        if rd.metadata().get("format").map(String::as_str) != Some("nexvitad-head") {
            return Err(Error::format(path, "metadata 'format' is not 'nexvitad-head'"));
        }
        let v: u32 = rd.meta_parse("format_version")?;
        if v > HEAD_FORMAT_VERSION {
            return Err(Error::format(path, format!("head format_version {v} is newer than this nexvitad reads ({HEAD_FORMAT_VERSION})")));
        }
        let mut stages = Vec::with_capacity(4);
        for s in 0..4 {
            let shapes = stage_shapes(m, s);
            let read = |k: usize| -> Result<Vec<f32>> {
                let dims: Vec<Option<usize>> = shapes[k].iter().map(|&d| Some(d)).collect();
                Ok(rd.f32(&format!("stage{}.{}", s + 1, STAGE_TENSOR_NAMES[k]), &dims)?.1)
            };
            let slots = StageParams::from_array([0usize, 1, 2, 3, 4, 5, 6, 7]);
            stages.push(slots.try_map(
                |k| Array2::from_shape_vec((shapes[k][0], shapes[k][1]), read(k)?).map_err(|e| Error::Internal(e.to_string())),
                |k| Ok(Array1::from_vec(read(k)?)),
            )?);
        }
        Ok(Self::from_stages(m, stages, true))
    }

    /// Serialises the weights as `head.safetensors` bytes.
    pub fn to_bytes(&self, extra_meta: HashMap<String, String>) -> Result<Vec<u8>> {
        let mut list = Vec::new();
        for (s, w) in self.stages.iter().enumerate() {
            let flat = |a: &Array2<f32>| a.as_slice().map(<[f32]>::to_vec).unwrap_or_else(|| a.iter().copied().collect());
            let tensors = w.as_ref().try_map::<_, _, std::convert::Infallible>(
                |m| Ok((m.shape().to_vec(), flat(m))),
                |v| Ok((vec![v.len()], v.to_vec())),
            );
            let Ok(tensors) = tensors;
            for (name, (shape, data)) in STAGE_TENSOR_NAMES.iter().zip(tensors.into_array()) {
                list.push((format!("stage{}.{name}", s + 1), shape, data));
            }
        }
        let named: Vec<Named<'_>> = list.iter().map(|(n, s, d)| Named { name: n.clone(), shape: s.clone(), data: d }).collect();
        let mut meta = extra_meta;
        meta.insert("format".into(), "nexvitad-head".into());
        meta.insert("format_version".into(), HEAD_FORMAT_VERSION.to_string());
        canonical_safetensors(tensors::to_bytes(&named, meta)?)
    }

    /// Loads a head file with a size cap.
    pub fn load(path: &Path, m: &Manifest) -> Result<(Self, Vec<u8>)> {
        let bytes = crate::fsutil::read_capped(path, "cannot read head weights", MAX_HEAD_BYTES)?;
        let head = Self::from_bytes(&bytes, path, m)?;
        Ok((head, bytes))
    }

    /// Fused features F_s (1-based `scale`) of image `i` of a batch, channel-last.
    pub fn fuse(&self, feats: &BackboneFeatures, i: usize, scale: usize) -> Result<Grid> {
        if !(1..=4).contains(&scale) || self.stages.len() != 4 {
            return Err(Error::invalid(format!("fused scale {scale} is not in 1..=4")));
        }
        let n = feats.dinov2.dim().0;
        if i >= n {
            return Err(Error::invalid(format!("image index {i} is outside the batch of {n}")));
        }
        let s = scale - 1;
        let dino = feats.dinov2.index_axis(Axis(0), i);
        let hiera = feats.hiera[s].index_axis(Axis(0), i);
        let ((c, h, w), (cd, dh, dw)) = (hiera.dim(), dino.dim());
        let x = channel_last(hiera, c, h * w);
        let y = channel_last(dino, cd, dh * dw);
        let Ok(data) = fuse_stage(&NdarrayOps, &self.stages[s], self.identity[s], self.group, x, (h, w), &y, (dh, dw));
        Ok(Grid { h, w, data })
    }

    /// Per stage: whether the adapter is exactly the identity (W_up = 0 and b_up = 0).
    pub fn identity_adapters(&self) -> [bool; 4] {
        self.identity
    }

    /// Patch features of image `i` on the reference backend: the configured fused scales on
    /// the first one's grid, concatenated and averaged over a `local_avg` window (valid
    /// neighbours only); see [`patch_grid`]. Scoring and bank building compute the same,
    /// faster, with [`super::scoring::patch_features`]; tests hold the two together.
    pub fn patch_features_reference(&self, feats: &BackboneFeatures, i: usize) -> Result<Grid> {
        let parts = self.bank_scales.iter().map(|&sc| self.fuse(feats, i, sc)).collect::<Result<Vec<_>>>()?;
        Ok(patch_grid(&parts, self.local_avg, &BufferPool::default()))
    }

    /// The fused scales patch features are made of (1-based, in order).
    pub fn bank_scales(&self) -> &[usize] {
        &self.bank_scales
    }

    /// Channels per interleaved slice (Eq. 3).
    pub fn interleave_group(&self) -> usize {
        self.group
    }

    /// Side of the local averaging window of patch features (1 = none).
    pub fn local_avg(&self) -> usize {
        self.local_avg
    }

    /// Width of patch feature vectors for a manifest.
    pub fn patch_dim(m: &Manifest) -> usize {
        m.fusion.bank_scales.iter().map(|&s| m.fusion.shared_dims[s - 1]).sum()
    }
}

/// Rewrites a safetensors header with its keys sorted (same tensors, same data bytes).
///
/// The `safetensors` crate writes the metadata map in `HashMap` order, so two saves of the
/// same weights could differ byte for byte, and a trained model's fingerprint (a hash of
/// `head.safetensors`) would change from run to run.
pub(crate) fn canonical_safetensors(bytes: Vec<u8>) -> Result<Vec<u8>> {
    use std::collections::BTreeMap;
    let bad = |m: &str| Error::Internal(format!("canonical safetensors: {m}"));
    let n = bytes.get(..8).map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as usize).ok_or_else(|| bad("short file"))?;
    let header = bytes.get(8..8 + n).ok_or_else(|| bad("short header"))?;
    let top: BTreeMap<String, serde_json::Value> = serde_json::from_slice(header).map_err(|e| bad(&e.to_string()))?;
    let mut sorted = BTreeMap::new();
    for (k, v) in top {
        let v = if k == "__metadata__" {
            let m: BTreeMap<String, String> = serde_json::from_value(v).map_err(|e| bad(&e.to_string()))?;
            serde_json::to_value(m).map_err(|e| bad(&e.to_string()))?
        } else {
            v
        };
        sorted.insert(k, v);
    }
    let mut h = serde_json::to_vec(&sorted).map_err(|e| bad(&e.to_string()))?;
    // Keep the data section 8-byte aligned, as the crate does.
    while h.len() % 8 != 0 {
        h.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + h.len() + bytes.len() - 8 - n);
    out.extend_from_slice(&(h.len() as u64).to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(&bytes[8 + n..]);
    Ok(out)
}

/// `[c, h, w]` → `[h*w, c]` (owned, contiguous).
fn channel_last(x: ArrayView3<'_, f32>, c: usize, p: usize) -> Array2<f32> {
    let std = x.as_standard_layout();
    let flat = std.to_shape((c, p)).map(|v| v.t().to_owned());
    flat.unwrap_or_else(|_| Array2::zeros((p, c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_bytes_are_canonical() {
        let m = crate::manifest::Manifest::parse(&std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/models/tiny/model.json")).unwrap()).unwrap();
        let h = Head::untrained(&m, 5);
        let meta: HashMap<String, String> = (0..12).map(|i| (format!("key{i}"), format!("v{i}"))).collect();
        let a = h.to_bytes(meta.clone()).unwrap();
        // HashMaps with other insertion histories (other hash seeds) give the same bytes.
        for _ in 0..4 {
            let shuffled: HashMap<String, String> = meta.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            assert_eq!(h.to_bytes(shuffled).unwrap(), a);
        }
        let back = Head::from_bytes(&a, Path::new("h"), &m).unwrap();
        assert_eq!(back.stages(), h.stages());
        assert_eq!(a.len() % 8, 0);
    }
}
