//! Where things are: the repository, its release binaries and tools, and the committed
//! fixture images.

use std::path::{Path, PathBuf};

/// Repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A release binary of the workspace (`make test` builds them first).
pub fn bin(name: &str) -> PathBuf {
    let p = root().join("target/release").join(name);
    assert!(
        p.is_file(),
        "{} is missing: run `cargo build --release --workspace --bins` (make test does)",
        p.display()
    );
    p
}

/// A tool from the project's `.venv` (installed by `make setup`).
pub fn venv_tool(name: &str) -> PathBuf {
    let p = root().join(".venv/bin").join(name);
    assert!(p.is_file(), "{} is missing: run `make setup`", p.display());
    p
}

/// The committed fixture set: 50 images of each CIFAR-10 class from the shipped model's
/// validation split (`trainer/examples/fixture_set.rs` wrote them), in the image-folder
/// layout the trainer reads.
pub fn fixture_images() -> PathBuf {
    root().join("tests/fixtures/cifar10-val")
}

/// The first `per_class` fixture images of each class (file-name order), as (class, file
/// name, bytes).
pub fn sample_images(per_class: usize) -> Vec<(String, String, Vec<u8>)> {
    let files = scoring::folder::read_image_files(&fixture_images()).expect("tests/fixtures/cifar10-val");
    let mut taken = std::collections::BTreeMap::<String, usize>::new();
    files
        .into_iter()
        .filter(|((class, _), _)| {
            let n = taken.entry(class.clone()).or_default();
            *n += 1;
            *n <= per_class
        })
        .map(|((class, name), bytes)| (class, name, bytes))
        .collect()
}

/// Write images into an image-folder layout under `dir`.
pub fn write_folder(dir: &Path, images: &[(String, String, Vec<u8>)]) {
    for (class, name, bytes) in images {
        let d = dir.join(class);
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join(name), bytes).expect("write image");
    }
}
