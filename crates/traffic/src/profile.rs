//! A profile of predictions: which classes the model answers, how sure it is, how often it
//! would abstain, and simple statistics of the images (brightness, contrast,
//! colourfulness), each as a histogram. The trainer stores its validation split's profile
//! in the model (`reference_profile`); `drift` compares captured traffic's with it by the
//! population stability index.

use contract::Rgb32;
use serde::{Deserialize, Serialize};

/// Histogram bins of each continuous feature (over [0, 1]).
pub const BINS: usize = 10;
/// The top-1 probability under which a prediction counts as an abstention, whatever each
/// request's own `min_probability` was.
pub const ABSTAIN_BELOW: f32 = 0.5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub images: usize,
    pub labels: Vec<String>,
    /// Share of predictions per class, in label order.
    pub predicted: Vec<f64>,
    /// Shares of top-1 probability per bin.
    pub top1: Vec<f64>,
    /// Share of predictions under [`ABSTAIN_BELOW`].
    pub abstain: f64,
    pub brightness: Vec<f64>,
    pub contrast: Vec<f64>,
    pub colourfulness: Vec<f64>,
}

/// Mean luma, luma standard deviation and Hasler–Süsstrunk colourfulness, each scaled to
/// [0, 1] (by 255, 128 and 150, clamped).
pub fn image_stats(px: &Rgb32) -> [f64; 3] {
    let n = (px.len() / 3) as f64;
    let (mut sum, mut sq) = (0.0, 0.0);
    let (mut rg_sum, mut rg_sq, mut yb_sum, mut yb_sq) = (0.0, 0.0, 0.0, 0.0);
    for p in px.chunks_exact(3) {
        let (r, g, b) = (f64::from(p[0]), f64::from(p[1]), f64::from(p[2]));
        let y = 0.299 * r + 0.587 * g + 0.114 * b;
        sum += y;
        sq += y * y;
        let (rg, yb) = (r - g, 0.5 * (r + g) - b);
        rg_sum += rg;
        rg_sq += rg * rg;
        yb_sum += yb;
        yb_sq += yb * yb;
    }
    let mean = sum / n;
    let std = (sq / n - mean * mean).max(0.0).sqrt();
    let sd = |s: f64, q: f64| (q / n - (s / n) * (s / n)).max(0.0).sqrt();
    let colourfulness = (sd(rg_sum, rg_sq).powi(2) + sd(yb_sum, yb_sq).powi(2)).sqrt()
        + 0.3 * ((rg_sum / n).powi(2) + (yb_sum / n).powi(2)).sqrt();
    [
        (mean / 255.0).clamp(0.0, 1.0),
        (std / 128.0).clamp(0.0, 1.0),
        (colourfulness / 150.0).clamp(0.0, 1.0),
    ]
}

fn bin(x: f64) -> usize {
    ((x * BINS as f64) as usize).min(BINS - 1)
}

/// One prediction: the image, the top-1 class index and its probability.
pub type Item = (Rgb32, usize, f32);

impl Profile {
    pub fn of(labels: &[String], items: &[Item]) -> Profile {
        let n = items.len().max(1) as f64;
        let mut predicted = vec![0.0; labels.len()];
        let mut hists = [vec![0.0; BINS], vec![0.0; BINS], vec![0.0; BINS], vec![0.0; BINS]];
        let mut abstain = 0.0;
        for (px, class, p) in items {
            if let Some(slot) = predicted.get_mut(*class) {
                *slot += 1.0;
            }
            hists[0][bin(f64::from(*p))] += 1.0;
            if *p < ABSTAIN_BELOW {
                abstain += 1.0;
            }
            for (h, v) in hists[1..].iter_mut().zip(image_stats(px)) {
                h[bin(v)] += 1.0;
            }
        }
        // Counts to shares.
        for v in predicted.iter_mut().chain(hists.iter_mut().flatten()) {
            *v /= n;
        }
        abstain /= n;
        let [top1, brightness, contrast, colourfulness] = hists;
        Profile {
            images: items.len(),
            labels: labels.to_vec(),
            predicted,
            top1,
            abstain,
            brightness,
            contrast,
            colourfulness,
        }
    }

    /// Each feature's distribution, by name, for [`psi`]: the abstain rate as two bins.
    pub fn features(&self) -> [(&'static str, Vec<f64>); 6] {
        [
            ("predicted class", self.predicted.clone()),
            ("top-1 probability", self.top1.clone()),
            ("abstain rate", vec![self.abstain, 1.0 - self.abstain]),
            ("brightness", self.brightness.clone()),
            ("contrast", self.contrast.clone()),
            ("colourfulness", self.colourfulness.clone()),
        ]
    }
}

/// Population stability index of `observed` against `reference` (shares per bin): the sum
/// over bins of (o - r) ln(o / r), empty bins floored at 1e-4. Under 0.1 is usually read
/// as stable, 0.1-0.25 as a moderate shift, over 0.25 as a large one.
pub fn psi(reference: &[f64], observed: &[f64]) -> f64 {
    reference
        .iter()
        .zip(observed)
        .map(|(&r, &o)| {
            let (r, o) = (r.max(1e-4), o.max(1e-4));
            (o - r) * (o / r).ln()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(v: u8) -> Rgb32 {
        [v; contract::IMAGE_BYTES]
    }

    #[test]
    fn statistics_and_psi_behave() {
        let [b, c, col] = image_stats(&flat(255));
        assert_eq!((b, c, col), (1.0, 0.0, 0.0));
        let mut red = flat(0);
        for p in red.chunks_exact_mut(3) {
            p[0] = 255;
        }
        assert!(image_stats(&red)[2] > 0.5, "pure red is colourful");
        let labels: Vec<String> = ["a", "b"].map(String::from).to_vec();
        let items: Vec<Item> = (0..100)
            .map(|i| (flat(i as u8 * 2), i % 2, 0.3 + (i as f32) / 200.0))
            .collect();
        let p = Profile::of(&labels, &items);
        assert_eq!(p.predicted, vec![0.5, 0.5]);
        assert!((p.top1.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!((p.abstain - 0.4).abs() < 1e-9);
        assert!(psi(&p.top1, &p.top1).abs() < 1e-12);
        let dark: Vec<Item> = items.iter().map(|(_, c, pr)| (flat(5), *c, *pr)).collect();
        assert!(psi(&p.brightness, &Profile::of(&labels, &dark).brightness) > 1.0);
    }
}
