//! Bank options shared by `fit`, `eval` and `demo`. Every default is `BankOptions::default()`
//! (the library's), so the two cannot drift apart.
use clap::Args;
use nexvitad::bank::{Augment, BankOptions, ImageScoreMode, ScorerKind};
use nexvitad::{TileLayout, Tiling};

#[derive(Args, Clone)]
pub struct BankArgs {
    /// Prototypes for the sinkhorn scorer, > 0 [default: the model's, from model.json; 30
    /// in the method].
    #[arg(long, value_name = "K")]
    pub k: Option<usize>,
    /// sinkhorn (K prototypes), full (every patch) or coreset (greedy subsample).
    #[arg(long, default_value = BankOptions::default().scorer.name())]
    pub scorer: String,
    /// Share of patches kept by the coreset scorer.
    #[arg(long, default_value_t = BankOptions::default().coreset_ratio)]
    pub coreset_ratio: f32,
    /// Gaussian sigma in pixels, in [0, 1000]; 0 = no smoothing [default: the model's, from
    /// model.json; 4 in the method].
    #[arg(long, value_name = "PX", allow_negative_numbers = true)]
    pub sigma: Option<f32>,
    /// Image score = mean of the top fraction of pixels instead of the max (e.g. 0.01).
    #[arg(long)]
    pub top_fraction: Option<f32>,
    /// Augment the normal images with horizontal/vertical flips and rotations.
    #[arg(long)]
    pub augment: bool,
    /// Target false-positive rate of the stored thresholds, in (0, 1) [default: the model's,
    /// from model.json].
    #[arg(long, value_name = "FPR")]
    pub target_fpr: Option<f32>,
    /// Sinkhorn K-means: iteration cap.
    #[arg(long, default_value_t = BankOptions::default().max_iters)]
    pub max_iters: usize,
    /// Sinkhorn K-means: stop when centroids move less than this (relative).
    #[arg(long, default_value_t = BankOptions::default().tol)]
    pub tol: f32,
    /// Sinkhorn K-means: entropic regulariser relative to the mean cost.
    #[arg(long, default_value_t = BankOptions::default().epsilon)]
    pub epsilon: f32,
    /// Seed of every random choice.
    #[arg(long, default_value_t = BankOptions::default().seed)]
    pub seed: u64,
    /// Cut images into tiles of N image pixels (along the width) at native resolution
    /// instead of resizing each whole image to the encoder input: 224 on a 224 model =
    /// native resolution, 448 = half. 0 = off (whole-image resize).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub tile: u32,
    /// Share of a tile that overlaps its neighbour, in [0, 1).
    #[arg(long, default_value_t = 0.0, value_name = "F")]
    pub tile_overlap: f32,
    /// shared (one bank for all tiles: textures, surfaces) or per_position (a bank per tile
    /// position: aligned parts; scores only images of the fitted size).
    #[arg(long, default_value = "shared", value_name = "LAYOUT")]
    pub tile_bank: String,
    /// Region of interest: a mask image (any size, scaled to each image; non-zero =
    /// inspect, black = ignore). Patches wholly outside stay out of the bank, and the bank
    /// keeps the mask as the default of every `score`.
    #[arg(long, value_name = "MASK.png")]
    pub roi: Option<std::path::PathBuf>,
    /// Keep the shots' features in the bank so that `bank add` and `bank merge` can grow it
    /// later, with the result of a build from all images at once (Sinkhorn and coreset banks
    /// get larger: about 12 MB for 8 shots at 224 px).
    #[arg(long)]
    pub growable: bool,
}

impl BankArgs {
    /// `--scorer decoder` (eval only): the trained decoder instead of a bank.
    pub fn is_decoder(&self) -> bool {
        self.scorer.trim().eq_ignore_ascii_case("decoder")
    }

    /// The bank options; with `--scorer decoder` the other options (σ among them) with the
    /// default scorer, since the decoder path reads only σ.
    pub fn options_or_decoder(&self) -> nexvitad::Result<BankOptions> {
        if self.is_decoder() {
            Self { scorer: "sinkhorn".into(), ..self.clone() }.options()
        } else {
            self.options()
        }
    }

    pub fn options(&self) -> nexvitad::Result<BankOptions> {
        Ok(BankOptions {
            scorer: ScorerKind::parse(&self.scorer)?,
            k: self.k,
            coreset_ratio: self.coreset_ratio,
            sigma: self.sigma,
            image_score: match self.top_fraction {
                Some(fraction) => ImageScoreMode::TopMean { fraction },
                None => ImageScoreMode::Max,
            },
            augment: if self.augment { Augment { hflip: true, vflip: true, rot90: true } } else { Augment::default() },
            target_fpr: self.target_fpr,
            seed: self.seed,
            max_iters: self.max_iters,
            tol: self.tol,
            epsilon: self.epsilon,
            tiling: match self.tile {
                0 => None,
                tile => Some(Tiling { tile, overlap: self.tile_overlap, layout: TileLayout::parse(&self.tile_bank)? }),
            },
            roi: self.roi.as_deref().map(nexvitad::data::load_roi).transpose()?,
            growable: self.growable,
            ..BankOptions::default()
        })
    }
}
