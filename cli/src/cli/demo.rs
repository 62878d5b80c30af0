//! `nexvitad demo`: the main job on built-in defaults — synthesise five product domains,
//! fit a bank on a few good images of each, score the test images, print the metrics and
//! write heatmap overlays.
use std::path::PathBuf;

use clap::Args;
use nexvitad::eval::{evaluate_category, EvalOptions, HeatmapOutput};

use super::bankargs::BankArgs;
use super::progress::Bars;
use super::ModelArgs;

#[derive(Args)]
pub struct DemoArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Output folder (data, banks and heatmaps go under it).
    #[arg(long, default_value = "out/demo")]
    out: PathBuf,
    /// Good images per bank.
    #[arg(long, default_value_t = 4)]
    shots: usize,
    /// Seed of the synthetic data.
    #[arg(long, default_value_t = 0)]
    data_seed: u64,
    #[command(flatten)]
    bank: BankArgs,
}

pub fn run(a: DemoArgs) -> nexvitad::Result<()> {
    let t0 = std::time::Instant::now();
    let model = a.model.open()?;
    println!("model {} ({}), fingerprint {}…", a.model.model.display(), model.manifest().name, &model.fingerprint()[..12]);
    let data = a.out.join("data");
    if data.exists() {
        // Our own output from an earlier run: regenerate so the data always matches the seed.
        std::fs::remove_dir_all(&data).map_err(|e| nexvitad::Error::io("cannot clear", &data, e))?;
    }
    let s = nexvitad::data::generate(&data, &nexvitad::data::SynthOptions { seed: a.data_seed, ..Default::default() })?;
    println!("synthesised {} images in {} domains under {}", s.total_images(), s.domains.len(), data.display());
    let heat = a.out.join("heatmaps");
    let mut opts = EvalOptions::new(a.shots, a.bank.options()?);
    opts.heatmaps = Some(HeatmapOutput { dir: heat.clone(), per_kind: 1 });
    let banks = a.out.join("banks");
    std::fs::create_dir_all(&banks).map_err(|e| nexvitad::Error::io("cannot create", &banks, e))?;
    let mut rows = Vec::new();
    let mut pngs = Vec::new();
    for d in &s.domains {
        let mut bars = Bars::new(&d.name, false);
        let r = evaluate_category(&model, &data, &d.name, &opts, &mut |p| bars.update(p))?;
        bars.finish();
        if let Some(b) = &r.bank {
            b.save(&banks.join(format!("{}.bank", d.name)))?;
        }
        pngs.extend(r.heatmaps.iter().cloned());
        rows.push(r);
    }
    println!();
    super::eval::print_table(&rows);
    let n = rows.len() as f64;
    let mean = |f: &dyn Fn(&nexvitad::eval::EvalReport) -> f64| rows.iter().map(f).sum::<f64>() / n;
    // Pixel means only when every domain has pixel metrics (the synthetic data has masks).
    let pmean = |f: &dyn Fn(&nexvitad::metrics::Metrics) -> Option<f64>| {
        rows.iter().map(|r| f(&r.metrics)).sum::<Option<f64>>().map(|s| s / n)
    };
    println!(
        "{:<10} {:>8} {:>5} {:>8.3} {:>7.3} {:>7.3} {:>7.3} {} {} {}",
        "mean",
        "",
        "",
        mean(&|r| r.metrics.image_auroc),
        mean(&|r| r.metrics.image_ap),
        mean(&|r| r.metrics.f1_max),
        mean(&|r| r.image_accuracy),
        super::eval::cell(pmean(&|m| m.pixel_auroc), 9),
        super::eval::cell(pmean(&|m| m.pixel_ap), 9),
        super::eval::cell(pmean(&|m| m.pro), 8),
    );
    super::eval::print_notes(&rows);
    println!("\nbanks in {}, {} heatmap overlays in {}", banks.display(), pngs.len(), heat.display());
    println!("note: the built-in model is a tiny random-weight fixture; export pretrained encoders with tools/export_onnx.py for real inspection quality.");
    println!("done in {:.1} s", t0.elapsed().as_secs_f64());
    Ok(())
}
