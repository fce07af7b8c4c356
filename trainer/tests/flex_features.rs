//! Guards the build of the training engine: burn-flex must come with its `rayon` and
//! `simd` features. The trainer names burn-flex with `default-features = false` (to add
//! `x86-v4`), which once dropped both without a sound: every flex kernel ran on one core
//! and training ran at half speed (0.41x PyTorch instead of 0.8x).

use std::process::Command;

#[test]
fn burn_flex_is_built_parallel_and_vectorised() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "-p", "trainer", "-e", "features", "-i", "burn-flex"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    for feature in ["rayon", "simd", "x86-v4"] {
        assert!(
            tree.contains(&format!("burn-flex feature \"{feature}\"")),
            "burn-flex is built without its `{feature}` feature:\n{tree}"
        );
    }
}
