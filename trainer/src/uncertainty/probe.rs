//! Running a probed graph (see `graph::add_probe`) through tract: the probabilities,
//! the energy and the pooled features of each image, which the fit needs and the served
//! graph keeps inside.

use contract::{CHANNELS, IMAGE_SIDE, OUTPUT_NAME, Rgb32};
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;

use super::graph::{ENERGY, FEATURES};
use crate::error::{Result, TrainError};

/// Per image, rows first.
#[derive(Debug, Clone, Default)]
pub struct Probed {
    pub probabilities: Vec<f32>,
    pub energy: Vec<f32>,
    /// Empty when the net has no pooled features.
    pub features: Vec<f32>,
}

impl Probed {
    pub fn len(&self) -> usize {
        self.energy.len()
    }

    pub fn is_empty(&self) -> bool {
        self.energy.is_empty()
    }
}

/// A probed graph, optimised for one image at a time as the function runs it.
pub struct Probe {
    plan: Arc<TypedRunnableModel>,
    probabilities: usize,
    energy: usize,
    features: Option<usize>,
}

fn export_err(e: impl std::fmt::Display) -> TrainError {
    TrainError::Export(format!("probing the graph: {e:#}"))
}

impl Probe {
    pub fn new(proto: &ModelProto) -> Result<Self> {
        let outputs: Vec<&str> = proto
            .graph
            .as_ref()
            .map(|g| g.output.iter().map(|o| o.name.as_str()).collect())
            .unwrap_or_default();
        let at = |name: &str| outputs.iter().position(|o| *o == name);
        let probabilities = at(OUTPUT_NAME).ok_or_else(|| export_err("no probabilities output"))?;
        let energy = at(ENERGY).ok_or_else(|| export_err("no energy output: call add_probe first"))?;
        let features = at(FEATURES);
        let mut model = tract_onnx::onnx().model_for_proto_model(proto).map_err(export_err)?;
        let shape: TVec<usize> = tvec![1, IMAGE_SIDE, IMAGE_SIDE, CHANNELS];
        model
            .set_input_fact(0, InferenceFact::dt_shape(u8::datum_type(), shape))
            .map_err(export_err)?;
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(export_err)?;
        Ok(Self {
            plan,
            probabilities,
            energy,
            features,
        })
    }

    pub fn run(&self, images: &[Rgb32]) -> Result<Probed> {
        let mut out = Probed::default();
        for image in images {
            let input = tract_ndarray::Array4::from_shape_vec((1, IMAGE_SIDE, IMAGE_SIDE, CHANNELS), image.to_vec())
                .map_err(export_err)?;
            let answers = self.plan.run(tvec!(Tensor::from(input).into())).map_err(export_err)?;
            let floats = |i: usize| -> Result<Vec<f32>> {
                Ok(answers[i]
                    .to_plain_array_view::<f32>()
                    .map_err(export_err)?
                    .iter()
                    .copied()
                    .collect())
            };
            out.probabilities.extend(floats(self.probabilities)?);
            out.energy.extend(floats(self.energy)?);
            if let Some(f) = self.features {
                out.features.extend(floats(f)?);
            }
        }
        Ok(out)
    }
}
