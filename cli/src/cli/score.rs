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
}

pub fn run(a: ScoreArgs) -> nexvitad::Result<()> {
    let model = a.model.open()?;
    let bank = nexvitad::MemoryBank::load(&a.bank, &model)?;
    let paths = nexvitad::data::collect_images(&a.images)?;
    if let Some(d) = &a.heatmaps {
        std::fs::create_dir_all(d).map_err(|e| nexvitad::Error::io("cannot create", d, e))?;
    }
    let mut ws = nexvitad::Workspace::new();
    for p in &paths {
        let img = nexvitad::eval::load_image(p)?;
        let r = nexvitad::score::score(&model, &bank, &nexvitad::eval::rgb_view(&model, &img)?, &mut ws)?;
        if let Some(d) = &a.heatmaps {
            let (lo, hi) = nexvitad::eval::heat_range(&bank);
            let ov = nexvitad::viz::heatmap_overlay(&img, &r.map.values, lo, hi, None)?;
            let name = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "image".into());
            nexvitad::viz::save_png_atomic(&ov, &d.join(format!("{name}_heatmap.png")))?;
        }
        if a.json {
            let v = serde_json::json!({
                "image": p.display().to_string(),
                "score": r.map.image_score,
                "threshold": r.image_threshold,
                "pixel_threshold": r.pixel_threshold,
                "anomalous": r.is_anomalous,
                "width": r.map.width,
                "height": r.map.height,
            });
            println!("{v}");
        } else {
            println!(
                "{:<50} score {:>9.4}  threshold {:>9.4}  {}",
                p.display(),
                r.map.image_score,
                r.image_threshold,
                if r.is_anomalous { "DEFECT" } else { "ok" }
            );
        }
    }
    Ok(())
}
