//! Split conformal prediction sets (adaptive prediction sets, Romano et al. 2020), the
//! one definition the trainer fits with and every runtime answers with.
//!
//! The score of a label is the probability mass of the labels ranked above it plus a
//! random share `u` of its own, so sets grow on images whose probability is spread and
//! stay small where it is concentrated. Two choices differ from the paper:
//! - the top label scores 0, so a set is never empty (an app always has an answer to
//!   show); coverage is then at least the top-1 accuracy, and a level at or below that
//!   gives single-label sets by construction;
//! - `u` comes from a hash of the 32x32 pixels rather than a fresh draw, so the same
//!   image always gets the same set while `u` stays independent of its label.

use sha2::{Digest, Sha256};

use crate::Rgb32;

/// The tie-break share for an image, uniform in [0, 1).
pub fn tie_break(image: &Rgb32) -> f64 {
    let digest = Sha256::digest(image);
    let bits = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"));
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// Labels by probability, most probable first (ties by index, as [`crate::top_k`]).
fn ranked(row: &[f32]) -> Vec<usize> {
    crate::top_k(row, row.len())
}

/// The conformity score of `label` for a row of probabilities: 0 for the top label,
/// else the mass ranked above it plus `u` of its own. Lower means more plausible.
pub fn score(row: &[f32], label: usize, u: f64) -> f64 {
    let order = ranked(row);
    if order.first() == Some(&label) {
        return 0.0;
    }
    let mut above = 0f64;
    for &i in &order {
        if i == label {
            return above + u * f64::from(row[i]);
        }
        above += f64::from(row[i]);
    }
    f64::INFINITY
}

/// The threshold that covers the true label with probability at least `coverage` on
/// data exchangeable with `scores`: the ceil((n + 1) coverage)-th smallest score
/// (infinite when there are too few scores to promise it).
pub fn threshold(scores: &[f64], coverage: f64) -> f64 {
    let mut sorted: Vec<f64> = scores.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((sorted.len() + 1) as f64 * coverage).ceil() as usize;
    match rank {
        0 => 0.0,
        r if r <= sorted.len() => sorted[r - 1],
        _ => f64::INFINITY,
    }
}

/// The labels whose score is within `threshold`, most probable first: the smallest set
/// the fitted threshold allows, never empty.
pub fn prediction_set(row: &[f32], u: f64, threshold: f64) -> Vec<usize> {
    let mut set = Vec::new();
    let mut above = 0f64;
    for (rank, i) in ranked(row).into_iter().enumerate() {
        let s = if rank == 0 { 0.0 } else { above + u * f64::from(row[i]) };
        if s > threshold {
            break;
        }
        set.push(i);
        above += f64::from(row[i]);
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny deterministic generator so the test needs no dependency.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// Rows of a perfectly calibrated model (labels drawn from the rows themselves),
    /// with spread that varies from row to row, as a real model's does.
    fn sample(rng: &mut Lcg, n: usize, classes: usize) -> Vec<(Vec<f32>, usize, f64)> {
        (0..n)
            .map(|_| {
                let sharpness = 0.5 + 6.0 * rng.next();
                let z: Vec<f64> = (0..classes).map(|_| sharpness * rng.next() * 3.0).collect();
                let total: f64 = z.iter().map(|v| v.exp()).sum();
                let row: Vec<f32> = z.iter().map(|v| (v.exp() / total) as f32).collect();
                let (draw, mut acc) = (rng.next(), 0f64);
                let label = row
                    .iter()
                    .position(|&p| {
                        acc += f64::from(p);
                        draw < acc
                    })
                    .unwrap_or(classes - 1);
                (row, label, rng.next())
            })
            .collect()
    }

    #[test]
    fn sets_cover_unseen_data_at_the_level_asked_and_adapt_to_spread() {
        let mut rng = Lcg(7);
        let fit = sample(&mut rng, 4000, 10);
        let held_out = sample(&mut rng, 20_000, 10);
        let top1 = held_out.iter().filter(|(r, l, _)| crate::argmax(r).0 == *l).count() as f64 / 20_000.0;
        for coverage in [0.8, 0.9, 0.95] {
            assert!(
                coverage > top1 + 0.05,
                "level {coverage} must ask more than top-1 ({top1})"
            );
            let scores: Vec<f64> = fit.iter().map(|(r, l, u)| score(r, *l, *u)).collect();
            let q = threshold(&scores, coverage);
            let sets: Vec<Vec<usize>> = held_out.iter().map(|(r, _, u)| prediction_set(r, *u, q)).collect();
            let covered = held_out
                .iter()
                .zip(&sets)
                .filter(|((_, l, _), s)| s.contains(l))
                .count();
            let rate = covered as f64 / held_out.len() as f64;
            assert!(
                (rate - coverage).abs() < 0.015,
                "coverage {rate} for nominal {coverage}"
            );
            assert!(sets.iter().all(|s| !s.is_empty()));
            // Sharp rows get smaller sets than flat ones.
            let size = |pick: &dyn Fn(f32) -> bool| {
                let chosen: Vec<usize> = held_out
                    .iter()
                    .zip(&sets)
                    .filter(|((r, _, _), _)| pick(crate::argmax(r).1))
                    .map(|(_, s)| s.len())
                    .collect();
                chosen.iter().sum::<usize>() as f64 / chosen.len().max(1) as f64
            };
            let (sharp, flat) = (size(&|p| p > 0.8), size(&|p| p < 0.3));
            assert!(sharp < flat, "mean set size sharp {sharp} vs flat {flat}");
        }
    }

    #[test]
    fn score_and_set_agree_and_the_threshold_is_the_conformal_rank() {
        let row = [0.1f32, 0.6, 0.3];
        assert_eq!(score(&row, 1, 0.9), 0.0);
        assert!((score(&row, 2, 0.5) - (0.6 + 0.15)).abs() < 1e-6);
        assert!((score(&row, 0, 1.0) - 1.0).abs() < 1e-6);
        assert_eq!(prediction_set(&row, 0.5, 0.0), vec![1]);
        assert_eq!(prediction_set(&row, 0.5, 0.76), vec![1, 2]);
        assert_eq!(prediction_set(&row, 0.5, 10.0), vec![1, 2, 0]);
        for (u, q) in [(0.2, 0.7), (0.9, 0.8), (0.0, 0.6)] {
            for label in 0..3 {
                assert_eq!(prediction_set(&row, u, q).contains(&label), score(&row, label, u) <= q);
            }
        }
        let scores: Vec<f64> = (1..=9).map(f64::from).collect();
        assert_eq!(threshold(&scores, 0.9), 9.0);
        assert_eq!(threshold(&scores, 0.5), 5.0);
        assert_eq!(threshold(&scores[..3], 0.9), f64::INFINITY);
        let a = tie_break(&[0u8; crate::IMAGE_BYTES]);
        let mut other = [0u8; crate::IMAGE_BYTES];
        other[5] = 1;
        assert!((0.0..1.0).contains(&a) && a != tie_break(&other));
        assert_eq!(a, tie_break(&[0u8; crate::IMAGE_BYTES]));
    }
}
