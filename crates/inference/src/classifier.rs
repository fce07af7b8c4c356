//! The one way an exported model is run: tract-onnx with the input fixed to uint8
//! `[1, 32, 32, 3]` (the file keeps N symbolic for other runtimes), optimised once.
//! `trainer evaluate` and the function both score through this, so their answers agree.

use std::collections::BTreeMap;
use std::sync::Arc;

use prost::Message;
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;

use contract::{CHANNELS, IMAGE_SIDE, INPUT_NAME, OOD_OUTPUT, OUTPUT_NAME, Rgb32, meta};

use crate::ModelError;

/// A loaded, optimised model with the metadata the API reports.
pub struct Classifier {
    /// Optimised for N = 1 and run once per image: with every shape known, tract picks
    /// kernels that beat its symbolic-batch plan per image even for batches of 32
    /// (0.9 vs 2.0 ms per image on the shipped model, measured by `classify`'s bench).
    plan: Plan,
    labels: Vec<String>,
    metadata: BTreeMap<String, String>,
    /// Position of the optional output older files lack.
    ood_output: Option<usize>,
    conformal: Option<Conformal>,
    ood_threshold: Option<f32>,
}

/// The prediction-set terms a model carries: the coverage promised and the fitted
/// threshold of `contract::conformal`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Conformal {
    pub coverage: f64,
    pub threshold: f64,
}

/// One image's answer: its probabilities and, from files that have it, the
/// out-of-distribution score.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub probabilities: Vec<f32>,
    pub ood_score: Option<f32>,
}

fn parse_number<T: std::str::FromStr>(
    metadata: &BTreeMap<String, String>,
    key: &'static str,
) -> Result<Option<T>, ModelError>
where
    T::Err: std::fmt::Display,
{
    metadata
        .get(key)
        .map(|v| {
            v.parse::<T>().map_err(|e| ModelError::BadMetadata {
                key,
                reason: e.to_string(),
            })
        })
        .transpose()
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

    /// Takes the proto whole: f16-stored weights are expanded (see `half`) and batch norms
    /// folded in place before tract parses it (see `fold`), so cold start copies no weights.
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
        let optional = [OOD_OUTPUT];
        let extras_known = output_names[1.min(output_names.len())..]
            .iter()
            .all(|o| optional.contains(o));
        let mut distinct = output_names.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if input_names != [INPUT_NAME]
            || output_names.first() != Some(&OUTPUT_NAME)
            || !extras_known
            || distinct.len() != output_names.len()
        {
            return Err(ModelError::Contract(format!(
                "expected input [{INPUT_NAME}] and outputs [{OUTPUT_NAME}] (then optionally {optional:?}), found {input_names:?} and {output_names:?}"
            )));
        }
        let ood_output = output_names.iter().position(|o| *o == OOD_OUTPUT);
        let conformal = match (
            parse_number::<f64>(&metadata, meta::COVERAGE)?,
            parse_number::<f64>(&metadata, meta::CONFORMAL_THRESHOLD)?,
        ) {
            (Some(coverage), Some(threshold)) if (0.0..1.0).contains(&coverage) => {
                Some(Conformal { coverage, threshold })
            }
            (Some(_), Some(_)) => {
                return Err(ModelError::BadMetadata {
                    key: meta::COVERAGE,
                    reason: "not in [0, 1)".into(),
                });
            }
            _ => None,
        };
        let ood_threshold = parse_number::<f32>(&metadata, meta::OOD_THRESHOLD)?.filter(|_| ood_output.is_some());
        if let Some(graph) = proto.graph.as_mut() {
            crate::half::expand(graph);
            crate::fold::fold_batch_norms(graph);
        }
        let plan = Plan::new(&proto)?;
        let this = Self {
            plan,
            labels,
            metadata,
            ood_output,
            conformal,
            ood_threshold,
        };
        // One forward pass proves the output width matches the labels before we serve.
        let probe = this.one(&[0u8; contract::IMAGE_BYTES])?;
        if probe.probabilities.len() != this.labels.len() {
            return Err(ModelError::Contract(format!(
                "model outputs {} classes but has {} labels",
                probe.probabilities.len(),
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

    /// The prediction-set terms, when the file carries them.
    pub fn conformal(&self) -> Option<Conformal> {
        self.conformal
    }

    /// The `ood_score` over which an image is flagged, when the file carries it.
    pub fn ood_threshold(&self) -> Option<f32> {
        self.ood_threshold
    }

    /// Softmax probabilities, one row per image, in input order.
    pub fn probabilities(&self, images: &[Rgb32]) -> Result<Vec<Vec<f32>>, ModelError> {
        images.iter().map(|image| Ok(self.one(image)?.probabilities)).collect()
    }

    /// Everything the file answers for each image, in input order.
    pub fn answers(&self, images: &[Rgb32]) -> Result<Vec<Answer>, ModelError> {
        images.iter().map(|image| self.one(image)).collect()
    }

    fn one(&self, image: &Rgb32) -> Result<Answer, ModelError> {
        let mut outputs = self.plan.run(image)?;
        let ood_score = self.ood_output.and_then(|i| outputs[i].first().copied());
        Ok(Answer {
            probabilities: outputs.swap_remove(0),
            ood_score,
        })
    }
}

/// A graph with its input fixed to one uint8 image, optimised: how every graph here is
/// run, the served classifier's and the trainer's probe of a graph it is fitting alike.
pub struct Plan(Arc<TypedRunnableModel>);

impl Plan {
    pub fn new(proto: &ModelProto) -> Result<Self, ModelError> {
        optimise(proto)
            .map(Plan)
            .map_err(|e| ModelError::Parse(format!("{e:#}")))
    }

    /// Every output for one image, as floats, in the graph's output order.
    pub fn run(&self, image: &Rgb32) -> Result<Vec<Vec<f32>>, ModelError> {
        let input = tract_ndarray::Array4::from_shape_vec((1, IMAGE_SIDE, IMAGE_SIDE, CHANNELS), image.to_vec())
            .map_err(|e| ModelError::Inference(e.to_string()))?;
        let outputs = self
            .0
            .run(tvec!(Tensor::from(input).into()))
            .map_err(|e| ModelError::Inference(format!("{e:#}")))?;
        outputs
            .iter()
            .map(|o| {
                let view = o
                    .to_plain_array_view::<f32>()
                    .map_err(|e| ModelError::Inference(e.to_string()))?;
                Ok(view.iter().copied().collect())
            })
            .collect()
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
