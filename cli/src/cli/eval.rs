//! `nexvitad eval`: metrics of one category with the MVTec AD protocol.
use std::path::PathBuf;

use clap::Args;
use nexvitad::eval::{evaluate_category, EvalOptions, EvalReport, HeatmapOutput};

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
    /// Exact pixel metrics: keep every anomaly map in memory until the end (memory grows
    /// with the test set). Default: binned pixel metrics in fixed memory, within 1e-3.
    #[arg(long)]
    exact: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(a: EvalArgs) -> nexvitad::Result<()> {
    let model = a.model.open()?;
    let mut bars = Bars::new(&a.category, a.json);
    let mut opts = EvalOptions::new(a.shots, a.bank.options_or_decoder()?);
    opts.exact = a.exact;
    opts.heatmaps = a.heatmaps.clone().map(|dir| HeatmapOutput { dir, per_kind: usize::MAX });
    // `--scorer decoder`: the trained target segmentation head instead of a memory bank.
    let r = if a.bank.is_decoder() {
        nexvitad::train::score::evaluate_decoder(&model, &a.data, &a.category, &opts, &mut |p| bars.update(p))?
    } else {
        evaluate_category(&model, &a.data, &a.category, &opts, &mut |p| bars.update(p))?
    };
    bars.finish();
    if a.json {
        println!("{}", serde_json::to_string(&r).map_err(|e| nexvitad::Error::Internal(e.to_string()))?);
    } else {
        print_table(std::slice::from_ref(&r));
        print_notes(std::slice::from_ref(&r));
    }
    Ok(())
}

/// A metric with three decimals, or `—` when it is not available.
pub fn cell(v: Option<f64>, width: usize) -> String {
    match v {
        Some(x) => format!("{x:>width$.3}"),
        None => format!("{:>width$}", "—"),
    }
}

pub fn print_table(rows: &[EvalReport]) {
    println!(
        "{:<10} {:>8} {:>5} {:>8} {:>7} {:>7} {:>7} {:>9} {:>9} {:>8} {:>7} {:>10} {:>9}",
        "category", "scorer", "shots", "img AUC", "img AP", "F1max", "acc@thr", "pix AUC", "pix AP", "PRO", "images", "encode ms", "score ms"
    );
    for r in rows {
        let m = &r.metrics;
        println!(
            "{:<10} {:>8} {:>5} {:>8.3} {:>7.3} {:>7.3} {:>7.3} {} {} {} {:>7} {:>10.1} {:>9.2}",
            r.category,
            r.scorer,
            r.shots,
            m.image_auroc,
            m.image_ap,
            m.f1_max,
            r.image_accuracy,
            cell(m.pixel_auroc, 9),
            cell(m.pixel_ap, 9),
            cell(m.pro, 8),
            r.images,
            r.encode_ms,
            r.score_ms
        );
    }
}

/// One line per category whose pixel metrics are missing or partial, saying why, and one
/// with the defect regions at the bank's pixel threshold.
pub fn print_notes(rows: &[EvalReport]) {
    for r in rows {
        if let (Some(per_def), Some(per_good)) = (r.regions_per_defective, r.regions_per_good) {
            let recall = match r.region_recall {
                Some(x) => format!("{:.1} % of {} true defects hit by a region", 100.0 * x, r.region_defects),
                None => "no masks for a region recall".to_string(),
            };
            println!(
                "{}: regions at pixel threshold {:.4}{}: {recall}; {per_def:.2} regions per defective image, {per_good:.2} per good image (false alarms)",
                r.category,
                r.pixel_threshold,
                r.roi.map_or(String::new(), |[w, h]| format!(" inside the {w}x{h} ROI"))
            );
        }
        if let Some(n) = &r.pixel_note {
            println!("{}: {n}", r.category);
        }
    }
}
