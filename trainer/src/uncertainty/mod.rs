//! What the model does not know, fitted once per model on one half of the validation
//! split and reported on the other: the temperature, the prediction sets' threshold, the
//! out-of-distribution score's constants and threshold; and the graph output the
//! runtimes read (`ood_score`), added to a new export or an older file.

pub mod graph;
pub mod probe;

use contract::{Rgb32, conformal, meta};
use prost::Message;
use serde::{Deserialize, Serialize};

use crate::calibration as cal;
use crate::data::Dataset;
use crate::error::{Result, TrainError};
use graph::{DistanceConstants, OodConstants};
use probe::{Probe, Probed};

/// The coverage levels every report measures beside the one the model stores.
pub const LEVELS: [f64; 4] = [0.8, 0.9, 0.95, 0.99];
/// The out-of-distribution threshold flags this share of in-distribution images.
pub const OOD_FLAGGED_IN_DISTRIBUTION: f64 = 0.05;
/// Images of each out-of-distribution kind a report scores.
pub const OOD_IMAGES_PER_KIND: usize = 500;
/// What `ood_score` is: the energy of the calibrated logits (-logsumexp) plus the squared
/// distance of the pooled features to the nearest class mean, each standardised on the
/// calibration half. Measured against either alone (see `OodReport::candidates`): the
/// energy misses noise, the distance misses near-distribution images, the sum misses
/// less of both.
pub const OOD_SCORE: &str = "energy+feature_distance";

/// Which half of the validation split an image belongs to, fixed by its pixels and the
/// run's seed: the calibration half fits, the reporting half is measured. A test can
/// tell which of its fixture images the fit never saw.
pub fn in_reporting_half(image: &Rgb32, seed: u64) -> bool {
    let mut keyed = seed.to_le_bytes().to_vec();
    keyed.extend_from_slice(image);
    contract::sha256_hex(&keyed).as_bytes()[0].is_multiple_of(2)
}

/// Indices of (calibration, reporting) halves of `images`.
pub fn halves(images: &[Rgb32], seed: u64) -> (Vec<usize>, Vec<usize>) {
    (0..images.len()).partition(|&i| !in_reporting_half(&images[i], seed))
}

/// Prediction sets at one coverage level, measured on the reporting half.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Level {
    pub nominal: f64,
    pub threshold: f64,
    pub coverage: f64,
    pub mean_set_size: f64,
}

/// The reporting half by set size: how many images got sets of that size, how often
/// the top label was right among them, how often the set held the true label.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BySize {
    pub size: usize,
    pub images: usize,
    pub top1_accuracy: f64,
    pub coverage: f64,
}

/// One out-of-distribution kind against the reporting half.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OodKind {
    pub kind: String,
    pub images: usize,
    pub auroc: f64,
    /// Share over the stored threshold.
    pub flagged: f64,
}

/// How well each candidate score separates the reporting half from the generated
/// out-of-distribution images (all kinds together): the choice is measured, not assumed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OodCandidate {
    pub score: String,
    pub auroc: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OodReport {
    /// The score the graph computes (see [`OOD_SCORE`]).
    pub score: String,
    pub threshold: f64,
    /// Reporting-half images over the threshold (the calibration half's share is
    /// `OOD_FLAGGED_IN_DISTRIBUTION` by construction).
    pub in_distribution_flagged: f64,
    pub auroc: f64,
    pub kinds: Vec<OodKind>,
    pub candidates: Vec<OodCandidate>,
}

/// Everything fitted on the calibration half and measured on the reporting half.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UncertaintyReport {
    pub calibration_images: usize,
    pub reporting_images: usize,
    pub temperature: f64,
    pub reporting_accuracy: f64,
    pub reporting_ece: f64,
    /// The level stored in the model, and its figures.
    pub coverage_nominal: f64,
    pub coverage: f64,
    pub conformal_threshold: f64,
    pub mean_set_size: f64,
    pub by_size: Vec<BySize>,
    pub levels: Vec<Level>,
    pub ood: OodReport,
}

impl UncertaintyReport {
    /// The metadata a runtime needs to answer the same way.
    pub fn metadata(&self) -> Vec<(&'static str, String)> {
        vec![
            (meta::TEMPERATURE, format!("{}", self.temperature)),
            (meta::VAL_ECE, format!("{:.4}", self.reporting_ece)),
            (meta::COVERAGE, format!("{}", self.coverage_nominal)),
            (meta::CONFORMAL_THRESHOLD, format!("{}", self.conformal_threshold)),
            (meta::OOD_THRESHOLD, format!("{}", self.ood.threshold)),
        ]
    }
}

fn subset(values: &[f32], width: usize, idx: &[usize]) -> Vec<f32> {
    idx.iter()
        .flat_map(|&i| values[i * width..(i + 1) * width].iter().copied())
        .collect()
}

fn mean_and_scale(values: &[f32]) -> (f32, f32) {
    let n = values.len().max(1) as f64;
    let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = values.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n;
    (mean as f32, (1.0 / var.sqrt().max(1e-12)) as f32)
}

/// The value at quantile `q` (nearest rank, rounding up).
fn quantile(values: &[f32], q: f64) -> f64 {
    let mut v: Vec<f32> = values.to_vec();
    v.sort_by(f32::total_cmp);
    let k = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len().max(1)) - 1;
    v.get(k).copied().map_or(f64::INFINITY, f64::from)
}

/// The temperature fitted on the calibration half of the validation split, from raw
/// (temperature 1) logits; 1 when `enabled` is off.
pub fn fit_temperature(
    logits: &[f32],
    labels: &[u8],
    images: &[Rgb32],
    classes: usize,
    seed: u64,
    enabled: bool,
) -> f64 {
    if !enabled {
        return 1.0;
    }
    let (cal_idx, _) = halves(images, seed);
    let cal_labels: Vec<u8> = cal_idx.iter().map(|&i| labels[i]).collect();
    cal::fit_temperature(&subset(logits, classes, &cal_idx), &cal_labels, classes)
}

/// The reporting half's logit rows and labels.
pub fn reporting_rows(
    logits: &[f32],
    labels: &[u8],
    images: &[Rgb32],
    classes: usize,
    seed: u64,
) -> (Vec<f32>, Vec<u8>) {
    let (_, rep) = halves(images, seed);
    (subset(logits, classes, &rep), rep.iter().map(|&i| labels[i]).collect())
}

/// Raw logits of `val` from a file whose graph divides by no temperature: ln p = z -
/// logsumexp(z) and the energy is -logsumexp(z), so z = ln p - energy.
pub fn raw_logits(proto: &tract_onnx::pb::ModelProto, images: &[Rgb32]) -> Result<Vec<f32>> {
    let mut probed = proto.clone();
    graph::add_probe(&mut probed)?;
    let rows = Probe::new(&probed)?.run(images)?;
    let classes = rows.probabilities.len() / rows.len().max(1);
    Ok(rows
        .probabilities
        .chunks_exact(classes)
        .zip(&rows.energy)
        .flat_map(|(row, &e)| row.iter().map(move |&p| p.max(f32::MIN_POSITIVE).ln() - e))
        .collect())
}

/// A file with its uncertainty outputs and metadata, and what they measured.
#[derive(Debug, Clone)]
pub struct Attached {
    pub bytes: Vec<u8>,
    pub version: String,
    pub report: UncertaintyReport,
}

/// The temperature the graph divides by (1 when it has none).
fn graph_temperature(proto: &tract_onnx::pb::ModelProto) -> f64 {
    proto
        .graph
        .as_ref()
        .and_then(|g| g.initializer.iter().find(|i| i.name == crate::export::INV_TEMPERATURE))
        .and_then(|i| i.float_data.first().copied())
        .map_or(1.0, |inv| 1.0 / f64::from(inv))
}

/// The score `finish` puts in the graph, computed here from probe rows.
fn ood_scores(rows: &Probed, constants: &OodConstants) -> Vec<f32> {
    (0..rows.len())
        .map(|i| {
            let mut s = (rows.energy[i] - constants.energy_mean) * constants.energy_scale;
            if let Some(d) = &constants.distance {
                s +=
                    (nearest_mean_distance(&rows.features[i * d.features..(i + 1) * d.features], d) - d.mean) * d.scale;
            }
            s
        })
        .collect()
}

fn nearest_mean_distance(features: &[f32], d: &DistanceConstants) -> f32 {
    d.class_means
        .chunks_exact(d.features)
        .map(|m| m.iter().zip(features).map(|(a, b)| (a - b) * (a - b)).sum::<f32>())
        .fold(f32::INFINITY, f32::min)
}

/// Fit the prediction sets and the out-of-distribution score of the model in `bytes`
/// (its temperature already set) on the calibration half of `val`, measure them on the
/// reporting half and on generated out-of-distribution images, and write them into the
/// file: the `ood_score` output and the metadata. tract then scores
/// the finished file and must agree with the fit.
pub fn attach(bytes: &[u8], val: &Dataset, coverage: f64, seed: u64) -> Result<Attached> {
    let mut proto = inference::parse_proto(bytes)?;
    let temperature = graph_temperature(&proto);
    let feature_width = graph::add_probe(&mut proto)?;
    let probe = Probe::new(&proto)?;
    let total = val.len() + crate::ood::KINDS.len() * OOD_IMAGES_PER_KIND;
    let bar = scoring::progress::bar(total as u64, "uncertainty");
    let run = |images: &[Rgb32]| -> Result<Probed> {
        let rows = probe.run(images)?;
        bar.inc(images.len() as u64);
        Ok(rows)
    };
    let rows = run(&val.images)?;
    let classes = val.classes.len();
    let (cal_idx, rep_idx) = halves(&val.images, seed);
    if cal_idx.len() < 10 || rep_idx.is_empty() {
        return Err(TrainError::Config(format!(
            "{} validation images are too few to split into calibration and reporting halves",
            val.len()
        )));
    }
    let labels_of = |idx: &[usize]| -> Vec<u8> { idx.iter().map(|&i| val.labels[i]).collect() };
    let (cal_labels, rep_labels) = (labels_of(&cal_idx), labels_of(&rep_idx));
    let (cal_probs, rep_probs) = (
        subset(&rows.probabilities, classes, &cal_idx),
        subset(&rows.probabilities, classes, &rep_idx),
    );
    let (sets, levels) = prediction_sets(
        &cal_probs,
        &cal_labels,
        &rep_probs,
        &rep_labels,
        val,
        (&cal_idx, &rep_idx),
        coverage,
    );

    // The out-of-distribution score's constants, from the calibration half.
    let (energy_mean, energy_scale) = mean_and_scale(&subset(&rows.energy, 1, &cal_idx));
    let distance = feature_width.map(|width| {
        let mut class_means = vec![0f32; classes * width];
        let mut counts = vec![0f32; classes];
        for &i in &cal_idx {
            let c = usize::from(val.labels[i]);
            counts[c] += 1.0;
            for (m, f) in class_means[c * width..(c + 1) * width]
                .iter_mut()
                .zip(&rows.features[i * width..(i + 1) * width])
            {
                *m += f;
            }
        }
        for (c, means) in class_means.chunks_exact_mut(width).enumerate() {
            means.iter_mut().for_each(|m| *m /= counts[c].max(1.0));
        }
        let mut d = DistanceConstants {
            class_means,
            features: width,
            mean: 0.0,
            scale: 1.0,
        };
        let cal_distances: Vec<f32> = cal_idx
            .iter()
            .map(|&i| nearest_mean_distance(&rows.features[i * width..(i + 1) * width], &d))
            .collect();
        (d.mean, d.scale) = mean_and_scale(&cal_distances);
        d
    });
    let constants = OodConstants {
        energy_mean,
        energy_scale,
        distance,
    };
    let scores = ood_scores(&rows, &constants);
    let threshold = quantile(&subset(&scores, 1, &cal_idx), 1.0 - OOD_FLAGGED_IN_DISTRIBUTION);
    let rep_rows = Probed {
        probabilities: rep_probs.clone(),
        energy: subset(&rows.energy, 1, &rep_idx),
        features: feature_width
            .map(|w| subset(&rows.features, w, &rep_idx))
            .unwrap_or_default(),
    };
    let rep_images: Vec<Rgb32> = rep_idx.iter().map(|&i| val.images[i]).collect();
    let mut kinds = Vec::new();
    let inside = candidates(&rep_rows, &constants, classes);
    let mut outside_all: Vec<Vec<f32>> = vec![Vec::new(); inside.len()];
    for kind in crate::ood::KINDS {
        let made = crate::ood::images(kind, OOD_IMAGES_PER_KIND, &rep_images, seed);
        let scored = candidates(&run(&made)?, &constants, classes);
        for (all, (_, s)) in outside_all.iter_mut().zip(&scored) {
            all.extend_from_slice(s);
        }
        let chosen = &scored[0].1;
        kinds.push(OodKind {
            kind: kind.into(),
            images: made.len(),
            auroc: crate::ood::auroc(&inside[0].1, chosen),
            flagged: chosen.iter().filter(|&&s| f64::from(s) > threshold).count() as f64 / made.len().max(1) as f64,
        });
    }
    bar.finish_and_clear();
    let candidates: Vec<OodCandidate> = inside
        .iter()
        .zip(&outside_all)
        .map(|((name, s), out)| OodCandidate {
            score: (*name).into(),
            auroc: crate::ood::auroc(s, out),
        })
        .collect();
    let rep_scores = &inside[0].1;
    let report = UncertaintyReport {
        calibration_images: cal_idx.len(),
        reporting_images: rep_idx.len(),
        temperature,
        reporting_accuracy: rep_probs
            .chunks_exact(classes)
            .zip(&rep_labels)
            .filter(|(row, l)| contract::argmax(row).0 == usize::from(**l))
            .count() as f64
            / rep_labels.len() as f64,
        reporting_ece: cal::expected_calibration_error(&rep_probs, &rep_labels, classes),
        coverage_nominal: coverage,
        coverage: sets.coverage,
        conformal_threshold: sets.threshold,
        mean_set_size: sets.mean_set_size,
        by_size: sets.by_size,
        levels,
        ood: OodReport {
            score: if constants.distance.is_some() {
                OOD_SCORE
            } else {
                "energy"
            }
            .into(),
            threshold,
            in_distribution_flagged: rep_scores.iter().filter(|&&s| f64::from(s) > threshold).count() as f64
                / rep_scores.len().max(1) as f64,
            auroc: candidates[0].auroc,
            kinds,
            candidates,
        },
    };
    graph::finish(&mut proto, &constants)?;
    let version = crate::export::version_of(&proto);
    let mut props = vec![(meta::MODEL_VERSION, version.clone())];
    props.extend(report.metadata());
    let bytes = crate::export::with_metadata(&proto.encode_to_vec(), &props)?;
    // The served file, through the function's own loader, must score as the fit did.
    let served = inference::Classifier::from_bytes(&bytes)?;
    let check: Vec<Rgb32> = rep_images.iter().take(16).copied().collect();
    for (answer, want) in served.answers(&check)?.iter().zip(rep_scores) {
        let got = answer.ood_score.unwrap_or(f32::NAN);
        if (got - want).abs() > 1e-2 * want.abs().max(1.0) {
            return Err(TrainError::Export(format!(
                "the exported ood_score ({got}) differs from the fitted one ({want})"
            )));
        }
    }
    Ok(Attached { bytes, version, report })
}

/// The chosen score first, then the others it was measured against.
fn candidates(rows: &Probed, constants: &OodConstants, classes: usize) -> Vec<(&'static str, Vec<f32>)> {
    let mut out = vec![
        (OOD_SCORE, ood_scores(rows, constants)),
        ("energy", rows.energy.clone()),
        (
            "max_softmax",
            rows.probabilities
                .chunks_exact(classes)
                .map(|r| -contract::argmax(r).1)
                .collect(),
        ),
    ];
    if let Some(d) = &constants.distance {
        out.push((
            "feature_distance",
            rows.features
                .chunks_exact(d.features)
                .map(|f| nearest_mean_distance(f, d))
                .collect(),
        ));
    } else {
        out.remove(0);
    }
    out
}

/// The fitted sets at the stored level, measured on the reporting half.
struct Sets {
    threshold: f64,
    coverage: f64,
    mean_set_size: f64,
    by_size: Vec<BySize>,
}

fn prediction_sets(
    cal_probs: &[f32],
    cal_labels: &[u8],
    rep_probs: &[f32],
    rep_labels: &[u8],
    val: &Dataset,
    (cal_idx, rep_idx): (&[usize], &[usize]),
    coverage: f64,
) -> (Sets, Vec<Level>) {
    let classes = val.classes.len();
    let u = |i: usize| conformal::tie_break(&val.images[i]);
    let cal_scores: Vec<f64> = cal_probs
        .chunks_exact(classes)
        .zip(cal_idx)
        .zip(cal_labels)
        .map(|((row, &i), &l)| conformal::score(row, usize::from(l), u(i)))
        .collect();
    let measure = |q: f64| -> (f64, f64, Vec<Vec<usize>>) {
        let sets: Vec<Vec<usize>> = rep_probs
            .chunks_exact(classes)
            .zip(rep_idx)
            .map(|(row, &i)| conformal::prediction_set(row, u(i), q))
            .collect();
        let covered = sets
            .iter()
            .zip(rep_labels)
            .filter(|(s, l)| s.contains(&usize::from(**l)))
            .count();
        let n = sets.len().max(1) as f64;
        let size = sets.iter().map(Vec::len).sum::<usize>() as f64 / n;
        (covered as f64 / n, size, sets)
    };
    let levels = LEVELS
        .iter()
        .map(|&nominal| {
            let threshold = conformal::threshold(&cal_scores, nominal);
            let (coverage, mean_set_size, _) = measure(threshold);
            Level {
                nominal,
                threshold,
                coverage,
                mean_set_size,
            }
        })
        .collect();
    let threshold = conformal::threshold(&cal_scores, coverage);
    let (achieved, mean_set_size, sets) = measure(threshold);
    let mut by_size: Vec<BySize> = (1..=classes)
        .map(|size| BySize {
            size,
            images: 0,
            top1_accuracy: 0.0,
            coverage: 0.0,
        })
        .collect();
    for ((set, row), &l) in sets.iter().zip(rep_probs.chunks_exact(classes)).zip(rep_labels) {
        let b = &mut by_size[set.len() - 1];
        b.images += 1;
        b.top1_accuracy += f64::from(u8::from(contract::argmax(row).0 == usize::from(l)));
        b.coverage += f64::from(u8::from(set.contains(&usize::from(l))));
    }
    by_size.retain(|b| b.images > 0);
    for b in &mut by_size {
        b.top1_accuracy /= b.images as f64;
        b.coverage /= b.images as f64;
    }
    (
        Sets {
            threshold,
            coverage: achieved,
            mean_set_size,
            by_size,
        },
        levels,
    )
}

/// The report as the training log shows it.
pub fn print(r: &UncertaintyReport) {
    eprintln!(
        "uncertainty: halves {} fit / {} report; T {:.3}; sets at {:.0}%: coverage {:.4}, mean size {:.2}; \
         ood ({}): AUROC {:.3}, in-distribution flagged {:.3}",
        r.calibration_images,
        r.reporting_images,
        r.temperature,
        r.coverage_nominal * 100.0,
        r.coverage,
        r.mean_set_size,
        r.ood.score,
        r.ood.auroc,
        r.ood.in_distribution_flagged,
    );
    for level in &r.levels {
        eprintln!(
            "  sets at {:>4.1}%: coverage {:.4}, mean size {:.2}",
            level.nominal * 100.0,
            level.coverage,
            level.mean_set_size
        );
    }
    for k in &r.ood.kinds {
        eprintln!("  ood {:<16} AUROC {:.3}, flagged {:.3}", k.kind, k.auroc, k.flagged);
    }
    for c in &r.ood.candidates {
        eprintln!("  ood score {:<12} AUROC {:.3}", c.score, c.auroc);
    }
}
