//! Progress bars for long work (decoding, epochs, evaluation).

use indicatif::{ProgressBar, ProgressStyle};

/// A bar with a label, hidden when stderr is not a terminal-like sink that wants it.
pub fn bar(len: u64, label: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>10} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}")
            .expect("static template"),
    );
    bar.set_prefix(label.to_string());
    bar
}
