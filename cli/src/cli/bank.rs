//! `nexvitad bank`: inspect a bank file and move its thresholds without re-encoding.
use std::path::PathBuf;

use clap::{Args, Subcommand};

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
    }
}
