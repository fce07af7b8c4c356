//! The shipped model's prediction sets, out-of-distribution score and saliency maps,
//! measured on the fixture images its fit never saw (the reporting half of its
//! validation split) and on images made here.

use std::path::Path;

use contract::{IMAGE_SIDE, Rgb32, conformal, meta};
use inference::Classifier;
use prost::Message;
use rand::{Rng, SeedableRng};
use trainer::data::Dataset;
use trainer::{ood, uncertainty};

fn shipped_bytes() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/cifar10.onnx")).unwrap()
}

fn shipped() -> Classifier {
    Classifier::from_bytes(&shipped_bytes()).unwrap()
}

fn seed_of(model: &Classifier) -> u64 {
    let config: trainer::config::TrainConfig = serde_json::from_str(&model.metadata()[meta::CONFIG]).unwrap();
    config.data.seed
}

/// The fixture images (first 50 per class of the validation split) that fell in the
/// reporting half: nothing the model stores was fitted on them.
fn reporting_fixtures(model: &Classifier) -> Dataset {
    let all = trainer::data::load_image_folder(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/cifar10-val"),
        false,
    )
    .unwrap();
    let seed = seed_of(model);
    let keep: Vec<usize> = (0..all.len())
        .filter(|&i| uncertainty::in_reporting_half(&all.images[i], seed))
        .collect();
    all.subset(&keep)
}

#[test]
fn prediction_sets_cover_unseen_images_at_the_stated_level() {
    let model = shipped();
    let terms = model
        .conformal()
        .expect("the shipped model carries its conformal terms");
    let data = reporting_fixtures(&model);
    assert!(data.len() > 200, "{} reporting-half fixtures", data.len());
    let rows = model.probabilities(&data.images).unwrap();
    let (mut covered, mut sizes) = (0usize, 0usize);
    for ((row, image), &label) in rows.iter().zip(&data.images).zip(&data.labels) {
        let set = conformal::prediction_set(row, conformal::tie_break(image), terms.threshold);
        covered += usize::from(set.contains(&usize::from(label)));
        sizes += set.len();
    }
    let n = data.len() as f64;
    let rate = covered as f64 / n;
    // Binomial spread on ~250 images is about 2 points; 3 sigma either way.
    let slack = 3.0 * (terms.coverage * (1.0 - terms.coverage) / n).sqrt();
    assert!(
        (rate - terms.coverage).abs() <= slack + 1.0 / n,
        "coverage {rate:.4} on {n} unseen images for nominal {}",
        terms.coverage
    );
    assert!(sizes as f64 / n < 2.0, "mean set size {}", sizes as f64 / n);
}

#[test]
fn the_ood_score_separates_made_images_from_unseen_photos() {
    let model = shipped();
    let data = reporting_fixtures(&model);
    let score = |images: &[Rgb32]| -> Vec<f32> {
        model
            .answers(images)
            .unwrap()
            .into_iter()
            .map(|a| a.ood_score.expect("the shipped model has an ood_score output"))
            .collect()
    };
    let inside = score(&data.images);
    let mut all_outside = Vec::new();
    for kind in ood::KINDS {
        let outside = score(&ood::images(kind, 100, &data.images, 5));
        let auroc = ood::auroc(&inside, &outside);
        eprintln!("{kind}: AUROC {auroc:.3}");
        all_outside.extend(outside);
    }
    let overall = ood::auroc(&inside, &all_outside);
    eprintln!("overall: AUROC {overall:.3}");
    assert!(overall >= 0.90, "overall AUROC {overall:.3}");
    // The stored threshold flags about its share of unseen photos, not most of them.
    let threshold = model.ood_threshold().unwrap();
    let flagged = inside.iter().filter(|&&s| s > threshold).count() as f64 / inside.len() as f64;
    assert!(flagged < 0.12, "{flagged} of unseen photos flagged");
}

/// Each fixture photo shrunk to half size into one corner of a grey canvas.
fn in_corner(image: &Rgb32, corner: usize) -> Rgb32 {
    let half = IMAGE_SIDE / 2;
    let mut out = [128u8; contract::IMAGE_BYTES];
    let (oy, ox) = ((corner / 2) * half, (corner % 2) * half);
    for y in 0..half {
        for x in 0..half {
            for c in 0..3 {
                let mut sum = 0u32;
                for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    sum += u32::from(image[((2 * y + dy) * IMAGE_SIDE + 2 * x + dx) * 3 + c]);
                }
                out[((oy + y) * IMAGE_SIDE + ox + x) * 3 + c] = (sum / 4) as u8;
            }
        }
    }
    out
}

/// Share of the top class's map (negative evidence clipped) that falls in `corner`'s
/// quadrant, each cell counted by the part of its area inside it (a flat map gives
/// 0.25), and the map itself.
/// Share of the top class's occlusion map that falls in `corner`'s quadrant, each cell
/// counted by the part of its square inside it (a flat map gives about 0.25), and the
/// map itself.
fn corner_mass(model: &Classifier, image: &Rgb32, corner: usize) -> (f32, Vec<f32>) {
    use inference::saliency::{PATCH, SIDE, STRIDE};
    let (top, probability) = contract::argmax(&model.probabilities(std::slice::from_ref(image)).unwrap()[0]);
    let map = inference::saliency::occlusion(model, image, top, probability).unwrap();
    let total: f32 = map.iter().sum::<f32>().max(1e-12);
    let half = IMAGE_SIDE / 2;
    // The share of square i's pixels [i * STRIDE, i * STRIDE + PATCH) in the first or second half.
    let share = |i: usize, first: bool| {
        let (lo, hi) = (i * STRIDE, i * STRIDE + PATCH);
        let (a, b) = if first { (0, half) } else { (half, IMAGE_SIDE) };
        hi.min(b).saturating_sub(lo.max(a)) as f32 / PATCH as f32
    };
    let mut inside = 0f32;
    for r in 0..SIDE {
        for c in 0..SIDE {
            inside += map[r * SIDE + c] * share(r, corner / 2 == 0) * share(c, corner.is_multiple_of(2));
        }
    }
    (inside / total, map)
}

/// The same graph with every conv filter bank redrawn at random (same spread), so a map
/// that ignored the weights would not change.
fn randomised(bytes: &[u8]) -> Classifier {
    let mut proto = inference::parse_proto(bytes).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    for init in &mut proto.graph.as_mut().unwrap().initializer {
        if init.dims.len() != 4 || !init.name.contains("conv") {
            continue;
        }
        let values: Vec<f32> = if init.raw_data.is_empty() {
            init.float_data.clone()
        } else {
            init.raw_data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect()
        };
        let std = (values.iter().map(|v| v * v).sum::<f32>() / values.len() as f32).sqrt();
        let fresh: Vec<f32> = values
            .iter()
            .map(|_| (rng.random::<f32>() * 2.0 - 1.0) * std * 3f32.sqrt())
            .collect();
        init.raw_data = fresh.iter().flat_map(|v| v.to_le_bytes()).collect();
        init.float_data.clear();
    }
    Classifier::from_bytes(&proto.encode_to_vec()).unwrap()
}

fn correlation(a: &[f32], b: &[f32]) -> f32 {
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    let (ma, mb) = (mean(a), mean(b));
    let cov: f32 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f32 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f32 = b.iter().map(|y| (y - mb).powi(2)).sum();
    if va == 0.0 || vb == 0.0 {
        0.0
    } else {
        cov / (va * vb).sqrt()
    }
}

#[test]
fn saliency_follows_the_object_and_depends_on_the_weights() {
    let bytes = shipped_bytes();
    let (model, random) = (Classifier::from_bytes(&bytes).unwrap(), randomised(&bytes));
    let data = reporting_fixtures(&model);
    let (mut trained_mass, mut random_mass, mut agreement, mut n) = (0f32, 0f32, 0f32, 0f32);
    for (i, image) in data.images.iter().enumerate().step_by(5).take(48) {
        let corner = i % 4;
        let placed = in_corner(image, corner);
        let (mass, map) = corner_mass(&model, &placed, corner);
        let (r_mass, r_map) = corner_mass(&random, &placed, corner);
        trained_mass += mass;
        random_mass += r_mass;
        agreement += correlation(&map, &r_map);
        n += 1.0;
    }
    let (trained_mass, random_mass, agreement) = (trained_mass / n, random_mass / n, agreement / n);
    eprintln!(
        "mass in the object's quadrant: trained {trained_mass:.3}, randomised {random_mass:.3}; map correlation {agreement:.3}"
    );
    assert!(
        trained_mass > 0.5,
        "trained maps put {trained_mass:.3} of their mass on the object"
    );
    assert!(
        agreement < 0.5,
        "randomised maps correlate {agreement:.3} with the trained ones"
    );
}
