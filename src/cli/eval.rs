//! `nexvitad eval`: metrics of one category with the MVTec AD protocol.
use std::path::{Path, PathBuf};

use clap::Args;
use nexvitad::eval::{evaluate_category, EvalOptions, EvalReport};

use super::bankargs::BankArgs;
use super::progress::Bars;
use super::ModelArgs;

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Dataset root (MVTec AD layout).
    #[arg(long)]
    data: PathBuf,
    /// Category (product) to evaluate.
    #[arg(long)]
    category: String,
    /// Good training images in the bank.
    #[arg(long, default_value_t = 4)]
    shots: usize,
    #[command(flatten)]
    bank: BankArgs,
    /// Write heatmap overlays (with the mask contour) here.
    #[arg(long)]
    heatmaps: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(a: EvalArgs) -> nexvitad::Result<()> {
    let model = a.model.open()?;
    let mut bars = Bars::new(&a.category, a.json);
    // `--scorer decoder`: the trained target segmentation head instead of a memory bank.
    let r = if a.bank.scorer.trim().eq_ignore_ascii_case("decoder") {
        nexvitad::train::score::evaluate_decoder(&model, &a.data, &a.category, a.bank.sigma, &mut |p| bars.update(p))?
    } else {
        let opts = EvalOptions { shots: a.shots, bank: a.bank.options()? };
        evaluate_category(&model, &a.data, &a.category, &opts, &mut |p| bars.update(p))?
    };
    bars.finish();
    if let Some(d) = &a.heatmaps {
        write_heatmaps(&r, d, usize::MAX)?;
    }
    if a.json {
        println!("{}", serde_json::to_string(&r).map_err(|e| nexvitad::Error::Internal(e.to_string()))?);
    } else {
        print_table(std::slice::from_ref(&r));
    }
    Ok(())
}

/// Heatmap overlays of up to `per_kind` images per defect kind.
pub fn write_heatmaps(r: &EvalReport, dir: &Path, per_kind: usize) -> nexvitad::Result<Vec<PathBuf>> {
    let out = dir.join(&r.category);
    std::fs::create_dir_all(&out).map_err(|e| nexvitad::Error::io("cannot create", &out, e))?;
    let Some(bank) = &r.bank else { return Ok(Vec::new()) };
    let (lo, hi) = super::heat_range(bank);
    let mut counts = std::collections::HashMap::new();
    let mut written = Vec::new();
    for s in &r.samples {
        let c = counts.entry(s.defect.clone()).or_insert(0usize);
        if *c >= per_kind {
            continue;
        }
        *c += 1;
        let img = nexvitad::eval::load_image(&s.path)?;
        let ov = nexvitad::viz::heatmap_overlay(&img, &s.map.values, lo, hi, Some(&s.mask))?;
        let stem = s.path.file_stem().map(|x| x.to_string_lossy().into_owned()).unwrap_or_default();
        let p = out.join(format!("{}_{stem}.png", s.defect));
        nexvitad::viz::save_png_atomic(&ov, &p)?;
        written.push(p);
    }
    Ok(written)
}

pub fn print_table(rows: &[EvalReport]) {
    println!(
        "{:<10} {:>6} {:>5} {:>8} {:>9} {:>9} {:>8} {:>7} {:>7} {:>10} {:>9}",
        "category", "scorer", "shots", "img AUC", "pix AUC", "pix AP", "PRO", "F1max", "images", "encode ms", "score ms"
    );
    for r in rows {
        let m = &r.metrics;
        println!(
            "{:<10} {:>6} {:>5} {:>8.3} {:>9.3} {:>9.3} {:>8.3} {:>7.3} {:>7} {:>10.1} {:>9.2}",
            r.category, r.scorer, r.shots, m.image_auroc, m.pixel_auroc, m.pixel_ap, m.pro, m.f1_max, r.images, r.encode_ms, r.score_ms
        );
    }
}
