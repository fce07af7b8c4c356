//! The shipped model and its golden pair (burn's own outputs for a few validation
//! images, written by `trainer train`): tract must reproduce them.

use std::path::PathBuf;

fn models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

#[test]
fn shipped_model_reproduces_its_golden_outputs() {
    let bytes = std::fs::read(models().join("cifar10.onnx")).expect("models/cifar10.onnx");
    let golden: serde_json::Value =
        serde_json::from_slice(&std::fs::read(models().join("golden.json")).expect("models/golden.json")).unwrap();
    let classifier = inference::Classifier::from_bytes(&bytes).expect("model follows the contract");
    assert_eq!(classifier.labels(), contract::CIFAR10_LABELS);
    let images: Vec<contract::Rgb32> = golden["images_hex"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| hex::decode(h.as_str().unwrap()).unwrap().try_into().unwrap())
        .collect();
    assert!(!images.is_empty());
    let want: Vec<Vec<f64>> = serde_json::from_value(golden["probabilities"].clone()).unwrap();
    let got = classifier.probabilities(&images).unwrap();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(
            contract::argmax(g).0,
            w.iter().enumerate().fold(0, |b, (i, v)| if *v > w[b] { i } else { b })
        );
        for (a, b) in g.iter().zip(w) {
            assert!((f64::from(*a) - b).abs() <= 1e-4, "tract {a} vs burn {b}");
        }
    }
    // The metadata the API reports is present and parses.
    assert_eq!(classifier.version().len(), 16);
    let acc = classifier.val_accuracy().expect("val_accuracy parses");
    assert!((0.0..=1.0).contains(&acc));
    let meta = classifier.metadata();
    let config: serde_json::Value = serde_json::from_str(&meta[contract::meta::CONFIG]).unwrap();
    assert!(config["epochs"].as_u64().unwrap() >= 1);
    // The calibration the graph applies is recorded beside it.
    let t: f64 = meta[contract::meta::TEMPERATURE].parse().expect("temperature parses");
    assert!(t > 0.0 && t.is_finite());
    assert_eq!(meta[contract::meta::TTA], "mirror");
}

#[test]
fn corrupt_or_foreign_models_are_refused_with_a_reason() {
    let err = inference::Classifier::from_bytes(b"definitely not protobuf").unwrap_err();
    assert!(err.to_string().contains("not a valid ONNX model"), "{err}");
    let bytes = std::fs::read(models().join("cifar10.onnx")).unwrap();
    // Half a file: the protobuf ends inside a field.
    let err = inference::Classifier::from_bytes(&bytes[..bytes.len() / 2]).unwrap_err();
    assert!(
        matches!(err, inference::ModelError::Parse(_)) && err.to_string().starts_with("not a valid ONNX model"),
        "{err}"
    );
    // Strip the metadata: the contract requires it.
    let mut proto = inference::parse_proto(&bytes).unwrap();
    proto.metadata_props.retain(|p| p.key != contract::meta::LABELS);
    let stripped = prost::Message::encode_to_vec(&proto);
    let err = inference::Classifier::from_bytes(&stripped).unwrap_err();
    assert!(err.to_string().contains("`labels` is missing"), "{err}");
}

/// The shipped file stores its weights as f16 (`inference::half`, `trainer half`): every
/// large initializer, each behind a cast, and storing the expanded graph again gives the
/// same file back, so the rounding happened once.
#[test]
fn shipped_model_stores_its_weights_as_f16_once() {
    use tract_onnx::pb::tensor_proto::DataType;
    let bytes = std::fs::read(models().join("cifar10.onnx")).unwrap();
    let proto = inference::parse_proto(&bytes).unwrap();
    let graph = proto.graph.as_ref().unwrap();
    let large_f32 = graph
        .initializer
        .iter()
        .filter(|i| i.data_type == DataType::Float as i32)
        .filter(|i| i.dims.iter().product::<i64>() >= inference::half::MIN_ELEMENTS as i64)
        .count();
    assert_eq!(large_f32, 0, "f32 weights left in the shipped file");
    let mut expanded = graph.clone();
    let stored = inference::half::expand(&mut expanded);
    assert!(stored >= 8, "{stored} f16 tensors");
    assert_eq!(inference::half::store(&mut expanded), stored);
    let names = |g: &tract_onnx::pb::GraphProto| {
        let mut v: Vec<_> = g
            .initializer
            .iter()
            .map(|i| (i.name.clone(), i.raw_data.clone()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&expanded), names(graph));
}
