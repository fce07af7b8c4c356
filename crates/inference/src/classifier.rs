//! The one way an exported model is run: tract-onnx with the input fixed to uint8
//! `[1, 32, 32, 3]` (the file keeps N symbolic for other runtimes), optimised once.
//! `trainer evaluate` and the function both score through this, so their answers agree.

use std::collections::BTreeMap;
use std::sync::Arc;

use prost::Message;
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;

use contract::{CHANNELS, IMAGE_SIDE, INPUT_NAME, OUTPUT_NAME, Rgb32, meta};

use crate::ModelError;

/// A loaded, optimised model with the metadata the API reports.
pub struct Classifier {
    /// Optimised for N = 1 and run once per image: with every shape known, tract picks
    /// kernels that beat its symbolic-batch plan per image even for batches of 32
    /// (0.9 vs 2.0 ms per image on the shipped model, measured by `classify`'s bench).
    plan: Arc<TypedRunnableModel>,
    labels: Vec<String>,
    metadata: BTreeMap<String, String>,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("labels", &self.labels)
            .field("metadata", &self.metadata)
            .finish()
    }
}

/// Parse an ONNX file's bytes into its protobuf, for metadata and graph checks.
pub fn parse_proto(bytes: &[u8]) -> Result<ModelProto, ModelError> {
    ModelProto::decode(bytes).map_err(|e| ModelError::Parse(e.to_string()))
}

/// `metadata_props` as a map.
pub fn metadata_of(proto: &ModelProto) -> BTreeMap<String, String> {
    proto
        .metadata_props
        .iter()
        .map(|p| (p.key.clone(), p.value.clone()))
        .collect()
}

impl Classifier {
    /// Load from the bytes of an ONNX file that follows the contract.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ModelError> {
        Self::from_proto(parse_proto(bytes)?)
    }

    /// Takes the proto whole: its batch norms are folded in place before tract parses it
    /// (see `fold`), so cold start copies no weights.
    pub fn from_proto(mut proto: ModelProto) -> Result<Self, ModelError> {
        let metadata = metadata_of(&proto);
        for key in meta::REQUIRED {
            if !metadata.contains_key(key) {
                return Err(ModelError::MissingMetadata(key));
            }
        }
        let labels: Vec<String> =
            serde_json::from_str(&metadata[meta::LABELS]).map_err(|e| ModelError::BadMetadata {
                key: meta::LABELS,
                reason: e.to_string(),
            })?;
        if labels.len() < 2 {
            return Err(ModelError::BadMetadata {
                key: meta::LABELS,
                reason: "fewer than 2 labels".into(),
            });
        }
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| ModelError::Parse("no graph".into()))?;
        let input_names: Vec<&str> = graph.input.iter().map(|i| i.name.as_str()).collect();
        let output_names: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
        if input_names != [INPUT_NAME] || output_names != [OUTPUT_NAME] {
            return Err(ModelError::Contract(format!(
                "expected input [{INPUT_NAME}] and output [{OUTPUT_NAME}], found {input_names:?} and {output_names:?}"
            )));
        }
        if let Some(graph) = proto.graph.as_mut() {
            crate::fold::fold_batch_norms(graph);
        }
        let plan = optimise(&proto).map_err(|e| ModelError::Parse(format!("{e:#}")))?;
        let this = Self { plan, labels, metadata };
        // One forward pass proves the output width matches the labels before we serve.
        let probe = this.probabilities(&[[0u8; contract::IMAGE_BYTES]])?;
        if probe[0].len() != this.labels.len() {
            return Err(ModelError::Contract(format!(
                "model outputs {} classes but has {} labels",
                probe[0].len(),
                this.labels.len()
            )));
        }
        Ok(this)
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    pub fn version(&self) -> &str {
        &self.metadata[meta::MODEL_VERSION]
    }

    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// Validation accuracy recorded at training time, when it parses.
    pub fn val_accuracy(&self) -> Option<f64> {
        self.metadata[meta::VAL_ACCURACY].parse().ok()
    }

    /// Softmax probabilities, one row per image, in input order.
    pub fn probabilities(&self, images: &[Rgb32]) -> Result<Vec<Vec<f32>>, ModelError> {
        images.iter().map(|image| self.one(image)).collect()
    }

    fn one(&self, image: &Rgb32) -> Result<Vec<f32>, ModelError> {
        let input = tract_ndarray::Array4::from_shape_vec((1, IMAGE_SIDE, IMAGE_SIDE, CHANNELS), image.to_vec())
            .map_err(|e| ModelError::Inference(e.to_string()))?;
        let outputs = self
            .plan
            .run(tvec!(Tensor::from(input).into()))
            .map_err(|e| ModelError::Inference(format!("{e:#}")))?;
        let view = outputs[0]
            .to_plain_array_view::<f32>()
            .map_err(|e| ModelError::Inference(e.to_string()))?;
        Ok(view.iter().copied().collect())
    }
}

/// The graph with its input fixed to uint8 `[1, 32, 32, 3]`, optimised.
fn optimise(proto: &ModelProto) -> TractResult<Arc<TypedRunnableModel>> {
    let mut model = tract_onnx::onnx().model_for_proto_model(proto)?;
    let shape: TVec<TDim> = tvec![
        1.into(),
        (IMAGE_SIDE as i64).into(),
        (IMAGE_SIDE as i64).into(),
        (CHANNELS as i64).into()
    ];
    model.set_input_fact(0, InferenceFact::dt_shape(u8::datum_type(), shape))?;
    model.into_optimized()?.into_runnable()
}
