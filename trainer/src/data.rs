//! Datasets: image folders (plain or `.tar.gz`), the official CIFAR-10 binary release,
//! a seeded stratified split, and augmented batches in the network's input layout.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use contract::{CHANNEL_MEAN, CHANNEL_STD, CIFAR10_LABELS, DecodeLimits, IMAGE_BYTES, IMAGE_SIDE, Rgb32};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::error::{Result, TrainError, io};

/// Labelled images, already preprocessed to the model's 32x32 RGB input.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub images: Vec<Rgb32>,
    pub labels: Vec<u8>,
    /// `class/file` for folders, `batch:index` for the binary release.
    pub files: Vec<String>,
    pub classes: Vec<String>,
    /// Where it came from, for metrics and metadata.
    pub source: String,
    /// Unreadable files skipped under `--skip-bad-images`.
    pub skipped: usize,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    pub fn subset(&self, idx: &[usize]) -> Dataset {
        Dataset {
            images: idx.iter().map(|&i| self.images[i]).collect(),
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            files: idx.iter().map(|&i| self.files[i].clone()).collect(),
            classes: self.classes.clone(),
            source: self.source.clone(),
            skipped: 0,
        }
    }
}

/// Load an image-folder dataset (`<root>/<class>/<file>`) from a directory or a `.tar.gz`
/// of one. Every file goes through the same decoder the function uses.
pub fn load_image_folder(path: &Path, skip_bad: bool) -> Result<Dataset> {
    let files = scoring::folder::read_image_files(path)?;
    let class_names = scoring::folder::class_names(&files, &CIFAR10_LABELS);
    if class_names.len() < 2 {
        return Err(TrainError::Dataset {
            path: path.into(),
            reason: format!(
                "found {} class folders; need at least 2 (<root>/<class>/<file>)",
                class_names.len()
            ),
        });
    }
    let index: BTreeMap<&str, u8> = class_names
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i as u8))
        .collect();
    let limits = DecodeLimits::default();
    let bar = scoring::progress::bar(files.len() as u64, "decoding");
    let mut ds = Dataset {
        classes: class_names.clone(),
        source: path.display().to_string(),
        ..Default::default()
    };
    for ((class, name), bytes) in &files {
        bar.inc(1);
        match contract::decode_rgb32(bytes, &limits) {
            Ok(img) => {
                ds.images.push(img);
                ds.labels.push(index[class.as_str()]);
                ds.files.push(format!("{class}/{name}"));
            }
            Err(_) if skip_bad => ds.skipped += 1,
            Err(source) => {
                return Err(TrainError::BadImage {
                    path: path.join(class).join(name),
                    source,
                });
            }
        }
    }
    bar.finish_and_clear();
    if ds.is_empty() {
        return Err(TrainError::Dataset {
            path: path.into(),
            reason: "no readable images".into(),
        });
    }
    Ok(ds)
}

/// Seeded stratified split: `val_size` images, as equal per class as the counts allow.
pub fn stratified_split(labels: &[u8], classes: usize, val_size: usize, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_5b17);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l as usize].push(i);
    }
    let total = labels.len().max(1);
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for idx in &mut by_class {
        idx.shuffle(&mut rng);
        let take = (val_size * idx.len() + total / 2) / total;
        val.extend_from_slice(&idx[..take.min(idx.len())]);
        train.extend_from_slice(&idx[take.min(idx.len())..]);
    }
    train.sort_unstable();
    val.sort_unstable();
    (train, val)
}

/// Random translation (reflect padding), drawn per image, and the horizontal flips the
/// caller chose (see [`FlipMode`]), one per image.
#[derive(Debug, Clone, Copy)]
pub struct Augment<'a> {
    pub translate: usize,
    pub flips: &'a [bool],
}

/// How training images are mirrored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FlipMode {
    Off,
    /// A fresh coin per image per epoch.
    Random,
    /// airbench's alternating flip: a coin per image in the first epoch, then each image
    /// is mirrored exactly when it was not in the epoch before, so every two epochs
    /// show every image both ways.
    Alternate,
}

impl FlipMode {
    /// Flip decisions for the dataset images `indices` in `epoch` (from 1).
    pub fn flips(self, indices: &[usize], epoch: usize, seed: u64, rng: &mut StdRng) -> Vec<bool> {
        match self {
            FlipMode::Off => vec![false; indices.len()],
            FlipMode::Random => indices.iter().map(|_| rng.random_bool(0.5)).collect(),
            FlipMode::Alternate => indices
                .iter()
                .map(|&i| first_coin(seed, i) ^ epoch.is_multiple_of(2))
                .collect(),
        }
    }
}

/// A fixed pseudo-random bit per (seed, image): splitmix64's finaliser.
fn first_coin(seed: u64, index: usize) -> bool {
    let mut z = seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) & 1 == 1
}

/// Normalised NCHW floats for a batch, augmenting when `aug` is given.
pub fn to_input(images: &[&Rgb32], aug: Option<(Augment<'_>, &mut StdRng)>) -> Vec<f32> {
    let side = IMAGE_SIDE;
    let plane = side * side;
    let mut out = vec![0f32; images.len() * IMAGE_BYTES];
    let mut aug = aug;
    for (n, img) in images.iter().enumerate() {
        let (dx, dy, flip) = match aug.as_mut() {
            Some((a, rng)) => {
                let t = a.translate as i64;
                let dx = if t > 0 { rng.random_range(-t..=t) } else { 0 };
                let dy = if t > 0 { rng.random_range(-t..=t) } else { 0 };
                (dx, dy, a.flips.get(n).copied().unwrap_or(false))
            }
            None => (0, 0, false),
        };
        let base = n * IMAGE_BYTES;
        for y in 0..side {
            let sy = reflect(y as i64 + dy, side);
            for x in 0..side {
                let mut sx = reflect(x as i64 + dx, side);
                if flip {
                    sx = side - 1 - sx;
                }
                let p = (sy * side + sx) * 3;
                for c in 0..3 {
                    out[base + c * plane + y * side + x] = (f32::from(img[p + c]) - CHANNEL_MEAN[c]) / CHANNEL_STD[c];
                }
            }
        }
    }
    out
}

fn reflect(i: i64, n: usize) -> usize {
    let n = n as i64;
    let i = if i < 0 {
        -i
    } else if i >= n {
        2 * n - 2 - i
    } else {
        i
    };
    i.clamp(0, n - 1) as usize
}

/// The official binary release: where it lives and how to check it.
pub mod cifar_binary {
    use super::*;

    pub const URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
    pub const MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";
    /// Folder inside the archive.
    pub const DIR: &str = "cifar-10-batches-bin";
    pub const TRAIN_FILES: [&str; 5] = [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
    ];
    pub const TEST_FILE: &str = "test_batch.bin";
    const RECORD: usize = 1 + IMAGE_BYTES;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Split {
        Train,
        Test,
    }

    /// Read the `.bin` files of `split` from `dir` (which holds them directly).
    pub fn load(dir: &Path, split: Split) -> Result<Dataset> {
        let names: &[&str] = match split {
            Split::Train => &TRAIN_FILES,
            Split::Test => &[TEST_FILE],
        };
        let mut ds = Dataset {
            classes: CIFAR10_LABELS.iter().map(|s| s.to_string()).collect(),
            source: format!("cifar10-binary:{}:{split:?}", dir.display()),
            ..Default::default()
        };
        for name in names {
            let path = dir.join(name);
            let bytes = fs::read(&path).map_err(io(&path))?;
            if bytes.is_empty() || bytes.len() % RECORD != 0 {
                return Err(TrainError::Dataset {
                    path,
                    reason: format!("{} bytes is not a whole number of {RECORD}-byte records", bytes.len()),
                });
            }
            for (i, rec) in bytes.chunks_exact(RECORD).enumerate() {
                let label = rec[0];
                if label as usize >= CIFAR10_LABELS.len() {
                    return Err(TrainError::Dataset {
                        path,
                        reason: format!("label {label} out of range 0..9"),
                    });
                }
                ds.labels.push(label);
                ds.files.push(format!("{name}:{i}"));
                ds.images.push(planar_to_hwc(&rec[1..]));
            }
        }
        Ok(ds)
    }

    /// Records store the red plane, then green, then blue; the model wants HWC.
    fn planar_to_hwc(planes: &[u8]) -> Rgb32 {
        let plane = IMAGE_SIDE * IMAGE_SIDE;
        let mut out = [0u8; IMAGE_BYTES];
        for i in 0..plane {
            for c in 0..3 {
                out[i * 3 + c] = planes[c * plane + i];
            }
        }
        out
    }

    /// The folder with the `.bin` files under `cache`, downloading and checking the
    /// archive first when it is not there yet.
    pub fn fetch(cache: &Path) -> Result<PathBuf> {
        fetch_from(URL, cache)
    }

    /// [`fetch`] from another mirror of the same archive.
    pub fn fetch_from(url: &str, cache: &Path) -> Result<PathBuf> {
        let dir = cache.join(DIR);
        if TRAIN_FILES.iter().chain([&TEST_FILE]).all(|f| dir.join(f).is_file()) {
            return Ok(dir);
        }
        fs::create_dir_all(cache).map_err(io(cache))?;
        let archive = cache.join("cifar-10-binary.tar.gz");
        if !archive.is_file() {
            download(url, &archive, cache)?;
        }
        let bytes = fs::read(&archive).map_err(io(&archive))?;
        verify_md5(&archive, &bytes, MD5)?;
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        tar.unpack(cache).map_err(io(cache))?;
        Ok(dir)
    }

    pub fn verify_md5(path: &Path, bytes: &[u8], expected: &str) -> Result<()> {
        use md5::{Digest, Md5};
        let actual = hex::encode(Md5::digest(bytes));
        if actual != expected {
            return Err(TrainError::Checksum {
                path: path.into(),
                expected: expected.into(),
                actual,
            });
        }
        Ok(())
    }

    fn download(url: &str, to: &Path, cache: &Path) -> Result<()> {
        let fail = |reason: String| TrainError::Download {
            url: url.into(),
            cache: cache.into(),
            reason,
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_connect(Some(std::time::Duration::from_secs(20)))
            .timeout_global(Some(std::time::Duration::from_secs(1800)))
            .build()
            .into();
        let response = agent.get(url).call().map_err(|e| fail(e.to_string()))?;
        let mut body = response.into_body();
        let bytes = body
            .with_config()
            .limit(400 << 20)
            .read_to_vec()
            .map_err(|e| fail(e.to_string()))?;
        let partial = to.with_extension("part");
        fs::write(&partial, &bytes).map_err(io(&partial))?;
        fs::rename(&partial, to).map_err(io(to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_stratified_seeded_and_disjoint() {
        let labels: Vec<u8> = (0..1000).map(|i| (i % 10) as u8).collect();
        let (train, val) = stratified_split(&labels, 10, 100, 7);
        assert_eq!(val.len(), 100);
        assert_eq!(train.len(), 900);
        for c in 0..10u8 {
            assert_eq!(val.iter().filter(|&&i| labels[i] == c).count(), 10);
        }
        assert!(train.iter().all(|i| val.binary_search(i).is_err()));
        assert_eq!(stratified_split(&labels, 10, 100, 7), (train.clone(), val.clone()));
        assert_ne!(stratified_split(&labels, 10, 100, 8).1, val);
    }

    #[test]
    fn input_is_normalised_nchw_and_flip_mirrors() {
        let mut img = [0u8; IMAGE_BYTES];
        img[0] = 255; // red of pixel (0, 0)
        let plain = to_input(&[&img], None);
        assert!((plain[0] - (255.0 - CHANNEL_MEAN[0]) / CHANNEL_STD[0]).abs() < 1e-6);
        let mut rng = StdRng::seed_from_u64(0);
        let flipped = to_input(
            &[&img],
            Some((
                Augment {
                    translate: 0,
                    flips: &[true],
                },
                &mut rng,
            )),
        );
        assert_eq!(flipped[IMAGE_SIDE - 1], plain[0]);
    }

    #[test]
    fn alternating_flip_shows_every_image_both_ways_in_two_epochs() {
        let idx: Vec<usize> = (0..1000).collect();
        let mut rng = StdRng::seed_from_u64(1);
        let e1 = FlipMode::Alternate.flips(&idx, 1, 7, &mut rng);
        let e2 = FlipMode::Alternate.flips(&idx, 2, 7, &mut rng);
        let e3 = FlipMode::Alternate.flips(&idx, 3, 7, &mut rng);
        assert!(e1.iter().zip(&e2).all(|(a, b)| a != b));
        assert_eq!(e1, e3);
        let flipped = e1.iter().filter(|&&f| f).count();
        assert!((400..600).contains(&flipped), "{flipped} of 1000 flipped in epoch 1");
        // The order a batch visits images in does not change an image's flip.
        let shuffled: Vec<usize> = idx.iter().rev().copied().collect();
        let e1r = FlipMode::Alternate.flips(&shuffled, 1, 7, &mut rng);
        assert!(e1r.iter().rev().eq(e1.iter()));
    }

    #[test]
    fn reflect_stays_in_bounds() {
        assert_eq!(reflect(-2, 32), 2);
        assert_eq!(reflect(33, 32), 29);
        assert_eq!(reflect(5, 32), 5);
    }
}
