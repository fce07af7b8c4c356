//! Drawing with plotters and an embedded font (no system fonts needed, so CI and
//! Lambda-like hosts draw the same picture), and the confusion-matrix picture.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::{Confusion, ScoringError};

static FONT: Once = Once::new();

/// Make "sans-serif" the embedded DejaVu Sans; call before drawing text.
pub fn register_font() {
    FONT.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            include_bytes!("../assets/DejaVuSans.ttf"),
        );
    });
}

/// A drawing error for `path`.
pub fn plot_err(path: &Path) -> impl Fn(String) -> ScoringError + '_ {
    move |reason| ScoringError::Plot {
        path: path.into(),
        reason,
    }
}

/// Draw with plotters into an RGB buffer of `size`, then write it to `path` as a PNG with
/// `image` (already in the tree: plotters' own encoder would bring an older `image` and
/// `png` to compile as well).
pub fn png<E: From<ScoringError>>(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<(), E>,
) -> Result<(), E> {
    let err = plot_err(path);
    let mut buf = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        draw(&root)?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    image::save_buffer_with_format(
        path,
        &buf,
        size.0,
        size.1,
        image::ExtendedColorType::Rgb8,
        image::ImageFormat::Png,
    )
    .map_err(|e| err(e.to_string()))?;
    Ok(())
}

/// Row-normalised confusion matrix with counts in the cells.
pub fn confusion_matrix(path: &Path, confusion: &Confusion, title: &str) -> Result<(), ScoringError> {
    use plotters::coord::ranged1d::SegmentValue;
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    register_font();
    let err = plot_err(path);
    let k = confusion.labels.len();
    png(path, (780, 760), |root| {
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(100)
            .build_cartesian_2d((0..k - 1).into_segmented(), (0..k - 1).into_segmented())
            .map_err(|e| err(e.to_string()))?;
        // Row 0 (the first class) is drawn at the top.
        let label = |v: &SegmentValue<usize>, flip: bool| match v {
            SegmentValue::CenterOf(i) if *i < k => confusion.labels[if flip { k - 1 - i } else { *i }].clone(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(k)
            .y_labels(k)
            .x_label_formatter(&|v| label(v, false))
            .y_label_formatter(&|v| label(v, true))
            .x_desc("predicted")
            .y_desc("true")
            .x_label_style(("sans-serif", 11))
            .y_label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        let centered = Pos::new(HPos::Center, VPos::Center);
        for (t, row) in confusion.matrix.iter().enumerate() {
            let total = f64::from(row.iter().sum::<u32>().max(1));
            let y = k - 1 - t;
            for (p, &count) in row.iter().enumerate() {
                let share = f64::from(count) / total;
                let shade = (255.0 * (1.0 - share)) as u8;
                let cell = [
                    (SegmentValue::Exact(p), SegmentValue::Exact(y)),
                    (SegmentValue::Exact(p + 1), SegmentValue::Exact(y + 1)),
                ];
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        cell,
                        RGBColor(shade, shade, 255).filled(),
                    )))
                    .map_err(|e| err(e.to_string()))?;
                let color = if share > 0.5 { WHITE } else { BLACK };
                let style = ("sans-serif", 14).into_font().color(&color).pos(centered);
                chart
                    .draw_series(std::iter::once(Text::new(
                        count.to_string(),
                        (SegmentValue::CenterOf(p), SegmentValue::CenterOf(y)),
                        style,
                    )))
                    .map_err(|e| err(e.to_string()))?;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_confusion_picture_is_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.png");
        let labels = vec!["a".to_string(), "b".to_string()];
        confusion_matrix(&path, &Confusion::new(&labels, &[0, 1, 1], &[0, 1, 0]), "t").unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        assert!(
            confusion_matrix(
                &dir.path().join("no/such/dir.png"),
                &Confusion::new(&labels, &[], &[]),
                "t"
            )
            .is_err()
        );
    }
}
