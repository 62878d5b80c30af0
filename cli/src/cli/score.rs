//! `nexvitad score`: score images with a bank.
use std::path::PathBuf;

use clap::Args;

use super::ModelArgs;

#[derive(Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Bank file from `nexvitad fit`.
    #[arg(long)]
    bank: PathBuf,
    /// Images: files or folders.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Write a heatmap overlay PNG per image here.
    #[arg(long)]
    heatmaps: Option<PathBuf>,
    /// One JSON object per image instead of a table.
    #[arg(long)]
    json: bool,
    /// Find defect regions (connected pieces of the map above the pixel threshold): listed
    /// per image, in the JSON, and boxed on the heatmaps.
    #[arg(long)]
    regions: bool,
    /// With --regions: drop regions smaller than this many pixels.
    #[arg(long, default_value_t = 0, value_name = "PX")]
    min_area: u64,
    /// Decide at this image threshold instead of the bank's.
    #[arg(long, value_name = "T")]
    image_threshold: Option<f32>,
    /// Draw regions at this pixel threshold instead of the bank's.
    #[arg(long, value_name = "T")]
    pixel_threshold: Option<f32>,
    /// Region of interest for these images, replacing the bank's: a mask image (any size;
    /// non-zero = inspect, black = ignore).
    #[arg(long, value_name = "MASK.png", conflicts_with = "no_roi")]
    roi: Option<PathBuf>,
    /// Inspect the whole image even if the bank has a region of interest.
    #[arg(long)]
    no_roi: bool,
}

pub fn run(a: ScoreArgs) -> nexvitad::Result<()> {
    let model = a.model.open()?;
    let bank = nexvitad::MemoryBank::load(&a.bank, &model)?;
    let paths = nexvitad::data::collect_images(&a.images)?;
    if let Some(d) = &a.heatmaps {
        std::fs::create_dir_all(d).map_err(|e| nexvitad::Error::io("cannot create", d, e))?;
    }
    let mut ws = nexvitad::Workspace::new();
    let caller_roi = a.roi.as_deref().map(nexvitad::data::load_roi).transpose()?;
    let opts = nexvitad::ScoreOptions {
        image_threshold: a.image_threshold,
        pixel_threshold: a.pixel_threshold,
        regions: a.regions.then_some(nexvitad::RegionOptions { min_area: a.min_area }),
        roi: match (&caller_roi, a.no_roi) {
            (Some(r), _) => nexvitad::RoiChoice::Mask(r),
            (None, true) => nexvitad::RoiChoice::Everywhere,
            (None, false) => nexvitad::RoiChoice::Bank,
        },
    };
    opts.validate()?;
    let mut used = std::collections::HashSet::new();
    for p in &paths {
        let img = nexvitad::eval::load_image(p)?;
        let r = nexvitad::score::score_with(&model, &bank, &nexvitad::eval::rgb_view(&model, &img)?, &opts, &mut ws)?;
        if let Some(d) = &a.heatmaps {
            let (lo, hi) = nexvitad::eval::heat_range(&bank);
            let mut ov = nexvitad::viz::heatmap_overlay(&img, &r.map.values, lo, hi, None)?;
            let applied = match r.roi {
                nexvitad::RoiSource::None => None,
                nexvitad::RoiSource::Bank => bank.roi(),
                nexvitad::RoiSource::Caller => caller_roi.as_ref(),
            };
            if let Some(roi) = applied {
                nexvitad::viz::draw_roi(&mut ov, &roi.at_size(img.width(), img.height()))?;
            }
            nexvitad::viz::draw_regions(&mut ov, &r.regions);
            nexvitad::viz::draw_score_bar(&mut ov, r.map.image_score, r.image_threshold, r.is_anomalous);
            // Images from several folders may share a stem (good/000.png, crack/000.png): the
            // folder's name then goes in front, and a counter after, so no overlay replaces another.
            let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "image".into());
            let mut name = stem.clone();
            if used.contains(&name) {
                let parent = p.parent().and_then(|d| d.file_name()).map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                name = format!("{parent}_{stem}");
                let mut k = 2;
                while used.contains(&name) {
                    name = format!("{parent}_{stem}_{k}");
                    k += 1;
                }
            }
            used.insert(name.clone());
            nexvitad::viz::save_png_atomic(&ov, &d.join(format!("{name}_heatmap.png")))?;
        }
        if a.json {
            let mut v = serde_json::json!({
                "image": p.display().to_string(),
                "score": r.map.image_score,
                "threshold": r.image_threshold,
                "threshold_source": if r.image_threshold_from_caller { "caller" } else { "bank" },
                "pixel_threshold": r.pixel_threshold,
                "pixel_threshold_source": if r.pixel_threshold_from_caller { "caller" } else { "bank" },
                "anomalous": r.is_anomalous,
                "roi": r.roi,
                "width": r.map.width,
                "height": r.map.height,
            });
            if a.regions {
                v["regions"] = serde_json::to_value(&r.regions).map_err(|e| nexvitad::Error::Internal(e.to_string()))?;
            }
            println!("{v}");
        } else {
            println!(
                "{:<50} score {:>9.4}  threshold {:>9.4}  {}",
                p.display(),
                r.map.image_score,
                r.image_threshold,
                if r.is_anomalous { "DEFECT" } else { "ok" }
            );
            for g in r.regions.iter() {
                println!(
                    "    region at ({}, {}) {}x{}: {} px, peak {:.4}, mean {:.4}",
                    g.x, g.y, g.width, g.height, g.area, g.peak, g.mean
                );
            }
        }
    }
    Ok(())
}
