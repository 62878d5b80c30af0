//! `nexvitad eval`: metrics of one category with the MVTec AD protocol.
use std::path::PathBuf;

use clap::Args;
use nexvitad::eval::{compare_models, evaluate_category, EvalOptions, EvalReport, HeatmapOutput, ModelComparison};

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
    /// Also evaluate this model (e.g. the fp32 source of an INT8 `--model`) on the same
    /// images, and report the AUROC deltas and how far the maps move (map drift, each map
    /// divided by its own bank's pixel threshold). Exits with status 2 when the drift is
    /// beyond the documented bound.
    #[arg(long, value_name = "DIR")]
    reference_model: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(a: EvalArgs) -> nexvitad::Result<i32> {
    let model = a.model.open()?;
    let mut bars = Bars::new(&a.category, a.json);
    let mut opts = EvalOptions::new(a.shots, a.bank.options_or_decoder()?);
    opts.exact = a.exact;
    opts.heatmaps = a.heatmaps.clone().map(|dir| HeatmapOutput { dir, per_kind: usize::MAX });
    if let Some(dir) = &a.reference_model {
        if a.bank.is_decoder() {
            return Err(nexvitad::Error::invalid("--reference-model compares memory-bank maps; it does not apply to --scorer decoder"));
        }
        let reference = nexvitad::Model::open(dir, &a.model.options()?)?;
        let c = compare_models(&reference, &model, &a.data, &a.category, &opts, &mut |p| bars.update(p))?;
        bars.finish();
        if a.json {
            println!("{}", serde_json::to_string(&c).map_err(|e| nexvitad::Error::Internal(e.to_string()))?);
        } else {
            print_comparison(&c, dir, &a.model.model);
        }
        return Ok(if c.drift.within_bound { 0 } else { 2 });
    }
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
    Ok(0)
}

fn print_comparison(c: &ModelComparison, reference: &std::path::Path, candidate: &std::path::Path) {
    println!("reference: {}", reference.display());
    println!("candidate: {}", candidate.display());
    let mut rows = [c.reference.clone(), c.candidate.clone()];
    rows[0].scorer = format!("ref {}", rows[0].scorer);
    print_table(&rows);
    let d = &c.drift;
    println!(
        "AUROC change (candidate - reference): image {:+.3}, pixel {}",
        c.image_auroc_delta,
        c.pixel_auroc_delta.map_or("—".to_string(), |x| format!("{x:+.3}"))
    );
    println!(
        "map drift over {} images (each map / its bank's pixel threshold): mean {:.4}, max {:.4}; pixels on the other side of the threshold {:.3} %; image scores / threshold differ by at most {:.4}, {} image(s) flagged differently",
        d.images,
        d.mean_abs,
        d.max_abs,
        100.0 * d.pixel_disagreement,
        d.image_score_max_abs,
        d.image_disagreement
    );
    let b = &nexvitad::eval::MAP_DRIFT_BOUND;
    if d.within_bound {
        println!("within the bound (mean <= {}, pixels flipped <= {} %)", b.mean_abs, 100.0 * b.pixel_disagreement);
    } else {
        println!("BEYOND the bound (mean <= {}, pixels flipped <= {} %): the candidate's maps drift too far from the reference's", b.mean_abs, 100.0 * b.pixel_disagreement);
    }
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
