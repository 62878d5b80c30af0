//! `nexvitad demo`: the main job on built-in defaults.
use std::path::PathBuf;

use clap::Args;

use super::ModelArgs;

#[derive(Args)]
pub struct DemoArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Image to encode.
    #[arg(long, default_value = "tests/fixtures/images/sample.png")]
    image: PathBuf,
}

pub fn run(a: DemoArgs) -> nexvitad::Result<()> {
    let model = a.model.open()?;
    let img = image::open(&a.image).map_err(|e| nexvitad::Error::format(&a.image, e.to_string()))?.to_rgb8();
    let view = model.view(img.as_raw(), img.width(), img.height(), img.width() as usize * 3, nexvitad::PixelFormat::Rgb8)?;
    let t = std::time::Instant::now();
    let f = model.encode(&[view])?;
    println!("encoded {} ({}x{}) in {:.1} ms", a.image.display(), img.width(), img.height(), t.elapsed().as_secs_f64() * 1e3);
    let names = model.manifest().hiera.outputs.clone();
    for (name, a) in names.iter().zip(f.hiera.iter()) {
        print_stats(&format!("hiera/{name}"), a);
    }
    print_stats(&format!("dinov2/{}", model.manifest().dinov2.output), &f.dinov2);
    Ok(())
}

fn print_stats(name: &str, a: &ndarray::Array4<f32>) {
    let n = a.len() as f64;
    let mean = a.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = a.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let (lo, hi) = a.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
    println!("  {name:<20} shape {:?}  mean {mean:+.4}  std {:.4}  min {lo:+.4}  max {hi:+.4}", a.shape(), var.sqrt());
}
