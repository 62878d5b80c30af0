//! `nexvitad bank`: move a bank's thresholds without re-encoding, add good images to a
//! growable bank, merge two growable banks.
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::progress::Bars;
use super::ModelArgs;

#[derive(Args)]
pub struct BankArgs {
    #[command(subcommand)]
    cmd: BankCommand,
}

#[derive(Subcommand)]
enum BankCommand {
    /// Move a bank's thresholds to another target false-positive rate, from the normal
    /// scores it stored (no model, no images, nothing re-encoded).
    Calibrate(CalibrateArgs),
    /// Add good images to a growable bank (`fit --growable`): the result is the bank `fit`
    /// builds from all the images at once, thresholds re-calibrated.
    Add(AddArgs),
    /// Merge two growable banks of the same model and settings into the bank `fit` builds
    /// from both banks' images at once.
    Merge(MergeArgs),
}

#[derive(Args)]
struct AddArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Growable bank file from `nexvitad fit --growable`.
    #[arg(long)]
    bank: PathBuf,
    /// Good images to add: files or folders.
    #[arg(long, num_args = 1.., required = true)]
    images: Vec<PathBuf>,
    /// Where to write the grown bank (default: replace --bank, atomically).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct MergeArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The two growable bank files; the first one's images come first.
    #[arg(num_args = 2, required = true, value_name = "BANK")]
    banks: Vec<PathBuf>,
    /// Where to write the merged bank.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct CalibrateArgs {
    /// Bank file from `nexvitad fit`.
    #[arg(long)]
    bank: PathBuf,
    /// Target false-positive rate, in (0, 1), e.g. 0.001.
    #[arg(long)]
    fpr: f32,
    /// Where to write the re-calibrated bank (default: replace --bank, atomically).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(a: BankArgs) -> nexvitad::Result<()> {
    match a.cmd {
        BankCommand::Calibrate(c) => {
            let mut bank = nexvitad::MemoryBank::load_unchecked(&c.bank, nexvitad::bank::file::DEFAULT_MAX_BANK_BYTES)?;
            let before = bank.meta().calibration.clone();
            bank.recalibrate(c.fpr)?;
            let out = c.out.unwrap_or(c.bank);
            bank.save(&out)?;
            let after = &bank.meta().calibration;
            println!(
                "bank {}: target FPR {} -> {}; image threshold {:.4} -> {:.4}, pixel threshold {:.4} -> {:.4} ({} normal image scores)",
                out.display(),
                before.target_fpr,
                after.target_fpr,
                before.image_threshold,
                after.image_threshold,
                before.pixel_threshold,
                after.pixel_threshold,
                after.normal_image_scores.len()
            );
            Ok(())
        }
        BankCommand::Add(a) => {
            let model = a.model.open()?;
            let bank = nexvitad::MemoryBank::load(&a.bank, &model)?;
            let paths = nexvitad::data::collect_images(&a.images)?;
            let imgs: Vec<_> = paths.iter().map(|p| nexvitad::eval::load_image(p)).collect::<nexvitad::Result<_>>()?;
            let views: Vec<_> = imgs.iter().map(|i| nexvitad::eval::rgb_view(&model, i)).collect::<nexvitad::Result<_>>()?;
            let mut bars = Bars::new("add", false);
            let grown = bank.add(&model, &views, &mut |p| bars.update(p))?;
            bars.finish();
            let out = a.out.unwrap_or(a.bank);
            grown.save(&out)?;
            report(&out, &format!("{} + {} images", bank.meta().shots, views.len()), &bank, &grown);
            Ok(())
        }
        BankCommand::Merge(m) => {
            let model = m.model.open()?;
            let a = nexvitad::MemoryBank::load(&m.banks[0], &model)?;
            let b = nexvitad::MemoryBank::load(&m.banks[1], &model)?;
            let mut bars = Bars::new("merge", false);
            let merged = a.merge(&model, &b, &mut |p| bars.update(p))?;
            bars.finish();
            merged.save(&m.out)?;
            report(&m.out, &format!("{} + {} images", a.meta().shots, b.meta().shots), &a, &merged);
            Ok(())
        }
    }
}

/// One line: what the new bank holds and how its thresholds moved.
fn report(out: &std::path::Path, what: &str, before: &nexvitad::MemoryBank, after: &nexvitad::MemoryBank) {
    let (c0, c1) = (&before.meta().calibration, &after.meta().calibration);
    println!(
        "bank {}: {what} = {} shots, {} {} vectors; image threshold {:.4} -> {:.4}, pixel threshold {:.4} -> {:.4} ({})",
        out.display(),
        after.meta().shots,
        after.vectors().nrows(),
        after.meta().scorer.name(),
        c0.image_threshold,
        c1.image_threshold,
        c0.pixel_threshold,
        c1.pixel_threshold,
        c1.method
    );
}
