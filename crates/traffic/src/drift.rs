//! Captured traffic against a model's reference profile: a PSI per feature, a verdict, a
//! table and a picture.

use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

use crate::error::Result;
use crate::profile::{Profile, psi};

/// Fewest captured images `drift` judges. PSI over n images with k bins carries noise of
/// about (k - 1) / n even with no shift at all: 0.045 for 10 bins at 200 images, safely
/// under the 0.25 that signals drift; at 50 images it would be 0.18, too close to it.
pub const MIN_IMAGES: usize = 200;
/// PSI above which a feature has drifted.
pub const DEFAULT_THRESHOLD: f64 = 0.25;

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub feature: String,
    pub psi: f64,
    pub drifted: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub threshold: f64,
    pub reference_images: usize,
    pub observed_images: usize,
    /// False below [`MIN_IMAGES`]: too few images to tell drift from noise.
    pub judged: bool,
    pub rows: Vec<Row>,
    pub observed: Profile,
}

impl Report {
    pub fn drifted(&self) -> bool {
        self.judged && self.rows.iter().any(|r| r.drifted)
    }

    /// The table, as `trainer drift` prints it.
    pub fn table(&self) -> String {
        let mut out = format!(
            "| feature | PSI | over {:.2} |\n| --- | ---: | :---: |\n",
            self.threshold
        );
        for r in &self.rows {
            out.push_str(&format!(
                "| {} | {:.3} | {} |\n",
                r.feature,
                r.psi,
                if r.drifted { "yes" } else { "" }
            ));
        }
        out
    }
}

pub fn compare(reference: &Profile, observed: &Profile, threshold: f64) -> Report {
    let judged = observed.images >= MIN_IMAGES;
    let rows = reference
        .features()
        .into_iter()
        .zip(observed.features())
        .map(|((feature, r), (_, o))| {
            let value = psi(&r, &o);
            Row {
                feature: feature.into(),
                psi: value,
                drifted: judged && value > threshold,
            }
        })
        .collect();
    Report {
        threshold,
        reference_images: reference.images,
        observed_images: observed.images,
        judged,
        rows,
        observed: observed.clone(),
    }
}

/// PSI per feature as bars against the threshold, with the top-1 probability histograms
/// of both sides beneath.
pub fn plot(path: &Path, reference: &Profile, report: &Report) -> Result<()> {
    scoring::plot::register_font();
    let err = scoring::plot::plot_err(path);
    scoring::plot::png(path, (900, 700), |root| -> Result<()> {
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let (top, bottom) = root.split_vertically(380);
        let max = report.rows.iter().map(|r| r.psi).fold(report.threshold * 1.5, f64::max);
        let n = report.rows.len();
        let mut chart = ChartBuilder::on(&top)
            .caption(
                format!(
                    "Drift: PSI per feature ({} captured vs {} reference images)",
                    report.observed_images, report.reference_images
                ),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0..n, 0.0..max)
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|i| report.rows.get(*i).map(|r| r.feature.clone()).unwrap_or_default())
            .y_desc("PSI")
            .draw()
            .map_err(|e| err(e.to_string()))?;
        chart
            .draw_series(report.rows.iter().enumerate().map(|(i, r)| {
                let colour = if r.drifted { RED } else { BLUE };
                Rectangle::new([(i, 0.0), (i + 1, r.psi)], colour.mix(0.6).filled())
            }))
            .map_err(|e| err(e.to_string()))?;
        chart
            .draw_series(LineSeries::new([(0, report.threshold), (n, report.threshold)], BLACK))
            .map_err(|e| err(e.to_string()))?;
        let bins = reference.top1.len();
        let peak = reference
            .top1
            .iter()
            .chain(&report.observed.top1)
            .fold(0.0f64, |a, &b| a.max(b));
        let mut hist = ChartBuilder::on(&bottom)
            .caption(
                "Top-1 probability: reference (blue) and captured (red)",
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..1.0, 0.0..peak * 1.1 + 1e-9)
            .map_err(|e| err(e.to_string()))?;
        hist.configure_mesh()
            .y_desc("share of images")
            .draw()
            .map_err(|e| err(e.to_string()))?;
        let w = 1.0 / bins as f64;
        for (shares, colour, shift) in [(&reference.top1, BLUE, 0.0), (&report.observed.top1, RED, 0.5)] {
            hist.draw_series(shares.iter().enumerate().map(|(i, &v)| {
                let x0 = i as f64 * w + shift * w;
                Rectangle::new([(x0, 0.0), (x0 + w / 2.0, v)], colour.mix(0.6).filled())
            }))
            .map_err(|e| err(e.to_string()))?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Item;

    #[test]
    fn a_shift_is_flagged_noise_is_not_and_small_samples_are_not_judged() {
        let labels: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
        let mut state = 7u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut items = |n: usize, dark: bool| -> Vec<Item> {
            (0..n)
                .map(|_| {
                    let v = next();
                    let shade = if dark { (v % 40) as u8 } else { (v % 256) as u8 };
                    let p = if dark { 0.3 } else { 0.5 + (v % 50) as f32 / 100.0 };
                    ([shade; contract::IMAGE_BYTES], (v % 10) as usize, p)
                })
                .collect()
        };
        let reference = Profile::of(&labels, &items(5000, false));
        let same = compare(&reference, &Profile::of(&labels, &items(400, false)), DEFAULT_THRESHOLD);
        assert!(same.judged && !same.drifted(), "{}", same.table());
        let shifted = compare(&reference, &Profile::of(&labels, &items(400, true)), DEFAULT_THRESHOLD);
        assert!(shifted.drifted(), "{}", shifted.table());
        let few = compare(&reference, &Profile::of(&labels, &items(50, true)), DEFAULT_THRESHOLD);
        assert!(!few.judged && !few.drifted());
        let dir = tempfile::tempdir().unwrap();
        plot(&dir.path().join("drift.png"), &reference, &shifted).unwrap();
        assert!(std::fs::metadata(dir.path().join("drift.png")).unwrap().len() > 5000);
    }
}
