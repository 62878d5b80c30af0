//! `nexvitad synth`: write the synthetic multi-domain dataset.
use std::path::PathBuf;

use clap::Args;

#[derive(Args)]
pub struct SynthArgs {
    /// Output folder (MVTec AD layout, one category per domain).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Image side in pixels.
    #[arg(long, default_value_t = 256)]
    size: u32,
    /// Comma-separated domains (default: stripes, weave, grain, speckle, object). Opt-in: mosaic
    /// (1024², 4x4 weave cells, one defective), shaft (1024x512 part with small pits and
    /// scratches), serial (object with a varying printed label and roi.png).
    #[arg(long, value_delimiter = ',')]
    domains: Vec<String>,
    /// Normal training images per domain.
    #[arg(long, default_value_t = nexvitad::data::SynthOptions::default().train_good)]
    train_good: usize,
    /// Normal test images per domain.
    #[arg(long, default_value_t = nexvitad::data::SynthOptions::default().test_good)]
    test_good: usize,
    /// Defective test images per defect type and domain.
    #[arg(long, default_value_t = nexvitad::data::SynthOptions::default().defects_per_type)]
    defects_per_type: usize,
}

pub fn run(a: SynthArgs) -> nexvitad::Result<()> {
    let mut o = nexvitad::data::SynthOptions {
        seed: a.seed,
        size: a.size,
        train_good: a.train_good,
        test_good: a.test_good,
        defects_per_type: a.defects_per_type,
        ..Default::default()
    };
    if !a.domains.is_empty() {
        o.domains = a.domains;
    }
    let s = nexvitad::data::generate(&a.out, &o)?;
    for d in &s.domains {
        let defects: usize = d.test_defective.iter().map(|(_, n)| n).sum();
        println!("{:<10} train/good {:>3}  test/good {:>3}  test defective {:>3}", d.name, d.train_good, d.test_good, defects);
    }
    println!("wrote {} images to {}", s.total_images(), s.root.display());
    Ok(())
}
