//! Saliency maps as the API returns them: an occlusion map (`inference::saliency`)
//! scaled to [0, 1] and drawn as a 32x32 heat overlay PNG that a page stretches over the
//! photo (the model saw the whole photo resized, not cropped).

use api::Saliency;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use contract::IMAGE_SIDE;

/// A `side` x `side` map of `label` (rows first, any non-negative scale).
pub fn saliency(raw: &[f32], side: usize, label: &str) -> Saliency {
    let max = raw.iter().fold(0f32, |m, &v| m.max(v));
    let values: Vec<f32> = raw
        .iter()
        .map(|&v| {
            if max > 0.0 {
                (v.max(0.0) / max * 1000.0).round() / 1000.0
            } else {
                0.0
            }
        })
        .collect();
    Saliency {
        label: label.into(),
        width: side,
        height: side,
        png: overlay_png(&values, side),
        values,
    }
}

/// The grid sampled bilinearly at each pixel's centre, as yellow-to-red heat whose
/// opacity grows with the value.
fn overlay_png(values: &[f32], side: usize) -> String {
    let px = IMAGE_SIDE as u32;
    let at = |p: u32| -> (usize, usize, f32) {
        let t = ((p as f32 + 0.5) * side as f32 / px as f32 - 0.5).clamp(0.0, (side - 1) as f32);
        let lo = t.floor() as usize;
        (lo, (lo + 1).min(side - 1), t - lo as f32)
    };
    let img = image::RgbaImage::from_fn(px, px, |x, y| {
        let ((x0, x1, fx), (y0, y1, fy)) = (at(x), at(y));
        let v = |r: usize, c: usize| values[r * side + c];
        let top = v(y0, x0) * (1.0 - fx) + v(y0, x1) * fx;
        let bottom = v(y1, x0) * (1.0 - fx) + v(y1, x1) * fx;
        let value = top * (1.0 - fy) + bottom * fy;
        image::Rgba([255, (255.0 * (1.0 - value)) as u8, 0, (200.0 * value) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("PNG into memory");
    STANDARD.encode(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clips_scales_and_draws_the_map() {
        let s = saliency(&[4.0, -2.0, 1.0, 2.0], 2, "cat");
        assert_eq!((s.label.as_str(), s.width, s.height), ("cat", 2, 2));
        assert_eq!(s.values, vec![1.0, 0.0, 0.25, 0.5]);
        let png = image::load_from_memory(&STANDARD.decode(&s.png).unwrap())
            .unwrap()
            .to_rgba8();
        assert_eq!(png.dimensions(), (32, 32));
        // The top-left corner is the hottest and most opaque, the top-right clear.
        assert!(png.get_pixel(0, 0)[3] > 190 && png.get_pixel(31, 0)[3] < 10);
        assert_eq!(saliency(&[0.0; 4], 2, "dog").values, vec![0.0; 4]);
    }
}
