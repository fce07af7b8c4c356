//! Temperature scaling (Guo et al. 2017): one scalar T fitted on validation logits so
//! that softmax(logits / T) states how often the model is right. Label smoothing leaves
//! the raw probabilities under-confident; T < 1 sharpens them.

/// Mean negative log-likelihood of `labels` under softmax(`logits` / t), rows of `classes`.
pub fn nll(logits: &[f32], labels: &[u8], classes: usize, t: f64) -> f64 {
    let mut total = 0f64;
    for (row, &label) in logits.chunks_exact(classes).zip(labels) {
        total += log_normaliser(row, t) - f64::from(row[usize::from(label)]) / t;
    }
    total / labels.len().max(1) as f64
}

/// log(sum(exp(row / t))), shifted by the row's maximum so it cannot overflow.
fn log_normaliser(row: &[f32], t: f64) -> f64 {
    let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v) / t));
    row.iter().map(|&v| (f64::from(v) / t - max).exp()).sum::<f64>().ln() + max
}

/// The temperature in [0.05, 20] that minimises [`nll`], by golden-section search on
/// log T (the NLL is unimodal in T for a fixed set of logits).
pub fn fit_temperature(logits: &[f32], labels: &[u8], classes: usize) -> f64 {
    let f = |log_t: f64| nll(logits, labels, classes, log_t.exp());
    let (mut a, mut b) = (0.05f64.ln(), 20f64.ln());
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let (mut c, mut d) = (b - g * (b - a), a + g * (b - a));
    let (mut fc, mut fd) = (f(c), f(d));
    for _ in 0..80 {
        if fc < fd {
            b = d;
            d = c;
            fd = fc;
            c = b - g * (b - a);
            fc = f(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + g * (b - a);
            fd = f(d);
        }
    }
    ((a + b) / 2.0).exp()
}

/// Softmax rows of `logits` / t.
pub fn probabilities(logits: &[f32], classes: usize, t: f64) -> Vec<f32> {
    logits
        .chunks_exact(classes)
        .flat_map(|row| {
            let log_z = log_normaliser(row, t);
            row.iter().map(move |&v| (f64::from(v) / t - log_z).exp() as f32)
        })
        .collect()
}

/// Bins of the reliability diagram and the expected calibration error.
pub const ECE_BINS: usize = 15;

/// Expected calibration error over equal-width confidence bins: the share-weighted gap
/// between each bin's mean top-1 probability and its accuracy.
pub fn expected_calibration_error(probs: &[f32], labels: &[u8], classes: usize) -> f64 {
    ece_of_bins(&reliability(probs, labels, classes))
}

/// The expected calibration error of already-computed reliability bins.
pub fn ece_of_bins(bins: &[Bin]) -> f64 {
    let total: usize = bins.iter().map(|b| b.count).sum();
    bins.iter()
        .map(|b| b.count as f64 * (b.confidence - b.accuracy).abs())
        .sum::<f64>()
        / total.max(1) as f64
}

/// One confidence bin: how many answers fell in it, their mean confidence and accuracy.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct Bin {
    pub count: usize,
    pub confidence: f64,
    pub accuracy: f64,
}

pub fn reliability(probs: &[f32], labels: &[u8], classes: usize) -> Vec<Bin> {
    let mut bins = vec![Bin::default(); ECE_BINS];
    for (row, &label) in probs.chunks_exact(classes).zip(labels) {
        let (arg, p) = contract::argmax(row);
        let k = ((f64::from(p) * ECE_BINS as f64) as usize).min(ECE_BINS - 1);
        bins[k].count += 1;
        bins[k].confidence += f64::from(p);
        bins[k].accuracy += f64::from(u8::from(arg == usize::from(label)));
    }
    for b in &mut bins {
        if b.count > 0 {
            b.confidence /= b.count as f64;
            b.accuracy /= b.count as f64;
        }
    }
    bins
}

/// One `min_probability` threshold: the share of labelled images it turns away, the
/// accuracy on those it keeps, and the share of out-of-distribution images it turns away.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct OperatingPoint {
    pub min_probability: f32,
    pub labelled_rejected: f64,
    pub accuracy_of_accepted: f64,
    pub ood_rejected: f64,
}

/// [`OperatingPoint`]s for `thresholds`, from probability rows (one per image).
pub fn operating_points(
    rows: &[Vec<f32>],
    labels: &[u8],
    ood_rows: &[Vec<f32>],
    thresholds: &[f32],
) -> Vec<OperatingPoint> {
    thresholds
        .iter()
        .map(|&t| {
            let (mut kept, mut right) = (0usize, 0usize);
            for (row, &label) in rows.iter().zip(labels) {
                let (arg, p) = contract::argmax(row);
                if p >= t {
                    kept += 1;
                    right += usize::from(arg == usize::from(label));
                }
            }
            let ood_kept = ood_rows.iter().filter(|r| contract::argmax(r).1 >= t).count();
            OperatingPoint {
                min_probability: t,
                labelled_rejected: 1.0 - kept as f64 / rows.len().max(1) as f64,
                accuracy_of_accepted: right as f64 / kept.max(1) as f64,
                ood_rejected: 1.0 - ood_kept as f64 / ood_rows.len().max(1) as f64,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Labels drawn from softmax(z) are calibrated for z; hand the fit z * 2.5 and it
    /// must find T = 2.5.
    #[test]
    fn recovers_a_known_temperature() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let classes = 5;
        let (mut logits, mut labels) = (Vec::new(), Vec::new());
        for _ in 0..20_000 {
            let z: Vec<f32> = (0..classes).map(|_| rng.random_range(-2.0f32..2.0)).collect();
            let p = probabilities(&z, classes, 1.0);
            let u: f32 = rng.random();
            let mut acc = 0.0;
            let label = p.iter().position(|&q| {
                acc += q;
                u < acc
            });
            labels.push(label.unwrap_or(classes - 1) as u8);
            logits.extend(z.iter().map(|v| v * 2.5));
        }
        let t = fit_temperature(&logits, &labels, classes);
        assert!((t - 2.5).abs() < 0.1, "fitted T = {t}");
        let before = expected_calibration_error(&probabilities(&logits, classes, 1.0), &labels, classes);
        let after = expected_calibration_error(&probabilities(&logits, classes, t), &labels, classes);
        assert!(after < 0.02 && after < before / 3.0, "ECE {before} -> {after}");
    }

    #[test]
    fn operating_points_count_what_each_threshold_turns_away() {
        let rows = vec![vec![0.9, 0.1], vec![0.4, 0.6], vec![0.55, 0.45]];
        let ood = vec![vec![0.5, 0.5], vec![0.95, 0.05]];
        let p = operating_points(&rows, &[0, 0, 0], &ood, &[0.0, 0.58, 0.99]);
        assert_eq!(p[0].labelled_rejected, 0.0);
        assert!((p[0].accuracy_of_accepted - 2.0 / 3.0).abs() < 1e-12);
        assert!((p[1].labelled_rejected - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(p[1].accuracy_of_accepted, 0.5);
        assert_eq!(p[1].ood_rejected, 0.5);
        assert_eq!(p[2].labelled_rejected, 1.0);
        assert_eq!(p[2].ood_rejected, 1.0);
    }

    #[test]
    fn ece_of_a_perfectly_confident_right_model_is_zero() {
        let probs = [1.0f32, 0.0, 0.0, 1.0];
        assert_eq!(expected_calibration_error(&probs, &[0, 1], 2), 0.0);
        assert!((expected_calibration_error(&probs, &[1, 1], 2) - 0.5).abs() < 1e-12);
    }
}
