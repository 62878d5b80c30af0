//! `model.json`: the manifest of a model folder.
//!
//! The manifest is the contract between the export script (`tools/export_onnx.py`), the
//! training entry point, and inference. It is parsed strictly (unknown keys are an error):
//! a typo in a hand-edited manifest must not silently fall back to a default.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The newest manifest format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// Largest accepted encoder input side; bigger inputs are a typo, not a model.
const MAX_INPUT_SIDE: u32 = 4096;

/// Cap on the fusion head's weights (f32 values; 1 GiB, the head file's own cap). The head is
/// allocated from the manifest's widths when a model opens, before any ONNX output is seen, so
/// a width typo must be refused here rather than abort the process on allocation.
pub const MAX_HEAD_PARAMS: u64 = 1 << 28;

/// Cap on the size of `model.json` (a real one is a few KB, training notes included).
pub const MAX_MANIFEST_BYTES: u64 = 16 << 20;

/// Input geometry and normalisation shared by both encoders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Encoder input width in pixels (1..=4096); every image is resized to it.
    pub width: u32,
    /// Encoder input height in pixels (1..=4096).
    pub height: u32,
    /// Per-channel R, G, B mean of the normalisation `(x / 255 - mean) / std`.
    pub mean: [f32; 3],
    /// Per-channel R, G, B standard deviation of the same normalisation; each finite and > 0.
    pub std: [f32; 3],
}

/// The Hiera backbone: four stage maps at strides 4/8/16/32.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HieraSpec {
    /// ONNX file name, a plain name inside the model folder.
    pub file: String,
    /// Name of the graph's input tensor.
    pub input: String,
    /// Names of the four stage outputs H1..H4.
    pub outputs: [String; 4],
    /// Channels of each stage output (all > 0).
    pub channels: [usize; 4],
    /// Stride of each stage in input pixels; each must divide the input width and height.
    pub strides: [usize; 4],
}

/// The DINOv2 backbone: one patch grid at stride `patch_size` of its own input size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dinov2Spec {
    /// ONNX file name, a plain name inside the model folder.
    pub file: String,
    /// Name of the graph's input tensor.
    pub input: String,
    /// Name of the patch-grid output tensor.
    pub output: String,
    /// Channels of the patch grid (> 0).
    pub channels: usize,
    /// Patch side in pixels (> 0); it must divide `width` and `height`.
    pub patch_size: usize,
    /// DINOv2's own input width in pixels (1..=4096).
    pub width: u32,
    /// DINOv2's own input height in pixels (1..=4096).
    pub height: u32,
}

/// Widths of the fusion head (Eq. 1-3) and which fused scales feed the memory bank.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FusionSpec {
    /// d_s per stage; each is split evenly between the Hiera and DINOv2 projections.
    pub shared_dims: [usize; 4],
    /// Adapter bottleneck width r.
    pub adapter_bottleneck: usize,
    /// 1-based fused scales concatenated for the bank (default `[2, 3]`), on the grid of the first.
    pub bank_scales: Vec<usize>,
    /// Side of the local average pooling window on bank features (1 = none).
    pub local_avg: usize,
    /// Channel slice width g of the interleaving (Eq. 3); must divide every d_s / 2.
    #[serde(default = "default_group")]
    pub interleave_group: usize,
}

fn default_group() -> usize {
    1
}

/// Defaults that options may override.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Sinkhorn K-means prototypes K (> 0).
    pub k: usize,
    /// Gaussian σ of the anomaly map, in pixels of the scored image (finite, >= 0).
    pub sigma: f32,
    /// Confidence a pseudo label needs in training (θ), in (0, 1).
    pub theta: f32,
    /// Training weight of the pseudo-label term (λ1).
    pub lambda1: f32,
    /// Training weight of the consistency term (λ2).
    pub lambda2: f32,
    /// Target false-positive rate for the thresholds stored in a bank.
    pub target_fpr: f32,
}

/// Where the weights came from; informational, but kept so a bank can be traced to its model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// Where the Hiera weights came from, as the exporter recorded it.
    pub hiera: String,
    /// Where the DINOv2 weights came from, as the exporter recorded it.
    pub dinov2: String,
    /// Whether the backbones carry pretrained weights (`false`: random initialisation).
    pub pretrained: bool,
    /// The tool that wrote the graphs, with its torch version and opset.
    pub exporter: String,
    /// The exporter's seed (random initialisation and its verification batch).
    pub seed: u64,
}

/// How the encoders' weights are stored, for a model quantized by `tools/quantize.py`;
/// absent (`None`) for the fp32 export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Precision {
    /// Weight type of the quantized operators: `int8`.
    pub weights: String,
    /// `dynamic` (MatMul/Gemm weights, activations quantized on the fly) or `static-qdq`
    /// (weights and activations, scales calibrated on good images).
    pub method: String,
    /// Per-channel weight scales.
    pub per_channel: bool,
    /// Good images the static scales were calibrated on (0 for dynamic).
    pub calibration_images: usize,
    /// SHA-256 over the calibration images' names and bytes (static only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration_sha256: Option<String>,
    /// Lowest Pearson correlation of any encoder output with the fp32 model's, measured by
    /// the quantizer on its check images.
    pub min_correlation: f32,
    /// How far the anomaly maps moved from the fp32 model's on the quantizer's synthetic
    /// check (`nexvitad eval --reference-model`); absent when it was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_drift: Option<MapDriftRecord>,
}

/// The map check `tools/quantize.py` records: the fields of [`crate::eval::MapDrift`] and
/// the AUROC deltas of [`crate::eval::ModelComparison`], as measured then.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapDriftRecord {
    /// Mean per-pixel difference of the maps, each divided by its bank's pixel threshold.
    pub mean_abs: f64,
    /// Largest such difference.
    pub max_abs: f64,
    /// Share of pixels on the other side of the threshold.
    pub pixel_disagreement: f64,
    /// Images flagged by one model and not the other.
    pub image_disagreement: usize,
    /// Test images compared.
    pub images: usize,
    /// INT8 image AUROC minus fp32's.
    pub image_auroc_delta: f64,
    /// INT8 pixel AUROC minus fp32's.
    pub pixel_auroc_delta: Option<f64>,
}

impl Precision {
    /// One line for people: `int8 dynamic, per-channel, …`.
    pub fn describe(&self) -> String {
        let cal = match self.calibration_images {
            0 => String::new(),
            n => format!(", calibrated on {n} images"),
        };
        let maps = self.map_drift.as_ref().map_or(String::new(), |d| {
            format!("; maps drift {:.4} of the threshold, {:.2} % of pixels flipped", d.mean_abs, 100.0 * d.pixel_disagreement)
        });
        format!(
            "{} {}{}{cal}; features correlate {:.4} with fp32{maps}",
            self.weights,
            self.method,
            if self.per_channel { ", per-channel" } else { "" },
            self.min_correlation
        )
    }
}

/// The whole `model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Manifest format, 1..=[`FORMAT_VERSION`]; a newer one is refused with a request to upgrade.
    pub format_version: u32,
    /// Human-readable model name.
    pub name: String,
    /// Input geometry and normalisation.
    pub input: InputSpec,
    /// The Hiera graph.
    pub hiera: HieraSpec,
    /// The DINOv2 graph.
    pub dinov2: Dinov2Spec,
    /// Fusion head widths and the scales the bank uses.
    pub fusion: FusionSpec,
    /// Defaults of the bank and training options.
    pub defaults: Defaults,
    /// Where the weights came from.
    pub provenance: Provenance,
    /// Written by training: its configuration and domains. Absent for exported models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<serde_json::Value>,
    /// Written by `tools/quantize.py`: the encoders are INT8. Absent for fp32 models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<Precision>,
}

impl Manifest {
    /// One line for people on how the encoders' weights are stored: the quantizer's
    /// [`Precision::describe`], `fp16` for `tools/export_onnx.py --fp16` graphs (recorded in
    /// the exporter's provenance), else `fp32`.
    pub fn describe_precision(&self) -> String {
        match &self.precision {
            Some(p) => p.describe(),
            None if self.provenance.exporter.contains(", fp16") => "fp16".to_string(),
            None => "fp32".to_string(),
        }
    }

    /// Reads and validates `model.json` at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        // Capped: a `model.json` that is a device, a FIFO or a huge file must not hang or
        // exhaust the host process.
        let bytes = crate::fsutil::read_capped(path, "cannot read model manifest", MAX_MANIFEST_BYTES)?;
        Self::parse(&bytes).map_err(|msg| Error::format(path, msg))
    }

    /// Parses and validates manifest bytes; the error is a human-readable reason.
    pub fn parse(bytes: &[u8]) -> std::result::Result<Self, String> {
        // Read the version first, so a manifest from a newer nexvitad says so instead of
        // reporting whichever new field it happens to contain.
        let probe: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
        match probe.get("format_version").and_then(|v| v.as_u64()) {
            None => return Err("missing or non-integer field 'format_version'".into()),
            Some(v) if v > FORMAT_VERSION as u64 => {
                return Err(format!(
                    "format_version {v} is newer than this nexvitad reads ({FORMAT_VERSION}); upgrade nexvitad"
                ))
            }
            Some(0) => return Err("format_version 0 is not a valid version".into()),
            Some(_) => {}
        }
        let m: Manifest = serde_json::from_value(probe).map_err(|e| format!("{e}"))?;
        m.validate()?;
        Ok(m)
    }

    /// Checks the values that serde's types cannot express.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let i = &self.input;
        if i.width == 0 || i.height == 0 || i.width > MAX_INPUT_SIDE || i.height > MAX_INPUT_SIDE {
            return Err(format!("input size {}x{} is outside 1..={MAX_INPUT_SIDE}", i.width, i.height));
        }
        if i.std.iter().any(|s| !s.is_finite() || *s <= 0.0) || i.mean.iter().any(|m| !m.is_finite()) {
            return Err("input.std must be finite and > 0, input.mean finite".into());
        }
        for (s, &st) in self.hiera.strides.iter().enumerate() {
            if st == 0 || i.width as usize % st != 0 || i.height as usize % st != 0 {
                return Err(format!(
                    "hiera.strides[{s}] = {st} does not divide the input size {}x{}",
                    i.width, i.height
                ));
            }
        }
        if self.hiera.channels.contains(&0) {
            return Err("hiera.channels must all be > 0".into());
        }
        let d = &self.dinov2;
        if d.patch_size == 0 || d.width == 0 || d.height == 0 || d.width > MAX_INPUT_SIDE || d.height > MAX_INPUT_SIDE {
            return Err("dinov2 patch_size/width/height must be > 0 and sizes at most 4096".into());
        }
        if d.width as usize % d.patch_size != 0 || d.height as usize % d.patch_size != 0 {
            return Err(format!(
                "dinov2 input {}x{} is not a multiple of patch_size {}",
                d.width, d.height, d.patch_size
            ));
        }
        if d.channels == 0 {
            return Err("dinov2.channels must be > 0".into());
        }
        let f = &self.fusion;
        if f.shared_dims.iter().any(|&x| x == 0 || x % 2 != 0) {
            return Err("fusion.shared_dims must be even and > 0 (half Hiera, half DINOv2)".into());
        }
        if f.interleave_group == 0 || f.shared_dims.iter().any(|d| (d / 2) % f.interleave_group != 0) {
            return Err("fusion.interleave_group must be > 0 and divide every shared_dims / 2".into());
        }
        if f.adapter_bottleneck == 0 {
            return Err("fusion.adapter_bottleneck must be > 0".into());
        }
        if f.bank_scales.is_empty() || f.bank_scales.iter().any(|&s| !(1..=4).contains(&s)) {
            return Err("fusion.bank_scales must list scales in 1..=4".into());
        }
        if (1..f.bank_scales.len()).any(|i| f.bank_scales[..i].contains(&f.bank_scales[i])) {
            return Err(format!("fusion.bank_scales {:?} lists a scale twice", f.bank_scales));
        }
        let params = self.head_params();
        if params > MAX_HEAD_PARAMS as u128 {
            return Err(format!(
                "the fusion head these widths describe has {params} weights, above the limit of {MAX_HEAD_PARAMS} (hiera.channels, dinov2.channels, fusion.shared_dims, fusion.adapter_bottleneck)"
            ));
        }
        if f.local_avg == 0 || f.local_avg % 2 == 0 {
            return Err("fusion.local_avg must be odd and >= 1".into());
        }
        let df = &self.defaults;
        if df.k == 0 {
            return Err("defaults.k must be > 0".into());
        }
        if !df.sigma.is_finite() || df.sigma < 0.0 {
            return Err("defaults.sigma must be finite and >= 0".into());
        }
        if !(df.theta > 0.0 && df.theta < 1.0) {
            return Err("defaults.theta must be in (0, 1)".into());
        }
        if !(df.target_fpr > 0.0 && df.target_fpr < 1.0) {
            return Err("defaults.target_fpr must be in (0, 1)".into());
        }
        for name in [&self.hiera.file, &self.dinov2.file] {
            if name.is_empty() || name.contains('/') || name.contains('\\') || name == ".." {
                return Err(format!("backbone file name '{name}' must be a plain file name inside the model folder"));
            }
        }
        Ok(())
    }

    /// Number of f32 weights of the fusion head (see `fusion`), in u128 so no width overflows.
    pub fn head_params(&self) -> u128 {
        let r = self.fusion.adapter_bottleneck as u128;
        let cd = self.dinov2.channels as u128;
        (0..4)
            .map(|s| {
                let c = self.hiera.channels[s] as u128;
                let half = self.fusion.shared_dims[s] as u128 / 2;
                // Adapter down and up (weights and biases), then the two projections.
                (r * c + r) + (c * r + c) + (half * c + half) + (half * cd + half)
            })
            .sum()
    }

    /// Pretty JSON, as written to `model.json`.
    pub fn to_json(&self) -> String {
        // Serialising plain structs of strings and numbers cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}
