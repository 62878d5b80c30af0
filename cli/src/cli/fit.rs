//! `nexvitad fit`: build a memory bank from good images.
use std::path::PathBuf;

use clap::Args;

use super::bankargs::BankArgs;
use super::progress::Bars;
use super::ModelArgs;

#[derive(Args)]
pub struct FitArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Good images: files or folders.
    #[arg(long, num_args = 1.., required = true)]
    images: Vec<PathBuf>,
    /// Bank file to write.
    #[arg(long)]
    out: PathBuf,
    /// Use only the first M images (file-name order); 0 = all.
    #[arg(long, default_value_t = 0)]
    shots: usize,
    /// Held-out good images (files or folders) to set the thresholds instead of
    /// leave-one-out over the shots; recommended with a single shot.
    #[arg(long, num_args = 1..)]
    calibrate: Vec<PathBuf>,
    #[command(flatten)]
    bank: BankArgs,
}

pub fn run(a: FitArgs) -> nexvitad::Result<()> {
    let model = a.model.open()?;
    let mut paths = nexvitad::data::collect_images(&a.images)?;
    if a.shots > 0 {
        paths.truncate(a.shots);
    }
    let imgs: Vec<_> = paths.iter().map(|p| nexvitad::eval::load_image(p)).collect::<nexvitad::Result<_>>()?;
    let views: Vec<_> = imgs.iter().map(|i| nexvitad::eval::rgb_view(&model, i)).collect::<nexvitad::Result<_>>()?;
    let mut bars = Bars::new("fit", false);
    let t = std::time::Instant::now();
    let opts = a.bank.options()?;
    let mut bank = nexvitad::MemoryBank::build(&model, &views, &opts, &mut |p| bars.update(p))?;
    bars.finish();
    if !a.calibrate.is_empty() {
        let cal = nexvitad::data::collect_images(&a.calibrate)?;
        let imgs: Vec<_> = cal.iter().map(|p| nexvitad::eval::load_image(p)).collect::<nexvitad::Result<_>>()?;
        let views: Vec<_> = imgs.iter().map(|i| nexvitad::eval::rgb_view(&model, i)).collect::<nexvitad::Result<_>>()?;
        let fpr = opts.target_fpr.unwrap_or(model.manifest().defaults.target_fpr);
        bank.calibrate_held_out(&model, &views, fpr)?;
    }
    bank.save(&a.out)?;
    let m = bank.meta();
    let tiles = match &m.tiles {
        None => String::new(),
        Some(t) => match &t.positions {
            None => format!(" in {}x{} tiles (overlap {}, one shared bank)", t.tile_w, t.tile_h, t.tiling.overlap),
            Some(p) => format!(
                " in {}x{} tiles (overlap {}, a bank per position: {}x{} tiles of {}x{} images)",
                t.tile_w, t.tile_h, t.tiling.overlap, p.cols, p.rows, p.image_width, p.image_height
            ),
        },
    };
    println!(
        "bank {}: {} {} vectors of dim {} from {} images{tiles} in {:.1} s; image threshold {:.4}, pixel threshold {:.4} ({})",
        a.out.display(),
        bank.vectors().nrows(),
        m.scorer.name(),
        m.dim,
        m.shots,
        t.elapsed().as_secs_f64(),
        m.calibration.image_threshold,
        m.calibration.pixel_threshold,
        m.calibration.method
    );
    Ok(())
}
