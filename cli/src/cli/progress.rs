//! Progress bars for long library calls.
use indicatif::{ProgressBar, ProgressStyle};
use nexvitad::bank::{Progress, Phase};

/// A bar that follows a bank build (encode → cluster → calibrate) and test scoring.
pub struct Bars {
    bar: ProgressBar,
    phase: Option<Phase>,
    label: String,
}

impl Bars {
    pub fn new(label: &str, quiet: bool) -> Self {
        let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(0) };
        bar.set_style(
            ProgressStyle::with_template("{prefix:>10} {msg:<10} [{bar:30}] {pos}/{len} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(label.to_string());
        Self { bar, phase: None, label: label.to_string() }
    }

    /// The callback the library calls; never cancels.
    pub fn update(&mut self, p: Progress) -> bool {
        if self.phase != Some(p.phase) {
            self.phase = Some(p.phase);
            self.bar.set_length(p.total as u64);
            self.bar.set_message(match p.phase {
                Phase::Encode => "encode",
                Phase::Cluster => "cluster",
                Phase::Calibrate => "calibrate",
            });
        }
        self.bar.set_length(p.total as u64);
        self.bar.set_position(p.done as u64);
        true
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
        let _ = &self.label;
    }
}
