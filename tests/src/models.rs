//! Second models made from the shipped one by editing metadata in place.

/// Where a metadata value starts in an ONNX file: after its key, the value's tag byte and
/// one length byte (values under 128 bytes).
fn metadata_value_at(model: &[u8], key: &str) -> usize {
    let at = model
        .windows(key.len())
        .position(|w| w == key.as_bytes())
        .unwrap_or_else(|| panic!("no {key} key"));
    at + key.len() + 2
}

/// A second valid model: `model` with the start of a metadata value overwritten in place
/// (same length, so the protobuf stays valid).
pub fn with_metadata(model: &[u8], key: &str, prefix: &str) -> Vec<u8> {
    let start = metadata_value_at(model, key);
    let mut out = model.to_vec();
    out[start..start + prefix.len()].copy_from_slice(prefix.as_bytes());
    assert_ne!(out, model, "{key} already starts with {prefix}");
    out
}

/// The same weights and version with another training date: another sha256.
pub fn retrained(model: &[u8]) -> Vec<u8> {
    let first = model[metadata_value_at(model, "trained_at")];
    with_metadata(model, "trained_at", if first == b'1' { "2" } else { "1" })
}

/// A run directory holding `model` as its `model.onnx` (what `trainer publish --run` reads).
pub fn stage_run(dir: &std::path::Path, model: &[u8]) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).expect("run dir");
    std::fs::write(dir.join("model.onnx"), model).expect("model.onnx");
    dir.to_path_buf()
}
