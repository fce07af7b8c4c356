//! Learning curves and confusion matrix as PNG, drawn with plotters and an embedded font
//! (no system fonts needed, so CI and Lambda-like hosts draw the same picture).

use std::path::Path;

use plotters::prelude::*;

use crate::error::Result;
use crate::training::EpochMetrics;

pub use scoring::plot::confusion_matrix;
use scoring::plot::{plot_err, png, register_font as register};

/// One labelled series: a 2-px line through `points` with a dot on each, in the legend.
fn line_with_points(
    chart: &mut ChartContext<
        '_,
        BitMapBackend<'_>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    points: Vec<(f64, f64)>,
    name: &str,
    color: RGBColor,
) -> std::result::Result<(), String> {
    chart
        .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
        .map_err(|e| e.to_string())?
        .label(name)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    chart
        .draw_series(points.into_iter().map(|p| Circle::new(p, 3, color.filled())))
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Loss (left) and accuracy (right) per epoch, train and validation.
pub fn learning_curves(path: &Path, epochs: &[EpochMetrics]) -> Result<()> {
    register();
    let err = plot_err(path);
    png(path, (1200, 480), |root| {
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let (left, right) = root.split_horizontally(600);
        let n = epochs.len().max(1) as f64;
        let loss_max = epochs
            .iter()
            .flat_map(|e| [e.train_loss, e.val_loss])
            .fold(0.1, f64::max)
            * 1.1;
        let series = |area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
                      title: &str,
                      y_max: f64,
                      get: &dyn Fn(&EpochMetrics) -> (f64, f64)|
         -> Result<()> {
            let mut chart = ChartBuilder::on(area)
                .caption(title, ("sans-serif", 22))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(52)
                .build_cartesian_2d(0.5..n + 0.5, 0.0..y_max)
                .map_err(|e| err(e.to_string()))?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .draw()
                .map_err(|e| err(e.to_string()))?;
            for (i, (name, color)) in [("train", BLUE), ("validation", RED)].into_iter().enumerate() {
                let points: Vec<(f64, f64)> = epochs
                    .iter()
                    .map(|e| {
                        let (t, v) = get(e);
                        (e.epoch as f64, if i == 0 { t } else { v })
                    })
                    .collect();
                line_with_points(&mut chart, points, name, color).map_err(&err)?;
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| err(e.to_string()))?;
            Ok(())
        };
        series(&left, "loss", loss_max, &|e| (e.train_loss, e.val_loss))?;
        series(&right, "accuracy", 1.0, &|e| (e.train_accuracy, e.val_accuracy))?;
        Ok(())
    })
}

/// Reliability diagram: accuracy against mean confidence per bin, before and after the
/// temperature, with the diagonal a calibrated model would sit on.
pub fn reliability_diagram(path: &Path, calibration: &crate::metrics::Calibration) -> Result<()> {
    register();
    let err = plot_err(path);
    png(path, (640, 600), |root| {
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let title = format!(
            "reliability (ECE {:.3} -> {:.3}, T = {:.2})",
            calibration.ece_before, calibration.ece_after, calibration.temperature
        );
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(52)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc("mean top-1 probability")
            .y_desc("accuracy")
            .draw()
            .map_err(|e| err(e.to_string()))?;
        chart
            .draw_series(LineSeries::new(vec![(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.4)))
            .map_err(|e| err(e.to_string()))?;
        for (name, bins, color) in [
            ("before", &calibration.bins_before, RED),
            ("after", &calibration.bins, BLUE),
        ] {
            let points: Vec<(f64, f64)> = bins
                .iter()
                .filter(|b| b.count > 0)
                .map(|b| (b.confidence, b.accuracy))
                .collect();
            line_with_points(&mut chart, points, name, color).map_err(&err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(e.to_string()))?;
        Ok(())
    })
}

/// Per-class accuracy on the validation split beside the held-out users' corrections:
/// where the model does worse on what users send than on the dataset.
pub fn real_traffic(
    path: &Path,
    validation: &crate::metrics::SplitReport,
    real: &crate::metrics::SplitReport,
) -> Result<()> {
    register();
    let err = plot_err(path);
    let classes = validation.confusion.labels.clone();
    png(path, (900, 520), |root| {
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let title = format!(
            "accuracy: validation {:.3} ({} images) vs real traffic {:.3} ({} corrections)",
            validation.accuracy, validation.images, real.accuracy, real.images
        );
        let n = classes.len();
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(52)
            .build_cartesian_2d(0.0..n as f64, 0.0..1.0)
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n * 2)
            .x_label_formatter(&|x| {
                let i = (*x - 0.5).round();
                if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 {
                    classes.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc("accuracy")
            .draw()
            .map_err(|e| err(e.to_string()))?;
        for (report, colour, shift, name) in [(validation, BLUE, 0.1, "validation"), (real, RED, 0.5, "real traffic")] {
            chart
                .draw_series(report.per_class_accuracy.iter().enumerate().map(|(i, &a)| {
                    let x = i as f64 + shift;
                    Rectangle::new([(x, 0.0), (x + 0.4, a)], colour.mix(0.6).filled())
                }))
                .map_err(|e| err(e.to_string()))?
                .label(name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.mix(0.6).filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(e.to_string()))?;
        Ok(())
    })
}

/// Prediction sets (left: coverage reached on the reporting half against the level
/// asked, with the mean set size at each) and the out-of-distribution score (right:
/// AUROC per generated kind).
pub fn uncertainty(path: &Path, report: &crate::uncertainty::UncertaintyReport) -> Result<()> {
    register();
    let err = plot_err(path);
    png(path, (1200, 480), |root| {
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let (left, right) = root.split_horizontally(600);
        let lo = report
            .levels
            .iter()
            .map(|l| l.nominal.min(l.coverage))
            .fold(1.0, f64::min)
            - 0.02;
        let mut chart = ChartBuilder::on(&left)
            .caption(
                format!(
                    "prediction sets: coverage (reporting half, {} images)",
                    report.reporting_images
                ),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(lo..1.0, lo..1.0)
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc("coverage asked")
            .y_desc("coverage reached")
            .draw()
            .map_err(|e| err(e.to_string()))?;
        chart
            .draw_series(LineSeries::new(vec![(lo, lo), (1.0, 1.0)], BLACK.mix(0.4)))
            .map_err(|e| err(e.to_string()))?;
        let points: Vec<(f64, f64)> = report.levels.iter().map(|l| (l.nominal, l.coverage)).collect();
        line_with_points(&mut chart, points, "reached", BLUE).map_err(&err)?;
        chart
            .draw_series(report.levels.iter().map(|l| {
                Text::new(
                    format!("size {:.2}", l.mean_set_size),
                    (l.nominal, l.coverage),
                    ("sans-serif", 15),
                )
            }))
            .map_err(|e| err(e.to_string()))?;
        let kinds = &report.ood.kinds;
        let mut chart = ChartBuilder::on(&right)
            .caption(
                format!(
                    "out of distribution ({}): AUROC {:.3}",
                    report.ood.score, report.ood.auroc
                ),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(-0.5..kinds.len() as f64 - 0.5, 0.0..1.0)
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(kinds.len())
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    kinds
                        .get(i as usize)
                        .map(|k| k.kind.replace('_', " "))
                        .unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc("AUROC against the reporting half")
            .draw()
            .map_err(|e| err(e.to_string()))?;
        chart
            .draw_series(kinds.iter().enumerate().map(|(i, k)| {
                let x = i as f64;
                Rectangle::new([(x - 0.35, 0.0), (x + 0.35, k.auroc)], BLUE.mix(0.6).filled())
            }))
            .map_err(|e| err(e.to_string()))?;
        Ok(())
    })
}
