//! The multi-task decoder (training only, plus the decoder-as-scorer ablation).
//!
//! FPN-style (docs/method.md, "Training": a choice): each fused scale F_s → 1x1 conv to `width` channels →
//! bilinear upsampling to the F1 grid → sum → 3x3 conv + ReLU. Segmentation heads are 1x1
//! convs to one defect logit per F1-grid cell: one per source domain, and for the target a
//! segmentation head and a pseudo-labelling head.
//!
//! `decoder.safetensors` (written next to `head.safetensors` by training):
//!
//! | name | shape |
//! |---|---|
//! | `decoder.lateral{s}.weight` | `[width, d_s]` |
//! | `decoder.lateral{s}.bias` | `[width]` |
//! | `decoder.smooth.weight` | `[width, width, 3, 3]` |
//! | `decoder.smooth.bias` | `[width]` |
//! | `seg.source{i}.weight`, `.bias` | `[1, width]`, `[1]` |
//! | `target.seg.weight`, `.bias` | `[1, width]`, `[1]` |
//! | `target.pl.weight`, `.bias` | `[1, width]`, `[1]` |
//!
//! Metadata: `format = "nexvitad-decoder"`, `format_version = "1"`, `fingerprint` (the model
//! whose head it was trained with: a decoder only fits that head), `target`, `sources` (JSON).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use crate::error::{Error, Result};
use super::ops::{conv1x1, tensor_err, Resize};
use crate::tensors;

/// Decoder file format version.
pub const DECODER_FORMAT_VERSION: u32 = 1;
/// File name of the decoder inside a trained model folder.
pub const DECODER_FILE: &str = "decoder.safetensors";
const MAX_DECODER_BYTES: u64 = 1 << 30;

/// Tensor names of the decoder trunk for fused widths `dims`.
pub fn trunk_names() -> Vec<String> {
    let mut v = Vec::new();
    for s in 1..=4 {
        v.push(format!("decoder.lateral{s}.weight"));
        v.push(format!("decoder.lateral{s}.bias"));
    }
    v.push("decoder.smooth.weight".into());
    v.push("decoder.smooth.bias".into());
    v
}

/// Prefixes of the segmentation heads: sources in order, then the target's two heads.
pub fn head_prefixes(n_sources: usize) -> Vec<String> {
    let mut v: Vec<String> = (0..n_sources).map(|i| format!("seg.source{i}")).collect();
    v.push(TARGET_SEG.into());
    v.push(TARGET_PL.into());
    v
}

/// The target domain's segmentation head.
pub const TARGET_SEG: &str = "target.seg";
/// The target domain's pseudo-labelling head.
pub const TARGET_PL: &str = "target.pl";

/// The trunk's weights as tensors (plain tensors at inference, `Var`s in training).
#[derive(Debug, Clone)]
pub struct Trunk {
    /// Per fused scale F1..F4: the 1x1 lateral convolution's weight and bias.
    pub lateral: Vec<(Tensor, Tensor)>,
    /// Weight of the 3x3 smoothing convolution, `[width, width, 3, 3]`.
    pub smooth_w: Tensor,
    /// Bias of the smoothing convolution, `[width]`.
    pub smooth_b: Tensor,
}

impl Trunk {
    /// Builds the trunk from tensors looked up by name.
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<Tensor>) -> Result<Self> {
        let need = |n: &str| get(n).ok_or_else(|| Error::Internal(format!("decoder tensor '{n}' is missing")));
        let lateral = (1..=4)
            .map(|s| Ok((need(&format!("decoder.lateral{s}.weight"))?, need(&format!("decoder.lateral{s}.bias"))?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { lateral, smooth_w: need("decoder.smooth.weight")?, smooth_b: need("decoder.smooth.bias")? })
    }

    /// FPN forward: fused scales `[B, d_s, h_s, w_s]` (F1 first) → `[B, width, h1, w1]`.
    pub fn forward(&self, fused: &[Tensor]) -> candle_core::Result<Tensor> {
        if fused.len() != self.lateral.len() {
            candle_core::bail!("decoder expects {} fused scales, got {}", self.lateral.len(), fused.len());
        }
        let (b, _, h1, w1) = fused[0].dims4()?;
        let width = self.smooth_b.dim(0)?;
        let mut sum: Option<Tensor> = None;
        for (f, (w, bias)) in fused.iter().zip(&self.lateral) {
            let (_, d, h, wd) = f.dims4()?;
            let l = conv1x1(&f.reshape((b, d, h * wd))?, w, bias)?.reshape((b, width, h, wd))?;
            let u = Resize::new((h, wd), (h1, w1))?.apply(&l)?;
            sum = Some(match sum {
                None => u,
                Some(acc) => (acc + u)?,
            });
        }
        let sum = sum.ok_or_else(|| candle_core::Error::Msg("no fused scales".into()))?;
        sum.conv2d(&self.smooth_w, 1, 1, 1, 1)?.broadcast_add(&self.smooth_b.reshape((1, width, 1, 1))?)?.relu()
    }
}

/// Logits `[B, h1*w1]` of a 1x1 head (`w` `[1, width]`, `b` `[1]`) on trunk output `z`.
pub fn head_logits(z: &Tensor, w: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    let (n, c, h, wd) = z.dims4()?;
    conv1x1(&z.reshape((n, c, h * wd))?, w, b)?.reshape((n, h * wd))
}

/// A trained decoder loaded for scoring: the trunk and the target segmentation head.
#[derive(Debug, Clone)]
pub struct Decoder {
    /// The shared FPN trunk.
    pub trunk: Trunk,
    /// Target segmentation head weight, `[1, width]`.
    pub seg_w: Tensor,
    /// Target segmentation head bias, `[1]`.
    pub seg_b: Tensor,
    /// The file's safetensors metadata.
    pub meta: HashMap<String, String>,
}

impl Decoder {
    /// Reads `decoder.safetensors` (every tensor is f32 and finite; names as documented).
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = crate::fsutil::read_capped(path, "cannot read decoder weights", MAX_DECODER_BYTES)?;
        let rd = tensors::Reader::parse(&bytes, path)?;
        if rd.metadata().get("format").map(String::as_str) != Some("nexvitad-decoder") {
            return Err(Error::format(path, "metadata 'format' is not 'nexvitad-decoder'"));
        }
        let v: u32 = rd.meta_parse("format_version")?;
        if v > DECODER_FORMAT_VERSION {
            return Err(Error::format(path, format!("decoder format_version {v} is newer than this nexvitad reads ({DECODER_FORMAT_VERSION})")));
        }
        let mut map = HashMap::new();
        for name in rd.names() {
            let (shape, data) = rd.f32(&name, &[])
                .or_else(|_| rd.f32(&name, &[None]))
                .or_else(|_| rd.f32(&name, &[None, None]))
                .or_else(|_| rd.f32(&name, &[None, None, None, None]))?;
            map.insert(name, Tensor::from_vec(data, shape, &Device::Cpu).map_err(tensor_err)?);
        }
        let get = |n: &str| map.get(n).cloned();
        let trunk = Trunk::from_lookup(&get).map_err(|e| Error::format(path, e.to_string()))?;
        let need = |n: &str| get(n).ok_or_else(|| Error::format(path, format!("tensor '{n}' is missing")));
        let seg_w = need(&format!("{TARGET_SEG}.weight"))?;
        let seg_b = need(&format!("{TARGET_SEG}.bias"))?;
        let dec = Self { trunk, seg_w, seg_b, meta: rd.metadata().clone() };
        dec.check_shapes().map_err(|m| Error::format(path, m))?;
        Ok(dec)
    }

    fn check_shapes(&self) -> std::result::Result<(), String> {
        let width = self.trunk.smooth_b.dims().first().copied().unwrap_or(0);
        let ok = width > 0
            && self.trunk.smooth_w.dims() == [width, width, 3, 3]
            && self.trunk.lateral.iter().all(|(w, b)| w.dims().len() == 2 && w.dims()[0] == width && b.dims() == [width])
            && self.seg_w.dims() == [1, width]
            && self.seg_b.dims() == [1];
        if ok {
            Ok(())
        } else {
            Err(format!("decoder tensor shapes are inconsistent (width {width})"))
        }
    }

    /// The fingerprint of the model this decoder was trained with.
    pub fn fingerprint(&self) -> Option<&str> {
        self.meta.get("fingerprint").map(String::as_str)
    }

    /// Defect probabilities on the F1 grid of one image, from its fused scales
    /// (`[1, d_s, h_s, w_s]` each).
    pub fn probabilities(&self, fused: &[Tensor]) -> Result<Vec<f32>> {
        let z = self.trunk.forward(fused).map_err(tensor_err)?;
        let logits = head_logits(&z, &self.seg_w, &self.seg_b).map_err(tensor_err)?;
        candle_nn::ops::sigmoid(&logits).and_then(|p| p.flatten_all()).and_then(|p| p.to_vec1::<f32>()).map_err(tensor_err)
    }
}
